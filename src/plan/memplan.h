/* memplan.h: static memory plan of a graph with every symbol bound.
 *
 * Every tensor gets a byte offset in one arena, decided before anything runs: inputs,
 * parameters and graph outputs live for the whole run (they are read and written by the
 * caller); every other value lives from the node that produces it to its last consumer, and
 * first-fit reuses the space of dead values. A view (reshape) shares its source's bytes.
 * Nodes whose kernel needs scratch (attention, on the backend planned for) get a workspace
 * block for the duration of the node.
 * The plan is data: print it, test it, compare it with what the executor touches. */
#ifndef AUTOSP_PASSES_MEMPLAN_H
#define AUTOSP_PASSES_MEMPLAN_H

#include "ir/backend.h"

enum { MEMPLAN_ALIGN = 64 };

typedef struct memplan {
    int n_tensors, n_nodes;
    int64_t *offset; /* per tensor: byte offset in the arena */
    int64_t *bytes;  /* per tensor: its size (views: 0, they own nothing) */
    autosp_tensor_t
        *root; /* per tensor: the tensor that owns its bytes (itself, or a view's source) */
    int64_t *ws_offset; /* per node: its workspace's offset (-1: none) */
    int64_t *ws_bytes;  /* per node */
    /* per node: the node whose start kernel runs right after this one (-1: none), and the
     * node after which this one was started (-1: it runs whole at its place). A started node's
     * outputs and workspace are placed from its start on (a prefetched unshard). */
    int *start_next, *started_after;
    int64_t arena_bytes;     /* size of the arena: the highest end of any block */
    int64_t peak_live_bytes; /* the most bytes live at once (arena_bytes >= this) */
    /* the persistent part, and the most of each kind live at once */
    int64_t input_bytes, param_bytes, output_bytes, activation_peak, workspace_peak;
    int64_t comm_peak; /* the largest workspace of a collective (its packed message) */
} memplan_t;

/* Plans g (every symbol bound, verified) with the workspace each node's kernel needs on
 * backend (NULL: none, the tensors alone). Free with memplan_free. */
autosp_status_t memplan_build(const autosp_graph_t *g, const autosp_backend_t *backend,
                              memplan_t *plan, autosp_error_t *err);
/* memplan_build without the verifier, for a graph that has just passed it. */
autosp_status_t memplan_layout(const autosp_graph_t *g, const autosp_backend_t *backend,
                               memplan_t *plan, autosp_error_t *err);
/* autosp_plan_memory, the verifier skipped when verify is false: for a step a pass has just
 * verified, or one re-bound to another S whose plan is only a prediction (max_seq.c). */
autosp_status_t plan_memory(const autosp_graph_t *step, int zero_stage,
                            const autosp_backend_t *backend, bool verify, autosp_memory_plan_t *out,
                            autosp_error_t *err);
void memplan_free(memplan_t *plan);
void memplan_print(const autosp_graph_t *g, const memplan_t *plan, FILE *out);

#endif
