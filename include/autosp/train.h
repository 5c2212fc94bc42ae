/* autosp/train.h: training a forward graph in one process: autodiff, the executor, AdamW.
 *
 *     autosp_train_config_t cfg = autosp_train_config_default();
 *     cfg.lr = 3e-3f; cfg.total_steps = 1000;
 *     autosp_trainer_t *tr = autosp_trainer_new(forward, &cfg, &err);  // symbols bound
 *     autosp_trainer_init_params(tr, 1234);
 *     for (...) {
 *         int32_t *tokens = autosp_trainer_data(tr, "tokens"); ... fill tokens, labels, positions
 *         autosp_step_stats_t st;
 *         autosp_trainer_step(tr, &st, &err);   // forward, backward, clip, AdamW
 *     }
 *     autosp_trainer_free(tr);
 */
#ifndef AUTOSP_TRAIN_H
#define AUTOSP_TRAIN_H

#include "autosp/graph.h"
#include "autosp/passes.h"
#include "autosp/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct autosp_train_config {
    float lr;           /* peak learning rate */
    float min_lr_ratio; /* the cosine schedule decays to lr * min_lr_ratio */
    int warmup_steps;   /* linear warm-up from 0 */
    int total_steps;    /* length of the cosine schedule */
    float beta1, beta2, eps;
    float weight_decay; /* decoupled (AdamW); applied to matrices only, not to norms and biases */
    float grad_clip;    /* clip the global gradient norm to this; 0 disables */
    autosp_ac_config_t ac; /* activation checkpointing of the step (autosp/passes.h) */
    int zero_stage; /* 1 (ZeRO-1): each of the world's ranks keeps AdamW's m and v for 1/world
                     * of every parameter; gradients are reduce-scattered instead of all-reduced
                     * and the updated chunks all-gathered. The same results as 0 (summed in
                     * the same pairs at 2 ranks: bitwise). 2 (ZeRO-2): the gradients too: the
                     * step reduce-scatters each one as the backward finishes it (the grad_shard
                     * pass), so a rank keeps only its shard. 3 (ZeRO-3): the parameters too:
                     * each rank holds 1/world of each, gathered whole right before each node
                     * that reads it, in the forward and again in the backward (param_shard);
                     * autosp_trainer_data then gives the shard, autosp_trainer_param the whole.
                     * Ignored in one process. */
    /* The dtype ZeRO-0's gradient sum runs in (autosp_parallel_config_t.grad_reduce_dtype):
     * AUTOSP_F32 (the default, whatever the model's dtype) or AUTOSP_BF16 (half the bytes,
     * rounded partial sums; docs/runtime.md gives the error). */
    autosp_dtype_t grad_reduce_dtype;
    /* The lm head and its loss (autosp_parallel_config_t.loss_chunk): 0 (the default) in chunks
     * of the planner's size, N > 0 in chunks of N rows, AUTOSP_LOSS_UNCHUNKED apart. */
    int64_t loss_chunk;
    /* Llama's MLPs (autosp_parallel_config_t.mlp_tile): 0 (the default) tiled at the planner's
     * size under policy full, N > 0 in tiles of N rows, AUTOSP_MLP_UNTILED apart. */
    int64_t mlp_tile;
    /* The norms feeding projections (autosp_parallel_config_t.norm_tile): the same choices,
     * AUTOSP_NORM_UNTILED apart. */
    int64_t norm_tile;
    /* ZeRO-3's gathers (autosp_parallel_config_t.zero3_prefetch): 0 (the default) prefetched,
     * each issued right after the previous one completes; AUTOSP_PREFETCH_OFF blocking */
    int zero3_prefetch;
} autosp_train_config_t;

/* The defaults of the library and of autosp-train alike (docs/runtime.md#defaults): lr 3e-3
 * (for the bundled small models; models of 100M parameters and more want 3e-4 to 6e-4),
 * min_lr_ratio 0.1, warmup 10, total 100, betas (0.9, 0.95), eps 1e-8, weight decay 0.1, grad
 * clip 1.0, checkpointing autosp_ac_config_default(), ZeRO stage 0, the loss chunked */
autosp_train_config_t autosp_train_config_default(void);

/* The learning rate of step t (0-based) under cfg's warm-up and cosine schedule. */
float autosp_train_lr(const autosp_train_config_t *cfg, int step);

typedef struct autosp_trainer autosp_trainer_t;

/* forward: a forward graph whose first output is a scalar loss, every symbol bound. The
 * trainer builds the joint graph and the executor and keeps its own copies. */
autosp_trainer_t *autosp_trainer_new(const autosp_graph_t *forward,
                                     const autosp_train_config_t *cfg, autosp_error_t *err);
/* The same for one rank of a sequence- and data-parallel run (comm: autosp/comm.h; NULL is one
 * process). forward is the single-device graph with B bound to the per-rank batch and S to the
 * whole sequence; the trainer compiles it with autosp_compile_training for comm's sp and dp.
 * Every rank must make the same calls (the step is collective). comm must outlive tr. */
typedef struct autosp_comm autosp_comm_t;
autosp_trainer_t *autosp_trainer_new_comm(const autosp_graph_t *forward,
                                          const autosp_train_config_t *cfg,
                                          const autosp_comm_t *comm, autosp_error_t *err);
void autosp_trainer_free(autosp_trainer_t *tr);

/* Initialises every parameter from its graph init spec with a generator seeded by (seed, the
 * parameter's name): the same seed gives the same weights whatever the order of parameters or
 * the number of ranks. Resets the optimizer state. */
void autosp_trainer_init_params(autosp_trainer_t *tr, uint64_t seed);

/* The executor's arena: planned bytes, and the highest byte the runs so far wrote. The
 * optimizer state (2 floats per parameter, per owned element under ZeRO-1) is allocated beside
 * it: autosp_trainer_state_bytes. */
int64_t autosp_trainer_arena_bytes(const autosp_trainer_t *tr);
int64_t autosp_trainer_touched_bytes(const autosp_trainer_t *tr);
int64_t autosp_trainer_state_bytes(const autosp_trainer_t *tr);

/* A tensor of the joint graph (inputs, parameters, "loss", "<param>.grad"); see
 * autosp_executor_data. NULL for an unknown name. */
void *autosp_trainer_data(autosp_trainer_t *tr, const char *name);
/* Parameter `name`'s f32 weights, whole (its numel in the forward graph), into `whole` (the
 * caller's) on every rank: a bf16 parameter's master copy, gathered from every rank under ZeRO
 * (collective then: every rank calls it); an f32 one's value. Under ZeRO-3 autosp_trainer_data
 * gives this rank's shard only; this is the whole parameter. */
autosp_status_t autosp_trainer_param(autosp_trainer_t *tr, const char *name, float *whole,
                                     autosp_error_t *err);
/* Writes this rank's part of a whole-batch input: `global` holds the input for all ranks, its
 * dim 0 (the batch, unless dim 0 is the sequence) dp times the per-rank batch and its sequence
 * dim all S tokens, laid out as in the single-device graph. The caller shifts the labels over
 * the whole sequence and gives global positions; this only copies the slice. In one process
 * it is a plain copy. */
autosp_status_t autosp_trainer_feed(autosp_trainer_t *tr, const char *name, const void *global,
                                    autosp_error_t *err);
/* A value of the step gathered whole on every rank (see autosp_evaluator_gather): every
 * rank's slice of the batch and the sequence in its place. Collective. */
autosp_status_t autosp_trainer_gather(autosp_trainer_t *tr, const char *name, void *global,
                                      autosp_error_t *err);
/* Every parameter (graph order) to a safetensors weights file, metadata "format": "autosp"
 * (what autosp-train writes as model.safetensors; Hugging Face tools read it). Atomic; world
 * rank 0 writes and every rank returns the outcome. err may be NULL. */
autosp_status_t autosp_trainer_save_weights(const autosp_trainer_t *tr, const char *path,
                                            autosp_error_t *err);
/* The same with every parameter in `dtype`, AUTOSP_F32 or AUTOSP_BF16, whatever the graph's:
 * f32 of a bf16 parameter is its f32 master copy (under ZeRO-1 gathered from every rank, so
 * every rank must call it), bf16 of an f32 parameter is its value rounded to nearest even.
 * A bf16 graph's own save writes its working copies, which are its masters rounded. */
autosp_status_t autosp_trainer_save_weights_as(const autosp_trainer_t *tr, const char *path,
                                               autosp_dtype_t dtype, autosp_error_t *err);
/* Every parameter from a weights file (model.safetensors, or a checkpoint's parameters),
 * names, shapes and dtypes checked, every missing or extra tensor named; the optimizer state
 * and step count are left as they are. err may be NULL. */
autosp_status_t autosp_trainer_load_weights(autosp_trainer_t *tr, const char *path,
                                            autosp_error_t *err);
/* Seconds inside collectives (the graph's and ZeRO-1's) over all steps so far (0 in one
 * process). */
double autosp_trainer_comm_seconds(const autosp_trainer_t *tr);
/* Of those, waiting for a peer that had not sent yet (autosp_executor_late_peer_seconds). */
double autosp_trainer_late_peer_seconds(const autosp_trainer_t *tr);
/* The process groups tr runs over: the comm it was made with, or its own comm of one process.
 * Owned by the caller that made it, or by tr. */
const autosp_comm_t *autosp_trainer_comm(const autosp_trainer_t *tr);
/* The joint graph (owned by the trainer). */
const autosp_graph_t *autosp_trainer_graph(const autosp_trainer_t *tr);

/* While on, each autosp_trainer_step adds its wall time and its run's per-node times to the
 * totals (autosp_trainer_compute alone, as in an eval, is not profiled). Off by default;
 * turning it off pauses. The time a step spends outside the graph (the gradient norm,
 * clipping, AdamW, ZeRO-1's collectives) is step_seconds minus the ops' seconds. */
void autosp_trainer_set_profiling(autosp_trainer_t *tr, bool on);
/* The totals so far; out is the caller's. */
void autosp_trainer_profile(const autosp_trainer_t *tr, autosp_profile_t *out);

/* ---- checkpoints ----
 * One safetensors file with everything a run needs to continue: every parameter under its
 * name, AdamW's state as "<param>.adam_m" and "<param>.adam_v" (all f32, whole tensors: the
 * same on every rank, so a checkpoint resumes at any sp and dp), and metadata "format":
 * "autosp-checkpoint", "step" (steps taken) plus the caller's entries (at most 14), e.g. the
 * data position. Written atomically (temporary file, fsync, rename): a crash during the save
 * leaves the previous file whole. In one process it just writes; a trainer made with a comm
 * needs every rank to call it (ZeRO-1 gathers m and v to rank 0 first): world rank 0 writes and
 * every rank returns its outcome. */
autosp_status_t autosp_trainer_save(const autosp_trainer_t *tr, const char *path,
                                    const char *const *meta_keys, const char *const *meta_values,
                                    int n_meta, autosp_error_t *err);
/* Restores parameters, AdamW state (under ZeRO-1, this rank's chunks) and the step count from
 * a file of autosp_trainer_save, read by every rank that calls it;
 * every parameter of the graph must be in it with its element count (the error names the
 * tensor). The caller reads its own metadata with autosp_safetensors_open. */
autosp_status_t autosp_trainer_load(autosp_trainer_t *tr, const char *path, autosp_error_t *err);
/* Optimizer steps taken (the next step's index). */
int autosp_trainer_steps_taken(const autosp_trainer_t *tr);

typedef struct autosp_step_stats {
    int step;        /* 0-based index of the step just taken */
    float loss;      /* before the update */
    float grad_norm; /* global L2 norm before clipping */
    float lr;        /* used for this step */
    double flops;    /* the model's FLOPs in one run of the step (op-table count; nodes
                      * that checkpointing recomputes count once) */
} autosp_step_stats_t;

/* Forward and backward only: loss and gradients, no update. Under ZeRO-1 each rank's
 * "<param>.grad" holds the summed gradient only in the chunk it owns; under ZeRO-2 the chunk is
 * the executor's "<param>.grad_shard" (ceil(n / world) elements, the owned ones first). */
autosp_status_t autosp_trainer_compute(autosp_trainer_t *tr, float *loss, autosp_error_t *err);
/* One training step: compute, clip the global gradient norm, AdamW update. */
autosp_status_t autosp_trainer_step(autosp_trainer_t *tr, autosp_step_stats_t *stats,
                                    autosp_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
