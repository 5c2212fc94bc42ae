/* memplan.c: liveness and first-fit offsets in one arena (see memplan.h). */
#include <inttypes.h>
#include <string.h>

#include "plan/memplan.h"

typedef struct block {
    int64_t off, size;
} block_t;

/* First fit in one arena above `base`, kept as its free gaps below `top` (the end of the highest
 * live block), sorted by offset: a block goes to the lowest gap it fits, else to the top. There
 * are far fewer gaps than live blocks (a long step keeps thousands of saved activations). */
typedef struct fit {
    block_t *gap;
    int n, cap;
    int64_t base, top, high;
} fit_t;

static int64_t align_up(int64_t n) {
    return (n + MEMPLAN_ALIGN - 1) / MEMPLAN_ALIGN * MEMPLAN_ALIGN;
}

static void fit_remove_gap(fit_t *f, int i) {
    memmove(&f->gap[i], &f->gap[i + 1], sizeof *f->gap * (size_t)(f->n - i - 1));
    f->n--;
}

static void fit_alloc(fit_t *f, int64_t size, int64_t *off) {
    if (size == 0) { /* nothing to keep apart */
        *off = f->base;
        return;
    }
    for (int i = 0; i < f->n; i++) {
        if (f->gap[i].size < size) continue;
        *off = f->gap[i].off;
        f->gap[i].off += size, f->gap[i].size -= size;
        if (!f->gap[i].size) fit_remove_gap(f, i);
        return;
    }
    *off = f->top;
    f->top += size;
    if (f->top > f->high) f->high = f->top;
}

/* Frees the live block [off, off + size): it joins the gaps beside it, or lowers the top. */
static int fit_free(fit_t *f, int64_t off, int64_t size) {
    if (size == 0) return 0;
    int lo = 0, hi = f->n; /* i: the first gap above the block */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (f->gap[mid].off < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    int i = lo;
    bool joins_below = i > 0 && f->gap[i - 1].off + f->gap[i - 1].size == off;
    if (off + size == f->top) { /* the highest block: the gap below it goes with it */
        f->top = joins_below ? f->gap[--f->n].off : off;
        return 0;
    }
    bool joins_above = i < f->n && f->gap[i].off == off + size;
    if (joins_below && joins_above) {
        f->gap[i - 1].size += size + f->gap[i].size;
        fit_remove_gap(f, i);
    } else if (joins_below) {
        f->gap[i - 1].size += size;
    } else if (joins_above) {
        f->gap[i].off = off, f->gap[i].size += size;
    } else {
        if (mem_grow((void **)&f->gap, &f->cap, f->n + 1, sizeof *f->gap)) return -1;
        memmove(&f->gap[i + 1], &f->gap[i], sizeof *f->gap * (size_t)(f->n - i));
        f->gap[i] = (block_t){off, size};
        f->n++;
    }
    return 0;
}

static void find_last_uses(const autosp_graph_t *g, const memplan_t *p, int *last_use) {
    for (int t = 0; t < g->n_tensors; t++) last_use[t] = g->tensors[t].producer;
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++) last_use[p->root[g->nodes[i].in[k]]] = i;
}

/* An in-place op's output takes its input's buffer when the input dies there and is as large.
 * A persistent output (a parameter's gradient) lends its own buffer to the input instead: the
 * input's producer then writes straight into it. */
static void share_in_place(const autosp_graph_t *g, memplan_t *p, const int *last_use,
                           const bool *persistent) {
    for (int i = 0; i < g->n_nodes; i++) {
        const node_t *n = &g->nodes[i];
        if (!op_table[n->op].in_place) continue;
        autosp_tensor_t u = p->root[n->in[0]], t = n->out[0];
        if (persistent[u] || last_use[u] != i || p->bytes[u] != p->bytes[t] || p->root[t] != t)
            continue;
        if (!persistent[t]) {
            p->root[t] = u, p->bytes[t] = 0;
            continue;
        }
        for (autosp_tensor_t x = 0; x < g->n_tensors; x++)
            if (p->root[x] == u) p->root[x] = t;
    }
}

/* Sizes, view and in-place roots, persistence and last uses. */
static void plan_lifetimes(const autosp_graph_t *g, memplan_t *p, int *last_use, bool *persistent) {
    for (int t = 0; t < g->n_tensors; t++) {
        int64_t numel = 0;
        shape_eval(g, &g->tensors[t].shape, NULL, &numel);
        p->root[t] = t;
        p->bytes[t] = align_up(numel * (int64_t)autosp_dtype_size(g->tensors[t].dtype));
        persistent[t] = g->tensors[t].kind != AUTOSP_KIND_VALUE;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const node_t *n = &g->nodes[i];
        if (op_table[n->op].view) {
            p->root[n->out[0]] = p->root[n->in[0]];
            p->bytes[n->out[0]] = 0;
        }
    }
    for (int o = 0; o < g->n_outputs; o++) persistent[p->root[g->outputs[o]]] = true;
    find_last_uses(g, p, last_use);
    share_in_place(g, p, last_use, persistent);
    find_last_uses(g, p, last_use);
}

/* Whether node j (which has a start kernel) asks to start ahead, its op's `prefetch`
 * attribute, and can: no input produced after node i. */
static bool can_start_after(const autosp_graph_t *g, int i, int j) {
    const node_t *n = &g->nodes[j];
    int attr = op_attr_find(n->op, "prefetch");
    if (attr < 0 || !n->attrs[attr].i) return false;
    for (int k = 0; k < n->n_in; k++)
        if (g->tensors[n->in[k]].producer > i) return false;
    return true;
}

/* A node with a start kernel starts right after the one before it that has one (ZeRO-3's
 * unshards: each parameter's gather is issued when the previous one completes, so it runs
 * under the compute between them; DeepSpeed prefetches the same way, one module ahead). */
static void plan_starts(const autosp_graph_t *g, const autosp_backend_t *backend, memplan_t *p) {
    int last = -1;
    for (int j = 0; j < g->n_nodes; j++) {
        p->start_next[j] = p->started_after[j] = -1;
        if (!backend_start_kernel(backend, g, j)) continue;
        if (last >= 0 && can_start_after(g, last, j)) {
            p->start_next[last] = j;
            p->started_after[j] = last;
        }
        last = j;
    }
}

/* Node i's outputs (those it owns) and its workspace into the arena. */
static void place_node(const autosp_graph_t *g, const autosp_backend_t *backend, memplan_t *p,
                       const bool *persistent, fit_t *f, int i, int64_t *acts) {
    const node_t *n = &g->nodes[i];
    for (int k = 0; k < n->n_out; k++) {
        autosp_tensor_t t = n->out[k];
        if (p->root[t] != t || persistent[t]) continue;
        fit_alloc(f, p->bytes[t], &p->offset[t]);
        *acts += p->bytes[t];
    }
    p->ws_bytes[i] = backend_workspace(backend, g, i, MEMPLAN_ALIGN);
    if (p->ws_bytes[i]) fit_alloc(f, p->ws_bytes[i], &p->ws_offset[i]);
}

static autosp_status_t place(const autosp_graph_t *g, const autosp_backend_t *backend, memplan_t *p,
                             int *last_use, const bool *persistent, autosp_error_t *err) {
    fit_t f = {0};
    int64_t persistent_bytes = 0, live = 0, acts = 0;
    for (int t = 0; t < g->n_tensors; t++) /* the persistent region comes first */
        if (persistent[t] && p->root[t] == t) {
            p->offset[t] = persistent_bytes;
            persistent_bytes += p->bytes[t];
            const tensor_t *x = &g->tensors[t];
            if (x->kind == AUTOSP_KIND_INPUT)
                p->input_bytes += p->bytes[t];
            else if (x->kind == AUTOSP_KIND_PARAM)
                p->param_bytes += p->bytes[t];
            else
                p->output_bytes += p->bytes[t];
        }
    f.base = f.top = f.high = persistent_bytes;
    int64_t held = 0; /* workspaces of started nodes, until they complete */
    for (int i = 0; i < g->n_nodes; i++) {
        const node_t *n = &g->nodes[i];
        if (p->started_after[i] < 0)
            place_node(g, backend, p, persistent, &f, i, &acts);
        else
            held -= p->ws_bytes[i]; /* placed at its start: now the node's own */
        int next = p->start_next[i];
        if (next >= 0) {
            place_node(g, backend, p, persistent, &f, next, &acts);
            held += p->ws_bytes[next];
        }
        live = persistent_bytes + acts + p->ws_bytes[i] + held;
        if (live > p->peak_live_bytes) p->peak_live_bytes = live;
        if (acts > p->activation_peak) p->activation_peak = acts;
        if (p->ws_bytes[i] > p->workspace_peak) p->workspace_peak = p->ws_bytes[i];
        if (op_table[n->op].collective && p->ws_bytes[i] > p->comm_peak)
            p->comm_peak = p->ws_bytes[i];
        if (p->ws_bytes[i] && fit_free(&f, p->ws_offset[i], p->ws_bytes[i])) goto oom;
        for (int k = 0; k < n->n_in + n->n_out; k++) {
            autosp_tensor_t t = p->root[k < n->n_in ? n->in[k] : n->out[k - n->n_in]];
            if (persistent[t] || last_use[t] != i || p->offset[t] < 0) continue;
            if (fit_free(&f, p->offset[t], p->bytes[t])) goto oom;
            acts -= p->bytes[t];
            last_use[t] = -2; /* freed once even if this node reads it twice */
        }
    }
    for (int t = 0; t < g->n_tensors; t++)
        if (p->root[t] != t) p->offset[t] = p->offset[p->root[t]];
    p->arena_bytes = f.high;
    mem_free(f.gap);
    return AUTOSP_OK;
oom:
    mem_free(f.gap);
    return nomem(err);
}

autosp_status_t memplan_build(const autosp_graph_t *g, const autosp_backend_t *backend,
                              memplan_t *p, autosp_error_t *err) {
    memset(p, 0, sizeof *p);
    autosp_status_t st = autosp_graph_verify(g, AUTOSP_VERIFY_BOUND, err);
    return st == AUTOSP_OK ? memplan_layout(g, backend, p, err) : st;
}

autosp_status_t memplan_layout(const autosp_graph_t *g, const autosp_backend_t *backend,
                               memplan_t *p, autosp_error_t *err) {
    memset(p, 0, sizeof *p);
    autosp_status_t st;
    p->n_tensors = g->n_tensors;
    p->n_nodes = g->n_nodes;
    size_t nt = (size_t)g->n_tensors + 1, nn = (size_t)g->n_nodes + 1;
    p->offset = mem_calloc(nt, sizeof *p->offset);
    p->bytes = mem_calloc(nt, sizeof *p->bytes);
    p->root = mem_calloc(nt, sizeof *p->root);
    p->ws_offset = mem_calloc(nn, sizeof *p->ws_offset);
    p->ws_bytes = mem_calloc(nn, sizeof *p->ws_bytes);
    p->start_next = mem_calloc(nn, sizeof *p->start_next);
    p->started_after = mem_calloc(nn, sizeof *p->started_after);
    int *last_use = mem_calloc(nt, sizeof *last_use);
    bool *persistent = mem_calloc(nt, sizeof *persistent);
    if (!p->offset || !p->bytes || !p->root || !p->ws_offset || !p->ws_bytes || !p->start_next ||
        !p->started_after || !last_use || !persistent) {
        st = nomem(err);
    } else {
        for (size_t t = 0; t < nt; t++) p->offset[t] = -1;
        for (size_t i = 0; i < nn; i++) p->ws_offset[i] = -1;
        plan_lifetimes(g, p, last_use, persistent);
        plan_starts(g, backend, p);
        st = place(g, backend, p, last_use, persistent, err);
    }
    mem_free(last_use);
    mem_free(persistent);
    if (st != AUTOSP_OK) memplan_free(p);
    return st;
}

void memplan_free(memplan_t *p) {
    mem_free(p->offset);
    mem_free(p->bytes);
    mem_free(p->root);
    mem_free(p->ws_offset);
    mem_free(p->ws_bytes);
    mem_free(p->start_next);
    mem_free(p->started_after);
    memset(p, 0, sizeof *p);
}

void memplan_print(const autosp_graph_t *g, const memplan_t *p, FILE *out) {
    fprintf(out, "memory plan: arena %" PRId64 " bytes, peak live %" PRId64 " bytes\n",
            p->arena_bytes, p->peak_live_bytes);
    fprintf(out,
            "  inputs %" PRId64 ", parameters %" PRId64 ", outputs (loss, gradients) %" PRId64
            ", activations at most %" PRId64 ", workspace at most %" PRId64 "\n",
            p->input_bytes, p->param_bytes, p->output_bytes, p->activation_peak, p->workspace_peak);
    for (int t = 0; t < g->n_tensors; t++)
        fprintf(out, "  %-32s offset %12" PRId64 "  bytes %12" PRId64 "%s\n", g->tensors[t].name,
                p->offset[t], p->bytes[t], p->root[t] != t ? "  (view)" : "");
}

/* ---- the whole rank's memory (autosp/analysis.h) ----------------------------------------- */

autosp_status_t autosp_plan_memory(const autosp_graph_t *step, int zero_stage,
                                   const autosp_backend_t *backend, autosp_memory_plan_t *out,
                                   autosp_error_t *err) {
    return plan_memory(step, zero_stage, backend, true, out, err);
}

autosp_status_t plan_memory(const autosp_graph_t *step, int zero_stage,
                            const autosp_backend_t *backend, bool verify, autosp_memory_plan_t *out,
                            autosp_error_t *err) {
    memset(out, 0, sizeof *out);
    if (zero_stage < 0 || zero_stage > 3)
        return set_error(err, AUTOSP_ERR_INVALID, "ZeRO stage %d: expected 0, 1, 2 or 3",
                         zero_stage);
    memplan_t p;
    autosp_status_t st =
        verify ? memplan_build(step, backend, &p, err) : memplan_layout(step, backend, &p, err);
    if (st != AUTOSP_OK) return st;
    int64_t world = (int64_t)autosp_graph_sp(step) * autosp_graph_dp(step);
    int64_t master = 0, optimizer = 0;
    for (autosp_tensor_t t = 0; t < step->n_tensors; t++) {
        const tensor_t *x = &step->tensors[t];
        if (x->kind != AUTOSP_KIND_PARAM) continue;
        int64_t numel = autosp_tensor_numel(step, t);
        if (x->dtype != AUTOSP_F32) master += 4 * numel; /* f32 master weights */
        optimizer += 8 * numel;                          /* AdamW m and v in f32 */
    }
    if (zero_stage >= 1 && zero_stage < 3) { /* its 1/world of the flat state (3: the graph's
                                              * parameters are the shards already) */
        master = (master + world - 1) / world;
        optimizer = (optimizer + world - 1) / world;
    }
    int64_t loss = step->n_outputs ? p.bytes[p.root[step->outputs[0]]] : 0;
    *out = (autosp_memory_plan_t){
        .params = p.param_bytes,
        .grads = p.output_bytes - loss,
        .master = master,
        .optimizer = optimizer,
        .inputs = p.input_bytes + loss,
        .activations = p.activation_peak,
        .comm = p.comm_peak,
        .workspace = p.workspace_peak,
        .arena = p.arena_bytes,
        .total = p.arena_bytes + master + optimizer,
    };
    memplan_free(&p);
    return set_ok(err);
}
