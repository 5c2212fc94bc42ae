/* parallelize.h: autosp_compile_training in its two halves, for callers that compile one
 * forward graph at many values of S (max_seq.c). */
#ifndef AUTOSP_PASSES_PARALLELIZE_H
#define AUTOSP_PASSES_PARALLELIZE_H

#include <stdbool.h>

#include "autosp/passes.h"

/* The joint forward + backward graph (autodiff's output) of the per-rank program: chunked
 * loss, tiled MLPs, sp_shard, ulysses, exact_loss, param_shard, autodiff. None of these passes
 * looks at the value a symbol is bound to (sp_shard checks only that S splits over sp), so the
 * joint graph serves every S that does: re-bind S in a clone. Returns a new graph. */
autosp_graph_t *compile_joint(const autosp_graph_t *forward, const autosp_parallel_config_t *cfg,
                              autosp_error_t *err);
/* What S must be a multiple of not to be padded: sp, and with rings 2 x ring too (zigzag's
 * 2 ring chunks). */
int64_t parallel_seq_multiple(const autosp_parallel_config_t *cfg);
/* Whether a and b give the same joint graph of one forward graph. */
bool compile_joint_same(const autosp_parallel_config_t *a, const autosp_parallel_config_t *b);
/* The passes that decide by the bound S (checkpoint's cost model), the gradient passes of
 * cfg's ZeRO stage, and cfg->backend's check. Returns a new graph. */
autosp_graph_t *compile_finish(const autosp_graph_t *joint, const autosp_parallel_config_t *cfg,
                               autosp_error_t *err);

#endif
