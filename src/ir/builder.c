/* builder.c: one C function per op, each a thin call of autosp_node_add. */
#include <string.h>

#include "ir/ir.h"

#define A_INT(n, v)                                                                                \
    { .name = n, .type = AUTOSP_ATTR_INT, .i = (v) }
#define A_BOOL(n, v)                                                                               \
    { .name = n, .type = AUTOSP_ATTR_BOOL, .i = (v) ? 1 : 0 }
#define A_FLOAT(n, v)                                                                              \
    { .name = n, .type = AUTOSP_ATTR_FLOAT, .f = (v) }
#define A_STR(n, v)                                                                                \
    { .name = n, .type = AUTOSP_ATTR_STRING, .s = (v) }

static autosp_tensor_t build(autosp_graph_t *g, autosp_op_t op, const char *name,
                             const autosp_tensor_t *in, int n_in, const autosp_attr_t *attrs,
                             int n_attrs) {
    autosp_tensor_t out = AUTOSP_NO_TENSOR;
    /* A missing input (from an earlier failed call) keeps the first error, which says why. */
    for (int i = 0; i < n_in; i++)
        if (in[i] == AUTOSP_NO_TENSOR && g->error.status != AUTOSP_OK) return AUTOSP_NO_TENSOR;
    autosp_node_add(g, op, name, in, n_in, NULL, 1, attrs, n_attrs, &out);
    return out;
}

#define IN(...)                                                                                    \
    (autosp_tensor_t[]){__VA_ARGS__},                                                              \
        (int)(sizeof((autosp_tensor_t[]){__VA_ARGS__}) / sizeof(autosp_tensor_t))
#define ATTR_LIST(...)                                                                             \
    (autosp_attr_t[]){__VA_ARGS__},                                                                \
        (int)(sizeof((autosp_attr_t[]){__VA_ARGS__}) / sizeof(autosp_attr_t))

autosp_tensor_t autosp_embedding(autosp_graph_t *g, autosp_tensor_t ids, autosp_tensor_t weight,
                                 const char *name) {
    return build(g, AUTOSP_OP_EMBEDDING, name, IN(ids, weight), NULL, 0);
}

autosp_tensor_t autosp_matmul(autosp_graph_t *g, autosp_tensor_t a, autosp_tensor_t b, bool trans_a,
                              bool trans_b, const char *name) {
    return build(g, AUTOSP_OP_MATMUL, name, IN(a, b),
                 ATTR_LIST(A_BOOL("trans_a", trans_a), A_BOOL("trans_b", trans_b)));
}

autosp_tensor_t autosp_linear(autosp_graph_t *g, autosp_tensor_t x, autosp_tensor_t weight,
                              autosp_tensor_t bias, const char *name) {
    autosp_tensor_t in[3] = {x, weight, bias};
    return build(g, AUTOSP_OP_LINEAR, name, in, bias == AUTOSP_NO_TENSOR ? 2 : 3, NULL, 0);
}

autosp_tensor_t autosp_add(autosp_graph_t *g, autosp_tensor_t a, autosp_tensor_t b,
                           const char *name) {
    return build(g, AUTOSP_OP_ADD, name, IN(a, b), NULL, 0);
}

autosp_tensor_t autosp_mul(autosp_graph_t *g, autosp_tensor_t a, autosp_tensor_t b,
                           const char *name) {
    return build(g, AUTOSP_OP_MUL, name, IN(a, b), NULL, 0);
}

autosp_tensor_t autosp_scale(autosp_graph_t *g, autosp_tensor_t x, double alpha, const char *name) {
    return build(g, AUTOSP_OP_SCALE, name, IN(x), ATTR_LIST(A_FLOAT("alpha", alpha)));
}

autosp_tensor_t autosp_cast(autosp_graph_t *g, autosp_tensor_t x, autosp_dtype_t dtype,
                            const char *name) {
    return build(g, AUTOSP_OP_CAST, name, IN(x),
                 ATTR_LIST(A_STR("dtype", autosp_dtype_name(dtype))));
}

autosp_tensor_t autosp_rmsnorm(autosp_graph_t *g, autosp_tensor_t x, autosp_tensor_t weight,
                               double eps, const char *name) {
    return build(g, AUTOSP_OP_RMSNORM, name, IN(x, weight), ATTR_LIST(A_FLOAT("eps", eps)));
}

autosp_tensor_t autosp_layernorm(autosp_graph_t *g, autosp_tensor_t x, autosp_tensor_t weight,
                                 autosp_tensor_t bias, double eps, const char *name) {
    return build(g, AUTOSP_OP_LAYERNORM, name, IN(x, weight, bias), ATTR_LIST(A_FLOAT("eps", eps)));
}

autosp_tensor_t autosp_rope(autosp_graph_t *g, autosp_tensor_t x, autosp_tensor_t positions,
                            double theta, const char *name) {
    return build(g, AUTOSP_OP_ROPE, name, IN(x, positions), ATTR_LIST(A_FLOAT("theta", theta)));
}

autosp_tensor_t autosp_rope_scaled(autosp_graph_t *g, autosp_tensor_t x, autosp_tensor_t positions,
                                   double theta, const autosp_rope_scaling_t *s, const char *name) {
    if (!s || !s->type || !strcmp(s->type, "none"))
        return autosp_rope(g, x, positions, theta, name);
    return build(g, AUTOSP_OP_ROPE, name, IN(x, positions),
                 ATTR_LIST(A_FLOAT("theta", theta), A_STR("scaling", s->type),
                           A_FLOAT("factor", s->factor),
                           A_FLOAT("low_freq_factor", s->low_freq_factor),
                           A_FLOAT("high_freq_factor", s->high_freq_factor),
                           A_FLOAT("original_max_position", s->original_max_position)));
}

autosp_tensor_t autosp_silu(autosp_graph_t *g, autosp_tensor_t x, const char *name) {
    return build(g, AUTOSP_OP_SILU, name, IN(x), NULL, 0);
}

autosp_tensor_t autosp_gelu(autosp_graph_t *g, autosp_tensor_t x, const char *name) {
    return build(g, AUTOSP_OP_GELU, name, IN(x), NULL, 0);
}

autosp_tensor_t autosp_swiglu(autosp_graph_t *g, autosp_tensor_t gate, autosp_tensor_t up,
                              const char *name) {
    return build(g, AUTOSP_OP_SWIGLU, name, IN(gate, up), NULL, 0);
}

autosp_tensor_t autosp_softmax(autosp_graph_t *g, autosp_tensor_t x, const char *name) {
    return build(g, AUTOSP_OP_SOFTMAX, name, IN(x), NULL, 0);
}

autosp_tensor_t autosp_attention(autosp_graph_t *g, autosp_tensor_t q, autosp_tensor_t k,
                                 autosp_tensor_t v, autosp_tensor_t segment_ids, int num_heads,
                                 int num_kv_heads, bool causal, double scale, const char *name) {
    autosp_tensor_t in[4] = {q, k, v, segment_ids};
    return build(g, AUTOSP_OP_ATTENTION, name, in, segment_ids == AUTOSP_NO_TENSOR ? 3 : 4,
                 ATTR_LIST(A_INT("num_heads", num_heads), A_INT("num_kv_heads", num_kv_heads),
                           A_BOOL("causal", causal), A_FLOAT("scale", scale)));
}

autosp_tensor_t autosp_reshape(autosp_graph_t *g, autosp_tensor_t x, const char *shape,
                               const char *name) {
    return build(g, AUTOSP_OP_RESHAPE, name, IN(x),
                 ATTR_LIST({.name = "shape", .type = AUTOSP_ATTR_SHAPE, .s = shape}));
}

autosp_tensor_t autosp_transpose(autosp_graph_t *g, autosp_tensor_t x, const int64_t *perm, int n,
                                 const char *name) {
    return build(g, AUTOSP_OP_TRANSPOSE, name, IN(x),
                 ATTR_LIST({.name = "perm", .type = AUTOSP_ATTR_INTS, .ints = perm, .n_ints = n}));
}

autosp_tensor_t autosp_cross_entropy(autosp_graph_t *g, autosp_tensor_t logits,
                                     autosp_tensor_t labels, int64_t ignore_index,
                                     const char *name) {
    return build(g, AUTOSP_OP_CROSS_ENTROPY, name, IN(logits, labels),
                 ATTR_LIST(A_INT("ignore_index", ignore_index)));
}

autosp_tensor_t autosp_target_count(autosp_graph_t *g, autosp_tensor_t labels, int64_t ignore_index,
                                    const char *name) {
    return build(g, AUTOSP_OP_TARGET_COUNT, name, IN(labels),
                 ATTR_LIST(A_INT("ignore_index", ignore_index)));
}

autosp_tensor_t autosp_repeat(autosp_graph_t *g, autosp_tensor_t x, int dim, int repeats,
                              const char *name) {
    return build(g, AUTOSP_OP_REPEAT, name, IN(x),
                 ATTR_LIST(A_INT("dim", dim), A_INT("repeats", repeats)));
}

autosp_tensor_t autosp_all_to_all(autosp_graph_t *g, autosp_tensor_t x, int split_dim,
                                  int concat_dim, int ranks, const char *group, const char *name) {
    return build(g, AUTOSP_OP_ALL_TO_ALL, name, IN(x),
                 ATTR_LIST(A_INT("split_dim", split_dim), A_INT("concat_dim", concat_dim),
                           A_INT("ranks", ranks), A_STR("group", group)));
}

autosp_tensor_t autosp_all_reduce(autosp_graph_t *g, autosp_tensor_t x, const char *reduce_op,
                                  int ranks, const char *group, const char *name) {
    return build(g, AUTOSP_OP_ALL_REDUCE, name, IN(x),
                 ATTR_LIST(A_STR("op", reduce_op), A_INT("ranks", ranks), A_STR("group", group)));
}

autosp_tensor_t autosp_all_gather(autosp_graph_t *g, autosp_tensor_t x, int dim, int ranks,
                                  const char *group, const char *name) {
    return build(g, AUTOSP_OP_ALL_GATHER, name, IN(x),
                 ATTR_LIST(A_INT("dim", dim), A_INT("ranks", ranks), A_STR("group", group)));
}

autosp_tensor_t autosp_reduce_scatter(autosp_graph_t *g, autosp_tensor_t x, int ranks,
                                      const char *name) {
    return build(g, AUTOSP_OP_REDUCE_SCATTER, name, IN(x),
                 ATTR_LIST(A_INT("ranks", ranks), A_STR("group", "world")));
}
