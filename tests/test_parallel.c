/* test_parallel.c: the thread pool (src/backends/cpu/parallel.c) and the promise the kernels make
 * on it: every task runs exactly once, nested calls run inline, OpenBLAS gets its thread count back
 * after a region, and the kernels that run on the pool give the same results at 1, 2, 3 and 4
 * threads (bitwise, but for the sgemm products). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <cmocka.h>

#include "backends/cpu/kernels.h"
#include "backends/cpu/parallel.h"

enum { N_TASKS = 1000 };

typedef struct count_job {
    atomic_int runs[N_TASKS];
    atomic_int bad_thread;
    int max_threads;
} count_job_t;

static void count_task(void *ctx, int64_t task, int thread) {
    count_job_t *j = ctx;
    atomic_fetch_add(&j->runs[task], 1);
    if (thread < 0 || thread >= j->max_threads) atomic_fetch_add(&j->bad_thread, 1);
}

static void test_every_task_once(void **state) {
    (void)state;
    for (int threads = 1; threads <= 4; threads++) {
        par_set_threads(threads);
        for (int cap = 1; cap <= 5; cap++) {
            static count_job_t j;
            memset(&j, 0, sizeof j);
            j.max_threads = cap < threads ? cap : threads;
            par_run(N_TASKS, cap, count_task, &j);
            for (int t = 0; t < N_TASKS; t++) assert_int_equal(atomic_load(&j.runs[t]), 1);
            assert_int_equal(atomic_load(&j.bad_thread), 0);
        }
    }
    par_set_threads(0);
}

/* Many short jobs while the thread count and the cap change: each job's tasks have all run,
 * once, when par_run returns (a lost wake-up hangs here, an early return comes up short). The
 * start-up race fixed in parallel.c is too narrow to hit reliably from a test; a TSan build of
 * this kind of loop was clean. */
static void test_job_churn(void **state) {
    (void)state;
    static count_job_t j;
    for (int it = 0; it < 5000; it++) {
        memset(&j, 0, sizeof j);
        int threads = 1 + it % 4, n = 1 + (it * 7) % 64;
        par_set_threads(threads);
        j.max_threads = threads;
        par_run(n, threads, count_task, &j);
        for (int t = 0; t < n; t++) assert_int_equal(atomic_load(&j.runs[t]), 1);
    }
    par_set_threads(0);
}

/* A task that starts a parallel call of its own: the inner call runs on the calling thread. */
typedef struct nested_job {
    atomic_int inner_runs;
    atomic_int inner_off_thread; /* inner tasks that saw a thread index other than 0 */
} nested_job_t;

static void inner_task(void *ctx, int64_t task, int thread) {
    (void)task;
    nested_job_t *j = ctx;
    atomic_fetch_add(&j->inner_runs, 1);
    if (thread != 0) atomic_fetch_add(&j->inner_off_thread, 1);
}

static void outer_task(void *ctx, int64_t task, int thread) {
    (void)task, (void)thread;
    par_run(10, 4, inner_task, ctx);
}

static void test_nested_calls_run_inline(void **state) {
    (void)state;
    par_set_threads(4);
    nested_job_t j = {0};
    par_run(8, 4, outer_task, &j);
    assert_int_equal(atomic_load(&j.inner_runs), 80);
    assert_int_equal(atomic_load(&j.inner_off_thread), 0);
    par_set_threads(0);
}

typedef struct range_job {
    atomic_int covered[N_TASKS];
    atomic_int short_ranges;
    int64_t grain;
} range_job_t;

static void range_fn(void *ctx, int64_t begin, int64_t end) {
    range_job_t *j = ctx;
    if (end - begin < j->grain) atomic_fetch_add(&j->short_ranges, 1);
    for (int64_t i = begin; i < end; i++) atomic_fetch_add(&j->covered[i], 1);
}

static void test_par_for_covers_once(void **state) {
    (void)state;
    const int64_t sizes[] = {1, 7, 100, 999, N_TASKS};
    for (int threads = 1; threads <= 4; threads++) {
        par_set_threads(threads);
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            static range_job_t j;
            memset(&j, 0, sizeof j);
            j.grain = 50;
            par_for(sizes[s], j.grain, range_fn, &j);
            for (int64_t i = 0; i < sizes[s]; i++) assert_int_equal(atomic_load(&j.covered[i]), 1);
            /* a range is shorter than the grain only when everything is one range */
            if (sizes[s] >= 2 * j.grain) assert_int_equal(atomic_load(&j.short_ranges), 0);
        }
    }
    par_set_threads(0);
}

/* Regions nest, OpenBLAS is single-threaded inside and gets its count back after. */
static void test_region_restores_openblas(void **state) {
    (void)state;
    openblas_set_num_threads(2);
    par_set_threads(0);
    assert_int_equal(par_threads(), 2);
    par_begin();
    assert_int_equal(openblas_get_num_threads(), 1);
    assert_int_equal(par_threads(), 2); /* the region's count, not OpenBLAS's 1 */
    par_begin();
    par_end();
    assert_int_equal(openblas_get_num_threads(), 1);
    par_end();
    assert_int_equal(openblas_get_num_threads(), 2);
}

/* ---- the kernels on the pool: bitwise the same at every thread count ---------------------- */

static void fill(float *x, int64_t n, unsigned seed) {
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        x[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
}

enum { ROWS = 256, C = 512, V = 1500, N_OUT = 300 }; /* large enough to split */

/* Everything but the sgemm products is bitwise independent of the thread count. The products
 * are not: each thread's block is its own sgemm call, and OpenBLAS picks kernels (its
 * small-matrix path, the edge kernels) by the block's shape, so a split can change the order
 * of a sum, as OpenBLAS's own threading does. Those are compared within float rounding. */
typedef struct results {
    float gelu[ROWS * C], dgelu[ROWS * C], swiglu[ROWS * C], dgate[ROWS * C], dup[ROWS * C];
    float db[N_OUT], ln[ROWS * C], dln[ROWS * C], dgamma[C], dbeta[C];
    float logits_grad[ROWS * V], rope[ROWS * C];
    float loss;
    float lin[ROWS * N_OUT], dx[ROWS * C], dw[N_OUT * C]; /* sgemm: last, see above */
} results_t;

static void assert_close(const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) assert_true(fabsf(a[i] - b[i]) <= 1e-5f * (1.0f + fabsf(a[i])));
}

static void run_kernels(results_t *r, int threads) {
    static float x[ROWS * C], y[ROWS * C], w[N_OUT * C], bias[N_OUT], dout[ROWS * N_OUT];
    static float logits[ROWS * V];
    static int32_t labels[ROWS], positions[ROWS];
    fill(x, ROWS * C, 1), fill(y, ROWS * C, 2), fill(w, N_OUT * C, 3), fill(bias, N_OUT, 4);
    fill(dout, ROWS * N_OUT, 5), fill(logits, ROWS * V, 6);
    for (int i = 0; i < ROWS; i++) labels[i] = i % 7 == 0 ? -100 : (i * 37) % V;
    for (int i = 0; i < ROWS; i++) positions[i] = i * 391; /* long-context angles */
    par_set_threads(threads);
    gelu_forward(r->gelu, x, ROWS * C);
    gelu_backward(r->dgelu, y, x, ROWS * C);
    swiglu_forward(r->swiglu, x, y, ROWS * C);
    swiglu_backward(r->dgate, r->dup, r->gelu, x, y, ROWS * C);
    linear_forward(r->lin, x, w, bias, ROWS, C, N_OUT);
    linear_backward(r->dx, r->dw, r->db, dout, x, w, ROWS, C, N_OUT);
    static double stats[2 * ROWS];
    layernorm_forward(r->ln, x, y, y + C, ROWS, C, 1e-5f);
    memset(r->dgamma, 0, sizeof r->dgamma), memset(r->dbeta, 0, sizeof r->dbeta);
    layernorm_backward(r->dln, r->dgamma, r->dbeta, r->gelu, x, y, ROWS, C, 1e-5f, stats);
    r->loss = cross_entropy_forward(logits, labels, ROWS, V, -100);
    cross_entropy_backward(r->logits_grad, logits, labels, ROWS, V, -100, 1.0f);
    rope_forward(r->rope, x, positions, 2, ROWS / 2, 4, C / 4, 10000.0f, false); /* D = 128 */
    par_set_threads(0);
}

static void test_kernels_independent_of_threads(void **state) {
    (void)state;
    static results_t one, many;
    run_kernels(&one, 1);
    for (int threads = 2; threads <= 4; threads++) {
        run_kernels(&many, threads);
        assert_memory_equal(&one, &many, offsetof(results_t, lin));
        assert_close(one.lin, many.lin, ROWS * N_OUT);
        assert_close(one.dx, many.dx, ROWS * C);
        assert_close(one.dw, many.dw, N_OUT * C);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_task_once),
        cmocka_unit_test(test_job_churn),
        cmocka_unit_test(test_nested_calls_run_inline),
        cmocka_unit_test(test_par_for_covers_once),
        cmocka_unit_test(test_region_restores_openblas),
        cmocka_unit_test(test_kernels_independent_of_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
