/* norm_linear.c: a norm and the projection reading it over tiles of rows (the tiled_norm
 * pass's ops), the forward next to its backward.
 *
 *     n = norm(x)           (tile, C)    rmsnorm, or layernorm with its bias
 *     y = n weight^T + bias (tile, N)
 *
 * Only one tile of n exists, in the workspace. The backward recomputes it per tile, then
 * dweight += dy^T n, dbias += colsum(dy), dn = dy weight, and the norm's backward gives the
 * tile's dx and adds into dnorm_weight (and dnorm_bias). The parameter gradients are zeroed
 * once and accumulated, so every tile runs the same code. bf16 goes through staged.c. */
#include "backends/cpu/cpu_ops.h"
#include "backends/cpu/linear_bf16.h"
#include "kernels.h"

typedef struct norm_linear_dims {
    int64_t rows, C, N, tile;
    int w; /* the index of input weight among the forward's inputs */
    bool layernorm, bias;
    float eps;
} norm_linear_dims_t;

/* x: the index of input x (1 in the backward) */
static norm_linear_dims_t norm_linear_dims(const cost_ctx_t *c, int x) {
    autosp_op_t op = c->node->op;
    norm_linear_dims_t d = {.layernorm = op == AUTOSP_OP_LAYERNORM_LINEAR ||
                                         op == AUTOSP_OP_LAYERNORM_LINEAR_BACKWARD};
    d.w = d.layernorm ? 3 : 2;
    d.bias = c->n_in - x > d.w + 1;
    d.rows = rows_of(&c->in[x]), d.C = last_dim(&c->in[x]), d.N = c->in[x + d.w].d[0];
    d.tile = mlp_tile_rows(d.rows, d.C, node_attr_int(c->node, "tile"));
    d.eps = (float)node_attr_float(c->node, "eps");
    return d;
}

/* n rows of x normalised into out */
static void norm_tile(float *out, const float *x, const float *const *in, int64_t n,
                      const norm_linear_dims_t *d) {
    if (d->layernorm)
        layernorm_forward(out, x, in[1], in[2], n, d->C, d->eps);
    else
        rmsnorm_forward(out, x, in[1], n, d->C, d->eps);
}

static int64_t tile_rows(const norm_linear_dims_t *d, int64_t r0) {
    return d->rows - r0 < d->tile ? d->rows - r0 : d->tile;
}

/* (x, norm_weight[, norm_bias], weight[, bias]) -> y */
static autosp_status_t run_norm_linear(const kernel_args_t *r) {
    norm_linear_dims_t d = norm_linear_dims(r->c, 0);
    const float *in[5];
    for (int k = 0; k < r->c->n_in; k++) in[k] = CF(r->in[k]);
    const float *bias = d.bias ? in[d.w + 1] : NULL;
    float *n = r->workspace, *y = F(r->out[0]);
    for (int64_t r0 = 0; r0 < d.rows; r0 += d.tile) {
        int64_t rows = tile_rows(&d, r0);
        norm_tile(n, in[0] + r0 * d.C, in, rows, &d);
        linear_forward(y + r0 * d.N, n, in[d.w], bias, rows, d.C, d.N);
    }
    return AUTOSP_OK;
}

/* (dy, x, norm_weight[, norm_bias], weight[, bias])
 *   -> dx, dnorm_weight[, dnorm_bias], dweight[, dbias] */
static autosp_status_t run_norm_linear_backward(const kernel_args_t *r) {
    norm_linear_dims_t d = norm_linear_dims(r->c, 1);
    const float *dy = CF(r->in[0]), *in[5];
    for (int k = 1; k < r->c->n_in; k++) in[k - 1] = CF(r->in[k]);
    float *out[5];
    for (int k = 0; k < r->c->n_out; k++) out[k] = F(r->out[k]);
    float *dweight = out[d.w], *dbias = d.bias ? out[d.w + 1] : NULL;
    float *n = r->workspace, *dn = n + d.tile * d.C;
    void *stats = dn + d.tile * d.C;
    for (int k = 1; k < r->c->n_out; k++) cpu_zero(r->out[k], &r->c->out[k]);
    for (int64_t r0 = 0; r0 < d.rows; r0 += d.tile) {
        int64_t rows = tile_rows(&d, r0);
        const float *xt = in[0] + r0 * d.C, *dyt = dy + r0 * d.N;
        norm_tile(n, xt, in, rows, &d);
        cpu_sgemm(true, false, d.N, d.C, rows, dyt, n, 1.0f, dweight);
        if (dbias) sum_rows_accumulate(dbias, dyt, rows, d.N);
        cpu_sgemm(false, false, rows, d.C, d.N, dyt, in[d.w], 0.0f, dn);
        if (d.layernorm)
            layernorm_backward(out[0] + r0 * d.C, out[1], out[2], dn, xt, in[1], rows, d.C, d.eps,
                               stats);
        else
            rmsnorm_backward(out[0] + r0 * d.C, out[1], dn, xt, in[1], rows, d.C, d.eps, stats);
    }
    return AUTOSP_OK;
}

/* n in the forward; n, dn and the norm backward's row statistics in the backward */
static int64_t workspace_norm_linear(const cost_ctx_t *c) {
    autosp_op_t op = c->node->op;
    bool backward =
        op == AUTOSP_OP_RMSNORM_LINEAR_BACKWARD || op == AUTOSP_OP_LAYERNORM_LINEAR_BACKWARD;
    norm_linear_dims_t d = norm_linear_dims(c, backward ? 1 : 0);
    int64_t tile_bytes = d.tile * d.C * (int64_t)sizeof(float);
    if (!backward) return tile_bytes;
    return 2 * tile_bytes + (int64_t)norm_backward_workspace(d.tile);
}

/* bf16: x and y (dy, dx) cut into blocks of rows, the parameters and their gradients whole */
CPU_STAGED(norm_linear, run_norm_linear, workspace_norm_linear, 1, 1)
CPU_STAGED(norm_linear_backward, run_norm_linear_backward, workspace_norm_linear, 3, 1)

static const cpu_kernel_reg_t kernels[] = {
    CPU_KERNEL(RMSNORM_LINEAR, F32, run_norm_linear, .workspace = workspace_norm_linear),
    CPU_KERNEL(RMSNORM_LINEAR_BACKWARD, F32, run_norm_linear_backward,
               .workspace = workspace_norm_linear),
    CPU_STAGED_ROW(RMSNORM_LINEAR, norm_linear),
    CPU_STAGED_ROW(RMSNORM_LINEAR_BACKWARD, norm_linear_backward),
    CPU_KERNEL(LAYERNORM_LINEAR, F32, run_norm_linear, .workspace = workspace_norm_linear),
    CPU_KERNEL(LAYERNORM_LINEAR_BACKWARD, F32, run_norm_linear_backward,
               .workspace = workspace_norm_linear),
    CPU_STAGED_ROW(LAYERNORM_LINEAR, norm_linear),
    CPU_STAGED_ROW(LAYERNORM_LINEAR_BACKWARD, norm_linear_backward),
};
CPU_FAMILY(norm_linear, kernels);
