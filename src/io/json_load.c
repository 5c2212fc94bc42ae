/* json_load.c: reads the JSON graph format. This is where untrusted input enters: every field
 * is type-checked, every size is bounded (autosp/limits.h), and nodes may come in any order
 * (they are sorted topologically here, and a cycle is reported by name). */
#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "io/read_file.h"
#include "autosp/io.h"
#include "ir/op_table.h"

typedef struct loader {
    autosp_graph_t *g;
    autosp_error_t *err;
} loader_t;

static autosp_status_t bad(loader_t *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static autosp_status_t bad(loader_t *L, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set_verror(L->err, AUTOSP_ERR_INVALID, fmt, ap);
    va_end(ap);
    return AUTOSP_ERR_INVALID;
}

static const char *json_kind(const json_t *v) {
    if (!v) return "missing";
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a bool";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

/* Rejects keys not in `allowed` (NULL-terminated): a typo must not be silently ignored. */
static autosp_status_t only_keys(loader_t *L, json_t *obj, const char *const *allowed,
                                 const char *where) {
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        const char *const *a = allowed;
        while (*a && strcmp(*a, key) != 0) a++;
        if (*a) continue;
        char known[256];
        size_t len = 0;
        for (a = allowed; *a && len < sizeof known; a++) {
            int w = snprintf(known + len, sizeof known - len, "%s%s", a == allowed ? "" : ", ", *a);
            if (w > 0) len += (size_t)w;
        }
        return bad(L, "%s: unknown key \"%.64s\" (known keys: %s)", where, key, known);
    }
    return AUTOSP_OK;
}

static autosp_status_t get_string(loader_t *L, json_t *obj, const char *key, bool required,
                                  const char **out, const char *where) {
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v) return required ? bad(L, "%s: missing \"%s\"", where, key) : AUTOSP_OK;
    if (!json_is_string(v))
        return bad(L, "%s: \"%s\" is %s, expected a string", where, key, json_kind(v));
    size_t len = json_string_length(v);
    if (len >= AUTOSP_MAX_NAME)
        return set_error(L->err, AUTOSP_ERR_LIMIT, "%s: \"%s\" is %zu bytes long, limit %d", where,
                         key, len, AUTOSP_MAX_NAME - 1);
    if (strlen(json_string_value(v)) != len)
        return bad(L, "%s: \"%s\" contains a NUL character", where, key);
    *out = json_string_value(v);
    return AUTOSP_OK;
}

static autosp_status_t get_array(loader_t *L, json_t *obj, const char *key, size_t max,
                                 json_t **out, const char *where) {
    *out = json_object_get(obj, key);
    if (!*out) return bad(L, "%s: missing \"%s\"", where, key);
    if (!json_is_array(*out))
        return bad(L, "%s: \"%s\" is %s, expected an array", where, key, json_kind(*out));
    if (json_array_size(*out) > max)
        return set_error(L->err, AUTOSP_ERR_LIMIT, "%s: \"%s\" has %zu entries, limit %zu", where,
                         key, json_array_size(*out), max);
    return AUTOSP_OK;
}

/* A JSON shape (array of positive integers and dim strings) as shape text: "B,S,64". */
static autosp_status_t shape_text(loader_t *L, json_t *arr, char *buf, size_t n,
                                  const char *where) {
    if (!json_is_array(arr))
        return bad(L, "%s: shape is %s, expected an array", where, json_kind(arr));
    if (json_array_size(arr) > AUTOSP_MAX_DIMS)
        return set_error(L->err, AUTOSP_ERR_LIMIT, "%s: shape has %zu dims, limit %d", where,
                         json_array_size(arr), AUTOSP_MAX_DIMS);
    size_t len = 0;
    buf[0] = '\0';
    size_t i;
    json_t *d;
    json_array_foreach(arr, i, d) {
        char piece[AUTOSP_MAX_NAME + 32];
        if (json_is_integer(d)) {
            json_int_t v = json_integer_value(d);
            if (v < 1 || v > AUTOSP_MAX_DIM_VALUE)
                return bad(L, "%s: dim %zu is %lld, expected 1..%lld", where, i, (long long)v,
                           (long long)AUTOSP_MAX_DIM_VALUE);
            snprintf(piece, sizeof piece, "%lld", (long long)v);
        } else if (json_is_string(d) && json_string_length(d) < AUTOSP_MAX_NAME &&
                   !strpbrk(json_string_value(d), ",") &&
                   strlen(json_string_value(d)) == json_string_length(d)) {
            snprintf(piece, sizeof piece, "%s", json_string_value(d));
        } else {
            return bad(L,
                       "%s: dim %zu is %s, expected a positive integer or a dim expression "
                       "such as \"S\" or \"S/4\"",
                       where, i, json_kind(d));
        }
        int w = snprintf(buf + len, n - len, "%s%s", i ? "," : "", piece);
        if (w < 0 || (size_t)w >= n - len) return bad(L, "%s: shape is too long", where);
        len += (size_t)w;
    }
    return AUTOSP_OK;
}

static autosp_status_t get_dtype(loader_t *L, json_t *obj, autosp_dtype_t *out, const char *where) {
    const char *s;
    autosp_status_t st = get_string(L, obj, "dtype", true, &s, where);
    if (st != AUTOSP_OK) return st;
    if (!autosp_dtype_from_name(s, out))
        return bad(L, "%s: unknown dtype \"%s\", expected f32, bf16, f16, i32 or i64", where, s);
    return AUTOSP_OK;
}

/* After a builder call: move the graph's sticky error into the loader's error. */
static autosp_status_t builder_result(loader_t *L) {
    return autosp_graph_status(L->g, L->err);
}

static autosp_status_t load_symbols(loader_t *L, json_t *root) {
    json_t *syms = json_object_get(root, "symbols");
    if (!syms) return AUTOSP_OK;
    if (!json_is_object(syms))
        return bad(L, "\"symbols\" is %s, expected an object", json_kind(syms));
    const char *key;
    json_t *v;
    json_object_foreach(syms, key, v) {
        json_int_t value = 0;
        if (json_is_integer(v)) {
            value = json_integer_value(v);
            if (value < 1 || value > AUTOSP_MAX_DIM_VALUE)
                return bad(L, "symbol \"%.64s\" is %lld, expected 1..%lld or null (unbound)", key,
                           (long long)value, (long long)AUTOSP_MAX_DIM_VALUE);
        } else if (!json_is_null(v)) {
            return bad(L, "symbol \"%.64s\" is %s, expected an integer or null", key, json_kind(v));
        }
        autosp_symbol(L->g, key, value);
        if (builder_result(L) != AUTOSP_OK) return L->err->status;
    }
    return AUTOSP_OK;
}

/* "parallel": {"sp": P, "dp": D[, "ring": R][, "padded_from": S, "pad_label": l]}: the graph
 * is the per-rank program for P x D ranks, each sequence group a ring of R Ulysses groups, its
 * sequence padded from S rows (autosp_pad_sequence). */
static autosp_status_t load_parallel(loader_t *L, json_t *root) {
    static const char *const keys[] = {"sp", "dp", "ring", "padded_from", "pad_label", NULL};
    json_t *par = json_object_get(root, "parallel");
    if (!par) return AUTOSP_OK;
    if (!json_is_object(par))
        return bad(L, "\"parallel\" is %s, expected an object", json_kind(par));
    autosp_status_t st = only_keys(L, par, keys, "parallel");
    int *fields[3] = {&L->g->sp, &L->g->dp, &L->g->ring};
    for (int i = 0; i < 3 && st == AUTOSP_OK; i++) {
        json_t *v = json_object_get(par, keys[i]);
        if (!v) continue;
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1 << 20)
            return bad(L, "parallel: \"%s\" is %s, expected an integer 1..%d", keys[i],
                       json_is_integer(v) ? "out of range" : json_kind(v), 1 << 20);
        *fields[i] = (int)json_integer_value(v);
    }
    json_t *from = json_object_get(par, "padded_from"), *label = json_object_get(par, "pad_label");
    if (st == AUTOSP_OK && from) {
        if (!json_is_integer(from) || json_integer_value(from) < 1)
            return bad(L, "parallel: \"padded_from\" is %s, expected a positive integer",
                       json_is_integer(from) ? "out of range" : json_kind(from));
        L->g->padded_from = json_integer_value(from);
    }
    if (st == AUTOSP_OK && label) {
        if (!json_is_integer(label) || json_integer_value(label) < INT32_MIN ||
            json_integer_value(label) > INT32_MAX)
            return bad(L, "parallel: \"pad_label\" is %s, expected a 32-bit integer",
                       json_kind(label));
        L->g->pad_label = (int32_t)json_integer_value(label);
    }
    if (st == AUTOSP_OK && autosp_graph_sp(L->g) % autosp_graph_ring(L->g) != 0)
        return bad(L, "parallel: \"ring\" is %d, which does not divide \"sp\" = %d",
                   autosp_graph_ring(L->g), autosp_graph_sp(L->g));
    return st;
}

/* What inputs and params share: an object of known keys with a name, a dtype and a shape. */
typedef struct leaf {
    const char *name;
    autosp_dtype_t dtype;
    char shape[1024];
    char where[64]; /* input "x" or param "w", for messages */
} leaf_t;

static autosp_status_t read_leaf(loader_t *L, json_t *v, const char *kind, size_t i,
                                 const char *const *keys, leaf_t *leaf) {
    snprintf(leaf->where, sizeof leaf->where, "%ss[%zu]", kind, i);
    if (!json_is_object(v))
        return bad(L, "%s is %s, expected an object", leaf->where, json_kind(v));
    autosp_status_t st;
    if ((st = only_keys(L, v, keys, leaf->where)) ||
        (st = get_string(L, v, "name", true, &leaf->name, leaf->where)))
        return st;
    snprintf(leaf->where, sizeof leaf->where, "%s \"%.40s\"", kind, leaf->name);
    if ((st = get_dtype(L, v, &leaf->dtype, leaf->where))) return st;
    return shape_text(L, json_object_get(v, "shape"), leaf->shape, sizeof leaf->shape, leaf->where);
}

static autosp_status_t load_input(loader_t *L, json_t *v, size_t i) {
    static const char *const keys[] = {"name", "dtype", "shape", "role", "seq_dim", NULL};
    leaf_t leaf;
    const char *role_s, *where = leaf.where;
    autosp_role_t role = AUTOSP_ROLE_OTHER;
    autosp_status_t st;
    if ((st = read_leaf(L, v, "input", i, keys, &leaf)) ||
        (st = get_string(L, v, "role", false, &role_s, where)))
        return st;
    if (role_s && !autosp_role_from_name(role_s, &role))
        return bad(L,
                   "%s: unknown role \"%s\", expected tokens, labels, positions, mask, "
                   "segment_ids or other",
                   where, role_s);
    json_t *sd = json_object_get(v, "seq_dim");
    json_int_t seq_dim = -1;
    if (sd && json_is_integer(sd))
        seq_dim = json_integer_value(sd);
    else if (sd && !json_is_null(sd))
        return bad(L, "%s: seq_dim is %s, expected an integer or null", where, json_kind(sd));
    if (seq_dim < -1 || seq_dim >= AUTOSP_MAX_DIMS)
        return bad(L, "%s: seq_dim %lld is impossible, expected -1..%d", where, (long long)seq_dim,
                   AUTOSP_MAX_DIMS - 1);
    autosp_input(L->g, leaf.name, leaf.dtype, leaf.shape, role, (int)seq_dim);
    return builder_result(L);
}

static autosp_status_t load_param(loader_t *L, json_t *v, size_t i) {
    static const char *const keys[] = {"name", "dtype", "shape", "init", "std", NULL};
    leaf_t leaf;
    const char *init_s, *where = leaf.where;
    autosp_init_t init = AUTOSP_INIT_NORMAL;
    autosp_status_t st;
    if ((st = read_leaf(L, v, "param", i, keys, &leaf)) ||
        (st = get_string(L, v, "init", false, &init_s, where)))
        return st;
    if (init_s && !autosp_init_from_name(init_s, &init))
        return bad(L, "%s: unknown init \"%s\", expected normal, zeros or ones", where, init_s);
    json_t *std = json_object_get(v, "std");
    double sd = init == AUTOSP_INIT_NORMAL ? 0.02 : 0.0;
    if (std && !json_is_number(std))
        return bad(L, "%s: std is %s, expected a number", where, json_kind(std));
    if (std) sd = json_number_value(std);
    if (!(sd >= 0 && sd < 1e6)) return bad(L, "%s: std is %g, expected 0..1e6", where, sd);
    autosp_param(L->g, leaf.name, leaf.dtype, leaf.shape, init, sd);
    return builder_result(L);
}

static autosp_status_t load_leaves(loader_t *L, json_t *root, const char *key,
                                   autosp_status_t (*one)(loader_t *, json_t *, size_t)) {
    json_t *arr;
    autosp_status_t st = get_array(L, root, key, AUTOSP_MAX_TENSORS, &arr, "graph");
    size_t i;
    json_t *v;
    if (st != AUTOSP_OK) return st;
    json_array_foreach(arr, i, v) if ((st = one(L, v, i)) != AUTOSP_OK) return st;
    return AUTOSP_OK;
}

/* ---- nodes ----------------------------------------------------------------------------- */

typedef struct pending {
    const char *name;
    autosp_op_t op;
    json_t *obj, *inputs, *outputs; /* outputs may be NULL: one output named after the node */
    int state;                      /* 0 unvisited, 1 on the DFS stack, 2 emitted */
} pending_t;

typedef struct produced {
    const char *name; /* first field: name_map keys on it */
    int node;
} produced_t;

typedef struct node_set {
    pending_t *nodes;
    int n;
    produced_t *outs;
    int n_outs;
    name_map_t out_map;
    int *order, *stack, *next_input;
} node_set_t;

static const char *output_name(const pending_t *p, size_t k) {
    if (!p->outputs) return p->name;
    json_t *o = json_array_get(p->outputs, k);
    return json_is_object(o) ? json_string_value(json_object_get(o, "name")) : json_string_value(o);
}

static size_t output_count(const pending_t *p) {
    return p->outputs ? json_array_size(p->outputs) : 1;
}

static autosp_status_t read_outputs(loader_t *L, pending_t *p, const char *where) {
    static const char *const keys[] = {"name", "dtype", "shape", NULL};
    autosp_status_t st =
        get_array(L, p->obj, "outputs", AUTOSP_MAX_NODE_OUTPUTS, &p->outputs, where);
    size_t k;
    json_t *o;
    if (st != AUTOSP_OK) return st;
    json_array_foreach(p->outputs, k, o) {
        const char *name;
        if (json_is_object(o)) {
            if ((st = only_keys(L, o, keys, where)) ||
                (st = get_string(L, o, "name", true, &name, where)))
                return st;
        } else if (!json_is_string(o) || json_string_length(o) >= AUTOSP_MAX_NAME) {
            return bad(L, "%s: outputs[%zu] is %s, expected a tensor name or an object", where, k,
                       json_kind(o));
        }
    }
    return AUTOSP_OK;
}

static autosp_status_t read_node(loader_t *L, json_t *v, size_t i, pending_t *p) {
    static const char *const keys[] = {"name", "op", "inputs", "outputs", "attrs", NULL};
    char where[AUTOSP_MAX_NAME + 32];
    snprintf(where, sizeof where, "nodes[%zu]", i);
    if (!json_is_object(v)) return bad(L, "%s is %s, expected an object", where, json_kind(v));
    const char *op;
    autosp_status_t st;
    if ((st = only_keys(L, v, keys, where)) ||
        (st = get_string(L, v, "name", true, &p->name, where)))
        return st;
    snprintf(where, sizeof where, "node \"%s\"", p->name);
    if ((st = get_string(L, v, "op", true, &op, where))) return st;
    if (!autosp_op_from_name(op, &p->op)) return bad(L, "%s: unknown op \"%.64s\"", where, op);
    if ((st = get_array(L, v, "inputs", AUTOSP_MAX_NODE_INPUTS, &p->inputs, where))) return st;
    size_t k;
    json_t *x;
    json_array_foreach(p->inputs, k, x) {
        if (!json_is_string(x) || json_string_length(x) >= AUTOSP_MAX_NAME)
            return bad(L, "%s: inputs[%zu] is %s, expected a tensor name", where, k, json_kind(x));
    }
    p->obj = v;
    return json_object_get(v, "outputs") ? read_outputs(L, p, where) : AUTOSP_OK;
}

/* Maps every node output name to its node; a name defined twice is an error. */
static autosp_status_t index_outputs(loader_t *L, node_set_t *s) {
    for (int i = 0; i < s->n; i++)
        for (size_t k = 0; k < output_count(&s->nodes[i]); k++) {
            const char *name = output_name(&s->nodes[i], k);
            int other = name_map_get(&s->out_map, s->outs, sizeof(produced_t), name);
            if (other >= 0 || autosp_tensor_find(L->g, name) >= 0)
                return bad(L, "tensor \"%s\" is defined twice (output of node \"%s\" and %s%s%s)",
                           name, s->nodes[i].name, other >= 0 ? "node \"" : "an input or param",
                           other >= 0 ? s->nodes[s->outs[other].node].name : "",
                           other >= 0 ? "\"" : "");
            s->outs[s->n_outs] = (produced_t){name, i};
            if (name_map_put(&s->out_map, s->outs, sizeof(produced_t), s->n_outs++))
                return nomem(L->err);
        }
    return AUTOSP_OK;
}

/* Node that produces input k of node i, -1 for inputs and params; error if undefined. */
static autosp_status_t input_producer(loader_t *L, node_set_t *s, int i, int k, int *producer) {
    const char *name = json_string_value(json_array_get(s->nodes[i].inputs, (size_t)k));
    *producer = name_map_get(&s->out_map, s->outs, sizeof(produced_t), name);
    if (*producer >= 0)
        *producer = s->outs[*producer].node;
    else if (autosp_tensor_find(L->g, name) < 0)
        return bad(L, "node \"%s\" (%s): input \"%s\" names tensor \"%s\", which is not defined",
                   s->nodes[i].name, op_table[s->nodes[i].op].name,
                   k < AUTOSP_MAX_NODE_INPUTS && op_table[s->nodes[i].op].input_names[k]
                       ? op_table[s->nodes[i].op].input_names[k]
                       : "?",
                   name);
    return AUTOSP_OK;
}

static autosp_status_t report_cycle(loader_t *L, node_set_t *s, int depth, int again) {
    char msg[AUTOSP_ERROR_MESSAGE_MAX];
    size_t len = 0;
    int from = depth - 1;
    while (from > 0 && s->stack[from] != again) from--;
    for (int d = from; d < depth && len < sizeof msg; d++) {
        int w = snprintf(msg + len, sizeof msg - len, "\"%s\" -> ", s->nodes[s->stack[d]].name);
        if (w > 0) len += (size_t)w;
    }
    if (len < sizeof msg) snprintf(msg + len, sizeof msg - len, "\"%s\"", s->nodes[again].name);
    return bad(L, "the nodes form a cycle: %s", msg);
}

/* Depth-first topological sort with an explicit stack (a hostile chain cannot overflow the C
 * stack). Already-sorted input keeps its order. */
static autosp_status_t sort_nodes(loader_t *L, node_set_t *s) {
    int n_order = 0;
    for (int root = 0; root < s->n; root++) {
        if (s->nodes[root].state) continue;
        int depth = 0;
        s->stack[depth++] = root;
        s->nodes[root].state = 1;
        s->next_input[root] = 0;
        while (depth > 0) {
            int i = s->stack[depth - 1], k = s->next_input[i]++;
            if (k == (int)json_array_size(s->nodes[i].inputs)) {
                s->nodes[i].state = 2;
                s->order[n_order++] = i;
                depth--;
                continue;
            }
            int p;
            autosp_status_t st = input_producer(L, s, i, k, &p);
            if (st != AUTOSP_OK) return st;
            if (p < 0 || s->nodes[p].state == 2) continue;
            if (s->nodes[p].state == 1) return report_cycle(L, s, depth, p);
            s->nodes[p].state = 1;
            s->next_input[p] = 0;
            s->stack[depth++] = p;
        }
    }
    return AUTOSP_OK;
}

enum { MAX_NODE_ATTRS = 16, ATTR_TEXT = 1024 };

typedef struct attr_buf {
    autosp_attr_t attrs[MAX_NODE_ATTRS];
    int64_t ints[MAX_NODE_ATTRS][AUTOSP_MAX_DIMS];
    char text[MAX_NODE_ATTRS][ATTR_TEXT];
    int n;
} attr_buf_t;

/* One JSON attribute, converted by the type the op's schema gives it. */
static autosp_status_t read_attr(loader_t *L, const pending_t *p, const char *key, json_t *v,
                                 attr_buf_t *b) {
    const op_info_t *info = &op_table[p->op];
    autosp_attr_t *a = &b->attrs[b->n];
    int spec = 0;
    while (spec < info->n_attrs && strcmp(info->attrs[spec].name, key) != 0) spec++;
    a->name = key;
    if (spec == info->n_attrs) { /* autosp_node_add names the unknown attribute */
        a->type = AUTOSP_ATTR_INT;
        b->n++;
        return AUTOSP_OK;
    }
    a->type = info->attrs[spec].type;
    char where[AUTOSP_MAX_NAME + 64];
    snprintf(where, sizeof where, "node \"%s\" (%s): attribute \"%s\"", p->name, info->name, key);
    bool ok = true;
    switch (a->type) {
    case AUTOSP_ATTR_INT:
        ok = json_is_integer(v);
        a->i = json_integer_value(v);
        break;
    case AUTOSP_ATTR_BOOL:
        ok = json_is_boolean(v);
        a->i = json_is_true(v);
        break;
    case AUTOSP_ATTR_FLOAT:
        ok = json_is_number(v);
        a->f = json_number_value(v);
        break;
    case AUTOSP_ATTR_STRING:
        ok = json_is_string(v) && json_string_length(v) < AUTOSP_MAX_NAME;
        a->s = json_string_value(v);
        break;
    case AUTOSP_ATTR_SHAPE: {
        autosp_status_t st = shape_text(L, v, b->text[b->n], ATTR_TEXT, where);
        if (st != AUTOSP_OK) return st;
        a->s = b->text[b->n];
        break;
    }
    case AUTOSP_ATTR_INTS: {
        ok = json_is_array(v) && json_array_size(v) <= AUTOSP_MAX_DIMS;
        size_t i;
        json_t *x;
        if (ok) json_array_foreach(v, i, x) {
                ok = ok && json_is_integer(x);
                b->ints[b->n][i] = json_integer_value(x);
            }
        a->ints = b->ints[b->n];
        a->n_ints = ok ? (int)json_array_size(v) : 0;
        break;
    }
    }
    if (!ok)
        return bad(L, "%s is %s, expected %s", where, json_kind(v),
                   a->type == AUTOSP_ATTR_INTS     ? "an array of at most 6 integers"
                   : a->type == AUTOSP_ATTR_BOOL   ? "true or false"
                   : a->type == AUTOSP_ATTR_STRING ? "a short string"
                   : a->type == AUTOSP_ATTR_FLOAT  ? "a number"
                                                   : "an integer");
    b->n++;
    return AUTOSP_OK;
}

/* A declared output dtype or shape must agree with what the op's rule inferred. */
static autosp_status_t check_declared(loader_t *L, const pending_t *p, size_t k,
                                      autosp_tensor_t t) {
    json_t *o = p->outputs ? json_array_get(p->outputs, k) : NULL;
    if (!json_is_object(o)) return AUTOSP_OK;
    const tensor_t *x = graph_tensor(L->g, t);
    char where[AUTOSP_MAX_NAME * 2 + 64], text[1024], a[1024], b[1024];
    snprintf(where, sizeof where, "node \"%s\" (%s): output \"%s\"", p->name, op_table[p->op].name,
             x->name);
    autosp_dtype_t dtype;
    autosp_status_t st;
    if (json_object_get(o, "dtype")) {
        if ((st = get_dtype(L, o, &dtype, where))) return st;
        if (dtype != x->dtype)
            return bad(L, "%s is declared %s, but the rule of %s gives %s", where,
                       autosp_dtype_name(dtype), op_table[p->op].name, autosp_dtype_name(x->dtype));
    }
    json_t *shape = json_object_get(o, "shape");
    if (!shape) return AUTOSP_OK;
    shape_t declared;
    if ((st = shape_text(L, shape, text, sizeof text, where)) ||
        (st = shape_parse(L->g, text, &declared, L->err)))
        return st;
    if (shape_match(L->g, &declared, &x->shape)) return AUTOSP_OK;
    return bad(L, "%s is declared with shape [%s], but the rule of %s gives [%s]", where,
               shape_str(L->g, &declared, a, sizeof a), op_table[p->op].name,
               shape_str(L->g, &x->shape, b, sizeof b));
}

static autosp_status_t add_pending(loader_t *L, const pending_t *p, attr_buf_t *b) {
    autosp_tensor_t in[AUTOSP_MAX_NODE_INPUTS], out[AUTOSP_MAX_NODE_OUTPUTS];
    const char *out_names[AUTOSP_MAX_NODE_OUTPUTS];
    size_t n_in = json_array_size(p->inputs), n_out = output_count(p);
    for (size_t k = 0; k < n_in; k++)
        in[k] = autosp_tensor_find(L->g, json_string_value(json_array_get(p->inputs, k)));
    for (size_t k = 0; k < n_out; k++) out_names[k] = output_name(p, k);
    json_t *attrs = json_object_get(p->obj, "attrs");
    b->n = 0;
    if (attrs && !json_is_object(attrs))
        return bad(L, "node \"%s\": \"attrs\" is %s, expected an object", p->name,
                   json_kind(attrs));
    if (json_object_size(attrs) > MAX_NODE_ATTRS)
        return bad(L, "node \"%s\": %zu attributes, limit %d", p->name, json_object_size(attrs),
                   MAX_NODE_ATTRS);
    const char *key;
    json_t *v;
    autosp_status_t st;
    if (attrs) json_object_foreach(attrs, key, v) if ((st = read_attr(L, p, key, v, b))) return st;
    autosp_node_add(L->g, p->op, p->name, in, (int)n_in, out_names, (int)n_out, b->attrs, b->n,
                    out);
    if ((st = builder_result(L)) != AUTOSP_OK) return st;
    for (size_t k = 0; k < n_out; k++)
        if ((st = check_declared(L, p, k, out[k])) != AUTOSP_OK) return st;
    return AUTOSP_OK;
}

static autosp_status_t load_node_set(loader_t *L, json_t *arr, node_set_t *s) {
    size_t i;
    json_t *v;
    autosp_status_t st;
    json_array_foreach(arr, i, v) if ((st = read_node(L, v, i, &s->nodes[i]))) return st;
    if ((st = index_outputs(L, s)) || (st = sort_nodes(L, s))) return st;
    attr_buf_t *b = mem_alloc(sizeof *b);
    if (!b) return nomem(L->err);
    for (int k = 0; k < s->n && st == AUTOSP_OK; k++)
        st = add_pending(L, &s->nodes[s->order[k]], b);
    mem_free(b);
    return st;
}

static autosp_status_t load_nodes(loader_t *L, json_t *root) {
    json_t *arr;
    autosp_status_t st = get_array(L, root, "nodes", AUTOSP_MAX_NODES, &arr, "graph");
    if (st != AUTOSP_OK) return st;
    node_set_t s = {.n = (int)json_array_size(arr)};
    size_t n = (size_t)s.n + 1;
    s.nodes = mem_calloc(n, sizeof *s.nodes);
    s.outs = mem_calloc(n * AUTOSP_MAX_NODE_OUTPUTS, sizeof *s.outs);
    s.order = mem_calloc(n, sizeof(int));
    s.stack = mem_calloc(n, sizeof(int));
    s.next_input = mem_calloc(n, sizeof(int));
    st = s.nodes && s.outs && s.order && s.stack && s.next_input ? load_node_set(L, arr, &s)
                                                                 : nomem(L->err);
    mem_free(s.nodes);
    mem_free(s.outs);
    mem_free(s.order);
    mem_free(s.stack);
    mem_free(s.next_input);
    mem_free(s.out_map.slots);
    return st;
}

static autosp_status_t load_outputs(loader_t *L, json_t *root) {
    json_t *arr;
    autosp_status_t st = get_array(L, root, "outputs", AUTOSP_MAX_TENSORS, &arr, "graph");
    if (st != AUTOSP_OK) return st;
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        if (!json_is_string(v))
            return bad(L, "outputs[%zu] is %s, expected a tensor name", i, json_kind(v));
        autosp_tensor_t t = autosp_tensor_find(L->g, json_string_value(v));
        if (t < 0)
            return bad(L, "outputs[%zu]: tensor \"%.64s\" is not defined", i, json_string_value(v));
        autosp_output(L->g, t);
        if ((st = builder_result(L)) != AUTOSP_OK) return st;
    }
    return AUTOSP_OK;
}

static autosp_status_t load_root(loader_t *L, json_t *root) {
    static const char *const keys[] = {"format", "version", "name",  "symbols", "parallel",
                                       "inputs", "params",  "nodes", "outputs", NULL};
    if (!json_is_object(root))
        return bad(L, "the document is %s, expected an object", json_kind(root));
    autosp_status_t st = only_keys(L, root, keys, "graph");
    const char *format, *name;
    if (st || (st = get_string(L, root, "format", true, &format, "graph"))) return st;
    if (strcmp(format, "autosp-graph") != 0)
        return bad(L, "graph: \"format\" is \"%s\", expected \"autosp-graph\"", format);
    json_t *version = json_object_get(root, "version");
    if (!json_is_integer(version) || json_integer_value(version) != 1) {
        char found[32];
        snprintf(found, sizeof found, "%lld", (long long)json_integer_value(version));
        return bad(L, "graph: \"version\" is %s, expected 1 (the only version so far)",
                   json_is_integer(version) ? found
                   : version                ? json_kind(version)
                                            : "missing");
    }
    if ((st = get_string(L, root, "name", true, &name, "graph"))) return st;
    if (!name_ok(name, L->err, "graph")) return L->err->status;
    if (!(L->g = autosp_graph_new(name))) return nomem(L->err);
    if ((st = load_symbols(L, root)) || (st = load_parallel(L, root)) ||
        (st = load_leaves(L, root, "inputs", load_input)) ||
        (st = load_leaves(L, root, "params", load_param)) || (st = load_nodes(L, root)) ||
        (st = load_outputs(L, root)))
        return st;
    return autosp_graph_verify(L->g, 0, L->err);
}

autosp_graph_t *autosp_graph_load_string(const char *text, size_t len, autosp_error_t *err) {
    autosp_error_t local;
    loader_t L = {.err = err ? err : &local};
    if (len > AUTOSP_MAX_FILE_BYTES) {
        set_error(L.err, AUTOSP_ERR_LIMIT, "the graph is %zu bytes, limit %ld", len,
                  (long)AUTOSP_MAX_FILE_BYTES);
        return NULL;
    }
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        set_error(L.err, AUTOSP_ERR_INVALID, "malformed JSON at line %d, column %d: %s", jerr.line,
                  jerr.column, jerr.text);
        return NULL;
    }
    autosp_status_t st = load_root(&L, root);
    json_decref(root);
    if (st != AUTOSP_OK) {
        autosp_graph_free(L.g);
        return NULL;
    }
    return L.g;
}

/* Reads a whole file, refusing more than AUTOSP_MAX_FILE_BYTES. */
autosp_status_t io_read_file(const char *path, char **data, size_t *size, autosp_error_t *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return set_error(err, AUTOSP_ERR_IO, "cannot open \"%s\": %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    autosp_status_t st = AUTOSP_OK;
    for (;;) {
        if (len == cap) {
            if (cap > (size_t)AUTOSP_MAX_FILE_BYTES) {
                st =
                    set_error(err, AUTOSP_ERR_LIMIT, "\"%s\" is larger than the limit of %ld bytes",
                              path, (long)AUTOSP_MAX_FILE_BYTES);
                break;
            }
            char *p = mem_realloc(buf, cap = cap ? cap * 2 : 1 << 16);
            if (!p) {
                st = nomem(err);
                break;
            }
            buf = p;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0) break;
    }
    if (st == AUTOSP_OK && ferror(f))
        st = set_error(err, AUTOSP_ERR_IO, "cannot read \"%s\"", path);
    fclose(f);
    if (st != AUTOSP_OK) {
        mem_free(buf);
        return st;
    }
    *data = buf;
    *size = len;
    return AUTOSP_OK;
}

autosp_graph_t *autosp_graph_load_file(const char *path, autosp_error_t *err) {
    char *buf = NULL;
    size_t len = 0;
    if (io_read_file(path, &buf, &len, err) != AUTOSP_OK) return NULL;
    autosp_graph_t *g = autosp_graph_load_string(buf, len, err);
    mem_free(buf);
    if (!g && err) { /* say which file */
        char msg[AUTOSP_ERROR_MESSAGE_MAX];
        snprintf(msg, sizeof msg, "%s", err->message);
        set_error(err, err->status, "%s: %s", path, msg);
    }
    return g;
}
