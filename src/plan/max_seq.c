/* max_seq.c: the longest sequence whose training step fits a rank's memory (autosp/passes.h).
 *
 * A compile fixes the step's structure at its S: the checkpoint decisions, the loss chunk and
 * the MLP tile. For that structure the plan is a function of S alone, and a cheap one: rebind S
 * in the compiled step and plan again (a "replan", no passes run). Every tensor's bytes are
 * linear in S (flash attention keeps no S x S), so the plan is piecewise linear, and a secant
 * search over replans finds the longest S the structure allows in a few plans. That S is then
 * compiled for real, and so is the next candidate: the answer is a compiled S that fits whose
 * next candidate, compiled, does not. Two or three compiles per query, against about fifteen for
 * bisection over compiles (still there: autosp_seq_query_t.exhaustive), which assumes, as this
 * does, that the plan grows with S (sac's is a sawtooth: both stop at a fit whose successor
 * does not fit). A "compile" here runs only the passes from the checkpoint pass on: the joint
 * graph before them does not depend on S's value and is shared (autosp_seq_search_t). */
#include <stdint.h>

#include "autosp/passes.h"
#include "ir/ir.h"
#include "passes/parallelize.h"
#include "plan/memplan.h"

enum { MAX_COMPILES = 8, MAX_REPLANS = 12 };

/* The joint graphs compiled so far, one per configuration that makes a different one
 * (compile_joint_same): a table of queries at one sp shares them across policies. */
typedef struct joint_entry {
    autosp_parallel_config_t cfg;
    autosp_graph_t *joint;
} joint_entry_t;

struct autosp_seq_search {
    const autosp_graph_t *forward;
    joint_entry_t *entry;
    int n, cap;
};

typedef struct search {
    autosp_seq_search_t *cache;
    const autosp_parallel_config_t *cfg;
    const autosp_seq_query_t *q;
    int64_t unit, kmax; /* candidates are k x unit, 1 <= k <= kmax */
    autosp_seq_answer_t *answer;
} search_t;

/* The joint graph of cfg (the cache's: not to be freed), compiled on first use. */
static autosp_status_t cached_joint(autosp_seq_search_t *c, const autosp_parallel_config_t *cfg,
                                    const char *symbol, int64_t value, autosp_graph_t **joint,
                                    autosp_error_t *err) {
    int i = 0;
    while (i < c->n && !compile_joint_same(&c->entry[i].cfg, cfg)) i++;
    if (i == c->n) {
        if (mem_grow((void **)&c->entry, &c->cap, c->n + 1, sizeof *c->entry)) return nomem(err);
        autosp_graph_t *g = autosp_graph_clone(c->forward);
        if (!g) return nomem(err);
        autosp_status_t st = autosp_symbol_bind(g, symbol, value, err);
        autosp_graph_t *compiled = st == AUTOSP_OK ? compile_joint(g, cfg, err) : NULL;
        autosp_graph_free(g);
        if (!compiled) return st == AUTOSP_OK ? err->status : st;
        c->entry[c->n++] = (joint_entry_t){*cfg, compiled};
    }
    *joint = c->entry[i].joint;
    return AUTOSP_OK;
}

/* Compiles forward at S = k x unit and plans it; *fits tells whether the plan's total fits.
 * The step is kept in *step_out (the caller frees it) when asked for. */
static autosp_status_t compile_at(search_t *s, int64_t k, bool *fits, int64_t *total,
                                  autosp_graph_t **step_out, autosp_error_t *err) {
    const autosp_seq_query_t *q = s->q;
    autosp_parallel_config_t c = *s->cfg;
    if (q->zero_stage >= 2) c.zero_stage = q->zero_stage; /* the shards are in the graph */
    autosp_graph_t *own = NULL, *g = NULL; /* the shared joint graph, or a forward graph */
    autosp_status_t st;
    if (q->exhaustive) /* nothing shared: the forward graph compiled whole */
        st = (g = own = autosp_graph_clone(s->cache->forward)) ? AUTOSP_OK : nomem(err);
    else
        st = cached_joint(s->cache, &c, q->symbol, k * s->unit, &g, err);
    if (st == AUTOSP_OK) st = autosp_symbol_bind(g, q->symbol, k * s->unit, err);
    autosp_graph_t *step = st != AUTOSP_OK ? NULL
                           : q->exhaustive ? autosp_compile_training(g, &c, err)
                                           : compile_finish(g, &c, err);
    autosp_graph_free(own);
    autosp_memory_plan_t plan;
    if (step)
        st = autosp_plan_memory(step, q->zero_stage, q->backend, &plan, err);
    else if (st == AUTOSP_OK)
        st = err->status;
    s->answer->compiles++;
    *fits = st == AUTOSP_OK && plan.total <= q->mem_bytes;
    if (total) *total = st == AUTOSP_OK ? plan.total : INT64_MAX;
    autosp_seq_answer_t *a = s->answer;
    if (st == AUTOSP_OK && (*fits ? k * s->unit > a->seq : a->seq == 0 && k == 1)) {
        a->seq = *fits ? k * s->unit : 0; /* a fit, or why the smallest candidate fails */
        a->plan = plan;
        a->ac = step->ac;
    }
    if (st == AUTOSP_OK && step_out)
        *step_out = step;
    else
        autosp_graph_free(step);
    return st;
}

/* The plan's total of step re-bound at S = k x unit; a structure that cannot take that S (a
 * dim no longer whole) fits nothing: INT64_MAX. Not verified again: a replan only steers the
 * search, whose answer is compiled. */
static int64_t replan_total(search_t *s, autosp_graph_t *step, int64_t k) {
    autosp_error_t err;
    autosp_memory_plan_t plan;
    s->answer->replans++;
    if (autosp_symbol_bind(step, s->q->symbol, k * s->unit, &err) != AUTOSP_OK ||
        plan_memory(step, s->q->zero_stage, s->q->backend, false, &plan, &err) != AUTOSP_OK)
        return INT64_MAX;
    return plan.total;
}

/* Where the line through (k0, t0) and (k1, t1) reaches mem; -1 when it rises nowhere. */
static int64_t line_reaches(int64_t k0, int64_t t0, int64_t k1, int64_t t1, int64_t mem) {
    if (t0 == INT64_MAX || t1 == INT64_MAX || t1 <= t0 || k1 == k0) return -1;
    double slope = (double)(t1 - t0) / (double)(k1 - k0);
    return slope > 0 ? k1 + (int64_t)((double)(mem - t1) / slope) : -1;
}

/* The largest k in [lo, hi) that step's structure fits, given that lo fits (or is 0) and hi
 * does not: a secant step from the line through the last two plans, falling back to halving
 * the bracket when the line says nothing useful. */
static int64_t predict(search_t *s, autosp_graph_t *step, int64_t k0, int64_t t0, int64_t lo,
                       int64_t hi) {
    const int64_t mem = s->q->mem_bytes;
    int64_t k1 = t0 <= mem ? (2 * k0 < hi ? 2 * k0 : hi - 1) : (k0 / 2 > lo ? k0 / 2 : lo + 1);
    for (int n = 0; n < MAX_REPLANS && hi - lo > 1; n++) {
        if (k1 <= lo || k1 >= hi) k1 = lo + (hi - lo) / 2;
        int64_t t1 = replan_total(s, step, k1);
        *(t1 <= mem ? &lo : &hi) = k1;
        if (hi - lo <= 1) break;
        int64_t next = line_reaches(k0, t0, k1, t1, mem);
        if (next < 0) next = lo + (hi - lo) / 2;
        if (next == k1) next += t1 <= mem ? 1 : -1; /* a line that lands on k1 brackets it */
        k0 = k1, t0 = t1, k1 = next;
    }
    return lo;
}

/* The answer in (lo, hi) (lo fits or is 0, hi does not fit or is kmax + 1) with every candidate
 * compiled: an open bracket doubles from lo until a candidate fails, then bisection. */
static autosp_status_t bracket(search_t *s, int64_t lo, int64_t hi, autosp_error_t *err) {
    while (hi - lo > 1) {
        int64_t mid = hi <= s->kmax ? lo + (hi - lo) / 2
                      : lo          ? 2 * lo < s->kmax ? 2 * lo : s->kmax
                                    : 1;
        bool fits;
        autosp_status_t st = compile_at(s, mid, &fits, NULL, NULL, err);
        if (st != AUTOSP_OK) return st;
        *(fits ? &lo : &hi) = mid;
        if (fits && mid == s->kmax) break;
    }
    return set_ok(err);
}

/* Compile at k, let the compiled structure predict the answer, compile there; done when a
 * compiled fit's next candidate, compiled, does not fit. lo and hi bracket the answer by
 * compiles (lo fits, hi does not). */
static autosp_status_t search_guided(search_t *s, int64_t k, autosp_error_t *err) {
    int64_t lo = 0, hi = s->kmax + 1, last_k = 0, last_t = 0;
    for (int n = 0; n < MAX_COMPILES && hi - lo > 1; n++) {
        autosp_graph_t *step = NULL;
        bool fits;
        int64_t t;
        autosp_status_t st = compile_at(s, k, &fits, &t, &step, err);
        if (st != AUTOSP_OK) return st;
        *(fits ? &lo : &hi) = k;
        if (hi - lo <= 1) {
            autosp_graph_free(step);
            break;
        }
        /* k fits and its structure says k + 1 does not: compile k + 1 to be sure (sac may
         * decide otherwise there) */
        int64_t next = fits && replan_total(s, step, k + 1) > s->q->mem_bytes
                           ? k + 1
                           : predict(s, step, k, t, fits ? k : lo, fits ? hi : k);
        autosp_graph_free(step);
        /* the structure moves with S (sac decides again at each), and a structure's own
         * prediction can fall short of what the next one allows: the line through the last two
         * compiles goes further when it says so */
        int64_t line = n ? line_reaches(last_k, last_t, k, t, s->q->mem_bytes) : -1;
        if (fits && next > k + 1 && line > next) next = line;
        last_k = k, last_t = t;
        if (next == 0) next = 1; /* the smallest candidate: fits, or says why not */
        if (next <= lo || next >= hi) next = lo + (hi - lo) / 2;
        k = next;
    }
    return bracket(s, lo, hi, err); /* the structure kept moving: compile through the bracket */
}

autosp_seq_search_t *autosp_seq_search_new(const autosp_graph_t *forward) {
    autosp_seq_search_t *c = mem_calloc(1, sizeof *c);
    if (c) c->forward = forward;
    return c;
}

void autosp_seq_search_free(autosp_seq_search_t *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) autosp_graph_free(c->entry[i].joint);
    mem_free(c->entry);
    mem_free(c);
}

autosp_status_t autosp_seq_search_run(autosp_seq_search_t *cache,
                                      const autosp_parallel_config_t *cfg,
                                      const autosp_seq_query_t *q, autosp_seq_answer_t *answer,
                                      autosp_error_t *err) {
    autosp_error_t local;
    if (!err) err = &local;
    *answer = (autosp_seq_answer_t){0};
    const int64_t step = q->multiple > 0 ? q->multiple : 1, split = parallel_seq_multiple(cfg);
    const int64_t unit = step / gcd64(step, split) * split; /* S splits over the mesh, unpadded */
    if (q->mem_bytes <= 0 || q->limit < unit)
        return set_error(err, AUTOSP_ERR_INVALID,
                         "max-seq: memory %lld bytes and limit %lld: expected memory > 0 and a "
                         "limit of at least one step of %lld tokens",
                         (long long)q->mem_bytes, (long long)q->limit, (long long)unit);
    search_t s = {cache, cfg, q, unit, q->limit / unit, answer};
    if (q->exhaustive) return bracket(&s, 0, s.kmax + 1, err);
    int64_t k = q->hint / unit;
    return search_guided(&s, k < 1 ? 1 : k > s.kmax ? s.kmax : k, err);
}

autosp_status_t autosp_max_seq(const autosp_graph_t *forward, const autosp_parallel_config_t *cfg,
                               const autosp_seq_query_t *q, autosp_seq_answer_t *answer,
                               autosp_error_t *err) {
    autosp_seq_search_t *cache = autosp_seq_search_new(forward);
    autosp_status_t st = cache ? autosp_seq_search_run(cache, cfg, q, answer, err) : nomem(err);
    autosp_seq_search_free(cache);
    return st;
}
