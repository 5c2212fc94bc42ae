/* test_bf16.c: the bf16 conversions (src/base/bf16.h): round to nearest even with the special
 * values handled as AVX512_BF16 does, and the bulk conversions giving the same bits as the
 * scalar ones (on the vector path where the CPU has it; ctest runs this test again with
 * AUTOSP_BF16_PORTABLE=1); and the staged bf16 kernels on tensors of several staging blocks. */
#include <math.h>
#include <stdio.h>

#include "autosp/autosp.h"
#include "base/bf16.h"
#include "test_util.h"

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void test_rounding(void **state) {
    (void)state;
    assert_int_equal(f32_to_bf16(1.0f), 0x3f80);
    /* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (down); just above rounds up */
    assert_int_equal(f32_to_bf16(from_bits(0x3f808000u)), 0x3f80);
    assert_int_equal(f32_to_bf16(from_bits(0x3f808001u)), 0x3f81);
    assert_int_equal(f32_to_bf16(from_bits(0x3f818000u)), 0x3f82); /* odd: tie goes up */
    assert_int_equal(f32_to_bf16(-0.0f), 0x8000);
    assert_int_equal(f32_to_bf16(from_bits(0x00000001u)), 0x0000); /* denormals flush */
    assert_int_equal(f32_to_bf16(from_bits(0x807fffffu)), 0x8000);
    assert_int_equal(f32_to_bf16(INFINITY), 0x7f80);
    assert_int_equal(f32_to_bf16(from_bits(0x7f7fffffu)), 0x7f80); /* FLT_MAX rounds past */
    assert_true(isnan(bf16_to_f32(f32_to_bf16(NAN))));
    assert_int_equal(f32_to_bf16(from_bits(0x7f800001u)) & 0x7fc0, 0x7fc0); /* quieted */
    /* widening is exact, and narrowing what was widened gives it back */
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = bf16_to_f32((bf16_t)h);
        bool denormal = (h & 0x7f80) == 0 && (h & 0x7f);
        if (isnan(f) || denormal) continue;
        assert_int_equal(f32_to_bf16(f), h);
    }
    /* the error of one rounding is at most the unit roundoff */
    for (uint32_t u = 0x00800000u; u < 0x7f000000u; u += 0x1357u) {
        float f = from_bits(u), r = bf16_to_f32(f32_to_bf16(f));
        assert_true(fabs((double)r - f) <= BF16_UNIT_ROUNDOFF * fabs((double)f));
    }
}

/* Every 2^20-th block of the f32 bit patterns, plus the edges, through the bulk calls. */
static void test_bulk_matches_scalar(void **state) {
    (void)state;
    enum { N = 4099 }; /* not a multiple of the vector width */
    static float f[N], back[N];
    static bf16_t h[N];
    print_message("bulk path: %s\n", bf16_native() ? "AVX512_BF16" : "portable");
    for (uint64_t base = 0; base < (1ull << 32); base += 1ull << 20) {
        for (int i = 0; i < N; i++) f[i] = from_bits((uint32_t)(base + (uint64_t)i * 37));
        bf16_from_f32_n(h, f, N);
        for (int i = 0; i < N; i++)
            if (h[i] != f32_to_bf16(f[i]))
                fail_msg("%08x: bulk %04x, scalar %04x", (unsigned)(base + (uint64_t)i * 37), h[i],
                         f32_to_bf16(f[i]));
        bf16_to_f32_n(back, h, N);
        for (int i = 0; i < N; i++) {
            float w = bf16_to_f32(h[i]);
            assert_memory_equal(&w, &back[i], sizeof w);
        }
    }
}

/* The staged bf16 kernels (src/backends/cpu/staged.c) on tensors of several staging blocks
 * (9000 rows of 64: three blocks of 4096), which the op table's small rows never reach: a
 * norm, an activation, a residual add and the loss, forward and backward, against f32 on the
 * same rounded values. x is a parameter (its gradient an f32 output cut into rows), w goes
 * through scale (its gradient a bf16 sum over the blocks). */
enum { STAGED_ROWS = 9000, STAGED_C = 64 };

static autosp_graph_t *staged_graph(autosp_dtype_t dtype) {
    autosp_graph_t *g = autosp_graph_new("staged");
    autosp_tensor_t x = autosp_param(g, "x", dtype, "9000,64", AUTOSP_INIT_NORMAL, 1.0);
    autosp_tensor_t wp = autosp_param(g, "wp", dtype, "64", AUTOSP_INIT_NORMAL, 1.0);
    autosp_tensor_t w = autosp_scale(g, wp, 1.0, "w");
    autosp_tensor_t h = autosp_gelu(g, autosp_rmsnorm(g, x, w, 1e-5, "norm"), "act");
    autosp_tensor_t y = autosp_add(g, h, x, "y");
    autosp_tensor_t labels = autosp_input(g, "labels", AUTOSP_I32, "9000", AUTOSP_ROLE_OTHER, -1);
    autosp_output(g, autosp_cross_entropy(g, y, labels, -100, "loss"));
    autosp_error_t err;
    autosp_graph_t *j = autosp_autodiff(g, &err);
    if (!j) fail_msg("autodiff: %s", err.message);
    autosp_graph_free(g);
    return j;
}

static void widen_into(float *out, const void *p, autosp_dtype_t dtype, int64_t n) {
    if (dtype == AUTOSP_BF16)
        bf16_to_f32_n(out, p, n);
    else
        memcpy(out, p, sizeof(float) * (size_t)n);
}

static double normwise(autosp_executor_t *a, autosp_executor_t *b, autosp_dtype_t b_dtype,
                       const char *name, int64_t n) {
    float *want = malloc(sizeof(float) * (size_t)n), *got = malloc(sizeof(float) * (size_t)n);
    memcpy(want, autosp_executor_data(a, name), sizeof(float) * (size_t)n);
    widen_into(got, autosp_executor_data(b, name), b_dtype, n);
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
        den += (double)want[i] * want[i];
    }
    free(want);
    free(got);
    return sqrt(num / (den > 0 ? den : 1));
}

static void test_staged_blocks(void **state) {
    (void)state;
    autosp_error_t err;
    autosp_graph_t *g32 = staged_graph(AUTOSP_F32), *g16 = staged_graph(AUTOSP_BF16);
    autosp_comm_t *comm = autosp_comm_new_single(&err);
    autosp_executor_t *e32 = autosp_executor_new_comm(g32, comm, &err);
    autosp_executor_t *e16 = e32 ? autosp_executor_new_comm(g16, comm, &err) : NULL;
    if (!e16) fail_msg("executor: %s", err.message);
    uint32_t seed = 7;
    const char *params[2] = {"x", "wp"};
    int64_t sizes[2] = {STAGED_ROWS * STAGED_C, STAGED_C};
    for (int p = 0; p < 2; p++) {
        float *v = autosp_executor_data(e32, params[p]);
        for (int64_t i = 0; i < sizes[p]; i++) {
            seed = seed * 1664525u + 1013904223u;
            v[i] = (float)((seed >> 8) / 16777216.0 * 4.0 - 2.0);
        }
        bf16_from_f32_n(autosp_executor_data(e16, params[p]), v, sizes[p]);
        bf16_to_f32_n(v, autosp_executor_data(e16, params[p]), sizes[p]);
    }
    int32_t *l32 = autosp_executor_data(e32, "labels"), *l16 = autosp_executor_data(e16, "labels");
    for (int64_t r = 0; r < STAGED_ROWS; r++)
        l32[r] = l16[r] = r % 7 ? (int32_t)(r % STAGED_C) : -100;
    if (autosp_executor_run(e32, &err) != AUTOSP_OK || autosp_executor_run(e16, &err) != AUTOSP_OK)
        fail_msg("run: %s", err.message);
    const double u =
        0.00390625; /* the bound of test_ops' bf16 check: 1 rounding, 4 for a gradient */
    double loss = normwise(e32, e16, AUTOSP_F32, "loss", 1);
    double dx = normwise(e32, e16, AUTOSP_F32, "x.grad", STAGED_ROWS * STAGED_C);
    double dw = normwise(e32, e16, AUTOSP_F32, "wp.grad", STAGED_C);
    print_message("staged bf16 vs f32: loss %.2g, x.grad %.2g, wp.grad %.2g\n", loss, dx, dw);
    assert_true(loss <= u && dx <= 4 * u && dw <= 4 * u);
    autosp_executor_free(e16);
    autosp_executor_free(e32);
    autosp_comm_free(comm);
    autosp_graph_free(g16);
    autosp_graph_free(g32);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rounding),
        cmocka_unit_test(test_bulk_matches_scalar),
        cmocka_unit_test(test_staged_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
