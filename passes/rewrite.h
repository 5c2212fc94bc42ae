/* rewrite.h: building a pass's output graph node by node from its input graph.
 *
 * The passes that insert or replace nodes (sp_shard, ulysses, exact_loss, grad_sync) copy the
 * source graph in order: rewrite_begin copies the symbols and every input and parameter,
 * rewrite_node copies one node (its inputs mapped, its outputs' layouts kept), rewrite_emit adds
 * a new node, and rewrite_finish maps the outputs and verifies the result. map[] sends each
 * source tensor to its counterpart; a pass that replaces a node points map at the replacement.
 */
#ifndef AUTOSP_PASSES_REWRITE_H
#define AUTOSP_PASSES_REWRITE_H

#include "ir/op_table.h"

typedef struct rewrite {
    const autosp_graph_t *src;
    autosp_graph_t *dst;
    autosp_tensor_t *map; /* src tensor -> dst tensor */
    autosp_error_t *err;
} rewrite_t;

/* Starts dst as a copy of src's symbols, parallel sizes, inputs and parameters. */
autosp_status_t rewrite_begin(rewrite_t *rw, const autosp_graph_t *src, autosp_error_t *err);
/* Copies node i of src with attrs (NULL: its own), mapping inputs and outputs. */
autosp_status_t rewrite_node(rewrite_t *rw, int i, const attr_value_t *attrs);
/* Adds a node to dst; inputs are dst tensors. out_names NULL: the node's name (one output). */
autosp_status_t rewrite_emit(rewrite_t *rw, autosp_op_t op, const char *name,
                             const autosp_tensor_t *in, int n_in, const char *const *out_names,
                             int n_out, const attr_value_t *attrs, autosp_tensor_t *out);
/* Adds a node of op to dst in place of src node `replaced` (one output): its name, its output's
 * name and layout; map sends that output to the new one. Inputs are dst tensors. */
autosp_status_t rewrite_replace(rewrite_t *rw, int replaced, autosp_op_t op,
                                const autosp_tensor_t *in, int n_in, const attr_value_t *attrs);
/* Sets a dst tensor's layout. */
void rewrite_layout(rewrite_t *rw, autosp_tensor_t t, int layout, int dim);
/* Maps src's outputs, verifies dst and returns it (NULL on error); frees the rest. */
autosp_graph_t *rewrite_finish(rewrite_t *rw, autosp_status_t st);

/* A fusion (chunked_loss, tiled_mlp): match tells whether node i ends a pattern, and puts the
 * other nodes it absorbs in parts[] (at most 4, returns how many; 0: no match); readers[t]
 * counts t's readers, plus one when t is a graph output. emit writes the fused node for i,
 * given `size` (rows per chunk or tile, 0: planned). */
typedef int (*fuse_match_fn)(const autosp_graph_t *g, int i, const int *readers, int *parts);
typedef autosp_status_t (*fuse_emit_fn)(rewrite_t *rw, int i, const int *parts, int64_t size);
/* g with every match fused: the absorbed nodes dropped, the rest copied. size < 0 fails, named
 * what (e.g. "chunk") in pass's message. */
autosp_graph_t *rewrite_fuse(const autosp_graph_t *g, const char *pass, const char *what,
                             int64_t size, fuse_match_fn match, fuse_emit_fn emit,
                             autosp_error_t *err);

/* Attributes for a new node of op: every default, then the named ones set. */
typedef struct attr_set {
    attr_value_t v[8];
} attr_set_t;
void attrs_default(autosp_op_t op, attr_set_t *a);
void attrs_int(autosp_op_t op, attr_set_t *a, const char *name, int64_t value);
void attrs_float(autosp_op_t op, attr_set_t *a, const char *name, double value);
void attrs_str(autosp_op_t op, attr_set_t *a, const char *name, const char *value);

/* "pass: node "x" (op): <message>", an INVALID error. */
autosp_status_t pass_fail(autosp_error_t *err, const char *pass, const autosp_graph_t *g, int node,
                          const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
