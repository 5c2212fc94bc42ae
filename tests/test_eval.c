#define _POSIX_C_SOURCE 200809L /* mkdtemp */
/* The forward-only evaluator, gathering, and weights files: the evaluator's loss is the
 * trainer's, its plan holds no backward, kept logits are readable; weights round-trip through
 * autosp_trainer_save_weights and a wrong file is refused with every bad tensor named. (Under
 * mpirun, test_sp checks the evaluator and gather at sp = 2 and 4 against one process.) */
#include <unistd.h>

#include "test_util.h"

enum { B = 2, S = 32 };

static void fill_inputs(const autosp_graph_t *g, void *(*data)(void *, const char *), void *owner) {
    for (autosp_tensor_t t = 0; t < autosp_graph_num_tensors(g); t++)
        if (autosp_tensor_kind(g, t) == AUTOSP_KIND_INPUT)
            fill_input(g, t, data(owner, autosp_tensor_name(g, t)));
}
static void *trainer_data(void *tr, const char *name) {
    return autosp_trainer_data(tr, name);
}
static void *evaluator_data(void *ev, const char *name) {
    return autosp_evaluator_data(ev, name);
}

static void test_loss_equals_the_trainers(void **state) {
    (void)state;
    autosp_graph_t *g = preset_graph("llama-tiny", B, S);
    autosp_trainer_t *tr = filled_trainer(g, AUTOSP_AC_NONE);
    float want;
    assert_int_equal(autosp_trainer_compute(tr, &want, NULL), AUTOSP_OK);
    const char *keep[] = {"logits"};
    autosp_evaluator_t *ev = autosp_evaluator_new(g, keep, 1, NULL, NULL);
    assert_non_null(ev);
    assert_int_equal(autosp_evaluator_copy_weights(ev, tr, NULL), AUTOSP_OK);
    fill_inputs(autosp_evaluator_graph(ev), evaluator_data, ev);
    float loss = -1;
    assert_int_equal(autosp_evaluator_run(ev, &loss, NULL), AUTOSP_OK);
    assert_true(loss == want); /* the same kernels on the same forward: bitwise */
    /* no backward, no gradients: the forward's arena is smaller than the step's */
    assert_true(autosp_evaluator_arena_bytes(ev) < autosp_trainer_arena_bytes(tr));
    assert_null(autosp_evaluator_data(ev, "lm_head.grad"));
    /* gather in one process is a copy of the kept tensor */
    int64_t n = (int64_t)B * S * 256;
    float *all = malloc(sizeof(float) * (size_t)n);
    assert_int_equal(autosp_evaluator_gather(ev, "logits", all, NULL), AUTOSP_OK);
    assert_memory_equal(all, autosp_evaluator_data(ev, "logits"), sizeof(float) * (size_t)n);
    autosp_error_t err;
    assert_int_equal(autosp_evaluator_gather(ev, "lm_head", all, &err), AUTOSP_ERR_INVALID);
    assert_non_null(strstr(err.message, "no input or computed tensor \"lm_head\""));
    free(all);
    autosp_evaluator_free(ev);
    autosp_trainer_free(tr);
    autosp_graph_free(g);
}

static void test_unknown_kept_tensor(void **state) {
    (void)state;
    autosp_graph_t *g = preset_graph("llama-tiny", B, S);
    const char *keep[] = {"logitz"};
    autosp_error_t err;
    assert_null(autosp_evaluator_new(g, keep, 1, NULL, &err));
    assert_non_null(strstr(err.message, "has no tensor \"logitz\" to keep"));
    assert_null(autosp_evaluator_new(g, keep, 1, NULL, NULL)); /* NULL err accepted */
    autosp_graph_free(g);
}

static void test_weights_round_trip(void **state) {
    (void)state;
    char dir[64], path[128];
    assert_int_equal(temp_dir_make(dir, "eval"), 0);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    autosp_graph_t *g = preset_graph("llama-tiny", B, S);
    autosp_trainer_t *tr = filled_trainer(g, AUTOSP_AC_NONE);
    assert_int_equal(autosp_trainer_step(tr, NULL, NULL), AUTOSP_OK); /* weights not the init */
    assert_int_equal(autosp_trainer_save_weights(tr, path, NULL), AUTOSP_OK);
    float want;
    assert_int_equal(autosp_trainer_compute(tr, &want, NULL), AUTOSP_OK);
    autosp_evaluator_t *ev = autosp_evaluator_new(g, NULL, 0, NULL, NULL);
    assert_int_equal(autosp_evaluator_load_weights(ev, path, NULL), AUTOSP_OK);
    fill_inputs(autosp_evaluator_graph(ev), evaluator_data, ev);
    float loss;
    assert_int_equal(autosp_evaluator_run(ev, &loss, NULL), AUTOSP_OK);
    assert_true(loss == want);
    /* a second trainer from other weights loads the same ones */
    autosp_trainer_t *other = filled_trainer(g, AUTOSP_AC_NONE);
    autosp_trainer_init_params(other, 99);
    assert_int_equal(autosp_trainer_load_weights(other, path, NULL), AUTOSP_OK);
    fill_inputs(autosp_trainer_graph(other), trainer_data, other);
    assert_int_equal(autosp_trainer_compute(other, &loss, NULL), AUTOSP_OK);
    assert_true(loss == want);
    autosp_trainer_free(other);
    autosp_evaluator_free(ev);
    autosp_trainer_free(tr);
    autosp_graph_free(g);
    unlink(path);
    assert_int_equal(temp_dir_remove(dir), 0);
}

/* A file with one tensor too few, one too many and one of another shape. */
static void test_wrong_weights_named(void **state) {
    (void)state;
    char dir[64], path[128];
    assert_int_equal(temp_dir_make(dir, "eval"), 0);
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    autosp_graph_t *g = preset_graph("llama-tiny", B, S);
    autosp_evaluator_t *ev = autosp_evaluator_new(g, NULL, 0, NULL, NULL);
    const autosp_graph_t *f = autosp_evaluator_graph(ev);
    autosp_st_tensor_t list[64];
    int n = 0;
    static float zeros[1 << 16];
    for (autosp_tensor_t t = 0; t < autosp_graph_num_tensors(f); t++) {
        if (autosp_tensor_kind(f, t) != AUTOSP_KIND_PARAM) continue;
        const char *name = autosp_tensor_name(f, t);
        if (!strcmp(name, "out_norm")) continue; /* missing */
        autosp_st_tensor_t e = {.name = name, .dtype = AUTOSP_F32, .ndim = 2, .data = zeros};
        e.shape[0] = autosp_tensor_dim(f, t, 0);
        e.shape[1] = autosp_tensor_ndim(f, t) > 1 ? autosp_tensor_dim(f, t, 1) : 1;
        if (autosp_tensor_ndim(f, t) == 1) e.ndim = 1;
        list[n++] = e;
    }
    list[n++] = (autosp_st_tensor_t){
        .name = "unused", .dtype = AUTOSP_F32, .ndim = 1, .shape = {4}, .data = zeros};
    assert_int_equal(autosp_safetensors_write(path, list, n, NULL, NULL, 0, NULL), AUTOSP_OK);
    autosp_error_t err;
    assert_int_equal(autosp_evaluator_load_weights(ev, path, &err), AUTOSP_ERR_INVALID);
    assert_non_null(strstr(err.message, "(2 tensors): missing \"out_norm\", extra \"unused\""));
    assert_int_equal(autosp_evaluator_load_weights(ev, path, NULL), AUTOSP_ERR_INVALID);
    /* the right names, one shape wrong */
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i].name, "unused")) list[i].name = "out_norm", list[i].shape[0] = 64;
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i].name, "lm_head")) list[i].shape[1] = 32;
    assert_int_equal(autosp_safetensors_write(path, list, n, NULL, NULL, 0, NULL), AUTOSP_OK);
    assert_int_equal(autosp_evaluator_load_weights(ev, path, &err), AUTOSP_ERR_INVALID);
    assert_non_null(
        strstr(err.message, "tensor \"lm_head\" is f32 [256,32], expected f32 [256,64]"));
    autosp_evaluator_free(ev);
    autosp_graph_free(g);
    unlink(path);
    assert_int_equal(temp_dir_remove(dir), 0);
}

/* NULL wherever a header says err may be NULL, on the failing paths */
static void test_null_errors(void **state) {
    (void)state;
    autosp_graph_t *g = preset_graph("llama-tiny", B, S);
    autosp_trainer_t *tr = filled_trainer(g, AUTOSP_AC_NONE);
    assert_int_equal(autosp_trainer_load(tr, "/nonexistent/ckpt", NULL), AUTOSP_ERR_IO);
    assert_int_equal(autosp_trainer_load_weights(tr, "/nonexistent/w", NULL), AUTOSP_ERR_IO);
    assert_int_equal(autosp_trainer_save_weights(tr, "/nonexistent/w", NULL), AUTOSP_ERR_IO);
    assert_int_equal(autosp_trainer_feed(tr, "nope", NULL, NULL), AUTOSP_ERR_INVALID);
    assert_int_equal(autosp_trainer_gather(tr, "nope", NULL, NULL), AUTOSP_ERR_INVALID);
    assert_null(autosp_safetensors_open("/nonexistent/w", NULL));
    autosp_train_config_t bad = autosp_train_config_default();
    bad.eps = 0;
    assert_null(autosp_trainer_new(g, &bad, NULL));
    autosp_trainer_free(tr);
    autosp_graph_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loss_equals_the_trainers),
        cmocka_unit_test(test_unknown_kept_tensor),
        cmocka_unit_test(test_weights_round_trip),
        cmocka_unit_test(test_wrong_weights_named),
        cmocka_unit_test(test_null_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
