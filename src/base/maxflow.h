/* maxflow.h: minimum s-t cut of a small directed graph (Dinic's algorithm).
 *
 * The checkpointing pass (passes/checkpoint.c) states "save or recompute" as a cut: each edge's
 * capacity is base + lambda * per_lambda, so one graph serves every lambda of the budget search.
 * Capacities at or above MAXFLOW_INF are never cut by a feasible solution. */
#ifndef AUTOSP_PASSES_MAXFLOW_H
#define AUTOSP_PASSES_MAXFLOW_H

#include <stdbool.h>

#define MAXFLOW_INF 1e30

typedef struct maxflow maxflow_t;

/* NULL when out of memory. Free with maxflow_free. */
maxflow_t *maxflow_new(int n_vertices);
void maxflow_free(maxflow_t *f);
/* Adds the edge from -> to; false when out of memory. */
bool maxflow_edge(maxflow_t *f, int from, int to, double base, double per_lambda);
/* The value of a maximum flow (= the minimum cut) with capacities at lambda. Afterwards
 * maxflow_source_side tells the side of each vertex in the minimum cut whose source side is
 * smallest (the vertices still reachable from the source). */
double maxflow_run(maxflow_t *f, int source, int sink, double lambda);
/* Keeps the last run's flow: later runs at a lambda at least as large start from it instead of
 * from zero (the budget search's runs then only push the difference). False: out of memory. */
bool maxflow_keep(maxflow_t *f);
bool maxflow_source_side(const maxflow_t *f, int v);

#endif
