/* embedding.c: token embedding lookup, forward next to backward. ids are trusted to lie in
 * [0, V): the executor checks them before the kernel runs. */
#include <string.h>

#include "backends/cpu/cpu_ops.h"
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
 * columns, not the rows: each sums its columns over every row in order, as one thread would. */
typedef struct emb_job {
    float *dweight;
    const int32_t *ids;
    const float *dout;
    int64_t rows, C;
} emb_job_t;

static void embedding_backward_columns(void *ctx, int64_t lo, int64_t hi) {
    const emb_job_t *j = ctx;
    for (int64_t r = 0; r < j->rows; r++) {
        float *dw = j->dweight + (int64_t)j->ids[r] * j->C;
        const float *d = j->dout + r * j->C;
        for (int64_t i = lo; i < hi; i++) dw[i] += d[i];
    }
}

// ids (rows), dout (rows,C) -> dweight (V,C) += : dweight[ids[r]] += dout[r]
void embedding_backward(float *dweight, const int32_t *ids, const float *dout, int64_t rows,
                        int64_t C) {
    emb_job_t j = {.dweight = dweight, .ids = ids, .dout = dout, .rows = rows, .C = C};
    /* a range of columns is worth a thread once the rows make it 16k additions */
    par_for(C, rows > 0 ? (1 << 14) / rows + 1 : C, embedding_backward_columns, &j);
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

/* (base, ids, src): out = base, then src's rows added at ids. The memory plan usually gives out
 * base's buffer (op_table in_place), and then there is nothing to copy. */
static autosp_status_t run_index_add(const kernel_args_t *r) {
    const cshape_t *base = &r->c->in[0];
    autosp_status_t st = cpu_check_ids(r, 1, base->d[0], CPU_NO_EXCEPTION);
    if (st != AUTOSP_OK) return st;
    if (r->out[0] != r->in[0]) {
        copy_job_t j = {.dst = r->out[0], .src = r->in[0]};
        par_for(base->numel * base->esize, 1 << 20, copy_range, &j);
    }
    embedding_backward(F(r->out[0]), I32(r->in[1]), CF(r->in[2]), r->c->in[1].numel, base->d[1]);
    return AUTOSP_OK;
}

static const cpu_kernel_reg_t kernels[] = {
    CPU_KERNEL(EMBEDDING, F32, run_embedding),
    CPU_KERNEL(EMBEDDING_BACKWARD, F32, run_embedding_backward),
    CPU_KERNEL(INDEX_ADD, F32, run_index_add),
};
CPU_FAMILY(embedding, kernels);
