/* Symbolic dims: parsing, printing, products, division and evaluation. */
#include "test_util.h"
#include "ir/ir.h"

static void roundtrip(autosp_graph_t *g, const char *text, const char *expect) {
    shape_t s;
    autosp_error_t err;
    if (shape_parse(g, text, &s, &err) != AUTOSP_OK) fail_msg("%s: %s", text, err.message);
    char buf[256];
    assert_string_equal(shape_str(g, &s, buf, sizeof buf), expect);
}

static void test_parse_print(void **state) {
    autosp_graph_t *g = new_graph();
    roundtrip(g, "B,S,64", "B,S,64");
    roundtrip(g, "", "");
    roundtrip(g, " B , S/4 ", "B,S/4");
    roundtrip(g, "S*B,2*S", "B*S,2*S"); /* canonical: symbols sorted, coefficient first */
    roundtrip(g, "S*4/8", "S/2");       /* reduced */
    roundtrip(g, "6/3", "2");
    roundtrip(g, "S*S/2", "S*S/2");
    autosp_graph_free(g);
}

static void expect_parse_error(const char *text, autosp_status_t st, const char *part) {
    autosp_graph_t *g = new_graph();
    shape_t s;
    autosp_error_t err;
    assert_int_equal(shape_parse(g, text, &s, &err), st);
    if (!strstr(err.message, part)) fail_msg("\"%s\" lacks \"%s\"", err.message, part);
    autosp_graph_free(g);
}

static void test_parse_errors(void **state) {
    expect_parse_error("B,T", AUTOSP_ERR_INVALID, "symbol \"T\" is not declared");
    expect_parse_error("B,0", AUTOSP_ERR_INVALID, "dims must be positive, found 0");
    expect_parse_error("B,-4", AUTOSP_ERR_INVALID, "expected an integer or a symbol at \"-4\"");
    expect_parse_error("B;S", AUTOSP_ERR_INVALID, "expected ',' between dims");
    expect_parse_error("S/B", AUTOSP_ERR_INVALID, "may only be divided by an integer");
    expect_parse_error("1,2,3,4,5,6,7", AUTOSP_ERR_LIMIT, "more than 6 dims");
    expect_parse_error("99999999999999999999", AUTOSP_ERR_LIMIT, "exceeds the limit");
    expect_parse_error("S*S*S*S*S*S*S*S*S", AUTOSP_ERR_LIMIT, "symbol factors");
    expect_parse_error("B,", AUTOSP_ERR_INVALID, "expected an integer or a symbol");
    expect_parse_error("S/2*3", AUTOSP_ERR_INVALID, "a divisor must come last in a dim");
}

static void test_eval(void **state) {
    autosp_graph_t *g = new_graph();
    shape_t s;
    assert_int_equal(shape_parse(g, "B,S/4,3*S", &s, NULL), AUTOSP_OK);
    int64_t dims[6], n;
    assert_int_equal(shape_eval(g, &s, dims, &n), 0); /* unbound */
    assert_int_equal(autosp_symbol_bind(g, "B", 2, NULL), AUTOSP_OK);
    assert_int_equal(autosp_symbol_bind(g, "S", 8, NULL), AUTOSP_OK);
    assert_int_equal(shape_eval(g, &s, dims, &n), 1);
    assert_int_equal(dims[0], 2);
    assert_int_equal(dims[1], 2);
    assert_int_equal(dims[2], 24);
    assert_int_equal(n, 96);
    assert_int_equal(autosp_symbol_bind(g, "S", 6, NULL), AUTOSP_OK); /* S/4 unused by tensors */
    assert_int_equal(shape_eval(g, &s, dims, &n), -1);                /* 6/4 is fractional */
    autosp_graph_free(g);
}

static void test_products_and_matching(void **state) {
    autosp_graph_t *g = new_graph();
    dim_t b = dim_symbol(0), s = dim_symbol(1), bs, sb, quarter, back;
    assert_true(dim_mul(b, s, &bs));
    assert_true(dim_mul(s, b, &sb));
    assert_true(dim_eq(bs, sb));
    assert_true(dim_scale(s, 1, 4, &quarter));
    assert_true(dim_scale(quarter, 4, 1, &back));
    assert_true(dim_eq(back, s)); /* S/4 * 4 == S */
    assert_false(dim_eq(quarter, s));
    assert_false(dim_match(g, s, dim_const(64)));
    autosp_symbol_bind(g, "S", 64, NULL);
    assert_true(dim_match(g, s, dim_const(64))); /* equal once bound */
    autosp_graph_free(g);
}

static void test_bind_rejects_fractional_tensor(void **state) {
    autosp_graph_t *g = new_graph();
    in_f32(g, "x", "B,S/4");
    autosp_error_t err;
    assert_int_equal(autosp_symbol_bind(g, "S", 10, &err), AUTOSP_ERR_INVALID);
    assert_string_equal(err.message, "symbol \"S\" = 10: tensor \"x\" of shape [B,S/4] has a "
                                     "dim that is not a whole number with S=10");
    assert_int_equal(autosp_symbol_value(g, 1), 0); /* left unbound */
    assert_int_equal(autosp_symbol_bind(g, "S", 12, &err), AUTOSP_OK);
    assert_int_equal(autosp_symbol_bind(g, "T", 12, &err), AUTOSP_ERR_INVALID);
    assert_string_equal(err.message, "symbol \"T\" is not declared");
    assert_int_equal(autosp_symbol_bind(g, "S", 0, &err), AUTOSP_ERR_INVALID);
    autosp_graph_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_print),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_eval),
        cmocka_unit_test(test_products_and_matching),
        cmocka_unit_test(test_bind_rejects_fractional_tensor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
