/* verify.c: the IR verifier, run after loading and after every pass.
 *
 * The builder already refuses bad nodes; the verifier re-derives every invariant from the data
 * so that a pass which edits a graph directly is caught at the pass, not three passes later.
 */
#include <stdarg.h>
#include <string.h>

#include "ir/op_table.h"

static autosp_status_t check_tensor(const autosp_graph_t *g, int t, autosp_error_t *err) {
    const tensor_t *x = &g->tensors[t];
    if (!name_ok(x->name, err, "tensor")) return err->status;
    if (autosp_tensor_find(g, x->name) != t)
        return set_error(err, AUTOSP_ERR_INVALID, "tensor \"%s\" is defined twice", x->name);
    if ((unsigned)x->dtype >= AUTOSP_DTYPE_COUNT || x->shape.ndim < 0 ||
        x->shape.ndim > AUTOSP_MAX_DIMS)
        return set_error(err, AUTOSP_ERR_INTERNAL, "tensor \"%s\": corrupt dtype or rank", x->name);
    bool leaf = x->kind != AUTOSP_KIND_VALUE;
    if (leaf != (x->producer < 0))
        return set_error(err, AUTOSP_ERR_INVALID,
                         leaf ? "%s \"%s\" is also produced by a node"
                              : "value \"%s%s\" is not produced by any node",
                         leaf ? (x->kind == AUTOSP_KIND_PARAM ? "param" : "input") : "", x->name);
    return AUTOSP_OK;
}

/* A message about node i: its label, then fmt. The label is formatted only here, on failure:
 * formatting it for every node of every verify was an eighth of a compile. */
__attribute__((format(printf, 4, 5))) static autosp_status_t
node_error(const autosp_graph_t *g, int i, autosp_error_t *err, const char *fmt, ...) {
    char label[AUTOSP_MAX_NAME + 32], msg[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return set_error(err, AUTOSP_ERR_INVALID, "%s%s", node_label(g, i, label, sizeof label), msg);
}

static autosp_status_t check_node(const autosp_graph_t *g, int i, autosp_error_t *err) {
    const node_t *n = &g->nodes[i];
    char a[256], b[256];
    if ((unsigned)n->op >= AUTOSP_OP_COUNT)
        return set_error(err, AUTOSP_ERR_INVALID, "node \"%s\": unknown op %d", n->name,
                         (int)n->op);
    const op_info_t *info = &op_table[n->op];
    if (node_find(g, n->name) != i) return node_error(g, i, err, " is defined twice");
    if (n->n_in < info->min_inputs || n->n_in > info->max_inputs || n->n_out < info->min_outputs ||
        n->n_out > info->max_outputs)
        return node_error(g, i, err,
                          " has %d inputs and %d outputs, expected "
                          "%d..%d and %d..%d",
                          n->n_in, n->n_out, info->min_inputs, info->max_inputs, info->min_outputs,
                          info->max_outputs);
    for (int k = 0; k < n->n_in; k++) {
        autosp_tensor_t t = n->in[k];
        if (t < 0 || t >= g->n_tensors)
            return node_error(g, i, err, ": input \"%s\" is not a tensor", info->input_names[k]);
        if (g->tensors[t].producer >= i)
            return node_error(g, i, err,
                              ": input \"%s\" (tensor \"%s\") is produced later, by node "
                              "\"%s\": the nodes are not in topological order (or form a cycle)",
                              info->input_names[k], g->tensors[t].name,
                              g->nodes[g->tensors[t].producer].name);
    }
    shape_t shapes[AUTOSP_MAX_NODE_OUTPUTS];
    autosp_dtype_t dtypes[AUTOSP_MAX_NODE_OUTPUTS];
    autosp_status_t st = op_infer(g, n, shapes, dtypes, err);
    if (st != AUTOSP_OK) return st;
    for (int k = 0; k < n->n_out; k++) {
        autosp_tensor_t t = n->out[k];
        if (t < 0 || t >= g->n_tensors || g->tensors[t].producer != i)
            return node_error(g, i, err, ": output %d is not its own tensor", k);
        const tensor_t *x = &g->tensors[t];
        if (x->dtype != dtypes[k])
            return node_error(g, i, err, ": output \"%s\" has dtype %s, expected %s", x->name,
                              autosp_dtype_name(x->dtype), autosp_dtype_name(dtypes[k]));
        if (!shape_match(g, &x->shape, &shapes[k]))
            return node_error(g, i, err, ": output \"%s\" has shape [%s], expected [%s]", x->name,
                              shape_str(g, &x->shape, a, sizeof a),
                              shape_str(g, &shapes[k], b, sizeof b));
    }
    return AUTOSP_OK;
}

static autosp_status_t check_symbols(const autosp_graph_t *g, unsigned flags, autosp_error_t *err) {
    if (flags & AUTOSP_VERIFY_BOUND)
        for (int s = 0; s < g->n_syms; s++)
            if (!g->syms[s].value)
                return set_error(err, AUTOSP_ERR_INVALID,
                                 "symbol \"%s\" is unbound (bind it, e.g. --set %s=N)",
                                 g->syms[s].name, g->syms[s].name);
    for (int t = 0; t < g->n_tensors; t++) {
        int r = shape_eval(g, &g->tensors[t].shape, NULL, NULL);
        if (r < EVAL_UNBOUND) return tensor_size_error(g, &g->tensors[t], r, "", err);
    }
    return AUTOSP_OK;
}

autosp_status_t graph_verify_made(autosp_graph_t *g, autosp_error_t *err) {
    autosp_status_t st = autosp_graph_verify(g, 0, err);
    g->verified = st == AUTOSP_OK;
    return st;
}

autosp_status_t autosp_graph_verify(const autosp_graph_t *g, unsigned flags, autosp_error_t *err) {
    autosp_error_t local;
    if (!err) err = &local;
    if (g->error.status != AUTOSP_OK) {
        if (err) *err = g->error;
        return g->error.status;
    }
    autosp_status_t st = check_symbols(g, flags, err);
    if (st == AUTOSP_OK && g->verified) return set_ok(err);
    for (int t = 0; st == AUTOSP_OK && t < g->n_tensors; t++) {
        st = check_tensor(g, t, err);
        if (st == AUTOSP_OK && g->tensors[t].kind == AUTOSP_KIND_INPUT)
            st = input_check(g, &g->tensors[t], err);
    }
    for (int i = 0; st == AUTOSP_OK && i < g->n_nodes; i++) st = check_node(g, i, err);
    if (st != AUTOSP_OK) return st;
    if (g->n_outputs == 0)
        return set_error(err, AUTOSP_ERR_INVALID, "graph \"%s\" has no outputs", g->name);
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] < 0 || g->outputs[i] >= g->n_tensors)
            return set_error(err, AUTOSP_ERR_INVALID, "graph output %d is not a tensor", i);
    return set_ok(err);
}
