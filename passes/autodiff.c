/* autodiff.c: appends the backward graph to a forward graph (a joint graph).
 *
 * Walks the forward nodes in reverse topological order. When a node is reached every consumer
 * of its outputs has been processed, so each output's gradient is complete: its contributions
 * are summed then (one add chain, named "<tensor>.grad"), and the op's backward rule emits the
 * gradients of its inputs. Only tensors that depend on a parameter get gradients. */
#include <string.h>

#include "autodiff.h"
#include "autosp/passes.h"

static autosp_status_t total_grad(autodiff_t *ad, autosp_tensor_t t, autosp_tensor_t *out);

typedef struct contribution {
    autosp_tensor_t t;
    struct contribution *next;
} contribution_t;

struct autodiff {
    autosp_graph_t *g;
    arena_t scratch;        /* contributions; freed with the pass */
    contribution_t **grads; /* per tensor of the forward graph */
    bool *requires_grad;    /* per tensor of the forward graph */
    int n_fwd_tensors;
    autosp_error_t *err;
};

/* A contribution in another dtype than x's gradient (a bf16 value's gradient reaching an f32
 * parameter gradient through an op without a backward op of its own: mul, scale) is cast to
 * it, so every sum of contributions adds one dtype. */
static autosp_status_t cast_to_grad_dtype(grad_ctx_t *c, autosp_tensor_t x, autosp_tensor_t *t) {
    autosp_dtype_t to = grad_dtype_of(c->g, graph_tensor(c->g, x));
    const tensor_t *tt = graph_tensor(c->g, *t);
    if (tt->dtype == to) return AUTOSP_OK;
    char name[AUTOSP_MAX_NAME + 16];
    snprintf(name, sizeof name, "%s.%s", tt->name, autosp_dtype_name(to));
    autosp_tensor_t done = autosp_tensor_find(c->g, name); /* a value given to two operands */
    if (done >= 0 && graph_tensor(c->g, done)->producer >= 0 &&
        c->g->nodes[graph_tensor(c->g, done)->producer].op == AUTOSP_OP_CAST &&
        c->g->nodes[graph_tensor(c->g, done)->producer].in[0] == *t) {
        *t = done;
        return AUTOSP_OK;
    }
    attr_value_t v = {.s = autosp_dtype_name(to)};
    const char *names[1] = {name};
    return node_add_values(c->g, AUTOSP_OP_CAST, name, t, 1, names, 1, &v, t, c->err);
}

autosp_status_t grad_give(grad_ctx_t *c, int k, autosp_tensor_t t) {
    autosp_tensor_t x = c->node.in[k];
    if (!c->needs[k]) return AUTOSP_OK;
    autosp_status_t st = cast_to_grad_dtype(c, x, &t);
    if (st != AUTOSP_OK) return st;
    contribution_t *n = arena_alloc(&c->ad->scratch, sizeof *n);
    if (!n) return nomem(c->err);
    n->t = t;
    n->next = c->ad->grads[x];
    c->ad->grads[x] = n;
    return AUTOSP_OK;
}

autosp_status_t grad_take(grad_ctx_t *c, int k, autosp_tensor_t *sum) {
    autosp_tensor_t x = c->node.in[k];
    *sum = AUTOSP_NO_TENSOR;
    if (!c->needs[k] || !c->ad->grads[x]) return AUTOSP_OK;
    autosp_status_t st = total_grad(c->ad, x, sum);
    c->ad->grads[x] = NULL;
    return st;
}

/* Output names of an emitted node: the node's name for one output, else "<fwd>.d<input>" after
 * the forward input each gradient belongs to. */
autosp_status_t grad_emit(grad_ctx_t *c, autosp_op_t op, const char *suffix,
                          const autosp_tensor_t *in, int n_in, int n_out, const attr_value_t *attrs,
                          autosp_tensor_t *out) {
    char name[AUTOSP_MAX_NAME + 32], outs[AUTOSP_MAX_NODE_OUTPUTS][AUTOSP_MAX_NAME + 48];
    const char *out_names[AUTOSP_MAX_NODE_OUTPUTS];
    snprintf(name, sizeof name, "%s.%s", c->node.name, suffix);
    const op_info_t *info = &op_table[op];
    for (int i = 0; i < n_out; i++) {
        if (n_out == 1)
            snprintf(outs[i], sizeof outs[i], "%s", name);
        else if (info->is_backward)
            snprintf(outs[i], sizeof outs[i], "%s.d%s", c->node.name,
                     info->input_names[info->grad_of[i]]);
        else /* a fused collective: one output per tensor */
            snprintf(outs[i], sizeof outs[i], "%s.%d", name, i);
        out_names[i] = outs[i];
    }
    if (!attrs) {
        AUTOSP_ASSERT(info->n_attrs == 0 || info->attrs == op_table[c->node.op].attrs);
        attrs = c->node.attrs;
    }
    return node_add_values(c->g, op, name, in, n_in, out_names, n_out, attrs, out, c->err);
}

/* The complete gradient of t: its contributions summed (NO_TENSOR if none). */
static autosp_status_t total_grad(autodiff_t *ad, autosp_tensor_t t, autosp_tensor_t *out) {
    contribution_t *c = ad->grads[t];
    *out = c ? c->t : AUTOSP_NO_TENSOR;
    if (!c || !c->next) return AUTOSP_OK;
    for (int i = 1; (c = c->next) != NULL; i++) {
        char name[AUTOSP_MAX_NAME + 32];
        snprintf(name, sizeof name, "%s.grad_sum%d", ad->g->tensors[t].name, i);
        while (autosp_tensor_find(ad->g, name) >= 0) /* a rule summed some before (grad_take) */
            snprintf(name, sizeof name, "%s.grad_sum%d", ad->g->tensors[t].name, ++i);
        autosp_tensor_t in[2] = {*out, c->t};
        const char *names[1] = {name};
        autosp_status_t st =
            node_add_values(ad->g, AUTOSP_OP_ADD, name, in, 2, names, 1, NULL, out, ad->err);
        if (st != AUTOSP_OK) return st;
    }
    ad->grads[t]->t = *out;
    ad->grads[t]->next = NULL;
    return AUTOSP_OK;
}

static autosp_status_t backward_node(autodiff_t *ad, int i) {
    grad_ctx_t c = {.g = ad->g, .node_index = i, .node = ad->g->nodes[i], .ad = ad, .err = ad->err};
    bool any = false;
    for (int k = 0; k < c.node.n_out; k++) {
        autosp_status_t st = total_grad(ad, c.node.out[k], &c.dout[k]);
        if (st != AUTOSP_OK) return st;
        any |= c.dout[k] != AUTOSP_NO_TENSOR;
    }
    bool needed = false;
    for (int k = 0; k < c.node.n_in; k++) needed |= c.needs[k] = ad->requires_grad[c.node.in[k]];
    if (!any || !needed || c.dout[0] == AUTOSP_NO_TENSOR) return AUTOSP_OK;
    const op_info_t *info = &op_table[c.node.op];
    char label[AUTOSP_MAX_NAME + 32];
    if (!info->backward)
        return set_error(ad->err, AUTOSP_ERR_INVALID,
                         "autodiff: %s has no backward rule, but a parameter's gradient flows "
                         "through it",
                         node_label(ad->g, i, label, sizeof label));
    return info->backward(&c);
}

/* Tensors that depend on a parameter (through float values). */
static void mark_requires_grad(autodiff_t *ad) {
    const autosp_graph_t *g = ad->g;
    for (int t = 0; t < g->n_tensors; t++)
        ad->requires_grad[t] = g->tensors[t].kind == AUTOSP_KIND_PARAM;
    for (int i = 0; i < g->n_nodes; i++) {
        const node_t *n = &g->nodes[i];
        bool any = false;
        for (int k = 0; k < n->n_in; k++) any |= ad->requires_grad[n->in[k]];
        for (int k = 0; k < n->n_out; k++)
            ad->requires_grad[n->out[k]] = any && g->tensors[n->out[k]].dtype != AUTOSP_I32 &&
                                           g->tensors[n->out[k]].dtype != AUTOSP_I64;
    }
}

/* d loss / d loss = 1 */
static autosp_status_t seed(autodiff_t *ad, autosp_tensor_t loss) {
    const tensor_t *l = graph_tensor(ad->g, loss);
    if (l->shape.ndim != 0 || l->dtype != AUTOSP_F32)
        return set_error(
            ad->err, AUTOSP_ERR_INVALID,
            "autodiff: output \"%s\" is a %d-dim %s tensor, expected a scalar f32 loss", l->name,
            l->shape.ndim, autosp_dtype_name(l->dtype));
    shape_t scalar = {0};
    attr_value_t v[2] = {{.shape = &scalar}, {.f = 1.0}};
    char name[AUTOSP_MAX_NAME + 16];
    snprintf(name, sizeof name, "%s.grad_seed", l->name);
    const char *names[1] = {name};
    autosp_tensor_t one;
    autosp_status_t st =
        node_add_values(ad->g, AUTOSP_OP_FILL, name, NULL, 0, names, 1, v, &one, ad->err);
    if (st != AUTOSP_OK) return st;
    grad_ctx_t c = {
        .g = ad->g, .node = {.n_in = 1, .in = {loss}}, .needs = {true}, .ad = ad, .err = ad->err};
    return grad_give(&c, 0, one);
}

/* Every parameter's gradient as a graph output named "<param>.grad" (zeros if the loss does
 * not depend on it). */
static autosp_status_t output_param_grads(autodiff_t *ad) {
    for (autosp_tensor_t p = 0; p < ad->n_fwd_tensors; p++) {
        if (ad->g->tensors[p].kind != AUTOSP_KIND_PARAM) continue;
        char name[AUTOSP_MAX_NAME + 16];
        snprintf(name, sizeof name, "%s.grad", ad->g->tensors[p].name);
        autosp_tensor_t grad;
        autosp_status_t st = total_grad(ad, p, &grad);
        const char *names[1] = {name};
        if (st == AUTOSP_OK && grad == AUTOSP_NO_TENSOR) {
            shape_t shape = ad->g->tensors[p].shape;
            attr_value_t v[2] = {{.shape = &shape}, {.f = 0.0}};
            st = node_add_values(ad->g, AUTOSP_OP_FILL, name, NULL, 0, names, 1, v, &grad, ad->err);
        } else if (st == AUTOSP_OK && strcmp(ad->g->tensors[grad].name, name) != 0) {
            /* a gradient tensor may serve two parameters (y = a + b): give each its own copy */
            bool shared = ad->g->tensors[grad].producer < 0 || grad < ad->n_fwd_tensors;
            for (int o = 0; o < ad->g->n_outputs && !shared; o++)
                shared = ad->g->outputs[o] == grad;
            attr_value_t one = {.f = 1.0};
            st = shared ? node_add_values(ad->g, AUTOSP_OP_SCALE, name, &grad, 1, names, 1, &one,
                                          &grad, ad->err)
                        : tensor_rename(ad->g, grad, name, ad->err);
        }
        if (st == AUTOSP_OK) st = autosp_output(ad->g, grad);
        if (st != AUTOSP_OK) return st;
    }
    return AUTOSP_OK;
}

static autosp_status_t differentiate(autodiff_t *ad) {
    autosp_graph_t *g = ad->g;
    if (g->n_outputs == 0)
        return set_error(ad->err, AUTOSP_ERR_INVALID, "autodiff: the graph has no outputs");
    autosp_tensor_t loss = g->outputs[0];
    int n_fwd_nodes = g->n_nodes;
    mark_requires_grad(ad);
    autosp_status_t st = seed(ad, loss);
    for (int i = n_fwd_nodes - 1; st == AUTOSP_OK && i >= 0; i--) st = backward_node(ad, i);
    if (st != AUTOSP_OK) return st;
    /* the loss and any other forward outputs (kept as they are: not differentiated), then the
     * gradients */
    return output_param_grads(ad);
}

autosp_graph_t *autosp_autodiff(const autosp_graph_t *forward, autosp_error_t *err) {
    autosp_error_t local;
    if (!err) err = &local;
    if (autosp_graph_verify(forward, 0, err) != AUTOSP_OK) return NULL;
    autodiff_t ad = {.g = autosp_graph_clone(forward), .err = err};
    if (!ad.g) {
        nomem(err);
        return NULL;
    }
    ad.n_fwd_tensors = forward->n_tensors;
    size_t n = (size_t)forward->n_tensors + (size_t)forward->n_nodes + 1; /* + lse outputs */
    ad.grads = mem_calloc(n, sizeof *ad.grads);
    ad.requires_grad = mem_calloc(n, sizeof *ad.requires_grad);
    autosp_status_t st = ad.grads && ad.requires_grad ? differentiate(&ad) : nomem(err);
    if (st == AUTOSP_OK) st = autosp_graph_status(ad.g, err);
    if (st == AUTOSP_OK) st = graph_verify_made(ad.g, err);
    mem_free(ad.grads);
    mem_free(ad.requires_grad);
    arena_free(&ad.scratch);
    if (st != AUTOSP_OK) {
        autosp_graph_free(ad.g);
        return NULL;
    }
    return ad.g;
}
