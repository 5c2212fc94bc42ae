/* op_table.h: one entry per op holds everything the library knows about it.
 *
 * An entry has the name, arity, attribute schema, the shape and dtype rule, the cost (FLOPs,
 * bytes read and written as functions of the shapes), the sharding rule, the backward rule and
 * the recompute class the checkpointing policies read: what the op means, not how a device
 * runs it (a backend's kernel table does that: src/ir/backend.h). Passes ask the table; they
 * never switch on op names they do not own.
 */
#ifndef AUTOSP_OP_TABLE_H
#define AUTOSP_OP_TABLE_H

#include "ir/ir.h"

typedef struct attr_spec {
    const char *name;
    autosp_attr_type_t type;
    bool required;
    bool positive;              /* FLOAT: must be > 0 */
    int64_t def_i;              /* INT, BOOL */
    double def_f;               /* FLOAT */
    const char *def_s;          /* STRING */
    const char *const *choices; /* STRING: the allowed values, NULL-terminated */
} attr_spec_t;

typedef struct infer_ctx {
    const autosp_graph_t *g;
    const node_t *node;
    const tensor_t *in[AUTOSP_MAX_NODE_INPUTS];
    int n_in;
    shape_t out_shape[AUTOSP_MAX_NODE_OUTPUTS];
    autosp_dtype_t out_dtype[AUTOSP_MAX_NODE_OUTPUTS];
    int n_out;
    autosp_error_t *err;
} infer_ctx_t;

/* A tensor's concrete shape, once every symbol is bound. */
typedef struct cshape {
    int ndim;
    int64_t d[AUTOSP_MAX_DIMS];
    int64_t numel;
    size_t esize;
} cshape_t;

typedef struct cost_ctx {
    const node_t *node;
    cshape_t in[AUTOSP_MAX_NODE_INPUTS];
    int n_in;
    cshape_t out[AUTOSP_MAX_NODE_OUTPUTS];
    int n_out;
} cost_ctx_t;

typedef autosp_status_t (*infer_fn)(infer_ctx_t *c);

typedef struct grad_ctx grad_ctx_t; /* passes/autodiff.h */
typedef autosp_status_t (*backward_fn)(grad_ctx_t *c);
typedef double (*flops_fn)(const cost_ctx_t *c);

/* What a sharding rule (passes/sharding_rules.c) sees: a forward node of the single-device
 * graph, its inputs in that graph and in the per-rank graph (with their layouts), and a copy
 * of its attributes it may change (a reshape's target shape). It writes each output's layout. */
typedef struct shard_ctx {
    const autosp_graph_t *src, *dst;
    const node_t *node; /* in src */
    const tensor_t *src_in[AUTOSP_MAX_NODE_INPUTS];
    const tensor_t *in[AUTOSP_MAX_NODE_INPUTS]; /* in dst */
    int n_in, n_out;
    attr_value_t *attrs;
    int ranks;
    int8_t out_layout[AUTOSP_MAX_NODE_OUTPUTS], out_dim[AUTOSP_MAX_NODE_OUTPUTS];
    autosp_error_t *err;
} shard_ctx_t;
typedef autosp_status_t (*shard_fn)(shard_ctx_t *c);

/* Which checkpointing policies may recompute a forward op in the backward (passes/checkpoint.c):
 * every policy may recompute a CHEAP op (elementwise, norms, rope, views; the zero default);
 * mincut-conservative never recomputes COMPUTE ops (matmuls, embedding, the loss), ATTENTION or
 * COMM (collectives, priced by the bytes they send); sac recomputes attention only if told to. */
typedef enum recompute_class {
    RECOMPUTE_CHEAP,
    RECOMPUTE_COMPUTE,
    RECOMPUTE_ATTENTION,
    RECOMPUTE_COMM,
} recompute_class_t;

typedef struct op_info {
    const char *name;
    int min_inputs, max_inputs;
    int min_outputs, max_outputs;
    const char *input_names[AUTOSP_MAX_NODE_INPUTS];
    const char *output_suffix[AUTOSP_MAX_NODE_OUTPUTS]; /* names of outputs after the first */
    const attr_spec_t *attrs;
    int n_attrs;
    infer_fn infer;
    /* FLOPs: flops() if set, else flops_per_elem x elements of the first output. Bytes read and
     * written are the sizes of the inputs and outputs (each touched once). */
    flops_fn flops;
    double flops_per_elem;
    bool collective;      /* moves data between ranks (inserted by the SP passes) */
    /* a collective that computes under its own transfers (ring attention): the executor counts
     * as communication only the waits its kernel reports (kernel_args_t.comm_seconds) */
    bool overlaps;
    flops_fn sent;        /* collectives: bytes one rank sends per run */
    backward_fn backward; /* emits the gradient nodes (passes/autodiff_rules.c); NULL: none */
    /* how a sequence-sharded input shards the outputs (passes/sharding_rules.c); NULL: the op
     * has no rule and sp_shard refuses it when an input is sharded */
    shard_fn shard;
    recompute_class_t recompute;
    bool view; /* the output is the input's bytes seen with another shape */
    /* output 0 may take input 0's buffer when input 0 dies at this node (src/plan/memplan.c);
     * the kernel then finds out == in[0] and must work in place */
    bool in_place;
    /* Backward ops take (dout, extras..., the forward op's inputs...) and share the forward
     * op's attributes; output i has the shape and dtype of input grad_of[i]. The generic rule
     * (infer_backward) checks dout and the extras against the forward op's own rule. */
    bool is_backward;
    autosp_op_t forward_op;
    int fwd_first; /* index of the first forward input */
    int8_t grad_of[AUTOSP_MAX_NODE_OUTPUTS];
} op_info_t;

extern const op_info_t op_table[AUTOSP_OP_COUNT];

/* Index of attribute `name` in op's schema; asserts it exists (a typo is a bug). */
int op_attr_index(autosp_op_t op, const char *name);
/* The same, or -1 when op has no such attribute. */
int op_attr_find(autosp_op_t op, const char *name);
int64_t node_attr_int(const node_t *n, const char *name);
double node_attr_float(const node_t *n, const char *name);
const char *node_attr_str(const node_t *n, const char *name);
const attr_value_t *node_attr(const node_t *n, const char *name);

/* For the shape rules (ops_*.c): fail with `node "n" (op): <message>` or
 * `node "n" (op): input "k" (tensor "t") <message>`. */
autosp_status_t infer_fail(infer_ctx_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
autosp_status_t infer_fail_input(infer_ctx_t *c, int input, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Common checks: ndim at least/exactly, float or integer dtype, dim i equal to a dim. */
autosp_status_t need_ndim(infer_ctx_t *c, int input, int min_ndim, int max_ndim);
autosp_status_t need_float(infer_ctx_t *c, int input);
autosp_status_t need_int(infer_ctx_t *c, int input);
autosp_status_t need_same_dtype(infer_ctx_t *c, int a, int b);
autosp_status_t need_dim(infer_ctx_t *c, int input, int axis, dim_t expected, const char *what);
const char *dtype_str(autosp_dtype_t t);
/* The dtype of x's gradient. Mixed precision: a parameter's gradient is f32 whatever the
 * parameter's dtype, so that the backward's weight products accumulate into f32 (as in
 * Megatron's bf16 training) and the optimizer updates f32 master weights from it. So is a
 * parameter gathered from its ZeRO-3 shards (an unshard's output, in g). Other gradients have
 * their value's dtype. */
autosp_dtype_t grad_dtype_of(const autosp_graph_t *g, const tensor_t *x);

/* Shape rules, grouped by family (ops_*.c). */
autosp_status_t infer_embedding(infer_ctx_t *c);
autosp_status_t infer_matmul(infer_ctx_t *c);
autosp_status_t infer_linear(infer_ctx_t *c);
autosp_status_t infer_broadcast(infer_ctx_t *c);
autosp_status_t infer_unary(infer_ctx_t *c);
autosp_status_t infer_rmsnorm(infer_ctx_t *c);
autosp_status_t infer_layernorm(infer_ctx_t *c);
autosp_status_t infer_rope(infer_ctx_t *c);
autosp_status_t infer_swiglu(infer_ctx_t *c);
autosp_status_t infer_attention(infer_ctx_t *c);
autosp_status_t infer_ring_attention(infer_ctx_t *c);
autosp_status_t infer_reshape(infer_ctx_t *c);
autosp_status_t infer_transpose(infer_ctx_t *c);
autosp_status_t infer_cross_entropy(infer_ctx_t *c);
autosp_status_t infer_linear_cross_entropy(infer_ctx_t *c);
autosp_status_t infer_mlp(infer_ctx_t *c);
autosp_status_t infer_gelu_mlp(infer_ctx_t *c);
autosp_status_t infer_norm_linear(infer_ctx_t *c);
autosp_status_t infer_all_to_all(infer_ctx_t *c);
autosp_status_t infer_all_reduce(infer_ctx_t *c);
autosp_status_t infer_all_gather(infer_ctx_t *c);
autosp_status_t infer_reduce_scatter(infer_ctx_t *c);
autosp_status_t infer_unshard(infer_ctx_t *c);
autosp_status_t infer_target_count(infer_ctx_t *c);
autosp_status_t infer_repeat(infer_ctx_t *c);
autosp_status_t infer_fill(infer_ctx_t *c);
autosp_status_t infer_sum_to(infer_ctx_t *c);
autosp_status_t infer_index_add(infer_ctx_t *c);
autosp_status_t infer_cast(infer_ctx_t *c);
autosp_status_t infer_backward(infer_ctx_t *c);

/* Backward rules (passes/autodiff_rules.c). */
/* grad_with_backward_op: the op's own backward op (table entry with forward_op = op) computes
 * every input gradient at once. */
autosp_status_t grad_with_backward_op(grad_ctx_t *c);
autosp_status_t grad_softmax(grad_ctx_t *c);
autosp_status_t grad_embedding(grad_ctx_t *c);
autosp_status_t grad_add(grad_ctx_t *c);
autosp_status_t grad_mul(grad_ctx_t *c);
autosp_status_t grad_scale(grad_ctx_t *c);
autosp_status_t grad_rope(grad_ctx_t *c);
autosp_status_t grad_reshape(grad_ctx_t *c);
autosp_status_t grad_cast(grad_ctx_t *c);
autosp_status_t grad_transpose(grad_ctx_t *c);
autosp_status_t grad_all_to_all(grad_ctx_t *c);
autosp_status_t grad_all_reduce(grad_ctx_t *c);
autosp_status_t grad_unshard(grad_ctx_t *c);

/* Sharding rules (passes/sharding_rules.c). */
autosp_status_t shard_same(shard_ctx_t *c); /* elementwise, with broadcasting */
autosp_status_t shard_rows(shard_ctx_t *c); /* x sharded on a dim but the last; rest whole */
autosp_status_t shard_embedding(shard_ctx_t *c);
autosp_status_t shard_matmul(shard_ctx_t *c);
autosp_status_t shard_rope(shard_ctx_t *c);
autosp_status_t shard_attention(shard_ctx_t *c);
autosp_status_t shard_reshape(shard_ctx_t *c);
autosp_status_t shard_transpose(shard_ctx_t *c);
autosp_status_t shard_cross_entropy(shard_ctx_t *c);
autosp_status_t shard_target_count(shard_ctx_t *c);

/* FLOPs of one run of op on the shapes c: the entry's flops() if set, else flops_per_elem x
 * elements of the first output. */
double op_flops(autosp_op_t op, const cost_ctx_t *c);
double flops_matmul(const cost_ctx_t *c);
double flops_linear(const cost_ctx_t *c);
double flops_attention(const cost_ctx_t *c);
double flops_ring_attention(const cost_ctx_t *c);
/* The (query, key) pairs that ring position r of R attends, its L rows in zigzag order
 * against the R L keys: causal, or all of them. The same for every r when L is even. */
double ring_attention_pairs(int64_t L, int R, int r, bool causal);
double flops_cross_entropy(const cost_ctx_t *c);
double flops_linear_cross_entropy(const cost_ctx_t *c);
double flops_mlp(const cost_ctx_t *c);
double flops_gelu_mlp(const cost_ctx_t *c);
double flops_norm_linear(const cost_ctx_t *c);
/* Rows per chunk of a linear_cross_entropy of `rows` rows of C channels over V classes:
 * `chunk` (its attribute) if > 0, else the planner's size: the rows whose logits have no more
 * elements than x itself (Liger's rule: the loss adds at most about one hidden state), a
 * multiple of LOSS_CHUNK_ALIGN, at least LOSS_CHUNK_MIN_ROWS so the products stay efficient.
 * At most rows (at least 1). The kernels, their workspace rules and the planner all ask it. */
enum { LOSS_CHUNK_ALIGN = 16, LOSS_CHUNK_MIN_ROWS = 256 };
int64_t loss_chunk_rows(int64_t rows, int64_t C, int64_t V, int64_t chunk);
/* The rows of x one tile of a tiled MLP holds: `tile` (> 0), or planned (0): C rows, as ALST's
 * S / C tiles, so that a tile's F-wide intermediates are about F / C times the C-wide layer
 * activations of one tile, at least MLP_TILE_MIN_ROWS so the products stay efficient; never
 * more than rows. */
enum { MLP_TILE_MIN_ROWS = 256 };
int64_t mlp_tile_rows(int64_t rows, int64_t C, int64_t tile);
double flops_backward(const cost_ctx_t *c);
double flops_sum_to(const cost_ctx_t *c);
double flops_index_add(const cost_ctx_t *c);
double sent_all_to_all(const cost_ctx_t *c);
double sent_ring_attention(const cost_ctx_t *c);
double sent_all_reduce(const cost_ctx_t *c);
double sent_all_gather(const cost_ctx_t *c);
double sent_reduce_scatter(const cost_ctx_t *c);

/* Adds a node whose attribute values are given already (op_table[op].n_attrs of them, e.g.
 * copied from another node with the same schema); the values are deep-copied. */
autosp_status_t node_add_values(autosp_graph_t *g, autosp_op_t op, const char *name,
                                const autosp_tensor_t *inputs, int n_in,
                                const char *const *out_names, int n_out, const attr_value_t *values,
                                autosp_tensor_t *outputs, autosp_error_t *err);

/* Gives node i one more output (an optional one its op allows, e.g. attention's lse). */
autosp_status_t node_add_output(autosp_graph_t *g, int i, const char *name, autosp_error_t *err);

/* Bytes of n concrete tensors together (a node's inputs or outputs). */
int64_t cshape_bytes(const cshape_t *s, int n);

/* The concrete shapes of node i's inputs and outputs (every symbol bound). */
autosp_status_t cost_ctx_init(const autosp_graph_t *g, int i, cost_ctx_t *c, autosp_error_t *err);

/* Runs op's shape rule on node n of g (inputs already set), filling the output shapes. */
autosp_status_t op_infer(const autosp_graph_t *g, const node_t *n, shape_t *shapes,
                         autosp_dtype_t *dtypes, autosp_error_t *err);

#endif
