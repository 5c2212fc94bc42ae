/* exact_loss.c: the single-device loss, exactly, on every rank.
 *
 * The single-device loss is the mean over every non-ignored target of the whole batch. Ranks
 * hold different slices (of the sequence, and of the batch under data parallelism) with
 * different numbers of ignored targets, so a mean of per-rank means is wrong. Instead:
 *
 *     count = all_reduce_sum(target_count(labels))          the global number of targets
 *     part  = cross_entropy(logits, labels, count)          this rank's sum / global count
 *             (or linear_cross_entropy(x, weight, labels, count), the chunked lm head)
 *     loss  = all_reduce_sum(part)                          the exact mean, on every rank
 *
 * Labels arrive already shifted (labels[i] is the token after tokens[i], shifted over the
 * whole sequence before it is split), so the last token of a slice predicts the first token
 * of the next slice. The backward needs no communication: each rank's logits gradient is
 * (softmax - onehot) / count, its share of the single-device gradient. */
#include <string.h>

#include "autosp/analysis.h"
#include "autosp/passes.h"
#include "rewrite.h"

static const char PASS[] = "exact_loss";

static autosp_status_t sum_over_world(rewrite_t *rw, const char *name, autosp_tensor_t x, int world,
                                      autosp_tensor_t *out) {
    attr_set_t a;
    attrs_default(AUTOSP_OP_ALL_REDUCE, &a);
    attrs_int(AUTOSP_OP_ALL_REDUCE, &a, "ranks", world);
    attrs_str(AUTOSP_OP_ALL_REDUCE, &a, "group", "world");
    autosp_status_t st = rewrite_emit(rw, AUTOSP_OP_ALL_REDUCE, name, &x, 1, NULL, 1, a.v, out);
    if (st == AUTOSP_OK) rewrite_layout(rw, *out, LAYOUT_FULL, -1);
    return st;
}

static autosp_status_t rewrite_loss(rewrite_t *rw, int i, int world) {
    const node_t *n = &rw->src->nodes[i];
    const char *loss = rw->src->tensors[n->out[0]].name;
    char local[AUTOSP_MAX_NAME + 32], count[AUTOSP_MAX_NAME + 32], part[AUTOSP_MAX_NAME + 32];
    snprintf(local, sizeof local, "%s.targets_local", loss);
    snprintf(count, sizeof count, "%s.targets", loss);
    snprintf(part, sizeof part, "%s.local", loss);
    /* (logits, labels) or (x, weight, labels): the labels last, the normalizer appended */
    autosp_tensor_t in[AUTOSP_MAX_NODE_INPUTS], c;
    for (int k = 0; k < n->n_in; k++) in[k] = rw->map[n->in[k]];
    attr_set_t count_attrs;
    attrs_default(AUTOSP_OP_TARGET_COUNT, &count_attrs);
    attrs_int(AUTOSP_OP_TARGET_COUNT, &count_attrs, "ignore_index",
              node_attr_int(n, "ignore_index"));
    autosp_status_t st = rewrite_emit(rw, AUTOSP_OP_TARGET_COUNT, local, &in[n->n_in - 1], 1, NULL,
                                      1, count_attrs.v, &c);
    if (st == AUTOSP_OK) rewrite_layout(rw, c, LAYOUT_PARTIAL, -1);
    if (st == AUTOSP_OK) st = sum_over_world(rw, count, c, world, &in[n->n_in]);
    autosp_tensor_t p, l;
    if (st == AUTOSP_OK) st = rewrite_emit(rw, n->op, part, in, n->n_in + 1, NULL, 1, n->attrs, &p);
    if (st == AUTOSP_OK) rewrite_layout(rw, p, LAYOUT_PARTIAL, -1);
    if (st == AUTOSP_OK) st = sum_over_world(rw, loss, p, world, &l);
    if (st == AUTOSP_OK) rw->map[n->out[0]] = l;
    return st;
}

autosp_graph_t *autosp_exact_loss(const autosp_graph_t *g, int dp, autosp_error_t *err) {
    autosp_error_t local;
    if (!err) err = &local;
    if (autosp_graph_verify(g, 0, err) != AUTOSP_OK) return NULL;
    if (dp < 1 || dp > 1 << 20) {
        pass_fail(err, PASS, g, -1, "dp = %d, expected 1 or more", dp);
        return NULL;
    }
    int world = autosp_graph_sp(g) * dp;
    rewrite_t rw;
    autosp_status_t st = rewrite_begin(&rw, g, err);
    if (st == AUTOSP_OK) rw.dst->dp = dp;
    for (int i = 0; st == AUTOSP_OK && i < g->n_nodes; i++) {
        const node_t *n = &g->nodes[i];
        bool loss = n->op == AUTOSP_OP_CROSS_ENTROPY || n->op == AUTOSP_OP_LINEAR_CROSS_ENTROPY;
        if (loss && n->n_in == op_table[n->op].max_inputs && world > 1)
            st = pass_fail(err, PASS, g, i, "already has a normalizer: exact_loss runs once");
        else if (loss && world > 1)
            st = rewrite_loss(&rw, i, world);
        else
            st = rewrite_node(&rw, i, NULL);
    }
    return rewrite_finish(&rw, st);
}
