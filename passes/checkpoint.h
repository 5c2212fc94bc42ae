/* checkpoint.h: what the checkpointing pass knows about a joint graph (passes/checkpoint.c
 * solves the cut, passes/checkpoint_policy.c fills this in). Arrays are per node or per tensor
 * of the joint graph g. */
#ifndef AUTOSP_PASSES_CHECKPOINT_H
#define AUTOSP_PASSES_CHECKPOINT_H

#include "autosp/passes.h"
#include "ir/op_table.h"

typedef struct ckpt {
    const autosp_graph_t *g;
    const autosp_ac_config_t *cfg;
    autosp_error_t *err;
    /* ckpt_analyse */
    bool *forward;                   /* node: an ancestor of the loss (output 0) */
    bool *read_by_backward;          /* tensor: made by a forward node, read by a backward one */
    bool *param_dependent;           /* tensor: depends on a parameter (else data: masks, counts) */
    double *seconds;                 /* node: modelled time (autosp_cost_seconds; views 0) */
    double *flops;                   /* node */
    int64_t *bytes;                  /* tensor */
    double step_seconds, step_flops; /* every node of g */
    /* ckpt_policy */
    bool *banned;      /* node: never recomputed under the policy */
    double *save_cost; /* tensor: what keeping it costs in the cut (bytes, 0, MAXFLOW_INF) */
    /* the cut (checkpoint.c) */
    bool *recompute; /* node: copied into the backward */
    bool *needed;    /* tensor: read by the backward or by a copy */
} ckpt_t;

/* Forward/backward split, costs and sizes; checks g is a bound joint graph. */
autosp_status_t ckpt_analyse(ckpt_t *ck);
/* banned and save_cost for ck->cfg->policy. */
autosp_status_t ckpt_policy(ckpt_t *ck);
void ckpt_free(ckpt_t *ck);

#endif
