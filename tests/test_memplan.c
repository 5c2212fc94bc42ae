/* The memory plan against what the executor really touches, and its basic invariants. */
#include "test_util.h"
#include "plan/memplan.h"

static autosp_graph_t *joint(const char *preset, int64_t S) {
    autosp_model_config_t cfg;
    assert_true(autosp_model_preset(preset, &cfg));
    autosp_graph_t *g = autosp_model_build(&cfg, preset, NULL);
    autosp_symbol_bind(g, "S", S, NULL);
    autosp_graph_t *j = autosp_autodiff(g, NULL);
    assert_non_null(j);
    autosp_graph_free(g);
    return j;
}

/* No two blocks live at the same time overlap: replay the plan and check every pair. A
 * started node's outputs live from its start. Takes j. */
static void check_no_overlap(autosp_graph_t *j) {
    memplan_t p;
    assert_int_equal(memplan_build(j, autosp_backend_cpu(), &p, NULL), AUTOSP_OK);
    int n = autosp_graph_num_tensors(j), nodes = autosp_graph_num_nodes(j);
    int *first = calloc((size_t)n, sizeof(int)), *last = calloc((size_t)n, sizeof(int));
    for (int t = 0; t < n; t++) { /* lifetimes, on the owning tensor of each view */
        bool leaf = autosp_tensor_kind(j, t) != AUTOSP_KIND_VALUE;
        int producer = autosp_tensor_producer(j, t);
        first[t] = leaf                             ? -1
                   : p.started_after[producer] >= 0 ? p.started_after[producer]
                                                    : producer;
        last[t] = leaf ? nodes : first[t];
    }
    for (int o = 0; o < autosp_graph_num_outputs(j); o++)
        last[p.root[autosp_graph_output(j, o)]] = nodes;
    for (int i = 0; i < nodes; i++)
        for (int k = 0; k < autosp_node_num_inputs(j, i); k++) {
            int r = p.root[autosp_node_input(j, i, k)];
            if (last[r] < i) last[r] = i;
        }
    int pairs = 0;
    for (int a = 0; a < n; a++) {
        if (p.root[a] != a || p.bytes[a] == 0) continue;
        assert_true(p.offset[a] >= 0 && p.offset[a] + p.bytes[a] <= p.arena_bytes);
        for (int b = a + 1; b < n; b++) {
            if (p.root[b] != b || p.bytes[b] == 0) continue;
            bool alive_together = first[a] <= last[b] && first[b] <= last[a];
            bool overlap =
                p.offset[a] < p.offset[b] + p.bytes[b] && p.offset[b] < p.offset[a] + p.bytes[a];
            if (alive_together && overlap)
                fail_msg("%s and %s share bytes while both live", autosp_tensor_name(j, a),
                         autosp_tensor_name(j, b));
            pairs += alive_together;
        }
    }
    assert_true(pairs > 100);
    free(first);
    free(last);
    assert_true(p.peak_live_bytes <= p.arena_bytes);
    assert_true(p.param_bytes > 0 && p.output_bytes >= p.param_bytes); /* loss + one grad each */
    memplan_free(&p);
    autosp_graph_free(j);
}

/* ZeRO-3's step for 2 ranks: each unshard but the first starts right after the one before it,
 * and its gathered parameter is held from there. */
static autosp_graph_t *zero3_step(const char *preset) {
    autosp_graph_t *fwd = preset_graph(preset, 1, 32);
    autosp_parallel_config_t cfg = autosp_parallel_config_default();
    cfg.sp = 2, cfg.zero_stage = 3;
    autosp_graph_t *step = autosp_compile_training(fwd, &cfg, NULL);
    assert_non_null(step);
    autosp_graph_free(fwd);
    memplan_t p;
    assert_int_equal(memplan_build(step, autosp_backend_cpu(), &p, NULL), AUTOSP_OK);
    int last = -1, started = 0;
    for (int i = 0; i < autosp_graph_num_nodes(step); i++) {
        if (autosp_node_op(step, i) != AUTOSP_OP_UNSHARD) {
            assert_int_equal(p.started_after[i], -1);
            continue;
        }
        assert_int_equal(p.started_after[i], last);
        if (last >= 0) assert_int_equal(p.start_next[last], i);
        started += last >= 0;
        last = i;
    }
    assert_true(started > 10);
    memplan_free(&p);
    /* without a backend that can start a gather ahead, nothing is started */
    assert_int_equal(memplan_build(step, NULL, &p, NULL), AUTOSP_OK);
    for (int i = 0; i < autosp_graph_num_nodes(step); i++) assert_int_equal(p.started_after[i], -1);
    memplan_free(&p);
    /* nor with the gathers asked to block */
    cfg.zero3_prefetch = AUTOSP_PREFETCH_OFF;
    fwd = preset_graph(preset, 1, 32);
    autosp_graph_t *blocking = autosp_compile_training(fwd, &cfg, NULL);
    assert_non_null(blocking);
    assert_int_equal(memplan_build(blocking, autosp_backend_cpu(), &p, NULL), AUTOSP_OK);
    for (int i = 0; i < autosp_graph_num_nodes(blocking); i++)
        assert_int_equal(p.started_after[i], -1);
    memplan_free(&p);
    autosp_graph_free(blocking);
    autosp_graph_free(fwd);
    return step;
}

static void test_no_overlap(void **state) {
    check_no_overlap(joint("llama-tiny", 32));
    check_no_overlap(joint("gpt2-tiny", 32)); /* tied embeddings: an in-place index_add */
    check_no_overlap(zero3_step("llama-tiny"));
    check_no_overlap(zero3_step("gpt2-tiny"));
}

/* index_add may work in place (op_table in_place). Into a persistent output: the tied lm
 * head's weight gradient is written straight into wte.grad. Into a value: the output takes
 * the dying input's block, and the executor skips the copy. */
static void test_in_place(void **state) {
    autosp_graph_t *j = joint("gpt2-tiny", 32);
    memplan_t p;
    assert_int_equal(memplan_build(j, autosp_backend_cpu(), &p, NULL), AUTOSP_OK);
    autosp_tensor_t head = autosp_tensor_find(j, "logits.dweight");
    autosp_tensor_t grad = autosp_tensor_find(j, "wte.grad");
    assert_int_equal(p.root[head], grad);
    assert_int_equal(p.offset[head], p.offset[grad]);
    memplan_free(&p);
    autosp_graph_free(j);

    autosp_graph_t *g = autosp_graph_new("in_place");
    autosp_tensor_t x = autosp_input(g, "x", AUTOSP_F32, "4,3", AUTOSP_ROLE_OTHER, -1);
    autosp_tensor_t in[3] = {autosp_scale(g, x, 2.0, "base"),
                             autosp_input(g, "ids", AUTOSP_I32, "2", AUTOSP_ROLE_OTHER, -1),
                             autosp_input(g, "src", AUTOSP_F32, "2,3", AUTOSP_ROLE_OTHER, -1)};
    autosp_tensor_t acc;
    autosp_error_t err = {0};
    if (autosp_node_add(g, AUTOSP_OP_INDEX_ADD, "acc", in, 3, NULL, 1, NULL, 0, &acc) != AUTOSP_OK)
        fail_msg("%s", autosp_graph_status(g, &err) ? err.message : "?");
    assert_int_equal(autosp_output(g, autosp_scale(g, acc, 1.0, "y")), AUTOSP_OK);
    assert_int_equal(memplan_build(g, autosp_backend_cpu(), &p, NULL), AUTOSP_OK);
    assert_int_equal(p.offset[acc], p.offset[in[0]]);
    memplan_free(&p);
    autosp_executor_t *ex = autosp_executor_new(g, &err);
    if (!ex) fail_msg("%s", err.message);
    float *xv = autosp_executor_data(ex, "x"), *src = autosp_executor_data(ex, "src");
    int32_t *ids = autosp_executor_data(ex, "ids");
    for (int i = 0; i < 12; i++) xv[i] = (float)i;
    for (int i = 0; i < 6; i++) src[i] = 100.0f * (float)(i + 1);
    ids[0] = 3, ids[1] = 3; /* one row twice */
    assert_int_equal(autosp_executor_run(ex, &err), AUTOSP_OK);
    const float *y = autosp_executor_data(ex, "y");
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 3; c++) {
            float want = 2.0f * (float)(r * 3 + c) + (r == 3 ? 100.0f * (float)(c + 1 + c + 4) : 0);
            assert_float_equal(y[r * 3 + c], want, 0.0f);
        }
    autosp_executor_free(ex);
    autosp_graph_free(g);
}

/* Reuse matters: the arena is well below the sum of all tensors (0.49 of it today; the bound
 * leaves room for graph changes), and activations grow with S while parameters do not. */
static void test_reuse_and_growth(void **state) {
    memplan_t p1, p2;
    autosp_graph_t *j1 = joint("llama-tiny", 256), *j2 = joint("llama-tiny", 1024);
    assert_int_equal(memplan_build(j1, autosp_backend_cpu(), &p1, NULL), AUTOSP_OK);
    assert_int_equal(memplan_build(j2, autosp_backend_cpu(), &p2, NULL), AUTOSP_OK);
    int64_t all = 0;
    for (int t = 0; t < autosp_graph_num_tensors(j1); t++) all += p1.bytes[t];
    print_message("S=256: arena %lld, sum of tensors %lld; S=1024: arena %lld\n",
                  (long long)p1.arena_bytes, (long long)all, (long long)p2.arena_bytes);
    assert_true(p1.arena_bytes < all * 6 / 10);
    assert_int_equal(p1.param_bytes, p2.param_bytes);
    assert_true(p2.activation_peak > 3 * p1.activation_peak);
    memplan_free(&p1);
    memplan_free(&p2);
    autosp_graph_free(j1);
    autosp_graph_free(j2);
}

/* The executor writes inside the plan, and the plan is not oversized: what a run touched
 * reaches within 5% of the arena's end. */
static void test_measured_matches_plan(void **state) {
    autosp_graph_t *j = joint("gpt2-tiny", 128);
    autosp_error_t err;
    autosp_executor_t *ex = autosp_executor_new(j, &err);
    if (!ex) fail_msg("%s", err.message);
    int32_t *tokens = autosp_executor_data(ex, "tokens"),
            *labels = autosp_executor_data(ex, "labels");
    int32_t *pos = autosp_executor_data(ex, "positions");
    for (int i = 0; i < 128; i++) tokens[i] = labels[i] = i % 256, pos[i] = i;
    for (autosp_tensor_t t = 0; t < autosp_graph_num_tensors(j); t++)
        if (autosp_tensor_kind(j, t) == AUTOSP_KIND_PARAM) {
            float *w = autosp_executor_data(ex, autosp_tensor_name(j, t));
            for (int64_t i = 0; i < autosp_tensor_numel(j, t); i++) w[i] = 0.01f * (float)(i % 7);
        }
    assert_int_equal(autosp_executor_run(ex, &err), AUTOSP_OK);
    int64_t planned = autosp_executor_arena_bytes(ex), touched = autosp_executor_touched_bytes(ex);
    print_message("planned %lld bytes, touched %lld\n", (long long)planned, (long long)touched);
    assert_true(touched <= planned);
    assert_true(touched >= planned * 95 / 100);
    autosp_executor_free(ex);
    autosp_graph_free(j);
}

static long allocations;
static void *counting_malloc(void *ctx, size_t n) {
    allocations++;
    return malloc(n);
}
static void *counting_realloc(void *ctx, void *p, size_t n) {
    allocations++;
    return realloc(p, n);
}
static void plain_free(void *ctx, void *p) {
    free(p);
}

/* Everything is allocated when the trainer is built; a training step allocates nothing. */
static void test_step_loop_does_not_allocate(void **state) {
    const autosp_allocator_t counting = {counting_malloc, counting_realloc, plain_free, NULL};
    autosp_allocator_set(&counting);
    autosp_model_config_t cfg;
    assert_true(autosp_model_preset("llama-tiny-gqa", &cfg));
    autosp_graph_t *g = autosp_model_build(&cfg, "t", NULL);
    autosp_symbol_bind(g, "S", 64, NULL);
    autosp_error_t err;
    autosp_trainer_t *tr = autosp_trainer_new(g, NULL, &err);
    if (!tr) fail_msg("%s", err.message);
    autosp_trainer_init_params(tr, 1);
    int32_t *tokens = autosp_trainer_data(tr, "tokens"),
            *labels = autosp_trainer_data(tr, "labels");
    int32_t *pos = autosp_trainer_data(tr, "positions");
    for (int i = 0; i < 64; i++) tokens[i] = labels[i] = (i * 31) % 256, pos[i] = i;
    long before = allocations;
    for (int k = 0; k < 3; k++) assert_int_equal(autosp_trainer_step(tr, NULL, &err), AUTOSP_OK);
    assert_int_equal(allocations, before);
    autosp_trainer_free(tr);
    autosp_graph_free(g);
    autosp_allocator_set(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_overlap),
        cmocka_unit_test(test_in_place),
        cmocka_unit_test(test_reuse_and_growth),
        cmocka_unit_test(test_measured_matches_plan),
        cmocka_unit_test(test_step_loop_does_not_allocate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
