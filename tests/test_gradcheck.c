/* Gradient checks through the whole stack (gradcheck.h): whole models, and ids a user controls
 * checked before a kernel indexes with them. Every op's own gradient check is a row of
 * test_ops.c. */
#include "gradcheck.h"

static autosp_graph_t *small(void) {
    autosp_graph_t *g = autosp_graph_new("op");
    autosp_symbol(g, "B", 2);
    autosp_symbol(g, "S", 5);
    return g;
}

static autosp_tensor_t P(autosp_graph_t *g, const char *name, const char *shape) {
    return autosp_param(g, name, AUTOSP_F32, shape, AUTOSP_INIT_NORMAL, 0.02);
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
        cmocka_unit_test(test_whole_models),
        cmocka_unit_test(test_bad_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
