/* bench_gemm.c: GFLOP/s of a training step's matmuls in OpenBLAS f32, oneDNN f32 and oneDNN
 * bf16 (the groundwork for bf16 mixed precision: which library, and what bf16 would buy).
 *
 *     bench_gemm [--quick] [--runs N] [--threads LIST]
 *
 * Each linear layer y = x W^T of the models, x (T,K), W (N,K), T = B*S tokens, needs three
 * products per step; each is timed as C (M,N) = op(A) (M,K) op(B) (K,N):
 *     fwd  y  (T,N) = x (T,K)  W^T (K,N)      M=T N=N K=K
 *     dX   dx (T,K) = dy (T,N) W   (N,K)      M=T N=K K=N
 *     dW   dW (N,K) = dy^T (N,T) x (T,K)      M=N N=K K=T
 * in (1) cblas_sgemm, (2) oneDNN's matmul in f32, (3) oneDNN's matmul with bf16 A and B and an
 * f32 C (f32 accumulation). The operands are converted to bf16 before the timing: the
 * conversion is not in the bf16 figure. oneDNN primitives are created once per shape and thread
 * count, outside the timed loop (oneDNN sizes its blocking for the thread count at creation).
 *
 * A benchmark, not a test: it prints a table and asserts nothing. Exit 0 ok, 2 bad flags,
 * 1 when oneDNN reports an error or memory runs out.
 */
#define _POSIX_C_SOURCE 200809L

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_blas.h"
#define BENCH_NAME "bench_gemm"
#include "bench_dnnl.h"

#define MIN_SAMPLE_S 0.05 /* one sample repeats the product until it takes this long */
#define SETTLE_S     0.15 /* idle time before each variant (see settle) */
#define MAX_RUNS     50
#define MAX_THREADS  8

typedef struct layer {
    const char *model, *name;
    int T, N, K;  /* y (T,N) = x (T,K) W^T */
    int per_step; /* such layers in the model (0: not a model's) */
} layer_t;

/* GPT-2 124M's (B*S = 256, 1024) and llama-small's (B=1, S=4096) linear layers as
 * src/models/models.c builds them (separate q, k, v projections; V as in the presets, GPT-2's
 * lm head tied), per_step of each in the model (GPT-2: q, k, v, o in 12 layers = 48; llama-small:
 * q, o in 8 layers + its 256 x 256 lm head = 17), and a square product as in bench_train. */
/* clang-format off */
static const layer_t full_layers[] = {
    /* model          layer             T      N     K  per_step */
    {"gpt2-124m",   "q,k,v,o",        256,   768,  768, 48},
    {"gpt2-124m",   "fc",             256,  3072,  768, 12},
    {"gpt2-124m",   "proj",           256,   768, 3072, 12},
    {"gpt2-124m",   "lm_head",        256, 50257,  768,  1},
    {"gpt2-124m",   "q,k,v,o",       1024,   768,  768, 48},
    {"gpt2-124m",   "fc",            1024,  3072,  768, 12},
    {"gpt2-124m",   "proj",          1024,   768, 3072, 12},
    {"gpt2-124m",   "lm_head",       1024, 50257,  768,  1},
    {"llama-small", "q,o,lm_head",   4096,   256,  256, 17},
    {"llama-small", "k,v",           4096,   128,  256, 16},
    {"llama-small", "w1,w3",         4096,   768,  256, 16},
    {"llama-small", "w2",            4096,   256,  768,  8},
    {"square",      "2048^3",        2048,  2048, 2048,  0},
};
/* clang-format on */
static const layer_t quick_layers[] = {
    {"gpt2-124m", "fc", 1024, 3072, 768, 12},
    {"square", "2048^3", 2048, 2048, 2048, 0},
};

enum { P_FWD, P_DX, P_DW, N_PRODUCTS };
static const char *const product_names[N_PRODUCTS] = {"fwd", "dX", "dW"};

enum { V_OPENBLAS, V_DNNL_F32, V_DNNL_BF16, N_VARIANTS };

static gemm_t layer_gemm(const layer_t *l, int product) {
    switch (product) {
    case P_FWD:
        return (gemm_t){l->T, l->N, l->K, false, true};
    case P_DX:
        return (gemm_t){l->T, l->K, l->N, false, false};
    default:
        return (gemm_t){l->N, l->K, l->T, true, false};
    }
}

/* ---- operands ----------------------------------------------------------------------------- */

/* A and B in f32 and in bf16, one C per variant: C[V_OPENBLAS] is the reference. */
typedef struct operands {
    float *a, *b, *c[N_VARIANTS];
    uint16_t *a16, *b16;
} operands_t;

/* Uniform in [-1, 1), from a fixed seed: the same inputs in every run. */
static void fill_uniform(float *x, size_t n, uint64_t seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(seed >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
}

/* f32 -> bf16, rounding to nearest even (the inputs are finite). */
static void to_bf16(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &src[i], sizeof u);
        dst[i] = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    }
}

static void operands_free(operands_t *op) {
    free(op->a), free(op->b), free(op->a16), free(op->b16);
    for (int v = 0; v < N_VARIANTS; v++) free(op->c[v]);
}

static int operands_alloc(operands_t *op, const gemm_t *g) {
    size_t na = (size_t)g->M * g->K, nb = (size_t)g->K * g->N, nc = (size_t)g->M * g->N;
    *op = (operands_t){.a = malloc(na * sizeof(float)), .b = malloc(nb * sizeof(float))};
    op->a16 = malloc(na * sizeof(uint16_t)), op->b16 = malloc(nb * sizeof(uint16_t));
    bool ok = op->a && op->b && op->a16 && op->b16;
    for (int v = 0; v < N_VARIANTS; v++) ok = (op->c[v] = calloc(nc, sizeof(float))) && ok;
    if (!ok) {
        operands_free(op);
        fprintf(stderr, "bench_gemm: out of memory for M=%d N=%d K=%d\n", g->M, g->N, g->K);
        return -1;
    }
    fill_uniform(op->a, na, 1), fill_uniform(op->b, nb, 2);
    to_bf16(op->a16, op->a, na), to_bf16(op->b16, op->b, nb);
    return 0;
}

/* max |c - ref| / max |ref|: the error on the scale of the output. */
static double rel_error(const float *c, const float *ref, size_t n) {
    double err = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        err = fmax(err, fabs((double)c[i] - ref[i]));
        scale = fmax(scale, fabs((double)ref[i]));
    }
    return scale > 0 ? err / scale : err;
}

/* ---- oneDNN matmul ------------------------------------------------------------------------ */

/* ---- timing ------------------------------------------------------------------------------- */

typedef struct job {
    gemm_t g;
    operands_t op;
    dnnl_gemm_t dnnl[N_VARIANTS]; /* [V_DNNL_F32] and [V_DNNL_BF16] */
    dnnl_engine_t engine;
    dnnl_stream_t stream;
} job_t;

static int run_variant(const job_t *j, int v) {
    const gemm_t *g = &j->g;
    if (v != V_OPENBLAS) return dnnl_gemm_run(&j->dnnl[v], j->stream);
    cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans,
                g->M, g->N, g->K, 1.0f, j->op.a, g->ta ? g->M : g->K, j->op.b, g->tb ? g->K : g->N,
                0.0f, j->op.c[v], g->N);
    return 0;
}

/* OpenBLAS's idle threads spin for about 0.1 s after a call, OpenMP's briefly: on 2 cores they
 * would take a core from the next variant. Sleep until they have gone idle. */
static void settle(void) {
    struct timespec ts = {0, (long)(SETTLE_S * 1e9)};
    nanosleep(&ts, NULL);
}

typedef struct rate {
    double best, med; /* GFLOP/s of the fastest and of the median sample */
} rate_t;

/* One warm-up call, then runs samples, each the mean of enough calls to last MIN_SAMPLE_S. */
static int time_variant(const job_t *j, int v, int runs, rate_t *rate) {
    settle();
    double t0 = now_s();
    if (run_variant(j, v) != 0) return -1;
    double once = now_s() - t0;
    int reps = once >= MIN_SAMPLE_S ? 1 : (int)ceil(MIN_SAMPLE_S / fmax(once, 1e-6));
    double samples[MAX_RUNS];
    for (int r = 0; r < runs; r++) {
        t0 = now_s();
        for (int i = 0; i < reps; i++) run_variant(j, v);
        samples[r] = (now_s() - t0) / reps;
    }
    double med = median(samples, runs); /* sorts: samples[0] is the fastest */
    *rate = (rate_t){gemm_flops(&j->g) / samples[0] / 1e9, gemm_flops(&j->g) / med / 1e9};
    return 0;
}

/* ---- one product at one thread count ------------------------------------------------------ */

typedef struct row {
    const layer_t *layer;
    int product, threads;
    gemm_t g;
    rate_t rate[N_VARIANTS];
    double err_f32, err_bf16; /* rel_error against OpenBLAS f32 */
    char impl_f32[40], impl_bf16[40];
} row_t;

static int bench_threads(job_t *j, int threads, int runs, row_t *row) {
    openblas_set_num_threads(threads);
    omp_set_num_threads(threads); /* before the primitives: they are sized for it */
    operands_t *op = &j->op;
    int rc = dnnl_gemm_init(&j->dnnl[V_DNNL_F32], j->engine, &j->g, dnnl_f32, op->a, op->b,
                            op->c[V_DNNL_F32]);
    if (rc == 0)
        rc = dnnl_gemm_init(&j->dnnl[V_DNNL_BF16], j->engine, &j->g, dnnl_bf16, op->a16, op->b16,
                            op->c[V_DNNL_BF16]);
    for (int v = 0; v < N_VARIANTS && rc == 0; v++) rc = time_variant(j, v, runs, &row->rate[v]);
    if (rc == 0) {
        size_t nc = (size_t)j->g.M * j->g.N;
        row->err_f32 = rel_error(op->c[V_DNNL_F32], op->c[V_OPENBLAS], nc);
        row->err_bf16 = rel_error(op->c[V_DNNL_BF16], op->c[V_OPENBLAS], nc);
        memcpy(row->impl_f32, j->dnnl[V_DNNL_F32].impl, sizeof row->impl_f32);
        memcpy(row->impl_bf16, j->dnnl[V_DNNL_BF16].impl, sizeof row->impl_bf16);
    }
    dnnl_gemm_free(&j->dnnl[V_DNNL_F32]), dnnl_gemm_free(&j->dnnl[V_DNNL_BF16]);
    return rc;
}

/* ---- output ------------------------------------------------------------------------------- */

static void print_header(void) {
    printf("%-11s %-11s %5s %-4s %5s %5s %5s %3s | %15s | %15s | %15s | %8s %8s | %8s %8s | %s\n",
           "model", "layer", "T", "prod", "M", "N", "K", "thr", "OpenBLAS f32", "oneDNN f32",
           "oneDNN bf16", "bf16/f32", "dnnl/obl", "err f32", "err bf16", "oneDNN impl f32 / bf16");
    printf("%-11s %-11s %5s %-4s %5s %5s %5s %3s | %7s %7s | %7s %7s | %7s %7s | %8s %8s | %8s %8s "
           "|\n",
           "", "", "", "", "", "", "", "", "best", "median", "best", "median", "best", "median",
           "median", "median", "", "");
}

static void print_row(const row_t *r) {
    const rate_t *x = r->rate;
    printf("%-11s %-11s %5d %-4s %5d %5d %5d %3d | %7.1f %7.1f | %7.1f %7.1f | %7.1f %7.1f | "
           "%8.2f %8.2f | %8.1e %8.1e | %s / %s\n",
           r->layer->model, r->layer->name, r->layer->T, product_names[r->product], r->g.M, r->g.N,
           r->g.K, r->threads, x[V_OPENBLAS].best, x[V_OPENBLAS].med, x[V_DNNL_F32].best,
           x[V_DNNL_F32].med, x[V_DNNL_BF16].best, x[V_DNNL_BF16].med,
           x[V_DNNL_BF16].med / x[V_DNNL_F32].med, x[V_DNNL_F32].med / x[V_OPENBLAS].med,
           r->err_f32, r->err_bf16, r->impl_f32, r->impl_bf16);
    fflush(stdout);
}

enum { R_BF16_F32, R_DNNL_OBL, R_BF16_BEST_F32, N_RATIOS };
static const char *const ratio_names[N_RATIOS] = {
    "oneDNN bf16 / oneDNN f32", "oneDNN f32 / OpenBLAS f32", "oneDNN bf16 / faster f32"};

/* Ratios of median rates: > 1 means the first is faster. */
static double row_ratio(const row_t *r, int kind) {
    const rate_t *x = r->rate;
    switch (kind) {
    case R_BF16_F32:
        return x[V_DNNL_BF16].med / x[V_DNNL_F32].med;
    case R_DNNL_OBL:
        return x[V_DNNL_F32].med / x[V_OPENBLAS].med;
    default:
        return x[V_DNNL_BF16].med / fmax(x[V_DNNL_F32].med, x[V_OPENBLAS].med);
    }
}

/* Geometric mean of a ratio over the rows at this thread count (product -1: every product). */
static double geomean(const row_t *rows, int n, int threads, int product, int kind) {
    double log_sum = 0;
    int count = 0;
    for (int i = 0; i < n; i++)
        if (rows[i].threads == threads && (product < 0 || rows[i].product == product))
            log_sum += log(row_ratio(&rows[i], kind)), count++;
    return count ? exp(log_sum / count) : 0;
}

static bool same_model(const row_t *a, const row_t *b) {
    return a->threads == b->threads && a->layer->T == b->layer->T &&
           strcmp(a->layer->model, b->layer->model) == 0;
}

static bool first_of_model(const row_t *rows, int i) {
    for (int j = 0; j < i; j++)
        if (same_model(&rows[j], &rows[i])) return false;
    return true;
}

/* The time of one step's linear layers of the model of rows[like] (each layer's three products
 * times its count), at median rates: what choosing a library, per shape or overall, would buy. */
static void print_step_time(const row_t *rows, int n, const row_t *like) {
    double s[N_VARIANTS] = {0}, faster_f32 = 0;
    for (int i = 0; i < n; i++) {
        if (!same_model(&rows[i], like)) continue;
        double flops = gemm_flops(&rows[i].g) * rows[i].layer->per_step;
        for (int v = 0; v < N_VARIANTS; v++) s[v] += flops / (rows[i].rate[v].med * 1e9);
        double best = fmax(rows[i].rate[V_OPENBLAS].med, rows[i].rate[V_DNNL_F32].med);
        faster_f32 += flops / (best * 1e9);
    }
    printf("  %s T=%d, one step of the layers above (x per_step): OpenBLAS f32 %.0f ms, oneDNN f32 "
           "%.0f ms, the "
           "faster f32 per product %.0f ms, oneDNN bf16 %.0f ms\n",
           like->layer->model, like->layer->T, 1e3 * s[V_OPENBLAS], 1e3 * s[V_DNNL_F32],
           1e3 * faster_f32, 1e3 * s[V_DNNL_BF16]);
}

static void print_recap_threads(const row_t *rows, int n, int threads) {
    printf("\n%d thread%s, geometric mean of the median ratios (> 1: the first is faster):\n",
           threads, threads > 1 ? "s" : "");
    for (int k = 0; k < N_RATIOS; k++) {
        printf("  %-26s all %5.2f", ratio_names[k], geomean(rows, n, threads, -1, k));
        for (int p = 0; p < N_PRODUCTS; p++)
            printf("   %s %5.2f", product_names[p], geomean(rows, n, threads, p, k));
        printf("\n");
    }
    int dnnl_wins = 0, obl_wins = 0;
    for (int i = 0; i < n; i++) {
        if (rows[i].threads != threads) continue;
        double q = row_ratio(&rows[i], R_DNNL_OBL);
        dnnl_wins += q > 1.05, obl_wins += q < 1 / 1.05;
    }
    printf("  f32: oneDNN faster by > 5%% in %d rows, OpenBLAS in %d\n", dnnl_wins, obl_wins);
    for (int i = 0; i < n; i++)
        if (rows[i].threads == threads && rows[i].layer->per_step > 0 && first_of_model(rows, i))
            print_step_time(rows, n, &rows[i]);
}

/* ---- the machine -------------------------------------------------------------------------- */

static const char *isa_name(dnnl_cpu_isa_t isa) {
    static const struct {
        dnnl_cpu_isa_t isa;
        const char *name;
    } names[] = {
        {dnnl_cpu_isa_sse41, "sse41"},
        {dnnl_cpu_isa_avx, "avx"},
        {dnnl_cpu_isa_avx2, "avx2"},
        {dnnl_cpu_isa_avx2_vnni, "avx2_vnni"},
        {dnnl_cpu_isa_avx512_core, "avx512_core"},
        {dnnl_cpu_isa_avx512_core_vnni, "avx512_core_vnni"},
        {dnnl_cpu_isa_avx512_core_bf16, "avx512_core_bf16"},
        {dnnl_cpu_isa_avx512_core_amx, "avx512_core_amx"},
    };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (names[i].isa == isa) return names[i].name;
    return "other";
}

/* The CPU model and the flags that decide the bf16 path, from /proc/cpuinfo's first CPU. */
static void print_cpu(void) {
    char line[8192], model[256] = "?", flags[8192] = "";
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f) && !flags[0]) {
        char *colon = strchr(line, ':');
        if (!colon) continue;
        colon[strcspn(colon, "\n")] = '\0';
        if (strncmp(line, "model name", 10) == 0) snprintf(model, sizeof model, "%s", colon + 2);
        if (strncmp(line, "flags", 5) == 0) snprintf(flags, sizeof flags, "%s ", colon + 1);
    }
    if (f) fclose(f);
    printf("CPU: %s, %ld CPUs online; flags:", model, sysconf(_SC_NPROCESSORS_ONLN));
    const char *wanted[] = {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16"};
    for (size_t i = 0; i < sizeof wanted / sizeof *wanted; i++) {
        char token[32];
        snprintf(token, sizeof token, " %s ", wanted[i]);
        printf(" %s %s", wanted[i], strstr(flags, token) ? "yes" : "no");
    }
    printf("\n");
}

static void print_preamble(int runs) {
    const dnnl_version_t *v = dnnl_version();
    print_cpu();
    printf("oneDNN %d.%d.%d (%s), CPU runtime %s, ISA %s (dnnl_get_effective_cpu_isa)\n", v->major,
           v->minor, v->patch, v->hash ? v->hash : "?",
           v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other",
           isa_name(dnnl_get_effective_cpu_isa()));
    printf("OpenBLAS: %s\n", openblas_get_config());
    bench_warn_openblas_env();
    printf("load average (1 min) at start: %.2f\n", load_average());
    printf("GFLOP/s = 2*M*N*K / time; %d samples per cell after 1 warm-up, each >= %.2f s of "
           "calls; %.2f s idle before each cell\n",
           runs, MIN_SAMPLE_S, SETTLE_S);
    printf("bf16: A and B converted before the timing, C in f32; err = max|C - C_OpenBLAS| / "
           "max|C_OpenBLAS|, inputs uniform in [-1, 1)\n\n");
}

/* ---- main --------------------------------------------------------------------------------- */

typedef struct options {
    bool quick;
    int runs, threads[MAX_THREADS], n_threads;
} options_t;

static int usage(FILE *f) {
    fprintf(f,
            "usage: bench_gemm [--quick] [--runs N] [--threads LIST]\n"
            "  --quick         gpt2-124m fc at T=1024 and the square only, 3 samples\n"
            "  --runs N        samples per cell (default 5, at most %d)\n"
            "  --threads LIST  comma-separated thread counts (default: 1 and the CPUs)\n",
            MAX_RUNS);
    return f == stdout ? 0 : 2;
}

/* "1,2" -> {1, 2}; each count in 1..64. */
static int parse_threads(const char *s, options_t *o) {
    o->n_threads = 0;
    for (const char *p = s; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
        char *end;
        long t = strtol(p, &end, 10);
        if (end == p || (*end != ',' && *end != '\0') || t < 1 || t > 64 ||
            o->n_threads == MAX_THREADS)
            return -1;
        o->threads[o->n_threads++] = (int)t;
    }
    return o->n_threads > 0 ? 0 : -1;
}

/* 0 ok, 1 --help, -1 bad flags. */
static int parse_options(int argc, char **argv, options_t *o) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    *o = (options_t){.runs = 0, .threads = {1, (int)(cpus > 1 ? cpus : 1)}};
    o->n_threads = cpus > 1 ? 2 : 1;
    for (int i = 1; i < argc; i++) {
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return 1;
        } else if (strcmp(argv[i], "--quick") == 0) {
            o->quick = true;
        } else if (strcmp(argv[i], "--runs") == 0 && val) {
            o->runs = atoi(val), i++;
            if (o->runs < 1 || o->runs > MAX_RUNS) return fprintf(stderr, "bad --runs\n"), -1;
        } else if (strcmp(argv[i], "--threads") == 0 && val) {
            if (parse_threads(val, o) != 0) return fprintf(stderr, "bad --threads %s\n", val), -1;
            i++;
        } else {
            return -1;
        }
    }
    if (o->runs == 0) o->runs = o->quick ? 3 : 5;
    return 0;
}

/* Every thread count of one product, on the same operands: rows[0 .. n_threads). */
static int bench_product(const layer_t *l, int product, const options_t *o, dnnl_engine_t eng,
                         dnnl_stream_t stream, row_t *rows) {
    job_t j = {.g = layer_gemm(l, product), .engine = eng, .stream = stream};
    if (operands_alloc(&j.op, &j.g) != 0) return -1;
    int rc = 0;
    for (int t = 0; t < o->n_threads && rc == 0; t++) {
        rows[t] = (row_t){.layer = l, .product = product, .threads = o->threads[t], .g = j.g};
        if ((rc = bench_threads(&j, o->threads[t], o->runs, &rows[t])) == 0) print_row(&rows[t]);
    }
    operands_free(&j.op);
    return rc;
}

int main(int argc, char **argv) {
    options_t o;
    int parsed = parse_options(argc, argv, &o);
    if (parsed != 0) return usage(parsed > 0 ? stdout : stderr);
    const layer_t *layers = o.quick ? quick_layers : full_layers;
    int n_layers = o.quick ? (int)(sizeof quick_layers / sizeof *quick_layers)
                           : (int)(sizeof full_layers / sizeof *full_layers);
    static row_t rows[sizeof full_layers / sizeof *full_layers * N_PRODUCTS * MAX_THREADS];

    dnnl_engine_t eng;
    dnnl_stream_t stream;
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&stream, eng, dnnl_stream_default_flags) != dnnl_success) {
        fprintf(stderr, "bench_gemm: no oneDNN CPU engine\n");
        return 1;
    }
    print_preamble(o.runs);
    print_header();
    int n = 0, rc = 0;
    for (int l = 0; l < n_layers && rc == 0; l++)
        for (int p = 0; p < N_PRODUCTS && rc == 0; p++) {
            rc = bench_product(&layers[l], p, &o, eng, stream, &rows[n]);
            n += o.n_threads;
        }
    if (rc == 0)
        for (int t = 0; t < o.n_threads; t++) print_recap_threads(rows, n, o.threads[t]);
    printf("\nload average (1 min) at end: %.2f\n", load_average());
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(eng);
    return rc ? 1 : 0;
}
