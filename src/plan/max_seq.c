/* max_seq.c: the longest sequence whose training step fits a rank's memory (autosp/passes.h).
 * Each candidate S is compiled for real (parallel passes, autodiff, checkpointing at that S,
 * grad_sync, or grad_shard for ZeRO-2 and param_shard for ZeRO-3) and planned, so the answer
 * includes every decision that depends on S. */
#include "autosp/passes.h"
#include "ir/ir.h"

/* Compiles and plans forward at seq = S; *fits tells whether the plan's total fits. */
static autosp_status_t try_seq(const autosp_graph_t *forward, const autosp_parallel_config_t *cfg,
                               const autosp_seq_query_t *q, int64_t seq, autosp_seq_answer_t *a,
                               bool *fits, autosp_error_t *err) {
    autosp_graph_t *g = autosp_graph_clone(forward);
    if (!g) return nomem(err);
    autosp_parallel_config_t c = *cfg;
    if (q->zero_stage >= 2) c.zero_stage = q->zero_stage; /* the shards are in the graph */
    autosp_status_t st = autosp_symbol_bind(g, q->symbol, seq, err);
    autosp_graph_t *step = st == AUTOSP_OK ? autosp_compile_training(g, &c, err) : NULL;
    autosp_memory_plan_t plan;
    if (step)
        st = autosp_plan_memory(step, q->zero_stage, q->backend, &plan, err);
    else if (st == AUTOSP_OK)
        st = err->status;
    *fits = st == AUTOSP_OK && plan.total <= q->mem_bytes;
    if (*fits || (st == AUTOSP_OK && a->seq == 0)) { /* a fit, or why the first try failed */
        a->seq = *fits ? seq : 0;
        a->plan = plan;
        a->ac = step->ac;
    }
    autosp_graph_free(g);
    autosp_graph_free(step);
    return st;
}

autosp_status_t autosp_max_seq(const autosp_graph_t *forward, const autosp_parallel_config_t *cfg,
                               const autosp_seq_query_t *q, autosp_seq_answer_t *answer,
                               autosp_error_t *err) {
    autosp_error_t local;
    if (!err) err = &local;
    *answer = (autosp_seq_answer_t){0};
    int64_t unit = q->multiple > 0 ? q->multiple : 1;
    while (unit % cfg->sp) unit += q->multiple > 0 ? q->multiple : 1; /* S splits over sp */
    if (q->mem_bytes <= 0 || q->limit < unit)
        return set_error(err, AUTOSP_ERR_INVALID,
                         "max-seq: memory %lld bytes and limit %lld: expected memory > 0 and a "
                         "limit of at least one step of %lld tokens",
                         (long long)q->mem_bytes, (long long)q->limit, (long long)unit);
    /* doubling then bisection over k: S = k x unit; the plan grows with S */
    int64_t lo = 0, hi = 1, kmax = q->limit / unit;
    bool fits = true;
    autosp_status_t st = AUTOSP_OK;
    while (st == AUTOSP_OK && fits && lo < kmax) {
        st = try_seq(forward, cfg, q, hi * unit, answer, &fits, err);
        if (st == AUTOSP_OK && fits) lo = hi, hi = hi * 2 < kmax ? hi * 2 : kmax;
    }
    if (st != AUTOSP_OK || lo == kmax) return st == AUTOSP_OK ? set_ok(err) : st;
    while (st == AUTOSP_OK && hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        st = try_seq(forward, cfg, q, mid * unit, answer, &fits, err);
        if (st == AUTOSP_OK) *(fits ? &lo : &hi) = mid; /* answer holds the last fit: lo */
    }
    return st == AUTOSP_OK ? set_ok(err) : st;
}
