/* autosp/runtime.h: executing a graph on the CPU, in one process.
 *
 * An executor takes a graph whose symbols are all bound (typically the joint graph from
 * autosp_autodiff), plans its memory once (one arena, static offsets: nothing is allocated
 * while it runs) and runs its nodes in order with the f32 kernels (OpenBLAS for every
 * matmul). The caller writes inputs and parameters through autosp_executor_data() and reads
 * outputs (the loss, the gradients) the same way.
 *
 *     autosp_executor_t *ex = autosp_executor_new(joint, &err);
 *     int32_t *tokens = autosp_executor_data(ex, "tokens");   ... fill inputs and params ...
 *     autosp_executor_run(ex, &err);
 *     float loss = *(float *)autosp_executor_data(ex, "loss");
 *     autosp_executor_free(ex);
 */
#ifndef AUTOSP_RUNTIME_H
#define AUTOSP_RUNTIME_H

#include "autosp/backend.h"
#include "autosp/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct autosp_executor autosp_executor_t;

/* The CPU backend: f32 values and i32 ids, OpenBLAS for every matmul, the library's thread
 * pool for the rest (autosp/backend.h). Static storage. */
const autosp_backend_t *autosp_backend_cpu(void);

typedef struct autosp_comm autosp_comm_t; /* autosp/comm.h */

/* The executor keeps its own copy of g and runs it on autosp_backend_cpu(). Errors: unbound
 * symbols, a node the backend has no kernel for (autosp_backend_check: the node, its op and
 * dtype), collectives (they need a comm), and out of memory for the arena. err may be NULL.
 * Free with autosp_executor_free. */
autosp_executor_t *autosp_executor_new(const autosp_graph_t *g, autosp_error_t *err);
/* For a per-rank program (autosp_compile_training): its collectives run over comm's groups,
 * which must match the graph's sp and dp. comm must outlive the executor; NULL is
 * autosp_executor_new. Every rank runs the
 * same graph, so autosp_executor_run is collective: call it on every rank. */
autosp_executor_t *autosp_executor_new_comm(const autosp_graph_t *g, const autosp_comm_t *comm,
                                            autosp_error_t *err);
void autosp_executor_free(autosp_executor_t *ex);

/* A tensor's bytes in the arena (f32 or int32 per its dtype), or NULL if no tensor has that
 * name. Inputs, parameters and graph outputs keep their bytes between runs; other values are
 * only meaningful during a run. The pointer stays valid until autosp_executor_free. */
void *autosp_executor_data(autosp_executor_t *ex, const char *name);

/* Runs every node once. Errors name the node (e.g. a token id outside the vocabulary). */
autosp_status_t autosp_executor_run(autosp_executor_t *ex, autosp_error_t *err);

/* Bytes of the arena, as planned; and the highest arena byte any kernel wrote in the runs so
 * far (measured by a guard pattern, so the plan can be compared with what really happens). */
int64_t autosp_executor_arena_bytes(const autosp_executor_t *ex);

/* Threads of the library's kernels (its thread pool: the split sgemm calls, attention, the
 * row-wise kernels, the optimizer; OpenBLAS itself runs on one thread inside a step). Until
 * this is called, the count follows OpenBLAS's (OPENBLAS_NUM_THREADS, else one per CPU).
 * Also sets OpenBLAS's count, for the caller's own BLAS calls. */
void autosp_set_num_threads(int n);
int autosp_num_threads(void);

/* The default thread count of a rank, and where it comes from. Usable CPUs are the fewest of:
 * the online CPUs, the CPUs of the process's affinity mask (taskset, a cpuset, mpirun's
 * binding) and the CPU quota of its cgroup and the cgroup's ancestors, rounded up (cgroup v2
 * cpu.max, else v1 cpu.cfs_quota_us / cpu.cfs_period_us: a container's --cpus 1.5 is 2). The
 * default is the environment variable AUTOSP_NUM_THREADS when it holds an integer in
 * 1..AUTOSP_MAX_THREADS_ENV (digits only), else usable CPUs / ranks_on_node, at least 1.
 * An empty AUTOSP_NUM_THREADS counts as unset; any other value that is not valid ("0", "-2",
 * "4x", "2000") is ignored and kept in env_ignored, so that the program can say so (the count
 * then comes from the CPUs). ranks_on_node below 1 counts as 1 (under MPI it is
 * autosp_comm_local_size). Both functions read /proc, /sys and the environment on each call:
 * call them at start, not while another thread changes the environment. Neither sets the
 * count: give it to autosp_set_num_threads. */
#define AUTOSP_MAX_THREADS_ENV 1024

typedef enum autosp_threads_from {
    AUTOSP_THREADS_FROM_CPUS, /* usable_cpus / ranks_on_node, at least 1 */
    AUTOSP_THREADS_FROM_ENV,  /* AUTOSP_NUM_THREADS */
} autosp_threads_from_t;

typedef struct autosp_thread_info {
    int threads;                /* the default: what autosp_default_num_threads returns */
    autosp_threads_from_t from; /* where threads comes from */
    int usable_cpus;            /* min of the three below that are known, at least 1 */
    int online_cpus;            /* 0: unknown */
    int affinity_cpus;          /* 0: unknown */
    int quota_cpus;             /* 0: no quota (or no cgroup files could be read) */
    int cgroup_version;         /* whose CPU files were read: 2 or 1; 0: none */
    int ranks_on_node;          /* as given, at least 1 */
    char env_ignored[32];       /* a set but invalid AUTOSP_NUM_THREADS (truncated), else "" */
} autosp_thread_info_t;

/* Fills *out (the caller's, not NULL). */
void autosp_thread_info(int ranks_on_node, autosp_thread_info_t *out);
/* autosp_thread_info's threads. */
int autosp_default_num_threads(int ranks_on_node);

/* Seconds spent inside collectives (waiting included) over all runs so far. */
double autosp_executor_comm_seconds(const autosp_executor_t *ex);
/* Of those, the seconds a rank waited for a transfer its peer had not started yet: the peer's
 * lateness (load imbalance), not the transfer's. Measured by ring attention's shifts, whose
 * blocks carry their send time, where every rank is on one node (one clock); 0 elsewhere. */
double autosp_executor_late_peer_seconds(const autosp_executor_t *ex);
int64_t autosp_executor_touched_bytes(const autosp_executor_t *ex);

/* Where the time of a run goes, by op (autosp-train --profile prints it). */
typedef struct autosp_op_profile {
    autosp_op_t op;
    int nodes;      /* nodes of this op in the graph */
    double seconds; /* wall time of those nodes, summed over the profiled runs */
    double flops;   /* their op-table FLOPs, summed over the profiled runs */
} autosp_op_profile_t;

typedef struct autosp_profile {
    int runs;            /* profiled executor runs */
    int steps;           /* profiled training steps (autosp_trainer_profile; 0 from the executor) */
    double step_seconds; /* wall time of those steps: their runs and their updates */
    int n_ops;
    autosp_op_profile_t ops[AUTOSP_OP_COUNT]; /* the ops that ran, most time first */
} autosp_profile_t;

/* While profiling is on, each run adds every node's wall time to the totals (two clock reads
 * per node). Off by default; turning it off pauses, turning it on again goes on adding. */
void autosp_executor_set_profiling(autosp_executor_t *ex, bool on);
/* The totals so far; out is the caller's. */
void autosp_executor_profile(const autosp_executor_t *ex, autosp_profile_t *out);

#ifdef __cplusplus
}
#endif
#endif
