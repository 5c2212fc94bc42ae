/* test_ops.c: one table drives every op (after ggml's test-backend-ops). A row is an op, the
 * shapes of its inputs, its attributes, the shape its output must have and a naive reference
 * of its forward. For every row the harness checks
 *  (a) the shape rule: the node added with autosp_node_add has the row's output shape;
 *  (b) the gradient, when the op has a backward rule: every f32 input is a parameter, the loss
 *      is a cross-entropy over the output (the output itself when it is a scalar), and
 *      gradcheck.h compares every parameter's gradient through autosp_autodiff and the executor
 *      with central differences (eps 3e-3, |a - n| <= 2e-2 max(|a|, |n|) + 5e-4);
 *  (c) the cpu backend's kernel, run by the executor, against the reference: normalised MSE
 *      sum (a-b)^2 / sum b^2 <= 1e-10, test_kernels.c's bound (an RMS relative error of 1e-5);
 *  (d) sequence locality: the op on S = 4 against the op on each half of the sequence (P = 2
 *      slices of every input along its dim named S, in one process), the halves concatenated
 *      along the output's dim named S: bitwise equal. A row that is not sequence-local says why
 *      (`not_local`); test_sp checks those ops across ranks under mpirun.
 * and a float attribute that must be positive is refused at 0, with its name.
 * Symbols: B = 2, S = 5 (S = 4 and 2 x 2 for the slices). A new op needs one row. */
#include <math.h>

#include "gradcheck.h"
#include "base/bf16.h"
#include "ir/op_table.h"
#include "ref/ref.h"

#define VOCAB    6 /* ids and labels lie below it; rows keep V and the loss's last dim >= 6 */
#define NMSE_MAX 1e-10
#define MAX_IN   5

typedef struct in_spec {
    const char *shape;    /* over B and S; the dim named S is the sequence */
    autosp_dtype_t dtype; /* f32: a parameter (random, gets a gradient); i32: an input */
    autosp_role_t role;   /* i32: which values fill_inputs gives it */
} in_spec_t;
#define X(s)                                                                                       \
    { s, AUTOSP_F32, AUTOSP_ROLE_OTHER }
#define IDS(s)                                                                                     \
    { s, AUTOSP_I32, AUTOSP_ROLE_TOKENS }
#define POS(s)                                                                                     \
    { s, AUTOSP_I32, AUTOSP_ROLE_POSITIONS }
#define SEG(s)                                                                                     \
    { s, AUTOSP_I32, AUTOSP_ROLE_SEGMENT_IDS }
#define LABELS(s)                                                                                  \
    { s, AUTOSP_I32, AUTOSP_ROLE_LABELS }

#define A_INT(n, v)                                                                                \
    { .name = n, .type = AUTOSP_ATTR_INT, .i = v }
#define A_BOOL(n, v)                                                                               \
    { .name = n, .type = AUTOSP_ATTR_BOOL, .i = v }
#define A_FLOAT(n, v)                                                                              \
    { .name = n, .type = AUTOSP_ATTR_FLOAT, .f = v }
#define A_STR(n, v)                                                                                \
    { .name = n, .type = AUTOSP_ATTR_STRING, .s = v }
#define A_SHAPE(n, v)                                                                              \
    { .name = n, .type = AUTOSP_ATTR_SHAPE, .s = v }
#define A_INTS(n, ...)                                                                             \
    {                                                                                              \
        .name = n, .type = AUTOSP_ATTR_INTS, .ints = (const int64_t[]){__VA_ARGS__},               \
        .n_ints = (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t))                        \
    }

/* The reference forward: the node's concrete shapes and attributes, its inputs, output 0. */
typedef void (*ref_fn)(const cost_ctx_t *c, const void *const *in, float *out);

typedef struct op_row {
    autosp_op_t op;
    const char *what;     /* NULL: the op's name */
    in_spec_t in[MAX_IN]; /* named by the op's input_names */
    autosp_attr_t attrs[4];
    const char *out; /* the shape of output 0 (f32) */
    ref_fn ref;
    const char *not_local; /* NULL: sequence-local, (d) runs; else why it cannot */
} op_row_t;

/* ---- references: the shapes from c, a naive kernel from tests/ref ------------------------- */
#define CF(p) ((const float *)(p))
#define CI(p) ((const int32_t *)(p))

static int64_t rows_of(const cshape_t *s) {
    return s->ndim ? s->numel / s->d[s->ndim - 1] : 1;
}
static int64_t last_of(const cshape_t *s) {
    return s->ndim ? s->d[s->ndim - 1] : 1;
}
static float attr_f(const cost_ctx_t *c, const char *name) {
    return (float)node_attr_float(c->node, name);
}

static void ref_copy(const cost_ctx_t *c, const void *const *in, float *out) {
    memcpy(out, in[0], (size_t)c->out[0].numel * sizeof(float));
}
static void ref_embedding(const cost_ctx_t *c, const void *const *in, float *out) {
    ref_embedding_forward(out, CI(in[0]), CF(in[1]), c->in[0].numel, c->in[1].d[1]);
}
static void ref_matmul(const cost_ctx_t *c, const void *const *in, float *out) {
    const cshape_t *a = &c->in[0], *b = &c->in[1];
    matmul_dims_t d = {.trans_a = node_attr_int(c->node, "trans_a"),
                       .trans_b = node_attr_int(c->node, "trans_b")};
    d.M = a->d[a->ndim - (d.trans_a ? 1 : 2)];
    d.K = a->d[a->ndim - (d.trans_a ? 2 : 1)];
    d.N = b->d[b->ndim - (d.trans_b ? 2 : 1)];
    d.batch = c->out[0].numel / (d.M * d.N);
    d.a_shared = a->ndim == 2 && d.batch > 1;
    d.b_shared = b->ndim == 2 && d.batch > 1;
    ref_matmul_forward(out, CF(in[0]), CF(in[1]), &d);
}
static void ref_linear(const cost_ctx_t *c, const void *const *in, float *out) {
    ref_linear_forward(out, CF(in[0]), CF(in[1]), c->n_in == 3 ? CF(in[2]) : NULL,
                       rows_of(&c->in[0]), c->in[1].d[1], c->in[1].d[0]);
}
static void ref_add(const cost_ctx_t *c, const void *const *in, float *out) {
    ref_broadcast_binary(out, CF(in[0]), c->in[0].ndim, c->in[0].d, CF(in[1]), c->in[1].ndim,
                         c->in[1].d, false);
}
static void ref_mul(const cost_ctx_t *c, const void *const *in, float *out) {
    ref_broadcast_binary(out, CF(in[0]), c->in[0].ndim, c->in[0].d, CF(in[1]), c->in[1].ndim,
                         c->in[1].d, true);
}
static void ref_scale(const cost_ctx_t *c, const void *const *in, float *out) {
    for (int64_t i = 0; i < c->out[0].numel; i++) out[i] = attr_f(c, "alpha") * CF(in[0])[i];
}
static void ref_rmsnorm(const cost_ctx_t *c, const void *const *in, float *out) {
    ref_rmsnorm_forward(out, CF(in[0]), CF(in[1]), rows_of(&c->in[0]), last_of(&c->in[0]),
                        attr_f(c, "eps"));
}
static void ref_layernorm(const cost_ctx_t *c, const void *const *in, float *out) {
    ref_layernorm_forward(out, CF(in[0]), CF(in[1]), CF(in[2]), rows_of(&c->in[0]),
                          last_of(&c->in[0]), attr_f(c, "eps"));
}
/* positions (B,S) or (S), shared by every batch entry */
static void ref_rope(const cost_ctx_t *c, const void *const *in, float *out) {
    const int64_t *d = c->in[0].d, per_batch = d[1] * d[2] * d[3];
    bool shared = c->in[1].ndim == 1, inverse = node_attr_int(c->node, "inverse");
    for (int64_t b = 0; b < d[0]; b++)
        ref_rope_forward(out + b * per_batch, CF(in[0]) + b * per_batch,
                         CI(in[1]) + (shared ? 0 : b * d[1]), 1, d[1], d[2], d[3],
                         attr_f(c, "theta"), inverse);
}
static void ref_silu(const cost_ctx_t *c, const void *const *in, float *out) {
    ref_silu_forward(out, CF(in[0]), c->out[0].numel);
}
static void ref_gelu(const cost_ctx_t *c, const void *const *in, float *out) {
    ref_gelu_forward(out, CF(in[0]), c->out[0].numel);
}
static void ref_swiglu(const cost_ctx_t *c, const void *const *in, float *out) {
    ref_swiglu_forward(out, CF(in[0]), CF(in[1]), c->out[0].numel);
}
static void ref_softmax(const cost_ctx_t *c, const void *const *in, float *out) {
    ref_softmax_forward(out, CF(in[0]), rows_of(&c->in[0]), last_of(&c->in[0]));
}
static void ref_attention(const cost_ctx_t *c, const void *const *in, float *out) {
    const int64_t *q = c->in[0].d, *k = c->in[1].d;
    double scale = node_attr_float(c->node, "scale");
    attention_dims_t d = {.B = q[0], .S = q[1], .Skv = k[1], .Hq = q[2], .Hkv = k[2], .D = q[3]};
    d.causal = node_attr_int(c->node, "causal");
    d.scale = (float)(scale > 0 ? scale : 1.0 / sqrt((double)d.D));
    float *lse = malloc(sizeof(float) * (size_t)(d.B * d.Hq * d.S));
    ref_attention_forward(out, lse, CF(in[0]), CF(in[1]), CF(in[2]),
                          c->n_in == 4 ? CI(in[3]) : NULL, &d);
    free(lse);
}
static void ref_transpose_op(const cost_ctx_t *c, const void *const *in, float *out) {
    ref_transpose(out, CF(in[0]), c->in[0].ndim, c->in[0].d, node_attr(c->node, "perm")->ints);
}
static void ref_cross_entropy(const cost_ctx_t *c, const void *const *in, float *out) {
    out[0] = ref_cross_entropy_forward(CF(in[0]), CI(in[1]), rows_of(&c->in[0]), last_of(&c->in[0]),
                                       (int32_t)node_attr_int(c->node, "ignore_index"));
}
/* x (rows,C) weight^T, then the mean cross-entropy (the chunk changes nothing but the sums' order)
 */
static void ref_linear_cross_entropy(const cost_ctx_t *c, const void *const *in, float *out) {
    int64_t rows = rows_of(&c->in[0]), C = last_of(&c->in[0]), V = c->in[1].d[0];
    float *logits = malloc(sizeof(float) * (size_t)(rows * V));
    ref_linear_forward(logits, CF(in[0]), CF(in[1]), NULL, rows, C, V);
    out[0] = ref_cross_entropy_forward(logits, CI(in[2]), rows, V,
                                       (int32_t)node_attr_int(c->node, "ignore_index"));
    free(logits);
}
/* the three products and swiglu, untiled (the tile changes nothing but the sums' order),
 * after the rmsnorm when there is a norm_weight */
static void ref_mlp(const cost_ctx_t *c, const void *const *in, float *out) {
    int64_t rows = rows_of(&c->in[0]), C = last_of(&c->in[0]), F = c->in[1].d[0];
    float *gate = malloc(sizeof(float) * (size_t)(3 * rows * F + rows * C)), *up = gate + rows * F,
          *h = up + rows * F, *x = (float *)CF(in[0]);
    if (c->n_in == 5) {
        x = h + rows * F;
        ref_rmsnorm_forward(x, CF(in[0]), CF(in[4]), rows, C, attr_f(c, "eps"));
    }
    ref_linear_forward(gate, x, CF(in[1]), NULL, rows, C, F);
    ref_linear_forward(up, x, CF(in[2]), NULL, rows, C, F);
    ref_swiglu_forward(h, gate, up, rows * F);
    ref_linear_forward(out, h, CF(in[3]), NULL, rows, F, C);
    free(gate);
}
/* GPT-2's: the two products with their biases and gelu, untiled */
static void ref_gelu_mlp(const cost_ctx_t *c, const void *const *in, float *out) {
    int64_t rows = rows_of(&c->in[0]), C = last_of(&c->in[0]), F = c->in[1].d[0];
    float *h = malloc(sizeof(float) * (size_t)(2 * rows * F)), *g = h + rows * F;
    ref_linear_forward(h, CF(in[0]), CF(in[1]), CF(in[2]), rows, C, F);
    ref_gelu_forward(g, h, rows * F);
    ref_linear_forward(out, g, CF(in[3]), CF(in[4]), rows, F, C);
    free(h);
}
/* the norm, then the projection, untiled */
static void ref_norm_linear(const cost_ctx_t *c, const void *const *in, float *out) {
    bool layernorm = c->node->op == AUTOSP_OP_LAYERNORM_LINEAR;
    int w = layernorm ? 3 : 2;
    int64_t rows = rows_of(&c->in[0]), C = last_of(&c->in[0]), N = c->in[w].d[0];
    float *n = malloc(sizeof(float) * (size_t)(rows * C)), eps = attr_f(c, "eps");
    if (layernorm)
        ref_layernorm_forward(n, CF(in[0]), CF(in[1]), CF(in[2]), rows, C, eps);
    else
        ref_rmsnorm_forward(n, CF(in[0]), CF(in[1]), rows, C, eps);
    ref_linear_forward(out, n, CF(in[w]), c->n_in > w + 1 ? CF(in[w + 1]) : NULL, rows, C, N);
    free(n);
}
static void ref_target_count(const cost_ctx_t *c, const void *const *in, float *out) {
    out[0] = (float)ref_count_targets(CI(in[0]), c->in[0].numel,
                                      (int32_t)node_attr_int(c->node, "ignore_index"));
}
static void ref_repeat(const cost_ctx_t *c, const void *const *in, float *out) {
    int dim = (int)node_attr_int(c->node, "dim");
    int64_t outer = 1, inner = 1;
    for (int k = 0; k < dim; k++) outer *= c->in[0].d[k];
    for (int k = dim + 1; k < c->in[0].ndim; k++) inner *= c->in[0].d[k];
    ref_repeat_forward(out, CF(in[0]), outer, c->in[0].d[dim], node_attr_int(c->node, "repeats"),
                       inner);
}
static void ref_fill(const cost_ctx_t *c, const void *const *in, float *out) {
    (void)in;
    for (int64_t i = 0; i < c->out[0].numel; i++) out[i] = attr_f(c, "value");
}
static void ref_sum_to_op(const cost_ctx_t *c, const void *const *in, float *out) {
    ref_sum_to(out, c->out[0].ndim, c->out[0].d, CF(in[0]), c->in[0].ndim, c->in[0].d);
}
static void ref_index_add_op(const cost_ctx_t *c, const void *const *in, float *out) {
    ref_index_add(out, CF(in[0]), c->in[0].d[0], c->in[0].d[1], CI(in[1]), c->in[1].numel,
                  CF(in[2]));
}

/* softcap: cap * tanh(x / cap), in double */
static void ref_softcap(const cost_ctx_t *c, const void *const *in, float *out) {
    double cap = node_attr_float(c->node, "cap");
    for (int64_t i = 0; i < c->out[0].numel; i++) out[i] = (float)(cap * tanh(CF(in[0])[i] / cap));
}

/* ---- the rows ----------------------------------------------------------------------------- */
#define OP(id)     .op = AUTOSP_OP_##id
#define ACROSS     "attention: every query reads keys across the sequence"
#define COLLECTIVE "a collective: one process is a group of one here; test_sp runs it across ranks"

static const op_row_t rows[] = {
    {OP(EMBEDDING), .in = {IDS("B,S"), X("6,6")}, .out = "B,S,6", .ref = ref_embedding},
    {OP(MATMUL), .what = "matmul trans_a trans_b shared b", .in = {X("B,4,S"), X("6,4")},
     .attrs = {A_BOOL("trans_a", 1), A_BOOL("trans_b", 1)}, .out = "B,S,6", .ref = ref_matmul},
    {OP(MATMUL), .what = "matmul batched", .in = {X("B,S,4"), X("B,4,6")}, .out = "B,S,6",
     .ref = ref_matmul},
    {OP(LINEAR), .in = {X("B,S,4"), X("6,4"), X("6")}, .out = "B,S,6", .ref = ref_linear},
    {OP(LINEAR), .what = "linear no bias", .in = {X("B,S,4"), X("6,4")}, .out = "B,S,6",
     .ref = ref_linear},
    {OP(ADD), .what = "add broadcast", .in = {X("B,S,6"), X("S,1")}, .out = "B,S,6",
     .ref = ref_add},
    {OP(ADD), .in = {X("B,S,6"), X("B,S,6")}, .out = "B,S,6", .ref = ref_add},
    {OP(MUL), .what = "mul broadcast", .in = {X("B,S,6"), X("6")}, .out = "B,S,6", .ref = ref_mul},
    {OP(SCALE), .in = {X("B,S,6")}, .attrs = {A_FLOAT("alpha", -1.5)}, .out = "B,S,6",
     .ref = ref_scale},
    {OP(RMSNORM), .in = {X("B,S,6"), X("6")}, .out = "B,S,6", .ref = ref_rmsnorm},
    {OP(LAYERNORM), .in = {X("B,S,6"), X("6"), X("6")}, .out = "B,S,6", .ref = ref_layernorm},
    {OP(ROPE), .in = {X("B,S,3,4"), POS("B,S")}, .attrs = {A_FLOAT("theta", 100.0)},
     .out = "B,S,3,4", .ref = ref_rope},
    {OP(ROPE), .what = "rope shared positions", .in = {X("B,S,3,4"), POS("S")}, .out = "B,S,3,4",
     .ref = ref_rope},
    {OP(SILU), .in = {X("B,S,6")}, .out = "B,S,6", .ref = ref_silu},
    {OP(GELU), .in = {X("B,S,6")}, .out = "B,S,6", .ref = ref_gelu},
    {OP(SWIGLU), .in = {X("B,S,6"), X("B,S,6")}, .out = "B,S,6", .ref = ref_swiglu},
    {OP(SOFTMAX), .in = {X("B,S,6")}, .out = "B,S,6", .ref = ref_softmax},
    {OP(ATTENTION), .what = "attention causal", .in = {X("B,S,2,4"), X("B,S,2,4"), X("B,S,2,4")},
     .attrs = {A_INT("num_heads", 2), A_INT("num_kv_heads", 2)}, .out = "B,S,2,4",
     .ref = ref_attention, .not_local = ACROSS},
    {OP(ATTENTION), .what = "attention GQA causal",
     .in = {X("B,S,4,4"), X("B,S,2,4"), X("B,S,2,4")},
     .attrs = {A_INT("num_heads", 4), A_INT("num_kv_heads", 2)}, .out = "B,S,4,4",
     .ref = ref_attention, .not_local = ACROSS},
    {OP(ATTENTION), .what = "attention GQA full", .in = {X("B,S,2,4"), X("B,S,1,4"), X("B,S,1,4")},
     .attrs = {A_INT("num_heads", 2), A_INT("num_kv_heads", 1), A_BOOL("causal", 0)},
     .out = "B,S,2,4", .ref = ref_attention, .not_local = ACROSS},
    {OP(ATTENTION), .what = "attention with segment ids and padding",
     .in = {X("B,S,2,4"), X("B,S,2,4"), X("B,S,2,4"), SEG("B,S")},
     .attrs = {A_INT("num_heads", 2), A_INT("num_kv_heads", 2)}, .out = "B,S,2,4",
     .ref = ref_attention, .not_local = ACROSS},
    /* a ring of one in one process (test_sp runs rings of 2 to 8 across ranks) */
    {OP(RING_ATTENTION), .what = "ring_attention GQA causal, a ring of one",
     .in = {X("B,S,4,4"), X("B,S,2,4"), X("B,S,2,4")},
     .attrs = {A_INT("num_heads", 4), A_INT("num_kv_heads", 2), A_INT("ranks", 1)},
     .out = "B,S,4,4", .ref = ref_attention, .not_local = ACROSS},
    {OP(RING_ATTENTION), .what = "ring_attention with segment ids, a ring of one",
     .in = {X("B,S,2,4"), X("B,S,2,4"), X("B,S,2,4"), SEG("B,S")},
     .attrs = {A_INT("num_heads", 2), A_INT("num_kv_heads", 2), A_INT("ranks", 1)},
     .out = "B,S,2,4", .ref = ref_attention, .not_local = ACROSS},
    {OP(RESHAPE), .in = {X("B,S,6")}, .attrs = {A_SHAPE("shape", "B,S,2,3")}, .out = "B,S,2,3",
     .ref = ref_copy},
    {OP(TRANSPOSE), .in = {X("B,S,6")}, .attrs = {A_INTS("perm", 1, 0, 2)}, .out = "S,B,6",
     .ref = ref_transpose_op},
    {OP(CROSS_ENTROPY), .in = {X("B,S,6"), LABELS("B,S")}, .out = "", .ref = ref_cross_entropy,
     .not_local = "the mean over every target (exact_loss divides by the global count)"},
    {OP(LINEAR_CROSS_ENTROPY), .what = "linear_cross_entropy in chunks of 3 rows of 10",
     .in = {X("B,S,4"), X("6,4"), LABELS("B,S")}, .attrs = {A_INT("chunk", 3)}, .out = "",
     .ref = ref_linear_cross_entropy, .not_local = "the mean over every target, as cross_entropy"},
    {OP(LINEAR_CROSS_ENTROPY), .what = "linear_cross_entropy in the planner's chunks",
     .in = {X("B,S,4"), X("6,4"), LABELS("B,S")}, .out = "", .ref = ref_linear_cross_entropy,
     .not_local = "the mean over every target, as cross_entropy"},
    {OP(MLP), .what = "mlp in tiles of 3 rows of 10",
     .in = {X("B,S,6"), X("5,6"), X("5,6"), X("6,5")}, .attrs = {A_INT("tile", 3)}, .out = "B,S,6",
     .ref = ref_mlp},
    {OP(MLP), .what = "mlp with its rmsnorm in tiles of 4 rows of 10",
     .in = {X("B,S,6"), X("5,6"), X("5,6"), X("6,5"), X("6")}, .attrs = {A_INT("tile", 4)},
     .out = "B,S,6", .ref = ref_mlp},
    {OP(MLP), .what = "mlp in the planner's tiles",
     .in = {X("B,S,6"), X("5,6"), X("5,6"), X("6,5")}, .out = "B,S,6", .ref = ref_mlp},
    {OP(GELU_MLP), .what = "gelu_mlp in tiles of 3 rows of 10",
     .in = {X("B,S,6"), X("5,6"), X("5"), X("6,5"), X("6")}, .attrs = {A_INT("tile", 3)},
     .out = "B,S,6", .ref = ref_gelu_mlp},
    {OP(GELU_MLP), .what = "gelu_mlp in the planner's tiles",
     .in = {X("B,S,6"), X("5,6"), X("5"), X("6,5"), X("6")}, .out = "B,S,6", .ref = ref_gelu_mlp},
    {OP(RMSNORM_LINEAR), .what = "rmsnorm_linear in tiles of 3 rows of 10",
     .in = {X("B,S,6"), X("6"), X("7,6")}, .attrs = {A_INT("tile", 3)}, .out = "B,S,7",
     .ref = ref_norm_linear},
    {OP(RMSNORM_LINEAR), .what = "rmsnorm_linear with a bias in the planner's tiles",
     .in = {X("B,S,6"), X("6"), X("7,6"), X("7")}, .out = "B,S,7", .ref = ref_norm_linear},
    {OP(LAYERNORM_LINEAR), .what = "layernorm_linear with a bias in tiles of 4 rows of 10",
     .in = {X("B,S,6"), X("6"), X("6"), X("7,6"), X("7")}, .attrs = {A_INT("tile", 4)},
     .out = "B,S,7", .ref = ref_norm_linear},
    {OP(LAYERNORM_LINEAR), .what = "layernorm_linear in the planner's tiles",
     .in = {X("B,S,6"), X("6"), X("6"), X("7,6")}, .out = "B,S,7", .ref = ref_norm_linear},
    {OP(TARGET_COUNT), .in = {LABELS("B,S")}, .out = "", .ref = ref_target_count,
     .not_local = "a count over the whole sequence, summed across ranks, not concatenated"},
    {OP(REPEAT), .what = "repeat (GQA's kv heads for more ranks)", .in = {X("B,S,2,3")},
     .attrs = {A_INT("dim", 2), A_INT("repeats", 2)}, .out = "B,S,4,3", .ref = ref_repeat},
    {OP(ALL_TO_ALL), .in = {X("B,S,6")},
     .attrs = {A_INT("split_dim", 2), A_INT("concat_dim", 1), A_INT("ranks", 1)}, .out = "B,S,6",
     .ref = ref_copy, .not_local = COLLECTIVE},
    {OP(ALL_REDUCE), .in = {X("B,S,6")}, .attrs = {A_INT("ranks", 1)}, .out = "B,S,6",
     .ref = ref_copy, .not_local = COLLECTIVE},
    {OP(ALL_GATHER), .in = {X("B,S,6")}, .attrs = {A_INT("dim", 1), A_INT("ranks", 1)},
     .out = "B,S,6", .ref = ref_copy, .not_local = COLLECTIVE},
    {OP(REDUCE_SCATTER), .in = {X("6,4")}, .attrs = {A_INT("ranks", 1), A_STR("group", "world")},
     .out = "24", .ref = ref_copy, .not_local = COLLECTIVE},
    {OP(UNSHARD), .in = {X("60")},
     .attrs = {A_SHAPE("shape", "10,6"), A_INT("ranks", 1), A_STR("group", "world")}, .out = "10,6",
     .ref = ref_copy, .not_local = COLLECTIVE},
    {OP(FILL), .attrs = {A_SHAPE("shape", "B,S,3"), A_FLOAT("value", 0.5)}, .out = "B,S,3",
     .ref = ref_fill, .not_local = "no sharding rule: autodiff emits it, after sp_shard"},
    {OP(SUM_TO), .in = {X("B,S,6"), X("S,1")}, .out = "S,1", .ref = ref_sum_to_op,
     .not_local = "no sharding rule: autodiff emits it, after sp_shard"},
    {OP(INDEX_ADD), .in = {X("6,6"), IDS("B,S"), X("B,S,6")}, .out = "6,6", .ref = ref_index_add_op,
     .not_local = "no sharding rule: autodiff emits it, after sp_shard"},
    {OP(SOFTCAP), .in = {X("B,S,6")}, .attrs = {A_FLOAT("cap", 0.8)}, .out = "B,S,6",
     .ref = ref_softcap},
    {OP(CAST), .in = {X("B,S,6")}, .attrs = {A_STR("dtype", "f32")}, .out = "B,S,6",
     .ref = ref_copy},
    {OP(SOFTCAP), .what = "softcap saturating", .in = {X("B,S,2,3")},
     .attrs = {A_FLOAT("cap", 0.2)}, .out = "B,S,2,3", .ref = ref_softcap},
};

/* ---- the harness -------------------------------------------------------------------------- */

static const char *what(const op_row_t *row) {
    return row->what ? row->what : op_table[row->op].name;
}
static int n_inputs(const op_row_t *row) {
    int n = 0;
    while (n < MAX_IN && row->in[n].shape) n++;
    return n;
}
static int n_attrs(const op_row_t *row) {
    int n = 0;
    while (n < (int)ARRAY_LEN(row->attrs) && row->attrs[n].name) n++;
    return n;
}

/* The index of the dim named S in a shape string, or -1. */
static int seq_axis(const char *shape) {
    for (int axis = 0; *shape; axis++) {
        size_t len = strcspn(shape, ",");
        if (len == 1 && shape[0] == 'S') return axis;
        shape += len + (shape[len] == ',');
    }
    return -1;
}

/* How build() makes the row's float inputs: parameters of f32 (the default) or of another
 * dtype, and either the op's inputs themselves or scale(parameter, 1) (so that their gradients
 * are activation gradients, in the float dtype, not f32 parameter gradients). */
typedef struct floats {
    autosp_dtype_t dtype;
    bool via_scale;
} floats_t;

/* The row's node "y" on a graph with B = 2 and the given S; attrs replaces the row's if set. */
static autosp_graph_t *build_as(const op_row_t *row, int64_t S, const autosp_attr_t *attrs,
                                floats_t f, autosp_tensor_t *y) {
    autosp_graph_t *g = autosp_graph_new("op");
    assert_non_null(g);
    autosp_symbol(g, "B", 2);
    autosp_symbol(g, "S", S);
    autosp_tensor_t in[MAX_IN];
    for (int k = 0; k < n_inputs(row); k++) {
        const in_spec_t *s = &row->in[k];
        const char *name = op_table[row->op].input_names[k];
        char param[64];
        snprintf(param, sizeof param, "%s.param", name);
        if (s->dtype != AUTOSP_F32)
            in[k] = autosp_input(g, name, s->dtype, s->shape, s->role, seq_axis(s->shape));
        else if (f.via_scale)
            in[k] = autosp_scale(
                g, autosp_param(g, param, f.dtype, s->shape, AUTOSP_INIT_NORMAL, 0.02), 1.0, name);
        else
            in[k] = autosp_param(g, name, f.dtype, s->shape, AUTOSP_INIT_NORMAL, 0.02);
    }
    *y = AUTOSP_NO_TENSOR;
    autosp_node_add(g, row->op, "y", in, n_inputs(row), NULL, 1, attrs ? attrs : row->attrs,
                    n_attrs(row), y);
    return g;
}

static autosp_graph_t *build(const op_row_t *row, int64_t S, const autosp_attr_t *attrs,
                             autosp_tensor_t *y) {
    return build_as(row, S, attrs, (floats_t){AUTOSP_F32, false}, y);
}

/* (a) */
static void check_shape(const op_row_t *row) {
    autosp_tensor_t y;
    autosp_graph_t *g = build(row, 5, NULL, &y);
    assert_shape(g, y, row->out, AUTOSP_F32);
    autosp_graph_free(g);
}

/* Every float attribute that must be positive is refused at 0, by name. */
static void check_attr_ranges(const op_row_t *row) {
    const op_info_t *info = &op_table[row->op];
    for (int a = 0; a < info->n_attrs; a++) {
        if (!info->attrs[a].positive) continue;
        autosp_attr_t attrs[ARRAY_LEN(row->attrs)];
        memcpy(attrs, row->attrs, sizeof attrs);
        for (int k = 0; k < n_attrs(row); k++)
            if (!strcmp(attrs[k].name, info->attrs[a].name)) attrs[k].f = 0;
        char want[128];
        snprintf(want, sizeof want, "attribute \"%s\" is 0, expected a value > 0",
                 info->attrs[a].name);
        autosp_tensor_t y;
        autosp_graph_t *g = build(row, 5, attrs, &y);
        assert_error_and_free(g, want);
    }
}

/* The scalar loss of the gradient checks: y itself when it is a scalar, else a cross-entropy
 * over y's rows. */
static void add_loss(autosp_graph_t *g, autosp_tensor_t y) {
    int64_t numel = autosp_tensor_numel(g, y), rows_n = 2 * 5;
    if (numel == 1) {
        autosp_output(g, autosp_scale(g, y, 1.0, "loss"));
    } else {
        assert_true(numel % rows_n == 0 && numel / rows_n >= VOCAB);
        char rows_last[64];
        snprintf(rows_last, sizeof rows_last, "%lld,%lld", (long long)rows_n,
                 (long long)(numel / rows_n));
        finish(g, y, rows_last);
    }
}

/* (b) */
static void check_gradient(const op_row_t *row) {
    if (!op_table[row->op].backward) return;
    autosp_tensor_t y;
    autosp_graph_t *g = build(row, 5, NULL, &y);
    add_loss(g, y);
    gradcheck(g, VOCAB, 1000, what(row));
    autosp_graph_free(g);
}

typedef struct run {
    autosp_graph_t *g;
    autosp_tensor_t y;
    autosp_comm_t *comm; /* one process: collectives run as groups of one */
    autosp_executor_t *ex;
} run_t;

/* The row's graph at S with y as its output, on an executor whose inputs are filled. */
static run_t run_new(const op_row_t *row, int64_t S) {
    run_t r;
    r.g = build(row, S, NULL, &r.y);
    assert_int_equal(autosp_output(r.g, r.y), AUTOSP_OK);
    autosp_error_t err;
    r.comm = autosp_comm_new_single(&err);
    r.ex = r.comm ? autosp_executor_new_comm(r.g, r.comm, &err) : NULL;
    if (!r.ex) fail_msg("%s: %s", what(row), err.message);
    fill_inputs(r.g, r.ex, VOCAB);
    return r;
}
static float *run_go(const op_row_t *row, run_t *r) {
    autosp_error_t err;
    if (autosp_executor_run(r->ex, &err) != AUTOSP_OK) fail_msg("%s: %s", what(row), err.message);
    return autosp_executor_data(r->ex, "y");
}
static void run_free(run_t *r) {
    autosp_executor_free(r->ex);
    autosp_comm_free(r->comm);
    autosp_graph_free(r->g);
}

static double nmse(const float *a, const float *b, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return den > 0 ? num / den : num;
}

/* (c) */
static void check_reference(const op_row_t *row) {
    run_t r = run_new(row, 5);
    const float *got = run_go(row, &r);
    cost_ctx_t c;
    assert_int_equal(cost_ctx_init(r.g, autosp_tensor_producer(r.g, r.y), &c, NULL), AUTOSP_OK);
    const void *in[MAX_IN];
    for (int k = 0; k < n_inputs(row); k++)
        in[k] = autosp_executor_data(r.ex, op_table[row->op].input_names[k]);
    int64_t n = c.out[0].numel;
    float *want = malloc(sizeof(float) * (size_t)n);
    row->ref(&c, in, want);
    double e = nmse(got, want, n);
    if (!(e <= NMSE_MAX)) fail_msg("%s: kernel vs reference NMSE %g", what(row), e);
    free(want);
    run_free(&r);
}

/* Between half `part` of dim `axis` of a whole tensor (ndim dims d) and a half-size block. */
static void copy_half(char *whole, char *half, const int64_t *d, int ndim, int axis, int part,
                      size_t esize, bool to_half) {
    int64_t outer = 1, inner = (int64_t)esize, len = d[axis] / 2;
    for (int k = 0; k < axis; k++) outer *= d[k];
    for (int k = axis + 1; k < ndim; k++) inner *= d[k];
    for (int64_t o = 0; o < outer; o++) {
        char *w = whole + (o * d[axis] + part * len) * inner, *h = half + o * len * inner;
        memcpy(to_half ? h : w, to_half ? w : h, (size_t)(len * inner));
    }
}

/* A tensor's dims in g. */
static int dims_of(const autosp_graph_t *g, autosp_tensor_t t, int64_t *d) {
    int n = autosp_tensor_ndim(g, t);
    for (int k = 0; k < n; k++) d[k] = autosp_tensor_dim(g, t, k);
    return n;
}

/* One half of the sequence: the whole run's inputs sliced in, the output sliced out into cat. */
static void run_half(const op_row_t *row, const run_t *whole, int part, float *cat) {
    run_t h = run_new(row, 2);
    for (int k = 0; k < n_inputs(row); k++) {
        const char *name = op_table[row->op].input_names[k];
        autosp_tensor_t t = autosp_tensor_find(whole->g, name);
        int64_t d[AUTOSP_MAX_DIMS];
        int nd = dims_of(whole->g, t, d), axis = seq_axis(row->in[k].shape);
        size_t esize = autosp_dtype_size(autosp_tensor_dtype(whole->g, t));
        char *src = autosp_executor_data(whole->ex, name), *dst = autosp_executor_data(h.ex, name);
        if (axis < 0)
            memcpy(dst, src, (size_t)autosp_tensor_numel(whole->g, t) * esize);
        else
            copy_half(src, dst, d, nd, axis, part, esize, true);
    }
    float *y = run_go(row, &h);
    int64_t d[AUTOSP_MAX_DIMS];
    int nd = dims_of(whole->g, whole->y, d);
    copy_half((char *)cat, (char *)y, d, nd, seq_axis(row->out), part, sizeof(float), false);
    run_free(&h);
}

/* (d) */
static void check_slices(const op_row_t *row) {
    if (row->not_local) return;
    /* honest flags: a sequence-local op has a sharding rule and a sequence dim to split */
    assert_non_null(op_table[row->op].shard);
    assert_true(seq_axis(row->out) >= 0);
    run_t whole = run_new(row, 4);
    const float *y = run_go(row, &whole);
    int64_t n = autosp_tensor_numel(whole.g, whole.y);
    float *cat = malloc(sizeof(float) * (size_t)n);
    for (int part = 0; part < 2; part++) run_half(row, &whole, part, cat);
    if (memcmp(cat, y, sizeof(float) * (size_t)n))
        fail_msg("%s: the two halves differ from the whole (NMSE %g)", what(row), nmse(cat, y, n));
    free(cat);
    run_free(&whole);
}

/* (e) bf16: the row in bf16 against the row in f32 on the same values (the f32 run's inputs
 * rounded to bf16 first), forward and, through autodiff, every parameter's gradient. Twice:
 * with the float inputs as parameters (their gradients are f32 outputs of the op's backward)
 * and as scale(parameter, 1) (bf16 activation gradients, cast to f32 by autodiff).
 * Bound, normwise: |a - b| / |b| <= r u + K 2^-24 with u = 2^-8 (bf16's unit roundoff), K the
 * reduction length (at most 64 in these rows) and r the bf16 roundings between the two: the
 * output's own (r = 1 forward; the kernels accumulate in f32), and for a gradient also the
 * loss's gradient w.r.t. y and the op's input gradient (r = 4 leaves one for the way the
 * rounded y moves the loss's gradient). Ops that only move values are exact. */
#define BF16_U 0.00390625
typedef struct typed {
    autosp_graph_t *g, *j; /* the row's graph and what runs: its joint graph, or g itself */
    autosp_comm_t *comm;
    autosp_executor_t *ex;
} typed_t;

static bool has_float_input(const op_row_t *row) {
    for (int k = 0; k < n_inputs(row); k++)
        if (row->in[k].dtype == AUTOSP_F32) return true;
    return false;
}

static typed_t typed_new(const op_row_t *row, floats_t f) {
    typed_t t = {0};
    autosp_tensor_t y;
    t.g = build_as(row, 5, NULL, f, &y);
    bool grads = op_table[row->op].backward != NULL;
    if (grads) add_loss(t.g, y);
    assert_int_equal(autosp_output(t.g, y), AUTOSP_OK);
    autosp_error_t err;
    t.j = grads ? autosp_autodiff(t.g, &err) : t.g;
    if (!t.j) fail_msg("%s in %s: %s", what(row), autosp_dtype_name(f.dtype), err.message);
    t.comm = autosp_comm_new_single(&err);
    t.ex = t.comm ? autosp_executor_new_comm(t.j, t.comm, &err) : NULL;
    if (!t.ex) fail_msg("%s in %s: %s", what(row), autosp_dtype_name(f.dtype), err.message);
    return t;
}

static void typed_free(typed_t *t) {
    autosp_executor_free(t->ex);
    autosp_comm_free(t->comm);
    if (t->j != t->g) autosp_graph_free(t->j);
    autosp_graph_free(t->g);
}

/* The f32 run's inputs rounded to bf16, in both runs. */
static void share_inputs(typed_t *f32, typed_t *b16) {
    fill_inputs(f32->j, f32->ex, VOCAB);
    for (autosp_tensor_t t = 0; t < autosp_graph_num_tensors(b16->j); t++) {
        if (autosp_tensor_kind(b16->j, t) == AUTOSP_KIND_VALUE) continue;
        const char *name = autosp_tensor_name(b16->j, t);
        int64_t n = autosp_tensor_numel(b16->j, t);
        void *src = autosp_executor_data(f32->ex, name), *dst = autosp_executor_data(b16->ex, name);
        if (autosp_tensor_dtype(b16->j, t) != AUTOSP_BF16) {
            memcpy(dst, src, (size_t)n * autosp_dtype_size(autosp_tensor_dtype(b16->j, t)));
            continue;
        }
        bf16_from_f32_n(dst, src, n);
        bf16_to_f32_n(src, dst, n);
    }
}

/* Tensor `name` of a run as floats (a bf16 tensor widened); the caller frees it. */
static float *widened(const typed_t *t, const char *name, int64_t *n) {
    autosp_tensor_t x = autosp_tensor_find(t->j, name);
    assert_true(x >= 0);
    *n = autosp_tensor_numel(t->j, x);
    float *out = malloc(sizeof(float) * (size_t)(*n + 1));
    const void *p = autosp_executor_data(t->ex, name);
    if (autosp_tensor_dtype(t->j, x) == AUTOSP_BF16)
        bf16_to_f32_n(out, p, *n);
    else
        memcpy(out, p, sizeof(float) * (size_t)*n);
    return out;
}

/* Squared 2-norm of tensor `name` of a run (0 when the run has no such tensor). */
static double norm2(const typed_t *t, const char *name) {
    if (autosp_tensor_find(t->j, name) < 0) return 0;
    int64_t n;
    float *x = widened(t, name, &n);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    free(x);
    return s;
}

/* A gradient is measured against the larger of its own norm and that of y's gradient (loss.grad):
 * the gradient of an operand broadcast along a cross-entropy row sums to zero, while the rounding
 * of its summands does not. */
static void compare_bf16(const op_row_t *row, const typed_t *f32, const typed_t *b16,
                         const char *name, int roundings, const char *how) {
    int64_t n, n16;
    float *want = widened(f32, name, &n), *got = widened(b16, name, &n16);
    assert_int_equal(n, n16);
    double num = 0, den = roundings > 1 ? norm2(f32, "loss.grad") : 0;
    for (int64_t i = 0; i < n; i++) num += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
    double w2 = 0;
    for (int64_t i = 0; i < n; i++) w2 += (double)want[i] * want[i];
    if (w2 > den) den = w2;
    double e = den > 0 ? sqrt(num / den) : sqrt(num), bound = roundings * BF16_U + 64.0 / (1 << 24);
    if (!(e <= bound))
        fail_msg("%s (%s), bf16 vs f32: %s off by %.3g normwise, bound %.3g", what(row), how, name,
                 e, bound);
    free(want);
    free(got);
}

static void check_bf16_as(const op_row_t *row, bool via_scale) {
    const char *how = via_scale ? "activation gradients" : "parameter gradients";
    typed_t f32 = typed_new(row, (floats_t){AUTOSP_F32, via_scale});
    typed_t b16 = typed_new(row, (floats_t){AUTOSP_BF16, via_scale});
    share_inputs(&f32, &b16);
    autosp_error_t err;
    if (autosp_executor_run(f32.ex, &err) != AUTOSP_OK) fail_msg("%s: %s", what(row), err.message);
    if (autosp_executor_run(b16.ex, &err) != AUTOSP_OK)
        fail_msg("%s in bf16: %s", what(row), err.message);
    compare_bf16(row, &f32, &b16, "y", 1, how);
    for (autosp_tensor_t t = 0; op_table[row->op].backward && t < autosp_graph_num_tensors(f32.g);
         t++) {
        if (autosp_tensor_kind(f32.g, t) != AUTOSP_KIND_PARAM) continue;
        char grad[96];
        snprintf(grad, sizeof grad, "%s.grad", autosp_tensor_name(f32.g, t));
        compare_bf16(row, &f32, &b16, grad, 4, how);
    }
    typed_free(&f32);
    typed_free(&b16);
}

static void check_bf16(const op_row_t *row) {
    if (!has_float_input(row)) return;               /* fill, target_count: no float to narrow */
    if (row->op == AUTOSP_OP_REDUCE_SCATTER) return; /* f32 only: it sums f32 gradients */
    check_bf16_as(row, false);
    check_bf16_as(row, true);
}

static void test_rows(void **state) {
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
        check_shape(&rows[i]);
        check_attr_ranges(&rows[i]);
        check_gradient(&rows[i]);
        check_reference(&rows[i]);
        check_slices(&rows[i]);
        check_bf16(&rows[i]);
    }
}

/* Every forward op the cpu backend runs has a row; a backward op is covered by its forward's. */
static void test_every_op_has_a_row(void **state) {
    (void)state;
    bool has_row[AUTOSP_OP_COUNT] = {0};
    for (size_t i = 0; i < ARRAY_LEN(rows); i++) has_row[rows[i].op] = true;
    const autosp_backend_t *cpu = autosp_backend_cpu();
    for (int op = 0; op < AUTOSP_OP_COUNT; op++) {
        const op_info_t *info = &op_table[op];
        bool runs = autosp_backend_supports(cpu, (autosp_op_t)op, AUTOSP_F32);
        if (info->is_backward && !has_row[info->forward_op])
            fail_msg("%s: its forward op %s has no row", info->name,
                     op_table[info->forward_op].name);
        if (!info->is_backward && runs && !has_row[op]) fail_msg("op %s has no row", info->name);
    }
}

/* Every op that runs in f32 on a float input runs in bf16 too; target_count counts integer
 * labels, so its one kernel is f32. */
static void test_every_f32_kernel_has_bf16(void **state) {
    (void)state;
    const autosp_backend_t *cpu = autosp_backend_cpu();
    for (int op = 0; op < AUTOSP_OP_COUNT; op++) {
        /* a count of labels, and ZeRO-2's sum of f32 gradients: f32 whatever the model's dtype */
        if (op == AUTOSP_OP_TARGET_COUNT || op == AUTOSP_OP_REDUCE_SCATTER) continue;
        if (autosp_backend_supports(cpu, (autosp_op_t)op, AUTOSP_F32) &&
            !autosp_backend_supports(cpu, (autosp_op_t)op, AUTOSP_BF16))
            fail_msg("op %s has an f32 kernel and no bf16 kernel", op_table[op].name);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_every_op_has_a_row),
        cmocka_unit_test(test_every_f32_kernel_has_bf16),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
