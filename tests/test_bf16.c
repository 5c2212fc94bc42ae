/* test_bf16.c: the bf16 conversions (src/base/bf16.h): round to nearest even with the special
 * values handled as AVX512_BF16 does, and the bulk conversions giving the same bits as the
 * scalar ones (on the vector path where the CPU has it; ctest runs this test again with
 * AUTOSP_BF16_PORTABLE=1). */
#include <math.h>
#include <stdio.h>

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rounding),
        cmocka_unit_test(test_bulk_matches_scalar),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
