/* embedding.c: token embedding lookup, forward next to backward. ids are trusted to lie in
 * [0, V): the executor checks them before the kernel runs. */
#include <string.h>

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
