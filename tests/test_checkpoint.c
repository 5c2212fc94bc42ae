/* Activation checkpointing: the min cut itself, bitwise-equal results under every policy, the
 * planned peaks' order, the plan against what the executor touches, the budget, and errors. */
#include <math.h>

#include "test_util.h"
#include "base/maxflow.h"

static const autosp_ac_policy_t POLICIES[] = {AUTOSP_AC_NONE, AUTOSP_AC_MINCUT_CONSERVATIVE,
                                              AUTOSP_AC_SAC, AUTOSP_AC_FULL};
enum { N_POLICIES = sizeof POLICIES / sizeof POLICIES[0] };

static autosp_graph_t *step(const autosp_graph_t *fwd, autosp_ac_policy_t policy, double budget,
                            int sp) {
    autosp_parallel_config_t cfg = autosp_parallel_config_default();
    cfg.sp = sp;
    cfg.ac.policy = policy;
    if (budget >= 0) cfg.ac.recompute_budget = budget;
    autosp_error_t err;
    autosp_graph_t *s = autosp_compile_training(fwd, &cfg, &err);
    if (!s) fail_msg("%s: %s", autosp_ac_policy_name(policy), err.message);
    return s;
}

/* ---- the cut ---------------------------------------------------------------------------- */

/* CLRS's flow network (max flow 23), and a lambda-weighted edge that moves the cut. */
static void test_maxflow(void **state) {
    maxflow_t *f = maxflow_new(6);
    assert_non_null(f);
    static const int e[][3] = {{0, 1, 16}, {0, 2, 13}, {1, 3, 12}, {2, 1, 4}, {2, 4, 14},
                               {3, 2, 9},  {3, 5, 20}, {4, 3, 7},  {4, 5, 4}};
    for (size_t i = 0; i < sizeof e / sizeof e[0]; i++)
        assert_true(maxflow_edge(f, e[i][0], e[i][1], e[i][2], 0));
    assert_true(maxflow_run(f, 0, 5, 0) == 23);
    /* the minimum cut: {0, 1, 2, 4} on the source side */
    assert_true(maxflow_source_side(f, 0) && maxflow_source_side(f, 1));
    assert_true(maxflow_source_side(f, 2) && maxflow_source_side(f, 4));
    assert_false(maxflow_source_side(f, 3) || maxflow_source_side(f, 5));
    maxflow_free(f);

    /* s -> a (lambda), a -> t (10): cutting s -> a costs lambda, so it is cut while < 10 */
    f = maxflow_new(3);
    assert_true(maxflow_edge(f, 0, 1, 0, 1) && maxflow_edge(f, 1, 2, 10, 0));
    assert_true(maxflow_run(f, 0, 2, 4) == 4);
    assert_false(maxflow_source_side(f, 1));
    assert_true(maxflow_run(f, 0, 2, 40) == 10);
    assert_true(maxflow_source_side(f, 1));

    /* kept at lambda 4, a run at 6 starts from that flow of 4; a run below 4 starts cold */
    assert_true(maxflow_run(f, 0, 2, 4) == 4 && maxflow_keep(f));
    assert_true(maxflow_run(f, 0, 2, 6) == 6);
    assert_false(maxflow_source_side(f, 1));
    assert_true(maxflow_run(f, 0, 2, 40) == 10 && maxflow_source_side(f, 1));
    assert_true(maxflow_run(f, 0, 2, 2) == 2 && !maxflow_source_side(f, 1));
    maxflow_free(f);
}

/* Warm starts find the same cuts as cold runs: every lambda of a sweep on a layered network
 * whose cut moves edge by edge, kept or not. */
static void test_maxflow_warm_start(void **state) {
    enum { N = 12 }; /* s, t, N middle vertices: s -> m_i (lambda * (i + 1)), m_i -> t (10) */
    maxflow_t *warm = maxflow_new(N + 2), *cold = maxflow_new(N + 2);
    for (int i = 0; i < N; i++) {
        assert_true(maxflow_edge(warm, 0, 2 + i, 0, i + 1) && maxflow_edge(warm, 2 + i, 1, 10, 0));
        assert_true(maxflow_edge(cold, 0, 2 + i, 0, i + 1) && maxflow_edge(cold, 2 + i, 1, 10, 0));
    }
    for (double lambda = 0.5; lambda < 20; lambda *= 1.3) {
        double w = maxflow_run(warm, 0, 1, lambda), c = maxflow_run(cold, 0, 1, lambda);
        assert_true(fabs(w - c) <= 1e-9 * c);
        for (int v = 0; v < N + 2; v++)
            assert_int_equal(maxflow_source_side(warm, v), maxflow_source_side(cold, v));
        assert_true(maxflow_keep(warm));
    }
    maxflow_free(warm);
    maxflow_free(cold);
}

/* ---- same numbers under every policy ------------------------------------------------------ */

/* Loss and every gradient of one step, bitwise, for each policy against none; and the
 * policies really recompute (else this test could not fail). */
static void check_bitwise(const char *preset) {
    autosp_graph_t *fwd = preset_graph(preset, 2, 64);
    autosp_trainer_t *ref = filled_trainer(fwd, AUTOSP_AC_NONE);
    float ref_loss;
    assert_int_equal(autosp_trainer_compute(ref, &ref_loss, NULL), AUTOSP_OK);
    const autosp_graph_t *jr = autosp_trainer_graph(ref);
    for (int p = 1; p < N_POLICIES; p++) {
        autosp_trainer_t *tr = filled_trainer(fwd, POLICIES[p]);
        float loss;
        assert_int_equal(autosp_trainer_compute(tr, &loss, NULL), AUTOSP_OK);
        const autosp_ac_report_t *r = autosp_graph_checkpoint_report(autosp_trainer_graph(tr));
        assert_non_null(r);
        assert_true(r->recomputed_nodes > 0);
        assert_memory_equal(&loss, &ref_loss, sizeof loss);
        int grads = 0;
        for (autosp_tensor_t t = 0; t < autosp_graph_num_tensors(jr); t++) {
            if (autosp_tensor_kind(jr, t) != AUTOSP_KIND_PARAM) continue;
            char name[300];
            snprintf(name, sizeof name, "%s.grad", autosp_tensor_name(jr, t));
            const void *a = autosp_trainer_data(ref, name), *b = autosp_trainer_data(tr, name);
            assert_non_null(b);
            if (memcmp(a, b, sizeof(float) * (size_t)autosp_tensor_numel(jr, t)))
                fail_msg("%s, %s: %s differs from none", preset, autosp_ac_policy_name(POLICIES[p]),
                         name);
            grads++;
        }
        assert_true(grads > 10);
        print_message("%-15s %-20s loss %.6f, %d gradients bitwise equal, %d nodes recomputed\n",
                      preset, autosp_ac_policy_name(POLICIES[p]), loss, grads, r->recomputed_nodes);
        autosp_trainer_free(tr);
    }
    autosp_trainer_free(ref);
    autosp_graph_free(fwd);
}

static void test_bitwise_llama(void **state) {
    check_bitwise("llama-tiny");
    check_bitwise("llama-tiny-gqa");
}

static void test_bitwise_gpt2(void **state) {
    check_bitwise("gpt2-tiny");
}

/* ---- memory ------------------------------------------------------------------------------ */

/* Planned peaks: none > mincut-conservative > sac >= full, at sp 1 and 2 (planning needs no
 * MPI). full keeps the least but recomputes a whole layer at once, so its peak holds one
 * layer's activations; with two layers (llama-tiny, gpt2-tiny) at long S that outweighs what
 * sac keeps (attention outputs), and sac goes below full there (docs/checkpointing.md). */
static void test_peak_order(void **state) {
    static const struct {
        const char *preset;
        int64_t S;
        int sp;
        bool full_lowest; /* false: too few layers for full to go below sac (see above) */
    } cases[] = {{"llama-tiny", 512, 1, true},      {"llama-tiny", 1024, 1, true},
                 {"llama-tiny", 512, 2, true},      {"llama-tiny", 1024, 2, true},
                 {"llama-tiny-gqa", 1024, 2, true}, {"llama-small", 1024, 1, true},
                 {"llama-small", 4096, 1, true},    {"llama-small", 4096, 2, true},
                 {"llama-tiny", 4096, 1, false},    {"gpt2-tiny", 512, 1, false}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        autosp_graph_t *fwd = preset_graph(cases[c].preset, 1, cases[c].S);
        int64_t total[N_POLICIES];
        for (int p = 0; p < N_POLICIES; p++) {
            autosp_graph_t *s = step(fwd, POLICIES[p], -1, cases[c].sp);
            autosp_memory_plan_t m;
            assert_int_equal(autosp_plan_memory(s, 0, autosp_backend_cpu(), &m, NULL), AUTOSP_OK);
            total[p] = m.total;
            autosp_graph_free(s);
        }
        print_message("%-14s S=%-5lld sp=%d: none %lld > mincut-conservative %lld > sac %lld >= "
                      "full %lld\n",
                      cases[c].preset, (long long)cases[c].S, cases[c].sp, (long long)total[0],
                      (long long)total[1], (long long)total[2], (long long)total[3]);
        assert_true(total[0] > total[1]);
        assert_true(total[1] > total[2]);
        if (cases[c].full_lowest) assert_true(total[2] >= total[3]);
        autosp_graph_free(fwd);
    }
}

/* Under every policy the executor stays inside its plan and reaches within 5% of its end. */
static void test_measured_matches_plan(void **state) {
    autosp_graph_t *fwd = preset_graph("llama-tiny-gqa", 1, 256);
    for (int p = 0; p < N_POLICIES; p++) {
        autosp_trainer_t *tr = filled_trainer(fwd, POLICIES[p]);
        assert_int_equal(autosp_trainer_compute(tr, NULL, NULL), AUTOSP_OK);
        int64_t planned = autosp_trainer_arena_bytes(tr),
                touched = autosp_trainer_touched_bytes(tr);
        print_message("%-20s planned %lld bytes, touched %lld\n",
                      autosp_ac_policy_name(POLICIES[p]), (long long)planned, (long long)touched);
        assert_true(touched <= planned);
        assert_true(touched >= planned * 95 / 100);
        autosp_trainer_free(tr);
    }
    autosp_graph_free(fwd);
}

/* ---- the choices ------------------------------------------------------------------------- */

/* sac keeps within its budget, never copies attention unless allowed, and recomputes a larger
 * share of the layers at long S, where attention dominates the step. */
static void test_sac_budget_and_sequence(void **state) {
    autosp_graph_t *fwd = preset_graph("llama-small", 1, 4096);
    double budgets[] = {0, 0.02, 0.1};
    int64_t saved_prev = INT64_MAX;
    for (size_t b = 0; b < sizeof budgets / sizeof budgets[0]; b++) {
        autosp_graph_t *s = step(fwd, AUTOSP_AC_SAC, budgets[b], 1);
        const autosp_ac_report_t *r = autosp_graph_checkpoint_report(s);
        assert_true(r->recompute_seconds <= budgets[b] * r->step_seconds * (1 + 1e-9));
        assert_true(r->saved_bytes <= saved_prev); /* more budget, fewer bytes kept */
        saved_prev = r->saved_bytes;
        for (int i = 0; i < autosp_graph_num_nodes(s); i++)
            if (autosp_node_op(s, i) == AUTOSP_OP_ATTENTION)
                assert_null(strstr(autosp_node_name(s, i), ".recompute"));
        autosp_graph_free(s);
    }
    autosp_graph_free(fwd);

    double share[2];
    int64_t seqs[2] = {256, 8192};
    for (int k = 0; k < 2; k++) {
        fwd = preset_graph("llama-small", 1, seqs[k]);
        autosp_graph_t *none = step(fwd, AUTOSP_AC_NONE, -1, 1),
                       *sac = step(fwd, AUTOSP_AC_SAC, -1, 1);
        share[k] = (double)autosp_graph_checkpoint_report(sac)->saved_bytes /
                   (double)autosp_graph_checkpoint_report(none)->saved_bytes;
        print_message("llama-small S=%lld: sac keeps %.3f of none's saved bytes\n",
                      (long long)seqs[k], share[k]);
        autosp_graph_free(none);
        autosp_graph_free(sac);
        autosp_graph_free(fwd);
    }
    assert_true(share[1] < share[0] * 0.75);
}

/* ZeRO-3's gathers are never saved, so their copies in the backward are forced, not chosen:
 * they do not count against sac's budget. Llama 3.1 8B at sp 16 and 64 tokens a rank, where
 * the gathers alone are more than 10% of the modelled step, still compiles, and every
 * gathered parameter the backward reads is a fresh gather. */
static void test_regathers_outside_the_budget(void **state) {
    autosp_graph_t *fwd = preset_graph("llama3.1-8b", 1, 1024);
    autosp_parallel_config_t pc = autosp_parallel_config_default();
    pc.sp = 16, pc.zero_stage = 3;
    autosp_error_t err;
    autosp_graph_t *s = autosp_compile_training(fwd, &pc, &err);
    if (!s) fail_msg("%s", err.message);
    int loss_node = autosp_tensor_producer(s, autosp_graph_output(s, 0)), regathers = 0;
    for (int i = loss_node + 1; i < autosp_graph_num_nodes(s); i++)
        for (int k = 0; k < autosp_node_num_inputs(s, i); k++) {
            int p = autosp_tensor_producer(s, autosp_node_input(s, i, k));
            if (p < 0 || autosp_node_op(s, p) != AUTOSP_OP_UNSHARD) continue;
            assert_true(p > loss_node);
            regathers++;
        }
    assert_true(regathers > 10);
    autosp_graph_free(s);
    autosp_graph_free(fwd);
}

/* Each copy comes after the loss and before the first node that reads it. */
static void test_copies_placed_in_backward(void **state) {
    autosp_graph_t *fwd = preset_graph("llama-tiny", 1, 64);
    autosp_graph_t *s = step(fwd, AUTOSP_AC_FULL, -1, 1);
    int loss_node = autosp_tensor_producer(s, autosp_graph_output(s, 0)), copies = 0;
    for (int i = 0; i < autosp_graph_num_nodes(s); i++) {
        if (!strstr(autosp_node_name(s, i), ".recompute")) continue;
        copies++;
        assert_true(i > loss_node);
        autosp_tensor_t out = autosp_node_output(s, i, 0);
        int first = -1;
        for (int j = i + 1; j < autosp_graph_num_nodes(s) && first < 0; j++)
            for (int k = 0; k < autosp_node_num_inputs(s, j); k++)
                if (autosp_node_input(s, j, k) == out) first = j;
        assert_true(first > i);
        /* nothing but other copies between the copy and its first reader */
        for (int j = i + 1; j < first; j++)
            assert_non_null(strstr(autosp_node_name(s, j), ".recompute"));
    }
    assert_true(copies > 10);
    autosp_graph_free(s);
    autosp_graph_free(fwd);
}

/* ---- errors -------------------------------------------------------------------------------- */

static void expect_error(const autosp_graph_t *joint, autosp_ac_policy_t policy, const char *part) {
    autosp_ac_config_t cfg = autosp_ac_config_default();
    cfg.policy = policy;
    autosp_error_t err;
    autosp_graph_t *s = autosp_checkpoint(joint, &cfg, &err);
    assert_null(s);
    if (!strstr(err.message, part)) fail_msg("message \"%s\" lacks \"%s\"", err.message, part);
}

static void test_errors(void **state) {
    autosp_model_config_t cfg;
    assert_true(autosp_model_preset("llama-tiny", &cfg));
    autosp_graph_t *fwd = autosp_model_build(&cfg, "t", NULL), *joint = autosp_autodiff(fwd, NULL);
    expect_error(joint, AUTOSP_AC_SAC, "policy sac needs every symbol bound");
    autosp_graph_free(joint);
    autosp_graph_free(fwd);

    /* a two-layer MLP has no attention to find layers by */
    autosp_graph_t *g = new_graph();
    autosp_symbol_bind(g, "B", 2, NULL);
    autosp_symbol_bind(g, "S", 8, NULL);
    autosp_tensor_t x = in_f32(g, "x", "B,S,16");
    autosp_tensor_t y = autosp_input(g, "y", AUTOSP_I32, "B,S", AUTOSP_ROLE_LABELS, 1);
    autosp_tensor_t w1 = autosp_param(g, "w1", AUTOSP_F32, "32,16", AUTOSP_INIT_NORMAL, 0.1);
    autosp_tensor_t w2 = autosp_param(g, "w2", AUTOSP_F32, "16,32", AUTOSP_INIT_NORMAL, 0.1);
    autosp_tensor_t h = autosp_silu(g, autosp_linear(g, x, w1, AUTOSP_NO_TENSOR, "l1"), "h");
    autosp_tensor_t logits = autosp_linear(g, h, w2, AUTOSP_NO_TENSOR, "l2");
    autosp_output(g, autosp_cross_entropy(g, logits, y, -100, "loss"));
    autosp_error_t err;
    joint = autosp_autodiff(g, &err);
    if (!joint) fail_msg("%s", err.message);
    expect_error(joint, AUTOSP_AC_FULL, "has 0 attention nodes with a layer input");
    autosp_graph_t *s = autosp_checkpoint(joint, NULL, NULL); /* sac needs no layers */
    assert_non_null(s);
    autosp_graph_free(s);
    autosp_graph_free(joint);
    autosp_graph_free(g);

    autosp_ac_policy_t p;
    assert_int_equal(autosp_ac_policy_parse("selective", &p, &err), AUTOSP_ERR_INVALID);
    assert_non_null(strstr(err.message, "expected none, full, mincut-conservative or sac"));
    assert_int_equal(autosp_ac_policy_parse("mincut-conservative", &p, NULL), AUTOSP_OK);
    assert_int_equal(p, AUTOSP_AC_MINCUT_CONSERVATIVE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_maxflow),
        cmocka_unit_test(test_maxflow_warm_start),
        cmocka_unit_test(test_bitwise_llama),
        cmocka_unit_test(test_bitwise_gpt2),
        cmocka_unit_test(test_peak_order),
        cmocka_unit_test(test_measured_matches_plan),
        cmocka_unit_test(test_sac_budget_and_sequence),
        cmocka_unit_test(test_copies_placed_in_backward),
        cmocka_unit_test(test_regathers_outside_the_budget),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
