/* bench_linear.c: GFLOP/s of the library's linear kernels, f32 and bf16, at GPT-2 124M's shapes.
 *
 *     bench_linear [--threads T] [--rows R] [--runs N]
 *
 * Each layer y = x W^T + b, x (R,K), W (N,K), runs as one node through the executor, as in a
 * step: the forward (linear, 2 R N K flops) and the backward (linear_backward: dx, dW, db, 4 R N
 * K flops), in an f32 graph (OpenBLAS's sgemm on the pool) and in a bf16 graph (bf16 x, W, b,
 * dy; f32 dW and db; oneDNN's bf16 matmul, or the portable product in a build without it or
 * with AUTOSP_BF16_PORTABLE=1). The best of N runs after one warm-up (which, like a step,
 * follows the plan: oneDNN's primitives are made when the executor is). A benchmark: it
 * prints a table and checks nothing. Run it under env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "autosp/autosp.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Uniform in [-1, 1) as bf16 (the top half of the f32) or f32. */
static void fill(void *p, int64_t n, bool bf16, uint32_t seed) {
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        float v = (float)(seed >> 8) / 8388608.0f - 1.0f;
        if (bf16) {
            uint32_t u;
            memcpy(&u, &v, sizeof u);
            ((uint16_t *)p)[i] = (uint16_t)(u >> 16);
        } else {
            ((float *)p)[i] = v;
        }
    }
}

/* ms of the best of `runs` runs of one node: forward (backward = false) or backward. */
static double time_node(int64_t R, int64_t K, int64_t N, bool bias, bool bf16, bool backward,
                        int runs) {
    autosp_dtype_t dt = bf16 ? AUTOSP_BF16 : AUTOSP_F32;
    char xs[32], ws[32], bs[32], ys[32];
    snprintf(xs, sizeof xs, "%lld,%lld", (long long)R, (long long)K);
    snprintf(ws, sizeof ws, "%lld,%lld", (long long)N, (long long)K);
    snprintf(bs, sizeof bs, "%lld", (long long)N);
    snprintf(ys, sizeof ys, "%lld,%lld", (long long)R, (long long)N);
    autosp_graph_t *g = autosp_graph_new("bench");
    autosp_tensor_t in[4], out[3];
    int n_in = 0;
    if (backward) in[n_in++] = autosp_input(g, "dy", dt, ys, AUTOSP_ROLE_OTHER, -1);
    in[n_in++] = autosp_input(g, "x", dt, xs, AUTOSP_ROLE_OTHER, -1);
    in[n_in++] = autosp_param(g, "w", dt, ws, AUTOSP_INIT_ZEROS, 0);
    if (bias) in[n_in++] = autosp_param(g, "b", dt, bs, AUTOSP_INIT_ZEROS, 0);
    const int n_out = backward ? n_in - 1 : 1;
    autosp_node_add(g, backward ? AUTOSP_OP_LINEAR_BACKWARD : AUTOSP_OP_LINEAR, "n", in, n_in, NULL,
                    n_out, NULL, 0, out);
    for (int k = 0; k < n_out; k++) autosp_output(g, out[k]);
    autosp_error_t err;
    autosp_executor_t *ex = autosp_executor_new(g, &err);
    if (!ex) {
        fprintf(stderr, "bench_linear: %s\n", err.message);
        exit(1);
    }
    for (int k = 0; k < n_in; k++) {
        const char *name = autosp_tensor_name(g, in[k]);
        fill(autosp_executor_data(ex, name), autosp_tensor_numel(g, in[k]), bf16, 7u + (unsigned)k);
    }
    double best = 1e30;
    for (int r = 0; r <= runs; r++) {
        double t = now();
        if (autosp_executor_run(ex, &err) != AUTOSP_OK) {
            fprintf(stderr, "bench_linear: %s\n", err.message);
            exit(1);
        }
        t = now() - t;
        if (r > 0 && t < best) best = t; /* run 0 warms up */
    }
    autosp_executor_free(ex);
    autosp_graph_free(g);
    return best * 1e3;
}

int main(int argc, char **argv) {
    int threads = 2, runs = 3;
    int64_t R = 4096;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rows"))
            R = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--runs"))
            runs = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_linear [--threads T] [--rows R] [--runs N]\n");
            return 2;
        }
    }
    autosp_set_num_threads(threads);
    const struct {
        const char *name;
        int64_t K, N;
        bool bias;
    } layers[] = {{"attn qkv", 768, 2304, true},
                  {"attn proj", 768, 768, true},
                  {"mlp fc", 768, 3072, true},
                  {"mlp proj", 3072, 768, true},
                  {"lm head", 768, 50257, false}};
    printf("threads %d, rows %lld, best of %d runs after a warm-up; GFLOP/s (ms)\n", threads,
           (long long)R, runs);
    printf("%-10s %5s %6s | %-21s %-21s %5s | %-21s %-21s %5s\n", "layer", "K", "N", "fwd f32",
           "fwd bf16", "x", "bwd f32", "bwd bf16", "x");
    double total[4] = {0};
    for (size_t l = 0; l < sizeof layers / sizeof layers[0]; l++) {
        const int64_t K = layers[l].K, N = layers[l].N;
        const double flops = 2.0 * (double)R * (double)N * (double)K;
        double ms[4];
        for (int v = 0; v < 4; v++) {
            ms[v] = time_node(R, K, N, layers[l].bias, v & 1, v >= 2, runs);
            total[v] += ms[v];
        }
        printf("%-10s %5lld %6lld | %7.1f (%9.2f ms) %7.1f (%9.2f ms) %5.2f | %7.1f (%9.2f ms) "
               "%7.1f (%9.2f ms) %5.2f\n",
               layers[l].name, (long long)K, (long long)N, flops / ms[0] * 1e-6, ms[0],
               flops / ms[1] * 1e-6, ms[1], ms[0] / ms[1], 2 * flops / ms[2] * 1e-6, ms[2],
               2 * flops / ms[3] * 1e-6, ms[3], ms[2] / ms[3]);
        fflush(stdout);
    }
    printf("one of each layer: f32 %.1f ms, bf16 %.1f ms (forward + backward), %.2fx\n",
           total[0] + total[2], total[1] + total[3], (total[0] + total[2]) / (total[1] + total[3]));
    return 0;
}
