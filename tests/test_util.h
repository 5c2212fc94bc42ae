/* test_util.h: small helpers shared by the cmocka tests. */
#ifndef AUTOSP_TEST_UTIL_H
#define AUTOSP_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "autosp/autosp.h"

/* A graph with symbols B and S declared (unbound). */
static inline autosp_graph_t *new_graph(void) {
    autosp_graph_t *g = autosp_graph_new("test");
    assert_non_null(g);
    assert_int_equal(autosp_symbol(g, "B", 0), AUTOSP_OK);
    assert_int_equal(autosp_symbol(g, "S", 0), AUTOSP_OK);
    return g;
}

static inline autosp_tensor_t in_f32(autosp_graph_t *g, const char *name, const char *shape) {
    return autosp_input(g, name, AUTOSP_F32, shape, AUTOSP_ROLE_OTHER, -1);
}

static inline autosp_tensor_t in_i32(autosp_graph_t *g, const char *name, const char *shape) {
    return autosp_input(g, name, AUTOSP_I32, shape, AUTOSP_ROLE_OTHER, -1);
}

/* t was built without error and has the given shape and dtype. */
#define assert_shape(g, t, shape, dtype)                                                           \
    do {                                                                                           \
        autosp_error_t e_;                                                                         \
        if (autosp_graph_status((g), &e_) != AUTOSP_OK) fail_msg("unexpected: %s", e_.message);    \
        char b_[256];                                                                              \
        assert_string_equal(autosp_tensor_shape_str((g), (t), b_, sizeof b_), (shape));            \
        assert_int_equal(autosp_tensor_dtype((g), (t)), (dtype));                                  \
    } while (0)

/* The graph recorded an error whose message contains `part`; frees the graph. */
#define assert_error_and_free(g, part)                                                             \
    do {                                                                                           \
        autosp_error_t e_;                                                                         \
        assert_int_not_equal(autosp_graph_status((g), &e_), AUTOSP_OK);                            \
        if (!strstr(e_.message, (part)))                                                           \
            fail_msg("message \"%s\" lacks \"%s\"", e_.message, (part));                           \
        autosp_graph_free(g);                                                                      \
    } while (0)

static inline char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf) buf[n] = '\0';
    fclose(f);
    return buf;
}

#endif
