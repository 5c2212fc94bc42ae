#define _POSIX_C_SOURCE 200809L
/* dot.c: Graphviz view of a graph. Nodes are boxes, inputs and params ellipses; each edge
 * carries the shape of the tensor on it. Names cannot hold quotes or backslashes (name_ok),
 * so they are written into labels as they are. */
#include <errno.h>
#include <string.h>

#include "autosp/io.h"
#include "ir/op_table.h"

static void write_leaf(const autosp_graph_t *g, int t, FILE *out) {
    const tensor_t *x = &g->tensors[t];
    char shape[256];
    bool input = x->kind == AUTOSP_KIND_INPUT;
    fprintf(out,
            "  t%d [shape=ellipse, style=filled, fillcolor=\"%s\", label=\"%s\\n%s [%s]%s%s\"];\n",
            t, input ? "#cfe8ff" : "#e8e8e8", x->name, autosp_dtype_name(x->dtype),
            shape_str(g, &x->shape, shape, sizeof shape), input ? "\\nrole " : "",
            input ? autosp_role_name(x->role) : "");
}

/* Edges carry a per-rank program's layouts: split by sequence green, by heads purple, a
 * partial sum over ranks orange, whole black. */
static const char *const layout_colour[] = {"black", "#2e9e44", "#8e44ad", "#e67e22"};

/* Where an edge into a node starts: the producing node, or the leaf's own ellipse. */
static void write_edge(const autosp_graph_t *g, autosp_tensor_t t, int to, FILE *out) {
    const tensor_t *x = &g->tensors[t];
    char shape[256];
    if (x->producer >= 0)
        fprintf(out, "  n%d -> ", x->producer);
    else
        fprintf(out, "  t%d -> ", (int)t);
    fprintf(out, "n%d [label=\"%s\"", to, shape_str(g, &x->shape, shape, sizeof shape));
    if (x->layout != LAYOUT_FULL)
        fprintf(out, ", color=\"%s\", fontcolor=\"%s\", penwidth=2", layout_colour[x->layout],
                layout_colour[x->layout]);
    fprintf(out, "];\n");
}

autosp_status_t autosp_graph_write_dot(const autosp_graph_t *g, FILE *out, autosp_error_t *err) {
    fprintf(out,
            "digraph \"%s\" {\n  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=10];\n"
            "  edge [fontname=\"Helvetica\", fontsize=8];\n",
            g->name);
    if (autosp_graph_ring(g) > 1) /* the mesh, and the ring's nodes in blue */
        fprintf(out, "  label=\"sp %d = ulysses %d x ring %d (zigzag)\";\n", autosp_graph_sp(g),
                autosp_graph_sp(g) / autosp_graph_ring(g), autosp_graph_ring(g));
    for (int t = 0; t < g->n_tensors; t++)
        if (g->tensors[t].kind != AUTOSP_KIND_VALUE) write_leaf(g, t, out);
    for (int i = 0; i < g->n_nodes; i++) {
        const node_t *n = &g->nodes[i];
        /* a fused op's tiling, as its JSON has it (0: planned); a collective's group */
        char rows[48] = "", group[64] = "";
        if (op_attr_find(n->op, "tile") >= 0)
            snprintf(rows, sizeof rows, "\\ntile %lld rows", (long long)node_attr_int(n, "tile"));
        else if (op_attr_find(n->op, "chunk") >= 0)
            snprintf(rows, sizeof rows, "\\nchunk %lld rows", (long long)node_attr_int(n, "chunk"));
        if (op_attr_find(n->op, "group") >= 0 && op_attr_find(n->op, "ranks") >= 0)
            snprintf(group, sizeof group, "\\n%s group of %lld", node_attr_str(n, "group"),
                     (long long)node_attr_int(n, "ranks"));
        const bool ring =
            op_attr_find(n->op, "group") >= 0 && !strcmp(node_attr_str(n, "group"), "ring");
        fprintf(out, "  n%d [shape=box, style=filled, fillcolor=\"%s\", label=\"%s\\n%s%s%s\"];\n",
                i,
                ring                         ? "#a6d8f0"
                : op_table[n->op].collective ? "#ffd59e"
                                             : "#ffffff",
                n->name, op_table[n->op].name, rows, group);
        for (int k = 0; k < n->n_in; k++) write_edge(g, n->in[k], i, out);
    }
    for (int i = 0; i < g->n_outputs; i++) {
        const tensor_t *x = &g->tensors[g->outputs[i]];
        fprintf(out, "  out%d [shape=doubleoctagon, label=\"%s\"];\n", i, x->name);
        if (x->producer >= 0)
            fprintf(out, "  n%d -> out%d;\n", x->producer, i);
        else
            fprintf(out, "  t%d -> out%d;\n", (int)g->outputs[i], i);
    }
    fprintf(out, "}\n");
    if (ferror(out)) return set_error(err, AUTOSP_ERR_IO, "cannot write the dot output");
    return set_ok(err);
}

char *autosp_graph_dot_string(const autosp_graph_t *g, autosp_error_t *err) {
    char *text = NULL, *copy = NULL;
    size_t size = 0;
    FILE *mem = open_memstream(&text, &size);
    if (!mem) {
        nomem(err);
        return NULL;
    }
    autosp_status_t st = autosp_graph_write_dot(g, mem, err);
    if (fclose(mem) != 0 && st == AUTOSP_OK) st = nomem(err);
    if (st == AUTOSP_OK && (copy = mem_alloc(size + 1)) != NULL)
        memcpy(copy, text, size + 1);
    else if (st == AUTOSP_OK)
        nomem(err);
    free(text); /* open_memstream's buffer comes from malloc, not the library's hooks */
    return copy;
}

autosp_status_t autosp_graph_save_dot(const autosp_graph_t *g, const char *path,
                                      autosp_error_t *err) {
    char *text = autosp_graph_dot_string(g, err);
    if (!text) return err ? err->status : AUTOSP_ERR_NOMEM;
    autosp_status_t st = autosp_write_file_atomic(path, text, strlen(text), err);
    mem_free(text);
    return st;
}
