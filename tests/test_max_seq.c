/* The longest-S search (src/plan/max_seq.c): the joint graph it shares across candidates gives
 * the same step as compiling each candidate from the forward graph, the guided search and a
 * reused search give the exhaustive search's answers, and bad queries are errors. */
#include <string.h>

#include "ir/ir.h"
#include "passes/parallelize.h"
#include "test_util.h"

static autosp_parallel_config_t config(int sp, int dp, int zero, autosp_ac_policy_t policy) {
    autosp_parallel_config_t c = autosp_parallel_config_default();
    c.sp = sp, c.dp = dp, c.zero_stage = zero, c.ac.policy = policy;
    return c;
}

static const autosp_parallel_config_t *configs(int *n) {
    static autosp_parallel_config_t c[6];
    c[0] = config(1, 1, 0, AUTOSP_AC_SAC);
    c[1] = config(2, 1, 0, AUTOSP_AC_SAC);
    c[2] = config(2, 1, 0, AUTOSP_AC_FULL); /* tiled MLPs */
    c[3] = config(2, 2, 2, AUTOSP_AC_MINCUT_CONSERVATIVE);
    c[4] = config(4, 1, 3, AUTOSP_AC_FULL);
    c[5] = config(2, 1, 0, AUTOSP_AC_NONE);
    c[5].loss_chunk = AUTOSP_LOSS_UNCHUNKED;
    *n = 6;
    return c;
}

static char *saved(const autosp_graph_t *g) {
    assert_non_null(g);
    char *s = autosp_graph_save_string(g, NULL);
    assert_non_null(s);
    return s;
}

/* A joint graph compiled at one S, re-bound to another and finished, is the step compiled at
 * that S from the forward graph, byte for byte in JSON. */
static void test_joint_serves_every_s(void **state) {
    (void)state;
    const char *presets[] = {"llama-tiny-gqa", "gpt2-tiny"};
    int n;
    const autosp_parallel_config_t *cfg = configs(&n);
    for (size_t p = 0; p < sizeof presets / sizeof *presets; p++) {
        for (int c = 0; c < n; c++) {
            autosp_graph_t *fwd = preset_graph(presets[p], 2, 64);
            autosp_graph_t *joint = compile_joint(fwd, &cfg[c], NULL);
            assert_non_null(joint);
            for (int64_t S = 64; S <= 1024; S *= 4) {
                assert_int_equal(autosp_symbol_bind(fwd, "S", S, NULL), AUTOSP_OK);
                autosp_graph_t *whole = autosp_compile_training(fwd, &cfg[c], NULL);
                autosp_graph_t *rebound = autosp_graph_clone(joint);
                assert_int_equal(autosp_symbol_bind(rebound, "S", S, NULL), AUTOSP_OK);
                autosp_graph_t *finished = compile_finish(rebound, &cfg[c], NULL);
                char *a = saved(whole), *b = saved(finished);
                if (strcmp(a, b))
                    fail_msg("%s config %d S %lld: the shared joint graph gives another step",
                             presets[p], c, (long long)S);
                autosp_free(a), autosp_free(b);
                autosp_graph_free(whole), autosp_graph_free(rebound), autosp_graph_free(finished);
            }
            autosp_graph_free(joint);
            autosp_graph_free(fwd);
        }
    }
}

/* A pass's output is marked verified, so the next pass skips the walk; a clone keeps the mark,
 * and every change clears it: a new value of a symbol, a node, an output, a rename. */
static void test_verified_mark(void **state) {
    (void)state;
    autosp_graph_t *fwd = preset_graph("llama-tiny", 1, 64);
    assert_false(fwd->verified); /* built by the model builder: verified by its user */
    autosp_parallel_config_t cfg = config(2, 1, 0, AUTOSP_AC_SAC);
    autosp_graph_t *joint = compile_joint(fwd, &cfg, NULL);
    assert_non_null(joint);
    assert_true(joint->verified);
    autosp_graph_t *copy = autosp_graph_clone(joint);
    assert_true(copy->verified);
    assert_int_equal(autosp_symbol_bind(copy, "S", 64, NULL), AUTOSP_OK); /* the same value */
    assert_true(copy->verified);
    assert_int_equal(autosp_symbol_bind(copy, "S", 128, NULL), AUTOSP_OK);
    assert_false(copy->verified);
    assert_int_equal(autosp_graph_verify(copy, AUTOSP_VERIFY_BOUND, NULL), AUTOSP_OK);
    assert_false(copy->verified); /* verify itself marks nothing: only a graph's maker does */
    autosp_graph_free(copy);
    copy = autosp_graph_clone(joint);
    autosp_tensor_t x = autosp_graph_output(copy, 0);
    assert_int_not_equal(autosp_scale(copy, x, 2.0, "twice"), AUTOSP_NO_TENSOR);
    assert_false(copy->verified);
    autosp_graph_free(copy);
    copy = autosp_graph_clone(joint);
    assert_int_equal(tensor_rename(copy, x, "renamed", NULL), AUTOSP_OK);
    assert_false(copy->verified);
    autosp_graph_free(copy);
    autosp_graph_free(joint);
    autosp_graph_free(fwd);
}

static autosp_seq_query_t query(int64_t mem, int zero, bool exhaustive) {
    return (autosp_seq_query_t){.symbol = "S",
                                .multiple = 64,
                                .limit = 1 << 16,
                                .mem_bytes = mem,
                                .zero_stage = zero,
                                .backend = autosp_backend_cpu(),
                                .exhaustive = exhaustive};
}

/* The plan of cfg at S, compiled from the forward graph. */
static int64_t planned_at(autosp_graph_t *fwd, const autosp_parallel_config_t *cfg, int64_t S,
                          const autosp_seq_query_t *q) {
    assert_int_equal(autosp_symbol_bind(fwd, "S", S, NULL), AUTOSP_OK);
    autosp_graph_t *step = autosp_compile_training(fwd, cfg, NULL);
    assert_non_null(step);
    autosp_memory_plan_t m;
    assert_int_equal(autosp_plan_memory(step, q->zero_stage, q->backend, &m, NULL), AUTOSP_OK);
    autosp_graph_free(step);
    return m.total;
}

/* One search object over a table of queries (as autosp-compile --max-seq runs them) gives
 * answers that fit and whose next candidate does not, compiled from scratch, with fewer
 * compiles than the exhaustive search; the same answers where the plan grows with S. sac's
 * plan is a sawtooth in S (each tooth recomputes more), so there the two searches may stop at
 * different teeth (docs/checkpointing.md). */
static void test_guided_matches_exhaustive(void **state) {
    (void)state;
    autosp_graph_t *fwd = preset_graph("llama-small", 1, 1024);
    autosp_seq_search_t *search = autosp_seq_search_new(fwd);
    assert_non_null(search);
    int n, guided = 0, exhaustive = 0;
    const autosp_parallel_config_t *cfg = configs(&n);
    for (int c = 0; c < n; c++) {
        autosp_seq_query_t q = query(192LL << 20, cfg[c].zero_stage, false);
        autosp_seq_answer_t a, b;
        assert_int_equal(autosp_seq_search_run(search, &cfg[c], &q, &a, NULL), AUTOSP_OK);
        q.exhaustive = true;
        assert_int_equal(autosp_max_seq(fwd, &cfg[c], &q, &b, NULL), AUTOSP_OK);
        print_message("config %d: guided %lld (%d compiles), exhaustive %lld (%d compiles)\n", c,
                      (long long)a.seq, a.compiles, (long long)b.seq, b.compiles);
        assert_true(a.seq > 0 && b.seq > 0);
        assert_int_equal(planned_at(fwd, &cfg[c], a.seq, &q), a.plan.total);
        assert_true(a.plan.total <= q.mem_bytes);
        assert_true(planned_at(fwd, &cfg[c], a.seq + q.multiple, &q) > q.mem_bytes);
        if (cfg[c].ac.policy != AUTOSP_AC_SAC) assert_int_equal(a.seq, b.seq);
        guided += a.compiles, exhaustive += b.compiles;
    }
    assert_true(guided < exhaustive);
    autosp_seq_search_free(search);
    autosp_graph_free(fwd);
}

static void test_bad_queries(void **state) {
    (void)state;
    autosp_graph_t *fwd = preset_graph("llama-tiny", 1, 64);
    autosp_parallel_config_t cfg = config(2, 1, 0, AUTOSP_AC_SAC);
    autosp_seq_answer_t a;
    autosp_error_t err;
    autosp_seq_query_t q = query(0, 0, false);
    assert_int_equal(autosp_max_seq(fwd, &cfg, &q, &a, &err), AUTOSP_ERR_INVALID);
    assert_non_null(strstr(err.message, "expected memory > 0"));
    q = query(1 << 30, 0, false);
    q.limit = 32; /* below one step of 64 tokens */
    assert_int_equal(autosp_max_seq(fwd, &cfg, &q, &a, &err), AUTOSP_ERR_INVALID);
    q = query(1 << 20, 0, false); /* the parameters alone are more */
    assert_int_equal(autosp_max_seq(fwd, &cfg, &q, &a, &err), AUTOSP_OK);
    assert_int_equal(a.seq, 0);
    assert_true(a.plan.total > q.mem_bytes);
    autosp_graph_free(fwd);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_joint_serves_every_s),
        cmocka_unit_test(test_verified_mark),
        cmocka_unit_test(test_guided_matches_exhaustive),
        cmocka_unit_test(test_bad_queries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
