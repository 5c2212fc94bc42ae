/* sp_shard.c: the per-rank program's layouts. Inputs tagged with a seq_dim are split over the
 * sp ranks of a sequence group (their seq dim becomes S/sp); the split is followed node by node
 * with each op's sharding rule (passes/sharding_rules.c), which may also rewrite the node (a
 * reshape's target shape). Nodes whose inputs are all whole run whole on every rank. */
#include <string.h>

#include "autosp/analysis.h"
#include "autosp/passes.h"
#include "rewrite.h"

static const char PASS[] = "sp_shard";

/* The seq dim of every tagged input becomes S / sp. */
static autosp_status_t split_inputs(rewrite_t *rw, int sp) {
    autosp_graph_t *g = rw->dst;
    int split = 0;
    for (autosp_tensor_t t = 0; t < g->n_tensors; t++) {
        tensor_t *x = &g->tensors[t];
        if (x->kind != AUTOSP_KIND_INPUT || x->seq_dim < 0) continue;
        dim_t *d = &x->shape.d[x->seq_dim];
        int64_t v;
        char text[64];
        if (dim_eval(g, *d, &v) == EVAL_OK && v % sp != 0)
            return pass_fail(rw->err, PASS, g, -1,
                             "input \"%s\": the sequence dim %d is %s = %lld, not divisible by "
                             "sp = %d (pad the sequence with ignored labels to a multiple of sp)",
                             x->name, x->seq_dim, dim_str(g, *d, text, sizeof text), (long long)v,
                             sp);
        if (!dim_scale(*d, 1, sp, d))
            return pass_fail(rw->err, PASS, g, -1, "input \"%s\": dim too large", x->name);
        x->layout = LAYOUT_SEQ;
        x->layout_dim = (int8_t)x->seq_dim;
        split++;
    }
    if (split) return AUTOSP_OK;
    return pass_fail(rw->err, PASS, g, -1,
                     "no input has a seq_dim, so nothing is split over the sequence (tag the "
                     "token, label and position inputs with \"seq_dim\")");
}

/* Node i through its op's sharding rule (when an input is split), then copied. */
static autosp_status_t shard_node(rewrite_t *rw, int i, int sp) {
    const node_t *n = &rw->src->nodes[i];
    const op_info_t *info = &op_table[n->op];
    shard_ctx_t c = {.src = rw->src,
                     .dst = rw->dst,
                     .node = n,
                     .n_in = n->n_in,
                     .n_out = n->n_out,
                     .ranks = sp,
                     .err = rw->err};
    int split = -1;
    for (int k = 0; k < n->n_in; k++) {
        c.src_in[k] = &rw->src->tensors[n->in[k]];
        c.in[k] = &rw->dst->tensors[rw->map[n->in[k]]];
        if (c.in[k]->layout == LAYOUT_SEQ && split < 0) split = k;
    }
    attr_value_t attrs[8];
    shape_t shapes[8];
    AUTOSP_ASSERT(info->n_attrs <= 8);
    for (int a = 0; a < info->n_attrs; a++) {
        attrs[a] = n->attrs[a];
        if (attrs[a].shape) attrs[a].shape = memcpy(&shapes[a], n->attrs[a].shape, sizeof(shape_t));
    }
    c.attrs = attrs;
    if (split >= 0) {
        if (!info->shard)
            return pass_fail(rw->err, PASS, rw->src, i,
                             "input \"%s\" (tensor \"%s\") is split over the sequence, and the "
                             "op has no sharding rule",
                             info->input_names[split], c.in[split]->name);
        autosp_status_t st = info->shard(&c);
        if (st != AUTOSP_OK) return st;
    }
    autosp_status_t st = rewrite_node(rw, i, attrs);
    for (int k = 0; st == AUTOSP_OK && k < n->n_out; k++)
        rewrite_layout(rw, rw->map[n->out[k]], split >= 0 ? c.out_layout[k] : LAYOUT_FULL,
                       split >= 0 ? c.out_dim[k] : -1);
    return st;
}

autosp_graph_t *autosp_sp_shard(const autosp_graph_t *g, int sp, autosp_error_t *err) {
    autosp_error_t local;
    if (!err) err = &local;
    if (autosp_graph_verify(g, 0, err) != AUTOSP_OK) return NULL;
    if (sp < 1 || sp > 1 << 20) {
        pass_fail(err, PASS, g, -1, "sp = %d, expected 1 or more", sp);
        return NULL;
    }
    if (g->sp > 1 || g->dp > 1) {
        pass_fail(err, PASS, g, -1,
                  "graph \"%s\" is already a per-rank program (sp = %d, dp = %d); give the "
                  "single-device graph",
                  g->name, autosp_graph_sp(g), autosp_graph_dp(g));
        return NULL;
    }
    for (int i = 0; i < g->n_nodes; i++)
        if (op_table[g->nodes[i].op].collective || op_table[g->nodes[i].op].is_backward) {
            pass_fail(err, PASS, g, i,
                      "sp_shard takes a forward graph, without collectives or backward ops "
                      "(parallelize first, then autodiff)");
            return NULL;
        }
    rewrite_t rw;
    autosp_status_t st = rewrite_begin(&rw, g, err);
    if (st == AUTOSP_OK) {
        rw.dst->sp = sp;
        if (sp > 1) st = split_inputs(&rw, sp);
    }
    for (int i = 0; st == AUTOSP_OK && i < g->n_nodes; i++)
        st = sp > 1 ? shard_node(&rw, i, sp) : rewrite_node(&rw, i, NULL);
    return rewrite_finish(&rw, st);
}
