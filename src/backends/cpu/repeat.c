/* repeat.c: repeating slices along one dim (GQA's kv heads, when more sequence-parallel ranks
 * than kv heads need their own copy), forward next to backward. */
#include <string.h>

#include "kernels.h"

void repeat_forward(float *out, const float *x, int64_t outer, int64_t n, int64_t r,
                    int64_t inner) {
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < n; i++) {
            const float *src = x + (o * n + i) * inner;
            for (int64_t k = 0; k < r; k++)
                memcpy(out + ((o * n + i) * r + k) * inner, src, sizeof(float) * (size_t)inner);
        }
}

void repeat_backward(float *dx, const float *dout, int64_t outer, int64_t n, int64_t r,
                     int64_t inner) {
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < n; i++) {
            float *d = dx + (o * n + i) * inner;
            memcpy(d, dout + (o * n + i) * r * inner, sizeof(float) * (size_t)inner);
            for (int64_t k = 1; k < r; k++) {
                const float *g = dout + ((o * n + i) * r + k) * inner;
                for (int64_t j = 0; j < inner; j++) d[j] += g[j];
            }
        }
}
