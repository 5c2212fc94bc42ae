/* autosp-compile: load, verify, bind and write a graph; print its cost table or a Graphviz view.
 * Exit 0 ok, 2 bad input (message on stderr), 1 internal error. No output file is created on
 * failure: outputs are written only after every check passed, each one atomically. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char *prog = "autosp-compile";

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: autosp-compile IN.json [-o OUT.json] [--set SYM=VAL]... [--sp P] [--dp D]\n"
        "                      [--autodiff [--ac POLICY] [--recompute-budget F] [--machine M]\n"
        "                       [--loss-chunk N|planned|off] [--mlp-tile N|planned|off]\n"
        "                       [--norm-tile N|planned|off]]\n"
        "                      [--info]\n"
        "                      [--dot OUT.dot] [--zero 0-3] [--max-seq --mem BYTES]\n"
        "                      [--backend cpu|none]\n"
        "\n"
        "Loads and verifies a graph (docs/json-format.md), binds shape symbols, and writes it.\n"
        "\n"
        "  -o, --output OUT.json  write the verified graph (with the bindings) to OUT.json\n"
        "  --set SYM=VAL          bind shape symbol SYM (e.g. --set S=8192); repeatable\n"
        "  --sp P                 rewrite the single-device graph into the program of one rank\n"
        "                         of P-way sequence parallelism: pad_sequence, sp_shard, ulysses,\n"
        "                         exact_loss (docs/passes.md)\n"
        "  --dp D                 and D-way data parallelism (world = D x P ranks)\n"
        "  --ulysses U, --ring R  2-D sequence parallelism: P = U x R, Ulysses over groups of\n"
        "                         U ranks and ring attention over R of them (zigzag order);\n"
        "                         either one gives the other (default: --ring 1)\n"
        "  --autodiff             append the backward graph; the outputs become the loss and\n"
        "                         \"<param>.grad\" for every parameter (with --sp or --dp, summed\n"
        "                         over all ranks by grad_sync)\n"
        "  --ac POLICY            activation checkpointing of the joint graph: none, full,\n"
        "                         mincut-conservative or sac (default sac; docs/checkpointing.md)\n"
        "  --recompute-budget F   sac: recompute at most F of the step's modelled time\n"
        "                         (default 0.1)\n"
        "  --loss-chunk N         --autodiff: the lm head and its cross-entropy fused and run\n"
        "                         over chunks of N rows, so no more than a chunk of the logits\n"
        "                         exists (chunked_loss, docs/passes.md); planned (default): the\n"
        "                         planner's size; off: logits whole, saved for the backward\n"
        "  --mlp-tile N           --autodiff: Llama's MLP fused and run over tiles of N rows,\n"
        "                         so no more than a tile of its F-wide values exists\n"
        "                         (tiled_mlp, docs/passes.md); planned (default): tiled at\n"
        "                         the planner's size under --ac full only; off: never tiled\n"
        "  --norm-tile N          --autodiff: each norm fused into the projections reading\n"
        "                         it, normalising tiles of N rows (tiled_norm,\n"
        "                         docs/passes.md); planned (default): under --ac full only\n"
        "  --no-prefetch          --zero 3: every parameter gathered at its place, blocking\n"
        "                         (unshard prefetch 0), not issued right after the one before\n"
        "  --machine M            the cost model's machine: cpu (default: 100 GFLOP/s, 10 GB/s\n"
        "                         memory, 5 GB/s network), h100 (600 TFLOP/s, 3 TB/s, 200 GB/s),\n"
        "                         or FLOPS,MEM_BYTES,NET_BYTES per second\n"
        "  --info                 print nodes by op, parameter count, the FLOPs of one run\n"
        "                         (forward, or forward and backward after --autodiff), the\n"
        "                         bytes of every activation and every collective with the\n"
        "                         bytes each rank sends (needs every symbol bound)\n"
        "  --dot OUT.dot          write a Graphviz view of the graph (split tensors coloured:\n"
        "                         green by sequence, purple by heads, orange a\n"
        "                         partial sum over ranks)\n"
        "  --zero 0-3             the memory plan (--info, --max-seq) without or with ZeRO-1\n"
        "                         (f32 master weights and AdamW state sharded over the world),\n"
        "                         ZeRO-2 (the gradients too: --autodiff reduce-scatters\n"
        "                         each one, grad_shard) or ZeRO-3 (the parameters too, each\n"
        "                         gathered before each reader, param_shard); default 1 when\n"
        "                         the world has more than one rank\n"
        "  --max-seq              print, for every policy and every sp (a power of two dividing\n"
        "                         the world of --sp x --dp ranks; dp = world / sp), the longest\n"
        "                         S whose training step fits --mem per rank; each sp as\n"
        "                         ulysses x ring with the most Ulysses the heads allow, or\n"
        "                         with --ring's ring (rows for the sp it divides); S also a\n"
        "                         multiple of sp and 2 x ring (nothing padded)\n"
        "  --mem BYTES            memory of one rank, e.g. 80GiB (units B KB MB GB KiB MiB GiB)\n"
        "  --seq-step N           --max-seq: S is a multiple of N (default 1024)\n"
        "  --seq-limit N          --max-seq: search S up to N (default 16777216)\n"
        "  --exhaustive           --max-seq: compile every candidate S of a doubling and\n"
        "                         bisection (default: a compile's plan, re-planned at other S,\n"
        "                         predicts the answer, which is then compiled)\n"
        "  --backend cpu|none     cpu: fail at compile time on a node the cpu backend has no\n"
        "                         kernel for (naming the node, op and dtype); none: plan no\n"
        "                         kernel workspace (a device with no backend here). Default:\n"
        "                         plan the cpu backend's workspace, check no kernels\n"
        "  -h, --help             print this help\n"
        "\n"
        "Exit status: 0 ok, 2 bad input or usage, 1 internal error.\n");
}

typedef struct options {
    const char *in, *out, *dot;
    const char *sets[64];
    int n_sets;
    bool info, autodiff, max_seq, exhaustive, no_prefetch;
    int64_t sp, dp;                         /* 0: not given */
    int64_t ulysses, ring;                  /* 0: not given */
    int64_t zero, mem, seq_step, seq_limit; /* zero -1: not given */
    autosp_ac_config_t ac;
    int64_t loss_chunk, mlp_tile, norm_tile; /* autosp_parallel_config_t's */
    const autosp_backend_t *plan_backend;    /* whose workspace is planned */
    bool check_backend;                      /* --backend given: its kernels are checked */
} options_t;

/* cpu, h100 (sustained, not peak: about 60% of the bf16 dense peak, HBM3, NVLink all-to-all),
 * or three rates. */
static bool parse_machine(const char *s, autosp_machine_t *m) {
    if (!strcmp(s, "cpu")) {
        *m = autosp_machine_default();
        return true;
    }
    if (!strcmp(s, "h100")) {
        *m = (autosp_machine_t){600e12, 3e12, 200e9};
        return true;
    }
    char extra;
    double f, b, n;
    if (sscanf(s, "%lf,%lf,%lf%c", &f, &b, &n, &extra) != 3 || !(f > 0 && b > 0 && n > 0))
        return false;
    *m = (autosp_machine_t){f, b, n};
    return true;
}

static int parse_args(int argc, char **argv, options_t *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return -1;
        } else if (!strcmp(a, "--info")) {
            o->info = true;
        } else if (!strcmp(a, "--autodiff")) {
            o->autodiff = true;
        } else if (!strcmp(a, "--max-seq")) {
            o->max_seq = true;
        } else if (!strcmp(a, "--exhaustive")) {
            o->exhaustive = true;
        } else if (!strcmp(a, "--no-prefetch")) {
            o->no_prefetch = true;
        } else if (!strcmp(a, "--ac") || !strcmp(a, "--recompute-budget")) {
            if (!has_value) return cli_usage_error(prog, "%s needs a value", a);
            int rc = cli_parse_ac(prog, a, argv[++i], &o->ac);
            if (rc) return rc;
        } else if (!strcmp(a, "--loss-chunk") || !strcmp(a, "--mlp-tile") ||
                   !strcmp(a, "--norm-tile")) {
            if (!has_value) return cli_usage_error(prog, "%s needs a value", a);
            int64_t *rows = a[2] == 'l'   ? &o->loss_chunk
                            : a[2] == 'm' ? &o->mlp_tile
                                          : &o->norm_tile;
            int rc = cli_parse_rows(prog, a, argv[++i], rows);
            if (rc) return rc;
        } else if (!strcmp(a, "--machine")) {
            if (!has_value) return cli_usage_error(prog, "%s needs a value", a);
            if (!parse_machine(argv[++i], &o->ac.machine))
                return cli_usage_error(prog,
                                       "--machine \"%s\": expected cpu, h100 or three positive "
                                       "rates FLOPS,MEM_BYTES,NET_BYTES (e.g. 1e14,2e12,1e11)",
                                       argv[i]);
        } else if (!strcmp(a, "--backend")) {
            if (!has_value) return cli_usage_error(prog, "%s needs a value", a);
            const char *name = argv[++i];
            if (strcmp(name, "cpu") && strcmp(name, "none"))
                return cli_usage_error(prog, "--backend \"%s\": expected cpu or none", name);
            o->check_backend = !strcmp(name, "cpu");
            o->plan_backend = o->check_backend ? autosp_backend_cpu() : NULL;
        } else if (!strcmp(a, "--mem")) {
            if (!has_value) return cli_usage_error(prog, "%s needs a value", a);
            if (!cli_parse_bytes(argv[++i], &o->mem))
                return cli_usage_error(prog, "--mem \"%s\": expected a size such as 80GiB",
                                       argv[i]);
        } else if (!strcmp(a, "--zero") || !strcmp(a, "--seq-step") || !strcmp(a, "--seq-limit")) {
            if (!has_value) return cli_usage_error(prog, "%s needs a value", a);
            bool zero = !strcmp(a, "--zero");
            int64_t *v = zero ? &o->zero : !strcmp(a, "--seq-step") ? &o->seq_step : &o->seq_limit;
            if (!cli_parse_int(argv[++i], zero ? 0 : 1, zero ? 3 : INT64_MAX / 2, v))
                return cli_usage_error(prog, "%s \"%s\": expected %s", a, argv[i],
                                       zero ? "0, 1, 2 or 3" : "a positive integer");
        } else if (!strcmp(a, "--sp") || !strcmp(a, "--dp") || !strcmp(a, "--ulysses") ||
                   !strcmp(a, "--ring")) {
            if (!has_value) return cli_usage_error(prog, "%s needs a value", a);
            int64_t *v = !strcmp(a, "--sp")        ? &o->sp
                         : !strcmp(a, "--dp")      ? &o->dp
                         : !strcmp(a, "--ulysses") ? &o->ulysses
                                                   : &o->ring;
            if (!cli_parse_int(argv[++i], 1, 1 << 20, v))
                return cli_usage_error(prog, "%s \"%s\": expected a positive integer", a, argv[i]);
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "--dot") ||
                   !strcmp(a, "--set")) {
            if (!has_value) return cli_usage_error(prog, "%s needs a value", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--dot"))
                o->dot = v;
            else if (!strcmp(a, "--set")) {
                if (o->n_sets == (int)(sizeof o->sets / sizeof o->sets[0]))
                    return cli_usage_error(prog, "too many --set flags");
                o->sets[o->n_sets++] = v;
            } else
                o->out = v;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error(prog, "unknown option \"%s\"", a);
        } else if (o->in) {
            return cli_usage_error(prog, "more than one input graph (\"%s\" and \"%s\")", o->in, a);
        } else {
            o->in = a;
        }
    }
    if (!o->in) return cli_usage_error(prog, "no input graph given");
    if (o->max_seq && !o->mem) return cli_usage_error(prog, "--max-seq needs --mem BYTES");
    if (o->mem && !o->max_seq) return cli_usage_error(prog, "--mem is only used by --max-seq");
    if (o->exhaustive && !o->max_seq)
        return cli_usage_error(prog, "--exhaustive is only used by --max-seq");
    int rc = cli_sp_mesh(prog, &o->sp, &o->ulysses, &o->ring);
    if (rc) return rc;
    if (o->zero < 0) o->zero = (o->sp ? o->sp : 1) * (o->dp ? o->dp : 1) > 1;
    return 0;
}

/* --set SYM=VAL */
static int bind_symbol(autosp_graph_t *g, const char *set) {
    const char *eq = strchr(set, '=');
    char name[AUTOSP_MAX_NAME];
    int64_t value;
    if (!eq || eq == set || (size_t)(eq - set) >= sizeof name)
        return cli_usage_error(prog, "--set \"%s\": expected SYM=VALUE, e.g. --set S=8192", set);
    memcpy(name, set, (size_t)(eq - set));
    name[eq - set] = '\0';
    if (!cli_parse_int(eq + 1, 1, INT64_MAX, &value))
        return cli_usage_error(prog, "--set %s: \"%s\" is not a positive integer", name, eq + 1);
    autosp_error_t err;
    if (autosp_symbol_bind(g, name, value, &err) != AUTOSP_OK) return cli_fail(prog, &err);
    return 0;
}

static autosp_parallel_config_t parallel_config(const options_t *o) {
    autosp_parallel_config_t cfg = autosp_parallel_config_default();
    cfg.sp = o->sp ? (int)o->sp : 1;
    cfg.dp = o->dp ? (int)o->dp : 1;
    cfg.ring = o->ring ? (int)o->ring : 1;
    cfg.ac = o->ac;
    cfg.loss_chunk = o->loss_chunk;
    cfg.mlp_tile = o->mlp_tile;
    cfg.norm_tile = o->norm_tile;
    cfg.zero3_prefetch = o->no_prefetch ? AUTOSP_PREFETCH_OFF : 0;
    if (o->zero >= 2) cfg.zero_stage = (int)o->zero; /* the shards are in the graph */
    return cfg;
}

static double gib(int64_t bytes) {
    return (double)bytes / (1 << 30);
}

/* "12.35 GiB" or "3.50 MiB"; each call uses the next of a few buffers, so one printf can
 * take several. */
static const char *human(int64_t bytes) {
    static char text[12][32];
    static int next;
    char *t = text[next++ % 12];
    if (bytes >= (int64_t)1 << 30)
        snprintf(t, sizeof text[0], "%.2f GiB", gib(bytes));
    else
        snprintf(t, sizeof text[0], "%.2f MiB", (double)bytes / (1 << 20));
    return t;
}

/* --info of a training step: what checkpointing chose and the memory plan of one rank. */
static int print_step(const options_t *o, const autosp_graph_t *g) {
    const autosp_ac_report_t *r = autosp_graph_checkpoint_report(g);
    autosp_memory_plan_t m;
    autosp_error_t err;
    if (autosp_plan_memory(g, (int)o->zero, o->plan_backend, &m, &err) != AUTOSP_OK)
        return cli_fail(prog, &err);
    if (r)
        printf("\ncheckpointing (%s): %d tensors saved for the backward (%s); %d nodes "
               "recomputed, %.4g FLOPs = %.1f%% of the step's, %.1f%% of its modelled time\n",
               autosp_ac_policy_name(r->policy), r->saved_tensors, human(r->saved_bytes),
               r->recomputed_nodes, r->recompute_flops,
               100 * r->recompute_flops / (r->step_flops > 0 ? r->step_flops : 1),
               100 * r->recompute_seconds / (r->step_seconds > 0 ? r->step_seconds : 1));
    printf("\nmemory plan of one rank (ZeRO-%d):\n"
           "  parameters %s, gradients %s, f32 master weights %s, AdamW m and v %s\n"
           "  inputs %s, activations at most %s, collective buffer at most %s, workspace at "
           "most %s\n"
           "  arena %s + master + optimizer = total %s\n",
           (int)o->zero, human(m.params), human(m.grads), human(m.master), human(m.optimizer),
           human(m.inputs), human(m.activations), human(m.comm), human(m.workspace), human(m.arena),
           human(m.total));
    return 0;
}

static const char *symbol_value(const autosp_graph_t *g, const char *name) {
    static char text[32];
    int64_t v = 0;
    for (int i = 0; i < autosp_graph_num_symbols(g); i++)
        if (!strcmp(autosp_symbol_name(g, i), name)) v = autosp_symbol_value(g, i);
    if (v <= 0) return "(unbound)";
    snprintf(text, sizeof text, "%lld", (long long)v);
    return text;
}

/* A --max-seq row where nothing fits: what is fixed (no S in it) against the memory, or the
 * smallest candidate's total when the fixed part alone fits. */
static void print_no_fit(autosp_ac_policy_t policy, int sp, const char *mesh, int world,
                         int64_t smallest, int64_t mem, const autosp_memory_plan_t *p) {
    int64_t fixed = p->params + p->grads + p->master + p->optimizer;
    printf("%-20s %4d %5s %4d %10s   ", autosp_ac_policy_name(policy), sp, mesh, world / sp, "-");
    const char *alone = p->master + p->optimizer > mem ? "the optimizer state alone"
                        : p->params > mem              ? "the parameters alone"
                        : p->grads > mem               ? "the gradients alone"
                                                       : NULL;
    if (fixed > mem && alone)
        printf("(nothing fits: %s exceeds the %s of a rank; parameters %.2f + gradients "
               "%.2f + f32 master %.2f + AdamW %.2f = %.2f GiB before any activation)\n",
               alone, human(mem), gib(p->params), gib(p->grads), gib(p->master), gib(p->optimizer),
               gib(fixed));
    else if (fixed > mem)
        printf("(nothing fits: parameters %.2f + gradients %.2f + f32 master %.2f + AdamW %.2f "
               "= %.2f GiB before any activation)\n",
               gib(p->params), gib(p->grads), gib(p->master), gib(p->optimizer), gib(fixed));
    else
        printf("(not even S = %lld fits: it needs %.2f GiB, %.2f of them fixed)\n",
               (long long)smallest, gib(p->total), gib(fixed));
}

/* The ring of --max-seq's rows at sp: the one forced (--ring R, or --sp / --ulysses), 0 when it
 * does not divide sp (no row); else the most Ulysses the heads allow. */
static int max_seq_ring(const options_t *o, const autosp_graph_t *forward, int sp) {
    if (o->ring) return sp % o->ring ? 0 : (int)o->ring; /* cli_sp_mesh sets it for --ulysses */
    return autosp_mesh_ring_for_heads(forward, sp);
}

/* --max-seq: one row per policy and sp. */
static int print_max_seq(const options_t *o, const autosp_graph_t *forward) {
    static const autosp_ac_policy_t policies[] = {AUTOSP_AC_NONE, AUTOSP_AC_MINCUT_CONSERVATIVE,
                                                  AUTOSP_AC_SAC, AUTOSP_AC_FULL};
    autosp_seq_query_t q = {.symbol = "S",
                            .multiple = o->seq_step ? o->seq_step : 1024,
                            .limit = o->seq_limit ? o->seq_limit : 1 << 24,
                            .mem_bytes = o->mem,
                            .zero_stage = (int)o->zero,
                            .backend = o->plan_backend,
                            .exhaustive = o->exhaustive};
    int world = (int)((o->sp ? o->sp : 1) * (o->dp ? o->dp : 1));
    printf("longest trainable S of \"%s\": %d ranks of %.2f GiB, ZeRO-%d, batch %s per "
           "data-parallel rank, S a multiple of %lld\n\n",
           autosp_graph_name(forward), world, gib(o->mem), (int)o->zero, symbol_value(forward, "B"),
           (long long)q.multiple);
    printf("%-20s %4s %5s %4s %10s %11s %11s %11s %10s\n", "policy", "sp", "UxR", "dp", "max S",
           "total GiB", "activ. GiB", "saved GiB", "recompute");
    int64_t hint[sizeof policies / sizeof policies[0]] = {0}; /* the last sp's answers */
    int compiles = 0, replans = 0;
    autosp_seq_search_t *search = autosp_seq_search_new(forward);
    if (!search) return cli_fail(prog, &(autosp_error_t){AUTOSP_ERR_NOMEM, "out of memory"});
    for (int sp = 1; sp <= world; sp *= 2) {
        const int ring = max_seq_ring(o, forward, sp);
        if (world % sp || !ring) continue;
        char mesh[32];
        snprintf(mesh, sizeof mesh, "%dx%d", sp / ring, ring);
        for (size_t k = 0; k < sizeof policies / sizeof policies[0]; k++) {
            autosp_parallel_config_t cfg = parallel_config(o);
            cfg.sp = sp;
            cfg.dp = world / sp;
            cfg.ring = ring;
            cfg.ac.policy = policies[k];
            autosp_seq_answer_t a;
            autosp_error_t err;
            q.hint = 2 * hint[k]; /* activations halve with each doubling of sp */
            if (autosp_seq_search_run(search, &cfg, &q, &a, &err) != AUTOSP_OK) {
                autosp_seq_search_free(search);
                return cli_fail(prog, &err);
            }
            hint[k] = a.seq, compiles += a.compiles, replans += a.replans;
            if (a.seq == 0) {
                print_no_fit(policies[k], sp, mesh, world, q.multiple, o->mem, &a.plan);
                continue;
            }
            printf("%-20s %4d %5s %4d %10lld %11.2f %11.2f %11.2f %9.1f%%\n",
                   autosp_ac_policy_name(policies[k]), sp, mesh, world / sp, (long long)a.seq,
                   gib(a.plan.total), gib(a.plan.activations), gib(a.ac.saved_bytes),
                   100 * a.ac.recompute_seconds / (a.ac.step_seconds > 0 ? a.ac.step_seconds : 1));
        }
    }
    autosp_seq_search_free(search);
    printf("\nrecompute: modelled share of the step's time spent recomputing "
           "(docs/checkpointing.md)\nsearch: %d compiles, %d plans of a compiled step%s\n",
           compiles, replans, o->exhaustive ? " (exhaustive)" : "");
    return 0;
}

/* Runs the requested passes in pipeline order; *g is replaced by each pass's result. */
static int run_passes(const options_t *o, autosp_graph_t **g) {
    autosp_error_t err;
    autosp_graph_t *next = NULL;
    autosp_parallel_config_t cfg = parallel_config(o);
    if (o->autodiff)
        next = autosp_compile_training(*g, &cfg, &err);
    else if (o->sp || o->dp)
        next = autosp_parallelize(*g, &cfg, &err);
    else
        return 0;
    if (!next) return cli_fail(prog, &err);
    autosp_graph_free(*g);
    *g = next;
    return 0;
}

/* --sp P alone: the planner's ulysses x ring (autosp_plan_mesh), its candidates in --info. */
static int choose_mesh(options_t *o, const autosp_graph_t *g) {
    if (o->ring || !o->sp || o->sp == 1) {
        if (!o->ring) o->ring = 1, o->ulysses = o->sp ? o->sp : 1;
        return 0;
    }
    autosp_parallel_config_t cfg = parallel_config(o);
    cfg.zero_stage = (int)o->zero;
    cfg.backend = o->plan_backend;
    autosp_mesh_candidate_t c[64];
    int best, n = autosp_plan_mesh(g, &cfg, &o->ac.machine, c, 64, &best);
    if (best < 0) {
        fprintf(stderr, "%s: %s\n", prog, c[0].why);
        return autosp_status_exit_code(c[0].status);
    }
    o->ring = c[best].ring, o->ulysses = c[best].ulysses;
    if (!o->info) return 0;
    printf("sequence parallelism: sp = %lld as ulysses x ring, the modelled training step of "
           "each (used: the most ulysses within 5%% of the fastest; --ulysses/--ring force "
           "one)\n",
           (long long)o->sp);
    printf("%8s %6s %14s %14s %12s\n", "ulysses", "ring", "step (model)", "sent/rank", "peak/rank");
    for (int i = 0; i < n; i++) {
        if (c[i].status != AUTOSP_OK) {
            printf("%8d %6d  not possible: %s\n", c[i].ulysses, c[i].ring, c[i].why);
            continue;
        }
        printf("%8d %6d %12.4f s %14s %12s%s\n", c[i].ulysses, c[i].ring, c[i].step_seconds,
               human((int64_t)c[i].bytes_sent), c[i].memory >= 0 ? human(c[i].memory) : "-",
               i == best ? "  <- chosen" : "");
    }
    printf("\n");
    return 0;
}

static int run(options_t *o, autosp_graph_t **gp) {
    autosp_error_t err;
    for (int i = 0; i < o->n_sets; i++) {
        int rc = bind_symbol(*gp, o->sets[i]);
        if (rc) return rc;
    }
    if (o->max_seq) return print_max_seq(o, *gp);
    int rc = choose_mesh(o, *gp);
    if (rc) return rc;
    rc = run_passes(o, gp);
    if (rc) return rc;
    autosp_graph_t *g = *gp;
    if (autosp_graph_verify(g, o->info ? AUTOSP_VERIFY_BOUND : 0, &err) != AUTOSP_OK)
        return cli_fail(prog, &err);
    if (o->check_backend && autosp_backend_check(o->plan_backend, g, &err) != AUTOSP_OK)
        return cli_fail(prog, &err);
    /* every output is rendered first, then all files are written together or not at all */
    const char *paths[2];
    char *texts[2] = {NULL, NULL};
    int n = 0;
    if (o->out && !(paths[n] = o->out, texts[n++] = autosp_graph_save_string(g, &err))) rc = 1;
    if (!rc && o->dot && !(paths[n] = o->dot, texts[n++] = autosp_graph_dot_string(g, &err)))
        rc = 1;
    if (rc) rc = cli_fail(prog, &err);
    if (!rc && o->info && autosp_graph_print_info(g, stdout, &err) != AUTOSP_OK)
        rc = cli_fail(prog, &err);
    if (!rc && o->info && o->autodiff) rc = print_step(o, g);
    if (!rc && n && cli_write_files(n, paths, (const char *const *)texts, &err) != AUTOSP_OK)
        rc = cli_fail(prog, &err);
    for (int i = 0; i < n; i++) autosp_free(texts[i]);
    return rc;
}

int main(int argc, char **argv) {
    options_t o = {
        .ac = autosp_ac_config_default(), .zero = -1, .plan_backend = autosp_backend_cpu()};
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    autosp_error_t err;
    autosp_graph_t *g = autosp_graph_load_file(o.in, &err);
    if (!g) return cli_fail(prog, &err);
    rc = run(&o, &g);
    autosp_graph_free(g);
    return rc;
}
