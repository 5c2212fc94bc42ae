/* checkpoint_policy.c: what the checkpointing cut is made of (passes/checkpoint.h): the joint
 * graph's forward and backward, each node's modelled cost, and each policy's capacities. */
#include <string.h>

#include "checkpoint.h"
#include "base/maxflow.h"
#include "rewrite.h"

static const char PASS[] = "checkpoint";

void ckpt_free(ckpt_t *ck) {
    mem_free(ck->forward);
    mem_free(ck->read_by_backward);
    mem_free(ck->param_dependent);
    mem_free(ck->seconds);
    mem_free(ck->flops);
    mem_free(ck->bytes);
    mem_free(ck->banned);
    mem_free(ck->save_cost);
    mem_free(ck->recompute);
    mem_free(ck->needed);
}

static autosp_status_t allocate(ckpt_t *ck) {
    size_t nn = (size_t)ck->g->n_nodes + 1, nt = (size_t)ck->g->n_tensors + 1;
    ck->forward = mem_calloc(nn, sizeof *ck->forward);
    ck->read_by_backward = mem_calloc(nt, sizeof *ck->read_by_backward);
    ck->param_dependent = mem_calloc(nt, sizeof *ck->param_dependent);
    ck->seconds = mem_calloc(nn, sizeof *ck->seconds);
    ck->flops = mem_calloc(nn, sizeof *ck->flops);
    ck->bytes = mem_calloc(nt, sizeof *ck->bytes);
    ck->banned = mem_calloc(nn, sizeof *ck->banned);
    ck->save_cost = mem_calloc(nt, sizeof *ck->save_cost);
    ck->recompute = mem_calloc(nn, sizeof *ck->recompute);
    ck->needed = mem_calloc(nt, sizeof *ck->needed);
    bool ok = ck->forward && ck->read_by_backward && ck->param_dependent && ck->seconds &&
              ck->flops && ck->bytes && ck->banned && ck->save_cost && ck->recompute && ck->needed;
    return ok ? AUTOSP_OK : nomem(ck->err);
}

static autosp_status_t costs(ckpt_t *ck) {
    const autosp_graph_t *g = ck->g;
    for (autosp_tensor_t t = 0; t < g->n_tensors; t++) /* bound: numel >= 0 */
        ck->bytes[t] = autosp_tensor_numel(g, t) * (int64_t)autosp_dtype_size(g->tensors[t].dtype);
    for (int i = 0; i < g->n_nodes; i++) {
        autosp_cost_t c;
        autosp_status_t st = autosp_node_cost(g, i, &c, ck->err);
        if (st != AUTOSP_OK) return st;
        ck->flops[i] = c.flops;
        ck->seconds[i] =
            op_table[g->nodes[i].op].view ? 0 : autosp_cost_seconds(&c, &ck->cfg->machine);
        ck->step_seconds += ck->seconds[i];
        ck->step_flops += c.flops;
    }
    return AUTOSP_OK;
}

autosp_status_t ckpt_analyse(ckpt_t *ck) {
    const autosp_graph_t *g = ck->g;
    /* one verification when every symbol is bound; a second only to tell why not */
    autosp_error_t unbound;
    bool bound = autosp_graph_verify(g, AUTOSP_VERIFY_BOUND, &unbound) == AUTOSP_OK;
    autosp_status_t st = bound ? AUTOSP_OK : autosp_graph_verify(g, 0, ck->err);
    if (st != AUTOSP_OK) return st;
    if (!bound && ck->cfg->policy != AUTOSP_AC_NONE)
        return set_error(ck->err, AUTOSP_ERR_INVALID,
                         "checkpoint: policy %s needs every symbol bound for its cost model: %s "
                         "(or use policy none)",
                         autosp_ac_policy_name(ck->cfg->policy), unbound.message);
    int loss_node = g->n_outputs ? g->tensors[g->outputs[0]].producer : -1;
    if (loss_node < 0)
        return pass_fail(ck->err, PASS, g, -1,
                         "graph \"%s\" has no computed loss as output 0 (run autodiff first)",
                         g->name);
    if ((st = allocate(ck)) != AUTOSP_OK) return st;
    /* nodes in topological order: everything up to the loss is the forward, the rest (which
     * autodiff appends) the backward */
    for (int i = 0; i <= loss_node; i++) ck->forward[i] = true;
    for (autosp_tensor_t t = 0; t < g->n_tensors; t++)
        ck->param_dependent[t] = g->tensors[t].kind == AUTOSP_KIND_PARAM;
    for (int i = 0; i < g->n_nodes; i++) {
        const node_t *n = &g->nodes[i];
        bool dep = false;
        for (int k = 0; k < n->n_in; k++) {
            int p = g->tensors[n->in[k]].producer;
            dep |= ck->param_dependent[n->in[k]];
            if (!ck->forward[i] && p >= 0 && ck->forward[p]) ck->read_by_backward[n->in[k]] = true;
        }
        for (int k = 0; k < n->n_out; k++) ck->param_dependent[n->out[k]] = dep;
    }
    return bound ? costs(ck) : AUTOSP_OK; /* policy none needs no costs */
}

/* ---- full: the layers' inputs ----------------------------------------------------------- */

/* The forward's bottlenecks: parameter-dependent tensors that alone carry the forward across a
 * point of the node order (Chen et al. 2016's candidates). only[i] is the one crossing the
 * point after node i, or -1. */
static void bottlenecks(const ckpt_t *ck, int n_fwd, int *last, int *cross, autosp_tensor_t *only) {
    const autosp_graph_t *g = ck->g;
    for (autosp_tensor_t t = 0; t < g->n_tensors; t++) last[t] = g->tensors[t].producer;
    for (int i = 0; i < n_fwd; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++) last[g->nodes[i].in[k]] = i;
    memset(cross, 0, sizeof *cross * (size_t)(n_fwd + 1));
    for (autosp_tensor_t t = 0; t < g->n_tensors; t++) {
        int p = g->tensors[t].producer;
        if (p < 0 || p >= n_fwd || !ck->param_dependent[t] || last[t] <= p) continue;
        cross[p]++;
        cross[last[t]]--;
    }
    for (int i = 1; i < n_fwd; i++) cross[i] += cross[i - 1];
    for (int i = 0; i < n_fwd; i++) only[i] = -1;
    for (autosp_tensor_t t = 0; t < g->n_tensors; t++) {
        int p = g->tensors[t].producer;
        if (p < 0 || p >= n_fwd || !ck->param_dependent[t]) continue;
        for (int i = p; i < last[t]; i++)
            if (cross[i] == 1) only[i] = t;
    }
}

/* The layers' inputs: the last bottleneck before each attention, and the one a layer's stride
 * of bottlenecks after the last of them (the last layer's output). Nodes after that are the
 * head (*head_from); *missing counts attentions with no bottleneck before them. */
typedef struct layers {
    bool *input; /* per tensor */
    int count, missing, head_from;
} layers_t;

static void walk_layers(const ckpt_t *ck, int n_fwd, const autosp_tensor_t *only,
                        autosp_tensor_t *chain, layers_t *l) {
    const autosp_graph_t *g = ck->g;
    int n_chain = 0, prev = -1, last = -1;
    for (int i = 0; i < n_fwd; i++) {
        if (op_table[g->nodes[i].op].recompute == RECOMPUTE_ATTENTION) {
            if (n_chain == 0) {
                l->missing++;
            } else {
                l->input[chain[n_chain - 1]] = true;
                prev = last;
                last = n_chain - 1;
                l->count++;
            }
        }
        if (only[i] >= 0 && (n_chain == 0 || chain[n_chain - 1] != only[i]))
            chain[n_chain++] = only[i];
    }
    l->head_from = n_fwd;
    if (prev >= 0 && last + (last - prev) < n_chain) {
        autosp_tensor_t end = chain[last + (last - prev)];
        l->input[end] = true;
        l->head_from = g->tensors[end].producer + 1;
    }
}

static autosp_status_t find_layers(const ckpt_t *ck, int n_fwd, layers_t *l) {
    int *cross = mem_calloc((size_t)n_fwd + 1, sizeof *cross),
        *last_use = mem_calloc((size_t)ck->g->n_tensors + 1, sizeof *last_use);
    autosp_tensor_t *only = mem_calloc((size_t)n_fwd + 1, sizeof *only),
                    *chain = mem_calloc((size_t)n_fwd + 1, sizeof *chain);
    autosp_status_t st = cross && last_use && only && chain ? AUTOSP_OK : nomem(ck->err);
    if (st == AUTOSP_OK) {
        bottlenecks(ck, n_fwd, last_use, cross, only);
        walk_layers(ck, n_fwd, only, chain, l);
    }
    mem_free(cross), mem_free(last_use), mem_free(only), mem_free(chain);
    return st;
}

/* ---- the policies ----------------------------------------------------------------------- */

/* full: only the layers' inputs (free), data values and the head are kept. */
static autosp_status_t full_capacities(ckpt_t *ck, const layers_t *l, int n_fwd) {
    const autosp_graph_t *g = ck->g;
    if (l->count == 0 || l->missing)
        return pass_fail(ck->err, PASS, g, -1,
                         "policy full: graph \"%s\" has %d attention nodes with a layer input "
                         "(a single tensor carrying the forward into them) and %d without; full "
                         "needs at least one, and none without",
                         g->name, l->count, l->missing);
    for (autosp_tensor_t t = 0; t < g->n_tensors; t++) {
        int p = g->tensors[t].producer;
        if (l->input[t])
            ck->save_cost[t] = 0;
        else if (ck->param_dependent[t] && p >= 0 && p < l->head_from)
            ck->save_cost[t] = MAXFLOW_INF;
    }
    return AUTOSP_OK;
}

autosp_status_t ckpt_policy(ckpt_t *ck) {
    const autosp_graph_t *g = ck->g;
    autosp_ac_policy_t policy = ck->cfg->policy;
    int n_fwd = 0;
    while (n_fwd < g->n_nodes && ck->forward[n_fwd]) n_fwd++;
    for (autosp_tensor_t t = 0; t < g->n_tensors; t++) ck->save_cost[t] = (double)ck->bytes[t];
    layers_t l = {.input = mem_calloc((size_t)g->n_tensors + 1, sizeof *l.input)};
    autosp_status_t st = l.input ? find_layers(ck, n_fwd, &l) : nomem(ck->err);
    for (int i = 0; st == AUTOSP_OK && i < n_fwd; i++) {
        const node_t *n = &g->nodes[i];
        recompute_class_t cls = op_table[n->op].recompute;
        /* values computed from data alone (masks, target counts) are kept: they do not grow
         * with the model, and recomputing a collective for a few bytes is never worth it.
         * So are the layers' inputs: recomputing one needs the layer before it, and a chain of
         * copies made in the last layer's backward would hold every layer's input at once.
         * And the head after the last layer (final norm, logits, loss): the backward starts
         * with it, so its values are live when the forward ends whether kept or recomputed. */
        bool data = true, layer_input = false;
        for (int k = 0; k < n->n_out; k++) {
            data &= !ck->param_dependent[n->out[k]];
            layer_input |= l.input[n->out[k]];
        }
        bool banned = data || (layer_input && policy != AUTOSP_AC_FULL) || i >= l.head_from;
        if (policy == AUTOSP_AC_MINCUT_CONSERVATIVE) banned |= cls != RECOMPUTE_CHEAP;
        if (policy == AUTOSP_AC_SAC)
            banned |= cls == RECOMPUTE_ATTENTION && !ck->cfg->recompute_attention;
        ck->banned[i] = banned && n->op != AUTOSP_OP_UNSHARD;
    }
    if (st == AUTOSP_OK && policy == AUTOSP_AC_FULL) st = full_capacities(ck, &l, n_fwd);
    /* ZeRO-3: a parameter gathered for the forward is freed after it and gathered again for
     * the backward, under every policy, or its shards would save nothing */
    for (int i = 0; i < n_fwd; i++)
        if (g->nodes[i].op == AUTOSP_OP_UNSHARD) ck->save_cost[g->nodes[i].out[0]] = MAXFLOW_INF;
    mem_free(l.input);
    return st;
}

/* ---- configuration ---------------------------------------------------------------------- */

static const char *const policy_names[] = {
    [AUTOSP_AC_NONE] = "none",
    [AUTOSP_AC_FULL] = "full",
    [AUTOSP_AC_MINCUT_CONSERVATIVE] = "mincut-conservative",
    [AUTOSP_AC_SAC] = "sac",
};

autosp_ac_config_t autosp_ac_config_default(void) {
    return (autosp_ac_config_t){
        .policy = AUTOSP_AC_SAC, .recompute_budget = 0.10, .machine = autosp_machine_default()};
}

const char *autosp_ac_policy_name(autosp_ac_policy_t policy) {
    return (unsigned)policy < ARRAY_LEN(policy_names) ? policy_names[policy] : "?";
}

autosp_status_t autosp_ac_policy_parse(const char *name, autosp_ac_policy_t *policy,
                                       autosp_error_t *err) {
    for (unsigned p = 0; p < ARRAY_LEN(policy_names); p++)
        if (name && !strcmp(name, policy_names[p])) {
            *policy = (autosp_ac_policy_t)p;
            return set_ok(err);
        }
    return set_error(err, AUTOSP_ERR_INVALID,
                     "checkpointing policy \"%s\": expected none, full, mincut-conservative or sac",
                     name ? name : "(null)");
}
