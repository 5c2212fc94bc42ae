/* The chunked lm head and loss (passes/chunked_loss.c): which graphs it fuses, that a step's
 * loss and every gradient equal the unfused step's (f32 within 1e-6, bf16 within its
 * rounding), that the plan drops the logits, and its errors. One process; test_sp compares
 * chunked against unchunked across ranks. */
#include <math.h>

#include "test_util.h"

static int count_op(const autosp_graph_t *g, autosp_op_t op) {
    int n = 0;
    for (int i = 0; i < autosp_graph_num_nodes(g); i++) n += autosp_node_op(g, i) == op;
    return n;
}

static autosp_graph_t *model(const char *preset, autosp_dtype_t dtype, int64_t B, int64_t S) {
    autosp_model_config_t cfg;
    assert_true(autosp_model_preset(preset, &cfg));
    cfg.dtype = dtype;
    autosp_graph_t *g = autosp_model_build(&cfg, preset, NULL);
    assert_non_null(g);
    assert_int_equal(autosp_symbol_bind(g, "B", B, NULL), AUTOSP_OK);
    assert_int_equal(autosp_symbol_bind(g, "S", S, NULL), AUTOSP_OK);
    return g;
}

/* Every bundled family: one fused node, no logits tensor left; tied (gpt2) or not. */
static void test_fuses_presets(void **state) {
    const char *presets[] = {"llama-tiny", "llama-tiny-gqa", "gpt2-tiny", "llama3.1-8b"};
    for (size_t p = 0; p < sizeof presets / sizeof *presets; p++) {
        autosp_graph_t *fwd = preset_graph(presets[p], 1, 64);
        autosp_error_t err;
        autosp_graph_t *g = autosp_chunked_loss(fwd, 0, &err);
        if (!g) fail_msg("%s: %s", presets[p], err.message);
        assert_int_equal(count_op(fwd, AUTOSP_OP_CROSS_ENTROPY), 1);
        assert_int_equal(count_op(g, AUTOSP_OP_CROSS_ENTROPY), 0);
        assert_int_equal(count_op(g, AUTOSP_OP_LINEAR_CROSS_ENTROPY), 1);
        assert_int_equal(count_op(g, AUTOSP_OP_LINEAR), count_op(fwd, AUTOSP_OP_LINEAR) - 1);
        assert_true(autosp_tensor_find(fwd, "logits") >= 0);
        assert_true(autosp_tensor_find(g, "logits") < 0);
        assert_string_equal(autosp_tensor_name(g, autosp_graph_output(g, 0)), "loss");
        autosp_graph_free(g);
        autosp_graph_free(fwd);
    }
}

/* Logits that something else reads (here: kept as an output) stay: nothing is fused. */
static void test_keeps_read_logits(void **state) {
    autosp_graph_t *fwd = preset_graph("llama-tiny", 1, 64);
    assert_int_equal(autosp_output(fwd, autosp_tensor_find(fwd, "logits")), AUTOSP_OK);
    autosp_graph_t *g = autosp_chunked_loss(fwd, 0, NULL);
    assert_non_null(g);
    assert_int_equal(count_op(g, AUTOSP_OP_LINEAR_CROSS_ENTROPY), 0);
    assert_int_equal(count_op(g, AUTOSP_OP_CROSS_ENTROPY), 1);
    autosp_graph_free(g);
    autosp_graph_free(fwd);
}

static autosp_trainer_t *trainer(const autosp_graph_t *fwd, int64_t chunk) {
    autosp_train_config_t cfg = autosp_train_config_default();
    cfg.loss_chunk = chunk;
    autosp_error_t err;
    autosp_trainer_t *tr = autosp_trainer_new(fwd, &cfg, &err);
    if (!tr) fail_msg("loss chunk %lld: %s", (long long)chunk, err.message);
    autosp_trainer_init_params(tr, 7);
    const autosp_graph_t *j = autosp_trainer_graph(tr);
    for (autosp_tensor_t t = 0; t < autosp_graph_num_tensors(j); t++)
        if (autosp_tensor_kind(j, t) == AUTOSP_KIND_INPUT)
            fill_input(j, t, autosp_trainer_data(tr, autosp_tensor_name(j, t)));
    int32_t *labels = autosp_trainer_data(tr, "labels");
    for (int64_t i = 0; i < autosp_tensor_numel(j, autosp_tensor_find(j, "labels")); i += 7)
        labels[i] = -100; /* some ignored targets */
    return tr;
}

/* ||a - b|| / ||b|| over every parameter gradient (f32: the gradients are f32 in both dtypes) */
static double grad_error(autosp_trainer_t *a, autosp_trainer_t *b, const autosp_graph_t *fwd,
                         double *worst, char *worst_name) {
    enum { MAX_PARAMS = 256 };
    double diff[MAX_PARAMS], norm[MAX_PARAMS], largest = 0, total_diff = 0, total = 0;
    int n = 0;
    for (autosp_tensor_t t = 0; t < autosp_graph_num_tensors(fwd); t++) {
        if (autosp_tensor_kind(fwd, t) != AUTOSP_KIND_PARAM) continue;
        char name[AUTOSP_MAX_NAME + 8];
        snprintf(name, sizeof name, "%s.grad", autosp_tensor_name(fwd, t));
        const float *x = autosp_trainer_data(a, name), *y = autosp_trainer_data(b, name);
        assert_non_null(x);
        assert_non_null(y);
        assert_true(n < MAX_PARAMS);
        diff[n] = norm[n] = 0;
        for (int64_t i = 0; i < autosp_tensor_numel(fwd, t); i++) {
            diff[n] += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
            norm[n] += (double)y[i] * y[i];
        }
        total_diff += diff[n], total += norm[n];
        largest = norm[n] > largest ? norm[n] : largest;
        n++;
    }
    /* A gradient that is zero in exact arithmetic is rounding noise (GPT-2's key bias: softmax
     * ignores a shift of a query's scores): each tensor's error is relative to its own norm or
     * 1e-3 of the largest gradient's, whichever is larger. */
    *worst = 0;
    for (int k = 0, i = 0; k < autosp_graph_num_tensors(fwd); k++) {
        if (autosp_tensor_kind(fwd, k) != AUTOSP_KIND_PARAM) continue;
        double scale = norm[i] > 1e-6 * largest ? norm[i] : 1e-6 * largest;
        double rel = sqrt(diff[i] / scale);
        if (rel > *worst)
            *worst = rel,
            snprintf(worst_name, AUTOSP_MAX_NAME + 8, "%s.grad", autosp_tensor_name(fwd, k));
        i++;
    }
    return sqrt(total_diff / total);
}

/* The step's loss and gradients, chunked (several sizes, one that does not divide the rows,
 * one of a single row, one above the rows) against unchunked. */
static void check_exact(const char *preset, autosp_dtype_t dtype, double bound) {
    autosp_graph_t *fwd = model(preset, dtype, 2, 64); /* 128 rows */
    autosp_trainer_t *ref = trainer(fwd, AUTOSP_LOSS_UNCHUNKED);
    float ref_loss;
    assert_int_equal(autosp_trainer_compute(ref, &ref_loss, NULL), AUTOSP_OK);
    const int64_t chunks[] = {0, 48, 1, 1000};
    for (size_t c = 0; c < sizeof chunks / sizeof *chunks; c++) {
        autosp_trainer_t *tr = trainer(fwd, chunks[c]);
        assert_int_equal(count_op(autosp_trainer_graph(tr), AUTOSP_OP_LINEAR_CROSS_ENTROPY), 1);
        float loss;
        assert_int_equal(autosp_trainer_compute(tr, &loss, NULL), AUTOSP_OK);
        double worst;
        char worst_name[AUTOSP_MAX_NAME + 8] = "";
        double all = grad_error(tr, ref, fwd, &worst, worst_name);
        double loss_rel = fabs((double)loss - ref_loss) / fabs((double)ref_loss);
        print_message("%-14s %-4s chunk %4lld: loss %.6f rel %.1e, gradients rel %.1e (worst "
                      "%.1e, %s)\n",
                      preset, autosp_dtype_name(dtype), (long long)chunks[c], loss, loss_rel, all,
                      worst, worst_name);
        assert_true(loss_rel <= bound);
        assert_true(worst <= bound);
        autosp_trainer_free(tr);
    }
    autosp_trainer_free(ref);
    autosp_graph_free(fwd);
}

static void test_exact_f32(void **state) {
    check_exact("llama-tiny", AUTOSP_F32, 1e-6);
    check_exact("gpt2-tiny", AUTOSP_F32, 1e-6); /* tied: the lm head's gradient meets wte's */
}

/* bf16: the unfused graph rounds the logits and their gradient to bf16, the fused one keeps
 * the logits in f32 and rounds only the gradient (for its products): they differ by bf16
 * roundings of the logits, about 2^-8 relative, through the gradients of every layer. */
static void test_exact_bf16(void **state) {
    check_exact("llama-tiny", AUTOSP_BF16, 2e-2);
    check_exact("gpt2-tiny", AUTOSP_BF16, 2e-2);
}

/* Llama 3.1 8B (bf16, V = 128,256) at S = 4096: the plan loses at least the logits (rows x V
 * bf16, and their gradient beside them at the backward's start) and gains one chunk's f32
 * workspace. The executor stays inside the plan (llama-tiny). */
static void test_memory(void **state) {
    autosp_graph_t *fwd = preset_graph("llama3.1-8b", 1, 4096);
    int64_t planned[2];
    for (int fused = 0; fused < 2; fused++) {
        autosp_parallel_config_t cfg = autosp_parallel_config_default();
        cfg.loss_chunk = fused ? 0 : AUTOSP_LOSS_UNCHUNKED;
        autosp_graph_t *step = autosp_compile_training(fwd, &cfg, NULL);
        assert_non_null(step);
        autosp_memory_plan_t m;
        assert_int_equal(autosp_plan_memory(step, 0, autosp_backend_cpu(), &m, NULL), AUTOSP_OK);
        planned[fused] = m.total;
        autosp_graph_free(step);
    }
    const int64_t logits = 4096LL * 128256 * 2;
    print_message("llama3.1-8b S=4096: planned %.3f GiB unchunked, %.3f GiB chunked (logits "
                  "%.3f GiB)\n",
                  planned[0] / 1073741824.0, planned[1] / 1073741824.0, logits / 1073741824.0);
    assert_true(planned[0] - planned[1] >= logits);
    autosp_graph_free(fwd);

    fwd = preset_graph("llama-tiny", 1, 1024);
    autosp_trainer_t *tr = trainer(fwd, 0);
    assert_int_equal(autosp_trainer_compute(tr, NULL, NULL), AUTOSP_OK);
    assert_true(autosp_trainer_touched_bytes(tr) <= autosp_trainer_arena_bytes(tr));
    autosp_trainer_free(tr);
    autosp_graph_free(fwd);
}

static void test_errors(void **state) {
    autosp_graph_t *fwd = preset_graph("llama-tiny", 1, 64);
    autosp_error_t err;
    assert_null(autosp_chunked_loss(fwd, -2, &err));
    assert_int_equal(err.status, AUTOSP_ERR_INVALID);
    assert_non_null(strstr(err.message, "chunk = -2"));
    autosp_train_config_t cfg = autosp_train_config_default();
    cfg.loss_chunk = -5;
    assert_null(autosp_trainer_new(fwd, &cfg, &err));
    assert_non_null(strstr(err.message, "loss_chunk -5"));
    autosp_graph_free(fwd);

    /* a node with a negative chunk, as JSON could give it */
    autosp_graph_t *g = new_graph();
    autosp_tensor_t x = in_f32(g, "x", "B,S,4");
    autosp_tensor_t w = autosp_param(g, "w", AUTOSP_F32, "6,4", AUTOSP_INIT_NORMAL, 0.02);
    autosp_tensor_t labels = autosp_input(g, "labels", AUTOSP_I32, "B,S", AUTOSP_ROLE_LABELS, 1);
    autosp_attr_t attr = {.name = "chunk", .type = AUTOSP_ATTR_INT, .i = -3};
    autosp_tensor_t in[3] = {x, w, labels}, out;
    autosp_node_add(g, AUTOSP_OP_LINEAR_CROSS_ENTROPY, "loss", in, 3, NULL, 1, &attr, 1, &out);
    assert_error_and_free(g, "attribute \"chunk\" is -3");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fuses_presets), cmocka_unit_test(test_keeps_read_logits),
        cmocka_unit_test(test_exact_f32),     cmocka_unit_test(test_exact_bf16),
        cmocka_unit_test(test_memory),        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
