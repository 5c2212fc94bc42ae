/* tiled_mlp.c: Llama's MLP fused, so its F-wide intermediates never exist whole.
 *
 *     gate = linear(x, w_gate), up = linear(x, w_up)   (rows, F)
 *     y    = linear(swiglu(gate, up), w_down)           (rows, C)
 * becomes
 *     y    = mlp(x, w_gate, w_up, w_down) {tile}
 *
 * when gate, up and the swiglu output feed nothing else (not outputs, one reader each) and no
 * linear has a bias. The fused op computes the same values and gradients over tiles of rows
 * (ALST's tiled MLP): one tile's gate, up and swiglu at a time in the forward, and again in
 * the backward, which recomputes them, instead of three rows x F values (F = 3.5 C for Llama
 * 3) saved or recomputed whole. Other graphs pass through unchanged. */
#include "autosp/passes.h"
#include "base/base.h"
#include "rewrite.h"

static const char PASS[] = "tiled_mlp";

/* The bias-free linear producing t, read by one node only, or -1. */
static int private_linear(const autosp_graph_t *g, autosp_tensor_t t, const int *readers) {
    int p = g->tensors[t].producer;
    if (p < 0 || g->nodes[p].op != AUTOSP_OP_LINEAR || g->nodes[p].n_in != 2) return -1;
    return readers[t] == 1 ? p : -1;
}

/* For the down projection i of a fusable MLP: its swiglu, gate and up nodes (3); else 0. */
static int fusable_mlp(const autosp_graph_t *g, int i, const int *readers, int *parts) {
    const node_t *n = &g->nodes[i];
    if (n->op != AUTOSP_OP_LINEAR || n->n_in != 2) return 0;
    int act = g->tensors[n->in[0]].producer;
    if (act < 0 || g->nodes[act].op != AUTOSP_OP_SWIGLU || readers[n->in[0]] != 1) return 0;
    int gate = private_linear(g, g->nodes[act].in[0], readers),
        up = private_linear(g, g->nodes[act].in[1], readers);
    if (gate < 0 || up < 0 || gate == up || g->nodes[gate].in[0] != g->nodes[up].in[0]) return 0;
    parts[0] = act, parts[1] = gate, parts[2] = up;
    return 3;
}

static autosp_status_t emit_fused(rewrite_t *rw, int i, const int *parts, int64_t tile) {
    const node_t *down = &rw->src->nodes[i], *gate = &rw->src->nodes[parts[1]],
                 *up = &rw->src->nodes[parts[2]];
    autosp_tensor_t in[4] = {rw->map[gate->in[0]], rw->map[gate->in[1]], rw->map[up->in[1]],
                             rw->map[down->in[1]]},
                    out;
    attr_set_t a;
    attrs_default(AUTOSP_OP_MLP, &a);
    attrs_int(AUTOSP_OP_MLP, &a, "tile", tile);
    const tensor_t *y = &rw->src->tensors[down->out[0]];
    autosp_status_t st = rewrite_emit(rw, AUTOSP_OP_MLP, down->name, in, 4, &y->name, 1, a.v, &out);
    if (st != AUTOSP_OK) return st;
    rw->map[down->out[0]] = out;
    rewrite_layout(rw, out, y->layout, y->layout_dim);
    return AUTOSP_OK;
}

autosp_graph_t *autosp_tiled_mlp(const autosp_graph_t *g, int64_t tile, autosp_error_t *err) {
    return rewrite_fuse(g, PASS, "tile", tile, fusable_mlp, emit_fused, err);
}
