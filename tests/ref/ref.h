/* ref.h: naive reference kernels, the obviously-correct twins of kernels.h, for tests only
 * (built into the test-support library, not into libautosp). Same signatures and semantics as
 * the kernels they check, including accumulate-vs-overwrite; plain loops, double accumulators,
 * no tiling, no BLAS. Attention here does build the full S x Skv score matrix, with malloc. */
#ifndef AUTOSP_KERNELS_REF_H
#define AUTOSP_KERNELS_REF_H

#include "backends/cpu/kernels.h"

void ref_embedding_forward(float *out, const int32_t *ids, const float *weight, int64_t rows,
                           int64_t C);
void ref_embedding_backward(float *dweight, const int32_t *ids, const float *dout, int64_t rows,
                            int64_t C);
void ref_linear_forward(float *out, const float *x, const float *weight, const float *bias,
                        int64_t rows, int64_t K, int64_t N);
void ref_linear_backward(float *dx, float *dweight, float *dbias, const float *dout, const float *x,
                         const float *weight, int64_t rows, int64_t K, int64_t N);
void ref_matmul_forward(float *out, const float *a, const float *b, const matmul_dims_t *d);
void ref_matmul_backward(float *da, float *db, const float *dout, const float *a, const float *b,
                         const matmul_dims_t *d);
void ref_silu_forward(float *out, const float *x, int64_t n);
void ref_silu_backward(float *dx, const float *dout, const float *x, int64_t n);
void ref_gelu_forward(float *out, const float *x, int64_t n);
void ref_gelu_backward(float *dx, const float *dout, const float *x, int64_t n);
void ref_swiglu_forward(float *out, const float *gate, const float *up, int64_t n);
void ref_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                         const float *up, int64_t n);
void ref_rmsnorm_forward(float *out, const float *x, const float *weight, int64_t rows, int64_t C,
                         float eps);
/* workspace: unused, there to match the fast kernel's arguments */
void ref_rmsnorm_backward(float *dx, float *dweight, const float *dout, const float *x,
                          const float *weight, int64_t rows, int64_t C, float eps, void *workspace);
void ref_layernorm_forward(float *out, const float *x, const float *weight, const float *bias,
                           int64_t rows, int64_t C, float eps);
void ref_layernorm_backward(float *dx, float *dweight, float *dbias, const float *dout,
                            const float *x, const float *weight, int64_t rows, int64_t C, float eps,
                            void *workspace);
void ref_softmax_forward(float *out, const float *x, int64_t rows, int64_t C);
void ref_softmax_backward(float *dx, const float *dout, const float *y, int64_t rows, int64_t C);
void ref_rope_forward(float *out, const float *x, const int32_t *positions, int64_t B, int64_t S,
                      int64_t H, int64_t D, float theta, bool inverse);
float ref_cross_entropy_forward(const float *logits, const int32_t *labels, int64_t rows, int64_t V,
                                int32_t ignore_index);
void ref_cross_entropy_backward(float *dlogits, const float *logits, const int32_t *labels,
                                int64_t rows, int64_t V, int32_t ignore_index, float dloss);
void ref_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                           const int32_t *segment_ids, const attention_dims_t *d);
void ref_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                            const float *k, const float *v, const int32_t *segment_ids,
                            const attention_dims_t *d);
/* Ops without a kernel of their own (their adapters are the fast path); dims are row-major,
 * at most 8 of them. out (a's dims) = a + b or a * b, b broadcast numpy-style to a. */
void ref_broadcast_binary(float *out, const float *a, int an, const int64_t *ad, const float *b,
                          int bn, const int64_t *bd, bool multiply);
/* out (od) = x (xd) summed over the elements that broadcast from each element of out */
void ref_sum_to(float *out, int on, const int64_t *od, const float *x, int xn, const int64_t *xd);
/* out dim k is x dim perm[k] */
void ref_transpose(float *out, const float *x, int n, const int64_t *xd, const int64_t *perm);
void ref_repeat_forward(float *out, const float *x, int64_t outer, int64_t n, int64_t r,
                        int64_t inner);
/* out (V,C) = base + src's rows (rows,C) added at ids */
void ref_index_add(float *out, const float *base, int64_t V, int64_t C, const int32_t *ids,
                   int64_t rows, const float *src);
int64_t ref_count_targets(const int32_t *labels, int64_t n, int32_t ignore_index);

#endif
