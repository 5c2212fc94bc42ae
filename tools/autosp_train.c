/* autosp-train: trains a forward graph on text (byte-level tokens), in one process or on
 * every rank of `mpirun -np N` with sequence (--sp) and data (--dp) parallelism. Every rank
 * reads the text and draws the same whole batch; each feeds its own slice. See docs/cli.md. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>

#include "autosp/comm.h"
#include "cli.h"
#include "ds_config.h"
#include "metrics.h"

static const char *prog = "autosp-train";

typedef struct options {
    const char *model, *data, *save, *dump, *resume, *metrics, *plot, *config, *task;
    const char *grad_reduce; /* NULL: f32 */
    const char *save_dtype;  /* NULL: each parameter's own */
    bool has_bf16, bf16;     /* --config's bf16.enabled, checked against the model's dtype */
    int64_t seq_len, batch, steps, seed, log_every, warmup, sp, dp, threads; /* dp 0: N / sp */
    int64_t ulysses, ring;                    /* 0: not given (the planner's, autosp_plan_mesh) */
    int64_t save_every, until;                /* 0: never, the end */
    int64_t zero, eot, eval_rows, eval_every; /* eot -1: none */
    int64_t mem_limit, train_batch;           /* 0: no limit, not given (--config) */
    double lr, weight_decay, grad_clip, min_lr_ratio, beta1, beta2, eps;
    bool init_only, profile, no_prefetch;
    autosp_data_format_t format;
    autosp_ac_config_t ac;
    int64_t loss_chunk, mlp_tile, norm_tile; /* 0: planned */
} options_t;

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: [mpirun -np N] autosp-train --model GRAPH.json (--data PATH | --task passkey)\n"
        "                                   [options]\n"
        "\n"
        "Trains the forward graph GRAPH.json (e.g. examples/llama-tiny.json). Under mpirun the\n"
        "N ranks run the graph compiled for sequence parallelism (Ulysses) over --sp ranks\n"
        "and data parallelism over N / sp; loss and gradients are those of one process.\n"
        "\n"
        "Model and data:\n"
        "  --model GRAPH.json     forward graph whose first output is the loss\n"
        "  --data PATH            a text file, a folder of them (read in name order, e.g.\n"
        "                         /usr/share/games/fortunes), or a token stream (.bin)\n"
        "  --data-format F        auto (default: .bin is a token stream, llm.c's header\n"
        "                         detected), text (byte-level: one id per byte), u16 or u32\n"
        "                         (raw little-endian ids)\n"
        "  --eot ID               token streams: ID ends a document (default: none)\n"
        "  --task passkey         train on the synthetic pass-key task instead of --data and\n"
        "                         report retrieval accuracy (docs/cli.md)\n"
        "  --eval-rows N          pass-key rows per evaluation (default 64)\n"
        "  --eval-every K         also evaluate every K steps (default: at the end only)\n"
        "  --seq-len S            tokens per sequence (binds symbol S; default 128)\n"
        "  --batch B              sequences per step per data-parallel rank (binds symbol B;\n"
        "                         default 4); a step trains on B x dp sequences\n"
        "\n"
        "Parallelism and memory:\n"
        "  --sp P                 sequence-parallel ranks: each holds S/P tokens of every\n"
        "                         sequence (default 1; must divide N; S need not divide: it is\n"
        "                         padded at its end with tokens that carry no label)\n"
        "  --dp D                 data-parallel ranks (default N / P; D x P must be N)\n"
        "  --ulysses U, --ring R  2-D sequence parallelism, P = U x R: Ulysses over groups of U\n"
        "                         ranks, ring attention over R of them; either gives the other.\n"
        "                         Default: the planner's choice for P (the most Ulysses within\n"
        "                         5%% of the fastest modelled step; rings where the heads do not\n"
        "                         divide P). S need not divide: it is padded (no labels)\n"
        "  --zero 0-3             1: ZeRO-1, AdamW's state sharded over the N ranks (gradients\n"
        "                         reduce-scattered, parameters all-gathered); 2: ZeRO-2, the\n"
        "                         gradients too (each reduce-scattered as the backward\n"
        "                         finishes it, only the shard kept); 3: ZeRO-3, the\n"
        "                         parameters too (each gathered right before each use, in\n"
        "                         the forward and the backward); same results (default 0)\n"
        "  --grad-reduce f32|bf16 the dtype gradients are summed over the ranks in (ZeRO-0;\n"
        "                         default f32; bf16 sends half the bytes, with rounded sums)\n"
        "  --ac POLICY            activation checkpointing: none, full, mincut-conservative or\n"
        "                         sac (default sac; losses and gradients are bitwise the same\n"
        "                         under every policy; docs/checkpointing.md)\n"
        "  --recompute-budget F   sac: recompute at most F of the step's modelled time\n"
        "                         (default 0.1)\n"
        "  --loss-chunk N         the lm head and its loss over chunks of N rows, so that no\n"
        "                         more than a chunk of the logits exists (docs/passes.md);\n"
        "                         planned (default): the planner's size; off: logits whole\n"
        "  --mlp-tile N           Llama's MLP over tiles of N rows, so that no more than a\n"
        "                         tile of its F-wide values exists (tiled_mlp,\n"
        "                         docs/passes.md); planned (default): tiled at the planner's\n"
        "                         size under --ac full only; off: never tiled\n"
        "  --norm-tile N          each norm fused into the projections reading it, over\n"
        "                         tiles of N rows (tiled_norm, docs/passes.md); planned\n"
        "                         (default): under --ac full only; off: never fused\n"
        "  --no-prefetch          --zero 3: gather each parameter at its place, blocking,\n"
        "                         instead of right after the gather before it completes\n"
        "  --mem-limit BYTES      refuse to train if a rank needs more (arena + AdamW state;\n"
        "                         e.g. 64MiB)\n"
        "  --threads T            kernel threads per rank (default: AUTOSP_NUM_THREADS, else\n"
        "                         the CPUs this process may use / ranks per node)\n"
        "\n"
        "Optimisation:\n"
        "  --config FILE          a DeepSpeed config (ds_config.json): batch, sp, ZeRO stage,\n"
        "                         clipping, AdamW and scheduler settings; flags override it\n"
        "  --steps K              optimizer steps (default 100)\n"
        "  --lr LR                peak learning rate (default 3e-3)\n"
        "  --warmup N             linear warm-up steps (default 10)\n"
        "  --min-lr-ratio R       cosine decay down to LR * R (default 0.1)\n"
        "  --beta1 B, --beta2 B   AdamW's moment decays (default 0.9, 0.95)\n"
        "  --eps E                AdamW's epsilon (default 1e-8)\n"
        "  --weight-decay W       AdamW decoupled weight decay on matrices (default 0.1)\n"
        "  --grad-clip C          clip the global gradient norm to C, 0 = off (default 1)\n"
        "  --seed N               initialisation and data order seed (default 1)\n"
        "\n"
        "Output:\n"
        "  --log-every N          print every N steps (default 1)\n"
        "  --save DIR             write DIR/checkpoint.safetensors (resumable) and\n"
        "                         DIR/model.safetensors at the end\n"
        "  --save-every K         with --save: also write the checkpoint every K steps\n"
        "  --save-dtype f32|bf16  the dtype of model.safetensors (default the model's;\n"
        "                         f32 of a bf16 model is its f32 master weights)\n"
        "  --until K              stop after step K (the schedule still spans --steps)\n"
        "  --resume DIR           continue from DIR/checkpoint.safetensors\n"
        "  --metrics FILE         one JSON object per logged step (default with --save:\n"
        "                         DIR/metrics.jsonl; a resumed run appends)\n"
        "  --plot FILE.svg        the loss curve at the end (default with --save: DIR/loss.svg)\n"
        "  --profile              at the end, where a step's time went: per op its ms per\n"
        "                         step, share and GFLOP/s (rank 0's; without the first step,\n"
        "                         which faults the memory in, unless it is the only one)\n"
        "  --init-only            with --save: write the initial weights and stop\n"
        "  --dump FILE            run one forward and backward on the first batch and write\n"
        "                         tokens, labels, loss, every parameter and its gradient\n"
        "                         (\"<param>.grad\") to FILE (safetensors), then stop; with\n"
        "                         --sp or --dp the same file as one process (whole batch,\n"
        "                         full gradients), written by rank 0\n"
        "  -h, --help             print this help\n"
        "\n"
        "Exit status: 0 ok, 2 bad input or usage, 1 internal error.\n");
}

typedef struct flag {
    const char *name;
    char kind; /* s string, i integer, d number, b bool, a checkpointing, f format, m bytes */
    size_t offset;
    double lo, hi;
} flag_t;

#define OPT(f) offsetof(options_t, f)
static const flag_t flags[] = {
    {"--model", 's', OPT(model), 0, 0},
    {"--data", 's', OPT(data), 0, 0},
    {"--save", 's', OPT(save), 0, 0},
    {"--dump", 's', OPT(dump), 0, 0},
    {"--resume", 's', OPT(resume), 0, 0},
    {"--metrics", 's', OPT(metrics), 0, 0},
    {"--plot", 's', OPT(plot), 0, 0},
    {"--save-every", 'i', OPT(save_every), 1, 1e9},
    {"--until", 'i', OPT(until), 1, 1e9},
    {"--zero", 'i', OPT(zero), 0, 3},
    {"--grad-reduce", 's', OPT(grad_reduce), 0, 0},
    {"--save-dtype", 's', OPT(save_dtype), 0, 0},
    {"--config", 's', OPT(config), 0, 0},
    {"--task", 's', OPT(task), 0, 0},
    {"--data-format", 'f', OPT(format), 0, 0},
    {"--eot", 'i', OPT(eot), 0, 4294967295.0},
    {"--eval-rows", 'i', OPT(eval_rows), 1, 1 << 20},
    {"--eval-every", 'i', OPT(eval_every), 1, 1e9},
    {"--mem-limit", 'm', OPT(mem_limit), 0, 0},
    {"--beta1", 'd', OPT(beta1), 0, 0.999999},
    {"--beta2", 'd', OPT(beta2), 0, 0.999999},
    {"--eps", 'd', OPT(eps), 1e-30, 1},
    {"--seq-len", 'i', OPT(seq_len), 2, 1 << 24},
    {"--batch", 'i', OPT(batch), 1, 1 << 16},
    {"--sp", 'i', OPT(sp), 1, 1 << 20},
    {"--dp", 'i', OPT(dp), 1, 1 << 20},
    {"--ulysses", 'i', OPT(ulysses), 1, 1 << 20},
    {"--ring", 'i', OPT(ring), 1, 1 << 20},
    {"--threads", 'i', OPT(threads), 1, 1024},
    {"--steps", 'i', OPT(steps), 1, 1e9},
    {"--seed", 'i', OPT(seed), 0, 9e18},
    {"--log-every", 'i', OPT(log_every), 1, 1e9},
    {"--warmup", 'i', OPT(warmup), 0, 1e9},
    {"--lr", 'd', OPT(lr), 0, 10},
    {"--weight-decay", 'd', OPT(weight_decay), 0, 10},
    {"--grad-clip", 'd', OPT(grad_clip), 0, 1e9},
    {"--min-lr-ratio", 'd', OPT(min_lr_ratio), 0, 1},
    {"--init-only", 'b', OPT(init_only), 0, 0},
    {"--no-prefetch", 'b', OPT(no_prefetch), 0, 0},
    {"--profile", 'b', OPT(profile), 0, 0},
    {"--ac", 'a', OPT(ac), 0, 0},
    {"--loss-chunk", 'c', OPT(loss_chunk), 0, 0},
    {"--mlp-tile", 'c', OPT(mlp_tile), 0, 0},
    {"--norm-tile", 'c', OPT(norm_tile), 0, 0},
    {"--recompute-budget", 'a', OPT(ac), 0, 0},
};

static int set_flag(options_t *o, const flag_t *f, const char *value) {
    char *field = (char *)o + f->offset;
    double d;
    int64_t i;
    switch (f->kind) {
    case 's':
        *(const char **)field = value;
        return 0;
    case 'b':
        *(bool *)field = true;
        return 0;
    case 'a':
        return cli_parse_ac(prog, f->name, value, (autosp_ac_config_t *)field);
    case 'c':
        return cli_parse_rows(prog, f->name, value, (int64_t *)field);
    case 'f': {
        autosp_error_t err;
        if (autosp_data_format_parse(value, (autosp_data_format_t *)field, &err) != AUTOSP_OK)
            return cli_usage_error(prog, "%s: %s", f->name, err.message);
        return 0;
    }
    case 'm':
        if (!cli_parse_bytes(value, (int64_t *)field))
            return cli_usage_error(prog, "%s \"%s\": expected a size such as 512MiB", f->name,
                                   value);
        return 0;
    case 'i':
        if (!cli_parse_int(value, (int64_t)f->lo, (int64_t)f->hi, &i))
            return cli_usage_error(prog, "%s \"%s\": expected an integer in %.0f..%.0f", f->name,
                                   value, f->lo, f->hi);
        *(int64_t *)field = i;
        return 0;
    default:
        if (!cli_parse_double(value, &d) || !(d >= f->lo && d <= f->hi))
            return cli_usage_error(prog, "%s \"%s\": expected a number in %g..%g", f->name, value,
                                   f->lo, f->hi);
        *(double *)field = d;
        return 0;
    }
}

/* A DeepSpeed config's settings, as if given before every flag. */
static int apply_config(const char *path, options_t *o) {
    ds_config_t c;
    int rc = ds_config_load(prog, path, &c);
    if (rc) return rc;
    if (c.has_micro_batch) o->batch = c.micro_batch;
    if (c.has_train_batch) o->train_batch = c.train_batch; /* checked once dp is known */
    if (c.has_sp) o->sp = c.sp;
    if (c.has_zero) o->zero = c.zero_stage;
    if (c.has_comm_bf16) o->grad_reduce = c.comm_bf16 ? "bf16" : "f32";
    o->has_bf16 = c.has_bf16, o->bf16 = c.bf16;
    if (c.has_grad_clip) o->grad_clip = c.grad_clip;
    if (c.has_lr) o->lr = c.lr;
    if (c.has_betas) o->beta1 = c.beta1, o->beta2 = c.beta2;
    if (c.has_eps) o->eps = c.eps;
    if (c.has_weight_decay) o->weight_decay = c.weight_decay;
    if (c.has_warmup) o->warmup = c.warmup_steps;
    if (c.has_total_steps) o->steps = c.total_steps;
    if (c.has_min_lr_ratio) o->min_lr_ratio = c.min_lr_ratio;
    if (c.has_log_every) o->log_every = c.log_every;
    return 0;
}

static int check_args(options_t *o);

static int parse_args(int argc, char **argv, options_t *o) {
    /* the optimizer's defaults are the library's, so the tool and a program agree */
    const autosp_train_config_t d = autosp_train_config_default();
    *o = (options_t){.seq_len = 128,
                     .batch = 4,
                     .steps = d.total_steps,
                     .seed = 1,
                     .log_every = 1,
                     .warmup = d.warmup_steps,
                     .lr = d.lr,
                     .weight_decay = d.weight_decay,
                     .grad_clip = d.grad_clip,
                     .min_lr_ratio = d.min_lr_ratio,
                     .beta1 = d.beta1,
                     .beta2 = d.beta2,
                     .eps = d.eps,
                     .eot = -1,
                     .eval_rows = 64,
                     .ac = d.ac};
    for (int i = 1; i < argc; i++) /* the config first: flags override it */
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return -1;
        } else if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            o->config = argv[++i];
        }
    if (o->config) {
        int rc = apply_config(o->config, o);
        if (rc) return rc;
    }
    for (int i = 1; i < argc; i++) {
        const flag_t *f = NULL;
        for (size_t k = 0; k < sizeof flags / sizeof *flags; k++)
            if (!strcmp(argv[i], flags[k].name)) f = &flags[k];
        if (!f) return cli_usage_error(prog, "unknown option \"%s\"", argv[i]);
        if (f->kind != 'b' && i + 1 >= argc)
            return cli_usage_error(prog, "%s needs a value", f->name);
        int rc = set_flag(o, f, f->kind == 'b' ? NULL : argv[++i]);
        if (rc) return rc;
    }
    return check_args(o);
}

/* What no single flag can check alone. */
static int check_args(options_t *o) {
    bool passkey = o->task && !strcmp(o->task, "passkey");
    if (!o->model) return cli_usage_error(prog, "--model is required");
    if (o->task && !passkey)
        return cli_usage_error(prog, "--task \"%s\": expected passkey", o->task);
    if (passkey && o->data)
        return cli_usage_error(prog, "--task passkey makes its own rows: drop --data");
    if (passkey && o->seq_len < AUTOSP_PASSKEY_MIN_SEQ)
        return cli_usage_error(prog, "--task passkey needs --seq-len %d or more",
                               AUTOSP_PASSKEY_MIN_SEQ);
    if (!passkey && (o->eval_every || o->eval_rows != 64))
        return cli_usage_error(prog, "--eval-rows and --eval-every need --task passkey");
    if (!o->data && !o->init_only && !passkey)
        return cli_usage_error(prog, "--data (or --task passkey) is required");
    if (o->init_only && !o->save) return cli_usage_error(prog, "--init-only needs --save DIR");
    if (o->save_dtype && !o->save) return cli_usage_error(prog, "--save-dtype needs --save DIR");
    if (o->save_every && !o->save) return cli_usage_error(prog, "--save-every needs --save DIR");
    if (o->plot && !o->metrics && !o->save)
        return cli_usage_error(prog, "--plot needs --metrics FILE or --save DIR");
    static char metrics[4096], plot[4096]; /* the defaults beside the checkpoint */
    if (o->save && !o->metrics && !o->dump && !o->init_only) {
        snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", o->save);
        o->metrics = metrics;
    }
    if (o->save && !o->plot && o->metrics) {
        snprintf(plot, sizeof plot, "%s/loss.svg", o->save);
        o->plot = plot;
    }
    if (o->until > o->steps)
        return cli_usage_error(prog, "--until %lld is past --steps %lld", (long long)o->until,
                               (long long)o->steps);
    return 0;
}

/* The graph inputs the trainer fills, found by their roles, and the whole batch of each:
 * rows = batch x dp sequences of S tokens, which every rank draws alike. */
enum { FEED_TOKENS, FEED_LABELS, FEED_POSITIONS, FEED_SEGMENTS, FEED_COUNT };

typedef struct feed {
    const char *name[FEED_COUNT]; /* NULL: the model has no such input */
    int32_t *whole[FEED_COUNT];
    int64_t rows, S;
} feed_t;

static int feed_slot(autosp_role_t role) {
    switch (role) {
    case AUTOSP_ROLE_TOKENS:
        return FEED_TOKENS;
    case AUTOSP_ROLE_LABELS:
        return FEED_LABELS;
    case AUTOSP_ROLE_POSITIONS:
        return FEED_POSITIONS;
    case AUTOSP_ROLE_SEGMENT_IDS:
        return FEED_SEGMENTS;
    default:
        return -1;
    }
}

static int find_inputs(autosp_trainer_t *tr, const options_t *o, feed_t *f) {
    const autosp_graph_t *j = autosp_trainer_graph(tr);
    *f = (feed_t){.rows = o->batch * o->dp, .S = o->seq_len};
    for (autosp_tensor_t t = 0; t < autosp_graph_num_tensors(j); t++) {
        if (autosp_tensor_kind(j, t) != AUTOSP_KIND_INPUT) continue;
        int slot = feed_slot(autosp_tensor_role(j, t));
        if (slot < 0 || f->name[slot])
            return cli_usage_error(prog,
                                   "input \"%s\" has role %s: autosp-train fills one input each of "
                                   "tokens, labels, positions and segment_ids",
                                   autosp_tensor_name(j, t),
                                   autosp_role_name(autosp_tensor_role(j, t)));
        f->name[slot] = autosp_tensor_name(j, t);
        f->whole[slot] = calloc((size_t)(f->rows * f->S), sizeof(int32_t));
        if (!f->whole[slot]) return cli_usage_error(prog, "out of memory for the batch");
    }
    if (!f->name[FEED_TOKENS] || !f->name[FEED_LABELS])
        return cli_usage_error(prog, "the model has no input with role %s",
                               f->name[FEED_TOKENS] ? "labels" : "tokens");
    return 0;
}

static void free_feed(feed_t *f) {
    for (int k = 0; k < FEED_COUNT; k++) free(f->whole[k]);
}

/* The whole batch as the data API fills it. */
static autosp_batch_t batch_of(const feed_t *f) {
    return (autosp_batch_t){.B = f->rows,
                            .S = f->S,
                            .tokens = f->whole[FEED_TOKENS],
                            .labels = f->whole[FEED_LABELS],
                            .positions = f->whole[FEED_POSITIONS],
                            .segments = f->whole[FEED_SEGMENTS]};
}

/* Where rows come from: the windows of a corpus in the sampler's order, or the pass-key task
 * (eval rows from another seed than training rows). */
typedef struct source {
    autosp_corpus_t *corpus;
    autosp_sampler_t *sampler;
    bool passkey, documents; /* documents: the model has segment ids */
} source_t;

static const uint64_t EVAL_SEED = 0xE7A1u; /* mixed into --seed for held-out pass-key rows */

/* Each input of the whole batch, this rank's slice of it. */
static int feed_all(autosp_trainer_t *tr, const feed_t *f) {
    autosp_error_t err;
    for (int k = 0; k < FEED_COUNT; k++)
        if (f->name[k] && autosp_trainer_feed(tr, f->name[k], f->whole[k], &err) != AUTOSP_OK)
            return cli_fail(prog, &err);
    return 0;
}

/* Batch `step`: rows step x rows .. of the source. Labels are shifted over the whole sequence
 * before any rank takes its slice. */
static int fill_batch(autosp_trainer_t *tr, const feed_t *f, const options_t *o, source_t *src,
                      int64_t step) {
    autosp_batch_t b = batch_of(f);
    autosp_error_t err;
    autosp_status_t st =
        src->passkey ? autosp_batch_fill_passkey((uint64_t)o->seed, step * f->rows, &b, NULL, &err)
                     : autosp_batch_fill(src->corpus, src->sampler, step * f->rows, src->documents,
                                         &b, &err);
    return st == AUTOSP_OK ? feed_all(tr, f) : cli_fail(prog, &err);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Parameters (and with `dump`: the whole batch's inputs, the loss and every gradient) as
 * safetensors, in an order that does not depend on sp or dp: inputs, parameters, the loss,
 * then each parameter's gradient. */
static autosp_st_tensor_t graph_tensor(autosp_trainer_t *tr, autosp_tensor_t t) {
    const autosp_graph_t *j = autosp_trainer_graph(tr);
    autosp_st_tensor_t e = {.name = autosp_tensor_name(j, t),
                            .dtype = autosp_tensor_dtype(j, t),
                            .ndim = autosp_tensor_ndim(j, t)};
    for (int d = 0; d < e.ndim; d++) e.shape[d] = autosp_tensor_dim(j, t, d);
    e.data = autosp_trainer_data(tr, e.name);
    return e;
}

static int write_dump(autosp_trainer_t *tr, const feed_t *f, const char *path) {
    const autosp_graph_t *j = autosp_trainer_graph(tr);
    int n = 0, count = autosp_graph_num_tensors(j);
    autosp_st_tensor_t *list = calloc((size_t)count + FEED_COUNT, sizeof *list);
    if (!list) return cli_usage_error(prog, "out of memory");
    for (int k = 0; k < FEED_COUNT; k++)
        if (f->name[k])
            list[n++] = (autosp_st_tensor_t){.name = f->name[k],
                                             .dtype = AUTOSP_I32,
                                             .ndim = 2,
                                             .shape = {f->rows, f->S},
                                             .data = f->whole[k]};
    for (autosp_tensor_t t = 0; t < count; t++)
        if (autosp_tensor_kind(j, t) == AUTOSP_KIND_PARAM) list[n++] = graph_tensor(tr, t);
    list[n++] = graph_tensor(tr, autosp_tensor_find(j, "loss"));
    for (autosp_tensor_t t = 0; t < count; t++) {
        if (autosp_tensor_kind(j, t) != AUTOSP_KIND_PARAM) continue;
        char grad[AUTOSP_MAX_NAME + 8];
        snprintf(grad, sizeof grad, "%s.grad", autosp_tensor_name(j, t));
        list[n++] = graph_tensor(tr, autosp_tensor_find(j, grad));
    }
    autosp_error_t err;
    const char *keys[1] = {"format"}, *values[1] = {"autosp"};
    autosp_status_t st = autosp_safetensors_write(path, list, n, keys, values, 1, &err);
    free(list);
    return st == AUTOSP_OK ? 0 : cli_fail(prog, &err);
}

/* mkdir -p, before any work, so that a bad --save fails at once */
static int make_folder(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1;; p++) {
        bool end = *p == '\0';
        if (*p != '/' && !end) continue;
        *p = '\0';
        struct stat st;
        if (mkdir(path, 0755) != 0 &&
            !(errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode)))
            return cli_usage_error(prog, "--save \"%s\": cannot create \"%s\": %s", dir, path,
                                   strerror(errno == EEXIST ? ENOTDIR : errno));
        if (end) return 0;
        *p = '/';
    }
}

/* The dtype a --grad-reduce or --save-dtype names: f32 or bf16 (false for anything else). */
static bool float_dtype_from_name(const char *name, autosp_dtype_t *out) {
    return autosp_dtype_from_name(name, out) && (*out == AUTOSP_F32 || *out == AUTOSP_BF16);
}

/* DIR/model.safetensors, in --save-dtype; every rank calls it (rank 0 writes). */
static int save_weights(autosp_trainer_t *tr, const options_t *o, bool root) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", o->save);
    autosp_error_t err;
    autosp_dtype_t dtype;
    autosp_status_t st = o->save_dtype && float_dtype_from_name(o->save_dtype, &dtype)
                             ? autosp_trainer_save_weights_as(tr, path, dtype, &err)
                             : autosp_trainer_save_weights(tr, path, &err);
    if (st != AUTOSP_OK) return cli_fail(prog, &err);
    if (root) fprintf(stderr, "%s: wrote %s\n", prog, path);
    return 0;
}

/* DIR/checkpoint.safetensors with the data position: batches are a function of the seed and
 * the step, so the step (in the file) and the seed say where the data continues. */
typedef struct data_position {
    char seed[32], seq_len[32];
} data_position_t;

static data_position_t data_position(const options_t *o) {
    data_position_t d;
    snprintf(d.seed, sizeof d.seed, "%lld", (long long)o->seed);
    snprintf(d.seq_len, sizeof d.seq_len, "%lld", (long long)o->seq_len);
    return d;
}

/* Every rank calls it (ZeRO-1 gathers the optimizer state); rank 0 writes. */
static int save_checkpoint(autosp_trainer_t *tr, const options_t *o, const char *dir, bool root) {
    char path[4096];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
    data_position_t d = data_position(o);
    const char *keys[2] = {"seed", "seq_len"}, *values[2] = {d.seed, d.seq_len};
    autosp_error_t err;
    if (autosp_trainer_save(tr, path, keys, values, 2, &err) != AUTOSP_OK)
        return cli_fail(prog, &err);
    if (root)
        fprintf(stderr, "%s: wrote %s (step %d)\n", prog, path, autosp_trainer_steps_taken(tr));
    return 0;
}

/* The checkpoint first (it is what --resume reads), then the weights; every rank learns
 * whether it worked, so none waits in a collective for a rank that stopped. */
static int save_everywhere(autosp_trainer_t *tr, const options_t *o, bool root, bool weights) {
    int rc = save_checkpoint(tr, o, o->save, root);
    if (weights && !rc) rc = save_weights(tr, o, root);
    autosp_comm_broadcast(autosp_trainer_comm(tr), &rc, sizeof rc, NULL);
    return rc;
}

/* --resume DIR: the checkpoint's state, after checking it continues this run's data. */
static int resume(autosp_trainer_t *tr, const options_t *o) {
    char path[4096];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", o->resume);
    autosp_error_t err;
    autosp_safetensors_t *f = autosp_safetensors_open(path, &err);
    if (!f) return cli_fail(prog, &err);
    const char *seed = autosp_safetensors_metadata(f, "seed");
    const char *seq = autosp_safetensors_metadata(f, "seq_len");
    data_position_t mine = data_position(o);
    int rc = 0;
    if (!seed || strcmp(seed, mine.seed) != 0 || !seq || strcmp(seq, mine.seq_len) != 0)
        rc = cli_usage_error(prog,
                             "--resume \"%s\": the checkpoint was trained with --seed %s "
                             "--seq-len %s, this run has --seed %s --seq-len %s (the batches "
                             "would not continue)",
                             path, seed ? seed : "?", seq ? seq : "?", mine.seed, mine.seq_len);
    autosp_safetensors_close(f);
    if (!rc && autosp_trainer_load(tr, path, &err) != AUTOSP_OK) rc = cli_fail(prog, &err);
    if (!rc && autosp_trainer_steps_taken(tr) > o->steps)
        rc = cli_usage_error(prog, "--resume \"%s\" is at step %d, past --steps %lld", path,
                             autosp_trainer_steps_taken(tr), (long long)o->steps);
    if (!rc)
        fprintf(stderr, "%s: resumed from %s at step %d\n", prog, path,
                autosp_trainer_steps_taken(tr));
    return rc;
}

static int open_metrics(const options_t *o, FILE **f) {
    autosp_error_t err;
    *f = metrics_open(o->metrics, o->resume != NULL, &err);
    return *f ? 0 : cli_fail(prog, &err);
}

static int plot(const options_t *o, autosp_trainer_t *tr) {
    char title[512];
    snprintf(title, sizeof title, "%s: training loss (S = %lld, batch %lld per data rank)",
             autosp_graph_name(autosp_trainer_graph(tr)), (long long)o->seq_len,
             (long long)o->batch);
    autosp_error_t err;
    if (metrics_plot(o->metrics, o->plot, title, &err) != AUTOSP_OK) return cli_fail(prog, &err);
    fprintf(stderr, "%s: wrote %s\n", prog, o->plot);
    return 0;
}

/* The logits: the first input of the node that makes the loss (graph output 0). */
static autosp_tensor_t logits_of(const autosp_graph_t *g) {
    int node =
        autosp_graph_num_outputs(g) > 0 ? autosp_tensor_producer(g, autosp_graph_output(g, 0)) : -1;
    return node < 0 ? AUTOSP_NO_TENSOR : autosp_node_input(g, node, 0);
}

/* The step's memory per rank against --mem-limit: the arena holds parameters, gradients,
 * activations and buffers, and AdamW's state is beside it. */
static int check_memory(autosp_trainer_t *tr, const options_t *o) {
    int64_t arena = autosp_trainer_arena_bytes(tr), state = autosp_trainer_state_bytes(tr);
    if (!o->mem_limit || arena + state <= o->mem_limit) return 0;
    return cli_usage_error(
        prog,
        "--mem-limit %.1f MiB: a rank needs %.1f MiB (arena %.1f MiB + "
        "optimizer state %.1f MiB) at --seq-len %lld --sp %lld --ac %s; more --sp "
        "ranks or another --ac need less",
        (double)o->mem_limit / (1 << 20), (double)(arena + state) / (1 << 20),
        (double)arena / (1 << 20), (double)state / (1 << 20), (long long)o->seq_len,
        (long long)o->sp, autosp_ac_policy_name(o->ac.policy));
}

/* The model's dtype decides what runs (f32, or bf16 mixed precision); --grad-reduce must be
 * f32 or bf16, and a --config's bf16.enabled that disagrees with the model is pointed out. */
static int check_dtype(const autosp_graph_t *g, const options_t *o) {
    autosp_dtype_t unused;
    if (o->grad_reduce && !float_dtype_from_name(o->grad_reduce, &unused))
        return cli_usage_error(prog, "--grad-reduce \"%s\": expected f32 or bf16", o->grad_reduce);
    if (o->save_dtype && !float_dtype_from_name(o->save_dtype, &unused))
        return cli_usage_error(prog, "--save-dtype \"%s\": expected f32 or bf16", o->save_dtype);
    bool bf16 = false;
    for (autosp_tensor_t t = 0; t < autosp_graph_num_tensors(g); t++)
        if (autosp_tensor_kind(g, t) == AUTOSP_KIND_PARAM) {
            bf16 = autosp_tensor_dtype(g, t) == AUTOSP_BF16;
            break;
        }
    if (o->has_bf16 && o->bf16 != bf16)
        fprintf(stderr,
                "%s: warning: --config \"%s\": bf16.enabled is %s, but \"%s\" is a%s model: "
                "the model's dtype decides (autosp-model --dtype writes either)\n",
                prog, o->config, o->bf16 ? "true" : "false", o->model, bf16 ? " bf16" : "n f32");
    return 0;
}

/* logits (with --task passkey): the name of the logits tensor, which is made a graph output so
 * that the eval can read it after a step. */
static autosp_trainer_t *make_trainer(const options_t *o, const autosp_comm_t *comm, char *logits,
                                      int64_t *vocab, int *rc) {
    autosp_error_t err;
    autosp_graph_t *g = autosp_graph_load_file(o->model, &err);
    if (!g) {
        *rc = cli_fail(prog, &err);
        return NULL;
    }
    if (check_dtype(g, o)) {
        *rc = 2;
        autosp_graph_free(g);
        return NULL;
    }
    autosp_tensor_t out = logits_of(g); /* its last dim is the vocabulary */
    *vocab =
        out == AUTOSP_NO_TENSOR ? -1 : autosp_tensor_dim(g, out, autosp_tensor_ndim(g, out) - 1);
    if (logits) {
        if (out == AUTOSP_NO_TENSOR || autosp_output(g, out) != AUTOSP_OK) {
            *rc = cli_usage_error(prog,
                                  "--task passkey: \"%s\" has no loss node to read "
                                  "logits from",
                                  o->model);
            autosp_graph_free(g);
            return NULL;
        }
        snprintf(logits, AUTOSP_MAX_NAME, "%s", autosp_tensor_name(g, out));
    }
    autosp_train_config_t cfg = autosp_train_config_default();
    cfg.beta1 = (float)o->beta1, cfg.beta2 = (float)o->beta2, cfg.eps = (float)o->eps;
    cfg.lr = (float)o->lr;
    cfg.warmup_steps = (int)(o->warmup < o->steps ? o->warmup : o->steps - 1);
    cfg.total_steps = (int)o->steps;
    cfg.min_lr_ratio = (float)o->min_lr_ratio;
    cfg.weight_decay = (float)o->weight_decay;
    cfg.grad_clip = (float)o->grad_clip;
    cfg.ac = o->ac;
    cfg.loss_chunk = o->loss_chunk;
    cfg.mlp_tile = o->mlp_tile;
    cfg.norm_tile = o->norm_tile;
    cfg.zero3_prefetch = o->no_prefetch ? AUTOSP_PREFETCH_OFF : 0;
    cfg.zero_stage = o->dump ? 0 : (int)o->zero; /* a dump wants whole gradients */
    cfg.grad_reduce_dtype = AUTOSP_F32;
    if (o->grad_reduce) float_dtype_from_name(o->grad_reduce, &cfg.grad_reduce_dtype);
    autosp_trainer_t *tr = NULL;
    if (autosp_symbol_bind(g, "S", o->seq_len, &err) == AUTOSP_OK &&
        autosp_symbol_bind(g, "B", o->batch, &err) == AUTOSP_OK)
        tr = autosp_trainer_new_comm(g, &cfg, comm, &err);
    if (!tr) *rc = cli_fail(prog, &err);
    autosp_graph_free(g);
    if (tr && (*rc = check_memory(tr, o))) {
        autosp_trainer_free(tr);
        return NULL;
    }
    if (tr) autosp_trainer_init_params(tr, (uint64_t)o->seed);
    return tr;
}

/* One line per logged step, on rank 0: throughput of all ranks together. */
/* The metrics row of a logged step: rates over the dt seconds per step since the last row. */
static metric_row_t row_of(autosp_trainer_t *tr, const autosp_step_stats_t *st, int64_t step,
                           double tokens_per_step, double dt, double comm_share, int world) {
    return (metric_row_t){.step = step,
                          .loss = st->loss,
                          .lr = st->lr,
                          .grad_norm = st->grad_norm,
                          .tokens_per_s = tokens_per_step / dt,
                          .gflops = st->flops * world / dt * 1e-9,
                          .step_ms = dt * 1e3,
                          .comm_share = comm_share,
                          .mem_bytes =
                              autosp_trainer_touched_bytes(tr) + autosp_trainer_state_bytes(tr)};
}

static void print_row(const metric_row_t *r, const options_t *o, int world, double eta) {
    printf("step %5lld/%lld | loss %.4f | lr %.2e | grad norm %7.3f | %8.0f tok/s | %6.2f "
           "GFLOP/s | %7.1f ms | mem %6.1f MiB",
           (long long)r->step, (long long)o->steps, r->loss, r->lr, r->grad_norm, r->tokens_per_s,
           r->gflops, r->step_ms, (double)r->mem_bytes / (1 << 20));
    if (world > 1) printf(" | comm %4.1f%%", 100 * r->comm_share);
    printf(" | eta %.0f s\n", eta);
    fflush(stdout);
}

/* ---- the pass-key eval ----------------------------------------------------------------------- */

typedef struct eval_ctx {
    const autosp_comm_t *comm;
    const char *logits;
    source_t *src;
} eval_ctx_t;

/* Index of the largest of n floats. */
static int64_t argmax(const float *x, int64_t n) {
    int64_t best = 0;
    for (int64_t v = 1; v < n; v++) best = x[v] > x[best] ? v : best;
    return best;
}

/* Wrong answer digits of each row of the batch that this rank's logits cover, added to
 * wrong[0 .. rows): this rank holds dp_rank's B rows and sp_rank's S/sp positions. */
static void count_wrong(autosp_trainer_t *tr, const feed_t *f, const options_t *o,
                        const eval_ctx_t *e, int *wrong) {
    const autosp_graph_t *j = autosp_trainer_graph(tr);
    autosp_tensor_t t = autosp_tensor_find(j, e->logits);
    int64_t V = autosp_tensor_dim(j, t, autosp_tensor_ndim(j, t) - 1);
    int sp = e->comm ? autosp_comm_sp_size(e->comm) : 1;
    int sp_rank = e->comm ? autosp_comm_sp_rank(e->comm) : 0;
    int dp_rank = e->comm ? autosp_comm_dp_rank(e->comm) : 0;
    int64_t local_S = f->S / sp;
    const float *x = autosp_trainer_data(tr, e->logits);
    for (int64_t b = 0; b < o->batch; b++) {
        int64_t row = dp_rank * o->batch + b;
        for (int64_t p = autosp_passkey_answer_start(f->S); p < f->S - 1; p++) {
            if (p / local_S != sp_rank) continue;
            const float *at = x + (b * local_S + p % local_S) * V;
            wrong[row] += argmax(at, V) != f->whole[FEED_LABELS][row * f->S + p];
        }
    }
}

/* --eval-rows held-out pass-key rows, in batches of the training shape. A row is retrieved
 * when the argmax of the logits is the right digit at all AUTOSP_PASSKEY_DIGITS answer positions
 * (given the true digits before it: exactly when greedy decoding would write the key). Counted by
 * the part of the sequence (the sp rank's shard, or half of it in one process) that held the
 * statement: the question is always in the last one. */
static int eval_passkey(autosp_trainer_t *tr, const feed_t *f, const options_t *o,
                        const eval_ctx_t *e, int64_t step, bool print) {
    enum { MAX_PARTS = 64 };
    int64_t batches = (o->eval_rows + f->rows - 1) / f->rows, n = batches * f->rows;
    int sp = e->comm ? autosp_comm_sp_size(e->comm) : 1, parts = sp > 1 ? sp : 2;
    int *wrong = calloc((size_t)n, sizeof *wrong);
    int64_t *at = calloc((size_t)n, sizeof *at); /* where each row's statement is */
    int rc = wrong && at ? 0 : cli_usage_error(prog, "out of memory for the eval");
    autosp_batch_t batch = batch_of(f);
    for (int64_t k = 0; k < batches && !rc; k++) {
        autosp_error_t err;
        if (autosp_batch_fill_passkey((uint64_t)o->seed ^ EVAL_SEED, k * f->rows, &batch,
                                      at + k * f->rows, &err) != AUTOSP_OK)
            rc = cli_fail(prog, &err);
        if (!rc && !(rc = feed_all(tr, f)) && autosp_trainer_compute(tr, NULL, &err) != AUTOSP_OK)
            rc = cli_fail(prog, &err);
        if (!rc) count_wrong(tr, f, o, e, wrong + k * f->rows);
    }
    autosp_error_t sum_err;
    if (!rc && autosp_comm_sum(autosp_trainer_comm(tr), wrong, (size_t)n, AUTOSP_I32, &sum_err))
        rc = cli_fail(prog, &sum_err);
    int right[MAX_PARTS] = {0}, total[MAX_PARTS] = {0}, all = 0;
    for (int64_t r = 0; r < o->eval_rows && !rc; r++) {
        int part = (int)(at[r] * parts / f->S);
        total[part % MAX_PARTS]++;
        right[part % MAX_PARTS] += wrong[r] == 0;
        all += wrong[r] == 0;
    }
    if (!rc && print) {
        printf("eval  %5lld/%lld | pass-key retrieval %d/%lld (%.1f%%) | key in part",
               (long long)step, (long long)o->steps, all, (long long)o->eval_rows,
               100.0 * all / (double)o->eval_rows);
        for (int p = 0; p < parts && p < MAX_PARTS; p++)
            printf(" %d/%d: %d/%d%s", p + 1, parts, right[p], total[p], p + 1 < parts ? "," : "");
        printf(" of the sequence\n");
        fflush(stdout);
    }
    free(wrong);
    free(at);
    return rc;
}

/* --profile: the ops by time, then what the step spent outside the graph. The profiled steps
 * are the last ones taken. */
static void print_profile(const autosp_trainer_t *tr) {
    autosp_profile_t p;
    autosp_trainer_profile(tr, &p);
    if (p.steps == 0) return;
    const int last = autosp_trainer_steps_taken(tr);
    double graph = 0, flops = 0;
    printf("\nprofile of steps %d..%d on rank 0, %d threads: %.1f ms per step\n",
           last - p.steps + 1, last, autosp_num_threads(), 1e3 * p.step_seconds / p.steps);
    printf("%-22s %6s %10s %7s %9s\n", "op", "nodes", "ms/step", "share", "GFLOP/s");
    for (int i = 0; i < p.n_ops; i++) {
        const autosp_op_profile_t *r = &p.ops[i];
        graph += r->seconds, flops += r->flops;
        printf("%-22s %6d %10.2f %6.1f%%", autosp_op_name(r->op), r->nodes,
               1e3 * r->seconds / p.steps, 100 * r->seconds / p.step_seconds);
        if (r->flops > 0 && r->seconds > 0) printf(" %9.2f", 1e-9 * r->flops / r->seconds);
        printf("\n");
    }
    const double outside = p.step_seconds - graph;
    printf("%-22s %6s %10.2f %6.1f%%\n", "outside the graph", "", 1e3 * outside / p.steps,
           100 * outside / p.step_seconds);
    printf("(outside the graph: gradient norm, clipping, AdamW, ZeRO-1's collectives)\n");
    printf("%-22s %6s %10.2f %6.1f%% %9.2f\n", "step", "", 1e3 * p.step_seconds / p.steps, 100.0,
           1e-9 * flops / p.step_seconds);
    fflush(stdout);
}

static int train(autosp_trainer_t *tr, const feed_t *f, const options_t *o, int world, bool print,
                 const eval_ctx_t *e, FILE *metrics) {
    double start = now(), last = start, tokens_per_step = (double)(f->rows * f->S);
    double comm_last = 0;
    int64_t first = autosp_trainer_steps_taken(tr), end = o->until ? o->until : o->steps;
    int64_t logged = first; /* steps done at the last printed line */
    for (int64_t k = first; k < end; k++) {
        int rc = fill_batch(tr, f, o, e->src, k);
        if (rc) return rc;
        autosp_step_stats_t st;
        autosp_error_t err;
        /* the first step faults the arena in: profiled only if it is the only one */
        if (o->profile && (k > first || end - first == 1)) autosp_trainer_set_profiling(tr, true);
        if (autosp_trainer_step(tr, &st, &err) != AUTOSP_OK) return cli_fail(prog, &err);
        if (o->save_every && (k + 1) % o->save_every == 0 && k + 1 < end &&
            (rc = save_everywhere(tr, o, print, false)))
            return rc;
        if ((k + 1) % o->log_every == 0 || k + 1 == end) {
            double t = now(), dt = (t - last) / (double)(k + 1 - logged);
            logged = k + 1;
            double comm = autosp_trainer_comm_seconds(tr);
            double comm_share = (comm - comm_last) / (t - last);
            last = t;
            comm_last = comm;
            double eta = (t - start) / (double)(k + 1 - first) * (double)(end - k - 1);
            metric_row_t row = row_of(tr, &st, k + 1, tokens_per_step, dt, comm_share, world);
            if (print) print_row(&row, o, world, eta);
            if (metrics) metrics_write(metrics, &row);
        }
        if (e->logits && o->eval_every && (k + 1) % o->eval_every == 0 && k + 1 < end) {
            double t = now(), comm = autosp_trainer_comm_seconds(tr);
            if ((rc = eval_passkey(tr, f, o, e, k + 1, print))) return rc;
            double pause = now() - t; /* the eval is not training time */
            start += pause, last += pause;
            comm_last += autosp_trainer_comm_seconds(tr) - comm;
        }
    }
    if (print && o->profile) print_profile(tr);
    return 0;
}

/* The start line: each rank's threads and where the count comes from. */
static void print_threads(const autosp_thread_info_t *ti, int64_t flag) {
    if (ti->env_ignored[0])
        fprintf(stderr,
                "%s: warning: AUTOSP_NUM_THREADS=\"%s\" ignored: expected an integer in "
                "1..%d\n",
                prog, ti->env_ignored, AUTOSP_MAX_THREADS_ENV);
    fprintf(stderr, "%s: %d thread%s per rank (", prog, autosp_num_threads(),
            autosp_num_threads() == 1 ? "" : "s");
    if (flag) {
        fprintf(stderr, "--threads %lld)\n", (long long)flag);
        return;
    }
    if (ti->from == AUTOSP_THREADS_FROM_ENV) {
        fprintf(stderr, "AUTOSP_NUM_THREADS=%d)\n", ti->threads);
        return;
    }
    char quota[32] = "none";
    if (ti->quota_cpus) snprintf(quota, sizeof quota, "%d", ti->quota_cpus);
    char where[16] = "";
    if (ti->cgroup_version) snprintf(where, sizeof where, " v%d", ti->cgroup_version);
    fprintf(stderr,
            "%d usable CPU%s: online %d, affinity %d, cgroup%s quota %s; %d rank%s on this "
            "node)\n",
            ti->usable_cpus, ti->usable_cpus == 1 ? "" : "s", ti->online_cpus, ti->affinity_cpus,
            where, quota, ti->ranks_on_node, ti->ranks_on_node == 1 ? "" : "s");
}

/* --ulysses x --ring = --sp; with --sp alone, the planner's (autosp_plan_mesh) for this run's
 * model, S, batch and memory options, said on rank 0 when it has rings. */
static int choose_mesh(options_t *o, int world) {
    int rc = cli_sp_mesh(prog, &o->sp, &o->ulysses, &o->ring);
    if (!o->sp) o->sp = 1; /* none of the three given */
    if (rc || o->ring) return rc;
    o->ring = 1, o->ulysses = o->sp;
    if (o->sp == 1) return 0;
    autosp_error_t err;
    autosp_graph_t *g = autosp_graph_load_file(o->model, &err);
    if (!g) return cli_fail(prog, &err);
    autosp_parallel_config_t cfg = autosp_parallel_config_default();
    cfg.sp = (int)o->sp;
    cfg.dp = world % o->sp == 0 ? world / (int)o->sp : 1;
    cfg.ac = o->ac;
    cfg.loss_chunk = o->loss_chunk, cfg.mlp_tile = o->mlp_tile, cfg.norm_tile = o->norm_tile;
    cfg.zero_stage = (int)o->zero;
    cfg.backend = autosp_backend_cpu();
    autosp_mesh_candidate_t c[64];
    int best = -1;
    if (autosp_symbol_bind(g, "S", o->seq_len, &err) == AUTOSP_OK &&
        autosp_symbol_bind(g, "B", o->batch, &err) == AUTOSP_OK)
        autosp_plan_mesh(g, &cfg, NULL, c, 64, &best);
    autosp_graph_free(g);
    if (best < 0) return 0; /* compiling the run itself says why */
    o->ring = c[best].ring, o->ulysses = c[best].ulysses;
    if (o->ring > 1 && autosp_world_rank() == 0)
        fprintf(stderr, "%s: --sp %lld as --ulysses %lld x --ring %lld (the planner's choice)\n",
                prog, (long long)o->sp, (long long)o->ulysses, (long long)o->ring);
    return 0;
}

/* The groups: --sp divides the world, --dp (if given) is the rest. */
static autosp_comm_t *make_comm(options_t *o, int world, int *rc) {
    autosp_error_t err;
    int rc_mesh = choose_mesh(o, world);
    if (rc_mesh) {
        *rc = rc_mesh;
        return NULL;
    }
    autosp_comm_t *comm = autosp_comm_new_world_ring((int)o->sp, (int)o->ring, &err);
    if (!comm) {
        *rc = cli_usage_error(prog, "--sp %lld: %s", (long long)o->sp, err.message);
        return NULL;
    }
    if (o->dp && o->dp * o->sp != world) {
        *rc =
            cli_usage_error(prog, "--dp %lld x --sp %lld is %lld ranks, but mpirun started %d",
                            (long long)o->dp, (long long)o->sp, (long long)(o->dp * o->sp), world);
        autosp_comm_free(comm);
        return NULL;
    }
    o->dp = autosp_comm_dp_size(comm);
    autosp_thread_info_t ti;
    autosp_thread_info(autosp_comm_local_size(comm), &ti);
    autosp_set_num_threads(o->threads ? (int)o->threads : ti.threads);
    if (autosp_comm_rank(comm) == 0) print_threads(&ti, o->threads);
    return comm;
}

/* The rows' source: the pass-key task, or --data's corpus, checked against the model. */
static int open_source(const options_t *o, source_t *src) {
    *src = (source_t){.passkey = o->task != NULL};
    if (src->passkey || !o->data) return 0;
    autosp_error_t err;
    if (!(src->corpus = autosp_corpus_open(o->data, o->format, o->eot, &err))) {
        fprintf(stderr, "%s: --data: %s\n", prog, err.message);
        return autosp_status_exit_code(err.status);
    }
    int64_t windows = autosp_corpus_windows(src->corpus, o->seq_len);
    if (windows < 1)
        return cli_usage_error(prog,
                               "--data \"%s\" has %lld tokens, expected more than --seq-len + 1",
                               o->data, (long long)autosp_corpus_num_tokens(src->corpus));
    if (!(src->sampler = autosp_sampler_new(windows, (uint64_t)o->seed, &err)))
        return cli_fail(prog, &err);
    return 0;
}

static void close_source(source_t *src) {
    autosp_corpus_close(src->corpus);
    autosp_sampler_free(src->sampler);
}

/* The model's view of the source: segment ids (a document mask) if it has them, and a
 * vocabulary that holds every id of the data. */
static int check_source(const feed_t *f, const options_t *o, source_t *src, int64_t vocab,
                        bool root) {
    int64_t largest = src->passkey ? 255 : autosp_corpus_max_token(src->corpus);
    src->documents = f->name[FEED_SEGMENTS] != NULL;
    if (vocab >= 0 && largest >= vocab)
        return cli_usage_error(prog,
                               "%s%s%s holds token id %lld, but the model's vocabulary is %lld "
                               "(ids 0..%lld)",
                               src->passkey ? "--task passkey" : "--data \"",
                               src->passkey ? "" : o->data, src->passkey ? "" : "\"",
                               (long long)largest, (long long)vocab, (long long)vocab - 1);
    int64_t docs = src->passkey ? 1 : autosp_corpus_num_documents(src->corpus);
    if (root && !src->documents && docs > 1)
        fprintf(stderr,
                "%s: warning: the model has no segment_ids input, so attention crosses the %lld "
                "document boundaries of --data (autosp-model --segment-ids adds one)\n",
                prog, (long long)docs - 1);
    return 0;
}

/* --config's train_batch_size, once dp is known. */
static int check_train_batch(const options_t *o) {
    if (!o->train_batch || o->train_batch == o->batch * o->dp) return 0;
    return cli_usage_error(prog,
                           "--config \"%s\": train_batch_size %lld, but the micro batch %lld x "
                           "dp %lld is %lld (gradient accumulation is not supported)",
                           o->config, (long long)o->train_batch, (long long)o->batch,
                           (long long)o->dp, (long long)(o->batch * o->dp));
}

/* RSS from just before the trainer was built to the high-water mark since: the arena, the
 * optimizer state and whatever the runtime allocates beside them, as the OS counts it. Each
 * rank's, gathered on every rank (collective). */
static void rss_growth(const autosp_trainer_t *tr, int64_t before, int world, int64_t *lo,
                       int64_t *hi) {
    int64_t *all = calloc((size_t)world, sizeof *all);
    int64_t hwm = cli_rss_bytes("VmHWM"), mine = before >= 0 && hwm >= 0 ? hwm - before : -1;
    *lo = *hi = mine;
    if (!all) return;
    all[autosp_comm_rank(autosp_trainer_comm(tr))] = mine;
    if (autosp_comm_sum(autosp_trainer_comm(tr), all, (size_t)world, AUTOSP_I64, NULL) == AUTOSP_OK)
        for (int r = 0; r < world; r++) {
            *lo = all[r] < *lo ? all[r] : *lo;
            *hi = all[r] > *hi ? all[r] : *hi;
        }
    free(all);
}

/* The planner's memory of a rank (autosp_plan_memory on the trainer's step) against what the
 * run used: the arena's touched bytes (its guard bytes overwritten) and the optimizer state
 * allocated (AdamW m and v, and f32 master weights of bf16 parameters), and the growth of the
 * resident set. Collective; rank 0 prints. */
typedef struct before_trainer {
    int64_t rss, heap; /* the resident set, the library's live heap (autosp_heap_stats) */
} before_trainer_t;

static int print_memory(const autosp_trainer_t *tr, const options_t *o, int world,
                        const before_trainer_t *before, bool root) {
    autosp_memory_plan_t m;
    autosp_error_t err;
    int zero = world > 1 ? (int)o->zero : 0;
    int64_t rss_lo, rss_hi;
    rss_growth(tr, before->rss, world, &rss_lo, &rss_hi);
    int64_t heap = autosp_heap_stats().peak - before->heap;
    if (!root) return 0;
    if (autosp_plan_memory(autosp_trainer_graph(tr), zero, autosp_backend_cpu(), &m, &err) !=
        AUTOSP_OK)
        return cli_fail(prog, &err);
    int64_t touched = autosp_trainer_touched_bytes(tr), state = autosp_trainer_state_bytes(tr);
    const double MiB = 1 << 20;
    fprintf(stderr,
            "%s: memory per rank: planned %.1f MiB (arena %.1f, f32 master %.1f, AdamW %.1f); "
            "measured %.1f MiB (arena touched %.1f, optimizer state %.1f); planned / measured "
            "%.3f\n",
            prog, m.total / MiB, m.arena / MiB, m.master / MiB, m.optimizer / MiB,
            (touched + state) / MiB, touched / MiB, state / MiB,
            (double)m.total / (double)(touched + state));
    int64_t arena = autosp_trainer_arena_bytes(tr), own = heap - arena - state;
    if (heap > 0) /* glibc's default allocator: counted */
        fprintf(stderr,
                "%s: library heap per rank at its peak: %.1f MiB more than before the trainer = "
                "arena %.1f + optimizer state %.1f + the runtime's own buffers %.1f (graphs, "
                "plan and executor tables, batch and exchange buffers, the arena's 2 MiB "
                "huge-page alignment, never touched); planned + own %.1f MiB\n",
                prog, heap / MiB, arena / MiB, state / MiB, own / MiB, (m.total + own) / MiB);
    char own_ratio[64];
    snprintf(own_ratio, sizeof own_ratio, ", planned + own / resident %.3f",
             (double)(m.total + own) / (double)(rss_hi > 0 ? rss_hi : 1));
    if (rss_lo >= 0)
        fprintf(stderr,
                "%s: resident set per rank: high-water mark minus before the trainer %.1f MiB "
                "(%.1f .. %.1f over %d ranks); planned / resident %.3f%s\n",
                prog, rss_hi / MiB, rss_lo / MiB, rss_hi / MiB, world,
                (double)m.total / (double)rss_hi, heap > 0 ? own_ratio : "");
    return 0;
}

static int train_and_save(autosp_trainer_t *tr, const feed_t *f, options_t *o, int rank, int world,
                          const eval_ctx_t *e, const before_trainer_t *before) {
    int rc = o->resume ? resume(tr, o) : 0;
    FILE *metrics = NULL;
    if (!rc && rank == 0 && o->metrics) rc = open_metrics(o, &metrics);
    autosp_comm_broadcast(autosp_trainer_comm(tr), &rc, sizeof rc, NULL);
    if (!rc) rc = train(tr, f, o, world, rank == 0, e, metrics);
    if (metrics) fclose(metrics);
    if (!rc) rc = print_memory(tr, o, world, before, rank == 0);
    if (!rc && e->logits) rc = eval_passkey(tr, f, o, e, autosp_trainer_steps_taken(tr), rank == 0);
    if (!rc && o->save) rc = save_everywhere(tr, o, rank == 0, true);
    if (!rc && rank == 0 && o->plot) rc = plot(o, tr);
    return rc;
}

static int run(options_t *o, int rank, int world) {
    source_t src;
    int rc = open_source(o, &src);
    feed_t feed = {0};
    autosp_trainer_t *tr = NULL;
    char logits[AUTOSP_MAX_NAME];
    int64_t vocab = -1;
    autosp_comm_t *comm = rc ? NULL : make_comm(o, world, &rc);
    if (!rc) rc = check_train_batch(o);
    if (!rc && o->save && rank == 0) rc = make_folder(o->save);
    /* every rank stops if rank 0 could not make the folder, instead of waiting for it */
    if (comm) autosp_comm_broadcast(comm, &rc, sizeof rc, NULL);
    autosp_heap_mark();
    before_trainer_t before = {cli_rss_bytes("VmRSS"), autosp_heap_stats().live};
    if (!rc) tr = make_trainer(o, comm, src.passkey ? logits : NULL, &vocab, &rc);
    if (tr) rc = find_inputs(tr, o, &feed);
    if (!rc && tr && !o->init_only) rc = check_source(&feed, o, &src, vocab, rank == 0);
    eval_ctx_t e = {.comm = comm, .logits = src.passkey ? logits : NULL, .src = &src};
    if (rc || !tr) {
        /* the message is out */
    } else if (o->init_only) {
        rc = save_weights(tr, o, rank == 0);
    } else if (o->dump) {
        autosp_error_t err;
        rc = fill_batch(tr, &feed, o, &src, 0);
        if (!rc && autosp_trainer_compute(tr, NULL, &err) != AUTOSP_OK) rc = cli_fail(prog, &err);
        if (!rc && rank == 0) rc = write_dump(tr, &feed, o->dump);
    } else {
        rc = train_and_save(tr, &feed, o, rank, world, &e, &before);
    }
    autosp_trainer_free(tr);
    autosp_comm_free(comm);
    free_feed(&feed);
    close_source(&src);
    return rc;
}

int main(int argc, char **argv) {
    autosp_error_t err;
    if (autosp_world_init(&argc, &argv, &err) != AUTOSP_OK) return cli_fail(prog, &err);
    int rank = autosp_world_rank(), world = autosp_world_size();
    /* every rank reads the same flags and data and meets the same errors: rank 0 says them */
    if (rank != 0 && !freopen("/dev/null", "w", stderr)) return 1;
    options_t o;
    int rc = parse_args(argc, argv, &o);
    if (rc == 0) rc = run(&o, rank, world);
    autosp_world_finalize();
    return rc < 0 ? 0 : rc;
}
