/* mlp.c: Llama's and GPT-2's MLPs over tiles of rows (the tiled_mlp pass's ops), each forward
 * next to its backward.
 *
 *     gate = x w_gate^T, up = x w_up^T   (tile, F)
 *     h    = silu(gate) * up             (tile, F)
 *     y    = h w_down^T                  (tile, C)
 *
 * Each tile's F-wide values live in the workspace only. The backward recomputes them per tile,
 * then dw_down += dy^T h, dh = dy w_down, (dgate, dup) = swiglu'(dh), dw_gate += dgate^T x,
 * dw_up += dup^T x, dx = dgate w_gate + dup w_up. The weight gradients are zeroed once and
 * accumulated, so every tile runs the same products. With a norm_weight the tile's rows are
 * rmsnorm(x) first, in the workspace: the products read them, and the backward turns their
 * gradient into dx and dnorm_weight by the norm's backward. bf16 goes through staged.c: the
 * f32 code on blocks of rows widened, the weights widened once, the weight gradients summed in
 * f32. */
#include "backends/cpu/cpu_ops.h"
#include "backends/cpu/linear_bf16.h"
#include "kernels.h"

typedef struct mlp_dims {
    int64_t rows, C, F, tile;
    bool normed; /* x is rmsnorm(x, norm_weight) first (Llama's mlp only) */
    float eps;
} mlp_dims_t;

static mlp_dims_t mlp_dims(const cost_ctx_t *c, int x) { /* x: the index of input x */
    mlp_dims_t d = {.rows = rows_of(&c->in[x]), .C = last_dim(&c->in[x]), .F = c->in[x + 1].d[0]};
    d.tile = mlp_tile_rows(d.rows, d.C, node_attr_int(c->node, "tile"));
    autosp_op_t op = c->node->op;
    d.normed = (op == AUTOSP_OP_MLP || op == AUTOSP_OP_MLP_BACKWARD) && c->n_in - x == 5;
    if (d.normed) d.eps = (float)node_attr_float(c->node, "eps");
    return d;
}

/* gate, up and h of n rows of x, at the tile's scratch */
static void mlp_tile_forward(float *gate, float *up, float *h, const float *x, const float *wg,
                             const float *wu, int64_t n, const mlp_dims_t *d) {
    cpu_sgemm(false, true, n, d->F, d->C, x, wg, 0.0f, gate);
    cpu_sgemm(false, true, n, d->F, d->C, x, wu, 0.0f, up);
    swiglu_forward(h, gate, up, n * d->F);
}

/* The n rows of x the tile's products read: x itself, or rmsnorm(x) written into normed. */
static const float *mlp_tile_input(float *normed, const float *x, const float *norm_weight,
                                   int64_t n, const mlp_dims_t *d) {
    if (!d->normed) return x;
    rmsnorm_forward(normed, x, norm_weight, n, d->C, d->eps);
    return normed;
}

/* (x, w_gate, w_up, w_down[, norm_weight]) -> y */
static autosp_status_t run_mlp(const kernel_args_t *r) {
    mlp_dims_t d = mlp_dims(r->c, 0);
    const float *x = CF(r->in[0]), *wg = CF(r->in[1]), *wu = CF(r->in[2]), *wd = CF(r->in[3]),
                *g = d.normed ? CF(r->in[4]) : NULL;
    float *gate = r->workspace, *up = gate + d.tile * d.F, *h = up + d.tile * d.F,
          *normed = h + d.tile * d.F, *y = F(r->out[0]);
    for (int64_t r0 = 0; r0 < d.rows; r0 += d.tile) {
        int64_t n = d.rows - r0 < d.tile ? d.rows - r0 : d.tile;
        const float *xt = mlp_tile_input(normed, x + r0 * d.C, g, n, &d);
        mlp_tile_forward(gate, up, h, xt, wg, wu, n, &d);
        cpu_sgemm(false, true, n, d.C, d.F, h, wd, 0.0f, y + r0 * d.C);
    }
    return AUTOSP_OK;
}

/* (dy, x, w_gate, w_up, w_down[, norm_weight]) -> dx, dw_gate, dw_up, dw_down[, dnorm_weight] */
static autosp_status_t run_mlp_backward(const kernel_args_t *r) {
    mlp_dims_t d = mlp_dims(r->c, 1);
    const float *dy = CF(r->in[0]), *x = CF(r->in[1]), *wg = CF(r->in[2]), *wu = CF(r->in[3]),
                *wd = CF(r->in[4]), *g = d.normed ? CF(r->in[5]) : NULL;
    float *dx = F(r->out[0]), *dwg = F(r->out[1]), *dwu = F(r->out[2]), *dwd = F(r->out[3]);
    const int64_t span = d.tile * d.F, rows = d.tile * d.C;
    /* the norm's row statistics (doubles) first, where the workspace is aligned */
    void *stats = r->workspace;
    float *gate = (float *)((char *)r->workspace +
                            (d.normed ? (int64_t)norm_backward_workspace(d.tile) : 0)),
          *up = gate + span, *h = up + span, *dgate = h + span, *dup = dgate + span,
          *normed = dup + span, *dnormed = normed + rows;
    for (int k = 1; k < r->c->n_out; k++) cpu_zero(r->out[k], &r->c->out[k]);
    for (int64_t r0 = 0; r0 < d.rows; r0 += d.tile) {
        int64_t n = d.rows - r0 < d.tile ? d.rows - r0 : d.tile;
        const float *dyt = dy + r0 * d.C, *xt = mlp_tile_input(normed, x + r0 * d.C, g, n, &d);
        float *dxt = d.normed ? dnormed : dx + r0 * d.C; /* the products' dx: of xt */
        mlp_tile_forward(gate, up, h, xt, wg, wu, n, &d);
        cpu_sgemm(true, false, d.C, d.F, n, dyt, h, 1.0f, dwd);
        cpu_sgemm(false, false, n, d.F, d.C, dyt, wd, 0.0f, h); /* dh, over h */
        swiglu_backward(dgate, dup, h, gate, up, n * d.F);
        cpu_sgemm(true, false, d.F, d.C, n, dgate, xt, 1.0f, dwg);
        cpu_sgemm(true, false, d.F, d.C, n, dup, xt, 1.0f, dwu);
        cpu_sgemm(false, false, n, d.C, d.F, dgate, wg, 0.0f, dxt);
        cpu_sgemm(false, false, n, d.C, d.F, dup, wu, 1.0f, dxt);
        if (d.normed)
            rmsnorm_backward(dx + r0 * d.C, F(r->out[4]), dnormed, x + r0 * d.C, g, n, d.C, d.eps,
                             stats);
    }
    return AUTOSP_OK;
}

/* ---- GPT-2's MLP ---------------------------------------------------------------------------
 *
 *     h = x w_fc^T + b_fc, g = gelu(h)   (tile, F)
 *     y = g w_proj^T + b_proj             (tile, C)
 *
 * The backward recomputes h and g per tile, then dw_proj += dy^T g, db_proj += colsum(dy),
 * dh = gelu'(h) (dy w_proj), dw_fc += dh^T x, db_fc += colsum(dh), dx = dh w_fc. */

/* (x, w_fc, b_fc, w_proj, b_proj) -> y */
static autosp_status_t run_gelu_mlp(const kernel_args_t *r) {
    mlp_dims_t d = mlp_dims(r->c, 0);
    const float *x = CF(r->in[0]), *wf = CF(r->in[1]), *bf = CF(r->in[2]), *wp = CF(r->in[3]),
                *bp = CF(r->in[4]);
    float *g = r->workspace, *y = F(r->out[0]);
    for (int64_t r0 = 0; r0 < d.rows; r0 += d.tile) {
        int64_t n = d.rows - r0 < d.tile ? d.rows - r0 : d.tile;
        linear_forward(g, x + r0 * d.C, wf, bf, n, d.C, d.F);
        gelu_forward(g, g, n * d.F);
        linear_forward(y + r0 * d.C, g, wp, bp, n, d.F, d.C);
    }
    return AUTOSP_OK;
}

/* (dy, x, w_fc, b_fc, w_proj, b_proj) -> dx, dw_fc, db_fc, dw_proj, db_proj */
static autosp_status_t run_gelu_mlp_backward(const kernel_args_t *r) {
    mlp_dims_t d = mlp_dims(r->c, 1);
    const float *dy = CF(r->in[0]), *x = CF(r->in[1]), *wf = CF(r->in[2]), *bf = CF(r->in[3]),
                *wp = CF(r->in[4]);
    float *dx = F(r->out[0]), *dwf = F(r->out[1]), *dbf = F(r->out[2]), *dwp = F(r->out[3]),
          *dbp = F(r->out[4]);
    float *h = r->workspace, *g = h + d.tile * d.F, *dh = g + d.tile * d.F;
    for (int k = 1; k < 5; k++) cpu_zero(r->out[k], &r->c->out[k]);
    for (int64_t r0 = 0; r0 < d.rows; r0 += d.tile) {
        int64_t n = d.rows - r0 < d.tile ? d.rows - r0 : d.tile;
        const float *xt = x + r0 * d.C, *dyt = dy + r0 * d.C;
        linear_forward(h, xt, wf, bf, n, d.C, d.F);
        gelu_forward(g, h, n * d.F);
        cpu_sgemm(true, false, d.C, d.F, n, dyt, g, 1.0f, dwp);
        sum_rows_accumulate(dbp, dyt, n, d.C);
        cpu_sgemm(false, false, n, d.F, d.C, dyt, wp, 0.0f, g); /* dg, over g */
        gelu_backward(dh, g, h, n * d.F);
        cpu_sgemm(true, false, d.F, d.C, n, dh, xt, 1.0f, dwf);
        sum_rows_accumulate(dbf, dh, n, d.F);
        cpu_sgemm(false, false, n, d.C, d.F, dh, wf, 0.0f, dx + r0 * d.C);
    }
    return AUTOSP_OK;
}

/* g in the forward; h, g and dh in the backward */
static int64_t workspace_gelu_mlp(const cost_ctx_t *c) {
    bool backward = c->node->op == AUTOSP_OP_GELU_MLP_BACKWARD;
    mlp_dims_t d = mlp_dims(c, backward ? 1 : 0);
    return (backward ? 3 : 1) * d.tile * d.F * (int64_t)sizeof(float);
}

/* gate, up and h in the forward; dgate and dup too in the backward; with a norm, the tile's
 * normalised rows (and in the backward their gradient and the norm's row statistics) */
static int64_t workspace_mlp(const cost_ctx_t *c) {
    bool backward = c->node->op == AUTOSP_OP_MLP_BACKWARD;
    mlp_dims_t d = mlp_dims(c, backward ? 1 : 0);
    int64_t bytes = (backward ? 5 : 3) * d.tile * d.F * (int64_t)sizeof(float);
    if (d.normed)
        bytes += (backward ? 2 : 1) * d.tile * d.C * (int64_t)sizeof(float) +
                 (backward ? (int64_t)norm_backward_workspace(d.tile) : 0);
    return bytes;
}

/* bf16: x and y (dy, dx) cut into blocks of rows, the weights and their gradients whole */
CPU_STAGED(mlp, run_mlp, workspace_mlp, 1, 1)
CPU_STAGED(mlp_backward, run_mlp_backward, workspace_mlp, 3, 1)
CPU_STAGED(gelu_mlp, run_gelu_mlp, workspace_gelu_mlp, 1, 1)
CPU_STAGED(gelu_mlp_backward, run_gelu_mlp_backward, workspace_gelu_mlp, 3, 1)

static const cpu_kernel_reg_t kernels[] = {
    CPU_KERNEL(MLP, F32, run_mlp, .workspace = workspace_mlp),
    CPU_KERNEL(MLP_BACKWARD, F32, run_mlp_backward, .workspace = workspace_mlp),
    CPU_STAGED_ROW(MLP, mlp),
    CPU_STAGED_ROW(MLP_BACKWARD, mlp_backward),
    CPU_KERNEL(GELU_MLP, F32, run_gelu_mlp, .workspace = workspace_gelu_mlp),
    CPU_KERNEL(GELU_MLP_BACKWARD, F32, run_gelu_mlp_backward, .workspace = workspace_gelu_mlp),
    CPU_STAGED_ROW(GELU_MLP, gelu_mlp),
    CPU_STAGED_ROW(GELU_MLP_BACKWARD, gelu_mlp_backward),
};
CPU_FAMILY(mlp, kernels);
