/* DeepSpeed configs for autosp-train --config (tools/ds_config.c): real files (tests/ds_config/)
 * read into every field, the schedules' floors, "auto", every warning named, and every error
 * refused with exit code 2 and a message that names the key. What the loader prints to stderr
 * is captured and checked. */
#define _POSIX_C_SOURCE 200809L
#include <unistd.h>

#include "test_util.h"
#include "ds_config.h"

#define FIXTURES AUTOSP_SOURCE_DIR "/tests/ds_config/"
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

typedef struct loaded {
    int rc;
    ds_config_t cfg;
    char *err; /* everything printed to stderr */
} loaded_t;

/* ds_config_load(path), with stderr captured into a temporary file. */
static loaded_t load_path(const char *path) {
    loaded_t l;
    FILE *capture = tmpfile();
    assert_non_null(capture);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0 && dup2(fileno(capture), STDERR_FILENO) >= 0);
    l.rc = ds_config_load("autosp-train", path, &l.cfg);
    fflush(stderr);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    long n = ftell(capture);
    assert_true(n >= 0);
    l.err = calloc(1, (size_t)n + 1);
    assert_non_null(l.err);
    rewind(capture);
    assert_int_equal(fread(l.err, 1, (size_t)n, capture), (size_t)n);
    fclose(capture);
    return l;
}

/* One per process, so the plain and the sanitizer builds can run side by side. */
static char text_path[64];

/* json written to text_path, then loaded. */
static loaded_t load_text(const char *json) {
    FILE *f = fopen(text_path, "w");
    assert_non_null(f);
    assert_true(fputs(json, f) >= 0);
    assert_int_equal(fclose(f), 0);
    loaded_t l = load_path(text_path);
    unlink(text_path);
    return l;
}

static void assert_printed(const loaded_t *l, const char *part) {
    if (!strstr(l->err, part)) fail_msg("stderr lacks \"%s\"; it was:\n%s", part, l->err);
}

static void assert_not_printed(const loaded_t *l, const char *part) {
    if (strstr(l->err, part)) fail_msg("stderr has \"%s\"; it was:\n%s", part, l->err);
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* ---- whole files ------------------------------------------------------------------------- */

/* DeepSpeedExamples' benchmarks/autosp/configs/autosp_config.json. */
static void test_deepspeed_examples_autosp(void **state) {
    loaded_t l = load_path(FIXTURES "deepspeed_examples_autosp.json");
    assert_int_equal(l.rc, 0);
    assert_true(l.cfg.has_sp && l.cfg.sp == 2);
    assert_true(l.cfg.has_zero && l.cfg.zero_stage == 0);
    assert_false(l.cfg.has_grad_clip); /* "auto" */
    assert_true(l.cfg.autosp_pass);
    assert_true(l.cfg.has_micro_batch && l.cfg.micro_batch == 1);
    assert_true(l.cfg.has_train_batch && l.cfg.train_batch == 1);
    assert_true(l.cfg.has_log_every && l.cfg.log_every == 2000);
    assert_false(l.cfg.has_lr || l.cfg.has_betas || l.cfg.has_eps || l.cfg.has_weight_decay);
    assert_false(l.cfg.has_warmup || l.cfg.has_total_steps || l.cfg.has_min_lr_ratio);
    const char *prefix = "autosp-train: warning: " FIXTURES "deepspeed_examples_autosp.json: ";
    char line[512];
    assert_true(l.cfg.has_bf16 && l.cfg.bf16); /* autosp-train compares it with the model */
    assert_false(l.cfg.has_comm_bf16);
    assert_not_printed(&l, "bf16");
    snprintf(line, sizeof line, "%sgradient_clipping: \"auto\": the trainer's default is kept\n",
             prefix);
    assert_printed(&l, line);
    assert_printed(&l, "compile.deepcompile: true has no effect");
    assert_not_printed(&l, "wall_clock_breakdown"); /* false asks for nothing */
    assert_int_equal(count_lines(l.err), 2);
    free(l.err);
}

/* AdamW + WarmupCosineLR with every field set, all of it supported: no warning at all. */
static void test_full_adamw_cosine(void **state) {
    loaded_t l = load_path(FIXTURES "adamw_cosine.json");
    assert_int_equal(l.rc, 0);
    assert_string_equal(l.err, "");
    const ds_config_t *c = &l.cfg;
    assert_true(c->has_micro_batch && c->micro_batch == 8);
    assert_true(c->has_train_batch && c->train_batch == 16);
    assert_true(c->has_sp && c->sp == 4);
    assert_true(c->has_zero && c->zero_stage == 1);
    assert_true(c->has_grad_clip && c->grad_clip == 0.5);
    assert_true(c->has_lr && c->lr == 6e-4);
    assert_true(c->has_betas && c->beta1 == 0.9 && c->beta2 == 0.95);
    assert_true(c->has_eps && c->eps == 1e-10);
    assert_true(c->has_weight_decay && c->weight_decay == 0.05);
    assert_true(c->has_warmup && c->warmup_steps == 20);
    assert_true(c->has_total_steps && c->total_steps == 500);
    assert_true(c->has_min_lr_ratio && c->min_lr_ratio == 0.05);
    assert_true(c->has_log_every && c->log_every == 10);
    assert_true(c->autosp_pass);
    free(l.err);
}

/* HF Accelerate's template: every "auto" is left unset, and each one is named. */
static void test_hf_accelerate_auto(void **state) {
    loaded_t l = load_path(FIXTURES "hf_accelerate_auto.json");
    assert_int_equal(l.rc, 0);
    const ds_config_t *c = &l.cfg;
    assert_false(c->has_micro_batch || c->has_train_batch || c->has_zero || c->has_grad_clip);
    assert_false(c->has_lr || c->has_betas || c->has_eps || c->has_weight_decay);
    assert_false(c->has_warmup || c->has_total_steps);
    assert_true(c->has_min_lr_ratio && c->min_lr_ratio == 1e-4); /* WarmupCosineLR's default */
    static const char *const autos[] = {"fp16.enabled",
                                        "bf16.enabled",
                                        "optimizer.params.lr",
                                        "optimizer.params.betas",
                                        "optimizer.params.eps",
                                        "optimizer.params.weight_decay",
                                        "scheduler.params.warmup_num_steps",
                                        "scheduler.params.total_num_steps",
                                        "zero_optimization.stage",
                                        "gradient_accumulation_steps",
                                        "gradient_clipping",
                                        "train_batch_size",
                                        "train_micro_batch_size_per_gpu"};
    for (size_t i = 0; i < COUNT(autos); i++) {
        char part[128];
        snprintf(part, sizeof part, ": %s: \"auto\": the trainer's default is kept\n", autos[i]);
        assert_printed(&l, part);
    }
    assert_int_equal(count_lines(l.err), (int)COUNT(autos));
    free(l.err);
}

/* ---- schedules --------------------------------------------------------------------------- */

/* WarmupLR holds the lr after warm-up: a cosine from lr to lr x 1. */
static void test_warmup_lr(void **state) {
    loaded_t l = load_text("{\"scheduler\": {\"type\": \"WarmupLR\", \"params\": "
                           "{\"warmup_min_lr\": 0, \"warmup_max_lr\": 0.001, "
                           "\"warmup_num_steps\": 100}}}");
    assert_int_equal(l.rc, 0);
    assert_true(l.cfg.has_min_lr_ratio && l.cfg.min_lr_ratio == 1.0);
    assert_true(l.cfg.has_lr && l.cfg.lr == 0.001);
    assert_true(l.cfg.has_warmup && l.cfg.warmup_steps == 100);
    assert_false(l.cfg.has_total_steps);
    /* DeepSpeed's default warm-up is logarithmic */
    assert_printed(&l, "scheduler.params.warmup_type: not set, so DeepSpeed would warm up "
                       "logarithmically; autosp-train warms up linearly\n");
    assert_int_equal(count_lines(l.err), 1);
    free(l.err);
}

/* WarmupDecayLR: decays to 0 (cosine here); its warmup_max_lr overrides the optimizer's lr. */
static void test_warmup_decay_lr(void **state) {
    loaded_t l = load_text(
        "{\"optimizer\": {\"type\": \"adam\", \"params\": {\"lr\": 0.01, \"adam_w_mode\": true}},"
        " \"scheduler\": {\"type\": \"WarmupDecayLR\", \"params\": {\"warmup_min_lr\": 1e-5, "
        "\"warmup_max_lr\": 0.002, \"warmup_num_steps\": 10, \"total_num_steps\": 90, "
        "\"warmup_type\": \"log\"}}}");
    assert_int_equal(l.rc, 0);
    assert_true(l.cfg.has_min_lr_ratio && l.cfg.min_lr_ratio == 0.0);
    assert_true(l.cfg.has_lr && l.cfg.lr == 0.002);
    assert_true(l.cfg.has_total_steps && l.cfg.total_steps == 90);
    assert_printed(&l, "scheduler.type: WarmupDecayLR: decay is cosine, not linear, to 0\n");
    assert_printed(&l, "scheduler.params.warmup_min_lr: 1e-5 ignored: autosp-train's warm-up "
                       "starts from 0\n");
    assert_printed(&l, "scheduler.params.warmup_type: \"log\": autosp-train warms up linearly\n");
    assert_printed(&l, "scheduler.params.warmup_max_lr: 0.002 overrides optimizer.params.lr "
                       "0.01, as in DeepSpeed\n");
    assert_int_equal(count_lines(l.err), 4);
    free(l.err);
}

/* Equal lrs in both places: nothing to warn about. No warm-up: its shape does not matter. */
static void test_same_lr_no_warmup(void **state) {
    loaded_t l =
        load_text("{\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.002}},"
                  " \"scheduler\": {\"type\": \"WarmupLR\", \"params\": {\"warmup_max_lr\": 0.002, "
                  "\"warmup_num_steps\": 0}}}");
    assert_int_equal(l.rc, 0);
    assert_string_equal(l.err, "");
    assert_true(l.cfg.has_lr && l.cfg.lr == 0.002);
    assert_true(l.cfg.has_warmup && l.cfg.warmup_steps == 0);
    free(l.err);
}

/* Mixed precision: bf16.enabled (either name) and communication_data_type, no warning. */
static void test_bf16(void **state) {
    loaded_t l = load_text("{\"bfloat16\": {\"enabled\": false}, \"communication_data_type\": "
                           "\"bf16\"}");
    assert_int_equal(l.rc, 0);
    assert_string_equal(l.err, "");
    assert_true(l.cfg.has_bf16 && !l.cfg.bf16);
    assert_true(l.cfg.has_comm_bf16 && l.cfg.comm_bf16);
    free(l.err);
}

/* WarmupCosineLR without cos_min_ratio ends at DeepSpeed's default; it takes no warmup_max_lr. */
static void test_cosine_defaults(void **state) {
    loaded_t l = load_text("{\"scheduler\": {\"type\": \"WarmupCosineLR\", \"params\": "
                           "{\"total_num_steps\": 50, \"warmup_max_lr\": 0.1, "
                           "\"warmup_min_ratio\": 0.1, \"warmup_type\": \"linear\"}}}");
    assert_int_equal(l.rc, 0);
    assert_true(l.cfg.has_min_lr_ratio && l.cfg.min_lr_ratio == 1e-4);
    assert_false(l.cfg.has_lr);
    assert_printed(&l, "scheduler.params.warmup_max_lr: not a parameter of WarmupCosineLR, "
                       "ignored\n");
    assert_printed(&l, "scheduler.params.warmup_min_ratio: 0.1 ignored: autosp-train's warm-up "
                       "starts from 0\n");
    assert_int_equal(count_lines(l.err), 2);
    free(l.err);
}

/* ---- numbers ----------------------------------------------------------------------------- */

/* A whole real is an integer, an integer is a number. */
static void test_integers_and_reals(void **state) {
    loaded_t l = load_text("{\"train_micro_batch_size_per_gpu\": 2.0, \"steps_per_print\": 2e3,"
                           " \"gradient_clipping\": 1, \"zero_optimization\": {\"stage\": 2.0},"
                           " \"optimizer\": {\"type\": \"ADAMW\", \"params\": {\"lr\": 0, "
                           "\"betas\": [0, 0.5]}}}");
    assert_int_equal(l.rc, 0);
    assert_string_equal(l.err, "");
    assert_true(l.cfg.has_micro_batch && l.cfg.micro_batch == 2);
    assert_true(l.cfg.has_log_every && l.cfg.log_every == 2000);
    assert_true(l.cfg.has_grad_clip && l.cfg.grad_clip == 1.0);
    assert_true(l.cfg.has_zero && l.cfg.zero_stage == 2);
    assert_true(l.cfg.has_lr && l.cfg.lr == 0.0);
    assert_true(l.cfg.has_betas && l.cfg.beta1 == 0.0 && l.cfg.beta2 == 0.5);
    free(l.err);
}

/* ---- warnings: the key is named, the load succeeds ---------------------------------------- */

static void test_warnings(void **state) {
    static const struct {
        const char *json, *warning;
    } cases[] = {
        {"{\"tensorboard\": {\"enabled\": true}}", ": tensorboard: not supported by autosp-train"},
        {"{\"zero_optimization\": {\"stage\": 1, \"overlap_comm\": true}}",
         ": zero_optimization.overlap_comm: has no effect in autosp-train, ignored\n"},
        {"{\"fp16\": {\"enabled\": true, \"loss_scale\": 0, \"initial_scale_power\": 16}}",
         ": fp16.enabled: true has no effect: autosp-train trains in the model's dtype (f32 or "
         "bf16), without loss scaling\n"},
        {"{\"wall_clock_breakdown\": true}", ": wall_clock_breakdown: true has no effect"},
        {"{\"compile\": {\"passes\": [\"prefetch\"]}}",
         ": compile.passes: no \"autosp\": ignored, libautosp compiles the graph"},
        {"{\"compile\": {\"passes\": [\"autosp\"], \"offload_activation\": true}}",
         ": compile.offload_activation: has no effect in autosp-train, ignored\n"},
        {"{\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"amsgrad\": true}}}",
         ": optimizer.params.amsgrad: not supported by autosp-train, ignored\n"},
        {"{\"optimizer\": {\"type\": \"Adam\", \"adam_w_mode\": true}}",
         ": optimizer.adam_w_mode: not supported by autosp-train, ignored\n"},
        {"{\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"adam_w_mode\": false}}}",
         ": optimizer.params.adam_w_mode: false has no effect with type AdamW"},
        {"{\"scheduler\": {\"type\": \"WarmupLR\", \"params\": {\"warmup_type\": \"linear\", "
         "\"cycle_min_lr\": 0.1}}}",
         ": scheduler.params.cycle_min_lr: not a parameter of WarmupLR, ignored\n"},
        {"{\"scheduler\": {\"type\": \"WarmupLR\", \"params\": {\"warmup_type\": \"linear\", "
         "\"total_num_steps\": 10}}}",
         ": scheduler.params.total_num_steps: not a parameter of WarmupLR, ignored\n"},
        {"{\"scheduler\": {\"type\": \"WarmupLR\", \"params\": {\"warmup_type\": \"linear\", "
         "\"last_batch_iteration\": 40}}}",
         ": scheduler.params.last_batch_iteration: 40 ignored: autosp-train resumes with "
         "--resume\n"},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        loaded_t l = load_text(cases[i].json);
        if (l.rc != 0) fail_msg("%s: returned %d: %s", cases[i].json, l.rc, l.err);
        char part[256];
        snprintf(part, sizeof part, "autosp-train: warning: %s%s", text_path, cases[i].warning);
        assert_printed(&l, part);
        assert_int_equal(count_lines(l.err), 1);
        free(l.err);
    }
}

/* ---- errors: exit code 2, the key, the value found and what is expected ------------------- */

static void test_errors(void **state) {
    static const struct {
        const char *json, *message; /* after "autosp-train: <path>: " */
    } cases[] = {
        {"{\"a\": 1,}", "not JSON: line 1, column 9: "},
        {"{\"a\": 1, \"a\": 2}", "not JSON: line 1, column 12: duplicate object key near"},
        {"[1, 2]", "found [1,2], expected an object of DeepSpeed settings"},
        {"{\"train_micro_batch_size_per_gpu\": \"x\"}",
         "train_micro_batch_size_per_gpu: found \"x\", expected an integer in 1..65536"},
        {"{\"train_micro_batch_size_per_gpu\": 0}",
         "train_micro_batch_size_per_gpu: found 0, expected an integer in 1..65536"},
        {"{\"train_micro_batch_size_per_gpu\": 2.5}",
         "train_micro_batch_size_per_gpu: found 2.5, expected an integer"},
        {"{\"train_batch_size\": -8}", "train_batch_size: found -8, expected an integer in 1.."},
        {"{\"sequence_parallel_size\": \"2\"}", "sequence_parallel_size: found \"2\", expected"},
        {"{\"sequence_parallel_size\": true}", "sequence_parallel_size: found true, expected"},
        {"{\"steps_per_print\": null}", "steps_per_print: found null, expected an integer"},
        {"{\"gradient_clipping\": -1}", "gradient_clipping: found -1, expected a number in 0.."},
        {"{\"zero_optimization\": {\"stage\": 1.5}}",
         "zero_optimization.stage: found 1.5, expected an integer in 0..3"},
        {"{\"zero_optimization\": {\"stage\": 4}}",
         "zero_optimization.stage: found 4, expected an integer in 0..3"},
        {"{\"zero_optimization\": 1}", "zero_optimization: found 1, expected an object"},
        {"{\"gradient_accumulation_steps\": 4}",
         "gradient_accumulation_steps: found 4, expected 1: autosp-train does not accumulate"},
        {"{\"optimizer\": {\"type\": \"SGD\"}}",
         "optimizer.type: found \"SGD\", expected \"AdamW\" or \"Adam\""},
        {"{\"optimizer\": {\"type\": \"Lamb\", \"params\": {\"lr\": 0.1}}}",
         "optimizer.type: found \"Lamb\""},
        {"{\"optimizer\": {\"params\": {\"lr\": 0.1}}}",
         "optimizer.type: missing, expected \"AdamW\" or \"Adam\""},
        {"{\"optimizer\": {\"type\": \"Adam\", \"params\": {\"adam_w_mode\": false}}}",
         "optimizer.params.adam_w_mode: found false, expected true: autosp-train trains with "
         "AdamW"},
        {"{\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"bias_correction\": false}}}",
         "optimizer.params.bias_correction: found false, expected true"},
        {"{\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": \"big\"}}}",
         "optimizer.params.lr: found \"big\", expected a number in 0..10"},
        {"{\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"eps\": 0}}}",
         "optimizer.params.eps: found 0, expected a number"},
        {"{\"optimizer\": {\"type\": \"AdamW\", \"params\": [1]}}",
         "optimizer.params: found [1], expected an object"},
        {"{\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"betas\": [0.9]}}}",
         "optimizer.params.betas: found [0.9], expected an array of two numbers in [0, 1)"},
        {"{\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"betas\": [0.9, 1.0]}}}",
         "optimizer.params.betas: found [0.9,1.0], expected"},
        {"{\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"betas\": [0.9, \"x\"]}}}",
         "optimizer.params.betas: found [0.9,\"x\"], expected"},
        {"{\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"betas\": 0.9}}}",
         "optimizer.params.betas: found 0.9, expected"},
        {"{\"scheduler\": {\"type\": \"OneCycle\"}}",
         "scheduler.type: found \"OneCycle\", expected \"WarmupLR\", \"WarmupDecayLR\" or "
         "\"WarmupCosineLR\""},
        {"{\"scheduler\": {\"params\": {}}}", "scheduler.type: missing, expected"},
        {"{\"scheduler\": {\"type\": \"WarmupCosineLR\", \"params\": {\"total_num_steps\": 0}}}",
         "scheduler.params.total_num_steps: found 0, expected an integer in 1.."},
        {"{\"scheduler\": {\"type\": \"WarmupCosineLR\", \"params\": {\"cos_min_ratio\": 2}}}",
         "scheduler.params.cos_min_ratio: found 2, expected a number in 0..1"},
        {"{\"scheduler\": {\"type\": \"WarmupLR\", \"params\": {\"warmup_min_lr\": \"0\"}}}",
         "scheduler.params.warmup_min_lr: found \"0\", expected a number"},
        {"{\"bf16\": true}", "bf16: found true, expected an object"},
        {"{\"fp16\": {\"enabled\": 1}}", "fp16.enabled: found 1, expected true or false"},
        {"{\"communication_data_type\": \"fp16\"}",
         "communication_data_type: found \"fp16\", expected \"fp32\" or \"bf16\""},
        {"{\"compile\": {\"passes\": \"autosp\"}}",
         "compile.passes: found \"autosp\", expected an array of pass names"},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        loaded_t l = load_text(cases[i].json);
        if (l.rc != 2) fail_msg("%s: returned %d, expected 2: %s", cases[i].json, l.rc, l.err);
        char part[512];
        snprintf(part, sizeof part, "autosp-train: %s: %s", text_path, cases[i].message);
        assert_printed(&l, part);
        assert_printed(&l, " (see autosp-train --help)\n");
        assert_false(l.cfg.has_micro_batch || l.cfg.has_sp || l.cfg.has_lr); /* nothing half-read */
        free(l.err);
    }
}

/* The whole message, once, byte for byte. */
static void test_exact_message(void **state) {
    loaded_t l =
        load_text("{\"sequence_parallel_size\": 2, \"zero_optimization\": {\"stage\": 4}}");
    assert_int_equal(l.rc, 2);
    char want[512];
    snprintf(want, sizeof want,
             "autosp-train: %s: zero_optimization.stage: found 4, expected an integer in 0..3 "
             "(see autosp-train --help)\n",
             text_path);
    assert_string_equal(l.err, want);
    assert_false(l.cfg.has_sp);
    free(l.err);
}

static void test_unreadable(void **state) {
    loaded_t l = load_path("/nonexistent/ds_config.json");
    assert_int_equal(l.rc, 2);
    assert_string_equal(l.err, "autosp-train: /nonexistent/ds_config.json: cannot read: No such "
                               "file or directory (see autosp-train --help)\n");
    free(l.err);
    l = load_path("/tmp"); /* opens, but does not read */
    assert_int_equal(l.rc, 2);
    assert_printed(&l, "autosp-train: /tmp: cannot read: Is a directory");
    free(l.err);
}

int main(void) {
    snprintf(text_path, sizeof text_path, "/tmp/test_ds_config.%ld.json", (long)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deepspeed_examples_autosp),
        cmocka_unit_test(test_full_adamw_cosine),
        cmocka_unit_test(test_hf_accelerate_auto),
        cmocka_unit_test(test_warmup_lr),
        cmocka_unit_test(test_warmup_decay_lr),
        cmocka_unit_test(test_same_lr_no_warmup),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_cosine_defaults),
        cmocka_unit_test(test_integers_and_reals),
        cmocka_unit_test(test_warnings),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_exact_message),
        cmocka_unit_test(test_unreadable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
