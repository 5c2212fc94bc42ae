/* cross_entropy.c: fused softmax + cross-entropy over the vocabulary, forward next to
 * backward. Rows whose label is ignore_index contribute nothing; the loss is the mean over the
 * others. Sums are accumulated in double: V is large (32k-256k) and the loss is a mean over
 * many rows. */
#include <math.h>

#include "kernels.h"

/* One row of logits (V): its max and sum(exp(x - max)), so that logsumexp = max + log(sum).
 * Serves the forward and the backward; reads the row only, so the backward can overwrite it
 * afterwards. */
static void row_max_sumexp(const float *x, int64_t V, float *max, double *sum) {
    float m = -INFINITY;
    for (int64_t v = 0; v < V; v++) m = fmaxf(m, x[v]);
    double s = 0.0;
    for (int64_t v = 0; v < V; v++) s += (double)expf(x[v] - m);
    *max = m;
    *sum = s;
}

// logits (rows,V), labels (rows) -> mean over valid rows of logsumexp(logits[r]) - logits[r][label]
float cross_entropy_forward(const float *logits, const int32_t *labels, int64_t rows, int64_t V,
                            int32_t ignore_index) {
    double loss = 0.0;
    int64_t valid = 0;
    for (int64_t r = 0; r < rows; r++) {
        if (labels[r] == ignore_index) continue;
        const float *x = logits + r * V;
        float max;
        double sum;
        row_max_sumexp(x, V, &max, &sum);
        loss += (double)max + log(sum) - (double)x[labels[r]];
        valid++;
    }
    return valid ? (float)(loss / (double)valid) : 0.0f;
}

/* logits (rows,V), labels (rows) -> dlogits (rows,V), may equal logits:
 * dlogits[r] = dloss / valid * (softmax(logits[r]) - onehot(label)), zeros for ignored rows.
 * Each row's max and sum are computed before the row is overwritten, element by element. */
void cross_entropy_backward(float *dlogits, const float *logits, const int32_t *labels,
                            int64_t rows, int64_t V, int32_t ignore_index, float dloss) {
    int64_t valid = 0;
    for (int64_t r = 0; r < rows; r++) valid += labels[r] != ignore_index;
    float scale = valid ? dloss / (float)valid : 0.0f;
    for (int64_t r = 0; r < rows; r++) {
        const float *x = logits + r * V;
        float *dx = dlogits + r * V;
        if (labels[r] == ignore_index) {
            for (int64_t v = 0; v < V; v++) dx[v] = 0.0f;
            continue;
        }
        float max;
        double sum;
        row_max_sumexp(x, V, &max, &sum);
        float p_scale = (float)((double)scale / sum); /* dx = exp(x - max) / sum * scale */
        for (int64_t v = 0; v < V; v++) dx[v] = expf(x[v] - max) * p_scale;
        dx[labels[r]] -= scale;
    }
}
