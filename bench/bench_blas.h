/* bench_blas.h: what the benchmarks share about OpenBLAS: the environment overrides that pick
 * another kernel, and the machine's cblas_sgemm peak. Apart from bench_util.h because
 * bench_compile does not link OpenBLAS. Header-only, like bench_util.h. */
#ifndef AUTOSP_BENCH_BLAS_H
#define AUTOSP_BENCH_BLAS_H

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_util.h"

/* OPENBLAS_CORETYPE forces a kernel (the tests set Haswell) and OPENBLAS_L2_SIZE changes the
 * blocking: a benchmark run under either does not measure what this CPU would get. The run
 * scripts unset both (env -u); a run by hand is warned. */
static inline void bench_warn_openblas_env(void) {
    static const struct {
        const char *name, *effect;
    } vars[] = {{"OPENBLAS_CORETYPE", "forces the kernel"},
                {"OPENBLAS_L2_SIZE", "overrides the cache size the blocking is sized for"}};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i].name);
        if (v)
            printf("warning: %s=%s %s (kernel now %s): not this CPU's default (env -u %s)\n",
                   vars[i].name, v, vars[i].effect, openblas_get_corename(), vars[i].name);
    }
}

/* C (n,n) = A (n,n) B (n,n) in GFLOP/s (2*n^3 / time), the best of runs after one warm-up;
 * 0 when out of memory. */
static inline double bench_sgemm_peak_gflops(int n, int runs) {
    size_t count = (size_t)n * (size_t)n;
    float *a = malloc(count * sizeof *a), *b = malloc(count * sizeof *b);
    float *c = malloc(count * sizeof *c);
    if (!a || !b || !c) {
        free(a), free(b), free(c);
        return 0;
    }
    for (size_t i = 0; i < count; i++) {
        a[i] = (float)(i % 17) * 0.01f - 0.08f;
        b[i] = (float)(i % 13) * 0.01f - 0.06f;
        c[i] = 0;
    }
    double best = 1e30;
    for (int run = 0; run <= runs; run++) { /* run 0 warms up the threads and caches */
        double t0 = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c,
                    n);
        double t = now_s() - t0;
        if (run > 0 && t < best) best = t;
    }
    free(a), free(b), free(c);
    return 2.0 * (double)n * n * n / best / 1e9;
}

#endif
