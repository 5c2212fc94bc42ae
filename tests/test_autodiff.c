/* The autodiff pass builds a valid joint graph; its numbers are checked against finite
 * differences by test_gradcheck once the executor runs them. */
#include "test_util.h"

static void test_joint_graph_of_every_tiny_model(void **state) {
    const char *models[] = {"llama-tiny", "llama-tiny-gqa", "gpt2-tiny"};
    for (size_t m = 0; m < sizeof models / sizeof *models; m++) {
        autosp_model_config_t cfg;
        assert_true(autosp_model_preset(models[m], &cfg));
        cfg.segment_ids = m == 0;
        autosp_error_t err;
        autosp_graph_t *g = autosp_model_build(&cfg, models[m], &err);
        assert_non_null(g);
        autosp_graph_t *j = autosp_autodiff(g, &err);
        if (!j) fail_msg("%s: %s", models[m], err.message);
        assert_int_equal(autosp_graph_verify(j, 0, NULL), AUTOSP_OK);
        int params = 0;
        for (autosp_tensor_t t = 0; t < autosp_graph_num_tensors(g); t++)
            params += autosp_tensor_kind(g, t) == AUTOSP_KIND_PARAM;
        assert_int_equal(autosp_graph_num_outputs(j), 1 + params);
        assert_string_equal(autosp_tensor_name(j, autosp_graph_output(j, 0)), "loss");
        for (int i = 1; i <= params; i++) {
            char want[300], shape_p[256], shape_g[256];
            autosp_tensor_t p, gr = autosp_graph_output(j, i);
            /* the i-th output is the gradient of the i-th parameter, with its shape */
            int seen = 0;
            for (p = 0; p < autosp_graph_num_tensors(g); p++)
                if (autosp_tensor_kind(g, p) == AUTOSP_KIND_PARAM && ++seen == i) break;
            snprintf(want, sizeof want, "%s.grad", autosp_tensor_name(g, p));
            assert_string_equal(autosp_tensor_name(j, gr), want);
            assert_string_equal(autosp_tensor_shape_str(g, p, shape_p, 256),
                                autosp_tensor_shape_str(j, gr, shape_g, 256));
        }
        /* the forward graph is untouched; attention gained its lse in the joint graph only */
        assert_int_equal(autosp_graph_num_outputs(g), 1);
        assert_int_not_equal(autosp_tensor_find(j, "blk0.attn.lse"), AUTOSP_NO_TENSOR);
        assert_int_equal(autosp_tensor_find(g, "blk0.attn.lse"), AUTOSP_NO_TENSOR);
        /* and it saves and loads like any graph */
        char *text = autosp_graph_save_string(j, NULL);
        autosp_graph_t *back = autosp_graph_load_string(text, strlen(text), &err);
        if (!back) fail_msg("%s", err.message);
        autosp_graph_free(back);
        autosp_free(text);
        autosp_graph_free(j);
        autosp_graph_free(g);
    }
}

/* The lm head reuses wte: its weight gradient comes first (the head is last in the forward),
 * and the embedding's rows are added into it (index_add, in place), not scattered into a
 * second V x C table and summed. The whole-graph gradient checks hold the numbers. */
static void test_tied_embedding_sums_two_contributions(void **state) {
    autosp_model_config_t cfg;
    assert_true(autosp_model_preset("gpt2-tiny", &cfg));
    autosp_graph_t *g = autosp_model_build(&cfg, "t", NULL);
    autosp_graph_t *j = autosp_autodiff(g, NULL);
    assert_non_null(j);
    autosp_tensor_t grad = autosp_tensor_find(j, "wte.grad");
    assert_int_not_equal(grad, AUTOSP_NO_TENSOR);
    int acc = autosp_tensor_producer(j, grad);
    assert_int_equal(autosp_node_op(j, acc), AUTOSP_OP_INDEX_ADD);
    autosp_tensor_t head_grad = autosp_node_input(j, acc, 0);
    assert_int_equal(autosp_node_op(j, autosp_tensor_producer(j, head_grad)),
                     AUTOSP_OP_LINEAR_BACKWARD);
    assert_int_equal(autosp_node_input(j, acc, 1), autosp_tensor_find(j, "tokens"));
    autosp_graph_free(j);
    autosp_graph_free(g);
}

/* A forward output other than the loss (the logits, for an eval) stays an output of the joint
 * graph, after the loss and before the gradients, so the memory plan keeps it. */
static void test_other_forward_outputs_stay(void **state) {
    autosp_model_config_t cfg;
    assert_true(autosp_model_preset("llama-tiny", &cfg));
    autosp_graph_t *g = autosp_model_build(&cfg, "t", NULL);
    autosp_tensor_t logits = autosp_tensor_find(g, "logits");
    assert_int_equal(autosp_output(g, logits), AUTOSP_OK);
    autosp_graph_t *j = autosp_autodiff(g, NULL);
    assert_non_null(j);
    assert_string_equal(autosp_tensor_name(j, autosp_graph_output(j, 0)), "loss");
    assert_string_equal(autosp_tensor_name(j, autosp_graph_output(j, 1)), "logits");
    assert_string_equal(autosp_tensor_name(j, autosp_graph_output(j, 2)), "tok_emb.grad");
    autosp_graph_free(j);
    autosp_graph_free(g);
}

/* ZeRO-3 on gpt2-tiny at sp 2: each parameter is held as half its elements; the tied wte is
 * gathered once per reader (embedding, lm head), each right before it; its gradient is the
 * reduce-scattered shard, and no gradient is all-reduced. */
static void test_param_shard_gathers_per_reader(void **state) {
    autosp_model_config_t cfg;
    assert_true(autosp_model_preset("gpt2-tiny", &cfg));
    autosp_graph_t *g = autosp_model_build(&cfg, "t", NULL);
    autosp_symbol_bind(g, "B", 1, NULL);
    autosp_symbol_bind(g, "S", 32, NULL);
    autosp_parallel_config_t pc = autosp_parallel_config_default();
    pc.sp = 2, pc.zero_stage = 3, pc.loss_chunk = AUTOSP_LOSS_UNCHUNKED;
    autosp_error_t err;
    autosp_graph_t *j = autosp_compile_training(g, &pc, &err);
    if (!j) fail_msg("%s", err.message);
    autosp_tensor_t wte = autosp_tensor_find(g, "wte");
    int64_t whole = autosp_tensor_numel(g, wte);
    assert_int_equal(autosp_tensor_numel(j, autosp_tensor_find(j, "wte")), (whole + 1) / 2);
    assert_int_equal(autosp_tensor_numel(j, autosp_tensor_find(j, "wte.grad")), (whole + 1) / 2);
    int gathers = 0;
    for (int i = 0; i < autosp_graph_num_nodes(j); i++) {
        autosp_op_t op = autosp_node_op(j, i);
        if (op == AUTOSP_OP_ALL_REDUCE) /* the loss's sum only */
            for (int k = 0; k < autosp_node_num_inputs(j, i); k++)
                assert_null(strstr(autosp_tensor_name(j, autosp_node_input(j, i, k)), ".grad"));
        if (op != AUTOSP_OP_UNSHARD) continue;
        autosp_tensor_t out = autosp_node_output(j, i, 0);
        if (strncmp(autosp_node_name(j, i), "wte.gathered", 12) == 0) {
            gathers++;
            assert_int_equal(autosp_tensor_numel(j, out), whole);
        }
    }
    assert_true(gathers >= 2); /* the backward may gather again what the forward freed */
    assert_int_equal(autosp_tensor_producer(j, autosp_tensor_find(j, "wte.grad")) >= 0, 1);
    autosp_graph_free(j);
    autosp_graph_free(g);
}

/* A parameter whose shape has a symbol cannot be split into fixed shards. */
static void test_param_shard_rejects_symbolic(void **state) {
    autosp_graph_t *g = autosp_graph_new("t");
    autosp_symbol(g, "S", 8);
    autosp_tensor_t x = autosp_input(g, "x", AUTOSP_F32, "S,4", AUTOSP_ROLE_OTHER, 0);
    autosp_tensor_t w = autosp_param(g, "w", AUTOSP_F32, "S,4", AUTOSP_INIT_ZEROS, 0);
    autosp_output(g, autosp_add(g, x, w, "y"));
    autosp_error_t err;
    assert_null(autosp_param_shard(g, &err));
    assert_non_null(strstr(err.message, "parameter \"w\""));
    assert_non_null(strstr(err.message, "a symbol"));
    autosp_graph_free(g);
}

static void test_errors(void **state) {
    autosp_graph_t *g = new_graph();
    autosp_output(g, autosp_silu(g, in_f32(g, "x", "B,S"), "y"));
    autosp_error_t err;
    assert_null(autosp_autodiff(g, &err));
    assert_string_equal(err.message,
                        "autodiff: output \"y\" is a 2-dim f32 tensor, expected a scalar f32 loss");
    autosp_graph_free(g);

    g = new_graph(); /* a gradient that would have to flow through a collective */
    autosp_tensor_t w = autosp_param(g, "w", AUTOSP_F32, "B,S", AUTOSP_INIT_NORMAL, 0.02);
    autosp_tensor_t r = autosp_all_gather(g, w, 1, 2, "sp", "ag");
    autosp_output(g, autosp_cross_entropy(g, r, in_i32(g, "l", "B"), -100, "loss"));
    assert_null(autosp_autodiff(g, &err));
    assert_string_equal(err.message, "autodiff: node \"ag\" (all_gather) has no backward rule, "
                                     "but a parameter's gradient flows through it");
    autosp_graph_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_joint_graph_of_every_tiny_model),
        cmocka_unit_test(test_tied_embedding_sums_two_contributions),
        cmocka_unit_test(test_other_forward_outputs_stay),
        cmocka_unit_test(test_param_shard_gathers_per_reader),
        cmocka_unit_test(test_param_shard_rejects_symbolic),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
