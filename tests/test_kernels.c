/* test_kernels.c: one harness drives every f32 kernel of kernels.h (after ggml's
 * test-backend-ops). A kernel is an op_def_t (its inputs, how to call its fast and reference
 * forward and backward); a test case is one line of the `cases` table: an op and its dims.
 * For every case the harness checks
 *   (1) fast forward vs reference forward,
 *   (2) fast backward vs reference backward, with the accumulate (parameters) or overwrite
 *       (activations) semantics of each gradient,
 *   (3) reference backward vs central finite differences of the reference forward,
 * and a few tests at the bottom check what a table cannot: rope's inverse and in-place use,
 * cross-entropy's ignored rows and in-place backward, stability at large logits, NULL
 * gradients. The attention kernels have their own test (test_kernel_attention.c).
 *
 * Tolerances:
 *  - Fast vs reference: normalised MSE, sum (a-b)^2 / sum b^2 < 1e-10, i.e. an RMS relative
 *    error of 1e-5. The fast kernels round to float32 (2^-24 ~ 6e-8 per operation) and
 *    accumulate up to ~1000 terms in float: the random-walk error is ~sqrt(1000) * 6e-8 ~ 2e-6,
 *    an NMSE of ~4e-12, and the reference (double accumulators, one final rounding) adds 3e-15.
 *    So 1e-10 leaves a 5x margin on the RMS error (the worst case measured is 3e-14), while
 *    any real bug (a wrong index, a missed term, a wrong sign, accumulating instead of
 *    overwriting) gives an NMSE of 1e-4 or more.
 *  - Finite differences: see fd_check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/kernels.h"
#include "ref/ref.h"

#define NMSE_MAX   1e-10
#define FD_REL_MAX 1e-2
#define FD_SAMPLES 32 /* elements per input checked by finite differences */
#define NORM_EPS   1e-5f
#define ROPE_THETA 10000.0f
#define IGNORE     (-100)
#define MAX_IN     3

/* ---- deterministic RNG: xorshift64* ------------------------------------------------------- */
typedef struct rng {
    uint64_t s;
} rng_t;

static uint64_t rng_next(rng_t *r) {
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 2685821657736338717ull;
}

static float rng_uniform(rng_t *r, float lo, float hi) {
    return lo + (hi - lo) * (float)(rng_next(r) >> 40) / 16777216.0f; /* 24 random bits */
}

static int64_t rng_int(rng_t *r, int64_t lo, int64_t hi) { /* [lo, hi) */
    return lo + (int64_t)(rng_next(r) % (uint64_t)(hi - lo));
}

static void fill_uniform(rng_t *r, float *p, int64_t n, float lo, float hi) {
    for (int64_t i = 0; i < n; i++) p[i] = rng_uniform(r, lo, hi);
}

static void fill_value(float *p, int64_t n, float v) {
    for (int64_t i = 0; i < n; i++) p[i] = v;
}

static float *new_floats(int64_t n) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    assert_non_null(p);
    return p;
}

/* ---- comparisons -------------------------------------------------------------------------- */
/* sum (a-b)^2 / sum b^2; 0 when both are zero, inf when only b is; NaN if a has a NaN */
static double nmse(const float *a, const float *b, int64_t n) {
    double err = 0.0, ref = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        err += d * d;
        ref += (double)b[i] * b[i];
    }
    if (ref == 0.0) return err == 0.0 ? 0.0 : INFINITY;
    return err / ref;
}

static void expect_nmse(const char *what, const float *got, const float *want, int64_t n) {
    double e = nmse(got, want, n);
    if (!(e < NMSE_MAX)) fail_msg("%s: normalised MSE %.3g, expected < %.0e", what, e, NMSE_MAX);
}

/* ---- the op table ------------------------------------------------------------------------- */
typedef enum impl { FAST, REF } impl_t;
/* calls the fast kernel fn or its reference ref_fn */
#define CALL(impl, fn, ...) ((impl) == FAST ? fn(__VA_ARGS__) : ref_##fn(__VA_ARGS__))

enum case_flags { F_BIAS = 1, F_INVERSE = 2, F_TA = 4, F_TB = 8, F_SHARED_A = 16, F_SHARED_B = 32 };

typedef struct op_def op_def_t;
typedef struct test_case {
    const op_def_t *op;
    unsigned flags;
    int64_t d[4]; /* dims, named by the op's dim_names */
} test_case_t;

/* Element counts of one case's tensors. */
typedef struct io_sizes {
    int64_t in[MAX_IN]; /* float inputs; 0: absent, passed as NULL (linear without bias) */
    int64_t out;
    int64_t ints;   /* the int32 input (ids, positions, labels); 0 if none */
    int32_t int_hi; /* its values are drawn from [0, int_hi) */
} io_sizes_t;

/* The arguments of one kernel call. in[j] and din[j] are NULL when input j is absent; the
 * forward writes out, the backward reads it (softmax's y) and writes din from dout. */
typedef struct call {
    float *const *in;
    int32_t *ints;
    float *out;
    float *const *din;
    const float *dout;
} call_t;

typedef void kernel_fn(impl_t impl, const test_case_t *c, const call_t *k);

struct op_def {
    const char *name;
    const char *dim_names[4];
    const char *in_names[MAX_IN];
    bool in_accumulates[MAX_IN]; /* the gradient is accumulated (+=): a parameter */
    bool out_accumulates;        /* the forward adds into out (sum_rows_accumulate) */
    float fd_h;                  /* finite-difference step, see fd_check */
    io_sizes_t (*sizes)(const test_case_t *c);
    /* optional: adjusts the default inputs (uniform in [-1,1], ints in [0, int_hi)) */
    void (*init)(const test_case_t *c, const call_t *k);
    kernel_fn *forward;
    kernel_fn *backward; /* NULL: forward only */
};

/* ---- elementwise: d = {n} ---- */
static io_sizes_t sizes_elementwise(const test_case_t *c) {
    io_sizes_t s = {.out = c->d[0]};
    for (int j = 0; j < MAX_IN; j++) s.in[j] = c->op->in_names[j] ? c->d[0] : 0;
    return s;
}

static void silu_fwd(impl_t impl, const test_case_t *c, const call_t *k) {
    CALL(impl, silu_forward, k->out, k->in[0], c->d[0]);
}

static void silu_bwd(impl_t impl, const test_case_t *c, const call_t *k) {
    CALL(impl, silu_backward, k->din[0], k->dout, k->in[0], c->d[0]);
}

static void gelu_fwd(impl_t impl, const test_case_t *c, const call_t *k) {
    CALL(impl, gelu_forward, k->out, k->in[0], c->d[0]);
}

static void gelu_bwd(impl_t impl, const test_case_t *c, const call_t *k) {
    CALL(impl, gelu_backward, k->din[0], k->dout, k->in[0], c->d[0]);
}

static void swiglu_fwd(impl_t impl, const test_case_t *c, const call_t *k) {
    CALL(impl, swiglu_forward, k->out, k->in[0], k->in[1], c->d[0]);
}

static void swiglu_bwd(impl_t impl, const test_case_t *c, const call_t *k) {
    CALL(impl, swiglu_backward, k->din[0], k->din[1], k->dout, k->in[0], k->in[1], c->d[0]);
}

/* ---- row-wise, x (rows,C) and parameters (C): d = {rows, C} ---- */
static io_sizes_t sizes_rows(const test_case_t *c) {
    int64_t rows = c->d[0], C = c->d[1];
    io_sizes_t s = {.in = {rows * C}, .out = rows * C};
    for (int j = 1; j < MAX_IN; j++) s.in[j] = c->op->in_names[j] ? C : 0;
    return s;
}

/* rmsnorm of a single channel is sign(x) * weight, with a kink of width sqrt(eps) at 0 that a
 * finite difference must not straddle: keep |x| >= 0.1. */
static void init_away_from_zero(const test_case_t *c, const call_t *k) {
    for (int64_t i = 0; i < c->d[0] * c->d[1]; i++) {
        k->in[0][i] = copysignf(0.1f + 0.9f * fabsf(k->in[0][i]), k->in[0][i]);
    }
}

static void rmsnorm_fwd(impl_t impl, const test_case_t *c, const call_t *k) {
    CALL(impl, rmsnorm_forward, k->out, k->in[0], k->in[1], c->d[0], c->d[1], NORM_EPS);
}

static void rmsnorm_bwd(impl_t impl, const test_case_t *c, const call_t *k) {
    void *ws = malloc(norm_backward_workspace(c->d[0]) + 1);
    assert_non_null(ws);
    CALL(impl, rmsnorm_backward, k->din[0], k->din[1], k->dout, k->in[0], k->in[1], c->d[0],
         c->d[1], NORM_EPS, ws);
    free(ws);
}

static void layernorm_fwd(impl_t impl, const test_case_t *c, const call_t *k) {
    CALL(impl, layernorm_forward, k->out, k->in[0], k->in[1], k->in[2], c->d[0], c->d[1], NORM_EPS);
}

static void layernorm_bwd(impl_t impl, const test_case_t *c, const call_t *k) {
    void *ws = malloc(norm_backward_workspace(c->d[0]) + 1);
    assert_non_null(ws);
    CALL(impl, layernorm_backward, k->din[0], k->din[1], k->din[2], k->dout, k->in[0], k->in[1],
         c->d[0], c->d[1], NORM_EPS, ws);
    free(ws);
}

static void softmax_fwd(impl_t impl, const test_case_t *c, const call_t *k) {
    CALL(impl, softmax_forward, k->out, k->in[0], c->d[0], c->d[1]);
}

static void softmax_bwd(impl_t impl, const test_case_t *c, const call_t *k) {
    CALL(impl, softmax_backward, k->din[0], k->dout, k->out, c->d[0], c->d[1]);
}

/* sum_rows_accumulate has no reference in ref.h: this is it */
static void ref_sum_rows_accumulate(float *out, const float *x, int64_t rows, int64_t C) {
    for (int64_t c = 0; c < C; c++) {
        double acc = out[c];
        for (int64_t r = 0; r < rows; r++) acc += x[r * C + c];
        out[c] = (float)acc;
    }
}

static io_sizes_t sizes_sum_rows(const test_case_t *c) {
    return (io_sizes_t){.in = {c->d[0] * c->d[1]}, .out = c->d[1]};
}

static void sum_rows_fwd(impl_t impl, const test_case_t *c, const call_t *k) {
    CALL(impl, sum_rows_accumulate, k->out, k->in[0], c->d[0], c->d[1]);
}

/* ---- embedding: d = {rows, V, C} ---- */
static io_sizes_t sizes_embedding(const test_case_t *c) {
    int64_t rows = c->d[0], V = c->d[1], C = c->d[2];
    return (io_sizes_t){.in = {V * C}, .out = rows * C, .ints = rows, .int_hi = (int32_t)V};
}

static void embedding_fwd(impl_t impl, const test_case_t *c, const call_t *k) {
    CALL(impl, embedding_forward, k->out, k->ints, k->in[0], c->d[0], c->d[2]);
}

static void embedding_bwd(impl_t impl, const test_case_t *c, const call_t *k) {
    CALL(impl, embedding_backward, k->din[0], k->ints, k->dout, c->d[0], c->d[2]);
}

/* ---- linear: d = {rows, K, N}, F_BIAS ---- */
static io_sizes_t sizes_linear(const test_case_t *c) {
    int64_t rows = c->d[0], K = c->d[1], N = c->d[2];
    return (io_sizes_t){.in = {rows * K, N * K, c->flags & F_BIAS ? N : 0}, .out = rows * N};
}

static void linear_fwd(impl_t impl, const test_case_t *c, const call_t *k) {
    CALL(impl, linear_forward, k->out, k->in[0], k->in[1], k->in[2], c->d[0], c->d[1], c->d[2]);
}

static void linear_bwd(impl_t impl, const test_case_t *c, const call_t *k) {
    CALL(impl, linear_backward, k->din[0], k->din[1], k->din[2], k->dout, k->in[0], k->in[1],
         c->d[0], c->d[1], c->d[2]);
}

/* ---- matmul: d = {batch, M, N, K}, F_TA, F_TB, F_SHARED_A, F_SHARED_B ---- */
static matmul_dims_t mm_dims(const test_case_t *c) {
    return (matmul_dims_t){.batch = c->d[0],
                           .M = c->d[1],
                           .N = c->d[2],
                           .K = c->d[3],
                           .trans_a = c->flags & F_TA,
                           .trans_b = c->flags & F_TB,
                           .a_shared = c->flags & F_SHARED_A,
                           .b_shared = c->flags & F_SHARED_B};
}

static io_sizes_t sizes_matmul(const test_case_t *c) {
    matmul_dims_t d = mm_dims(c);
    return (io_sizes_t){
        .in = {(d.a_shared ? 1 : d.batch) * d.M * d.K, (d.b_shared ? 1 : d.batch) * d.K * d.N},
        .out = d.batch * d.M * d.N};
}

static void matmul_fwd(impl_t impl, const test_case_t *c, const call_t *k) {
    matmul_dims_t d = mm_dims(c);
    CALL(impl, matmul_forward, k->out, k->in[0], k->in[1], &d);
}

static void matmul_bwd(impl_t impl, const test_case_t *c, const call_t *k) {
    matmul_dims_t d = mm_dims(c);
    CALL(impl, matmul_backward, k->din[0], k->din[1], k->dout, k->in[0], k->in[1], &d);
}

/* ---- rope: d = {B, S, H, D}, F_INVERSE; positions up to 1e5 (long-context angles) ---- */
static io_sizes_t sizes_rope(const test_case_t *c) {
    int64_t n = c->d[0] * c->d[1] * c->d[2] * c->d[3];
    return (io_sizes_t){.in = {n}, .out = n, .ints = c->d[0] * c->d[1], .int_hi = 100000};
}

static void rope_fwd(impl_t impl, const test_case_t *c, const call_t *k) {
    CALL(impl, rope_forward, k->out, k->in[0], k->ints, c->d[0], c->d[1], c->d[2], c->d[3],
         ROPE_THETA, c->flags & F_INVERSE);
}

static void rope_bwd(impl_t impl, const test_case_t *c, const call_t *k) {
    CALL(impl, rope_forward, k->din[0], k->dout, k->ints, c->d[0], c->d[1], c->d[2], c->d[3],
         ROPE_THETA, !(c->flags & F_INVERSE));
}

/* ---- cross-entropy: d = {rows, V}; the output is the scalar loss ---- */
static io_sizes_t sizes_cross_entropy(const test_case_t *c) {
    return (io_sizes_t){
        .in = {c->d[0] * c->d[1]}, .out = 1, .ints = c->d[0], .int_hi = (int32_t)c->d[1]};
}

/* logits in [-5,5] (a peaked softmax), and every third row ignored */
static void init_cross_entropy(const test_case_t *c, const call_t *k) {
    for (int64_t i = 0; i < c->d[0] * c->d[1]; i++) k->in[0][i] *= 5.0f;
    for (int64_t r = 2; r < c->d[0]; r += 3) k->ints[r] = IGNORE;
}

static void cross_entropy_fwd(impl_t impl, const test_case_t *c, const call_t *k) {
    k->out[0] = CALL(impl, cross_entropy_forward, k->in[0], k->ints, c->d[0], c->d[1], IGNORE);
}

static void cross_entropy_bwd(impl_t impl, const test_case_t *c, const call_t *k) {
    CALL(impl, cross_entropy_backward, k->din[0], k->in[0], k->ints, c->d[0], c->d[1], IGNORE,
         k->dout[0]);
}

/* Finite-difference steps. Ops linear in each input (linear, matmul, embedding, rope) have no
 * truncation error, so a large step only lowers the rounding noise: h = 0.25. Smooth
 * nonlinear ops on inputs of size ~1: h = 1e-2 balances truncation (h^2/6 * f''' ~ 2e-5) and
 * rounding (2^-24 / h ~ 6e-6). Cross-entropy's output is one float loss (~log V) whose ulp,
 * 5e-7, over 2h must stay small against gradients of ~1/(V rows): h = 0.1, where truncation
 * is still ~h^2/6 = 2e-3 relative. */
#define H_LINEAR 0.25f
#define H_SMOOTH 1e-2f
#define H_CE     0.1f

static const op_def_t op_silu = {.name = "silu",
                                 .dim_names = {"n"},
                                 .in_names = {"x"},
                                 .fd_h = H_SMOOTH,
                                 .sizes = sizes_elementwise,
                                 .forward = silu_fwd,
                                 .backward = silu_bwd};
static const op_def_t op_gelu = {.name = "gelu",
                                 .dim_names = {"n"},
                                 .in_names = {"x"},
                                 .fd_h = H_SMOOTH,
                                 .sizes = sizes_elementwise,
                                 .forward = gelu_fwd,
                                 .backward = gelu_bwd};
static const op_def_t op_swiglu = {.name = "swiglu",
                                   .dim_names = {"n"},
                                   .in_names = {"gate", "up"},
                                   .fd_h = H_SMOOTH,
                                   .sizes = sizes_elementwise,
                                   .forward = swiglu_fwd,
                                   .backward = swiglu_bwd};
static const op_def_t op_rmsnorm = {.name = "rmsnorm",
                                    .dim_names = {"rows", "C"},
                                    .in_names = {"x", "weight"},
                                    .in_accumulates = {false, true},
                                    .fd_h = H_SMOOTH,
                                    .sizes = sizes_rows,
                                    .init = init_away_from_zero,
                                    .forward = rmsnorm_fwd,
                                    .backward = rmsnorm_bwd};
static const op_def_t op_layernorm = {.name = "layernorm",
                                      .dim_names = {"rows", "C"},
                                      .in_names = {"x", "weight", "bias"},
                                      .in_accumulates = {false, true, true},
                                      .fd_h = H_SMOOTH,
                                      .sizes = sizes_rows,
                                      .forward = layernorm_fwd,
                                      .backward = layernorm_bwd};
static const op_def_t op_softmax = {.name = "softmax",
                                    .dim_names = {"rows", "C"},
                                    .in_names = {"x"},
                                    .fd_h = H_SMOOTH,
                                    .sizes = sizes_rows,
                                    .forward = softmax_fwd,
                                    .backward = softmax_bwd};
static const op_def_t op_sum_rows = {.name = "sum_rows_accumulate",
                                     .dim_names = {"rows", "C"},
                                     .in_names = {"x"},
                                     .out_accumulates = true,
                                     .sizes = sizes_sum_rows,
                                     .forward = sum_rows_fwd};
static const op_def_t op_embedding = {.name = "embedding",
                                      .dim_names = {"rows", "V", "C"},
                                      .in_names = {"weight"},
                                      .in_accumulates = {true},
                                      .fd_h = H_LINEAR,
                                      .sizes = sizes_embedding,
                                      .forward = embedding_fwd,
                                      .backward = embedding_bwd};
static const op_def_t op_linear = {.name = "linear",
                                   .dim_names = {"rows", "K", "N"},
                                   .in_names = {"x", "weight", "bias"},
                                   .in_accumulates = {false, false, false}, /* overwrites */
                                   .fd_h = H_LINEAR,
                                   .sizes = sizes_linear,
                                   .forward = linear_fwd,
                                   .backward = linear_bwd};
static const op_def_t op_matmul = {.name = "matmul",
                                   .dim_names = {"batch", "M", "N", "K"},
                                   .in_names = {"a", "b"},
                                   .fd_h = H_LINEAR,
                                   .sizes = sizes_matmul,
                                   .forward = matmul_fwd,
                                   .backward = matmul_bwd};
static const op_def_t op_rope = {.name = "rope",
                                 .dim_names = {"B", "S", "H", "D"},
                                 .in_names = {"x"},
                                 .fd_h = H_LINEAR,
                                 .sizes = sizes_rope,
                                 .forward = rope_fwd,
                                 .backward = rope_bwd};
static const op_def_t op_cross_entropy = {.name = "cross_entropy",
                                          .dim_names = {"rows", "V"},
                                          .in_names = {"logits"},
                                          .fd_h = H_CE,
                                          .sizes = sizes_cross_entropy,
                                          .init = init_cross_entropy,
                                          .forward = cross_entropy_fwd,
                                          .backward = cross_entropy_bwd};

/* ---- the cases: one line each ------------------------------------------------------------- */
#define T(op, flags, ...)                                                                          \
    {                                                                                              \
        &op_##op, (flags), {                                                                       \
            __VA_ARGS__                                                                            \
        }                                                                                          \
    }
/* clang-format off */
static const test_case_t cases[] = {
    T(silu, 0, 1), T(silu, 0, 7), T(silu, 0, 1000),
    T(gelu, 0, 1), T(gelu, 0, 7), T(gelu, 0, 1000),
    T(swiglu, 0, 1), T(swiglu, 0, 7), T(swiglu, 0, 1000),
    /*              rows  C */
    T(rmsnorm, 0,      1, 1), T(rmsnorm, 0, 1, 7), T(rmsnorm, 0, 5, 64), T(rmsnorm, 0, 3, 1000),
    T(layernorm, 0,    1, 1), T(layernorm, 0, 1, 7), T(layernorm, 0, 5, 64), T(layernorm, 0, 3, 1000),
    T(softmax, 0,      1, 1), T(softmax, 0, 1, 7), T(softmax, 0, 5, 64), T(softmax, 0, 3, 1000),
    T(sum_rows, 0,     1, 1), T(sum_rows, 0, 1, 7), T(sum_rows, 0, 9, 33), T(sum_rows, 0, 50, 1000),
    /*                 rows  V  C */
    T(embedding, 0,      1,  1, 1),
    T(embedding, 0,     10,  3, 7),         /* repeated ids accumulate */
    T(embedding, 0,      6, 50, 1000),
    /*                 rows    K    N */
    T(linear, 0,          1,    1,   1),
    T(linear, F_BIAS,     1,    1,   1),
    T(linear, F_BIAS,     1,    7,   5),
    T(linear, 0,          7,   13,   9),
    T(linear, F_BIAS,    33,   64, 100),
    T(linear, F_BIAS,     4, 1000,  16),
    /*                                    batch  M   N   K */
    T(matmul, 0,                              1,  1,  1,  1),
    T(matmul, 0,                              3,  5,  7,  4),
    T(matmul, F_TA,                           3,  5,  7,  4),
    T(matmul, F_TB,                           3,  5,  7,  4),
    T(matmul, F_TA | F_TB,                    3,  5,  7,  4),
    T(matmul, F_SHARED_B,                     3,  5,  7,  4), /* one sgemm: batch folded into M */
    T(matmul, F_SHARED_B | F_TB,              3,  5,  7,  4), /* folded too */
    T(matmul, F_SHARED_B | F_TA,              3,  5,  7,  4),
    T(matmul, F_SHARED_A,                     3,  5,  7,  4),
    T(matmul, F_SHARED_A | F_TA | F_TB,       3,  5,  7,  4),
    T(matmul, F_SHARED_A | F_SHARED_B,        2,  3,  4,  5),
    T(matmul, F_TB,                           2, 32, 24, 50),
    /*                 B  S  H    D */
    T(rope, 0,         1, 1, 1,   2),
    T(rope, 0,         2, 3, 4,   8),
    T(rope, F_INVERSE, 2, 3, 4,   8),
    T(rope, 0,         1, 5, 3, 128),
    T(rope, F_INVERSE, 1, 3, 2, 260), /* 130 pairs: frequencies in blocks of 64, 64 and 2 */
    /*                 rows     V */
    T(cross_entropy, 0,   1,    1),
    T(cross_entropy, 0,   1,    7),
    T(cross_entropy, 0,   6,   33),         /* rows 2 and 5 ignored */
    T(cross_entropy, 0,   4, 1000),         /* row 2 ignored */
};
/* clang-format on */
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

/* ---- the harness ------------------------------------------------------------------------- */
typedef struct bufs {
    io_sizes_t sz;
    int n_in;
    float *in[MAX_IN];
    int32_t *ints;
    float *out_fast, *out_ref, *dout;
    float *grad[MAX_IN]; /* the reference gradients of L = sum(out * dout), from zero */
} bufs_t;

static void bufs_init(bufs_t *b, const test_case_t *c, rng_t *rng) {
    memset(b, 0, sizeof *b);
    b->sz = c->op->sizes(c);
    for (int j = 0; j < MAX_IN && c->op->in_names[j]; j++) {
        b->n_in = j + 1;
        if (!b->sz.in[j]) continue;
        b->in[j] = new_floats(b->sz.in[j]);
        fill_uniform(rng, b->in[j], b->sz.in[j], -1.0f, 1.0f);
    }
    b->ints = malloc((size_t)(b->sz.ints > 0 ? b->sz.ints : 1) * sizeof(int32_t));
    assert_non_null(b->ints);
    for (int64_t i = 0; i < b->sz.ints; i++) b->ints[i] = (int32_t)rng_int(rng, 0, b->sz.int_hi);
    if (c->op->init) c->op->init(c, &(call_t){.in = b->in, .ints = b->ints});
    b->out_fast = new_floats(b->sz.out);
    b->out_ref = new_floats(b->sz.out);
    b->dout = new_floats(b->sz.out);
    fill_uniform(rng, b->dout, b->sz.out, -1.0f, 1.0f);
}

static void bufs_free(bufs_t *b) {
    for (int j = 0; j < MAX_IN; j++) {
        free(b->in[j]);
        free(b->grad[j]);
    }
    free(b->ints);
    free(b->out_fast);
    free(b->out_ref);
    free(b->dout);
}

/* (1) Outputs start as NaN, so an element the forward does not write fails the check; a
 * forward that accumulates starts from the same random values in both. */
static void check_forward(const test_case_t *c, bufs_t *b, rng_t *rng) {
    if (c->op->out_accumulates) {
        fill_uniform(rng, b->out_ref, b->sz.out, -1.0f, 1.0f);
        memcpy(b->out_fast, b->out_ref, (size_t)b->sz.out * sizeof(float));
    } else {
        fill_value(b->out_fast, b->sz.out, NAN);
        fill_value(b->out_ref, b->sz.out, NAN);
    }
    c->op->forward(FAST, c, &(call_t){.in = b->in, .ints = b->ints, .out = b->out_fast});
    c->op->forward(REF, c, &(call_t){.in = b->in, .ints = b->ints, .out = b->out_ref});
    expect_nmse("forward: fast vs reference", b->out_fast, b->out_ref, b->sz.out);
}

/* Runs impl's backward with every gradient buffer pre-filled: parameters' with `prefill[j]`
 * (they accumulate), activations' with NaN (they must be overwritten). */
static void run_backward(impl_t impl, const test_case_t *c, bufs_t *b, float *const grads[],
                         float *const prefill[]) {
    for (int j = 0; j < b->n_in; j++) {
        if (!grads[j]) continue;
        if (c->op->in_accumulates[j])
            memcpy(grads[j], prefill[j], (size_t)b->sz.in[j] * sizeof(float));
        else
            fill_value(grads[j], b->sz.in[j], NAN);
    }
    float *out = impl == FAST ? b->out_fast : b->out_ref;
    call_t k = {.in = b->in, .ints = b->ints, .out = out, .din = grads, .dout = b->dout};
    c->op->backward(impl, c, &k);
}

/* (2) The reference from zero gives the gradient G. The fast kernel and the reference, each
 * from a random prefill P, must give P + G for parameters and G for activations. */
static void check_backward(const test_case_t *c, bufs_t *b, rng_t *rng) {
    float *zero[MAX_IN] = {0}, *prefill[MAX_IN] = {0}, *fast[MAX_IN] = {0}, *ref[MAX_IN] = {0};
    for (int j = 0; j < b->n_in; j++) {
        int64_t n = b->sz.in[j];
        if (!n) continue;
        b->grad[j] = new_floats(n);
        zero[j] = new_floats(n);
        prefill[j] = new_floats(n);
        fast[j] = new_floats(n);
        ref[j] = new_floats(n);
        fill_value(zero[j], n, 0.0f);
        fill_uniform(rng, prefill[j], n, -1.0f, 1.0f);
    }
    run_backward(REF, c, b, b->grad, zero);
    run_backward(REF, c, b, ref, prefill);
    run_backward(FAST, c, b, fast, prefill);
    for (int j = 0; j < b->n_in; j++) {
        if (!b->sz.in[j]) continue;
        char what[96];
        bool acc = c->op->in_accumulates[j];
        for (int64_t i = 0; acc && i < b->sz.in[j]; i++) {
            ref[j][i] -= prefill[j][i];
            fast[j][i] -= prefill[j][i];
        }
        snprintf(what, sizeof what, "backward d%s (%s): fast vs reference", c->op->in_names[j],
                 acc ? "accumulated" : "overwritten");
        expect_nmse(what, fast[j], b->grad[j], b->sz.in[j]);
        snprintf(what, sizeof what, "backward d%s: reference from a prefill vs from zero",
                 c->op->in_names[j]);
        expect_nmse(what, ref[j], b->grad[j], b->sz.in[j]);
        free(zero[j]);
        free(prefill[j]);
        free(fast[j]);
        free(ref[j]);
    }
}

static double loss_of(const float *out, const float *r, int64_t n) { /* L = sum(out * R) */
    double l = 0.0;
    for (int64_t i = 0; i < n; i++) l += (double)out[i] * r[i];
    return l;
}

/* (3) The reference gradient of L = sum(out * R), R = dout fixed and random in [-1,1], against
 * the central difference (L(x + h) - L(x - h)) / (2h) of the reference forward, on up to
 * FD_SAMPLES elements of each input. The check is on the vector of sampled elements:
 *   ||fd - g|| <= 1e-2 max(||g||, ||fd||) + noise.
 * 1e-2: the step's truncation error is <= ~2e-3 relative (see the H_* steps), so a correct
 * gradient passes with margin (the worst measured is 4e-3, cross-entropy at V=1000; all the
 * others are below 3e-4), while a wrong term or factor is off by far more than 1%.
 * noise: the forward's outputs are float32, so each L is only known to ~2^-24 max|out| per
 * output, and a difference over 2h resolves no better than 2^-24 max|out| sqrt(n_out) / h per
 * element (x4 for margin). Below that the two cannot be told apart: it matters only for
 * gradients that are themselves near float resolution (rmsnorm of one channel: dx ~ 1e-4). */
static void fd_check(const test_case_t *c, bufs_t *b, rng_t *rng) {
    float *out = new_floats(b->sz.out);
    call_t k = {.in = b->in, .ints = b->ints, .out = out};
    double out_max = 0.0;
    for (int64_t i = 0; i < b->sz.out; i++) out_max = fmax(out_max, fabs(b->out_ref[i]));
    double h = c->op->fd_h;
    double noise_elem = 4.0 * ldexp(1.0, -24) * out_max * sqrt((double)b->sz.out) / h;
    for (int j = 0; j < b->n_in; j++) {
        int64_t n = b->sz.in[j], count = n < FD_SAMPLES ? n : FD_SAMPLES;
        float *x = b->in[j];
        double err2 = 0.0, grad2 = 0.0, fd2 = 0.0;
        for (int64_t s = 0; s < count; s++) {
            int64_t e = n <= FD_SAMPLES ? s : rng_int(rng, 0, n);
            float v = x[e], xp = (float)(v + h), xm = (float)(v - h);
            x[e] = xp;
            c->op->forward(REF, c, &k);
            double lp = loss_of(out, b->dout, b->sz.out);
            x[e] = xm;
            c->op->forward(REF, c, &k);
            double lm = loss_of(out, b->dout, b->sz.out);
            x[e] = v;
            double fd = (lp - lm) / ((double)xp - xm), g = b->grad[j][e];
            err2 += (fd - g) * (fd - g);
            grad2 += g * g;
            fd2 += fd * fd;
        }
        double err = sqrt(err2), scale = sqrt(fmax(grad2, fd2));
        double noise = noise_elem * sqrt((double)count);
        if (!(err <= FD_REL_MAX * scale + noise)) {
            fail_msg("d%s: reference backward vs finite differences (h=%g): |error| %.3g, "
                     "|gradient| %.3g, relative %.3g, expected < %g (+ float noise %.3g)",
                     c->op->in_names[j], h, err, scale, err / scale, FD_REL_MAX, noise);
        }
    }
    free(out);
}

static void run_case(void **state) {
    const test_case_t *c = *state;
    rng_t rng = {0x9E3779B97F4A7C15ull * (uint64_t)(c - cases + 1)};
    bufs_t b;
    bufs_init(&b, c, &rng);
    check_forward(c, &b, &rng);
    if (c->op->backward) {
        check_backward(c, &b, &rng);
        fd_check(c, &b, &rng);
    }
    bufs_free(&b);
}

static void case_name(const test_case_t *c, char *buf, size_t size) {
    static const char *flag_names[] = {"bias",    "inverse",  "trans_a",
                                       "trans_b", "a_shared", "b_shared"};
    int n = snprintf(buf, size, "%s", c->op->name);
    for (int i = 0; i < 4 && c->op->dim_names[i]; i++) {
        n += snprintf(buf + n, size - (size_t)n, " %s=%lld", c->op->dim_names[i],
                      (long long)c->d[i]);
    }
    for (int i = 0; i < 6; i++) {
        if (c->flags & (1u << i)) n += snprintf(buf + n, size - (size_t)n, " %s", flag_names[i]);
    }
}

/* ---- what a table line cannot check --------------------------------------------------------- */
/* (4) rope: inverse undoes forward; in place gives the same bits as out of place. */
static void test_rope_inverse_and_in_place(void **state) {
    (void)state;
    enum { B = 2, S = 5, H = 3, D = 64, N = B * S * H * D };
    rng_t rng = {12345};
    float x[N], y[N], back[N], inplace[N];
    int32_t pos[B * S];
    fill_uniform(&rng, x, N, -1.0f, 1.0f);
    for (int i = 0; i < B * S; i++) pos[i] = (int32_t)rng_int(&rng, 0, 100000);
    for (int impl = FAST; impl <= REF; impl++) {
        CALL(impl, rope_forward, y, x, pos, B, S, H, D, ROPE_THETA, false);
        CALL(impl, rope_forward, back, y, pos, B, S, H, D, ROPE_THETA, true);
        expect_nmse("rope: inverse(forward(x)) vs x", back, x, N);
        memcpy(inplace, x, sizeof x);
        CALL(impl, rope_forward, inplace, inplace, pos, B, S, H, D, ROPE_THETA, false);
        assert_memory_equal(inplace, y, sizeof y);
    }
}

/* (4b) rope's scaled frequencies: linear scaling by f at positions f q is plain rope at q; llama3
 * keeps the high frequencies, divides the low ones by factor and blends between (the values
 * of Hugging Face's _compute_llama3_parameters for Llama 3.1: theta 5e5, D 128, factor 8). */
static void test_rope_scaling(void **state) {
    (void)state;
    enum { B = 1, S = 7, H = 2, D = 32, N = B * S * H * D };
    rng_t rng = {4242};
    float x[N], plain[N], scaled[N];
    int32_t q[S], p[S];
    fill_uniform(&rng, x, N, -1.0f, 1.0f);
    for (int i = 0; i < S; i++) q[i] = (int32_t)rng_int(&rng, 0, 5000), p[i] = 4 * q[i];
    const rope_freqs_t linear = {.theta = ROPE_THETA, .scaling = ROPE_LINEAR, .factor = 4};
    rope_forward(plain, x, q, B, S, H, D, ROPE_THETA, false);
    rope_forward_freqs(scaled, x, p, B, S, H, D, &linear, false);
    expect_nmse("rope linear x4 at 4q vs plain at q", scaled, plain, N);
    const rope_freqs_t l3 = {.theta = 5e5,
                             .scaling = ROPE_LLAMA3,
                             .factor = 8,
                             .low_freq_factor = 1,
                             .high_freq_factor = 4,
                             .original_max_position = 8192};
    const rope_freqs_t base = {.theta = 5e5, .scaling = ROPE_PLAIN};
    /* i = 0: wavelength 2 pi < 2048, kept; i = 63: wavelength ~2.6e6 > 8192, divided */
    assert_true(rope_inv_freq(&l3, 0, 128) == rope_inv_freq(&base, 0, 128));
    assert_true(fabs(rope_inv_freq(&l3, 63, 128) * 8 / rope_inv_freq(&base, 63, 128) - 1) < 1e-12);
    /* i = 32: wavelength ~4.4e3, between 2048 and 8192: blended, between inv / 8 and inv */
    const double mid = rope_inv_freq(&l3, 32, 128), inv = rope_inv_freq(&base, 32, 128);
    const double wavelen = 2 * 3.14159265358979323846 / inv, smooth = (8192 / wavelen - 1) / 3;
    assert_true(fabs(mid / ((1 - smooth) * inv / 8 + smooth * inv) - 1) < 1e-12);
    assert_true(mid > inv / 8 && mid < inv);
}

/* (5) cross-entropy: ignored rows do not count (the loss equals the loss of the valid rows
 * alone) and get zero gradients; all ignored gives 0 and zero gradients; in place gives the same
 * bits as out of place. */
static void test_cross_entropy_ignore_and_in_place(void **state) {
    (void)state;
    enum { R = 6, V = 50 };
    rng_t rng = {777};
    float logits[R * V], valid_logits[R * V], d[R * V], d_valid[R * V], inplace[R * V];
    int32_t labels[R], valid_labels[R], all_ignored[R];
    fill_uniform(&rng, logits, R * V, -5.0f, 5.0f);
    int nv = 0;
    for (int r = 0; r < R; r++) {
        labels[r] = r % 2 ? IGNORE : (int32_t)rng_int(&rng, 0, V);
        all_ignored[r] = IGNORE;
        if (labels[r] == IGNORE) continue;
        memcpy(valid_logits + nv * V, logits + r * V, V * sizeof(float));
        valid_labels[nv++] = labels[r];
    }
    for (int impl = FAST; impl <= REF; impl++) {
        float loss = CALL(impl, cross_entropy_forward, logits, labels, R, V, IGNORE);
        float loss_valid = CALL(impl, cross_entropy_forward, valid_logits, valid_labels, nv, V, 0);
        assert_float_equal(loss, loss_valid, 1e-6f * loss_valid);
        CALL(impl, cross_entropy_backward, d, logits, labels, R, V, IGNORE, 2.0f);
        CALL(impl, cross_entropy_backward, d_valid, valid_logits, valid_labels, nv, V, 0, 2.0f);
        for (int r = 0, v = 0; r < R; r++) {
            if (labels[r] != IGNORE)
                expect_nmse("valid row", d + r * V, d_valid + v++ * V, V);
            else
                for (int i = 0; i < V; i++) assert_true(d[r * V + i] == 0.0f);
        }
        memcpy(inplace, logits, sizeof logits);
        CALL(impl, cross_entropy_backward, inplace, inplace, labels, R, V, IGNORE, 2.0f);
        assert_memory_equal(inplace, d, sizeof d);

        assert_true(CALL(impl, cross_entropy_forward, logits, all_ignored, R, V, IGNORE) == 0.0f);
        fill_value(d, R * V, NAN);
        CALL(impl, cross_entropy_backward, d, logits, all_ignored, R, V, IGNORE, 1.0f);
        for (int i = 0; i < R * V; i++) assert_true(d[i] == 0.0f);
    }
}

/* softmax and cross-entropy subtract the row max: logits of 1000 (exp overflows float at 89)
 * give the same results as logits shifted down by 1000. */
static void test_stable_at_large_logits(void **state) {
    (void)state;
    enum { R = 3, V = 40 };
    rng_t rng = {99};
    float x[R * V], big[R * V], y[R * V], ybig[R * V];
    int32_t labels[R] = {0, 17, 39};
    fill_uniform(&rng, x, R * V, -5.0f, 5.0f);
    for (int i = 0; i < R * V; i++) big[i] = x[i] + 1000.0f;
    for (int i = 0; i < R * V; i++) x[i] = big[i] - 1000.0f; /* the exact shift of big */
    for (int impl = FAST; impl <= REF; impl++) {
        CALL(impl, softmax_forward, y, x, R, V);
        CALL(impl, softmax_forward, ybig, big, R, V);
        expect_nmse("softmax(x + 1000) vs softmax(x)", ybig, y, R * V);
        float loss = CALL(impl, cross_entropy_forward, x, labels, R, V, IGNORE);
        float loss_big = CALL(impl, cross_entropy_forward, big, labels, R, V, IGNORE);
        assert_float_equal(loss_big, loss, 1e-4f * loss);
        CALL(impl, cross_entropy_backward, y, x, labels, R, V, IGNORE, 1.0f);
        CALL(impl, cross_entropy_backward, ybig, big, labels, R, V, IGNORE, 1.0f);
        expect_nmse("cross_entropy_backward(x + 1000) vs (x)", ybig, y, R * V);
    }
}

/* linear_backward and matmul_backward skip NULL gradients and leave the others as they are
 * when all are requested. */
static void test_null_gradients(void **state) {
    (void)state;
    enum { R = 5, K = 6, N = 7 };
    rng_t rng = {4242};
    float x[R * K], w[N * K], dout[R * N], dx[R * K], dw[N * K], db[N];
    float dx1[R * K], dw1[N * K], db1[N];
    fill_uniform(&rng, x, R * K, -1.0f, 1.0f);
    fill_uniform(&rng, w, N * K, -1.0f, 1.0f);
    fill_uniform(&rng, dout, R * N, -1.0f, 1.0f);
    fill_value(dw, N * K, 0.0f);
    fill_value(db, N, 0.0f);
    fill_value(dw1, N * K, 0.0f);
    fill_value(db1, N, 0.0f);
    linear_backward(dx, dw, db, dout, x, w, R, K, N);
    linear_backward(dx1, NULL, NULL, dout, x, w, R, K, N);
    linear_backward(NULL, dw1, NULL, dout, x, w, R, K, N);
    linear_backward(NULL, NULL, db1, dout, x, w, R, K, N);
    assert_memory_equal(dx, dx1, sizeof dx);
    assert_memory_equal(dw, dw1, sizeof dw);
    assert_memory_equal(db, db1, sizeof db);

    matmul_dims_t d = {.batch = 1, .M = R, .N = K, .K = N, .trans_b = false};
    float da[R * N], da1[R * N], dbm[N * K], dbm1[N * K];
    matmul_backward(da, dbm, x, dout, w, &d); /* a = dout (R,N), b = w (N,K) */
    matmul_backward(da1, NULL, x, dout, w, &d);
    matmul_backward(NULL, dbm1, x, dout, w, &d);
    assert_memory_equal(da, da1, sizeof da);
    assert_memory_equal(dbm, dbm1, sizeof dbm);
}

int main(void) {
    static const struct CMUnitTest extra[] = {
        cmocka_unit_test(test_rope_inverse_and_in_place),
        cmocka_unit_test(test_rope_scaling),
        cmocka_unit_test(test_cross_entropy_ignore_and_in_place),
        cmocka_unit_test(test_stable_at_large_logits),
        cmocka_unit_test(test_null_gradients),
    };
    enum { N_EXTRA = sizeof extra / sizeof extra[0] };
    static struct CMUnitTest tests[N_CASES + N_EXTRA];
    static char names[N_CASES][128];
    for (int i = 0; i < N_CASES; i++) {
        case_name(&cases[i], names[i], sizeof names[i]);
        tests[i] = (struct CMUnitTest){names[i], run_case, NULL, NULL, (void *)&cases[i]};
    }
    memcpy(tests + N_CASES, extra, sizeof extra);
    return _cmocka_run_group_tests("kernels", tests, N_CASES + N_EXTRA, NULL, NULL);
}
