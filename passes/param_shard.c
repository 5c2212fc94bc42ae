/* param_shard.c: ZeRO-3, parameters sharded over the world (autosp/passes.h, docs/passes.md).
 *
 * A rank keeps 1/world of every parameter. Each reader gets its own gather, placed right
 * before it, so a gathered parameter lives from its gather to its reader and no longer: two
 * readers far apart (a tied embedding and lm head) do not hold the whole table in between.
 * The gradient needs no pass of its own: unshard's backward is the reduce_scatter that sums
 * each rank's term of the whole gradient into the shard's. */
#include <string.h>

#include "autosp/passes.h"
#include "rewrite.h"

static const char PASS[] = "param_shard";

/* Every parameter of dst becomes its shard; its whole shape is kept in whole[] (by src tensor). */
static autosp_status_t shard_params(rewrite_t *rw, int world, shape_t *whole) {
    for (autosp_tensor_t t = 0; t < rw->src->n_tensors; t++) {
        const tensor_t *x = &rw->src->tensors[t];
        if (x->kind != AUTOSP_KIND_PARAM) continue;
        int64_t n = 1, d;
        for (int i = 0; i < x->shape.ndim; i++) {
            char text[64];
            if (!dim_is_const(x->shape.d[i], &d))
                return pass_fail(rw->err, PASS, rw->src, -1,
                                 "parameter \"%s\": dim %d is %s, a symbol; ZeRO-3 shards "
                                 "parameters of a constant shape only",
                                 x->name, i, dim_str(rw->src, x->shape.d[i], text, sizeof text));
            n *= d;
        }
        whole[t] = x->shape;
        tensor_t *shard = &rw->dst->tensors[rw->map[t]];
        shard->shape = (shape_t){.ndim = 1, .d = {dim_const((n + world - 1) / world)}};
    }
    return AUTOSP_OK;
}

/* Node i's parameters gathered whole right before it, node i copied reading them. */
static autosp_status_t gather_for(rewrite_t *rw, int i, int world, bool prefetch,
                                  const shape_t *whole, int *uses) {
    const node_t *n = &rw->src->nodes[i];
    autosp_tensor_t shards[AUTOSP_MAX_NODE_INPUTS];
    autosp_status_t st = AUTOSP_OK;
    for (int k = 0; k < n->n_in; k++) shards[k] = rw->map[n->in[k]];
    for (int k = 0; k < n->n_in && st == AUTOSP_OK; k++) {
        autosp_tensor_t p = n->in[k];
        if (rw->src->tensors[p].kind != AUTOSP_KIND_PARAM || rw->map[p] != shards[k]) continue;
        char name[AUTOSP_MAX_NAME + 24];
        int use = ++uses[p];
        snprintf(name, sizeof name, use == 1 ? "%s.gathered" : "%s.gathered%d",
                 rw->src->tensors[p].name, use);
        attr_set_t a;
        attrs_default(AUTOSP_OP_UNSHARD, &a);
        a.v[op_attr_index(AUTOSP_OP_UNSHARD, "shape")].shape = (shape_t *)&whole[p];
        attrs_int(AUTOSP_OP_UNSHARD, &a, "ranks", world);
        attrs_str(AUTOSP_OP_UNSHARD, &a, "group", "world");
        attrs_int(AUTOSP_OP_UNSHARD, &a, "prefetch", prefetch);
        st = rewrite_emit(rw, AUTOSP_OP_UNSHARD, name, &shards[k], 1, NULL, 1, a.v, &rw->map[p]);
        if (st == AUTOSP_OK) rewrite_layout(rw, rw->map[p], LAYOUT_FULL, -1);
    }
    if (st == AUTOSP_OK) st = rewrite_node(rw, i, NULL);
    for (int k = 0; k < n->n_in; k++) rw->map[n->in[k]] = shards[k]; /* the next reader gathers */
    return st;
}

autosp_graph_t *autosp_param_shard(const autosp_graph_t *forward, autosp_error_t *err) {
    return autosp_param_shard_as(forward, true, err);
}

autosp_graph_t *autosp_param_shard_as(const autosp_graph_t *forward, bool prefetch,
                                      autosp_error_t *err) {
    autosp_error_t local;
    if (!err) err = &local;
    if (autosp_graph_verify(forward, 0, err) != AUTOSP_OK) return NULL;
    int world = autosp_graph_sp(forward) * autosp_graph_dp(forward);
    size_t nt = (size_t)forward->n_tensors + 1;
    shape_t *whole = mem_calloc(nt, sizeof *whole);
    int *uses = mem_calloc(nt, sizeof *uses);
    rewrite_t rw;
    autosp_status_t st = whole && uses ? rewrite_begin(&rw, forward, err) : nomem(err);
    if (st == AUTOSP_OK) st = shard_params(&rw, world, whole);
    for (int i = 0; st == AUTOSP_OK && i < forward->n_nodes; i++)
        st = gather_for(&rw, i, world, prefetch, whole, uses);
    autosp_graph_t *result = whole && uses ? rewrite_finish(&rw, st) : NULL;
    mem_free(whole);
    mem_free(uses);
    return result;
}
