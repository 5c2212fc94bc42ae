/* parallel.c: the thread pool of parallel.h.
 *
 * Workers are started on first use and live as long as the process. A call publishes its job
 * and bumps a generation counter; workers spin on the counter for a short while (a kernel
 * follows the previous one within microseconds in a step) and then sleep on a condition
 * variable, so an idle process, or ranks sharing cores, do not burn CPU. */
#include "parallel.h"

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

enum { SPIN = 1 << 14 }; /* polls before a wait sleeps: tens of microseconds */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static struct {
    pthread_mutex_t busy;      /* held by the call that uses the workers */
    pthread_mutex_t lock;      /* guards the sleeps below */
    pthread_cond_t wake, done; /* workers sleep on wake, the caller on done */
    atomic_uint generation;    /* bumped once per job */
    atomic_int pending;        /* workers yet to check in for this job */
    int started;               /* workers 1..started exist */
    int active;                /* threads of the current job, caller included */
    par_task_fn fn;
    void *ctx;
    int64_t n_tasks;
    atomic_int_fast64_t next; /* next task to hand out */
} pool = {.busy = PTHREAD_MUTEX_INITIALIZER,
          .lock = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER};

static _Thread_local bool in_task; /* a nested call runs inline */
/* The generation when each worker was started: its first job is the next one, never a job
 * that ended before it existed (which would make it check in twice for the next). */
static unsigned first_generation[PAR_MAX_THREADS];

static atomic_int fixed_threads; /* 0: follow OpenBLAS */
static pthread_mutex_t region_lock = PTHREAD_MUTEX_INITIALIZER;
static int region_depth, region_threads, saved_blas_threads;

static int clamp_threads(int n) {
    return n < 1 ? 1 : n > PAR_MAX_THREADS ? PAR_MAX_THREADS : n;
}

int par_threads(void) {
    int fixed = atomic_load(&fixed_threads);
    if (fixed > 0) return fixed;
    pthread_mutex_lock(&region_lock);
    int n = region_depth > 0 ? region_threads : openblas_get_num_threads();
    pthread_mutex_unlock(&region_lock);
    return clamp_threads(n);
}

void par_set_threads(int n) {
    atomic_store(&fixed_threads, n > 0 ? clamp_threads(n) : 0);
}

void par_begin(void) {
    pthread_mutex_lock(&region_lock);
    if (region_depth++ == 0) {
        saved_blas_threads = openblas_get_num_threads();
        region_threads = clamp_threads(saved_blas_threads);
        if (saved_blas_threads > 1) openblas_set_num_threads(1);
    }
    pthread_mutex_unlock(&region_lock);
}

void par_end(void) {
    pthread_mutex_lock(&region_lock);
    if (--region_depth == 0 && saved_blas_threads > 1) openblas_set_num_threads(saved_blas_threads);
    pthread_mutex_unlock(&region_lock);
}

static void run_tasks(int thread) {
    in_task = true;
    for (;;) {
        const int64_t task = atomic_fetch_add(&pool.next, 1);
        if (task >= pool.n_tasks) break;
        pool.fn(pool.ctx, task, thread);
    }
    in_task = false;
}

static void *worker_main(void *arg) {
    const int id = (int)(intptr_t)arg;
    unsigned seen = first_generation[id];
    for (;;) {
        unsigned gen = atomic_load(&pool.generation);
        for (int i = 0; i < SPIN && gen == seen; i++) {
            cpu_relax();
            gen = atomic_load(&pool.generation);
        }
        if (gen == seen) {
            pthread_mutex_lock(&pool.lock);
            while ((gen = atomic_load(&pool.generation)) == seen)
                pthread_cond_wait(&pool.wake, &pool.lock);
            pthread_mutex_unlock(&pool.lock);
        }
        seen = gen;
        if (id < pool.active) run_tasks(id);
        /* every worker checks in for every job, so none can still be reading this job's
         * fields when the caller publishes the next */
        if (atomic_fetch_sub(&pool.pending, 1) == 1) {
            pthread_mutex_lock(&pool.lock);
            pthread_cond_signal(&pool.done);
            pthread_mutex_unlock(&pool.lock);
        }
    }
    return NULL;
}

/* Workers 1..n-1 exist (as many as could be started); returns the threads available. */
static int ensure_workers(int n) {
    while (pool.started < n - 1) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        first_generation[pool.started + 1] = atomic_load(&pool.generation);
        int rc = pthread_create(&t, &attr, worker_main, (void *)(intptr_t)(pool.started + 1));
        pthread_attr_destroy(&attr);
        if (rc != 0) break;
        pool.started++;
    }
    return pool.started + 1;
}

static void run_inline(int64_t n_tasks, par_task_fn fn, void *ctx) {
    for (int64_t t = 0; t < n_tasks; t++) fn(ctx, t, 0);
}

/* The tasks on T threads, the caller included; the caller holds pool.busy. */
static void run_on_pool(int T, int64_t n_tasks, par_task_fn fn, void *ctx) {
    const int available = ensure_workers(T);
    T = T < available ? T : available;
    pool.fn = fn, pool.ctx = ctx, pool.n_tasks = n_tasks, pool.active = T;
    atomic_store(&pool.next, 0);
    atomic_store(&pool.pending, pool.started);
    pthread_mutex_lock(&pool.lock);
    atomic_fetch_add(&pool.generation, 1);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);

    run_tasks(0);
    for (int i = 0; i < SPIN && atomic_load(&pool.pending) > 0; i++) cpu_relax();
    pthread_mutex_lock(&pool.lock);
    while (atomic_load(&pool.pending) > 0) pthread_cond_wait(&pool.done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
}

void par_run(int64_t n_tasks, int max_threads, par_task_fn fn, void *ctx) {
    if (in_task) { /* the outer call's region is open */
        run_inline(n_tasks, fn, ctx);
        return;
    }
    int T = par_threads();
    T = T < max_threads ? T : max_threads;
    T = (int64_t)T < n_tasks ? T : (int)n_tasks;
    /* A region on one thread too: a task's sgemm calls must not get OpenBLAS's threads there
     * and not here (OpenBLAS's Haswell and Zen kernels round differently when threaded). */
    par_begin();
    if (T > 1 && pthread_mutex_trylock(&pool.busy) == 0) {
        run_on_pool(T, n_tasks, fn, ctx);
        pthread_mutex_unlock(&pool.busy);
    } else {
        run_inline(n_tasks, fn, ctx);
    }
    par_end();
}

typedef struct range_job {
    int64_t n, parts;
    par_range_fn fn;
    void *ctx;
} range_job_t;

static void range_task(void *ctx, int64_t task, int thread) {
    (void)thread;
    const range_job_t *j = ctx;
    j->fn(j->ctx, j->n * task / j->parts, j->n * (task + 1) / j->parts);
}

void par_for(int64_t n, int64_t grain, par_range_fn fn, void *ctx) {
    if (n <= 0) return;
    int64_t parts = par_threads();
    const int64_t most = grain > 0 ? n / grain : n;
    parts = parts < most ? parts : most;
    if (parts <= 1) {
        fn(ctx, 0, n);
        return;
    }
    range_job_t j = {.n = n, .parts = parts, .fn = fn, .ctx = ctx};
    par_run(parts, (int)parts, range_task, &j);
}
