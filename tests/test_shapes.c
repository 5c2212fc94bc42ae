/* Every op's shape and dtype rule: the shapes it accepts and the errors it gives. */
#include "ir/op_table.h"
#include "test_util.h"

#define F32 AUTOSP_F32

/* Which ops produced a checked shape; the last test asserts that every shape rule was. */
static bool op_tested[AUTOSP_OP_COUNT];

#define ok(g, t, shape, dtype)                                                                     \
    do {                                                                                           \
        autosp_tensor_t t_ = (t);                                                                  \
        assert_shape(g, t_, shape, dtype);                                                         \
        op_tested[autosp_node_op(g, autosp_tensor_producer(g, t_))] = true;                        \
    } while (0)

static void test_embedding(void **state) {
    autosp_graph_t *g = new_graph();
    autosp_tensor_t ids = in_i32(g, "ids", "B,S"), w = in_f32(g, "w", "256,64");
    ok(g, autosp_embedding(g, ids, w, "e"), "B,S,64", F32);
    autosp_graph_free(g);

    g = new_graph();
    autosp_embedding(g, in_f32(g, "ids", "B,S"), in_f32(g, "w", "256,64"), "e");
    assert_error_and_free(g, "node \"e\" (embedding): input \"ids\" (tensor \"ids\") has dtype "
                             "f32, expected an integer dtype (i32, i64)");
    g = new_graph();
    autosp_embedding(g, in_i32(g, "ids", "B,S"), in_f32(g, "w", "256"), "e");
    assert_error_and_free(g, "input \"weight\" (tensor \"w\") has 1 dims [256], expected 2");
}

static void test_matmul(void **state) {
    autosp_graph_t *g = new_graph();
    autosp_tensor_t a = in_f32(g, "a", "B,S,32"), b = in_f32(g, "b", "32,16");
    autosp_tensor_t bt = in_f32(g, "bt", "16,32"), a3 = in_f32(g, "a3", "B,32,S");
    autosp_tensor_t bb = in_f32(g, "bb", "B,32,8");
    ok(g, autosp_matmul(g, a, b, false, false, "ab"), "B,S,16", F32);
    ok(g, autosp_matmul(g, a, bt, false, true, "abt"), "B,S,16", F32);
    ok(g, autosp_matmul(g, a3, bb, true, false, "atb"), "B,S,8", F32);
    ok(g, autosp_matmul(g, bt, a3, false, false, "bcast"), "B,16,S", F32);
    autosp_graph_free(g);

    g = new_graph();
    autosp_matmul(g, in_f32(g, "a", "B,S,32"), in_f32(g, "b", "16,32"), false, false, "m");
    assert_error_and_free(g, "input \"b\" (tensor \"b\") has shape [16,32]: dim 0 is 16, "
                             "expected 32 (the inner dim K of input \"a\")");
    g = new_graph();
    autosp_matmul(g, in_f32(g, "a", "B,S,32"), in_f32(g, "b", "S,32,4"), false, false, "m");
    assert_error_and_free(g, "dim 0 is S, expected B (batch dim of \"a\")");
    g = new_graph();
    autosp_matmul(g, in_f32(g, "a", "B,S,32"),
                  autosp_input(g, "b", AUTOSP_BF16, "32,4", AUTOSP_ROLE_OTHER, -1), false, false,
                  "m");
    assert_error_and_free(g, "has dtype bf16, expected f32 (the dtype of input \"a\")");
}

static void test_linear(void **state) {
    autosp_graph_t *g = new_graph();
    autosp_tensor_t x = in_f32(g, "x", "B,S,64"), w = in_f32(g, "w", "128,64");
    ok(g, autosp_linear(g, x, w, in_f32(g, "b", "128"), "y"), "B,S,128", F32);
    ok(g, autosp_linear(g, x, w, AUTOSP_NO_TENSOR, "y2"), "B,S,128", F32);
    autosp_graph_free(g);

    g = new_graph();
    autosp_linear(g, in_f32(g, "x", "B,S,64"), in_f32(g, "w", "128,32"), AUTOSP_NO_TENSOR, "y");
    assert_error_and_free(g, "node \"y\" (linear): input \"weight\" (tensor \"w\") has shape "
                             "[128,32]: dim 1 is 32, expected 64 (the last dim K of input \"x\")");
    g = new_graph();
    autosp_linear(g, in_f32(g, "x", "B,S,64"), in_f32(g, "w", "128,64"), in_f32(g, "b", "64"), "y");
    assert_error_and_free(g, "input \"bias\" (tensor \"b\") has shape [64]: dim 0 is 64, "
                             "expected 128 (the output dim N of input \"weight\")");
}

static void test_broadcast_ops(void **state) {
    autosp_graph_t *g = new_graph();
    autosp_tensor_t a = in_f32(g, "a", "B,S,64");
    ok(g, autosp_add(g, a, in_f32(g, "b", "B,S,64"), "sum"), "B,S,64", F32);
    ok(g, autosp_mul(g, a, in_f32(g, "c", "64"), "prod"), "B,S,64", F32);
    ok(g, autosp_add(g, a, in_f32(g, "d", "S,1"), "bc"), "B,S,64", F32);
    ok(g, autosp_scale(g, a, 0.5, "half"), "B,S,64", F32);
    autosp_graph_free(g);

    g = new_graph();
    autosp_add(g, in_f32(g, "a", "B,S,64"), in_f32(g, "b", "S,32"), "sum");
    assert_error_and_free(g, "node \"sum\" (add): input \"b\" (tensor \"b\") has shape [S,32]: "
                             "dim 1 is 32, expected 64 (equal to the aligned dim of input \"a\" "
                             "or 1)");
    g = new_graph();
    autosp_mul(g, in_f32(g, "a", "64"), in_f32(g, "b", "S,64"), "prod");
    assert_error_and_free(g, "has 2 dims [S,64], expected at most 1");
    g = new_graph();
    autosp_add(g, in_i32(g, "a", "S"), in_i32(g, "b", "S"), "sum");
    assert_error_and_free(g, "has dtype i32, expected a float dtype");
}

static void test_norms(void **state) {
    autosp_graph_t *g = new_graph();
    autosp_tensor_t x = in_f32(g, "x", "B,S,64"), w = in_f32(g, "w", "64");
    ok(g, autosp_rmsnorm(g, x, w, 1e-5, "rms"), "B,S,64", F32);
    ok(g, autosp_layernorm(g, x, w, in_f32(g, "b", "64"), 1e-5, "ln"), "B,S,64", F32);
    autosp_graph_free(g);

    g = new_graph();
    autosp_rmsnorm(g, in_f32(g, "x", "B,S,64"), in_f32(g, "w", "32"), 1e-5, "rms");
    assert_error_and_free(g, "input \"weight\" (tensor \"w\") has shape [32]: dim 0 is 32, "
                             "expected 64 (the last dim C of input \"x\")");
    g = new_graph();
    autosp_rmsnorm(g, in_f32(g, "x", "B,S,64"), in_f32(g, "w", "64"), 0, "rms");
    assert_error_and_free(g, "node \"rms\" (rmsnorm): attribute \"eps\" is 0, expected a value "
                             "in (0, 1)");
    g = new_graph();
    autosp_layernorm(g, in_f32(g, "x", "B,S,64"), in_f32(g, "w", "64"), in_f32(g, "b", "B"), 1e-5,
                     "ln");
    assert_error_and_free(g, "input \"bias\" (tensor \"b\") has shape [B]: dim 0 is B, expected "
                             "64");
}

static void test_rope(void **state) {
    autosp_graph_t *g = new_graph();
    autosp_tensor_t x = in_f32(g, "x", "B,S,4,16");
    ok(g, autosp_rope(g, x, in_i32(g, "p", "B,S"), 1e4, "r"), "B,S,4,16", F32);
    ok(g, autosp_rope(g, x, in_i32(g, "p1", "S"), 5e5, "r1"), "B,S,4,16", F32);
    autosp_graph_free(g);

    g = new_graph();
    autosp_rope(g, in_f32(g, "x", "B,S,4,15"), in_i32(g, "p", "B,S"), 1e4, "r");
    assert_error_and_free(g, "input \"x\" (tensor \"x\") has head dim D=15, expected an even D");
    g = new_graph();
    autosp_rope(g, in_f32(g, "x", "B,S,64"), in_i32(g, "p", "B,S"), 1e4, "r");
    assert_error_and_free(g, "has 3 dims [B,S,64], expected 4");
    g = new_graph();
    autosp_rope(g, in_f32(g, "x", "B,S,4,16"), in_i32(g, "p", "B,128"), 1e4, "r");
    assert_error_and_free(g, "dim 1 is 128, expected S (the sequence dim S of input \"x\")");
    g = new_graph();
    autosp_rope(g, in_f32(g, "x", "B,S,4,16"), in_i32(g, "p", "S"), 0.5, "r");
    assert_error_and_free(g, "attribute \"theta\" is 0.5, expected > 1");
}

static void test_activations(void **state) {
    autosp_graph_t *g = new_graph();
    autosp_tensor_t x = in_f32(g, "x", "B,S,64");
    ok(g, autosp_silu(g, x, "silu"), "B,S,64", F32);
    ok(g, autosp_gelu(g, x, "gelu"), "B,S,64", F32);
    ok(g, autosp_softmax(g, x, "sm"), "B,S,64", F32);
    ok(g, autosp_swiglu(g, x, in_f32(g, "u", "B,S,64"), "sw"), "B,S,64", F32);
    autosp_graph_free(g);

    g = new_graph();
    autosp_swiglu(g, in_f32(g, "x", "B,S,64"), in_f32(g, "u", "B,S,32"), "sw");
    assert_error_and_free(g, "node \"sw\" (swiglu): input \"up\" (tensor \"u\") has shape "
                             "[B,S,32]: dim 2 is 32, expected 64 (the shape of input \"gate\")");
    g = new_graph();
    autosp_silu(g, in_i32(g, "x", "B,S"), "silu");
    assert_error_and_free(g, "node \"silu\" (silu): input \"x\" (tensor \"x\") has dtype i32");
}

static autosp_tensor_t attn(autosp_graph_t *g, const char *q, const char *k, const char *seg,
                            int hq, int hkv, bool causal) {
    return autosp_attention(g, in_f32(g, "q", q), in_f32(g, "k", k), in_f32(g, "v", k),
                            seg ? in_i32(g, "seg", seg) : AUTOSP_NO_TENSOR, hq, hkv, causal, 0,
                            "attn");
}

static void test_attention(void **state) {
    autosp_graph_t *g = new_graph();
    ok(g, attn(g, "B,S,8,16", "B,S,2,16", "B,S", 8, 2, true), "B,S,8,16", F32);
    autosp_graph_free(g);
    g = new_graph(); /* cross-attention: non-causal, different key length */
    ok(g, attn(g, "B,S,4,16", "B,77,4,16", NULL, 4, 0, false), "B,S,4,16", F32);
    autosp_graph_free(g);

    g = new_graph(); /* the second output: log-sum-exp per query row */
    autosp_tensor_t qkv[3] = {in_f32(g, "q", "B,S,4,16"), in_f32(g, "k", "B,S,4,16"),
                              in_f32(g, "v", "B,S,4,16")},
                    out[2];
    autosp_attr_t heads = {.name = "num_heads", .type = AUTOSP_ATTR_INT, .i = 4};
    assert_int_equal(autosp_node_add(g, AUTOSP_OP_ATTENTION, "a", qkv, 3, NULL, 2, &heads, 1, out),
                     AUTOSP_OK);
    ok(g, out[1], "B,4,S", F32);
    assert_string_equal(autosp_tensor_name(g, out[1]), "a.lse");
    autosp_graph_free(g);

    g = new_graph();
    attn(g, "B,S,8,16", "B,S,3,16", NULL, 8, 2, true);
    assert_error_and_free(g, "node \"attn\" (attention): input \"k\" (tensor \"k\") has shape "
                             "[B,S,3,16]: dim 2 is 3, expected 2 (num_kv_heads=2)");
    g = new_graph();
    attn(g, "B,S,8,16", "B,S,3,16", NULL, 8, 3, true);
    assert_error_and_free(g, "num_heads=8 is not a multiple of num_kv_heads=3");
    g = new_graph();
    attn(g, "B,S,8,16", "B,S,8,16", NULL, 4, 4, true);
    assert_error_and_free(g, "input \"q\" (tensor \"q\") has shape [B,S,8,16]: dim 2 is 8, "
                             "expected 4 (num_heads=4)");
    g = new_graph();
    attn(g, "B,S,4,16", "B,S,4,8", NULL, 4, 4, true);
    assert_error_and_free(g, "dim 3 is 8, expected 16 (the head dim D of input \"q\")");
    g = new_graph();
    attn(g, "B,S,4,16", "B,77,4,16", NULL, 4, 4, true);
    assert_error_and_free(g, "dim 1 is 77, expected S (the sequence dim S of input \"q\": causal");
    g = new_graph();
    attn(g, "B,S,4,16", "B,S,4,16", "S", 4, 4, true);
    assert_error_and_free(g, "input \"segment_ids\" (tensor \"seg\") has 1 dims [S], expected 2");
    g = new_graph();
    attn(g, "B,S,4,16", "B,S,4,16", NULL, 0, 0, true);
    assert_error_and_free(g, "attribute \"num_heads\" is 0, expected 1..1048576");
}

/* ring_attention: one ring position's L rows; segment ids are the whole ring's (ranks x L) */
static autosp_status_t ring_attn(autosp_graph_t *g, const char *seg, int ranks,
                                 autosp_tensor_t *out) {
    autosp_tensor_t in[4] = {in_f32(g, "q", "B,S,4,16"), in_f32(g, "k", "B,S,2,16"),
                             in_f32(g, "v", "B,S,2,16"), in_i32(g, "seg", seg)};
    autosp_attr_t attrs[3] = {{.name = "num_heads", .type = AUTOSP_ATTR_INT, .i = 4},
                              {.name = "num_kv_heads", .type = AUTOSP_ATTR_INT, .i = 2},
                              {.name = "ranks", .type = AUTOSP_ATTR_INT, .i = ranks}};
    return autosp_node_add(g, AUTOSP_OP_RING_ATTENTION, "ring", in, 4, NULL, 2, attrs, 3, out);
}

static void test_ring_attention(void **state) {
    autosp_graph_t *g = new_graph();
    autosp_tensor_t out[2];
    assert_int_equal(ring_attn(g, "B,4*S", 4, out), AUTOSP_OK);
    ok(g, out[0], "B,S,4,16", F32);
    ok(g, out[1], "B,4,S", F32);
    autosp_graph_free(g);
    g = new_graph();
    ring_attn(g, "B,S", 4, out);
    assert_error_and_free(g, "node \"ring\" (ring_attention): input \"segment_ids\" (tensor "
                             "\"seg\") has shape [B,S]: dim 1 is S, expected 4*S (ranks x the "
                             "sequence dim L of input \"q\" (every ring position's ids))");
    g = new_graph();
    ring_attn(g, "B,S", 0, out);
    assert_error_and_free(g, "attribute \"ranks\" is 0, expected 1..1048576");
}

static void test_reshape_transpose(void **state) {
    autosp_graph_t *g = new_graph();
    autosp_tensor_t x = in_f32(g, "x", "B,S,64");
    ok(g, autosp_reshape(g, x, "B,S,4,16", "heads"), "B,S,4,16", F32);
    ok(g, autosp_reshape(g, x, "B*S,64", "flat"), "B*S,64", F32);
    int64_t perm[3] = {1, 0, 2};
    ok(g, autosp_transpose(g, x, perm, 3, "t"), "S,B,64", F32);
    autosp_graph_free(g);

    g = new_graph();
    autosp_reshape(g, in_f32(g, "x", "B,S,64"), "B,S,4,8", "heads");
    assert_error_and_free(g, "node \"heads\" (reshape): input \"x\" (tensor \"x\") has shape "
                             "[B,S,64] with 64*B*S elements, but the target shape [B,S,4,8] has "
                             "32*B*S elements");
    g = new_graph();
    autosp_reshape(g, in_f32(g, "x", "B,S,64"), "S,B,T", "r");
    assert_error_and_free(g, "attribute \"shape\": shape \"S,B,T\": symbol \"T\" is not declared");
    g = new_graph();
    int64_t bad[3] = {0, 0, 2};
    autosp_transpose(g, in_f32(g, "x", "B,S,64"), bad, 3, "t");
    assert_error_and_free(g, "attribute \"perm\" is not a permutation of 0..2 (entry 1 is 0)");
    g = new_graph();
    autosp_transpose(g, in_f32(g, "x", "B,S,64"), perm, 2, "t");
    assert_error_and_free(g, "attribute \"perm\" has 2 entries, expected 3");
}

static void test_cross_entropy(void **state) {
    autosp_graph_t *g = new_graph();
    autosp_tensor_t l = autosp_cross_entropy(g, in_f32(g, "logits", "B,S,256"),
                                             in_i32(g, "labels", "B,S"), -100, "loss");
    ok(g, l, "", F32);
    assert_int_equal(autosp_tensor_ndim(g, l), 0);
    autosp_graph_free(g);

    g = new_graph(); /* with a normalizer, and the count that makes one */
    autosp_tensor_t labels = in_i32(g, "labels", "B,S");
    autosp_tensor_t count = autosp_target_count(g, labels, -100, "count");
    ok(g, count, "", F32);
    autosp_tensor_t in3[3] = {in_f32(g, "logits", "B,S,256"), labels, count};
    autosp_attr_t ce = {.name = "ignore_index", .type = AUTOSP_ATTR_INT, .i = -100};
    assert_int_equal(
        autosp_node_add(g, AUTOSP_OP_CROSS_ENTROPY, "part", in3, 3, NULL, 1, &ce, 1, &l),
        AUTOSP_OK);
    ok(g, l, "", F32);
    in3[2] = in3[0];
    autosp_node_add(g, AUTOSP_OP_CROSS_ENTROPY, "bad", in3, 3, NULL, 1, &ce, 1, &l);
    assert_error_and_free(g, "input \"normalizer\" (tensor \"logits\") has 3 dims [B,S,256], "
                             "expected 0");
    g = new_graph();
    autosp_target_count(g, in_f32(g, "labels", "B,S"), -100, "count");
    assert_error_and_free(g, "node \"count\" (target_count): input \"labels\" (tensor "
                             "\"labels\") has dtype f32, expected an integer dtype");

    g = new_graph();
    autosp_cross_entropy(g, in_f32(g, "logits", "B,S,256"), in_i32(g, "labels", "B,S,1"), -100,
                         "loss");
    assert_error_and_free(g, "input \"labels\" (tensor \"labels\") has 3 dims [B,S,1], expected 2");
    g = new_graph();
    autosp_cross_entropy(g, in_f32(g, "logits", "B,S,256"), in_f32(g, "labels", "B,S"), -100,
                         "loss");
    assert_error_and_free(g, "has dtype f32, expected an integer dtype");
}

/* One node of op on one input x (dtype, shape) with the first n of attrs fails naming part. */
static void one_input_fails(autosp_op_t op, autosp_dtype_t dtype, const char *shape,
                            const autosp_attr_t *attrs, int n, const char *part) {
    autosp_graph_t *g = new_graph();
    autosp_tensor_t out, x = autosp_input(g, "x", dtype, shape, AUTOSP_ROLE_OTHER, -1);
    autosp_node_add(g, op, "n", &x, 1, NULL, 1, attrs, n, &out);
    assert_error_and_free(g, part);
}

static void test_reduce_scatter(void **state) {
    autosp_attr_t a[2] = {{.name = "ranks", .type = AUTOSP_ATTR_INT, .i = 4},
                          {.name = "group", .type = AUTOSP_ATTR_STRING, .s = "world"}};
    autosp_graph_t *g = new_graph();
    autosp_tensor_t x = in_f32(g, "x", "6,4"), y = in_f32(g, "y", "5,5");
    ok(g, autosp_reduce_scatter(g, x, 4, "rs"), "6", F32);
    ok(g, autosp_reduce_scatter(g, y, 4, "rs2"), "7", F32); /* 25: 7 + 6 + 6 + 6, padded to 7 */
    autosp_graph_free(g);
    const autosp_op_t rs = AUTOSP_OP_REDUCE_SCATTER;
    one_input_fails(rs, F32, "B,S,4", a, 2, "has a symbolic dim 0: a shard needs a constant size");
    one_input_fails(rs, AUTOSP_BF16, "6,4", a, 2, "has dtype bf16, expected f32");
    one_input_fails(rs, F32, "6,4", a, 1, "attribute \"group\" is \"sp\", expected \"world\"");
}

static void test_unshard(void **state) {
    autosp_attr_t a[3] = {{.name = "shape", .type = AUTOSP_ATTR_SHAPE, .s = "5,5"},
                          {.name = "ranks", .type = AUTOSP_ATTR_INT, .i = 4},
                          {.name = "group", .type = AUTOSP_ATTR_STRING, .s = "world"}};
    autosp_graph_t *g = new_graph();
    autosp_tensor_t out, x = autosp_input(g, "x", AUTOSP_BF16, "7", AUTOSP_ROLE_OTHER, -1);
    autosp_node_add(g, AUTOSP_OP_UNSHARD, "u", &x, 1, NULL, 1, a, 3, &out);
    ok(g, out, "5,5", AUTOSP_BF16); /* 25 elements: shards of 7 + 6 + 6 + 6, each padded to 7 */
    autosp_graph_free(g);
    const autosp_op_t u = AUTOSP_OP_UNSHARD;
    one_input_fails(u, F32, "6", a, 3,
                    "is [6], expected [7] (a shard of 25 elements over 4 ranks)");
    one_input_fails(u, F32, "7", a, 2, "attribute \"group\" is \"sp\", expected \"world\"");
    a[0].s = "S,5";
    one_input_fails(u, F32, "7", a, 3, "attribute \"shape\" has a symbolic dim 0");
}

static void test_mlp(void **state) {
    autosp_graph_t *g = new_graph();
    autosp_tensor_t in[4] = {in_f32(g, "x", "B,S,64"), in_f32(g, "wg", "176,64"),
                             in_f32(g, "wu", "176,64"), in_f32(g, "wd", "64,176")},
                    y;
    autosp_attr_t tile = {.name = "tile", .type = AUTOSP_ATTR_INT, .i = 32};
    assert_int_equal(autosp_node_add(g, AUTOSP_OP_MLP, "mlp", in, 4, NULL, 1, &tile, 1, &y),
                     AUTOSP_OK);
    ok(g, y, "B,S,64", F32);
    autosp_graph_free(g);
    const struct {
        const char *wg, *wu, *wd, *error;
    } bad[] = {
        {"176,32", "176,64", "64,176", "dim 1 is 32, expected 64 (the last dim C of input \"x\")"},
        {"176,64", "170,64", "64,176", "dim 0 is 170, expected 176 (dim 0 (F) of input"},
        {"176,64", "176,64", "64,170", "dim 1 is 170, expected 176 (dim 0 (F) of input"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        g = new_graph();
        autosp_tensor_t b[4] = {in_f32(g, "x", "B,S,64"), in_f32(g, "wg", bad[k].wg),
                                in_f32(g, "wu", bad[k].wu), in_f32(g, "wd", bad[k].wd)};
        autosp_node_add(g, AUTOSP_OP_MLP, "mlp", b, 4, NULL, 1, NULL, 0, &y);
        assert_error_and_free(g, bad[k].error);
    }
    g = new_graph(); /* with its rmsnorm: norm_weight (C) */
    autosp_tensor_t normed[5] = {in_f32(g, "x", "B,S,64"), in_f32(g, "wg", "176,64"),
                                 in_f32(g, "wu", "176,64"), in_f32(g, "wd", "64,176"),
                                 in_f32(g, "g", "60")};
    autosp_node_add(g, AUTOSP_OP_MLP, "mlp", normed, 5, NULL, 1, NULL, 0, &y);
    assert_error_and_free(g, "input \"norm_weight\" (tensor \"g\") has shape [60]: dim 0 is 60, "
                             "expected 64 (the last dim C of input \"x\")");
    g = new_graph();
    tile.i = -1;
    autosp_tensor_t t[4] = {in_f32(g, "x", "B,S,64"), in_f32(g, "wg", "176,64"),
                            in_f32(g, "wu", "176,64"), in_f32(g, "wd", "64,176")};
    autosp_node_add(g, AUTOSP_OP_MLP, "mlp", t, 4, NULL, 1, &tile, 1, &y);
    assert_error_and_free(g, "attribute \"tile\" is -1, expected rows per tile (0: planned)");
}

static void test_gelu_mlp(void **state) {
    autosp_graph_t *g = new_graph();
    autosp_tensor_t in[5] = {in_f32(g, "x", "B,S,64"), in_f32(g, "wf", "256,64"),
                             in_f32(g, "bf", "256"), in_f32(g, "wp", "64,256"),
                             in_f32(g, "bp", "64")},
                    y;
    autosp_attr_t tile = {.name = "tile", .type = AUTOSP_ATTR_INT, .i = 32};
    assert_int_equal(autosp_node_add(g, AUTOSP_OP_GELU_MLP, "mlp", in, 5, NULL, 1, &tile, 1, &y),
                     AUTOSP_OK);
    ok(g, y, "B,S,64", F32);
    autosp_graph_free(g);
    const struct {
        const char *wf, *bf, *wp, *bp, *error;
    } bad[] = {
        {"256,32", "256", "64,256", "64",
         "dim 1 is 32, expected 64 (the last dim C of input \"x\")"},
        {"256,64", "250", "64,256", "64", "dim 0 is 250, expected 256 (dim 0 (F) of input"},
        {"256,64", "256", "64,250", "64", "dim 1 is 250, expected 256 (dim 0 (F) of input"},
        {"256,64", "256", "64,256", "60", "dim 0 is 60, expected 64 (the last dim C of input"},
        {"256,64", "256,1", "64,256", "64", "has 2 dims"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        g = new_graph();
        autosp_tensor_t b[5] = {in_f32(g, "x", "B,S,64"), in_f32(g, "wf", bad[k].wf),
                                in_f32(g, "bf", bad[k].bf), in_f32(g, "wp", bad[k].wp),
                                in_f32(g, "bp", bad[k].bp)};
        autosp_node_add(g, AUTOSP_OP_GELU_MLP, "mlp", b, 5, NULL, 1, NULL, 0, &y);
        assert_error_and_free(g, bad[k].error);
    }
}

/* rmsnorm_linear and layernorm_linear: the norm's checks, then the projection's */
static void test_norm_linear(void **state) {
    autosp_graph_t *g = new_graph();
    autosp_tensor_t in[5] = {in_f32(g, "x", "B,S,64"), in_f32(g, "g", "64"),
                             in_f32(g, "w", "96,64"), in_f32(g, "b", "96")},
                    y;
    autosp_attr_t tile = {.name = "tile", .type = AUTOSP_ATTR_INT, .i = 32};
    assert_int_equal(
        autosp_node_add(g, AUTOSP_OP_RMSNORM_LINEAR, "q", in, 4, NULL, 1, &tile, 1, &y), AUTOSP_OK);
    ok(g, y, "B,S,96", F32);
    in[4] = in_f32(g, "nb", "64");
    autosp_tensor_t ln[5] = {in[0], in[1], in[4], in[2], in[3]};
    assert_int_equal(
        autosp_node_add(g, AUTOSP_OP_LAYERNORM_LINEAR, "ln", ln, 4, NULL, 1, NULL, 0, &y),
        AUTOSP_OK);
    ok(g, y, "B,S,96", F32);
    autosp_graph_free(g);
    const struct {
        autosp_op_t op;
        const char *g, *w, *b, *error;
    } bad[] = {
        {AUTOSP_OP_RMSNORM_LINEAR, "60", "96,64", "96",
         "input \"norm_weight\" (tensor \"g\") has shape [60]: dim 0 is 60, expected 64"},
        {AUTOSP_OP_RMSNORM_LINEAR, "64", "96,32", "96",
         "input \"weight\" (tensor \"w\") has shape [96,32]: dim 1 is 32, expected 64 (the last "
         "dim K"},
        {AUTOSP_OP_RMSNORM_LINEAR, "64", "96,64", "90",
         "input \"bias\" (tensor \"b\") has shape [90]: dim 0 is 90, expected 96"},
        {AUTOSP_OP_LAYERNORM_LINEAR, "64", "96,64", "60",
         "input \"norm_bias\" (tensor \"b\") has shape [60]: dim 0 is 60, expected 64"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        g = new_graph();
        autosp_tensor_t b[3] = {in_f32(g, "g", bad[k].g), in_f32(g, "w", bad[k].w),
                                in_f32(g, "b", bad[k].b)};
        autosp_tensor_t args[4] = {in_f32(g, "x", "B,S,64"), b[0], b[1], b[2]};
        if (bad[k].op == AUTOSP_OP_LAYERNORM_LINEAR)
            args[2] = b[2], args[3] = in_f32(g, "w2", "96,64");
        autosp_node_add(g, bad[k].op, "n", args, 4, NULL, 1, NULL, 0, &y);
        assert_error_and_free(g, bad[k].error);
    }
    g = new_graph();
    tile.i = -2;
    autosp_tensor_t t[3] = {in_f32(g, "x", "B,S,64"), in_f32(g, "g", "64"),
                            in_f32(g, "w", "96,64")};
    autosp_node_add(g, AUTOSP_OP_RMSNORM_LINEAR, "q", t, 3, NULL, 1, &tile, 1, &y);
    assert_error_and_free(g, "attribute \"tile\" is -2, expected rows per tile (0: planned)");
}

static void test_linear_cross_entropy(void **state) {
    autosp_graph_t *g = new_graph();
    autosp_tensor_t in[4] = {in_f32(g, "x", "B,S,64"), in_f32(g, "w", "256,64"),
                             in_i32(g, "labels", "B,S"), in_f32(g, "count", "")},
                    l;
    autosp_attr_t chunk = {.name = "chunk", .type = AUTOSP_ATTR_INT, .i = 32};
    assert_int_equal(
        autosp_node_add(g, AUTOSP_OP_LINEAR_CROSS_ENTROPY, "loss", in, 4, NULL, 1, &chunk, 1, &l),
        AUTOSP_OK);
    ok(g, l, "", F32);
    autosp_graph_free(g);

    const struct {
        const char *x, *w, *labels, *error;
    } bad[] = {
        {"B,S,64", "256,32", "B,S",
         "input \"weight\" (tensor \"w\") has shape [256,32]: dim 1 "
         "is 32, expected 64 (the last dim C of input \"x\")"},
        {"B,S,64", "256,64", "B,S,1", "input \"labels\" (tensor \"labels\") has 3 dims"},
        {"B,S,64", "256,64", "S,B", "the leading dims of input \"x\""},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        g = new_graph();
        autosp_tensor_t b[3] = {in_f32(g, "x", bad[k].x), in_f32(g, "w", bad[k].w),
                                in_i32(g, "labels", bad[k].labels)};
        autosp_node_add(g, AUTOSP_OP_LINEAR_CROSS_ENTROPY, "loss", b, 3, NULL, 1, NULL, 0, &l);
        assert_error_and_free(g, bad[k].error);
    }
    g = new_graph(); /* x and weight in one dtype */
    autosp_tensor_t m[3] = {in_f32(g, "x", "B,S,64"),
                            autosp_input(g, "w", AUTOSP_BF16, "256,64", AUTOSP_ROLE_OTHER, -1),
                            in_i32(g, "labels", "B,S")};
    autosp_node_add(g, AUTOSP_OP_LINEAR_CROSS_ENTROPY, "loss", m, 3, NULL, 1, NULL, 0, &l);
    assert_error_and_free(g, "has dtype bf16, expected f32");
}

static void test_collectives(void **state) {
    autosp_graph_t *g = new_graph();
    autosp_tensor_t x = in_f32(g, "x", "B,S/4,8,16");
    ok(g, autosp_all_to_all(g, x, 2, 1, 4, "sp", "a2a"), "B,S,2,16", F32);
    ok(g, autosp_all_gather(g, x, 1, 4, "sp", "ag"), "B,S,8,16", F32);
    ok(g, autosp_all_reduce(g, x, "sum", 4, "dp", "ar"), "B,S/4,8,16", F32);
    ok(g, autosp_repeat(g, x, 2, 3, "rep"), "B,S/4,24,16", F32);
    /* fused: Q, K and V in one exchange, one output each */
    autosp_tensor_t qkv[3] = {x, in_f32(g, "k", "B,S/4,4,16"), in_f32(g, "v", "B,S/4,4,16")};
    autosp_tensor_t outs[3];
    autosp_attr_t a2a[4] = {{.name = "split_dim", .type = AUTOSP_ATTR_INT, .i = 2},
                            {.name = "concat_dim", .type = AUTOSP_ATTR_INT, .i = 1},
                            {.name = "ranks", .type = AUTOSP_ATTR_INT, .i = 4}};
    assert_int_equal(autosp_node_add(g, AUTOSP_OP_ALL_TO_ALL, "qkv", qkv, 3, NULL, 3, a2a, 3, outs),
                     AUTOSP_OK);
    ok(g, outs[0], "B,S,2,16", F32);
    ok(g, outs[2], "B,S,1,16", F32);
    autosp_graph_free(g);

    g = new_graph();
    autosp_node_add(g, AUTOSP_OP_ALL_TO_ALL, "qkv",
                    (autosp_tensor_t[]){in_f32(g, "x", "B,S,8"), in_i32(g, "i", "B,S,8")}, 2, NULL,
                    2, a2a, 3, NULL);
    assert_error_and_free(g, "input \"x1\" (tensor \"i\") has dtype i32, expected f32");
    g = new_graph();
    autosp_node_add(g, AUTOSP_OP_ALL_TO_ALL, "qkv", (autosp_tensor_t[]){in_f32(g, "x", "B,S,8")}, 1,
                    NULL, 2, a2a, 3, NULL);
    assert_error_and_free(g, "has 1 inputs and 2 outputs, expected one output per input");
    g = new_graph();
    autosp_repeat(g, in_f32(g, "x", "B,S"), 2, 2, "rep");
    assert_error_and_free(g, "attribute \"dim\" is 2, expected 0..1");

    g = new_graph();
    autosp_all_to_all(g, in_f32(g, "x", "B,S,6,16"), 2, 1, 4, "sp", "a2a");
    assert_error_and_free(g, "node \"a2a\" (all_to_all): input \"x\" (tensor \"x\") has dim 2 of "
                             "size 6, which is not divisible by ranks=4");
    g = new_graph();
    autosp_all_to_all(g, in_f32(g, "x", "B,S,8,16"), 1, 1, 4, "sp", "a2a");
    assert_error_and_free(g, "split_dim and concat_dim are both 1, expected different dims");
    g = new_graph();
    autosp_all_gather(g, in_f32(g, "x", "B,S"), 2, 4, "sp", "ag");
    assert_error_and_free(g, "attribute \"dim\" is 2, expected 0..1");
    g = new_graph();
    autosp_all_reduce(g, in_f32(g, "x", "B,S"), "max", 4, "sp", "ar");
    assert_error_and_free(g, "attribute \"op\" is \"max\", expected one of");
    g = new_graph();
    autosp_all_reduce(g, in_f32(g, "x", "B,S"), "sum", 4, "tp", "ar");
    assert_error_and_free(g, "attribute \"group\" is \"tp\"");
}

/* Adds a backward node and returns its first output (outputs named after the node). */
static autosp_tensor_t bwd(autosp_graph_t *g, autosp_op_t op, const char *name,
                           const autosp_tensor_t *in, int n_in, int n_out,
                           const autosp_attr_t *attrs, int n_attrs, autosp_tensor_t *outs) {
    autosp_tensor_t local[4];
    if (!outs) outs = local;
    if (autosp_node_add(g, op, name, in, n_in, NULL, n_out, attrs, n_attrs, outs) != AUTOSP_OK)
        return AUTOSP_NO_TENSOR;
    return outs[0];
}

static void test_fill_and_sum_to(void **state) {
    autosp_graph_t *g = new_graph();
    autosp_attr_t a[2] = {{.name = "shape", .type = AUTOSP_ATTR_SHAPE, .s = ""},
                          {.name = "value", .type = AUTOSP_ATTR_FLOAT, .f = 1}};
    ok(g, bwd(g, AUTOSP_OP_FILL, "one", NULL, 0, 1, a, 2, NULL), "", F32);
    autosp_tensor_t x[2] = {in_f32(g, "x", "B,S,64"), in_f32(g, "b", "S,1")};
    ok(g, bwd(g, AUTOSP_OP_SUM_TO, "db", x, 2, 1, NULL, 0, NULL), "S,1", F32);
    autosp_graph_free(g);

    g = new_graph();
    autosp_tensor_t y[2] = {in_f32(g, "x", "B,S,64"), in_f32(g, "b", "S,32")};
    bwd(g, AUTOSP_OP_SUM_TO, "db", y, 2, 1, NULL, 0, NULL);
    assert_error_and_free(g, "node \"db\" (sum_to): input \"like\" (tensor \"b\") has shape "
                             "[S,32]: dim 1 is 32, expected 64");
}

static void test_index_add(void **state) {
    autosp_graph_t *g = new_graph();
    autosp_tensor_t x[3] = {in_f32(g, "base", "256,64"), in_i32(g, "ids", "B,S"),
                            in_f32(g, "src", "B,S,64")};
    ok(g, bwd(g, AUTOSP_OP_INDEX_ADD, "acc", x, 3, 1, NULL, 0, NULL), "256,64", F32);
    autosp_graph_free(g);

    g = new_graph();
    autosp_tensor_t y[3] = {in_f32(g, "base", "256,64"), in_i32(g, "ids", "B,S"),
                            in_f32(g, "src", "B,S,32")};
    bwd(g, AUTOSP_OP_INDEX_ADD, "acc", y, 3, 1, NULL, 0, NULL);
    assert_error_and_free(g, "node \"acc\" (index_add): input \"src\" (tensor \"src\") has shape "
                             "[B,S,32]: dim 2 is 32, expected 64 (C, the row length of \"base\")");
}

/* bf16 values: cast between float dtypes; a parameter's gradient is f32 (mixed precision),
 * an activation's has its dtype; mixing dtypes where a rule needs one names both. */
static void test_mixed_precision(void **state) {
    autosp_graph_t *g = new_graph();
    autosp_tensor_t x = autosp_input(g, "x", AUTOSP_BF16, "B,S,64", AUTOSP_ROLE_OTHER, 1);
    autosp_tensor_t w = autosp_param(g, "w", AUTOSP_BF16, "128,64", AUTOSP_INIT_NORMAL, 0.02);
    autosp_tensor_t b = autosp_param(g, "b", AUTOSP_BF16, "128", AUTOSP_INIT_ZEROS, 0);
    ok(g, autosp_cast(g, x, F32, "wide"), "B,S,64", F32);
    ok(g, autosp_cast(g, autosp_cast(g, x, F32, "w2"), AUTOSP_BF16, "narrow"), "B,S,64",
       AUTOSP_BF16);
    autosp_tensor_t dy = autosp_input(g, "dy", AUTOSP_BF16, "B,S,128", AUTOSP_ROLE_OTHER, 1);
    autosp_tensor_t o[3];
    ok(g,
       bwd(g, AUTOSP_OP_LINEAR_BACKWARD, "lin", (autosp_tensor_t[]){dy, x, w, b}, 4, 3, NULL, 0, o),
       "B,S,64", AUTOSP_BF16);
    ok(g, o[1], "128,64", F32);
    ok(g, o[2], "128", F32);
    autosp_tensor_t like[2] = {dy, b};
    ok(g, bwd(g, AUTOSP_OP_SUM_TO, "db", like, 2, 1, NULL, 0, NULL), "128", F32);
    autosp_tensor_t base = in_f32(g, "base", "256,64"), ids = in_i32(g, "ids", "B,S");
    ok(g,
       bwd(g, AUTOSP_OP_INDEX_ADD, "acc", (autosp_tensor_t[]){base, ids, x}, 3, 1, NULL, 0, NULL),
       "256,64", F32);
    autosp_graph_free(g);

    g = new_graph();
    autosp_cast(g, in_i32(g, "ids", "B,S"), F32, "c");
    assert_error_and_free(g, "node \"c\" (cast): input \"x\" (tensor \"ids\") has dtype i32, "
                             "expected a float dtype");
    g = new_graph();
    autosp_cast(g, in_f32(g, "x", "B,S"), AUTOSP_I32, "c");
    assert_error_and_free(g, "attribute \"dtype\"");
    g = new_graph();
    autosp_linear(g, in_f32(g, "x", "B,S,64"),
                  autosp_param(g, "w", AUTOSP_BF16, "128,64", AUTOSP_INIT_NORMAL, 0.02),
                  AUTOSP_NO_TENSOR, "y");
    assert_error_and_free(g, "node \"y\" (linear): input \"weight\" (tensor \"w\") has dtype "
                             "bf16, expected f32");
}

static void test_backward_ops(void **state) {
    autosp_graph_t *g = new_graph();
    autosp_tensor_t x = in_f32(g, "x", "B,S,64"), w = in_f32(g, "w", "128,64");
    autosp_tensor_t b = in_f32(g, "b", "128"), dy = in_f32(g, "dy", "B,S,128");
    autosp_tensor_t o[3];
    ok(g,
       bwd(g, AUTOSP_OP_LINEAR_BACKWARD, "lin", (autosp_tensor_t[]){dy, x, w, b}, 4, 3, NULL, 0, o),
       "B,S,64", F32);
    ok(g, o[1], "128,64", F32);
    ok(g, o[2], "128", F32);
    ok(g,
       bwd(g, AUTOSP_OP_MATMUL_BACKWARD, "mm",
           (autosp_tensor_t[]){in_f32(g, "dmm", "B,S,64"), in_f32(g, "a", "B,S,32"),
                               in_f32(g, "m", "32,64")},
           3, 2, NULL, 0, o),
       "B,S,32", F32);
    ok(g, o[1], "32,64", F32);
    autosp_tensor_t g64 = in_f32(g, "g64", "64"), ids = in_i32(g, "ids", "B,S");
    ok(g,
       bwd(g, AUTOSP_OP_EMBEDDING_BACKWARD, "emb",
           (autosp_tensor_t[]){x, ids, in_f32(g, "table", "256,64")}, 3, 1, NULL, 0, NULL),
       "256,64", F32);
    ok(g,
       bwd(g, AUTOSP_OP_RMSNORM_BACKWARD, "rms", (autosp_tensor_t[]){x, x, g64}, 3, 2, NULL, 0, o),
       "B,S,64", F32);
    ok(g, o[1], "64", F32);
    ok(g,
       bwd(g, AUTOSP_OP_LAYERNORM_BACKWARD, "ln", (autosp_tensor_t[]){x, x, g64, g64}, 4, 3, NULL,
           0, o),
       "B,S,64", F32);
    ok(g, bwd(g, AUTOSP_OP_SILU_BACKWARD, "silu", (autosp_tensor_t[]){x, x}, 2, 1, NULL, 0, NULL),
       "B,S,64", F32);
    ok(g, bwd(g, AUTOSP_OP_GELU_BACKWARD, "gelu", (autosp_tensor_t[]){x, x}, 2, 1, NULL, 0, NULL),
       "B,S,64", F32);
    ok(g, bwd(g, AUTOSP_OP_SWIGLU_BACKWARD, "sw", (autosp_tensor_t[]){x, x, x}, 3, 2, NULL, 0, o),
       "B,S,64", F32);
    ok(g, bwd(g, AUTOSP_OP_SOFTMAX_BACKWARD, "sm", (autosp_tensor_t[]){x, x}, 2, 1, NULL, 0, NULL),
       "B,S,64", F32);
    autosp_attr_t ce = {.name = "ignore_index", .type = AUTOSP_ATTR_INT, .i = -100};
    ok(g,
       bwd(g, AUTOSP_OP_CROSS_ENTROPY_BACKWARD, "ce",
           (autosp_tensor_t[]){in_f32(g, "dloss", ""), dy, ids}, 3, 1, &ce, 1, NULL),
       "B,S,128", F32);
    autosp_attr_t rep[2] = {{.name = "dim", .type = AUTOSP_ATTR_INT, .i = 2},
                            {.name = "repeats", .type = AUTOSP_ATTR_INT, .i = 2}};
    ok(g,
       bwd(g, AUTOSP_OP_REPEAT_BACKWARD, "rep",
           (autosp_tensor_t[]){in_f32(g, "drep", "B,S,4,16"), in_f32(g, "xrep", "B,S,2,16")}, 2, 1,
           rep, 2, NULL),
       "B,S,2,16", F32);
    autosp_tensor_t q = in_f32(g, "q", "B,S,4,16"), kv = in_f32(g, "kv", "B,S,2,16");
    autosp_tensor_t lse = in_f32(g, "lse", "B,4,S");
    autosp_attr_t heads[2] = {{.name = "num_heads", .type = AUTOSP_ATTR_INT, .i = 4},
                              {.name = "num_kv_heads", .type = AUTOSP_ATTR_INT, .i = 2}};
    ok(g,
       bwd(g, AUTOSP_OP_ATTENTION_BACKWARD, "attn", (autosp_tensor_t[]){q, q, lse, q, kv, kv, ids},
           7, 3, heads, 2, o),
       "B,S,4,16", F32);
    ok(g, o[1], "B,S,2,16", F32);
    autosp_graph_free(g);

    g = new_graph(); /* dout must have the forward output's shape */
    x = in_f32(g, "x", "B,S,64");
    bwd(g, AUTOSP_OP_LINEAR_BACKWARD, "lin",
        (autosp_tensor_t[]){in_f32(g, "dy", "B,S,64"), x, in_f32(g, "w", "128,64")}, 3, 2, NULL, 0,
        NULL);
    assert_error_and_free(g, "node \"lin\" (linear_backward): input \"dout\" (tensor \"dy\") has "
                             "shape [B,S,64]: dim 2 is 64, expected 128 (the forward output's "
                             "shape)");
    g = new_graph(); /* one gradient per differentiable input */
    x = in_f32(g, "x", "B,S,64");
    bwd(g, AUTOSP_OP_LINEAR_BACKWARD, "lin",
        (autosp_tensor_t[]){in_f32(g, "dy", "B,S,128"), x, in_f32(g, "w", "128,64")}, 3, 3, NULL, 0,
        NULL);
    assert_error_and_free(g, "has 3 outputs, expected 2 (one gradient per differentiable input)");
    g = new_graph(); /* the forward rule still applies to the forward inputs */
    x = in_f32(g, "x", "B,S,64");
    bwd(g, AUTOSP_OP_SILU_BACKWARD, "s", (autosp_tensor_t[]){x, in_i32(g, "i", "B,S,64")}, 2, 1,
        NULL, 0, NULL);
    assert_error_and_free(g, "has dtype i32, expected a float dtype");
}

/* Every shape rule has a test here: an op is covered by its own cases, or by another op's when
 * both use the same rule (a new elementwise op on infer_unary, its backward on infer_backward;
 * tests/test_ops.c checks each op's output shape too). A new rule needs cases here. */
static void test_every_shape_rule_has_a_test(void **state) {
    for (int op = 0; op < AUTOSP_OP_COUNT; op++) {
        bool covered = op_tested[op];
        for (int other = 0; other < AUTOSP_OP_COUNT && !covered; other++)
            covered = op_tested[other] && op_table[other].infer == op_table[op].infer;
        if (!covered)
            fail_msg("op %s has no shape test, and no tested op shares its rule",
                     autosp_op_name((autosp_op_t)op));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_broadcast_ops),
        cmocka_unit_test(test_norms),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_activations),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_ring_attention),
        cmocka_unit_test(test_reshape_transpose),
        cmocka_unit_test(test_cross_entropy),
        cmocka_unit_test(test_linear_cross_entropy),
        cmocka_unit_test(test_mlp),
        cmocka_unit_test(test_gelu_mlp),
        cmocka_unit_test(test_norm_linear),
        cmocka_unit_test(test_reduce_scatter),
        cmocka_unit_test(test_unshard),
        cmocka_unit_test(test_collectives),
        cmocka_unit_test(test_fill_and_sum_to),
        cmocka_unit_test(test_index_add),
        cmocka_unit_test(test_mixed_precision),
        cmocka_unit_test(test_backward_ops),
        cmocka_unit_test(test_every_shape_rule_has_a_test),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
