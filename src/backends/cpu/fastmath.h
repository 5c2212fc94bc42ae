/* fastmath.h: exp without libm, branch-free so that loops over it vectorise (attention's
 * softmax tiles, the activations). Shared by the kernels; not part of the public API. */
#ifndef AUTOSP_KERNELS_FASTMATH_H
#define AUTOSP_KERNELS_FASTMATH_H

#include <stdint.h>
#include <string.h>

/* mask ? a : b, for a mask of all ones or all zeros, on the bits: no branch */
static inline float blend(int32_t mask, float a, float b) {
    int32_t ab, bb;
    memcpy(&ab, &a, sizeof ab);
    memcpy(&bb, &b, sizeof bb);
    ab = (ab & mask) | (bb & ~mask);
    memcpy(&a, &ab, sizeof a);
    return a;
}

/* e^x with relative error < 1e-7; exactly 0 for x < -87 and for x = -inf (a hidden score), NaN for
 * NaN, e^88 for x > 88 (callers pass x <= 0 up to rounding). No branch and no libm call, so that a
 * loop over it vectorises. Cephes' expf: x = n ln2 + r, |r| <= ln2/2, e^r by a degree-6 polynomial,
 * 2^n built in the exponent bits. */
static inline float exp_approx(float x) {
    const int32_t in_range = -(int32_t)(x >= -87.0f); /* false for -inf and NaN too */
    const int32_t big = -(int32_t)(x > 88.0f), nan = -(int32_t)(x != x);
    const float xc = blend(in_range, blend(big, 88.0f, x), 0.0f);
    const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round(x/ln2) */
    const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;           /* ln2 in two parts */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    const int32_t bits = ((int32_t)n + 127) * (1 << 23); /* 2^n, n in [-126, 127] */
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    return blend(in_range, p * two_n, blend(nan, x, 0.0f));
}

/* tanh(x) = 1 - 2 / (e^{2x} + 1): saturates to +-1 without overflow; absolute error ~1e-7 */
static inline float tanh_approx(float x) {
    return 1.0f - 2.0f / (exp_approx(2.0f * x) + 1.0f);
}

/* 1 / (1 + e^-x): 0 for x -> -inf, 1 for x -> +inf */
static inline float sigmoid_approx(float x) {
    return 1.0f / (1.0f + exp_approx(-x));
}

#endif
