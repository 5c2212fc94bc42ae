/* node.c: adding a node (attribute schema, shape rule, output tensors) and cloning a graph. */
#include <string.h>

#include "ir/op_table.h"

static autosp_status_t node_error(autosp_error_t *err, autosp_status_t st, const char *name,
                                  autosp_op_t op, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static autosp_status_t node_error(autosp_error_t *err, autosp_status_t st, const char *name,
                                  autosp_op_t op, const char *fmt, ...) {
    char msg[AUTOSP_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return set_error(err, st, "node \"%s\" (%s): %s", name, op_table[op].name, msg);
}

static const char *attr_type_name(autosp_attr_type_t t) {
    static const char *const names[] = {"int",    "float",        "bool",
                                        "string", "list of ints", "shape string"};
    return (unsigned)t < ARRAY_LEN(names) ? names[t] : "?";
}

/* Copies one caller attribute into the node's slot, checking it against the spec. */
static autosp_status_t set_attr(autosp_graph_t *g, const char *node_name, autosp_op_t op,
                                const attr_spec_t *spec, const autosp_attr_t *a, attr_value_t *v,
                                autosp_error_t *err) {
    bool int_as_float = spec->type == AUTOSP_ATTR_FLOAT && a->type == AUTOSP_ATTR_INT;
    if (a->type != spec->type && !int_as_float)
        return node_error(err, AUTOSP_ERR_INVALID, node_name, op,
                          "attribute \"%s\" is a %s, expected a %s", spec->name,
                          attr_type_name(a->type), attr_type_name(spec->type));
    switch (spec->type) {
    case AUTOSP_ATTR_INT:
        v->i = a->i;
        break;
    case AUTOSP_ATTR_BOOL:
        if (a->i != 0 && a->i != 1)
            return node_error(err, AUTOSP_ERR_INVALID, node_name, op,
                              "attribute \"%s\" is %lld, expected a bool (0 or 1)", spec->name,
                              (long long)a->i);
        v->i = a->i;
        break;
    case AUTOSP_ATTR_FLOAT:
        v->f = int_as_float ? (double)a->i : a->f;
        if (spec->positive && !(v->f > 0))
            return node_error(err, AUTOSP_ERR_INVALID, node_name, op,
                              "attribute \"%s\" is %g, expected a value > 0", spec->name, v->f);
        break;
    case AUTOSP_ATTR_STRING: {
        const char *s = a->s ? a->s : "";
        bool allowed = !spec->choices;
        for (const char *const *c = spec->choices; c && *c; c++) allowed |= strcmp(*c, s) == 0;
        if (!allowed)
            return node_error(err, AUTOSP_ERR_INVALID, node_name, op,
                              "attribute \"%s\" is \"%.64s\", expected one of the documented "
                              "values (first: \"%s\")",
                              spec->name, s, spec->choices[0]);
        /* choices are static strings: point at them, no copy */
        for (const char *const *c = spec->choices; c && *c; c++)
            if (strcmp(*c, s) == 0) v->s = *c;
        break;
    }
    case AUTOSP_ATTR_INTS:
        if (a->n_ints < 0 || a->n_ints > AUTOSP_MAX_DIMS)
            return node_error(err, AUTOSP_ERR_LIMIT, node_name, op,
                              "attribute \"%s\" has %d entries, limit %d", spec->name, a->n_ints,
                              AUTOSP_MAX_DIMS);
        v->ints = arena_alloc(&g->arena, sizeof(int64_t) * (size_t)(a->n_ints + 1));
        if (!v->ints) return nomem(err);
        if (a->n_ints) memcpy(v->ints, a->ints, sizeof(int64_t) * (size_t)a->n_ints);
        v->n_ints = a->n_ints;
        break;
    case AUTOSP_ATTR_SHAPE: {
        v->shape = arena_alloc(&g->arena, sizeof(shape_t));
        if (!v->shape) return nomem(err);
        autosp_error_t e;
        autosp_status_t st = shape_parse(g, a->s ? a->s : "", v->shape, &e);
        if (st != AUTOSP_OK)
            return node_error(err, st, node_name, op, "attribute \"%s\": %s", spec->name,
                              e.message);
        break;
    }
    }
    return AUTOSP_OK;
}

static autosp_status_t fill_attrs(autosp_graph_t *g, const char *name, autosp_op_t op,
                                  const autosp_attr_t *attrs, int n_attrs, attr_value_t **out,
                                  autosp_error_t *err) {
    const op_info_t *info = &op_table[op];
    attr_value_t *v = arena_alloc(&g->arena, sizeof(attr_value_t) * (size_t)(info->n_attrs + 1));
    if (!v) return nomem(err);
    bool given[16] = {0};
    AUTOSP_ASSERT(info->n_attrs <= (int)ARRAY_LEN(given));
    for (int k = 0; k < n_attrs; k++) {
        int i = 0;
        while (i < info->n_attrs && strcmp(info->attrs[i].name, attrs[k].name) != 0) i++;
        if (i == info->n_attrs) {
            char known[256] = "none";
            size_t len = 0;
            for (int j = 0; j < info->n_attrs && len < sizeof known; j++) {
                int w = snprintf(known + len, sizeof known - len, "%s%s", j ? ", " : "",
                                 info->attrs[j].name);
                if (w > 0) len += (size_t)w;
            }
            return node_error(err, AUTOSP_ERR_INVALID, name, op,
                              "unknown attribute \"%.64s\" (%s takes: %s)", attrs[k].name,
                              info->name, known);
        }
        if (given[i])
            return node_error(err, AUTOSP_ERR_INVALID, name, op, "attribute \"%s\" is given twice",
                              attrs[k].name);
        given[i] = true;
        autosp_status_t st = set_attr(g, name, op, &info->attrs[i], &attrs[k], &v[i], err);
        if (st != AUTOSP_OK) return st;
    }
    for (int i = 0; i < info->n_attrs; i++) {
        const attr_spec_t *s = &info->attrs[i];
        if (given[i]) continue;
        if (s->required)
            return node_error(err, AUTOSP_ERR_INVALID, name, op,
                              "missing required attribute \"%s\"", s->name);
        v[i].i = s->def_i;
        v[i].f = s->def_f;
        v[i].s = s->def_s;
    }
    *out = v;
    return AUTOSP_OK;
}

/* "2" or "2 or 3" or "1 to 4" */
static const char *count_range(int lo, int hi, char *buf) {
    if (lo == hi)
        snprintf(buf, 32, "%d", lo);
    else
        snprintf(buf, 32, hi == lo + 1 ? "%d or %d" : "%d to %d", lo, hi);
    return buf;
}

/* Everything that can fail for a user's reason, checked before the graph changes. */
static autosp_status_t check_node(autosp_graph_t *g, autosp_op_t op, const char *name,
                                  const autosp_tensor_t *inputs, int n_in,
                                  const char *const *out_names, int n_out, autosp_error_t *err) {
    if ((unsigned)op >= AUTOSP_OP_COUNT)
        return set_error(err, AUTOSP_ERR_INVALID, "node \"%s\": unknown op %d", name, (int)op);
    if (!name_ok(name, err, "node")) return err->status;
    if (node_find(g, name) >= 0)
        return set_error(err, AUTOSP_ERR_INVALID, "node \"%s\" is defined twice", name);
    if (g->n_nodes == AUTOSP_MAX_NODES)
        return set_error(err, AUTOSP_ERR_LIMIT, "node \"%s\": more than %d nodes", name,
                         AUTOSP_MAX_NODES);
    const op_info_t *info = &op_table[op];
    char range[32];
    if (n_in < info->min_inputs || n_in > info->max_inputs)
        return node_error(err, AUTOSP_ERR_INVALID, name, op, "has %d input%s, expected %s", n_in,
                          n_in == 1 ? "" : "s",
                          count_range(info->min_inputs, info->max_inputs, range));
    if (n_out < info->min_outputs || n_out > info->max_outputs)
        return node_error(err, AUTOSP_ERR_INVALID, name, op, "has %d output%s, expected %s", n_out,
                          n_out == 1 ? "" : "s",
                          count_range(info->min_outputs, info->max_outputs, range));
    for (int i = 0; i < n_in; i++)
        if (inputs[i] < 0 || inputs[i] >= g->n_tensors)
            return node_error(err, AUTOSP_ERR_INVALID, name, op,
                              "input \"%s\" is not a tensor of this graph (id %d)",
                              info->input_names[i], (int)inputs[i]);
    for (int i = 0; i < n_out; i++) {
        if (!name_ok(out_names[i], err, "output tensor")) return err->status;
        if (autosp_tensor_find(g, out_names[i]) >= 0)
            return node_error(err, AUTOSP_ERR_INVALID, name, op,
                              "output tensor \"%s\" is already defined", out_names[i]);
        for (int j = 0; j < i; j++)
            if (strcmp(out_names[i], out_names[j]) == 0)
                return node_error(err, AUTOSP_ERR_INVALID, name, op,
                                  "output tensor \"%s\" is listed twice", out_names[i]);
    }
    return AUTOSP_OK;
}

static int clone_attrs(autosp_graph_t *dst, node_t *n);

/* Node n (op, inputs and attributes set, name not yet copied) gets its output tensors and
 * joins the graph. */
static autosp_status_t insert_node(autosp_graph_t *g, node_t n, const char *const *out_names,
                                   autosp_tensor_t *outputs, autosp_error_t *err) {
    shape_t shapes[AUTOSP_MAX_NODE_OUTPUTS];
    autosp_dtype_t dtypes[AUTOSP_MAX_NODE_OUTPUTS];
    autosp_status_t st = op_infer(g, &n, shapes, dtypes, err);
    if (st != AUTOSP_OK) return st;
    /* From here on only allocation can fail; the graph is unusable after that (sticky). */
    if (!(n.name = arena_strdup(&g->arena, n.name)) ||
        mem_grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof(node_t)))
        return nomem(err);
    for (int i = 0; i < n.n_out; i++) {
        n.out[i] = graph_add_tensor(g, out_names[i], AUTOSP_KIND_VALUE, dtypes[i], &shapes[i], err);
        if (n.out[i] == AUTOSP_NO_TENSOR) return err->status;
        g->tensors[n.out[i]].producer = g->n_nodes;
        if (outputs) outputs[i] = n.out[i];
    }
    graph_changed(g);
    g->nodes[g->n_nodes] = n;
    if (name_map_put(&g->node_names, g->nodes, sizeof(node_t), g->n_nodes)) return nomem(err);
    g->n_nodes++;
    return AUTOSP_OK;
}

static autosp_status_t add_node(autosp_graph_t *g, autosp_op_t op, const char *name,
                                const autosp_tensor_t *inputs, int n_in,
                                const char *const *out_names, int n_out, const autosp_attr_t *attrs,
                                int n_attrs, autosp_tensor_t *outputs, autosp_error_t *err) {
    autosp_status_t st = check_node(g, op, name, inputs, n_in, out_names, n_out, err);
    if (st != AUTOSP_OK) return st;
    node_t n = {.name = name, .op = op, .n_in = n_in, .n_out = n_out};
    if (n_in) memcpy(n.in, inputs, sizeof(autosp_tensor_t) * (size_t)n_in);
    if ((st = fill_attrs(g, name, op, attrs, n_attrs, &n.attrs, err)) != AUTOSP_OK) return st;
    return insert_node(g, n, out_names, outputs, err);
}

autosp_status_t node_add_values(autosp_graph_t *g, autosp_op_t op, const char *name,
                                const autosp_tensor_t *inputs, int n_in,
                                const char *const *out_names, int n_out, const attr_value_t *values,
                                autosp_tensor_t *outputs, autosp_error_t *err) {
    autosp_status_t st = check_node(g, op, name, inputs, n_in, out_names, n_out, err);
    if (st != AUTOSP_OK) return st;
    node_t n = {
        .name = name, .op = op, .n_in = n_in, .n_out = n_out, .attrs = (attr_value_t *)values};
    if (n_in) memcpy(n.in, inputs, sizeof(autosp_tensor_t) * (size_t)n_in);
    if (op_table[op].n_attrs && clone_attrs(g, &n)) return nomem(err);
    if (!op_table[op].n_attrs && !(n.attrs = arena_alloc(&g->arena, sizeof(attr_value_t))))
        return nomem(err);
    return insert_node(g, n, out_names, outputs, err);
}

autosp_status_t autosp_node_add(autosp_graph_t *g, autosp_op_t op, const char *name,
                                const autosp_tensor_t *inputs, int n_inputs,
                                const char *const *output_names, int n_outputs,
                                const autosp_attr_t *attrs, int n_attrs, autosp_tensor_t *outputs) {
    if (g->error.status != AUTOSP_OK) return g->error.status;
    autosp_error_t err = {0};
    char derived[AUTOSP_MAX_NODE_OUTPUTS][AUTOSP_MAX_NAME + 16];
    const char *names[AUTOSP_MAX_NODE_OUTPUTS];
    if (n_outputs < 0 || n_outputs > AUTOSP_MAX_NODE_OUTPUTS || n_inputs < 0 ||
        n_inputs > AUTOSP_MAX_NODE_INPUTS || n_attrs < 0) {
        set_error(&err, AUTOSP_ERR_INVALID, "node \"%s\": %d inputs, %d outputs: out of range",
                  name ? name : "", n_inputs, n_outputs);
        return graph_fail(g, &err);
    }
    for (int i = 0; i < n_outputs; i++) {
        if (output_names && output_names[i]) {
            names[i] = output_names[i];
            continue;
        }
        const char *suffix = (unsigned)op < AUTOSP_OP_COUNT ? op_table[op].output_suffix[i] : 0;
        snprintf(derived[i], sizeof derived[i], "%s%s", name ? name : "",
                 suffix ? suffix : (i ? ".out" : ""));
        if (i && !suffix) snprintf(derived[i], sizeof derived[i], "%s.out%d", name ? name : "", i);
        names[i] = derived[i];
    }
    autosp_status_t st = add_node(g, op, name ? name : "", inputs, n_inputs, names, n_outputs,
                                  attrs, n_attrs, outputs, &err);
    return st == AUTOSP_OK ? st : graph_fail(g, &err);
}

/* ---- clone ----------------------------------------------------------------------------- */

static int clone_attrs(autosp_graph_t *dst, node_t *n) {
    const op_info_t *info = &op_table[n->op];
    attr_value_t *v = arena_alloc(&dst->arena, sizeof(attr_value_t) * (size_t)(info->n_attrs + 1));
    if (!v) return -1;
    for (int i = 0; i < info->n_attrs; i++) {
        v[i] = n->attrs[i];
        if (n->attrs[i].ints) {
            v[i].ints = arena_alloc(&dst->arena, sizeof(int64_t) * (size_t)(v[i].n_ints + 1));
            if (!v[i].ints) return -1;
            memcpy(v[i].ints, n->attrs[i].ints, sizeof(int64_t) * (size_t)v[i].n_ints);
        }
        if (n->attrs[i].shape) {
            if (!(v[i].shape = arena_alloc(&dst->arena, sizeof(shape_t)))) return -1;
            *v[i].shape = *n->attrs[i].shape;
        }
    }
    n->attrs = v;
    return 0;
}

static int clone_into(autosp_graph_t *c, const autosp_graph_t *g) {
    c->n_syms = g->n_syms;
    for (int i = 0; i < g->n_syms; i++) {
        c->syms[i] = g->syms[i];
        if (!(c->syms[i].name = arena_strdup(&c->arena, g->syms[i].name))) return -1;
    }
    if (mem_grow((void **)&c->tensors, &c->cap_tensors, g->n_tensors, sizeof(tensor_t)) ||
        mem_grow((void **)&c->nodes, &c->cap_nodes, g->n_nodes, sizeof(node_t)) ||
        mem_grow((void **)&c->outputs, &c->cap_outputs, g->n_outputs, sizeof(autosp_tensor_t)))
        return -1;
    for (int i = 0; i < g->n_tensors; i++) {
        c->tensors[i] = g->tensors[i];
        if (!(c->tensors[i].name = arena_strdup(&c->arena, g->tensors[i].name))) return -1;
        c->n_tensors++;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        c->nodes[i] = g->nodes[i];
        if (!(c->nodes[i].name = arena_strdup(&c->arena, g->nodes[i].name)) ||
            clone_attrs(c, &c->nodes[i]))
            return -1;
        c->n_nodes++;
    }
    /* the same names at the same indexes: the same maps */
    if (name_map_copy(&c->tensor_names, &g->tensor_names) ||
        name_map_copy(&c->node_names, &g->node_names))
        return -1;
    if (g->n_outputs)
        memcpy(c->outputs, g->outputs, sizeof(autosp_tensor_t) * (size_t)g->n_outputs);
    c->n_outputs = g->n_outputs;
    c->error = g->error;
    c->sp = g->sp;
    c->dp = g->dp;
    c->ring = g->ring;
    c->padded_from = g->padded_from;
    c->pad_label = g->pad_label;
    c->checkpointed = g->checkpointed;
    c->ac = g->ac;
    c->verified = g->verified;
    return 0;
}

autosp_graph_t *autosp_graph_clone(const autosp_graph_t *g) {
    autosp_graph_t *c = autosp_graph_new(g->name);
    if (c && clone_into(c, g)) {
        autosp_graph_free(c);
        return NULL;
    }
    return c;
}

autosp_status_t node_add_output(autosp_graph_t *g, int i, const char *name, autosp_error_t *err) {
    AUTOSP_ASSERT(i >= 0 && i < g->n_nodes);
    node_t n = g->nodes[i];
    if (n.n_out == op_table[n.op].max_outputs)
        return set_error(err, AUTOSP_ERR_INVALID, "node \"%s\" (%s) has all its %d outputs", n.name,
                         op_table[n.op].name, n.n_out);
    n.n_out++;
    shape_t shapes[AUTOSP_MAX_NODE_OUTPUTS];
    autosp_dtype_t dtypes[AUTOSP_MAX_NODE_OUTPUTS];
    autosp_status_t st = op_infer(g, &n, shapes, dtypes, err);
    if (st != AUTOSP_OK) return st;
    autosp_tensor_t t = graph_add_tensor(g, name, AUTOSP_KIND_VALUE, dtypes[n.n_out - 1],
                                         &shapes[n.n_out - 1], err);
    if (t == AUTOSP_NO_TENSOR) return err ? err->status : AUTOSP_ERR_INVALID;
    graph_changed(g);
    g->tensors[t].producer = i;
    g->nodes[i].out[g->nodes[i].n_out++] = t;
    return AUTOSP_OK;
}
