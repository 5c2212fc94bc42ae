/* op_table.c: the op table, what every op means, built from the entries of autosp/ops.def (the
 * enum in autosp/types.h comes from the same list). Adding an op is one entry there, a kernel in
 * each backend (e.g. src/backends/cpu/elementwise.c) and a row of tests/test_ops.c. */
#include <string.h>

#include "ir/op_table.h"

#define ATTR_BOOL(n, d)                                                                            \
    { .name = n, .type = AUTOSP_ATTR_BOOL, .def_i = d }
#define ATTR_INT(n, d)                                                                             \
    { .name = n, .type = AUTOSP_ATTR_INT, .def_i = d }
#define ATTR_INT_REQ(n)                                                                            \
    { .name = n, .type = AUTOSP_ATTR_INT, .required = true }
#define ATTR_FLOAT(n, d)                                                                           \
    { .name = n, .type = AUTOSP_ATTR_FLOAT, .def_f = d }
#define ATTR_FLOAT_REQ(n)                                                                          \
    { .name = n, .type = AUTOSP_ATTR_FLOAT, .required = true }
/* a float that must be > 0 (node.c refuses 0, negatives and NaN by name) */
#define ATTR_FLOAT_REQ_POSITIVE(n)                                                                 \
    { .name = n, .type = AUTOSP_ATTR_FLOAT, .required = true, .positive = true }
static const char *const groups[] = {"sp", "dp", "world", "ulysses", "ring", NULL};
#define ATTR_GROUP                                                                                 \
    { .name = "group", .type = AUTOSP_ATTR_STRING, .def_s = "sp", .choices = groups }
#define ATTRS(a) .attrs = a, .n_attrs = (int)ARRAY_LEN(a)

#define ARITY(lo, hi) .min_inputs = lo, .max_inputs = hi, .min_outputs = 1, .max_outputs = 1
#define UNARY(n, f, rule, shard_rule)                                                              \
    .name = n, ARITY(1, 1), .input_names = {"x"}, .infer = infer_unary, .flops_per_elem = f,       \
    .backward = rule, .shard = shard_rule
/* A list inside a macro argument: L("dout", "x") */
#define L(...)                                                                                     \
    { __VA_ARGS__ }

/* First pass over ops.def: the attribute schemas. */
#define AUTOSP_OP(id, ...)
#define AUTOSP_BACKWARD(fwd, ...)
#define AUTOSP_ATTRS(name, ...) static const attr_spec_t name[] = {__VA_ARGS__};
#include "autosp/ops.def"
#undef AUTOSP_OP
#undef AUTOSP_BACKWARD
#undef AUTOSP_ATTRS

/* Second pass: the table. A backward op takes (dout, extras..., forward inputs...) and has
 * outputs grad_of[i]. */
#define AUTOSP_ATTRS(name, ...)
#define AUTOSP_OP(id, ...) [AUTOSP_OP_##id] = {__VA_ARGS__},
#define AUTOSP_BACKWARD(fwd, n, in_lo, in_hi, out_lo, out_hi, names, grads, first, ...)            \
    [AUTOSP_OP_##fwd##_BACKWARD] = {.name = n,                                                     \
                                    .min_inputs = in_lo,                                           \
                                    .max_inputs = in_hi,                                           \
                                    .min_outputs = out_lo,                                         \
                                    .max_outputs = out_hi,                                         \
                                    .input_names = names,                                          \
                                    .infer = infer_backward,                                       \
                                    .flops = flops_backward,                                       \
                                    .is_backward = true,                                           \
                                    .forward_op = AUTOSP_OP_##fwd,                                 \
                                    .fwd_first = first,                                            \
                                    .grad_of = grads,                                              \
                                    __VA_ARGS__},

/* Sized by its entries, which come from the same list as the enum: one entry per op, in order
 * (the extern declaration of AUTOSP_OP_COUNT entries in op_table.h and the assert below check
 * it). */
const op_info_t op_table[] = {
#include "autosp/ops.def"
};
#undef AUTOSP_OP
#undef AUTOSP_BACKWARD
#undef AUTOSP_ATTRS

_Static_assert(ARRAY_LEN(op_table) == AUTOSP_OP_COUNT, "one op table entry per op");

int op_attr_find(autosp_op_t op, const char *name) {
    const op_info_t *info = &op_table[op];
    for (int i = 0; i < info->n_attrs; i++)
        if (strcmp(info->attrs[i].name, name) == 0) return i;
    return -1;
}

int op_attr_index(autosp_op_t op, const char *name) {
    int i = op_attr_find(op, name);
    AUTOSP_ASSERT(i >= 0 && "attribute not in the op's schema");
    return i;
}

const attr_value_t *node_attr(const node_t *n, const char *name) {
    return &n->attrs[op_attr_index(n->op, name)];
}
int64_t node_attr_int(const node_t *n, const char *name) {
    return node_attr(n, name)->i;
}
double node_attr_float(const node_t *n, const char *name) {
    return node_attr(n, name)->f;
}
const char *node_attr_str(const node_t *n, const char *name) {
    return node_attr(n, name)->s;
}

const char *autosp_op_name(autosp_op_t op) {
    return (unsigned)op < AUTOSP_OP_COUNT ? op_table[op].name : "?";
}

bool autosp_op_from_name(const char *name, autosp_op_t *out) {
    for (int i = 0; i < AUTOSP_OP_COUNT; i++)
        if (strcmp(op_table[i].name, name) == 0) {
            *out = (autosp_op_t)i;
            return true;
        }
    return false;
}

autosp_status_t op_infer(const autosp_graph_t *g, const node_t *n, shape_t *shapes,
                         autosp_dtype_t *dtypes, autosp_error_t *err) {
    infer_ctx_t c = {.g = g, .node = n, .n_in = n->n_in, .n_out = n->n_out, .err = err};
    for (int i = 0; i < n->n_in; i++)
        c.in[i] = n->in[i] == AUTOSP_NO_TENSOR ? NULL : graph_tensor(g, n->in[i]);
    autosp_status_t st = op_table[n->op].infer(&c);
    if (st != AUTOSP_OK) return st;
    for (int i = 0; i < n->n_out; i++) {
        shapes[i] = c.out_shape[i];
        dtypes[i] = c.out_dtype[i];
    }
    return AUTOSP_OK;
}
