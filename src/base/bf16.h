/* bf16.h: bfloat16 values and their conversions, shared by the kernels, the trainer and the
 * weight files. Not part of the public API.
 *
 * bf16 is the top half of an f32: 8 exponent bits, 7 mantissa bits, unit roundoff 2^-8
 * (BF16_UNIT_ROUNDOFF: the largest relative error of one rounding to nearest). Widening is exact.
 * Narrowing rounds to nearest, ties to even, and does what AVX512_BF16's vcvtneps2bf16 does
 * with the special values, so that the vector path and the portable path give the same bits:
 * a denormal input becomes a zero of its sign (DAZ), a NaN stays a NaN (quieted), infinities
 * and values that round past the largest bf16 become infinities. */
#ifndef AUTOSP_BASE_BF16_H
#define AUTOSP_BASE_BF16_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

typedef uint16_t bf16_t;

#define BF16_UNIT_ROUNDOFF (1.0 / 256.0) /* 2^-8: round to nearest with 8 significant bits */

static inline float bf16_to_f32(bf16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline bf16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    const uint32_t mag = u & 0x7fffffffu;
    if (mag > 0x7f800000u) return (bf16_t)((u >> 16) | 0x40u);   /* NaN: quiet, sign kept */
    if (mag < 0x00800000u) return (bf16_t)((u >> 16) & 0x8000u); /* zero or denormal: +-0 */
    u += 0x7fffu + ((u >> 16) & 1u);                             /* to nearest, ties to even */
    return (bf16_t)(u >> 16);
}

/* n values between the formats, on the calling thread; AVX512_BF16 where the CPU has it
 * (checked once), else the scalar code above. Same bits either way. */
void bf16_from_f32_n(bf16_t *dst, const float *src, int64_t n);
void bf16_to_f32_n(float *dst, const bf16_t *src, int64_t n);

/* Whether the conversions above use AVX512_BF16: the CPU has it and the environment variable
 * AUTOSP_BF16_PORTABLE is unset or 0 (the tests set it to run the portable path). */
bool bf16_native(void);

#endif
