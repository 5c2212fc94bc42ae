/* bf16.c: the bulk conversions, with a run-time choice of AVX512_BF16 (bf16.h). */
#include "base/bf16.h"

#include <pthread.h>
#include <stdlib.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(AUTOSP_NO_BF16_ASM)
#include <immintrin.h>
#define HAVE_X86_BF16 1

/* vcvtneps2bf16 flushes denormal inputs (DAZ) and quiets NaNs as f32_to_bf16 does. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static void
from_f32_avx512(bf16_t *dst, const float *src, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + i));
        _mm256_storeu_si256((__m256i *)(dst + i), (__m256i)h);
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m256bh h = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + i));
        _mm256_mask_storeu_epi16(dst + i, m, (__m256i)h);
    }
}

__attribute__((target("avx512f,avx512bw"))) static void to_f32_avx512(float *dst, const bf16_t *src,
                                                                      int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i h = _mm256_loadu_si256((const __m256i *)(src + i));
        _mm512_storeu_ps(dst + i,
                         _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
    }
    for (; i < n; i++) dst[i] = bf16_to_f32(src[i]);
}
#endif

static bool native;
static pthread_once_t chosen = PTHREAD_ONCE_INIT;

static void choose(void) {
    const char *env = getenv("AUTOSP_BF16_PORTABLE");
    bool portable = env && *env && strcmp(env, "0") != 0;
#ifdef HAVE_X86_BF16
    __builtin_cpu_init();
    native = !portable && __builtin_cpu_supports("avx512bf16") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
    (void)portable;
    native = false;
#endif
}

bool bf16_native(void) {
    pthread_once(&chosen, choose);
    return native;
}

void bf16_from_f32_n(bf16_t *dst, const float *src, int64_t n) {
#ifdef HAVE_X86_BF16
    if (bf16_native()) {
        from_f32_avx512(dst, src, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) dst[i] = f32_to_bf16(src[i]);
}

void bf16_to_f32_n(float *dst, const bf16_t *src, int64_t n) {
#ifdef HAVE_X86_BF16
    if (bf16_native()) {
        to_f32_avx512(dst, src, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) dst[i] = bf16_to_f32(src[i]);
}
