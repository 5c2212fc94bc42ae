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

#if defined(_POSIX_C_SOURCE) && _POSIX_C_SOURCE >= 200809L /* mkdtemp: define it first */
/* A fresh folder /tmp/PREFIX.XXXXXX, its name in dir (64 bytes), for a group's setup; 0 on
 * success. temp_dir_remove removes it with all it holds (a group's teardown). */
static inline int temp_dir_make(char dir[64], const char *prefix) {
    snprintf(dir, 64, "/tmp/%s.XXXXXX", prefix);
    return mkdtemp(dir) ? 0 : -1;
}

static inline int temp_dir_remove(const char *dir) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}
#endif

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

/* A preset's forward graph with B and S bound. */
static inline autosp_graph_t *preset_graph(const char *preset, int64_t B, int64_t S) {
    autosp_model_config_t cfg;
    assert_true(autosp_model_preset(preset, &cfg));
    autosp_graph_t *g = autosp_model_build(&cfg, preset, NULL);
    assert_non_null(g);
    assert_int_equal(autosp_symbol_bind(g, "B", B, NULL), AUTOSP_OK);
    assert_int_equal(autosp_symbol_bind(g, "S", S, NULL), AUTOSP_OK);
    return g;
}

/* Input t of j (int32): positions 0..S-1, documents of 20 tokens, or token ids below 256. */
static inline void fill_input(const autosp_graph_t *j, autosp_tensor_t t, int32_t *x) {
    int64_t n = autosp_tensor_numel(j, t), S = autosp_tensor_dim(j, t, 1);
    bool positions = autosp_tensor_role(j, t) == AUTOSP_ROLE_POSITIONS;
    bool segments = autosp_tensor_role(j, t) == AUTOSP_ROLE_SEGMENT_IDS;
    for (int64_t i = 0; i < n; i++)
        x[i] = positions  ? (int32_t)(i % S)
               : segments ? (int32_t)((i % S) / 20)
                          : (int32_t)((i * 37 + 11) % 256);
}

/* A trainer of fwd under a checkpointing policy (MLPs and norms untiled), parameters from seed 7,
 * every input filled. */
static inline autosp_trainer_t *filled_trainer(const autosp_graph_t *fwd,
                                               autosp_ac_policy_t policy) {
    autosp_train_config_t cfg = autosp_train_config_default();
    cfg.ac.policy = policy;
    /* full alone would tile the MLPs and norms: their products then have tiles' rows, which
     * threaded OpenBLAS may round differently (test_sp checks tiling within its tolerance) */
    cfg.mlp_tile = AUTOSP_MLP_UNTILED;
    cfg.norm_tile = AUTOSP_NORM_UNTILED;
    autosp_error_t err;
    autosp_trainer_t *tr = autosp_trainer_new(fwd, &cfg, &err);
    if (!tr) fail_msg("%s: %s", autosp_ac_policy_name(policy), err.message);
    autosp_trainer_init_params(tr, 7);
    const autosp_graph_t *j = autosp_trainer_graph(tr);
    for (autosp_tensor_t t = 0; t < autosp_graph_num_tensors(j); t++) {
        if (autosp_tensor_kind(j, t) == AUTOSP_KIND_INPUT)
            fill_input(j, t, autosp_trainer_data(tr, autosp_tensor_name(j, t)));
    }
    return tr;
}

/* An allocator whose allocations fail from some point on, to test the paths that handle it:
 *     static failing_alloc_t oom = {.countdown = -1};
 *     autosp_allocator_t a = failing_allocator(&oom);
 *     autosp_allocator_set(&a);
 * then oom.countdown = n makes allocation n (from 0) and every later one fail (-1: none), and
 * oom.allocations counts the calls. autosp_allocator_set(NULL) restores malloc. */
typedef struct failing_alloc {
    long countdown, allocations;
} failing_alloc_t;

static inline bool failing_alloc_next(void *ctx) {
    failing_alloc_t *f = ctx;
    f->allocations++;
    if (f->countdown == 0) return false;
    if (f->countdown > 0) f->countdown--;
    return true;
}
static inline void *failing_alloc_malloc(void *ctx, size_t n) {
    return failing_alloc_next(ctx) ? malloc(n) : NULL;
}
static inline void *failing_alloc_realloc(void *ctx, void *p, size_t n) {
    return failing_alloc_next(ctx) ? realloc(p, n) : NULL;
}
static inline void failing_alloc_free(void *ctx, void *p) {
    (void)ctx;
    free(p);
}
static inline autosp_allocator_t failing_allocator(failing_alloc_t *f) {
    return (autosp_allocator_t){failing_alloc_malloc, failing_alloc_realloc, failing_alloc_free, f};
}

#endif
