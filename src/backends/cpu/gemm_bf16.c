/* gemm_bf16.c: the packers and the 4 x 64 block kernel of gemm_bf16.h.
 *
 * The kernel keeps a 4 x 64 block of C in 16 vector registers; per pair of K it loads four
 * vectors of B, broadcasts one pair of each of the four A rows and issues 16 vdpbf16ps (32
 * multiply-adds each). Attention's operands are tiles (K = D or a tile side) that stay in
 * L1/L2, so there is no cache blocking. */
#include "backends/cpu/gemm_bf16.h"

#include <string.h>

#include "base/base.h"

static inline uint32_t pair(bf16_t lo, bf16_t hi) {
    return (uint32_t)lo | (uint32_t)hi << 16;
}

VECTOR_CLONES void gemm_bf16_interleave(uint32_t *dst, int64_t ld, const bf16_t *x, int64_t ldx,
                                        int64_t k, int64_t n) {
    for (int64_t j = 0; j < gemm_bf16_pairs(k); j++) {
        const bf16_t *lo = x + 2 * j * ldx, *hi = lo + ldx;
        uint32_t *d = dst + j * ld;
        if (2 * j + 1 < k)
            for (int64_t c = 0; c < n; c++) d[c] = pair(lo[c], hi[c]);
        else
            for (int64_t c = 0; c < n; c++) d[c] = lo[c];
    }
}

void gemm_bf16_transpose(uint32_t *dst, int64_t ld, const bf16_t *x, int64_t ldx, int64_t n,
                         int64_t k) {
    const int64_t whole = k / 2;
    for (int64_t c = 0; c < n; c++) { /* read a row, write a column */
        const bf16_t *xc = x + c * ldx;
        for (int64_t j = 0; j < whole; j++) {
            uint32_t w;
            memcpy(&w, xc + 2 * j, sizeof w);
            dst[j * ld + c] = w;
        }
        if (k % 2) dst[whole * ld + c] = xc[k - 1];
    }
}

void gemm_bf16_copy_rows(bf16_t *dst, int64_t ld, const bf16_t *x, int64_t ldx, int64_t m,
                         int64_t k) {
    for (int64_t r = 0; r < m; r++) {
        memcpy(dst + r * ld, x + r * ldx, sizeof(bf16_t) * (size_t)k);
        if (k % 2) dst[r * ld + k] = 0;
    }
}

void gemm_bf16_round_rows(bf16_t *dst, int64_t ld, const float *x, int64_t ldx, int64_t m,
                          int64_t k) {
    for (int64_t r = 0; r < m; r++) {
        bf16_from_f32_n(dst + r * ld, x + r * ldx, k);
        if (k % 2) dst[r * ld + k] = 0;
    }
}

/* uint32 number i of a, whatever a's declared type (bf16 rows or packed pairs) */
static inline uint32_t word(const void *a, int64_t i) {
    uint32_t w;
    memcpy(&w, (const char *)a + 4 * i, sizeof w);
    return w;
}

/* ---- the kernel ---------------------------------------------------------------------------- */

static float lo_f32(uint32_t p) {
    return bf16_to_f32((bf16_t)(p & 0xffffu));
}
static float hi_f32(uint32_t p) {
    return bf16_to_f32((bf16_t)(p >> 16));
}

static void gemm_portable(float *c, int64_t ldc, const void *a, int64_t a_row, int64_t a_pair,
                          const uint32_t *b, int64_t ldb, int64_t m, int64_t n, int64_t k,
                          float alpha, bool accumulate) {
    for (int64_t r = 0; r < m; r++)
        for (int64_t col = 0; col < n; col++) {
            float s = 0.0f;
            for (int64_t j = 0; j < gemm_bf16_pairs(k); j++) {
                const uint32_t x = word(a, r * a_row + j * a_pair), y = b[j * ldb + col];
                s += lo_f32(x) * lo_f32(y) + hi_f32(x) * hi_f32(y);
            }
            c[r * ldc + col] = alpha * s + (accumulate ? c[r * ldc + col] : 0.0f);
        }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(AUTOSP_NO_BF16_ASM)
#include <immintrin.h>
#define HAVE_X86_BF16 1
#define BF16_TARGET   __attribute__((target("avx512f,avx512bw,avx512bf16")))

/* The first `cols` columns of one row of the block into c. */
BF16_TARGET static inline void store_row(float *c, const __m512 s[4], int64_t cols, __m512 alpha,
                                         bool accumulate) {
    for (int v = 0; v < 4 && v * 16 < cols; v++) {
        const int64_t left = cols - v * 16;
        const __mmask16 mask = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        __m512 out = _mm512_mul_ps(alpha, s[v]);
        if (accumulate) out = _mm512_add_ps(out, _mm512_maskz_loadu_ps(mask, c + v * 16));
        _mm512_mask_storeu_ps(c + v * 16, mask, out);
    }
}

#define DOT_ROW(i)                                                                                 \
    do {                                                                                           \
        const __m512bh ai =                                                                        \
            (__m512bh)_mm512_set1_epi32((int)word(a, (r0 + (i)) * a_row + j * a_pair));            \
        s##i[0] = _mm512_dpbf16_ps(s##i[0], ai, b0);                                               \
        s##i[1] = _mm512_dpbf16_ps(s##i[1], ai, b1);                                               \
        s##i[2] = _mm512_dpbf16_ps(s##i[2], ai, b2);                                               \
        s##i[3] = _mm512_dpbf16_ps(s##i[3], ai, b3);                                               \
    } while (0)

BF16_TARGET static void gemm_native(float *c, int64_t ldc, const void *a, int64_t a_row,
                                    int64_t a_pair, const uint32_t *b, int64_t ldb, int64_t m,
                                    int64_t n, int64_t k, float alpha, bool accumulate) {
    const int64_t pairs = gemm_bf16_pairs(k);
    const __m512 al = _mm512_set1_ps(alpha);
    for (int64_t c0 = 0; c0 < n; c0 += GEMM_BF16_NR) {
        const int64_t cols = n - c0 < GEMM_BF16_NR ? n - c0 : GEMM_BF16_NR;
        for (int64_t r0 = 0; r0 < m; r0 += GEMM_BF16_MR) {
            __m512 s0[4], s1[4], s2[4], s3[4];
            for (int v = 0; v < 4; v++) s0[v] = s1[v] = s2[v] = s3[v] = _mm512_setzero_ps();
            for (int64_t j = 0; j < pairs; j++) {
                const uint32_t *bj = b + j * ldb + c0;
                const __m512bh b0 = (__m512bh)_mm512_loadu_si512(bj);
                const __m512bh b1 = (__m512bh)_mm512_loadu_si512(bj + 16);
                const __m512bh b2 = (__m512bh)_mm512_loadu_si512(bj + 32);
                const __m512bh b3 = (__m512bh)_mm512_loadu_si512(bj + 48);
                DOT_ROW(0);
                DOT_ROW(1);
                DOT_ROW(2);
                DOT_ROW(3);
            }
            float *cr = c + r0 * ldc + c0;
            store_row(cr, s0, cols, al, accumulate);
            if (r0 + 1 < m) store_row(cr + ldc, s1, cols, al, accumulate);
            if (r0 + 2 < m) store_row(cr + 2 * ldc, s2, cols, al, accumulate);
            if (r0 + 3 < m) store_row(cr + 3 * ldc, s3, cols, al, accumulate);
        }
    }
}
#endif

void gemm_bf16(float *c, int64_t ldc, const void *a, int64_t a_row, int64_t a_pair,
               const uint32_t *b, int64_t ldb, int64_t m, int64_t n, int64_t k, float alpha,
               bool accumulate) {
#ifdef HAVE_X86_BF16
    if (bf16_native()) {
        gemm_native(c, ldc, a, a_row, a_pair, b, ldb, m, n, k, alpha, accumulate);
        return;
    }
#endif
    gemm_portable(c, ldc, a, a_row, a_pair, b, ldb, m, n, k, alpha, accumulate);
}
