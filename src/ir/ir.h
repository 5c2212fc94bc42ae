/* ir.h: the graph's internal representation, shared by the library's files and passes.
 *
 * A dim is a monomial: num * sym[0] * ... * sym[nsym-1] / den, kept canonical (symbols sorted,
 * num/den reduced, den > 0), so two dims are symbolically equal exactly when their fields are.
 * Products of dims stay monomials, which lets a reshape of symbolic shapes be checked exactly:
 * (B,S,C) -> (B*S,C) compares B*S*C with B*S*C.
 */
#ifndef AUTOSP_IR_H
#define AUTOSP_IR_H

#include "autosp/analysis.h"
#include "autosp/graph.h"
#include "autosp/passes.h"
#include "base/base.h"

typedef struct dim {
    int64_t num, den;
    int8_t nsym;
    int8_t sym[AUTOSP_MAX_DIM_FACTORS]; /* indexes into the graph's symbols, sorted */
} dim_t;

typedef struct shape {
    int ndim;
    dim_t d[AUTOSP_MAX_DIMS];
} shape_t;

typedef struct tensor {
    const char *name;
    autosp_kind_t kind;
    autosp_dtype_t dtype;
    shape_t shape;
    autosp_role_t role; /* inputs */
    int seq_dim;        /* inputs: -1 when none */
    autosp_init_t init; /* params */
    double init_std;    /* params, AUTOSP_INIT_NORMAL */
    int producer;       /* node index, -1 for inputs and params */
    int8_t layout;      /* LAYOUT_*: set by the SP passes, in memory only (not in JSON) */
    int8_t layout_dim;  /* LAYOUT_SEQ, LAYOUT_HEADS: the dim split over the sequence group */
} tensor_t;

/* How a tensor of a per-rank program relates to the single-device tensor. */
enum {
    LAYOUT_FULL,    /* every rank holds all of it (parameters, scalars, gathered values) */
    LAYOUT_SEQ,     /* each rank holds its slice of the sequence (dim layout_dim) */
    LAYOUT_HEADS,   /* each rank holds all tokens of its share of the heads (dim layout_dim) */
    LAYOUT_PARTIAL, /* each rank holds a term of a sum over ranks (a local loss, a local grad) */
};

/* One attribute value, typed by the op's schema entry at the same index. */
typedef struct attr_value {
    int64_t i;
    double f;
    const char *s;
    int64_t *ints;
    int n_ints;
    shape_t *shape;
} attr_value_t;

typedef struct node {
    const char *name;
    autosp_op_t op;
    int n_in, n_out;
    autosp_tensor_t in[AUTOSP_MAX_NODE_INPUTS];
    autosp_tensor_t out[AUTOSP_MAX_NODE_OUTPUTS];
    attr_value_t *attrs; /* op_table[op].n_attrs entries */
} node_t;

typedef struct name_slot {
    uint32_t hash; /* of the name: probes compare it first, growth does not hash again */
    int32_t index; /* + 1, 0 = empty */
} name_slot_t;

typedef struct name_map {
    name_slot_t *slots;
    int cap; /* power of two */
    int count;
} name_map_t;

typedef struct symbol {
    const char *name;
    int64_t value; /* 0 = unbound */
} symbol_t;

struct autosp_graph {
    arena_t arena; /* names, attributes: freed with the graph */
    const char *name;
    symbol_t syms[AUTOSP_MAX_SYMBOLS];
    int n_syms;
    tensor_t *tensors;
    int n_tensors, cap_tensors;
    node_t *nodes; /* always in topological order */
    int n_nodes, cap_nodes;
    autosp_tensor_t *outputs;
    int n_outputs, cap_outputs;
    name_map_t tensor_names, node_names;
    autosp_error_t error; /* sticky: the first builder error */
    int sp, dp;           /* a per-rank program for sp x dp ranks (0 or 1: one device) */
    int ring;             /* sp = (sp / ring) Ulysses x ring ranks, zigzag order (0, 1: none) */
    int64_t padded_from;  /* the sequence before pad_sequence padded it (0: not padded) */
    int32_t pad_label;    /* the padded rows' label: the loss's ignore_index */
    bool checkpointed;    /* the checkpoint pass ran; ac is its report (in memory only) */
    autosp_ac_report_t ac;
    /* passed autosp_graph_verify as it is now (marked by the passes that made it): a later
     * verify skips the walk; every change to the graph clears it (graph_changed) */
    bool verified;
};

static inline void graph_changed(autosp_graph_t *g) {
    g->verified = false;
}

/* A pass's output verified (autosp_graph_verify, no flags) and, when it passes, marked so. */
autosp_status_t graph_verify_made(autosp_graph_t *g, autosp_error_t *err);

/* ---- dims (dim.c) -------------------------------------------------------------------- */

dim_t dim_const(int64_t v);
dim_t dim_symbol(int sym);
bool dim_eq(dim_t a, dim_t b);
bool dim_is_const(dim_t a, int64_t *value);
bool dim_mul(dim_t a, dim_t b, dim_t *out); /* false: too many factors, overflow */
bool dim_scale(dim_t a, int64_t num, int64_t den, dim_t *out); /* a * num / den */
/* Results of evaluating a dim or shape with the bound symbols. */
enum { EVAL_OK = 1, EVAL_UNBOUND = 0, EVAL_FRACTION = -1, EVAL_TOO_LARGE = -2 };
int dim_eval(const autosp_graph_t *g, dim_t d, int64_t *value);
/* Symbolically equal, or equal once the bound symbols are substituted. */
bool dim_match(const autosp_graph_t *g, dim_t a, dim_t b);
char *dim_str(const autosp_graph_t *g, dim_t d, char *buf, size_t n);

autosp_status_t shape_parse(const autosp_graph_t *g, const char *text, shape_t *out,
                            autosp_error_t *err);
char *shape_str(const autosp_graph_t *g, const shape_t *s, char *buf, size_t n);
bool shape_numel(const shape_t *s, dim_t *out);
bool shape_match(const autosp_graph_t *g, const shape_t *a, const shape_t *b);
/* EVAL_OK with dims and numel written, or why not (an EVAL_ value) */
int shape_eval(const autosp_graph_t *g, const shape_t *s, int64_t *dims, int64_t *numel);
int symbol_find(const autosp_graph_t *g, const char *name, size_t len);

/* ---- graph (graph.c) ------------------------------------------------------------------- */

static inline tensor_t *graph_tensor(const autosp_graph_t *g, autosp_tensor_t t) {
    AUTOSP_ASSERT(t >= 0 && t < g->n_tensors);
    return &g->tensors[t];
}

int name_map_get(const name_map_t *m, const void *base, size_t stride, const char *name);
/* Adds the entry at index (its name is the first field of the struct); -1 when out of memory. */
int name_map_put(name_map_t *m, const void *base, size_t stride, int index);
/* dst (emptied first) the same as src: for a graph whose names and indexes are src's. */
int name_map_copy(name_map_t *dst, const name_map_t *src);
int node_find(const autosp_graph_t *g, const char *name);
/* Parameter t's whole shape: under ZeRO-3 (param_shard) t is a 1-D shard and this is the
 * "shape" of the unshard that reads it; otherwise t's own shape. */
const shape_t *param_whole_shape(const autosp_graph_t *g, autosp_tensor_t t);
bool name_ok(const char *name, autosp_error_t *err, const char *what);
/* Records err as the graph's sticky error (if it has none yet); returns err->status. */
autosp_status_t graph_fail(autosp_graph_t *g, const autosp_error_t *err);
/* The zigzag order of a ring of R: ring position r holds chunks r and 2R - 1 - r of the 2R
 * equal chunks of the sequence, so every position has the same causal work. The global index
 * of row t of the L rows of position r (R = 1: t). */
int64_t ring_global_index(int64_t t, int64_t L, int r, int R);
/* The global index of row `row` of the local_len sequence rows that sequence rank sp_rank of
 * per-rank program g holds: its Ulysses group's share of its ring position's rows, in order. */
int64_t seq_global_row(const autosp_graph_t *g, int sp_rank, int64_t local_len, int64_t row);
autosp_tensor_t graph_add_tensor(autosp_graph_t *g, const char *name, autosp_kind_t kind,
                                 autosp_dtype_t dtype, const shape_t *shape, autosp_error_t *err);
/* The message for a tensor whose shape_eval gave `result` (not EVAL_OK), after `prefix`. */
autosp_status_t tensor_size_error(const autosp_graph_t *g, const tensor_t *x, int result,
                                  const char *prefix, autosp_error_t *err);
/* The rules for a graph input (role, seq dim, dtype); x need not be in g yet. */
autosp_status_t input_check(const autosp_graph_t *g, const tensor_t *x, autosp_error_t *err);
/* Gives t a new (unused) name. */
autosp_status_t tensor_rename(autosp_graph_t *g, autosp_tensor_t t, const char *name,
                              autosp_error_t *err);
/* Prefix for messages about a node: node "name" (op) */
char *node_label(const autosp_graph_t *g, int node, char *buf, size_t n);

#endif
