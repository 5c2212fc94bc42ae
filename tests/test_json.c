/* The JSON format: load -> save -> load gives the identical graph, for every example graph and
 * for hand-written documents; nodes may come in any order; saving is atomic. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"

/* Structural comparison through the public API (independent of the writer). */
static void assert_same_graph(const autosp_graph_t *a, const autosp_graph_t *b) {
    assert_string_equal(autosp_graph_name(a), autosp_graph_name(b));
    assert_int_equal(autosp_graph_num_symbols(a), autosp_graph_num_symbols(b));
    for (int i = 0; i < autosp_graph_num_symbols(a); i++) {
        assert_string_equal(autosp_symbol_name(a, i), autosp_symbol_name(b, i));
        assert_int_equal(autosp_symbol_value(a, i), autosp_symbol_value(b, i));
    }
    assert_int_equal(autosp_graph_num_tensors(a), autosp_graph_num_tensors(b));
    for (autosp_tensor_t t = 0; t < autosp_graph_num_tensors(a); t++) {
        char sa[256], sb[256];
        autosp_tensor_t u = autosp_tensor_find(b, autosp_tensor_name(a, t));
        assert_int_not_equal(u, AUTOSP_NO_TENSOR);
        assert_int_equal(autosp_tensor_kind(a, t), autosp_tensor_kind(b, u));
        assert_int_equal(autosp_tensor_dtype(a, t), autosp_tensor_dtype(b, u));
        assert_int_equal(autosp_tensor_role(a, t), autosp_tensor_role(b, u));
        assert_int_equal(autosp_tensor_seq_dim(a, t), autosp_tensor_seq_dim(b, u));
        assert_string_equal(autosp_tensor_shape_str(a, t, sa, 256),
                            autosp_tensor_shape_str(b, u, sb, 256));
    }
    assert_int_equal(autosp_graph_num_nodes(a), autosp_graph_num_nodes(b));
    for (int i = 0; i < autosp_graph_num_nodes(a); i++) {
        assert_string_equal(autosp_node_name(a, i), autosp_node_name(b, i));
        assert_int_equal(autosp_node_op(a, i), autosp_node_op(b, i));
        assert_int_equal(autosp_node_num_inputs(a, i), autosp_node_num_inputs(b, i));
        for (int k = 0; k < autosp_node_num_inputs(a, i); k++)
            assert_string_equal(autosp_tensor_name(a, autosp_node_input(a, i, k)),
                                autosp_tensor_name(b, autosp_node_input(b, i, k)));
    }
    assert_int_equal(autosp_graph_num_outputs(a), autosp_graph_num_outputs(b));
}

static void roundtrip_text(const char *what, const char *text) {
    autosp_error_t err;
    autosp_graph_t *g1 = autosp_graph_load_string(text, strlen(text), &err);
    if (!g1) fail_msg("%s: %s", what, err.message);
    char *s1 = autosp_graph_save_string(g1, &err);
    assert_non_null(s1);
    autosp_graph_t *g2 = autosp_graph_load_string(s1, strlen(s1), &err);
    if (!g2) fail_msg("%s (saved): %s", what, err.message);
    assert_same_graph(g1, g2);
    char *s2 = autosp_graph_save_string(g2, &err);
    assert_string_equal(s1, s2); /* and every field the writer knows, byte for byte */
    autosp_free(s1);
    autosp_free(s2);
    autosp_graph_free(g1);
    autosp_graph_free(g2);
}

static void test_every_example_roundtrips(void **state) {
    DIR *d = opendir(AUTOSP_SOURCE_DIR "/examples");
    assert_non_null(d);
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".json") != 0) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/examples/%s", AUTOSP_SOURCE_DIR, e->d_name);
        char *text = read_text(path);
        assert_non_null(text);
        roundtrip_text(e->d_name, text);
        free(text);
        count++;
    }
    closedir(d);
    assert_true(count >= 6); /* llama-tiny, gpt2-tiny and the presets */
}

/* Nodes out of order, outputs given as names, attributes left to their defaults. */
static const char *unordered =
    "{\"format\": \"autosp-graph\", \"version\": 1, \"name\": \"mlp\",\n"
    " \"symbols\": {\"B\": 2, \"S\": null},\n"
    " \"inputs\": [{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [\"B\", \"S\", 8],"
    "   \"role\": \"other\", \"seq_dim\": 1}],\n"
    " \"params\": [{\"name\": \"w\", \"dtype\": \"f32\", \"shape\": [16, 8]},"
    "   {\"name\": \"g\", \"dtype\": \"f32\", \"shape\": [16], \"init\": \"ones\"}],\n"
    " \"nodes\": [\n"
    "  {\"name\": \"n\", \"op\": \"rmsnorm\", \"inputs\": [\"h\", \"g\"]},\n"
    "  {\"name\": \"y\", \"op\": \"scale\", \"inputs\": [\"n\"], \"attrs\": {\"alpha\": 2}},\n"
    "  {\"name\": \"fc\", \"op\": \"linear\", \"inputs\": [\"x\", \"w\"], \"outputs\": [\"h\"]}\n"
    " ],\n"
    " \"outputs\": [\"y\"]}\n";

static void test_unordered_nodes_are_sorted(void **state) {
    autosp_error_t err;
    autosp_graph_t *g = autosp_graph_load_string(unordered, strlen(unordered), &err);
    if (!g) fail_msg("%s", err.message);
    assert_string_equal(autosp_node_name(g, 0), "fc");
    assert_string_equal(autosp_node_name(g, 1), "n");
    assert_string_equal(autosp_node_name(g, 2), "y");
    assert_int_equal(autosp_symbol_value(g, 0), 2);
    assert_int_equal(autosp_symbol_value(g, 1), 0);
    char *text = autosp_graph_save_string(g, NULL);
    assert_non_null(strstr(text, "\"attrs\": {\"alpha\": 2.0}"));
    assert_non_null(strstr(text, "\"eps\": 1e-5")); /* shortest exact form, not 17 digits */
    assert_null(strstr(text, "1.0000000000000001e-05"));
    autosp_free(text);
    autosp_graph_free(g);
    roundtrip_text("unordered", unordered);
}

static void test_save_file_is_atomic(void **state) {
    autosp_error_t err;
    autosp_graph_t *g = autosp_graph_load_string(unordered, strlen(unordered), &err);
    assert_non_null(g);
    char dir[] = "/tmp/autosp-json-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/out.json", dir);
    assert_int_equal(autosp_graph_save_file(g, path, &err), AUTOSP_OK);
    autosp_graph_t *back = autosp_graph_load_file(path, &err);
    assert_non_null(back);
    assert_same_graph(g, back);
    autosp_graph_free(back);
    /* a folder that does not exist: an i/o error, and nothing is left behind */
    snprintf(path, sizeof path, "%s/missing/out.json", dir);
    assert_int_equal(autosp_graph_save_file(g, path, &err), AUTOSP_ERR_IO);
    assert_non_null(strstr(err.message, "cannot write"));
    DIR *d = opendir(dir);
    int entries = 0;
    for (struct dirent *e; (e = readdir(d));) entries += e->d_name[0] != '.';
    closedir(d);
    assert_int_equal(entries, 1); /* out.json only: no temp files */
    snprintf(path, sizeof path, "%s/out.json", dir);
    unlink(path);
    rmdir(dir);
    autosp_graph_free(g);
}

static void test_load_file_errors(void **state) {
    autosp_error_t err;
    assert_null(autosp_graph_load_file("/nonexistent/graph.json", &err));
    assert_int_equal(err.status, AUTOSP_ERR_IO);
    assert_string_equal(err.message,
                        "cannot open \"/nonexistent/graph.json\": No such file or directory");
    assert_null(autosp_graph_load_string("{", 1, &err));
    assert_int_equal(err.status, AUTOSP_ERR_INVALID);
    assert_non_null(strstr(err.message, "malformed JSON at line 1"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_example_roundtrips),
        cmocka_unit_test(test_unordered_nodes_are_sorted),
        cmocka_unit_test(test_save_file_is_atomic),
        cmocka_unit_test(test_load_file_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
