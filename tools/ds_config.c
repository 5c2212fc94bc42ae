/* ds_config.c: a DeepSpeed JSON config read into ds_config_t (ds_config.h).
 *
 * Which keys map to what:
 *   train_micro_batch_size_per_gpu     micro_batch
 *   train_batch_size                   train_batch
 *   sequence_parallel_size             sp
 *   gradient_clipping                  grad_clip
 *   steps_per_print                    log_every
 *   zero_optimization.stage            zero_stage (0, 1 or 2; 3 is an error)
 *   gradient_accumulation_steps        nothing: 1 is what autosp-train does, others are errors
 *   optimizer.type                     must be AdamW or Adam (DeepSpeed's Adam is AdamW unless
 *                                      params.adam_w_mode is false, which is an error)
 *   optimizer.params.lr, betas, eps, weight_decay   lr, beta1 and beta2, eps, weight_decay
 *   scheduler.type                     min_lr_ratio: WarmupLR 1, WarmupDecayLR 0,
 *                                      WarmupCosineLR params.cos_min_ratio (default 0.0001)
 *   scheduler.params.warmup_num_steps  warmup_steps
 *   scheduler.params.total_num_steps   total_steps
 *   scheduler.params.warmup_max_lr     lr (over optimizer.params.lr, as in DeepSpeed)
 *   compile.passes                     autosp_pass ("autosp" in the list)
 *   bf16.enabled (bfloat16.enabled)    bf16: compared with the model's dtype by the caller
 *   communication_data_type            comm_bf16: "fp32" or "bf16" gradient sums
 * fp16, wall_clock_breakdown, compile.deepcompile, the other zero_optimization keys and
 * any other key: a warning, then ignored (they tune DeepSpeed's runtime, not what is trained).
 * The numeric ranges are those of autosp-train's flags, so a value read here is accepted there.
 */
#define _POSIX_C_SOURCE 200809L
#include "ds_config.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* One load: where to report, what is filled, and what must wait until every key is read. */
typedef struct reader {
    const char *prog, *path;
    ds_config_t *out;
    bool has_max_lr; /* scheduler.params.warmup_max_lr: applied over optimizer.params.lr last */
    double max_lr;
} reader_t;

/* ---- messages ---------------------------------------------------------------------------- */

/* v as compact JSON for a message, cut short if long. */
static const char *show(const json_t *v, char *buf, size_t size) {
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(9));
    if (!s)
        snprintf(buf, size, "a value");
    else if (strlen(s) < size)
        snprintf(buf, size, "%s", s);
    else
        snprintf(buf, size, "%.*s...", (int)size - 4, s);
    free(s);
    return buf;
}

/* "<prog>: <path>: <key>: found <v>, expected <expected>" (v NULL: missing); returns 2. */
static int fail(const reader_t *r, const char *key, const json_t *v, const char *expected) {
    char found[64];
    if (!v) return cli_usage_error(r->prog, "%s: %s: missing, expected %s", r->path, key, expected);
    return cli_usage_error(r->prog, "%s: %s: found %s, expected %s", r->path, key,
                           show(v, found, sizeof found), expected);
}

static void warn(const reader_t *r, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void warn(const reader_t *r, const char *key, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s: warning: %s: %s: ", r->prog, r->path, key);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* "section.key" (just "key" at the top level), the name messages use. */
static const char *join(char *buf, size_t size, const char *section, const char *key) {
    int n = snprintf(buf, size, "%s%s%s", section, *section ? "." : "", key);
    if (n >= (int)size) memcpy(buf + size - 4, "...", 4); /* longer than any DeepSpeed key */
    return buf;
}

/* ---- values ------------------------------------------------------------------------------ */

/* "auto" (HF Accelerate fills it in from its own arguments): counts as not set. */
static bool skip_auto(const reader_t *r, const char *key, const json_t *v) {
    if (!json_is_string(v) || strcmp(json_string_value(v), "auto") != 0) return false;
    warn(r, key, "\"auto\": the trainer's default is kept");
    return true;
}

/* A JSON integer or real in [lo, hi], and a whole one if `whole` (2.0 and 2e3 are integers). */
static bool number_in(const json_t *v, double lo, double hi, bool whole) {
    if (!json_is_number(v)) return false;
    double d = json_number_value(v);
    return d >= lo && d <= hi && (!whole || d == (double)(int64_t)d);
}

static int read_int(const reader_t *r, const char *key, const json_t *v, int64_t lo, int64_t hi,
                    bool *has, int64_t *out) {
    if (skip_auto(r, key, v)) return 0;
    if (!number_in(v, (double)lo, (double)hi, true)) {
        char want[64];
        snprintf(want, sizeof want, "an integer in %lld..%lld", (long long)lo, (long long)hi);
        return fail(r, key, v, want);
    }
    *out = (int64_t)json_number_value(v);
    *has = true;
    return 0;
}

static int read_real(const reader_t *r, const char *key, const json_t *v, double lo, double hi,
                     bool *has, double *out) {
    if (skip_auto(r, key, v)) return 0;
    if (!number_in(v, lo, hi, false)) {
        char want[64];
        snprintf(want, sizeof want, "a number in %g..%g", lo, hi);
        return fail(r, key, v, want);
    }
    *out = json_number_value(v);
    *has = true;
    return 0;
}

/* A missing key or "auto" leaves *out false. */
static int read_bool(const reader_t *r, const char *key, const json_t *v, bool *out) {
    *out = false;
    if (!v || skip_auto(r, key, v)) return 0;
    if (!json_is_boolean(v)) return fail(r, key, v, "true or false");
    *out = json_is_true(v);
    return 0;
}

/* ---- plain numbers: one table ------------------------------------------------------------ */

typedef struct field {
    const char *section, *key; /* section "" is the top level */
    bool whole;                /* an int64_t field, else a double */
    size_t has, value;         /* offsets in ds_config_t */
    double lo, hi;
} field_t;

#define FIELD(section, key, whole, has, value, lo, hi)                                             \
    { section, key, whole, offsetof(ds_config_t, has), offsetof(ds_config_t, value), lo, hi }
static const field_t fields[] = {
    FIELD("", "train_micro_batch_size_per_gpu", true, has_micro_batch, micro_batch, 1, 1 << 16),
    FIELD("", "train_batch_size", true, has_train_batch, train_batch, 1, 1e9),
    FIELD("", "sequence_parallel_size", true, has_sp, sp, 1, 1 << 20),
    FIELD("", "gradient_clipping", false, has_grad_clip, grad_clip, 0, 1e9),
    FIELD("", "steps_per_print", true, has_log_every, log_every, 1, 1e9),
    FIELD("optimizer.params", "lr", false, has_lr, lr, 0, 10),
    FIELD("optimizer.params", "eps", false, has_eps, eps, 1e-30, 1),
    FIELD("optimizer.params", "weight_decay", false, has_weight_decay, weight_decay, 0, 10),
    FIELD("scheduler.params", "warmup_num_steps", true, has_warmup, warmup_steps, 0, 1e9),
    FIELD("scheduler.params", "total_num_steps", true, has_total_steps, total_steps, 1, 1e9),
    FIELD("scheduler.params", "cos_min_ratio", false, has_min_lr_ratio, min_lr_ratio, 0, 1),
};

static const field_t *find_field(const char *section, const char *key) {
    for (size_t i = 0; i < COUNT(fields); i++)
        if (!strcmp(fields[i].section, section) && !strcmp(fields[i].key, key)) return &fields[i];
    return NULL;
}

static int read_field(const reader_t *r, const field_t *f, const json_t *v) {
    char name[256];
    char *base = (char *)r->out;
    bool *has = (bool *)(base + f->has);
    join(name, sizeof name, f->section, f->key);
    if (f->whole)
        return read_int(r, name, v, (int64_t)f->lo, (int64_t)f->hi, has,
                        (int64_t *)(base + f->value));
    return read_real(r, name, v, f->lo, f->hi, has, (double *)(base + f->value));
}

/* ---- zero_optimization, gradient_accumulation_steps, precision, compile ------------------- */

static int read_stage(const reader_t *r, const char *key, const json_t *v) {
    return read_int(r, key, v, 0, 3, &r->out->has_zero, &r->out->zero_stage);
}

/* Only the stage changes what is trained; buckets, overlap and offload tune DeepSpeed. */
static int read_zero(reader_t *r, const char *key, json_t *v) {
    if (!json_is_object(v)) return fail(r, key, v, "an object");
    const char *k;
    json_t *x;
    char name[256];
    json_object_foreach(v, k, x) {
        join(name, sizeof name, key, k);
        if (strcmp(k, "stage") != 0)
            warn(r, name, "has no effect in autosp-train, ignored");
        else if (read_stage(r, name, x))
            return 2;
    }
    return 0;
}

/* autosp-train takes one micro-batch per step: accumulating would train a different batch. */
static int read_accumulation(reader_t *r, const char *key, json_t *v) {
    if (skip_auto(r, key, v) || number_in(v, 1, 1, true)) return 0;
    return fail(r, key, v,
                "1: autosp-train does not accumulate gradients (raise "
                "train_micro_batch_size_per_gpu instead)");
}

/* bf16 (or its old name bfloat16): recorded, for the caller to compare with the model's dtype;
 * fp16: the runtime has no f16 kernels and no loss scaling. */
static int read_precision(reader_t *r, const char *key, json_t *v) {
    if (!json_is_object(v)) return fail(r, key, v, "an object");
    char name[256];
    bool enabled;
    join(name, sizeof name, key, "enabled");
    if (read_bool(r, name, json_object_get(v, "enabled"), &enabled)) return 2;
    if (strcmp(key, "fp16") != 0 && json_object_get(v, "enabled") &&
        !json_is_string(json_object_get(v, "enabled")))
        r->out->has_bf16 = true, r->out->bf16 = enabled;
    if (enabled && !strcmp(key, "fp16"))
        warn(r, name,
             "true has no effect: autosp-train trains in the model's dtype (f32 or bf16), "
             "without loss scaling");
    return 0;
}

/* communication_data_type: the dtype of the gradients' sum over the ranks. */
static int read_comm_dtype(reader_t *r, const char *key, json_t *v) {
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    if (s && (!strcmp(s, "fp32") || !strcmp(s, "bf16"))) {
        r->out->has_comm_bf16 = true;
        r->out->comm_bf16 = !strcmp(s, "bf16");
        return 0;
    }
    return fail(r, key, v, "\"fp32\" or \"bf16\"");
}

static int read_wall_clock(reader_t *r, const char *key, json_t *v) {
    bool on;
    if (read_bool(r, key, v, &on)) return 2;
    if (on) warn(r, key, "true has no effect in autosp-train, ignored");
    return 0;
}

static int read_passes(reader_t *r, const char *key, const json_t *v) {
    size_t i;
    const json_t *p;
    if (!json_is_array(v)) return fail(r, key, v, "an array of pass names");
    json_array_foreach(v, i, p) {
        if (!json_is_string(p)) return fail(r, key, v, "an array of pass names");
        if (!strcmp(json_string_value(p), "autosp")) r->out->autosp_pass = true;
    }
    if (!r->out->autosp_pass)
        warn(r, key,
             "no \"autosp\": ignored, libautosp compiles the graph for sequence "
             "parallelism anyway");
    return 0;
}

/* DeepCompile's switches: libautosp is the compiler here, so only "autosp" means anything. */
static int read_compile(reader_t *r, const char *key, json_t *v) {
    if (!json_is_object(v)) return fail(r, key, v, "an object");
    const char *k;
    json_t *x;
    char name[256];
    bool on;
    json_object_foreach(v, k, x) {
        join(name, sizeof name, key, k);
        if (!strcmp(k, "passes")) {
            if (read_passes(r, name, x)) return 2;
        } else if (!strcmp(k, "deepcompile")) {
            if (read_bool(r, name, x, &on)) return 2;
            if (on) warn(r, name, "true has no effect: libautosp compiles the graph itself");
        } else {
            warn(r, name, "has no effect in autosp-train, ignored");
        }
    }
    return 0;
}

/* ---- optimizer --------------------------------------------------------------------------- */

static int read_betas(const reader_t *r, const char *key, const json_t *v) {
    static const char want[] = "an array of two numbers in [0, 1)";
    if (skip_auto(r, key, v)) return 0;
    if (json_array_size(v) != 2) return fail(r, key, v, want);
    double b[2];
    for (size_t i = 0; i < 2; i++) {
        const json_t *x = json_array_get(v, i);
        b[i] = json_number_value(x);
        if (!json_is_number(x) || !(b[i] >= 0 && b[i] < 1)) return fail(r, key, v, want);
    }
    r->out->beta1 = b[0];
    r->out->beta2 = b[1];
    r->out->has_betas = true;
    return 0;
}

/* DeepSpeed's "Adam" decouples weight decay unless adam_w_mode is false; "AdamW" always does. */
static int read_adam_w_mode(const reader_t *r, const char *key, const json_t *v, bool plain_adam) {
    if (skip_auto(r, key, v) || json_is_true(v)) return 0;
    if (!json_is_false(v)) return fail(r, key, v, "true or false");
    if (plain_adam)
        return fail(r, key, v, "true: autosp-train trains with AdamW (decoupled weight decay)");
    warn(r, key, "false has no effect with type AdamW, as in DeepSpeed");
    return 0;
}

static int read_bias_correction(const reader_t *r, const char *key, const json_t *v) {
    if (skip_auto(r, key, v) || json_is_true(v)) return 0;
    return fail(r, key, v, "true: autosp-train's AdamW always corrects the moments' bias");
}

static int read_optimizer_param(const reader_t *r, const char *section, const char *key,
                                const json_t *v, bool plain_adam) {
    char name[256];
    const field_t *f = find_field(section, key);
    join(name, sizeof name, section, key);
    if (f) return read_field(r, f, v);
    if (!strcmp(key, "betas")) return read_betas(r, name, v);
    if (!strcmp(key, "adam_w_mode")) return read_adam_w_mode(r, name, v, plain_adam);
    if (!strcmp(key, "bias_correction")) return read_bias_correction(r, name, v);
    warn(r, name, "not supported by autosp-train, ignored");
    return 0;
}

/* A {"type": ..., "params": {...}} section: warns about its other keys, and gives its params
 * (NULL when absent) and their dotted name; 2 when params is not an object. */
static int section_params(reader_t *r, const char *key, json_t *v, char *section, size_t size,
                          json_t **params) {
    char name[256];
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) {
        if (strcmp(k, "type") && strcmp(k, "params"))
            warn(r, join(name, sizeof name, key, k), "not supported by autosp-train, ignored");
    }
    join(section, size, key, "params");
    *params = json_object_get(v, "params");
    if (*params && !json_is_object(*params)) return fail(r, section, *params, "an object");
    return 0;
}

static int read_optimizer(reader_t *r, const char *key, json_t *v) {
    if (!json_is_object(v)) return fail(r, key, v, "an object");
    char name[256], section[256];
    const json_t *type = json_object_get(v, "type");
    const char *t = json_string_value(type); /* NULL unless a string */
    if (!t || (strcasecmp(t, "AdamW") && strcasecmp(t, "Adam")))
        return fail(r, join(name, sizeof name, key, "type"), type,
                    "\"AdamW\" or \"Adam\" (autosp-train trains with AdamW)");
    bool plain_adam = !strcasecmp(t, "Adam");
    const char *k;
    json_t *x, *params;
    if (section_params(r, key, v, section, sizeof section, &params)) return 2;
    json_object_foreach(params, k, x) { /* no turns when params is absent */
        if (read_optimizer_param(r, section, k, x, plain_adam)) return 2;
    }
    return 0;
}

/* ---- scheduler --------------------------------------------------------------------------- */

enum { WARMUP_LR = 1, WARMUP_DECAY_LR = 2, WARMUP_COSINE_LR = 4, ANY_SCHEDULE = 7 };

/* The schedules autosp-train can follow: it warms up linearly from 0, then follows a cosine
 * from lr down to lr x min_lr_ratio over the remaining steps. */
typedef struct schedule {
    const char *name;
    unsigned bit;
    double min_lr_ratio; /* WarmupCosineLR's: DeepSpeed's default cos_min_ratio */
} schedule_t;
static const schedule_t schedules[] = {
    {"WarmupLR", WARMUP_LR, 1.0}, /* constant after warm-up: a cosine from lr to lr */
    {"WarmupDecayLR", WARMUP_DECAY_LR, 0.0},
    {"WarmupCosineLR", WARMUP_COSINE_LR, 1e-4},
};

/* Which schedule takes which params (DeepSpeed passes them as keyword arguments). */
static const struct {
    const char *key;
    unsigned schedules;
} schedule_params[] = {
    {"warmup_num_steps", ANY_SCHEDULE},
    {"warmup_type", ANY_SCHEDULE},
    {"last_batch_iteration", ANY_SCHEDULE},
    {"warmup_min_lr", WARMUP_LR | WARMUP_DECAY_LR},
    {"warmup_max_lr", WARMUP_LR | WARMUP_DECAY_LR},
    {"total_num_steps", WARMUP_DECAY_LR | WARMUP_COSINE_LR},
    {"warmup_min_ratio", WARMUP_COSINE_LR},
    {"cos_min_ratio", WARMUP_COSINE_LR},
};

static bool takes_param(const schedule_t *s, const char *key) {
    for (size_t i = 0; i < COUNT(schedule_params); i++)
        if (!strcmp(schedule_params[i].key, key)) return schedule_params[i].schedules & s->bit;
    return false;
}

/* warmup_min_lr, warmup_min_ratio: where DeepSpeed's warm-up starts. */
static int read_warmup_start(const reader_t *r, const char *key, const json_t *v) {
    char found[64];
    if (skip_auto(r, key, v)) return 0;
    if (!json_is_number(v)) return fail(r, key, v, "a number");
    if (json_number_value(v) != 0)
        warn(r, key, "%s ignored: autosp-train's warm-up starts from 0",
             show(v, found, sizeof found));
    return 0;
}

static int read_schedule_param(reader_t *r, const schedule_t *s, const char *section,
                               const char *key, const json_t *v) {
    char name[256], found[64];
    const field_t *f = find_field(section, key);
    join(name, sizeof name, section, key);
    if (!takes_param(s, key)) {
        warn(r, name, "not a parameter of %s, ignored", s->name);
        return 0;
    }
    if (f) return read_field(r, f, v);
    if (!strcmp(key, "warmup_max_lr"))
        return read_real(r, name, v, 0, 10, &r->has_max_lr, &r->max_lr);
    if (!strcmp(key, "warmup_min_lr") || !strcmp(key, "warmup_min_ratio"))
        return read_warmup_start(r, name, v);
    if (!strcmp(key, "last_batch_iteration") && !number_in(v, -1, -1, true))
        warn(r, name, "%s ignored: autosp-train resumes with --resume",
             show(v, found, sizeof found));
    return 0; /* warmup_type: checked once every param is read (check_warmup_type) */
}

/* DeepSpeed warms up logarithmically unless told "linear"; autosp-train always linearly. */
static void check_warmup_type(const reader_t *r, const char *section, const json_t *params) {
    char name[256], found[64];
    const json_t *t = json_object_get(params, "warmup_type");
    join(name, sizeof name, section, "warmup_type");
    if (r->out->has_warmup && r->out->warmup_steps == 0) return; /* no warm-up to shape */
    if (!t)
        warn(r, name,
             "not set, so DeepSpeed would warm up logarithmically; autosp-train warms "
             "up linearly");
    else if (!json_is_string(t) || strcmp(json_string_value(t), "linear"))
        warn(r, name, "%s: autosp-train warms up linearly", show(t, found, sizeof found));
}

static int read_scheduler(reader_t *r, const char *key, json_t *v) {
    if (!json_is_object(v)) return fail(r, key, v, "an object");
    char name[256], section[256];
    const json_t *type = json_object_get(v, "type");
    const schedule_t *s = NULL;
    for (size_t i = 0; i < COUNT(schedules); i++)
        if (json_is_string(type) && !strcmp(json_string_value(type), schedules[i].name))
            s = &schedules[i];
    join(name, sizeof name, key, "type");
    if (!s) return fail(r, name, type, "\"WarmupLR\", \"WarmupDecayLR\" or \"WarmupCosineLR\"");
    if (s->bit == WARMUP_DECAY_LR)
        warn(r, name, "WarmupDecayLR: decay is cosine, not linear, to 0");
    r->out->min_lr_ratio = s->min_lr_ratio;
    r->out->has_min_lr_ratio = true;
    const char *k;
    json_t *x, *params;
    if (section_params(r, key, v, section, sizeof section, &params)) return 2;
    json_object_foreach(params, k, x) { /* no turns when params is absent */
        if (read_schedule_param(r, s, section, k, x)) return 2;
    }
    check_warmup_type(r, section, params);
    return 0;
}

/* ---- the file ---------------------------------------------------------------------------- */

/* DeepSpeed's WarmupLR and WarmupDecayLR set the lr themselves, over the optimizer's. */
static void apply_max_lr(reader_t *r) {
    ds_config_t *c = r->out;
    if (!r->has_max_lr) return;
    if (c->has_lr && c->lr != r->max_lr)
        warn(r, "scheduler.params.warmup_max_lr",
             "%g overrides optimizer.params.lr %g, as in DeepSpeed", r->max_lr, c->lr);
    c->lr = r->max_lr;
    c->has_lr = true;
}

/* Top-level keys that are objects or need more than a range check. */
static const struct {
    const char *key;
    int (*read)(reader_t *r, const char *key, json_t *v);
} sections[] = {
    {"gradient_accumulation_steps", read_accumulation},
    {"zero_optimization", read_zero},
    {"optimizer", read_optimizer},
    {"scheduler", read_scheduler},
    {"fp16", read_precision},
    {"bf16", read_precision},
    {"bfloat16", read_precision},
    {"communication_data_type", read_comm_dtype},
    {"wall_clock_breakdown", read_wall_clock},
    {"compile", read_compile},
};

static int read_top_key(reader_t *r, const char *key, json_t *v) {
    const field_t *f = find_field("", key);
    if (f) return read_field(r, f, v);
    for (size_t i = 0; i < COUNT(sections); i++)
        if (!strcmp(sections[i].key, key)) return sections[i].read(r, key, v);
    warn(r, key, "not supported by autosp-train, ignored");
    return 0;
}

static int read_root(reader_t *r, json_t *root) {
    char found[64];
    const char *key;
    json_t *v;
    if (!json_is_object(root))
        return cli_usage_error(r->prog, "%s: found %s, expected an object of DeepSpeed settings",
                               r->path, show(root, found, sizeof found));
    json_object_foreach(root, key, v) {
        if (read_top_key(r, key, v)) return 2;
    }
    apply_max_lr(r);
    return 0;
}

int ds_config_load(const char *prog, const char *path, ds_config_t *out) {
    *out = (ds_config_t){0};
    FILE *f = fopen(path, "rb");
    if (!f) return cli_usage_error(prog, "%s: cannot read: %s", path, strerror(errno));
    /* DeepSpeed refuses repeated keys too, rather than let the last one win silently. */
    json_error_t jerr;
    json_t *root = json_loadf(f, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    int read_errno = ferror(f) ? errno : 0; /* a directory, say: not a JSON error */
    fclose(f);
    if (read_errno) {
        json_decref(root);
        return cli_usage_error(prog, "%s: cannot read: %s", path, strerror(read_errno));
    }
    if (!root)
        return cli_usage_error(prog, "%s: not JSON: line %d, column %d: %s", path, jerr.line,
                               jerr.column, jerr.text);
    reader_t r = {.prog = prog, .path = path, .out = out};
    int rc = read_root(&r, root);
    json_decref(root);
    if (rc) *out = (ds_config_t){0}; /* nothing half-read reaches the caller */
    return rc;
}
