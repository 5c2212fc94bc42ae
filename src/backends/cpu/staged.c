/* staged.c: bf16 kernels made of the f32 ones. A bf16 node runs its op's f32 adapter on blocks
 * of rows: each block's bf16 inputs are widened into f32 scratch, the f32 adapter runs on the
 * block as if it were the whole node, and the block's bf16 outputs are rounded back. So a staged
 * kernel's result is the f32 kernel's on the rounded inputs, rounded once (its error bound is
 * the f32 kernel's plus one rounding, docs/runtime.md), and every reduction stays in f32.
 *
 * Why blocks and not whole tensors: the scratch is the arena's workspace, planned per node, and
 * a whole-tensor f32 copy would double the activations bf16 is there to halve. A block is about
 * STAGE_ELEMS elements of the widest row, so the scratch is a few MiB whatever S is. */
#include <string.h>

#include "backends/cpu/cpu_ops.h"
#include "backends/cpu/parallel.h"
#include "base/bf16.h"

enum { STAGE_ELEMS = 1 << 18, STAGE_ALIGN = 64 };

typedef struct convert_job {
    void *dst;
    const void *src;
} convert_job_t;

static void widen_range(void *ctx, int64_t lo, int64_t hi) {
    const convert_job_t *j = ctx;
    bf16_to_f32_n((float *)j->dst + lo, (const bf16_t *)j->src + lo, hi - lo);
}
static void round_range(void *ctx, int64_t lo, int64_t hi) {
    const convert_job_t *j = ctx;
    bf16_from_f32_n((bf16_t *)j->dst + lo, (const float *)j->src + lo, hi - lo);
}

void cpu_widen(float *dst, const void *src, int64_t n) {
    par_for(n, 1 << 15, widen_range, &(convert_job_t){dst, src});
}
void cpu_round(void *dst, const float *src, int64_t n) {
    par_for(n, 1 << 15, round_range, &(convert_job_t){dst, src});
}

/* Where each tensor of a block lives. */
typedef struct stage_layout {
    bool split_in[AUTOSP_MAX_NODE_INPUTS], split_out[AUTOSP_MAX_NODE_OUTPUTS];
    int64_t rows, block; /* rows of the split tensors; rows per block */
    bool blocks;         /* more than one block (else the node's own shapes, one call) */
    int64_t in_at[AUTOSP_MAX_NODE_INPUTS];   /* offset of a staged input, -1: its own buffer */
    int64_t out_at[AUTOSP_MAX_NODE_OUTPUTS]; /* offset of a staged output, -1: its own buffer */
    int64_t acc_at[AUTOSP_MAX_NODE_OUTPUTS]; /* a bf16 whole output's f32 sum, -1: none */
    int64_t f32_at, bytes;                   /* the f32 adapter's workspace; the total */
    cost_ctx_t block_ctx;                    /* the shapes of a full block */
} stage_layout_t;

static int64_t aligned(int64_t bytes) {
    return (bytes + STAGE_ALIGN - 1) / STAGE_ALIGN * STAGE_ALIGN;
}

/* A split tensor's shape for n of its rows (leading dims 1, the last kept). */
static cshape_t block_shape(const cshape_t *s, int64_t n) {
    cshape_t b = *s;
    for (int k = 0; k + 2 < b.ndim; k++) b.d[k] = 1;
    b.d[b.ndim - 2] = n;
    b.numel = n * b.d[b.ndim - 1];
    b.esize = sizeof(float);
    return b;
}

/* The rows of the split tensors, or -1 when they disagree or one is 1-D (then one block holds
 * everything, the shapes as they are). */
static int64_t split_rows(const cost_ctx_t *c, const cpu_stage_t *st, int64_t *widest) {
    int64_t rows = -1;
    *widest = 1;
    for (int k = 0; k < c->n_in + c->n_out; k++) {
        bool in = k < c->n_in;
        const cshape_t *s = in ? &c->in[k] : &c->out[k - c->n_in];
        if (!((in ? st->rows_in : st->rows_out) >> (in ? k : k - c->n_in) & 1)) continue;
        if (s->ndim < 2 || (rows >= 0 && rows_of(s) != rows)) return -1;
        rows = rows_of(s);
        if (last_dim(s) > *widest) *widest = last_dim(s);
    }
    return rows;
}

static void stage_plan(const cost_ctx_t *c, const cpu_stage_t *st, stage_layout_t *L) {
    int64_t widest;
    L->rows = split_rows(c, st, &widest);
    L->block = cpu_stage_rows(widest);
    bool blocks = L->blocks = L->rows > L->block;
    if (!blocks) L->block = L->rows > 0 ? L->rows : 1;
    L->block_ctx = *c;
    int64_t at = 0;
    for (int k = 0; k < c->n_in; k++) {
        L->split_in[k] = blocks && (st->rows_in >> k & 1);
        if (L->split_in[k]) L->block_ctx.in[k] = block_shape(&c->in[k], L->block);
        L->block_ctx.in[k].esize = c->in[k].esize == 2 ? 4 : c->in[k].esize;
        L->in_at[k] = c->in[k].esize == 2 ? at : -1;
        if (c->in[k].esize == 2) at += aligned(L->block_ctx.in[k].numel * 4);
    }
    for (int k = 0; k < c->n_out; k++) {
        L->split_out[k] = blocks && (st->rows_out >> k & 1);
        if (L->split_out[k]) L->block_ctx.out[k] = block_shape(&c->out[k], L->block);
        L->block_ctx.out[k].esize = c->out[k].esize == 2 ? 4 : c->out[k].esize;
        bool whole_sum = blocks && !L->split_out[k]; /* a sum over the rows, block by block */
        L->out_at[k] = c->out[k].esize == 2 || whole_sum ? at : -1;
        if (L->out_at[k] >= 0) at += aligned(L->block_ctx.out[k].numel * 4);
        L->acc_at[k] = whole_sum && c->out[k].esize == 2 ? at : -1;
        if (L->acc_at[k] >= 0) at += aligned(c->out[k].numel * 4);
    }
    L->f32_at = at;
    L->bytes = at + (st->f32_workspace ? aligned(st->f32_workspace(&L->block_ctx)) : 0);
}

int64_t cpu_stage_rows(int64_t row_elems) {
    return row_elems > 0 && STAGE_ELEMS / row_elems > 0 ? STAGE_ELEMS / row_elems : 1;
}

int64_t cpu_staged_workspace(const cost_ctx_t *c, const cpu_stage_t *st) {
    stage_layout_t L;
    stage_plan(c, st, &L);
    return L.bytes;
}

static void add_into(float *acc, const float *part, int64_t n) {
    for (int64_t i = 0; i < n; i++) acc[i] += part[i];
}

/* Block [r0, r0 + n): the f32 adapter's arguments, its inputs widened. */
static void stage_in(const kernel_args_t *r, const stage_layout_t *L, int64_t r0, int64_t n,
                     cost_ctx_t *ctx, kernel_args_t *a) {
    char *ws = r->workspace;
    *a = *r;
    a->c = ctx;
    a->workspace = ws + L->f32_at;
    for (int k = 0; k < r->c->n_in; k++) {
        const cshape_t *s = &r->c->in[k];
        int64_t first = L->split_in[k] ? r0 * last_dim(s) : 0;
        int64_t len = L->split_in[k] ? n * last_dim(s) : s->numel;
        if (L->split_in[k]) ctx->in[k] = block_shape(s, n);
        const char *src = (const char *)r->in[k] + first * (int64_t)s->esize;
        if (L->in_at[k] < 0) {
            a->in[k] = (void *)src;
            continue;
        }
        a->in[k] = ws + L->in_at[k];
        if (r0 == 0 || L->split_in[k]) cpu_widen(a->in[k], src, len); /* a whole input once */
    }
    for (int k = 0; k < r->c->n_out; k++) {
        const cshape_t *s = &r->c->out[k];
        if (L->split_out[k]) ctx->out[k] = block_shape(s, n);
        int64_t first = L->split_out[k] ? r0 * last_dim(s) : 0;
        a->out[k] =
            L->out_at[k] >= 0 ? ws + L->out_at[k] : (char *)r->out[k] + first * (int64_t)s->esize;
    }
}

/* The block's outputs: split ones rounded into place, whole ones added to their sums. */
static void stage_out(const kernel_args_t *r, const stage_layout_t *L, int64_t r0, int64_t n,
                      const kernel_args_t *a, bool blocks) {
    char *ws = r->workspace;
    for (int k = 0; k < r->c->n_out; k++) {
        const cshape_t *s = &r->c->out[k];
        if (L->out_at[k] < 0) continue;
        if (!blocks || L->split_out[k]) {
            int64_t first = L->split_out[k] ? r0 * last_dim(s) : 0;
            int64_t len = L->split_out[k] ? n * last_dim(s) : s->numel;
            cpu_round((char *)r->out[k] + first * 2, a->out[k], len);
            continue;
        }
        float *acc = L->acc_at[k] >= 0 ? (float *)(ws + L->acc_at[k]) : r->out[k];
        add_into(acc, a->out[k], s->numel);
    }
}

autosp_status_t cpu_run_staged(const kernel_args_t *r, const cpu_stage_t *st) {
    stage_layout_t L;
    stage_plan(r->c, st, &L);
    bool blocks = L.blocks;
    for (int k = 0; blocks && k < r->c->n_out; k++) { /* the sums start at zero */
        if (L.split_out[k]) continue;
        float *acc = L.acc_at[k] >= 0 ? (float *)((char *)r->workspace + L.acc_at[k]) : r->out[k];
        memset(acc, 0, (size_t)r->c->out[k].numel * sizeof(float));
    }
    int64_t rows = blocks ? L.rows : 1;
    for (int64_t r0 = 0; r0 < rows; r0 += L.block) {
        int64_t n = rows - r0 < L.block ? rows - r0 : L.block;
        cost_ctx_t ctx = L.block_ctx;
        kernel_args_t a;
        stage_in(r, &L, r0, n, &ctx, &a);
        autosp_status_t status = st->f32(&a);
        if (status != AUTOSP_OK) return status;
        stage_out(r, &L, r0, n, &a, blocks);
    }
    for (int k = 0; blocks && k < r->c->n_out; k++)
        if (L.acc_at[k] >= 0)
            cpu_round(r->out[k], (const float *)((char *)r->workspace + L.acc_at[k]),
                      r->c->out[k].numel);
    return AUTOSP_OK;
}
