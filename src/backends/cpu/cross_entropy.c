/* cross_entropy.c: fused softmax + cross-entropy over the vocabulary, forward next to
 * backward. Rows whose label is ignore_index contribute nothing; the loss is the mean over the
 * others. Sums over a row run in 16 float lanes per block of 1024 logits and add the blocks in
 * double: V is large (32k-256k) and the loss is a mean over many rows. */
#include <math.h>

#include "backends/cpu/cpu_ops.h"
#include "backends/cpu/linear_bf16.h"
#include "base/bf16.h"
#include "base/base.h"
#include "fastmath.h"
#include "kernels.h"
#include "parallel.h"

/* One row of logits (V): its max and sum(exp(x - max)), so that logsumexp = max + log(sum).
 * Serves the forward and the backward; reads the row only, so the backward can overwrite it
 * afterwards. */
VECTOR_CLONES static void row_max_sumexp(const float *x, int64_t V, float *max, double *sum) {
    float lane[16];
    for (int k = 0; k < 16; k++) lane[k] = -INFINITY;
    int64_t v = 0;
    for (; v + 16 <= V; v += 16)
        for (int k = 0; k < 16; k++) lane[k] = x[v + k] > lane[k] ? x[v + k] : lane[k];
    for (; v < V; v++) lane[0] = x[v] > lane[0] ? x[v] : lane[0];
    float m = lane[0];
    for (int k = 1; k < 16; k++) m = lane[k] > m ? lane[k] : m;
    double s = 0.0;
    for (int64_t block = 0; block < V; block += 1024) {
        int64_t end = block + 1024 < V ? block + 1024 : V;
        float part[16] = {0};
        for (v = block; v + 16 <= end; v += 16)
            for (int k = 0; k < 16; k++) part[k] += exp_approx(x[v + k] - m);
        for (; v < end; v++) part[0] += exp_approx(x[v] - m);
        for (int k = 0; k < 16; k++) s += part[k];
    }
    *max = m;
    *sum = s;
}

int64_t count_targets(const int32_t *labels, int64_t rows, int32_t ignore_index) {
    int64_t valid = 0;
    for (int64_t r = 0; r < rows; r++) valid += labels[r] != ignore_index;
    return valid;
}

float cross_entropy_forward(const float *logits, const int32_t *labels, int64_t rows, int64_t V,
                            int32_t ignore_index) {
    return cross_entropy_forward_over(logits, labels, rows, V, ignore_index,
                                      (double)count_targets(labels, rows, ignore_index));
}

/* The rows run on the pool. The forward sums its rows in CE_BLOCKS fixed blocks (boundaries
 * from rows alone) and adds the blocks in order, so the loss does not depend on the threads. */
enum { CE_BLOCKS = 64 };
typedef struct ce_job {
    const float *logits;
    float *dlogits;
    const int32_t *labels;
    int64_t rows, V;
    int32_t ignore_index;
    float scale;
    double block_loss[CE_BLOCKS];
} ce_job_t;

static void ce_forward_block(void *ctx, int64_t block, int thread) {
    (void)thread;
    ce_job_t *j = ctx;
    double loss = 0.0;
    for (int64_t r = j->rows * block / CE_BLOCKS; r < j->rows * (block + 1) / CE_BLOCKS; r++) {
        if (j->labels[r] == j->ignore_index) continue;
        const float *x = j->logits + r * j->V;
        float max;
        double sum;
        row_max_sumexp(x, j->V, &max, &sum);
        loss += (double)max + log(sum) - (double)x[j->labels[r]];
    }
    j->block_loss[block] = loss;
}

// logits (rows,V), labels (rows) -> sum over valid rows of logsumexp(logits[r]) - logits[r][label],
// divided by count (0 when count is 0)
float cross_entropy_forward_over(const float *logits, const int32_t *labels, int64_t rows,
                                 int64_t V, int32_t ignore_index, double count) {
    ce_job_t j = {
        .logits = logits, .labels = labels, .rows = rows, .V = V, .ignore_index = ignore_index};
    par_run(CE_BLOCKS, CE_BLOCKS, ce_forward_block, &j);
    double loss = 0.0;
    for (int b = 0; b < CE_BLOCKS; b++) loss += j.block_loss[b];
    return count > 0 ? (float)(loss / count) : 0.0f;
}

/* logits (rows,V), labels (rows) -> dlogits (rows,V), may equal logits:
 * dlogits[r] = dloss / valid * (softmax(logits[r]) - onehot(label)), zeros for ignored rows.
 * Each row's max and sum are computed before the row is overwritten, element by element. */
void cross_entropy_backward(float *dlogits, const float *logits, const int32_t *labels,
                            int64_t rows, int64_t V, int32_t ignore_index, float dloss) {
    cross_entropy_backward_over(dlogits, logits, labels, rows, V, ignore_index, dloss,
                                (double)count_targets(labels, rows, ignore_index));
}

VECTOR_CLONES static void ce_backward_rows(void *ctx, int64_t lo, int64_t hi) {
    const ce_job_t *j = ctx;
    const int64_t V = j->V;
    for (int64_t r = lo; r < hi; r++) {
        const float *x = j->logits + r * V;
        float *dx = j->dlogits + r * V;
        if (j->labels[r] == j->ignore_index) {
            for (int64_t v = 0; v < V; v++) dx[v] = 0.0f;
            continue;
        }
        float max;
        double sum;
        row_max_sumexp(x, V, &max, &sum);
        float p_scale = (float)((double)j->scale / sum); /* dx = exp(x - max) / sum * scale */
        for (int64_t v = 0; v < V; v++) dx[v] = exp_approx(x[v] - max) * p_scale;
        dx[j->labels[r]] -= j->scale;
    }
}

void cross_entropy_backward_over(float *dlogits, const float *logits, const int32_t *labels,
                                 int64_t rows, int64_t V, int32_t ignore_index, float dloss,
                                 double count) {
    ce_job_t j = {.logits = logits,
                  .dlogits = dlogits,
                  .labels = labels,
                  .rows = rows,
                  .V = V,
                  .ignore_index = ignore_index,
                  .scale = count > 0 ? (float)(dloss / count) : 0.0f};
    par_for(rows, 1, ce_backward_rows, &j);
}

/* ---- adapters: a node's shapes and buffers, turned into one kernel call ------------------- */

/* The divisor of the loss: the normalizer input (targets over all ranks) if given, else the
 * count of this call's targets. */
static double targets(const kernel_args_t *r, int labels, int normalizer, int32_t ignore) {
    if (r->c->n_in > normalizer) return CF(r->in[normalizer])[0];
    return (double)count_targets(I32(r->in[labels]), r->c->in[labels].numel, ignore);
}

/* (logits, labels[, normalizer]) */
static autosp_status_t run_cross_entropy(const kernel_args_t *r) {
    const cshape_t *l = &r->c->in[0];
    int32_t ignore = (int32_t)node_attr_int(r->c->node, "ignore_index");
    autosp_status_t st = cpu_check_ids(r, 1, last_dim(l), ignore);
    if (st == AUTOSP_OK) F(r->out[0])
    [0] = cross_entropy_forward_over(CF(r->in[0]), I32(r->in[1]), rows_of(l), last_dim(l), ignore,
                                     targets(r, 1, 2, ignore));
    return st;
}

/* (dloss, logits, labels[, normalizer]) */
static autosp_status_t run_cross_entropy_backward(const kernel_args_t *r) {
    const cshape_t *l = &r->c->in[1];
    int32_t ignore = (int32_t)node_attr_int(r->c->node, "ignore_index");
    cross_entropy_backward_over(F(r->out[0]), CF(r->in[1]), I32(r->in[2]), rows_of(l), last_dim(l),
                                ignore, CF(r->in[0])[0], targets(r, 2, 3, ignore));
    return AUTOSP_OK;
}

static autosp_status_t run_target_count(const kernel_args_t *r) {
    int32_t ignore = (int32_t)node_attr_int(r->c->node, "ignore_index");
    F(r->out[0])[0] = (float)count_targets(I32(r->in[0]), r->c->in[0].numel, ignore);
    return AUTOSP_OK;
}

/* bf16 logits: blocks of rows widened into the workspace and run through the f32 kernels with
 * the whole call's divisor, so the blocks' losses add up to the mean; the gradient is computed
 * in place in the block and rounded into dlogits (which may be the logits' buffer: a block is
 * read before it is written). */
static int64_t workspace_cross_entropy_bf16(const cost_ctx_t *c) {
    if (c->node->op == AUTOSP_OP_CROSS_ENTROPY_BACKWARD && c->out[0].esize == 4) return 0;
    const cshape_t *l = &c->in[c->node->op == AUTOSP_OP_CROSS_ENTROPY ? 0 : 1];
    int64_t block = cpu_stage_rows(last_dim(l));
    return (block < rows_of(l) ? block : rows_of(l)) * last_dim(l) * (int64_t)sizeof(float);
}

static autosp_status_t run_cross_entropy_bf16(const kernel_args_t *r) {
    const cshape_t *l = &r->c->in[0];
    int64_t rows = rows_of(l), V = last_dim(l), block = cpu_stage_rows(V);
    int32_t ignore = (int32_t)node_attr_int(r->c->node, "ignore_index");
    autosp_status_t st = cpu_check_ids(r, 1, V, ignore);
    double count = targets(r, 1, 2, ignore), loss = 0;
    for (int64_t r0 = 0; r0 < rows && st == AUTOSP_OK; r0 += block) {
        int64_t n = rows - r0 < block ? rows - r0 : block;
        cpu_widen(r->workspace, (const bf16_t *)r->in[0] + r0 * V, n * V);
        loss += cross_entropy_forward_over(r->workspace, I32(r->in[1]) + r0, n, V, ignore, count);
    }
    F(r->out[0])[0] = (float)loss;
    return st;
}

static autosp_status_t run_cross_entropy_backward_bf16(const kernel_args_t *r) {
    const cshape_t *l = &r->c->in[1];
    int64_t rows = rows_of(l), V = last_dim(l), block = cpu_stage_rows(V);
    int32_t ignore = (int32_t)node_attr_int(r->c->node, "ignore_index");
    double count = targets(r, 2, 3, ignore);
    bool f32 = r->c->out[0].esize == 4; /* the gradient of bf16 logits that are a parameter */
    for (int64_t r0 = 0; r0 < rows; r0 += block) {
        int64_t n = rows - r0 < block ? rows - r0 : block;
        float *at = f32 ? F(r->out[0]) + r0 * V : r->workspace;
        cpu_widen(at, (const bf16_t *)r->in[1] + r0 * V, n * V);
        cross_entropy_backward_over(at, at, I32(r->in[2]) + r0, n, V, ignore, CF(r->in[0])[0],
                                    count);
        if (!f32) cpu_round((bf16_t *)r->out[0] + r0 * V, at, n * V);
    }
    return AUTOSP_OK;
}

/* ---- the lm head and its loss over chunks of rows (linear_cross_entropy) -------------------
 * x (rows,C), weight (V,C), labels (rows): each chunk of rows gets its logits x_c weight^T in
 * the workspace, then the cross-entropy's forward (a sum) or, in the backward, its gradient in
 * place and the two products dx_c = dlogits weight, dweight += dlogits^T x_c. dweight is zeroed
 * once and always accumulated, so every chunk runs the same products. f32 logits in both dtypes:
 * bf16's products accumulate in f32 anyway, and rounding the logits would only lose bits. */
typedef struct lce {
    int64_t rows, C, V, chunk;
    int32_t ignore;
    double count;
} lce_t;

static lce_t lce_dims(const kernel_args_t *r, int x) { /* x: the index of input x */
    const cshape_t *xs = &r->c->in[x];
    int32_t ignore = (int32_t)node_attr_int(r->c->node, "ignore_index");
    lce_t d = {.rows = rows_of(xs), .C = last_dim(xs), .V = r->c->in[x + 1].d[0], .ignore = ignore};
    d.chunk = loss_chunk_rows(d.rows, d.C, d.V, node_attr_int(r->c->node, "chunk"));
    d.count = targets(r, x + 2, x + 3, ignore);
    return d;
}

static int64_t lce_chunk(const cost_ctx_t *c, int x) {
    const cshape_t *xs = &c->in[x];
    return loss_chunk_rows(rows_of(xs), last_dim(xs), c->in[x + 1].d[0],
                           node_attr_int(c->node, "chunk"));
}

/* (x, weight, labels[, normalizer]) */
static autosp_status_t run_linear_cross_entropy(const kernel_args_t *r) {
    lce_t d = lce_dims(r, 0);
    autosp_status_t st = cpu_check_ids(r, 2, d.V, d.ignore);
    float *logits = r->workspace;
    double loss = 0;
    for (int64_t r0 = 0; r0 < d.rows && st == AUTOSP_OK; r0 += d.chunk) {
        int64_t n = d.rows - r0 < d.chunk ? d.rows - r0 : d.chunk;
        linear_forward(logits, CF(r->in[0]) + r0 * d.C, CF(r->in[1]), NULL, n, d.C, d.V);
        loss += cross_entropy_forward_over(logits, I32(r->in[2]) + r0, n, d.V, d.ignore, d.count);
    }
    F(r->out[0])[0] = (float)loss;
    return st;
}

/* (dloss, x, weight, labels[, normalizer]) -> dx, dweight */
static autosp_status_t run_linear_cross_entropy_backward(const kernel_args_t *r) {
    lce_t d = lce_dims(r, 1);
    const float *x = CF(r->in[1]), *w = CF(r->in[2]);
    float *logits = r->workspace, *dx = F(r->out[0]), *dw = F(r->out[1]);
    cpu_zero(dw, &r->c->out[1]);
    for (int64_t r0 = 0; r0 < d.rows; r0 += d.chunk) {
        int64_t n = d.rows - r0 < d.chunk ? d.rows - r0 : d.chunk;
        linear_forward(logits, x + r0 * d.C, w, NULL, n, d.C, d.V);
        cross_entropy_backward_over(logits, logits, I32(r->in[3]) + r0, n, d.V, d.ignore,
                                    CF(r->in[0])[0], d.count);
        cpu_sgemm(false, false, n, d.C, d.V, logits, w, 0.0f, dx + r0 * d.C);
        cpu_sgemm(true, false, d.V, d.C, n, logits, x + r0 * d.C, 1.0f, dw);
    }
    return AUTOSP_OK;
}

static int64_t workspace_linear_cross_entropy(const cost_ctx_t *c) {
    int x = c->node->op == AUTOSP_OP_LINEAR_CROSS_ENTROPY ? 0 : 1;
    return lce_chunk(c, x) * c->in[x + 1].d[0] * (int64_t)sizeof(float);
}

/* bf16: the logits' product into f32; the backward rounds the chunk's gradient to bf16 for its
 * two products (as linear's backward gets a bf16 dout), dweight accumulated in f32. The
 * workspace: f32 logits, their bf16 copy, then the products' own scratch. A bf16 dweight (the
 * weight is not a parameter) is summed in an f32 copy there and rounded at the end. */
typedef struct lce_bf16 {
    bgemm_t logits, dx, dw;
    int64_t f32_bytes, bf16_bytes, dw_bytes, gemm_offset;
} lce_bf16_t;

static lce_bf16_t lce_bf16_plan(int64_t chunk, int64_t C, int64_t V, bool backward, bool dx_f32,
                                bool dw_f32) {
    lce_bf16_t p = {
        .logits = {.M = chunk, .N = V, .K = C, .tb = true, .c_f32 = true},
        .dx = {.M = chunk, .N = C, .K = V, .c_f32 = dx_f32},
        .dw = {.M = V, .N = C, .K = chunk, .ta = true, .c_f32 = true, .accumulate = true}};
    p.f32_bytes = (chunk * V * (int64_t)sizeof(float) + 63) / 64 * 64;
    p.bf16_bytes = backward ? (chunk * V * (int64_t)sizeof(bf16_t) + 63) / 64 * 64 : 0;
    p.dw_bytes = backward && !dw_f32 ? V * C * (int64_t)sizeof(float) : 0;
    p.gemm_offset = p.f32_bytes + p.bf16_bytes + p.dw_bytes;
    return p;
}

/* The products' scratch for a chunk of `chunk` rows (oneDNN's primitives made now). */
static int64_t lce_bf16_gemm_bytes(const lce_bf16_t *p, bool backward) {
    const bgemm_t both[2] = {p->dx, p->dw}; /* run together */
    int64_t a = bgemm_workspace(&p->logits), b = backward ? bgemm_workspace_all(both, 2) : 0;
    return a > b ? a : b;
}

static int64_t workspace_linear_cross_entropy_bf16(const cost_ctx_t *c) {
    bool backward = c->node->op == AUTOSP_OP_LINEAR_CROSS_ENTROPY_BACKWARD;
    int x = backward ? 1 : 0;
    int64_t rows = rows_of(&c->in[x]), C = last_dim(&c->in[x]), V = c->in[x + 1].d[0];
    int64_t chunk = lce_chunk(c, x), tail = rows % chunk;
    bool dx_f32 = backward && c->out[0].esize == 4, dw_f32 = backward && c->out[1].esize == 4;
    lce_bf16_t p = lce_bf16_plan(chunk, C, V, backward, dx_f32, dw_f32);
    int64_t gemm = lce_bf16_gemm_bytes(&p, backward);
    if (tail) { /* the last, shorter chunk has primitives of its own */
        lce_bf16_t t = lce_bf16_plan(tail, C, V, backward, dx_f32, dw_f32);
        int64_t g = lce_bf16_gemm_bytes(&t, backward);
        gemm = g > gemm ? g : gemm;
    }
    return p.gemm_offset + gemm;
}

static autosp_status_t run_linear_cross_entropy_bf16(const kernel_args_t *r) {
    lce_t d = lce_dims(r, 0);
    autosp_status_t st = cpu_check_ids(r, 2, d.V, d.ignore);
    lce_bf16_t p = lce_bf16_plan(d.chunk, d.C, d.V, false, true, true);
    float *logits = r->workspace;
    char *gemm_ws = (char *)r->workspace + p.gemm_offset;
    double loss = 0;
    for (int64_t r0 = 0; r0 < d.rows && st == AUTOSP_OK; r0 += d.chunk) {
        int64_t n = d.rows - r0 < d.chunk ? d.rows - r0 : d.chunk;
        p.logits.M = n;
        const bgemm_call_t call = {p.logits, (const bf16_t *)r->in[0] + r0 * d.C, r->in[1], NULL,
                                   logits};
        bgemm_run(&call, 1, gemm_ws);
        loss += cross_entropy_forward_over(logits, I32(r->in[2]) + r0, n, d.V, d.ignore, d.count);
    }
    F(r->out[0])[0] = (float)loss;
    return st;
}

static autosp_status_t run_linear_cross_entropy_backward_bf16(const kernel_args_t *r) {
    lce_t d = lce_dims(r, 1);
    bool dx_f32 = r->c->out[0].esize == 4, dw_f32 = r->c->out[1].esize == 4;
    lce_bf16_t p = lce_bf16_plan(d.chunk, d.C, d.V, true, dx_f32, dw_f32);
    const bf16_t *x = r->in[1], *w = r->in[2];
    char *ws = r->workspace;
    float *logits = (float *)ws,
          *dw = dw_f32 ? F(r->out[1]) : (float *)(ws + p.f32_bytes + p.bf16_bytes);
    bf16_t *dlogits = (bf16_t *)(ws + p.f32_bytes);
    const cshape_t dw_shape = {.ndim = 1, .d = {d.V * d.C}, .numel = d.V * d.C, .esize = 4};
    cpu_zero(dw, &dw_shape);
    for (int64_t r0 = 0; r0 < d.rows; r0 += d.chunk) {
        int64_t n = d.rows - r0 < d.chunk ? d.rows - r0 : d.chunk;
        p.logits.M = p.dx.M = p.dw.K = n;
        const bgemm_call_t fwd = {p.logits, x + r0 * d.C, w, NULL, logits};
        bgemm_run(&fwd, 1, ws + p.gemm_offset);
        cross_entropy_backward_over(logits, logits, I32(r->in[3]) + r0, n, d.V, d.ignore,
                                    CF(r->in[0])[0], d.count);
        cpu_round(dlogits, logits, n * d.V);
        const bgemm_call_t bwd[] = {
            {p.dw, dlogits, x + r0 * d.C, NULL, dw},
            {p.dx, dlogits, w, NULL, (char *)r->out[0] + r0 * d.C * r->c->out[0].esize}};
        bgemm_run(bwd, 2, ws + p.gemm_offset);
    }
    if (!dw_f32) cpu_round(r->out[1], dw, d.V * d.C);
    return AUTOSP_OK;
}

static const cpu_kernel_reg_t kernels[] = {
    CPU_KERNEL(CROSS_ENTROPY, BF16, run_cross_entropy_bf16,
               .workspace = workspace_cross_entropy_bf16),
    CPU_KERNEL(CROSS_ENTROPY_BACKWARD, BF16, run_cross_entropy_backward_bf16,
               .workspace = workspace_cross_entropy_bf16),
    CPU_KERNEL(CROSS_ENTROPY, F32, run_cross_entropy),
    CPU_KERNEL(CROSS_ENTROPY_BACKWARD, F32, run_cross_entropy_backward),
    CPU_KERNEL(TARGET_COUNT, F32, run_target_count),
    CPU_KERNEL(LINEAR_CROSS_ENTROPY, F32, run_linear_cross_entropy,
               .workspace = workspace_linear_cross_entropy),
    CPU_KERNEL(LINEAR_CROSS_ENTROPY_BACKWARD, F32, run_linear_cross_entropy_backward,
               .workspace = workspace_linear_cross_entropy),
    CPU_KERNEL(LINEAR_CROSS_ENTROPY, BF16, run_linear_cross_entropy_bf16,
               .workspace = workspace_linear_cross_entropy_bf16),
    CPU_KERNEL(LINEAR_CROSS_ENTROPY_BACKWARD, BF16, run_linear_cross_entropy_backward_bf16,
               .workspace = workspace_linear_cross_entropy_bf16),
};
CPU_FAMILY(cross_entropy, kernels);
