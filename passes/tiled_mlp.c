/* tiled_mlp.c: Llama's and GPT-2's MLPs fused, so their F-wide intermediates never exist whole.
 *
 *     gate = linear(x, w_gate), up = linear(x, w_up)   (rows, F)
 *     y    = linear(swiglu(gate, up), w_down)           (rows, C)
 * becomes
 *     y    = mlp(x, w_gate, w_up, w_down) {tile}
 *
 * when gate, up and the swiglu output feed nothing else (not outputs, one reader each) and no
 * linear has a bias; and GPT-2's
 *     y    = linear(gelu(linear(x, w_fc, b_fc)), w_proj, b_proj)
 * becomes
 *     y    = gelu_mlp(x, w_fc, b_fc, w_proj, b_proj) {tile}
 * when both linears have a bias and the fc and gelu outputs have one reader each. The fused op
 * computes the same values and gradients over tiles of rows (ALST's tiled MLP): one tile's gate, up
 * and swiglu at a time in the forward, and again in the backward, which recomputes them, instead of
 * three rows x F values (F = 3.5 C for Llama 3) saved or recomputed whole. Other graphs pass
 * through unchanged. */
#include "autosp/passes.h"
#include "base/base.h"
#include "rewrite.h"

static const char PASS[] = "tiled_mlp";

/* The linear producing t, read by one node only, with a bias (2 inputs + 1) or without (2), or
 * -1. */
static int private_linear(const autosp_graph_t *g, autosp_tensor_t t, const int *readers,
                          int n_in) {
    int p = g->tensors[t].producer;
    if (p < 0 || g->nodes[p].op != AUTOSP_OP_LINEAR || g->nodes[p].n_in != n_in) return -1;
    return readers[t] == 1 ? p : -1;
}

/* For the last projection i of a fusable MLP: Llama's swiglu, gate and up nodes (3), or
 * GPT-2's gelu and fc nodes (2); else 0. */
static int fusable_mlp(const autosp_graph_t *g, int i, const int *readers, int *parts) {
    const node_t *n = &g->nodes[i];
    if (n->op != AUTOSP_OP_LINEAR) return 0;
    int act = g->tensors[n->in[0]].producer;
    if (act < 0 || readers[n->in[0]] != 1) return 0;
    parts[0] = act;
    if (g->nodes[act].op == AUTOSP_OP_GELU && n->n_in == 3) {
        parts[1] = private_linear(g, g->nodes[act].in[0], readers, 3);
        return parts[1] < 0 ? 0 : 2;
    }
    if (g->nodes[act].op != AUTOSP_OP_SWIGLU || n->n_in != 2) return 0;
    int gate = private_linear(g, g->nodes[act].in[0], readers, 2),
        up = private_linear(g, g->nodes[act].in[1], readers, 2);
    if (gate < 0 || up < 0 || gate == up || g->nodes[gate].in[0] != g->nodes[up].in[0]) return 0;
    parts[1] = gate, parts[2] = up;
    return 3;
}

static autosp_status_t emit_fused(rewrite_t *rw, int i, const int *parts, int64_t tile) {
    const node_t *down = &rw->src->nodes[i], *first = &rw->src->nodes[parts[1]];
    bool gelu = rw->src->nodes[parts[0]].op == AUTOSP_OP_GELU;
    autosp_op_t op = gelu ? AUTOSP_OP_GELU_MLP : AUTOSP_OP_MLP;
    autosp_tensor_t in[5] = {rw->map[first->in[0]], rw->map[first->in[1]]};
    if (gelu) { /* x, w_fc, b_fc, w_proj, b_proj */
        in[2] = rw->map[first->in[2]], in[3] = rw->map[down->in[1]], in[4] = rw->map[down->in[2]];
    } else { /* x, w_gate, w_up, w_down */
        in[2] = rw->map[rw->src->nodes[parts[2]].in[1]], in[3] = rw->map[down->in[1]];
    }
    attr_set_t a;
    attrs_default(op, &a);
    attrs_int(op, &a, "tile", tile);
    return rewrite_replace(rw, i, op, in, gelu ? 5 : 4, a.v);
}

/* Llama's alone: at the planner's tile GPT-2's tiled MLP lowered the longest S (GPT-2 124M,
 * sp 4, 1 GiB, full: 17,408 untiled, 9,216 tiled): its F-wide values are not at the step's
 * peak, and first fit placed the tiles' blocks worse (arena 12% larger at the same peak). */
static int fusable_swiglu_mlp(const autosp_graph_t *g, int i, const int *readers, int *parts) {
    return fusable_mlp(g, i, readers, parts) == 3 ? 3 : 0;
}

autosp_graph_t *autosp_tiled_mlp(const autosp_graph_t *g, int64_t tile, autosp_error_t *err) {
    return rewrite_fuse(g, PASS, "tile", tile, tile > 0 ? fusable_mlp : fusable_swiglu_mlp,
                        emit_fused, err);
}
