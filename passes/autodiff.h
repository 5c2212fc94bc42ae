/* autodiff.h: what a backward rule (an op-table entry's .backward) sees and may call. */
#ifndef AUTOSP_PASSES_AUTODIFF_H
#define AUTOSP_PASSES_AUTODIFF_H

#include "ir/op_table.h"

typedef struct autodiff autodiff_t;

struct grad_ctx {
    autosp_graph_t *g; /* the joint graph being extended */
    int node_index;    /* the forward node */
    node_t node;       /* a copy of it (g->nodes may move while rules add nodes) */
    autosp_tensor_t dout[AUTOSP_MAX_NODE_OUTPUTS]; /* gradient of each output, or none */
    bool needs[AUTOSP_MAX_NODE_INPUTS];            /* input k needs a gradient */
    autodiff_t *ad;
    autosp_error_t *err;
};

/* Adds node "<forward node>.<suffix>" of op with the forward node's attributes when the
 * schemas match (attrs NULL) or the given ones; writes its outputs to out. */
autosp_status_t grad_emit(grad_ctx_t *c, autosp_op_t op, const char *suffix,
                          const autosp_tensor_t *in, int n_in, int n_out, const attr_value_t *attrs,
                          autosp_tensor_t *out);
/* Contributes t to the gradient of forward input k (summed with other contributions). */
autosp_status_t grad_give(grad_ctx_t *c, int k, autosp_tensor_t t);
/* Takes back what forward input k was given so far, summed (NO_TENSOR if nothing), for a rule
 * that folds it into the gradient it emits; the rule then gives the result. The nodes after
 * this one in the forward were processed already, so only earlier ones can add more. */
autosp_status_t grad_take(grad_ctx_t *c, int k, autosp_tensor_t *sum);

#endif
