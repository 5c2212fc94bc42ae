/* linear_bf16.h: the bf16 matrix products of the linear family, between its files.
 *
 * linear.c registers the rows and keeps the f32 sgemm; linear_bf16.c has the bf16 adapters and
 * the portable product (bf16 staged to f32, then sgemm); linear_dnnl.c, built with
 * AUTOSP_WITH_DNNL, runs the same product on oneDNN's bf16 matmul. Every product accumulates
 * in f32 and rounds once, to the output's dtype. */
#ifndef AUTOSP_CPU_LINEAR_BF16_H
#define AUTOSP_CPU_LINEAR_BF16_H

#include <stdbool.h>
#include <stdint.h>

#include "backends/cpu/cpu_ops.h"
#include "backends/cpu/kernels.h"
#include "base/bf16.h"

/* Both bf16 products cut C into blocks of BGEMM_BLOCK rows (columns when N >= M), a fixed size,
 * so that their bits do not depend on the thread count. */
#define BGEMM_BLOCK 256

/* The f32 product of linear.c on the pool: C (M,N) = op(A) op(B) + beta C, row-major,
 * contiguous; op(A) is (M,K), stored (K,M) if ta; op(B) is (K,N), stored (N,K) if tb. C is cut
 * along its larger dim into a block per thread, one single-threaded sgemm each. */
void cpu_sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *A, const float *B,
               float beta, float *C);
/* The same, C cut into blocks of a fixed `block` (bits independent of the thread count). */
void cpu_sgemm_blocks(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *A,
                      const float *B, float beta, float *C, int64_t block);

/* The batch loop of matmul, shared by the forward and the backward, in both dtypes: the element
 * strides of a, b and out (0 for a shared operand), after folding the batch into M when that is
 * one product: with b shared and a neither shared nor transposed, a's batch is one (batch*M, K)
 * matrix. matmul_dims: a node's dims, a and b its inputs' indices. */
typedef struct matmul_plan {
    int64_t batch, M;
    int64_t sa, sb, so;
} matmul_plan_t;
matmul_plan_t matmul_plan(const matmul_dims_t *d);
matmul_dims_t matmul_dims(const cost_ctx_t *c, int a, int b);

/* C (M,N) = op(A) op(B) [+ bias] [+ C], A and B bf16, contiguous, in linear.c's layout; bias
 * (N) bf16. C is f32 (a parameter's gradient, or an accumulator) or bf16. */
typedef struct bgemm {
    int64_t M, N, K;
    bool ta, tb;
    bool c_f32;      /* C is f32, else bf16 */
    bool accumulate; /* C += the product; f32 C only */
    bool bias;       /* + a bf16 bias per column */
} bgemm_t;

/* One product and its buffers. */
typedef struct bgemm_call {
    bgemm_t g;
    const bf16_t *A, *B, *bias; /* bias: NULL unless g.bias */
    void *C;
} bgemm_call_t;
#define BGEMM_MAX_CALLS 2

/* Workspace bytes the product needs; it is called at plan time (the workspace rule), where the
 * oneDNN path creates its primitives, so a step only looks them up. Products run together
 * (bgemm_run) share the workspace: it needs the largest of theirs. */
int64_t bgemm_workspace(const bgemm_t *g);
/* The workspace of n products run together by one bgemm_run. */
int64_t bgemm_workspace_all(const bgemm_t *gs, int n);
/* n (<= BGEMM_MAX_CALLS) independent products, their blocks together on the pool */
void bgemm_run(const bgemm_call_t *calls, int n, void *workspace);

#ifdef AUTOSP_HAVE_DNNL
/* The oneDNN product (linear_dnnl.c). prepare: the bytes of scratch, or -1 when oneDNN has no
 * primitive for it (the portable product then runs). run: false when prepare gave -1 for one
 * of the products (nothing ran). */
int64_t dnnl_bgemm_prepare(const bgemm_t *g);
bool dnnl_bgemm_run(const bgemm_call_t *calls, int n, void *workspace);
/* Primitives in the cache (for the test that a second plan reuses them). */
int dnnl_bgemm_cached(void);
#endif

/* The rows' adapters and workspace rules (linear_bf16.c). */
autosp_status_t run_linear_bf16(const kernel_args_t *r);
autosp_status_t run_linear_backward_bf16(const kernel_args_t *r);
autosp_status_t run_matmul_bf16(const kernel_args_t *r);
autosp_status_t run_matmul_backward_bf16(const kernel_args_t *r);
int64_t workspace_linear_bf16(const cost_ctx_t *c);
int64_t workspace_linear_backward_bf16(const cost_ctx_t *c);
int64_t workspace_matmul_bf16(const cost_ctx_t *c);
int64_t workspace_matmul_backward_bf16(const cost_ctx_t *c);

#endif
