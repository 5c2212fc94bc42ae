/* ring_attention.c: attention over a ring of ranks, forward and backward.
 *
 * Each rank of the ring holds L rows of q, k and v, in zigzag order (ring_global_index). The
 * forward computes its queries' attention against one key block at a time: its own, then the
 * block of the rank before it, and so on around the ring; while one block is attended the next
 * is already on its way (the comm's shift). Each block's partial output and log-sum-exp are
 * merged into the running ones:
 *     lse = log(exp(lse_a) + exp(lse_b)),  out = out_a exp(lse_a - lse) + out_b exp(lse_b - lse)
 * so the result is the softmax over every key, as on one device. The backward (with the final
 * out and lse, so each block's probabilities are the global ones) sends K and V around the
 * same way and, one step behind, the sums of dK and dV of each block: a block's gradient
 * collects every rank's share on its way and arrives back at its owner complete. The masks
 * compare the rows' global indices (attention_dims_t.q_pos, kv_pos), so tiles that the causal
 * mask or the segment ids hide are skipped as in attention.c.
 *
 * Every block travels with its send time after it (STAMP bytes), so that a wait can tell the
 * part spent before the sender had even sent (its lateness: imbalance, not transfer) from the
 * transfer's own; kernel_args_t.late_peer_seconds gets the former where the ranks share one
 * clock (one node).
 *
 * bf16 tensors are widened into the workspace first and the outputs rounded once at the end:
 * a bf16 call computes, in f32, the ring attention of its bf16 inputs (the blocks travel in
 * f32). That is the portable path, and the only one so far. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu_ops.h"
#include "base/base.h"
#include "base/bf16.h"
#include "ir/ir.h"
#include "kernels.h"

/* The node's dims: q (B,L,Hq,D), k and v (B,L,Hkv,D), the ring's ranks. */
typedef struct ring {
    attention_dims_t d;
    int R, r;              /* ring size and this rank's position */
    int64_t nq, nkv, nlse; /* elements of q, of k, of lse */
    bool has_seg, bf16;
} ring_t;

static ring_t ring_of(const cost_ctx_t *c, int q, const autosp_comm_t *comm) {
    const cshape_t *Q = &c->in[q], *K = &c->in[q + 1];
    double scale = node_attr_float(c->node, "scale");
    ring_t g = {.d = {.B = Q->d[0],
                      .S = Q->d[1],
                      .Skv = K->d[1],
                      .Hq = Q->d[2],
                      .Hkv = K->d[2],
                      .D = Q->d[3],
                      .causal = node_attr_int(c->node, "causal"),
                      .threads = attention_thread_capacity()},
                .R = (int)node_attr_int(c->node, "ranks"),
                .r = comm ? comm->ring_rank : 0,
                .has_seg = c->n_in == q + 4,
                .bf16 = Q->esize == sizeof(bf16_t)};
    g.d.scale = (float)(scale > 0 ? scale : 1.0 / sqrt((double)g.d.D));
    g.nq = Q->numel, g.nkv = K->numel, g.nlse = g.d.B * g.d.Hq * g.d.S;
    return g;
}

/* ---- the workspace: blocks in flight, one block's results, the masks ---------------------- */

enum { STAMP = 64 }; /* after each travelling block: the sender's clock when it sent (a double) */

typedef struct ring_ws {
    float *kv[2];            /* K then V of a block: the one attended, the one arriving */
    float *dkv[2];           /* backward: a block's dK then dV sums, sent and arriving */
    float *part, *part_lse;  /* forward: one block's output and lse; backward: its dK, dV */
    float *lse;              /* the forward's lse when the node does not output it */
    int32_t *q_pos, *kv_pos; /* (L) global indices */
    int32_t *q_seg, *kv_seg; /* (B,L) segment ids */
    float *wide[8];          /* bf16: each float input widened, then each output in f32 */
    void *attention;         /* attention.c's workspace */
} ring_ws_t;

/* The float tensors of the forward (q, k, v; out) and the backward (dout, out, q, k, v;
 * dq, dk, dv), in elements */
static int wide_sizes(const ring_t *g, bool backward, int64_t *n) {
    if (!backward) return n[0] = g->nq, n[1] = n[2] = g->nkv, n[3] = g->nq, 4;
    n[0] = n[1] = n[2] = g->nq, n[3] = n[4] = g->nkv;
    n[5] = g->nq, n[6] = n[7] = g->nkv;
    return 8;
}

/* Lays the slots out from base (NULL: only counts); returns the bytes. */
static size_t ring_layout(const ring_t *g, bool backward, char *base, ring_ws_t *w) {
    size_t at = 0;
#define SLOT(field, bytes)                                                                         \
    do {                                                                                           \
        if (base) w->field = (void *)(base + at);                                                  \
        at += ((size_t)(bytes) + 63) / 64 * 64;                                                    \
    } while (0)
    const size_t f = sizeof(float), block = 2 * (size_t)g->nkv * f;
    SLOT(kv[0], block + STAMP);
    SLOT(kv[1], block + STAMP);
    if (backward) {
        SLOT(dkv[0], block + STAMP);
        SLOT(dkv[1], block + STAMP);
        SLOT(part, block);
    } else {
        SLOT(part, (size_t)g->nq * f);
        SLOT(part_lse, (size_t)g->nlse * f);
        SLOT(lse, (size_t)g->nlse * f);
    }
    SLOT(q_pos, (size_t)g->d.S * 4);
    SLOT(kv_pos, (size_t)g->d.Skv * 4);
    SLOT(q_seg, (size_t)(g->d.B * g->d.S) * 4);
    SLOT(kv_seg, (size_t)(g->d.B * g->d.Skv) * 4);
    int64_t n[8];
    for (int i = 0, count = wide_sizes(g, backward, n); g->bf16 && i < count; i++)
        SLOT(wide[i], (size_t)n[i] * f);
    SLOT(attention,
         backward ? attention_backward_workspace(&g->d) : attention_forward_workspace(&g->d));
#undef SLOT
    return at;
}

/* The node's dims (its q is input q) and its workspace's slots, once its group is checked. */
static autosp_status_t ring_begin(const kernel_args_t *r, int q, ring_t *g, ring_ws_t *w) {
    comm_group_t group;
    int size;
    autosp_status_t st = cpu_comm_group(r, &group, &size);
    *g = ring_of(r->c, q, r->comm);
    memset(w, 0, sizeof *w);
    ring_layout(g, q > 0, (char *)(((uintptr_t)r->workspace + 63) & ~(uintptr_t)63), w);
    return st;
}

/* Ring position `from`'s global indices and segment ids (all: (B, R L), ring order). */
static void block_masks(const ring_t *g, int from, const int32_t *all, int32_t *pos, int32_t *seg) {
    const int64_t L = g->d.S;
    for (int64_t t = 0; t < L; t++) pos[t] = (int32_t)ring_global_index(t, L, from, g->R);
    for (int64_t b = 0; all && b < g->d.B; b++)
        memcpy(seg + b * L, all + (b * g->R + from) * L, sizeof(int32_t) * (size_t)L);
}

/* Whether any query of this rank may see a key of the block (the causal mask alone). */
static bool block_visible(const ring_t *g, const int32_t *q_pos, const int32_t *kv_pos) {
    if (!g->d.causal) return true;
    int32_t q_last = 0, k_first = INT32_MAX;
    for (int64_t t = 0; t < g->d.S; t++) q_last = q_pos[t] > q_last ? q_pos[t] : q_last;
    for (int64_t t = 0; t < g->d.Skv; t++) k_first = kv_pos[t] < k_first ? kv_pos[t] : k_first;
    return k_first <= q_last;
}

/* out, lse += one block's part, part_lse (see the top); a row the block hides (-inf) is left */
static void merge_block(const ring_t *g, float *out, float *lse, const float *part,
                        const float *part_lse) {
    const int64_t S = g->d.S, Hq = g->d.Hq, D = g->d.D;
    for (int64_t b = 0; b < g->d.B; b++)
        for (int64_t h = 0; h < Hq; h++)
            for (int64_t i = 0; i < S; i++) {
                const int64_t li = (b * Hq + h) * S + i, oi = ((b * S + i) * Hq + h) * D;
                const double lb = part_lse[li], la = lse[li];
                if (lb == -INFINITY) continue;
                const double m = la > lb ? la : lb; /* NaN in lb: m is NaN */
                const double wa = exp(la - m), wb = exp(lb - m), sum = wa + wb;
                for (int64_t t = 0; t < D; t++)
                    out[oi + t] = (float)((out[oi + t] * wa + part[oi + t] * wb) / sum);
                lse[li] = (float)(m + log(sum));
            }
}

enum { TAG_KV, TAG_SUMS };

/* `bytes` of send, and its send time after them, to the next rank of the ring */
static autosp_status_t shift(const kernel_args_t *r, void *send, void *recv, size_t bytes, int tag,
                             comm_request_t *req) {
    const double sent = now_seconds();
    memcpy((char *)send + bytes, &sent, sizeof sent);
    return cpu_comm_named(r, r->comm->ops->shift_start(r->comm, COMM_RING, send, recv,
                                                       bytes + sizeof sent, tag, req, r->err));
}

/* A transfer into recv (`bytes` and the stamp) completed; the time spent waiting for it is the
 * communication the attention did not hide, added to the executor's count, and of it the time
 * before the sender sent is its lateness. */
static autosp_status_t wait(const kernel_args_t *r, comm_request_t *req, const void *recv,
                            size_t bytes) {
    const double start = now_seconds();
    autosp_status_t st = cpu_comm_named(r, r->comm->ops->wait(r->comm, req, r->err));
    const double end = now_seconds();
    if (r->comm_seconds) *r->comm_seconds += end - start;
    if (st != AUTOSP_OK || !r->late_peer_seconds || r->comm->local_size != r->comm->size) return st;
    double sent;
    memcpy(&sent, (const char *)recv + bytes, sizeof sent);
    *r->late_peer_seconds += sent <= start ? 0.0 : (sent < end ? sent : end) - start;
    return st;
}

/* AUTOSP_RING_OVERLAP=0, a measurement switch (bench/run_ring.sh): every transfer completed
 * as soon as it starts, so the waits add up to the ring's whole communication time. */
static bool overlapped(void) {
    const char *v = getenv("AUTOSP_RING_OVERLAP");
    return !v || strcmp(v, "0") != 0;
}

/* A shift started (and, without overlap, completed: *pending false). */
static autosp_status_t start(const kernel_args_t *r, void *send, void *recv, size_t bytes, int tag,
                             comm_request_t *req, bool *pending) {
    autosp_status_t st = shift(r, send, recv, bytes, tag, req);
    *pending = st == AUTOSP_OK;
    if (*pending && !overlapped()) st = wait(r, req, recv, bytes), *pending = false;
    return st;
}

/* attention_dims_t.poll: the transfers in flight move on between the attention's items */
static void poll_comm(void *ctx) {
    const kernel_args_t *r = ctx;
    r->comm->ops->progress(r->comm, NULL);
}

/* The node's float tensors as f32: in place, or (bf16) widened into the workspace; inputs
 * first (n_in of them, r->in[first..]), then the outputs. */
static void f32_views(const kernel_args_t *r, const ring_t *g, const ring_ws_t *w, bool backward,
                      int n_in, float **v) {
    int64_t n[8];
    const int count = wide_sizes(g, backward, n);
    for (int i = 0; i < count; i++) {
        void *t = i < n_in ? r->in[i] : r->out[i - n_in];
        v[i] = g->bf16 ? w->wide[i] : t;
        if (g->bf16 && i < n_in) cpu_widen(v[i], t, n[i]);
    }
}

/* bf16: the f32 outputs rounded into the node's */
static void round_outputs(const kernel_args_t *r, const ring_t *g, bool backward, int n_in,
                          float **v) {
    int64_t n[8];
    const int count = wide_sizes(g, backward, n);
    for (int i = n_in; g->bf16 && i < count; i++) {
        if (r->c->out[i - n_in].esize == sizeof(float))
            memcpy(r->out[i - n_in], v[i], sizeof(float) * (size_t)n[i]);
        else
            cpu_round(r->out[i - n_in], v[i], n[i]);
    }
}

/* This rank's K and V into the first block, its queries' masks into the dims; returns the bytes
 * of a block. */
static size_t ring_start(const kernel_args_t *r, ring_t *g, const ring_ws_t *w, const float *k,
                         const float *v, const int32_t *seg) {
    const size_t half = (size_t)g->nkv * sizeof(float);
    memcpy(w->kv[0], k, half);
    memcpy(w->kv[0] + g->nkv, v, half);
    block_masks(g, g->r, seg, w->q_pos, w->q_seg);
    g->d.q_pos = w->q_pos, g->d.kv_pos = w->kv_pos, g->d.kv_segment_ids = seg ? w->kv_seg : NULL;
    g->d.poll = poll_comm;
    g->d.poll_ctx = (void *)r;
    return 2 * half;
}

/* ---- forward ------------------------------------------------------------------------------ */

static int64_t workspace_ring_attention(const cost_ctx_t *c) {
    const ring_t g = ring_of(c, 0, NULL);
    return (int64_t)ring_layout(&g, false, NULL, NULL) + 64;
}

/* out, lse of q against every block of the ring */
static autosp_status_t ring_forward(const kernel_args_t *r, ring_t *g, const ring_ws_t *w,
                                    float *const *v, const int32_t *seg, float *lse) {
    const float *q = v[0];
    float *out = v[3];
    const size_t block = ring_start(r, g, w, v[1], v[2], seg);
    memset(out, 0, sizeof(float) * (size_t)g->nq);
    for (int64_t i = 0; i < g->nlse; i++) lse[i] = -INFINITY;
    autosp_status_t st = AUTOSP_OK;
    for (int s = 0, cur = 0; s < g->R && st == AUTOSP_OK; s++, cur ^= 1) {
        comm_request_t req;
        bool pending = false;
        if (s + 1 < g->R &&
            (st = start(r, w->kv[cur], w->kv[cur ^ 1], block, TAG_KV, &req, &pending)) != AUTOSP_OK)
            break;
        block_masks(g, (g->r - s + g->R) % g->R, seg, w->kv_pos, w->kv_seg);
        if (block_visible(g, w->q_pos, w->kv_pos)) {
            attention_forward(w->part, w->part_lse, q, w->kv[cur], w->kv[cur] + g->nkv,
                              seg ? w->q_seg : NULL, &g->d, w->attention);
            merge_block(g, out, lse, w->part, w->part_lse);
        }
        if (pending) st = wait(r, &req, w->kv[cur ^ 1], block);
    }
    return st;
}

/* (q, k, v[, segment_ids]) -> out[, lse] */
static autosp_status_t run_ring_attention(const kernel_args_t *r) {
    ring_t g;
    ring_ws_t w;
    autosp_status_t st = ring_begin(r, 0, &g, &w);
    if (st != AUTOSP_OK) return st;
    float *v[8];
    f32_views(r, &g, &w, false, 3, v);
    float *lse = r->c->n_out == 2 ? F(r->out[1]) : w.lse;
    st = ring_forward(r, &g, &w, v, g.has_seg ? I32(r->in[3]) : NULL, lse);
    if (st == AUTOSP_OK) round_outputs(r, &g, false, 3, v);
    return st;
}

/* ---- backward ----------------------------------------------------------------------------- */

static int64_t workspace_ring_attention_backward(const cost_ctx_t *c) {
    const ring_t g = ring_of(c, 3, NULL);
    return (int64_t)ring_layout(&g, true, NULL, NULL) + 64;
}

/* dq, dk, dv (v[5..7]) of dout, out, q, k, v (v[0..4]) and lse */
static autosp_status_t ring_backward(const kernel_args_t *r, ring_t *g, const ring_ws_t *w,
                                     float *const *v, const int32_t *seg, const float *lse) {
    const size_t block = ring_start(r, g, w, v[3], v[4], seg);
    const int64_t n = 2 * g->nkv;
    memset(v[5], 0, sizeof(float) * (size_t)g->nq);
    g->d.accumulate = true; /* dq sums over the blocks; a block's dK, dV start at 0 */
    comm_request_t sums;    /* the dK, dV sums in flight, one step behind K and V */
    bool sums_pending = false;
    int a = 0; /* w->dkv[a]: the sums of the block attended now */
    autosp_status_t st = AUTOSP_OK;
    for (int s = 0, cur = 0; s < g->R && st == AUTOSP_OK; s++, cur ^= 1) {
        comm_request_t req;
        bool pending = false;
        if (s + 1 < g->R &&
            (st = start(r, w->kv[cur], w->kv[cur ^ 1], block, TAG_KV, &req, &pending)) != AUTOSP_OK)
            break;
        block_masks(g, (g->r - s + g->R) % g->R, seg, w->kv_pos, w->kv_seg);
        memset(w->part, 0, block);
        if (block_visible(g, w->q_pos, w->kv_pos))
            attention_backward(v[5], w->part, w->part + g->nkv, v[0], v[2], w->kv[cur],
                               w->kv[cur] + g->nkv, seg ? w->q_seg : NULL, v[1], lse, &g->d,
                               w->attention);
        if (s == 0) {
            memcpy(w->dkv[a], w->part, block);
        } else if (!sums_pending || (st = wait(r, &sums, w->dkv[a], block)) == AUTOSP_OK) {
            for (int64_t i = 0; i < n; i++) w->dkv[a][i] += w->part[i];
        }
        if (st == AUTOSP_OK)
            st = start(r, w->dkv[a], w->dkv[a ^ 1], block, TAG_SUMS, &sums, &sums_pending);
        a ^= 1;
        if (pending && st == AUTOSP_OK) st = wait(r, &req, w->kv[cur ^ 1], block);
    }
    if (st == AUTOSP_OK && sums_pending) /* this rank's own block, summed */
        st = wait(r, &sums, w->dkv[a], block);
    if (st == AUTOSP_OK) {
        memcpy(v[6], w->dkv[a], block / 2);
        memcpy(v[7], w->dkv[a] + g->nkv, block / 2);
    }
    return st;
}

/* (dout, out, lse, q, k, v[, segment_ids]) -> dq, dk, dv */
static autosp_status_t run_ring_attention_backward(const kernel_args_t *r) {
    ring_t g;
    ring_ws_t w;
    autosp_status_t st = ring_begin(r, 3, &g, &w);
    if (st != AUTOSP_OK) return st;
    /* the float inputs in order: dout, out, then (past lse) q, k, v */
    const kernel_args_t skip = {.in = {r->in[0], r->in[1], r->in[3], r->in[4], r->in[5]},
                                .out = {r->out[0], r->out[1], r->out[2]}};
    float *v[8];
    f32_views(&skip, &g, &w, true, 5, v);
    st = ring_backward(r, &g, &w, v, g.has_seg ? I32(r->in[6]) : NULL, CF(r->in[2]));
    if (st == AUTOSP_OK) round_outputs(r, &g, true, 5, v);
    return st;
}

static const cpu_kernel_reg_t kernels[] = {
    CPU_KERNEL(RING_ATTENTION, F32, run_ring_attention, .workspace = workspace_ring_attention),
    CPU_KERNEL(RING_ATTENTION_BACKWARD, F32, run_ring_attention_backward,
               .workspace = workspace_ring_attention_backward),
    CPU_KERNEL(RING_ATTENTION, BF16, run_ring_attention, .workspace = workspace_ring_attention),
    CPU_KERNEL(RING_ATTENTION_BACKWARD, BF16, run_ring_attention_backward,
               .workspace = workspace_ring_attention_backward),
};
CPU_FAMILY(ring_attention, kernels);
