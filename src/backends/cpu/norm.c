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

#include "base/base.h"
#include "backends/cpu/cpu_ops.h"
#include "kernels.h"
#include "parallel.h"

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

/* On the pool: the forward and the backward's dx in ranges of rows; dweight and dbias, which
 * sum over the rows, in ranges of columns, each summed over the rows in order as one thread
 * would. Between the two, each row's mean and rstd wait in the workspace (2 doubles a row). */
typedef struct norm_job {
    float *out, *dweight, *dbias;
    const float *x, *dout, *weight, *bias;
    int64_t rows, C;
    float eps;
    bool center;
    double *stats; /* backward: mean, rstd of each row */
} norm_job_t;

enum { NORM_GRAIN = 1 << 14 }; /* elements worth a thread */

static int64_t grain_rows(int64_t C) {
    return C > 0 ? NORM_GRAIN / C + 1 : 1;
}

VECTOR_CLONES_AVX2 static void norm_forward_rows(void *ctx, int64_t lo, int64_t hi) {
    const norm_job_t *j = ctx;
    const int64_t C = j->C;
    for (int64_t r = lo; r < hi; r++) {
        const float *xr = j->x + r * C;
        float *outr = j->out + r * C;
        double mean, rstd;
        row_stats(xr, C, j->eps, j->center, &mean, &rstd);
        for (int64_t i = 0; i < C; i++) {
            double y = (xr[i] - mean) * rstd * j->weight[i];
            outr[i] = (float)(j->bias ? y + j->bias[i] : y);
        }
    }
}

// x (rows,C), weight (C), bias (C) or NULL -> out (rows,C); out may equal x
static void norm_forward(float *out, const float *x, const float *weight, const float *bias,
                         int64_t rows, int64_t C, float eps, bool center) {
    norm_job_t j = {.out = out,
                    .x = x,
                    .weight = weight,
                    .bias = bias,
                    .rows = rows,
                    .C = C,
                    .eps = eps,
                    .center = center};
    par_for(rows, grain_rows(C), norm_forward_rows, &j);
}

/* dnorm = dout * weight;
 * dx = rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm))   (no mean(dnorm) for rmsnorm) */
VECTOR_CLONES_AVX2 static void norm_backward_rows(void *ctx, int64_t lo, int64_t hi) {
    const norm_job_t *j = ctx;
    const int64_t C = j->C;
    for (int64_t r = lo; r < hi; r++) {
        const float *xr = j->x + r * C, *doutr = j->dout + r * C;
        float *dxr = j->out + r * C;
        double mean, rstd;
        row_stats(xr, C, j->eps, j->center, &mean, &rstd);
        j->stats[2 * r] = mean, j->stats[2 * r + 1] = rstd;
        double dnorm_mean = 0.0, dnorm_norm_mean = 0.0;
        for (int64_t i = 0; i < C; i++) {
            double norm = (xr[i] - mean) * rstd;
            double dnorm = (double)j->weight[i] * doutr[i];
            dnorm_mean += dnorm;
            dnorm_norm_mean += dnorm * norm;
        }
        dnorm_mean = j->center ? dnorm_mean / (double)C : 0.0;
        dnorm_norm_mean /= (double)C;
        for (int64_t i = 0; i < C; i++) {
            double norm = (xr[i] - mean) * rstd;
            double dnorm = (double)j->weight[i] * doutr[i];
            dxr[i] = (float)(rstd * (dnorm - dnorm_mean - norm * dnorm_norm_mean));
        }
    }
}

/* dweight += dout * norm; dbias += dout, over columns [lo, hi) */
VECTOR_CLONES_AVX2 static void norm_backward_columns(void *ctx, int64_t lo, int64_t hi) {
    const norm_job_t *j = ctx;
    const int64_t C = j->C;
    for (int64_t r = 0; r < j->rows; r++) {
        const float *xr = j->x + r * C, *doutr = j->dout + r * C;
        const double mean = j->stats[2 * r], rstd = j->stats[2 * r + 1];
        for (int64_t i = lo; i < hi; i++) {
            double norm = (xr[i] - mean) * rstd;
            j->dweight[i] += (float)(norm * doutr[i]);
        }
        if (j->dbias)
            for (int64_t i = lo; i < hi; i++) j->dbias[i] += doutr[i];
    }
}

size_t norm_backward_workspace(int64_t rows) {
    return sizeof(double) * 2 * (size_t)rows;
}

/* dx overwrites; dweight and dbias (or NULL) accumulate */
static void norm_backward(float *dx, float *dweight, float *dbias, const float *dout,
                          const float *x, const float *weight, int64_t rows, int64_t C, float eps,
                          bool center, void *workspace) {
    norm_job_t j = {.out = dx,
                    .dweight = dweight,
                    .dbias = dbias,
                    .x = x,
                    .dout = dout,
                    .weight = weight,
                    .rows = rows,
                    .C = C,
                    .eps = eps,
                    .center = center,
                    .stats = workspace};
    par_for(rows, grain_rows(C), norm_backward_rows, &j);
    par_for(C, rows > 0 ? NORM_GRAIN / rows + 1 : C, norm_backward_columns, &j);
}

// x (rows,C), weight (C) -> out (rows,C) = x / sqrt(mean(x^2) + eps) * weight
void rmsnorm_forward(float *out, const float *x, const float *weight, int64_t rows, int64_t C,
                     float eps) {
    norm_forward(out, x, weight, NULL, rows, C, eps, false);
}

// dout (rows,C), x (rows,C), weight (C) -> dx (rows,C), dweight (C) +=
void rmsnorm_backward(float *dx, float *dweight, const float *dout, const float *x,
                      const float *weight, int64_t rows, int64_t C, float eps, void *workspace) {
    norm_backward(dx, dweight, NULL, dout, x, weight, rows, C, eps, false, workspace);
}

// x (rows,C), weight (C), bias (C) -> out (rows,C) = (x - mean) * rstd * weight + bias
void layernorm_forward(float *out, const float *x, const float *weight, const float *bias,
                       int64_t rows, int64_t C, float eps) {
    norm_forward(out, x, weight, bias, rows, C, eps, true);
}

// dout (rows,C), x (rows,C), weight (C) -> dx (rows,C), dweight (C) +=, dbias (C) +=
void layernorm_backward(float *dx, float *dweight, float *dbias, const float *dout, const float *x,
                        const float *weight, int64_t rows, int64_t C, float eps, void *workspace) {
    norm_backward(dx, dweight, dbias, dout, x, weight, rows, C, eps, true, workspace);
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

static void sum_rows_columns(void *ctx, int64_t lo, int64_t hi) {
    const norm_job_t *j = ctx; /* out: dbias, x: dout */
    for (int64_t r = 0; r < j->rows; r++) {
        const float *xr = j->dout + r * j->C;
        for (int64_t i = lo; i < hi; i++) j->dbias[i] += xr[i];
    }
}

// x (rows,C) -> out (C) += sum over rows of x; threads split the columns, each summed in order
void sum_rows_accumulate(float *out, const float *x, int64_t rows, int64_t C) {
    norm_job_t j = {.dbias = out, .dout = x, .rows = rows, .C = C};
    par_for(C, rows > 0 ? NORM_GRAIN / rows + 1 : C, sum_rows_columns, &j);
}

/* ---- adapters: a node's shapes and buffers, turned into one kernel call ------------------- */

static float eps_of(const kernel_args_t *r) {
    return (float)node_attr_float(r->c->node, "eps");
}

static autosp_status_t run_rmsnorm(const kernel_args_t *r) {
    const cshape_t *x = &r->c->in[0];
    rmsnorm_forward(F(r->out[0]), CF(r->in[0]), CF(r->in[1]), rows_of(x), last_dim(x), eps_of(r));
    return AUTOSP_OK;
}

/* each row's mean and rstd, between the backward's two passes */
static int64_t workspace_norm_backward(const cost_ctx_t *c) {
    return (int64_t)norm_backward_workspace(rows_of(&c->in[1]));
}

static autosp_status_t run_rmsnorm_backward(const kernel_args_t *r) { /* (dout, x, w) -> dx, dw */
    const cshape_t *x = &r->c->in[1];
    cpu_zero(r->out[1], &r->c->out[1]);
    rmsnorm_backward(F(r->out[0]), F(r->out[1]), CF(r->in[0]), CF(r->in[1]), CF(r->in[2]),
                     rows_of(x), last_dim(x), eps_of(r), r->workspace);
    return AUTOSP_OK;
}

static autosp_status_t run_layernorm(const kernel_args_t *r) {
    const cshape_t *x = &r->c->in[0];
    layernorm_forward(F(r->out[0]), CF(r->in[0]), CF(r->in[1]), CF(r->in[2]), rows_of(x),
                      last_dim(x), eps_of(r));
    return AUTOSP_OK;
}

/* (dout, x, w, b) -> dx, dw, db */
static autosp_status_t run_layernorm_backward(const kernel_args_t *r) {
    const cshape_t *x = &r->c->in[1];
    cpu_zero(r->out[1], &r->c->out[1]);
    cpu_zero(r->out[2], &r->c->out[2]);
    layernorm_backward(F(r->out[0]), F(r->out[1]), F(r->out[2]), CF(r->in[0]), CF(r->in[1]),
                       CF(r->in[2]), rows_of(x), last_dim(x), eps_of(r), r->workspace);
    return AUTOSP_OK;
}

static autosp_status_t run_softmax(const kernel_args_t *r) {
    const cshape_t *x = &r->c->in[0];
    softmax_forward(F(r->out[0]), CF(r->in[0]), rows_of(x), last_dim(x));
    return AUTOSP_OK;
}
static autosp_status_t run_softmax_backward(const kernel_args_t *r) { /* (dout, y) */
    const cshape_t *y = &r->c->in[1];
    softmax_backward(F(r->out[0]), CF(r->in[0]), CF(r->in[1]), rows_of(y), last_dim(y));
    return AUTOSP_OK;
}

/* bf16: the f32 adapters on blocks of rows (staged.c); weight and bias widened once, their
 * gradients summed over the blocks in f32. */
CPU_STAGED(rmsnorm, run_rmsnorm, NULL, 1, 1)
CPU_STAGED(rmsnorm_backward, run_rmsnorm_backward, workspace_norm_backward, 3, 1)
CPU_STAGED(layernorm, run_layernorm, NULL, 1, 1)
CPU_STAGED(layernorm_backward, run_layernorm_backward, workspace_norm_backward, 3, 1)
CPU_STAGED(softmax, run_softmax, NULL, 1, 1)
CPU_STAGED(softmax_backward, run_softmax_backward, NULL, 3, 1)

static const cpu_kernel_reg_t kernels[] = {
    CPU_STAGED_ROW(RMSNORM, rmsnorm),
    CPU_STAGED_ROW(RMSNORM_BACKWARD, rmsnorm_backward),
    CPU_STAGED_ROW(LAYERNORM, layernorm),
    CPU_STAGED_ROW(LAYERNORM_BACKWARD, layernorm_backward),
    CPU_STAGED_ROW(SOFTMAX, softmax),
    CPU_STAGED_ROW(SOFTMAX_BACKWARD, softmax_backward),
    CPU_KERNEL(RMSNORM, F32, run_rmsnorm),
    CPU_KERNEL(RMSNORM_BACKWARD, F32, run_rmsnorm_backward, .workspace = workspace_norm_backward),
    CPU_KERNEL(LAYERNORM, F32, run_layernorm),
    CPU_KERNEL(LAYERNORM_BACKWARD, F32, run_layernorm_backward,
               .workspace = workspace_norm_backward),
    CPU_KERNEL(SOFTMAX, F32, run_softmax),
    CPU_KERNEL(SOFTMAX_BACKWARD, F32, run_softmax_backward),
};
CPU_FAMILY(norm, kernels);
