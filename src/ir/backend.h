/* backend.h: what a backend gives the IR, the planner and the executor.
 *
 * A backend is a table of kernels indexed by (op, dtype), each with its workspace rule. The IR
 * and the planner read the table (which nodes can run, how much scratch they need); only the
 * executor calls a kernel. Nothing here includes a kernel, BLAS or MPI header: the comm a
 * kernel gets is an opaque pointer, defined by the communicator (src/comm/comm.h). */
#ifndef AUTOSP_IR_BACKEND_H
#define AUTOSP_IR_BACKEND_H

#include "autosp/backend.h"
#include "ir/op_table.h"

/* What a kernel gets: the node's concrete shapes and the addresses of its tensors. */
typedef struct kernel_args {
    const autosp_graph_t *g;
    int node_index;
    const cost_ctx_t *c;
    void *in[AUTOSP_MAX_NODE_INPUTS];
    void *out[AUTOSP_MAX_NODE_OUTPUTS];
    void *workspace;
    const struct autosp_comm *comm; /* the process groups (one process: a group of one) */
    autosp_error_t *err;
    bool started; /* the node's start kernel ran earlier (backend.starts): complete what it began */
    double *comm_seconds; /* an op that overlaps (op_info_t.overlaps) adds its waits here */
    /* ... and the part of them spent before the other rank had even sent (its lateness: load
     * imbalance, not transfer), where the ranks share a clock */
    double *late_peer_seconds;
} kernel_args_t;
typedef autosp_status_t (*kernel_fn)(const kernel_args_t *a);
typedef int64_t (*workspace_fn)(const cost_ctx_t *c);

struct autosp_backend {
    const char *name;
    const kernel_fn (*kernels)[AUTOSP_DTYPE_COUNT];      /* [op][dtype]; NULL: no kernel */
    const workspace_fn (*workspace)[AUTOSP_DTYPE_COUNT]; /* [op][dtype]; NULL: no scratch */
    /* [op][dtype]; NULL: none. A start kernel begins a node ahead of its place (a prefetched
     * gather: the unshard's `prefetch`), with the buffers the plan holds for it from there;
     * the node's kernel then runs with `started` and completes it */
    const kernel_fn (*starts)[AUTOSP_DTYPE_COUNT];
    /* around each run of a graph (the cpu backend's thread-pool region); NULL: nothing */
    void (*begin_run)(void), (*end_run)(void);
};

/* The dtype a node's kernel is chosen by: its first 16-bit float input's, else f32 if it has a
 * float input, else its first output's (fill, the target count, collectives of ids). So a node
 * with any bf16 input runs the bf16 kernel, which also takes the f32 inputs the dtype rules allow
 * beside it: the loss gradient of a cross-entropy backward, the f32 base of an index_add. */
autosp_dtype_t node_dtype(const autosp_graph_t *g, const node_t *n);
/* Node i's kernel on b, or NULL. */
kernel_fn backend_kernel(const autosp_backend_t *b, const autosp_graph_t *g, int i);
/* Node i's start kernel on b, or NULL (also without b). */
kernel_fn backend_start_kernel(const autosp_backend_t *b, const autosp_graph_t *g, int i);
/* Scratch bytes node i needs on b (every symbol bound), rounded up to `align`; 0 without b. */
int64_t backend_workspace(const autosp_backend_t *b, const autosp_graph_t *g, int i, int64_t align);

#endif
