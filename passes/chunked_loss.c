/* chunked_loss.c: the lm head and its cross-entropy fused, so the logits never exist whole.
 *
 *     logits = linear(x, weight)                 (rows, V)
 *     loss   = cross_entropy(logits, labels[, n])
 * becomes
 *     loss   = linear_cross_entropy(x, weight, labels[, n]) {chunk}
 *
 * when the logits feed nothing but the loss (not an output, no other reader) and the linear
 * has no bias. The fused op computes the same loss and gradients over chunks of rows (Liger's
 * fused linear cross-entropy, Cut Cross-Entropy): at most one chunk's logits at a time in
 * the forward and again in the backward, which recomputes them, instead of rows x V logits
 * and their gradient saved between the two (at Llama 3's V = 128,256 about half of what a
 * long-context step saves). Other graphs pass through unchanged. */
#include <string.h>

#include "autosp/passes.h"
#include "base/base.h"
#include "rewrite.h"

static const char PASS[] = "chunked_loss";

/* For cross-entropy node i: the linear node whose logits only it reads (1); else 0. */
static int fusable_head(const autosp_graph_t *g, int i, const int *readers, int *parts) {
    const node_t *n = &g->nodes[i];
    if (n->op != AUTOSP_OP_CROSS_ENTROPY) return 0;
    int head = g->tensors[n->in[0]].producer;
    if (head < 0 || g->nodes[head].op != AUTOSP_OP_LINEAR || g->nodes[head].n_in != 2) return 0;
    parts[0] = head;
    return readers[n->in[0]] == 1;
}

static autosp_status_t emit_fused(rewrite_t *rw, int i, const int *parts, int64_t chunk) {
    const node_t *n = &rw->src->nodes[i], *h = &rw->src->nodes[parts[0]];
    autosp_tensor_t in[4] = {rw->map[h->in[0]], rw->map[h->in[1]]};
    for (int k = 1; k < n->n_in; k++) in[1 + k] = rw->map[n->in[k]];
    attr_set_t a;
    attrs_default(AUTOSP_OP_LINEAR_CROSS_ENTROPY, &a);
    attrs_int(AUTOSP_OP_LINEAR_CROSS_ENTROPY, &a, "ignore_index", node_attr_int(n, "ignore_index"));
    attrs_int(AUTOSP_OP_LINEAR_CROSS_ENTROPY, &a, "chunk", chunk);
    return rewrite_replace(rw, i, AUTOSP_OP_LINEAR_CROSS_ENTROPY, in, n->n_in + 1, a.v);
}

autosp_graph_t *autosp_chunked_loss(const autosp_graph_t *g, int64_t chunk, autosp_error_t *err) {
    return rewrite_fuse(g, PASS, "chunk", chunk, fusable_head, emit_fused, err);
}
