/* The folder tests/bad holds graphs that must be refused. Each NAME.json has a NAME.err with the
 * exact message the loader must give (as jansson's test/suites/invalid). */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>

#include "test_util.h"

static void test_every_bad_graph(void **state) {
    const char *dir = AUTOSP_SOURCE_DIR "/tests/bad";
    DIR *d = opendir(dir);
    assert_non_null(d);
    int count = 0, failures = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".json") != 0) continue;
        char path[1024], err_path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        snprintf(err_path, sizeof err_path, "%s/%.*s.err", dir, (int)(n - 5), e->d_name);
        char *text = read_text(path), *expect = read_text(err_path);
        assert_non_null(text);
        if (!expect) fail_msg("%s has no .err file", e->d_name);
        expect[strcspn(expect, "\n")] = '\0';
        autosp_error_t err;
        autosp_graph_t *g = autosp_graph_load_string(text, strlen(text), &err);
        if (g) {
            print_error("%s: loaded, expected \"%s\"\n", e->d_name, expect);
            failures++;
            autosp_graph_free(g);
        } else if (strcmp(err.message, expect) != 0 ||
                   (err.status != AUTOSP_ERR_INVALID && err.status != AUTOSP_ERR_LIMIT)) {
            print_error("%s:\n  expected: %s\n  found:    %s (%s)\n", e->d_name, expect,
                        err.message, autosp_status_name(err.status));
            failures++;
        }
        free(text);
        free(expect);
        count++;
    }
    closedir(d);
    print_message("%d bad graphs checked\n", count);
    assert_true(count >= 40);
    assert_int_equal(failures, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_every_bad_graph)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
