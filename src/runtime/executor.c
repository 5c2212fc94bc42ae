/* executor.c: runs a planned graph node by node on one CPU process. */
#include <stdlib.h>
#include <string.h>

#include "autosp/runtime.h"
#include "runtime/comm.h"
#include "plan/memplan.h"
#include "backends/cpu/parallel.h"

struct autosp_executor {
    autosp_graph_t *g;
    memplan_t plan;
    unsigned char *arena;
    void *arena_block;  /* what mem_free takes */
    cost_ctx_t *shapes; /* per node, concrete shapes, computed once */
    const autosp_comm_t *comm;
    double comm_seconds; /* inside collectives, over all runs */
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

/* What the CPU runtime can execute: every op has a kernel, f32 values, i32 ids. */
static autosp_status_t check_executable(const autosp_graph_t *g, autosp_error_t *err) {
    for (int i = 0; i < g->n_nodes; i++)
        AUTOSP_ASSERT(op_table[g->nodes[i].op].run); /* every op has a kernel */
    for (int t = 0; t < g->n_tensors; t++) {
        autosp_dtype_t d = g->tensors[t].dtype;
        if (d != AUTOSP_F32 && d != AUTOSP_I32)
            return set_error(err, AUTOSP_ERR_INVALID,
                             "tensor \"%s\" has dtype %s: the CPU runtime executes f32 values "
                             "and i32 ids (plan with bf16, run with f32)",
                             g->tensors[t].name, autosp_dtype_name(d));
    }
    return AUTOSP_OK;
}

static autosp_status_t prepare(autosp_executor_t *ex, autosp_error_t *err) {
    autosp_status_t st = check_executable(ex->g, err);
    if (st == AUTOSP_OK) st = check_world(ex->g, ex->comm, err);
    if (st == AUTOSP_OK) st = memplan_build(ex->g, &ex->plan, err);
    if (st != AUTOSP_OK) return st;
    ex->shapes = mem_calloc((size_t)ex->g->n_nodes + 1, sizeof *ex->shapes);
    ex->node_seconds = mem_calloc((size_t)ex->g->n_nodes + 1, sizeof *ex->node_seconds);
    ex->arena = mem_alloc_huge((size_t)ex->plan.arena_bytes + MEMPLAN_ALIGN, &ex->arena_block);
    if (!ex->shapes || !ex->node_seconds || !ex->arena)
        return set_error(err, AUTOSP_ERR_NOMEM,
                         "out of memory: the memory plan of graph \"%s\" needs an arena of %lld "
                         "bytes (%.1f GiB)",
                         ex->g->name, (long long)ex->plan.arena_bytes,
                         (double)ex->plan.arena_bytes / (1 << 30));
    memset(ex->arena, GUARD, (size_t)ex->plan.arena_bytes + MEMPLAN_ALIGN);
    for (int i = 0; i < ex->g->n_nodes && st == AUTOSP_OK; i++)
        st = cost_ctx_init(ex->g, i, &ex->shapes[i], err);
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
    ex->comm = comm;
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
    mem_free(ex->node_seconds);
    autosp_graph_free(ex->g);
    mem_free(ex);
}

void *autosp_executor_data(autosp_executor_t *ex, const char *name) {
    autosp_tensor_t t = autosp_tensor_find(ex->g, name);
    return t < 0 ? NULL : ex->arena + ex->plan.offset[t];
}

static autosp_status_t run_node(autosp_executor_t *ex, int i, autosp_error_t *err) {
    const autosp_graph_t *g = ex->g;
    const node_t *n = &g->nodes[i];
    run_ctx_t r = {.g = g, .node_index = i, .c = &ex->shapes[i], .comm = ex->comm, .err = err};
    for (int k = 0; k < n->n_in; k++) r.in[k] = ex->arena + ex->plan.offset[n->in[k]];
    for (int k = 0; k < n->n_out; k++) r.out[k] = ex->arena + ex->plan.offset[n->out[k]];
    if (ex->plan.ws_offset[i] >= 0) r.workspace = ex->arena + ex->plan.ws_offset[i];
    bool collective = op_table[n->op].collective;
    double start = collective ? MPI_Wtime() : 0.0;
    autosp_status_t st = op_table[n->op].run(&r);
    if (collective) ex->comm_seconds += MPI_Wtime() - start;
    return st;
}

static autosp_status_t run_nodes(autosp_executor_t *ex, autosp_error_t *err) {
    for (int i = 0; i < ex->g->n_nodes; i++) {
        double start = ex->profiling ? now_seconds() : 0.0;
        autosp_status_t st = run_node(ex, i, err);
        if (ex->profiling) ex->node_seconds[i] += now_seconds() - start;
        if (st != AUTOSP_OK) return st;
    }
    if (ex->profiling) ex->profiled_runs++;
    return set_ok(err);
}

/* One parallel region for the whole run: OpenBLAS stays single-threaded throughout, so its
 * threads do not wake and spin between the kernels (kernels/parallel.h). */
autosp_status_t autosp_executor_run(autosp_executor_t *ex, autosp_error_t *err) {
    par_begin();
    autosp_status_t st = run_nodes(ex, err);
    par_end();
    return st;
}

double autosp_executor_comm_seconds(const autosp_executor_t *ex) {
    return ex->comm_seconds;
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
