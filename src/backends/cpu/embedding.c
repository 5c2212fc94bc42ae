/* embedding.c: token embedding lookup, forward next to backward. ids are trusted to lie in
 * [0, V): the executor checks them before the kernel runs. */
#include <string.h>

#include "backends/cpu/cpu_ops.h"
#include "base/bf16.h"
#include "kernels.h"
#include "parallel.h"

// ids (rows) int32, weight (V,C) -> out (rows,C): out[r] = weight[ids[r]]
void embedding_forward(float *out, const int32_t *ids, const float *weight, int64_t rows,
                       int64_t C) {
    for (int64_t r = 0; r < rows; r++) {
        memcpy(out + r * C, weight + (int64_t)ids[r] * C, (size_t)C * sizeof(float));
    }
}

/* Two rows with the same id add into the same row of dweight, so the threads split the
 * columns, not the rows: each sums its columns over every row in order, as one thread would.
 * The bf16 kernels below use the same loop with bf16 rows of dout (dout16), added into an f32
 * dweight or, for index_add into a bf16 base (base16), rounded at each addition. */
typedef struct emb_job {
    float *dweight;
    bf16_t *base16;
    const int32_t *ids;
    const float *dout;
    const bf16_t *dout16;
    int64_t rows, C;
} emb_job_t;

static void embedding_backward_columns(void *ctx, int64_t lo, int64_t hi) {
    const emb_job_t *j = ctx;
    for (int64_t r = 0; r < j->rows; r++) {
        int64_t at = (int64_t)j->ids[r] * j->C, row = r * j->C;
        if (j->dout)
            for (int64_t i = lo; i < hi; i++) j->dweight[at + i] += j->dout[row + i];
        else if (j->dweight)
            for (int64_t i = lo; i < hi; i++) j->dweight[at + i] += bf16_to_f32(j->dout16[row + i]);
        else
            for (int64_t i = lo; i < hi; i++)
                j->base16[at + i] =
                    f32_to_bf16(bf16_to_f32(j->base16[at + i]) + bf16_to_f32(j->dout16[row + i]));
    }
}

/* a range of columns is worth a thread once the rows make it 16k additions */
static void embedding_backward_run(emb_job_t *j) {
    par_for(j->C, j->rows > 0 ? (1 << 14) / j->rows + 1 : j->C, embedding_backward_columns, j);
}

// ids (rows), dout (rows,C) -> dweight (V,C) += : dweight[ids[r]] += dout[r]
void embedding_backward(float *dweight, const int32_t *ids, const float *dout, int64_t rows,
                        int64_t C) {
    embedding_backward_run(
        &(emb_job_t){.dweight = dweight, .ids = ids, .dout = dout, .rows = rows, .C = C});
}

/* ---- adapters: a node's shapes and buffers, turned into one kernel call ------------------- */

static autosp_status_t run_embedding(const kernel_args_t *r) {
    int64_t V = r->c->in[1].d[0], C = r->c->in[1].d[1];
    autosp_status_t st = cpu_check_ids(r, 0, V, CPU_NO_EXCEPTION);
    if (st == AUTOSP_OK)
        embedding_forward(F(r->out[0]), I32(r->in[0]), CF(r->in[1]), r->c->in[0].numel, C);
    return st;
}

static autosp_status_t run_embedding_backward(const kernel_args_t *r) { /* (dout, ids, weight) */
    cpu_zero(r->out[0], &r->c->out[0]);
    embedding_backward(F(r->out[0]), I32(r->in[1]), CF(r->in[0]), r->c->in[1].numel,
                       r->c->in[2].d[1]);
    return AUTOSP_OK;
}

typedef struct copy_job {
    char *dst;
    const char *src;
} copy_job_t;

static void copy_range(void *ctx, int64_t lo, int64_t hi) {
    const copy_job_t *j = ctx;
    memcpy(j->dst + lo, j->src + lo, (size_t)(hi - lo));
}

/* bf16: the forward copies bf16 rows. The backward adds bf16 rows of dout into an f32 dweight
 * (a parameter's gradient), or, when dweight is a bf16 activation gradient, into an f32 sum in
 * the workspace rounded once at the end. index_add adds bf16 src rows into its base, f32 (a
 * parameter's gradient) or bf16 (each sum rounded). */
static autosp_status_t run_embedding_bf16(const kernel_args_t *r) {
    int64_t V = r->c->in[1].d[0], C = r->c->in[1].d[1];
    autosp_status_t st = cpu_check_ids(r, 0, V, CPU_NO_EXCEPTION);
    for (int64_t i = 0; st == AUTOSP_OK && i < r->c->in[0].numel; i++)
        memcpy((bf16_t *)r->out[0] + i * C, (const bf16_t *)r->in[1] + I32(r->in[0])[i] * C,
               (size_t)C * sizeof(bf16_t));
    return st;
}

static int64_t workspace_embedding_backward_bf16(const cost_ctx_t *c) {
    return c->out[0].esize == 2 ? c->out[0].numel * (int64_t)sizeof(float) : 0;
}

static autosp_status_t run_embedding_backward_bf16(const kernel_args_t *r) { /* (dout, ids, w) */
    bool f32 = r->c->out[0].esize == 4;
    float *dweight = f32 ? r->out[0] : r->workspace;
    memset(dweight, 0, (size_t)r->c->out[0].numel * sizeof(float));
    emb_job_t j = {.dweight = dweight,
                   .ids = I32(r->in[1]),
                   .dout16 = r->in[0],
                   .rows = r->c->in[1].numel,
                   .C = r->c->in[2].d[1]};
    embedding_backward_run(&j);
    if (!f32) cpu_round(r->out[0], dweight, r->c->out[0].numel);
    return AUTOSP_OK;
}

/* (base, ids, src): out = base, then src's rows added at ids. The memory plan usually gives out
 * base's buffer (op_table in_place), and then there is nothing to copy. f32 src into an f32
 * base; bf16 src into either (the f32 base of a parameter's gradient, or a bf16 one). */
static autosp_status_t run_index_add(const kernel_args_t *r) {
    const cshape_t *base = &r->c->in[0];
    autosp_status_t st = cpu_check_ids(r, 1, base->d[0], CPU_NO_EXCEPTION);
    if (st != AUTOSP_OK) return st;
    if (r->out[0] != r->in[0]) {
        copy_job_t j = {.dst = r->out[0], .src = r->in[0]};
        par_for(base->numel * base->esize, 1 << 20, copy_range, &j);
    }
    emb_job_t j = {.ids = I32(r->in[1]), .rows = r->c->in[1].numel, .C = base->d[1]};
    if (r->c->in[2].esize == 4)
        j.dout = r->in[2];
    else
        j.dout16 = r->in[2];
    if (base->esize == 4)
        j.dweight = r->out[0];
    else
        j.base16 = r->out[0];
    embedding_backward_run(&j);
    return AUTOSP_OK;
}

static const cpu_kernel_reg_t kernels[] = {
    CPU_KERNEL(EMBEDDING, BF16, run_embedding_bf16),
    CPU_KERNEL(EMBEDDING_BACKWARD, BF16, run_embedding_backward_bf16,
               .workspace = workspace_embedding_backward_bf16),
    CPU_KERNEL(INDEX_ADD, BF16, run_index_add),
    CPU_KERNEL(EMBEDDING, F32, run_embedding),
    CPU_KERNEL(EMBEDDING_BACKWARD, F32, run_embedding_backward),
    CPU_KERNEL(INDEX_ADD, F32, run_index_add),
};
CPU_FAMILY(embedding, kernels);
