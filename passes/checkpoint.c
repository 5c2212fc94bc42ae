/* checkpoint.c: activation checkpointing as a minimum cut (autosp/passes.h,
 * docs/checkpointing.md).
 *
 * Every forward node v and every forward tensor t is a vertex. The source side of the cut holds
 * what only the forward computes; the sink side what the backward has: a tensor t on the sink
 * side whose producer is on the source side is saved (edge producer -> t, its bytes), a node on
 * the sink side is recomputed (edge source -> v, lambda x its modelled seconds). A recomputed
 * node needs its inputs on the sink side (edges t -> v, infinite) and the backward needs what it
 * reads (edges t -> sink, infinite). A policy only changes capacities: which nodes may not be
 * recomputed and what saving a tensor costs. sac searches lambda for the least saved bytes
 * within the recompute budget; the others take a lambda so small it only breaks ties. */
#include <math.h>
#include <string.h>

#include "autosp/passes.h"
#include "checkpoint.h"
#include "base/maxflow.h"
#include "rewrite.h"

static const char PASS[] = "checkpoint";
enum { SOURCE, SINK, FIRST_VERTEX };

static int node_vertex(int i) {
    return FIRST_VERTEX + i;
}

static int tensor_vertex(const ckpt_t *ck, autosp_tensor_t t) {
    return FIRST_VERTEX + ck->g->n_nodes + t;
}

static bool forward_input(const ckpt_t *ck, autosp_tensor_t t) {
    int p = ck->g->tensors[t].producer;
    return p >= 0 && ck->forward[p];
}

/* A ZeRO-3 gather: its output is never saved (checkpoint_policy.c), so gathering it again is
 * not the policy's choice. It costs nothing in the cut and nothing against sac's budget, or a
 * short step, where the gathers outweigh 10% of the compute, would leave no feasible lambda. */
static bool regather(const ckpt_t *ck, int node) {
    return ck->g->nodes[node].op == AUTOSP_OP_UNSHARD;
}

static autosp_status_t build_cut(const ckpt_t *ck, maxflow_t *f) {
    const autosp_graph_t *g = ck->g;
    bool ok = true;
    for (int i = 0; i < g->n_nodes && ok; i++) {
        if (!ck->forward[i]) continue;
        const node_t *n = &g->nodes[i];
        int v = node_vertex(i);
        /* matmuls with the same input width free the same bytes per second of recompute;
         * a 1% tilt by position orders such ties, so the budget search can take them one at
         * a time instead of all or none */
        double tilt = 1 + 0.01 * (double)i / g->n_nodes;
        ok = ck->banned[i]
                 ? maxflow_edge(f, SOURCE, v, MAXFLOW_INF, 0)
                 : maxflow_edge(f, SOURCE, v, 0, regather(ck, i) ? 0 : ck->seconds[i] * tilt);
        for (int k = 0; k < n->n_out && ok; k++)
            ok = maxflow_edge(f, v, tensor_vertex(ck, n->out[k]), ck->save_cost[n->out[k]], 0);
        for (int k = 0; k < n->n_in && ok; k++)
            if (forward_input(ck, n->in[k]))
                ok = maxflow_edge(f, tensor_vertex(ck, n->in[k]), v, MAXFLOW_INF, 0);
    }
    for (autosp_tensor_t t = 0; t < g->n_tensors && ok; t++)
        if (ck->read_by_backward[t])
            ok = maxflow_edge(f, tensor_vertex(ck, t), SINK, MAXFLOW_INF, 0);
    return ok ? AUTOSP_OK : nomem(ck->err);
}

/* The nodes the backward really needs recomputed, from the sink side of the last cut: walking
 * back from what the backward reads, through recomputed nodes only. */
static double take_cut(ckpt_t *ck, const maxflow_t *f) {
    const autosp_graph_t *g = ck->g;
    double seconds = 0;
    for (autosp_tensor_t t = 0; t < g->n_tensors; t++) ck->needed[t] = ck->read_by_backward[t];
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        const node_t *n = &g->nodes[i];
        ck->recompute[i] = false;
        if (!ck->forward[i] || maxflow_source_side(f, node_vertex(i))) continue;
        for (int k = 0; k < n->n_out; k++) ck->recompute[i] |= ck->needed[n->out[k]];
        if (!ck->recompute[i]) continue;
        if (!regather(ck, i)) seconds += ck->seconds[i];
        for (int k = 0; k < n->n_in; k++)
            if (forward_input(ck, n->in[k])) ck->needed[n->in[k]] = true;
    }
    return seconds;
}

static autosp_status_t solve(ckpt_t *ck, maxflow_t *f, double lambda, double *seconds) {
    double cut = maxflow_run(f, SOURCE, SINK, lambda);
    if (cut >= MAXFLOW_INF / 2)
        return pass_fail(ck->err, PASS, ck->g, -1,
                         "policy %s has no valid choice for graph \"%s\" (a tensor the backward "
                         "reads can be neither saved nor recomputed)",
                         autosp_ac_policy_name(ck->cfg->policy), ck->g->name);
    *seconds = take_cut(ck, f);
    return AUTOSP_OK;
}

/* A run at lambda for the budget search. A lambda over the budget is below the answer, and
 * lambdas only grow past it, so its flow is kept as where the later runs start. */
static autosp_status_t probe(ckpt_t *ck, maxflow_t *f, double lambda, double budget,
                             double *seconds) {
    autosp_status_t st = solve(ck, f, lambda, seconds);
    if (st == AUTOSP_OK && *seconds > budget && !maxflow_keep(f)) st = nomem(ck->err);
    return st;
}

/* sac: the smallest lambda (most recomputation, least saved bytes) within the budget. The cuts
 * are nested in lambda (source capacities grow with it), so recompute time falls as lambda
 * grows and bisection on log(lambda) finds the boundary. */
static autosp_status_t search_budget(ckpt_t *ck, maxflow_t *f, double tie) {
    double budget = ck->cfg->recompute_budget * ck->step_seconds, seconds;
    autosp_status_t st = probe(ck, f, tie, budget, &seconds);
    if (st != AUTOSP_OK || seconds <= budget) return st;
    double lo = tie, hi = tie;
    do {
        lo = hi;
        hi *= 16;
        st = probe(ck, f, hi, budget, &seconds);
    } while (st == AUTOSP_OK && seconds > budget && hi < MAXFLOW_INF);
    for (int it = 0; st == AUTOSP_OK && it < 64 && hi / lo > 1 + 1e-7; it++) {
        double mid = sqrt(lo * hi);
        if ((st = probe(ck, f, mid, budget, &seconds)) == AUTOSP_OK)
            *(seconds <= budget ? &hi : &lo) = mid;
    }
    return st == AUTOSP_OK ? solve(ck, f, hi, &seconds) : st;
}

/* Policy none keeps every value but ZeRO-3's gathered parameters, which it gathers again. */
static void keep_all(ckpt_t *ck) {
    const autosp_graph_t *g = ck->g;
    memcpy(ck->needed, ck->read_by_backward, sizeof *ck->needed * (size_t)g->n_tensors);
    for (int i = 0; i < g->n_nodes; i++)
        ck->recompute[i] = ck->forward[i] && g->nodes[i].op == AUTOSP_OP_UNSHARD &&
                           ck->read_by_backward[g->nodes[i].out[0]];
}

static autosp_status_t choose(ckpt_t *ck) {
    if (ck->cfg->policy == AUTOSP_AC_NONE) {
        keep_all(ck);
        return AUTOSP_OK;
    }
    maxflow_t *f = maxflow_new(FIRST_VERTEX + ck->g->n_nodes + ck->g->n_tensors);
    if (!f) return nomem(ck->err);
    autosp_status_t st = build_cut(ck, f);
    /* a tie-break worth half a byte over the whole step: it never outweighs a real byte */
    double tie = 0.5 / (ck->step_seconds > 0 ? ck->step_seconds : 1), seconds;
    if (st == AUTOSP_OK)
        st = ck->cfg->policy == AUTOSP_AC_SAC ? search_budget(ck, f, tie)
                                              : solve(ck, f, tie, &seconds);
    maxflow_free(f);
    return st;
}

/* ---- the rewrite ------------------------------------------------------------------------ */

/* Where each recomputed node's copy goes: before the first backward node that reads it, or
 * before its first recomputed consumer's copy. */
static void place_copies(const ckpt_t *ck, int *at) {
    const autosp_graph_t *g = ck->g;
    for (int i = 0; i < g->n_nodes; i++) at[i] = g->n_nodes;
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        const node_t *n = &g->nodes[i];
        int use = ck->forward[i] ? (ck->recompute[i] ? at[i] : -1) : i;
        for (int k = 0; use >= 0 && k < n->n_in; k++) {
            int p = g->tensors[n->in[k]].producer;
            if (p >= 0 && ck->recompute[p] && use < at[p]) at[p] = use;
        }
    }
}

static autosp_status_t emit_copy(rewrite_t *rw, int i) {
    const node_t *n = &rw->src->nodes[i];
    char node[AUTOSP_MAX_NAME + 16], outs[AUTOSP_MAX_NODE_OUTPUTS][AUTOSP_MAX_NAME + 16];
    const char *names[AUTOSP_MAX_NODE_OUTPUTS];
    autosp_tensor_t in[AUTOSP_MAX_NODE_INPUTS], out[AUTOSP_MAX_NODE_OUTPUTS];
    snprintf(node, sizeof node, "%s.recompute", n->name);
    for (int k = 0; k < n->n_in; k++) in[k] = rw->map[n->in[k]];
    for (int k = 0; k < n->n_out; k++) {
        snprintf(outs[k], sizeof outs[k], "%s.recompute", rw->src->tensors[n->out[k]].name);
        names[k] = outs[k];
    }
    autosp_status_t st = rewrite_emit(rw, n->op, node, in, n->n_in, names, n->n_out, n->attrs, out);
    for (int k = 0; st == AUTOSP_OK && k < n->n_out; k++) {
        const tensor_t *x = &rw->src->tensors[n->out[k]];
        rw->map[n->out[k]] = out[k]; /* every forward reader is behind us: the backward's now */
        rewrite_layout(rw, out[k], x->layout, x->layout_dim);
    }
    return st;
}

static autosp_graph_t *rewrite_graph(const ckpt_t *ck) {
    const autosp_graph_t *g = ck->g;
    size_t n = (size_t)g->n_nodes + 1;
    int *at = mem_calloc(n, sizeof *at), *first = mem_calloc(n, sizeof *first),
        *next = mem_calloc(n, sizeof *next);
    if (!at || !first || !next) {
        mem_free(at), mem_free(first), mem_free(next);
        nomem(ck->err);
        return NULL;
    }
    place_copies(ck, at);
    for (int i = 0; i < g->n_nodes; i++) first[i] = -1;
    for (int v = g->n_nodes - 1; v >= 0; v--) /* each position's copies, in forward order */
        if (ck->recompute[v]) next[v] = first[at[v]], first[at[v]] = v;
    rewrite_t rw;
    autosp_status_t st = rewrite_begin(&rw, g, ck->err);
    for (int i = 0; st == AUTOSP_OK && i < g->n_nodes; i++) {
        for (int v = first[i]; st == AUTOSP_OK && v >= 0; v = next[v]) st = emit_copy(&rw, v);
        if (st == AUTOSP_OK) st = rewrite_node(&rw, i, NULL);
    }
    mem_free(at), mem_free(first), mem_free(next);
    return rewrite_finish(&rw, st);
}

/* ---- the pass --------------------------------------------------------------------------- */

static void report(const ckpt_t *ck, autosp_ac_report_t *r) {
    const autosp_graph_t *g = ck->g;
    *r = (autosp_ac_report_t){
        .policy = ck->cfg->policy, .step_seconds = ck->step_seconds, .step_flops = ck->step_flops};
    for (int i = 0; i < g->n_nodes; i++)
        if (ck->recompute[i]) {
            r->recomputed_nodes++;
            r->recompute_flops += ck->flops[i];
            r->recompute_seconds += ck->seconds[i];
        }
    for (autosp_tensor_t t = 0; t < g->n_tensors; t++) {
        int p = g->tensors[t].producer;
        if (!ck->needed[t] || p < 0 || !ck->forward[p] || ck->recompute[p]) continue;
        if (op_table[g->nodes[p].op].view && ck->needed[g->nodes[p].in[0]]) continue;
        r->saved_tensors++;
        r->saved_bytes += ck->bytes[t];
    }
}

autosp_graph_t *autosp_checkpoint(const autosp_graph_t *joint, const autosp_ac_config_t *cfg,
                                  autosp_error_t *err) {
    autosp_error_t local;
    if (!err) err = &local;
    autosp_ac_config_t defaults = autosp_ac_config_default();
    ckpt_t ck = {.g = joint, .cfg = cfg ? cfg : &defaults, .err = err};
    autosp_status_t st = ckpt_analyse(&ck);
    if (st == AUTOSP_OK) st = ckpt_policy(&ck);
    if (st == AUTOSP_OK) st = choose(&ck);
    autosp_graph_t *result = st == AUTOSP_OK ? rewrite_graph(&ck) : NULL;
    if (result) {
        result->checkpointed = true;
        report(&ck, &result->ac);
    }
    ckpt_free(&ck);
    return result;
}

const autosp_ac_report_t *autosp_graph_checkpoint_report(const autosp_graph_t *g) {
    return g->checkpointed ? &g->ac : NULL;
}
