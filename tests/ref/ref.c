/* ref.c: the naive reference kernels of ref.h, for tests only. Plain loops straight from the
 * definitions, double accumulators, no BLAS, no shared helpers with the fast kernels (so a
 * mistake in one is not copied into the other). Attention's references live in
 * ref_attention.c. */
#include <math.h>

#include "ref.h"

void ref_embedding_forward(float *out, const int32_t *ids, const float *weight, int64_t rows,
                           int64_t C) {
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < C; c++) out[r * C + c] = weight[(int64_t)ids[r] * C + c];
    }
}

void ref_embedding_backward(float *dweight, const int32_t *ids, const float *dout, int64_t rows,
                            int64_t C) {
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < C; c++) dweight[(int64_t)ids[r] * C + c] += dout[r * C + c];
    }
}

void ref_linear_forward(float *out, const float *x, const float *weight, const float *bias,
                        int64_t rows, int64_t K, int64_t N) {
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t n = 0; n < N; n++) {
            double acc = bias ? bias[n] : 0.0;
            for (int64_t k = 0; k < K; k++) acc += (double)x[r * K + k] * weight[n * K + k];
            out[r * N + n] = (float)acc;
        }
    }
}

void ref_linear_backward(float *dx, float *dweight, float *dbias, const float *dout, const float *x,
                         const float *weight, int64_t rows, int64_t K, int64_t N) {
    for (int64_t r = 0; r < rows && dx; r++) {
        for (int64_t k = 0; k < K; k++) {
            double acc = 0.0;
            for (int64_t n = 0; n < N; n++) acc += (double)dout[r * N + n] * weight[n * K + k];
            dx[r * K + k] = (float)acc;
        }
    }
    for (int64_t n = 0; n < N && dweight; n++) {
        for (int64_t k = 0; k < K; k++) {
            double acc = 0.0;
            for (int64_t r = 0; r < rows; r++) acc += (double)dout[r * N + n] * x[r * K + k];
            dweight[n * K + k] = (float)acc;
        }
    }
    for (int64_t n = 0; n < N && dbias; n++) {
        double acc = 0.0;
        for (int64_t r = 0; r < rows; r++) acc += dout[r * N + n];
        dbias[n] = (float)acc;
    }
}

/* Element (m,k) of op(a) for batch entry i, and (k,n) of op(b), as indices into the stored
 * arrays (see matmul_dims_t). */
static int64_t a_index(const matmul_dims_t *d, int64_t i, int64_t m, int64_t k) {
    int64_t base = d->a_shared ? 0 : i * d->M * d->K;
    return base + (d->trans_a ? k * d->M + m : m * d->K + k);
}

static int64_t b_index(const matmul_dims_t *d, int64_t i, int64_t k, int64_t n) {
    int64_t base = d->b_shared ? 0 : i * d->K * d->N;
    return base + (d->trans_b ? n * d->K + k : k * d->N + n);
}

void ref_matmul_forward(float *out, const float *a, const float *b, const matmul_dims_t *d) {
    for (int64_t i = 0; i < d->batch; i++) {
        for (int64_t m = 0; m < d->M; m++) {
            for (int64_t n = 0; n < d->N; n++) {
                double acc = 0.0;
                for (int64_t k = 0; k < d->K; k++) {
                    acc += (double)a[a_index(d, i, m, k)] * b[b_index(d, i, k, n)];
                }
                out[(i * d->M + m) * d->N + n] = (float)acc;
            }
        }
    }
}

/* da[m,k] = sum over n (and over the batch if a is shared) of dout[i,m,n] * op(b)[i,k,n];
 * db[k,n] = sum over m (and over the batch if b is shared) of op(a)[i,m,k] * dout[i,m,n]. */
void ref_matmul_backward(float *da, float *db, const float *dout, const float *a, const float *b,
                         const matmul_dims_t *d) {
    int64_t M = d->M, N = d->N, K = d->K;
    int64_t na = d->a_shared ? 1 : d->batch, nb = d->b_shared ? 1 : d->batch;
    for (int64_t ia = 0; ia < na && da; ia++) {
        for (int64_t m = 0; m < M; m++) {
            for (int64_t k = 0; k < K; k++) {
                double acc = 0.0;
                for (int64_t i = 0; i < d->batch; i++) {
                    if (!d->a_shared && i != ia) continue;
                    for (int64_t n = 0; n < N; n++) {
                        acc += (double)dout[(i * M + m) * N + n] * b[b_index(d, i, k, n)];
                    }
                }
                da[a_index(d, ia, m, k)] = (float)acc;
            }
        }
    }
    for (int64_t ib = 0; ib < nb && db; ib++) {
        for (int64_t k = 0; k < K; k++) {
            for (int64_t n = 0; n < N; n++) {
                double acc = 0.0;
                for (int64_t i = 0; i < d->batch; i++) {
                    if (!d->b_shared && i != ib) continue;
                    for (int64_t m = 0; m < M; m++) {
                        acc += (double)a[a_index(d, i, m, k)] * dout[(i * M + m) * N + n];
                    }
                }
                db[b_index(d, ib, k, n)] = (float)acc;
            }
        }
    }
}

static double ref_sigmoid(double x) {
    return 1.0 / (1.0 + exp(-x));
}

void ref_silu_forward(float *out, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = (float)(x[i] * ref_sigmoid(x[i]));
}

void ref_silu_backward(float *dx, const float *dout, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double s = ref_sigmoid(x[i]);
        dx[i] = (float)(dout[i] * (s + x[i] * s * (1.0 - s)));
    }
}

static const double REF_GELU_K = 0.79788456080286535588; /* sqrt(2 / pi) */

void ref_gelu_forward(float *out, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double v = x[i];
        out[i] = (float)(0.5 * v * (1.0 + tanh(REF_GELU_K * (v + 0.044715 * v * v * v))));
    }
}

void ref_gelu_backward(float *dx, const float *dout, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double v = x[i];
        double t = tanh(REF_GELU_K * (v + 0.044715 * v * v * v));
        double dt = (1.0 - t * t) * REF_GELU_K * (1.0 + 3.0 * 0.044715 * v * v);
        dx[i] = (float)(dout[i] * (0.5 * (1.0 + t) + 0.5 * v * dt));
    }
}

void ref_swiglu_forward(float *out, const float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = (float)(gate[i] * ref_sigmoid(gate[i]) * up[i]);
}

void ref_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                         const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double g = gate[i], u = up[i], d = dout[i], s = ref_sigmoid(g);
        dgate[i] = (float)(d * u * (s + g * s * (1.0 - s)));
        dup[i] = (float)(d * g * s);
    }
}

void ref_rmsnorm_forward(float *out, const float *x, const float *weight, int64_t rows, int64_t C,
                         float eps) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * C;
        double ss = 0.0;
        for (int64_t c = 0; c < C; c++) ss += (double)xr[c] * xr[c];
        double rstd = 1.0 / sqrt(ss / (double)C + eps);
        for (int64_t c = 0; c < C; c++) out[r * C + c] = (float)(xr[c] * rstd * weight[c]);
    }
}

/* y_c = x_c w_c s with s = (mean(x^2) + eps)^(-1/2), ds/dx_j = -s^3 x_j / C, so
 * dx_j = dout_j w_j s - s^3 x_j / C * sum_c dout_c w_c x_c; dweight_c += dout_c x_c s. */
void ref_rmsnorm_backward(float *dx, float *dweight, const float *dout, const float *x,
                          const float *weight, int64_t rows, int64_t C, float eps,
                          void *workspace) {
    (void)workspace;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * C, *dr = dout + r * C;
        double ss = 0.0, dwx = 0.0;
        for (int64_t c = 0; c < C; c++) {
            ss += (double)xr[c] * xr[c];
            dwx += (double)dr[c] * weight[c] * xr[c];
        }
        double s = 1.0 / sqrt(ss / (double)C + eps);
        for (int64_t c = 0; c < C; c++) {
            dx[r * C + c] =
                (float)((double)dr[c] * weight[c] * s - s * s * s * xr[c] / (double)C * dwx);
            dweight[c] += (float)((double)dr[c] * xr[c] * s);
        }
    }
}

void ref_layernorm_forward(float *out, const float *x, const float *weight, const float *bias,
                           int64_t rows, int64_t C, float eps) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * C;
        double mean = 0.0, var = 0.0;
        for (int64_t c = 0; c < C; c++) mean += xr[c];
        mean /= (double)C;
        for (int64_t c = 0; c < C; c++) var += (xr[c] - mean) * (xr[c] - mean);
        double rstd = 1.0 / sqrt(var / (double)C + eps);
        for (int64_t c = 0; c < C; c++) {
            out[r * C + c] = (float)((xr[c] - mean) * rstd * weight[c] + bias[c]);
        }
    }
}

/* With xhat = (x - mean) rstd and g = dout * w:
 * dx = rstd * (g - mean(g) - xhat * mean(g * xhat)); dweight += dout xhat; dbias += dout. */
void ref_layernorm_backward(float *dx, float *dweight, float *dbias, const float *dout,
                            const float *x, const float *weight, int64_t rows, int64_t C, float eps,
                            void *workspace) {
    (void)workspace;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * C, *dr = dout + r * C;
        double mean = 0.0, var = 0.0, g_mean = 0.0, gx_mean = 0.0;
        for (int64_t c = 0; c < C; c++) mean += xr[c];
        mean /= (double)C;
        for (int64_t c = 0; c < C; c++) var += (xr[c] - mean) * (xr[c] - mean);
        double rstd = 1.0 / sqrt(var / (double)C + eps);
        for (int64_t c = 0; c < C; c++) {
            double g = (double)dr[c] * weight[c];
            g_mean += g / (double)C;
            gx_mean += g * (xr[c] - mean) * rstd / (double)C;
        }
        for (int64_t c = 0; c < C; c++) {
            double xhat = (xr[c] - mean) * rstd, g = (double)dr[c] * weight[c];
            dx[r * C + c] = (float)(rstd * (g - g_mean - xhat * gx_mean));
            dweight[c] += (float)(dr[c] * xhat);
            dbias[c] += dr[c];
        }
    }
}

void ref_softmax_forward(float *out, const float *x, int64_t rows, int64_t C) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * C;
        double max = -INFINITY, sum = 0.0;
        for (int64_t c = 0; c < C; c++) max = xr[c] > max ? xr[c] : max;
        for (int64_t c = 0; c < C; c++) sum += exp(xr[c] - max);
        for (int64_t c = 0; c < C; c++) out[r * C + c] = (float)(exp(xr[c] - max) / sum);
    }
}

/* dx_c = sum_j dout_j dy_j/dx_c = sum_j dout_j y_j (delta_jc - y_c) = y_c (dout_c - dout . y) */
void ref_softmax_backward(float *dx, const float *dout, const float *y, int64_t rows, int64_t C) {
    for (int64_t r = 0; r < rows; r++) {
        double dot = 0.0;
        for (int64_t c = 0; c < C; c++) dot += (double)dout[r * C + c] * y[r * C + c];
        for (int64_t c = 0; c < C; c++) {
            dx[r * C + c] = (float)(y[r * C + c] * (dout[r * C + c] - dot));
        }
    }
}

void ref_rope_forward(float *out, const float *x, const int32_t *positions, int64_t B, int64_t S,
                      int64_t H, int64_t D, float theta, bool inverse) {
    int64_t half = D / 2;
    for (int64_t b = 0; b < B; b++) {
        for (int64_t s = 0; s < S; s++) {
            for (int64_t h = 0; h < H; h++) {
                int64_t base = ((b * S + s) * H + h) * D;
                for (int64_t i = 0; i < half; i++) {
                    double angle = positions[b * S + s] * pow(theta, -2.0 * (double)i / D);
                    if (inverse) angle = -angle;
                    double x1 = x[base + i], x2 = x[base + i + half];
                    out[base + i] = (float)(x1 * cos(angle) - x2 * sin(angle));
                    out[base + i + half] = (float)(x1 * sin(angle) + x2 * cos(angle));
                }
            }
        }
    }
}

/* logsumexp of one row, stable: max + log(sum(exp(x - max))) */
static double ref_logsumexp(const float *x, int64_t V) {
    double max = -INFINITY, sum = 0.0;
    for (int64_t v = 0; v < V; v++) max = x[v] > max ? x[v] : max;
    for (int64_t v = 0; v < V; v++) sum += exp(x[v] - max);
    return max + log(sum);
}

float ref_cross_entropy_forward(const float *logits, const int32_t *labels, int64_t rows, int64_t V,
                                int32_t ignore_index) {
    double loss = 0.0;
    int64_t valid = 0;
    for (int64_t r = 0; r < rows; r++) {
        if (labels[r] == ignore_index) continue;
        loss += ref_logsumexp(logits + r * V, V) - logits[r * V + labels[r]];
        valid++;
    }
    return valid ? (float)(loss / (double)valid) : 0.0f;
}

void ref_cross_entropy_backward(float *dlogits, const float *logits, const int32_t *labels,
                                int64_t rows, int64_t V, int32_t ignore_index, float dloss) {
    int64_t valid = 0;
    for (int64_t r = 0; r < rows; r++) valid += labels[r] != ignore_index;
    for (int64_t r = 0; r < rows; r++) {
        float *dr = dlogits + r * V;
        if (labels[r] == ignore_index) {
            for (int64_t v = 0; v < V; v++) dr[v] = 0.0f;
            continue;
        }
        double lse = ref_logsumexp(logits + r * V, V); /* before the row is overwritten */
        for (int64_t v = 0; v < V; v++) {
            double p = exp(logits[r * V + v] - lse) - (v == labels[r] ? 1.0 : 0.0);
            dr[v] = (float)(p * dloss / (double)valid);
        }
    }
}

/* The coordinates of element i of a row-major tensor with dims d (n of them). */
static void unravel(int64_t i, int n, const int64_t *d, int64_t *idx) {
    for (int k = n - 1; k >= 0; k--) {
        idx[k] = i % d[k];
        i /= d[k];
    }
}

/* The element of a tensor with dims d (n of them) that broadcasts to coordinates idx of a
 * tensor with `big` dims: right-aligned, a size-1 dim always at 0. */
static int64_t broadcast_offset(const int64_t *idx, int big, int n, const int64_t *d) {
    int64_t off = 0;
    for (int k = 0; k < n; k++) off = off * d[k] + (d[k] == 1 ? 0 : idx[big - n + k]);
    return off;
}

void ref_broadcast_binary(float *out, const float *a, int an, const int64_t *ad, const float *b,
                          int bn, const int64_t *bd, bool multiply) {
    int64_t numel = 1, idx[8];
    for (int k = 0; k < an; k++) numel *= ad[k];
    for (int64_t i = 0; i < numel; i++) {
        unravel(i, an, ad, idx);
        float y = b[broadcast_offset(idx, an, bn, bd)];
        out[i] = multiply ? a[i] * y : a[i] + y;
    }
}

void ref_sum_to(float *out, int on, const int64_t *od, const float *x, int xn, const int64_t *xd) {
    int64_t numel = 1, out_numel = 1, idx[8];
    for (int k = 0; k < xn; k++) numel *= xd[k];
    for (int k = 0; k < on; k++) out_numel *= od[k];
    for (int64_t o = 0; o < out_numel; o++) {
        double acc = 0.0;
        for (int64_t i = 0; i < numel; i++) {
            unravel(i, xn, xd, idx);
            if (broadcast_offset(idx, xn, on, od) == o) acc += x[i];
        }
        out[o] = (float)acc;
    }
}

void ref_transpose(float *out, const float *x, int n, const int64_t *xd, const int64_t *perm) {
    int64_t numel = 1, od[8], idx[8];
    for (int k = 0; k < n; k++) numel *= xd[k], od[k] = xd[perm[k]];
    for (int64_t i = 0; i < numel; i++) {
        unravel(i, n, od, idx); /* out[idx] = x[j] with j[perm[k]] = idx[k] */
        int64_t src[8], off = 0;
        for (int k = 0; k < n; k++) src[perm[k]] = idx[k];
        for (int k = 0; k < n; k++) off = off * xd[k] + src[k];
        out[i] = x[off];
    }
}

void ref_repeat_forward(float *out, const float *x, int64_t outer, int64_t n, int64_t r,
                        int64_t inner) {
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < n * r; j++) /* slice j of the output is slice j / r of x */
            for (int64_t i = 0; i < inner; i++)
                out[(o * n * r + j) * inner + i] = x[(o * n + j / r) * inner + i];
}

void ref_index_add(float *out, const float *base, int64_t V, int64_t C, const int32_t *ids,
                   int64_t rows, const float *src) {
    for (int64_t v = 0; v < V; v++) {
        for (int64_t c = 0; c < C; c++) {
            double acc = base[v * C + c];
            for (int64_t r = 0; r < rows; r++)
                if (ids[r] == v) acc += src[r * C + c];
            out[v * C + c] = (float)acc;
        }
    }
}

int64_t ref_count_targets(const int32_t *labels, int64_t n, int32_t ignore_index) {
    int64_t count = 0;
    for (int64_t i = 0; i < n; i++) count += labels[i] != ignore_index;
    return count;
}
