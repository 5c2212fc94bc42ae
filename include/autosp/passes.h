/* autosp/passes.h: compiler passes, each a function from a graph to a new graph.
 *
 * A pass never modifies its input; it returns a new graph (free with autosp_graph_free) that
 * has passed autosp_graph_verify(), or NULL with err filled in.
 */
#ifndef AUTOSP_PASSES_H
#define AUTOSP_PASSES_H

#include "autosp/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* autodiff: appends the backward graph to a forward graph whose first output is a scalar loss
 * (a joint graph, as AOTAutograd makes). The result's outputs are the loss and then, for every
 * parameter in order, its gradient, named "<param>.grad". Each op's backward rule comes from
 * its op-table entry; attention nodes gain their log-sum-exp output (the backward reads it). */
autosp_graph_t *autosp_autodiff(const autosp_graph_t *forward, autosp_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
