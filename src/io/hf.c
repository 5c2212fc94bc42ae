/* hf.c: Hugging Face checkpoints in and out (autosp/hf.h).
 *
 * The Llama family's parameters map one to one onto Hugging Face's names (hf_name), in the
 * same [out, in] layout, so an import and an export only rename, check and copy: a tensor's
 * bytes cross unchanged unless the graph's dtype differs from the file's. */
#define _POSIX_C_SOURCE 200809L /* mkdir */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "autosp/hf.h"
#include "autosp/io.h"
#include "autosp/safetensors.h"
#include "base/base.h"
#include "base/bf16.h"
#include "io/read_file.h"
#include "ir/ir.h"

/* ---- config.json ---------------------------------------------------------------------------- */

typedef struct arch {
    const char *name, *model_type;
    bool qkv_bias; /* always (Qwen2) */
} arch_t;

static const arch_t archs[] = {
    {"LlamaForCausalLM", "llama", false},
    {"MistralForCausalLM", "mistral", false},
    {"Qwen2ForCausalLM", "qwen2", true},
};

/* Keys that do not change the maths of a forward and backward step (generation, ids, the
 * initialiser of a fresh model, bookkeeping). */
static const char *const harmless_keys[] = {"_name_or_path",
                                            "transformers_version",
                                            "bos_token_id",
                                            "eos_token_id",
                                            "pad_token_id",
                                            "initializer_range",
                                            "use_cache",
                                            "pretraining_tp",
                                            "max_position_embeddings",
                                            "output_attentions",
                                            "output_hidden_states",
                                            "return_dict",
                                            "torch_dtype",
                                            "dtype",
                                            "architectures",
                                            "model_type",
                                            "max_window_layers",
                                            "layer_types",
                                            NULL};

/* Keys read below (any other key is an error: it may change the maths) */
static const char *const handled_keys[] = {
    "hidden_size",         "intermediate_size",   "num_hidden_layers",
    "num_attention_heads", "num_key_value_heads", "head_dim",
    "rms_norm_eps",        "rope_theta",          "vocab_size",
    "tie_word_embeddings", "rope_scaling",        "hidden_act",
    "attention_dropout",   "attention_bias",      "mlp_bias",
    "sliding_window",      "use_sliding_window",  NULL};

static bool listed(const char *const *list, const char *key) {
    for (int i = 0; list[i]; i++)
        if (!strcmp(list[i], key)) return true;
    return false;
}

typedef struct reader {
    const char *path; /* config.json, for messages */
    json_t *root;
    autosp_error_t *err;
} reader_t;

static autosp_status_t bad(const reader_t *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static autosp_status_t bad(const reader_t *r, const char *fmt, ...) {
    char msg[AUTOSP_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return set_error(r->err, AUTOSP_ERR_INVALID, "%s: %s", r->path, msg);
}

/* key as an int in [lo, hi]; absent: def (or an error when def < 0) */
static autosp_status_t get_int(const reader_t *r, const char *key, int def, int hi, int *out) {
    json_t *v = json_object_get(r->root, key);
    if (!v || json_is_null(v)) {
        if (def < 0) return bad(r, "\"%s\" is missing", key);
        return *out = def, AUTOSP_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > hi)
        return bad(r, "\"%s\" is not an integer in 1..%d", key, hi);
    return *out = (int)json_integer_value(v), AUTOSP_OK;
}

static autosp_status_t get_real(const reader_t *r, json_t *obj, const char *key, double def,
                                double *out) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return *out = def, AUTOSP_OK;
    if (!json_is_number(v)) return bad(r, "\"%s\" is not a number", key);
    return *out = json_number_value(v), AUTOSP_OK;
}

static bool get_bool(const reader_t *r, const char *key, bool def) {
    json_t *v = json_object_get(r->root, key);
    return json_is_boolean(v) ? json_is_true(v) : def;
}

/* rope_scaling: null, or {"rope_type" (or "type"): "linear" | "llama3" | "default", ...} */
static autosp_status_t read_rope_scaling(const reader_t *r, autosp_rope_scaling_t *s) {
    json_t *v = json_object_get(r->root, "rope_scaling");
    *s = (autosp_rope_scaling_t){0};
    if (!v || json_is_null(v)) return AUTOSP_OK;
    json_t *type = json_object_get(v, "rope_type");
    if (!type) type = json_object_get(v, "type");
    const char *t = json_string_value(type);
    if (!t) return bad(r, "\"rope_scaling\" has no \"rope_type\"");
    if (!strcmp(t, "default")) return AUTOSP_OK;
    if (strcmp(t, "linear") != 0 && strcmp(t, "llama3") != 0)
        return bad(r,
                   "\"rope_scaling\" type \"%s\" is not supported (linear and llama3 are): it "
                   "changes rope's frequencies",
                   t);
    s->type = !strcmp(t, "linear") ? "linear" : "llama3";
    autosp_status_t st = get_real(r, v, "factor", 1.0, &s->factor);
    if (!st) st = get_real(r, v, "low_freq_factor", 1.0, &s->low_freq_factor);
    if (!st) st = get_real(r, v, "high_freq_factor", 4.0, &s->high_freq_factor);
    if (!st)
        st = get_real(r, v, "original_max_position_embeddings", 8192, &s->original_max_position);
    return st;
}

/* Keys that are present with a value the importer cannot honour. */
static autosp_status_t refuse_unsupported(const reader_t *r) {
    const char *act = json_string_value(json_object_get(r->root, "hidden_act"));
    if (act && strcmp(act, "silu") != 0)
        return bad(r, "\"hidden_act\" is \"%s\", expected \"silu\" (the swiglu MLP)", act);
    double dropout = 0;
    autosp_status_t st = get_real(r, r->root, "attention_dropout", 0.0, &dropout);
    if (st) return st;
    if (dropout != 0)
        return bad(r, "\"attention_dropout\" is %g: dropout is not supported (expected 0)",
                   dropout);
    if (get_bool(r, "mlp_bias", false))
        return bad(r, "\"mlp_bias\" is true: biases on the MLP are not supported");
    json_t *window = json_object_get(r->root, "sliding_window");
    bool windowed = json_object_get(r->root, "use_sliding_window")
                        ? get_bool(r, "use_sliding_window", false)
                        : window && !json_is_null(window);
    if (windowed)
        return bad(r, "\"sliding_window\" is set: sliding-window attention is not supported "
                      "yet (it changes the attention mask)");
    return AUTOSP_OK;
}

static autosp_status_t read_dtype(const reader_t *r, autosp_dtype_t *out) {
    json_t *v = json_object_get(r->root, "torch_dtype");
    if (!v) v = json_object_get(r->root, "dtype");
    const char *d = json_string_value(v);
    if (!d || !strcmp(d, "float32")) return *out = AUTOSP_F32, AUTOSP_OK;
    if (!strcmp(d, "bfloat16")) return *out = AUTOSP_BF16, AUTOSP_OK;
    return bad(r, "\"torch_dtype\" is \"%s\", expected float32 or bfloat16", d);
}

static const arch_t *read_arch(const reader_t *r) {
    json_t *a = json_object_get(r->root, "architectures");
    const char *name = json_string_value(json_array_get(a, 0));
    for (size_t i = 0; name && json_array_size(a) == 1 && i < sizeof archs / sizeof archs[0]; i++)
        if (!strcmp(archs[i].name, name)) return &archs[i];
    bad(r,
        "\"architectures\" is %s%s%s, expected [\"LlamaForCausalLM\"], [\"MistralForCausalLM\"] "
        "or [\"Qwen2ForCausalLM\"]",
        name ? "[\"" : "", name ? name : "missing", name ? "\", ...]" : "");
    return NULL;
}

static autosp_status_t read_sizes(const reader_t *r, autosp_model_config_t *c) {
    autosp_status_t st = get_int(r, "hidden_size", -1, 1 << 20, &c->dim);
    if (!st) st = get_int(r, "intermediate_size", -1, 1 << 20, &c->ffn_dim);
    if (!st) st = get_int(r, "num_hidden_layers", -1, 1000, &c->n_layers);
    if (!st) st = get_int(r, "num_attention_heads", -1, 1 << 20, &c->n_heads);
    if (!st) st = get_int(r, "num_key_value_heads", c->n_heads, 1 << 20, &c->n_kv_heads);
    if (!st)
        st = get_int(r, "head_dim", c->dim / (c->n_heads ? c->n_heads : 1), 1 << 16, &c->head_dim);
    if (!st) st = get_int(r, "vocab_size", -1, 1 << 24, &c->vocab_size);
    if (!st) st = get_int(r, "max_position_embeddings", 0, 1 << 24, &c->max_seq_len);
    if (!st) st = get_real(r, r->root, "rms_norm_eps", 1e-6, &c->norm_eps);
    if (!st) st = get_real(r, r->root, "rope_theta", 10000.0, &c->rope_theta);
    return st;
}

/* path, or path/config.json when path is a directory */
static void config_file(const char *path, char *buf, size_t n) {
    struct stat s;
    if (stat(path, &s) == 0 && S_ISDIR(s.st_mode))
        snprintf(buf, n, "%s/config.json", path);
    else
        snprintf(buf, n, "%s", path);
}

autosp_status_t autosp_hf_read_config(const char *path, autosp_model_config_t *cfg,
                                      autosp_error_t *err) {
    char file[PATH_MAX];
    config_file(path, file, sizeof file);
    json_error_t jerr;
    reader_t r = {.path = file, .root = json_load_file(file, 0, &jerr), .err = err};
    if (!r.root)
        return set_error(err, AUTOSP_ERR_INVALID, "%s: %s (line %d)", file, jerr.text, jerr.line);
    autosp_status_t st = json_is_object(r.root) ? AUTOSP_OK : bad(&r, "not a JSON object");
    const char *key;
    json_t *value;
    json_object_foreach(r.root, key, value) {
        if (st || listed(harmless_keys, key) || listed(handled_keys, key)) continue;
        st = bad(&r,
                 "key \"%s\" is not understood by the importer (it may change the model's "
                 "maths)",
                 key);
    }
    const arch_t *arch = st ? NULL : read_arch(&r);
    if (!st && !arch) st = err ? err->status : AUTOSP_ERR_INVALID;
    *cfg = (autosp_model_config_t){.family = AUTOSP_FAMILY_LLAMA};
    if (!st) st = refuse_unsupported(&r);
    if (!st) st = read_sizes(&r, cfg);
    if (!st) st = read_rope_scaling(&r, &cfg->rope_scaling);
    if (!st) st = read_dtype(&r, &cfg->dtype);
    if (!st) {
        cfg->tied_embeddings = get_bool(&r, "tie_word_embeddings", false);
        cfg->qkv_bias = arch->qkv_bias || get_bool(&r, "attention_bias", false);
        cfg->out_bias = !arch->qkv_bias && get_bool(&r, "attention_bias", false);
        if (cfg->head_dim * cfg->n_heads == cfg->dim) cfg->head_dim = 0; /* the default */
        st = autosp_model_config_check(cfg, err);
    }
    json_decref(r.root);
    return st ? st : set_ok(err);
}

/* ---- names ---------------------------------------------------------------------------------- */

/* A parameter of autosp_model_build's Llama graph under its checkpoint name; false when the
 * graph has no such parameter. */
static bool hf_name(const char *ours, char *buf, size_t n) {
    static const char *const global[][2] = {
        {"tok_emb", "model.embed_tokens.weight"},
        {"out_norm", "model.norm.weight"},
        {"lm_head", "lm_head.weight"},
    };
    static const char *const layer[][2] = {
        {"attn_norm", "input_layernorm.weight"}, {"wq", "self_attn.q_proj.weight"},
        {"bq", "self_attn.q_proj.bias"},         {"wk", "self_attn.k_proj.weight"},
        {"bk", "self_attn.k_proj.bias"},         {"wv", "self_attn.v_proj.weight"},
        {"bv", "self_attn.v_proj.bias"},         {"wo", "self_attn.o_proj.weight"},
        {"bo", "self_attn.o_proj.bias"},         {"ffn_norm", "post_attention_layernorm.weight"},
        {"w1", "mlp.gate_proj.weight"},          {"w3", "mlp.up_proj.weight"},
        {"w2", "mlp.down_proj.weight"},
    };
    for (size_t i = 0; i < sizeof global / sizeof global[0]; i++)
        if (!strcmp(ours, global[i][0])) return snprintf(buf, n, "%s", global[i][1]) < (int)n;
    int blk, used = 0;
    if (sscanf(ours, "blk%d.%n", &blk, &used) != 1 || !used) return false;
    for (size_t i = 0; i < sizeof layer / sizeof layer[0]; i++)
        if (!strcmp(ours + used, layer[i][0]))
            return snprintf(buf, n, "model.layers.%d.%s", blk, layer[i][1]) < (int)n;
    return false;
}

/* ---- the checkpoint's files ------------------------------------------------------------------ */

enum { MAX_SHARDS = 256 };

typedef struct shards {
    char dir[PATH_MAX];
    json_t *weight_map; /* name -> file, or NULL: one model.safetensors */
    int n;
    arena_t names; /* of file[] */
    const char *file[MAX_SHARDS];
    autosp_safetensors_t *open[MAX_SHARDS];
} shards_t;

static autosp_status_t shards_open(shards_t *s, const char *dir, autosp_error_t *err) {
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    char path[PATH_MAX + 40];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    json_error_t jerr;
    json_t *index = json_load_file(path, 0, &jerr);
    if (index) {
        s->weight_map = json_incref(json_object_get(index, "weight_map"));
        json_decref(index);
        if (!json_is_object(s->weight_map))
            return set_error(err, AUTOSP_ERR_INVALID, "%s: no \"weight_map\" object", path);
        return AUTOSP_OK;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    s->file[0] = arena_strdup(&s->names, path);
    s->open[0] = s->file[0] ? autosp_safetensors_open(path, err) : NULL;
    if (!s->open[0]) return s->file[0] ? err->status : nomem(err);
    s->n = 1;
    return AUTOSP_OK;
}

static void shards_close(shards_t *s) {
    for (int i = 0; i < s->n; i++) autosp_safetensors_close(s->open[i]);
    arena_free(&s->names);
    json_decref(s->weight_map);
}

/* The file holding name (opened on first use), or NULL (err set when it fails to open). */
static autosp_safetensors_t *shard_of(shards_t *s, const char *name, autosp_error_t *err) {
    if (!s->weight_map) return s->open[0];
    const char *file = json_string_value(json_object_get(s->weight_map, name));
    if (!file) return NULL;
    char path[2 * PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", s->dir, file);
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->file[i], path)) return s->open[i];
    if (s->n == MAX_SHARDS) {
        set_error(err, AUTOSP_ERR_LIMIT, "%s: more than %d shards", s->dir, MAX_SHARDS);
        return NULL;
    }
    if (!(s->file[s->n] = arena_strdup(&s->names, path))) {
        nomem(err);
        return NULL;
    }
    s->open[s->n] = autosp_safetensors_open(path, err);
    return s->open[s->n] ? s->open[s->n++] : NULL;
}

static const char *shape_text(const int64_t *d, int nd, char *buf, size_t n) {
    int at = snprintf(buf, n, "[");
    for (int i = 0; i < nd && at < (int)n; i++)
        at += snprintf(buf + at, n - (size_t)at, "%s%lld", i ? ", " : "", (long long)d[i]);
    if (at < (int)n) snprintf(buf + at, n - (size_t)at, "]");
    return buf;
}

/* ---- import ---------------------------------------------------------------------------------- */

/* The graph's parameters, in graph order, and their checkpoint names. */
typedef struct params {
    autosp_graph_t *g;
    int n;
    autosp_tensor_t *t;
    char (*hf)[AUTOSP_MAX_NAME + 64];
} params_t;

static void params_free(params_t *p) {
    autosp_graph_free(p->g);
    mem_free(p->t);
    mem_free(p->hf);
}

static autosp_status_t params_of(const autosp_model_config_t *cfg, params_t *p,
                                 autosp_error_t *err) {
    memset(p, 0, sizeof *p);
    if (!(p->g = autosp_model_build(cfg, NULL, err))) return err->status;
    p->t = mem_calloc((size_t)p->g->n_tensors, sizeof *p->t);
    p->hf = mem_calloc((size_t)p->g->n_tensors, sizeof *p->hf);
    if (!p->t || !p->hf) return nomem(err);
    for (autosp_tensor_t t = 0; t < p->g->n_tensors; t++) {
        const tensor_t *x = &p->g->tensors[t];
        if (x->kind != AUTOSP_KIND_PARAM) continue;
        if (!hf_name(x->name, p->hf[p->n], sizeof p->hf[p->n]))
            return set_error(err, AUTOSP_ERR_INTERNAL, "parameter \"%s\" has no checkpoint name",
                             x->name);
        p->t[p->n++] = t;
    }
    return AUTOSP_OK;
}

static bool consumed(const params_t *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->hf[i], name)) return true;
    return false;
}

/* A tensor of the checkpoint that no parameter takes: an error, except rope's cached
 * frequencies (older files) and a tied model's saved copy of its embedding. */
static autosp_status_t check_extra(const params_t *p, const autosp_model_config_t *cfg,
                                   const char *name, const char *dir, autosp_error_t *err) {
    const char *dot = strrchr(name, '.');
    if (consumed(p, name) || (dot && !strcmp(dot, ".inv_freq")) ||
        (cfg->tied_embeddings && !strcmp(name, "lm_head.weight")))
        return AUTOSP_OK;
    return set_error(err, AUTOSP_ERR_INVALID,
                     "%s: tensor \"%s\" is not a parameter of the model (an extra tensor)", dir,
                     name);
}

static autosp_status_t check_all_extra(const params_t *p, const autosp_model_config_t *cfg,
                                       shards_t *s, autosp_error_t *err) {
    autosp_status_t st = AUTOSP_OK;
    if (s->weight_map) {
        const char *name;
        json_t *file;
        json_object_foreach(s->weight_map, name, file) {
            if (st == AUTOSP_OK) st = check_extra(p, cfg, name, s->dir, err);
        }
        return st;
    }
    for (int i = 0; st == AUTOSP_OK && i < autosp_safetensors_count(s->open[0]); i++)
        st = check_extra(p, cfg, autosp_safetensors_tensor(s->open[0], i)->name, s->dir, err);
    return st;
}

/* Parameter i's tensor in the checkpoint, checked against the graph's shape. */
static autosp_status_t find_param(const params_t *p, int i, shards_t *s,
                                  const autosp_st_tensor_t **out, autosp_error_t *err) {
    const tensor_t *x = &p->g->tensors[p->t[i]];
    int64_t dims[AUTOSP_MAX_DIMS], numel;
    AUTOSP_ASSERT(shape_eval(p->g, &x->shape, dims, &numel) == EVAL_OK);
    char want[128], found[128];
    shape_text(dims, x->shape.ndim, want, sizeof want);
    err->status = AUTOSP_OK;
    autosp_safetensors_t *f = shard_of(s, p->hf[i], err);
    const autosp_st_tensor_t *w = f ? autosp_safetensors_find(f, p->hf[i]) : NULL;
    if (!w && err->status != AUTOSP_OK) return err->status;
    if (!w)
        return set_error(err, AUTOSP_ERR_INVALID,
                         "%s: tensor \"%s\" is missing (parameter \"%s\", shape %s)", s->dir,
                         p->hf[i], x->name, want);
    bool same = w->ndim == x->shape.ndim;
    for (int k = 0; same && k < w->ndim; k++) same = w->shape[k] == dims[k];
    if (!same)
        return set_error(err, AUTOSP_ERR_INVALID,
                         "%s: tensor \"%s\" has shape %s, expected %s (parameter \"%s\")", s->dir,
                         p->hf[i], shape_text(w->shape, w->ndim, found, sizeof found), want,
                         x->name);
    if (w->dtype != AUTOSP_F32 && w->dtype != AUTOSP_BF16)
        return set_error(err, AUTOSP_ERR_INVALID, "%s: tensor \"%s\" is %s, expected f32 or bf16",
                         s->dir, p->hf[i], autosp_dtype_name(w->dtype));
    *out = w;
    return AUTOSP_OK;
}

autosp_status_t autosp_hf_import_weights(const char *dir, const autosp_model_config_t *cfg,
                                         const char *out_path, autosp_error_t *err) {
    autosp_error_t local;
    if (!err) err = &local;
    params_t p;
    shards_t s;
    autosp_status_t st = params_of(cfg, &p, err);
    memset(&s, 0, sizeof s);
    if (st == AUTOSP_OK) st = shards_open(&s, dir, err);
    autosp_st_tensor_t *list = st ? NULL : mem_calloc((size_t)p.n + 1, sizeof *list);
    if (st == AUTOSP_OK && !list) st = nomem(err);
    for (int i = 0; st == AUTOSP_OK && i < p.n; i++) {
        const autosp_st_tensor_t *w = NULL;
        if ((st = find_param(&p, i, &s, &w, err)) != AUTOSP_OK) break;
        list[i] = *w; /* its bytes and dtype as they are */
        list[i].name = p.g->tensors[p.t[i]].name;
    }
    if (st == AUTOSP_OK) st = check_all_extra(&p, cfg, &s, err);
    const char *keys[] = {"format"}, *values[] = {"autosp"};
    if (st == AUTOSP_OK) st = autosp_safetensors_write(out_path, list, p.n, keys, values, 1, err);
    mem_free(list);
    shards_close(&s);
    params_free(&p);
    return st == AUTOSP_OK ? set_ok(err) : st;
}

/* ---- export ---------------------------------------------------------------------------------- */

static autosp_status_t make_dir(const char *dir, autosp_error_t *err) {
    if (mkdir(dir, 0777) == 0 || errno == EEXIST) return AUTOSP_OK;
    return set_error(err, AUTOSP_ERR_IO, "cannot create directory \"%s\": %s", dir,
                     strerror(errno));
}

static autosp_status_t copy_file(const char *from, const char *to, autosp_error_t *err) {
    char *buf = NULL;
    size_t n = 0;
    autosp_status_t st = io_read_file(from, &buf, &n, err);
    if (st == AUTOSP_OK) st = autosp_write_file_atomic(to, buf, n, err);
    mem_free(buf);
    return st;
}

static int64_t tensor_bytes(const autosp_st_tensor_t *t) {
    int64_t n = 1;
    for (int k = 0; k < t->ndim; k++) n *= t->shape[k];
    return n * (int64_t)autosp_dtype_size(t->dtype);
}

/* Shard k of n (0-based) of list[lo, hi), and its entries in the index's weight map. */
static autosp_status_t write_shard(const char *out_dir, const autosp_st_tensor_t *list, int lo,
                                   int hi, int k, int n, json_t *map, autosp_error_t *err) {
    char file[64], path[PATH_MAX + 64];
    if (n == 1)
        snprintf(file, sizeof file, "model.safetensors");
    else
        snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", k + 1, n);
    snprintf(path, sizeof path, "%s/%s", out_dir, file);
    for (int i = lo; map && i < hi; i++) json_object_set_new(map, list[i].name, json_string(file));
    const char *keys[] = {"format"}, *values[] = {"pt"};
    return autosp_safetensors_write(path, list + lo, hi - lo, keys, values, 1, err);
}

/* Shards of at most shard_bytes (a larger tensor alone), in order: starts[0..n] */
static int plan_shards(const autosp_st_tensor_t *list, int count, int64_t shard_bytes,
                       int *starts) {
    int n = 0;
    int64_t in = 0;
    starts[0] = 0;
    for (int i = 0; i < count; i++) {
        int64_t b = tensor_bytes(&list[i]);
        if (shard_bytes > 0 && i > starts[n] && in + b > shard_bytes) starts[++n] = i, in = 0;
        in += b;
    }
    starts[++n] = count;
    return n;
}

static autosp_status_t write_index(const char *out_dir, json_t *map, int64_t total,
                                   autosp_error_t *err) {
    json_t *root =
        json_pack("{s:{s:I},s:O}", "metadata", "total_size", (json_int_t)total, "weight_map", map);
    char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(root);
    if (!text) return nomem(err);
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", out_dir);
    autosp_status_t st = autosp_write_file_atomic(path, text, strlen(text), err);
    free(text);
    return st;
}

autosp_status_t autosp_hf_export(const char *config_path, const char *weights_path,
                                 const char *out_dir, int64_t shard_bytes, autosp_error_t *err) {
    autosp_error_t local;
    if (!err) err = &local;
    autosp_model_config_t cfg;
    char cfg_file[PATH_MAX], out_cfg[PATH_MAX + 16];
    config_file(config_path, cfg_file, sizeof cfg_file);
    params_t p;
    memset(&p, 0, sizeof p);
    autosp_status_t st = autosp_hf_read_config(cfg_file, &cfg, err);
    if (st == AUTOSP_OK) st = params_of(&cfg, &p, err);
    autosp_safetensors_t *f = st ? NULL : autosp_safetensors_open(weights_path, err);
    if (st == AUTOSP_OK && !f) st = err->status;
    autosp_st_tensor_t *list = st ? NULL : mem_calloc((size_t)p.n + 1, sizeof *list);
    int *starts = st ? NULL : mem_calloc((size_t)p.n + 2, sizeof *starts);
    if (st == AUTOSP_OK && (!list || !starts)) st = nomem(err);
    int64_t total = 0;
    for (int i = 0; st == AUTOSP_OK && i < p.n; i++) {
        const char *ours = p.g->tensors[p.t[i]].name;
        const autosp_st_tensor_t *w = autosp_safetensors_find(f, ours);
        if (!w)
            st = set_error(err, AUTOSP_ERR_INVALID,
                           "weights \"%s\": parameter \"%s\" is missing (checkpoint name \"%s\")",
                           weights_path, ours, p.hf[i]);
        else
            list[i] = *w, list[i].name = p.hf[i], total += tensor_bytes(w);
    }
    if (st == AUTOSP_OK) st = make_dir(out_dir, err);
    int n = st ? 0 : plan_shards(list, p.n, shard_bytes, starts);
    json_t *map = n > 1 ? json_object() : NULL;
    if (st == AUTOSP_OK && n > 1 && !map) st = nomem(err);
    for (int k = 0; st == AUTOSP_OK && k < n; k++)
        st = write_shard(out_dir, list, starts[k], starts[k + 1], k, n, map, err);
    if (st == AUTOSP_OK && n > 1) st = write_index(out_dir, map, total, err);
    json_decref(map);
    snprintf(out_cfg, sizeof out_cfg, "%s/config.json", out_dir);
    if (st == AUTOSP_OK) st = copy_file(cfg_file, out_cfg, err);
    mem_free(starts);
    mem_free(list);
    autosp_safetensors_close(f);
    params_free(&p);
    return st == AUTOSP_OK ? set_ok(err) : st;
}
