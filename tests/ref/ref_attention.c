/* ref_attention.c: the naive reference for attention (see ref.h), for tests only. Plain loops,
 * double accumulators, the full S x Skv matrix of one (batch, head) at a time, with malloc. */
#include <math.h>
#include <stdlib.h>

#include "ref.h"

static bool ref_visible(const attention_dims_t *d, const int32_t *seg, int64_t i, int64_t j) {
    if (d->causal && j > i) return false;
    return !seg || (seg[i] == seg[j] && seg[j] >= 0);
}

static double *ref_alloc(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    if (!p) abort(); /* tests only */
    return p;
}

/* p (S,Skv): the attention probabilities of batch b, query head h; a row that sees no key is
 * all zero, and lse_out (S) is -inf for it. */
static void ref_probs(double *p, double *lse_out, const float *q, const float *k,
                      const int32_t *segment_ids, const attention_dims_t *d, int64_t b, int64_t h) {
    const int64_t S = d->S, Skv = d->Skv, D = d->D, hk = h / (d->Hq / d->Hkv);
    const int32_t *seg = segment_ids ? segment_ids + b * S : NULL;
    for (int64_t i = 0; i < S; i++) {
        const float *qi = q + ((b * S + i) * d->Hq + h) * D;
        double *pi = p + i * Skv, mx = -INFINITY;
        for (int64_t j = 0; j < Skv; j++) {
            pi[j] = -INFINITY;
            if (!ref_visible(d, seg, i, j)) continue;
            const float *kj = k + ((b * Skv + j) * d->Hkv + hk) * D;
            double dot = 0.0;
            for (int64_t t = 0; t < D; t++) dot += (double)qi[t] * kj[t];
            pi[j] = d->scale * dot;
            if (pi[j] > mx || isnan(pi[j])) mx = pi[j]; /* NaN in, NaN out */
        }
        double sum = 0.0;
        for (int64_t j = 0; j < Skv; j++) {
            pi[j] = mx == -INFINITY ? 0.0 : exp(pi[j] - mx);
            sum += pi[j];
        }
        for (int64_t j = 0; j < Skv; j++) pi[j] = sum == 0.0 ? 0.0 : pi[j] / sum;
        lse_out[i] = sum == 0.0 ? -INFINITY : mx + log(sum);
    }
}

void ref_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                           const int32_t *segment_ids, const attention_dims_t *d) {
    const int64_t S = d->S, Skv = d->Skv, D = d->D;
    double *p = ref_alloc((size_t)(S * Skv)), *lse_d = ref_alloc((size_t)S);
    for (int64_t b = 0; b < d->B; b++) {
        for (int64_t h = 0; h < d->Hq; h++) {
            const int64_t hk = h / (d->Hq / d->Hkv);
            ref_probs(p, lse_d, q, k, segment_ids, d, b, h);
            for (int64_t i = 0; i < S; i++) {
                lse[(b * d->Hq + h) * S + i] = (float)lse_d[i];
                for (int64_t t = 0; t < D; t++) {
                    double acc = 0.0;
                    for (int64_t j = 0; j < Skv; j++)
                        acc += p[i * Skv + j] * v[((b * Skv + j) * d->Hkv + hk) * D + t];
                    out[((b * S + i) * d->Hq + h) * D + t] = (float)acc;
                }
            }
        }
    }
    free(p);
    free(lse_d);
}

/* From the definitions, independently of the fast kernel's delta = rowsum(dout * out):
 * dP_ij = dout_i . v_j, dS_ij = P_ij (dP_ij - sum_j' P_ij' dP_ij'), dq_i = scale sum_j dS_ij k_j,
 * dk_j = scale sum_i dS_ij q_i, dv_j = sum_i P_ij dout_i (dk, dv summed over a GQA group). */
void ref_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                            const float *k, const float *v, const int32_t *segment_ids,
                            const attention_dims_t *d) {
    const int64_t S = d->S, Skv = d->Skv, D = d->D, Hq = d->Hq, Hkv = d->Hkv;
    const size_t nkv = (size_t)(d->B * Skv * Hkv * D);
    double *p = ref_alloc((size_t)(S * Skv)), *ds = ref_alloc((size_t)(S * Skv));
    double *lse_d = ref_alloc((size_t)S), *dk_d = ref_alloc(nkv), *dv_d = ref_alloc(nkv);
    for (int64_t b = 0; b < d->B; b++) {
        for (int64_t h = 0; h < Hq; h++) {
            const int64_t hk = h / (Hq / Hkv);
            ref_probs(p, lse_d, q, k, segment_ids, d, b, h);
            for (int64_t i = 0; i < S; i++) {
                const float *doi = dout + ((b * S + i) * Hq + h) * D;
                double delta = 0.0;
                for (int64_t j = 0; j < Skv; j++) {
                    const float *vj = v + ((b * Skv + j) * Hkv + hk) * D;
                    double dp = 0.0;
                    for (int64_t t = 0; t < D; t++) dp += (double)doi[t] * vj[t];
                    ds[i * Skv + j] = dp;
                    delta += p[i * Skv + j] * dp;
                }
                for (int64_t j = 0; j < Skv; j++)
                    ds[i * Skv + j] = p[i * Skv + j] * (ds[i * Skv + j] - delta);
            }
            for (int64_t i = 0; i < S; i++) {
                for (int64_t t = 0; t < D; t++) {
                    double acc = 0.0;
                    for (int64_t j = 0; j < Skv; j++)
                        acc += ds[i * Skv + j] * k[((b * Skv + j) * Hkv + hk) * D + t];
                    dq[((b * S + i) * Hq + h) * D + t] = (float)(d->scale * acc);
                }
            }
            for (int64_t j = 0; j < Skv; j++) {
                for (int64_t t = 0; t < D; t++) {
                    double acck = 0.0, accv = 0.0;
                    for (int64_t i = 0; i < S; i++) {
                        acck += ds[i * Skv + j] * q[((b * S + i) * Hq + h) * D + t];
                        accv += p[i * Skv + j] * dout[((b * S + i) * Hq + h) * D + t];
                    }
                    dk_d[((b * Skv + j) * Hkv + hk) * D + t] += d->scale * acck;
                    dv_d[((b * Skv + j) * Hkv + hk) * D + t] += accv;
                }
            }
        }
    }
    for (size_t t = 0; t < nkv; t++) dk[t] = (float)dk_d[t], dv[t] = (float)dv_d[t];
    free(p);
    free(ds);
    free(lse_d);
    free(dk_d);
    free(dv_d);
}
