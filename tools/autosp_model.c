/* autosp-model: write the forward graph of a preset or a custom Llama/GPT-2 config as JSON.
 * Exit 0 ok, 2 bad input (message on stderr), 1 internal error. The graph is built and checked
 * before anything is written, and a file is written atomically, so a failure leaves no file. */
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const char *prog = "autosp-model";

static void usage(FILE *out) {
    fprintf(out,
            "usage: autosp-model PRESET [options]\n"
            "       autosp-model llama|gpt2 --layers N --dim C --heads H --ffn F --vocab V "
            "[options]\n"
            "       autosp-model --from-hf DIR [--weights OUT.safetensors] [options]\n"
            "       autosp-model --to-hf OUT_DIR --hf-config DIR --weights W.safetensors\n"
            "       autosp-model --list\n"
            "\n"
            "Writes the forward graph of a Llama- or GPT-2-family transformer as JSON\n"
            "(docs/json-format.md): tokens, labels, positions (B,S) -> mean cross-entropy loss,\n"
            "with B and S left as symbols.\n"
            "\n"
            "  PRESET                 a preset (see --list); the flags below override it\n"
            "  llama, gpt2            a custom model: needs --layers, --dim, --heads, --ffn and\n"
            "                         --vocab, and gpt2 also --max-seq\n"
            "  --layers N             transformer blocks\n"
            "  --dim C                model dim\n"
            "  --heads H              attention (query) heads; C must be a multiple of H\n"
            "  --kv-heads K           key/value heads (GQA); default H, or the preset's own\n"
            "                         when the preset uses GQA\n"
            "  --ffn F                hidden size of the MLP\n"
            "  --vocab V              vocabulary size\n"
            "  --max-seq N            gpt2: rows of the learned position table; llama: not used\n"
            "  --rope-theta T         rope base, llama only (default 10000)\n"
            "  --norm-eps E           epsilon of the norms (default 1e-5)\n"
            "  --tied, --untied       the output projection reuses the token embedding, or has\n"
            "                         its own weight (default: gpt2 tied, llama untied)\n"
            "  --segment-ids          add a segment_ids input: attention stays inside a document\n"
            "  --dtype f32|bf16|f16   parameter dtype (default f32)\n"
            "  --name NAME            graph name (default: the preset or family name)\n"
            "  -o, --output OUT.json  write the graph to OUT.json instead of stdout\n"
            "  --from-hf DIR          the model of a Hugging Face checkpoint (config.json:\n"
            "                         LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM);\n"
            "                         only --dtype, --segment-ids, --name and -o apply\n"
            "  --weights FILE         --from-hf: write the checkpoint's weights to FILE under\n"
            "                         the graph's names (autosp-train --init FILE);\n"
            "                         --to-hf: the weights to export (autosp-train's\n"
            "                         model.safetensors)\n"
            "  --to-hf OUT_DIR        write --weights as a checkpoint: config.json (copied from\n"
            "                         --hf-config) and safetensors in the checkpoint's names\n"
            "  --hf-config PATH       --to-hf: the checkpoint (directory or config.json) the\n"
            "                         weights were imported from\n"
            "  --shard-size BYTES     --to-hf: shards of at most BYTES, e.g. 5GB, with\n"
            "                         model.safetensors.index.json (default: one file)\n"
            "  --list                 print the presets with their sizes\n"
            "  -h, --help             print this help\n"
            "\n"
            "Exit status: 0 ok, 2 bad input or usage, 1 internal error.\n");
}

/* ---- flags ------------------------------------------------------------------------------ */

typedef enum {
    F_LAYERS,
    F_DIM,
    F_HEADS,
    F_KV_HEADS,
    F_FFN,
    F_VOCAB,
    F_MAX_SEQ,
    F_ROPE_THETA,
    F_NORM_EPS,
    F_TIED,
    F_UNTIED,
    F_SEGMENT_IDS,
    F_DTYPE,
    F_NAME,
    F_OUT,
    F_OUTPUT,
    F_FROM_HF,
    F_WEIGHTS,
    F_TO_HF,
    F_HF_CONFIG,
    F_SHARD_SIZE,
    F_COUNT
} flag_id_t;

typedef enum { ARG_INT, ARG_REAL, ARG_DTYPE, ARG_TEXT, SET_TRUE, SET_FALSE } flag_kind_t;

typedef struct options {
    const char *model; /* a preset, "llama" or "gpt2" */
    bool preset;       /* model names a preset */
    const char *name;  /* graph name; NULL: the model's */
    const char *out;   /* NULL: stdout */
    const char *from_hf, *weights, *to_hf, *hf_config, *shard_size;
    autosp_model_config_t cfg;
    bool given[F_COUNT];
} options_t;

typedef struct flag {
    const char *name;
    const char *arg; /* what its value is, in messages; NULL when it takes none */
    flag_kind_t kind;
    size_t offset; /* of the options_t field it sets */
} flag_t;

#define CFG(field) (offsetof(options_t, cfg) + offsetof(autosp_model_config_t, field))

static const flag_t flags[F_COUNT] = {
    [F_LAYERS] = {"--layers", "N", ARG_INT, CFG(n_layers)},
    [F_DIM] = {"--dim", "C", ARG_INT, CFG(dim)},
    [F_HEADS] = {"--heads", "H", ARG_INT, CFG(n_heads)},
    [F_KV_HEADS] = {"--kv-heads", "K", ARG_INT, CFG(n_kv_heads)},
    [F_FFN] = {"--ffn", "F", ARG_INT, CFG(ffn_dim)},
    [F_VOCAB] = {"--vocab", "V", ARG_INT, CFG(vocab_size)},
    [F_MAX_SEQ] = {"--max-seq", "N", ARG_INT, CFG(max_seq_len)},
    [F_ROPE_THETA] = {"--rope-theta", "T", ARG_REAL, CFG(rope_theta)},
    [F_NORM_EPS] = {"--norm-eps", "E", ARG_REAL, CFG(norm_eps)},
    [F_TIED] = {"--tied", NULL, SET_TRUE, CFG(tied_embeddings)},
    [F_UNTIED] = {"--untied", NULL, SET_FALSE, CFG(tied_embeddings)},
    [F_SEGMENT_IDS] = {"--segment-ids", NULL, SET_TRUE, CFG(segment_ids)},
    [F_DTYPE] = {"--dtype", "f32|bf16|f16", ARG_DTYPE, CFG(dtype)},
    [F_NAME] = {"--name", "NAME", ARG_TEXT, offsetof(options_t, name)},
    [F_OUT] = {"-o", "OUT.json", ARG_TEXT, offsetof(options_t, out)},
    [F_OUTPUT] = {"--output", "OUT.json", ARG_TEXT, offsetof(options_t, out)},
    [F_FROM_HF] = {"--from-hf", "DIR", ARG_TEXT, offsetof(options_t, from_hf)},
    [F_WEIGHTS] = {"--weights", "FILE", ARG_TEXT, offsetof(options_t, weights)},
    [F_TO_HF] = {"--to-hf", "OUT_DIR", ARG_TEXT, offsetof(options_t, to_hf)},
    [F_HF_CONFIG] = {"--hf-config", "PATH", ARG_TEXT, offsetof(options_t, hf_config)},
    [F_SHARD_SIZE] = {"--shard-size", "BYTES", ARG_TEXT, offsetof(options_t, shard_size)},
};

/* The flags a Hugging Face import takes besides its own (the config sets the rest). */
static bool applies_to_import(flag_id_t f) {
    return f == F_DTYPE || f == F_SEGMENT_IDS || f == F_NAME || f == F_OUT || f == F_OUTPUT ||
           f == F_FROM_HF || f == F_WEIGHTS;
}

static const flag_t *find_flag(const char *name) {
    for (size_t i = 0; i < ARRAY_LEN(flags); i++)
        if (!strcmp(flags[i].name, name)) return &flags[i];
    return NULL;
}

/* Sets the field of flag f from its value v (NULL for a flag without one). */
static int apply_flag(options_t *o, const flag_t *f, const char *v) {
    void *field = (char *)o + f->offset;
    int64_t n;
    autosp_dtype_t d;
    switch (f->kind) {
    case ARG_INT:
        if (!cli_parse_int(v, 1, INT_MAX, &n))
            return cli_usage_error(prog, "%s: expected a whole number in 1..%d, found \"%s\"",
                                   f->name, INT_MAX, v);
        *(int *)field = (int)n;
        break;
    case ARG_REAL:
        if (!cli_parse_double(v, field))
            return cli_usage_error(prog, "%s: expected a number, found \"%s\"", f->name, v);
        break;
    case ARG_DTYPE:
        if (!autosp_dtype_from_name(v, &d) || d == AUTOSP_I32 || d == AUTOSP_I64)
            return cli_usage_error(prog, "%s: expected f32, bf16 or f16, found \"%s\"", f->name, v);
        *(autosp_dtype_t *)field = d;
        break;
    case ARG_TEXT:
        *(const char **)field = v;
        break;
    case SET_TRUE:
    case SET_FALSE:
        *(bool *)field = f->kind == SET_TRUE;
        break;
    }
    o->given[f - flags] = true;
    return 0;
}

/* ---- arguments -------------------------------------------------------------------------- */

static void list_presets(void);

/* First pass: --help and --list, unknown flags, missing values, and the one model name. */
static int scan_args(int argc, char **argv, options_t *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return -1;
        } else if (!strcmp(a, "--list")) {
            list_presets();
            return -1;
        } else if (a[0] == '-' && a[1]) {
            const flag_t *f = find_flag(a);
            if (!f) return cli_usage_error(prog, "unknown option \"%s\"", a);
            if (f->arg && ++i == argc)
                return cli_usage_error(prog, "%s needs a value: %s %s", a, a, f->arg);
        } else if (o->model) {
            return cli_usage_error(prog, "more than one model (\"%s\" and \"%s\")", o->model, a);
        } else {
            o->model = a;
        }
    }
    return 0;
}

/* --from-hf and --to-hf: the flags that go with each, and none of a preset's. */
static int check_hf_flags(const options_t *o) {
    if (o->to_hf) {
        for (int f = 0; f < F_COUNT; f++)
            if (o->given[f] && f != F_TO_HF && f != F_HF_CONFIG && f != F_WEIGHTS &&
                f != F_SHARD_SIZE)
                return cli_usage_error(prog,
                                       "--to-hf takes only --hf-config, --weights and "
                                       "--shard-size, not %s",
                                       flags[f].name);
        if (o->model) return cli_usage_error(prog, "--to-hf takes no model (\"%s\")", o->model);
        if (!o->hf_config || !o->weights)
            return cli_usage_error(prog, "--to-hf needs --hf-config PATH and --weights FILE");
        return 0;
    }
    if (o->given[F_HF_CONFIG] || o->given[F_SHARD_SIZE])
        return cli_usage_error(prog, "%s is only used by --to-hf",
                               o->given[F_HF_CONFIG] ? "--hf-config" : "--shard-size");
    if (!o->from_hf) {
        if (o->weights) return cli_usage_error(prog, "--weights needs --from-hf or --to-hf");
        if (!o->model)
            return cli_usage_error(prog, "no model given: expected a preset, llama or gpt2");
        return 0;
    }
    if (o->model)
        return cli_usage_error(prog, "--from-hf takes no model (\"%s\"): the checkpoint is one",
                               o->model);
    for (int f = 0; f < F_COUNT; f++)
        if (o->given[f] && !applies_to_import((flag_id_t)f))
            return cli_usage_error(prog, "%s: the checkpoint's config.json sets it (--from-hf)",
                                   flags[f].name);
    return 0;
}

/* The config that the flags override: a preset's, or a family's defaults with no sizes. */
static int base_config(options_t *o) {
    if (o->from_hf) {
        autosp_error_t err;
        o->model = "hf";
        return autosp_hf_read_config(o->from_hf, &o->cfg, &err) ? cli_fail(prog, &err) : 0;
    }
    o->preset = autosp_model_preset(o->model, &o->cfg);
    if (o->preset) return 0;
    bool llama = !strcmp(o->model, "llama");
    if (!llama && strcmp(o->model, "gpt2"))
        return cli_usage_error(prog,
                               "unknown model \"%s\": expected llama, gpt2 or a preset "
                               "listed by --list",
                               o->model);
    o->cfg = (autosp_model_config_t){.family = llama ? AUTOSP_FAMILY_LLAMA : AUTOSP_FAMILY_GPT2,
                                     .rope_theta = llama ? 10000 : 0,
                                     .norm_eps = 1e-5,
                                     .tied_embeddings = !llama,
                                     .dtype = AUTOSP_F32};
    return 0;
}

/* Defaults that depend on other flags, and the sizes a custom model must be given. */
static int finish_config(options_t *o, bool mha) {
    static const flag_id_t required[] = {F_LAYERS, F_DIM, F_HEADS, F_FFN, F_VOCAB, F_MAX_SEQ};
    if (o->from_hf) return 0;
    bool gpt2 = o->cfg.family == AUTOSP_FAMILY_GPT2;
    for (size_t i = 0; !o->preset && i < ARRAY_LEN(required); i++) {
        const flag_t *f = &flags[required[i]];
        if (!o->given[required[i]] && (gpt2 || required[i] != F_MAX_SEQ))
            return cli_usage_error(prog, "%s: missing %s %s", o->model, f->name, f->arg);
    }
    if (gpt2 && o->given[F_ROPE_THETA])
        return cli_usage_error(prog, "--rope-theta: gpt2 has no rope (it learns its position "
                                     "embeddings)");
    if (mha && !o->given[F_KV_HEADS]) o->cfg.n_kv_heads = o->cfg.n_heads;
    return 0;
}

/* The flags' values, in order (each one's given[] set). */
static int apply_flags(int argc, char **argv, options_t *o) {
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        const flag_t *f = argv[i][0] == '-' && argv[i][1] ? find_flag(argv[i]) : NULL;
        if (f) rc = apply_flag(o, f, f->arg ? argv[++i] : NULL);
    }
    return rc;
}

static int parse_args(int argc, char **argv, options_t *o) {
    int rc = scan_args(argc, argv, o);
    if (rc) return rc;
    options_t seen = *o; /* which flags are given, before any config is read */
    if ((rc = apply_flags(argc, argv, &seen)) || (rc = check_hf_flags(&seen))) return rc;
    if (seen.to_hf) return *o = seen, 0;
    o->from_hf = seen.from_hf;
    if ((rc = base_config(o))) return rc;
    bool mha = o->cfg.n_kv_heads == o->cfg.n_heads; /* true for a custom base too (0 == 0) */
    if ((rc = apply_flags(argc, argv, o))) return rc;
    return finish_config(o, mha);
}

/* ---- output ----------------------------------------------------------------------------- */

/* "124.4M": elements in all parameters of the preset's graph, or "?" if it does not build. */
static const char *param_count(const autosp_model_config_t *cfg, char *buf, size_t n) {
    autosp_graph_t *g = autosp_model_build(cfg, NULL, NULL);
    double total = 0;
    for (int t = 0; g && t < autosp_graph_num_tensors(g); t++)
        if (autosp_tensor_kind(g, t) == AUTOSP_KIND_PARAM)
            total += (double)autosp_tensor_numel(g, t);
    if (!g)
        snprintf(buf, n, "?");
    else if (total >= 1e9)
        snprintf(buf, n, "%.2fB", total / 1e9);
    else if (total >= 1e6)
        snprintf(buf, n, "%.1fM", total / 1e6);
    else
        snprintf(buf, n, "%.1fK", total / 1e3);
    autosp_graph_free(g);
    return buf;
}

static void list_presets(void) {
    printf("%-16s %-6s %6s %6s %5s %4s %6s %7s %7s %-5s %8s\n", "preset", "family", "layers", "dim",
           "heads", "kv", "ffn", "vocab", "max_seq", "tied", "params");
    for (const char *const *p = autosp_model_preset_names(); *p; p++) {
        autosp_model_config_t c;
        char count[32];
        if (!autosp_model_preset(*p, &c)) continue;
        printf("%-16s %-6s %6d %6d %5d %4d %6d %7d %7d %-5s %8s\n", *p,
               c.family == AUTOSP_FAMILY_LLAMA ? "llama" : "gpt2", c.n_layers, c.dim, c.n_heads,
               c.n_kv_heads, c.ffn_dim, c.vocab_size, c.max_seq_len,
               c.tied_embeddings ? "yes" : "no", param_count(&c, count, sizeof count));
    }
}

/* To path atomically, or to stdout when path is NULL. */
static int write_graph(const autosp_graph_t *g, const char *path) {
    autosp_error_t err;
    if (path) return autosp_graph_save_file(g, path, &err) == AUTOSP_OK ? 0 : cli_fail(prog, &err);
    char *text = autosp_graph_save_string(g, &err);
    if (!text) return cli_fail(prog, &err);
    bool ok = fputs(text, stdout) >= 0 && fflush(stdout) == 0;
    autosp_free(text);
    if (ok) return 0;
    err = (autosp_error_t){.status = AUTOSP_ERR_IO, .message = "cannot write the graph to stdout"};
    return cli_fail(prog, &err);
}

static int export_hf(const options_t *o) {
    int64_t shard = 0;
    if (o->shard_size && (!cli_parse_bytes(o->shard_size, &shard) || shard <= 0))
        return cli_usage_error(prog, "--shard-size: expected a size such as 5GB, found \"%s\"",
                               o->shard_size);
    autosp_error_t err;
    if (autosp_hf_export(o->hf_config, o->weights, o->to_hf, shard, &err) != AUTOSP_OK)
        return cli_fail(prog, &err);
    return 0;
}

int main(int argc, char **argv) {
    options_t o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    if (o.to_hf) return export_hf(&o);
    autosp_error_t err;
    autosp_graph_t *g = autosp_model_build(&o.cfg, o.name ? o.name : o.model, &err);
    if (!g) return cli_fail(prog, &err);
    if (o.weights && autosp_hf_import_weights(o.from_hf, &o.cfg, o.weights, &err) != AUTOSP_OK) {
        autosp_graph_free(g);
        return cli_fail(prog, &err);
    }
    rc = write_graph(g, o.out);
    autosp_graph_free(g);
    return rc;
}
