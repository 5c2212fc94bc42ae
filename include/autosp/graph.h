/* autosp/graph.h: the tensor IR and the C builder API.
 *
 * A graph holds named tensors (inputs fed each step, trained parameters, computed values),
 * nodes in topological order (op, inputs, outputs, attributes), a table of shape symbols and a
 * list of graph outputs. Shapes are written as strings of comma-separated dims; a dim is an
 * integer, a symbol, or a product of them with an optional integer divisor:
 *
 *     "B,S,4096"      "B,S/4,32,128"      "B*S,64"
 *
 * Symbols are declared with autosp_symbol() and may be bound to a value at any time (the CLI's
 * --set S=8192). Every builder call runs the op's shape rule at once, so a mistake is reported
 * at the call that made it. Errors are sticky: after the first failure every builder call
 * returns AUTOSP_NO_TENSOR and does nothing, and autosp_graph_status() returns the first error,
 * so a model can be written as straight-line code and checked once at the end:
 *
 *     autosp_graph_t *g = autosp_graph_new("mlp");
 *     autosp_symbol(g, "B", 0); autosp_symbol(g, "S", 0);
 *     autosp_tensor_t x = autosp_input(g, "x", AUTOSP_F32, "B,S,64", AUTOSP_ROLE_OTHER, 1);
 *     autosp_tensor_t w = autosp_param(g, "w", AUTOSP_F32, "128,64", AUTOSP_INIT_NORMAL, 0.02);
 *     autosp_tensor_t h = autosp_silu(g, autosp_linear(g, x, w, AUTOSP_NO_TENSOR, "fc"), "act");
 *     autosp_output(g, h);
 *     autosp_error_t err;
 *     if (autosp_graph_status(g, &err) != AUTOSP_OK) fprintf(stderr, "%s\n", err.message);
 *     autosp_graph_free(g);
 *
 * Ownership: the graph owns every tensor, node and string in it; autosp_graph_free() releases
 * all of them at once. Strings returned by accessors live as long as the graph.
 */
#ifndef AUTOSP_GRAPH_H
#define AUTOSP_GRAPH_H

#include "autosp/limits.h"
#include "autosp/status.h"
#include "autosp/types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct autosp_graph autosp_graph_t;

/* A tensor is named by its index in its graph; AUTOSP_NO_TENSOR means none (or an error). */
typedef int32_t autosp_tensor_t;
#define AUTOSP_NO_TENSOR ((autosp_tensor_t)-1)

/* ---- graph lifecycle ---------------------------------------------------------------- */

/* Returns a new empty graph, or NULL when out of memory. Free with autosp_graph_free. */
autosp_graph_t *autosp_graph_new(const char *name);
void autosp_graph_free(autosp_graph_t *g);
/* A deep copy (symbols, tensors, nodes, outputs, error state). NULL when out of memory. */
autosp_graph_t *autosp_graph_clone(const autosp_graph_t *g);

/* The first error recorded by a builder call (AUTOSP_OK if none); copies it into err. */
autosp_status_t autosp_graph_status(const autosp_graph_t *g, autosp_error_t *err);

const char *autosp_graph_name(const autosp_graph_t *g);
/* For a per-rank program (autosp_parallelize): the sequence- and data-parallel sizes it was
 * compiled for; 1 and 1 for a single-device graph. */
int autosp_graph_sp(const autosp_graph_t *g);
int autosp_graph_dp(const autosp_graph_t *g);
/* The ring degree of a 2-D sequence-parallel program (autosp_parallel_config_t.ring): sp ranks
 * are sp / ring Ulysses ranks times ring ranks; 1 without rings. */
int autosp_graph_ring(const autosp_graph_t *g);
/* The sequence length the caller feeds when autosp_pad_sequence padded the program's (which
 * is then the next multiple of sp); 0 when it is not padded. */
int64_t autosp_graph_padded_from(const autosp_graph_t *g);

/* ---- symbols -------------------------------------------------------------------------- */

/* Declares a shape symbol; value > 0 binds it, 0 leaves it unbound. Declaring it again with a
 * value (re)binds it, as autosp_symbol_bind does. */
autosp_status_t autosp_symbol(autosp_graph_t *g, const char *name, int64_t value);
/* Binds an existing symbol ("S", 8192). Error if the symbol is not declared, the value is out of
 * range, or a dim that uses it would stop being an integer (e.g. "S/4" with S=10). */
autosp_status_t autosp_symbol_bind(autosp_graph_t *g, const char *name, int64_t value,
                                   autosp_error_t *err);
int autosp_graph_num_symbols(const autosp_graph_t *g);
const char *autosp_symbol_name(const autosp_graph_t *g, int index);
int64_t autosp_symbol_value(const autosp_graph_t *g, int index); /* 0 when unbound */

/* ---- tensors -------------------------------------------------------------------------- */

/* A graph input. seq_dim is the index of its sequence dim, or -1 if it has none. */
autosp_tensor_t autosp_input(autosp_graph_t *g, const char *name, autosp_dtype_t dtype,
                             const char *shape, autosp_role_t role, int seq_dim);
/* A trained parameter; std is used by AUTOSP_INIT_NORMAL only. */
autosp_tensor_t autosp_param(autosp_graph_t *g, const char *name, autosp_dtype_t dtype,
                             const char *shape, autosp_init_t init, double std);
/* Marks a tensor as a graph output (in call order). */
autosp_status_t autosp_output(autosp_graph_t *g, autosp_tensor_t t);

int autosp_graph_num_tensors(const autosp_graph_t *g);
int autosp_graph_num_outputs(const autosp_graph_t *g);
autosp_tensor_t autosp_graph_output(const autosp_graph_t *g, int index);
autosp_tensor_t autosp_tensor_find(const autosp_graph_t *g, const char *name);

const char *autosp_tensor_name(const autosp_graph_t *g, autosp_tensor_t t);
autosp_kind_t autosp_tensor_kind(const autosp_graph_t *g, autosp_tensor_t t);
autosp_dtype_t autosp_tensor_dtype(const autosp_graph_t *g, autosp_tensor_t t);
autosp_role_t autosp_tensor_role(const autosp_graph_t *g, autosp_tensor_t t);
int autosp_tensor_seq_dim(const autosp_graph_t *g, autosp_tensor_t t);
int autosp_tensor_ndim(const autosp_graph_t *g, autosp_tensor_t t);
/* Writes the shape as text ("B,S,4096") into buf; returns buf. */
char *autosp_tensor_shape_str(const autosp_graph_t *g, autosp_tensor_t t, char *buf, size_t n);
/* Element count with the current symbol bindings; -1 while a symbol it uses is unbound. */
int64_t autosp_tensor_numel(const autosp_graph_t *g, autosp_tensor_t t);
/* Size of dim `axis` of t with the current bindings; -1 while a symbol it uses is unbound. */
int64_t autosp_tensor_dim(const autosp_graph_t *g, autosp_tensor_t t, int axis);
/* Index of the node that produces t, or -1 for inputs and parameters. */
int autosp_tensor_producer(const autosp_graph_t *g, autosp_tensor_t t);

/* ---- nodes ---------------------------------------------------------------------------- */

typedef enum autosp_attr_type {
    AUTOSP_ATTR_INT,
    AUTOSP_ATTR_FLOAT,
    AUTOSP_ATTR_BOOL,
    AUTOSP_ATTR_STRING,
    AUTOSP_ATTR_INTS,  /* list of integers, e.g. a permutation */
    AUTOSP_ATTR_SHAPE, /* a shape string, e.g. "B,S,8,64" */
} autosp_attr_type_t;

/* One attribute as passed to autosp_node_add. Only the field of its type is read. */
typedef struct autosp_attr {
    const char *name;
    autosp_attr_type_t type;
    int64_t i;           /* INT, BOOL */
    double f;            /* FLOAT */
    const char *s;       /* STRING, SHAPE */
    const int64_t *ints; /* INTS */
    int n_ints;
} autosp_attr_t;

/* The general way to add a node: op, inputs, output names (NULL: derived from the node name),
 * and attributes (missing ones take the op's defaults). On success writes the output tensors to
 * outputs[0..n_outputs) and returns AUTOSP_OK. Attributes are checked against the op's schema and
 * the shape rule runs at once. */
autosp_status_t autosp_node_add(autosp_graph_t *g, autosp_op_t op, const char *name,
                                const autosp_tensor_t *inputs, int n_inputs,
                                const char *const *output_names, int n_outputs,
                                const autosp_attr_t *attrs, int n_attrs, autosp_tensor_t *outputs);

int autosp_graph_num_nodes(const autosp_graph_t *g);
const char *autosp_node_name(const autosp_graph_t *g, int node);
autosp_op_t autosp_node_op(const autosp_graph_t *g, int node);
int autosp_node_num_inputs(const autosp_graph_t *g, int node);
autosp_tensor_t autosp_node_input(const autosp_graph_t *g, int node, int index);
int autosp_node_num_outputs(const autosp_graph_t *g, int node);
autosp_tensor_t autosp_node_output(const autosp_graph_t *g, int node, int index);

/* ---- builder: one function per op ------------------------------------------------------
 * Each returns the node's (first) output, named after the node. AUTOSP_NO_TENSOR for an
 * optional input means "absent". Shapes use: B batch, S sequence, H heads, D head dim,
 * C model dim, V vocabulary, K/N matmul dims. */

/* ids (...) int, weight (V,C) -> (...,C) */
autosp_tensor_t autosp_embedding(autosp_graph_t *g, autosp_tensor_t ids, autosp_tensor_t weight,
                                 const char *name);
/* a (...,M,K), b (...,K,N) -> (...,M,N); the trans flags read a or b transposed in place */
autosp_tensor_t autosp_matmul(autosp_graph_t *g, autosp_tensor_t a, autosp_tensor_t b, bool trans_a,
                              bool trans_b, const char *name);
/* x (...,K), weight (N,K), bias (N) or none -> x @ weight^T + bias (...,N) */
autosp_tensor_t autosp_linear(autosp_graph_t *g, autosp_tensor_t x, autosp_tensor_t weight,
                              autosp_tensor_t bias, const char *name);
/* a + b, a * b; b broadcasts to a's shape (numpy rules, aligned on the right) */
autosp_tensor_t autosp_add(autosp_graph_t *g, autosp_tensor_t a, autosp_tensor_t b,
                           const char *name);
autosp_tensor_t autosp_mul(autosp_graph_t *g, autosp_tensor_t a, autosp_tensor_t b,
                           const char *name);
autosp_tensor_t autosp_scale(autosp_graph_t *g, autosp_tensor_t x, double alpha, const char *name);
/* x in another float dtype (f32, bf16, f16): rounded to nearest even when narrower */
autosp_tensor_t autosp_cast(autosp_graph_t *g, autosp_tensor_t x, autosp_dtype_t dtype,
                            const char *name);
/* x (...,C), weight (C) */
autosp_tensor_t autosp_rmsnorm(autosp_graph_t *g, autosp_tensor_t x, autosp_tensor_t weight,
                               double eps, const char *name);
autosp_tensor_t autosp_layernorm(autosp_graph_t *g, autosp_tensor_t x, autosp_tensor_t weight,
                                 autosp_tensor_t bias, double eps, const char *name);
/* x (B,S,H,D), positions (B,S) or (S) int -> (B,S,H,D), rotate-half pairing (i, i+D/2) */
autosp_tensor_t autosp_rope(autosp_graph_t *g, autosp_tensor_t x, autosp_tensor_t positions,
                            double theta, const char *name);
/* rope's frequencies scaled for a context-extended model (Hugging Face's rope_scaling) */
typedef struct autosp_rope_scaling {
    const char *type; /* "none" (or NULL), "linear" or "llama3" */
    double factor;    /* linear, llama3: every (linear) or the low (llama3) frequencies / it */
    double low_freq_factor, high_freq_factor, original_max_position; /* llama3 */
} autosp_rope_scaling_t;
/* autosp_rope with scaled frequencies; scaling NULL: autosp_rope */
autosp_tensor_t autosp_rope_scaled(autosp_graph_t *g, autosp_tensor_t x, autosp_tensor_t positions,
                                   double theta, const autosp_rope_scaling_t *scaling,
                                   const char *name);
autosp_tensor_t autosp_silu(autosp_graph_t *g, autosp_tensor_t x, const char *name);
autosp_tensor_t autosp_gelu(autosp_graph_t *g, autosp_tensor_t x, const char *name);
/* silu(gate) * up */
autosp_tensor_t autosp_swiglu(autosp_graph_t *g, autosp_tensor_t gate, autosp_tensor_t up,
                              const char *name);
/* softmax over the last dim */
autosp_tensor_t autosp_softmax(autosp_graph_t *g, autosp_tensor_t x, const char *name);
/* q (B,S,Hq,D), k and v (B,S,Hkv,D), segment_ids (B,S) int or none -> (B,S,Hq,D).
 * Query heads h use kv head h / (Hq/Hkv) (GQA). With segment ids a query attends only keys
 * of its own segment; negative ids mark padding. scale 0 means 1/sqrt(D). */
autosp_tensor_t autosp_attention(autosp_graph_t *g, autosp_tensor_t q, autosp_tensor_t k,
                                 autosp_tensor_t v, autosp_tensor_t segment_ids, int num_heads,
                                 int num_kv_heads, bool causal, double scale, const char *name);
/* shape: the new shape as a string; element counts must match */
autosp_tensor_t autosp_reshape(autosp_graph_t *g, autosp_tensor_t x, const char *shape,
                               const char *name);
autosp_tensor_t autosp_transpose(autosp_graph_t *g, autosp_tensor_t x, const int64_t *perm, int n,
                                 const char *name);
/* logits (...,V), labels (...) int -> scalar: mean over labels != ignore_index */
autosp_tensor_t autosp_cross_entropy(autosp_graph_t *g, autosp_tensor_t logits,
                                     autosp_tensor_t labels, int64_t ignore_index,
                                     const char *name);
/* How many labels are not ignore_index, as an f32 scalar (the exact loss's divisor). */
autosp_tensor_t autosp_target_count(autosp_graph_t *g, autosp_tensor_t labels, int64_t ignore_index,
                                    const char *name);
/* Each slice of x along dim repeated `repeats` times in place: out[i] = x[i / repeats]. */
autosp_tensor_t autosp_repeat(autosp_graph_t *g, autosp_tensor_t x, int dim, int repeats,
                              const char *name);
/* Collectives over a process group ("sp", "dp" or "world") of `ranks` ranks. */
autosp_tensor_t autosp_all_to_all(autosp_graph_t *g, autosp_tensor_t x, int split_dim,
                                  int concat_dim, int ranks, const char *group, const char *name);
autosp_tensor_t autosp_all_reduce(autosp_graph_t *g, autosp_tensor_t x, const char *reduce_op,
                                  int ranks, const char *group, const char *name);
autosp_tensor_t autosp_all_gather(autosp_graph_t *g, autosp_tensor_t x, int dim, int ranks,
                                  const char *group, const char *name);
/* ZeRO-2's exchange over the world of `ranks` ranks: f32 x (a constant shape, n elements) summed,
 * and this rank's elements [n r / ranks, n (r + 1) / ranks) of the flat sum kept at the start of
 * a vector of ceil(n / ranks), zero-padded. */
autosp_tensor_t autosp_reduce_scatter(autosp_graph_t *g, autosp_tensor_t x, int ranks,
                                      const char *name);

#ifdef __cplusplus
}
#endif
#endif
