/* grad_sync.c: parameter gradients summed over every rank (sequence x data groups).
 *
 * Each rank's "<param>.grad" is its term of the gradient: a sequence slice's contribution, of
 * its share of the batch, already divided by the global target count (exact_loss). Summing
 * over the world gives every rank the single-device gradient. Gradients are grouped into
 * buckets in the order the backward finishes them, and each bucket's all_reduce is placed
 * right after the node that finishes its last member. The runtime's collectives are blocking
 * today, so this placement does not yet overlap communication with the backward; it is where
 * a non-blocking all_reduce would start. */
#include <stdlib.h>
#include <string.h>

#include "autosp/analysis.h"
#include "autosp/passes.h"
#include "rewrite.h"

static const char PASS[] = "grad_sync";

typedef struct grad {
    autosp_tensor_t t; /* in src */
    int ready;         /* the node that produces it */
} grad_t;

static int by_ready(const void *a, const void *b) {
    const grad_t *x = a, *y = b;
    return x->ready != y->ready ? (x->ready > y->ready) - (x->ready < y->ready)
                                : (x->t > y->t) - (x->t < y->t);
}

/* The parameter gradients among the outputs, in the order they become final. */
static int find_grads(const autosp_graph_t *g, grad_t *grads) {
    int n = 0;
    for (int o = 0; o < g->n_outputs; o++) {
        const tensor_t *x = &g->tensors[g->outputs[o]];
        size_t len = strlen(x->name);
        if (len <= 5 || strcmp(x->name + len - 5, ".grad") != 0 || x->producer < 0) continue;
        char param[AUTOSP_MAX_NAME];
        snprintf(param, sizeof param, "%.*s", (int)(len - 5), x->name);
        autosp_tensor_t p = autosp_tensor_find(g, param);
        if (p < 0 || g->tensors[p].kind != AUTOSP_KIND_PARAM) continue;
        grads[n++] = (grad_t){.t = g->outputs[o], .ready = x->producer};
    }
    qsort(grads, (size_t)n, sizeof *grads, by_ready);
    return n;
}

static int64_t bytes_of(const autosp_graph_t *g, autosp_tensor_t t) {
    int64_t numel = autosp_tensor_numel(g, t); /* -1 unbound: buckets close by count only */
    return numel < 0 ? 0 : numel * (int64_t)autosp_dtype_size(g->tensors[t].dtype);
}

/* "<param>.grad_local" in the wire dtype: itself, or cast to it as "<param>.grad_<dtype>". */
static autosp_status_t to_wire(rewrite_t *rw, autosp_tensor_t *t, const char *name,
                               autosp_dtype_t wire) {
    if (wire == AUTOSP_F32) return AUTOSP_OK;
    char cast[AUTOSP_MAX_NAME + 32];
    snprintf(cast, sizeof cast, "%s_%s", name, autosp_dtype_name(wire));
    attr_set_t a;
    attrs_default(AUTOSP_OP_CAST, &a);
    attrs_str(AUTOSP_OP_CAST, &a, "dtype", autosp_dtype_name(wire));
    const char *names[1] = {cast};
    autosp_status_t st = rewrite_emit(rw, AUTOSP_OP_CAST, cast, t, 1, names, 1, a.v, t);
    if (st == AUTOSP_OK) rewrite_layout(rw, *t, LAYOUT_PARTIAL, -1);
    return st;
}

/* The summed bucket back in f32 under the gradients' names. */
static autosp_status_t from_wire(rewrite_t *rw, autosp_tensor_t *sums, const char *const *names,
                                 int n, autosp_dtype_t wire) {
    autosp_status_t st = AUTOSP_OK;
    for (int k = 0; wire != AUTOSP_F32 && k < n && st == AUTOSP_OK; k++) {
        attr_set_t a;
        attrs_default(AUTOSP_OP_CAST, &a);
        attrs_str(AUTOSP_OP_CAST, &a, "dtype", "f32");
        char node[AUTOSP_MAX_NAME + 16];
        snprintf(node, sizeof node, "%s_f32", names[k]);
        st = rewrite_emit(rw, AUTOSP_OP_CAST, node, &sums[k], 1, &names[k], 1, a.v, &sums[k]);
    }
    return st;
}

/* One bucket [first, last) of grads: locals renamed "<param>.grad_local", then summed into
 * "<param>.grad" (over the wire in `wire`: the sum's outputs are "<param>.grad_sum" then). */
static autosp_status_t emit_bucket(rewrite_t *rw, const grad_t *grads, int first, int last,
                                   int index, int world, autosp_dtype_t wire) {
    autosp_tensor_t in[AUTOSP_MAX_NODE_OUTPUTS], out[AUTOSP_MAX_NODE_OUTPUTS];
    char names[AUTOSP_MAX_NODE_OUTPUTS][AUTOSP_MAX_NAME + 16], local[AUTOSP_MAX_NAME + 16];
    const char *out_names[AUTOSP_MAX_NODE_OUTPUTS];
    autosp_status_t st = AUTOSP_OK;
    for (int k = first; k < last && st == AUTOSP_OK; k++) {
        const char *name = rw->src->tensors[grads[k].t].name;
        snprintf(names[k - first], sizeof names[k - first], "%s%s", name,
                 wire == AUTOSP_F32 ? "" : "_sum");
        out_names[k - first] = names[k - first];
        in[k - first] = rw->map[grads[k].t];
        snprintf(local, sizeof local, "%s_local", name);
        st = tensor_rename(rw->dst, in[k - first], local, rw->err);
        if (st == AUTOSP_OK) rewrite_layout(rw, in[k - first], LAYOUT_PARTIAL, -1);
        if (st == AUTOSP_OK) st = to_wire(rw, &in[k - first], local, wire);
    }
    attr_set_t a;
    attrs_default(AUTOSP_OP_ALL_REDUCE, &a);
    attrs_int(AUTOSP_OP_ALL_REDUCE, &a, "ranks", world);
    attrs_str(AUTOSP_OP_ALL_REDUCE, &a, "group", "world");
    char node[64];
    snprintf(node, sizeof node, "grad_sync.bucket%d", index);
    if (st == AUTOSP_OK)
        st = rewrite_emit(rw, AUTOSP_OP_ALL_REDUCE, node, in, last - first, out_names, last - first,
                          a.v, out);
    const char *grad_names[AUTOSP_MAX_NODE_OUTPUTS];
    for (int k = first; k < last; k++) grad_names[k - first] = rw->src->tensors[grads[k].t].name;
    if (st == AUTOSP_OK) st = from_wire(rw, out, grad_names, last - first, wire);
    for (int k = first; k < last && st == AUTOSP_OK; k++) rw->map[grads[k].t] = out[k - first];
    return st;
}

autosp_graph_t *autosp_grad_sync(const autosp_graph_t *joint, int64_t bucket_bytes,
                                 autosp_error_t *err) {
    return autosp_grad_sync_as(joint, bucket_bytes, AUTOSP_F32, err);
}

autosp_graph_t *autosp_grad_sync_as(const autosp_graph_t *joint, int64_t bucket_bytes,
                                    autosp_dtype_t wire, autosp_error_t *err) {
    autosp_error_t local;
    if (!err) err = &local;
    if (wire != AUTOSP_F32 && wire != AUTOSP_BF16) {
        set_error(err, AUTOSP_ERR_INVALID, "grad_sync: reduce dtype %s, expected f32 or bf16",
                  autosp_dtype_name(wire));
        return NULL;
    }
    if (autosp_graph_verify(joint, 0, err) != AUTOSP_OK) return NULL;
    int world = autosp_graph_sp(joint) * autosp_graph_dp(joint);
    grad_t *grads = mem_calloc((size_t)joint->n_outputs + 1, sizeof *grads);
    if (!grads) {
        nomem(err);
        return NULL;
    }
    int n = find_grads(joint, grads);
    rewrite_t rw;
    autosp_status_t st = rewrite_begin(&rw, joint, err);
    if (st == AUTOSP_OK && world > 1 && n == 0)
        st = pass_fail(err, PASS, joint, -1,
                       "graph \"%s\" has no \"<param>.grad\" outputs (run autodiff first)",
                       joint->name);
    int next = 0, buckets = 0;
    for (int i = 0; st == AUTOSP_OK && i < joint->n_nodes; i++) {
        st = rewrite_node(&rw, i, NULL);
        /* emit each bucket once it is full, or once it holds the last gradients */
        while (st == AUTOSP_OK && world > 1 && next < n && grads[next].ready <= i) {
            int end = next;
            int64_t bytes = 0;
            while (end < n && grads[end].ready <= i && end - next < AUTOSP_MAX_NODE_OUTPUTS &&
                   (bytes < bucket_bytes || end == next))
                bytes += bytes_of(joint, grads[end++].t);
            bool full = end - next == AUTOSP_MAX_NODE_OUTPUTS || bytes >= bucket_bytes;
            if (!full && end < n) break; /* later gradients will fill it */
            st = emit_bucket(&rw, grads, next, end, buckets++, world, wire);
            next = end;
        }
    }
    AUTOSP_ASSERT(st != AUTOSP_OK || world == 1 || next == n);
    mem_free(grads);
    return rewrite_finish(&rw, st);
}

/* ZeRO-2: each "<param>.grad" reduce-scattered over the world as soon as it is final, and the
 * rank's shard "<param>.grad_shard" in its place among the outputs. The whole gradient is then
 * a value like any other, freed by the memory plan after its exchange: a rank holds its
 * 1/world of the gradients, plus those not yet exchanged. */
autosp_graph_t *autosp_grad_shard(const autosp_graph_t *joint, autosp_error_t *err) {
    autosp_error_t local;
    if (!err) err = &local;
    if (autosp_graph_verify(joint, 0, err) != AUTOSP_OK) return NULL;
    int world = autosp_graph_sp(joint) * autosp_graph_dp(joint);
    grad_t *grads = mem_calloc((size_t)joint->n_outputs + 1, sizeof *grads);
    autosp_tensor_t *shards = mem_calloc((size_t)joint->n_outputs + 1, sizeof *shards);
    if (!grads || !shards) {
        mem_free(grads);
        mem_free(shards);
        nomem(err);
        return NULL;
    }
    int n = find_grads(joint, grads), next = 0;
    rewrite_t rw;
    autosp_status_t st = rewrite_begin(&rw, joint, err);
    if (st == AUTOSP_OK && n == 0)
        st = pass_fail(err, "grad_shard", joint, -1,
                       "graph \"%s\" has no \"<param>.grad\" outputs (run autodiff first)",
                       joint->name);
    attr_set_t a;
    attrs_default(AUTOSP_OP_REDUCE_SCATTER, &a);
    attrs_int(AUTOSP_OP_REDUCE_SCATTER, &a, "ranks", world);
    attrs_str(AUTOSP_OP_REDUCE_SCATTER, &a, "group", "world");
    for (int i = 0; st == AUTOSP_OK && i < joint->n_nodes; i++) {
        st = rewrite_node(&rw, i, NULL);
        for (; st == AUTOSP_OK && next < n && grads[next].ready <= i; next++) {
            char name[AUTOSP_MAX_NAME + 16];
            snprintf(name, sizeof name, "%s_shard", joint->tensors[grads[next].t].name);
            const char *names[1] = {name};
            st = rewrite_emit(&rw, AUTOSP_OP_REDUCE_SCATTER, name, &rw.map[grads[next].t], 1, names,
                              1, a.v, &shards[next]);
        }
    }
    for (int k = 0; st == AUTOSP_OK && k < n; k++) rw.map[grads[k].t] = shards[k];
    mem_free(grads);
    mem_free(shards);
    return rewrite_finish(&rw, st);
}
