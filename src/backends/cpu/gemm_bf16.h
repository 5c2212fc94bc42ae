/* gemm_bf16.h: a small bf16 x bf16 -> f32 product for attention's tiles, on AVX512_BF16.
 *
 * Operands are pairs of bf16 along the reduction dimension, one uint32 per pair with the
 * lower-indexed element in the low half: the layout vdpbf16ps multiplies. With K the reduction
 * length and pairs = ceil(K/2) (an odd K's last pair has a zero high half):
 *   A (M x K): pair j of row r is uint32 number r * a_row + j * a_pair of a: either bf16 rows
 *              as they are (a_row = half the row stride, which is even; a_pair = 1; an odd
 *              K's element K zero), or columns of pairs from gemm_bf16_interleave (a_row = 1,
 *              a_pair = the column's length).
 *   B (K x N): pair (b[2j][n], b[2j+1][n]) at b[j * ldb + n].
 * The kernel computes whole blocks of GEMM_BF16_MR x GEMM_BF16_NR and stores only the first
 * m rows and n columns: A must be readable for rows up to M rounded up to GEMM_BF16_MR, B for
 * columns up to N rounded up to GEMM_BF16_NR; what those extra rows and columns hold does not
 * matter (each output element reads only its own row of A and column of B). */
#ifndef AUTOSP_BACKENDS_CPU_GEMM_BF16_H
#define AUTOSP_BACKENDS_CPU_GEMM_BF16_H

#include <stdbool.h>
#include <stdint.h>

#include "base/bf16.h"

#define GEMM_BF16_MR 4  /* rows of C per block */
#define GEMM_BF16_NR 64 /* columns of C per block: four vectors of 16 */

static inline int64_t gemm_bf16_pairs(int64_t k) {
    return (k + 1) / 2;
}
static inline int64_t gemm_bf16_round_cols(int64_t n) {
    return (n + GEMM_BF16_NR - 1) / GEMM_BF16_NR * GEMM_BF16_NR;
}

/* dst[j * ld + c] = (x[2j][c], x[2j+1][c]) for j < pairs(k), c < n; x (k x n) bf16 rows of
 * stride ldx, a missing row 2j+1 read as zero. B from rows (b = x), or A as columns of pairs
 * from the rows of its transpose (x = a^T). */
void gemm_bf16_interleave(uint32_t *dst, int64_t ld, const bf16_t *x, int64_t ldx, int64_t k,
                          int64_t n);
/* dst[j * ld + c] = (x[c][2j], x[c][2j+1]) for j < pairs(k), c < n; x (n x k): B from the rows
 * of its transpose (x = b^T), a missing element 2j+1 read as zero. */
void gemm_bf16_transpose(uint32_t *dst, int64_t ld, const bf16_t *x, int64_t ldx, int64_t n,
                         int64_t k);
/* x (m x k) into dst with the even row stride ld >= k + 1 (bf16s), zero after an odd row:
 * from bf16 rows, or from f32 rows rounded. The rows of an A. */
void gemm_bf16_copy_rows(bf16_t *dst, int64_t ld, const bf16_t *x, int64_t ldx, int64_t m,
                         int64_t k);
void gemm_bf16_round_rows(bf16_t *dst, int64_t ld, const float *x, int64_t ldx, int64_t m,
                          int64_t k);

/* c (m x n, row stride ldc) = alpha a b, or += with accumulate; the products and sums in f32
 * (vdpbf16ps). Needs AVX512_BF16 for speed (bf16_native()); elsewhere the same sums in
 * portable C. */
void gemm_bf16(float *c, int64_t ldc, const void *a, int64_t a_row, int64_t a_pair,
               const uint32_t *b, int64_t ldb, int64_t m, int64_t n, int64_t k, float alpha,
               bool accumulate);

#endif
