/* attention.c: flash-style scaled dot-product attention, forward and backward, on the CPU.
 *
 * The S x Skv score matrix is never built. Each (batch, query head) is cut into query tiles of
 * BR rows and, for each, key tiles of BC columns; one BR x BC score tile per thread lives in the
 * workspace. The forward splits the (batch, query head) pairs over threads, the backward the
 * (batch, kv head) pairs (see run_items).
 *  - forward: online softmax over the key tiles (running max m and sum l per query row), the
 *    output accumulated in place in `out` and divided by l at the end; lse = m + log(l).
 *  - backward (FlashAttention-2): delta_i = rowsum(dout_i * out_i), then per tile
 *    P = exp(scale QK^T - lse), dV += P^T dO, dP = dO V^T, dS = P (dP - delta),
 *    dQ += scale dS K, dK += scale dS^T Q.
 * The tile products are cblas_sgemm calls on the tensors in place: the rows of one head are
 * strided by H*D, which is the sgemm's leading dimension, so nothing is copied. GQA reads kv
 * head h / (Hq/Hkv) directly; dk and dv sum over the query heads of a group through sgemm's
 * beta = 1. A tile that the causal mask or the segment ids hide entirely is skipped. The
 * elementwise work per score (max, exp, sum) is written so that gcc -O2 vectorises it: exp is a
 * branch-free polynomial, not a libm call. */
#include <cblas.h>
#include "backends/cpu/cpu_ops.h"
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "fastmath.h"
#include "kernels.h"
#include "parallel.h"

#define BR       64  /* query rows per tile */
#define BC       128 /* keys per tile */
#define WS_ALIGN 64  /* the workspace pointer is aligned up to this inside the kernels */

static void check_dims(const attention_dims_t *d, const int32_t *segment_ids) {
    AUTOSP_ASSERT(d->B >= 0 && d->S >= 0 && d->Skv >= 0 && d->D > 0);
    AUTOSP_ASSERT(d->Hkv > 0 && d->Hq % d->Hkv == 0);
    AUTOSP_ASSERT((!d->causal && !segment_ids) || d->Skv == d->S);
}

static float *align_workspace(void *workspace) {
    uintptr_t p = ((uintptr_t)workspace + WS_ALIGN - 1) & ~(uintptr_t)(WS_ALIGN - 1);
    return (float *)p;
}

/* Thread capacity of d: the number of scratch slices the workspace holds. */
static int thread_capacity(const attention_dims_t *d) {
    return d->threads < 1                              ? 1
           : d->threads > AUTOSP_ATTENTION_MAX_THREADS ? AUTOSP_ATTENTION_MAX_THREADS
                                                       : d->threads;
}

int attention_thread_capacity(void) {
    const int n = openblas_get_num_procs();
    return n < 1 ? 1 : n > AUTOSP_ATTENTION_MAX_THREADS ? AUTOSP_ATTENTION_MAX_THREADS : n;
}

/* Per-thread scratch, in floats, rounded up to WS_ALIGN bytes so that every slice is aligned. */
#define FWD_SLICE ((BR * BC + 2 * BR + WS_ALIGN / 4 - 1) / (WS_ALIGN / 4) * (WS_ALIGN / 4))
#define BWD_SLICE ((2 * BR * BC + BR + WS_ALIGN / 4 - 1) / (WS_ALIGN / 4) * (WS_ALIGN / 4))

size_t attention_forward_workspace(const attention_dims_t *d) {
    /* per thread one tile, whatever the sizes: scores, running max and sum */
    return WS_ALIGN + sizeof(float) * FWD_SLICE * (size_t)thread_capacity(d);
}

size_t attention_backward_workspace(const attention_dims_t *d) {
    /* per thread P, dP then dS, delta */
    return WS_ALIGN + sizeof(float) * BWD_SLICE * (size_t)thread_capacity(d);
}

/* ---- running work items on the pool -------------------------------------------------------
 * An item's arithmetic does not depend on which thread runs it, so the results do not depend on
 * the thread count; each thread has its own scratch slice of the workspace. */

typedef void (*item_fn)(const void *args, int64_t item, float *ws);
typedef struct items {
    item_fn fn;
    const void *args;
    float *ws;
    size_t slice;
} items_t;

static void run_item(void *ctx, int64_t item, int thread) {
    const items_t *it = ctx;
    it->fn(it->args, item, it->ws + it->slice * (size_t)thread);
}

/* fn(item) for item < n, on at most the thread capacity of d; ws holds slices of `slice` floats */
static void run_items(item_fn fn, const void *args, int64_t n, const attention_dims_t *d, float *ws,
                      size_t slice) {
    items_t it = {.fn = fn, .args = args, .ws = ws, .slice = slice};
    par_run(n, thread_capacity(d), run_item, &it);
}

/* ---- one (batch, query head): where its rows live -------------------------------------- */

typedef struct head {
    const float *q, *k, *v;  /* first row of this head; q (S,D) stride ldq, k v (Skv,D) ldkv */
    const float *dout, *out; /* (S,D) stride ldq, backward only */
    float *dq, *dk, *dv;     /* same layouts as q, k, v; backward only */
    const int32_t *seg;      /* (S) or NULL */
    int64_t ldq, ldkv;
    int64_t S, Skv, D;
    bool causal;
    float scale;
} head_t;

static head_t head_at(const attention_dims_t *d, int64_t b, int64_t h, const float *q,
                      const float *k, const float *v, const int32_t *segment_ids) {
    const int64_t hk = h / (d->Hq / d->Hkv);
    head_t hd = {
        .q = q + (b * d->S * d->Hq + h) * d->D,
        .k = k + (b * d->Skv * d->Hkv + hk) * d->D,
        .v = v + (b * d->Skv * d->Hkv + hk) * d->D,
        .seg = segment_ids ? segment_ids + b * d->S : NULL,
        .ldq = d->Hq * d->D,
        .ldkv = d->Hkv * d->D,
        .S = d->S,
        .Skv = d->Skv,
        .D = d->D,
        .causal = d->causal,
        .scale = d->scale,
    };
    return hd;
}

/* ---- masking ------------------------------------------------------------------------------ */

typedef enum { TILE_HIDDEN, TILE_PARTIAL, TILE_VISIBLE } tile_vis_t;

static bool visible(const head_t *hd, int64_t i, int64_t j) {
    if (hd->causal && j > i) return false;
    return !hd->seg || (hd->seg[i] == hd->seg[j] && hd->seg[j] >= 0);
}

/* Range [lo, hi] of the non-negative ids in seg[0..n); false when there is none. `all` is set
 * when every id is non-negative. */
static bool seg_range(const int32_t *seg, int64_t n, int32_t *lo, int32_t *hi, bool *all) {
    *lo = INT32_MAX, *hi = INT32_MIN, *all = true;
    for (int64_t t = 0; t < n; t++) {
        if (seg[t] < 0) {
            *all = false;
            continue;
        }
        *lo = seg[t] < *lo ? seg[t] : *lo;
        *hi = seg[t] > *hi ? seg[t] : *hi;
    }
    return *lo <= *hi;
}

/* Queries [i0, i0+nq) against keys [j0, j0+nk): all hidden, all visible, or mixed. With
 * segment ids, disjoint id ranges prove that no pair matches (the ids need not be sorted). */
static tile_vis_t tile_visibility(const head_t *hd, int64_t i0, int64_t nq, int64_t j0,
                                  int64_t nk) {
    tile_vis_t vis = TILE_VISIBLE;
    if (hd->causal && j0 > i0 + nq - 1) return TILE_HIDDEN;
    if (hd->causal && j0 + nk - 1 > i0) vis = TILE_PARTIAL;
    if (hd->seg) {
        int32_t qlo, qhi, klo, khi;
        bool qall, kall;
        if (!seg_range(hd->seg + i0, nq, &qlo, &qhi, &qall)) return TILE_HIDDEN;
        if (!seg_range(hd->seg + j0, nk, &klo, &khi, &kall)) return TILE_HIDDEN;
        if (qhi < klo || khi < qlo) return TILE_HIDDEN;
        if (!(qall && kall && qlo == qhi && klo == khi && qlo == klo)) vis = TILE_PARTIAL;
    }
    return vis;
}

/* s (nq,nk) stride BC: hidden scores become -inf. The causal mask hides a suffix of each row,
 * filled without a test per score; segment ids are checked per score in the rest. */
static void mask_tile(float *s, const head_t *hd, int64_t i0, int64_t nq, int64_t j0, int64_t nk) {
    for (int64_t r = 0; r < nq; r++) {
        float *sr = s + r * BC;
        int64_t seen = nk; /* keys [0, seen) of the tile are not after query i0 + r */
        if (hd->causal) {
            seen = i0 + r - j0 + 1;
            seen = seen < 0 ? 0 : seen > nk ? nk : seen;
            for (int64_t c = seen; c < nk; c++) sr[c] = -INFINITY;
        }
        if (hd->seg)
            for (int64_t c = 0; c < seen; c++)
                if (!visible(hd, i0 + r, j0 + c)) sr[c] = -INFINITY;
    }
}

/* s (nq,nk) stride BC = scale * q[i0..] k[j0..]^T, the hidden entries -inf */
static void scores_tile(float *s, const head_t *hd, int64_t i0, int64_t nq, int64_t j0, int64_t nk,
                        tile_vis_t vis) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nk, (int)hd->D, hd->scale,
                hd->q + i0 * hd->ldq, (int)hd->ldq, hd->k + j0 * hd->ldkv, (int)hd->ldkv, 0.0f, s,
                BC);
    if (vis == TILE_PARTIAL) mask_tile(s, hd, i0, nq, j0, nk);
}

/* ---- row primitives, written so that gcc -O2 vectorises them -------------------------------
 * A float max or sum in one accumulator is a serial chain of 4-cycle adds; VW independent
 * partial results break it and let the compiler use vector registers. */

#define VW 16

/* max(init, x[0..n)) */
VECTOR_CLONES static float row_max(const float *x, int64_t n, float init) {
    float acc[VW];
    for (int u = 0; u < VW; u++) acc[u] = init;
    int64_t c = 0;
    for (; c + VW <= n; c += VW)
        for (int u = 0; u < VW; u++) acc[u] = x[c + u] > acc[u] ? x[c + u] : acc[u];
    for (; c < n; c++) acc[0] = x[c] > acc[0] ? x[c] : acc[0];
    float m = acc[0];
    for (int u = 1; u < VW; u++) m = acc[u] > m ? acc[u] : m;
    return m;
}

/* x[c] = exp(x[c] - sub) for c < n, in place; returns the sum. sub is finite. */
VECTOR_CLONES static float row_exp_sum(float *x, int64_t n, float sub) {
    float acc[VW] = {0};
    int64_t c = 0;
    for (; c + VW <= n; c += VW)
        for (int u = 0; u < VW; u++) {
            x[c + u] = exp_approx(x[c + u] - sub);
            acc[u] += x[c + u];
        }
    for (; c < n; c++) {
        x[c] = exp_approx(x[c] - sub);
        acc[0] += x[c];
    }
    float sum = 0.0f;
    for (int u = 0; u < VW; u++) sum += acc[u];
    return sum;
}

/* ---- forward ---------------------------------------------------------------------------- */

/* Online softmax for one tile. s (nq,nk) scores in, probabilities relative to the new running
 * max out (in place); m, l (nq) running max and sum; o (nq,D) stride ldq rescaled to the new
 * max. A row that has seen no visible key keeps m = -inf, l = 0 and gets p = 0. NaN scores
 * make the row's m or l NaN, so that NaN inputs give NaN out, not a plausible number. */
static void softmax_tile(float *s, float *m, float *l, float *o, const head_t *hd, int64_t nq,
                         int64_t nk) {
    for (int64_t r = 0; r < nq; r++) {
        float *sr = s + r * BC;
        const float mx = row_max(sr, nk, m[r]);
        if (mx == -INFINITY) { /* nothing visible yet: p = 0, o stays 0 */
            for (int64_t c = 0; c < nk; c++)
                if (isnan(sr[c])) m[r] = l[r] = NAN; /* (the max passes over NaN) */
            memset(sr, 0, sizeof(float) * (size_t)nk);
            continue;
        }
        const float sum = row_exp_sum(sr, nk, mx);
        const float alpha = exp_approx(m[r] - mx); /* 0 when m was -inf */
        if (alpha != 1.0f)
            for (int64_t t = 0; t < hd->D; t++) o[r * hd->ldq + t] *= alpha;
        l[r] = l[r] * alpha + sum;
        m[r] = mx;
    }
}

/* out[i0..i0+nq) (nq,D) and lse (nq) of one query tile, over every key tile it can see. */
static void forward_query_tile(float *out, float *lse, const head_t *hd, int64_t i0, int64_t nq,
                               float *ws) {
    float *s = ws, *m = ws + BR * BC, *l = m + BR;
    float *o = out + i0 * hd->ldq;
    for (int64_t r = 0; r < nq; r++) {
        m[r] = -INFINITY, l[r] = 0.0f;
        memset(o + r * hd->ldq, 0, sizeof(float) * (size_t)hd->D);
    }
    const int64_t kv_end = hd->causal ? i0 + nq : hd->Skv; /* causal: Skv == S */
    for (int64_t j0 = 0; j0 < kv_end; j0 += BC) {
        const int64_t nk = kv_end - j0 < BC ? kv_end - j0 : BC;
        tile_vis_t vis = tile_visibility(hd, i0, nq, j0, nk);
        if (vis == TILE_HIDDEN) continue;
        scores_tile(s, hd, i0, nq, j0, nk, vis);
        softmax_tile(s, m, l, o, hd, nq, nk);
        /* o += p v[j0..j0+nk) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nq, (int)hd->D, (int)nk, 1.0f,
                    s, BC, hd->v + j0 * hd->ldkv, (int)hd->ldkv, 1.0f, o, (int)hd->ldq);
    }
    for (int64_t r = 0; r < nq; r++) {
        /* l = 0 exactly when the row saw no key (else l >= 1, from its max): out 0, lse -inf */
        const float inv = l[r] == 0.0f ? 0.0f : 1.0f / l[r];
        for (int64_t t = 0; t < hd->D; t++) o[r * hd->ldq + t] *= inv;
        lse[i0 + r] = l[r] == 0.0f ? -INFINITY : m[r] + logf(l[r]);
    }
}

typedef struct fwd_args {
    float *out, *lse;
    const float *q, *k, *v;
    const int32_t *seg;
    const attention_dims_t *d;
} fwd_args_t;

/* item = b * Hq + h: every query tile of one (batch, query head) */
static void forward_item(const void *args, int64_t item, float *ws) {
    const fwd_args_t *a = args;
    const attention_dims_t *d = a->d;
    const int64_t b = item / d->Hq, h = item % d->Hq;
    head_t hd = head_at(d, b, h, a->q, a->k, a->v, a->seg);
    float *out_bh = a->out + (b * d->S * d->Hq + h) * d->D;
    float *lse_bh = a->lse + (b * d->Hq + h) * d->S;
    for (int64_t i0 = 0; i0 < d->S; i0 += BR) {
        const int64_t nq = d->S - i0 < BR ? d->S - i0 : BR;
        forward_query_tile(out_bh, lse_bh, &hd, i0, nq, ws);
    }
}

/* q (B,S,Hq,D), k v (B,Skv,Hkv,D), segment_ids (B,S) or NULL -> out (B,S,Hq,D), lse (B,Hq,S).
 * The (batch, query head) pairs are split over the threads; each writes only its own rows. */
void attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                       const int32_t *segment_ids, const attention_dims_t *d, void *workspace) {
    check_dims(d, segment_ids);
    fwd_args_t a = {.out = out, .lse = lse, .q = q, .k = k, .v = v, .seg = segment_ids, .d = d};
    run_items(forward_item, &a, d->B * d->Hq, d, align_workspace(workspace), FWD_SLICE);
}

/* ---- backward --------------------------------------------------------------------------- */

/* s (nq,nk) scores in, P = exp(s - lse) out (in place); a row with lse = -inf (it sees no key)
 * and every hidden entry (-inf) get P = 0. */
static void probs_tile(float *s, const float *lse, int64_t nq, int64_t nk) {
    for (int64_t r = 0; r < nq; r++) {
        float *sr = s + r * BC;
        if (lse[r] == -INFINITY)
            memset(sr, 0, sizeof(float) * (size_t)nk);
        else
            row_exp_sum(sr, nk, lse[r]);
    }
}

/* ds (nq,nk) holds dP in, dS = P (dP - delta) out (in place) */
VECTOR_CLONES static void dscores_tile(float *ds, const float *p, const float *delta, int64_t nq,
                                       int64_t nk) {
    for (int64_t r = 0; r < nq; r++)
        for (int64_t c = 0; c < nk; c++)
            ds[r * BC + c] = p[r * BC + c] * (ds[r * BC + c] - delta[r]);
}

/* The gradients that query rows [i0, i0+nq) and keys [j0, j0+nk) contribute: dq[i0..] +=,
 * dk[j0..] +=, dv[j0..] +=. p and ds are (BR,BC) scratch; delta (nq). */
static void backward_tile(const head_t *hd, const float *lse, const float *delta, int64_t i0,
                          int64_t nq, int64_t j0, int64_t nk, tile_vis_t vis, float *p, float *ds) {
    const int M = (int)nq, N = (int)nk, D = (int)hd->D, ldq = (int)hd->ldq;
    const int ldkv = (int)hd->ldkv;
    const float *qi = hd->q + i0 * hd->ldq, *doi = hd->dout + i0 * hd->ldq;
    const float *kj = hd->k + j0 * hd->ldkv, *vj = hd->v + j0 * hd->ldkv;

    scores_tile(p, hd, i0, nq, j0, nk, vis);
    probs_tile(p, lse + i0, nq, nk);
    /* dV_j (nk,D) += P^T dO_i */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, D, M, 1.0f, p, BC, doi, ldq, 1.0f,
                hd->dv + j0 * hd->ldkv, ldkv);
    /* dP (nq,nk) = dO_i V_j^T, then dS = P (dP - delta) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, D, 1.0f, doi, ldq, vj, ldkv, 0.0f,
                ds, BC);
    dscores_tile(ds, p, delta, nq, nk);
    /* dQ_i (nq,D) += scale dS K_j; dK_j (nk,D) += scale dS^T Q_i */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, D, N, hd->scale, ds, BC, kj, ldkv,
                1.0f, hd->dq + i0 * hd->ldq, ldq);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, D, M, hd->scale, ds, BC, qi, ldq, 1.0f,
                hd->dk + j0 * hd->ldkv, ldkv);
}

/* One query tile against every key tile it can see. */
static void backward_query_tile(const head_t *hd, const float *lse, int64_t i0, int64_t nq,
                                float *ws) {
    float *p = ws, *ds = ws + BR * BC, *delta = ds + BR * BC;
    for (int64_t r = 0; r < nq; r++) { /* delta_i = rowsum(dout_i * out_i) */
        const float *dor = hd->dout + (i0 + r) * hd->ldq, *outr = hd->out + (i0 + r) * hd->ldq;
        double acc = 0.0;
        for (int64_t t = 0; t < hd->D; t++) acc += (double)dor[t] * outr[t];
        delta[r] = (float)acc;
    }
    const int64_t kv_end = hd->causal ? i0 + nq : hd->Skv;
    for (int64_t j0 = 0; j0 < kv_end; j0 += BC) {
        const int64_t nk = kv_end - j0 < BC ? kv_end - j0 : BC;
        tile_vis_t vis = tile_visibility(hd, i0, nq, j0, nk);
        if (vis != TILE_HIDDEN) backward_tile(hd, lse, delta, i0, nq, j0, nk, vis, p, ds);
    }
}

typedef struct bwd_args {
    float *dq, *dk, *dv;
    const float *dout, *q, *k, *v, *out, *lse;
    const int32_t *seg;
    const attention_dims_t *d;
} bwd_args_t;

/* item = b * Hkv + hk: every query head of one GQA group, in increasing order (the order in
 * which dk and dv of kv head hk accumulate is the same as on one thread) */
static void backward_item(const void *args, int64_t item, float *ws) {
    const bwd_args_t *a = args;
    const attention_dims_t *d = a->d;
    const int64_t b = item / d->Hkv, hk = item % d->Hkv, group = d->Hq / d->Hkv;
    for (int64_t h = hk * group; h < (hk + 1) * group; h++) {
        head_t hd = head_at(d, b, h, a->q, a->k, a->v, a->seg);
        const int64_t q_off = hd.q - a->q, kv_off = hd.k - a->k; /* the same for every tensor */
        hd.dout = a->dout + q_off, hd.out = a->out + q_off, hd.dq = a->dq + q_off;
        hd.dk = a->dk + kv_off, hd.dv = a->dv + kv_off;
        const float *lse_bh = a->lse + (b * d->Hq + h) * d->S;
        for (int64_t i0 = 0; i0 < d->S; i0 += BR) {
            const int64_t nq = d->S - i0 < BR ? d->S - i0 : BR;
            backward_query_tile(&hd, lse_bh, i0, nq, ws);
        }
    }
}

/* dout, out, q (B,S,Hq,D), k v (B,Skv,Hkv,D), lse (B,Hq,S), segment_ids (B,S) or NULL
 * -> dq (B,S,Hq,D), dk dv (B,Skv,Hkv,D), overwritten. The (batch, kv head) pairs are split over
 * the threads: dk and dv of a kv head get every contribution from one thread, and the dq rows
 * of different query heads are disjoint, so no two threads write the same element. */
void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                        const float *k, const float *v, const int32_t *segment_ids,
                        const float *out, const float *lse, const attention_dims_t *d,
                        void *workspace) {
    check_dims(d, segment_ids);
    memset(dq, 0, sizeof(float) * (size_t)(d->B * d->S * d->Hq * d->D));
    memset(dk, 0, sizeof(float) * (size_t)(d->B * d->Skv * d->Hkv * d->D));
    memset(dv, 0, sizeof(float) * (size_t)(d->B * d->Skv * d->Hkv * d->D));
    bwd_args_t a = {.dq = dq,
                    .dk = dk,
                    .dv = dv,
                    .dout = dout,
                    .q = q,
                    .k = k,
                    .v = v,
                    .out = out,
                    .lse = lse,
                    .seg = segment_ids,
                    .d = d};
    run_items(backward_item, &a, d->B * d->Hkv, d, align_workspace(workspace), BWD_SLICE);
}

/* ---- adapters: a node's shapes and buffers, turned into one kernel call ------------------- */

static attention_dims_t attention_dims(const cost_ctx_t *c, int q) {
    const cshape_t *Q = &c->in[q], *K = &c->in[q + 1];
    double scale = node_attr_float(c->node, "scale");
    attention_dims_t d = {.B = Q->d[0],
                          .S = Q->d[1],
                          .Skv = K->d[1],
                          .Hq = Q->d[2],
                          .Hkv = K->d[2],
                          .D = Q->d[3],
                          .causal = node_attr_int(c->node, "causal"),
                          .threads = attention_thread_capacity()}; /* the same when sized and run */
    d.scale = (float)(scale > 0 ? scale : 1.0 / sqrt((double)d.D));
    return d;
}

/* The forward's lse goes to its second output, or to scratch after the kernel's workspace. */
static int64_t workspace_attention(const cost_ctx_t *c) {
    attention_dims_t d = attention_dims(c, 0);
    int64_t lse = c->n_out == 1 ? d.B * d.Hq * d.S * (int64_t)sizeof(float) : 0;
    return (int64_t)attention_forward_workspace(&d) + lse + 64;
}

static int64_t workspace_attention_backward(const cost_ctx_t *c) {
    attention_dims_t d = attention_dims(c, 3);
    return (int64_t)attention_backward_workspace(&d);
}

static autosp_status_t run_attention(const kernel_args_t *r) {
    attention_dims_t d = attention_dims(r->c, 0);
    size_t ws = (attention_forward_workspace(&d) + 63) / 64 * 64;
    float *lse = r->c->n_out == 2 ? F(r->out[1]) : (float *)((char *)r->workspace + ws);
    attention_forward(F(r->out[0]), lse, CF(r->in[0]), CF(r->in[1]), CF(r->in[2]),
                      r->c->n_in == 4 ? I32(r->in[3]) : NULL, &d, r->workspace);
    return AUTOSP_OK;
}

/* (dout, out, lse, q, k, v[, segment_ids]) -> dq, dk, dv */
static autosp_status_t run_attention_backward(const kernel_args_t *r) {
    attention_dims_t d = attention_dims(r->c, 3);
    attention_backward(F(r->out[0]), F(r->out[1]), F(r->out[2]), CF(r->in[0]), CF(r->in[3]),
                       CF(r->in[4]), CF(r->in[5]), r->c->n_in == 7 ? I32(r->in[6]) : NULL,
                       CF(r->in[1]), CF(r->in[2]), &d, r->workspace);
    return AUTOSP_OK;
}

static const cpu_kernel_reg_t kernels[] = {
    CPU_KERNEL(ATTENTION, F32, run_attention, .workspace = workspace_attention),
    CPU_KERNEL(ATTENTION_BACKWARD, F32, run_attention_backward,
               .workspace = workspace_attention_backward),
};
CPU_FAMILY(attention, kernels);
