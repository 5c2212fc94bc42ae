/* linear_bf16.c: linear and matmul in bf16 graphs, forward next to backward.
 *
 * Activations, weights (working copies) and activation gradients are bf16; a parameter's
 * gradient is f32 (the output tensor's dtype says which). Every product multiplies bf16 and
 * accumulates in f32, then rounds once to its output's dtype: on oneDNN's bf16 matmul where
 * the build has it (linear_dnnl.c), else, or with AUTOSP_BF16_PORTABLE=1, by staging the bf16
 * operands to f32 in the workspace and calling the f32 sgemm (correct, about half the speed).
 * Workspace rules run at plan time: they create the oneDNN primitives a step will use. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu_ops.h"
#include "backends/cpu/linear_bf16.h"
#include "backends/cpu/parallel.h"

enum { WS_ALIGN = 64, CONVERT_GRAIN = 1 << 15 };

static void *align_up(void *p) {
    return (void *)(((uintptr_t)p + WS_ALIGN - 1) & ~(uintptr_t)(WS_ALIGN - 1));
}
static int64_t round_up(int64_t n) {
    return (n + WS_ALIGN - 1) / WS_ALIGN * WS_ALIGN;
}

/* AUTOSP_BF16_PORTABLE=1 (the tests' portable runs) also picks the portable product. */
static bool portable;
static pthread_once_t portable_once = PTHREAD_ONCE_INIT;
static void read_portable(void) {
    const char *env = getenv("AUTOSP_BF16_PORTABLE");
    portable = env && *env && strcmp(env, "0") != 0;
}
static bool use_dnnl(void) {
#ifdef AUTOSP_HAVE_DNNL
    pthread_once(&portable_once, read_portable);
    return !portable;
#else
    (void)read_portable;
    (void)portable_once;
    return false;
#endif
}

/* ---- conversions on the pool --------------------------------------------------------------- */

typedef struct convert_job {
    const void *src;
    void *dst;
} convert_job_t;

static void widen_range(void *ctx, int64_t lo, int64_t hi) {
    const convert_job_t *j = ctx;
    bf16_to_f32_n((float *)j->dst + lo, (const bf16_t *)j->src + lo, hi - lo);
}
static void narrow_range(void *ctx, int64_t lo, int64_t hi) {
    const convert_job_t *j = ctx;
    bf16_from_f32_n((bf16_t *)j->dst + lo, (const float *)j->src + lo, hi - lo);
}
static void widen(float *dst, const bf16_t *src, int64_t n) {
    convert_job_t j = {src, dst};
    par_for(n, CONVERT_GRAIN, widen_range, &j);
}
static void narrow(bf16_t *dst, const float *src, int64_t n) {
    convert_job_t j = {src, dst};
    par_for(n, CONVERT_GRAIN, narrow_range, &j);
}

/* ---- the product: oneDNN, or staged to f32 -------------------------------------------------- */

/* The portable product's staging: A, B and (for a bf16 C) C in f32. */
static int64_t portable_workspace(const bgemm_t *g) {
    return round_up(4 * g->M * g->K) + round_up(4 * g->K * g->N) +
           (g->c_f32 ? 0 : round_up(4 * g->M * g->N)) + WS_ALIGN;
}

static void portable_bgemm(const bgemm_t *g, const bf16_t *A, const bf16_t *B, const bf16_t *bias,
                           void *C, void *workspace) {
    float *a = align_up(workspace), *b = a + round_up(4 * g->M * g->K) / 4;
    float *c = g->c_f32 ? C : b + round_up(4 * g->K * g->N) / 4;
    widen(a, A, g->M * g->K);
    widen(b, B, g->K * g->N);
    if (bias) {
        for (int64_t n = 0; n < g->N; n++) c[n] = bf16_to_f32(bias[n]);
        for (int64_t m = 1; m < g->M; m++) memcpy(c + m * g->N, c, sizeof(float) * (size_t)g->N);
    }
    cpu_sgemm_blocks(g->ta, g->tb, g->M, g->N, g->K, a, b, bias || g->accumulate ? 1.0f : 0.0f, c,
                     BGEMM_BLOCK);
    if (!g->c_f32) narrow(C, c, g->M * g->N);
}

/* bgemm_run takes oneDNN's path only when every product has a primitive, and otherwise runs
 * them all portably: the workspace is the largest of the path's that will run. */
int64_t bgemm_workspace_all(const bgemm_t *gs, int n) {
    int64_t dnnl = 0, staged = 0;
    bool all_dnnl = use_dnnl();
    for (int i = 0; i < n; i++) {
        if (gs[i].M == 0 || gs[i].N == 0) continue;
        int64_t d = -1;
#ifdef AUTOSP_HAVE_DNNL
        if (all_dnnl) d = dnnl_bgemm_prepare(&gs[i]);
#endif
        all_dnnl = all_dnnl && d >= 0;
        dnnl = d > dnnl ? d : dnnl;
        int64_t p = portable_workspace(&gs[i]);
        staged = p > staged ? p : staged;
    }
    return all_dnnl ? dnnl : staged;
}

int64_t bgemm_workspace(const bgemm_t *g) {
    return bgemm_workspace_all(g, 1);
}

void bgemm_run(const bgemm_call_t *calls, int n, void *workspace) {
    bgemm_call_t c[BGEMM_MAX_CALLS];
    int m = 0;
    for (int i = 0; i < n; i++)
        if (calls[i].g.M > 0 && calls[i].g.N > 0) c[m++] = calls[i];
    if (m == 0) return;
#ifdef AUTOSP_HAVE_DNNL
    if (use_dnnl() && dnnl_bgemm_run(c, m, workspace)) return;
#else
    (void)use_dnnl;
#endif
    for (int i = 0; i < m; i++)
        portable_bgemm(&c[i].g, c[i].A, c[i].B, c[i].bias, c[i].C, workspace);
}

static void bgemm(const bgemm_t *g, const bf16_t *A, const bf16_t *B, const bf16_t *bias, void *C,
                  void *workspace) {
    bgemm_call_t c = {*g, A, B, g->bias ? bias : NULL, C};
    bgemm_run(&c, 1, workspace);
}

/* ---- dbias: the column sums of dout in f32 ------------------------------------------------- */

enum { COLSUM_BLOCK = 256 }; /* columns per task, summed down the rows in order */

typedef struct colsum_job {
    const bf16_t *x;
    void *out;
    int64_t rows, C;
    bool out_f32;
} colsum_job_t;

static void colsum_task(void *ctx, int64_t task, int thread) {
    (void)thread;
    const colsum_job_t *j = ctx;
    const int64_t lo = task * COLSUM_BLOCK, n = j->C - lo < COLSUM_BLOCK ? j->C - lo : COLSUM_BLOCK;
    float acc[COLSUM_BLOCK] = {0};
    for (int64_t r = 0; r < j->rows; r++) {
        const bf16_t *xr = j->x + r * j->C + lo;
        if (n == COLSUM_BLOCK) /* a constant trip count: gcc -O2 vectorises this one */
            for (int64_t i = 0; i < COLSUM_BLOCK; i++) acc[i] += bf16_to_f32(xr[i]);
        else
            for (int64_t i = 0; i < n; i++) acc[i] += bf16_to_f32(xr[i]);
    }
    if (j->out_f32)
        memcpy((float *)j->out + lo, acc, sizeof(float) * (size_t)n);
    else
        bf16_from_f32_n((bf16_t *)j->out + lo, acc, n);
}

static void column_sums(void *out, bool out_f32, const bf16_t *x, int64_t rows, int64_t C) {
    colsum_job_t j = {x, out, rows, C, out_f32};
    const int64_t tasks = (C + COLSUM_BLOCK - 1) / COLSUM_BLOCK;
    par_run(tasks, (int)(tasks < PAR_MAX_THREADS ? tasks : PAR_MAX_THREADS), colsum_task, &j);
}

/* ---- linear: x (rows,K), weight (N,K), bias (N) -> out (rows,N) ----------------------------- */

static bool is_f32(const cshape_t *s) {
    return s->esize == 4;
}

static bgemm_t linear_fwd(const cost_ctx_t *c) {
    const cshape_t *x = &c->in[0], *w = &c->in[1];
    return (bgemm_t){.M = rows_of(x),
                     .N = w->d[0],
                     .K = w->d[1],
                     .tb = true,
                     .c_f32 = is_f32(&c->out[0]),
                     .bias = c->n_in == 3};
}

int64_t workspace_linear_bf16(const cost_ctx_t *c) {
    bgemm_t g = linear_fwd(c);
    return bgemm_workspace(&g);
}

autosp_status_t run_linear_bf16(const kernel_args_t *r) {
    bgemm_t g = linear_fwd(r->c);
    bgemm(&g, r->in[0], r->in[1], r->c->n_in == 3 ? r->in[2] : NULL, r->out[0], r->workspace);
    return AUTOSP_OK;
}

/* (dout, x, w[, b]) -> dx = dout @ w, dw = dout^T @ x, db = colsum(dout); dw and db are f32 when
 * they are a parameter's gradient. Both products overwrite, as in f32, and share the workspace. */
static void linear_bwd(const cost_ctx_t *c, bgemm_t *dx, bgemm_t *dw) {
    const int64_t rows = rows_of(&c->in[1]), N = c->in[2].d[0], K = c->in[2].d[1];
    *dx = (bgemm_t){.M = rows, .N = K, .K = N, .c_f32 = is_f32(&c->out[0])};
    *dw = (bgemm_t){.M = N, .N = K, .K = rows, .ta = true, .c_f32 = is_f32(&c->out[1])};
}

int64_t workspace_linear_backward_bf16(const cost_ctx_t *c) {
    bgemm_t dx, dw;
    linear_bwd(c, &dx, &dw);
    const bgemm_t both[2] = {dw, dx}; /* run together */
    return bgemm_workspace_all(both, 2);
}

autosp_status_t run_linear_backward_bf16(const kernel_args_t *r) {
    bgemm_t dx, dw;
    linear_bwd(r->c, &dx, &dw);
    const bf16_t *dout = r->in[0], *x = r->in[1], *w = r->in[2];
    /* together: attention's output projection has 3 blocks of dw, 16 of dx (GPT-2, 4096 rows);
     * dw's blocks are the longer (a sum over every row), so they go first */
    const bgemm_call_t calls[] = {{dw, dout, x, NULL, r->out[1]}, {dx, dout, w, NULL, r->out[0]}};
    bgemm_run(calls, 2, r->workspace);
    if (r->c->n_out == 3) column_sums(r->out[2], is_f32(&r->c->out[2]), dout, dx.M, dw.M);
    return AUTOSP_OK;
}

/* ---- matmul: a (batch,M,K), b (batch,K,N) -> out (batch,M,N); see matmul_dims_t ------------- */

static bgemm_t matmul_fwd(const matmul_dims_t *d, const matmul_plan_t *p, const cost_ctx_t *c) {
    return (bgemm_t){.M = p->M,
                     .N = d->N,
                     .K = d->K,
                     .ta = d->trans_a,
                     .tb = d->trans_b,
                     .c_f32 = is_f32(&c->out[0])};
}

int64_t workspace_matmul_bf16(const cost_ctx_t *c) {
    matmul_dims_t d = matmul_dims(c, 0, 1);
    matmul_plan_t p = matmul_plan(&d);
    bgemm_t g = matmul_fwd(&d, &p, c);
    return bgemm_workspace(&g);
}

autosp_status_t run_matmul_bf16(const kernel_args_t *r) {
    matmul_dims_t d = matmul_dims(r->c, 0, 1);
    matmul_plan_t p = matmul_plan(&d);
    bgemm_t g = matmul_fwd(&d, &p, r->c);
    const size_t esize = r->c->out[0].esize;
    const bf16_t *a = r->in[0], *b = r->in[1];
    for (int64_t i = 0; i < p.batch; i++)
        bgemm(&g, a + i * p.sa, b + i * p.sb, NULL, (char *)r->out[0] + i * p.so * (int64_t)esize,
              r->workspace);
    return AUTOSP_OK;
}

/* The backward's two products, as linear.c's matmul_backward (the operands in order):
 *   da = op(b) @ dout^T (b, dout) when a is stored transposed, else dout @ op(b)^T (dout, b)
 *   db = dout^T @ op(a) (dout, a) when b is stored transposed, else op(a)^T @ dout (a, dout)
 * A shared operand's gradient sums over the batch in f32: straight into an f32 gradient, or
 * into an f32 accumulator in the workspace that is rounded once at the end. */
typedef struct matmul_bwd {
    matmul_dims_t d;
    matmul_plan_t p;
    bgemm_t da, db;
    bool acc_a, acc_b; /* a bf16 shared gradient: summed in the workspace's accumulator */
    int64_t acc_a_bytes, acc_b_bytes, ws; /* the accumulators, then the products' workspace */
} matmul_bwd_t;

static int64_t bgemm_both(bgemm_t g, bool summed) { /* the first entry's product, and the rest */
    int64_t n = bgemm_workspace(&g);
    g.accumulate = true;
    int64_t m = summed ? bgemm_workspace(&g) : 0;
    return n > m ? n : m;
}

static matmul_bwd_t matmul_bwd(const cost_ctx_t *c, bool plan) {
    matmul_bwd_t m = {.d = matmul_dims(c, 1, 2)};
    const matmul_dims_t *d = &m.d;
    m.p = matmul_plan(d);
    const int64_t M = m.p.M, N = d->N, K = d->K;
    const bool ta = d->trans_a, tb = d->trans_b, sum_a = d->a_shared && m.p.batch > 1,
               sum_b = d->b_shared && m.p.batch > 1;
    m.da = ta ? (bgemm_t){.M = K, .N = M, .K = N, .ta = tb, .tb = true}
              : (bgemm_t){.M = M, .N = K, .K = N, .tb = !tb};
    m.db = tb ? (bgemm_t){.M = N, .N = K, .K = M, .ta = true, .tb = ta}
              : (bgemm_t){.M = K, .N = N, .K = M, .ta = !ta};
    m.acc_a = sum_a && !is_f32(&c->out[0]);
    m.acc_b = sum_b && !is_f32(&c->out[1]);
    m.da.c_f32 = is_f32(&c->out[0]) || m.acc_a;
    m.db.c_f32 = is_f32(&c->out[1]) || m.acc_b;
    m.acc_a_bytes = m.acc_a ? round_up(4 * M * K) : 0;
    m.acc_b_bytes = m.acc_b ? round_up(4 * K * N) : 0;
    if (plan) {
        const int64_t wa = bgemm_both(m.da, sum_a), wb = bgemm_both(m.db, sum_b);
        m.ws = m.acc_a_bytes + m.acc_b_bytes + (wa > wb ? wa : wb) + WS_ALIGN;
    }
    return m;
}

int64_t workspace_matmul_backward_bf16(const cost_ctx_t *c) {
    return matmul_bwd(c, true).ws;
}

/* One gradient over the batch: entry i's product into out (or the accumulator) */
static void matmul_grad(bgemm_t g, bool summed, bool acc, float *acc_buf, void *out, size_t esize,
                        int64_t so, const bf16_t *x, int64_t sx, const bf16_t *y, int64_t sy,
                        int64_t batch, void *ws) {
    for (int64_t i = 0; i < batch; i++) {
        g.accumulate = summed && i > 0;
        void *dst = acc ? (void *)acc_buf : (char *)out + (summed ? 0 : i * so * (int64_t)esize);
        bgemm(&g, x + i * sx, y + i * sy, NULL, dst, ws);
    }
    if (acc) narrow(out, acc_buf, g.M * g.N);
}

autosp_status_t run_matmul_backward_bf16(const kernel_args_t *r) {
    matmul_bwd_t m = matmul_bwd(r->c, false);
    const bf16_t *dout = r->in[0], *a = r->in[1], *b = r->in[2];
    const int64_t batch = m.p.batch, sa = m.p.sa, sb = m.p.sb, so = m.p.so;
    float *acc_a = align_up(r->workspace), *acc_b = acc_a + m.acc_a_bytes / 4;
    void *ws = (char *)acc_b + m.acc_b_bytes;
    const size_t ea = r->c->out[0].esize, eb = r->c->out[1].esize;
    const bool sum_a = m.d.a_shared && batch > 1, sum_b = m.d.b_shared && batch > 1;
    /* a's gradient has a's stride (0 when shared), as b's has b's */
    if (m.d.trans_a)
        matmul_grad(m.da, sum_a, m.acc_a, acc_a, r->out[0], ea, sa, b, sb, dout, so, batch, ws);
    else
        matmul_grad(m.da, sum_a, m.acc_a, acc_a, r->out[0], ea, sa, dout, so, b, sb, batch, ws);
    if (m.d.trans_b)
        matmul_grad(m.db, sum_b, m.acc_b, acc_b, r->out[1], eb, sb, dout, so, a, sa, batch, ws);
    else
        matmul_grad(m.db, sum_b, m.acc_b, acc_b, r->out[1], eb, sb, a, sa, dout, so, batch, ws);
    return AUTOSP_OK;
}
