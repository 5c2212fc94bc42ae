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

/* The cost model's machine: what one rank sustains. Defaults (autosp_machine_default) are this
 * project's 2-core CPU: 100 GFLOP/s in sgemm, 10 GB/s of memory traffic, 5 GB/s through MPI on
 * one node; for planning on a GPU set all three (docs/checkpointing.md has an H100's). */
typedef struct autosp_machine {
    double flops_per_s;
    double mem_bytes_per_s;
    double net_bytes_per_s; /* bytes one rank sends per second in a collective */
} autosp_machine_t;

autosp_machine_t autosp_machine_default(void);

/* Roofline time of a cost on m: max(flops / flops_per_s, bytes moved / mem_bytes_per_s), plus
 * bytes sent / net_bytes_per_s. */
double autosp_cost_seconds(const autosp_cost_t *cost, const autosp_machine_t *m);

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

/* What one rank needs to train: the executor's arena (planned by liveness, first fit) plus the
 * optimizer's state. Parameters, gradients and activations take the graph's dtypes (a bf16
 * graph plans bf16 weights and activations); a parameter stored in another dtype than f32 adds
 * an f32 master copy, and AdamW's m and v are f32. ZeRO-1 (zero_stage 1) shards the master copy
 * and m and v over the world (sp x dp ranks), and so do stages 2 and 3, whose graphs hold the
 * gradients' (2) and the parameters' (3) shards themselves. All sizes in bytes. */
typedef struct autosp_memory_plan {
    int64_t params, grads; /* in the arena for the whole step */
    int64_t master;        /* f32 copy of non-f32 parameters (0 for an f32 graph) */
    int64_t optimizer;     /* AdamW m and v */
    int64_t inputs;        /* the batch's ids, labels, positions, and the loss */
    int64_t activations;   /* the most activation bytes live at once */
    int64_t comm;          /* the largest collective buffer */
    int64_t workspace;     /* the largest kernel scratch (collectives' buffers included) */
    int64_t arena;         /* the executor's one allocation: all of the above but master and
                            * optimizer, as placed (first fit can leave gaps) */
    int64_t total;         /* arena + master + optimizer: the rank's peak */
} autosp_memory_plan_t;

/* Plans a training step (autosp_compile_training's graph, every symbol bound) with the
 * workspace backend's kernels need (autosp_backend_cpu(); NULL plans the tensors alone, for a
 * device that has no backend in this build). */
typedef struct autosp_backend autosp_backend_t; /* autosp/backend.h */
autosp_status_t autosp_plan_memory(const autosp_graph_t *step, int zero_stage,
                                   const autosp_backend_t *backend, autosp_memory_plan_t *plan,
                                   autosp_error_t *err);

/* The --info table of autosp-compile: nodes by op, parameter count, FLOPs of one forward,
 * bytes of every activation and, for a per-rank program, every collective with the bytes each
 * rank sends. Requires every symbol to be bound. */
autosp_status_t autosp_graph_print_info(const autosp_graph_t *g, FILE *out, autosp_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
