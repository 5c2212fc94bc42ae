/* embedding.c: token embedding lookup, forward next to backward. ids are trusted to lie in
 * [0, V): the executor checks them before the kernel runs. */
#include <string.h>

#include "kernels.h"

// ids (rows) int32, weight (V,C) -> out (rows,C): out[r] = weight[ids[r]]
void embedding_forward(float *out, const int32_t *ids, const float *weight, int64_t rows,
                       int64_t C) {
    for (int64_t r = 0; r < rows; r++) {
        memcpy(out + r * C, weight + (int64_t)ids[r] * C, (size_t)C * sizeof(float));
    }
}

// ids (rows), dout (rows,C) -> dweight (V,C) += : dweight[ids[r]] += dout[r]
void embedding_backward(float *dweight, const int32_t *ids, const float *dout, int64_t rows,
                        int64_t C) {
    for (int64_t r = 0; r < rows; r++) {
        float *dw = dweight + (int64_t)ids[r] * C;
        const float *d = dout + r * C;
        for (int64_t i = 0; i < C; i++) dw[i] += d[i];
    }
}
