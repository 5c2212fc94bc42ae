/* mesh.c: choosing ulysses x ring for a sequence-parallel degree (autosp/passes.h).
 *
 * Each factorization of sp is compiled as a training step; one that the heads refuse (Ulysses
 * needs whole heads per rank) is reported with its error. For the others the cost model gives
 * the step's time (each node's roofline time plus its bytes sent over the network, summed) and
 * the memory plan its peak. The choice is the most Ulysses whose step is within 5% of the
 * fastest: the model's differences below that are its own noise (it does not model how much
 * of the ring's transfers the attention hides), and Ulysses needs no change of the sequence's
 * order. A step that cannot be costed (a symbol unbound) counts as fast as any, so the choice
 * is then the largest Ulysses degree that compiles. */
#include <math.h>
#include <string.h>

#include "autosp/analysis.h"
#include "autosp/passes.h"
#include "ir/ir.h"
#include "ir/op_table.h"

/* Modelled seconds of one step on m; NAN when a node cannot be costed. */
static double step_seconds(const autosp_graph_t *step, const autosp_machine_t *m, double *sent) {
    double total = 0;
    *sent = 0;
    for (int i = 0; i < step->n_nodes; i++) {
        autosp_cost_t c;
        if (autosp_node_cost(step, i, &c, NULL) != AUTOSP_OK) return NAN;
        total += autosp_cost_seconds(&c, m);
        *sent += c.bytes_sent;
    }
    return total;
}

static void try_mesh(const autosp_graph_t *forward, const autosp_parallel_config_t *base, int ring,
                     const autosp_machine_t *m, autosp_mesh_candidate_t *out) {
    autosp_parallel_config_t cfg = *base;
    cfg.ring = ring;
    *out = (autosp_mesh_candidate_t){
        .ulysses = cfg.sp / ring, .ring = ring, .step_seconds = NAN, .memory = -1};
    autosp_error_t err;
    autosp_graph_t *per_rank = autosp_parallelize(forward, &cfg, &err);
    out->status = per_rank ? AUTOSP_OK : err.status;
    autosp_graph_free(per_rank);
    if (!per_rank) {
        snprintf(out->why, sizeof out->why, "%s", err.message);
        return;
    }
    autosp_graph_t *step = autosp_compile_training(forward, &cfg, NULL);
    if (!step) return; /* possible, not costed (a policy's model needs every symbol) */
    out->step_seconds = step_seconds(step, m, &out->bytes_sent);
    autosp_memory_plan_t plan;
    if (autosp_plan_memory(step, cfg.zero_stage, cfg.backend, &plan, NULL) == AUTOSP_OK)
        out->memory = plan.total;
    autosp_graph_free(step);
}

/* Whether every attention's heads split over U Ulysses ranks (ulysses.c's plan_heads). */
static bool heads_split(const autosp_graph_t *forward, int64_t U) {
    for (int i = 0; i < forward->n_nodes; i++) {
        const node_t *n = &forward->nodes[i];
        if (n->op != AUTOSP_OP_ATTENTION) continue;
        const int64_t q = node_attr_int(n, "num_heads"), kv_attr = node_attr_int(n, "num_kv_heads");
        const int64_t kv = kv_attr ? kv_attr : q;
        if (q % U != 0 || q % (kv / gcd64(kv, U) * U) != 0) return false;
    }
    return true;
}

int autosp_mesh_ring_for_heads(const autosp_graph_t *forward, int sp) {
    for (int ring = 1; ring < sp; ring++)
        if (sp % ring == 0 && heads_split(forward, sp / ring)) return ring;
    return sp > 1 ? sp : 1;
}

enum { MESH_SLACK_PERCENT = 5 };

int autosp_plan_mesh(const autosp_graph_t *forward, const autosp_parallel_config_t *cfg,
                     const autosp_machine_t *machine, autosp_mesh_candidate_t *out, int max,
                     int *best) {
    const autosp_machine_t m = machine ? *machine : autosp_machine_default();
    int n = 0;
    double fastest = INFINITY;
    for (int ring = 1; ring <= cfg->sp && n < max; ring++) {
        if (cfg->sp % ring != 0) continue;
        try_mesh(forward, cfg, ring, &m, &out[n]);
        if (out[n].status == AUTOSP_OK && out[n].step_seconds < fastest)
            fastest = out[n].step_seconds;
        n++;
    }
    *best = -1; /* in increasing ring: the first close enough has the most Ulysses */
    for (int i = 0; i < n && *best < 0; i++)
        if (out[i].status == AUTOSP_OK &&
            !(out[i].step_seconds > fastest * (1 + MESH_SLACK_PERCENT / 100.0)))
            *best = i;
    return n;
}
