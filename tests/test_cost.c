/* Costs from the op table against closed-form formulas for whole models. */
#include <math.h>

#include "test_util.h"

static autosp_graph_t *load_example(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/examples/%s.json", AUTOSP_SOURCE_DIR, name);
    autosp_error_t err;
    autosp_graph_t *g = autosp_graph_load_file(path, &err);
    if (!g) fail_msg("%s", err.message);
    return g;
}

/* Elements of every parameter whose name ends in `suffix`. */
static double params_named(const autosp_graph_t *g, const char *suffix) {
    double n = 0;
    size_t ls = strlen(suffix);
    for (autosp_tensor_t t = 0; t < autosp_graph_num_tensors(g); t++) {
        const char *name = autosp_tensor_name(g, t);
        size_t ln = strlen(name);
        if (autosp_tensor_kind(g, t) == AUTOSP_KIND_PARAM && ln >= ls &&
            strcmp(name + ln - ls, suffix) == 0)
            n += (double)autosp_tensor_numel(g, t);
    }
    return n;
}

/* Llama 3.1 8B at S = 8192: the parameter count is the published one, and the forward FLOPs
 * are 2 x (matmul parameters) x tokens plus causal attention,
 *     4 * B * L * H * D * S(S+1)/2   (QK^T and PV over the attended pairs),
 * plus the norms, rope, swiglu, residual adds and the loss, which the formula leaves out and
 * which must stay under 1%. Embedding rows are gathered, not multiplied: they cost no FLOPs. */
static void test_llama3_8b(void **state) {
    autosp_graph_t *g = load_example("llama3.1-8b");
    const double S = 8192, B = 1, L = 32, H = 32, D = 128;
    assert_int_equal(autosp_symbol_bind(g, "S", (int64_t)S, NULL), AUTOSP_OK);
    autosp_graph_summary_t s;
    autosp_error_t err;
    if (autosp_graph_summarize(g, &s, &err) != AUTOSP_OK) fail_msg("%s", err.message);
    assert_int_equal(s.num_params, 8030261248); /* Meta's model card: 8.03B */
    double embedding = params_named(g, "tok_emb");
    assert_true(embedding == 128256.0 * 4096);
    double matmul_params = (double)s.num_params - embedding;
    double attention = 4 * B * L * H * D * S * (S + 1) / 2;
    double formula = 2 * matmul_params * B * S + attention;
    double rel = (s.cost.flops - formula) / formula;
    print_message("llama3.1-8b S=8192: %.6e FLOPs, formula %.6e, rel %.2e\n", s.cost.flops, formula,
                  rel);
    assert_true(rel >= 0 && rel < 0.01);
    assert_int_equal(s.nodes_by_op[AUTOSP_OP_ATTENTION], 32);
    autosp_graph_free(g);
}

/* GPT-2 124M: 124,439,808 parameters with tied embeddings (the well-known count). */
static void test_gpt2_124m(void **state) {
    autosp_graph_t *g = load_example("gpt2-124m");
    assert_int_equal(autosp_symbol_bind(g, "S", 1024, NULL), AUTOSP_OK);
    autosp_graph_summary_t s;
    assert_int_equal(autosp_graph_summarize(g, &s, NULL), AUTOSP_OK);
    assert_int_equal(s.num_params, 124439808);
    autosp_graph_free(g);
}

/* Per-node costs follow the op table: a linear layer, a causal and a full attention. */
static void test_node_costs(void **state) {
    autosp_graph_t *g = new_graph();
    autosp_symbol_bind(g, "B", 2, NULL);
    autosp_symbol_bind(g, "S", 10, NULL);
    autosp_tensor_t x = in_f32(g, "x", "B,S,8"), w = in_f32(g, "w", "4,8"), b = in_f32(g, "b", "4");
    autosp_linear(g, x, w, b, "fc");
    autosp_tensor_t q = in_f32(g, "q", "B,S,2,16");
    autosp_attention(g, q, q, q, AUTOSP_NO_TENSOR, 2, 2, true, 0, "causal");
    autosp_attention(g, q, q, q, AUTOSP_NO_TENSOR, 2, 2, false, 0, "full");
    autosp_cost_t c;
    assert_int_equal(autosp_node_cost(g, 0, &c, NULL), AUTOSP_OK);
    assert_true(c.flops == 2.0 * 2 * 10 * 4 * 8 + 2 * 10 * 4);
    assert_true(c.bytes_read == 4.0 * (2 * 10 * 8 + 4 * 8 + 4));
    assert_true(c.bytes_written == 4.0 * 2 * 10 * 4);
    assert_int_equal(autosp_node_cost(g, 1, &c, NULL), AUTOSP_OK);
    assert_true(c.flops == 4.0 * 2 * 2 * 16 * (10 * 11 / 2));
    assert_int_equal(autosp_node_cost(g, 2, &c, NULL), AUTOSP_OK);
    assert_true(c.flops == 4.0 * 2 * 2 * 16 * 100);
    autosp_graph_free(g);
}

static void test_cost_needs_bound_symbols(void **state) {
    autosp_graph_t *g = new_graph();
    autosp_silu(g, in_f32(g, "x", "B,S"), "act");
    autosp_cost_t c;
    autosp_error_t err;
    assert_int_equal(autosp_node_cost(g, 0, &c, &err), AUTOSP_ERR_INVALID);
    assert_string_equal(err.message, "node \"act\" (silu): tensor \"x\" uses symbol \"B\", which "
                                     "is unbound (bind it, e.g. --set B=N)");
    autosp_graph_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama3_8b),
        cmocka_unit_test(test_gpt2_124m),
        cmocka_unit_test(test_node_costs),
        cmocka_unit_test(test_cost_needs_bound_symbols),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
