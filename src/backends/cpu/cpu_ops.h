/* cpu_ops.h: the cpu backend's kernel adapters: a node's shapes and buffers (kernel_args_t)
 * turned into one call of a kernel (kernels.h). cpu_backend.c puts them in its table. */
#ifndef AUTOSP_CPU_OPS_H
#define AUTOSP_CPU_OPS_H

#include "ir/backend.h"

/* run_ops.c */
autosp_status_t run_add(const kernel_args_t *r);
autosp_status_t run_attention(const kernel_args_t *r);
autosp_status_t run_attention_backward(const kernel_args_t *r);
autosp_status_t run_cross_entropy(const kernel_args_t *r);
autosp_status_t run_cross_entropy_backward(const kernel_args_t *r);
autosp_status_t run_embedding(const kernel_args_t *r);
autosp_status_t run_embedding_backward(const kernel_args_t *r);
autosp_status_t run_fill(const kernel_args_t *r);
autosp_status_t run_gelu(const kernel_args_t *r);
autosp_status_t run_gelu_backward(const kernel_args_t *r);
autosp_status_t run_layernorm(const kernel_args_t *r);
autosp_status_t run_layernorm_backward(const kernel_args_t *r);
autosp_status_t run_linear(const kernel_args_t *r);
autosp_status_t run_linear_backward(const kernel_args_t *r);
autosp_status_t run_matmul(const kernel_args_t *r);
autosp_status_t run_matmul_backward(const kernel_args_t *r);
autosp_status_t run_mul(const kernel_args_t *r);
autosp_status_t run_rmsnorm(const kernel_args_t *r);
autosp_status_t run_rmsnorm_backward(const kernel_args_t *r);
autosp_status_t run_rope(const kernel_args_t *r);
autosp_status_t run_scale(const kernel_args_t *r);
autosp_status_t run_silu(const kernel_args_t *r);
autosp_status_t run_silu_backward(const kernel_args_t *r);
autosp_status_t run_softmax(const kernel_args_t *r);
autosp_status_t run_softmax_backward(const kernel_args_t *r);
autosp_status_t run_sum_to(const kernel_args_t *r);
autosp_status_t run_index_add(const kernel_args_t *r);
autosp_status_t run_swiglu(const kernel_args_t *r);
autosp_status_t run_swiglu_backward(const kernel_args_t *r);
autosp_status_t run_transpose(const kernel_args_t *r);
autosp_status_t run_view(const kernel_args_t *r);
autosp_status_t run_target_count(const kernel_args_t *r);
autosp_status_t run_repeat(const kernel_args_t *r);
autosp_status_t run_repeat_backward(const kernel_args_t *r);
int64_t workspace_attention(const cost_ctx_t *c);
int64_t workspace_attention_backward(const cost_ctx_t *c);
int64_t workspace_norm_backward(const cost_ctx_t *c);

/* collectives.c: over the comm's groups (src/runtime/comm.h) */
autosp_status_t run_all_to_all(const kernel_args_t *r);
autosp_status_t run_all_reduce(const kernel_args_t *r);
autosp_status_t run_all_gather(const kernel_args_t *r);
int64_t workspace_all_to_all(const cost_ctx_t *c);
int64_t workspace_all_reduce(const cost_ctx_t *c);
int64_t workspace_all_gather(const cost_ctx_t *c);

#endif
