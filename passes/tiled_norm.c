/* tiled_norm.c: a norm fused into the projections that read it, so the normalised rows never
 * exist whole.
 *
 *     h = rmsnorm(x, g)          q = linear(h, wq), k = linear(h, wk), v = linear(h, wv)
 * becomes
 *     q = rmsnorm_linear(x, g, wq) {tile}, k = rmsnorm_linear(x, g, wk) {tile}, ...
 *
 * (layernorm likewise, with its bias, into layernorm_linear; the projections may have biases)
 * when every reader of h reads it as a linear's x and h is not a graph output. Each fused
 * node normalises its own tiles, so the norm runs once per projection (4 to 7 FLOPs per element
 * against a projection's 2 N) and its backward once per projection too: the dx of each is a
 * term of x's gradient, as the three linears' dh were terms of h's. In exchange h, rows x C,
 * is neither saved nor recomputed whole, and a layer's attention inputs are one tensor fewer at
 * the step's peak (the last layer's attention backward, docs/checkpointing.md). An rmsnorm that
 * only a tiled MLP reads goes into it the same way: mlp(x, w_gate, w_up, w_down, g) {tile, eps}
 * normalises each tile before its products. Other graphs pass through unchanged. */
#include "autosp/passes.h"
#include "base/base.h"
#include "rewrite.h"

static const char PASS[] = "tiled_norm";

/* At the planner's tile (tile 0) rmsnorm alone: GPT-2's layernorms fused lowered the longest S
 * (GPT-2 124M, sp 4, 1 GiB, full: 17,408 apart, 12,288 fused). The activation peak fell (485.7
 * against 493.8 MiB at 17,408) but first fit placed the blocks worse (arena 870 against 785). */
static bool is_norm(autosp_op_t op, int64_t tile) {
    return op == AUTOSP_OP_RMSNORM || (op == AUTOSP_OP_LAYERNORM && tile > 0);
}

/* Whether node n, reading a norm of op `norm` at input k, can take the norm in: a linear's x,
 * or an mlp's (unnormed yet, and only rmsnorm: the mlp kernel has no layernorm). */
static bool fusable_reader(autosp_op_t norm, const node_t *n, int k) {
    if (k != 0) return false;
    return n->op == AUTOSP_OP_LINEAR ||
           (n->op == AUTOSP_OP_MLP && n->n_in == 4 && norm == AUTOSP_OP_RMSNORM);
}

/* Node p is a norm whose output every reader can take in, and nothing else reads. */
static bool norm_feeds_projections(const autosp_graph_t *g, int p, const int *readers) {
    autosp_tensor_t h = g->nodes[p].out[0];
    int projections = 0;
    for (int i = p + 1; i < g->n_nodes; i++) {
        const node_t *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++) {
            if (n->in[k] != h) continue;
            if (!fusable_reader(g->nodes[p].op, n, k)) return false;
            projections++;
        }
    }
    return projections > 0 && projections == readers[h];
}

/* For a linear or an mlp whose x is such a norm's output: the norm node (1 part). */
static int fusable_projection(const autosp_graph_t *g, int i, const int *readers, int *parts,
                              int64_t tile) {
    const node_t *n = &g->nodes[i];
    if (n->op != AUTOSP_OP_LINEAR && n->op != AUTOSP_OP_MLP) return 0;
    int p = g->tensors[n->in[0]].producer;
    if (p < 0 || !is_norm(g->nodes[p].op, tile) || !norm_feeds_projections(g, p, readers)) return 0;
    parts[0] = p;
    return 1;
}

static int fusable_any_norm(const autosp_graph_t *g, int i, const int *readers, int *parts) {
    return fusable_projection(g, i, readers, parts, 1);
}

static int fusable_rmsnorm(const autosp_graph_t *g, int i, const int *readers, int *parts) {
    return fusable_projection(g, i, readers, parts, 0);
}

/* mlp(x, w_gate, w_up, w_down, norm_weight) {its tile, the norm's eps} */
static autosp_status_t emit_normed_mlp(rewrite_t *rw, int i, const node_t *norm) {
    const node_t *mlp = &rw->src->nodes[i];
    autosp_tensor_t in[5] = {rw->map[norm->in[0]], rw->map[mlp->in[1]], rw->map[mlp->in[2]],
                             rw->map[mlp->in[3]], rw->map[norm->in[1]]};
    attr_set_t a;
    attrs_default(AUTOSP_OP_MLP, &a);
    attrs_int(AUTOSP_OP_MLP, &a, "tile", node_attr_int(mlp, "tile"));
    attrs_float(AUTOSP_OP_MLP, &a, "eps", node_attr_float(norm, "eps"));
    return rewrite_replace(rw, i, AUTOSP_OP_MLP, in, 5, a.v);
}

static autosp_status_t emit_fused(rewrite_t *rw, int i, const int *parts, int64_t tile) {
    const node_t *linear = &rw->src->nodes[i], *norm = &rw->src->nodes[parts[0]];
    if (linear->op == AUTOSP_OP_MLP) return emit_normed_mlp(rw, i, norm);
    bool layernorm = norm->op == AUTOSP_OP_LAYERNORM;
    autosp_op_t op = layernorm ? AUTOSP_OP_LAYERNORM_LINEAR : AUTOSP_OP_RMSNORM_LINEAR;
    autosp_tensor_t in[5];
    int n_in = 0;
    for (int k = 0; k < norm->n_in; k++) in[n_in++] = rw->map[norm->in[k]];
    for (int k = 1; k < linear->n_in; k++) in[n_in++] = rw->map[linear->in[k]];
    attr_set_t a;
    attrs_default(op, &a);
    attrs_int(op, &a, "tile", tile);
    attrs_float(op, &a, "eps", node_attr_float(norm, "eps"));
    return rewrite_replace(rw, i, op, in, n_in, a.v);
}

autosp_graph_t *autosp_tiled_norm(const autosp_graph_t *g, int64_t tile, autosp_error_t *err) {
    return rewrite_fuse(g, PASS, "tile", tile, tile > 0 ? fusable_any_norm : fusable_rmsnorm,
                        emit_fused, err);
}
