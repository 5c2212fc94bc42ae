/* clash.c: a user's program that defines functions of its own under the names of libautosp's
 * internal ones, and uses the library too. It must link against every library (static and
 * shared, autosp and autosp-core) and run: the static archives keep only autosp_* global
 * (prelinked, objcopy), the shared ones export only autosp_* (src/exports.map), so neither
 * side's definitions are seen by the other.
 *
 * The names are real (nm build/libautosp_internal.a): softmax_forward, matmul_forward,
 * gelu_forward and layernorm_forward are cpu kernels (src/backends/cpu/kernels.h), par_for the
 * thread pool's loop (parallel.h), dim_eval and arena_alloc belong to the core (src/ir/ir.h,
 * src/base/base.h). parallel_for is not a library name; it is here because users write it.
 * Each of ours counts its calls: a library call that reached one of them (the dynamic linker
 * binding the library's own calls to the program's definitions) shows as an extra count.
 *
 * Built with -DCLASH_CORE_ONLY against autosp-core: the graph is built, verified and costed,
 * with no executor. */
#include <math.h>
#include <stdio.h>

#include <autosp/analysis.h>
#include <autosp/graph.h>
#ifndef CLASH_CORE_ONLY
#include <autosp/runtime.h>
#endif

static int user_calls; /* calls of the functions below, from anywhere */

/* Non-static, with signatures of the program's own. */
double softmax_forward(double x) {
    user_calls++;
    return 2 * x;
}
int matmul_forward(int a, int b) {
    user_calls++;
    return a * b;
}
const char *gelu_forward(void) {
    user_calls++;
    return "gelu";
}
long layernorm_forward(long n) {
    user_calls++;
    return n + 1;
}
int par_for(int n) {
    user_calls++;
    return n - 1;
}
int parallel_for(int n) {
    user_calls++;
    return n - 2;
}
int dim_eval(int n) {
    user_calls++;
    return 3 * n;
}
int arena_alloc(int n) {
    user_calls++;
    return n / 2;
}
#define USER_FUNCTIONS 8

static int fail(const char *what, const autosp_error_t *err) {
    fprintf(stderr, "clash: %s: %s\n", what, err ? err->message : "failed");
    return 1;
}

int main(void) {
    /* x (B,S,C) -> softmax(gelu(layernorm(x)) @ w) (B,S,C): the four kernels named above */
    enum { B = 2, S = 4, C = 8 };
    autosp_graph_t *g = autosp_graph_new("clash");
    autosp_symbol(g, "B", B);
    autosp_symbol(g, "S", S);
    autosp_tensor_t x = autosp_input(g, "x", AUTOSP_F32, "B,S,8", AUTOSP_ROLE_OTHER, 1);
    autosp_tensor_t lw = autosp_param(g, "ln_w", AUTOSP_F32, "8", AUTOSP_INIT_ONES, 0);
    autosp_tensor_t lb = autosp_param(g, "ln_b", AUTOSP_F32, "8", AUTOSP_INIT_ZEROS, 0);
    autosp_tensor_t w = autosp_param(g, "w", AUTOSP_F32, "8,8", AUTOSP_INIT_NORMAL, 0.5);
    autosp_tensor_t h = autosp_gelu(g, autosp_layernorm(g, x, lw, lb, 1e-5, "ln"), "act");
    autosp_output(g, autosp_softmax(g, autosp_matmul(g, h, w, false, false, "mm"), "probs"));
    autosp_error_t err;
    if (autosp_graph_status(g, &err) != AUTOSP_OK ||
        autosp_graph_verify(g, AUTOSP_VERIFY_BOUND, &err) != AUTOSP_OK)
        return fail("build", &err);
    autosp_graph_summary_t sum;
    if (autosp_graph_summarize(g, &sum, &err) != AUTOSP_OK || sum.num_params != 8 + 8 + 64)
        return fail("summarize", &err);
    printf("clash: graph of %d nodes, %.0f FLOPs\n", autosp_graph_num_nodes(g), sum.cost.flops);

#ifndef CLASH_CORE_ONLY
    autosp_executor_t *ex = autosp_executor_new(g, &err);
    if (!ex) return fail("executor", &err);
    float *xv = autosp_executor_data(ex, "x"), *wv = autosp_executor_data(ex, "w");
    float *lwv = autosp_executor_data(ex, "ln_w"), *lbv = autosp_executor_data(ex, "ln_b");
    for (int i = 0; i < B * S * C; i++) xv[i] = (float)((i * 7) % 11) - 5;
    for (int i = 0; i < C * C; i++) wv[i] = (float)((i * 5) % 9) / 8 - 0.5f;
    for (int i = 0; i < C; i++) lwv[i] = 1, lbv[i] = 0;
    if (autosp_executor_run(ex, &err) != AUTOSP_OK) return fail("run", &err);
    const float *probs = autosp_executor_data(ex, "probs");
    for (int r = 0; r < B * S; r++) { /* each row of a softmax sums to 1 */
        double row = 0;
        for (int c = 0; c < C; c++) row += probs[r * C + c];
        if (!(fabs(row - 1) < 1e-5)) {
            fprintf(stderr, "clash: softmax row %d sums to %g, expected 1\n", r, row);
            return 1;
        }
    }
    autosp_executor_free(ex);
    printf("clash: the executor ran it, every softmax row sums to 1\n");
#endif
    autosp_graph_free(g);

    if (user_calls != 0) {
        fprintf(stderr, "clash: the library called the program's functions %d times\n", user_calls);
        return 1;
    }
    /* and the program's own calls reach its own definitions */
    int ok = softmax_forward(1.5) == 3 && matmul_forward(6, 7) == 42 && gelu_forward()[0] == 'g' &&
             layernorm_forward(41) == 42 && par_for(43) == 42 && parallel_for(44) == 42 &&
             dim_eval(14) == 42 && arena_alloc(84) == 42;
    if (!ok || user_calls != USER_FUNCTIONS) {
        fprintf(stderr, "clash: the program's own functions gave wrong results\n");
        return 1;
    }
    printf("clash: the program's %d functions of the same names answered its own calls\n",
           USER_FUNCTIONS);
    return 0;
}
