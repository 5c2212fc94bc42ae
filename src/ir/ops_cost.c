/* ops_cost.c: a node's concrete shapes (cost_ctx_init), and the FLOP counts of the ops whose
 * cost is not "k FLOPs per output element".
 *
 * A multiply-add counts 2 FLOPs. Attention counts its two matmuls only (QK^T and PV), over
 * the (query, key) pairs the mask lets through, as FlashAttention reports it; the softmax on
 * those pairs is a few percent more and is not counted.
 */
#include <string.h>

#include "ir/op_table.h"

/* ---- concrete shapes: what every cost and kernel reads ---------------------------------- */

static autosp_status_t concrete(const autosp_graph_t *g, int node, autosp_tensor_t t, cshape_t *out,
                                autosp_error_t *err) {
    const tensor_t *x = graph_tensor(g, t);
    int r = shape_eval(g, &x->shape, out->d, &out->numel);
    if (r != EVAL_OK) {
        char label[AUTOSP_MAX_NAME + 32];
        node_label(g, node, label, sizeof label - 2);
        strcat(label, ": ");
        return tensor_size_error(g, x, r, label, err);
    }
    out->ndim = x->shape.ndim;
    out->esize = autosp_dtype_size(x->dtype);
    return AUTOSP_OK;
}

autosp_status_t cost_ctx_init(const autosp_graph_t *g, int node, cost_ctx_t *c,
                              autosp_error_t *err) {
    AUTOSP_ASSERT(node >= 0 && node < g->n_nodes);
    const node_t *n = &g->nodes[node];
    *c = (cost_ctx_t){.node = n, .n_in = n->n_in, .n_out = n->n_out};
    for (int i = 0; i < n->n_in; i++) {
        autosp_status_t st = concrete(g, node, n->in[i], &c->in[i], err);
        if (st != AUTOSP_OK) return st;
    }
    for (int i = 0; i < n->n_out; i++) {
        autosp_status_t st = concrete(g, node, n->out[i], &c->out[i], err);
        if (st != AUTOSP_OK) return st;
    }
    return AUTOSP_OK;
}

int64_t cshape_bytes(const cshape_t *s, int n) {
    int64_t bytes = 0;
    for (int i = 0; i < n; i++) bytes += s[i].numel * (int64_t)s[i].esize;
    return bytes;
}

/* ---- FLOPs -------------------------------------------------------------------------------- */

static int64_t last(const cshape_t *s) {
    return s->ndim ? s->d[s->ndim - 1] : 1;
}

/* a (...,M,K) @ b (...,K,N): 2 M N K per batch entry */
double flops_matmul(const cost_ctx_t *c) {
    const cshape_t *a = &c->in[0];
    int64_t k = node_attr_int(c->node, "trans_a") ? a->d[a->ndim - 2] : a->d[a->ndim - 1];
    return 2.0 * (double)c->out[0].numel * (double)k;
}

/* x (...,K) @ w^T (K,N) + b: 2 K per output, plus one add per output with a bias */
double flops_linear(const cost_ctx_t *c) {
    double f = 2.0 * (double)c->out[0].numel * (double)last(&c->in[0]);
    return c->n_in == 3 ? f + (double)c->out[0].numel : f;
}

/* q (B,S,Hq,D), k (B,Skv,Hkv,D): 4 D FLOPs per attended (query, key) pair and query head */
double flops_attention(const cost_ctx_t *c) {
    const cshape_t *q = &c->in[0];
    double b = (double)q->d[0], s = (double)q->d[1], h = (double)q->d[2], d = (double)q->d[3];
    double skv = (double)c->in[1].d[1];
    double pairs = node_attr_int(c->node, "causal") ? s * (s + 1) / 2 : s * skv;
    return 4.0 * b * h * d * pairs;
}

/* A chunk of c rows from global index lo, causal: sum over its rows of (index + 1) keys. */
static double causal_chunk_pairs(double lo, double c) {
    return c * lo + c * (c + 1) / 2;
}

double ring_attention_pairs(int64_t L, int R, int r, bool causal) {
    const double keys = (double)L * R;
    if (!causal) return (double)L * keys;
    if (R <= 1) return causal_chunk_pairs(0, (double)L);
    const double c = (double)(L / 2); /* zigzag: chunks r and 2R - 1 - r */
    return causal_chunk_pairs(r * c, c) + causal_chunk_pairs((2.0 * R - 1 - r) * c, c);
}

/* The busiest ring position's share (zigzag makes them equal) */
double flops_ring_attention(const cost_ctx_t *c) {
    const cshape_t *q = &c->in[0];
    const int R = (int)node_attr_int(c->node, "ranks");
    const bool causal = node_attr_int(c->node, "causal");
    double most = 0;
    for (int r = 0; r < R; r++) {
        double p = ring_attention_pairs(q->d[1], R, r, causal);
        most = p > most ? p : most;
    }
    return 4.0 * (double)q->d[0] * (double)q->d[2] * (double)q->d[3] * most;
}

/* logits (...,V): max, subtract, exp, sum per logit, then one gather and log per row */
double flops_cross_entropy(const cost_ctx_t *c) {
    return 4.0 * (double)c->in[0].numel;
}

/* x (rows, C), weight (V, C): the lm head's product, then the cross-entropy of its logits */
double flops_linear_cross_entropy(const cost_ctx_t *c) {
    double rows = (double)c->in[0].numel / (double)last(&c->in[0]), V = (double)c->in[1].d[0];
    return rows * V * (2.0 * (double)last(&c->in[0]) + 4.0);
}

/* x (rows, C), w_gate (F, C): three products of 2 rows C F, and swiglu's 5 per intermediate;
 * with a norm_weight, rmsnorm's 4 per element of x */
double flops_mlp(const cost_ctx_t *c) {
    double rows = (double)c->in[0].numel / (double)last(&c->in[0]), F = (double)c->in[1].d[0];
    double norm = c->n_in == 5 ? 4.0 * (double)c->in[0].numel : 0.0;
    return rows * F * (6.0 * (double)last(&c->in[0]) + 5.0) + norm;
}

/* two products of rows x C x F, the biases and gelu's 8 per element */
double flops_gelu_mlp(const cost_ctx_t *c) {
    double rows = (double)c->in[0].numel / (double)last(&c->in[0]), F = (double)c->in[1].d[0];
    return rows * (F * (4.0 * (double)last(&c->in[0]) + 9.0) + (double)last(&c->in[0]));
}

/* the norm (rmsnorm 4, layernorm 7 per element of x), then the projection's product and bias */
double flops_norm_linear(const cost_ctx_t *c) { /* also asked for by the backward's node */
    bool layernorm = c->node->op == AUTOSP_OP_LAYERNORM_LINEAR ||
                     c->node->op == AUTOSP_OP_LAYERNORM_LINEAR_BACKWARD;
    int w = layernorm ? 3 : 2;
    double rows = (double)c->in[0].numel / (double)last(&c->in[0]), N = (double)c->in[w].d[0];
    double product = rows * N * (2.0 * (double)last(&c->in[0]) + (c->n_in > w + 1 ? 1.0 : 0.0));
    return product + (layernorm ? 7.0 : 4.0) * (double)c->in[0].numel;
}

int64_t mlp_tile_rows(int64_t rows, int64_t C, int64_t tile) {
    if (tile <= 0) tile = C > MLP_TILE_MIN_ROWS ? C : MLP_TILE_MIN_ROWS; /* ALST: S / C tiles */
    return tile < rows ? tile : rows > 0 ? rows : 1;
}

int64_t loss_chunk_rows(int64_t rows, int64_t C, int64_t V, int64_t chunk) {
    if (chunk <= 0) {
        chunk = V > 0 ? rows * C / V / LOSS_CHUNK_ALIGN * LOSS_CHUNK_ALIGN : rows;
        if (chunk < LOSS_CHUNK_MIN_ROWS) chunk = LOSS_CHUNK_MIN_ROWS;
    }
    return chunk < rows ? chunk : rows > 0 ? rows : 1;
}

double op_flops(autosp_op_t op, const cost_ctx_t *c) {
    const op_info_t *info = &op_table[op];
    return info->flops ? info->flops(c) : info->flops_per_elem * (double)c->out[0].numel;
}

/* A backward op costs a multiple of its forward: 2x (the two products of a matmul's backward
 * for one of the forward, and about the same for elementwise ops), attention 2.5x (five
 * S x S products instead of two, as FlashAttention-2 counts), the chunked lm head and loss and
 * the tiled MLP 3x (each recomputes its forward). */
double flops_backward(const cost_ctx_t *c) {
    const op_info_t *info = &op_table[c->node->op];
    cost_ctx_t f = {.node = c->node, .n_in = c->n_in - info->fwd_first, .n_out = 1};
    for (int i = 0; i < f.n_in; i++) f.in[i] = c->in[info->fwd_first + i];
    f.out[0] = c->in[0];
    double forward = op_flops(info->forward_op, &f);
    if (info->forward_op == AUTOSP_OP_ATTENTION || info->forward_op == AUTOSP_OP_RING_ATTENTION)
        return 2.5 * forward;
    /* the two products of the lm head's backward and the one that recomputes its logits */
    if (info->forward_op == AUTOSP_OP_LINEAR_CROSS_ENTROPY) return 3.0 * forward;
    /* the tiled MLP's backward reruns its forward per tile, then its four products */
    if (info->forward_op == AUTOSP_OP_MLP || info->forward_op == AUTOSP_OP_GELU_MLP)
        return 3.0 * forward;
    return 2.0 * forward;
}

/* one add per element of src */
double flops_index_add(const cost_ctx_t *c) {
    return (double)c->in[2].numel;
}

/* one add per element of the (larger) input */
double flops_sum_to(const cost_ctx_t *c) {
    return (double)c->in[0].numel;
}

static double bytes_in(const cost_ctx_t *c) {
    return (double)cshape_bytes(c->in, c->n_in);
}

static double ranks(const cost_ctx_t *c) {
    return (double)node_attr_int(c->node, "ranks");
}

/* every slice but the one a rank keeps */
double sent_all_to_all(const cost_ctx_t *c) {
    return bytes_in(c) * (ranks(c) - 1) / ranks(c);
}

/* The forward passes K and V on ranks - 1 times; the backward also K and V's f32 gradients,
 * which come home: ranks times. */
double sent_ring_attention(const cost_ctx_t *c) {
    const bool backward = c->node->op == AUTOSP_OP_RING_ATTENTION_BACKWARD;
    const cshape_t *k = &c->in[backward ? 4 : 1];
    const double kv = 2.0 * (double)k->numel * (double)k->esize, R = ranks(c);
    return (R - 1) * kv + (backward ? R * 2.0 * (double)k->numel * sizeof(float) : 0.0);
}

/* a ring: reduce-scatter then all-gather, each moving (P-1)/P of the data */
double sent_all_reduce(const cost_ctx_t *c) {
    return 2 * bytes_in(c) * (ranks(c) - 1) / ranks(c);
}

/* the part every other rank keeps, out of this rank's whole input */
double sent_reduce_scatter(const cost_ctx_t *c) {
    return bytes_in(c) * (ranks(c) - 1) / ranks(c);
}

/* a rank's slice to each of the others */
double sent_all_gather(const cost_ctx_t *c) {
    return bytes_in(c) * (ranks(c) - 1);
}
