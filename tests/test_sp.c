/* The central test of sequence parallelism: a per-rank program run on sp x dp ranks gives the
 * single-device loss and gradients, and stays with it over 10 AdamW steps.
 *
 * Run under mpirun (-np 2 and -np 4). Every rank also computes the single-device reference
 * itself (in one process, no communication), so each rank compares its own results. A rank
 * never asserts alone: the worst error is reduced over the world first, so all ranks pass or
 * fail together instead of hanging in a collective.
 *
 * Tolerance: relative 1e-5 for the loss (before and after the steps), for every gradient (of
 * its tensor's largest value), and for the parameters after 10 steps measured as the 2-norm
 * of the difference over the 2-norm of their change. The per-rank program computes the same
 * f32 values in a different order (weight gradients summed per rank then over ranks, matmuls
 * on fewer rows), so results differ by rounding: measured 3e-7..6e-7 for gradients, 1e-6..4e-6
 * for the parameters' 2-norm. Element by element the parameters get a looser bound, 1e-2 of
 * the tensor's largest change: AdamW divides each gradient by its own running size, so an
 * element whose gradient is near zero (1e-8) turns the gradient's rounding (1e-9) into a
 * visible part of its update; the worst element measured is 7e-4.
 *
 * Both sides use the default checkpointing (sac); run_policies checks every policy against
 * none bitwise at sp 2 and 4. run_eval checks the forward-only evaluator (loss and the logits
 * gathered whole) against one process. */
#include <math.h>
#include <mpi.h>
#include <string.h>
#include <unistd.h>

#include "autosp/comm_mpi.h"
#include <cblas.h>

#include "test_util.h"

static int world_rank, world_size;
static const float TOLERANCE = 1e-5f, PARAM_MAX_TOLERANCE = 1e-2f;
enum { STEPS = 10 };
/* The ring cases' S (issue 20's 1000 and 1024); the sanitizer build (Debug, instrumented)
 * runs them at S / 8: 125 and 128. */
#ifdef AUTOSP_TEST_SHORT
#define RING_SEQ(S) ((S) / 8)
#else
#define RING_SEQ(S) (S)
#endif

typedef struct sp_case {
    const char *preset;
    int sp, dp, batch, seq;
    bool segments;
    autosp_dtype_t dtype, reduce; /* the model's; the gradient sum's (f32 unless set) */
    int zero;                     /* run_zero's stage against ZeRO-0 (0: 1) */
    int ring;                     /* sp = sp / ring Ulysses ranks x a ring of ring (0: 1) */
} sp_case_t;

/* The whole batch (dp x batch rows of seq tokens): tokens, labels shifted over the whole
 * sequence with a few ignored (unevenly: more in the first half), global positions, and for
 * segment ids three documents of uneven lengths per row. */
typedef struct batch {
    int32_t *tokens, *labels, *positions, *segments;
} batch_t;

static batch_t make_batch(int rows, int seq, int vocab, uint32_t seed) {
    batch_t b;
    size_t n = (size_t)rows * (size_t)seq;
    b.tokens = test_malloc(n * 4), b.labels = test_malloc(n * 4);
    b.positions = test_malloc(n * 4), b.segments = test_malloc(n * 4);
    uint32_t s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        b.tokens[i] = (int32_t)((s >> 8) % (uint32_t)vocab);
    }
    for (int r = 0; r < rows; r++)
        for (int t = 0; t < seq; t++) {
            size_t i = (size_t)r * (size_t)seq + (size_t)t;
            int doc = t < seq / 3 + r ? 0 : t < seq - seq / 4 ? 1 : 2;
            b.segments[i] = doc;
            b.positions[i] = t;
            bool last = t == seq - 1;
            bool ignored = (t < seq / 2 && t % 5 == 1) || (t == seq / 2 + 3);
            b.labels[i] = last || ignored ? -100 : b.tokens[i + 1];
        }
    return b;
}

static void free_batch(batch_t *b) {
    test_free(b->tokens), test_free(b->labels), test_free(b->positions), test_free(b->segments);
}

static autosp_graph_t *model(const sp_case_t *c, int batch) {
    autosp_model_config_t cfg;
    assert_true(autosp_model_preset(c->preset, &cfg));
    cfg.segment_ids = c->segments;
    cfg.dtype = c->dtype;
    autosp_error_t err;
    autosp_graph_t *g = autosp_model_build(&cfg, c->preset, &err);
    assert_non_null(g);
    assert_int_equal(autosp_symbol_bind(g, "B", batch, &err), AUTOSP_OK);
    assert_int_equal(autosp_symbol_bind(g, "S", c->seq, &err), AUTOSP_OK);
    return g;
}

static void feed(autosp_trainer_t *tr, const batch_t *b, bool segments) {
    autosp_error_t err;
    const char *names[4] = {"tokens", "labels", "positions", "segment_ids"};
    const int32_t *data[4] = {b->tokens, b->labels, b->positions, b->segments};
    for (int k = 0; k < (segments ? 4 : 3); k++)
        assert_int_equal(autosp_trainer_feed(tr, names[k], data[k], &err), AUTOSP_OK);
}

static float max_abs_diff(const float *a, const float *b, int64_t n) {
    float m = 0;
    for (int64_t i = 0; i < n; i++) m = fabsf(a[i] - b[i]) > m ? fabsf(a[i] - b[i]) : m;
    return m;
}

/* ||a - b|| and ||b - base|| (2-norms), for the parameters after the steps */
static void l2_terms(const float *a, const float *b, const float *base, int64_t n, double *diff,
                     double *change) {
    for (int64_t i = 0; i < n; i++) {
        *diff += (double)(a[i] - b[i]) * (a[i] - b[i]);
        *change += (double)(b[i] - base[i]) * (b[i] - base[i]);
    }
}

static float max_abs(const float *a, int64_t n) {
    float m = 0;
    for (int64_t i = 0; i < n; i++) m = fabsf(a[i]) > m ? fabsf(a[i]) : m;
    return m;
}

/* The worst, over every parameter of the forward graph (or its gradient, with suffix), of
 * max |sp - ref| / scale, where a tensor's scale is its own largest value, or, when `base`
 * is given, its largest change from base (the parameters before the steps). Scales below
 * 1e-3 of the largest scale of all tensors are raised to it.
 *
 * A parameter whose exact gradient is zero has a computed gradient of pure rounding noise:
 * GPT-2's key bias (softmax ignores a shift of all of a query's scores by q.b). AdamW divides
 * by the gradient's own size, so noise moves such a parameter by lr per step in a random
 * direction, differently in two runs; it cannot change the loss. Such parameters (gradient
 * below 1e-5 of the largest, at the first step) are marked in `noise` and left out of the
 * parameter comparison; the loss after the steps is still compared. */
static float compare(autosp_trainer_t *sp, autosp_trainer_t *ref, const autosp_graph_t *fwd,
                     const char *suffix, float *const *base, bool *noise, char *worst, size_t n,
                     float *l2_out) {
    float scale[256], diff[256], top = 0, max = 0;
    double l2[2] = {0, 0}, norm2 = 0;
    int count = 0;
    for (autosp_tensor_t t = 0; t < autosp_graph_num_tensors(fwd); t++) {
        if (autosp_tensor_kind(fwd, t) != AUTOSP_KIND_PARAM) continue;
        char name[AUTOSP_MAX_NAME + 8];
        snprintf(name, sizeof name, "%s%s", autosp_tensor_name(fwd, t), suffix);
        const float *r = autosp_trainer_data(ref, name), *a = autosp_trainer_data(sp, name);
        int64_t numel = autosp_tensor_numel(fwd, t);
        assert_true(count < 256);
        diff[count] = max_abs_diff(a, r, numel);
        if (base && !noise[count]) l2_terms(a, r, base[count], numel, &l2[0], &l2[1]);
        for (int64_t i = 0; base && !noise[count] && i < numel; i++) norm2 += (double)r[i] * r[i];
        scale[count] = base ? max_abs_diff(r, base[count], numel) : max_abs(r, numel);
        top = scale[count] > top ? scale[count] : top;
        count++;
    }
    for (int i = 0, k = 0; k < autosp_graph_num_tensors(fwd); k++) {
        if (autosp_tensor_kind(fwd, k) != AUTOSP_KIND_PARAM) continue;
        if (!base) noise[i] = scale[i] < 1e-5f * top;
        if (base && noise[i]) {
            i++;
            continue;
        }
        float e = diff[i] / (scale[i] > 1e-3f * top ? scale[i] : 1e-3f * top + 1e-30f);
        if (e > max) snprintf(worst, n, "%s%s", autosp_tensor_name(fwd, k), suffix);
        max = e > max ? e : max;
        i++;
    }
    if (base) l2_out[0] = (float)sqrt(l2[0] / l2[1]), l2_out[1] = (float)sqrt(l2[0] / norm2);
    return max;
}

/* Copies of every parameter of the forward graph, in order, whole (under ZeRO-3 gathered:
 * collective). */
static float **snapshot(autosp_trainer_t *tr, const autosp_graph_t *fwd) {
    float **copies = test_calloc(256, sizeof *copies);
    int count = 0;
    for (autosp_tensor_t t = 0; t < autosp_graph_num_tensors(fwd); t++) {
        if (autosp_tensor_kind(fwd, t) != AUTOSP_KIND_PARAM) continue;
        copies[count] = test_malloc(sizeof(float) * (size_t)autosp_tensor_numel(fwd, t));
        autosp_error_t err;
        if (autosp_trainer_param(tr, autosp_tensor_name(fwd, t), copies[count++], &err))
            fail_msg("%s", err.message);
    }
    return copies;
}

static void free_snapshot(float **copies) {
    for (int i = 0; copies[i]; i++) test_free(copies[i]);
    test_free(copies);
}

/* Worst over all ranks; every rank gets it. */
static float world_max(float v) {
    float out;
    MPI_Allreduce(&v, &out, 1, MPI_FLOAT, MPI_MAX, MPI_COMM_WORLD);
    return out;
}

static void run_bf16(const sp_case_t *c);

static void run_case(const sp_case_t *c) {
    if (c->sp * c->dp != world_size) return;
    if (c->dtype == AUTOSP_BF16) {
        run_bf16(c);
        return;
    }
    autosp_error_t err;
    autosp_comm_t *comm =
        autosp_comm_new_mpi_ring(MPI_COMM_WORLD, c->sp, c->ring ? c->ring : 1, &err);
    if (!comm) fail_msg("%s", err.message);
    autosp_graph_t *whole = model(c, c->batch * c->dp), *per_rank = model(c, c->batch);
    autosp_train_config_t cfg = autosp_train_config_default();
    cfg.lr = 1e-3f;
    cfg.total_steps = STEPS;
    autosp_trainer_t *ref = autosp_trainer_new(whole, &cfg, &err);
    assert_non_null(ref);
    autosp_trainer_t *sp = autosp_trainer_new_comm(per_rank, &cfg, comm, &err);
    if (!sp) fail_msg("%s", err.message);
    autosp_trainer_init_params(ref, 1234);
    autosp_trainer_init_params(sp, 1234);
    batch_t b = make_batch(c->batch * c->dp, c->seq, 256, 77);
    feed(ref, &b, c->segments);
    feed(sp, &b, c->segments);
    float loss_ref, loss_sp;
    assert_int_equal(autosp_trainer_compute(ref, &loss_ref, &err), AUTOSP_OK);
    assert_int_equal(autosp_trainer_compute(sp, &loss_sp, &err), AUTOSP_OK);
    char worst_grad[AUTOSP_MAX_NAME + 8] = "", worst_param[AUTOSP_MAX_NAME + 8] = "";
    bool noise[256] = {false};
    float loss_err = world_max(fabsf(loss_sp - loss_ref) / fabsf(loss_ref));
    float grad_err = world_max(
        compare(sp, ref, whole, ".grad", NULL, noise, worst_grad, sizeof worst_grad, NULL));
    float **before = snapshot(ref, whole);
    for (int s = 0; s < STEPS; s++) {
        autosp_step_stats_t st;
        assert_int_equal(autosp_trainer_step(ref, &st, &err), AUTOSP_OK);
        assert_int_equal(autosp_trainer_step(sp, &st, &err), AUTOSP_OK);
    }
    float param_l2[2]; /* relative to the steps' change, and to the parameters */
    float param_err = world_max(
        compare(sp, ref, whole, "", before, noise, worst_param, sizeof worst_param, param_l2));
    param_l2[0] = world_max(param_l2[0]), param_l2[1] = world_max(param_l2[1]);
    assert_int_equal(autosp_trainer_compute(ref, &loss_ref, &err), AUTOSP_OK);
    assert_int_equal(autosp_trainer_compute(sp, &loss_sp, &err), AUTOSP_OK);
    float final_err = world_max(fabsf(loss_sp - loss_ref) / fabsf(loss_ref));
    if (world_rank == 0)
        printf("%-14s sp=%d dp=%d ring=%d S=%d%-9s loss rel %.1e, grads rel %.1e (%s); after %d "
               "AdamW steps: params rel %.1e of their change (%s; 2-norm %.1e of the change, "
               "%.1e of the params), loss rel %.1e\n",
               c->preset, c->sp, c->dp, c->ring ? c->ring : 1, c->seq,
               c->segments ? " segments" : "", loss_err, grad_err, worst_grad, STEPS, param_err,
               worst_param, param_l2[0], param_l2[1], final_err);
    assert_true(loss_err <= TOLERANCE);
    assert_true(grad_err <= TOLERANCE);
    /* At S = 1000 and more (the ring cases), the sums are longer and AdamW turns their rounding
     * into up to 2e-5 of the steps' change (measured); issue 20 bounds the parameters themselves.
     */
    assert_true(param_l2[c->seq >= RING_SEQ(1000)] <= TOLERANCE);
    assert_true(param_err <= PARAM_MAX_TOLERANCE);
    assert_true(final_err <= TOLERANCE);
    /* the waits for a late peer are a part of the waits, and only rings measure them */
    const double late = autosp_trainer_late_peer_seconds(sp);
    assert_true(late >= 0 && late <= autosp_trainer_comm_seconds(sp));
    if ((c->ring ? c->ring : 1) == 1) assert_true(late == 0);
    free_snapshot(before);
    free_batch(&b);
    autosp_trainer_free(sp);
    autosp_trainer_free(ref);
    autosp_graph_free(whole);
    autosp_graph_free(per_rank);
    autosp_comm_free(comm);
}

/* bf16 mixed precision at sp x dp against bf16 in one process (issue 18's bounds): the loss
 * within 1e-3 relative at step 0 and every f32 gradient within 2e-2 of its tensor's largest
 * value. The two sides round different partial results to bf16 (each rank's matmuls and
 * attention see fewer rows; with c->reduce bf16 the gradient sum itself is rounded), so they
 * agree to bf16's precision, not f32's. After the AdamW steps the loss is compared again. */
static void run_bf16(const sp_case_t *c) {
    autosp_error_t err;
    autosp_comm_t *comm = autosp_comm_new_mpi(MPI_COMM_WORLD, c->sp, &err);
    assert_non_null(comm);
    autosp_graph_t *whole = model(c, c->batch * c->dp), *per_rank = model(c, c->batch);
    autosp_train_config_t cfg = autosp_train_config_default();
    cfg.lr = 1e-3f;
    cfg.total_steps = STEPS;
    autosp_trainer_t *ref = autosp_trainer_new(whole, &cfg, &err);
    if (!ref) fail_msg("%s", err.message);
    cfg.grad_reduce_dtype = c->reduce;
    autosp_trainer_t *sp = autosp_trainer_new_comm(per_rank, &cfg, comm, &err);
    if (!sp) fail_msg("%s", err.message);
    autosp_trainer_init_params(ref, 1234);
    autosp_trainer_init_params(sp, 1234);
    batch_t b = make_batch(c->batch * c->dp, c->seq, 256, 77);
    feed(ref, &b, c->segments);
    feed(sp, &b, c->segments);
    float loss_ref, loss_sp;
    assert_int_equal(autosp_trainer_compute(ref, &loss_ref, &err), AUTOSP_OK);
    assert_int_equal(autosp_trainer_compute(sp, &loss_sp, &err), AUTOSP_OK);
    char worst[AUTOSP_MAX_NAME + 8] = "";
    bool noise[256] = {false};
    float loss_err = world_max(fabsf(loss_sp - loss_ref) / fabsf(loss_ref));
    float grad_err =
        world_max(compare(sp, ref, whole, ".grad", NULL, noise, worst, sizeof worst, NULL));
    for (int s = 0; s < STEPS; s++) {
        autosp_step_stats_t st;
        assert_int_equal(autosp_trainer_step(ref, &st, &err), AUTOSP_OK);
        assert_int_equal(autosp_trainer_step(sp, &st, &err), AUTOSP_OK);
    }
    assert_int_equal(autosp_trainer_compute(ref, &loss_ref, &err), AUTOSP_OK);
    assert_int_equal(autosp_trainer_compute(sp, &loss_sp, &err), AUTOSP_OK);
    float final_err = world_max(fabsf(loss_sp - loss_ref) / fabsf(loss_ref));
    if (world_rank == 0)
        printf("%-14s sp=%d dp=%d bf16%s%-9s loss rel %.1e, grads rel %.1e (%s); after %d AdamW "
               "steps: loss rel %.1e\n",
               c->preset, c->sp, c->dp, c->reduce == AUTOSP_BF16 ? " (bf16 sums)" : "",
               c->segments ? " segments" : "", loss_err, grad_err, worst, STEPS, final_err);
    assert_true(loss_err <= 1e-3f);
    assert_true(grad_err <= 2e-2f);
    assert_true(final_err <= 1e-2f);
    free_batch(&b);
    autosp_trainer_free(sp);
    autosp_trainer_free(ref);
    autosp_graph_free(whole);
    autosp_graph_free(per_rank);
    autosp_comm_free(comm);
}

/* Checkpointing at sp > 1: every policy's per-rank step gives bitwise the loss and gradients
 * of `none` on every rank (the copies rerun the same kernels and collectives on the same
 * values), also after 3 AdamW steps. The norms stay apart under full: fused, x's gradient sums
 * three norm backwards instead of one (run_tiled checks that within its tolerance). */
static void run_policies(const sp_case_t *c) {
    if (c->sp * c->dp != world_size) return;
    static const autosp_ac_policy_t policies[] = {AUTOSP_AC_NONE, AUTOSP_AC_MINCUT_CONSERVATIVE,
                                                  AUTOSP_AC_SAC, AUTOSP_AC_FULL};
    autosp_error_t err;
    autosp_comm_t *comm = autosp_comm_new_mpi(MPI_COMM_WORLD, c->sp, &err);
    assert_non_null(comm);
    autosp_graph_t *per_rank = model(c, c->batch);
    batch_t b = make_batch(c->batch * c->dp, c->seq, 256, 91);
    autosp_trainer_t *tr[4];
    float loss[4][2];
    for (int p = 0; p < 4; p++) {
        autosp_train_config_t cfg = autosp_train_config_default();
        cfg.ac.policy = policies[p];
        cfg.norm_tile = AUTOSP_NORM_UNTILED;
        tr[p] = autosp_trainer_new_comm(per_rank, &cfg, comm, &err);
        if (!tr[p]) fail_msg("%s", err.message);
        autosp_trainer_init_params(tr[p], 99);
        feed(tr[p], &b, c->segments);
        assert_int_equal(autosp_trainer_compute(tr[p], &loss[p][0], &err), AUTOSP_OK);
    }
    int mismatches = 0, recomputed = 0;
    for (int p = 1; p < 4; p++) {
        recomputed +=
            autosp_graph_checkpoint_report(autosp_trainer_graph(tr[p]))->recomputed_nodes > 0;
        mismatches += memcmp(&loss[p][0], &loss[0][0], sizeof(float)) != 0;
        const autosp_graph_t *j = autosp_trainer_graph(tr[0]);
        for (autosp_tensor_t t = 0; t < autosp_graph_num_tensors(j); t++) {
            if (autosp_tensor_kind(j, t) != AUTOSP_KIND_PARAM) continue;
            char name[AUTOSP_MAX_NAME + 8];
            snprintf(name, sizeof name, "%s.grad", autosp_tensor_name(j, t));
            mismatches += memcmp(autosp_trainer_data(tr[p], name), autosp_trainer_data(tr[0], name),
                                 sizeof(float) * (size_t)autosp_tensor_numel(j, t)) != 0;
        }
    }
    for (int p = 0; p < 4; p++) {
        for (int s = 0; s < 3; s++)
            assert_int_equal(autosp_trainer_step(tr[p], NULL, &err), AUTOSP_OK);
        assert_int_equal(autosp_trainer_compute(tr[p], &loss[p][1], &err), AUTOSP_OK);
        mismatches += memcmp(&loss[p][1], &loss[0][1], sizeof(float)) != 0;
    }
    mismatches = (int)world_max((float)mismatches);
    if (world_rank == 0)
        printf("%-14s sp=%d: none, mincut-conservative, sac, full: %d tensors differ bitwise "
               "(loss %.7f, after 3 steps %.7f)\n",
               c->preset, c->sp, mismatches, loss[0][0], loss[0][1]);
    assert_int_equal(recomputed, 3);
    assert_int_equal(mismatches, 0);
    for (int p = 0; p < 4; p++) autosp_trainer_free(tr[p]);
    free_batch(&b);
    autosp_graph_free(per_rank);
    autosp_comm_free(comm);
}

/* How far b's parameters are from a's, relative to how far a's moved from `before`
 * (2-norms over the parameters not marked as noise, see compare), and how many parameter
 * tensors differ at all; *to_params (if not NULL): the same distance relative to a's
 * parameters themselves. */
static double param_distance(autosp_trainer_t *a, autosp_trainer_t *b, const autosp_graph_t *fwd,
                             float *const *before, const bool *noise, int *differ,
                             double *to_params) {
    double l2[2] = {0, 0}, norm2 = 0;
    float **x = snapshot(a, fwd), **y = snapshot(b, fwd);
    for (int count = 0, t = 0; t < autosp_graph_num_tensors(fwd); t++) {
        if (autosp_tensor_kind(fwd, t) != AUTOSP_KIND_PARAM) continue;
        int64_t n = autosp_tensor_numel(fwd, t);
        if (!noise[count]) {
            l2_terms(y[count], x[count], before[count], n, &l2[0], &l2[1]);
            for (int64_t i = 0; i < n; i++) norm2 += (double)x[count][i] * x[count][i];
        }
        *differ += memcmp(x[count], y[count], sizeof(float) * (size_t)n) != 0;
        count++;
    }
    if (to_params) *to_params = sqrt(l2[0] / norm2);
    free_snapshot(x);
    free_snapshot(y);
    return sqrt(l2[0] / l2[1]);
}

/* The summed gradient this rank's optimizer sees for its part [n r / W, n (r + 1) / W) of each
 * parameter under stage (ZeRO-1: that part of "<param>.grad"; 2: "<param>.grad_shard"; 3:
 * "<param>.grad"), against the same part of ZeRO-0's whole gradient: the worst max |diff|
 * over a tensor's largest value (raised to 1e-3 of the largest of all), on every rank. */
static float shard_grad_error(autosp_trainer_t *zero0, autosp_trainer_t *sharded, int stage,
                              const autosp_graph_t *fwd) {
    float top = 0, worst = 0;
    for (int pass = 0; pass < 2; pass++)
        for (autosp_tensor_t t = 0; t < autosp_graph_num_tensors(fwd); t++) {
            if (autosp_tensor_kind(fwd, t) != AUTOSP_KIND_PARAM) continue;
            char name[AUTOSP_MAX_NAME + 16];
            snprintf(name, sizeof name, "%s.grad", autosp_tensor_name(fwd, t));
            int64_t n = autosp_tensor_numel(fwd, t), lo = n * world_rank / world_size,
                    own = n * (world_rank + 1) / world_size - lo;
            const float *whole = autosp_trainer_data(zero0, name);
            float scale = max_abs(whole, n);
            if (pass == 0) {
                top = scale > top ? scale : top;
                continue;
            }
            if (stage == 2) strcat(name, "_shard");
            const float *part =
                (const float *)autosp_trainer_data(sharded, name) + (stage == 1 ? lo : 0);
            float e = max_abs_diff(part, whole + lo, own) / fmaxf(scale, 1e-3f * top);
            worst = e > worst ? e : worst;
        }
    return world_max(worst);
}

static autosp_trainer_t *tiled_trainer(const autosp_graph_t *per_rank, autosp_comm_t *comm,
                                       int stage, int64_t tile) {
    autosp_error_t err;
    autosp_train_config_t cfg = autosp_train_config_default();
    cfg.lr = 1e-2f, cfg.grad_clip = 0.5f, cfg.zero_stage = stage; /* clipping at every step */
    cfg.mlp_tile = tile, cfg.norm_tile = tile;                    /* AUTOSP_*_UNTILED are both -1 */
    autosp_trainer_t *tr = autosp_trainer_new_comm(per_rank, &cfg, comm, &err);
    if (!tr) fail_msg("%s", err.message);
    autosp_trainer_init_params(tr, 7);
    return tr;
}

static autosp_trainer_t *zero_trainer(const autosp_graph_t *per_rank, autosp_comm_t *comm,
                                      int stage) {
    return tiled_trainer(per_rank, comm, stage, AUTOSP_MLP_UNTILED);
}

/* ZeRO-1 against ZeRO-0 on the same ranks: each rank keeps 1/world of AdamW's state, and the
 * parameters after STEPS clipped steps are the same. With 2 ranks the reduce-scatter adds the
 * same two terms as the all-reduce, so bitwise; with 4 Open MPI adds them in another order,
 * so within run_case's 2-norm tolerance (measured 1e-6), rounding-noise parameters aside. Then a
 * checkpoint written under ZeRO-1 (state gathered to rank 0) is resumed by a ZeRO-0 trainer: the
 * next step agrees the same way. */
static void run_zero(const sp_case_t *c) {
    if (c->sp * c->dp != world_size) return;
    autosp_error_t err;
    autosp_comm_t *comm = autosp_comm_new_mpi(MPI_COMM_WORLD, c->sp, &err);
    assert_non_null(comm);
    autosp_graph_t *per_rank = model(c, c->batch);
    batch_t b = make_batch(c->batch * c->dp, c->seq, 256, 5);
    const int stage = c->zero ? c->zero : 1;
    autosp_trainer_t *tr[2] = {zero_trainer(per_rank, comm, 0),
                               zero_trainer(per_rank, comm, stage)};
    float **before = snapshot(tr[0], per_rank);
    bool noise[256];
    char worst[AUTOSP_MAX_NAME + 8];
    float loss[2];
    for (int z = 0; z < 2; z++) {
        feed(tr[z], &b, c->segments);
        assert_int_equal(autosp_trainer_compute(tr[z], &loss[z], &err), AUTOSP_OK);
    }
    compare(tr[0], tr[0], per_rank, ".grad", NULL, noise, worst, sizeof worst, NULL);
    float loss_error = fabsf(loss[1] - loss[0]) / fabsf(loss[0]);
    float grad_error = shard_grad_error(tr[0], tr[1], stage, per_rank);
    for (int s = 0; s < STEPS; s++)
        for (int z = 0; z < 2; z++) {
            feed(tr[z], &b, c->segments);
            autosp_step_stats_t st;
            assert_int_equal(autosp_trainer_step(tr[z], &st, &err), AUTOSP_OK);
            assert_true(st.grad_norm > 0.5f);
        }
    long long state[2] = {autosp_trainer_state_bytes(tr[0]), autosp_trainer_state_bytes(tr[1])};
    MPI_Allreduce(MPI_IN_PLACE, &state[1], 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
    int differ = 0;
    float distance =
        world_max((float)param_distance(tr[0], tr[1], per_rank, before, noise, &differ, NULL));

    char path[64];
    int id = (int)getpid();
    MPI_Bcast(&id, 1, MPI_INT, 0, MPI_COMM_WORLD);
    snprintf(path, sizeof path, "/tmp/autosp-test-zero-%d.safetensors", id);
    assert_int_equal(autosp_trainer_save(tr[1], path, NULL, NULL, 0, &err), AUTOSP_OK);
    autosp_trainer_t *resumed = zero_trainer(per_rank, comm, 0);
    assert_int_equal(autosp_trainer_load(resumed, path, &err), AUTOSP_OK);
    MPI_Barrier(MPI_COMM_WORLD);
    if (world_rank == 0) remove(path);
    float **saved = snapshot(tr[1], per_rank);
    for (autosp_trainer_t *t = tr[1];; t = resumed) {
        feed(t, &b, c->segments);
        assert_int_equal(autosp_trainer_step(t, NULL, &err), AUTOSP_OK);
        if (t == resumed) break;
    }
    int differ_resumed = 0;
    float resumed_distance = world_max(
        (float)param_distance(tr[1], resumed, per_rank, saved, noise, &differ_resumed, NULL));
    differ = (int)world_max((float)(differ + differ_resumed));
    int64_t arena[2] = {autosp_trainer_arena_bytes(tr[0]), autosp_trainer_arena_bytes(tr[1])};
    if (world_rank == 0)
        printf("%-14s sp=%d dp=%d: ZeRO-%d loss %.1e, gradients %.1e from ZeRO-0; state %lld B "
               "over %d ranks (ZeRO-0: %lld B each), arena %lld B (ZeRO-0: %lld B); parameters "
               "after %d steps %.2e, after a resume %.2e; %d tensors differ\n",
               c->preset, c->sp, c->dp, stage, loss_error, grad_error, state[1], world_size,
               state[0], (long long)arena[1], (long long)arena[0], STEPS, distance,
               resumed_distance, differ);
    assert_true(loss_error <= 1e-6f && grad_error <= 1e-6f);
    assert_true(state[1] == state[0]);                /* the world holds one copy of the state */
    if (stage >= 2) assert_true(arena[1] < arena[0]); /* a shard of each gradient */
    if (world_size == 2) assert_int_equal(differ, 0);
    assert_true(distance <= TOLERANCE && resumed_distance <= TOLERANCE);
    for (int z = 0; z < 2; z++) autosp_trainer_free(tr[z]);
    autosp_trainer_free(resumed);
    free_snapshot(before);
    free_snapshot(saved);
    free_batch(&b);
    autosp_graph_free(per_rank);
    autosp_comm_free(comm);
}

/* The tiled MLP and norms (tiles of 5 rows: uneven, and smaller than a rank's rows) against the
 * untiled ZeRO-0 run on the same ranks, under c->zero (0, or 3 for both together): the loss
 * and every gradient within 1e-6, the parameters after STEPS steps within TOLERANCE of their
 * norm. Not of the steps' change, as run_zero asks: at lr 1e-2 ten AdamW steps amplify the
 * tiles' rounding (OpenBLAS picks another kernel for a 5-row product) to 1.1e-5 of it for
 * gpt2-tiny at sp 2, 1.0e-5 with the MLP alone tiled; the test prints both. */
static void run_tiled(const sp_case_t *c) {
    if (c->sp * c->dp != world_size) return;
    autosp_error_t err;
    autosp_comm_t *comm = autosp_comm_new_mpi(MPI_COMM_WORLD, c->sp, &err);
    assert_non_null(comm);
    autosp_graph_t *per_rank = model(c, c->batch);
    batch_t b = make_batch(c->batch * c->dp, c->seq, 256, 17);
    autosp_trainer_t *tr[2] = {tiled_trainer(per_rank, comm, 0, AUTOSP_MLP_UNTILED),
                               tiled_trainer(per_rank, comm, c->zero, 5)};
    int mlps = 0, norms = 0, normed_mlps = 0;
    for (int i = 0; i < autosp_graph_num_nodes(autosp_trainer_graph(tr[1])); i++) {
        autosp_op_t op = autosp_node_op(autosp_trainer_graph(tr[1]), i);
        mlps += op == AUTOSP_OP_MLP || op == AUTOSP_OP_GELU_MLP;
        const char *name = autosp_node_name(autosp_trainer_graph(tr[1]), i);
        bool copy = strstr(name, ".recompute") != NULL; /* the checkpoint pass's */
        norms += !copy && (op == AUTOSP_OP_RMSNORM_LINEAR || op == AUTOSP_OP_LAYERNORM_LINEAR);
        normed_mlps +=
            op == AUTOSP_OP_MLP && autosp_node_num_inputs(autosp_trainer_graph(tr[1]), i) == 5;
    }
    float **before = snapshot(tr[0], per_rank), loss[2];
    bool noise[256];
    char worst[AUTOSP_MAX_NAME + 8];
    for (int z = 0; z < 2; z++) {
        feed(tr[z], &b, c->segments);
        assert_int_equal(autosp_trainer_compute(tr[z], &loss[z], &err), AUTOSP_OK);
    }
    compare(tr[0], tr[0], per_rank, ".grad", NULL, noise, worst, sizeof worst, NULL);
    float loss_error = world_max(fabsf(loss[1] - loss[0]) / fabsf(loss[0]));
    float grad_error = c->zero ? shard_grad_error(tr[0], tr[1], c->zero, per_rank)
                               : world_max(compare(tr[1], tr[0], per_rank, ".grad", NULL, noise,
                                                   worst, sizeof worst, NULL));
    for (int s = 0; s < STEPS; s++)
        for (int z = 0; z < 2; z++) {
            feed(tr[z], &b, c->segments);
            assert_int_equal(autosp_trainer_step(tr[z], NULL, &err), AUTOSP_OK);
        }
    int differ = 0;
    double to_params;
    float to_update = world_max(
        (float)param_distance(tr[0], tr[1], per_rank, before, noise, &differ, &to_params));
    float distance = world_max((float)to_params);
    if (world_rank == 0)
        printf("%-14s sp=%d dp=%d: tiled MLP and norms (%d mlp, %d with a norm, %d norm_linear, "
               "ZeRO-%d) "
               "loss %.1e, gradients %.1e from untiled ZeRO-0; parameters after %d steps %.2e "
               "(%.2e of the steps' change)\n",
               c->preset, c->sp, c->dp, mlps, normed_mlps, norms, c->zero, loss_error, grad_error,
               STEPS, distance, to_update);
    assert_int_equal(mlps, 2);
    assert_int_equal(norms, 6); /* each layer's attention norm into q, k and v */
    /* and Llama's MLP norm into its mlp (GPT-2's layernorm stays apart) */
    assert_int_equal(normed_mlps, strncmp(c->preset, "llama", 5) ? 0 : 2);
    assert_true(loss_error <= 1e-6f && grad_error <= 1e-6f && distance <= TOLERANCE);
    for (int z = 0; z < 2; z++) autosp_trainer_free(tr[z]);
    free_snapshot(before);
    free_batch(&b);
    autosp_graph_free(per_rank);
    autosp_comm_free(comm);
}

/* The forward-only evaluator on sp x dp ranks: the single-device loss, and the logits
 * gathered whole equal the single-device logits. */
static void feed_eval(autosp_evaluator_t *ev, const batch_t *b, bool segments) {
    const char *names[4] = {"tokens", "labels", "positions", "segment_ids"};
    const int32_t *data[4] = {b->tokens, b->labels, b->positions, b->segments};
    for (int k = 0; k < (segments ? 4 : 3); k++)
        assert_int_equal(autosp_evaluator_feed(ev, names[k], data[k], NULL), AUTOSP_OK);
}

static void run_eval(const sp_case_t *c) {
    if (c->sp * c->dp != world_size) return;
    autosp_error_t err;
    autosp_comm_t *comm = autosp_comm_new_mpi(MPI_COMM_WORLD, c->sp, &err);
    assert_non_null(comm);
    autosp_graph_t *whole = model(c, c->batch * c->dp), *per_rank = model(c, c->batch);
    autosp_trainer_t *weights = autosp_trainer_new(whole, NULL, &err);
    assert_non_null(weights);
    autosp_trainer_init_params(weights, 1234);
    const char *keep[] = {"logits"};
    autosp_evaluator_t *ref = autosp_evaluator_new(whole, keep, 1, NULL, &err);
    autosp_evaluator_t *ev = autosp_evaluator_new(per_rank, keep, 1, comm, &err);
    if (!ref || !ev) fail_msg("%s", err.message);
    assert_int_equal(autosp_evaluator_copy_weights(ref, weights, NULL), AUTOSP_OK);
    assert_int_equal(autosp_evaluator_copy_weights(ev, weights, NULL), AUTOSP_OK);
    batch_t b = make_batch(c->batch * c->dp, c->seq, 256, 17);
    feed_eval(ref, &b, c->segments);
    feed_eval(ev, &b, c->segments);
    float want, loss;
    assert_int_equal(autosp_evaluator_run(ref, &want, NULL), AUTOSP_OK);
    assert_int_equal(autosp_evaluator_run(ev, &loss, &err), AUTOSP_OK);
    const autosp_graph_t *g = autosp_evaluator_graph(ref);
    autosp_tensor_t t = autosp_tensor_find(g, "logits");
    int64_t n = autosp_tensor_numel(g, t);
    float *all = test_malloc(sizeof(float) * (size_t)n);
    assert_int_equal(autosp_evaluator_gather(ev, "logits", all, &err), AUTOSP_OK);
    const float *expected = autosp_evaluator_data(ref, "logits");
    float loss_err = world_max(fabsf(loss - want) / fabsf(want));
    float logits_err = world_max(max_abs_diff(all, expected, n) / max_abs(expected, n));
    if (world_rank == 0)
        printf("%-14s sp=%d dp=%d: eval loss %.6f (one process %.6f), rel. error %.1e; "
               "gathered logits %.1e\n",
               c->preset, c->sp, c->dp, loss, want, loss_err, logits_err);
    assert_true(loss_err <= TOLERANCE && logits_err <= TOLERANCE);
    test_free(all);
    free_batch(&b);
    autosp_evaluator_free(ev);
    autosp_evaluator_free(ref);
    autosp_trainer_free(weights);
    autosp_graph_free(whole);
    autosp_graph_free(per_rank);
    autosp_comm_free(comm);
}

#define EVAL(name, ...)                                                                            \
    static void name(void **state) {                                                               \
        run_eval(&(sp_case_t){__VA_ARGS__});                                                       \
    }
EVAL(llama_sp2_eval, "llama-tiny", .sp = 2, .dp = 1, .batch = 2, .seq = 32)
EVAL(gpt2_dp2_eval, "gpt2-tiny", .sp = 1, .dp = 2, .batch = 1, .seq = 32, .segments = true)
EVAL(llama_gqa_sp4_eval, "llama-tiny-gqa", .sp = 4, .dp = 1, .batch = 1, .seq = 64)
EVAL(llama_dp2_sp2_eval, "llama-tiny", .sp = 2, .dp = 2, .batch = 1, .seq = 32)

#define ZERO(name, ...)                                                                            \
    static void name(void **state) {                                                               \
        run_zero(&(sp_case_t){__VA_ARGS__});                                                       \
    }
ZERO(llama_sp2_zero, "llama-tiny", .sp = 2, .dp = 1, .batch = 2, .seq = 32)
ZERO(llama_dp2_zero, "llama-tiny", .sp = 1, .dp = 2, .batch = 1, .seq = 32)
ZERO(llama_dp2_sp2_zero, "llama-tiny", .sp = 2, .dp = 2, .batch = 1, .seq = 32)
ZERO(gpt2_sp4_zero, "gpt2-tiny", .sp = 4, .dp = 1, .batch = 1, .seq = 32, .segments = true)
ZERO(llama_sp2_zero2, "llama-tiny", .sp = 2, .dp = 1, .batch = 2, .seq = 32, .zero = 2)
ZERO(llama_dp2_sp2_zero2, "llama-tiny", .sp = 2, .dp = 2, .batch = 1, .seq = 32, .zero = 2)
ZERO(gpt2_sp4_zero2, "gpt2-tiny", .sp = 4, .dp = 1, .batch = 1, .seq = 32, .segments = true,
     .zero = 2)
ZERO(llama_sp2_zero3, "llama-tiny", .sp = 2, .dp = 1, .batch = 2, .seq = 32, .zero = 3)
#define TILED(name, ...)                                                                           \
    static void name(void **state) {                                                               \
        run_tiled(&(sp_case_t){__VA_ARGS__});                                                      \
    }
TILED(llama_dp2_tiled, "llama-tiny", .sp = 1, .dp = 2, .batch = 2, .seq = 32)
TILED(llama_sp2_tiled, "llama-tiny", .sp = 2, .dp = 1, .batch = 2, .seq = 32)
TILED(llama_sp4_tiled, "llama-tiny-gqa", .sp = 4, .dp = 1, .batch = 1, .seq = 32, .segments = true)
TILED(llama_dp2_sp2_tiled, "llama-tiny", .sp = 2, .dp = 2, .batch = 1, .seq = 32)
TILED(llama_sp2_tiled_zero3, "llama-tiny", .sp = 2, .dp = 1, .batch = 2, .seq = 32, .zero = 3)
TILED(llama_dp2_sp2_tiled_zero3, "llama-tiny", .sp = 2, .dp = 2, .batch = 1, .seq = 32, .zero = 3)
TILED(gpt2_sp2_tiled, "gpt2-tiny", .sp = 2, .dp = 1, .batch = 2, .seq = 32)
TILED(gpt2_sp4_tiled, "gpt2-tiny", .sp = 4, .dp = 1, .batch = 1, .seq = 32, .segments = true)
TILED(gpt2_dp2_sp2_tiled_zero3, "gpt2-tiny", .sp = 2, .dp = 2, .batch = 1, .seq = 32, .zero = 3)
ZERO(llama_dp2_sp2_zero3, "llama-tiny", .sp = 2, .dp = 2, .batch = 1, .seq = 32, .zero = 3)
ZERO(gpt2_sp4_zero3, "gpt2-tiny", .sp = 4, .dp = 1, .batch = 1, .seq = 32, .segments = true,
     .zero = 3)

#define POLICIES(name, ...)                                                                        \
    static void name(void **state) {                                                               \
        run_policies(&(sp_case_t){__VA_ARGS__});                                                   \
    }
POLICIES(llama_sp2_policies, "llama-tiny", .sp = 2, .dp = 1, .batch = 1, .seq = 64)
POLICIES(gpt2_sp4_policies, "gpt2-tiny", .sp = 4, .dp = 1, .batch = 1, .seq = 64, .segments = true)

/* The chunked lm head and loss at sp x dp against the unchunked one at the same sp x dp (issue
 * 19's bound): loss and every gradient within 1e-6 relative, chunks of 5 rows (which do not
 * divide a rank's rows) and the planner's. */
static void run_chunked(const sp_case_t *c) {
    if (c->sp * c->dp != world_size) return;
    autosp_error_t err;
    autosp_comm_t *comm = autosp_comm_new_mpi(MPI_COMM_WORLD, c->sp, &err);
    assert_non_null(comm);
    autosp_graph_t *whole = model(c, c->batch * c->dp), *per_rank = model(c, c->batch);
    batch_t b = make_batch(c->batch * c->dp, c->seq, 256, 77);
    autosp_train_config_t cfg = autosp_train_config_default();
    cfg.loss_chunk = AUTOSP_LOSS_UNCHUNKED;
    autosp_trainer_t *ref = autosp_trainer_new_comm(per_rank, &cfg, comm, &err);
    assert_non_null(ref);
    autosp_trainer_init_params(ref, 1234);
    feed(ref, &b, c->segments);
    float loss_ref;
    assert_int_equal(autosp_trainer_compute(ref, &loss_ref, &err), AUTOSP_OK);
    const int64_t chunks[] = {5, 0};
    for (size_t k = 0; k < sizeof chunks / sizeof *chunks; k++) {
        cfg.loss_chunk = chunks[k];
        autosp_trainer_t *tr = autosp_trainer_new_comm(per_rank, &cfg, comm, &err);
        if (!tr) fail_msg("%s", err.message);
        autosp_trainer_init_params(tr, 1234);
        feed(tr, &b, c->segments);
        float loss;
        assert_int_equal(autosp_trainer_compute(tr, &loss, &err), AUTOSP_OK);
        char worst[AUTOSP_MAX_NAME + 8] = "";
        bool noise[256] = {false};
        float loss_err = world_max(fabsf(loss - loss_ref) / fabsf(loss_ref));
        float grad_err =
            world_max(compare(tr, ref, whole, ".grad", NULL, noise, worst, sizeof worst, NULL));
        if (world_rank == 0)
            printf("%-14s sp=%d dp=%d loss chunk %lld against unchunked: loss rel %.1e, grads rel "
                   "%.1e (%s)\n",
                   c->preset, c->sp, c->dp, (long long)chunks[k], loss_err, grad_err, worst);
        assert_true(loss_err <= 1e-6f);
        assert_true(grad_err <= 1e-6f);
        autosp_trainer_free(tr);
    }
    free_batch(&b);
    autosp_trainer_free(ref);
    autosp_graph_free(whole);
    autosp_graph_free(per_rank);
    autosp_comm_free(comm);
}

#define CHUNKED(name, ...)                                                                         \
    static void name(void **state) {                                                               \
        run_chunked(&(sp_case_t){__VA_ARGS__});                                                    \
    }
CHUNKED(llama_sp2_chunked, "llama-tiny", .sp = 2, .dp = 1, .batch = 2, .seq = 32)
CHUNKED(gpt2_sp4_chunked, "gpt2-tiny", .sp = 4, .dp = 1, .batch = 2, .seq = 32, .segments = true)
CHUNKED(llama_dp2_sp2_chunked, "llama-tiny", .sp = 2, .dp = 2, .batch = 1, .seq = 32)
CHUNKED(llama_gqa_sp4_chunked, "llama-tiny-gqa", .sp = 4, .dp = 1, .batch = 1, .seq = 64)

#define CASE(name, ...)                                                                            \
    static void name(void **state) {                                                               \
        run_case(&(sp_case_t){__VA_ARGS__});                                                       \
    }
CASE(llama_sp2, "llama-tiny", .sp = 2, .dp = 1, .batch = 2, .seq = 32)
/* Rings (2-D sequence parallelism): every ulysses x ring factorization of sp 2, 3, 4, 6 and 8
 * that 4 query heads (llama-tiny; llama-tiny-gqa has 2 kv heads) allow, at S = 1000 (padded
 * to the next multiple of sp and 2 ring) and 1024, with and without segment ids. */
#define RING(name, preset, P, R, S, seg)                                                           \
    CASE(name, preset, .sp = P, .dp = 1, .batch = 1, .seq = RING_SEQ(S), .ring = R, .segments = seg)
RING(ring_1x2_1000, "llama-tiny", 2, 2, 1000, false)
RING(ring_1x2_1024_gqa, "llama-tiny-gqa", 2, 2, 1024, true)
RING(ring_2x1_1000_gqa, "llama-tiny-gqa", 2, 1, 1000, true)
RING(ring_1x3_1000, "llama-tiny", 3, 3, 1000, true)
RING(ring_1x3_1024_gqa, "llama-tiny-gqa", 3, 3, 1024, false)
RING(ring_2x1_1024, "llama-tiny", 2, 1, 1024, false)
RING(ring_4x1_1000, "llama-tiny", 4, 1, 1000, true)
RING(ring_4x1_1024_gqa, "llama-tiny-gqa", 4, 1, 1024, false)
RING(ring_2x2_1000_gqa, "llama-tiny-gqa", 4, 2, 1000, false)
RING(ring_2x2_1024, "llama-tiny", 4, 2, 1024, true)
RING(ring_1x4_1024_gqa, "llama-tiny-gqa", 4, 4, 1024, true)
RING(ring_1x4_1000, "llama-tiny", 4, 4, 1000, false)
RING(ring_2x3_1000, "llama-tiny", 6, 3, 1000, true)
RING(ring_2x3_1024_gqa, "llama-tiny-gqa", 6, 3, 1024, false)
RING(ring_1x6_1000_gqa, "llama-tiny-gqa", 6, 6, 1000, true)
RING(ring_1x6_1024, "llama-tiny", 6, 6, 1024, false)
RING(ring_4x2_1000, "llama-tiny", 8, 2, 1000, false)
RING(ring_4x2_1024_gqa, "llama-tiny-gqa", 8, 2, 1024, true)
RING(ring_2x4_1000_gqa, "llama-tiny-gqa", 8, 4, 1000, false)
RING(ring_2x4_1024, "llama-tiny", 8, 4, 1024, true)
RING(ring_1x8_1000, "llama-tiny", 8, 8, 1000, true)
RING(ring_1x8_1024_gqa, "llama-tiny-gqa", 8, 8, 1024, false)
CASE(llama_gqa_sp2, "llama-tiny-gqa", .sp = 2, .dp = 1, .batch = 1, .seq = 64)
CASE(gpt2_sp2_segments, "gpt2-tiny", .sp = 2, .dp = 1, .batch = 2, .seq = 32, .segments = true)
CASE(llama_dp2, "llama-tiny", .sp = 1, .dp = 2, .batch = 1, .seq = 32)
CASE(llama_sp4, "llama-tiny", .sp = 4, .dp = 1, .batch = 2, .seq = 32)
CASE(llama_gqa_sp4, "llama-tiny-gqa", .sp = 4, .dp = 1, .batch = 1, .seq = 64, .segments = true)
CASE(gpt2_sp4_segments, "gpt2-tiny", .sp = 4, .dp = 1, .batch = 2, .seq = 32, .segments = true)
CASE(llama_dp2_sp2, "llama-tiny", .sp = 2, .dp = 2, .batch = 1, .seq = 32)
CASE(llama_sp2_bf16, "llama-tiny", .sp = 2, .dp = 1, .batch = 2, .seq = 32, .dtype = AUTOSP_BF16)
CASE(gpt2_sp2_bf16_sums, "gpt2-tiny", .sp = 2, .dp = 1, .batch = 2, .seq = 32, .segments = true,
     .dtype = AUTOSP_BF16, .reduce = AUTOSP_BF16)
CASE(llama_gqa_sp4_bf16, "llama-tiny-gqa", .sp = 4, .dp = 1, .batch = 1, .seq = 64,
     .segments = true, .dtype = AUTOSP_BF16)
CASE(gpt2_sp4_bf16, "gpt2-tiny", .sp = 4, .dp = 1, .batch = 2, .seq = 32, .segments = true,
     .dtype = AUTOSP_BF16)
CASE(llama_dp2_sp2_bf16, "llama-tiny", .sp = 2, .dp = 2, .batch = 1, .seq = 32,
     .dtype = AUTOSP_BF16)

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world_size);
    openblas_set_num_threads(1); /* ranks x threads within the cores */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(llama_sp2),
        cmocka_unit_test(ring_1x2_1000),
        cmocka_unit_test(ring_1x2_1024_gqa),
        cmocka_unit_test(ring_2x1_1000_gqa),
        cmocka_unit_test(ring_1x3_1000),
        cmocka_unit_test(ring_1x3_1024_gqa),
        cmocka_unit_test(ring_2x1_1024),
        cmocka_unit_test(ring_4x1_1000),
        cmocka_unit_test(ring_4x1_1024_gqa),
        cmocka_unit_test(ring_2x2_1000_gqa),
        cmocka_unit_test(ring_2x2_1024),
        cmocka_unit_test(ring_1x4_1024_gqa),
        cmocka_unit_test(ring_1x4_1000),
        cmocka_unit_test(ring_2x3_1000),
        cmocka_unit_test(ring_2x3_1024_gqa),
        cmocka_unit_test(ring_1x6_1000_gqa),
        cmocka_unit_test(ring_1x6_1024),
        cmocka_unit_test(ring_4x2_1000),
        cmocka_unit_test(ring_4x2_1024_gqa),
        cmocka_unit_test(ring_2x4_1000_gqa),
        cmocka_unit_test(ring_2x4_1024),
        cmocka_unit_test(ring_1x8_1000),
        cmocka_unit_test(ring_1x8_1024_gqa),
        cmocka_unit_test(llama_gqa_sp2),
        cmocka_unit_test(gpt2_sp2_segments),
        cmocka_unit_test(llama_dp2),
        cmocka_unit_test(llama_sp4),
        cmocka_unit_test(llama_gqa_sp4),
        cmocka_unit_test(gpt2_sp4_segments),
        cmocka_unit_test(llama_dp2_sp2),
        cmocka_unit_test(llama_sp2_policies),
        cmocka_unit_test(gpt2_sp4_policies),
        cmocka_unit_test(llama_sp2_zero),
        cmocka_unit_test(llama_dp2_zero),
        cmocka_unit_test(llama_dp2_sp2_zero),
        cmocka_unit_test(gpt2_sp4_zero),
        cmocka_unit_test(llama_sp2_eval),
        cmocka_unit_test(gpt2_dp2_eval),
        cmocka_unit_test(llama_gqa_sp4_eval),
        cmocka_unit_test(llama_dp2_sp2_eval),
        cmocka_unit_test(llama_sp2_bf16),
        cmocka_unit_test(gpt2_sp2_bf16_sums),
        cmocka_unit_test(llama_gqa_sp4_bf16),
        cmocka_unit_test(gpt2_sp4_bf16),
        cmocka_unit_test(llama_dp2_sp2_bf16),
        cmocka_unit_test(llama_sp2_chunked),
        cmocka_unit_test(gpt2_sp4_chunked),
        cmocka_unit_test(llama_dp2_sp2_chunked),
        cmocka_unit_test(llama_gqa_sp4_chunked),
        cmocka_unit_test(llama_sp2_zero2),
        cmocka_unit_test(llama_dp2_sp2_zero2),
        cmocka_unit_test(gpt2_sp4_zero2),
        cmocka_unit_test(llama_sp2_zero3),
        cmocka_unit_test(llama_dp2_tiled),
        cmocka_unit_test(llama_sp2_tiled),
        cmocka_unit_test(llama_sp4_tiled),
        cmocka_unit_test(llama_dp2_sp2_tiled),
        cmocka_unit_test(llama_sp2_tiled_zero3),
        cmocka_unit_test(llama_dp2_sp2_tiled_zero3),
        cmocka_unit_test(gpt2_sp2_tiled),
        cmocka_unit_test(gpt2_sp4_tiled),
        cmocka_unit_test(gpt2_dp2_sp2_tiled_zero3),
        cmocka_unit_test(llama_dp2_sp2_zero3),
        cmocka_unit_test(gpt2_sp4_zero3),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    MPI_Finalize();
    return failed;
}
