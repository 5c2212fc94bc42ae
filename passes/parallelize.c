/* parallelize.c: the SP passes in their order (see autosp/passes.h). */
#include "autosp/backend.h"
#include "autosp/passes.h"
#include "base/base.h"

autosp_parallel_config_t autosp_parallel_config_default(void) {
    return (autosp_parallel_config_t){
        .sp = 1, .dp = 1, .bucket_bytes = 25 << 20, .ac = autosp_ac_config_default()};
}

autosp_graph_t *autosp_parallelize(const autosp_graph_t *forward,
                                   const autosp_parallel_config_t *cfg, autosp_error_t *err) {
    autosp_graph_t *sharded = autosp_sp_shard(forward, cfg->sp, err);
    autosp_graph_t *exchanged = sharded ? autosp_ulysses(sharded, err) : NULL;
    autosp_graph_t *exact = exchanged ? autosp_exact_loss(exchanged, cfg->dp, err) : NULL;
    autosp_graph_free(sharded);
    autosp_graph_free(exchanged);
    return exact;
}

static autosp_graph_t *compile_joint(const autosp_graph_t *forward,
                                     const autosp_parallel_config_t *cfg, autosp_error_t *err) {
    if (cfg->sp * cfg->dp == 1) { /* nothing to split or to sum */
        autosp_graph_t *joint = autosp_autodiff(forward, err);
        autosp_graph_t *checkpointed = joint ? autosp_checkpoint(joint, &cfg->ac, err) : NULL;
        autosp_graph_free(joint);
        return checkpointed;
    }
    autosp_graph_t *per_rank = autosp_parallelize(forward, cfg, err);
    if (cfg->zero_stage == 3 && per_rank) { /* the gradients come out as shards, summed */
        autosp_graph_t *sharded = autosp_param_shard(per_rank, err);
        autosp_graph_free(per_rank);
        per_rank = sharded;
    }
    autosp_graph_t *joint = per_rank ? autosp_autodiff(per_rank, err) : NULL;
    autosp_graph_t *checkpointed = joint ? autosp_checkpoint(joint, &cfg->ac, err) : NULL;
    autosp_graph_free(per_rank);
    autosp_graph_free(joint);
    if (cfg->zero_stage == 2 && checkpointed) {
        autosp_graph_t *sharded = autosp_grad_shard(checkpointed, err);
        autosp_graph_free(checkpointed);
        return sharded;
    }
    if (cfg->zero_stage == 1 || cfg->zero_stage == 3 || !checkpointed)
        return checkpointed; /* ZeRO-1: the optimizer sums */
    autosp_graph_t *synced =
        autosp_grad_sync_as(checkpointed, cfg->bucket_bytes, cfg->grad_reduce_dtype, err);
    autosp_graph_free(checkpointed);
    return synced;
}

static bool tiles_mlp(const autosp_parallel_config_t *cfg) {
    return cfg->mlp_tile > 0 || (cfg->mlp_tile == 0 && cfg->ac.policy == AUTOSP_AC_FULL);
}

/* The loss chunked and the MLPs tiled (or not) first: the passes after them see one op each,
 * which has a sharding rule (and an exact loss like cross_entropy's). */
static autosp_graph_t *compile_step(const autosp_graph_t *forward,
                                    const autosp_parallel_config_t *cfg, autosp_error_t *err) {
    autosp_graph_t *chunked = cfg->loss_chunk == AUTOSP_LOSS_UNCHUNKED
                                  ? NULL
                                  : autosp_chunked_loss(forward, cfg->loss_chunk, err);
    if (cfg->loss_chunk != AUTOSP_LOSS_UNCHUNKED && !chunked) return NULL;
    const autosp_graph_t *fused = chunked ? chunked : forward;
    autosp_graph_t *tiled = tiles_mlp(cfg) ? autosp_tiled_mlp(fused, cfg->mlp_tile, err) : NULL;
    autosp_graph_t *step = NULL;
    if (!tiles_mlp(cfg) || tiled) step = compile_joint(tiled ? tiled : fused, cfg, err);
    autosp_graph_free(tiled);
    autosp_graph_free(chunked);
    return step;
}

autosp_graph_t *autosp_compile_training(const autosp_graph_t *forward,
                                        const autosp_parallel_config_t *cfg, autosp_error_t *err) {
    autosp_graph_t *step = compile_step(forward, cfg, err);
    if (step && cfg->backend && autosp_backend_check(cfg->backend, step, err) != AUTOSP_OK) {
        autosp_graph_free(step);
        return NULL;
    }
    return step;
}
