/* Profiling (autosp_executor_profile, autosp_trainer_profile): what is counted, when, and that
 * the rows add up to the graph. Times are only checked for consistency, never for speed. */
#include <math.h>

#include "test_util.h"

/* Nodes of each op in g. */
static void count_ops(const autosp_graph_t *g, int counts[AUTOSP_OP_COUNT]) {
    memset(counts, 0, sizeof(int) * AUTOSP_OP_COUNT);
    for (int i = 0; i < autosp_graph_num_nodes(g); i++) counts[autosp_node_op(g, i)]++;
}

/* Every op of g has one row with its node count, most time first, times and FLOPs >= 0. */
static void check_rows(const autosp_profile_t *p, const autosp_graph_t *g) {
    int counts[AUTOSP_OP_COUNT], seen[AUTOSP_OP_COUNT] = {0};
    count_ops(g, counts);
    int ops = 0;
    for (int op = 0; op < AUTOSP_OP_COUNT; op++) ops += counts[op] > 0;
    assert_int_equal(p->n_ops, ops);
    for (int i = 0; i < p->n_ops; i++) {
        const autosp_op_profile_t *r = &p->ops[i];
        assert_int_equal(seen[r->op]++, 0);
        assert_int_equal(r->nodes, counts[r->op]);
        assert_true(r->seconds >= 0 && r->flops >= 0);
        if (i > 0) assert_true(p->ops[i - 1].seconds >= r->seconds);
    }
}

static double sum_seconds(const autosp_profile_t *p) {
    double s = 0;
    for (int i = 0; i < p->n_ops; i++) s += p->ops[i].seconds;
    return s;
}

static double sum_flops(const autosp_profile_t *p) {
    double s = 0;
    for (int i = 0; i < p->n_ops; i++) s += p->ops[i].flops;
    return s;
}

/* Steps 2 and 3 of 4 profiled: two runs, two steps; the ops' time fits inside the steps' and
 * their FLOPs are the step's model FLOPs per run (no recomputation under `none`) plus the one
 * the chunked loss does: its backward computes the logits again, a third of its FLOPs. */
static void test_trainer_profile(void **state) {
    (void)state;
    autosp_graph_t *fwd = preset_graph("llama-tiny", 2, 64);
    autosp_trainer_t *tr = filled_trainer(fwd, AUTOSP_AC_NONE);
    autosp_profile_t p;
    autosp_trainer_profile(tr, &p);
    assert_int_equal(p.runs, 0);
    assert_int_equal(p.steps, 0);
    assert_true(p.step_seconds == 0 && sum_seconds(&p) == 0 && sum_flops(&p) == 0);

    autosp_step_stats_t st;
    assert_int_equal(autosp_trainer_step(tr, &st, NULL), AUTOSP_OK);
    autosp_trainer_set_profiling(tr, true);
    for (int k = 0; k < 2; k++) assert_int_equal(autosp_trainer_step(tr, &st, NULL), AUTOSP_OK);
    assert_int_equal(autosp_trainer_compute(tr, NULL, NULL), AUTOSP_OK); /* not a step */
    autosp_trainer_set_profiling(tr, false);
    assert_int_equal(autosp_trainer_step(tr, &st, NULL), AUTOSP_OK);

    autosp_trainer_profile(tr, &p);
    assert_int_equal(p.runs, 2);
    assert_int_equal(p.steps, 2);
    check_rows(&p, autosp_trainer_graph(tr));
    assert_true(sum_seconds(&p) > 0 && sum_seconds(&p) <= p.step_seconds);
    double recomputed = 0;
    for (int i = 0; i < p.n_ops; i++)
        if (p.ops[i].op == AUTOSP_OP_LINEAR_CROSS_ENTROPY_BACKWARD) recomputed = p.ops[i].flops / 3;
    assert_true(recomputed > 0);
    assert_true(fabs(sum_flops(&p) - recomputed - 2 * st.flops) <= 1e-9 * st.flops);
    autosp_trainer_free(tr);
    autosp_graph_free(fwd);
}

/* The executor alone: only runs while profiling is on count; no steps. */
static void test_executor_profile(void **state) {
    (void)state;
    autosp_graph_t *fwd = preset_graph("gpt2-tiny", 1, 32);
    autosp_graph_t *joint = autosp_autodiff(fwd, NULL);
    assert_non_null(joint);
    autosp_executor_t *ex = autosp_executor_new(joint, NULL);
    assert_non_null(ex);
    for (autosp_tensor_t t = 0; t < autosp_graph_num_tensors(joint); t++) {
        if (autosp_tensor_kind(joint, t) == AUTOSP_KIND_INPUT)
            fill_input(joint, t, autosp_executor_data(ex, autosp_tensor_name(joint, t)));
        else if (autosp_tensor_kind(joint, t) == AUTOSP_KIND_PARAM)
            memset(autosp_executor_data(ex, autosp_tensor_name(joint, t)), 0,
                   sizeof(float) * (size_t)autosp_tensor_numel(joint, t));
    }

    autosp_error_t err;
    if (autosp_executor_run(ex, &err) != AUTOSP_OK) fail_msg("%s", err.message);
    autosp_executor_set_profiling(ex, true);
    for (int k = 0; k < 3; k++) assert_int_equal(autosp_executor_run(ex, NULL), AUTOSP_OK);
    autosp_executor_set_profiling(ex, false);
    assert_int_equal(autosp_executor_run(ex, NULL), AUTOSP_OK);

    autosp_profile_t p;
    autosp_executor_profile(ex, &p);
    assert_int_equal(p.runs, 3);
    assert_int_equal(p.steps, 0);
    assert_true(p.step_seconds == 0 && sum_seconds(&p) > 0);
    check_rows(&p, joint);
    autosp_graph_summary_t sum;
    assert_int_equal(autosp_graph_summarize(joint, &sum, NULL), AUTOSP_OK);
    assert_true(fabs(sum_flops(&p) - 3 * sum.cost.flops) <= 1e-9 * sum.cost.flops);
    autosp_executor_free(ex);
    autosp_graph_free(joint);
    autosp_graph_free(fwd);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trainer_profile),
        cmocka_unit_test(test_executor_profile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
