/* run_ops.c: how each op runs on the CPU: the node's shapes and buffers, turned into one call
 * of a kernel from src/backends/cpu. Parameter-gradient kernels accumulate, so their outputs are
 * zeroed first; inputs a user controls (ids, labels) are range-checked here. */
#include <math.h>
#include <string.h>

#include "backends/cpu/kernels.h"
#include "backends/cpu/parallel.h"
#include "backends/cpu/cpu_ops.h"

#define F(p)   ((float *)(p))
#define CF(p)  ((const float *)(p))
#define I32(p) ((const int32_t *)(p))

static int64_t last_dim(const cshape_t *s) {
    return s->ndim ? s->d[s->ndim - 1] : 1;
}
static int64_t rows_of(const cshape_t *s) {
    return s->numel / (last_dim(s) ? last_dim(s) : 1);
}
static void zero_range(void *ctx, int64_t lo, int64_t hi) {
    memset((char *)ctx + lo, 0, (size_t)(hi - lo));
}
/* on the pool: the embedding's gradient is a V x C table (154 MB for GPT-2) */
static void zero(void *p, const cshape_t *s) {
    par_for(s->numel * s->esize, 1 << 20, zero_range, p);
}

static const int64_t NO_EXCEPTION = INT64_MIN; /* below every int32: no id is excused */

/* ids in [0, limit), except `allowed` (ignore_index) */
static autosp_status_t check_ids(const kernel_args_t *r, int input, int64_t limit, int64_t allowed) {
    const int32_t *ids = I32(r->in[input]);
    for (int64_t i = 0; i < r->c->in[input].numel; i++) {
        if ((ids[i] >= 0 && ids[i] < limit) || ids[i] == allowed) continue;
        char label[AUTOSP_MAX_NAME + 32];
        return set_error(r->err, AUTOSP_ERR_INVALID,
                         "%s: input \"%s\" has %d at index %lld, "
                         "expected 0..%lld",
                         node_label(r->g, r->node_index, label, sizeof label),
                         op_table[r->c->node->op].input_names[input], ids[i], (long long)i,
                         (long long)limit - 1);
    }
    return AUTOSP_OK;
}

autosp_status_t run_embedding(const kernel_args_t *r) {
    int64_t V = r->c->in[1].d[0], C = r->c->in[1].d[1];
    autosp_status_t st = check_ids(r, 0, V, NO_EXCEPTION);
    if (st == AUTOSP_OK)
        embedding_forward(F(r->out[0]), I32(r->in[0]), CF(r->in[1]), r->c->in[0].numel, C);
    return st;
}

typedef struct copy_job {
    char *dst;
    const char *src;
} copy_job_t;

static void copy_range(void *ctx, int64_t lo, int64_t hi) {
    const copy_job_t *j = ctx;
    memcpy(j->dst + lo, j->src + lo, (size_t)(hi - lo));
}

/* (base, ids, src): out = base, then src's rows added at ids. The memory plan usually gives out
 * base's buffer (op_table in_place), and then there is nothing to copy. */
autosp_status_t run_index_add(const kernel_args_t *r) {
    const cshape_t *base = &r->c->in[0];
    autosp_status_t st = check_ids(r, 1, base->d[0], NO_EXCEPTION);
    if (st != AUTOSP_OK) return st;
    if (r->out[0] != r->in[0]) {
        copy_job_t j = {.dst = r->out[0], .src = r->in[0]};
        par_for(base->numel * base->esize, 1 << 20, copy_range, &j);
    }
    embedding_backward(F(r->out[0]), I32(r->in[1]), CF(r->in[2]), r->c->in[1].numel, base->d[1]);
    return AUTOSP_OK;
}

autosp_status_t run_embedding_backward(const kernel_args_t *r) { /* (dout, ids, weight) */
    zero(r->out[0], &r->c->out[0]);
    embedding_backward(F(r->out[0]), I32(r->in[1]), CF(r->in[0]), r->c->in[1].numel,
                       r->c->in[2].d[1]);
    return AUTOSP_OK;
}

static matmul_dims_t matmul_dims(const cost_ctx_t *c, int a, int b) {
    const cshape_t *A = &c->in[a], *Bm = &c->in[b];
    const node_t *n = c->node;
    matmul_dims_t d = {.trans_a = node_attr_int(n, "trans_a"),
                       .trans_b = node_attr_int(n, "trans_b")};
    d.M = d.trans_a ? A->d[A->ndim - 1] : A->d[A->ndim - 2];
    d.K = d.trans_a ? A->d[A->ndim - 2] : A->d[A->ndim - 1];
    d.N = d.trans_b ? Bm->d[Bm->ndim - 2] : Bm->d[Bm->ndim - 1];
    int64_t batch_a = A->numel / (d.M * d.K), batch_b = Bm->numel / (d.K * d.N);
    d.batch = batch_a > batch_b ? batch_a : batch_b;
    d.a_shared = A->ndim == 2 && d.batch > 1;
    d.b_shared = Bm->ndim == 2 && d.batch > 1;
    return d;
}

autosp_status_t run_matmul(const kernel_args_t *r) {
    matmul_dims_t d = matmul_dims(r->c, 0, 1);
    matmul_forward(F(r->out[0]), CF(r->in[0]), CF(r->in[1]), &d);
    return AUTOSP_OK;
}

autosp_status_t run_matmul_backward(const kernel_args_t *r) { /* (dout, a, b) -> da, db */
    matmul_dims_t d = matmul_dims(r->c, 1, 2);
    matmul_backward(F(r->out[0]), F(r->out[1]), CF(r->in[0]), CF(r->in[1]), CF(r->in[2]), &d);
    return AUTOSP_OK;
}

autosp_status_t run_linear(const kernel_args_t *r) {
    const cshape_t *x = &r->c->in[0], *w = &r->c->in[1];
    linear_forward(F(r->out[0]), CF(r->in[0]), CF(r->in[1]), r->c->n_in == 3 ? CF(r->in[2]) : NULL,
                   rows_of(x), w->d[1], w->d[0]);
    return AUTOSP_OK;
}

autosp_status_t run_linear_backward(const kernel_args_t *r) { /* (dout, x, w[, b]) -> dx, dw[, db] */
    const cshape_t *x = &r->c->in[1], *w = &r->c->in[2];
    linear_backward(F(r->out[0]), F(r->out[1]), r->c->n_out == 3 ? F(r->out[2]) : NULL,
                    CF(r->in[0]), CF(r->in[1]), CF(r->in[2]), rows_of(x), w->d[1], w->d[0]);
    return AUTOSP_OK;
}

/* Index of element i of `big` in `small`, which broadcasts to it (numpy rules, right-aligned). */
static int64_t broadcast_index(int64_t i, const cshape_t *big, const cshape_t *small) {
    int64_t j = 0, stride = 1;
    for (int k = big->ndim - 1, s = small->ndim - 1; k >= 0 && s >= 0; k--, s--) {
        int64_t coord = i % big->d[k];
        i /= big->d[k];
        if (small->d[s] != 1) j += coord * stride;
        stride *= small->d[s];
    }
    return j;
}

typedef struct binary_job {
    const cshape_t *a, *b;
    const float *x, *y;
    float *out;
    bool multiply;
} binary_job_t;

VECTOR_CLONES static void binary_range(void *ctx, int64_t lo, int64_t hi) {
    const binary_job_t *j = ctx;
    const float *x = j->x, *y = j->y;
    float *out = j->out;
    if (j->a->numel == j->b->numel) { /* the common case, kept simple enough to vectorise */
        if (j->multiply)
            for (int64_t i = lo; i < hi; i++) out[i] = x[i] * y[i];
        else
            for (int64_t i = lo; i < hi; i++) out[i] = x[i] + y[i];
        return;
    }
    for (int64_t i = lo; i < hi; i++) {
        float v = y[broadcast_index(i, j->a, j->b)];
        out[i] = j->multiply ? x[i] * v : x[i] + v;
    }
}

static autosp_status_t run_binary(const kernel_args_t *r, bool multiply) {
    binary_job_t j = {.a = &r->c->in[0],
                      .b = &r->c->in[1],
                      .x = CF(r->in[0]),
                      .y = CF(r->in[1]),
                      .out = F(r->out[0]),
                      .multiply = multiply};
    par_for(j.a->numel, 1 << 14, binary_range, &j);
    return AUTOSP_OK;
}
autosp_status_t run_add(const kernel_args_t *r) {
    return run_binary(r, false);
}
autosp_status_t run_mul(const kernel_args_t *r) {
    return run_binary(r, true);
}

/* x (...) summed down to like's shape */
autosp_status_t run_sum_to(const kernel_args_t *r) {
    const cshape_t *x = &r->c->in[0], *like = &r->c->out[0];
    float *out = F(r->out[0]);
    const float *in = CF(r->in[0]);
    zero(out, like);
    if (like->numel == x->numel)
        memcpy(out, in, (size_t)x->numel * sizeof(float));
    else
        for (int64_t i = 0; i < x->numel; i++) out[broadcast_index(i, x, like)] += in[i];
    return AUTOSP_OK;
}

autosp_status_t run_scale(const kernel_args_t *r) {
    float alpha = (float)node_attr_float(r->c->node, "alpha");
    for (int64_t i = 0; i < r->c->out[0].numel; i++) F(r->out[0])[i] = alpha * CF(r->in[0])[i];
    return AUTOSP_OK;
}

autosp_status_t run_fill(const kernel_args_t *r) {
    float v = (float)node_attr_float(r->c->node, "value");
    for (int64_t i = 0; i < r->c->out[0].numel; i++) F(r->out[0])[i] = v;
    return AUTOSP_OK;
}

autosp_status_t run_view(const kernel_args_t *r) { /* reshape: the plan gave it its input's bytes */
    AUTOSP_ASSERT(r->out[0] == r->in[0]);
    return AUTOSP_OK;
}

/* out.d[i] = x.d[perm[i]]: walk the output, gather from the input */
autosp_status_t run_transpose(const kernel_args_t *r) {
    const attr_value_t *perm = node_attr(r->c->node, "perm");
    const cshape_t *x = &r->c->in[0], *o = &r->c->out[0];
    int64_t stride[AUTOSP_MAX_DIMS], s = 1;
    for (int k = x->ndim - 1; k >= 0; k--) stride[k] = s, s *= x->d[k];
    for (int64_t i = 0; i < o->numel; i++) {
        int64_t rem = i, src = 0;
        for (int k = o->ndim - 1; k >= 0; k--) {
            src += (rem % o->d[k]) * stride[perm->ints[k]];
            rem /= o->d[k];
        }
        F(r->out[0])[i] = CF(r->in[0])[src];
    }
    return AUTOSP_OK;
}

static float eps_of(const kernel_args_t *r) {
    return (float)node_attr_float(r->c->node, "eps");
}

autosp_status_t run_rmsnorm(const kernel_args_t *r) {
    const cshape_t *x = &r->c->in[0];
    rmsnorm_forward(F(r->out[0]), CF(r->in[0]), CF(r->in[1]), rows_of(x), last_dim(x), eps_of(r));
    return AUTOSP_OK;
}

/* each row's mean and rstd, between the backward's two passes */
int64_t workspace_norm_backward(const cost_ctx_t *c) {
    return (int64_t)norm_backward_workspace(rows_of(&c->in[1]));
}

autosp_status_t run_rmsnorm_backward(const kernel_args_t *r) { /* (dout, x, w) -> dx, dw */
    const cshape_t *x = &r->c->in[1];
    zero(r->out[1], &r->c->out[1]);
    rmsnorm_backward(F(r->out[0]), F(r->out[1]), CF(r->in[0]), CF(r->in[1]), CF(r->in[2]),
                     rows_of(x), last_dim(x), eps_of(r), r->workspace);
    return AUTOSP_OK;
}

autosp_status_t run_layernorm(const kernel_args_t *r) {
    const cshape_t *x = &r->c->in[0];
    layernorm_forward(F(r->out[0]), CF(r->in[0]), CF(r->in[1]), CF(r->in[2]), rows_of(x),
                      last_dim(x), eps_of(r));
    return AUTOSP_OK;
}

autosp_status_t run_layernorm_backward(const kernel_args_t *r) { /* (dout, x, w, b) -> dx, dw, db */
    const cshape_t *x = &r->c->in[1];
    zero(r->out[1], &r->c->out[1]);
    zero(r->out[2], &r->c->out[2]);
    layernorm_backward(F(r->out[0]), F(r->out[1]), F(r->out[2]), CF(r->in[0]), CF(r->in[1]),
                       CF(r->in[2]), rows_of(x), last_dim(x), eps_of(r), r->workspace);
    return AUTOSP_OK;
}

/* positions (B,S) or (S): a 1-D table is shared by every batch entry */
autosp_status_t run_rope(const kernel_args_t *r) {
    const cshape_t *x = &r->c->in[0], *p = &r->c->in[1];
    int64_t B = x->d[0], S = x->d[1], H = x->d[2], D = x->d[3], per_batch = S * H * D;
    float theta = (float)node_attr_float(r->c->node, "theta");
    bool inverse = node_attr_int(r->c->node, "inverse");
    if (p->ndim == 2) {
        rope_forward(F(r->out[0]), CF(r->in[0]), I32(r->in[1]), B, S, H, D, theta, inverse);
        return AUTOSP_OK;
    }
    for (int64_t b = 0; b < B; b++)
        rope_forward(F(r->out[0]) + b * per_batch, CF(r->in[0]) + b * per_batch, I32(r->in[1]), 1,
                     S, H, D, theta, inverse);
    return AUTOSP_OK;
}

autosp_status_t run_silu(const kernel_args_t *r) {
    silu_forward(F(r->out[0]), CF(r->in[0]), r->c->out[0].numel);
    return AUTOSP_OK;
}
autosp_status_t run_silu_backward(const kernel_args_t *r) {
    silu_backward(F(r->out[0]), CF(r->in[0]), CF(r->in[1]), r->c->out[0].numel);
    return AUTOSP_OK;
}
autosp_status_t run_gelu(const kernel_args_t *r) {
    gelu_forward(F(r->out[0]), CF(r->in[0]), r->c->out[0].numel);
    return AUTOSP_OK;
}
autosp_status_t run_gelu_backward(const kernel_args_t *r) {
    gelu_backward(F(r->out[0]), CF(r->in[0]), CF(r->in[1]), r->c->out[0].numel);
    return AUTOSP_OK;
}
autosp_status_t run_swiglu(const kernel_args_t *r) {
    swiglu_forward(F(r->out[0]), CF(r->in[0]), CF(r->in[1]), r->c->out[0].numel);
    return AUTOSP_OK;
}
autosp_status_t run_swiglu_backward(const kernel_args_t *r) { /* (dout, gate, up) */
    swiglu_backward(F(r->out[0]), F(r->out[1]), CF(r->in[0]), CF(r->in[1]), CF(r->in[2]),
                    r->c->out[0].numel);
    return AUTOSP_OK;
}
autosp_status_t run_softmax(const kernel_args_t *r) {
    const cshape_t *x = &r->c->in[0];
    softmax_forward(F(r->out[0]), CF(r->in[0]), rows_of(x), last_dim(x));
    return AUTOSP_OK;
}
autosp_status_t run_softmax_backward(const kernel_args_t *r) { /* (dout, y) */
    const cshape_t *y = &r->c->in[1];
    softmax_backward(F(r->out[0]), CF(r->in[0]), CF(r->in[1]), rows_of(y), last_dim(y));
    return AUTOSP_OK;
}

static attention_dims_t attention_dims(const cost_ctx_t *c, int q) {
    const cshape_t *Q = &c->in[q], *K = &c->in[q + 1];
    double scale = node_attr_float(c->node, "scale");
    attention_dims_t d = {.B = Q->d[0],
                          .S = Q->d[1],
                          .Skv = K->d[1],
                          .Hq = Q->d[2],
                          .Hkv = K->d[2],
                          .D = Q->d[3],
                          .causal = node_attr_int(c->node, "causal"),
                          .threads = attention_thread_capacity()}; /* the same when sized and run */
    d.scale = (float)(scale > 0 ? scale : 1.0 / sqrt((double)d.D));
    return d;
}

/* The forward's lse goes to its second output, or to scratch after the kernel's workspace. */
int64_t workspace_attention(const cost_ctx_t *c) {
    attention_dims_t d = attention_dims(c, 0);
    int64_t lse = c->n_out == 1 ? d.B * d.Hq * d.S * (int64_t)sizeof(float) : 0;
    return (int64_t)attention_forward_workspace(&d) + lse + 64;
}

int64_t workspace_attention_backward(const cost_ctx_t *c) {
    attention_dims_t d = attention_dims(c, 3);
    return (int64_t)attention_backward_workspace(&d);
}

autosp_status_t run_attention(const kernel_args_t *r) {
    attention_dims_t d = attention_dims(r->c, 0);
    size_t ws = (attention_forward_workspace(&d) + 63) / 64 * 64;
    float *lse = r->c->n_out == 2 ? F(r->out[1]) : (float *)((char *)r->workspace + ws);
    attention_forward(F(r->out[0]), lse, CF(r->in[0]), CF(r->in[1]), CF(r->in[2]),
                      r->c->n_in == 4 ? I32(r->in[3]) : NULL, &d, r->workspace);
    return AUTOSP_OK;
}

/* (dout, out, lse, q, k, v[, segment_ids]) -> dq, dk, dv */
autosp_status_t run_attention_backward(const kernel_args_t *r) {
    attention_dims_t d = attention_dims(r->c, 3);
    attention_backward(F(r->out[0]), F(r->out[1]), F(r->out[2]), CF(r->in[0]), CF(r->in[3]),
                       CF(r->in[4]), CF(r->in[5]), r->c->n_in == 7 ? I32(r->in[6]) : NULL,
                       CF(r->in[1]), CF(r->in[2]), &d, r->workspace);
    return AUTOSP_OK;
}

/* The divisor of the loss: the normalizer input (targets over all ranks) if given, else the
 * count of this call's targets. */
static double targets(const kernel_args_t *r, int labels, int normalizer, int32_t ignore) {
    if (r->c->n_in > normalizer) return CF(r->in[normalizer])[0];
    return (double)count_targets(I32(r->in[labels]), r->c->in[labels].numel, ignore);
}

autosp_status_t run_cross_entropy(const kernel_args_t *r) { /* (logits, labels[, normalizer]) */
    const cshape_t *l = &r->c->in[0];
    int32_t ignore = (int32_t)node_attr_int(r->c->node, "ignore_index");
    autosp_status_t st = check_ids(r, 1, last_dim(l), ignore);
    if (st == AUTOSP_OK) F(r->out[0])
    [0] = cross_entropy_forward_over(CF(r->in[0]), I32(r->in[1]), rows_of(l), last_dim(l), ignore,
                                     targets(r, 1, 2, ignore));
    return st;
}

/* (dloss, logits, labels[, normalizer]) */
autosp_status_t run_cross_entropy_backward(const kernel_args_t *r) {
    const cshape_t *l = &r->c->in[1];
    int32_t ignore = (int32_t)node_attr_int(r->c->node, "ignore_index");
    cross_entropy_backward_over(F(r->out[0]), CF(r->in[1]), I32(r->in[2]), rows_of(l), last_dim(l),
                                ignore, CF(r->in[0])[0], targets(r, 2, 3, ignore));
    return AUTOSP_OK;
}

autosp_status_t run_target_count(const kernel_args_t *r) {
    int32_t ignore = (int32_t)node_attr_int(r->c->node, "ignore_index");
    F(r->out[0])[0] = (float)count_targets(I32(r->in[0]), r->c->in[0].numel, ignore);
    return AUTOSP_OK;
}

/* x viewed as (outer, n, inner) around the repeated dim */
static void repeat_dims(const kernel_args_t *r, const cshape_t *x, int64_t *outer, int64_t *n,
                        int64_t *inner) {
    int dim = (int)node_attr_int(r->c->node, "dim");
    *outer = *inner = 1;
    for (int k = 0; k < dim; k++) *outer *= x->d[k];
    for (int k = dim + 1; k < x->ndim; k++) *inner *= x->d[k];
    *n = x->d[dim];
}

autosp_status_t run_repeat(const kernel_args_t *r) {
    int64_t outer, n, inner;
    repeat_dims(r, &r->c->in[0], &outer, &n, &inner);
    repeat_forward(F(r->out[0]), CF(r->in[0]), outer, n, node_attr_int(r->c->node, "repeats"),
                   inner);
    return AUTOSP_OK;
}

autosp_status_t run_repeat_backward(const kernel_args_t *r) { /* (dout, x) */
    int64_t outer, n, inner;
    repeat_dims(r, &r->c->in[1], &outer, &n, &inner);
    repeat_backward(F(r->out[0]), CF(r->in[0]), outer, n, node_attr_int(r->c->node, "repeats"),
                    inner);
    return AUTOSP_OK;
}
