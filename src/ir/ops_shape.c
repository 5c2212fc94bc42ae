/* ops_shape.c: the shape and dtype rule of every op, and the checks they share.
 *
 * Letters follow the IR: B batch, S sequence, H heads, D head dim, C model dim, V vocabulary.
 */
#include <stdarg.h>
#include <string.h>

#include "ir/op_table.h"

const char *dtype_str(autosp_dtype_t t) {
    return autosp_dtype_name(t);
}

autosp_dtype_t grad_dtype_of(const autosp_graph_t *g, const tensor_t *x) {
    bool is_fp = x->dtype == AUTOSP_F32 || x->dtype == AUTOSP_BF16 || x->dtype == AUTOSP_F16;
    bool gathered = x->producer >= 0 && g->nodes[x->producer].op == AUTOSP_OP_UNSHARD;
    return (x->kind == AUTOSP_KIND_PARAM || gathered) && is_fp ? AUTOSP_F32 : x->dtype;
}

static bool is_float(autosp_dtype_t t) {
    return t == AUTOSP_F32 || t == AUTOSP_BF16 || t == AUTOSP_F16;
}

autosp_status_t infer_fail(infer_ctx_t *c, const char *fmt, ...) {
    char msg[AUTOSP_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return set_error(c->err, AUTOSP_ERR_INVALID, "node \"%s\" (%s): %s", c->node->name,
                     op_table[c->node->op].name, msg);
}

autosp_status_t infer_fail_input(infer_ctx_t *c, int input, const char *fmt, ...) {
    char msg[AUTOSP_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return infer_fail(c, "input \"%s\" (tensor \"%s\") %s",
                      op_table[c->node->op].input_names[input], c->in[input]->name, msg);
}

static char *in_shape(infer_ctx_t *c, int i, char *buf, size_t n) {
    return shape_str(c->g, &c->in[i]->shape, buf, n);
}

autosp_status_t need_ndim(infer_ctx_t *c, int i, int min_ndim, int max_ndim) {
    int nd = c->in[i]->shape.ndim;
    if (nd >= min_ndim && nd <= max_ndim) return AUTOSP_OK;
    char s[256];
    if (min_ndim == max_ndim)
        return infer_fail_input(c, i, "has %d dims [%s], expected %d", nd, in_shape(c, i, s, 256),
                                min_ndim);
    if (nd < min_ndim)
        return infer_fail_input(c, i, "has %d dims [%s], expected at least %d", nd,
                                in_shape(c, i, s, 256), min_ndim);
    return infer_fail_input(c, i, "has %d dims [%s], expected at most %d", nd,
                            in_shape(c, i, s, 256), max_ndim);
}

autosp_status_t need_float(infer_ctx_t *c, int i) {
    if (is_float(c->in[i]->dtype)) return AUTOSP_OK;
    return infer_fail_input(c, i, "has dtype %s, expected a float dtype (f32, bf16, f16)",
                            dtype_str(c->in[i]->dtype));
}

autosp_status_t need_int(infer_ctx_t *c, int i) {
    if (!is_float(c->in[i]->dtype)) return AUTOSP_OK;
    return infer_fail_input(c, i, "has dtype %s, expected an integer dtype (i32, i64)",
                            dtype_str(c->in[i]->dtype));
}

autosp_status_t need_same_dtype(infer_ctx_t *c, int a, int b) {
    if (c->in[a]->dtype == c->in[b]->dtype) return AUTOSP_OK;
    return infer_fail_input(c, b, "has dtype %s, expected %s (the dtype of input \"%s\")",
                            dtype_str(c->in[b]->dtype), dtype_str(c->in[a]->dtype),
                            op_table[c->node->op].input_names[a]);
}

autosp_status_t need_dim(infer_ctx_t *c, int i, int axis, dim_t expected, const char *what) {
    dim_t found = c->in[i]->shape.d[axis];
    if (dim_match(c->g, found, expected)) return AUTOSP_OK;
    char s[256], e[128], f[128];
    return infer_fail_input(c, i, "has shape [%s]: dim %d is %s, expected %s (%s)",
                            in_shape(c, i, s, 256), axis, dim_str(c->g, found, f, 128),
                            dim_str(c->g, expected, e, 128), what);
}

#define TRY(x)                                                                                     \
    do {                                                                                           \
        autosp_status_t st_ = (x);                                                                 \
        if (st_ != AUTOSP_OK) return st_;                                                          \
    } while (0)

static autosp_status_t set_out(infer_ctx_t *c, const shape_t *s, autosp_dtype_t t) {
    c->out_shape[0] = *s;
    c->out_dtype[0] = t;
    return AUTOSP_OK;
}

static int64_t dim_const_or(dim_t d, int64_t fallback) {
    int64_t v;
    return dim_is_const(d, &v) ? v : fallback;
}

/* ids (...) int, weight (V,C) -> (...,C) */
autosp_status_t infer_embedding(infer_ctx_t *c) {
    TRY(need_int(c, 0));
    TRY(need_ndim(c, 0, 0, AUTOSP_MAX_DIMS - 1));
    TRY(need_float(c, 1));
    TRY(need_ndim(c, 1, 2, 2));
    shape_t s = c->in[0]->shape;
    s.d[s.ndim++] = c->in[1]->shape.d[1];
    return set_out(c, &s, c->in[1]->dtype);
}

/* a (...,M,K), b (...,K,N) -> (...,M,N); a 2-D operand broadcasts over the other's batch. */
autosp_status_t infer_matmul(infer_ctx_t *c) {
    TRY(need_float(c, 0));
    TRY(need_same_dtype(c, 0, 1));
    TRY(need_ndim(c, 0, 2, AUTOSP_MAX_DIMS));
    TRY(need_ndim(c, 1, 2, AUTOSP_MAX_DIMS));
    const shape_t *a = &c->in[0]->shape, *b = &c->in[1]->shape;
    bool ta = node_attr_int(c->node, "trans_a"), tb = node_attr_int(c->node, "trans_b");
    int ka = ta ? a->ndim - 2 : a->ndim - 1, mb = tb ? b->ndim - 1 : b->ndim - 2;
    dim_t m = a->d[ta ? a->ndim - 1 : a->ndim - 2], n = b->d[tb ? b->ndim - 2 : b->ndim - 1];
    TRY(need_dim(c, 1, mb, a->d[ka], "the inner dim K of input \"a\""));
    const shape_t *batch = a->ndim >= b->ndim ? a : b;
    if (a->ndim > 2 && b->ndim > 2) {
        if (a->ndim != b->ndim)
            return infer_fail_input(c, 1, "has %d dims, expected %d (the batch dims of \"a\") or 2",
                                    b->ndim, a->ndim);
        for (int i = 0; i < a->ndim - 2; i++) TRY(need_dim(c, 1, i, a->d[i], "batch dim of \"a\""));
    }
    shape_t s = *batch;
    s.d[s.ndim - 2] = m;
    s.d[s.ndim - 1] = n;
    return set_out(c, &s, c->in[0]->dtype);
}

/* x (...,K) (input 0, checked), weight (N,K) at input w, bias (N) after it if present, x's dtype
 * -> out (...,N) */
static autosp_status_t set_linear_out(infer_ctx_t *c, int w) {
    TRY(need_same_dtype(c, 0, w));
    TRY(need_ndim(c, w, 2, 2));
    const shape_t *x = &c->in[0]->shape, *wt = &c->in[w]->shape;
    TRY(need_dim(c, w, 1, x->d[x->ndim - 1], "the last dim K of input \"x\""));
    if (c->n_in > w + 1) {
        TRY(need_same_dtype(c, 0, w + 1));
        TRY(need_ndim(c, w + 1, 1, 1));
        TRY(need_dim(c, w + 1, 0, wt->d[0], "the output dim N of input \"weight\""));
    }
    shape_t s = *x;
    s.d[s.ndim - 1] = wt->d[0];
    return set_out(c, &s, c->in[0]->dtype);
}

/* x (...,K), weight (N,K), bias (N) -> (...,N) */
autosp_status_t infer_linear(infer_ctx_t *c) {
    TRY(need_float(c, 0));
    TRY(need_ndim(c, 0, 1, AUTOSP_MAX_DIMS));
    return set_linear_out(c, 1);
}

/* a (...), b broadcastable to a (numpy rules, aligned right) -> a's shape */
autosp_status_t infer_broadcast(infer_ctx_t *c) {
    TRY(need_float(c, 0));
    TRY(need_same_dtype(c, 0, 1));
    const shape_t *a = &c->in[0]->shape, *b = &c->in[1]->shape;
    TRY(need_ndim(c, 1, 0, a->ndim));
    for (int i = 0; i < b->ndim; i++) {
        int ai = a->ndim - b->ndim + i;
        int64_t one;
        if (dim_is_const(b->d[i], &one) && one == 1) continue;
        TRY(need_dim(c, 1, i, a->d[ai], "equal to the aligned dim of input \"a\" or 1"));
    }
    return set_out(c, a, c->in[0]->dtype);
}

/* x -> x (elementwise); also checks the scalar attributes some unary ops have. */
autosp_status_t infer_unary(infer_ctx_t *c) {
    TRY(need_float(c, 0));
    return set_out(c, &c->in[0]->shape, c->in[0]->dtype);
}

static autosp_status_t need_norm_param(infer_ctx_t *c, int i) {
    const shape_t *x = &c->in[0]->shape;
    TRY(need_same_dtype(c, 0, i));
    TRY(need_ndim(c, i, 1, 1));
    return need_dim(c, i, 0, x->d[x->ndim - 1], "the last dim C of input \"x\"");
}

static autosp_status_t need_eps(infer_ctx_t *c) {
    double eps = node_attr_float(c->node, "eps");
    if (eps > 0 && eps < 1) return AUTOSP_OK;
    return infer_fail(c, "attribute \"eps\" is %g, expected a value in (0, 1)", eps);
}

/* x (...,C), weight (C) -> (...,C) */
autosp_status_t infer_rmsnorm(infer_ctx_t *c) {
    TRY(need_float(c, 0));
    TRY(need_ndim(c, 0, 1, AUTOSP_MAX_DIMS));
    TRY(need_norm_param(c, 1));
    TRY(need_eps(c));
    return set_out(c, &c->in[0]->shape, c->in[0]->dtype);
}

/* x (...,C), weight (C), bias (C) -> (...,C) */
autosp_status_t infer_layernorm(infer_ctx_t *c) {
    TRY(need_float(c, 0));
    TRY(need_ndim(c, 0, 1, AUTOSP_MAX_DIMS));
    TRY(need_norm_param(c, 1));
    TRY(need_norm_param(c, 2));
    TRY(need_eps(c));
    return set_out(c, &c->in[0]->shape, c->in[0]->dtype);
}

/* x (B,S,H,D), positions (B,S) or (S) int -> (B,S,H,D) */
autosp_status_t infer_rope(infer_ctx_t *c) {
    TRY(need_float(c, 0));
    TRY(need_ndim(c, 0, 4, 4));
    TRY(need_int(c, 1));
    TRY(need_ndim(c, 1, 1, 2));
    const shape_t *x = &c->in[0]->shape, *p = &c->in[1]->shape;
    int64_t d = dim_const_or(x->d[3], 0);
    if (d % 2 != 0)
        return infer_fail_input(c, 0, "has head dim D=%lld, expected an even D", (long long)d);
    if (p->ndim == 2) TRY(need_dim(c, 1, 0, x->d[0], "the batch dim B of input \"x\""));
    TRY(need_dim(c, 1, p->ndim - 1, x->d[1], "the sequence dim S of input \"x\""));
    double theta = node_attr_float(c->node, "theta");
    if (!(theta > 1)) return infer_fail(c, "attribute \"theta\" is %g, expected > 1", theta);
    const char *scaling = node_attr_str(c->node, "scaling");
    if (strcmp(scaling, "none") != 0) {
        double factor = node_attr_float(c->node, "factor");
        if (!(factor >= 1))
            return infer_fail(c, "attribute \"factor\" is %g, expected >= 1 (rope scaling %s)",
                              factor, scaling);
    }
    if (!strcmp(scaling, "llama3")) {
        double lo = node_attr_float(c->node, "low_freq_factor"),
               hi = node_attr_float(c->node, "high_freq_factor"),
               orig = node_attr_float(c->node, "original_max_position");
        if (!(lo > 0 && hi > lo && orig > 0))
            return infer_fail(c,
                              "rope scaling llama3: low_freq_factor %g, high_freq_factor %g, "
                              "original_max_position %g; expected 0 < low < high and a "
                              "position > 0",
                              lo, hi, orig);
    }
    return set_out(c, x, c->in[0]->dtype);
}

/* gate (...), up (...) -> silu(gate) * up */
autosp_status_t infer_swiglu(infer_ctx_t *c) {
    TRY(need_float(c, 0));
    TRY(need_same_dtype(c, 0, 1));
    const shape_t *g = &c->in[0]->shape;
    TRY(need_ndim(c, 1, g->ndim, g->ndim));
    for (int i = 0; i < g->ndim; i++)
        TRY(need_dim(c, 1, i, g->d[i], "the shape of input \"gate\""));
    return set_out(c, g, c->in[0]->dtype);
}

static autosp_status_t need_attr_range(infer_ctx_t *c, const char *name, int64_t lo, int64_t hi) {
    int64_t v = node_attr_int(c->node, name);
    if (v >= lo && v <= hi) return AUTOSP_OK;
    return infer_fail(c, "attribute \"%s\" is %lld, expected %lld..%lld", name, (long long)v,
                      (long long)lo, (long long)hi);
}

/* q (B,S,Hq,D), k and v (B,S,Hkv,D), segment_ids (B, ring S) int -> (B,S,Hq,D) and lse
 * (B,Hq,S) f32; ring 1 for attention, the ring's ranks for ring_attention (whose segment ids
 * are every ring position's) */
static autosp_status_t infer_attention_ring(infer_ctx_t *c, int64_t ring) {
    for (int i = 0; i < 3; i++) {
        TRY(need_float(c, i));
        TRY(need_ndim(c, i, 4, 4));
        if (i) TRY(need_same_dtype(c, 0, i));
    }
    const shape_t *q = &c->in[0]->shape, *k = &c->in[1]->shape;
    TRY(need_attr_range(c, "num_heads", 1, 1 << 20));
    TRY(need_attr_range(c, "num_kv_heads", 0, 1 << 20));
    int64_t hq = node_attr_int(c->node, "num_heads");
    int64_t hkv = node_attr_int(c->node, "num_kv_heads");
    if (hkv == 0) hkv = hq;
    if (hq % hkv != 0)
        return infer_fail(c, "num_heads=%lld is not a multiple of num_kv_heads=%lld", (long long)hq,
                          (long long)hkv);
    char what[64];
    snprintf(what, sizeof what, "num_heads=%lld", (long long)hq);
    TRY(need_dim(c, 0, 2, dim_const(hq), what));
    snprintf(what, sizeof what, "num_kv_heads=%lld", (long long)hkv);
    TRY(need_dim(c, 1, 2, dim_const(hkv), what));
    TRY(need_dim(c, 2, 2, dim_const(hkv), what));
    for (int i = 1; i < 3; i++) {
        TRY(need_dim(c, i, 0, q->d[0], "the batch dim B of input \"q\""));
        TRY(need_dim(c, i, 3, q->d[3], "the head dim D of input \"q\""));
    }
    TRY(need_dim(c, 2, 1, k->d[1], "the sequence dim of input \"k\""));
    if (node_attr_int(c->node, "causal") || c->n_in == 4)
        TRY(need_dim(c, 1, 1, q->d[1],
                     "the sequence dim S of input \"q\": causal or "
                     "segment-masked attention is self-attention"));
    if (c->n_in == 4) {
        TRY(need_int(c, 3));
        TRY(need_ndim(c, 3, 2, 2));
        TRY(need_dim(c, 3, 0, q->d[0], "the batch dim B of input \"q\""));
        dim_t all;
        if (!dim_scale(q->d[1], ring, 1, &all)) return infer_fail(c, "dims too large");
        TRY(need_dim(c, 3, 1, all,
                     ring > 1 ? "ranks x the sequence dim L of input \"q\" (every ring "
                                "position's ids)"
                              : "the sequence dim S of input \"q\""));
    }
    double scale = node_attr_float(c->node, "scale");
    if (!(scale >= 0)) return infer_fail(c, "attribute \"scale\" is %g, expected >= 0", scale);
    set_out(c, q, c->in[0]->dtype);
    if (c->n_out == 2) { /* log-sum-exp per query row, what a flash-style backward needs */
        c->out_shape[1] = (shape_t){.ndim = 3, .d = {q->d[0], q->d[2], q->d[1]}};
        c->out_dtype[1] = AUTOSP_F32;
    }
    return AUTOSP_OK;
}

autosp_status_t infer_attention(infer_ctx_t *c) {
    return infer_attention_ring(c, 1);
}

autosp_status_t infer_ring_attention(infer_ctx_t *c) {
    TRY(need_attr_range(c, "ranks", 1, 1 << 20));
    return infer_attention_ring(c, node_attr_int(c->node, "ranks"));
}

/* x -> x with the attribute shape; element counts must agree */
autosp_status_t infer_reshape(infer_ctx_t *c) {
    const shape_t *to = node_attr(c->node, "shape")->shape, *x = &c->in[0]->shape;
    dim_t nx, nt;
    if (!shape_numel(x, &nx) || !shape_numel(to, &nt))
        return infer_fail(c, "element count has more than %d symbol factors",
                          AUTOSP_MAX_DIM_FACTORS);
    if (!dim_match(c->g, nx, nt)) {
        char a[256], b[256], ea[128], eb[128];
        return infer_fail_input(c, 0,
                                "has shape [%s] with %s elements, but the target shape "
                                "[%s] has %s elements",
                                shape_str(c->g, x, a, 256), dim_str(c->g, nx, ea, 128),
                                shape_str(c->g, to, b, 256), dim_str(c->g, nt, eb, 128));
    }
    return set_out(c, to, c->in[0]->dtype);
}

/* x -> x with its dims permuted: out.d[i] = x.d[perm[i]] */
autosp_status_t infer_transpose(infer_ctx_t *c) {
    const attr_value_t *perm = node_attr(c->node, "perm");
    const shape_t *x = &c->in[0]->shape;
    if (perm->n_ints != x->ndim)
        return infer_fail(c,
                          "attribute \"perm\" has %d entries, expected %d (the dims of "
                          "input \"x\")",
                          perm->n_ints, x->ndim);
    bool seen[AUTOSP_MAX_DIMS] = {0};
    shape_t s = {.ndim = x->ndim};
    for (int i = 0; i < perm->n_ints; i++) {
        int64_t p = perm->ints[i];
        if (p < 0 || p >= x->ndim || seen[p])
            return infer_fail(c,
                              "attribute \"perm\" is not a permutation of 0..%d (entry %d is "
                              "%lld)",
                              x->ndim - 1, i, (long long)p);
        seen[p] = true;
        s.d[i] = x->d[p];
    }
    return set_out(c, &s, c->in[0]->dtype);
}

/* logits (...,V), labels (...) int -> scalar f32 */
autosp_status_t infer_cross_entropy(infer_ctx_t *c) {
    TRY(need_float(c, 0));
    TRY(need_ndim(c, 0, 1, AUTOSP_MAX_DIMS));
    TRY(need_int(c, 1));
    const shape_t *l = &c->in[0]->shape;
    TRY(need_ndim(c, 1, l->ndim - 1, l->ndim - 1));
    for (int i = 0; i < l->ndim - 1; i++)
        TRY(need_dim(c, 1, i, l->d[i], "the leading dims of input \"logits\""));
    if (c->n_in == 3) { /* normalizer: a scalar that replaces this rank's count of targets */
        TRY(need_ndim(c, 2, 0, 0));
        if (c->in[2]->dtype != AUTOSP_F32) /* a count, like the f32 loss it divides */
            return infer_fail_input(c, 2, "has dtype %s, expected f32", dtype_str(c->in[2]->dtype));
    }
    shape_t scalar = {.ndim = 0};
    return set_out(c, &scalar, AUTOSP_F32);
}

/* x (..., C), weight (V, C), labels (...) -> the loss of cross_entropy(linear(x, weight)) */
autosp_status_t infer_linear_cross_entropy(infer_ctx_t *c) {
    TRY(need_float(c, 0));
    TRY(need_ndim(c, 0, 1, AUTOSP_MAX_DIMS));
    TRY(need_same_dtype(c, 0, 1));
    TRY(need_ndim(c, 1, 2, 2));
    const shape_t *x = &c->in[0]->shape;
    TRY(need_dim(c, 1, 1, x->d[x->ndim - 1], "the last dim C of input \"x\""));
    TRY(need_int(c, 2));
    TRY(need_ndim(c, 2, x->ndim - 1, x->ndim - 1));
    for (int i = 0; i < x->ndim - 1; i++)
        TRY(need_dim(c, 2, i, x->d[i], "the leading dims of input \"x\""));
    if (c->n_in == 4) {
        TRY(need_ndim(c, 3, 0, 0));
        if (c->in[3]->dtype != AUTOSP_F32)
            return infer_fail_input(c, 3, "has dtype %s, expected f32", dtype_str(c->in[3]->dtype));
    }
    int64_t chunk = node_attr_int(c->node, "chunk");
    if (chunk < 0)
        return infer_fail(c, "attribute \"chunk\" is %lld, expected rows per chunk (0: planned)",
                          (long long)chunk);
    shape_t scalar = {.ndim = 0};
    return set_out(c, &scalar, AUTOSP_F32);
}

/* A fused MLP's inputs: x (...,C) float, then inputs 1..n-1 of x's dtype with ndims[i] dims;
 * C, and F (dim 0 of input 1). */
static autosp_status_t need_mlp_inputs(infer_ctx_t *c, int n, const int *ndims, dim_t *C,
                                       dim_t *F) {
    TRY(need_float(c, 0));
    TRY(need_ndim(c, 0, 1, AUTOSP_MAX_DIMS));
    for (int i = 1; i < n; i++) {
        TRY(need_same_dtype(c, 0, i));
        TRY(need_ndim(c, i, ndims[i], ndims[i]));
    }
    const shape_t *x = &c->in[0]->shape;
    *C = x->d[x->ndim - 1], *F = c->in[1]->shape.d[0];
    return need_dim(c, 1, 1, *C, "the last dim C of input \"x\"");
}

/* A tiled op's tile attribute: rows per tile, 0 planned. */
static autosp_status_t need_tile(infer_ctx_t *c) {
    int64_t tile = node_attr_int(c->node, "tile");
    if (tile >= 0) return AUTOSP_OK;
    return infer_fail(c, "attribute \"tile\" is %lld, expected rows per tile (0: planned)",
                      (long long)tile);
}

/* A fused MLP's tile attribute, then its output: like x. */
static autosp_status_t set_mlp_out(infer_ctx_t *c) {
    TRY(need_tile(c));
    return set_out(c, &c->in[0]->shape, c->in[0]->dtype);
}

/* x (...,C), w_gate (F,C), w_up (F,C), w_down (C,F) [, norm_weight (C)], one dtype -> (...,C) */
autosp_status_t infer_mlp(infer_ctx_t *c) {
    static const int ndims[] = {0, 2, 2, 2};
    dim_t C, F;
    TRY(need_mlp_inputs(c, 4, ndims, &C, &F));
    if (c->n_in == 5) {
        TRY(need_norm_param(c, 4));
        TRY(need_eps(c));
    }
    TRY(need_dim(c, 2, 0, F, "dim 0 (F) of input \"w_gate\""));
    TRY(need_dim(c, 2, 1, C, "the last dim C of input \"x\""));
    TRY(need_dim(c, 3, 0, C, "the last dim C of input \"x\""));
    TRY(need_dim(c, 3, 1, F, "dim 0 (F) of input \"w_gate\""));
    return set_mlp_out(c);
}

/* x (...,C), w_fc (F,C), b_fc (F), w_proj (C,F), b_proj (C), one dtype -> (...,C) */
autosp_status_t infer_gelu_mlp(infer_ctx_t *c) {
    static const int ndims[] = {0, 2, 1, 2, 1};
    dim_t C, F;
    TRY(need_mlp_inputs(c, 5, ndims, &C, &F));
    TRY(need_dim(c, 2, 0, F, "dim 0 (F) of input \"w_fc\""));
    TRY(need_dim(c, 3, 0, C, "the last dim C of input \"x\""));
    TRY(need_dim(c, 3, 1, F, "dim 0 (F) of input \"w_fc\""));
    TRY(need_dim(c, 4, 0, C, "the last dim C of input \"x\""));
    return set_mlp_out(c);
}

/* x (...,C), norm_weight (C) [, norm_bias (C) for layernorm_linear], weight (N,C) [, bias (N)],
 * one dtype -> (...,N) */
autosp_status_t infer_norm_linear(infer_ctx_t *c) {
    bool layernorm = c->node->op == AUTOSP_OP_LAYERNORM_LINEAR;
    TRY(need_float(c, 0));
    TRY(need_ndim(c, 0, 1, AUTOSP_MAX_DIMS));
    TRY(need_norm_param(c, 1));
    if (layernorm) TRY(need_norm_param(c, 2));
    TRY(need_eps(c));
    TRY(need_tile(c));
    return set_linear_out(c, layernorm ? 3 : 2);
}

static autosp_status_t need_axis(infer_ctx_t *c, int input, const char *name) {
    int64_t v = node_attr_int(c->node, name);
    int nd = c->in[input]->shape.ndim;
    if (v >= 0 && v < nd) return AUTOSP_OK;
    if (input == 0)
        return infer_fail(c, "attribute \"%s\" is %lld, expected 0..%d", name, (long long)v,
                          nd - 1);
    return infer_fail_input(c, input, "has %d dims, so attribute \"%s\" = %lld is out of range", nd,
                            name, (long long)v);
}

/* x with dim axis multiplied by num/den (den must divide a constant dim) */
static autosp_status_t scaled_dim(infer_ctx_t *c, int input, shape_t *s, int axis, int64_t num,
                                  int64_t den) {
    int64_t v;
    if (dim_is_const(s->d[axis], &v) && v % den != 0)
        return infer_fail_input(c, input,
                                "has dim %d of size %lld, which is not divisible by "
                                "ranks=%lld",
                                axis, (long long)v, (long long)den);
    if (!dim_scale(s->d[axis], num, den, &s->d[axis]))
        return infer_fail(c, "dim %d becomes too large", axis);
    return AUTOSP_OK;
}

/* Collectives may carry several tensors in one call (a fused Q, K, V exchange, a gradient
 * bucket): output i belongs to input i, and all share one dtype (one message). */
static autosp_status_t need_fused_io(infer_ctx_t *c) {
    if (c->n_out != c->n_in)
        return infer_fail(c, "has %d inputs and %d outputs, expected one output per input", c->n_in,
                          c->n_out);
    for (int i = 1; i < c->n_in; i++) TRY(need_same_dtype(c, 0, i));
    return need_attr_range(c, "ranks", 1, 1 << 20);
}

/* each x: dim split_dim divided by ranks, dim concat_dim multiplied by ranks */
autosp_status_t infer_all_to_all(infer_ctx_t *c) {
    TRY(need_fused_io(c));
    int split = (int)node_attr_int(c->node, "split_dim");
    int concat = (int)node_attr_int(c->node, "concat_dim");
    int64_t ranks = node_attr_int(c->node, "ranks");
    if (split == concat)
        return infer_fail(c, "split_dim and concat_dim are both %d, expected different dims",
                          split);
    for (int i = 0; i < c->n_in; i++) {
        TRY(need_axis(c, i, "split_dim"));
        TRY(need_axis(c, i, "concat_dim"));
        shape_t s = c->in[i]->shape;
        TRY(scaled_dim(c, i, &s, split, 1, ranks));
        TRY(scaled_dim(c, i, &s, concat, ranks, 1));
        c->out_shape[i] = s;
        c->out_dtype[i] = c->in[i]->dtype;
    }
    return AUTOSP_OK;
}

autosp_status_t infer_all_reduce(infer_ctx_t *c) {
    TRY(need_fused_io(c));
    for (int i = 0; i < c->n_in; i++) {
        TRY(need_float(c, i));
        TRY(need_same_dtype(c, 0, i)); /* a bucket is summed as one buffer of one dtype */
        c->out_shape[i] = c->in[i]->shape;
        c->out_dtype[i] = c->in[i]->dtype;
    }
    return AUTOSP_OK;
}

autosp_status_t infer_all_gather(infer_ctx_t *c) {
    TRY(need_axis(c, 0, "dim"));
    TRY(need_attr_range(c, "ranks", 1, 1 << 20));
    shape_t s = c->in[0]->shape;
    TRY(scaled_dim(c, 0, &s, (int)node_attr_int(c->node, "dim"), node_attr_int(c->node, "ranks"),
                   1));
    return set_out(c, &s, c->in[0]->dtype);
}

/* x (constant shape, n elements) f32 -> (ceil(n / ranks)) f32, over the world */
autosp_status_t infer_reduce_scatter(infer_ctx_t *c) {
    TRY(need_attr_range(c, "ranks", 1, 1 << 20));
    if (c->in[0]->dtype != AUTOSP_F32)
        return infer_fail_input(c, 0, "has dtype %s, expected f32 (gradients are summed in f32)",
                                dtype_str(c->in[0]->dtype));
    if (strcmp(node_attr_str(c->node, "group"), "world") != 0)
        return infer_fail(c,
                          "attribute \"group\" is \"%s\", expected \"world\" (ZeRO shards "
                          "over every rank)",
                          node_attr_str(c->node, "group"));
    int64_t n = 1, d;
    for (int i = 0; i < c->in[0]->shape.ndim; i++) {
        if (!dim_is_const(c->in[0]->shape.d[i], &d))
            return infer_fail_input(c, 0, "has a symbolic dim %d: a shard needs a constant size",
                                    i);
        n *= d;
    }
    int64_t ranks = node_attr_int(c->node, "ranks");
    shape_t s = {.ndim = 1, .d = {dim_const((n + ranks - 1) / ranks)}};
    return set_out(c, &s, AUTOSP_F32);
}

/* x (ceil(n / ranks)) f32 or bf16 -> shape (n elements, constant), over the world */
autosp_status_t infer_unshard(infer_ctx_t *c) {
    TRY(need_attr_range(c, "ranks", 1, 1 << 20));
    TRY(need_float(c, 0));
    if (strcmp(node_attr_str(c->node, "group"), "world") != 0)
        return infer_fail(c,
                          "attribute \"group\" is \"%s\", expected \"world\" (ZeRO shards "
                          "over every rank)",
                          node_attr_str(c->node, "group"));
    const shape_t *whole = node_attr(c->node, "shape")->shape;
    int64_t n = 1, d, ranks = node_attr_int(c->node, "ranks");
    for (int i = 0; i < whole->ndim; i++) {
        if (!dim_is_const(whole->d[i], &d))
            return infer_fail(c,
                              "attribute \"shape\" has a symbolic dim %d: a shard needs a "
                              "constant size",
                              i);
        n *= d;
    }
    int64_t shard = (n + ranks - 1) / ranks;
    if (c->in[0]->shape.ndim != 1 || !dim_is_const(c->in[0]->shape.d[0], &d) || d != shard) {
        char s[256];
        return infer_fail_input(c, 0,
                                "is [%s], expected [%lld] (a shard of %lld elements over "
                                "%lld ranks)",
                                shape_str(c->g, &c->in[0]->shape, s, sizeof s), (long long)shard,
                                (long long)n, (long long)ranks);
    }
    return set_out(c, whole, c->in[0]->dtype);
}

/* x (..., n, ...) -> (..., n * repeats, ...): each slice along dim repeated in place
 * (out[i] = x[i / repeats]); GQA's kv heads shared by more sequence-parallel ranks */
autosp_status_t infer_repeat(infer_ctx_t *c) {
    TRY(need_axis(c, 0, "dim"));
    TRY(need_attr_range(c, "repeats", 1, 1 << 20));
    shape_t s = c->in[0]->shape;
    TRY(scaled_dim(c, 0, &s, (int)node_attr_int(c->node, "dim"), node_attr_int(c->node, "repeats"),
                   1));
    return set_out(c, &s, c->in[0]->dtype);
}

/* labels (...) int -> scalar f32: how many labels are not ignore_index */
autosp_status_t infer_target_count(infer_ctx_t *c) {
    TRY(need_int(c, 0));
    shape_t scalar = {.ndim = 0};
    return set_out(c, &scalar, AUTOSP_F32);
}

/* () -> a constant of the attribute shape (the autodiff seed d loss / d loss = 1) */
autosp_status_t infer_fill(infer_ctx_t *c) {
    return set_out(c, node_attr(c->node, "shape")->shape, AUTOSP_F32);
}

/* x (...), like (...) broadcastable to x -> x summed down to like's shape (the gradient of a
 * broadcast operand) */
autosp_status_t infer_sum_to(infer_ctx_t *c) {
    TRY(need_float(c, 0));
    TRY(need_same_dtype(c, 0, 1));
    const shape_t *x = &c->in[0]->shape, *like = &c->in[1]->shape;
    TRY(need_ndim(c, 1, 0, x->ndim));
    for (int i = 0; i < like->ndim; i++) {
        int64_t one;
        if (dim_is_const(like->d[i], &one) && one == 1) continue;
        TRY(need_dim(c, 1, i, x->d[x->ndim - like->ndim + i],
                     "equal to the aligned dim of input \"x\" or 1"));
    }
    return set_out(c, like, grad_dtype_of(c->g, c->in[1]));
}

/* base (V,C), ids (...) int, src (...,C) -> (V,C): base with src's rows added at ids (what an
 * embedding's backward adds to a gradient the weight already has, autodiff_rules.c). src may
 * be narrower than base: bf16 rows of an activation gradient into an f32 parameter gradient. */
autosp_status_t infer_index_add(infer_ctx_t *c) {
    TRY(need_float(c, 0));
    TRY(need_ndim(c, 0, 2, 2));
    TRY(need_int(c, 1));
    TRY(need_ndim(c, 1, 0, AUTOSP_MAX_DIMS - 1));
    if (c->in[0]->dtype != AUTOSP_F32) TRY(need_same_dtype(c, 0, 2));
    TRY(need_float(c, 2));
    const shape_t *ids = &c->in[1]->shape;
    TRY(need_ndim(c, 2, ids->ndim + 1, ids->ndim + 1));
    for (int i = 0; i < ids->ndim; i++) TRY(need_dim(c, 2, i, ids->d[i], "the dim of \"ids\""));
    TRY(need_dim(c, 2, ids->ndim, c->in[0]->shape.d[1], "C, the row length of \"base\""));
    return set_out(c, &c->in[0]->shape, c->in[0]->dtype);
}

/* x (...) float -> x's shape in the float dtype the attribute names */
autosp_status_t infer_cast(infer_ctx_t *c) {
    TRY(need_float(c, 0));
    autosp_dtype_t to;
    AUTOSP_ASSERT(autosp_dtype_from_name(node_attr_str(c->node, "dtype"), &to)); /* the schema */
    return set_out(c, &c->in[0]->shape, to);
}

/* Backward ops: (dout, extras..., forward inputs...). The forward op's own rule checks the
 * forward inputs; dout and the extras must be what the forward produced; output i is the
 * gradient of input grad_of[i] and has its shape. */
autosp_status_t infer_backward(infer_ctx_t *c) {
    const op_info_t *info = &op_table[c->node->op];
    const op_info_t *fwd_info = &op_table[info->forward_op];
    int first = info->fwd_first, n_fwd = c->n_in - first, n_extra = first - 1;
    if (n_fwd < fwd_info->min_inputs || n_fwd > fwd_info->max_inputs)
        return infer_fail(c, "has %d forward inputs, expected %d..%d for %s", n_fwd,
                          fwd_info->min_inputs, fwd_info->max_inputs, fwd_info->name);
    node_t fwd = *c->node;
    fwd.op = info->forward_op;
    fwd.n_in = n_fwd;
    fwd.n_out = n_extra > 1 ? n_extra : 1;
    memcpy(fwd.in, c->node->in + first, sizeof(autosp_tensor_t) * (size_t)n_fwd);
    infer_ctx_t f = {.g = c->g, .node = &fwd, .n_in = n_fwd, .n_out = fwd.n_out, .err = c->err};
    for (int i = 0; i < n_fwd; i++) f.in[i] = c->in[first + i];
    TRY(fwd_info->infer(&f));
    for (int j = 0; j < first; j++) { /* dout, then extras: the forward's outputs */
        int out = j == 0 ? 0 : j - 1;
        for (int d = 0; d < f.out_shape[out].ndim && c->in[j]->shape.ndim == f.out_shape[out].ndim;
             d++)
            TRY(need_dim(c, j, d, f.out_shape[out].d[d], "the forward output's shape"));
        if (c->in[j]->shape.ndim != f.out_shape[out].ndim) {
            char s[256];
            return infer_fail_input(c, j, "has %d dims, expected %d (the forward output [%s])",
                                    c->in[j]->shape.ndim, f.out_shape[out].ndim,
                                    shape_str(c->g, &f.out_shape[out], s, sizeof s));
        }
    }
    int expected = 0;
    for (int i = 0; i < info->max_outputs; i++) expected += info->grad_of[i] < c->n_in;
    if (c->n_out != expected)
        return infer_fail(c, "has %d outputs, expected %d (one gradient per differentiable input)",
                          c->n_out, expected);
    for (int i = 0; i < c->n_out; i++) {
        c->out_shape[i] = c->in[info->grad_of[i]]->shape;
        c->out_dtype[i] = grad_dtype_of(c->g, c->in[info->grad_of[i]]);
    }
    return AUTOSP_OK;
}
