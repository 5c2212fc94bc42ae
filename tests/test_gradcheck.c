/* Gradient checks through the whole stack: build a graph, autodiff it, run the joint graph
 * with the executor, and compare every parameter's gradient with central finite differences
 * of the loss computed by the same executor. One line per case, as ggml's test-backend-ops.
 *
 * Tolerance: the loss is computed in f32 through a whole graph (~1e-6 relative), so a central
 * difference with step eps carries a rounding error of about 1e-6 * |L| / eps, plus O(eps^2)
 * truncation, which is large for the strongly curved norms at eps = 1e-2. With eps = 3e-3 and
 * |L| ~ 2 the rounding part is ~3e-4 absolute; we accept
 * |a - n| <= 2e-2 * max(|a|, |n|) + 5e-4. */
#include <math.h>

#include "test_util.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float uniform(void) { /* xorshift64*, in [-1, 1) */
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return (float)((rng * 2685821657736338717ull) >> 40) / (float)(1 << 23) - 1.0f;
}

/* Fills params with N(0,~0.5)-ish values (ones-init params near 1), ids with valid values. */
static void fill_inputs(autosp_graph_t *j, autosp_executor_t *ex, int vocab) {
    for (autosp_tensor_t t = 0; t < autosp_graph_num_tensors(j); t++) {
        autosp_kind_t k = autosp_tensor_kind(j, t);
        if (k == AUTOSP_KIND_VALUE) continue;
        int64_t n = autosp_tensor_numel(j, t);
        void *p = autosp_executor_data(ex, autosp_tensor_name(j, t));
        if (autosp_tensor_dtype(j, t) == AUTOSP_F32)
            for (int64_t i = 0; i < n; i++) ((float *)p)[i] = 0.5f * uniform();
        else if (autosp_tensor_role(j, t) == AUTOSP_ROLE_POSITIONS)
            for (int64_t i = 0; i < n; i++) ((int32_t *)p)[i] = (int32_t)(i % 5) * 3;
        else if (autosp_tensor_role(j, t) == AUTOSP_ROLE_SEGMENT_IDS)
            for (int64_t i = 0; i < n; i++)
                ((int32_t *)p)[i] = i < n / 3 ? 0 : (i < n - 1 ? 1 : -1);
        else /* ids; labels (named so) also get an ignored position */
            for (int64_t i = 0; i < n; i++)
                ((int32_t *)p)[i] = i == 2 && !strcmp(autosp_tensor_name(j, t), "labels")
                                        ? -100
                                        : (int32_t)((i * 7 + 3) % vocab);
    }
}

static float run_loss(autosp_executor_t *ex) {
    autosp_error_t err;
    if (autosp_executor_run(ex, &err) != AUTOSP_OK) fail_msg("%s", err.message);
    return *(float *)autosp_executor_data(ex, "loss");
}

/* Checks `samples` coordinates of every parameter (all of them when fewer). */
static void gradcheck(autosp_graph_t *g, int vocab, int samples, const char *what) {
    autosp_error_t err;
    autosp_graph_t *j = autosp_autodiff(g, &err);
    if (!j) fail_msg("%s: %s", what, err.message);
    autosp_executor_t *ex = autosp_executor_new(j, &err);
    if (!ex) fail_msg("%s: %s", what, err.message);
    fill_inputs(j, ex, vocab);
    run_loss(ex);
    int checked = 0, bad = 0;
    for (autosp_tensor_t t = 0; t < autosp_graph_num_tensors(g); t++) {
        if (autosp_tensor_kind(g, t) != AUTOSP_KIND_PARAM) continue;
        char gname[300];
        snprintf(gname, sizeof gname, "%s.grad", autosp_tensor_name(g, t));
        float *p = autosp_executor_data(ex, autosp_tensor_name(g, t));
        const float *grad = autosp_executor_data(ex, gname);
        int64_t n = autosp_tensor_numel(g, t);
        float *analytic = malloc(sizeof(float) * (size_t)n);
        memcpy(analytic, grad, sizeof(float) * (size_t)n); /* the runs below overwrite it */
        for (int s = 0; s < samples && s < n; s++) {
            int64_t i = n <= samples ? s : (int64_t)((uniform() + 1) * 0.5f * (float)n) % n;
            const float eps = 3e-3f, keep = p[i];
            p[i] = keep + eps;
            double up = run_loss(ex);
            p[i] = keep - eps;
            double down = run_loss(ex);
            p[i] = keep;
            double numeric = (up - down) / (2 * eps), a = analytic[i];
            double tol = 2e-2 * fmax(fabs(a), fabs(numeric)) + 5e-4;
            checked++;
            if (fabs(a - numeric) > tol) {
                if (bad++ < 5)
                    print_error("%s: %s[%lld] analytic %.6g numeric %.6g\n", what,
                                autosp_tensor_name(g, t), (long long)i, a, numeric);
            }
        }
        free(analytic);
    }
    autosp_executor_free(ex);
    autosp_graph_free(j);
    if (bad) fail_msg("%s: %d of %d gradient coordinates off", what, bad, checked);
}

/* loss = cross_entropy(reshape(y, (rows, last)), labels): a smooth scalar of every y */
static void finish(autosp_graph_t *g, autosp_tensor_t y, const char *rows_last) {
    autosp_tensor_t logits = autosp_reshape(g, y, rows_last, "logits");
    char rows[64];
    snprintf(rows, sizeof rows, "%.*s", (int)(strchr(rows_last, ',') - rows_last), rows_last);
    autosp_tensor_t labels = autosp_input(g, "labels", AUTOSP_I32, rows, AUTOSP_ROLE_OTHER, -1);
    autosp_output(g, autosp_cross_entropy(g, logits, labels, -100, "loss"));
}

static autosp_graph_t *small(void) {
    autosp_graph_t *g = autosp_graph_new("op");
    autosp_symbol(g, "B", 2);
    autosp_symbol(g, "S", 5);
    return g;
}

static autosp_tensor_t P(autosp_graph_t *g, const char *name, const char *shape) {
    return autosp_param(g, name, AUTOSP_F32, shape, AUTOSP_INIT_NORMAL, 0.02);
}

static void check(autosp_graph_t *g, const char *what) {
    autosp_error_t err;
    if (autosp_graph_status(g, &err) != AUTOSP_OK) fail_msg("%s: %s", what, err.message);
    gradcheck(g, 6, 1000, what);
    autosp_graph_free(g);
}

static void test_ops(void **state) {
    autosp_graph_t *g = small();
    finish(g, autosp_linear(g, P(g, "x", "B,S,4"), P(g, "w", "6,4"), P(g, "b", "6"), "y"), "10,6");
    check(g, "linear");
    g = small();
    finish(g, autosp_matmul(g, P(g, "a", "B,4,S"), P(g, "m", "6,4"), true, true, "y"), "10,6");
    check(g, "matmul trans_a trans_b shared b");
    g = small();
    finish(g,
           autosp_embedding(g, autosp_input(g, "ids", AUTOSP_I32, "B,S", AUTOSP_ROLE_TOKENS, 1),
                            P(g, "table", "6,6"), "y"),
           "10,6");
    check(g, "embedding");
    g = small();
    finish(g, autosp_add(g, P(g, "a", "B,S,6"), P(g, "b", "S,1"), "y"), "10,6");
    check(g, "add broadcast");
    g = small();
    finish(g, autosp_mul(g, P(g, "a", "B,S,6"), P(g, "b", "6"), "y"), "10,6");
    check(g, "mul broadcast");
    g = small();
    finish(g, autosp_scale(g, P(g, "a", "B,S,6"), -1.5, "y"), "10,6");
    check(g, "scale");
    g = small();
    finish(g, autosp_rmsnorm(g, P(g, "x", "B,S,6"), P(g, "w", "6"), 1e-5, "y"), "10,6");
    check(g, "rmsnorm");
    g = small();
    finish(g, autosp_layernorm(g, P(g, "x", "B,S,6"), P(g, "w", "6"), P(g, "b", "6"), 1e-5, "y"),
           "10,6");
    check(g, "layernorm");
    g = small();
    finish(g,
           autosp_rope(g, P(g, "x", "B,S,3,4"),
                       autosp_input(g, "pos", AUTOSP_I32, "B,S", AUTOSP_ROLE_POSITIONS, 1), 100.0,
                       "y"),
           "10,12");
    check(g, "rope");
    g = small();
    finish(g, autosp_silu(g, P(g, "x", "B,S,6"), "y"), "10,6");
    check(g, "silu");
    g = small();
    finish(g, autosp_gelu(g, P(g, "x", "B,S,6"), "y"), "10,6");
    check(g, "gelu");
    g = small();
    finish(g, autosp_swiglu(g, P(g, "x", "B,S,6"), P(g, "u", "B,S,6"), "y"), "10,6");
    check(g, "swiglu");
    g = small();
    finish(g, autosp_softmax(g, P(g, "x", "B,S,6"), "y"), "10,6");
    check(g, "softmax");
    g = small();
    int64_t perm[3] = {1, 0, 2};
    finish(g, autosp_transpose(g, P(g, "x", "B,S,6"), perm, 3, "y"), "10,6");
    check(g, "transpose");
    g = small(); /* GQA's kv heads repeated for more ranks: each copy's gradient is summed */
    finish(g, autosp_repeat(g, P(g, "x", "B,S,2,3"), 2, 2, "y"), "10,12");
    check(g, "repeat");
}

static void attention_case(int hq, int hkv, bool causal, bool segments, const char *what) {
    autosp_graph_t *g = small();
    char qs[32], ks[32], rl[32];
    snprintf(qs, sizeof qs, "B,S,%d,4", hq);
    snprintf(ks, sizeof ks, "B,S,%d,4", hkv);
    snprintf(rl, sizeof rl, "10,%d", hq * 4);
    autosp_tensor_t seg =
        segments ? autosp_input(g, "seg", AUTOSP_I32, "B,S", AUTOSP_ROLE_SEGMENT_IDS, 1)
                 : AUTOSP_NO_TENSOR;
    finish(g,
           autosp_attention(g, P(g, "q", qs), P(g, "k", ks), P(g, "v", ks), seg, hq, hkv, causal, 0,
                            "y"),
           rl);
    check(g, what);
}

static void test_attention(void **state) {
    attention_case(2, 2, true, false, "attention causal");
    attention_case(4, 2, true, false, "attention GQA causal");
    attention_case(2, 1, false, false, "attention GQA full");
    attention_case(2, 2, true, true, "attention with segment ids and padding");
}

static void model_case(const char *preset, bool segments) {
    autosp_model_config_t cfg;
    assert_true(autosp_model_preset(preset, &cfg));
    cfg.segment_ids = segments;
    cfg.vocab_size = 16;
    cfg.max_seq_len = 16;
    autosp_graph_t *g = autosp_model_build(&cfg, preset, NULL);
    assert_non_null(g);
    autosp_symbol_bind(g, "B", 2, NULL);
    autosp_symbol_bind(g, "S", 8, NULL);
    gradcheck(g, cfg.vocab_size, 4, preset);
    autosp_graph_free(g);
}

static void test_whole_models(void **state) {
    model_case("llama-tiny", false);
    model_case("llama-tiny-gqa", true);
    model_case("gpt2-tiny", false);
}

/* Ids a user controls are checked before a kernel indexes with them: V itself is out of range. */
static void test_bad_ids(void **state) {
    autosp_graph_t *g = small();
    autosp_tensor_t ids = autosp_input(g, "ids", AUTOSP_I32, "B,S", AUTOSP_ROLE_TOKENS, 1);
    finish(g, autosp_embedding(g, ids, P(g, "table", "6,6"), "y"), "10,6");
    autosp_error_t err;
    autosp_executor_t *ex = autosp_executor_new(g, &err);
    assert_non_null(ex);
    int32_t *id = autosp_executor_data(ex, "ids"), *labels = autosp_executor_data(ex, "labels");
    for (int i = 0; i < 10; i++) id[i] = labels[i] = i % 6;
    assert_int_equal(autosp_executor_run(ex, &err), AUTOSP_OK);
    id[3] = 6;
    assert_int_equal(autosp_executor_run(ex, &err), AUTOSP_ERR_INVALID);
    assert_string_equal(err.message, "node \"y\" (embedding): input \"ids\" has 6 at index 3, "
                                     "expected 0..5");
    id[3] = 0;
    labels[9] = 6; /* labels may be ignore_index (-100), nothing else outside 0..V-1 */
    assert_int_equal(autosp_executor_run(ex, &err), AUTOSP_ERR_INVALID);
    assert_string_equal(err.message, "node \"loss\" (cross_entropy): input \"labels\" has 6 at "
                                     "index 9, expected 0..5");
    labels[9] = -100;
    assert_int_equal(autosp_executor_run(ex, &err), AUTOSP_OK);
    autosp_executor_free(ex);
    autosp_graph_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ops),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_whole_models),
        cmocka_unit_test(test_bad_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
