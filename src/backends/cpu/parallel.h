/* parallel.h: the library's thread pool. Every multi-threaded piece of the step (the split
 * sgemm calls, attention, the row-wise kernels, the optimizer) runs its tasks here.
 *
 * Why one pool of our own, with OpenBLAS single-threaded inside it: OpenBLAS's pthreads build
 * keeps its worker threads spinning (sched_yield) for a while after each threaded sgemm, so a
 * kernel of ours that runs next on two threads shares the cores with a spinner. GPT-2 124M's
 * attention at S = 1024 took 1.16 s per step that way and 0.67 s with OpenBLAS's threads idle.
 * So inside a region (par_begin .. par_end) OpenBLAS runs on one thread, and the library splits
 * its matrix products over the pool itself (gemm in linear.c).
 *
 * Determinism: a task's arithmetic must not depend on the thread that runs it or on how many
 * threads there are; reductions use a fixed number of partial sums (par_blocks), not one per
 * thread, so results are bitwise the same for every thread count. */
#ifndef AUTOSP_KERNELS_PARALLEL_H
#define AUTOSP_KERNELS_PARALLEL_H

#include <stdint.h>

#define PAR_MAX_THREADS 64

/* Threads a parallel call uses (the caller included): what autosp_set_num_threads set, else
 * OpenBLAS's thread count when the outermost region began (or now, outside a region). */
int par_threads(void);
/* n >= 1 fixes the count; n <= 0 goes back to following OpenBLAS's. */
void par_set_threads(int n);

/* A region: OpenBLAS single-threaded from the outermost begin to its end. Regions nest;
 * par_run opens one itself, so they only save the switching for a sequence of calls (the
 * executor wraps a whole run). */
void par_begin(void);
void par_end(void);

/* fn(ctx, task, thread) for every task in [0, n_tasks), on at most max_threads threads (and at
 * most par_threads()); `thread` < that bound indexes per-thread scratch, 0 is the caller.
 * Tasks are handed out in increasing order. Returns when every task is done. A call from inside
 * a task, or while another thread uses the pool, runs its tasks on the calling thread. */
typedef void (*par_task_fn)(void *ctx, int64_t task, int thread);
void par_run(int64_t n_tasks, int max_threads, par_task_fn fn, void *ctx);

/* fn(ctx, begin, end) over [0, n) cut into at most par_threads() contiguous ranges of at least
 * `grain` elements (one range when n < 2 * grain). */
typedef void (*par_range_fn)(void *ctx, int64_t begin, int64_t end);
void par_for(int64_t n, int64_t grain, par_range_fn fn, void *ctx);

#endif
