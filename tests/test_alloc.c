/* Allocation failure: make the Nth allocation fail, for every N a load and a save need, and
 * check that each fails cleanly (NOMEM, no crash; leaks are caught by the sanitizer build). */
#include "test_util.h"

static failing_alloc_t oom = {.countdown = -1};

static void test_every_allocation_failure(void **state) {
    char path[512];
    snprintf(path, sizeof path, "%s/examples/llama-tiny.json", AUTOSP_SOURCE_DIR);
    char *text = read_text(path);
    assert_non_null(text);
    autosp_allocator_t failing = failing_allocator(&oom);
    autosp_allocator_set(&failing);
    oom.countdown = -1;
    oom.allocations = 0;
    autosp_graph_t *g = autosp_graph_load_string(text, strlen(text), NULL);
    assert_non_null(g);
    autosp_graph_free(g);
    long needed = oom.allocations;
    assert_true(needed > 10);
    for (long n = 0; n < needed; n++) {
        oom.countdown = n;
        autosp_error_t err;
        g = autosp_graph_load_string(text, strlen(text), &err);
        if (g) fail_msg("load succeeded with allocation %ld failing", n);
        if (err.status != AUTOSP_ERR_NOMEM) fail_msg("allocation %ld: %s", n, err.message);
    }
    oom.countdown = -1;
    g = autosp_graph_load_string(text, strlen(text), NULL);
    assert_non_null(g);
    for (long n = 0; n < 8; n++) { /* the writer's buffer */
        oom.countdown = n;
        autosp_error_t err;
        char *s = autosp_graph_save_string(g, &err);
        if (s) {
            autosp_free(s);
            break;
        }
        assert_int_equal(err.status, AUTOSP_ERR_NOMEM);
    }
    oom.countdown = -1;
    autosp_graph_free(g);
    autosp_allocator_set(NULL);
    free(text);
}

/* The default allocator's count: a graph's blocks are live while it is, the peak keeps them
 * after it is freed, and a mark starts the peak again. */
static void test_heap_stats(void **state) {
    (void)state;
#ifdef __GLIBC__
    autosp_heap_mark();
    autosp_heap_stats_t before = autosp_heap_stats();
    assert_int_equal(before.peak, before.live);
    autosp_graph_t *g = preset_graph("llama-tiny", 1, 64);
    autosp_heap_stats_t held = autosp_heap_stats();
    assert_true(held.live > before.live + 10000); /* tensors, nodes, names */
    assert_true(held.peak >= held.live);
    autosp_graph_free(g);
    autosp_heap_stats_t after = autosp_heap_stats();
    assert_int_equal(after.live, before.live);
    assert_true(after.peak >= held.live);
    autosp_heap_mark();
    assert_int_equal(autosp_heap_stats().peak, before.live);
#else
    skip();
#endif
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_every_allocation_failure),
                                       cmocka_unit_test(test_heap_stats)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
