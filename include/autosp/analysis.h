/* autosp/analysis.h: verification and cost of a graph.
 *
 * Costs come from the op table: each op states its FLOPs and the bytes it reads and writes as a
 * function of its shapes, so they are only defined once every symbol is bound.
 */
#ifndef AUTOSP_ANALYSIS_H
#define AUTOSP_ANALYSIS_H

#include <stdio.h>

#include "autosp/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    AUTOSP_VERIFY_BOUND = 1u << 0, /* also require every symbol to be bound */
};

/* Checks every invariant of the IR: names, topological order, arity, attributes, dtypes and
 * shapes against each op's rule, input roles and sequence dims, outputs. AUTOSP_OK or the first
 * problem found, with a message naming the node and tensor. */
autosp_status_t autosp_graph_verify(const autosp_graph_t *g, unsigned flags, autosp_error_t *err);

typedef struct autosp_cost {
    double flops;
    double bytes_read;
    double bytes_written;
    double bytes_sent; /* collectives: bytes this rank sends to others (ring all_reduce) */
} autosp_cost_t;

/* Cost of one node with the current bindings (error if a symbol it needs is unbound). */
autosp_status_t autosp_node_cost(const autosp_graph_t *g, int node, autosp_cost_t *cost,
                                 autosp_error_t *err);

typedef struct autosp_graph_summary {
    int nodes_by_op[AUTOSP_OP_COUNT];
    double flops_by_op[AUTOSP_OP_COUNT];
    int64_t num_params; /* elements in all parameters */
    int64_t param_bytes;
    int64_t activation_bytes; /* all computed values, each counted once */
    int64_t input_bytes;
    autosp_cost_t cost; /* sum over all nodes */
} autosp_graph_summary_t;

/* Requires every symbol to be bound. */
autosp_status_t autosp_graph_summarize(const autosp_graph_t *g, autosp_graph_summary_t *out,
                                       autosp_error_t *err);

/* The --info table of autosp-compile: nodes by op, parameter count, FLOPs of one forward,
 * bytes of every activation and, for a per-rank program, every collective with the bytes each
 * rank sends. Requires every symbol to be bound. */
autosp_status_t autosp_graph_print_info(const autosp_graph_t *g, FILE *out, autosp_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
