/* pad_sequence.c: a sequence that the sequence ranks cannot split evenly, padded.
 *
 * Sequence parallelism needs S to be a multiple of sp (and, with rings, of 2 x ring for the
 * zigzag chunks). Instead of dropping the remainder (DeepSpeed's AutoSP splits S // P tokens),
 * the program is compiled for the next multiple: S's symbol is bound to it, and the graph
 * remembers the real length (autosp_graph_padded_from), so that the trainer's feed puts the
 * caller's S tokens first in each row and fills the rest: token 0, label ignore_index (no
 * target: the loss's count and sum leave it out), position 0, segment id -1. The padding is at
 * the end of the sequence, so a causal attention's real queries never see it; a segment id of
 * -1 hides it from every query. The loss and every gradient are the unpadded ones: no real
 * value reads a padded one, and padded rows get no gradient. */
#include "autosp/analysis.h"
#include "autosp/passes.h"
#include "rewrite.h"

static const char PASS[] = "pad_sequence";

/* The symbol that every sequence-tagged input's seq dim is, or -1 (a constant, a product: left
 * to sp_shard, which needs sp to divide it). */
static int seq_symbol(const autosp_graph_t *g) {
    int sym = -1;
    for (autosp_tensor_t t = 0; t < g->n_tensors; t++) {
        const tensor_t *x = &g->tensors[t];
        if (x->kind != AUTOSP_KIND_INPUT || x->seq_dim < 0) continue;
        dim_t d = x->shape.d[x->seq_dim];
        if (d.nsym != 1 || d.num != 1 || d.den != 1 || (sym >= 0 && d.sym[0] != sym)) return -1;
        sym = d.sym[0];
    }
    return sym;
}

/* Padding must stay invisible: every attention is causal or masked by segment ids. The label
 * pad is the loss's ignore_index. */
static autosp_status_t check_nodes(const autosp_graph_t *g, int32_t *ignore, autosp_error_t *err) {
    *ignore = -100;
    for (autosp_tensor_t t = 0; t < g->n_tensors; t++) {
        const tensor_t *x = &g->tensors[t];
        if (x->kind == AUTOSP_KIND_INPUT && x->seq_dim >= 0 &&
            (x->role == AUTOSP_ROLE_OTHER || x->role == AUTOSP_ROLE_MASK))
            return pass_fail(err, PASS, g, -1,
                             "input \"%s\" is split over the sequence but is not tokens, labels, "
                             "positions or segment ids, so its padding value is unknown",
                             x->name);
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const node_t *n = &g->nodes[i];
        if (n->op == AUTOSP_OP_ATTENTION && !node_attr_int(n, "causal") && n->n_in < 4)
            return pass_fail(err, PASS, g, i,
                             "is not causal and has no segment ids, so padded keys would be "
                             "visible to every query (give it segment_ids, or a length that "
                             "sp divides)");
        if (n->op == AUTOSP_OP_CROSS_ENTROPY || n->op == AUTOSP_OP_LINEAR_CROSS_ENTROPY)
            *ignore = (int32_t)node_attr_int(n, "ignore_index");
    }
    return set_ok(err);
}

autosp_graph_t *autosp_pad_sequence(const autosp_graph_t *g, int64_t multiple,
                                    autosp_error_t *err) {
    autosp_error_t local;
    if (!err) err = &local;
    if (autosp_graph_verify(g, 0, err) != AUTOSP_OK) return NULL;
    if (multiple < 1) {
        pass_fail(err, PASS, g, -1, "multiple = %lld, expected 1 or more", (long long)multiple);
        return NULL;
    }
    const int sym = seq_symbol(g);
    const int64_t S = sym >= 0 ? g->syms[sym].value : 0; /* 0: unbound, nothing to pad */
    int32_t ignore;
    const int64_t padded = S > 0 ? (S + multiple - 1) / multiple * multiple : S;
    if (padded != S && check_nodes(g, &ignore, err) != AUTOSP_OK) return NULL;
    autosp_graph_t *out = autosp_graph_clone(g);
    if (!out) {
        nomem(err);
        return NULL;
    }
    set_ok(err);
    if (padded == S) return out;
    if (autosp_symbol_bind(out, g->syms[sym].name, padded, err) != AUTOSP_OK) {
        autosp_graph_free(out);
        return NULL;
    }
    out->padded_from = S;
    out->pad_label = ignore;
    return out;
}
