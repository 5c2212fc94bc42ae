/* models.c: Llama- and GPT-2-family forward graphs, built with the public builder API only.
 *
 * One graph per config: inputs tokens, labels, positions (and segment ids), all (B,S) i32; the
 * embedding; n_layers pre-norm blocks x += attn(norm(x)); x += mlp(norm(x)); a final norm, the
 * logits (B,S,V) and the mean cross-entropy loss. The two families share every helper and
 * differ only where the architectures do: the norm, rope vs learned positions, biases and the
 * MLP. Builder errors are sticky, so the code is straight-line and checked once at the end. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "autosp/models.h"
#include "base/base.h"

#define INIT_STD     0.02 /* weights and token embeddings (GPT-2, Llama) */
#define POS_INIT_STD 0.01 /* GPT-2's learned position embeddings */
#define IGNORE_INDEX -100 /* labels that do not count in the loss */

/* ---- presets ---------------------------------------------------------------------------- */

enum {
    P_LLAMA_TINY,
    P_LLAMA_TINY_GQA,
    P_LLAMA_SMALL,
    P_GPT2_TINY,
    P_LLAMA32_1B,
    P_LLAMA31_8B,
    P_LLAMA31_70B,
    P_GPT2_124M,
    P_COUNT
};

static const char *const preset_names[P_COUNT + 1] = {
    [P_LLAMA_TINY] = "llama-tiny",
    [P_LLAMA_TINY_GQA] = "llama-tiny-gqa",
    [P_LLAMA_SMALL] = "llama-small",
    [P_GPT2_TINY] = "gpt2-tiny",
    [P_LLAMA32_1B] = "llama3.2-1b",
    [P_LLAMA31_8B] = "llama3.1-8b",
    [P_LLAMA31_70B] = "llama3.1-70b",
    [P_GPT2_124M] = "gpt2-124m",
    [P_COUNT] = NULL,
};

/* Every preset: norm_eps 1e-5, no segment ids. */
#define PRESET(family_, layers, dim_, heads, kv_heads, ffn, vocab, max_seq, theta, tied, dt)       \
    {                                                                                              \
        .family = AUTOSP_FAMILY_##family_, .n_layers = layers, .dim = dim_, .n_heads = heads,      \
        .n_kv_heads = kv_heads, .ffn_dim = ffn, .vocab_size = vocab, .max_seq_len = max_seq,       \
        .rope_theta = theta, .norm_eps = 1e-5, .tied_embeddings = tied, .dtype = AUTOSP_##dt       \
    }

/* The tiny and small models use a byte-level vocabulary (256) and f32, to run on the CPU. The
 * Llama 3.x and GPT-2 sizes are the published ones; the Llama 3.x presets are bf16, as they are
 * trained (they exist to plan GPU runs: autosp-compile --max-seq), GPT-2 124M f32 (the CPU
 * benchmark trains it). Llama 3.1 and 3.2 scale rope's frequencies as published
 * (preset_rope_scaling). GPT-2 has no rope (theta 0, unused). */
/* clang-format off */
static const autosp_model_config_t presets[P_COUNT] = {
    /*                          family  L     C   H Hkv    ffn       V  max_seq theta tied   dtype */
    [P_LLAMA_TINY]     = PRESET(LLAMA,  2,   64,  4,  4,   192,    256,    4096, 1e4, false, F32),
    [P_LLAMA_TINY_GQA] = PRESET(LLAMA,  2,   64,  4,  2,   192,    256,    4096, 1e4, false, F32),
    [P_LLAMA_SMALL]    = PRESET(LLAMA,  8,  256,  8,  4,   768,    256,   65536, 1e4, false, F32),
    [P_GPT2_TINY]      = PRESET(GPT2,   2,   64,  4,  4,   256,    256,    2048, 0,   true, F32),
    [P_LLAMA32_1B]     = PRESET(LLAMA, 16, 2048, 32,  8,  8192, 128256, 131072, 5e5, true, BF16),
    [P_LLAMA31_8B]     = PRESET(LLAMA, 32, 4096, 32,  8, 14336, 128256, 131072, 5e5, false, BF16),
    [P_LLAMA31_70B]    = PRESET(LLAMA, 80, 8192, 64,  8, 28672, 128256, 131072, 5e5, false, BF16),
    [P_GPT2_124M]      = PRESET(GPT2,  12,  768, 12, 12,  3072,  50257,    1024, 0,   true, F32),
};
/* clang-format on */

/* Llama 3.1's and 3.2's rope_scaling (their config.json): llama3, from 8192 positions */
static const autosp_rope_scaling_t preset_rope_scaling[P_COUNT] = {
    [P_LLAMA32_1B] = {"llama3", 32.0, 1.0, 4.0, 8192},
    [P_LLAMA31_8B] = {"llama3", 8.0, 1.0, 4.0, 8192},
    [P_LLAMA31_70B] = {"llama3", 8.0, 1.0, 4.0, 8192},
};

bool autosp_model_preset(const char *name, autosp_model_config_t *cfg) {
    for (int i = 0; name && i < P_COUNT; i++)
        if (strcmp(preset_names[i], name) == 0) {
            *cfg = presets[i];
            cfg->rope_scaling = preset_rope_scaling[i];
            return true;
        }
    return false;
}

const char *const *autosp_model_preset_names(void) {
    return preset_names;
}

/* ---- config check ----------------------------------------------------------------------- */

int autosp_model_head_dim(const autosp_model_config_t *c) {
    return c->head_dim ? c->head_dim : c->dim / (c->n_heads > 0 ? c->n_heads : 1);
}

static autosp_status_t config_error(autosp_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Writes "model config: <message>" into err (may be NULL); returns AUTOSP_ERR_INVALID. */
static autosp_status_t config_error(autosp_error_t *err, const char *fmt, ...) {
    char msg[AUTOSP_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return set_error(err, AUTOSP_ERR_INVALID, "model config: %s", msg);
}

/* Every size in a range. The limits keep any one parameter (at most 2^24 x 2^20 elements) far
 * below AUTOSP_MAX_NUMEL. max_seq_len may be 0 here (Llama: unknown); GPT-2 checks it again. */
static autosp_status_t check_sizes(const autosp_model_config_t *c, autosp_error_t *err) {
    const struct {
        const char *name;
        int value, lo, hi;
    } sizes[] = {
        {"n_layers", c->n_layers, 1, 1000},          {"dim", c->dim, 1, 1 << 20},
        {"n_heads", c->n_heads, 1, 1 << 20},         {"n_kv_heads", c->n_kv_heads, 1, 1 << 20},
        {"ffn_dim", c->ffn_dim, 1, 1 << 20},         {"vocab_size", c->vocab_size, 1, 1 << 24},
        {"max_seq_len", c->max_seq_len, 0, 1 << 24}, {"head_dim", c->head_dim, 0, 1 << 16},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (sizes[i].value < sizes[i].lo || sizes[i].value > sizes[i].hi)
            return config_error(err, "%s=%d, expected %d..%d", sizes[i].name, sizes[i].value,
                                sizes[i].lo, sizes[i].hi);
    return AUTOSP_OK;
}

/* How the sizes fit together, and what each family needs besides. */
static autosp_status_t check_structure(const autosp_model_config_t *c, autosp_error_t *err) {
    if (!c->head_dim && c->dim % c->n_heads)
        return config_error(err, "dim=%d is not a multiple of n_heads=%d", c->dim, c->n_heads);
    if (c->n_heads % c->n_kv_heads)
        return config_error(err, "n_heads=%d is not a multiple of n_kv_heads=%d", c->n_heads,
                            c->n_kv_heads);
    if (c->family == AUTOSP_FAMILY_GPT2) {
        if (c->head_dim && c->head_dim * c->n_heads != c->dim)
            return config_error(err, "gpt2 has head_dim=%d, expected dim/n_heads=%d or 0",
                                c->head_dim, c->dim / c->n_heads);
        if (c->qkv_bias || c->out_bias ||
            (c->rope_scaling.type && strcmp(c->rope_scaling.type, "none")))
            return config_error(err, "gpt2 takes no qkv_bias, out_bias or rope_scaling (its "
                                     "projections always have biases, and it has no rope)");
        if (c->n_kv_heads != c->n_heads)
            return config_error(err,
                                "gpt2 has n_kv_heads=%d, expected n_kv_heads=n_heads=%d "
                                "(GPT-2 has no grouped-query attention)",
                                c->n_kv_heads, c->n_heads);
        if (c->max_seq_len == 0)
            return config_error(err, "gpt2 has max_seq_len=0, expected > 0 (the rows of its "
                                     "learned position table)");
        return AUTOSP_OK;
    }
    if (autosp_model_head_dim(c) % 2)
        return config_error(err,
                            "head dim %d is odd, expected even (rope rotates pairs of channels)",
                            autosp_model_head_dim(c));
    if (!(c->rope_theta > 1 && isfinite(c->rope_theta)))
        return config_error(err, "rope_theta=%g, expected a finite number > 1", c->rope_theta);
    return AUTOSP_OK;
}

autosp_status_t autosp_model_config_check(const autosp_model_config_t *c, autosp_error_t *err) {
    autosp_status_t st;
    if (!c) return config_error(err, "none given (NULL)");
    if (c->family != AUTOSP_FAMILY_LLAMA && c->family != AUTOSP_FAMILY_GPT2)
        return config_error(err, "family=%d, expected %d (llama) or %d (gpt2)", (int)c->family,
                            AUTOSP_FAMILY_LLAMA, AUTOSP_FAMILY_GPT2);
    if ((st = check_sizes(c, err)) || (st = check_structure(c, err))) return st;
    if (!(c->norm_eps > 0 && c->norm_eps < 1))
        return config_error(err, "norm_eps=%g, expected 0 < norm_eps < 1", c->norm_eps);
    if (c->dtype != AUTOSP_F32 && c->dtype != AUTOSP_BF16 && c->dtype != AUTOSP_F16)
        return config_error(err, "dtype=%s, expected a float dtype (f32, bf16 or f16)",
                            autosp_dtype_name(c->dtype));
    if (err) *err = (autosp_error_t){.status = AUTOSP_OK};
    return AUTOSP_OK;
}

/* ---- builder helpers -------------------------------------------------------------------- */

typedef struct builder {
    autosp_graph_t *g;
    const autosp_model_config_t *cfg;
    autosp_tensor_t tokens, labels, positions, segment_ids; /* segment_ids may be none */
    int layer;     /* inside block i names get the prefix "blk<i>."; -1 outside the blocks */
    char name[64]; /* the last name made by at() */
} builder_t;

static void layer_name(const builder_t *b, const char *suffix, char *buf, size_t n) {
    if (b->layer < 0)
        snprintf(buf, n, "%s", suffix);
    else
        snprintf(buf, n, "blk%d.%s", b->layer, suffix);
}

/* The name of a node: suffix, prefixed inside a block. It lives in b->name until the next
 * at(), so use at most one at() per expression (the graph copies names when it adds a node). */
static const char *at(builder_t *b, const char *suffix) {
    layer_name(b, suffix, b->name, sizeof b->name);
    return b->name;
}

/* A parameter of cfg->dtype: shape (rows,cols), or (rows) when cols is 0. */
static autosp_tensor_t param(builder_t *b, const char *suffix, int rows, int cols,
                             autosp_init_t init, double std) {
    char name[64], shape[32];
    layer_name(b, suffix, name, sizeof name);
    if (cols)
        snprintf(shape, sizeof shape, "%d,%d", rows, cols);
    else
        snprintf(shape, sizeof shape, "%d", rows);
    return autosp_param(b->g, name, b->cfg->dtype, shape, init, std);
}

/* GPT-2 convention: the two projections per layer that write into the residual stream (the
 * attention output and the MLP down projection) start at std 0.02/sqrt(2*n_layers), so the
 * residual's variance does not grow with depth. */
static double out_std(const autosp_model_config_t *c) {
    return INIT_STD / sqrt(2.0 * c->n_layers);
}

/* x (...,cols) @ w^T (+ bias) -> out (...,rows); weight w (rows,cols) ~ N(0,std^2), bias
 * (rows) zeros when bias is not NULL. */
static autosp_tensor_t dense(builder_t *b, autosp_tensor_t x, const char *w, const char *bias,
                             int rows, int cols, double std, const char *out) {
    autosp_tensor_t wt = param(b, w, rows, cols, AUTOSP_INIT_NORMAL, std);
    autosp_tensor_t bt = bias ? param(b, bias, rows, 0, AUTOSP_INIT_ZEROS, 0) : AUTOSP_NO_TENSOR;
    return autosp_linear(b->g, x, wt, bt, at(b, out));
}

/* x (B,S,C) -> out (B,S,C). Llama: rmsnorm with weight w (ones). GPT-2: layernorm with weight
 * w.w (ones) and bias w.b (zeros). */
static autosp_tensor_t norm(builder_t *b, autosp_tensor_t x, const char *w, const char *out) {
    const autosp_model_config_t *c = b->cfg;
    if (c->family == AUTOSP_FAMILY_LLAMA) {
        autosp_tensor_t wt = param(b, w, c->dim, 0, AUTOSP_INIT_ONES, 0);
        return autosp_rmsnorm(b->g, x, wt, c->norm_eps, at(b, out));
    }
    char wn[32], bn[32];
    snprintf(wn, sizeof wn, "%s.w", w);
    snprintf(bn, sizeof bn, "%s.b", w);
    autosp_tensor_t wt = param(b, wn, c->dim, 0, AUTOSP_INIT_ONES, 0);
    autosp_tensor_t bt = param(b, bn, c->dim, 0, AUTOSP_INIT_ZEROS, 0);
    return autosp_layernorm(b->g, x, wt, bt, c->norm_eps, at(b, out));
}

/* ---- the model -------------------------------------------------------------------------- */

static void add_inputs(builder_t *b) {
    autosp_graph_t *g = b->g;
    autosp_symbol(g, "B", 1); /* the micro-batch per rank: rebind with --set B=N */
    autosp_symbol(g, "S", 0);
    b->tokens = autosp_input(g, "tokens", AUTOSP_I32, "B,S", AUTOSP_ROLE_TOKENS, 1);
    b->labels = autosp_input(g, "labels", AUTOSP_I32, "B,S", AUTOSP_ROLE_LABELS, 1);
    b->positions = autosp_input(g, "positions", AUTOSP_I32, "B,S", AUTOSP_ROLE_POSITIONS, 1);
    b->segment_ids = b->cfg->segment_ids ? autosp_input(g, "segment_ids", AUTOSP_I32, "B,S",
                                                        AUTOSP_ROLE_SEGMENT_IDS, 1)
                                         : AUTOSP_NO_TENSOR;
}

/* tokens (B,S) -> x (B,S,C); *table is the token embedding (V,C), which a tied head reuses.
 * GPT-2 adds a learned position embedding (max_seq_len,C) looked up at positions. */
static autosp_tensor_t embed(builder_t *b, autosp_tensor_t *table) {
    const autosp_model_config_t *c = b->cfg;
    if (c->family == AUTOSP_FAMILY_LLAMA) {
        *table = param(b, "tok_emb", c->vocab_size, c->dim, AUTOSP_INIT_NORMAL, INIT_STD);
        return autosp_embedding(b->g, b->tokens, *table, "x_emb");
    }
    *table = param(b, "wte", c->vocab_size, c->dim, AUTOSP_INIT_NORMAL, INIT_STD);
    autosp_tensor_t wpe = param(b, "wpe", c->max_seq_len, c->dim, AUTOSP_INIT_NORMAL, POS_INIT_STD);
    autosp_tensor_t tok = autosp_embedding(b->g, b->tokens, *table, "tok_emb_out");
    autosp_tensor_t pos = autosp_embedding(b->g, b->positions, wpe, "pos_emb_out");
    return autosp_add(b->g, tok, pos, "x_emb");
}

/* h (B,S,C) -> (B,S,n,D) for which = "q", "k" or "v": weight w<which> (n*D,C), GPT-2's bias
 * b<which>, then on Llama's q and k rope at positions. */
static autosp_tensor_t project_heads(builder_t *b, autosp_tensor_t h, const char *which, int n) {
    const autosp_model_config_t *c = b->cfg;
    bool llama = c->family == AUTOSP_FAMILY_LLAMA;
    int d = autosp_model_head_dim(c);
    char w[8], bias[8], out[16], shape[48];
    snprintf(w, sizeof w, "w%s", which);
    snprintf(bias, sizeof bias, "b%s", which);
    autosp_tensor_t x =
        dense(b, h, w, llama && !c->qkv_bias ? NULL : bias, n * d, c->dim, INIT_STD, which);
    snprintf(out, sizeof out, "%s_heads", which);
    snprintf(shape, sizeof shape, "B,S,%d,%d", n, d);
    x = autosp_reshape(b->g, x, shape, at(b, out));
    if (!llama || strcmp(which, "v") == 0) return x;
    snprintf(out, sizeof out, "%s_rope", which);
    return autosp_rope_scaled(b->g, x, b->positions, c->rope_theta, &c->rope_scaling, at(b, out));
}

/* h (B,S,C) -> causal attention (B,S,Hq,D) -> output projection (B,S,C) */
static autosp_tensor_t attention_block(builder_t *b, autosp_tensor_t h) {
    const autosp_model_config_t *c = b->cfg;
    bool gpt2 = c->family == AUTOSP_FAMILY_GPT2;
    char shape[32];
    autosp_tensor_t q = project_heads(b, h, "q", c->n_heads);
    autosp_tensor_t k = project_heads(b, h, "k", c->n_kv_heads);
    autosp_tensor_t v = project_heads(b, h, "v", c->n_kv_heads);
    autosp_tensor_t a = autosp_attention(b->g, q, k, v, b->segment_ids, c->n_heads, c->n_kv_heads,
                                         true, 0.0, at(b, "attn"));
    const int inner = c->n_heads * autosp_model_head_dim(c);
    snprintf(shape, sizeof shape, "B,S,%d", inner);
    a = autosp_reshape(b->g, a, shape, at(b, "attn_out"));
    return dense(b, a, "wo", gpt2 || c->out_bias ? "bo" : NULL, c->dim, inner, out_std(c),
                 "attn_proj");
}

/* h (B,S,C) -> (B,S,C). Llama: w2(silu(w1 h) * w3 h). GPT-2: proj(gelu(fc h)), with biases. */
static autosp_tensor_t mlp_block(builder_t *b, autosp_tensor_t h) {
    const autosp_model_config_t *c = b->cfg;
    int C = c->dim, F = c->ffn_dim;
    if (c->family == AUTOSP_FAMILY_GPT2) {
        autosp_tensor_t u = dense(b, h, "fc", "fc_b", F, C, INIT_STD, "fc_out");
        u = autosp_gelu(b->g, u, at(b, "gelu"));
        return dense(b, u, "proj", "proj_b", C, F, out_std(c), "mlp_out");
    }
    autosp_tensor_t gate = dense(b, h, "w1", NULL, F, C, INIT_STD, "gate");
    autosp_tensor_t up = dense(b, h, "w3", NULL, F, C, INIT_STD, "up");
    autosp_tensor_t u = autosp_swiglu(b->g, gate, up, at(b, "swiglu"));
    return dense(b, u, "w2", NULL, C, F, out_std(c), "down");
}

/* One pre-norm block: x (B,S,C) -> x + attn(norm(x)) -> that + mlp(norm(that)) */
static autosp_tensor_t block(builder_t *b, autosp_tensor_t x) {
    bool llama = b->cfg->family == AUTOSP_FAMILY_LLAMA;
    autosp_tensor_t h = norm(b, x, llama ? "attn_norm" : "ln1", llama ? "attn_in" : "ln1_out");
    autosp_tensor_t a = attention_block(b, h);
    x = autosp_add(b->g, x, a, at(b, "resid1"));
    h = norm(b, x, llama ? "ffn_norm" : "ln2", llama ? "ffn_in" : "ln2_out");
    autosp_tensor_t m = mlp_block(b, h);
    return autosp_add(b->g, x, m, at(b, "resid2"));
}

/* x (B,S,C) -> final norm -> logits (B,S,V) -> loss (scalar), the graph's one output. */
static void add_head(builder_t *b, autosp_tensor_t x, autosp_tensor_t table) {
    const autosp_model_config_t *c = b->cfg;
    bool llama = c->family == AUTOSP_FAMILY_LLAMA;
    x = norm(b, x, llama ? "out_norm" : "ln_f", "final_norm");
    autosp_tensor_t w = c->tied_embeddings ? table
                                           : param(b, "lm_head", c->vocab_size, c->dim,
                                                   AUTOSP_INIT_NORMAL, INIT_STD);
    autosp_tensor_t logits = autosp_linear(b->g, x, w, AUTOSP_NO_TENSOR, "logits");
    autosp_output(b->g, autosp_cross_entropy(b->g, logits, b->labels, IGNORE_INDEX, "loss"));
}

autosp_graph_t *autosp_model_build(const autosp_model_config_t *cfg, const char *name,
                                   autosp_error_t *err) {
    if (autosp_model_config_check(cfg, err) != AUTOSP_OK) return NULL;
    const char *family = cfg->family == AUTOSP_FAMILY_LLAMA ? "llama" : "gpt2";
    builder_t b = {.g = autosp_graph_new(name ? name : family), .cfg = cfg, .layer = -1};
    if (!b.g) {
        if (err) *err = (autosp_error_t){.status = AUTOSP_ERR_NOMEM, .message = "out of memory"};
        return NULL;
    }
    autosp_tensor_t table;
    add_inputs(&b);
    autosp_tensor_t x = embed(&b, &table);
    for (b.layer = 0; b.layer < cfg->n_layers; b.layer++) x = block(&b, x);
    b.layer = -1;
    add_head(&b, x, table);
    autosp_error_t local;
    if (autosp_graph_status(b.g, err ? err : &local) != AUTOSP_OK) {
        autosp_graph_free(b.g);
        return NULL;
    }
    return b.g;
}
