/* train.c: parameter initialisation, global-norm clipping and AdamW with a cosine schedule,
 * around the executor of a joint graph. */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autosp/passes.h"
#include "autosp/runtime.h"
#include "autosp/safetensors.h"
#include "autosp/train.h"
#include "backends/cpu/parallel.h"
#include "ir/ir.h"
#include "comm/comm.h"
#include "base/bf16.h"
#include "train/session.h"

static const double PI = 3.14159265358979323846;

/* A parameter and the part of it this rank's optimizer owns: all of it, or under ZeRO-1 the
 * elements [lo, lo + own), whose m and v are all this rank keeps. The arena holds all of it
 * (held_lo 0, held n), or under ZeRO-3 the owned part only (held_lo = lo, held = own): value
 * and work start at element held_lo.
 * Mixed precision: a parameter of another dtype than f32 (bf16) is a working copy in the arena
 * (`work`); the optimizer updates an f32 master copy of the owned part (`master`, like m and v)
 * and rounds it into the working copy. Its gradient is f32 (the autodiff pass sees to it). */
typedef struct param_slot {
    float *value, *grad, *m, *v; /* value (f32 params) and grad live in the executor's arena */
    float *own_grad;             /* the owned part's summed gradient: grad + lo, or ZeRO-2's
                                  * shard "<param>.grad_shard", or ZeRO-3's "<param>.grad"
                                  * (grad is NULL then) */
    float *master;               /* f32 of the owned part, or NULL for an f32 parameter */
    bf16_t *work;                /* the arena's bf16 parameter, or NULL */
    const char *name;            /* the graph's */
    int64_t n, lo, own, held_lo, held;
    int ndim; /* the whole parameter's shape */
    int64_t shape[AUTOSP_MAX_DIMS];
    bool decay;
} param_slot_t;

/* The f32 weights AdamW updates for s, indexed from its owned part's start. */
static float *updated_weights(const param_slot_t *s) {
    return s->master ? s->master : s->value + (s->lo - s->held_lo);
}

/* The working copy of s's owned part (a bf16 parameter). */
static bf16_t *owned_work(const param_slot_t *s) {
    return s->work + (s->lo - s->held_lo);
}

struct autosp_trainer {
    autosp_train_config_t cfg;
    session_t s; /* the joint graph, its executor, the comm */
    param_slot_t *params;
    int n_params;
    float *state;      /* m and v of every parameter (its owned part), one block */
    void *state_block; /* what mem_free takes */
    int step;
    double flops;
    /* ZeRO-1 to 3: optimizer state sharded over every rank of comm's world; ZeRO-2 and 3: the
     * graph reduce-scatters the gradients itself; ZeRO-3: the arena holds parameter shards */
    bool sharded, grad_shards, param_shards;
    int *counts, *displs; /* one parameter's chunk per rank */
    float *chunk;         /* reduce-scatter's receive buffer: the largest owned chunk */
    double optimizer_comm_seconds;
    bool profiling;
    int profiled_steps;
    double profiled_seconds;
};

/* Whether a checkpoint gathers s's f32 weights from every rank: a bf16 parameter's master
 * copy, or under ZeRO-3 any parameter (the arena holds a shard). */
static bool gathers_weights(const autosp_trainer_t *tr, const param_slot_t *s) {
    return s->work || tr->param_shards;
}

autosp_train_config_t autosp_train_config_default(void) {
    return (autosp_train_config_t){.lr = 3e-3f,
                                   .min_lr_ratio = 0.1f,
                                   .warmup_steps = 10,
                                   .total_steps = 100,
                                   .beta1 = 0.9f,
                                   .beta2 = 0.95f,
                                   .eps = 1e-8f,
                                   .weight_decay = 0.1f,
                                   .grad_clip = 1.0f,
                                   .ac = autosp_ac_config_default(),
                                   .zero_stage = 0};
}

float autosp_train_lr(const autosp_train_config_t *c, int step) {
    if (step < c->warmup_steps) return c->lr * (float)(step + 1) / (float)c->warmup_steps;
    int span = c->total_steps - c->warmup_steps;
    double progress = span > 0 ? (double)(step - c->warmup_steps) / span : 1.0;
    if (progress > 1) progress = 1;
    double min_lr = c->lr * c->min_lr_ratio;
    return (float)(min_lr + 0.5 * (c->lr - min_lr) * (1 + cos(PI * progress)));
}

/* ---- initialisation: splitmix64 seeded per parameter, Box-Muller normals ---------------- */

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *s) { /* in (0, 1] */
    return ((double)(splitmix(s) >> 11) + 1.0) / 9007199254740992.0;
}

static uint64_t name_seed(uint64_t seed, const char *name) {
    uint64_t h = 1469598103934665603ull ^ seed; /* FNV-1a over the name, keyed by the seed */
    while (*name) h = (h ^ (unsigned char)*name++) * 1099511628211ull;
    return h;
}

/* The next n values of t's init stream s (n even, but for the stream's last piece). */
static void init_values(float *w, int64_t n, const tensor_t *t, uint64_t *s) {
    for (int64_t i = 0; i < n; i += 2) {
        double r = sqrt(-2.0 * log(uniform01(s))), a = 2 * PI * uniform01(s);
        double z[2] = {r * cos(a), r * sin(a)};
        for (int k = 0; k < 2 && i + k < n; k++)
            w[i + k] = t->init == AUTOSP_INIT_NORMAL ? (float)(t->init_std * z[k])
                       : t->init == AUTOSP_INIT_ONES ? 1.0f
                                                     : 0.0f;
    }
}

/* The overlap of piece [at, at + n) of a parameter with its elements [lo, lo + count). */
static bool overlap(int64_t at, int64_t n, int64_t lo, int64_t count, int64_t *from, int64_t *to) {
    *from = at > lo ? at : lo;
    *to = at + n < lo + count ? at + n : lo + count;
    return *from < *to;
}

/* A parameter's values are the f32 stream of its name (the same numbers at every world size
 * and ZeRO stage), drawn a piece at a time: the f32 weights this rank updates get their part,
 * the working copy of a bf16 parameter its held part, rounded. */
static void init_slot(param_slot_t *p, const tensor_t *x, uint64_t seed) {
    enum { PIECE = 1024 }; /* even: the stream's pairs stay whole */
    float piece[PIECE];
    uint64_t s = name_seed(seed, x->name);
    int64_t f32_lo = p->work ? p->lo : p->held_lo, f32_count = p->work ? p->own : p->held, from, to;
    float *f32 = p->work ? p->master : p->value;
    for (int64_t at = 0; at < p->n; at += PIECE) {
        int64_t n = p->n - at < PIECE ? p->n - at : PIECE;
        init_values(piece, n, x, &s);
        if (p->work && overlap(at, n, p->held_lo, p->held, &from, &to))
            bf16_from_f32_n(p->work + (from - p->held_lo), piece + (from - at), to - from);
        if (overlap(at, n, f32_lo, f32_count, &from, &to))
            memcpy(f32 + (from - f32_lo), piece + (from - at), sizeof(float) * (size_t)(to - from));
    }
}

void autosp_trainer_init_params(autosp_trainer_t *tr, uint64_t seed) {
    for (autosp_tensor_t t = 0, p = 0; t < tr->s.g->n_tensors; t++) {
        const tensor_t *x = &tr->s.g->tensors[t];
        if (x->kind == AUTOSP_KIND_PARAM) init_slot(&tr->params[p++], x, seed);
    }
    for (int p = 0; p < tr->n_params; p++) {
        memset(tr->params[p].m, 0, sizeof(float) * (size_t)tr->params[p].own);
        memset(tr->params[p].v, 0, sizeof(float) * (size_t)tr->params[p].own);
    }
    tr->step = 0;
}

/* ---- construction ----------------------------------------------------------------------- */

/* Rank r of `ranks` owns elements [n r / ranks, n (r + 1) / ranks) of every parameter. */
static int64_t chunk_start(int64_t n, int r, int ranks) {
    return n * r / ranks;
}

/* The parameters in graph order, with the part each rank's optimizer owns. */
static autosp_status_t find_params(autosp_trainer_t *tr, autosp_error_t *err) {
    const autosp_graph_t *j = tr->s.g;
    int rank = tr->sharded ? tr->s.comm->rank : 0, ranks = tr->sharded ? tr->s.comm->size : 1;
    for (autosp_tensor_t t = 0; t < j->n_tensors; t++)
        tr->n_params += j->tensors[t].kind == AUTOSP_KIND_PARAM;
    tr->params = mem_calloc((size_t)tr->n_params + 1, sizeof *tr->params);
    if (!tr->params) return nomem(err);
    for (autosp_tensor_t t = 0, p = 0; t < j->n_tensors; t++) {
        const tensor_t *x = &j->tensors[t];
        if (x->kind != AUTOSP_KIND_PARAM) continue;
        char grad[AUTOSP_MAX_NAME + 16];
        bool grad_shard = tr->grad_shards && !tr->param_shards; /* ZeRO-2's names */
        snprintf(grad, sizeof grad, "%s.grad%s", x->name, grad_shard ? "_shard" : "");
        param_slot_t *s = &tr->params[p++];
        s->name = x->name;
        s->n = session_param_slice(&tr->s, t, &s->held_lo, &s->held);
        const shape_t *whole = param_whole_shape(j, t);
        s->ndim = whole->ndim;
        AUTOSP_ASSERT(shape_eval(j, whole, s->shape, NULL) == EVAL_OK);
        s->lo = chunk_start(s->n, rank, ranks);
        s->own = chunk_start(s->n, rank + 1, ranks) - s->lo;
        AUTOSP_ASSERT(s->held == s->n || (s->held_lo == s->lo && s->held == s->own));
        if (x->dtype == AUTOSP_F32)
            s->value = autosp_executor_data(tr->s.ex, x->name);
        else if (x->dtype == AUTOSP_BF16)
            s->work = autosp_executor_data(tr->s.ex, x->name);
        else
            return set_error(err, AUTOSP_ERR_INVALID,
                             "parameter \"%s\" is %s: the trainer trains f32 and bf16 parameters",
                             x->name, autosp_dtype_name(x->dtype));
        float *g = autosp_executor_data(tr->s.ex, grad);
        AUTOSP_ASSERT(g && j->tensors[autosp_tensor_find(j, grad)].dtype == AUTOSP_F32);
        s->grad = tr->grad_shards ? NULL : g;
        s->own_grad = tr->grad_shards ? g : g + s->lo;
        s->decay = s->ndim >= 2;
        if (tr->sharded && s->n > INT_MAX)
            return set_error(err, AUTOSP_ERR_LIMIT,
                             "ZeRO: parameter \"%s\" has %lld elements, more than MPI's int "
                             "count allows",
                             x->name, (long long)s->n);
    }
    return AUTOSP_OK;
}

/* The f32 floats this rank keeps for s: m and v, and the master copy of a bf16 parameter. */
static int64_t state_floats(const param_slot_t *s) {
    return (s->work ? 3 : 2) * s->own;
}

/* AdamW's m and v (and master weights) for the owned parts, and ZeRO-1's per-rank counts and
 * receive buffer. */
static autosp_status_t bind_params(autosp_trainer_t *tr, autosp_error_t *err) {
    autosp_status_t st = find_params(tr, err);
    if (st != AUTOSP_OK) return st;
    int64_t owned = 0, largest = 0;
    for (int p = 0; p < tr->n_params; p++) {
        owned += state_floats(&tr->params[p]);
        largest = tr->params[p].own > largest ? tr->params[p].own : largest;
    }
    const size_t state_bytes = sizeof(float) * (size_t)(owned + 1);
    tr->state = mem_alloc_huge(state_bytes, &tr->state_block);
    if (!tr->state) return nomem(err);
    memset(tr->state, 0, state_bytes);
    float *next = tr->state;
    for (int p = 0; p < tr->n_params; p++) {
        tr->params[p].m = next;
        tr->params[p].v = next + tr->params[p].own;
        if (tr->params[p].work) tr->params[p].master = next + 2 * tr->params[p].own;
        next += state_floats(&tr->params[p]);
    }
    if (!tr->sharded) return AUTOSP_OK;
    tr->counts = mem_calloc((size_t)tr->s.comm->size, sizeof(int));
    tr->displs = mem_calloc((size_t)tr->s.comm->size, sizeof(int));
    tr->chunk = mem_calloc((size_t)largest + 1, sizeof(float));
    return tr->counts && tr->displs && tr->chunk ? AUTOSP_OK : nomem(err);
}

static autosp_status_t build(autosp_trainer_t *tr, const autosp_graph_t *forward,
                             const autosp_comm_t *comm, autosp_error_t *err) {
    autosp_graph_summary_t sum;
    autosp_status_t st = autosp_graph_verify(forward, AUTOSP_VERIFY_BOUND, err);
    if (st != AUTOSP_OK) return st;
    autosp_parallel_config_t par = autosp_parallel_config_default();
    par.ac = tr->cfg.ac;
    par.grad_reduce_dtype = tr->cfg.grad_reduce_dtype;
    par.loss_chunk = tr->cfg.loss_chunk;
    par.mlp_tile = tr->cfg.mlp_tile;
    par.norm_tile = tr->cfg.norm_tile;
    par.zero3_prefetch = tr->cfg.zero3_prefetch;
    par.backend = autosp_backend_cpu();
    if ((st = session_comm(&tr->s, comm, err)) != AUTOSP_OK) return st;
    par.sp = tr->s.comm->sp_size;
    par.ring = tr->s.comm->ring_size;
    par.dp = tr->s.comm->dp_size;
    tr->sharded = tr->cfg.zero_stage >= 1 && tr->s.comm->size > 1;
    tr->grad_shards = tr->sharded && tr->cfg.zero_stage >= 2;
    tr->param_shards = tr->sharded && tr->cfg.zero_stage == 3;
    par.zero_stage = tr->sharded ? tr->cfg.zero_stage : 0;
    st = session_start(&tr->s, autosp_compile_training(forward, &par, err), err);
    if (st == AUTOSP_OK) st = autosp_graph_summarize(tr->s.g, &sum, err);
    if (st != AUTOSP_OK) return st;
    /* the model's FLOPs: a node the checkpointing runs twice counts once, and so do the lm
     * head's logits, which the chunked loss's backward recomputes (a third of its FLOPs) */
    const autosp_ac_report_t *ac = autosp_graph_checkpoint_report(tr->s.g);
    tr->flops = sum.cost.flops - (ac ? ac->recompute_flops : 0) -
                sum.flops_by_op[AUTOSP_OP_LINEAR_CROSS_ENTROPY_BACKWARD] / 3;
    return bind_params(tr, err);
}

autosp_trainer_t *autosp_trainer_new(const autosp_graph_t *forward,
                                     const autosp_train_config_t *cfg, autosp_error_t *err) {
    return autosp_trainer_new_comm(forward, cfg, NULL, err);
}

autosp_trainer_t *autosp_trainer_new_comm(const autosp_graph_t *forward,
                                          const autosp_train_config_t *cfg,
                                          const autosp_comm_t *comm, autosp_error_t *err) {
    autosp_error_t local;
    if (!err) err = &local;
    autosp_trainer_t *tr = mem_calloc(1, sizeof *tr);
    if (!tr) {
        nomem(err);
        return NULL;
    }
    tr->cfg = cfg ? *cfg : autosp_train_config_default();
    if (!(tr->cfg.lr >= 0) || !(tr->cfg.beta1 >= 0 && tr->cfg.beta1 < 1) ||
        !(tr->cfg.beta2 >= 0 && tr->cfg.beta2 < 1) || !(tr->cfg.eps > 0) ||
        !(tr->cfg.grad_clip >= 0) || tr->cfg.warmup_steps < 0 || tr->cfg.total_steps < 1 ||
        tr->cfg.zero_stage < 0 || tr->cfg.zero_stage > 3 || tr->cfg.loss_chunk < -1 ||
        tr->cfg.mlp_tile < -1 || tr->cfg.norm_tile < -1 ||
        (tr->cfg.zero3_prefetch != 0 && tr->cfg.zero3_prefetch != AUTOSP_PREFETCH_OFF) ||
        (tr->cfg.grad_reduce_dtype != AUTOSP_F32 && tr->cfg.grad_reduce_dtype != AUTOSP_BF16)) {
        set_error(err, AUTOSP_ERR_INVALID,
                  "train config: lr %g, betas (%g, %g), eps %g, grad_clip %g, warmup %d, total "
                  "%d, zero_stage %d, grad_reduce_dtype %s, loss_chunk %lld, mlp_tile %lld, "
                  "norm_tile %lld, zero3_prefetch %d: expected lr >= 0, "
                  "betas in [0,1), eps > 0, clip >= 0, total >= 1, zero_stage 0 to 3, f32 or "
                  "bf16 sums, loss_chunk, mlp_tile and norm_tile -1 (off), 0 (planned) or rows, "
                  "zero3_prefetch "
                  "0 (on) or -1 (off)",
                  tr->cfg.lr, tr->cfg.beta1, tr->cfg.beta2, tr->cfg.eps, tr->cfg.grad_clip,
                  tr->cfg.warmup_steps, tr->cfg.total_steps, tr->cfg.zero_stage,
                  autosp_dtype_name(tr->cfg.grad_reduce_dtype), (long long)tr->cfg.loss_chunk,
                  (long long)tr->cfg.mlp_tile, (long long)tr->cfg.norm_tile,
                  tr->cfg.zero3_prefetch);
        mem_free(tr);
        return NULL;
    }
    if (build(tr, forward, comm, err) != AUTOSP_OK) {
        autosp_trainer_free(tr);
        return NULL;
    }
    return tr;
}

void autosp_trainer_free(autosp_trainer_t *tr) {
    if (!tr) return;
    session_close(&tr->s);
    mem_free(tr->params);
    mem_free(tr->state_block);
    mem_free(tr->counts);
    mem_free(tr->displs);
    mem_free(tr->chunk);
    mem_free(tr);
}

void *autosp_trainer_data(autosp_trainer_t *tr, const char *name) {
    return autosp_executor_data(tr->s.ex, name);
}

int64_t autosp_trainer_arena_bytes(const autosp_trainer_t *tr) {
    return autosp_executor_arena_bytes(tr->s.ex);
}
int64_t autosp_trainer_touched_bytes(const autosp_trainer_t *tr) {
    return autosp_executor_touched_bytes(tr->s.ex);
}
int64_t autosp_trainer_state_bytes(const autosp_trainer_t *tr) {
    int64_t n = 0;
    for (int p = 0; p < tr->n_params; p++) n += state_floats(&tr->params[p]);
    return n * (int64_t)sizeof(float);
}

const autosp_graph_t *autosp_trainer_graph(const autosp_trainer_t *tr) {
    return tr->s.g;
}

const autosp_comm_t *autosp_trainer_comm(const autosp_trainer_t *tr) {
    return tr->s.comm;
}

double autosp_trainer_comm_seconds(const autosp_trainer_t *tr) {
    return autosp_executor_comm_seconds(tr->s.ex) + tr->optimizer_comm_seconds;
}

double autosp_trainer_late_peer_seconds(const autosp_trainer_t *tr) {
    return autosp_executor_late_peer_seconds(tr->s.ex);
}

autosp_status_t autosp_trainer_feed(autosp_trainer_t *tr, const char *name, const void *global,
                                    autosp_error_t *err) {
    return session_feed(&tr->s, name, global, err);
}

autosp_status_t autosp_trainer_gather(autosp_trainer_t *tr, const char *name, void *global,
                                      autosp_error_t *err) {
    return session_gather(&tr->s, name, global, err);
}

/* After the working copies were loaded: the master copies of bf16 parameters from the file's
 * f32 values where it has them (no rounding), else from the working copy. */
static autosp_status_t load_masters(autosp_trainer_t *tr, const char *path, autosp_error_t *err) {
    autosp_safetensors_t *f = NULL;
    for (int p = 0; p < tr->n_params; p++) {
        param_slot_t *s = &tr->params[p];
        if (!s->work) continue;
        if (!f && !(f = autosp_safetensors_open(path, err))) return err->status;
        const autosp_st_tensor_t *w = autosp_safetensors_find(f, s->name);
        if (w && w->dtype == AUTOSP_F32)
            memcpy(s->master, (const float *)w->data + s->lo, sizeof(float) * (size_t)s->own);
        else
            bf16_to_f32_n(s->master, owned_work(s), s->own);
    }
    autosp_safetensors_close(f);
    return AUTOSP_OK;
}

autosp_status_t autosp_trainer_load_weights(autosp_trainer_t *tr, const char *path,
                                            autosp_error_t *err) {
    autosp_error_t local;
    if (!err) err = &local;
    autosp_status_t st = session_load_weights(&tr->s, path, err);
    return st == AUTOSP_OK ? load_masters(tr, path, err) : st;
}

/* ---- the step ---------------------------------------------------------------------------- */

/* ---- ZeRO-1: the optimizer's collectives over the world --------------------------------- */

/* A failed exchange, named. */
static autosp_status_t zero_failed(autosp_status_t st, const char *what, autosp_error_t *err) {
    if (st == AUTOSP_OK || !err) return st;
    char why[AUTOSP_ERROR_MESSAGE_MAX];
    snprintf(why, sizeof why, "%s", err->message);
    return set_error(err, st, "ZeRO-1 %s: %s", what, why);
}

/* Every rank's chunk of parameter s: counts and displacements for the v-collectives. */
static void chunk_layout(autosp_trainer_t *tr, const param_slot_t *s) {
    int ranks = tr->s.comm->size;
    for (int r = 0; r < ranks; r++) {
        tr->displs[r] = (int)chunk_start(s->n, r, ranks);
        tr->counts[r] = (int)(chunk_start(s->n, r + 1, ranks) - tr->displs[r]);
    }
}

/* Each gradient summed over the world into the owner's chunk only (the rest of "<param>.grad"
 * stays this rank's own term): half the traffic of an all-reduce. */
static autosp_status_t reduce_scatter_grad(autosp_trainer_t *tr, param_slot_t *s,
                                           autosp_error_t *err) {
    autosp_status_t st =
        tr->s.comm->ops->reduce_scatter(tr->s.comm, s->grad, tr->chunk, tr->counts, err);
    memcpy(s->grad + s->lo, tr->chunk, sizeof(float) * (size_t)s->own);
    return zero_failed(st, "reduce-scatter of the gradients", err);
}

/* After each rank updated its chunks: every parameter whole again on every rank (a bf16
 * parameter's working copy: half the bytes). */
static autosp_status_t all_gather_param(autosp_trainer_t *tr, param_slot_t *s,
                                        autosp_error_t *err) {
    void *buf = s->work ? (void *)s->work : (void *)s->value;
    size_t esize = s->work ? sizeof(bf16_t) : sizeof(float);
    return zero_failed(
        tr->s.comm->ops->all_gather_blocks(tr->s.comm, buf, esize, tr->counts, tr->displs, err),
        "all-gather of the parameters", err);
}

/* One ZeRO-1 exchange per parameter, over its chunks, timed as the optimizer's. */
static autosp_status_t
exchange_params(autosp_trainer_t *tr,
                autosp_status_t (*exchange)(autosp_trainer_t *, param_slot_t *, autosp_error_t *),
                autosp_error_t *err) {
    double start = now_seconds();
    autosp_status_t st = AUTOSP_OK;
    for (int p = 0; p < tr->n_params && st == AUTOSP_OK; p++) {
        chunk_layout(tr, &tr->params[p]);
        st = exchange(tr, &tr->params[p], err);
    }
    tr->optimizer_comm_seconds += now_seconds() - start;
    return st;
}

autosp_status_t autosp_trainer_param(autosp_trainer_t *tr, const char *name, float *whole,
                                     autosp_error_t *err) {
    autosp_error_t local;
    if (!err) err = &local;
    const param_slot_t *s = NULL;
    for (int p = 0; p < tr->n_params && !s; p++)
        if (strcmp(tr->params[p].name, name) == 0) s = &tr->params[p];
    if (!s)
        return set_error(err, AUTOSP_ERR_INVALID, "param: the graph has no parameter \"%s\"", name);
    if (!tr->sharded || !gathers_weights(tr, s)) {
        memcpy(whole, s->work ? s->master : s->value, sizeof(float) * (size_t)s->n);
        return set_ok(err);
    }
    chunk_layout(tr, s);
    memcpy(whole + s->lo, updated_weights(s), sizeof(float) * (size_t)s->own);
    autosp_status_t st = tr->s.comm->ops->all_gather_blocks(tr->s.comm, whole, sizeof(float),
                                                            tr->counts, tr->displs, err);
    return st == AUTOSP_OK ? set_ok(err) : zero_failed(st, "gather of a parameter", err);
}

autosp_status_t autosp_trainer_compute(autosp_trainer_t *tr, float *loss, autosp_error_t *err) {
    autosp_status_t st = autosp_executor_run(tr->s.ex, err);
    if (st == AUTOSP_OK && tr->sharded && !tr->grad_shards)
        st = exchange_params(tr, reduce_scatter_grad, err);
    if (st == AUTOSP_OK && loss) *loss = *(float *)autosp_executor_data(tr->s.ex, "loss");
    return st;
}

/* The optimizer's passes over every parameter are memory-bound: they run on the library's
 * thread pool, each share a contiguous range of the flat list of parameter elements. */
typedef struct share {
    autosp_trainer_t *tr;
    int64_t begin, end; /* element range over all owned elements, in order */
    float lr, grad_scale;
    double sum_sq;
    void (*work)(struct share *s, param_slot_t *p, int64_t from, int64_t to);
} share_t;

static void run_share(void *ctx, int64_t task, int thread) {
    (void)thread;
    share_t *s = (share_t *)ctx + task;
    int64_t base = 0;
    for (int p = 0; p < s->tr->n_params; p++) {
        param_slot_t *slot = &s->tr->params[p];
        int64_t from = s->begin > base ? s->begin - base : 0;
        int64_t to = s->end - base < slot->own ? s->end - base : slot->own;
        if (from < to) s->work(s, slot, from, to);
        base += slot->own;
    }
}

/* Runs work over every parameter element; returns the sum of the shares' sum_sq. */
static double parallel_params(autosp_trainer_t *tr, share_t proto) {
    int64_t total = 0;
    for (int p = 0; p < tr->n_params; p++) total += tr->params[p].own;
    int n = total < 1 << 16 ? 1 : par_threads(); /* a small model is not worth a thread */
    share_t shares[PAR_MAX_THREADS];
    for (int i = 0; i < n; i++) {
        shares[i] = proto;
        shares[i].tr = tr;
        shares[i].begin = total * i / n;
        shares[i].end = total * (i + 1) / n;
        shares[i].sum_sq = 0;
    }
    par_run(n, n, run_share, shares);
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += shares[i].sum_sq;
    return sum;
}

/* Squares summed in double, 8 lanes: a float's square is exact in double, so the sum barely
 * depends on how the elements are split (over threads, or over ranks under ZeRO-1), and the
 * float norm of a sharded run comes out equal to the unsharded one. */
VECTOR_CLONES static void sum_squares(share_t *s, param_slot_t *p, int64_t from, int64_t to) {
    const float *grad = p->own_grad;
    double lane[8] = {0};
    int64_t i = from;
    for (; i + 8 <= to; i += 8)
        for (int k = 0; k < 8; k++) lane[k] += (double)grad[i + k] * grad[i + k];
    for (; i < to; i++) lane[0] += (double)grad[i] * grad[i];
    for (int k = 0; k < 8; k++) s->sum_sq += lane[k];
}

/* AdamW (Loshchilov & Hutter): decoupled weight decay, bias-corrected moments. */
VECTOR_CLONES static void adamw_share(share_t *s, param_slot_t *p, int64_t from, int64_t to) {
    const autosp_train_config_t *c = &s->tr->cfg;
    float t = (float)(s->tr->step + 1), lr = s->lr, g_scale = s->grad_scale;
    float bc1 = 1.0f - powf(c->beta1, t), bc2 = 1.0f - powf(c->beta2, t);
    float decay = p->decay ? c->weight_decay : 0.0f, b1 = c->beta1, b2 = c->beta2, eps = c->eps;
    float *restrict m = p->m, *restrict v = p->v, *restrict w = updated_weights(p);
    const float *restrict grad = p->own_grad; /* distinct arrays: lets the loop vectorise */
    for (int64_t i = from; i < to; i++) {
        float g = grad[i] * g_scale;
        m[i] = b1 * m[i] + (1 - b1) * g;
        v[i] = b2 * v[i] + (1 - b2) * g * g;
        float update = (m[i] / bc1) / (sqrtf(v[i] / bc2) + eps);
        w[i] -= lr * (update + decay * w[i]);
    }
    if (p->work) bf16_from_f32_n(owned_work(p) + from, w + from, to - from);
}

/* Under ZeRO-1 each rank holds the summed gradient of its chunks only: their squares are
 * summed over the world. */
static autosp_status_t global_grad_norm(autosp_trainer_t *tr, double *norm, autosp_error_t *err) {
    double sum = parallel_params(tr, (share_t){.work = sum_squares});
    autosp_status_t st = AUTOSP_OK;
    if (tr->sharded)
        st = zero_failed(tr->s.comm->ops->sum(tr->s.comm, COMM_WORLD, NULL, &sum, 1, COMM_F64, err),
                         "all-reduce of the gradient norm", err);
    *norm = sqrt(sum);
    return st;
}

static void adamw_update(autosp_trainer_t *tr, float lr, float grad_scale) {
    parallel_params(tr, (share_t){.work = adamw_share, .lr = lr, .grad_scale = grad_scale});
}

static autosp_status_t train_step(autosp_trainer_t *tr, autosp_step_stats_t *stats,
                                  autosp_error_t *err) {
    float loss;
    autosp_status_t st = autosp_trainer_compute(tr, &loss, err);
    if (st != AUTOSP_OK) return st;
    double norm;
    if ((st = global_grad_norm(tr, &norm, err)) != AUTOSP_OK) return st;
    if (!isfinite(loss) || !isfinite(norm))
        return set_error(err, AUTOSP_ERR_INVALID,
                         "step %d: the loss (%g) or the gradient norm (%g) is not finite; "
                         "lower the learning rate",
                         tr->step, loss, norm);
    float clip =
        tr->cfg.grad_clip > 0 && norm > tr->cfg.grad_clip ? tr->cfg.grad_clip / (float)norm : 1.0f;
    float lr = autosp_train_lr(&tr->cfg, tr->step);
    adamw_update(tr, lr, clip);
    if (tr->sharded && !tr->param_shards &&
        (st = exchange_params(tr, all_gather_param, err)) != AUTOSP_OK)
        return st;
    if (stats)
        *stats = (autosp_step_stats_t){
            .step = tr->step, .loss = loss, .grad_norm = (float)norm, .lr = lr, .flops = tr->flops};
    tr->step++;
    return set_ok(err);
}

autosp_status_t autosp_trainer_step(autosp_trainer_t *tr, autosp_step_stats_t *stats,
                                    autosp_error_t *err) {
    if (!tr->profiling) return train_step(tr, stats, err);
    autosp_executor_set_profiling(tr->s.ex, true);
    double start = now_seconds();
    autosp_status_t st = train_step(tr, stats, err);
    tr->profiled_seconds += now_seconds() - start;
    tr->profiled_steps++;
    autosp_executor_set_profiling(tr->s.ex, false);
    return st;
}

void autosp_trainer_set_profiling(autosp_trainer_t *tr, bool on) {
    tr->profiling = on;
}

void autosp_trainer_profile(const autosp_trainer_t *tr, autosp_profile_t *out) {
    autosp_executor_profile(tr->s.ex, out);
    out->steps = tr->profiled_steps;
    out->step_seconds = tr->profiled_seconds;
}

/* ---- checkpoints -------------------------------------------------------------------------- */

/* A parameter's three arrays in a checkpoint, under "<param><suffix>". */
static const char *const STATE_SUFFIX[3] = {"", ".adam_m", ".adam_v"};

/* Every parameter, then its m and v, as whole f32 tensors (the same on every rank; a bf16
 * parameter's is its master copy); under ZeRO m and v, and the weights gathers_weights names,
 * come from `gathered` (each parameter's m, v, then weights, whole). */
static autosp_st_tensor_t *state_tensors(const autosp_trainer_t *tr, float *gathered,
                                         char (*names)[AUTOSP_MAX_NAME + 8], int *n) {
    const autosp_graph_t *j = tr->s.g;
    autosp_st_tensor_t *list = mem_calloc((size_t)(3 * tr->n_params + 1), sizeof *list);
    if (!list) return NULL;
    int p = 0;
    *n = 0;
    for (autosp_tensor_t t = 0; t < j->n_tensors; t++) {
        const tensor_t *x = &j->tensors[t];
        if (x->kind != AUTOSP_KIND_PARAM) continue;
        const param_slot_t *s = &tr->params[p];
        autosp_st_tensor_t base = {.dtype = AUTOSP_F32, .ndim = s->ndim};
        memcpy(base.shape, s->shape, sizeof(int64_t) * (size_t)s->ndim);
        float *data[3] = {s->work ? s->master : s->value, s->m, s->v};
        if (gathered) {
            data[1] = gathered, data[2] = gathered + s->n;
            if (gathers_weights(tr, s)) data[0] = gathered + 2 * s->n;
            gathered += (gathers_weights(tr, s) ? 3 : 2) * s->n;
        }
        for (int k = 0; k < 3; k++) {
            snprintf(names[3 * p + k], sizeof names[0], "%s%s", x->name, STATE_SUFFIX[k]);
            list[*n] = base;
            list[*n].name = names[3 * p + k];
            list[(*n)++].data = data[k];
        }
        p++;
    }
    return list;
}

/* ZeRO: every rank's chunks of m and v (and of the weights gathers_weights names), whole on
 * world rank 0 (*gathered, which the caller frees; NULL on the other ranks). */
static autosp_status_t gather_state(const autosp_trainer_t *tr, int rank, float **gathered,
                                    autosp_error_t *err) {
    autosp_trainer_t *t = (autosp_trainer_t *)tr; /* the counts are scratch */
    int64_t total = 0;
    for (int p = 0; p < tr->n_params; p++)
        total += (gathers_weights(tr, &tr->params[p]) ? 3 : 2) * tr->params[p].n;
    *gathered = rank == 0 ? mem_calloc((size_t)total + 1, sizeof(float)) : NULL;
    int ready = rank != 0 || *gathered; /* rank 0 says whether it can receive */
    autosp_status_t st = tr->s.comm->ops->broadcast(tr->s.comm, &ready, sizeof ready, err);
    if (st != AUTOSP_OK) return zero_failed(st, "checkpoint", err);
    if (!ready)
        return rank == 0 ? nomem(err)
                         : set_error(err, AUTOSP_ERR_NOMEM,
                                     "ZeRO-1: rank 0 is out of memory for the checkpoint");
    float *at = *gathered;
    for (int p = 0; p < tr->n_params && st == AUTOSP_OK; p++) {
        const param_slot_t *s = &tr->params[p];
        chunk_layout(t, s);
        const float *own[3] = {s->m, s->v, updated_weights(s)};
        int arrays = gathers_weights(tr, s) ? 3 : 2;
        for (int k = 0; k < arrays && st == AUTOSP_OK; k++)
            st = zero_failed(tr->s.comm->ops->gather_blocks(tr->s.comm, own[k],
                                                            at ? at + k * s->n : NULL, tr->counts,
                                                            tr->displs, err),
                             "gather of the optimizer state", err);
        if (at) at += arrays * s->n;
    }
    return st;
}

static autosp_status_t write_checkpoint(const autosp_trainer_t *tr, const char *path,
                                        const char *const *meta_keys,
                                        const char *const *meta_values, int n_meta, float *gathered,
                                        autosp_error_t *err) {
    enum { OWN = 2, MAX_META = 16 };
    if (n_meta < 0 || n_meta > MAX_META - OWN)
        return set_error(err, AUTOSP_ERR_INVALID, "checkpoint: %d metadata entries, at most %d",
                         n_meta, MAX_META - OWN);
    char step[32];
    snprintf(step, sizeof step, "%d", tr->step);
    const char *keys[MAX_META] = {"format", "step"},
               *values[MAX_META] = {"autosp-checkpoint", step};
    for (int i = 0; i < n_meta; i++) keys[OWN + i] = meta_keys[i], values[OWN + i] = meta_values[i];
    char(*names)[AUTOSP_MAX_NAME + 8] = mem_calloc((size_t)(3 * tr->n_params + 1), sizeof *names);
    int n = 0;
    autosp_st_tensor_t *list = names ? state_tensors(tr, gathered, names, &n) : NULL;
    autosp_status_t st =
        list ? autosp_safetensors_write(path, list, n, keys, values, OWN + n_meta, err)
             : nomem(err);
    mem_free(list);
    mem_free(names);
    return st;
}

autosp_status_t autosp_trainer_save(const autosp_trainer_t *tr, const char *path,
                                    const char *const *meta_keys, const char *const *meta_values,
                                    int n_meta, autosp_error_t *err) {
    autosp_error_t local;
    if (!err) err = &local;
    int rank = tr->s.comm->rank;
    float *gathered = NULL;
    autosp_status_t st = tr->sharded ? gather_state(tr, rank, &gathered, err) : AUTOSP_OK;
    if (st == AUTOSP_OK && rank == 0)
        st = write_checkpoint(tr, path, meta_keys, meta_values, n_meta, gathered, err);
    mem_free(gathered);
    return session_outcome(&tr->s, st, "checkpoint", path, err);
}

static autosp_status_t save_weights_as(const autosp_trainer_t *tr, const char *path,
                                       autosp_dtype_t dtype, autosp_error_t *err);

autosp_status_t autosp_trainer_save_weights(const autosp_trainer_t *tr, const char *path,
                                            autosp_error_t *err) {
    autosp_error_t local;
    if (!err) err = &local;
    /* under ZeRO-3 the arena holds shards: each parameter gathered, in its own dtype */
    return tr->param_shards ? save_weights_as(tr, path, AUTOSP_DTYPE_COUNT, err)
                            : session_save_weights(&tr->s, path, err);
}

/* Every parameter as `dtype` (world rank 0; AUTOSP_DTYPE_COUNT: each in its own): f32 from the
 * masters, or the f32 values; bf16 from whole working copies, else the f32 weights rounded
 * (into `rounded`, freed here). */
static autosp_status_t write_weights_as(const autosp_trainer_t *tr, const char *path,
                                        autosp_dtype_t dtype, float *gathered,
                                        autosp_error_t *err) {
    char(*names)[AUTOSP_MAX_NAME + 8] = mem_calloc((size_t)(3 * tr->n_params + 1), sizeof *names);
    int n = 0;
    autosp_st_tensor_t *list = names ? state_tensors(tr, gathered, names, &n) : NULL;
    int64_t to_round = 0;
    bool *as_bf16 = mem_calloc((size_t)tr->n_params + 1, sizeof *as_bf16);
    for (int p = 0; as_bf16 && p < tr->n_params; p++) {
        const param_slot_t *s = &tr->params[p];
        as_bf16[p] = dtype == AUTOSP_BF16 || (dtype == AUTOSP_DTYPE_COUNT && s->work);
        if (as_bf16[p] && (!s->work || tr->param_shards)) to_round += s->n;
    }
    bf16_t *rounded = list && as_bf16 ? mem_calloc((size_t)to_round + 1, sizeof *rounded) : NULL;
    autosp_status_t st = rounded ? AUTOSP_OK : nomem(err);
    bf16_t *at = rounded;
    for (int p = 0; p < tr->n_params && st == AUTOSP_OK; p++) {
        const param_slot_t *s = &tr->params[p];
        list[p] = list[3 * p]; /* the parameter, not its m and v */
        if (!as_bf16[p]) continue;
        if (s->work && !tr->param_shards) {
            list[p].data = s->work;
        } else {
            bf16_from_f32_n(at, list[p].data, s->n);
            list[p].data = at;
            at += s->n;
        }
        list[p].dtype = AUTOSP_BF16;
    }
    const char *keys[1] = {"format"}, *values[1] = {"autosp"};
    if (st == AUTOSP_OK)
        st = autosp_safetensors_write(path, list, tr->n_params, keys, values, 1, err);
    mem_free(rounded);
    mem_free(as_bf16);
    mem_free(list);
    mem_free(names);
    return st;
}

autosp_status_t autosp_trainer_save_weights_as(const autosp_trainer_t *tr, const char *path,
                                               autosp_dtype_t dtype, autosp_error_t *err) {
    autosp_error_t local;
    if (!err) err = &local;
    if (dtype != AUTOSP_F32 && dtype != AUTOSP_BF16)
        return set_error(err, AUTOSP_ERR_INVALID, "weights \"%s\" as %s: expected f32 or bf16",
                         path, autosp_dtype_name(dtype));
    return save_weights_as(tr, path, dtype, err);
}

/* The f32 weights are gathered first where the ranks hold parts of them. */
static autosp_status_t save_weights_as(const autosp_trainer_t *tr, const char *path,
                                       autosp_dtype_t dtype, autosp_error_t *err) {
    bool masters = tr->param_shards;
    for (int p = 0; p < tr->n_params; p++) masters |= dtype == AUTOSP_F32 && tr->params[p].work;
    int rank = tr->s.comm->rank;
    float *gathered = NULL;
    autosp_status_t st =
        masters && tr->sharded ? gather_state(tr, rank, &gathered, err) : AUTOSP_OK;
    if (st == AUTOSP_OK && rank == 0) st = write_weights_as(tr, path, dtype, gathered, err);
    mem_free(gathered);
    return session_outcome(&tr->s, st, "weights", path, err);
}

/* Copies elements [from, from + count) of the checkpoint's tensor `name` (n floats) into dst,
 * or says what is wrong with it. */
static autosp_status_t load_tensor(const autosp_safetensors_t *f, const char *path,
                                   const char *name, float *dst, int64_t n, int64_t from,
                                   int64_t count, autosp_error_t *err) {
    const autosp_st_tensor_t *x = autosp_safetensors_find(f, name);
    if (!x)
        return set_error(err, AUTOSP_ERR_INVALID, "checkpoint \"%s\" has no tensor \"%s\"", path,
                         name);
    int64_t numel = 1;
    for (int d = 0; d < x->ndim; d++) numel *= x->shape[d];
    if (x->dtype != AUTOSP_F32 || numel != n)
        return set_error(err, AUTOSP_ERR_INVALID,
                         "checkpoint \"%s\": tensor \"%s\" has %lld %s elements, expected %lld f32",
                         path, name, (long long)numel, autosp_dtype_name(x->dtype), (long long)n);
    memcpy(dst, (const float *)x->data + from, sizeof(float) * (size_t)count);
    return AUTOSP_OK;
}

/* bf16 parameters: each rank's master part rounded into the working copy, which ZeRO-1 and 2
 * then all-gather. */
static autosp_status_t round_working_copies(autosp_trainer_t *tr, autosp_error_t *err) {
    bool mixed = false;
    for (int p = 0; p < tr->n_params; p++) {
        param_slot_t *s = &tr->params[p];
        if (s->work) bf16_from_f32_n(owned_work(s), s->master, s->own);
        mixed |= s->work != NULL;
    }
    bool gather = tr->sharded && !tr->param_shards && mixed;
    return gather ? exchange_params(tr, all_gather_param, err) : AUTOSP_OK;
}

autosp_status_t autosp_trainer_load(autosp_trainer_t *tr, const char *path, autosp_error_t *err) {
    autosp_error_t local;
    if (!err) err = &local;
    autosp_safetensors_t *f = autosp_safetensors_open(path, err);
    if (!f) return err->status;
    const char *format = autosp_safetensors_metadata(f, "format");
    const char *step = autosp_safetensors_metadata(f, "step");
    char *end = NULL;
    long s = step ? strtol(step, &end, 10) : -1;
    autosp_status_t st = AUTOSP_OK;
    if (!format || strcmp(format, "autosp-checkpoint") != 0 || !step || *end || s < 0)
        st = set_error(err, AUTOSP_ERR_INVALID,
                       "\"%s\" is not an autosp checkpoint (metadata \"format\": "
                       "\"autosp-checkpoint\" and a \"step\" expected)",
                       path);
    const autosp_graph_t *j = tr->s.g;
    char name[AUTOSP_MAX_NAME + 8];
    for (autosp_tensor_t t = 0, p = 0; st == AUTOSP_OK && t < j->n_tensors; t++) {
        if (j->tensors[t].kind != AUTOSP_KIND_PARAM) continue;
        param_slot_t *ps = &tr->params[p++];
        /* an f32 value as held, m, v and a master copy as owned */
        float *dst[3] = {ps->work ? ps->master : ps->value, ps->m, ps->v};
        for (int k = 0; k < 3 && st == AUTOSP_OK; k++) {
            snprintf(name, sizeof name, "%s%s", j->tensors[t].name, STATE_SUFFIX[k]);
            bool owned = k || ps->work;
            st = load_tensor(f, path, name, dst[k], ps->n, owned ? ps->lo : ps->held_lo,
                             owned ? ps->own : ps->held, err);
        }
    }
    if (st == AUTOSP_OK) tr->step = (int)s;
    autosp_safetensors_close(f);
    if (st == AUTOSP_OK) st = round_working_copies(tr, err);
    return st == AUTOSP_OK ? set_ok(err) : st;
}

int autosp_trainer_steps_taken(const autosp_trainer_t *tr) {
    return tr->step;
}
