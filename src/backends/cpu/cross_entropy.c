/* cross_entropy.c: fused softmax + cross-entropy over the vocabulary, forward next to
 * backward. Rows whose label is ignore_index contribute nothing; the loss is the mean over the
 * others. Sums over a row run in 16 float lanes per block of 1024 logits and add the blocks in
 * double: V is large (32k-256k) and the loss is a mean over many rows. */
#include <math.h>

#include "backends/cpu/cpu_ops.h"
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

static const cpu_kernel_reg_t kernels[] = {
    CPU_KERNEL(CROSS_ENTROPY, BF16, run_cross_entropy_bf16,
               .workspace = workspace_cross_entropy_bf16),
    CPU_KERNEL(CROSS_ENTROPY_BACKWARD, BF16, run_cross_entropy_backward_bf16,
               .workspace = workspace_cross_entropy_bf16),
    CPU_KERNEL(CROSS_ENTROPY, F32, run_cross_entropy),
    CPU_KERNEL(CROSS_ENTROPY_BACKWARD, F32, run_cross_entropy_backward),
    CPU_KERNEL(TARGET_COUNT, F32, run_target_count),
};
CPU_FAMILY(cross_entropy, kernels);
