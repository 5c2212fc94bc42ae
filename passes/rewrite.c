/* rewrite.c: the copy-and-edit walk the SP passes share (see rewrite.h). */
#include <stdarg.h>
#include <string.h>

#include "autosp/analysis.h"
#include "rewrite.h"

autosp_status_t rewrite_begin(rewrite_t *rw, const autosp_graph_t *src, autosp_error_t *err) {
    *rw = (rewrite_t){.src = src, .err = err};
    rw->dst = autosp_graph_new(src->name);
    rw->map = mem_calloc((size_t)src->n_tensors + 1, sizeof *rw->map);
    if (!rw->dst || !rw->map) return nomem(err);
    autosp_graph_t *g = rw->dst;
    g->sp = src->sp;
    g->dp = src->dp;
    g->ring = src->ring;
    g->padded_from = src->padded_from;
    g->pad_label = src->pad_label;
    g->checkpointed = src->checkpointed;
    g->ac = src->ac;
    for (int i = 0; i < src->n_syms; i++)
        if (autosp_symbol(g, src->syms[i].name, src->syms[i].value) != AUTOSP_OK)
            return autosp_graph_status(g, err);
    for (autosp_tensor_t t = 0; t < src->n_tensors; t++) {
        const tensor_t *x = &src->tensors[t];
        rw->map[t] = AUTOSP_NO_TENSOR;
        if (x->kind == AUTOSP_KIND_VALUE) continue;
        autosp_tensor_t c = graph_add_tensor(g, x->name, x->kind, x->dtype, &x->shape, err);
        if (c == AUTOSP_NO_TENSOR) return err->status;
        const char *name = g->tensors[c].name;
        g->tensors[c] = *x;
        g->tensors[c].name = name;
        rw->map[t] = c;
    }
    return AUTOSP_OK;
}

autosp_status_t rewrite_emit(rewrite_t *rw, autosp_op_t op, const char *name,
                             const autosp_tensor_t *in, int n_in, const char *const *out_names,
                             int n_out, const attr_value_t *attrs, autosp_tensor_t *out) {
    const char *one[1] = {name};
    attr_set_t defaults;
    if (!attrs) {
        attrs_default(op, &defaults);
        attrs = defaults.v;
    }
    return node_add_values(rw->dst, op, name, in, n_in, out_names ? out_names : one, n_out, attrs,
                           out, rw->err);
}

autosp_status_t rewrite_replace(rewrite_t *rw, int replaced, autosp_op_t op,
                                const autosp_tensor_t *in, int n_in, const attr_value_t *attrs) {
    const node_t *n = &rw->src->nodes[replaced];
    const tensor_t *y = &rw->src->tensors[n->out[0]];
    autosp_tensor_t out;
    autosp_status_t st = rewrite_emit(rw, op, n->name, in, n_in, &y->name, 1, attrs, &out);
    if (st != AUTOSP_OK) return st;
    rw->map[n->out[0]] = out;
    rewrite_layout(rw, out, y->layout, y->layout_dim);
    return AUTOSP_OK;
}

autosp_status_t rewrite_node(rewrite_t *rw, int i, const attr_value_t *attrs) {
    const node_t *n = &rw->src->nodes[i];
    autosp_tensor_t in[AUTOSP_MAX_NODE_INPUTS], out[AUTOSP_MAX_NODE_OUTPUTS];
    const char *names[AUTOSP_MAX_NODE_OUTPUTS];
    for (int k = 0; k < n->n_in; k++) in[k] = rw->map[n->in[k]];
    for (int k = 0; k < n->n_out; k++) names[k] = rw->src->tensors[n->out[k]].name;
    autosp_status_t st = rewrite_emit(rw, n->op, n->name, in, n->n_in, names, n->n_out,
                                      attrs ? attrs : n->attrs, out);
    for (int k = 0; st == AUTOSP_OK && k < n->n_out; k++) {
        const tensor_t *x = &rw->src->tensors[n->out[k]];
        rw->map[n->out[k]] = out[k];
        rewrite_layout(rw, out[k], x->layout, x->layout_dim);
    }
    return st;
}

void rewrite_layout(rewrite_t *rw, autosp_tensor_t t, int layout, int dim) {
    tensor_t *x = graph_tensor(rw->dst, t);
    x->layout = (int8_t)layout;
    x->layout_dim = (int8_t)dim;
}

autosp_graph_t *rewrite_finish(rewrite_t *rw, autosp_status_t st) {
    for (int i = 0; st == AUTOSP_OK && i < rw->src->n_outputs; i++)
        st = autosp_output(rw->dst, rw->map[rw->src->outputs[i]]);
    if (st == AUTOSP_OK) st = autosp_graph_status(rw->dst, rw->err);
    if (st == AUTOSP_OK) st = graph_verify_made(rw->dst, rw->err);
    mem_free(rw->map);
    if (st != AUTOSP_OK) {
        autosp_graph_free(rw->dst);
        return NULL;
    }
    return rw->dst;
}

void attrs_default(autosp_op_t op, attr_set_t *a) {
    const op_info_t *info = &op_table[op];
    AUTOSP_ASSERT(info->n_attrs <= (int)ARRAY_LEN(a->v));
    memset(a, 0, sizeof *a);
    for (int i = 0; i < info->n_attrs; i++) {
        a->v[i].i = info->attrs[i].def_i;
        a->v[i].f = info->attrs[i].def_f;
        a->v[i].s = info->attrs[i].def_s;
    }
}

void attrs_int(autosp_op_t op, attr_set_t *a, const char *name, int64_t value) {
    a->v[op_attr_index(op, name)].i = value;
}

void attrs_float(autosp_op_t op, attr_set_t *a, const char *name, double value) {
    a->v[op_attr_index(op, name)].f = value;
}

void attrs_str(autosp_op_t op, attr_set_t *a, const char *name, const char *value) {
    a->v[op_attr_index(op, name)].s = value;
}

autosp_status_t pass_fail(autosp_error_t *err, const char *pass, const autosp_graph_t *g, int node,
                          const char *fmt, ...) {
    char msg[AUTOSP_ERROR_MESSAGE_MAX], label[AUTOSP_MAX_NAME + 32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (node < 0) return set_error(err, AUTOSP_ERR_INVALID, "%s: %s", pass, msg);
    return set_error(err, AUTOSP_ERR_INVALID, "%s: %s: %s", pass,
                     node_label(g, node, label, sizeof label), msg);
}

/* readers[t]: the nodes that read tensor t, plus one if t is a graph output */
static int *count_readers(const autosp_graph_t *g) {
    int *readers = mem_calloc((size_t)g->n_tensors + 1, sizeof *readers);
    if (!readers) return NULL;
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++) readers[g->nodes[i].in[k]]++;
    for (int o = 0; o < g->n_outputs; o++) readers[g->outputs[o]]++;
    return readers;
}

autosp_graph_t *rewrite_fuse(const autosp_graph_t *g, const char *pass, const char *what,
                             int64_t size, fuse_match_fn match, fuse_emit_fn emit,
                             autosp_error_t *err) {
    autosp_error_t local;
    if (!err) err = &local;
    if (autosp_graph_verify(g, 0, err) != AUTOSP_OK) return NULL;
    if (size < 0) {
        pass_fail(err, pass, g, -1, "%s = %lld rows, expected 0 (planned) or more", what,
                  (long long)size);
        return NULL;
    }
    int *readers = count_readers(g), parts[4];
    bool *absorbed = mem_calloc((size_t)g->n_nodes + 1, sizeof *absorbed);
    if (!readers || !absorbed) {
        mem_free(readers);
        mem_free(absorbed);
        nomem(err);
        return NULL;
    }
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = match(g, i, readers, parts) - 1; k >= 0; k--) absorbed[parts[k]] = true;
    rewrite_t rw;
    autosp_status_t st = rewrite_begin(&rw, g, err);
    for (int i = 0; st == AUTOSP_OK && i < g->n_nodes; i++) {
        if (match(g, i, readers, parts) > 0)
            st = emit(&rw, i, parts, size);
        else if (!absorbed[i])
            st = rewrite_node(&rw, i, NULL);
    }
    mem_free(readers);
    mem_free(absorbed);
    return rewrite_finish(&rw, st);
}
