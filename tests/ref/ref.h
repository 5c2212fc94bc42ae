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

#endif
