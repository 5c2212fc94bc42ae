/* ulysses.c: DeepSpeed-Ulysses around every attention of a sequence-split program, and ring
 * attention between the Ulysses groups when sp has rings (2-D sequence parallelism, USP).
 *
 * Before: q, k, v hold this rank's S/P tokens for all heads. One all_to_all (Q, K and V in one
 * message) turns them into all S tokens for H/P heads; attention runs unchanged on them (so
 * causal and segment masks see global token indices); a second all_to_all turns the output
 * back into S/P tokens for all heads. Segment ids, needed whole by every rank, are gathered.
 * With GQA, only the kv heads travel when P divides them; otherwise each kv head is repeated
 * the fewest times that lets every rank own whole kv heads (lcm(Hkv, P) heads in all).
 *
 * With rings, sp = U x R: the exchanges run inside Ulysses groups of U ranks (none when U is
 * 1), which leaves each rank its ring position's tokens for H/U heads, and the attention
 * becomes ring_attention over the R positions (the sequence is fed in zigzag order). */
#include <string.h>

#include "autosp/analysis.h"
#include "autosp/passes.h"
#include "rewrite.h"

static const char PASS[] = "ulysses";

/* The parallel shape: sp = U Ulysses ranks x R ring positions. */
typedef struct mesh {
    int U, R;
} mesh_t;

typedef struct heads {
    int64_t q, kv;   /* of the single-device attention */
    int64_t repeats; /* kv heads repeated before the exchange (1: none) */
} heads_t;

static autosp_status_t plan_heads(rewrite_t *rw, int i, mesh_t m, heads_t *h) {
    const node_t *n = &rw->src->nodes[i];
    const int P = m.U;
    const char *who = m.R > 1 ? "ulysses" : "sp";
    h->q = node_attr_int(n, "num_heads");
    h->kv = node_attr_int(n, "num_kv_heads") ? node_attr_int(n, "num_kv_heads") : h->q;
    if (h->q % P != 0)
        return pass_fail(rw->err, PASS, rw->src, i,
                         "%lld heads are not divisible by %s = %d: Ulysses gives each rank "
                         "heads/%s whole heads (rings can take the rest of sp: --ring)",
                         (long long)h->q, who, P, who);
    int64_t kv_heads = h->kv / gcd64(h->kv, P) * P; /* lcm(kv, P) */
    if (h->q % kv_heads != 0)
        return pass_fail(rw->err, PASS, rw->src, i,
                         "%lld kv heads cannot be shared by %s = %d ranks: repeating them to "
                         "lcm = %lld heads would not divide the %lld query heads",
                         (long long)h->kv, who, P, (long long)kv_heads, (long long)h->q);
    h->repeats = kv_heads / h->kv;
    return AUTOSP_OK;
}

/* t.<suffix> as a name */
static const char *derived(char *buf, size_t n, const rewrite_t *rw, autosp_tensor_t t,
                           const char *suffix) {
    snprintf(buf, n, "%s.%s", rw->dst->tensors[t].name, suffix);
    return buf;
}

/* In the Ulysses group ("sp" without rings); with U = 1 the tensors stay as they are. */
static autosp_status_t exchange(rewrite_t *rw, const char *name, const autosp_tensor_t *in, int n,
                                int split, int concat, mesh_t m, const char *const *out_names,
                                autosp_tensor_t *out) {
    if (m.U == 1) {
        memcpy(out, in, sizeof *out * (size_t)n);
        return AUTOSP_OK;
    }
    attr_set_t a;
    attrs_default(AUTOSP_OP_ALL_TO_ALL, &a);
    attrs_int(AUTOSP_OP_ALL_TO_ALL, &a, "split_dim", split);
    attrs_int(AUTOSP_OP_ALL_TO_ALL, &a, "concat_dim", concat);
    attrs_int(AUTOSP_OP_ALL_TO_ALL, &a, "ranks", m.U);
    attrs_str(AUTOSP_OP_ALL_TO_ALL, &a, "group", m.R > 1 ? "ulysses" : "sp");
    return rewrite_emit(rw, AUTOSP_OP_ALL_TO_ALL, name, in, n, out_names, n, a.v, out);
}

/* Every rank needs every segment id (in the order of the sequence ranks: the ring order) */
static autosp_status_t gather_segments(rewrite_t *rw, const node_t *n, int P, char *name,
                                       size_t size, autosp_tensor_t *out) {
    attr_set_t a;
    attrs_default(AUTOSP_OP_ALL_GATHER, &a);
    attrs_int(AUTOSP_OP_ALL_GATHER, &a, "dim", 1);
    attrs_int(AUTOSP_OP_ALL_GATHER, &a, "ranks", P);
    attrs_str(AUTOSP_OP_ALL_GATHER, &a, "group", "sp");
    autosp_tensor_t seg = rw->map[n->in[3]];
    derived(name, size, rw, seg, "all");
    *out = autosp_tensor_find(rw->dst, name);
    if (*out >= 0) return AUTOSP_OK; /* gathered for an earlier attention */
    return rewrite_emit(rw, AUTOSP_OP_ALL_GATHER, name, &seg, 1, NULL, 1, a.v, out);
}

/* The attention on this rank's heads: attention on every token, or ring_attention over the
 * ring with this position's tokens. */
static autosp_status_t emit_attention(rewrite_t *rw, const node_t *n, mesh_t m, const heads_t *h,
                                      const autosp_tensor_t *in, autosp_tensor_t *out) {
    const autosp_op_t op = m.R > 1 ? AUTOSP_OP_RING_ATTENTION : AUTOSP_OP_ATTENTION;
    attr_set_t a;
    attrs_default(op, &a);
    attrs_int(op, &a, "num_heads", h->q / m.U);
    attrs_int(op, &a, "num_kv_heads", h->kv * h->repeats / m.U);
    attrs_int(op, &a, "causal", node_attr_int(n, "causal"));
    a.v[op_attr_index(op, "scale")].f = node_attr_float(n, "scale");
    if (m.R > 1) attrs_int(op, &a, "ranks", m.R);
    const char *out_name = rw->src->tensors[n->out[0]].name;
    char name[AUTOSP_MAX_NAME + 32];
    snprintf(name, sizeof name, "%s.heads", out_name);
    const char *names[1] = {m.U > 1 ? name : out_name};
    autosp_status_t st = rewrite_emit(rw, op, n->name, in, n->n_in, names, 1, a.v, out);
    if (st == AUTOSP_OK)
        rewrite_layout(rw, *out, m.U > 1 ? LAYOUT_HEADS : LAYOUT_SEQ, m.U > 1 ? 2 : 1);
    return st;
}

static autosp_status_t rewrite_attention(rewrite_t *rw, int i, mesh_t m) {
    const node_t *n = &rw->src->nodes[i];
    if (n->n_out != 1)
        return pass_fail(rw->err, PASS, rw->src, i,
                         "has a log-sum-exp output: ulysses runs on forward graphs, before "
                         "autodiff");
    heads_t h = {.repeats = 1};
    autosp_status_t st = plan_heads(rw, i, m, &h);
    autosp_tensor_t qkv[3], heads[4];
    char names[4][AUTOSP_MAX_NAME + 32], node_name[AUTOSP_MAX_NAME + 32];
    for (int k = 0; k < 3; k++) qkv[k] = rw->map[n->in[k]];
    for (int k = 1; k < 3 && st == AUTOSP_OK && h.repeats > 1; k++) {
        attr_set_t a;
        attrs_default(AUTOSP_OP_REPEAT, &a);
        attrs_int(AUTOSP_OP_REPEAT, &a, "dim", 2);
        attrs_int(AUTOSP_OP_REPEAT, &a, "repeats", h.repeats);
        const char *name = derived(names[k], sizeof names[k], rw, qkv[k], "repeat");
        st = rewrite_emit(rw, AUTOSP_OP_REPEAT, name, &qkv[k], 1, NULL, 1, a.v, &qkv[k]);
        if (st == AUTOSP_OK) rewrite_layout(rw, qkv[k], LAYOUT_SEQ, 1);
    }
    const char *out_names[3];
    for (int k = 0; k < 3; k++)
        out_names[k] = derived(names[k], sizeof names[k], rw, qkv[k], "heads");
    snprintf(node_name, sizeof node_name, "%s.qkv_to_heads", n->name);
    if (st == AUTOSP_OK) st = exchange(rw, node_name, qkv, 3, 2, 1, m, out_names, heads);
    for (int k = 0; k < 3 && st == AUTOSP_OK && m.U > 1; k++)
        rewrite_layout(rw, heads[k], LAYOUT_HEADS, 2);
    if (st == AUTOSP_OK && n->n_in == 4)
        st = gather_segments(rw, n, m.U * m.R, names[3], sizeof names[3], &heads[3]);
    autosp_tensor_t o;
    if (st == AUTOSP_OK) st = emit_attention(rw, n, m, &h, heads, &o);
    const char *out_name = rw->src->tensors[n->out[0]].name;
    snprintf(node_name, sizeof node_name, "%s.to_seq", n->name);
    if (st == AUTOSP_OK && m.U > 1) st = exchange(rw, node_name, &o, 1, 1, 2, m, &out_name, &o);
    if (st == AUTOSP_OK) {
        rewrite_layout(rw, o, LAYOUT_SEQ, 1);
        rw->map[n->out[0]] = o;
    }
    return st;
}

autosp_graph_t *autosp_ulysses(const autosp_graph_t *g, autosp_error_t *err) {
    return autosp_ulysses_ring(g, 1, err);
}

autosp_graph_t *autosp_ulysses_ring(const autosp_graph_t *g, int ring, autosp_error_t *err) {
    autosp_error_t local;
    if (!err) err = &local;
    if (autosp_graph_verify(g, 0, err) != AUTOSP_OK) return NULL;
    int P = autosp_graph_sp(g), attentions = 0;
    if (ring < 1 || P % ring != 0) {
        pass_fail(err, PASS, g, -1, "ring = %d does not divide sp = %d (sp = ulysses x ring)", ring,
                  P);
        return NULL;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const node_t *n = &g->nodes[i];
        attentions += n->op == AUTOSP_OP_ATTENTION && g->tensors[n->in[0]].layout == LAYOUT_SEQ;
    }
    if (P > 1 && attentions == 0) {
        pass_fail(err, PASS, g, -1,
                  "graph \"%s\" has no attention on sequence-split inputs (run sp_shard first; "
                  "a graph without attention gains nothing from sequence parallelism)",
                  g->name);
        return NULL;
    }
    rewrite_t rw;
    autosp_status_t st = rewrite_begin(&rw, g, err);
    if (st == AUTOSP_OK) rw.dst->ring = ring > 1 ? ring : 0;
    const mesh_t m = {.U = P / ring, .R = ring};
    for (int i = 0; st == AUTOSP_OK && i < g->n_nodes; i++) {
        const node_t *n = &g->nodes[i];
        bool split = n->op == AUTOSP_OP_ATTENTION && g->tensors[n->in[0]].layout == LAYOUT_SEQ;
        st = split && P > 1 ? rewrite_attention(&rw, i, m) : rewrite_node(&rw, i, NULL);
    }
    return rewrite_finish(&rw, st);
}
