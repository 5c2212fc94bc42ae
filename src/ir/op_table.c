/* op_table.c: the op table, what every op means. Adding an op is one entry here, its shape
 * rule, a kernel in each backend (src/backends/cpu/cpu_backend.c) and a row of tests/test_ops.c. */
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
#define ATTRS(a) .attrs = a, .n_attrs = (int)ARRAY_LEN(a)

static const char *const groups[] = {"sp", "dp", "world", NULL};
static const char *const reduce_ops[] = {"sum", "mean", NULL};

static const attr_spec_t matmul_attrs[] = {ATTR_BOOL("trans_a", 0), ATTR_BOOL("trans_b", 0)};
static const attr_spec_t scale_attrs[] = {ATTR_FLOAT_REQ("alpha")};
static const attr_spec_t norm_attrs[] = {ATTR_FLOAT("eps", 1e-5)};
static const attr_spec_t rope_attrs[] = {ATTR_FLOAT("theta", 10000.0),
                                         ATTR_BOOL("inverse", 0)}; /* inverse: the backward */
static const attr_spec_t attention_attrs[] = {
    ATTR_INT_REQ("num_heads"), ATTR_INT("num_kv_heads", 0), /* 0: same as num_heads */
    ATTR_BOOL("causal", 1), ATTR_FLOAT("scale", 0.0),       /* 0: 1/sqrt(D) */
};
static const attr_spec_t reshape_attrs[] = {
    {.name = "shape", .type = AUTOSP_ATTR_SHAPE, .required = true}};
static const attr_spec_t transpose_attrs[] = {
    {.name = "perm", .type = AUTOSP_ATTR_INTS, .required = true}};
static const attr_spec_t cross_entropy_attrs[] = {ATTR_INT("ignore_index", -100)};
static const attr_spec_t repeat_attrs[] = {ATTR_INT_REQ("dim"), ATTR_INT_REQ("repeats")};
#define ATTR_GROUP                                                                                 \
    { .name = "group", .type = AUTOSP_ATTR_STRING, .def_s = "sp", .choices = groups }
static const attr_spec_t all_to_all_attrs[] = {
    ATTR_INT_REQ("split_dim"), ATTR_INT_REQ("concat_dim"), ATTR_INT_REQ("ranks"), ATTR_GROUP};
static const attr_spec_t all_reduce_attrs[] = {
    {.name = "op", .type = AUTOSP_ATTR_STRING, .def_s = "sum", .choices = reduce_ops},
    ATTR_INT_REQ("ranks"),
    ATTR_GROUP};
static const attr_spec_t all_gather_attrs[] = {ATTR_INT_REQ("dim"), ATTR_INT_REQ("ranks"),
                                               ATTR_GROUP};

static const attr_spec_t fill_attrs[] = {
    {.name = "shape", .type = AUTOSP_ATTR_SHAPE, .required = true}, ATTR_FLOAT("value", 0.0)};

#define ARITY(lo, hi) .min_inputs = lo, .max_inputs = hi, .min_outputs = 1, .max_outputs = 1
/* A backward op: inputs (dout, extras..., forward inputs...), outputs grad_of[i]. */
#define L(...)                                                                                     \
    { __VA_ARGS__ }
#define BACKWARD(fwd, n, in_lo, in_hi, out_lo, out_hi, names, grads, first, ...)                   \
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
                                    __VA_ARGS__}
#define UNARY(n, f, rule, shard_rule)                                                              \
    {                                                                                              \
        .name = n, ARITY(1, 1), .input_names = {"x"}, .infer = infer_unary, .flops_per_elem = f,   \
        .backward = rule, .shard = shard_rule                                                      \
    }

/* Sized by its entries: with the extern declaration of AUTOSP_OP_COUNT entries in op_table.h,
 * a missing last entry does not compile; test_shapes catches a gap in the middle. */
const op_info_t op_table[] = {
    [AUTOSP_OP_EMBEDDING] = {.recompute = RECOMPUTE_COMPUTE,
                             .shard = shard_embedding,
                             .backward = grad_embedding,
                             .name = "embedding",
                             ARITY(2, 2),
                             .input_names = {"ids", "weight"},
                             .infer = infer_embedding},
    [AUTOSP_OP_MATMUL] = {.recompute = RECOMPUTE_COMPUTE,
                          .shard = shard_matmul,
                          .backward = grad_with_backward_op,
                          .name = "matmul",
                          ARITY(2, 2),
                          .input_names = {"a", "b"},
                          ATTRS(matmul_attrs),
                          .infer = infer_matmul,
                          .flops = flops_matmul},
    [AUTOSP_OP_LINEAR] = {.recompute = RECOMPUTE_COMPUTE,
                          .shard = shard_rows,
                          .backward = grad_with_backward_op,
                          .name = "linear",
                          ARITY(2, 3),
                          .input_names = {"x", "weight", "bias"},
                          .infer = infer_linear,
                          .flops = flops_linear},
    [AUTOSP_OP_ADD] = {.shard = shard_same,
                       .backward = grad_add,
                       .name = "add",
                       ARITY(2, 2),
                       .input_names = {"a", "b"},
                       .infer = infer_broadcast,
                       .flops_per_elem = 1},
    [AUTOSP_OP_MUL] = {.shard = shard_same,
                       .backward = grad_mul,
                       .name = "mul",
                       ARITY(2, 2),
                       .input_names = {"a", "b"},
                       .infer = infer_broadcast,
                       .flops_per_elem = 1},
    [AUTOSP_OP_SCALE] = {.shard = shard_same,
                         .backward = grad_scale,
                         .name = "scale",
                         ARITY(1, 1),
                         .input_names = {"x"},
                         ATTRS(scale_attrs),
                         .infer = infer_unary,
                         .flops_per_elem = 1},
    [AUTOSP_OP_RMSNORM] = {.shard = shard_rows,
                           .backward = grad_with_backward_op,
                           .name = "rmsnorm",
                           ARITY(2, 2),
                           .input_names = {"x", "weight"},
                           ATTRS(norm_attrs),
                           .infer = infer_rmsnorm,
                           .flops_per_elem = 4},
    [AUTOSP_OP_LAYERNORM] = {.shard = shard_rows,
                             .backward = grad_with_backward_op,
                             .name = "layernorm",
                             ARITY(3, 3),
                             .input_names = {"x", "weight", "bias"},
                             ATTRS(norm_attrs),
                             .infer = infer_layernorm,
                             .flops_per_elem = 7},
    [AUTOSP_OP_ROPE] = {.shard = shard_rope,
                        .backward = grad_rope,
                        .name = "rope",
                        ARITY(2, 2),
                        .input_names = {"x", "positions"},
                        ATTRS(rope_attrs),
                        .infer = infer_rope,
                        .flops_per_elem = 3},
    [AUTOSP_OP_SILU] = UNARY("silu", 4, grad_with_backward_op, shard_same),
    [AUTOSP_OP_GELU] = UNARY("gelu", 8, grad_with_backward_op, shard_same),
    [AUTOSP_OP_SWIGLU] = {.shard = shard_same,
                          .backward = grad_with_backward_op,
                          .name = "swiglu",
                          ARITY(2, 2),
                          .input_names = {"gate", "up"},
                          .infer = infer_swiglu,
                          .flops_per_elem = 5},
    [AUTOSP_OP_SOFTMAX] = UNARY("softmax", 5, grad_softmax, shard_rows),
    [AUTOSP_OP_ATTENTION] = {.recompute = RECOMPUTE_ATTENTION,
                             .shard = shard_attention,
                             .backward = grad_with_backward_op,
                             .name = "attention",
                             .min_inputs = 3,
                             .max_inputs = 4,
                             .min_outputs = 1,
                             .max_outputs = 2,
                             .input_names = {"q", "k", "v", "segment_ids"},
                             .output_suffix = {NULL, ".lse"},
                             ATTRS(attention_attrs),
                             .infer = infer_attention,
                             .flops = flops_attention},
    [AUTOSP_OP_RESHAPE] = {.shard = shard_reshape,
                           .backward = grad_reshape,
                           .view = true,
                           .name = "reshape",
                           ARITY(1, 1),
                           .input_names = {"x"},
                           ATTRS(reshape_attrs),
                           .infer = infer_reshape},
    [AUTOSP_OP_TRANSPOSE] = {.shard = shard_transpose,
                             .backward = grad_transpose,
                             .name = "transpose",
                             ARITY(1, 1),
                             .input_names = {"x"},
                             ATTRS(transpose_attrs),
                             .infer = infer_transpose},
    [AUTOSP_OP_CROSS_ENTROPY] = {.recompute = RECOMPUTE_COMPUTE,
                                 .backward = grad_with_backward_op,
                                 .shard = shard_cross_entropy,
                                 .name = "cross_entropy",
                                 ARITY(2, 3),
                                 .input_names = {"logits", "labels", "normalizer"},
                                 ATTRS(cross_entropy_attrs),
                                 .infer = infer_cross_entropy,
                                 .flops = flops_cross_entropy},
    [AUTOSP_OP_TARGET_COUNT] = {.shard = shard_target_count,
                                .name = "target_count",
                                ARITY(1, 1),
                                .input_names = {"labels"},
                                ATTRS(cross_entropy_attrs),
                                .infer = infer_target_count},
    [AUTOSP_OP_REPEAT] = {.backward = grad_with_backward_op,
                          .shard = shard_same,
                          .name = "repeat",
                          ARITY(1, 1),
                          .input_names = {"x"},
                          ATTRS(repeat_attrs),
                          .infer = infer_repeat},
    /* Collectives carry 1..n tensors in one message: output i belongs to input i. */
    [AUTOSP_OP_ALL_TO_ALL] = {.recompute = RECOMPUTE_COMM,
                              .backward = grad_all_to_all,
                              .name = "all_to_all",
                              .min_inputs = 1,
                              .max_inputs = 4,
                              .min_outputs = 1,
                              .max_outputs = 4,
                              .input_names = {"x", "x1", "x2", "x3"},
                              ATTRS(all_to_all_attrs),
                              .infer = infer_all_to_all,
                              .sent = sent_all_to_all,
                              .collective = true},
    [AUTOSP_OP_ALL_REDUCE] = {.recompute = RECOMPUTE_COMM,
                              .backward = grad_all_reduce,
                              .name = "all_reduce",
                              .min_inputs = 1,
                              .max_inputs = AUTOSP_MAX_NODE_OUTPUTS,
                              .min_outputs = 1,
                              .max_outputs = AUTOSP_MAX_NODE_OUTPUTS,
                              .input_names = {"x", "x1", "x2", "x3", "x4", "x5", "x6", "x7"},
                              ATTRS(all_reduce_attrs),
                              .infer = infer_all_reduce,
                              .sent = sent_all_reduce,
                              .collective = true},
    [AUTOSP_OP_ALL_GATHER] = {.recompute = RECOMPUTE_COMM,
                              .name = "all_gather",
                              ARITY(1, 1),
                              .input_names = {"x"},
                              ATTRS(all_gather_attrs),
                              .infer = infer_all_gather,
                              .sent = sent_all_gather,
                              .collective = true},
    [AUTOSP_OP_FILL] = {.name = "fill",
                        .min_inputs = 0,
                        .max_inputs = 0,
                        .min_outputs = 1,
                        .max_outputs = 1,
                        ATTRS(fill_attrs),
                        .infer = infer_fill},
    [AUTOSP_OP_SUM_TO] = {.name = "sum_to",
                          ARITY(2, 2),
                          .input_names = {"x", "like"},
                          .infer = infer_sum_to,
                          .flops = flops_sum_to,
                          .flops_per_elem = 1},
    [AUTOSP_OP_INDEX_ADD] = {.name = "index_add",
                             ARITY(3, 3),
                             .input_names = {"base", "ids", "src"},
                             .infer = infer_index_add,
                             .flops = flops_index_add,
                             .in_place = true},
    BACKWARD(EMBEDDING, "embedding_backward", 3, 3, 1, 1, L("dout", "ids", "weight"), L(2), 1),
    BACKWARD(MATMUL, "matmul_backward", 3, 3, 2, 2, L("dout", "a", "b"), L(1, 2), 1,
             ATTRS(matmul_attrs)),
    BACKWARD(LINEAR, "linear_backward", 3, 4, 2, 3, L("dout", "x", "weight", "bias"), L(1, 2, 3),
             1),
    BACKWARD(RMSNORM, "rmsnorm_backward", 3, 3, 2, 2, L("dout", "x", "weight"), L(1, 2), 1,
             ATTRS(norm_attrs)),
    BACKWARD(LAYERNORM, "layernorm_backward", 4, 4, 3, 3, L("dout", "x", "weight", "bias"),
             L(1, 2, 3), 1, ATTRS(norm_attrs)),
    BACKWARD(SILU, "silu_backward", 2, 2, 1, 1, L("dout", "x"), L(1), 1),
    BACKWARD(GELU, "gelu_backward", 2, 2, 1, 1, L("dout", "x"), L(1), 1),
    BACKWARD(SWIGLU, "swiglu_backward", 3, 3, 2, 2, L("dout", "gate", "up"), L(1, 2), 1),
    /* softmax's backward needs its output y, which has the shape of its input */
    BACKWARD(SOFTMAX, "softmax_backward", 2, 2, 1, 1, L("dout", "y"), L(1), 1),
    BACKWARD(ATTENTION, "attention_backward", 6, 7, 3, 3,
             L("dout", "out", "lse", "q", "k", "v", "segment_ids"), L(3, 4, 5), 3,
             ATTRS(attention_attrs)),
    BACKWARD(CROSS_ENTROPY, "cross_entropy_backward", 3, 4, 1, 1,
             L("dout", "logits", "labels", "normalizer"), L(1), 1, ATTRS(cross_entropy_attrs)),
    BACKWARD(REPEAT, "repeat_backward", 2, 2, 1, 1, L("dout", "x"), L(1), 1, ATTRS(repeat_attrs)),
};
/* a missing last entry would leave a zeroed one (the extern declaration fixes the size) */

_Static_assert(ARRAY_LEN(op_table) == AUTOSP_OP_COUNT, "one op table entry per op");

int op_attr_index(autosp_op_t op, const char *name) {
    const op_info_t *info = &op_table[op];
    for (int i = 0; i < info->n_attrs; i++)
        if (strcmp(info->attrs[i].name, name) == 0) return i;
    AUTOSP_ASSERT(!"attribute not in the op's schema");
    return -1;
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
