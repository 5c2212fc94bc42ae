/* ulysses.c: DeepSpeed-Ulysses around every attention of a sequence-split program.
 *
 * Before: q, k, v hold this rank's S/P tokens for all heads. One all_to_all (Q, K and V in one
 * message) turns them into all S tokens for H/P heads; attention runs unchanged on them (so
 * causal and segment masks see global token indices); a second all_to_all turns the output
 * back into S/P tokens for all heads. Segment ids, needed whole by every rank, are gathered.
 * With GQA, only the kv heads travel when P divides them; otherwise each kv head is repeated
 * the fewest times that lets every rank own whole kv heads (lcm(Hkv, P) heads in all). */
#include <string.h>

#include "autosp/analysis.h"
#include "autosp/passes.h"
#include "rewrite.h"

static const char PASS[] = "ulysses";

static int64_t gcd(int64_t a, int64_t b) {
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

typedef struct heads {
    int64_t q, kv;   /* of the single-device attention */
    int64_t repeats; /* kv heads repeated before the exchange (1: none) */
} heads_t;

static autosp_status_t plan_heads(rewrite_t *rw, int i, int P, heads_t *h) {
    const node_t *n = &rw->src->nodes[i];
    h->q = node_attr_int(n, "num_heads");
    h->kv = node_attr_int(n, "num_kv_heads") ? node_attr_int(n, "num_kv_heads") : h->q;
    if (h->q % P != 0)
        return pass_fail(rw->err, PASS, rw->src, i,
                         "%lld heads are not divisible by sp = %d: Ulysses gives each rank "
                         "heads/sp whole heads (use an sp that divides %lld)",
                         (long long)h->q, P, (long long)h->q);
    int64_t kv_heads = h->kv / gcd(h->kv, P) * P; /* lcm(kv, P) */
    if (h->q % kv_heads != 0)
        return pass_fail(rw->err, PASS, rw->src, i,
                         "%lld kv heads cannot be shared by sp = %d ranks: repeating them to "
                         "lcm = %lld heads would not divide the %lld query heads",
                         (long long)h->kv, P, (long long)kv_heads, (long long)h->q);
    h->repeats = kv_heads / h->kv;
    return AUTOSP_OK;
}

/* t.<suffix> as a name */
static const char *derived(char *buf, size_t n, const rewrite_t *rw, autosp_tensor_t t,
                           const char *suffix) {
    snprintf(buf, n, "%s.%s", rw->dst->tensors[t].name, suffix);
    return buf;
}

static autosp_status_t exchange(rewrite_t *rw, const char *name, const autosp_tensor_t *in, int n,
                                int split, int concat, int P, const char *const *out_names,
                                autosp_tensor_t *out) {
    attr_set_t a;
    attrs_default(AUTOSP_OP_ALL_TO_ALL, &a);
    attrs_int(AUTOSP_OP_ALL_TO_ALL, &a, "split_dim", split);
    attrs_int(AUTOSP_OP_ALL_TO_ALL, &a, "concat_dim", concat);
    attrs_int(AUTOSP_OP_ALL_TO_ALL, &a, "ranks", P);
    attrs_str(AUTOSP_OP_ALL_TO_ALL, &a, "group", "sp");
    return rewrite_emit(rw, AUTOSP_OP_ALL_TO_ALL, name, in, n, out_names, n, a.v, out);
}

static autosp_status_t rewrite_attention(rewrite_t *rw, int i, int P) {
    const node_t *n = &rw->src->nodes[i];
    if (n->n_out != 1)
        return pass_fail(rw->err, PASS, rw->src, i,
                         "has a log-sum-exp output: ulysses runs on forward graphs, before "
                         "autodiff");
    heads_t h = {.repeats = 1};
    autosp_status_t st = plan_heads(rw, i, P, &h);
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
    if (st == AUTOSP_OK) st = exchange(rw, node_name, qkv, 3, 2, 1, P, out_names, heads);
    for (int k = 0; k < 3 && st == AUTOSP_OK; k++) rewrite_layout(rw, heads[k], LAYOUT_HEADS, 2);
    if (st == AUTOSP_OK && n->n_in == 4) { /* segment ids: every rank needs all of them */
        attr_set_t a;
        attrs_default(AUTOSP_OP_ALL_GATHER, &a);
        attrs_int(AUTOSP_OP_ALL_GATHER, &a, "dim", 1);
        attrs_int(AUTOSP_OP_ALL_GATHER, &a, "ranks", P);
        attrs_str(AUTOSP_OP_ALL_GATHER, &a, "group", "sp");
        autosp_tensor_t seg = rw->map[n->in[3]];
        const char *name = derived(names[3], sizeof names[3], rw, seg, "all");
        if (autosp_tensor_find(rw->dst, name) >= 0) { /* gathered for an earlier attention */
            heads[3] = autosp_tensor_find(rw->dst, name);
        } else {
            st = rewrite_emit(rw, AUTOSP_OP_ALL_GATHER, name, &seg, 1, NULL, 1, a.v, &heads[3]);
        }
    }
    attr_value_t attrs[4];
    memcpy(attrs, n->attrs, sizeof attrs);
    attrs[op_attr_index(AUTOSP_OP_ATTENTION, "num_heads")].i = h.q / P;
    attrs[op_attr_index(AUTOSP_OP_ATTENTION, "num_kv_heads")].i = h.kv * h.repeats / P;
    const char *out_name = rw->src->tensors[n->out[0]].name;
    char attn_name[AUTOSP_MAX_NAME + 32];
    snprintf(attn_name, sizeof attn_name, "%s.heads", out_name);
    const char *attn_names[1] = {attn_name};
    autosp_tensor_t o;
    if (st == AUTOSP_OK)
        st = rewrite_emit(rw, AUTOSP_OP_ATTENTION, n->name, heads, n->n_in, attn_names, 1, attrs,
                          &o);
    if (st == AUTOSP_OK) rewrite_layout(rw, o, LAYOUT_HEADS, 2);
    snprintf(node_name, sizeof node_name, "%s.to_seq", n->name);
    if (st == AUTOSP_OK) st = exchange(rw, node_name, &o, 1, 1, 2, P, &out_name, &o);
    if (st == AUTOSP_OK) {
        rewrite_layout(rw, o, LAYOUT_SEQ, 1);
        rw->map[n->out[0]] = o;
    }
    return st;
}

autosp_graph_t *autosp_ulysses(const autosp_graph_t *g, autosp_error_t *err) {
    autosp_error_t local;
    if (!err) err = &local;
    if (autosp_graph_verify(g, 0, err) != AUTOSP_OK) return NULL;
    int P = autosp_graph_sp(g), attentions = 0;
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
    for (int i = 0; st == AUTOSP_OK && i < g->n_nodes; i++) {
        const node_t *n = &g->nodes[i];
        bool split = n->op == AUTOSP_OP_ATTENTION && g->tensors[n->in[0]].layout == LAYOUT_SEQ;
        st = split && P > 1 ? rewrite_attention(&rw, i, P) : rewrite_node(&rw, i, NULL);
    }
    return rewrite_finish(&rw, st);
}
