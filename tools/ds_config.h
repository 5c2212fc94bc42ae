/* ds_config.h: reads a DeepSpeed JSON config for `autosp-train --config ds_config.json`, so
 * users coming from DeepSpeed can keep their file. The result is plain data: the caller applies
 * it first and lets command-line flags override it. Keys that would change what is trained
 * (ZeRO-2/3, gradient accumulation, another optimizer or schedule) are errors; keys that only
 * tune DeepSpeed's own runtime (buckets, loss scaling, ...) are warned about and ignored. */
#ifndef AUTOSP_DS_CONFIG_H
#define AUTOSP_DS_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

/* clang-format off: one line per setting reads as a table */
typedef struct ds_config {
    /* has_X: the file set X (a value "auto", as HF Accelerate writes, counts as not set) */
    bool has_micro_batch;
    int64_t micro_batch; /* train_micro_batch_size_per_gpu */
    /* train_batch_size: the caller checks it against micro_batch x dp */
    bool has_train_batch;
    int64_t train_batch;
    bool has_sp;
    int64_t sp; /* sequence_parallel_size */
    bool has_zero;
    int64_t zero_stage; /* zero_optimization.stage: 0 or 1 */
    bool has_grad_clip;
    double grad_clip; /* gradient_clipping */
    bool has_lr;
    double lr; /* optimizer.params.lr; warmup_max_lr wins */
    bool has_betas;
    double beta1, beta2; /* optimizer.params.betas [b1, b2] */
    bool has_eps;
    double eps;
    bool has_weight_decay;
    double weight_decay;
    bool has_warmup;
    int64_t warmup_steps; /* scheduler.params.warmup_num_steps */
    bool has_total_steps;
    int64_t total_steps; /* scheduler.params.total_num_steps */
    /* the cosine's floor, lr x min_lr_ratio: WarmupCosineLR's cos_min_ratio (DeepSpeed's default
     * 0.0001 when absent); WarmupLR: 1 (constant after warm-up); WarmupDecayLR: 0 */
    bool has_min_lr_ratio;
    double min_lr_ratio;
    bool has_log_every;
    int64_t log_every; /* steps_per_print */
    bool autosp_pass;  /* compile.passes contains "autosp" */
    /* bf16.enabled (or bfloat16.enabled): the model's dtype decides what runs, so the caller
     * compares it with the graph's and warns when they differ */
    bool has_bf16, bf16;
    /* communication_data_type: the dtype gradients are summed in, "fp32" or "bf16" */
    bool has_comm_bf16, comm_bf16;
} ds_config_t;
/* clang-format on */

/* Reads a DeepSpeed config. 0 on success (warnings, if any, printed to stderr as
 * "<prog>: warning: <path>: <key>: ..."), or 2 after printing "<prog>: <path>: <key>: ..." for
 * an error (via cli_usage_error from tools/cli.h). */
int ds_config_load(const char *prog, const char *path, ds_config_t *out);

#endif
