/* backend.c: the questions the IR and the planner ask a backend's tables. */
#include <string.h>

#include "ir/backend.h"

const char *autosp_backend_name(const autosp_backend_t *b) {
    return b->name;
}

bool autosp_backend_supports(const autosp_backend_t *b, autosp_op_t op, autosp_dtype_t dtype) {
    return (unsigned)op < AUTOSP_OP_COUNT && (unsigned)dtype < AUTOSP_DTYPE_COUNT &&
           b->kernels[op][dtype] != NULL;
}

autosp_dtype_t node_dtype(const autosp_graph_t *g, const node_t *n) {
    autosp_dtype_t wide = AUTOSP_DTYPE_COUNT;
    for (int k = 0; k < n->n_in; k++) {
        autosp_dtype_t t = g->tensors[n->in[k]].dtype;
        if (t == AUTOSP_BF16 || t == AUTOSP_F16) return t;
        if (t == AUTOSP_F32 && wide == AUTOSP_DTYPE_COUNT) wide = t;
    }
    return wide != AUTOSP_DTYPE_COUNT ? wide : g->tensors[n->out[0]].dtype;
}

kernel_fn backend_kernel(const autosp_backend_t *b, const autosp_graph_t *g, int i) {
    const node_t *n = &g->nodes[i];
    return b->kernels[n->op][node_dtype(g, n)];
}

kernel_fn backend_start_kernel(const autosp_backend_t *b, const autosp_graph_t *g, int i) {
    const node_t *n = &g->nodes[i];
    return b && b->starts ? b->starts[n->op][node_dtype(g, n)] : NULL;
}

/* "f32, i32": the dtypes op has kernels for. */
static void kernel_dtypes(const autosp_backend_t *b, autosp_op_t op, char *buf, size_t n) {
    buf[0] = '\0';
    for (int d = 0; d < AUTOSP_DTYPE_COUNT; d++) {
        if (!b->kernels[op][d]) continue;
        size_t used = strlen(buf);
        snprintf(buf + used, n - used, "%s%s", used ? ", " : "",
                 autosp_dtype_name((autosp_dtype_t)d));
    }
}

autosp_status_t autosp_backend_check(const autosp_backend_t *b, const autosp_graph_t *g,
                                     autosp_error_t *err) {
    for (int i = 0; i < g->n_nodes; i++) {
        if (backend_kernel(b, g, i)) continue;
        const node_t *n = &g->nodes[i];
        char label[AUTOSP_MAX_NAME + 32], dtypes[64];
        kernel_dtypes(b, n->op, dtypes, sizeof dtypes);
        return set_error(
            err, AUTOSP_ERR_INVALID, "%s: the %s backend has no %s kernel for %s (%s%s)",
            node_label(g, i, label, sizeof label), b->name, op_table[n->op].name,
            autosp_dtype_name(node_dtype(g, n)), dtypes[0] ? "it has " : "none", dtypes);
    }
    return set_ok(err);
}

int64_t backend_workspace(const autosp_backend_t *b, const autosp_graph_t *g, int i,
                          int64_t align) {
    const node_t *n = &g->nodes[i];
    workspace_fn rule = b ? b->workspace[n->op][node_dtype(g, n)] : NULL;
    if (!rule) return 0;
    cost_ctx_t c;
    AUTOSP_ASSERT(cost_ctx_init(g, i, &c, NULL) == AUTOSP_OK);
    return (rule(&c) + align - 1) / align * align;
}
