/* sharding_rules.c: the sharding rule of each op, referenced from its op-table entry.
 *
 * A rule runs when at least one input of a forward node is split over the sequence group
 * (LAYOUT_SEQ on some dim). It checks that the op computes each output row from the same rows
 * of its inputs along that dim (so every rank can run it on its slice alone), and writes the
 * outputs' layouts. When that is not so it fails, naming the node and the input: sp_shard
 * never guesses. */
#include <stdarg.h>
#include <string.h>

#include "rewrite.h"

/* The split dim of input k, or -1 when the input is whole. */
static int split_dim(const shard_ctx_t *c, int k) {
    return c->in[k]->layout == LAYOUT_SEQ ? c->in[k]->layout_dim : -1;
}

static autosp_status_t shard_fail(shard_ctx_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static autosp_status_t shard_fail(shard_ctx_t *c, const char *fmt, ...) {
    char msg[AUTOSP_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return set_error(c->err, AUTOSP_ERR_INVALID, "sp_shard: node \"%s\" (%s): %s", c->node->name,
                     op_table[c->node->op].name, msg);
}

static const char *in_name(const shard_ctx_t *c, int k) {
    return op_table[c->node->op].input_names[k];
}

static autosp_status_t outputs_at(shard_ctx_t *c, int layout, int dim) {
    for (int k = 0; k < c->n_out; k++) {
        c->out_layout[k] = (int8_t)layout;
        c->out_dim[k] = (int8_t)dim;
    }
    return AUTOSP_OK;
}

/* Input k must be whole (a weight, a bias, a normalizer). */
static autosp_status_t need_whole(shard_ctx_t *c, int k) {
    if (split_dim(c, k) < 0) return AUTOSP_OK;
    return shard_fail(c,
                      "input \"%s\" (tensor \"%s\") is split over the sequence, but the op "
                      "needs it whole on every rank",
                      in_name(c, k), c->in[k]->name);
}

/* Inputs from `first` on must be whole. */
static autosp_status_t rest_whole(shard_ctx_t *c, int first) {
    autosp_status_t st = AUTOSP_OK;
    for (int k = first; k < c->n_in && st == AUTOSP_OK; k++) st = need_whole(c, k);
    return st;
}

static int out_ndim(const shard_ctx_t *c) {
    return c->src->tensors[c->node->out[0]].shape.ndim;
}

/* Elementwise with numpy broadcasting: split inputs agree on the (right-aligned) output dim;
 * a whole input must not span that dim (size 1 or absent), or it would pair every rank's
 * rows with the first rows of the whole. */
autosp_status_t shard_same(shard_ctx_t *c) {
    int nd = out_ndim(c), dim = -1, from = -1;
    for (int k = 0; k < c->n_in; k++) {
        int d = split_dim(c, k);
        if (d < 0) continue;
        int aligned = d + nd - c->in[k]->shape.ndim;
        if (dim >= 0 && aligned != dim)
            return shard_fail(c, "inputs \"%s\" and \"%s\" are split on different dims (%d, %d)",
                              in_name(c, from), in_name(c, k), dim, aligned);
        dim = aligned;
        from = k;
    }
    for (int k = 0; k < c->n_in; k++) {
        const shape_t *s = &c->src_in[k]->shape;
        int a = dim - (nd - s->ndim);
        int64_t one;
        if (split_dim(c, k) >= 0 || a < 0 || (dim_is_const(s->d[a], &one) && one == 1)) continue;
        return shard_fail(c,
                          "input \"%s\" (tensor \"%s\") is whole but spans the sequence dim %d "
                          "of input \"%s\"; it would have to be split the same way",
                          in_name(c, k), c->in[k]->name, dim, in_name(c, from));
    }
    return outputs_at(c, LAYOUT_SEQ, dim);
}

/* Row-wise ops (norms, linear, softmax over the last dim): the first input split on any dim
 * but the last, which the op reduces over; the others (weights) whole. */
autosp_status_t shard_rows(shard_ctx_t *c) {
    int d = split_dim(c, 0);
    if (d < 0 || d == c->in[0]->shape.ndim - 1)
        return shard_fail(c,
                          "input \"%s\" must be split on a dim other than its last (the op "
                          "reduces over the last dim), found %s",
                          in_name(c, 0), d < 0 ? "it whole" : "the last dim split");
    autosp_status_t st = rest_whole(c, 1);
    return st != AUTOSP_OK ? st : outputs_at(c, LAYOUT_SEQ, d);
}

/* ids split on any dim: the rows they pick are split the same way. */
autosp_status_t shard_embedding(shard_ctx_t *c) {
    int d = split_dim(c, 0);
    if (d < 0) return rest_whole(c, 0);
    autosp_status_t st = rest_whole(c, 1);
    return st != AUTOSP_OK ? st : outputs_at(c, LAYOUT_SEQ, d);
}

/* a split on a batch dim, or on its rows when a is not transposed (never the contracted dim);
 * b whole. */
autosp_status_t shard_matmul(shard_ctx_t *c) {
    int d = split_dim(c, 0), nd = c->in[0]->shape.ndim;
    bool trans_a = node_attr_int(c->node, "trans_a");
    int contracted = trans_a ? nd - 2 : nd - 1;
    if (d < 0 || d == contracted || (trans_a && d == nd - 1))
        return shard_fail(c,
                          "input \"a\" must be split on a batch dim or its rows (dims 0..%d), "
                          "found %s; a split contracted dim would need a reduction",
                          nd - 3 + (trans_a ? 0 : 1), d < 0 ? "it whole" : "another dim");
    autosp_status_t st = rest_whole(c, 1);
    return st != AUTOSP_OK ? st : outputs_at(c, LAYOUT_SEQ, d + out_ndim(c) - nd);
}

/* x and its positions split on the same dim: each rank rotates its tokens by their global
 * positions (the positions input holds them). */
autosp_status_t shard_rope(shard_ctx_t *c) {
    int d = split_dim(c, 0);
    if (d < 0 || split_dim(c, 1) != d)
        return shard_fail(c,
                          "inputs \"x\" and \"positions\" must be split on the same dim, found "
                          "dims %d and %d (-1: whole)",
                          d, split_dim(c, 1));
    return outputs_at(c, LAYOUT_SEQ, d);
}

/* Here only the layout: q, k, v and segment ids split on the sequence dim (1). The ulysses
 * pass then exchanges them so each rank sees every token for its share of the heads. */
autosp_status_t shard_attention(shard_ctx_t *c) {
    for (int k = 0; k < c->n_in; k++)
        if (split_dim(c, k) != 1)
            return shard_fail(c,
                              "input \"%s\" (tensor \"%s\") must be split on the sequence dim "
                              "1, like every input of attention, found %s",
                              in_name(c, k), c->in[k]->name,
                              split_dim(c, k) < 0 ? "it whole" : "another dim");
    return outputs_at(c, LAYOUT_SEQ, 1);
}

/* The split dim must survive the reshape as one dim, with the same dims before it (by
 * product): then each rank's slice is a slice of the new shape too. */
autosp_status_t shard_reshape(shard_ctx_t *c) {
    const shape_t *x = &c->src_in[0]->shape;
    int d = split_dim(c, 0);
    shape_t *target = c->attrs[op_attr_index(AUTOSP_OP_RESHAPE, "shape")].shape;
    dim_t before = dim_const(1), acc = dim_const(1);
    for (int k = 0; k < d; k++)
        if (!dim_mul(before, x->d[k], &before)) return shard_fail(c, "dims too large");
    for (int e = 0; e < target->ndim; e++) {
        if (dim_match(c->src, acc, before) && dim_match(c->src, target->d[e], x->d[d])) {
            if (!dim_scale(target->d[e], 1, c->ranks, &target->d[e]))
                return shard_fail(c, "dims too large");
            return outputs_at(c, LAYOUT_SEQ, e);
        }
        if (!dim_mul(acc, target->d[e], &acc)) return shard_fail(c, "dims too large");
    }
    char a[64], s[256];
    return shard_fail(c,
                      "the sequence dim %d (%s) of input \"x\" does not survive the reshape to "
                      "[%s] as one dim; a reshape may not merge or split the sequence dim",
                      d, dim_str(c->src, x->d[d], a, sizeof a),
                      shape_str(c->src, target, s, sizeof s));
}

autosp_status_t shard_transpose(shard_ctx_t *c) {
    const attr_value_t *perm = node_attr(c->node, "perm");
    int d = split_dim(c, 0);
    for (int j = 0; j < perm->n_ints; j++)
        if (perm->ints[j] == d) return outputs_at(c, LAYOUT_SEQ, j);
    AUTOSP_ASSERT(!"perm is a permutation (checked by the shape rule)");
    return AUTOSP_ERR_INTERNAL;
}

/* The loss over rows: the logits (or, for the fused lm head, x) and the labels split alike on a
 * dim but the last; the lm head's weight and the normalizer whole. Each rank's loss is a
 * partial term, made exact (a token-count-weighted sum over ranks) by the exact_loss pass. */
autosp_status_t shard_cross_entropy(shard_ctx_t *c) {
    int labels = 1;
    while (labels < c->n_in - 1 && strcmp(in_name(c, labels), "labels") != 0) labels++;
    AUTOSP_ASSERT(!strcmp(in_name(c, labels), "labels")); /* both ops' input lists name it */
    int d = split_dim(c, 0);
    if (d < 0 || d == c->in[0]->shape.ndim - 1 || split_dim(c, labels) != d)
        return shard_fail(c,
                          "inputs \"%s\" and \"labels\" must be split on the same dim, not "
                          "the last; found dims %d and %d (-1: whole)",
                          in_name(c, 0), d, split_dim(c, labels));
    autosp_status_t st = AUTOSP_OK;
    for (int k = 1; k < c->n_in && st == AUTOSP_OK; k++)
        if (k != labels) st = need_whole(c, k);
    return st != AUTOSP_OK ? st : outputs_at(c, LAYOUT_PARTIAL, -1);
}

autosp_status_t shard_target_count(shard_ctx_t *c) {
    return outputs_at(c, LAYOUT_PARTIAL, -1);
}
