/* linear.c: linear and batched matmul through cblas_sgemm, forward next to backward.
 * Transposed operands are never copied: the transpose goes to BLAS as a flag with the stored
 * leading dimension. BLAS takes int sizes: every dim here must be < 2^31 (they are, for the
 * shapes we run; a dim that large would not fit the memory plan either). */
#include <cblas.h>

#include "backends/cpu/cpu_ops.h"
#include "backends/cpu/linear_bf16.h"
#include "kernels.h"
#include "parallel.h"

static inline int ld(int64_t n) {
    return n > 1 ? (int)n : 1; /* BLAS wants leading dims >= 1 even for empty operands */
}

/* C (M,N) = op(A) @ op(B) + beta * C, where op(A) is (M,K), stored (M,K), or (K,M) if ta;
 * op(B) is (K,N), stored (K,N), or (N,K) if tb. All row-major and contiguous.
 * On the pool: C is cut into blocks of columns (of rows when M > N: each block packs the whole
 * other operand, so the larger dimension is the one to cut), one per thread, and each block
 * is one single-threaded sgemm. A block of C gets the same arithmetic as in one call.
 * Independent products can run together (gemm_set_t): each takes its share of the threads. */
typedef struct gemm_job {
    bool ta, tb, by_rows;
    int64_t M, N, K, chunk, blocks;
    const float *A, *B;
    float beta, *C;
} gemm_job_t;

static void gemm_call(const gemm_job_t *j, int64_t m0, int64_t M, int64_t n0, int64_t N) {
    const int64_t lda = ld(j->ta ? j->M : j->K), ldb = ld(j->tb ? j->K : j->N), ldc = ld(j->N);
    const float *A = j->A + (j->ta ? m0 : m0 * lda), *B = j->B + (j->tb ? n0 * ldb : n0);
    cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans, j->tb ? CblasTrans : CblasNoTrans,
                (int)M, (int)N, (int)j->K, 1.0f, A, (int)lda, B, (int)ldb, j->beta,
                j->C + m0 * ldc + n0, (int)ldc);
}

enum { GEMM_ALIGN = 16, GEMM_MIN_FLOPS = 1 << 20 }; /* block edge; below that, one call */

static gemm_job_t gemm_job(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *A,
                           const float *B, float beta, float *C, int64_t parts) {
    gemm_job_t j = {.ta = ta,
                    .tb = tb,
                    .by_rows = M > N,
                    .M = M,
                    .N = N,
                    .K = K,
                    .A = A,
                    .B = B,
                    .beta = beta,
                    .C = C};
    const int64_t dim = j.by_rows ? M : N;
    if (2 * M * N * K < GEMM_MIN_FLOPS) parts = 1;
    j.chunk =
        parts > 1 ? ((dim + parts - 1) / parts + GEMM_ALIGN - 1) / GEMM_ALIGN * GEMM_ALIGN : dim;
    j.blocks = j.chunk > 0 ? (dim + j.chunk - 1) / j.chunk : 1; /* an empty C: one call */
    return j;
}

static void gemm_block(const gemm_job_t *j, int64_t block) {
    const int64_t dim = j->by_rows ? j->M : j->N, lo = block * j->chunk;
    const int64_t n = j->blocks == 1 ? dim : dim - lo < j->chunk ? dim - lo : j->chunk;
    if (j->by_rows)
        gemm_call(j, lo, n, 0, j->N);
    else
        gemm_call(j, 0, j->M, lo, n);
}

typedef struct gemm_set {
    gemm_job_t job[2];
    int n;
} gemm_set_t;

static void gemm_task(void *ctx, int64_t task, int thread) {
    (void)thread;
    const gemm_set_t *s = ctx;
    int i = 0;
    while (task >= s->job[i].blocks) task -= s->job[i++].blocks;
    gemm_block(&s->job[i], task);
}

static void gemm_run(gemm_set_t *s) {
    int64_t tasks = 0;
    for (int i = 0; i < s->n; i++) tasks += s->job[i].blocks;
    if (tasks == 1)
        gemm_block(&s->job[0], 0);
    else
        par_run(tasks, (int)tasks, gemm_task, s);
}

void cpu_sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *A, const float *B,
               float beta, float *C) {
    gemm_set_t s = {.job = {gemm_job(ta, tb, M, N, K, A, B, beta, C, par_threads())}, .n = 1};
    gemm_run(&s);
}

/* The same product cut into blocks of a fixed size, not one per thread: OpenBLAS takes another
 * kernel for small products (SkylakeX: M N K <= 100^3), so a block's bits can depend on its size;
 * fixed blocks give the same bits for every thread count whatever the shape. */
void cpu_sgemm_blocks(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *A,
                      const float *B, float beta, float *C, int64_t block) {
    gemm_set_t s = {.job = {gemm_job(ta, tb, M, N, K, A, B, beta, C, 1)}, .n = 1};
    const int64_t dim = s.job[0].by_rows ? M : N;
    if (dim > block) {
        s.job[0].chunk = block;
        s.job[0].blocks = (dim + block - 1) / block;
    }
    gemm_run(&s);
}

// x (rows,K), weight (N,K), bias (N) or NULL -> out (rows,N) = x @ weight^T + bias
void linear_forward(float *out, const float *x, const float *weight, const float *bias,
                    int64_t rows, int64_t K, int64_t N) {
    if (bias) {
        for (int64_t r = 0; r < rows; r++) {
            for (int64_t n = 0; n < N; n++) out[r * N + n] = bias[n];
        }
    }
    cpu_sgemm(false, true, rows, N, K, x, weight, bias ? 1.0f : 0.0f, out);
}

// dout (rows,N), x (rows,K), weight (N,K) -> dx (rows,K) = dout @ weight,
// dweight (N,K) = dout^T @ x, dbias (N) = colsum(dout); any may be NULL
void linear_backward(float *dx, float *dweight, float *dbias, const float *dout, const float *x,
                     const float *weight, int64_t rows, int64_t K, int64_t N) {
    /* dx and dweight are independent and cost the same: on two threads each is one whole
     * sgemm, so no operand is packed twice (measured 2-3% off GPT-2's backward) */
    if (dx && dweight) {
        const int64_t half = (par_threads() + 1) / 2;
        gemm_set_t s = {.job = {gemm_job(false, false, rows, K, N, dout, weight, 0.0f, dx, half),
                                gemm_job(true, false, N, K, rows, dout, x, 0.0f, dweight, half)},
                        .n = 2};
        gemm_run(&s);
    } else {
        if (dx) cpu_sgemm(false, false, rows, K, N, dout, weight, 0.0f, dx);
        if (dweight) cpu_sgemm(true, false, N, K, rows, dout, x, 0.0f, dweight);
    }
    if (dbias) {
        for (int64_t n = 0; n < N; n++) dbias[n] = 0.0f;
        sum_rows_accumulate(dbias, dout, rows, N);
    }
}

matmul_plan_t matmul_plan(const matmul_dims_t *d) {
    matmul_plan_t p = {.batch = d->batch, .M = d->M};
    if (d->b_shared && !d->a_shared && !d->trans_a) {
        p.M = d->batch * d->M;
        p.batch = 1;
    }
    p.sa = d->a_shared ? 0 : p.M * d->K;
    p.sb = d->b_shared ? 0 : d->K * d->N;
    p.so = p.M * d->N;
    return p;
}

/* a (batch,M,K) [stored (batch,K,M) if trans_a; (M,K) if a_shared],
 * b (batch,K,N) [stored (batch,N,K) if trans_b; (K,N) if b_shared] -> out (batch,M,N) */
void matmul_forward(float *out, const float *a, const float *b, const matmul_dims_t *d) {
    matmul_plan_t p = matmul_plan(d);
    for (int64_t i = 0; i < p.batch; i++) {
        cpu_sgemm(d->trans_a, d->trans_b, p.M, d->N, d->K, a + i * p.sa, b + i * p.sb, 0.0f,
                  out + i * p.so);
    }
}

/* dout (batch,M,N) -> da, db in a's and b's stored layouts (overwritten; either may be NULL).
 *   da = dout @ op(b)^T, or op(b) @ dout^T when stored transposed (K,M)
 *   db = op(a)^T @ dout, or dout^T @ op(a) when stored transposed (N,K)
 * A shared operand's gradient sums over the batch: beta = 1 after the first entry. */
void matmul_backward(float *da, float *db, const float *dout, const float *a, const float *b,
                     const matmul_dims_t *d) {
    matmul_plan_t p = matmul_plan(d);
    int64_t M = p.M, N = d->N, K = d->K;
    bool ta = d->trans_a, tb = d->trans_b;
    for (int64_t i = 0; i < p.batch; i++) {
        const float *ai = a + i * p.sa, *bi = b + i * p.sb, *douti = dout + i * p.so;
        float *dai = da ? da + i * p.sa : NULL, *dbi = db ? db + i * p.sb : NULL;
        float beta_a = d->a_shared && i > 0 ? 1.0f : 0.0f;
        float beta_b = d->b_shared && i > 0 ? 1.0f : 0.0f;
        if (da && ta) cpu_sgemm(tb, true, K, M, N, bi, douti, beta_a, dai);    /* op(b) @ dout^T */
        if (da && !ta) cpu_sgemm(false, !tb, M, K, N, douti, bi, beta_a, dai); /* dout @ op(b)^T */
        if (db && tb) cpu_sgemm(true, ta, N, K, M, douti, ai, beta_b, dbi);    /* dout^T @ op(a) */
        if (db && !tb) cpu_sgemm(!ta, false, K, N, M, ai, douti, beta_b, dbi); /* op(a)^T @ dout */
    }
}

/* ---- adapters: a node's shapes and buffers, turned into one kernel call ------------------- */

matmul_dims_t matmul_dims(const cost_ctx_t *c, int a, int b) {
    const cshape_t *A = &c->in[a], *Bm = &c->in[b];
    const node_t *n = c->node;
    matmul_dims_t d = {.trans_a = node_attr_int(n, "trans_a"),
                       .trans_b = node_attr_int(n, "trans_b")};
    d.M = d.trans_a ? A->d[A->ndim - 1] : A->d[A->ndim - 2];
    d.K = d.trans_a ? A->d[A->ndim - 2] : A->d[A->ndim - 1];
    d.N = d.trans_b ? Bm->d[Bm->ndim - 2] : Bm->d[Bm->ndim - 1];
    int64_t batch_a = A->numel / (d.M * d.K), batch_b = Bm->numel / (d.K * d.N);
    d.batch = batch_a > batch_b ? batch_a : batch_b;
    d.a_shared = A->ndim == 2 && d.batch > 1;
    d.b_shared = Bm->ndim == 2 && d.batch > 1;
    return d;
}

static autosp_status_t run_matmul(const kernel_args_t *r) {
    matmul_dims_t d = matmul_dims(r->c, 0, 1);
    matmul_forward(F(r->out[0]), CF(r->in[0]), CF(r->in[1]), &d);
    return AUTOSP_OK;
}

static autosp_status_t run_matmul_backward(const kernel_args_t *r) { /* (dout, a, b) -> da, db */
    matmul_dims_t d = matmul_dims(r->c, 1, 2);
    matmul_backward(F(r->out[0]), F(r->out[1]), CF(r->in[0]), CF(r->in[1]), CF(r->in[2]), &d);
    return AUTOSP_OK;
}

static autosp_status_t run_linear(const kernel_args_t *r) {
    const cshape_t *x = &r->c->in[0], *w = &r->c->in[1];
    linear_forward(F(r->out[0]), CF(r->in[0]), CF(r->in[1]), r->c->n_in == 3 ? CF(r->in[2]) : NULL,
                   rows_of(x), w->d[1], w->d[0]);
    return AUTOSP_OK;
}

/* (dout, x, w[, b]) -> dx, dw[, db] */
static autosp_status_t run_linear_backward(const kernel_args_t *r) {
    const cshape_t *x = &r->c->in[1], *w = &r->c->in[2];
    linear_backward(F(r->out[0]), F(r->out[1]), r->c->n_out == 3 ? F(r->out[2]) : NULL,
                    CF(r->in[0]), CF(r->in[1]), CF(r->in[2]), rows_of(x), w->d[1], w->d[0]);
    return AUTOSP_OK;
}

static const cpu_kernel_reg_t kernels[] = {
    CPU_KERNEL(MATMUL, F32, run_matmul),
    CPU_KERNEL(MATMUL_BACKWARD, F32, run_matmul_backward),
    CPU_KERNEL(LINEAR, F32, run_linear),
    CPU_KERNEL(LINEAR_BACKWARD, F32, run_linear_backward),
    CPU_KERNEL(MATMUL, BF16, run_matmul_bf16, .workspace = workspace_matmul_bf16),
    CPU_KERNEL(MATMUL_BACKWARD, BF16, run_matmul_backward_bf16,
               .workspace = workspace_matmul_backward_bf16),
    CPU_KERNEL(LINEAR, BF16, run_linear_bf16, .workspace = workspace_linear_bf16),
    CPU_KERNEL(LINEAR_BACKWARD, BF16, run_linear_backward_bf16,
               .workspace = workspace_linear_backward_bf16),
};
CPU_FAMILY(linear, kernels);
