/* graph.c: graph lifecycle, symbols, tensors, name lookup and the generic node constructor. */
#include <ctype.h>
#include <string.h>

#include "ir/op_table.h"

/* ---- name maps: open addressing over the names of tensors or nodes ---------------------- */

/* Eight bytes a step (FxHash's mix; names are long: "layers.79.mlp.down.weight.grad"). The
 * high half of the product is the well-mixed one. */
static uint32_t name_hash(const char *s) {
    size_t n = strlen(s);
    uint64_t h = n, w;
    for (; n >= 8; s += 8, n -= 8) {
        memcpy(&w, s, 8);
        h = ((h << 5 | h >> 59) ^ w) * 0x517cc1b727220a95u;
    }
    w = 0;
    memcpy(&w, s, n);
    h = ((h << 5 | h >> 59) ^ w) * 0x517cc1b727220a95u;
    return (uint32_t)(h >> 32);
}

static const char *name_at(const void *base, size_t stride, int index) {
    return *(const char *const *)((const char *)base + (size_t)index * stride);
}

int name_map_get(const name_map_t *m, const void *base, size_t stride, const char *name) {
    if (!m->cap) return -1;
    const uint32_t mask = (uint32_t)(m->cap - 1), h = name_hash(name);
    for (uint32_t i = h & mask;; i = (i + 1) & mask) {
        const name_slot_t *slot = &m->slots[i];
        if (!slot->index) return -1;
        if (slot->hash == h && strcmp(name_at(base, stride, slot->index - 1), name) == 0)
            return slot->index - 1;
    }
}

static void slot_place(name_slot_t *slots, int cap, name_slot_t s) {
    uint32_t j = s.hash & (uint32_t)(cap - 1);
    while (slots[j].index) j = (j + 1) & (uint32_t)(cap - 1);
    slots[j] = s;
}

int name_map_put(name_map_t *m, const void *base, size_t stride, int index) {
    if ((m->count + 1) * 2 > m->cap) {
        int cap = m->cap ? m->cap * 2 : 64;
        name_slot_t *slots = mem_calloc((size_t)cap, sizeof *slots);
        if (!slots) return -1;
        for (int i = 0; i < m->cap; i++)
            if (m->slots[i].index) slot_place(slots, cap, m->slots[i]);
        mem_free(m->slots);
        m->slots = slots;
        m->cap = cap;
    }
    slot_place(m->slots, m->cap, (name_slot_t){name_hash(name_at(base, stride, index)), index + 1});
    m->count++;
    return 0;
}

/* Removes the entry at index (under its current name), shifting later entries of its probe run
 * back so that lookups need no tombstones. */
static void name_map_del(name_map_t *m, const void *base, size_t stride, int index) {
    uint32_t mask = (uint32_t)(m->cap - 1);
    uint32_t i = name_hash(name_at(base, stride, index)) & mask;
    while (m->slots[i].index != index + 1) i = (i + 1) & mask;
    for (uint32_t j = (i + 1) & mask; m->slots[j].index; j = (j + 1) & mask) {
        uint32_t home = m->slots[j].hash & mask;
        if (((j - home) & mask) < ((j - i) & mask)) continue; /* its home lies after the hole */
        m->slots[i] = m->slots[j];
        i = j;
    }
    m->slots[i] = (name_slot_t){0, 0};
    m->count--;
}

int name_map_copy(name_map_t *dst, const name_map_t *src) {
    mem_free(dst->slots);
    *dst = (name_map_t){0};
    if (!src->cap) return 0;
    if (!(dst->slots = mem_calloc((size_t)src->cap, sizeof *dst->slots))) return -1;
    memcpy(dst->slots, src->slots, sizeof *dst->slots * (size_t)src->cap);
    dst->cap = src->cap, dst->count = src->count;
    return 0;
}

autosp_tensor_t autosp_tensor_find(const autosp_graph_t *g, const char *name) {
    return name_map_get(&g->tensor_names, g->tensors, sizeof(tensor_t), name);
}

int node_find(const autosp_graph_t *g, const char *name) {
    return name_map_get(&g->node_names, g->nodes, sizeof(node_t), name);
}

const shape_t *param_whole_shape(const autosp_graph_t *g, autosp_tensor_t t) {
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == AUTOSP_OP_UNSHARD && g->nodes[i].in[0] == t)
            return node_attr(&g->nodes[i], "shape")->shape;
    return &g->tensors[t].shape;
}

/* ---- lifecycle ------------------------------------------------------------------------- */

autosp_graph_t *autosp_graph_new(const char *name) {
    autosp_graph_t *g = mem_calloc(1, sizeof *g);
    if (!g) return NULL;
    g->name = arena_strdup(&g->arena, name ? name : "graph");
    if (!g->name) {
        mem_free(g);
        return NULL;
    }
    if (!name_ok(g->name, &g->error, "graph")) g->name = "graph"; /* the error says which */
    return g;
}

void autosp_graph_free(autosp_graph_t *g) {
    if (!g) return;
    mem_free(g->tensors);
    mem_free(g->nodes);
    mem_free(g->outputs);
    mem_free(g->tensor_names.slots);
    mem_free(g->node_names.slots);
    arena_free(&g->arena);
    mem_free(g);
}

const char *autosp_graph_name(const autosp_graph_t *g) {
    return g->name;
}

int autosp_graph_sp(const autosp_graph_t *g) {
    return g->sp > 1 ? g->sp : 1;
}
int autosp_graph_dp(const autosp_graph_t *g) {
    return g->dp > 1 ? g->dp : 1;
}
int autosp_graph_ring(const autosp_graph_t *g) {
    return g->ring > 1 ? g->ring : 1;
}
int64_t autosp_graph_padded_from(const autosp_graph_t *g) {
    return g->padded_from;
}

int64_t ring_global_index(int64_t t, int64_t L, int r, int R) {
    if (R <= 1) return t;
    const int64_t c = L / 2;
    return t < c ? r * c + t : (2 * (int64_t)R - 1 - r) * c + (t - c);
}

int64_t seq_global_row(const autosp_graph_t *g, int sp_rank, int64_t local_len, int64_t row) {
    const int sp = autosp_graph_sp(g), R = autosp_graph_ring(g), U = sp / R;
    const int64_t L = local_len * U; /* the rows of one ring position */
    return ring_global_index((sp_rank % U) * local_len + row, L, sp_rank / U, R);
}

autosp_status_t autosp_graph_status(const autosp_graph_t *g, autosp_error_t *err) {
    if (err) *err = g->error;
    return g->error.status;
}

autosp_status_t graph_fail(autosp_graph_t *g, const autosp_error_t *err) {
    if (g->error.status == AUTOSP_OK) g->error = *err;
    graph_changed(g);
    return err->status;
}

autosp_status_t tensor_size_error(const autosp_graph_t *g, const tensor_t *x, int result,
                                  const char *prefix, autosp_error_t *err) {
    char shape[256], bound[256] = "";
    size_t len = 0;
    for (int s = 0; s < g->n_syms && len < sizeof bound; s++) {
        if (!g->syms[s].value) continue;
        int w = snprintf(bound + len, sizeof bound - len, "%s%s=%lld", len ? " " : "",
                         g->syms[s].name, (long long)g->syms[s].value);
        if (w > 0) len += (size_t)w;
    }
    shape_str(g, &x->shape, shape, sizeof shape);
    for (int i = 0; result == EVAL_UNBOUND && i < x->shape.ndim; i++)
        for (int k = 0; k < x->shape.d[i].nsym; k++) {
            const symbol_t *sym = &g->syms[x->shape.d[i].sym[k]];
            if (!sym->value)
                return set_error(err, AUTOSP_ERR_INVALID,
                                 "%stensor \"%s\" uses symbol \"%s\", which is unbound (bind it, "
                                 "e.g. --set %s=N)",
                                 prefix, x->name, sym->name, sym->name);
        }
    if (result == EVAL_FRACTION)
        return set_error(err, AUTOSP_ERR_INVALID,
                         "%stensor \"%s\" of shape [%s] has a dim that is not a whole number with "
                         "%s",
                         prefix, x->name, shape, bound);
    return set_error(err, AUTOSP_ERR_LIMIT,
                     "%stensor \"%s\" of shape [%s] has more than %lld elements with %s", prefix,
                     x->name, shape, (long long)AUTOSP_MAX_NUMEL, bound);
}

char *node_label(const autosp_graph_t *g, int node, char *buf, size_t n) {
    const node_t *nd = &g->nodes[node];
    snprintf(buf, n, "node \"%s\" (%s)", nd->name, op_table[nd->op].name);
    return buf;
}

bool name_ok(const char *name, autosp_error_t *err, const char *what) {
    size_t len = name ? strlen(name) : 0;
    if (len == 0) {
        set_error(err, AUTOSP_ERR_INVALID, "%s has an empty name", what);
        return false;
    }
    if (len >= AUTOSP_MAX_NAME) {
        set_error(err, AUTOSP_ERR_LIMIT, "%s name \"%.40s...\" is %zu bytes, limit %d", what, name,
                  len, AUTOSP_MAX_NAME - 1);
        return false;
    }
    for (size_t i = 0; i < len; i++)
        if (iscntrl((unsigned char)name[i]) || name[i] == '"' || name[i] == '\\') {
            set_error(err, AUTOSP_ERR_INVALID,
                      "%s name \"%s\" contains a quote, backslash or control character", what,
                      name);
            return false;
        }
    return true;
}

/* ---- symbols --------------------------------------------------------------------------- */

static bool symbol_name_ok(const char *name) {
    if (!name || !(isalpha((unsigned char)name[0]) || name[0] == '_')) return false;
    size_t len = strlen(name);
    if (len >= AUTOSP_MAX_NAME) return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)name[i]) && name[i] != '_') return false;
    return true;
}

static autosp_status_t symbol_declare(autosp_graph_t *g, const char *name, int64_t value,
                                      autosp_error_t *err) {
    if (!symbol_name_ok(name))
        return set_error(err, AUTOSP_ERR_INVALID,
                         "symbol \"%s\": expected a name of letters, digits and '_' not starting "
                         "with a digit",
                         name ? name : "");
    if (symbol_find(g, name, strlen(name)) >= 0)
        return value ? autosp_symbol_bind(g, name, value, err) : AUTOSP_OK;
    if (g->n_syms == AUTOSP_MAX_SYMBOLS)
        return set_error(err, AUTOSP_ERR_LIMIT, "symbol \"%s\": more than %d symbols", name,
                         AUTOSP_MAX_SYMBOLS);
    const char *copy = arena_strdup(&g->arena, name);
    if (!copy) return nomem(err);
    graph_changed(g);
    g->syms[g->n_syms++] = (symbol_t){copy, 0};
    return value ? autosp_symbol_bind(g, name, value, err) : AUTOSP_OK;
}

autosp_status_t autosp_symbol(autosp_graph_t *g, const char *name, int64_t value) {
    autosp_error_t err;
    if (g->error.status != AUTOSP_OK) return g->error.status;
    autosp_status_t st = symbol_declare(g, name, value, &err);
    return st == AUTOSP_OK ? st : graph_fail(g, &err);
}

autosp_status_t autosp_symbol_bind(autosp_graph_t *g, const char *name, int64_t value,
                                   autosp_error_t *err) {
    int s = symbol_find(g, name, strlen(name));
    if (s < 0) return set_error(err, AUTOSP_ERR_INVALID, "symbol \"%s\" is not declared", name);
    if (value < 1 || value > AUTOSP_MAX_DIM_VALUE)
        return set_error(err, AUTOSP_ERR_INVALID, "symbol \"%s\": value %lld, expected 1..%lld",
                         name, (long long)value, (long long)AUTOSP_MAX_DIM_VALUE);
    int64_t old = g->syms[s].value;
    if (old == value) return set_ok(err);
    graph_changed(g); /* a rule may hold at one value and not another */
    g->syms[s].value = value;
    for (int t = 0; t < g->n_tensors; t++) { /* every dim must stay a whole number */
        int r = shape_eval(g, &g->tensors[t].shape, NULL, NULL);
        if (r >= EVAL_UNBOUND) continue;
        char prefix[AUTOSP_MAX_NAME + 64];
        snprintf(prefix, sizeof prefix, "symbol \"%s\" = %lld: ", name, (long long)value);
        tensor_size_error(g, &g->tensors[t], r, prefix, err);
        g->syms[s].value = old;
        return err ? err->status : AUTOSP_ERR_INVALID;
    }
    return set_ok(err);
}

int autosp_graph_num_symbols(const autosp_graph_t *g) {
    return g->n_syms;
}
const char *autosp_symbol_name(const autosp_graph_t *g, int i) {
    AUTOSP_ASSERT(i >= 0 && i < g->n_syms);
    return g->syms[i].name;
}
int64_t autosp_symbol_value(const autosp_graph_t *g, int i) {
    AUTOSP_ASSERT(i >= 0 && i < g->n_syms);
    return g->syms[i].value;
}

/* ---- tensors --------------------------------------------------------------------------- */

autosp_tensor_t graph_add_tensor(autosp_graph_t *g, const char *name, autosp_kind_t kind,
                                 autosp_dtype_t dtype, const shape_t *shape, autosp_error_t *err) {
    if (!name_ok(name, err, "tensor")) return AUTOSP_NO_TENSOR;
    if (autosp_tensor_find(g, name) >= 0) {
        set_error(err, AUTOSP_ERR_INVALID, "tensor \"%s\" is defined twice", name);
        return AUTOSP_NO_TENSOR;
    }
    if ((unsigned)dtype >= AUTOSP_DTYPE_COUNT) {
        set_error(err, AUTOSP_ERR_INVALID, "tensor \"%s\": unknown dtype %d", name, (int)dtype);
        return AUTOSP_NO_TENSOR;
    }
    if (g->n_tensors == AUTOSP_MAX_TENSORS) {
        set_error(err, AUTOSP_ERR_LIMIT, "tensor \"%s\": more than %d tensors", name,
                  AUTOSP_MAX_TENSORS);
        return AUTOSP_NO_TENSOR;
    }
    const char *copy = arena_strdup(&g->arena, name);
    if (!copy ||
        mem_grow((void **)&g->tensors, &g->cap_tensors, g->n_tensors + 1, sizeof(tensor_t))) {
        nomem(err);
        return AUTOSP_NO_TENSOR;
    }
    graph_changed(g);
    int id = g->n_tensors;
    g->tensors[id] = (tensor_t){
        .name = copy, .kind = kind, .dtype = dtype, .shape = *shape, .seq_dim = -1, .producer = -1};
    if (name_map_put(&g->tensor_names, g->tensors, sizeof(tensor_t), id)) {
        nomem(err);
        return AUTOSP_NO_TENSOR;
    }
    g->n_tensors++;
    return id;
}

/* Rules for graph inputs: a sequence-carrying role needs a seq dim (and integer ids), and all
 * inputs agree on what the sequence dim is. x may not be in the graph yet. */
autosp_status_t input_check(const autosp_graph_t *g, const tensor_t *x, autosp_error_t *err) {
    if ((unsigned)x->role >= AUTOSP_ROLE_COUNT)
        return set_error(err, AUTOSP_ERR_INVALID, "input \"%s\": unknown role %d", x->name,
                         (int)x->role);
    if (x->seq_dim < -1 || x->seq_dim >= x->shape.ndim)
        return set_error(err, AUTOSP_ERR_INVALID,
                         "input \"%s\": seq_dim %d is impossible for a tensor of %d dims, "
                         "expected -1..%d",
                         x->name, x->seq_dim, x->shape.ndim, x->shape.ndim - 1);
    bool sequence_role = x->role != AUTOSP_ROLE_OTHER;
    if (sequence_role && x->seq_dim < 0)
        return set_error(err, AUTOSP_ERR_INVALID,
                         "input \"%s\" has role %s, which carries the sequence, but no seq_dim",
                         x->name, autosp_role_name(x->role));
    bool is_int = x->dtype == AUTOSP_I32 || x->dtype == AUTOSP_I64;
    if (sequence_role && x->role != AUTOSP_ROLE_MASK && !is_int)
        return set_error(err, AUTOSP_ERR_INVALID,
                         "input \"%s\" has role %s and dtype %s, expected i32 or i64", x->name,
                         autosp_role_name(x->role), autosp_dtype_name(x->dtype));
    if (x->seq_dim < 0) return AUTOSP_OK;
    int64_t v;
    if (dim_is_const(x->shape.d[x->seq_dim], &v) && v == 1)
        return set_error(err, AUTOSP_ERR_INVALID,
                         "input \"%s\": seq_dim %d has size 1, which cannot be a sequence", x->name,
                         x->seq_dim);
    const tensor_t *ref = NULL;
    for (int t = 0; t < g->n_tensors && !ref; t++)
        if (g->tensors[t].kind == AUTOSP_KIND_INPUT && g->tensors[t].seq_dim >= 0)
            ref = &g->tensors[t];
    if (!ref || ref == x || dim_eq(x->shape.d[x->seq_dim], ref->shape.d[ref->seq_dim]))
        return AUTOSP_OK;
    char a[128], b[128];
    return set_error(err, AUTOSP_ERR_INVALID,
                     "input \"%s\": sequence dim %d is %s, expected %s (the sequence dim of "
                     "input \"%s\")",
                     x->name, x->seq_dim, dim_str(g, x->shape.d[x->seq_dim], a, sizeof a),
                     dim_str(g, ref->shape.d[ref->seq_dim], b, sizeof b), ref->name);
}

static autosp_status_t param_check(const tensor_t *x, autosp_error_t *err) {
    if ((unsigned)x->init < AUTOSP_INIT_COUNT && x->init_std >= 0 && x->init_std < 1e6)
        return AUTOSP_OK;
    return set_error(err, AUTOSP_ERR_INVALID, "param \"%s\": bad init (kind %d, std %g)", x->name,
                     (int)x->init, x->init_std);
}

/* Inputs and params: parse the shape, check the leaf as a whole, then add it. */
static autosp_tensor_t add_leaf(autosp_graph_t *g, tensor_t leaf, const char *shape_text) {
    autosp_error_t err;
    if (g->error.status != AUTOSP_OK) return AUTOSP_NO_TENSOR;
    if (!name_ok(leaf.name, &err, "tensor")) {
        graph_fail(g, &err);
        return AUTOSP_NO_TENSOR;
    }
    if (shape_parse(g, shape_text ? shape_text : "", &leaf.shape, &err) != AUTOSP_OK) {
        autosp_error_t wrapped;
        set_error(&wrapped, err.status, "tensor \"%s\": %s", leaf.name, err.message);
        graph_fail(g, &wrapped);
        return AUTOSP_NO_TENSOR;
    }
    autosp_status_t st =
        leaf.kind == AUTOSP_KIND_INPUT ? input_check(g, &leaf, &err) : param_check(&leaf, &err);
    autosp_tensor_t t = AUTOSP_NO_TENSOR;
    if (st == AUTOSP_OK)
        t = graph_add_tensor(g, leaf.name, leaf.kind, leaf.dtype, &leaf.shape, &err);
    if (t == AUTOSP_NO_TENSOR) {
        graph_fail(g, &err);
        return t;
    }
    leaf.name = g->tensors[t].name; /* the graph's copy */
    g->tensors[t] = leaf;
    return t;
}

autosp_tensor_t autosp_input(autosp_graph_t *g, const char *name, autosp_dtype_t dtype,
                             const char *shape, autosp_role_t role, int seq_dim) {
    tensor_t x = {.name = name,
                  .kind = AUTOSP_KIND_INPUT,
                  .dtype = dtype,
                  .role = role,
                  .seq_dim = seq_dim,
                  .producer = -1};
    return add_leaf(g, x, shape);
}

autosp_tensor_t autosp_param(autosp_graph_t *g, const char *name, autosp_dtype_t dtype,
                             const char *shape, autosp_init_t init, double std) {
    tensor_t x = {.name = name,
                  .kind = AUTOSP_KIND_PARAM,
                  .dtype = dtype,
                  .init = init,
                  .init_std = std,
                  .seq_dim = -1,
                  .producer = -1};
    return add_leaf(g, x, shape);
}

autosp_status_t autosp_output(autosp_graph_t *g, autosp_tensor_t t) {
    autosp_error_t err;
    if (g->error.status != AUTOSP_OK) return g->error.status;
    if (t < 0 || t >= g->n_tensors) {
        set_error(&err, AUTOSP_ERR_INVALID, "output: no tensor with id %d", (int)t);
        return graph_fail(g, &err);
    }
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] == t) {
            set_error(&err, AUTOSP_ERR_INVALID, "output \"%s\" is listed twice",
                      g->tensors[t].name);
            return graph_fail(g, &err);
        }
    if (mem_grow((void **)&g->outputs, &g->cap_outputs, g->n_outputs + 1, sizeof *g->outputs))
        return graph_fail(g, &(autosp_error_t){AUTOSP_ERR_NOMEM, "out of memory"});
    graph_changed(g);
    g->outputs[g->n_outputs++] = t;
    return AUTOSP_OK;
}

int autosp_graph_num_tensors(const autosp_graph_t *g) {
    return g->n_tensors;
}
int autosp_graph_num_outputs(const autosp_graph_t *g) {
    return g->n_outputs;
}
autosp_tensor_t autosp_graph_output(const autosp_graph_t *g, int i) {
    AUTOSP_ASSERT(i >= 0 && i < g->n_outputs);
    return g->outputs[i];
}
const char *autosp_tensor_name(const autosp_graph_t *g, autosp_tensor_t t) {
    return graph_tensor(g, t)->name;
}
autosp_kind_t autosp_tensor_kind(const autosp_graph_t *g, autosp_tensor_t t) {
    return graph_tensor(g, t)->kind;
}
autosp_dtype_t autosp_tensor_dtype(const autosp_graph_t *g, autosp_tensor_t t) {
    return graph_tensor(g, t)->dtype;
}
autosp_role_t autosp_tensor_role(const autosp_graph_t *g, autosp_tensor_t t) {
    return graph_tensor(g, t)->role;
}
int autosp_tensor_seq_dim(const autosp_graph_t *g, autosp_tensor_t t) {
    return graph_tensor(g, t)->seq_dim;
}
int autosp_tensor_ndim(const autosp_graph_t *g, autosp_tensor_t t) {
    return graph_tensor(g, t)->shape.ndim;
}
char *autosp_tensor_shape_str(const autosp_graph_t *g, autosp_tensor_t t, char *buf, size_t n) {
    return shape_str(g, &graph_tensor(g, t)->shape, buf, n);
}
int64_t autosp_tensor_numel(const autosp_graph_t *g, autosp_tensor_t t) {
    int64_t n;
    return shape_eval(g, &graph_tensor(g, t)->shape, NULL, &n) == EVAL_OK ? n : -1;
}
int64_t autosp_tensor_dim(const autosp_graph_t *g, autosp_tensor_t t, int axis) {
    const tensor_t *x = graph_tensor(g, t);
    AUTOSP_ASSERT(axis >= 0 && axis < x->shape.ndim);
    int64_t v;
    return dim_eval(g, x->shape.d[axis], &v) == EVAL_OK ? v : -1;
}
int autosp_tensor_producer(const autosp_graph_t *g, autosp_tensor_t t) {
    return graph_tensor(g, t)->producer;
}

int autosp_graph_num_nodes(const autosp_graph_t *g) {
    return g->n_nodes;
}
static const node_t *graph_node(const autosp_graph_t *g, int i) {
    AUTOSP_ASSERT(i >= 0 && i < g->n_nodes);
    return &g->nodes[i];
}
const char *autosp_node_name(const autosp_graph_t *g, int i) {
    return graph_node(g, i)->name;
}
autosp_op_t autosp_node_op(const autosp_graph_t *g, int i) {
    return graph_node(g, i)->op;
}
int autosp_node_num_inputs(const autosp_graph_t *g, int i) {
    return graph_node(g, i)->n_in;
}
autosp_tensor_t autosp_node_input(const autosp_graph_t *g, int i, int k) {
    AUTOSP_ASSERT(k >= 0 && k < graph_node(g, i)->n_in);
    return g->nodes[i].in[k];
}
int autosp_node_num_outputs(const autosp_graph_t *g, int i) {
    return graph_node(g, i)->n_out;
}
autosp_tensor_t autosp_node_output(const autosp_graph_t *g, int i, int k) {
    AUTOSP_ASSERT(k >= 0 && k < graph_node(g, i)->n_out);
    return g->nodes[i].out[k];
}

autosp_status_t tensor_rename(autosp_graph_t *g, autosp_tensor_t t, const char *name,
                              autosp_error_t *err) {
    if (!name_ok(name, err, "tensor")) return err ? err->status : AUTOSP_ERR_INVALID;
    if (autosp_tensor_find(g, name) >= 0)
        return set_error(err, AUTOSP_ERR_INVALID, "tensor \"%s\" is defined twice", name);
    const char *copy = arena_strdup(&g->arena, name);
    if (!copy) return nomem(err);
    /* Move the one entry (a rebuild per rename made autodiff and grad_sync quadratic). The put
     * cannot grow the map, so it cannot fail: the del made room for it. */
    graph_changed(g);
    name_map_del(&g->tensor_names, g->tensors, sizeof(tensor_t), t);
    graph_tensor(g, t)->name = copy;
    int put = name_map_put(&g->tensor_names, g->tensors, sizeof(tensor_t), t);
    AUTOSP_ASSERT(put == 0);
    return AUTOSP_OK;
}
