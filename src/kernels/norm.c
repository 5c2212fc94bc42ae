/* norm.c: normalisation and softmax over the last dim, forward next to backward, and the
 * row-sum reduction for gradients of broadcast operands.
 *
 * rmsnorm is layernorm without centring and without bias, so one pair of helpers serves both:
 *   norm = (x - mean) * rstd      (mean = 0 for rmsnorm)
 *   out  = norm * weight + bias   (no bias for rmsnorm)
 * The backward recomputes mean and rstd from x (one pass over the row).
 *
 * The norms compute in double, in and out float. In float, dx is ill-conditioned when C is
 * small: dx is orthogonal to norm up to an eps * rstd^2 term, so it comes from cancelling terms
 * ~1/(eps rstd^2) times larger than itself (rmsnorm, C = 1: 2e4 times, relative error 1e-3).
 * Double also keeps x - mean exact when |mean| >> std. It costs ~40% on the backward of a
 * kernel that is a small fraction of a step. */
#include <math.h>

#include "kernels.h"

/* mean (0 unless center) and rstd = 1 / sqrt(mean((x - mean)^2) + eps) of one row x (C) */
static void row_stats(const float *x, int64_t C, float eps, bool center, double *mean,
                      double *rstd) {
    double m = 0.0;
    if (center) {
        for (int64_t i = 0; i < C; i++) m += x[i];
        m /= (double)C;
    }
    double var = 0.0;
    for (int64_t i = 0; i < C; i++) var += (x[i] - m) * (x[i] - m);
    *mean = m;
    *rstd = 1.0 / sqrt(var / (double)C + eps);
}

// x (rows,C), weight (C), bias (C) or NULL -> out (rows,C); out may equal x
static void norm_forward(float *out, const float *x, const float *weight, const float *bias,
                         int64_t rows, int64_t C, float eps, bool center) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * C;
        float *outr = out + r * C;
        double mean, rstd;
        row_stats(xr, C, eps, center, &mean, &rstd);
        for (int64_t i = 0; i < C; i++) {
            double y = (xr[i] - mean) * rstd * weight[i];
            outr[i] = (float)(bias ? y + bias[i] : y);
        }
    }
}

/* dnorm = dout * weight;
 * dx = rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm))   (no mean(dnorm) for rmsnorm)
 * dweight += dout * norm; dbias += dout. dx overwrites. */
static void norm_backward(float *dx, float *dweight, float *dbias, const float *dout,
                          const float *x, const float *weight, int64_t rows, int64_t C, float eps,
                          bool center) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * C, *doutr = dout + r * C;
        float *dxr = dx + r * C;
        double mean, rstd;
        row_stats(xr, C, eps, center, &mean, &rstd);
        double dnorm_mean = 0.0, dnorm_norm_mean = 0.0;
        for (int64_t i = 0; i < C; i++) {
            double norm = (xr[i] - mean) * rstd;
            double dnorm = (double)weight[i] * doutr[i];
            dnorm_mean += dnorm;
            dnorm_norm_mean += dnorm * norm;
            dweight[i] += (float)(norm * doutr[i]);
            if (dbias) dbias[i] += doutr[i];
        }
        dnorm_mean = center ? dnorm_mean / (double)C : 0.0;
        dnorm_norm_mean /= (double)C;
        for (int64_t i = 0; i < C; i++) {
            double norm = (xr[i] - mean) * rstd;
            double dnorm = (double)weight[i] * doutr[i];
            dxr[i] = (float)(rstd * (dnorm - dnorm_mean - norm * dnorm_norm_mean));
        }
    }
}

// x (rows,C), weight (C) -> out (rows,C) = x / sqrt(mean(x^2) + eps) * weight
void rmsnorm_forward(float *out, const float *x, const float *weight, int64_t rows, int64_t C,
                     float eps) {
    norm_forward(out, x, weight, NULL, rows, C, eps, false);
}

// dout (rows,C), x (rows,C), weight (C) -> dx (rows,C), dweight (C) +=
void rmsnorm_backward(float *dx, float *dweight, const float *dout, const float *x,
                      const float *weight, int64_t rows, int64_t C, float eps) {
    norm_backward(dx, dweight, NULL, dout, x, weight, rows, C, eps, false);
}

// x (rows,C), weight (C), bias (C) -> out (rows,C) = (x - mean) * rstd * weight + bias
void layernorm_forward(float *out, const float *x, const float *weight, const float *bias,
                       int64_t rows, int64_t C, float eps) {
    norm_forward(out, x, weight, bias, rows, C, eps, true);
}

// dout (rows,C), x (rows,C), weight (C) -> dx (rows,C), dweight (C) +=, dbias (C) +=
void layernorm_backward(float *dx, float *dweight, float *dbias, const float *dout, const float *x,
                        const float *weight, int64_t rows, int64_t C, float eps) {
    norm_backward(dx, dweight, dbias, dout, x, weight, rows, C, eps, true);
}

// x (rows,C) -> out (rows,C) = exp(x - max) / sum(exp(x - max)); out may equal x
void softmax_forward(float *out, const float *x, int64_t rows, int64_t C) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * C;
        float *outr = out + r * C;
        float max = -INFINITY;
        for (int64_t i = 0; i < C; i++) max = fmaxf(max, xr[i]);
        float sum = 0.0f;
        for (int64_t i = 0; i < C; i++) {
            outr[i] = expf(xr[i] - max);
            sum += outr[i];
        }
        float inv = 1.0f / sum; /* sum >= 1: the max element contributes exp(0) */
        for (int64_t i = 0; i < C; i++) outr[i] *= inv;
    }
}

// dout (rows,C), y (rows,C) the forward output -> dx (rows,C) = y * (dout - sum(dout * y))
void softmax_backward(float *dx, const float *dout, const float *y, int64_t rows, int64_t C) {
    for (int64_t r = 0; r < rows; r++) {
        const float *doutr = dout + r * C, *yr = y + r * C;
        float *dxr = dx + r * C;
        float dot = 0.0f;
        for (int64_t i = 0; i < C; i++) dot += doutr[i] * yr[i];
        for (int64_t i = 0; i < C; i++) dxr[i] = yr[i] * (doutr[i] - dot);
    }
}

// x (rows,C) -> out (C) += sum over rows of x
void sum_rows_accumulate(float *out, const float *x, int64_t rows, int64_t C) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * C;
        for (int64_t i = 0; i < C; i++) out[i] += xr[i];
    }
}
