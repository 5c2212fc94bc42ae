/* parallelize.c: the SP passes in their order (see autosp/passes.h). */
#include "autosp/backend.h"
#include "autosp/passes.h"
#include "base/base.h"
#include "parallelize.h"

autosp_parallel_config_t autosp_parallel_config_default(void) {
    return (autosp_parallel_config_t){
        .sp = 1, .dp = 1, .bucket_bytes = 25 << 20, .ac = autosp_ac_config_default()};
}

int64_t parallel_seq_multiple(const autosp_parallel_config_t *cfg) {
    int64_t sp = cfg->sp > 1 ? cfg->sp : 1, zigzag = cfg->ring > 1 ? 2 * cfg->ring : 1;
    return sp / gcd64(sp, zigzag) * zigzag;
}

autosp_graph_t *autosp_parallelize(const autosp_graph_t *forward,
                                   const autosp_parallel_config_t *cfg, autosp_error_t *err) {
    autosp_graph_t *padded =
        cfg->sp > 1 ? autosp_pad_sequence(forward, parallel_seq_multiple(cfg), err) : NULL;
    if (cfg->sp > 1 && !padded) return NULL;
    if (padded && autosp_graph_padded_from(padded) && autosp_graph_padded_from(padded) < cfg->sp) {
        set_error(err, AUTOSP_ERR_INVALID,
                  "sp = %d is more than the %lld tokens of the sequence: every sequence rank "
                  "needs one at least (use an sp of %lld or less)",
                  cfg->sp, (long long)autosp_graph_padded_from(padded),
                  (long long)autosp_graph_padded_from(padded));
        autosp_graph_free(padded);
        return NULL;
    }
    autosp_graph_t *sharded = autosp_sp_shard(padded ? padded : forward, cfg->sp, err);
    autosp_graph_free(padded);
    autosp_graph_t *exchanged =
        sharded ? autosp_ulysses_ring(sharded, cfg->ring > 1 ? cfg->ring : 1, err) : NULL;
    autosp_graph_t *exact = exchanged ? autosp_exact_loss(exchanged, cfg->dp, err) : NULL;
    autosp_graph_free(sharded);
    autosp_graph_free(exchanged);
    return exact;
}

/* A tile knob (mlp_tile, norm_tile): N > 0 always, planned (0) under policy full, -1 never. */
static bool tiles(const autosp_parallel_config_t *cfg, int64_t tile) {
    return tile > 0 || (tile == 0 && cfg->ac.policy == AUTOSP_AC_FULL);
}

/* The tile a knob gives its pass, or -1 (both AUTOSP_*_UNTILED) where it runs no pass. */
static int64_t tile_in_effect(const autosp_parallel_config_t *cfg, int64_t tile) {
    return tiles(cfg, tile) ? tile : -1;
}

/* *owned (a graph made here, or NULL) replaced by next, a pass's output from it. */
static const autosp_graph_t *advance(autosp_graph_t **owned, autosp_graph_t *next) {
    autosp_graph_free(*owned);
    return *owned = next;
}

/* The loss chunked and the MLPs tiled (or not) first: the passes after them see one op each,
 * which has a sharding rule (and an exact loss like cross_entropy's). ZeRO-3's param_shard
 * comes before autodiff, whose gradients then come out as shards, summed. A world of one rank
 * has nothing to split or to sum. */
autosp_graph_t *compile_joint(const autosp_graph_t *forward, const autosp_parallel_config_t *cfg,
                              autosp_error_t *err) {
    bool split = cfg->sp * cfg->dp > 1;
    autosp_graph_t *owned = NULL;
    const autosp_graph_t *g = forward;
    if (cfg->loss_chunk != AUTOSP_LOSS_UNCHUNKED)
        g = advance(&owned, autosp_chunked_loss(g, cfg->loss_chunk, err));
    if (g && tiles(cfg, cfg->mlp_tile))
        g = advance(&owned, autosp_tiled_mlp(g, cfg->mlp_tile, err));
    if (g && tiles(cfg, cfg->norm_tile))
        g = advance(&owned, autosp_tiled_norm(g, cfg->norm_tile, err));
    if (g && split) g = advance(&owned, autosp_parallelize(g, cfg, err));
    if (g && split && cfg->zero_stage == 3)
        g = advance(&owned,
                    autosp_param_shard_as(g, cfg->zero3_prefetch != AUTOSP_PREFETCH_OFF, err));
    autosp_graph_t *joint = g ? autosp_autodiff(g, err) : NULL;
    autosp_graph_free(owned);
    return joint;
}

bool compile_joint_same(const autosp_parallel_config_t *a, const autosp_parallel_config_t *b) {
    bool split = a->sp * a->dp > 1, zero3 = split && a->zero_stage == 3;
    return a->sp == b->sp && a->dp == b->dp &&
           (a->ring > 1 ? a->ring : 1) == (b->ring > 1 ? b->ring : 1) &&
           a->loss_chunk == b->loss_chunk &&
           tile_in_effect(a, a->mlp_tile) == tile_in_effect(b, b->mlp_tile) &&
           tile_in_effect(a, a->norm_tile) == tile_in_effect(b, b->norm_tile) &&
           (!split || (a->zero_stage == 3) == (b->zero_stage == 3)) &&
           (!zero3 || (a->zero3_prefetch == AUTOSP_PREFETCH_OFF) ==
                          (b->zero3_prefetch == AUTOSP_PREFETCH_OFF));
}

/* The gradient passes of the ZeRO stage: ZeRO-1 and ZeRO-3 add none (the optimizer sums, or
 * param_shard did), ZeRO-2 keeps the shards of the sums, ZeRO-0 all-reduces. */
static autosp_graph_t *sync_gradients(autosp_graph_t *checkpointed,
                                      const autosp_parallel_config_t *cfg, autosp_error_t *err) {
    if (cfg->sp * cfg->dp == 1 || cfg->zero_stage == 1 || cfg->zero_stage == 3) return checkpointed;
    autosp_graph_t *synced =
        cfg->zero_stage == 2
            ? autosp_grad_shard(checkpointed, err)
            : autosp_grad_sync_as(checkpointed, cfg->bucket_bytes, cfg->grad_reduce_dtype, err);
    autosp_graph_free(checkpointed);
    return synced;
}

autosp_graph_t *compile_finish(const autosp_graph_t *joint, const autosp_parallel_config_t *cfg,
                               autosp_error_t *err) {
    autosp_graph_t *checkpointed = autosp_checkpoint(joint, &cfg->ac, err);
    autosp_graph_t *step = checkpointed ? sync_gradients(checkpointed, cfg, err) : NULL;
    if (step && cfg->backend && autosp_backend_check(cfg->backend, step, err) != AUTOSP_OK) {
        autosp_graph_free(step);
        return NULL;
    }
    return step;
}

autosp_graph_t *autosp_compile_training(const autosp_graph_t *forward,
                                        const autosp_parallel_config_t *cfg, autosp_error_t *err) {
    autosp_graph_t *joint = compile_joint(forward, cfg, err);
    autosp_graph_t *step = joint ? compile_finish(joint, cfg, err) : NULL;
    autosp_graph_free(joint);
    return step;
}
