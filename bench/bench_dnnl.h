/* bench_dnnl.h: oneDNN's matmul primitive for the benchmarks (bench_gemm, bench_train's bf16
 * peak): C (M,N) = op(A) op(B) with f32 or bf16 A and B and an f32 C, user buffers, no copy.
 * oneDNN's threads are OpenMP's here (Debian's libdnnl): omp_set_num_threads before a primitive
 * is created sizes it (oneDNN blocks for the thread count at creation). Define BENCH_NAME (the
 * program's name, for messages) before including. */
#ifndef AUTOSP_BENCH_DNNL_H
#define AUTOSP_BENCH_DNNL_H

#include <stdbool.h>
#include <stdio.h>

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h> /* dnnl_status2str */

#if DNNL_CPU_RUNTIME != DNNL_RUNTIME_OMP
#error "the benchmarks set oneDNN's thread count with omp_set_num_threads: needs an OpenMP oneDNN"
#endif

/* C (M,N) = op(A) (M,K) op(B) (K,N), row-major; ta: A is stored (K,M), tb: B is stored (N,K). */
typedef struct gemm {
    int M, N, K;
    bool ta, tb;
} gemm_t;

static inline double gemm_flops(const gemm_t *g) {
    return 2.0 * g->M * (double)g->N * g->K;
}

#define DNNL_CHECK(call)                                                                           \
    do {                                                                                           \
        dnnl_status_t st_ = (call);                                                                \
        if (st_ != dnnl_success) {                                                                 \
            fprintf(stderr, "%s: %s: %s\n", BENCH_NAME, #call, dnnl_status2str(st_));              \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

typedef struct dnnl_gemm {
    dnnl_primitive_t prim;
    dnnl_memory_t mem[3]; /* src A, weights B, dst C: user buffers, no copy */
    char impl[40];        /* the implementation oneDNN picked, e.g. brg:avx512_core_bf16 */
} dnnl_gemm_t;

/* A (rows, cols) operand, row-major, or stored transposed (cols, rows): only the strides differ. */
static inline dnnl_status_t md_2d(dnnl_memory_desc_t *md, int rows, int cols, bool transposed,
                                  dnnl_data_type_t dt) {
    dnnl_dims_t dims = {rows, cols}, strides = {transposed ? 1 : cols, transposed ? rows : 1};
    return dnnl_memory_desc_init_by_strides(md, 2, dims, dt, strides);
}

static inline int dnnl_gemm_init(dnnl_gemm_t *d, dnnl_engine_t eng, const gemm_t *g,
                                 dnnl_data_type_t in, void *a, void *b, float *c) {
    dnnl_memory_desc_t a_md, b_md, c_md;
    DNNL_CHECK(md_2d(&a_md, g->M, g->K, g->ta, in));
    DNNL_CHECK(md_2d(&b_md, g->K, g->N, g->tb, in));
    DNNL_CHECK(md_2d(&c_md, g->M, g->N, false, dnnl_f32));
    dnnl_matmul_desc_t desc;
    DNNL_CHECK(dnnl_matmul_desc_init(&desc, &a_md, &b_md, NULL, &c_md));
    dnnl_primitive_desc_t pd;
    DNNL_CHECK(dnnl_primitive_desc_create(&pd, &desc, NULL, eng, NULL));
    const char *impl = "?";
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    snprintf(d->impl, sizeof d->impl, "%s", impl);
    dnnl_status_t st = dnnl_primitive_create(&d->prim, pd);
    dnnl_primitive_desc_destroy(pd);
    DNNL_CHECK(st);
    DNNL_CHECK(dnnl_memory_create(&d->mem[0], &a_md, eng, a));
    DNNL_CHECK(dnnl_memory_create(&d->mem[1], &b_md, eng, b));
    DNNL_CHECK(dnnl_memory_create(&d->mem[2], &c_md, eng, c));
    return 0;
}

static inline void dnnl_gemm_free(dnnl_gemm_t *d) {
    for (int i = 0; i < 3; i++)
        if (d->mem[i]) dnnl_memory_destroy(d->mem[i]);
    if (d->prim) dnnl_primitive_destroy(d->prim);
    *d = (dnnl_gemm_t){0};
}

static inline int dnnl_gemm_run(const dnnl_gemm_t *d, dnnl_stream_t s) {
    dnnl_exec_arg_t args[3] = {
        {DNNL_ARG_SRC, d->mem[0]}, {DNNL_ARG_WEIGHTS, d->mem[1]}, {DNNL_ARG_DST, d->mem[2]}};
    DNNL_CHECK(dnnl_primitive_execute(d->prim, s, 3, args));
    DNNL_CHECK(dnnl_stream_wait(s));
    return 0;
}

#endif
