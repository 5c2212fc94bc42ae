/* executor.c: runs a planned graph node by node, each with its kernel from the backend. */
#include <stdlib.h>
#include <string.h>

#include "autosp/runtime.h"
#include "plan/memplan.h"
#include "comm/comm.h"

struct autosp_executor {
    autosp_graph_t *g;
    memplan_t plan;
    unsigned char *arena;
    void *arena_block;  /* what mem_free takes */
    cost_ctx_t *shapes; /* per node, concrete shapes, computed once */
    kernel_fn *kernels; /* per node, from the backend, found once */
    const autosp_backend_t *backend;
    const autosp_comm_t *comm;
    autosp_comm_t *own_comm;  /* a comm of one process, when the caller gave none */
    double comm_seconds;      /* inside collectives, over all runs */
    double late_peer_seconds; /* of comm_seconds, waiting for a rank that had not sent yet */
    bool in_flight;           /* a started node (backend.starts) has not completed yet */
    bool profiling;
    int profiled_runs;
    double *node_seconds; /* per node, over the profiled runs */
};

enum { GUARD = 0xA5 };

/* The world a per-rank program was compiled for must be the one it runs in. */
static autosp_status_t check_world(const autosp_graph_t *g, const autosp_comm_t *comm,
                                   autosp_error_t *err) {
    int sp = autosp_graph_sp(g), dp = autosp_graph_dp(g);
    char label[AUTOSP_MAX_NAME + 32];
    if (!comm) {
        for (int i = 0; i < g->n_nodes; i++)
            if (op_table[g->nodes[i].op].collective)
                return set_error(err, AUTOSP_ERR_INVALID,
                                 "%s cannot run in one process: collectives need the MPI "
                                 "runtime (autosp_executor_new_comm under mpirun)",
                                 node_label(g, i, label, sizeof label));
        return AUTOSP_OK;
    }
    if (comm->sp_size == sp && comm->dp_size == dp) return AUTOSP_OK;
    return set_error(err, AUTOSP_ERR_INVALID,
                     "graph \"%s\" is the per-rank program for sp = %d x dp = %d ranks, but this "
                     "run has sp = %d x dp = %d (%d ranks)",
                     g->name, sp, dp, comm->sp_size, comm->dp_size, comm->size);
}

static autosp_status_t prepare(autosp_executor_t *ex, autosp_error_t *err) {
    autosp_status_t st = autosp_backend_check(ex->backend, ex->g, err);
    if (st == AUTOSP_OK) st = check_world(ex->g, ex->comm, err);
    if (st == AUTOSP_OK && !ex->comm && !(ex->comm = ex->own_comm = autosp_comm_new_single(err)))
        st = err->status;
    if (st == AUTOSP_OK) st = memplan_build(ex->g, ex->backend, &ex->plan, err);
    if (st != AUTOSP_OK) return st;
    size_t nodes = (size_t)ex->g->n_nodes + 1;
    ex->shapes = mem_calloc(nodes, sizeof *ex->shapes);
    ex->kernels = mem_calloc(nodes, sizeof *ex->kernels);
    ex->node_seconds = mem_calloc(nodes, sizeof *ex->node_seconds);
    ex->arena = mem_alloc_huge((size_t)ex->plan.arena_bytes + MEMPLAN_ALIGN, &ex->arena_block);
    if (!ex->shapes || !ex->kernels || !ex->node_seconds || !ex->arena)
        return set_error(err, AUTOSP_ERR_NOMEM,
                         "out of memory: the memory plan of graph \"%s\" needs an arena of %lld "
                         "bytes (%.1f GiB)",
                         ex->g->name, (long long)ex->plan.arena_bytes,
                         (double)ex->plan.arena_bytes / (1 << 30));
    memset(ex->arena, GUARD, (size_t)ex->plan.arena_bytes + MEMPLAN_ALIGN);
    for (int i = 0; i < ex->g->n_nodes && st == AUTOSP_OK; i++) {
        ex->kernels[i] = backend_kernel(ex->backend, ex->g, i);
        st = cost_ctx_init(ex->g, i, &ex->shapes[i], err);
    }
    return st;
}

autosp_executor_t *autosp_executor_new(const autosp_graph_t *g, autosp_error_t *err) {
    return autosp_executor_new_comm(g, NULL, err);
}

autosp_executor_t *autosp_executor_new_comm(const autosp_graph_t *g, const autosp_comm_t *comm,
                                            autosp_error_t *err) {
    autosp_executor_t *ex = mem_calloc(1, sizeof *ex);
    if (!ex || !(ex->g = autosp_graph_clone(g))) {
        mem_free(ex);
        nomem(err);
        return NULL;
    }
    autosp_error_t local;
    if (!err) err = &local;
    ex->comm = comm;
    ex->backend = autosp_backend_cpu();
    if (prepare(ex, err) != AUTOSP_OK) {
        autosp_executor_free(ex);
        return NULL;
    }
    return ex;
}

void autosp_executor_free(autosp_executor_t *ex) {
    if (!ex) return;
    memplan_free(&ex->plan);
    mem_free(ex->arena_block);
    mem_free(ex->shapes);
    mem_free(ex->kernels);
    mem_free(ex->node_seconds);
    autosp_comm_free(ex->own_comm);
    autosp_graph_free(ex->g);
    mem_free(ex);
}

void *autosp_executor_data(autosp_executor_t *ex, const char *name) {
    autosp_tensor_t t = autosp_tensor_find(ex->g, name);
    return t < 0 ? NULL : ex->arena + ex->plan.offset[t];
}

/* Node i's kernel (or, when start, its start kernel) on its buffers in the arena. */
static autosp_status_t call_kernel(autosp_executor_t *ex, int i, bool start, autosp_error_t *err) {
    const autosp_graph_t *g = ex->g;
    const node_t *n = &g->nodes[i];
    kernel_args_t r = {.g = g,
                       .node_index = i,
                       .c = &ex->shapes[i],
                       .comm = ex->comm,
                       .err = err,
                       .started = !start && ex->plan.started_after[i] >= 0};
    for (int k = 0; k < n->n_in; k++) r.in[k] = ex->arena + ex->plan.offset[n->in[k]];
    for (int k = 0; k < n->n_out; k++) r.out[k] = ex->arena + ex->plan.offset[n->out[k]];
    if (ex->plan.ws_offset[i] >= 0) r.workspace = ex->arena + ex->plan.ws_offset[i];
    bool collective = op_table[n->op].collective && !op_table[n->op].overlaps;
    r.comm_seconds = &ex->comm_seconds;
    r.late_peer_seconds = &ex->late_peer_seconds;
    double begin = collective ? now_seconds() : 0.0;
    autosp_status_t st = start ? backend_start_kernel(ex->backend, g, i)(&r) : ex->kernels[i](&r);
    if (collective) ex->comm_seconds += now_seconds() - begin;
    return st;
}

/* Node i, then the start of the node the plan starts after it (a prefetched gather); while one
 * is in flight, each node ends with a turn of the comm's progress, so that the gather moves
 * under the compute and not only inside its wait. */
static autosp_status_t run_node(autosp_executor_t *ex, int i, autosp_error_t *err) {
    autosp_status_t st = call_kernel(ex, i, false, err);
    int next = ex->plan.start_next[i];
    if (ex->plan.started_after[i] >= 0) ex->in_flight = false;
    if (st == AUTOSP_OK && next >= 0 && (st = call_kernel(ex, next, true, err)) == AUTOSP_OK)
        ex->in_flight = true;
    else if (st == AUTOSP_OK && ex->in_flight)
        st = ex->comm->ops->progress(ex->comm, err);
    return st;
}

static autosp_status_t run_nodes(autosp_executor_t *ex, autosp_error_t *err) {
    ex->in_flight = false; /* a run that failed left its collectives to the comm's end */
    for (int i = 0; i < ex->g->n_nodes; i++) {
        double start = ex->profiling ? now_seconds() : 0.0;
        autosp_status_t st = run_node(ex, i, err);
        if (ex->profiling) ex->node_seconds[i] += now_seconds() - start;
        if (st != AUTOSP_OK) return st;
    }
    if (ex->profiling) ex->profiled_runs++;
    return set_ok(err);
}

/* Inside the backend's region for a run (the cpu backend's: one region of its thread pool,
 * OpenBLAS on one thread throughout). */
autosp_status_t autosp_executor_run(autosp_executor_t *ex, autosp_error_t *err) {
    if (ex->backend->begin_run) ex->backend->begin_run();
    autosp_status_t st = run_nodes(ex, err);
    if (ex->backend->end_run) ex->backend->end_run();
    return st;
}

double autosp_executor_comm_seconds(const autosp_executor_t *ex) {
    return ex->comm_seconds;
}

double autosp_executor_late_peer_seconds(const autosp_executor_t *ex) {
    return ex->late_peer_seconds;
}

int64_t autosp_executor_arena_bytes(const autosp_executor_t *ex) {
    return ex->plan.arena_bytes;
}

int64_t autosp_executor_touched_bytes(const autosp_executor_t *ex) {
    int64_t end = ex->plan.arena_bytes + MEMPLAN_ALIGN;
    while (end > 0 && ex->arena[end - 1] == GUARD) end--;
    return end;
}

void autosp_executor_set_profiling(autosp_executor_t *ex, bool on) {
    ex->profiling = on;
}

static int by_seconds_descending(const void *a, const void *b) {
    const autosp_op_profile_t *x = a, *y = b;
    if (x->seconds != y->seconds) return x->seconds < y->seconds ? 1 : -1;
    return (x->op > y->op) - (x->op < y->op);
}

void autosp_executor_profile(const autosp_executor_t *ex, autosp_profile_t *out) {
    autosp_op_profile_t by_op[AUTOSP_OP_COUNT] = {0};
    for (int i = 0; i < ex->g->n_nodes; i++) {
        const autosp_op_t op = ex->g->nodes[i].op;
        autosp_op_profile_t *row = &by_op[op];
        row->nodes++;
        row->seconds += ex->node_seconds[i];
        row->flops += op_flops(op, &ex->shapes[i]) * ex->profiled_runs;
    }
    *out = (autosp_profile_t){.runs = ex->profiled_runs};
    for (int op = 0; op < AUTOSP_OP_COUNT; op++) {
        if (!by_op[op].nodes) continue;
        by_op[op].op = (autosp_op_t)op;
        out->ops[out->n_ops++] = by_op[op];
    }
    qsort(out->ops, (size_t)out->n_ops, sizeof out->ops[0], by_seconds_descending);
}
