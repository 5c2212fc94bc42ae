/* test_linear_bf16.c: the bf16 kernels of linear, linear_backward, matmul and matmul_backward
 * (src/backends/cpu/linear_bf16.c, on oneDNN or the portable product), node by node through the
 * executor, against a double-precision product of the same bf16 values:
 *   - each element within one bf16 rounding of the exact result (a bf16 output), plus the f32
 *     accumulation's K 2^-23 sum|terms|; an f32 output (a parameter's gradient) within the
 *     latter alone;
 *   - shapes with several blocks and a shorter last one, by rows and by columns, and each
 *     transpose and shared operand of matmul, gradients of shared operands summed over the batch;
 *   - bitwise the same on 1 and 2 threads;
 *   - a second executor of the same graph creates no oneDNN primitive (the cache).
 * ctest runs it again with AUTOSP_BF16_PORTABLE=1 (the portable product). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "autosp/autosp.h"
#include "backends/cpu/linear_bf16.h"
#include "backends/cpu/parallel.h"
#include "base/bf16.h"

#define MAX_T 8

/* One node on bf16 inputs: the graph, its executor, and each tensor's name. */
typedef struct node_run {
    autosp_graph_t *g;
    autosp_executor_t *ex;
    const char *in[MAX_T], *out[MAX_T];
    int n_in, n_out;
} node_run_t;

/* An input of dims d (ndim), a parameter when param, filled with pseudo-random bf16 values. */
static autosp_tensor_t add_input(autosp_graph_t *g, const char *name, const char *shape,
                                 bool param) {
    return param ? autosp_param(g, name, AUTOSP_BF16, shape, AUTOSP_INIT_ZEROS, 0)
                 : autosp_input(g, name, AUTOSP_BF16, shape, AUTOSP_ROLE_OTHER, -1);
}

static void fill(node_run_t *r, uint32_t seed) {
    for (int k = 0; k < r->n_in; k++) {
        autosp_tensor_t t = autosp_tensor_find(r->g, r->in[k]);
        bf16_t *p = autosp_executor_data(r->ex, r->in[k]);
        for (int64_t i = 0; i < autosp_tensor_numel(r->g, t); i++) {
            seed = seed * 1664525u + 1013904223u;
            p[i] = f32_to_bf16((float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f);
        }
    }
}

static node_run_t node_new(autosp_op_t op, const char *const *names, const char *const *shapes,
                           const bool *param, int n_in, const char *const *outs, int n_out,
                           const autosp_attr_t *attrs, int n_attrs) {
    node_run_t r = {.g = autosp_graph_new("t"), .n_in = n_in, .n_out = n_out};
    autosp_tensor_t in[MAX_T], out[MAX_T];
    for (int k = 0; k < n_in; k++) {
        in[k] = add_input(r.g, names[k], shapes[k], param[k]);
        r.in[k] = names[k];
    }
    assert_int_equal(autosp_node_add(r.g, op, "n", in, n_in, outs, n_out, attrs, n_attrs, out),
                     AUTOSP_OK);
    for (int k = 0; k < n_out; k++) {
        assert_int_equal(autosp_output(r.g, out[k]), AUTOSP_OK);
        r.out[k] = outs[k];
    }
    autosp_error_t err;
    r.ex = autosp_executor_new(r.g, &err);
    if (!r.ex) fail_msg("%s", err.message);
    fill(&r, 12345);
    return r;
}

static void node_free(node_run_t *r) {
    autosp_executor_free(r->ex);
    autosp_graph_free(r->g);
}

static void run(node_run_t *r) {
    autosp_error_t err;
    if (autosp_executor_run(r->ex, &err) != AUTOSP_OK) fail_msg("%s", err.message);
}

/* Tensor `name` as doubles (bf16 or f32), and whether it is f32. */
static double *values(const node_run_t *r, const char *name, bool *f32) {
    autosp_tensor_t t = autosp_tensor_find(r->g, name);
    const int64_t n = autosp_tensor_numel(r->g, t);
    const void *p = autosp_executor_data(r->ex, name);
    *f32 = autosp_tensor_dtype(r->g, t) == AUTOSP_F32;
    double *v = malloc(sizeof(double) * (size_t)(n + 1));
    for (int64_t i = 0; i < n; i++)
        v[i] = *f32 ? ((const float *)p)[i] : bf16_to_f32(((const bf16_t *)p)[i]);
    return v;
}

/* C (batch, M, N) = sum over K (and over the batch when summed) of op(A) op(B), in double, with
 * the sum of |terms| for the bound. Strides of A, B, C per batch entry (0: shared). */
typedef struct ref_gemm {
    int64_t batch, M, N, K, sa, sb, sc;
    bool ta, tb, summed;
} ref_gemm_t;

static void ref(const ref_gemm_t *p, const double *A, const double *B, const double *bias,
                double *C, double *abs_sum) {
    const int64_t nc = (p->summed ? 1 : p->batch) * p->M * p->N;
    memset(C, 0, sizeof(double) * (size_t)nc);
    memset(abs_sum, 0, sizeof(double) * (size_t)nc);
    for (int64_t b = 0; b < p->batch; b++) {
        const double *a = A + b * p->sa, *bb = B + b * p->sb;
        double *c = C + (p->summed ? 0 : b * p->sc), *s = abs_sum + (p->summed ? 0 : b * p->sc);
        for (int64_t m = 0; m < p->M; m++) {
            for (int64_t n = 0; n < p->N; n++) {
                double acc = bias ? bias[n] : 0, abs = fabs(acc);
                for (int64_t k = 0; k < p->K; k++) {
                    double x = p->ta ? a[k * p->M + m] : a[m * p->K + k];
                    double y = p->tb ? bb[n * p->K + k] : bb[k * p->N + n];
                    acc += x * y;
                    abs += fabs(x * y);
                }
                c[m * p->N + n] += acc;
                s[m * p->N + n] += abs;
            }
        }
    }
}

/* Output `name` of r against p applied to inputs a and b (names; bias or NULL). */
static void check(const node_run_t *r, const char *name, const ref_gemm_t *p, const char *a,
                  const char *b, const char *bias) {
    bool f32, f;
    double *A = values(r, a, &f), *B = values(r, b, &f), *got = values(r, name, &f32);
    double *bv = bias ? values(r, bias, &f) : NULL;
    const int64_t nc = (p->summed ? 1 : p->batch) * p->M * p->N;
    double *want = malloc(sizeof(double) * (size_t)nc), *abs = malloc(sizeof(double) * (size_t)nc);
    ref(p, A, B, bv, want, abs);
    const double terms = (double)p->K * (p->summed ? (double)p->batch : 1.0);
    for (int64_t i = 0; i < nc; i++) {
        double bound = terms * 0x1p-23 * abs[i] + (f32 ? 0 : 0x1p-8 * fabs(want[i]));
        if (!(fabs(got[i] - want[i]) <= bound))
            fail_msg("%s[%lld] = %.9g, want %.9g (bound %.3g)", name, (long long)i, got[i], want[i],
                     bound);
    }
    free(A), free(B), free(got), free(bv), free(want), free(abs);
}

/* Every output's bytes after a run on 1 thread and on 2 are the same. */
static void check_threads(node_run_t *r) {
    void *first[MAX_T];
    size_t bytes[MAX_T];
    for (int t = 1; t <= 2; t++) {
        par_set_threads(t);
        run(r);
        for (int k = 0; k < r->n_out; k++) {
            autosp_tensor_t x = autosp_tensor_find(r->g, r->out[k]);
            bytes[k] = (size_t)autosp_tensor_numel(r->g, x) *
                       autosp_dtype_size(autosp_tensor_dtype(r->g, x));
            const void *p = autosp_executor_data(r->ex, r->out[k]);
            if (t == 1)
                first[k] = malloc(bytes[k]), memcpy(first[k], p, bytes[k]);
            else if (memcmp(first[k], p, bytes[k]))
                fail_msg("%s differs between 1 and 2 threads", r->out[k]);
        }
    }
    for (int k = 0; k < r->n_out; k++) free(first[k]);
    par_set_threads(0);
}

/* ---- linear ------------------------------------------------------------------------------ */

/* rows 600 = 256 + 256 + 88 (blocks by rows, N 40 < rows); N 300 > rows 24: by columns */
static void linear_case(int64_t rows, int64_t K, int64_t N, bool bias, bool x_param) {
    char xs[32], ws[32], bs[32], ys[32];
    snprintf(xs, sizeof xs, "%lld,%lld", (long long)rows, (long long)K);
    snprintf(ws, sizeof ws, "%lld,%lld", (long long)N, (long long)K);
    snprintf(bs, sizeof bs, "%lld", (long long)N);
    snprintf(ys, sizeof ys, "%lld,%lld", (long long)rows, (long long)N);
    const char *names[] = {"x", "w", "b"}, *shapes[] = {xs, ws, bs}, *y[] = {"y"};
    const bool param[] = {x_param, true, true};
    node_run_t f = node_new(AUTOSP_OP_LINEAR, names, shapes, param, bias ? 3 : 2, y, 1, NULL, 0);
    run(&f);
    check(&f, "y", &(ref_gemm_t){.batch = 1, .M = rows, .N = N, .K = K, .tb = true}, "x", "w",
          bias ? "b" : NULL);
    check_threads(&f);
    node_free(&f);

    const char *bnames[] = {"dy", "x", "w", "b"}, *bshapes[] = {ys, xs, ws, bs};
    const char *grads[] = {"dx", "dw", "db"};
    const bool bparam[] = {false, x_param, true, true};
    node_run_t g = node_new(AUTOSP_OP_LINEAR_BACKWARD, bnames, bshapes, bparam, bias ? 4 : 3, grads,
                            bias ? 3 : 2, NULL, 0);
    run(&g);
    check(&g, "dx", &(ref_gemm_t){.batch = 1, .M = rows, .N = K, .K = N}, "dy", "w", NULL);
    check(&g, "dw", &(ref_gemm_t){.batch = 1, .M = N, .N = K, .K = rows, .ta = true}, "dy", "x",
          NULL);
    if (bias) { /* db = ones(1, rows) @ dy: the same check with a row of ones */
        bool f32, dy_f32;
        double *dy = values(&g, "dy", &dy_f32), *db = values(&g, "db", &f32);
        assert_true(f32);
        for (int64_t n = 0; n < N; n++) {
            double want = 0, abs = 0;
            for (int64_t i = 0; i < rows; i++) want += dy[i * N + n], abs += fabs(dy[i * N + n]);
            if (!(fabs(db[n] - want) <= rows * 0x1p-23 * abs))
                fail_msg("db[%lld] = %.9g, want %.9g", (long long)n, db[n], want);
        }
        free(dy), free(db);
    }
    check_threads(&g);
    node_free(&g);
}

static void test_linear(void **state) {
    (void)state;
    linear_case(600, 70, 40, true, false);
    linear_case(24, 70, 300, true, false);
    linear_case(24, 33, 300, false, true); /* dx an f32 parameter gradient */
    linear_case(5, 1, 3, true, false);
}

/* ---- matmul: a (batch,M,K) or shared (M,K); b (batch,K,N) or shared (K,N) ------------------ */

typedef struct mm_case {
    int64_t batch, M, N, K;
    bool ta, tb, a_shared, b_shared, a_param, b_param;
} mm_case_t;

static void shape_of(char *s, size_t n, bool shared, int64_t batch, int64_t r, int64_t c) {
    if (shared)
        snprintf(s, n, "%lld,%lld", (long long)r, (long long)c);
    else
        snprintf(s, n, "%lld,%lld,%lld", (long long)batch, (long long)r, (long long)c);
}

static void matmul_case(const mm_case_t *c) {
    char as[48], bs[48], ys[48];
    const int64_t M = c->M, N = c->N, K = c->K, B = c->batch;
    shape_of(as, sizeof as, c->a_shared, B, c->ta ? K : M, c->ta ? M : K);
    shape_of(bs, sizeof bs, c->b_shared, B, c->tb ? N : K, c->tb ? K : N);
    shape_of(ys, sizeof ys, false, B, M, N);
    const autosp_attr_t attrs[] = {{.name = "trans_a", .type = AUTOSP_ATTR_BOOL, .i = c->ta},
                                   {.name = "trans_b", .type = AUTOSP_ATTR_BOOL, .i = c->tb}};
    const char *names[] = {"a", "b"}, *shapes[] = {as, bs}, *y[] = {"y"};
    const bool param[] = {c->a_param, c->b_param};
    node_run_t f = node_new(AUTOSP_OP_MATMUL, names, shapes, param, 2, y, 1, attrs, 2);
    run(&f);
    const int64_t sa = c->a_shared ? 0 : M * K, sb = c->b_shared ? 0 : K * N, so = M * N;
    check(&f, "y", &(ref_gemm_t){B, M, N, K, sa, sb, so, .ta = c->ta, .tb = c->tb}, "a", "b", NULL);
    check_threads(&f);
    node_free(&f);

    const char *bnames[] = {"dy", "a", "b"}, *bshapes[] = {ys, as, bs}, *grads[] = {"da", "db"};
    const bool bparam[] = {false, c->a_param, c->b_param};
    node_run_t g =
        node_new(AUTOSP_OP_MATMUL_BACKWARD, bnames, bshapes, bparam, 3, grads, 2, attrs, 2);
    run(&g);
    /* da (stored as a) and db (stored as b), as the backward computes them */
    const bool sum_a = c->a_shared && B > 1, sum_b = c->b_shared && B > 1;
    if (c->ta)
        check(&g, "da", &(ref_gemm_t){B, K, M, N, sb, so, sa, c->tb, true, sum_a}, "b", "dy", NULL);
    else
        check(&g, "da", &(ref_gemm_t){B, M, K, N, so, sb, sa, false, !c->tb, sum_a}, "dy", "b",
              NULL);
    if (c->tb)
        check(&g, "db", &(ref_gemm_t){B, N, K, M, so, sa, sb, true, c->ta, sum_b}, "dy", "a", NULL);
    else
        check(&g, "db", &(ref_gemm_t){B, K, N, M, sa, so, sb, !c->ta, false, sum_b}, "a", "dy",
              NULL);
    check_threads(&g);
    node_free(&g);
}

static void test_matmul(void **state) {
    (void)state;
    const mm_case_t cases[] = {
        {.batch = 3, .M = 300, .N = 20, .K = 17},
        {.batch = 2, .M = 20, .N = 300, .K = 17, .ta = true, .tb = true},
        {.batch = 3, .M = 40, .N = 24, .K = 9, .b_shared = true, .b_param = true},
        {.batch = 3, .M = 40, .N = 24, .K = 9, .ta = true, .b_shared = true}, /* bf16 sum */
        {.batch = 3, .M = 40, .N = 24, .K = 9, .tb = true, .a_shared = true, .a_param = true},
        {.batch = 2, .M = 7, .N = 5, .K = 300, .ta = true, .a_shared = true},
        {.batch = 1, .M = 270, .N = 260, .K = 64, .a_param = true, .b_param = true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) matmul_case(&cases[i]);
}

/* A second executor of a graph already planned creates no primitive: the cache has them. */
static void test_primitive_cache(void **state) {
    (void)state;
#ifdef AUTOSP_HAVE_DNNL
    const char *env = getenv("AUTOSP_BF16_PORTABLE");
    if (env && *env && strcmp(env, "0")) skip(); /* no oneDNN in the portable product */
    const char *names[] = {"x", "w", "b"}, *shapes[] = {"600,64", "96,64", "96"}, *y[] = {"y"};
    const bool param[] = {false, true, true};
    node_run_t a = node_new(AUTOSP_OP_LINEAR, names, shapes, param, 3, y, 1, NULL, 0);
    const int cached = dnnl_bgemm_cached();
    if (cached == 0) skip(); /* oneDNN has no bf16 matmul on this CPU */
    node_run_t b = node_new(AUTOSP_OP_LINEAR, names, shapes, param, 3, y, 1, NULL, 0);
    assert_int_equal(dnnl_bgemm_cached(), cached);
    run(&b);
    assert_int_equal(dnnl_bgemm_cached(), cached);
    node_free(&a);
    node_free(&b);
#else
    skip();
#endif
}

/* Planning many shapes (max-seq plans dozens of sequence lengths) never runs out of table:
 * the 300th new shape still gets oneDNN's workspace, not the portable product's staging. */
static void test_primitive_table_grows(void **state) {
    (void)state;
#ifdef AUTOSP_HAVE_DNNL
    const char *env = getenv("AUTOSP_BF16_PORTABLE");
    if (env && *env && strcmp(env, "0")) skip();
    if (dnnl_bgemm_cached() == 0) skip();
    for (int i = 0; i < 300; i++) {
        bgemm_t g = {.M = 8 + i, .N = 32, .K = 16};
        assert_true(dnnl_bgemm_prepare(&g) >= 0);
    }
#else
    skip();
#endif
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_primitive_cache),
        cmocka_unit_test(test_primitive_table_grows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
