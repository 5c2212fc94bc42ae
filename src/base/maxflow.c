/* maxflow.c: Dinic's algorithm: BFS levels, then blocking flows along level-increasing edges.
 * The graphs here have a few thousand vertices, so O(V^2 E) in the worst case is plenty. */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "base/maxflow.h"

typedef struct edge {
    int to, next; /* next: the following edge out of the same vertex */
    double base, per_lambda, residual;
} edge_t;

struct maxflow {
    int n, n_edges, cap_edges;
    edge_t *e; /* edge 2k is the forward edge, 2k + 1 its reverse */
    int *first, *level, *cursor, *queue;
    double lambda, flow; /* of the last run */
    double *kept;        /* maxflow_keep: residuals of a run at kept_lambda, or NULL */
    double kept_lambda, kept_flow;
    int cap_kept;
};

maxflow_t *maxflow_new(int n_vertices) {
    maxflow_t *f = mem_calloc(1, sizeof *f);
    if (!f) return NULL;
    size_t n = (size_t)n_vertices + 1;
    f->n = n_vertices;
    f->first = mem_alloc(n * sizeof *f->first);
    f->level = mem_alloc(n * sizeof *f->level);
    f->cursor = mem_alloc(n * sizeof *f->cursor);
    f->queue = mem_alloc(n * sizeof *f->queue);
    if (!f->first || !f->level || !f->cursor || !f->queue) {
        maxflow_free(f);
        return NULL;
    }
    for (int v = 0; v < n_vertices; v++) f->first[v] = -1;
    return f;
}

void maxflow_free(maxflow_t *f) {
    if (!f) return;
    mem_free(f->e);
    mem_free(f->first);
    mem_free(f->level);
    mem_free(f->cursor);
    mem_free(f->queue);
    mem_free(f->kept);
    mem_free(f);
}

bool maxflow_edge(maxflow_t *f, int from, int to, double base, double per_lambda) {
    AUTOSP_ASSERT(from >= 0 && from < f->n && to >= 0 && to < f->n);
    if (mem_grow((void **)&f->e, &f->cap_edges, f->n_edges + 2, sizeof *f->e)) return false;
    f->e[f->n_edges] =
        (edge_t){.to = to, .next = f->first[from], .base = base, .per_lambda = per_lambda};
    f->first[from] = f->n_edges++;
    f->e[f->n_edges] = (edge_t){.to = from, .next = f->first[to]};
    f->first[to] = f->n_edges++;
    return true;
}

/* Levels by BFS over edges with residual capacity; true when the sink is reached. */
static bool bfs(maxflow_t *f, int s, int t) {
    for (int v = 0; v < f->n; v++) f->level[v] = -1;
    int head = 0, tail = 0;
    f->level[s] = 0;
    f->queue[tail++] = s;
    while (head < tail) {
        int v = f->queue[head++];
        for (int k = f->first[v]; k >= 0; k = f->e[k].next)
            if (f->e[k].residual > 0 && f->level[f->e[k].to] < 0) {
                f->level[f->e[k].to] = f->level[v] + 1;
                f->queue[tail++] = f->e[k].to;
            }
    }
    return f->level[t] >= 0;
}

/* One augmenting path of the level graph from v, pushing at most `limit`. */
static double augment(maxflow_t *f, int v, int t, double limit) {
    if (v == t) return limit;
    for (int *k = &f->cursor[v]; *k >= 0; *k = f->e[*k].next) {
        edge_t *e = &f->e[*k];
        if (e->residual <= 0 || f->level[e->to] != f->level[v] + 1) continue;
        double pushed = augment(f, e->to, t, limit < e->residual ? limit : e->residual);
        if (pushed > 0) {
            e->residual -= pushed;
            f->e[*k ^ 1].residual += pushed;
            return pushed;
        }
    }
    return 0;
}

static double capacity(const edge_t *e, double lambda) {
    double cap = e->base + lambda * e->per_lambda;
    return cap < MAXFLOW_INF ? cap : MAXFLOW_INF;
}

/* The residuals of the zero flow, or of the kept flow with each capacity raised to lambda's
 * (a flow stays feasible when no capacity falls); returns the flow they start from. */
static double start(maxflow_t *f, double lambda) {
    if (f->kept && lambda >= f->kept_lambda) {
        for (int k = 0; k < f->n_edges; k += 2) {
            double raise = capacity(&f->e[k], lambda) - capacity(&f->e[k], f->kept_lambda);
            f->e[k].residual = f->kept[k] + raise;
            f->e[k + 1].residual = f->kept[k + 1];
        }
        return f->kept_flow;
    }
    for (int k = 0; k < f->n_edges; k += 2) {
        f->e[k].residual = capacity(&f->e[k], lambda);
        f->e[k + 1].residual = 0;
    }
    return 0;
}

double maxflow_run(maxflow_t *f, int source, int sink, double lambda) {
    double flow = start(f, lambda);
    while (bfs(f, source, sink)) {
        memcpy(f->cursor, f->first, sizeof *f->cursor * (size_t)f->n);
        double pushed;
        while ((pushed = augment(f, source, sink, MAXFLOW_INF)) > 0) flow += pushed;
    }
    bfs(f, source, sink); /* leaves level >= 0 exactly on the source side */
    f->lambda = lambda;
    f->flow = flow;
    return flow;
}

bool maxflow_keep(maxflow_t *f) {
    if (mem_grow((void **)&f->kept, &f->cap_kept, f->n_edges, sizeof *f->kept)) return false;
    for (int k = 0; k < f->n_edges; k++) f->kept[k] = f->e[k].residual;
    f->kept_lambda = f->lambda;
    f->kept_flow = f->flow;
    return true;
}

bool maxflow_source_side(const maxflow_t *f, int v) {
    return f->level[v] >= 0;
}
