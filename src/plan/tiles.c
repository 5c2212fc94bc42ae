/* tiles.c: each planned tile and chunk grown into the room under the step's peak.
 *
 * A tiled op (mlp, gelu_mlp, rmsnorm_linear, layernorm_linear) or the chunked lm head whose size
 * attribute is 0 runs at the planner's size (src/ir/ops_cost.c), which is chosen for the node at
 * the step's peak. Every other node has room under the arena's high-water mark, and a larger
 * tile runs fewer, larger products. So each such node gets the largest power-of-two size whose
 * workspace fits in the largest gap first fit has free when the node runs, or above the blocks
 * under the arena's top (memplan_t.gap_at, top_at): a workspace lives for its node alone, so
 * no other block moves. The step is planned again to check (a prefetched gather placed while
 * the workspace is live could move): if the arena grew, every grown size is halved until it
 * does not (GROW_ROUNDS times at most, then the planner's sizes stand). A size changes only the
 * order of f32 sums, never the values' maths. */
#include "autosp/analysis.h"
#include "plan/memplan.h"

enum { GROW_ROUNDS = 4, FIRST_EXP = 8, LAST_EXP = 40 };

typedef struct grown {
    int node, attr;
    int64_t size;
} grown_t;

/* The index of node n's tile or chunk attribute when it is planned (0), else -1. */
static int planned_size_attr(const node_t *n) {
    int a = op_attr_find(n->op, "tile");
    if (a < 0) a = op_attr_find(n->op, "chunk");
    return a >= 0 && n->attrs[a].i == 0 ? a : -1;
}

static int64_t workspace_at(const autosp_backend_t *b, autosp_graph_t *g, int i, int a,
                            int64_t size) {
    g->nodes[i].attrs[a].i = size;
    return backend_workspace(b, g, i, MEMPLAN_ALIGN);
}

/* The largest power of two whose workspace fits in room and exceeds the planned size's, or 0.
 * Past the node's rows the workspace stops growing: the first such size is the whole rows. */
static int64_t grown_size(const autosp_backend_t *b, autosp_graph_t *g, int i, int a,
                          int64_t room) {
    int64_t planned = workspace_at(b, g, i, a, 0), best = 0, last = planned;
    for (int e = FIRST_EXP; e <= LAST_EXP; e++) {
        int64_t size = (int64_t)1 << e, ws = workspace_at(b, g, i, a, size);
        if (ws > room || (best && ws == last)) break;
        if (ws > planned) best = size;
        last = ws;
    }
    g->nodes[i].attrs[a].i = 0;
    return best;
}

static void set_sizes(autosp_graph_t *g, const grown_t *grown, int n, bool planned) {
    for (int k = 0; k < n; k++)
        g->nodes[grown[k].node].attrs[grown[k].attr].i = planned ? 0 : grown[k].size;
}

/* Halves every grown size; drops those no larger than the planned size's workspace. */
static int halve(const autosp_backend_t *b, autosp_graph_t *g, grown_t *grown, int n) {
    int kept = 0;
    for (int k = 0; k < n; k++) {
        grown_t x = grown[k];
        x.size /= 2;
        int64_t planned = workspace_at(b, g, x.node, x.attr, 0);
        bool larger = workspace_at(b, g, x.node, x.attr, x.size) > planned;
        g->nodes[x.node].attrs[x.attr].i = 0;
        if (larger) grown[kept++] = x;
    }
    return kept;
}

/* The arena of g as planned now, in *arena. */
static autosp_status_t arena_of(const autosp_graph_t *g, const autosp_backend_t *b, int64_t *arena,
                                autosp_error_t *err) {
    memplan_t p;
    autosp_status_t st = memplan_layout(g, b, &p, err);
    if (st != AUTOSP_OK) return st;
    *arena = p.arena_bytes;
    memplan_free(&p);
    return AUTOSP_OK;
}

autosp_status_t autosp_plan_tiles(autosp_graph_t *step, const autosp_backend_t *backend,
                                  int *grown_nodes, autosp_error_t *err) {
    if (grown_nodes) *grown_nodes = 0;
    autosp_status_t st = autosp_graph_verify(step, AUTOSP_VERIFY_BOUND, err);
    if (st != AUTOSP_OK || !backend) return st;
    memplan_t p;
    if ((st = memplan_layout(step, backend, &p, err)) != AUTOSP_OK) return st;
    int64_t limit = p.arena_bytes;
    grown_t *grown = mem_calloc((size_t)step->n_nodes + 1, sizeof *grown);
    int n = 0;
    for (int i = 0; grown && i < step->n_nodes; i++) {
        int a = planned_size_attr(&step->nodes[i]);
        int64_t room = p.gap_at[i] > limit - p.top_at[i] ? p.gap_at[i] : limit - p.top_at[i];
        int64_t size = a < 0 ? 0 : grown_size(backend, step, i, a, room);
        if (size) grown[n++] = (grown_t){i, a, size};
    }
    memplan_free(&p);
    if (!grown) return nomem(err);
    bool fits = false;
    for (int round = 0; n && !fits && round < GROW_ROUNDS; round++) {
        if (round) n = halve(backend, step, grown, n);
        set_sizes(step, grown, n, false);
        int64_t arena = 0;
        if ((st = arena_of(step, backend, &arena, err)) != AUTOSP_OK) break;
        fits = arena <= limit;
    }
    if (!fits) set_sizes(step, grown, n, true);
    if (grown_nodes && fits) *grown_nodes = n;
    mem_free(grown);
    return st == AUTOSP_OK ? set_ok(err) : st;
}
