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

/* ---- sequence parallelism (Ulysses) ------------------------------------------------------
 * A single-device forward graph becomes the program every rank of a dp x sp world runs:
 *
 *     sp_shard    inputs with a seq_dim are split over the sp ranks of a sequence group (their
 *                 seq dim becomes S/sp) and the split follows each op's sharding rule; a node
 *                 whose op has no rule for a split input is an error naming it
 *     ulysses     every attention gets an all_to_all before it (Q, K, V in one message: S/sp
 *                 tokens x H heads -> S tokens x H/sp heads) and one after it
 *     exact_loss  the cross-entropy becomes the single-device mean over all targets of all
 *                 ranks (a token-count-weighted sum), the same value on every rank
 *     autodiff    as for one device (all_to_all's adjoint is the inverse all_to_all)
 *     grad_sync   parameter gradients summed over the world, in buckets, each placed as soon
 *                 as its gradients are final
 *
 * The per-rank graph records sp and dp (autosp_graph_sp/dp, and "parallel" in JSON). Tensor
 * layouts (split by sequence, by heads, partial) are kept in memory for --dot and --info; a
 * graph loaded from JSON has none, so run the passes in one process, from the forward graph.
 * Positions: the positions input holds each token's global position, and labels are shifted
 * over the whole sequence before it is split (the caller prepares both; autosp_trainer_feed
 * then hands each rank its slice). */
autosp_graph_t *autosp_sp_shard(const autosp_graph_t *forward, int sp, autosp_error_t *err);
autosp_graph_t *autosp_ulysses(const autosp_graph_t *sharded, autosp_error_t *err);
autosp_graph_t *autosp_exact_loss(const autosp_graph_t *g, int dp, autosp_error_t *err);
autosp_graph_t *autosp_grad_sync(const autosp_graph_t *joint, int64_t bucket_bytes,
                                 autosp_error_t *err);

typedef struct autosp_parallel_config {
    int sp, dp;           /* world = sp x dp ranks */
    int64_t bucket_bytes; /* grad_sync: a bucket closes once it holds this many gradient bytes
                           * (so it may overshoot by its last tensor) or 8 tensors */
} autosp_parallel_config_t;

/* sp 1, dp 1, 25 MiB buckets (PyTorch DDP's default) */
autosp_parallel_config_t autosp_parallel_config_default(void);

/* sp_shard, ulysses, exact_loss: the per-rank forward program. */
autosp_graph_t *autosp_parallelize(const autosp_graph_t *forward,
                                   const autosp_parallel_config_t *cfg, autosp_error_t *err);
/* autosp_parallelize, autodiff, grad_sync: the per-rank training step (loss and gradients). */
autosp_graph_t *autosp_compile_training(const autosp_graph_t *forward,
                                        const autosp_parallel_config_t *cfg, autosp_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
