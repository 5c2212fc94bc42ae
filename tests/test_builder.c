/* The C builder API: sticky errors, generic node construction, clone, inspection. */
#include "test_util.h"

#include "ir/ir.h" /* tensor_rename */

static void test_mlp_and_inspection(void **state) {
    autosp_graph_t *g = new_graph();
    autosp_tensor_t x = autosp_input(g, "x", AUTOSP_F32, "B,S,64", AUTOSP_ROLE_OTHER, 1);
    autosp_tensor_t w = autosp_param(g, "w", AUTOSP_F32, "128,64", AUTOSP_INIT_NORMAL, 0.02);
    autosp_tensor_t h = autosp_silu(g, autosp_linear(g, x, w, AUTOSP_NO_TENSOR, "fc"), "act");
    assert_int_equal(autosp_output(g, h), AUTOSP_OK);
    assert_int_equal(autosp_graph_status(g, NULL), AUTOSP_OK);
    assert_int_equal(autosp_graph_verify(g, 0, NULL), AUTOSP_OK);
    assert_int_equal(autosp_graph_num_nodes(g), 2);
    assert_int_equal(autosp_graph_num_tensors(g), 4);
    assert_string_equal(autosp_node_name(g, 0), "fc");
    assert_int_equal(autosp_node_op(g, 1), AUTOSP_OP_SILU);
    assert_int_equal(autosp_node_input(g, 1, 0), autosp_node_output(g, 0, 0));
    assert_int_equal(autosp_tensor_find(g, "act"), h);
    assert_int_equal(autosp_tensor_find(g, "nope"), AUTOSP_NO_TENSOR);
    assert_int_equal(autosp_tensor_kind(g, w), AUTOSP_KIND_PARAM);
    assert_int_equal(autosp_tensor_producer(g, h), 1);
    assert_int_equal(autosp_tensor_producer(g, x), -1);
    assert_int_equal(autosp_tensor_seq_dim(g, x), 1);
    assert_int_equal(autosp_tensor_numel(g, h), -1); /* B, S unbound */
    autosp_error_t err;
    assert_int_equal(autosp_graph_verify(g, AUTOSP_VERIFY_BOUND, &err), AUTOSP_ERR_INVALID);
    assert_string_equal(err.message, "symbol \"B\" is unbound (bind it, e.g. --set B=N)");
    autosp_symbol_bind(g, "B", 2, NULL);
    autosp_symbol_bind(g, "S", 10, NULL);
    assert_int_equal(autosp_tensor_numel(g, h), 2 * 10 * 128);
    assert_int_equal(autosp_graph_verify(g, AUTOSP_VERIFY_BOUND, NULL), AUTOSP_OK);
    autosp_graph_free(g);
}

static void test_errors_are_sticky(void **state) {
    autosp_graph_t *g = new_graph();
    autosp_tensor_t x = in_f32(g, "x", "B,S,64");
    autosp_tensor_t bad = autosp_linear(g, x, in_f32(g, "w", "8,32"), AUTOSP_NO_TENSOR, "fc");
    assert_int_equal(bad, AUTOSP_NO_TENSOR);
    /* later calls do nothing and keep the first message */
    assert_int_equal(autosp_silu(g, bad, "act"), AUTOSP_NO_TENSOR);
    assert_int_equal(autosp_silu(g, x, "act2"), AUTOSP_NO_TENSOR);
    assert_int_equal(autosp_output(g, x), AUTOSP_ERR_INVALID);
    assert_int_equal(autosp_graph_num_nodes(g), 0);
    autosp_error_t err;
    assert_int_equal(autosp_graph_verify(g, 0, &err), AUTOSP_ERR_INVALID);
    assert_error_and_free(g, "node \"fc\" (linear)");
}

static void test_names(void **state) {
    autosp_graph_t *g = new_graph();
    in_f32(g, "x", "B");
    in_f32(g, "x", "B");
    assert_error_and_free(g, "tensor \"x\" is defined twice");

    g = new_graph();
    autosp_tensor_t x = in_f32(g, "x", "B");
    autosp_silu(g, x, "a");
    autosp_silu(g, x, "a");
    assert_error_and_free(g, "node \"a\" is defined twice");

    g = new_graph();
    in_f32(g, "bad\"name", "B");
    assert_error_and_free(g, "contains a quote, backslash or control character");

    g = new_graph();
    char long_name[400];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    in_f32(g, long_name, "B");
    assert_error_and_free(g, "is 399 bytes, limit 255");

    g = new_graph();
    autosp_input(g, "t", AUTOSP_I32, "B,S", AUTOSP_ROLE_TOKENS, 2);
    assert_error_and_free(g, "input \"t\": seq_dim 2 is impossible for a tensor of 2 dims, "
                             "expected -1..1");

    g = new_graph();
    assert_int_equal(autosp_symbol(g, "9S", 0), AUTOSP_ERR_INVALID);
    assert_error_and_free(g, "symbol \"9S\": expected a name of letters");
}

static void test_node_add_schema(void **state) {
    autosp_graph_t *g = new_graph();
    autosp_tensor_t x = in_f32(g, "x", "B,S,64"), w = in_f32(g, "w", "64");
    autosp_tensor_t in[2] = {x, w};
    autosp_attr_t eps_str = {.name = "eps", .type = AUTOSP_ATTR_STRING, .s = "tiny"};
    autosp_node_add(g, AUTOSP_OP_RMSNORM, "n", in, 2, NULL, 1, &eps_str, 1, NULL);
    assert_error_and_free(g, "node \"n\" (rmsnorm): attribute \"eps\" is a string, expected a "
                             "float");

    g = new_graph();
    in[0] = in_f32(g, "x", "B,S,64");
    in[1] = in_f32(g, "w", "64");
    autosp_attr_t unknown = {.name = "epsilon", .type = AUTOSP_ATTR_FLOAT, .f = 1e-6};
    autosp_node_add(g, AUTOSP_OP_RMSNORM, "n", in, 2, NULL, 1, &unknown, 1, NULL);
    assert_error_and_free(g, "unknown attribute \"epsilon\" (rmsnorm takes: eps)");

    g = new_graph();
    in[0] = in_f32(g, "x", "B,S,64");
    autosp_node_add(g, AUTOSP_OP_SCALE, "s", in, 1, NULL, 1, NULL, 0, NULL);
    assert_error_and_free(g, "node \"s\" (scale): missing required attribute \"alpha\"");

    g = new_graph();
    in[0] = in_f32(g, "x", "B,S,64");
    autosp_node_add(g, AUTOSP_OP_SILU, "s", in, 2, NULL, 1, NULL, 0, NULL);
    assert_error_and_free(g, "node \"s\" (silu): has 2 inputs, expected 1");

    g = new_graph();
    in[0] = in_f32(g, "x", "B,S,64");
    autosp_node_add(g, AUTOSP_OP_SILU, "s", in, 1, NULL, 2, NULL, 0, NULL);
    assert_error_and_free(g, "has 2 outputs, expected 1");

    g = new_graph();
    in[0] = in_f32(g, "x", "B,S,64");
    autosp_attr_t b = {.name = "causal", .type = AUTOSP_ATTR_BOOL, .i = 2};
    autosp_tensor_t q[3] = {in_f32(g, "q", "B,S,2,8"), in[0], in[0]};
    autosp_node_add(g, AUTOSP_OP_ATTENTION, "a", q, 3, NULL, 1, &b, 1, NULL);
    assert_error_and_free(g, "attribute \"causal\" is 2, expected a bool (0 or 1)");
}

static void test_clone_is_independent(void **state) {
    autosp_graph_t *g = new_graph();
    autosp_tensor_t x = in_f32(g, "x", "B,S,64");
    int64_t perm[3] = {2, 0, 1};
    autosp_output(g, autosp_transpose(g, autosp_reshape(g, x, "B,S,64", "r"), perm, 3, "t"));
    autosp_graph_t *c = autosp_graph_clone(g);
    assert_non_null(c);
    char *a = autosp_graph_save_string(g, NULL), *b = autosp_graph_save_string(c, NULL);
    assert_string_equal(a, b);
    autosp_graph_free(g); /* the clone owns its own strings and attributes */
    assert_int_equal(autosp_graph_verify(c, 0, NULL), AUTOSP_OK);
    char *b2 = autosp_graph_save_string(c, NULL);
    assert_string_equal(b, b2);
    autosp_free(a);
    autosp_free(b);
    autosp_free(b2);
    autosp_graph_free(c);
}

/* tensor_rename moves one entry of the name map: every other name must still be found, across
 * several growths of the map and renames that open holes in the middle of probe runs. */
static void test_rename_keeps_lookups(void **state) {
    autosp_graph_t *g = new_graph();
    enum { N = 300 };
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "t%d", i);
        assert_int_equal(in_f32(g, name, "B"), i);
    }
    for (int i = 0; i < N; i += 3) {
        snprintf(name, sizeof name, "t%d.renamed", i);
        assert_int_equal(tensor_rename(g, i, name, NULL), AUTOSP_OK);
    }
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, i % 3 ? "t%d" : "t%d.renamed", i);
        assert_int_equal(autosp_tensor_find(g, name), i);
        snprintf(name, sizeof name, "t%d", i);
        assert_int_equal(autosp_tensor_find(g, name), i % 3 ? i : -1);
    }
    autosp_error_t err;
    assert_int_equal(tensor_rename(g, 1, "t2", &err), AUTOSP_ERR_INVALID);
    assert_string_equal(err.message, "tensor \"t2\" is defined twice");
    autosp_graph_free(g);
}

/* The verifier's messages about a node start with its label (formatted only on failure). */
static void test_verify_names_the_node(void **state) {
    autosp_graph_t *g = new_graph();
    autosp_tensor_t a = autosp_silu(g, in_f32(g, "x", "B"), "a");
    assert_int_equal(autosp_output(g, a), AUTOSP_OK);
    autosp_error_t err;
    assert_int_equal(autosp_graph_verify(g, 0, &err), AUTOSP_OK);
    g->tensors[a].dtype = AUTOSP_I32; /* what a broken pass could leave behind */
    assert_int_equal(autosp_graph_verify(g, 0, &err), AUTOSP_ERR_INVALID);
    assert_string_equal(err.message, "node \"a\" (silu): output \"a\" has dtype i32, expected f32");
    autosp_graph_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlp_and_inspection),
        cmocka_unit_test(test_errors_are_sticky),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_node_add_schema),
        cmocka_unit_test(test_clone_is_independent),
        cmocka_unit_test(test_rename_keeps_lookups),
        cmocka_unit_test(test_verify_names_the_node),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
