/* autosp/hf.h: Hugging Face checkpoints in and out.
 *
 * A checkpoint directory holds config.json and the weights: model.safetensors, or shards named
 * by model.safetensors.index.json ("weight_map": tensor -> file). Supported architectures:
 * LlamaForCausalLM (Llama 2 and 3, rope_scaling "linear" and "llama3", attention_bias),
 * MistralForCausalLM (without a sliding window: "sliding_window" null) and Qwen2ForCausalLM
 * (q/k/v biases; without sliding windows). A config key that would change the model's maths
 * and that the importer does not implement is an error naming the key; so is any key it does
 * not know at all. Tensors keep their bytes: an import in the checkpoint's dtype followed by an
 * export writes every tensor bit for bit as it was.
 *
 *     autosp_model_config_t cfg;
 *     autosp_hf_read_config("Llama-3.2-1B", &cfg, &err);
 *     autosp_graph_t *g = autosp_model_build(&cfg, NULL, &err);
 *     autosp_hf_import_weights("Llama-3.2-1B", &cfg, "model.safetensors", &err);
 *     ... autosp-train --model g.json --init model.safetensors --save run ...
 *     autosp_hf_export("Llama-3.2-1B", "run/model.safetensors", "out", 0, &err);
 */
#ifndef AUTOSP_HF_H
#define AUTOSP_HF_H

#include <stdint.h>

#include "autosp/models.h"
#include "autosp/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The model config of a checkpoint: path is its directory or its config.json. The dtype is
 * the config's "torch_dtype" (float32 or bfloat16; float32 when absent). err may be NULL. */
autosp_status_t autosp_hf_read_config(const char *path, autosp_model_config_t *cfg,
                                      autosp_error_t *err);

/* The checkpoint's weights under the names of autosp_model_build(cfg)'s parameters, in cfg's
 * dtype (a bf16 tensor widened into f32 exactly, an f32 one rounded into bf16), written to
 * out_path (safetensors, atomically). cfg is normally autosp_hf_read_config's. Every parameter
 * must be there with its shape; a missing, extra or mis-shaped tensor is an error naming it
 * (expected vs found shape). */
autosp_status_t autosp_hf_import_weights(const char *dir, const autosp_model_config_t *cfg,
                                         const char *out_path, autosp_error_t *err);

/* The reverse: the parameters in weights_path (autosp-train's model.safetensors, or an
 * import's) written to out_dir in the checkpoint's names and each tensor's own dtype, next to
 * config_path's config.json copied byte for byte. shard_bytes > 0 splits the tensors into
 * model-00001-of-0000N.safetensors files of at most that many bytes each (a tensor larger than
 * that alone in its file) with model.safetensors.index.json, as save_pretrained does; 0 writes
 * one model.safetensors. out_dir is created if missing; each file is written atomically. */
autosp_status_t autosp_hf_export(const char *config_path, const char *weights_path,
                                 const char *out_dir, int64_t shard_bytes, autosp_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
