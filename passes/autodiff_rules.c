/* autodiff_rules.c: the backward rule of each op, referenced from its op-table entry.
 * A rule reads the forward node and the gradients of its outputs, emits gradient nodes and
 * gives each differentiable input its gradient (grad_give sums several contributions). */
#include <string.h>

#include "autodiff.h"

static autosp_op_t backward_op_of(autosp_op_t op) {
    for (int i = 0; i < AUTOSP_OP_COUNT; i++)
        if (op_table[i].is_backward && op_table[i].forward_op == op) return (autosp_op_t)i;
    AUTOSP_ASSERT(!"grad_with_backward_op on an op without a backward op");
    return op;
}

/* Inputs (dout, extras = the forward's own outputs, forward inputs); gives output i to input
 * grad_of[i] - fwd_first. `fwd_inputs` may replace the forward inputs (softmax reads y). */
static autosp_status_t emit_backward_op(grad_ctx_t *c, const autosp_tensor_t *fwd_inputs) {
    autosp_op_t op = backward_op_of(c->node.op);
    const op_info_t *info = &op_table[op];
    int first = info->fwd_first;
    while (c->node.n_out < first - 1) { /* e.g. attention's lse, read by its backward */
        char name[AUTOSP_MAX_NAME + 8];
        snprintf(name, sizeof name, "%s%s", c->node.name,
                 op_table[c->node.op].output_suffix[c->node.n_out]);
        autosp_status_t st = node_add_output(c->g, c->node_index, name, c->err);
        if (st != AUTOSP_OK) return st;
        c->node = c->g->nodes[c->node_index];
    }
    autosp_tensor_t in[AUTOSP_MAX_NODE_INPUTS], out[AUTOSP_MAX_NODE_OUTPUTS];
    in[0] = c->dout[0];
    for (int j = 1; j < first; j++) in[j] = c->node.out[j - 1];
    for (int k = 0; k < c->node.n_in; k++) in[first + k] = fwd_inputs[k];
    int n_in = first + c->node.n_in, n_out = 0;
    while (n_out < info->max_outputs && info->grad_of[n_out] < n_in) n_out++;
    autosp_status_t st = grad_emit(c, op, "grad", in, n_in, n_out, NULL, out);
    for (int i = 0; st == AUTOSP_OK && i < n_out; i++)
        st = grad_give(c, info->grad_of[i] - first, out[i]);
    return st;
}

autosp_status_t grad_with_backward_op(grad_ctx_t *c) {
    return emit_backward_op(c, c->node.in);
}

/* An embedding whose table already has a gradient (a tied lm head's, whose node comes later
 * in the forward) adds its rows into it: index_add, which the memory plan runs in place, in
 * place of a zeroed V x C scatter plus an add of two V x C tables (GPT-2 124M: 0.6 GB less
 * memory traffic a step). */
autosp_status_t grad_embedding(grad_ctx_t *c) {
    autosp_tensor_t base;
    autosp_status_t st = grad_take(c, 1, &base);
    if (st != AUTOSP_OK) return st;
    if (base == AUTOSP_NO_TENSOR) return grad_with_backward_op(c);
    autosp_tensor_t in[3] = {base, c->node.in[0], c->dout[0]}, out;
    st = grad_emit(c, AUTOSP_OP_INDEX_ADD, "grad", in, 3, 1, NULL, &out);
    return st == AUTOSP_OK ? grad_give(c, 1, out) : st;
}

/* softmax's backward reads its output y in place of its input x */
autosp_status_t grad_softmax(grad_ctx_t *c) {
    return emit_backward_op(c, c->node.out);
}

/* The gradient of a broadcast operand b of an op whose output has a's shape: summed down. */
static autosp_status_t give_broadcast(grad_ctx_t *c, int k, autosp_tensor_t grad,
                                      const char *suffix) {
    const tensor_t *a = graph_tensor(c->g, c->node.in[0]), *b = graph_tensor(c->g, c->node.in[k]);
    if (shape_match(c->g, &a->shape, &b->shape)) return grad_give(c, k, grad);
    autosp_tensor_t in[2] = {grad, c->node.in[k]}, out;
    autosp_status_t st = grad_emit(c, AUTOSP_OP_SUM_TO, suffix, in, 2, 1, NULL, &out);
    return st == AUTOSP_OK ? grad_give(c, k, out) : st;
}

/* y = a + b: da = dy, db = dy summed to b's shape */
autosp_status_t grad_add(grad_ctx_t *c) {
    autosp_status_t st = grad_give(c, 0, c->dout[0]);
    if (st != AUTOSP_OK || !c->needs[1]) return st;
    return give_broadcast(c, 1, c->dout[0], "grad_b");
}

/* y = a * b: da = dy * b, db = (dy * a) summed to b's shape */
autosp_status_t grad_mul(grad_ctx_t *c) {
    autosp_tensor_t t;
    autosp_status_t st = AUTOSP_OK;
    if (c->needs[0]) {
        autosp_tensor_t in[2] = {c->dout[0], c->node.in[1]};
        if ((st = grad_emit(c, AUTOSP_OP_MUL, "grad_a", in, 2, 1, NULL, &t)) ||
            (st = grad_give(c, 0, t)))
            return st;
    }
    if (c->needs[1]) {
        autosp_tensor_t in[2] = {c->dout[0], c->node.in[0]};
        if ((st = grad_emit(c, AUTOSP_OP_MUL, "grad_b_full", in, 2, 1, NULL, &t))) return st;
        st = give_broadcast(c, 1, t, "grad_b");
    }
    return st;
}

/* y = alpha x: dx = alpha dy (same attributes) */
autosp_status_t grad_scale(grad_ctx_t *c) {
    autosp_tensor_t t;
    autosp_status_t st = grad_emit(c, AUTOSP_OP_SCALE, "grad", c->dout, 1, 1, NULL, &t);
    return st == AUTOSP_OK ? grad_give(c, 0, t) : st;
}

/* dx = dy cast back to x's gradient dtype (a parameter's: f32, then dy itself when it is f32) */
autosp_status_t grad_cast(grad_ctx_t *c) {
    autosp_dtype_t to = grad_dtype_of(c->g, graph_tensor(c->g, c->node.in[0]));
    if (graph_tensor(c->g, c->dout[0])->dtype == to) return grad_give(c, 0, c->dout[0]);
    attr_value_t v = {.s = autosp_dtype_name(to)};
    autosp_tensor_t t;
    autosp_status_t st = grad_emit(c, AUTOSP_OP_CAST, "grad", c->dout, 1, 1, &v, &t);
    return st == AUTOSP_OK ? grad_give(c, 0, t) : st;
}

/* a rotation's adjoint is the opposite rotation (the same frequencies) */
autosp_status_t grad_rope(grad_ctx_t *c) {
    attr_value_t v[8];
    AUTOSP_ASSERT(op_table[AUTOSP_OP_ROPE].n_attrs <= 8);
    for (int i = 0; i < op_table[AUTOSP_OP_ROPE].n_attrs; i++) v[i] = c->node.attrs[i];
    v[op_attr_index(AUTOSP_OP_ROPE, "inverse")].i = !node_attr_int(&c->node, "inverse");
    autosp_tensor_t in[2] = {c->dout[0], c->node.in[1]}, t;
    autosp_status_t st = grad_emit(c, AUTOSP_OP_ROPE, "grad", in, 2, 1, v, &t);
    return st == AUTOSP_OK ? grad_give(c, 0, t) : st;
}

/* dx = dy reshaped back to x's shape */
autosp_status_t grad_reshape(grad_ctx_t *c) {
    attr_value_t v = {.shape = &graph_tensor(c->g, c->node.in[0])->shape};
    shape_t copy = *v.shape; /* the tensor array may move while the node is added */
    v.shape = &copy;
    autosp_tensor_t t;
    autosp_status_t st = grad_emit(c, AUTOSP_OP_RESHAPE, "grad", c->dout, 1, 1, &v, &t);
    return st == AUTOSP_OK ? grad_give(c, 0, t) : st;
}

/* dx = dy transposed by the inverse permutation */
autosp_status_t grad_transpose(grad_ctx_t *c) {
    const attr_value_t *perm = node_attr(&c->node, "perm");
    int64_t inverse[AUTOSP_MAX_DIMS];
    for (int i = 0; i < perm->n_ints; i++) inverse[perm->ints[i]] = i;
    attr_value_t v = {.ints = inverse, .n_ints = perm->n_ints};
    autosp_tensor_t t;
    autosp_status_t st = grad_emit(c, AUTOSP_OP_TRANSPOSE, "grad", c->dout, 1, 1, &v, &t);
    return st == AUTOSP_OK ? grad_give(c, 0, t) : st;
}

/* all_to_all moves data between ranks without changing it: its adjoint is the inverse
 * exchange (split and concat dims swapped), fused over the same tensors. */
autosp_status_t grad_all_to_all(grad_ctx_t *c) {
    autosp_tensor_t in[AUTOSP_MAX_NODE_OUTPUTS], out[AUTOSP_MAX_NODE_OUTPUTS];
    int of[AUTOSP_MAX_NODE_OUTPUTS], n = 0;
    for (int k = 0; k < c->node.n_out; k++)
        if (c->dout[k] != AUTOSP_NO_TENSOR && c->needs[k]) {
            in[n] = c->dout[k];
            of[n++] = k;
        }
    if (n == 0) return AUTOSP_OK;
    attr_value_t v[4];
    memcpy(v, c->node.attrs, sizeof v);
    v[op_attr_index(AUTOSP_OP_ALL_TO_ALL, "split_dim")] = *node_attr(&c->node, "concat_dim");
    v[op_attr_index(AUTOSP_OP_ALL_TO_ALL, "concat_dim")] = *node_attr(&c->node, "split_dim");
    autosp_status_t st = grad_emit(c, AUTOSP_OP_ALL_TO_ALL, "grad", in, n, n, v, out);
    for (int i = 0; st == AUTOSP_OK && i < n; i++) st = grad_give(c, of[i], out[i]);
    return st;
}

/* The SPMD convention: a replicated value's gradient is held whole on every rank (every rank
 * seeds d loss / d loss = 1). y = sum over ranks of x_r then gives dx_r = dy: no
 * communication; for the mean, dy / ranks. */
autosp_status_t grad_all_reduce(grad_ctx_t *c) {
    bool mean = strcmp(node_attr_str(&c->node, "op"), "mean") == 0;
    for (int k = 0; k < c->node.n_out; k++) {
        if (c->dout[k] == AUTOSP_NO_TENSOR || !c->needs[k]) continue;
        autosp_tensor_t t = c->dout[k];
        if (mean) {
            char suffix[32];
            snprintf(suffix, sizeof suffix, "grad%d", k);
            attr_value_t alpha = {.f = 1.0 / (double)node_attr_int(&c->node, "ranks")};
            autosp_status_t st =
                grad_emit(c, AUTOSP_OP_SCALE, suffix, &c->dout[k], 1, 1, &alpha, &t);
            if (st != AUTOSP_OK) return st;
        }
        autosp_status_t st = grad_give(c, k, t);
        if (st != AUTOSP_OK) return st;
    }
    return AUTOSP_OK;
}

/* Each rank's term of the whole parameter's gradient, summed over the world into the shard's:
 * the reduce_scatter whose output layout is unshard's input. */
autosp_status_t grad_unshard(grad_ctx_t *c) {
    attr_value_t v[2];
    v[op_attr_index(AUTOSP_OP_REDUCE_SCATTER, "ranks")] = *node_attr(&c->node, "ranks");
    v[op_attr_index(AUTOSP_OP_REDUCE_SCATTER, "group")] = *node_attr(&c->node, "group");
    autosp_tensor_t t;
    autosp_status_t st = grad_emit(c, AUTOSP_OP_REDUCE_SCATTER, "grad", c->dout, 1, 1, v, &t);
    return st == AUTOSP_OK ? grad_give(c, 0, t) : st;
}
