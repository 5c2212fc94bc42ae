/* autosp/models.h: forward graphs of Llama- and GPT-2-family transformers.
 *
 * The graphs take tokens, labels (already shifted: labels[i] is the token after tokens[i],
 * or -100 to ignore that position), positions and, optionally, segment ids, all (B,S) int32
 * with the sequence on dim 1, and return one scalar: the mean cross-entropy loss over the
 * labels that are not ignored. B and S are symbols: B is bound to 1 (rebind it), S is free.
 */
#ifndef AUTOSP_MODELS_H
#define AUTOSP_MODELS_H

#include "autosp/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum autosp_family {
    AUTOSP_FAMILY_LLAMA, /* rmsnorm, rope, GQA, swiglu MLP, no biases */
    AUTOSP_FAMILY_GPT2,  /* layernorm, learned positions, gelu MLP, biases */
} autosp_family_t;

typedef struct autosp_model_config {
    autosp_family_t family;
    int n_layers;
    int dim;           /* C */
    int n_heads;       /* Hq */
    int n_kv_heads;    /* Hkv; equal to n_heads for MHA (GPT-2 always) */
    int ffn_dim;       /* hidden size of the MLP */
    int vocab_size;    /* V */
    int max_seq_len;   /* GPT-2: rows of the learned position table; Llama: not in the graph */
    double rope_theta; /* Llama only */
    double norm_eps;
    bool tied_embeddings; /* the output projection reuses the token embedding */
    bool segment_ids;     /* add a segment-ids input: attention stays inside a document */
    autosp_dtype_t dtype; /* of parameters and activations (f32 is what the runtime executes) */
    int head_dim;         /* D; 0: dim / n_heads (Llama family: may differ, as in Qwen2) */
    autosp_rope_scaling_t rope_scaling; /* Llama only; type NULL or "none": plain rope */
    bool qkv_bias;                      /* Llama family: biases on q, k, v (Qwen2) */
    bool out_bias;                      /* Llama family: on the attention output too */
} autosp_model_config_t;

/* The head dim cfg builds: head_dim, or dim / n_heads when that is 0. */
int autosp_model_head_dim(const autosp_model_config_t *cfg);

/* Fills cfg with a named preset ("llama-tiny", "llama3.1-8b", ...); false if unknown. */
bool autosp_model_preset(const char *name, autosp_model_config_t *cfg);
/* Preset names, NULL-terminated. */
const char *const *autosp_model_preset_names(void);

/* Checks the config (positive sizes, heads divide dim, kv heads divide heads, ...). */
autosp_status_t autosp_model_config_check(const autosp_model_config_t *cfg, autosp_error_t *err);

/* Builds the forward graph. Returns a new graph (free with autosp_graph_free) or NULL with err
 * filled in. */
autosp_graph_t *autosp_model_build(const autosp_model_config_t *cfg, const char *name,
                                   autosp_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
