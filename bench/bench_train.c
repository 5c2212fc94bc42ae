/* bench_train.c: training-step throughput and memory of the single-process trainer.
 *
 *     bench_train [--quick] [--steps N] [--threads T] [--dtype f32|bf16|both] [--preset P]
 *
 * First measures the machine's cblas_sgemm peak (best of 5 runs of one square product), then,
 * for each model configuration, builds the forward graph from a preset, binds B and S, creates
 * a trainer (autodiff + executor + AdamW), runs one warm-up step and times N steps. One row
 * per configuration: step time, tokens/s, achieved GFLOP/s (the op-table FLOP count of the
 * joint forward+backward graph over the step time), its share of the sgemm peak, the planned
 * and the measured arena bytes, the optimizer state, and the peak RSS of the process so far.
 * With --dtype both (the default) every configuration runs in f32 and in bf16 (mixed precision:
 * bf16 weights and activations, f32 master weights, gradients and AdamW state); a bf16 row's
 * %peak is against oneDNN's bf16 matmul peak at that model's linear-layer shapes, measured in
 * the same run (built with oneDNN), and a recap gives bf16 / f32 tokens/s per configuration.
 *
 * A benchmark, not a test: it prints a table and asserts nothing. Exit 0 ok, 2 bad flags,
 * 1 when the library reports an error.
 */
#define _POSIX_C_SOURCE 200809L

#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <autosp/autosp.h>

#include "bench_blas.h"
#ifdef BENCH_HAVE_DNNL
#include <omp.h>
#define BENCH_NAME "bench_train"
#include "bench_dnnl.h"
#endif

#define PEAK_N    2048 /* M = N = K of the peak sgemm */
#define PEAK_RUNS 5
#define MIN_TIME  2.0 /* seconds of timed steps when --steps is not given */
#define MIN_STEPS 2

typedef struct bench_config {
    const char *preset;
    int64_t B, S;
} bench_config_t;

/* The full sweep, and the smoke-run subset of --quick. */
static const bench_config_t full_configs[] = {
    {"llama-tiny", 1, 1024},   {"llama-tiny", 1, 2048},  {"llama-tiny", 1, 4096},
    {"llama-tiny", 1, 8192},   {"llama-tiny", 1, 16384}, {"llama-small", 1, 1024},
    {"llama-small", 1, 2048},  {"llama-small", 1, 4096}, {"llama-small", 1, 8192},
    {"llama-small", 1, 16384}, {"gpt2-124m", 4, 64},     {"gpt2-124m", 1, 1024},
    {"gpt2-124m", 4, 1024},
};
static const bench_config_t quick_configs[] = {
    {"llama-tiny", 1, 1024},
    {"gpt2-124m", 4, 64},
};
#define MAX_ROWS (2 * (int)(sizeof full_configs / sizeof *full_configs))

typedef struct bench_row {
    const bench_config_t *cfg;
    autosp_dtype_t dtype;
    double peak; /* GFLOP/s the row's %peak is against: sgemm's, or oneDNN bf16's for it */
    int64_t params;
    int steps;
    double step_s, flops;
    int64_t arena, touched, state, max_rss;
} bench_row_t;

static double mib(int64_t bytes) {
    return (double)bytes / (1024.0 * 1024.0);
}

/* ---- one configuration -------------------------------------------------------------------- */

static uint64_t lcg_next(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

/* tokens and labels: deterministic pseudo-random ids < V; positions 0..S-1 in each row. */
static int fill_inputs(autosp_trainer_t *tr, int64_t B, int64_t S, int vocab) {
    int32_t *tokens = autosp_trainer_data(tr, "tokens");
    int32_t *labels = autosp_trainer_data(tr, "labels");
    int32_t *positions = autosp_trainer_data(tr, "positions");
    if (!tokens || !labels || !positions) return -1;
    uint64_t s = 0x5eed;
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < S; i++) {
            tokens[b * S + i] = (int32_t)(lcg_next(&s) % (uint64_t)vocab);
            labels[b * S + i] = (int32_t)(lcg_next(&s) % (uint64_t)vocab);
            positions[b * S + i] = (int32_t)i;
        }
    return 0;
}

static int64_t loss_chunk; /* --loss-chunk: 0 planned, AUTOSP_LOSS_UNCHUNKED off, or rows */

static autosp_status_t run_config(const bench_config_t *bc, autosp_dtype_t dtype, int fixed_steps,
                                  bench_row_t *row, autosp_error_t *err) {
    autosp_model_config_t mc;
    if (!autosp_model_preset(bc->preset, &mc)) {
        snprintf(err->message, sizeof err->message, "unknown preset \"%s\"", bc->preset);
        return err->status = AUTOSP_ERR_INVALID;
    }
    mc.dtype = dtype;
    autosp_status_t st = AUTOSP_OK;
    autosp_trainer_t *tr = NULL;
    autosp_graph_t *g = autosp_model_build(&mc, bc->preset, err);
    if (!g) return err->status;
    autosp_graph_summary_t sum;
    if ((st = autosp_symbol_bind(g, "B", bc->B, err)) != AUTOSP_OK ||
        (st = autosp_symbol_bind(g, "S", bc->S, err)) != AUTOSP_OK ||
        (st = autosp_graph_summarize(g, &sum, err)) != AUTOSP_OK)
        goto done;
    autosp_train_config_t tc = autosp_train_config_default();
    tc.ac.policy = AUTOSP_AC_NONE; /* the kernels' throughput; bench_ac measures checkpointing */
    tc.loss_chunk = loss_chunk;
    if (!(tr = autosp_trainer_new(g, &tc, err))) {
        st = err->status;
        goto done;
    }
    autosp_trainer_init_params(tr, 1234);
    if (fill_inputs(tr, bc->B, bc->S, mc.vocab_size) != 0) {
        snprintf(err->message, sizeof err->message,
                 "%s: the graph has no tokens/labels/positions inputs", bc->preset);
        st = err->status = AUTOSP_ERR_INVALID;
        goto done;
    }
    autosp_step_stats_t stats;
    if ((st = autosp_trainer_step(tr, &stats, err)) != AUTOSP_OK) goto done; /* warm-up */
    int steps = 0;
    double t0 = now_s(), elapsed = 0;
    while (fixed_steps > 0 ? steps < fixed_steps : (steps < MIN_STEPS || elapsed < MIN_TIME)) {
        if ((st = autosp_trainer_step(tr, &stats, err)) != AUTOSP_OK) goto done;
        steps++;
        elapsed = now_s() - t0;
    }
    *row = (bench_row_t){
        .cfg = bc,
        .dtype = dtype,
        .params = sum.num_params,
        .steps = steps,
        .step_s = elapsed / steps,
        .flops = stats.flops,
        .arena = autosp_trainer_arena_bytes(tr),
        .touched = autosp_trainer_touched_bytes(tr),
        .state = autosp_trainer_state_bytes(tr),
        .max_rss = max_rss_bytes(),
    };
done:
    autosp_trainer_free(tr);
    autosp_graph_free(g);
    return st;
}

/* ---- output ------------------------------------------------------------------------------- */

static void print_header(void) {
    printf("%-12s %2s %6s %5s %10s %5s %10s %10s %8s %6s %10s %10s %10s %10s\n", "model", "B", "S",
           "dtype", "params", "steps", "step_ms", "tokens/s", "GFLOP/s", "%peak", "arena_MiB",
           "touch_MiB", "optst_MiB", "maxrss_MiB");
}

static double row_gflops(const bench_row_t *r) {
    return r->flops / r->step_s / 1e9;
}

static void print_row(const bench_row_t *r) {
    double gflops = row_gflops(r), peak = r->peak;
    printf("%-12s %2lld %6lld %5s %10lld %5d %10.1f %10.0f %8.2f %6.1f %10.1f %10.1f %10.1f "
           "%10.1f\n",
           r->cfg->preset, (long long)r->cfg->B, (long long)r->cfg->S, autosp_dtype_name(r->dtype),
           (long long)r->params, r->steps, 1e3 * r->step_s,
           (double)(r->cfg->B * r->cfg->S) / r->step_s, gflops,
           peak > 0 ? 100.0 * gflops / peak : 0.0, mib(r->arena), mib(r->touched), mib(r->state),
           mib(r->max_rss));
    fflush(stdout);
}

/* A noisy neighbour during the first measurement understates the peak and flatters every
 * ratio; the ratios are restated against the higher of a measurement at each end. */
static void print_peak_recap(const bench_row_t *rows, int n, double peak_start, double peak_end) {
    double peak = peak_end > peak_start ? peak_end : peak_start;
    if (peak <= 0) return;
    printf("\ncblas_sgemm peak at end: %.1f GFLOP/s; the f32 rows' %%peak against the higher "
           "(%.1f):\n",
           peak_end, peak);
    for (int i = 0; i < n; i++)
        if (rows[i].dtype == AUTOSP_F32)
            printf("  %-12s B=%lld S=%-6lld %5.1f%%\n", rows[i].cfg->preset,
                   (long long)rows[i].cfg->B, (long long)rows[i].cfg->S,
                   100.0 * row_gflops(&rows[i]) / peak);
}

/* bf16 against f32 of the same configuration, where both ran. */
static void print_dtype_recap(const bench_row_t *rows, int n) {
    bool header = false;
    for (int i = 0; i < n; i++) {
        if (rows[i].dtype != AUTOSP_BF16) continue;
        for (int k = 0; k < n; k++) {
            if (rows[k].dtype != AUTOSP_F32 || rows[k].cfg != rows[i].cfg) continue;
            if (!header)
                printf("\nbf16 against f32 (tokens/s ratio; bf16 GFLOP/s over the bf16 peak):\n");
            header = true;
            printf("  %-12s B=%lld S=%-6lld bf16 %8.0f tok/s, f32 %8.0f tok/s: %.2fx; %.2f of the "
                   "bf16 peak (%.0f GFLOP/s); memory touched %.2f of f32's\n",
                   rows[i].cfg->preset, (long long)rows[i].cfg->B, (long long)rows[i].cfg->S,
                   (double)(rows[i].cfg->B * rows[i].cfg->S) / rows[i].step_s,
                   (double)(rows[k].cfg->B * rows[k].cfg->S) / rows[k].step_s,
                   rows[k].step_s / rows[i].step_s,
                   rows[i].peak > 0 ? row_gflops(&rows[i]) / rows[i].peak : 0.0, rows[i].peak,
                   (double)(rows[i].touched + rows[i].state) /
                       (double)(rows[k].touched + rows[k].state));
        }
    }
}

/* The planned arena per token of llama-tiny across S: roughly constant when attention's
 * memory is O(S) (the S x S score matrix is never planned). */
static void print_linearity_note(const bench_row_t *rows, int n) {
    printf("\nPlanned arena per token, llama-tiny (constant => activation memory O(S), no S x S "
           "scores):\n");
    int64_t max_s = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(rows[i].cfg->preset, "llama-tiny") != 0) continue;
        printf("  S=%-6lld arena/S = %9.0f bytes/token (touched/S = %9.0f)\n",
               (long long)rows[i].cfg->S, (double)rows[i].arena / (double)rows[i].cfg->S,
               (double)rows[i].touched / (double)rows[i].cfg->S);
        max_s = rows[i].cfg->S > max_s ? rows[i].cfg->S : max_s;
    }
    if (max_s > 0)
        printf("  (one f32 S x S score matrix of one head at S=%lld alone would be %.0f MiB)\n",
               (long long)max_s, mib(max_s * max_s * (int64_t)sizeof(float)));
}

/* ---- oneDNN's bf16 peak at a model's shapes ------------------------------------------------ */

#ifdef BENCH_HAVE_DNNL
/* The forward product y (T,N) = x (T,K) W^T of every linear layer shape of the model: its best
 * GFLOP/s (best of 3 samples, each long enough) is the bf16 peak a bf16 row is measured
 * against. oneDNN runs on `threads` OpenMP threads, bf16 A and B, f32 C. */
static double bf16_peak(const bench_config_t *bc, int threads) {
    autosp_model_config_t mc;
    if (!autosp_model_preset(bc->preset, &mc)) return 0;
    int T = (int)(bc->B * bc->S), C = mc.dim, kv = mc.dim / mc.n_heads * mc.n_kv_heads;
    int shapes[5][2] = {{C, C}, {kv, C}, {mc.ffn_dim, C}, {C, mc.ffn_dim}, {mc.vocab_size, C}};
    omp_set_num_threads(threads > 0 ? threads : omp_get_max_threads());
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success) return 0;
    if (dnnl_stream_create(&stream, eng, dnnl_stream_default_flags) != dnnl_success) return 0;
    double best = 0;
    for (int i = 0; i < 5; i++) {
        gemm_t g = {T, shapes[i][0], shapes[i][1], false, true};
        uint16_t *a = calloc((size_t)g.M * g.K, 2), *b = calloc((size_t)g.N * g.K, 2);
        float *c = calloc((size_t)g.M * g.N, sizeof(float));
        for (size_t k = 0; a && k < (size_t)g.M * g.K; k++) a[k] = (uint16_t)(0x3c00 + k % 127);
        for (size_t k = 0; b && k < (size_t)g.N * g.K; k++) b[k] = (uint16_t)(0xbc00 + k % 113);
        dnnl_gemm_t d = {0};
        if (a && b && c && dnnl_gemm_init(&d, eng, &g, dnnl_bf16, a, b, c) == 0 &&
            dnnl_gemm_run(&d, stream) == 0) {
            double t0 = now_s();
            dnnl_gemm_run(&d, stream);
            int reps = (int)(0.05 / (now_s() - t0 + 1e-9)) + 1;
            for (int sample = 0; sample < 3; sample++) {
                t0 = now_s();
                for (int r = 0; r < reps; r++) dnnl_gemm_run(&d, stream);
                double rate = gemm_flops(&g) * reps / (now_s() - t0) / 1e9;
                best = rate > best ? rate : best;
            }
        }
        dnnl_gemm_free(&d);
        free(a), free(b), free(c);
    }
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(eng);
    return best;
}
#else
static double bf16_peak(const bench_config_t *bc, int threads) {
    (void)bc, (void)threads;
    return 0; /* built without oneDNN: no bf16 peak to compare with */
}
#endif

static int usage(FILE *f) {
    fprintf(f,
            "usage: bench_train [--quick] [--steps N] [--threads T] [--dtype f32|bf16|both] "
            "[--preset P] [--loss-chunk planned|off|N]\n"
            "  --quick      llama-tiny S=1024 and gpt2-124m B=4 S=64 only, 2 steps each\n"
            "  --steps N    time exactly N steps per configuration (default: >= %.0f s and "
            ">= %d steps)\n"
            "  --threads T  OpenBLAS threads (default: OpenBLAS's own default)\n"
            "  --dtype D    f32, bf16 or both (default both: a row of each per configuration)\n"
            "  --preset P   only the configurations of model preset P (e.g. gpt2-124m)\n"
            "  --loss-chunk the lm head and loss in the planner's chunks (planned, the default),\n"
            "               whole (off), or in chunks of N rows\n",
            MIN_TIME, MIN_STEPS);
    return f == stdout ? 0 : 2;
}

static int parse_positive(const char *flag, const char *s, int *out) {
    char *end;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || *end != '\0' || v <= 0 || v > 1000000) {
        fprintf(stderr, "bench_train: %s expects a positive integer, found \"%s\"\n", flag,
                s ? s : "");
        return -1;
    }
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv) {
    int quick = 0, steps = 0, threads = 0;
    bool want[2] = {true, true}; /* f32, bf16 */
    const char *only = NULL;     /* --preset */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else if (strcmp(argv[i], "--dtype") == 0) {
            const char *d = i + 1 < argc ? argv[++i] : "";
            want[0] = !strcmp(d, "f32") || !strcmp(d, "both");
            want[1] = !strcmp(d, "bf16") || !strcmp(d, "both");
            if (!want[0] && !want[1]) {
                fprintf(stderr, "bench_train: --dtype expects f32, bf16 or both, found \"%s\"\n",
                        d);
                return 2;
            }
        } else if (strcmp(argv[i], "--preset") == 0) {
            only = i + 1 < argc ? argv[++i] : "";
        } else if (strcmp(argv[i], "--loss-chunk") == 0) {
            const char *v = i + 1 < argc ? argv[++i] : "";
            int n = 0;
            if (!strcmp(v, "off"))
                loss_chunk = AUTOSP_LOSS_UNCHUNKED;
            else if (!strcmp(v, "planned"))
                loss_chunk = 0;
            else if (parse_positive("--loss-chunk", v, &n) == 0)
                loss_chunk = n;
            else
                return 2;
        } else if (strcmp(argv[i], "--steps") == 0) {
            if (parse_positive("--steps", i + 1 < argc ? argv[++i] : NULL, &steps) != 0) return 2;
        } else if (strcmp(argv[i], "--threads") == 0) {
            if (parse_positive("--threads", i + 1 < argc ? argv[++i] : NULL, &threads) != 0)
                return 2;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return usage(stdout);
        } else {
            fprintf(stderr, "bench_train: unknown argument \"%s\"\n", argv[i]);
            return usage(stderr);
        }
    }
    if (quick && steps == 0) steps = 2;
    autosp_model_config_t probe;
    if (only && !autosp_model_preset(only, &probe)) {
        fprintf(stderr, "bench_train: --preset \"%s\" is not a model preset\n", only);
        return 2;
    }
    if (threads > 0) openblas_set_num_threads(threads);

    const bench_config_t *configs = quick ? quick_configs : full_configs;
    int n_configs = quick ? (int)(sizeof quick_configs / sizeof *quick_configs)
                          : (int)(sizeof full_configs / sizeof *full_configs);

    printf("libautosp %s training-step benchmark (one process, f32 and bf16, AdamW)\n",
           AUTOSP_VERSION_STRING);
    printf("OpenBLAS: %s; threads %d (%s)\n", openblas_get_config(), openblas_get_num_threads(),
           threads > 0 ? "--threads" : "OpenBLAS default");
    printf("lm head and loss: %s\n", loss_chunk == AUTOSP_LOSS_UNCHUNKED
                                         ? "whole (--loss-chunk off)"
                                     : loss_chunk == 0 ? "in the planner's chunks"
                                                       : "in chunks of --loss-chunk rows");
    bench_warn_openblas_env();
    double peak = bench_sgemm_peak_gflops(PEAK_N, PEAK_RUNS);
    printf("cblas_sgemm peak: %.1f GFLOP/s (best of %d, M=N=K=%d, 2*M*N*K/time)\n", peak, PEAK_RUNS,
           PEAK_N);
    printf("load average (1 min) at start: %.2f on %ld CPUs\n", load_average(),
           sysconf(_SC_NPROCESSORS_ONLN));
    printf("steps per row: %s\n\n", steps > 0 ? "fixed by --steps/--quick"
                                              : "enough for >= 2 s, at least 2 (after 1 warm-up)");

    bench_row_t rows[MAX_ROWS];
    int n_rows = 0, failed = 0;
    print_header();
    for (int i = 0; i < n_configs; i++) {
        if (only && strcmp(configs[i].preset, only) != 0) continue;
        for (int d = 0; d < 2; d++) {
            if (!want[d]) continue;
            autosp_error_t err = {0};
            autosp_dtype_t dtype = d ? AUTOSP_BF16 : AUTOSP_F32;
            if (run_config(&configs[i], dtype, steps, &rows[n_rows], &err) != AUTOSP_OK) {
                printf("%-12s %2lld %6lld %5s  error: %s\n", configs[i].preset,
                       (long long)configs[i].B, (long long)configs[i].S, autosp_dtype_name(dtype),
                       err.message);
                failed = 1;
                continue;
            }
            rows[n_rows].peak = d ? bf16_peak(&configs[i], threads) : peak;
            print_row(&rows[n_rows++]);
        }
    }
    print_dtype_recap(rows, n_rows);
    print_peak_recap(rows, n_rows, peak, bench_sgemm_peak_gflops(PEAK_N, PEAK_RUNS));
    print_linearity_note(rows, n_rows);
    printf("\nGFLOP/s = op-table FLOPs of the joint forward+backward graph / step time; the\n"
           "gradient norm, clipping and AdamW update are in the step time but not in the FLOPs.\n"
           "load average (1 min) at end: %.2f\n",
           load_average());
    return failed;
}
