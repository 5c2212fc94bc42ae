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
 * branch-free polynomial, not a libm call.
 *
 * bf16 tensors take the same path through views: a tile of q, k, v, out or dout is widened into
 * the thread's scratch just before its sgemm (a key tile is widened once per query tile, 2 BC D
 * conversions against 4 BR BC D flops), the running sums stay f32 (the output tile, dq of a
 * query tile, dk and dv of a kv head), and each output is rounded once when it is complete.
 * So a bf16 call computes, in f32, the attention of its bf16 inputs. That is the portable path.
 * With AVX512_BF16 (bf16_native()) the tile products run on gemm_bf16 instead: K and V of a
 * head are packed once per item, the Q and dO rows of a query tile copied, and P and dS rounded
 * to bf16 before their products (as FlashAttention does on GPUs); sums stay f32. */
#include <cblas.h>
#include "backends/cpu/cpu_ops.h"
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "base/bf16.h"
#include "fastmath.h"
#include "gemm_bf16.h"
#include "kernels.h"
#include "parallel.h"

#define BR       64  /* query rows per tile */
#define BC       128 /* keys per tile */
#define WS_ALIGN 64  /* the workspace pointer is aligned up to this inside the kernels */

static void check_dims(const attention_dims_t *d, const int32_t *segment_ids) {
    AUTOSP_ASSERT(d->B >= 0 && d->S >= 0 && d->Skv >= 0 && d->D > 0);
    AUTOSP_ASSERT(d->Hkv > 0 && d->Hq % d->Hkv == 0);
    AUTOSP_ASSERT((!d->causal && !segment_ids) || d->Skv == d->S ||
                  ((!d->causal || (d->q_pos && d->kv_pos)) && (!segment_ids || d->kv_segment_ids)));
}

static float *align_workspace(void *workspace) {
    uintptr_t p = ((uintptr_t)workspace + WS_ALIGN - 1) & ~(uintptr_t)(WS_ALIGN - 1);
    return (float *)p;
}

/* The number of scratch slices the workspace holds: one per thread that can get an item (no
 * more threads than items run, so a rank with one kv head reserves one slice). */
static int thread_capacity(const attention_dims_t *d, int64_t items) {
    const int cap = d->threads < 1                              ? 1
                    : d->threads > AUTOSP_ATTENTION_MAX_THREADS ? AUTOSP_ATTENTION_MAX_THREADS
                                                                : d->threads;
    return items < 1 ? 1 : items < cap ? (int)items : cap;
}

static int process_capacity; /* attention_thread_capacity() */
static pthread_once_t capacity_once = PTHREAD_ONCE_INIT;

static void find_thread_capacity(void) {
    const int n = openblas_get_num_procs();
    process_capacity = n < 1                              ? 1
                       : n > AUTOSP_ATTENTION_MAX_THREADS ? AUTOSP_ATTENTION_MAX_THREADS
                                                          : n;
}

/* Once per process: OpenBLAS asks the kernel for the affinity mask at every call, and the
 * planner asks at every attention node of every plan. */
int attention_thread_capacity(void) {
    pthread_once(&capacity_once, find_thread_capacity);
    return process_capacity;
}

/* ---- per-thread scratch -------------------------------------------------------------------
 * One slice per thread, laid out by slice_layout: the score tiles (f32 and bf16) and, in bf16,
 * the widened tiles and the f32 sums of the outputs. Every slot starts WS_ALIGN-aligned. */
enum {
    SL_S,
    SL_DS,
    SL_M,
    SL_L,
    SL_DELTA,
    SL_Q,
    SL_K,
    SL_V,
    SL_O,
    SL_DOUT,
    SL_DQ,
    SL_DK,
    SL_DV,
    SL_KT, /* native bf16 (packed for gemm_bf16): K^T, K, V^T, V of a whole kv head */
    SL_KB,
    SL_VT,
    SL_VB,
    SL_QA, /* and of a query tile: Q's and dO's rows (A), Q and dO (B), P or dS rows, P^T or dS^T */
    SL_QB,
    SL_DOA,
    SL_DOB,
    SL_PA,
    SL_PAT,
    SL_COUNT
};
typedef struct slice_layout {
    size_t at[SL_COUNT]; /* offset of each slot, in floats */
    size_t floats;
} slice_layout_t;

/* bf16 with the CPU's AVX512_BF16: the tile products on gemm_bf16 (P and dS rounded to bf16),
 * else on sgemm over widened tiles */
static bool native_bf16(const attention_dims_t *d) {
    return d->bf16 && bf16_native();
}

/* slot sizes of the native path, in 4-byte words */
static void native_slots(const attention_dims_t *d, bool backward, size_t n[SL_COUNT]) {
    const int64_t D = d->D, Skv = d->Skv, rows16 = (D + 1) / 2; /* even rows of D bf16s */
    const int64_t kt = gemm_bf16_pairs(D) * gemm_bf16_round_cols(Skv);
    const int64_t kb = gemm_bf16_pairs(Skv) * gemm_bf16_round_cols(D);
    const int64_t tile_b = gemm_bf16_pairs(BR) * gemm_bf16_round_cols(D);
    n[SL_KT] = (size_t)kt, n[SL_QA] = (size_t)(BR * rows16), n[SL_PA] = BR * BC / 2;
    n[SL_Q] = n[SL_K] = n[SL_V] = 0;
    if (!backward) {
        n[SL_VB] = (size_t)kb;
        return;
    }
    n[SL_KB] = (size_t)kb, n[SL_VT] = (size_t)kt, n[SL_QB] = n[SL_DOB] = (size_t)tile_b;
    n[SL_DOA] = (size_t)(BR * rows16), n[SL_PAT] = (size_t)(gemm_bf16_pairs(BR) * BC);
}

static slice_layout_t slice_layout(const attention_dims_t *d, bool backward) {
    const size_t D = (size_t)d->D, align = WS_ALIGN / sizeof(float);
    size_t n[SL_COUNT] = {[SL_S] = BR * BC};
    if (backward)
        n[SL_DS] = BR * BC, n[SL_DELTA] = BR;
    else
        n[SL_M] = n[SL_L] = BR;
    if (d->bf16) {
        n[SL_Q] = n[SL_O] = BR * D, n[SL_K] = n[SL_V] = BC * D;
        if (native_bf16(d)) native_slots(d, backward, n);
        if (backward) {
            n[SL_DOUT] = BR * D;
            if (!(d->f32_grads & AUTOSP_ATTENTION_DQ_F32)) n[SL_DQ] = BR * D;
            if (!(d->f32_grads & AUTOSP_ATTENTION_DK_F32)) n[SL_DK] = (size_t)d->Skv * D;
            if (!(d->f32_grads & AUTOSP_ATTENTION_DV_F32)) n[SL_DV] = (size_t)d->Skv * D;
        }
    }
    slice_layout_t l = {.floats = 0};
    for (int slot = 0; slot < SL_COUNT; slot++) {
        l.at[slot] = l.floats;
        l.floats += (n[slot] + align - 1) / align * align;
    }
    return l;
}

typedef struct scratch {
    float *s, *ds, *m, *l, *delta; /* scores (then P), dP (then dS), softmax state, delta */
    float *q, *k, *v, *out, *dout; /* widened bf16 tiles */
    float *dq, *dk, *dv;           /* f32 sums of bf16 gradients; dk, dv: a whole kv head */
    uint32_t *kt, *kb, *vt, *vb;   /* native bf16: packed operands (see the SL_ slots) */
    bf16_t *qa;
    uint32_t *qb;
    bf16_t *doa;
    uint32_t *dob;
    bf16_t *pa;
    uint32_t *pat;
} scratch_t;

static scratch_t scratch_at(float *slice, const slice_layout_t *l) {
    const size_t *at = l->at;
    return (scratch_t){
        .s = slice + at[SL_S],
        .ds = slice + at[SL_DS],
        .m = slice + at[SL_M],
        .l = slice + at[SL_L],
        .delta = slice + at[SL_DELTA],
        .q = slice + at[SL_Q],
        .k = slice + at[SL_K],
        .v = slice + at[SL_V],
        .out = slice + at[SL_O],
        .dout = slice + at[SL_DOUT],
        .dq = slice + at[SL_DQ],
        .dk = slice + at[SL_DK],
        .dv = slice + at[SL_DV],
        .kt = (uint32_t *)(slice + at[SL_KT]),
        .kb = (uint32_t *)(slice + at[SL_KB]),
        .vt = (uint32_t *)(slice + at[SL_VT]),
        .vb = (uint32_t *)(slice + at[SL_VB]),
        .qa = (bf16_t *)(slice + at[SL_QA]),
        .qb = (uint32_t *)(slice + at[SL_QB]),
        .doa = (bf16_t *)(slice + at[SL_DOA]),
        .dob = (uint32_t *)(slice + at[SL_DOB]),
        .pa = (bf16_t *)(slice + at[SL_PA]),
        .pat = (uint32_t *)(slice + at[SL_PAT]),
    };
}

size_t attention_forward_workspace(const attention_dims_t *d) {
    return WS_ALIGN +
           sizeof(float) * slice_layout(d, false).floats * (size_t)thread_capacity(d, d->B * d->Hq);
}

size_t attention_backward_workspace(const attention_dims_t *d) {
    return WS_ALIGN +
           sizeof(float) * slice_layout(d, true).floats * (size_t)thread_capacity(d, d->B * d->Hkv);
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
    const attention_dims_t *d;
} items_t;

static _Thread_local bool on_caller; /* this item runs on the calling thread (thread 0) */

static void run_item(void *ctx, int64_t item, int thread) {
    const items_t *it = ctx;
    on_caller = thread == 0;
    it->fn(it->args, item, it->ws + it->slice * (size_t)thread);
    on_caller = false;
}

/* d->poll once per query tile, on the calling thread only (MPI wants the thread that made
 * the requests) */
static void poll(const attention_dims_t *d) {
    if (on_caller && d->poll) d->poll(d->poll_ctx);
}

/* fn(item) for item < n, on at most the thread capacity of d; ws holds slices of `slice` floats */
static void run_items(item_fn fn, const void *args, int64_t n, const attention_dims_t *d, float *ws,
                      size_t slice) {
    items_t it = {.fn = fn, .args = args, .ws = ws, .slice = slice, .d = d};
    par_run(n, thread_capacity(d, n), run_item, &it);
}

/* ---- one (batch, query head): where its rows live -------------------------------------- */

/* A head's rows of one tensor: row r starts at base + r * ld elements, floats or bf16_t. */
typedef struct rows {
    const void *base;
    int64_t ld;
    bool bf16;
} rows_t;

/* A head's rows of one gradient, the same layout. */
typedef struct grad_rows {
    void *base;
    int64_t ld;
    bool f32;
} grad_rows_t;

typedef struct head {
    rows_t q, k, v;                /* q (S,D), k v (Skv,D) */
    rows_t dout, out;              /* (S,D), backward only */
    grad_rows_t dq, dk, dv;        /* same layouts as q, k, v; backward only */
    void *o;                       /* the forward's output rows, q's layout */
    const int32_t *seg;            /* (S) or NULL */
    const int32_t *seg_kv;         /* (Skv): seg, or the keys' own */
    const int32_t *q_pos, *kv_pos; /* global indices for the causal mask, or NULL: the rows' */
    int64_t S, Skv, D;
    bool causal;
    float scale;
} head_t;

/* rows_t of the head whose first element is element `off` of tensor `base` */
static rows_t rows_at(const void *base, int64_t off, int64_t ld, bool bf16) {
    const size_t esize = bf16 ? sizeof(bf16_t) : sizeof(float);
    return (rows_t){(const char *)base + (size_t)off * esize, ld, bf16};
}

static grad_rows_t grad_rows_at(void *base, int64_t off, int64_t ld, bool f32) {
    const size_t esize = f32 ? sizeof(float) : sizeof(bf16_t);
    return (grad_rows_t){(char *)base + (size_t)off * esize, ld, f32};
}

/* Element offsets of (batch b, query head h)'s first q row and of its kv head's first k row. */
static int64_t q_offset(const attention_dims_t *d, int64_t b, int64_t h) {
    return (b * d->S * d->Hq + h) * d->D;
}

static int64_t kv_offset(const attention_dims_t *d, int64_t b, int64_t h) {
    return (b * d->Skv * d->Hkv + h / (d->Hq / d->Hkv)) * d->D;
}

static head_t head_at(const attention_dims_t *d, int64_t b, int64_t h, const void *q, const void *k,
                      const void *v, const int32_t *segment_ids) {
    const int64_t qo = q_offset(d, b, h), kvo = kv_offset(d, b, h);
    head_t hd = {
        .q = rows_at(q, qo, d->Hq * d->D, d->bf16),
        .k = rows_at(k, kvo, d->Hkv * d->D, d->bf16),
        .v = rows_at(v, kvo, d->Hkv * d->D, d->bf16),
        .seg = segment_ids ? segment_ids + b * d->S : NULL,
        .seg_kv = !segment_ids        ? NULL
                  : d->kv_segment_ids ? d->kv_segment_ids + b * d->Skv
                                      : segment_ids + b * d->S,
        .q_pos = d->q_pos,
        .kv_pos = d->kv_pos,
        .S = d->S,
        .Skv = d->Skv,
        .D = d->D,
        .causal = d->causal,
        .scale = d->scale,
    };
    return hd;
}

/* ---- views: f32 rows for the sgemms ------------------------------------------------------- */

typedef struct view {
    const float *p;
    int ld;
} view_t;

typedef struct acc {
    float *p;
    int ld;
} acc_t;

/* Rows [r0, r0+n) of x as floats: in place, or widened into `scratch` (n x D). */
static view_t load_rows(const rows_t *x, int64_t r0, int64_t n, int64_t D, float *scratch) {
    if (!x->bf16) return (view_t){(const float *)x->base + r0 * x->ld, (int)x->ld};
    for (int64_t r = 0; r < n; r++)
        cpu_widen(scratch + r * D, (const bf16_t *)x->base + (r0 + r) * x->ld, D);
    return (view_t){scratch, (int)D};
}

/* Where rows [r0, r0+n) of an f32 sum accumulate: in the tensor itself when it is f32, else in
 * `scratch` (rows of D) until store_rows rounds them into it. */
static acc_t acc_rows(const grad_rows_t *x, int64_t r0, float *scratch, int64_t D) {
    if (x->f32) return (acc_t){(float *)x->base + r0 * x->ld, (int)x->ld};
    return (acc_t){scratch, (int)D};
}

/* Rounds n rows of D from a (an acc_rows of x at r0) into x, unless a is x itself. */
static void store_rows(const grad_rows_t *x, int64_t r0, int64_t n, int64_t D, acc_t a) {
    if (x->f32) return;
    for (int64_t r = 0; r < n; r++)
        cpu_round((bf16_t *)x->base + (r0 + r) * x->ld, a.p + r * a.ld, D);
}

/* Zeroes n rows of D of a. */
static void clear_rows(acc_t a, int64_t n, int64_t D) {
    for (int64_t r = 0; r < n; r++) memset(a.p + r * a.ld, 0, sizeof(float) * (size_t)D);
}

/* ---- masking ------------------------------------------------------------------------------ */

typedef enum { TILE_HIDDEN, TILE_PARTIAL, TILE_VISIBLE } tile_vis_t;

static bool visible(const head_t *hd, int64_t i, int64_t j) {
    if (hd->causal && (hd->q_pos ? hd->kv_pos[j] > hd->q_pos[i] : j > i)) return false;
    return !hd->seg || (hd->seg[i] == hd->seg_kv[j] && hd->seg_kv[j] >= 0);
}

/* lo, hi of pos[0..n) */
static void pos_range(const int32_t *pos, int64_t n, int32_t *lo, int32_t *hi) {
    *lo = INT32_MAX, *hi = INT32_MIN;
    for (int64_t t = 0; t < n; t++) {
        *lo = pos[t] < *lo ? pos[t] : *lo;
        *hi = pos[t] > *hi ? pos[t] : *hi;
    }
}

/* The causal mask on global indices: every key after every query (hidden), every key before
 * every query (visible), or mixed. */
static tile_vis_t causal_by_pos(const head_t *hd, int64_t i0, int64_t nq, int64_t j0, int64_t nk) {
    int32_t qlo, qhi, klo, khi;
    pos_range(hd->q_pos + i0, nq, &qlo, &qhi);
    pos_range(hd->kv_pos + j0, nk, &klo, &khi);
    return klo > qhi ? TILE_HIDDEN : khi > qlo ? TILE_PARTIAL : TILE_VISIBLE;
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
    if (hd->causal && hd->q_pos) {
        if ((vis = causal_by_pos(hd, i0, nq, j0, nk)) == TILE_HIDDEN) return vis;
    } else if (hd->causal && j0 > i0 + nq - 1) {
        return TILE_HIDDEN;
    } else if (hd->causal && j0 + nk - 1 > i0) {
        vis = TILE_PARTIAL;
    }
    if (hd->seg) {
        int32_t qlo, qhi, klo, khi;
        bool qall, kall;
        if (!seg_range(hd->seg + i0, nq, &qlo, &qhi, &qall)) return TILE_HIDDEN;
        if (!seg_range(hd->seg_kv + j0, nk, &klo, &khi, &kall)) return TILE_HIDDEN;
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
        if (hd->q_pos) {   /* global indices: no suffix to fill */
            for (int64_t c = 0; c < nk; c++)
                if (!visible(hd, i0 + r, j0 + c)) sr[c] = -INFINITY;
            continue;
        }
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

/* s (nq,nk) stride BC = scale * q_i k_j^T for the queries from i0 and keys from j0 in q_i, k_j;
 * the hidden entries -inf */
static void scores_tile(float *s, const head_t *hd, view_t qi, view_t kj, int64_t i0, int64_t nq,
                        int64_t j0, int64_t nk, tile_vis_t vis) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nk, (int)hd->D, hd->scale,
                qi.p, qi.ld, kj.p, kj.ld, 0.0f, s, BC);
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
 * max out (in place); m, l (nq) running max and sum; o (nq,D) rescaled to the new max. A row
 * that has seen no visible key keeps m = -inf, l = 0 and gets p = 0. NaN scores make the row's
 * m or l NaN, so that NaN inputs give NaN out, not a plausible number. */
static void softmax_tile(float *s, float *m, float *l, acc_t o, int64_t D, int64_t nq, int64_t nk) {
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
            for (int64_t t = 0; t < D; t++) o.p[r * o.ld + t] *= alpha;
        l[r] = l[r] * alpha + sum;
        m[r] = mx;
    }
}

/* out rows [i0, i0+nq) and lse (nq) of one query tile, over every key tile it can see. */
static void forward_query_tile(const head_t *hd, float *lse, int64_t i0, int64_t nq,
                               const scratch_t *sc) {
    const int64_t D = hd->D;
    float *s = sc->s, *m = sc->m, *l = sc->l;
    const grad_rows_t out = {hd->o, hd->q.ld, !hd->q.bf16};
    const view_t qi = load_rows(&hd->q, i0, nq, D, sc->q);
    const acc_t o = acc_rows(&out, i0, sc->out, D);
    clear_rows(o, nq, D);
    for (int64_t r = 0; r < nq; r++) m[r] = -INFINITY, l[r] = 0.0f;
    const int64_t kv_end = hd->causal && !hd->q_pos ? i0 + nq : hd->Skv; /* else Skv == S */
    for (int64_t j0 = 0; j0 < kv_end; j0 += BC) {
        const int64_t nk = kv_end - j0 < BC ? kv_end - j0 : BC;
        tile_vis_t vis = tile_visibility(hd, i0, nq, j0, nk);
        if (vis == TILE_HIDDEN) continue;
        scores_tile(s, hd, qi, load_rows(&hd->k, j0, nk, D, sc->k), i0, nq, j0, nk, vis);
        softmax_tile(s, m, l, o, D, nq, nk);
        const view_t vj = load_rows(&hd->v, j0, nk, D, sc->v); /* o += p v_j */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nq, (int)D, (int)nk, 1.0f, s,
                    BC, vj.p, vj.ld, 1.0f, o.p, o.ld);
    }
    for (int64_t r = 0; r < nq; r++) {
        /* l = 0 exactly when the row saw no key (else l >= 1, from its max): out 0, lse -inf */
        const float inv = l[r] == 0.0f ? 0.0f : 1.0f / l[r];
        for (int64_t t = 0; t < D; t++) o.p[r * o.ld + t] *= inv;
        lse[i0 + r] = l[r] == 0.0f ? -INFINITY : m[r] + logf(l[r]);
    }
    store_rows(&out, i0, nq, D, o);
}

/* ---- native bf16: the tile products on gemm_bf16 -------------------------------------------
 * K and V of the head are packed once per (batch, head) item; per query tile the Q rows are
 * copied, and P is rounded to bf16 for P V (as FlashAttention does on GPUs): the one rounding
 * the sgemm path does not have. Even row strides: an odd D's rows get a zero element. */
#define ROWS16(D) (((D) + 1) / 2 * 2)

/* K^T (D x Skv) and V (Skv x D) of a head, packed as gemm_bf16's B operands */
static void pack_kv_forward(const head_t *hd, const scratch_t *sc) {
    gemm_bf16_transpose(sc->kt, gemm_bf16_round_cols(hd->Skv), hd->k.base, hd->k.ld, hd->Skv,
                        hd->D);
    gemm_bf16_interleave(sc->vb, gemm_bf16_round_cols(hd->D), hd->v.base, hd->v.ld, hd->Skv, hd->D);
}

/* s (nq,nk) stride BC = scale q_i k_j^T from the packed K^T; the hidden entries -inf */
static void scores_native(float *s, const head_t *hd, const bf16_t *qa, int64_t i0, int64_t nq,
                          int64_t j0, int64_t nk, tile_vis_t vis, const uint32_t *kt) {
    gemm_bf16(s, BC, qa, ROWS16(hd->D) / 2, 1, kt + j0, gemm_bf16_round_cols(hd->Skv), nq, nk,
              hd->D, hd->scale, false);
    if (vis == TILE_PARTIAL) mask_tile(s, hd, i0, nq, j0, nk);
}

static void forward_query_tile_native(const head_t *hd, float *lse, int64_t i0, int64_t nq,
                                      const scratch_t *sc) {
    const int64_t D = hd->D, ldvb = gemm_bf16_round_cols(D);
    float *s = sc->s, *m = sc->m, *l = sc->l;
    const grad_rows_t out = {hd->o, hd->q.ld, false};
    gemm_bf16_copy_rows(sc->qa, ROWS16(D), (const bf16_t *)hd->q.base + i0 * hd->q.ld, hd->q.ld, nq,
                        D);
    const acc_t o = {sc->out, (int)D};
    clear_rows(o, nq, D);
    for (int64_t r = 0; r < nq; r++) m[r] = -INFINITY, l[r] = 0.0f;
    const int64_t kv_end = hd->causal && !hd->q_pos ? i0 + nq : hd->Skv;
    for (int64_t j0 = 0; j0 < kv_end; j0 += BC) {
        const int64_t nk = kv_end - j0 < BC ? kv_end - j0 : BC;
        tile_vis_t vis = tile_visibility(hd, i0, nq, j0, nk);
        if (vis == TILE_HIDDEN) continue;
        scores_native(s, hd, sc->qa, i0, nq, j0, nk, vis, sc->kt);
        softmax_tile(s, m, l, o, D, nq, nk);
        gemm_bf16_round_rows(sc->pa, BC, s, BC, nq, nk); /* o += p v_j */
        gemm_bf16(o.p, o.ld, sc->pa, BC / 2, 1, sc->vb + j0 / 2 * ldvb, ldvb, nq, D, nk, 1.0f,
                  true);
    }
    for (int64_t r = 0; r < nq; r++) {
        const float inv = l[r] == 0.0f ? 0.0f : 1.0f / l[r];
        for (int64_t t = 0; t < D; t++) o.p[r * o.ld + t] *= inv;
        lse[i0 + r] = l[r] == 0.0f ? -INFINITY : m[r] + logf(l[r]);
    }
    store_rows(&out, i0, nq, D, o);
}

typedef struct fwd_args {
    void *out;
    float *lse;
    const void *q, *k, *v;
    const int32_t *seg;
    const attention_dims_t *d;
    slice_layout_t layout;
} fwd_args_t;

/* item = b * Hq + h: every query tile of one (batch, query head) */
static void forward_item(const void *args, int64_t item, float *ws) {
    const fwd_args_t *a = args;
    const attention_dims_t *d = a->d;
    const int64_t b = item / d->Hq, h = item % d->Hq;
    const scratch_t sc = scratch_at(ws, &a->layout);
    head_t hd = head_at(d, b, h, a->q, a->k, a->v, a->seg);
    hd.o = grad_rows_at(a->out, q_offset(d, b, h), hd.q.ld, !d->bf16).base;
    float *lse_bh = a->lse + (b * d->Hq + h) * d->S;
    const bool native = native_bf16(d);
    if (native) pack_kv_forward(&hd, &sc);
    for (int64_t i0 = 0; i0 < d->S; i0 += BR, poll(d)) {
        const int64_t nq = d->S - i0 < BR ? d->S - i0 : BR;
        if (native)
            forward_query_tile_native(&hd, lse_bh, i0, nq, &sc);
        else
            forward_query_tile(&hd, lse_bh, i0, nq, &sc);
    }
}

/* q (B,S,Hq,D), k v (B,Skv,Hkv,D), segment_ids (B,S) or NULL -> out (B,S,Hq,D), lse (B,Hq,S).
 * The (batch, query head) pairs are split over the threads; each writes only its own rows. */
void attention_forward(void *out, float *lse, const void *q, const void *k, const void *v,
                       const int32_t *segment_ids, const attention_dims_t *d, void *workspace) {
    check_dims(d, segment_ids);
    fwd_args_t a = {.out = out,
                    .lse = lse,
                    .q = q,
                    .k = k,
                    .v = v,
                    .seg = segment_ids,
                    .d = d,
                    .layout = slice_layout(d, false)};
    run_items(forward_item, &a, d->B * d->Hq, d, align_workspace(workspace), a.layout.floats);
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

/* One query tile's views: its q and dout rows, where its dq sums, and the kv head's dk, dv sums
 * (from key 0). */
typedef struct query_tile {
    view_t q, dout;
    acc_t dq, dk, dv;
    const float *lse, *delta;
    int64_t i0, nq;
} query_tile_t;

/* The gradients that the tile's queries and keys [j0, j0+nk) contribute: dq +=, dk[j0..] +=,
 * dv[j0..] +=. */
static void backward_tile(const head_t *hd, const query_tile_t *t, int64_t j0, int64_t nk,
                          tile_vis_t vis, const scratch_t *sc) {
    const int M = (int)t->nq, N = (int)nk, D = (int)hd->D;
    float *p = sc->s, *ds = sc->ds;
    const view_t kj = load_rows(&hd->k, j0, nk, D, sc->k), vj = load_rows(&hd->v, j0, nk, D, sc->v);
    float *dkj = t->dk.p + j0 * t->dk.ld, *dvj = t->dv.p + j0 * t->dv.ld;

    scores_tile(p, hd, t->q, kj, t->i0, t->nq, j0, nk, vis);
    probs_tile(p, t->lse + t->i0, t->nq, nk);
    /* dV_j (nk,D) += P^T dO_i */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, D, M, 1.0f, p, BC, t->dout.p,
                t->dout.ld, 1.0f, dvj, t->dv.ld);
    /* dP (nq,nk) = dO_i V_j^T, then dS = P (dP - delta) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, D, 1.0f, t->dout.p, t->dout.ld, vj.p,
                vj.ld, 0.0f, ds, BC);
    dscores_tile(ds, p, t->delta, t->nq, nk);
    /* dQ_i (nq,D) += scale dS K_j; dK_j (nk,D) += scale dS^T Q_i */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, D, N, hd->scale, ds, BC, kj.p, kj.ld,
                1.0f, t->dq.p, t->dq.ld);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, D, M, hd->scale, ds, BC, t->q.p,
                t->q.ld, 1.0f, dkj, t->dk.ld);
}

/* delta_i = rowsum(dout_i * out_i), in double */
static void tile_delta(float *delta, view_t dout, view_t out, int64_t nq, int64_t D) {
    for (int64_t r = 0; r < nq; r++) {
        double acc = 0.0;
        for (int64_t c = 0; c < D; c++)
            acc += (double)dout.p[r * dout.ld + c] * out.p[r * out.ld + c];
        delta[r] = (float)acc;
    }
}

/* One query tile against every key tile it can see; dk and dv sum into dk, dv. */
static void backward_query_tile(const head_t *hd, const float *lse, int64_t i0, int64_t nq,
                                acc_t dk, acc_t dv, const scratch_t *sc) {
    const int64_t D = hd->D;
    query_tile_t t = {.q = load_rows(&hd->q, i0, nq, D, sc->q),
                      .dout = load_rows(&hd->dout, i0, nq, D, sc->dout),
                      .dq = acc_rows(&hd->dq, i0, sc->dq, D),
                      .dk = dk,
                      .dv = dv,
                      .lse = lse,
                      .delta = sc->delta,
                      .i0 = i0,
                      .nq = nq};
    if (!hd->dq.f32) clear_rows(t.dq, nq, D); /* an f32 dq was zeroed as a whole */
    tile_delta(sc->delta, t.dout, load_rows(&hd->out, i0, nq, D, sc->out), nq, D);
    const int64_t kv_end = hd->causal && !hd->q_pos ? i0 + nq : hd->Skv;
    for (int64_t j0 = 0; j0 < kv_end; j0 += BC) {
        const int64_t nk = kv_end - j0 < BC ? kv_end - j0 : BC;
        tile_vis_t vis = tile_visibility(hd, i0, nq, j0, nk);
        if (vis != TILE_HIDDEN) backward_tile(hd, &t, j0, nk, vis, sc);
    }
    store_rows(&hd->dq, i0, nq, D, t.dq);
}

/* K^T, K and V^T of a kv head, packed as gemm_bf16's B operands (for S, dQ and dP) */
static void pack_kv_backward(const head_t *hd, const scratch_t *sc) {
    const int64_t cols = gemm_bf16_round_cols(hd->Skv);
    gemm_bf16_transpose(sc->kt, cols, hd->k.base, hd->k.ld, hd->Skv, hd->D);
    gemm_bf16_interleave(sc->kb, gemm_bf16_round_cols(hd->D), hd->k.base, hd->k.ld, hd->Skv, hd->D);
    gemm_bf16_transpose(sc->vt, cols, hd->v.base, hd->v.ld, hd->Skv, hd->D);
}

/* x (nq,nk) stride BC rounded into sc->pa (rows, for x K_j or x V_j) and sc->pat (columns of
 * pairs, for x^T Q_i or x^T dO_i) */
static void pack_scores(const scratch_t *sc, const float *x, int64_t nq, int64_t nk) {
    gemm_bf16_round_rows(sc->pa, BC, x, BC, nq, nk);
    gemm_bf16_interleave(sc->pat, BC, sc->pa, BC, nq, nk);
}

static void backward_tile_native(const head_t *hd, const query_tile_t *t, int64_t j0, int64_t nk,
                                 tile_vis_t vis, const scratch_t *sc) {
    const int64_t D = hd->D, ldd = gemm_bf16_round_cols(D), lds = gemm_bf16_round_cols(hd->Skv);
    float *p = sc->s, *ds = sc->ds;
    float *dkj = t->dk.p + j0 * t->dk.ld, *dvj = t->dv.p + j0 * t->dv.ld;
    scores_native(p, hd, sc->qa, t->i0, t->nq, j0, nk, vis, sc->kt);
    probs_tile(p, t->lse + t->i0, t->nq, nk);
    pack_scores(sc, p, t->nq, nk); /* dV_j += P^T dO_i */
    gemm_bf16(dvj, t->dv.ld, sc->pat, 1, BC, sc->dob, ldd, nk, D, t->nq, 1.0f, true);
    /* dP = dO_i V_j^T, then dS = P (dP - delta) */
    gemm_bf16(ds, BC, sc->doa, ROWS16(D) / 2, 1, sc->vt + j0, lds, t->nq, nk, D, 1.0f, false);
    dscores_tile(ds, p, t->delta, t->nq, nk);
    pack_scores(sc, ds, t->nq, nk); /* dQ_i += scale dS K_j; dK_j += scale dS^T Q_i */
    gemm_bf16(t->dq.p, t->dq.ld, sc->pa, BC / 2, 1, sc->kb + j0 / 2 * ldd, ldd, t->nq, D, nk,
              hd->scale, true);
    gemm_bf16(dkj, t->dk.ld, sc->pat, 1, BC, sc->qb, ldd, nk, D, t->nq, hd->scale, true);
}

/* The native query tile: Q and dO packed both ways, then backward_tile_native per key tile. */
static void backward_query_tile_native(const head_t *hd, const float *lse, int64_t i0, int64_t nq,
                                       acc_t dk, acc_t dv, const scratch_t *sc) {
    const int64_t D = hd->D, ldd = gemm_bf16_round_cols(D);
    const bf16_t *q = (const bf16_t *)hd->q.base + i0 * hd->q.ld;
    const bf16_t *dout = (const bf16_t *)hd->dout.base + i0 * hd->dout.ld;
    gemm_bf16_copy_rows(sc->qa, ROWS16(D), q, hd->q.ld, nq, D);
    gemm_bf16_interleave(sc->qb, ldd, q, hd->q.ld, nq, D);
    gemm_bf16_copy_rows(sc->doa, ROWS16(D), dout, hd->dout.ld, nq, D);
    gemm_bf16_interleave(sc->dob, ldd, dout, hd->dout.ld, nq, D);
    query_tile_t t = {.dq = acc_rows(&hd->dq, i0, sc->dq, D),
                      .dk = dk,
                      .dv = dv,
                      .lse = lse,
                      .delta = sc->delta,
                      .i0 = i0,
                      .nq = nq};
    if (!hd->dq.f32) clear_rows(t.dq, nq, D);
    tile_delta(sc->delta, load_rows(&hd->dout, i0, nq, D, sc->dout),
               load_rows(&hd->out, i0, nq, D, sc->out), nq, D);
    const int64_t kv_end = hd->causal && !hd->q_pos ? i0 + nq : hd->Skv;
    for (int64_t j0 = 0; j0 < kv_end; j0 += BC) {
        const int64_t nk = kv_end - j0 < BC ? kv_end - j0 : BC;
        tile_vis_t vis = tile_visibility(hd, i0, nq, j0, nk);
        if (vis != TILE_HIDDEN) backward_tile_native(hd, &t, j0, nk, vis, sc);
    }
    store_rows(&hd->dq, i0, nq, D, t.dq);
}

typedef struct bwd_args {
    void *dq, *dk, *dv;
    const void *dout, *q, *k, *v, *out;
    const float *lse;
    const int32_t *seg;
    const attention_dims_t *d;
    slice_layout_t layout;
} bwd_args_t;

static bool grad_is_f32(const attention_dims_t *d, unsigned bit) {
    return !d->bf16 || (d->f32_grads & bit);
}

/* item = b * Hkv + hk: every query head of one GQA group, in increasing order (the order in
 * which dk and dv of kv head hk accumulate is the same as on one thread) */
static void backward_item(const void *args, int64_t item, float *ws) {
    const bwd_args_t *a = args;
    const attention_dims_t *d = a->d;
    const int64_t b = item / d->Hkv, hk = item % d->Hkv, group = d->Hq / d->Hkv, D = d->D;
    const scratch_t sc = scratch_at(ws, &a->layout);
    const int64_t kvo = kv_offset(d, b, hk * group), ldkv = d->Hkv * D;
    const grad_rows_t dk = grad_rows_at(a->dk, kvo, ldkv, grad_is_f32(d, AUTOSP_ATTENTION_DK_F32));
    const grad_rows_t dv = grad_rows_at(a->dv, kvo, ldkv, grad_is_f32(d, AUTOSP_ATTENTION_DV_F32));
    const acc_t dk_sum = acc_rows(&dk, 0, sc.dk, D), dv_sum = acc_rows(&dv, 0, sc.dv, D);
    if (!dk.f32) clear_rows(dk_sum, d->Skv, D);
    if (!dv.f32) clear_rows(dv_sum, d->Skv, D);
    const bool native = native_bf16(d);
    if (native) {
        const head_t first = head_at(d, b, hk * group, a->q, a->k, a->v, a->seg);
        pack_kv_backward(&first, &sc);
    }
    for (int64_t h = hk * group; h < (hk + 1) * group; h++) {
        head_t hd = head_at(d, b, h, a->q, a->k, a->v, a->seg);
        const int64_t qo = q_offset(d, b, h), ldq = d->Hq * D;
        hd.dout = rows_at(a->dout, qo, ldq, d->bf16), hd.out = rows_at(a->out, qo, ldq, d->bf16);
        hd.dq = grad_rows_at(a->dq, qo, ldq, grad_is_f32(d, AUTOSP_ATTENTION_DQ_F32));
        const float *lse_bh = a->lse + (b * d->Hq + h) * d->S;
        for (int64_t i0 = 0; i0 < d->S; i0 += BR, poll(d)) {
            const int64_t nq = d->S - i0 < BR ? d->S - i0 : BR;
            if (native)
                backward_query_tile_native(&hd, lse_bh, i0, nq, dk_sum, dv_sum, &sc);
            else
                backward_query_tile(&hd, lse_bh, i0, nq, dk_sum, dv_sum, &sc);
        }
    }
    store_rows(&dk, 0, d->Skv, D, dk_sum);
    store_rows(&dv, 0, d->Skv, D, dv_sum);
}

/* dout, out, q (B,S,Hq,D), k v (B,Skv,Hkv,D), lse (B,Hq,S), segment_ids (B,S) or NULL
 * -> dq (B,S,Hq,D), dk dv (B,Skv,Hkv,D), overwritten. The (batch, kv head) pairs are split over
 * the threads: dk and dv of a kv head get every contribution from one thread, and the dq rows
 * of different query heads are disjoint, so no two threads write the same element. An f32
 * gradient sums in place (zeroed here); a bf16 one in the thread's scratch. */
void attention_backward(void *dq, void *dk, void *dv, const void *dout, const void *q,
                        const void *k, const void *v, const int32_t *segment_ids, const void *out,
                        const float *lse, const attention_dims_t *d, void *workspace) {
    check_dims(d, segment_ids);
    AUTOSP_ASSERT(!d->accumulate || !d->bf16);
    const size_t nq = (size_t)(d->B * d->S * d->Hq * d->D);
    const size_t nkv = (size_t)(d->B * d->Skv * d->Hkv * d->D);
    if (!d->accumulate && grad_is_f32(d, AUTOSP_ATTENTION_DQ_F32))
        memset(dq, 0, sizeof(float) * nq);
    if (!d->accumulate && grad_is_f32(d, AUTOSP_ATTENTION_DK_F32))
        memset(dk, 0, sizeof(float) * nkv);
    if (!d->accumulate && grad_is_f32(d, AUTOSP_ATTENTION_DV_F32))
        memset(dv, 0, sizeof(float) * nkv);
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
                    .d = d,
                    .layout = slice_layout(d, true)};
    run_items(backward_item, &a, d->B * d->Hkv, d, align_workspace(workspace), a.layout.floats);
}

/* ---- adapters: a node's shapes and buffers, turned into one kernel call ------------------- */

/* q is input `q` of the node; a backward's outputs are dq, dk, dv */
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
                          .threads = attention_thread_capacity(), /* the same sized and run */
                          .bf16 = Q->esize == sizeof(bf16_t)};
    d.scale = (float)(scale > 0 ? scale : 1.0 / sqrt((double)d.D));
    if (c->node->op == AUTOSP_OP_ATTENTION_BACKWARD)
        for (int i = 0; i < 3; i++)
            if (c->out[i].esize == sizeof(float)) d.f32_grads |= 1u << i; /* DQ, DK, DV bits */
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
    attention_forward(r->out[0], lse, r->in[0], r->in[1], r->in[2],
                      r->c->n_in == 4 ? I32(r->in[3]) : NULL, &d, r->workspace);
    return AUTOSP_OK;
}

/* (dout, out, lse, q, k, v[, segment_ids]) -> dq, dk, dv */
static autosp_status_t run_attention_backward(const kernel_args_t *r) {
    attention_dims_t d = attention_dims(r->c, 3);
    attention_backward(r->out[0], r->out[1], r->out[2], r->in[0], r->in[3], r->in[4], r->in[5],
                       r->c->n_in == 7 ? I32(r->in[6]) : NULL, r->in[1], CF(r->in[2]), &d,
                       r->workspace);
    return AUTOSP_OK;
}

/* One adapter per op serves both dtypes: the dims say which. */
static const cpu_kernel_reg_t kernels[] = {
    CPU_KERNEL(ATTENTION, F32, run_attention, .workspace = workspace_attention),
    CPU_KERNEL(ATTENTION_BACKWARD, F32, run_attention_backward,
               .workspace = workspace_attention_backward),
    CPU_KERNEL(ATTENTION, BF16, run_attention, .workspace = workspace_attention),
    CPU_KERNEL(ATTENTION_BACKWARD, BF16, run_attention_backward,
               .workspace = workspace_attention_backward),
};
CPU_FAMILY(attention, kernels);
