/* bench_compile.c: how long the compiler takes, from the JSON file to the per-rank training
 * step, on the Llama 3 examples.
 *
 *     bench_compile [--runs N] [--sp P] [--seq S] [EXAMPLES_DIR]
 *
 * One run is what autosp-compile --sp P --autodiff does before it writes anything: load the
 * forward graph (parse, verify, shape inference), bind S, then autosp_compile_training with
 * the default config at sp P (sp_shard, ulysses, exact_loss, autodiff, checkpoint with sac,
 * grad_sync, the verifier after each). Each model runs N times (default 7, after one untimed
 * warm-up); the table gives the best and the median wall time, split into the load and the
 * passes, and the output nodes compiled per second of the best run. Compile time should grow
 * linearly in the nodes, so nodes/s should stay roughly the same from 1B to 70B.
 *
 * A benchmark, not a test: it prints and checks nothing beyond the library's errors.
 * Exit 0 ok, 1 a library error, 2 bad flags.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <autosp/autosp.h>

#include "bench_util.h"

#define MAX_RUNS 100

static const char *const models[] = {"llama3.2-1b", "llama3.1-8b", "llama3.1-70b"};

typedef struct options {
    int runs, sp;
    long long seq;
    const char *dir;
} options_t;

typedef struct timing {
    double load_s, passes_s;
} timing_t;

static int fail(const char *what, const autosp_error_t *err) {
    fprintf(stderr, "bench_compile: %s: %s\n", what, err->message);
    return 1;
}

/* One run: load and bind, then the passes. *nodes_in, *nodes_out: the graphs' sizes. */
static int compile_once(const options_t *o, const char *path, timing_t *t, int *nodes_in,
                        int *nodes_out) {
    autosp_error_t err;
    autosp_parallel_config_t cfg = autosp_parallel_config_default();
    cfg.sp = o->sp;
    double t0 = now_s();
    autosp_graph_t *forward = autosp_graph_load_file(path, &err);
    if (!forward) return fail(path, &err);
    if (autosp_symbol_bind(forward, "S", o->seq, &err) != AUTOSP_OK) {
        autosp_graph_free(forward);
        return fail(path, &err);
    }
    double t1 = now_s();
    autosp_graph_t *step = autosp_compile_training(forward, &cfg, &err);
    double t2 = now_s();
    *nodes_in = autosp_graph_num_nodes(forward);
    autosp_graph_free(forward);
    if (!step) return fail(path, &err);
    *nodes_out = autosp_graph_num_nodes(step);
    autosp_graph_free(step);
    *t = (timing_t){t1 - t0, t2 - t1};
    return 0;
}

/* The best and the median of n values (sorts them). */
static void best_median(double *v, int n, double *best, double *med) {
    *med = median(v, n);
    *best = v[0];
}

static int bench_model(const options_t *o, const char *model) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.json", o->dir, model);
    double load[MAX_RUNS], passes[MAX_RUNS], total[MAX_RUNS];
    int in = 0, out = 0;
    timing_t t;
    if (compile_once(o, path, &t, &in, &out)) return 1; /* warm-up: page cache, allocator */
    for (int r = 0; r < o->runs; r++) {
        if (compile_once(o, path, &t, &in, &out)) return 1;
        load[r] = t.load_s;
        passes[r] = t.passes_s;
        total[r] = t.load_s + t.passes_s;
    }
    double load_best, load_med, pass_best, pass_med, best, med;
    best_median(load, o->runs, &load_best, &load_med);
    best_median(passes, o->runs, &pass_best, &pass_med);
    best_median(total, o->runs, &best, &med);
    printf("%-14s %9d %9d %9.1f %9.1f %9.1f %9.1f %11.0f\n", model, in, out, 1e3 * best, 1e3 * med,
           1e3 * load_best, 1e3 * pass_best, out / best);
    return 0;
}

static int parse_args(int argc, char **argv, options_t *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--runs") && i + 1 < argc)
            o->runs = atoi(argv[++i]);
        else if (!strcmp(a, "--sp") && i + 1 < argc)
            o->sp = atoi(argv[++i]);
        else if (!strcmp(a, "--seq") && i + 1 < argc)
            o->seq = atoll(argv[++i]);
        else if (a[0] != '-')
            o->dir = a;
        else {
            fprintf(stderr, "usage: bench_compile [--runs N] [--sp P] [--seq S] [EXAMPLES_DIR]\n");
            return 2;
        }
    }
    if (o->runs < 1 || o->runs > MAX_RUNS || o->sp < 1 || o->seq < 1) {
        fprintf(stderr, "bench_compile: --runs 1..%d, --sp and --seq at least 1\n", MAX_RUNS);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv) {
    options_t o = {.runs = 7, .sp = 8, .seq = 8192, .dir = AUTOSP_EXAMPLES_DIR};
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc;
    printf("# compile of the training step: load + autosp_compile_training, sp %d, S %lld, "
           "default config (sac, grad_sync); %d runs after a warm-up; load average %.2f\n",
           o.sp, o.seq, o.runs, load_average());
    printf("%-14s %9s %9s %9s %9s %9s %9s %11s\n", "model", "nodes_in", "nodes_out", "best_ms",
           "median_ms", "load_ms", "passes_ms", "nodes/s");
    for (size_t m = 0; m < sizeof models / sizeof models[0]; m++)
        if (bench_model(&o, models[m])) return 1;
    printf("# best_ms, median_ms: load + passes; load_ms, passes_ms: the best of each; "
           "nodes/s: nodes_out / best_ms\n");
    return 0;
}
