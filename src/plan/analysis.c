/* analysis.c: per-node cost from the op table, graph summaries and the --info table. */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "ir/op_table.h"

autosp_status_t autosp_node_cost(const autosp_graph_t *g, int node, autosp_cost_t *cost,
                                 autosp_error_t *err) {
    cost_ctx_t c;
    *cost = (autosp_cost_t){0};
    autosp_status_t st = cost_ctx_init(g, node, &c, err);
    if (st != AUTOSP_OK) return st;
    cost->bytes_read = (double)cshape_bytes(c.in, c.n_in);
    cost->bytes_written = (double)cshape_bytes(c.out, c.n_out);
    const op_info_t *info = &op_table[g->nodes[node].op];
    cost->flops = op_flops(g->nodes[node].op, &c);
    cost->bytes_sent = info->sent ? info->sent(&c) : 0.0;
    return set_ok(err);
}

static autosp_status_t tensor_bytes(const autosp_graph_t *g, autosp_tensor_t t, int64_t *bytes,
                                    autosp_error_t *err) {
    const tensor_t *x = graph_tensor(g, t);
    int64_t numel;
    int r = shape_eval(g, &x->shape, NULL, &numel);
    if (r != EVAL_OK) return tensor_size_error(g, x, r, "", err);
    *bytes = numel * (int64_t)autosp_dtype_size(x->dtype);
    return AUTOSP_OK;
}

autosp_status_t autosp_graph_summarize(const autosp_graph_t *g, autosp_graph_summary_t *out,
                                       autosp_error_t *err) {
    memset(out, 0, sizeof *out);
    for (int t = 0; t < g->n_tensors; t++) {
        int64_t bytes = 0;
        autosp_status_t st = tensor_bytes(g, t, &bytes, err);
        if (st != AUTOSP_OK) return st;
        const tensor_t *x = &g->tensors[t];
        if (x->kind == AUTOSP_KIND_PARAM) {
            out->num_params += bytes / (int64_t)autosp_dtype_size(x->dtype);
            out->param_bytes += bytes;
        } else if (x->kind == AUTOSP_KIND_INPUT) {
            out->input_bytes += bytes;
        } else {
            out->activation_bytes += bytes;
        }
    }
    for (int i = 0; i < g->n_nodes; i++) {
        autosp_cost_t c;
        autosp_status_t st = autosp_node_cost(g, i, &c, err);
        if (st != AUTOSP_OK) return st;
        out->nodes_by_op[g->nodes[i].op]++;
        out->flops_by_op[g->nodes[i].op] += c.flops;
        out->cost.flops += c.flops;
        out->cost.bytes_read += c.bytes_read;
        out->cost.bytes_written += c.bytes_written;
        out->cost.bytes_sent += c.bytes_sent;
    }
    return set_ok(err);
}

/* 1536 -> "1.50 KiB" */
static char *human_bytes(double b, char *buf, size_t n) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    while (b >= 1024 && u < 5) {
        b /= 1024;
        u++;
    }
    snprintf(buf, n, u ? "%.2f %s" : "%.0f %s", b, units[u]);
    return buf;
}

static void print_ops(const autosp_graph_t *g, const autosp_graph_summary_t *s, FILE *out) {
    fprintf(out, "\n%-24s %7s %14s %8s\n", "op", "nodes", "FLOPs", "share");
    for (int op = 0; op < AUTOSP_OP_COUNT; op++) {
        if (!s->nodes_by_op[op]) continue;
        fprintf(out, "%-24s %7d %14.4e %7.2f%%\n", op_table[op].name, s->nodes_by_op[op],
                s->flops_by_op[op],
                s->cost.flops > 0 ? 100.0 * s->flops_by_op[op] / s->cost.flops : 0.0);
    }
    fprintf(out, "%-24s %7d %14.4e %7.2f%%\n", "total", g->n_nodes, s->cost.flops, 100.0);
}

static const char *const layout_names[] = {"whole", "seq", "heads", "partial"};

static void print_activations(const autosp_graph_t *g, const autosp_graph_summary_t *s, FILE *out) {
    char shape[256], human[32];
    fprintf(out, "\nactivations (every computed tensor)\n");
    fprintf(out, "%-28s %-5s %-26s %16s\n", "tensor", "dtype", "shape", "bytes");
    for (int t = 0; t < g->n_tensors; t++) {
        const tensor_t *x = &g->tensors[t];
        if (x->kind != AUTOSP_KIND_VALUE) continue;
        int64_t bytes = 0;
        tensor_bytes(g, t, &bytes, NULL);
        fprintf(out, "%-28s %-5s %-26s %16" PRId64, x->name, autosp_dtype_name(x->dtype),
                shape_str(g, &x->shape, shape, sizeof shape), bytes);
        if (x->layout == LAYOUT_SEQ || x->layout == LAYOUT_HEADS)
            fprintf(out, "  split: %s, dim %d", layout_names[x->layout], x->layout_dim);
        else if (x->layout == LAYOUT_PARTIAL)
            fprintf(out, "  partial sum over ranks");
        fputc('\n', out);
    }
    fprintf(out, "%-61s %16" PRId64 "  (%s)\n", "total", s->activation_bytes,
            human_bytes((double)s->activation_bytes, human, sizeof human));
}

/* Every collective in order: what it carries and what one rank sends. */
static void print_collectives(const autosp_graph_t *g, const autosp_graph_summary_t *s, FILE *out) {
    char human[32], shape[256];
    fprintf(out, "\ncollectives (per rank, per run; all_reduce as a ring)\n");
    fprintf(out, "%-34s %-10s %-5s %5s  %-40s %12s\n", "node", "op", "group", "ranks", "tensors",
            "bytes sent");
    for (int i = 0; i < g->n_nodes; i++) {
        const node_t *n = &g->nodes[i];
        if (!op_table[n->op].collective) continue;
        autosp_cost_t c;
        autosp_node_cost(g, i, &c, NULL);
        const tensor_t *x = &g->tensors[n->in[0]];
        char what[64];
        snprintf(what, sizeof what, "%s [%s]%s", x->name, shape_str(g, &x->shape, shape, 256),
                 n->n_in > 1 ? " ..." : "");
        fprintf(out, "%-34s %-10s %-5s %5lld  %d x %-36.36s %12.0f\n", n->name,
                op_table[n->op].name, node_attr_str(n, "group"),
                (long long)node_attr_int(n, "ranks"), n->n_in, what, c.bytes_sent);
    }
    fprintf(out, "%-34s %-10s %-5s %5s  %-40s %12.0f  (%s)\n", "total", "", "", "", "",
            s->cost.bytes_sent, human_bytes(s->cost.bytes_sent, human, sizeof human));
}

/* Per op with a tile or chunk: its nodes, how many run at the planner's size (0), and the range
 * of the sizes set by hand. */
static void print_sizes(const autosp_graph_t *g, FILE *out) {
    bool header = false;
    for (int op = 0; op < AUTOSP_OP_COUNT; op++) {
        int a = op_attr_find((autosp_op_t)op, "tile"), nodes = 0, planned = 0;
        const char *what = a >= 0 ? "tile" : "chunk";
        if (a < 0) a = op_attr_find((autosp_op_t)op, "chunk");
        if (a < 0) continue;
        int64_t lo = INT64_MAX, hi = 0;
        for (int i = 0; i < g->n_nodes; i++) {
            if ((int)g->nodes[i].op != op) continue;
            int64_t v = g->nodes[i].attrs[a].i;
            nodes++, planned += v == 0;
            if (v > 0 && v < lo) lo = v;
            if (v > hi) hi = v;
        }
        if (!nodes) continue;
        if (!header) fprintf(out, "\ntiles and chunks (rows; 0: the planner's size):\n");
        header = true;
        fprintf(out, "  %-30s %4d nodes, %s", op_table[op].name, nodes, what);
        if (planned) fprintf(out, " 0 at %d", planned);
        if (hi)
            fprintf(out, "%s%" PRId64 "..%" PRId64 " at %d", planned ? ", " : " ", lo, hi,
                    nodes - planned);
        fprintf(out, "\n");
    }
}

/* The forward attention FLOPs of ring position r, split zigzag (or, for comparison, in
 * contiguous chunks), over every ring_attention node. */
static double ring_flops(const autosp_graph_t *g, int r, bool zigzag) {
    double f = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const node_t *n = &g->nodes[i];
        if (n->op != AUTOSP_OP_RING_ATTENTION) continue;
        int64_t d[AUTOSP_MAX_DIMS];
        AUTOSP_ASSERT(shape_eval(g, &g->tensors[n->in[0]].shape, d, NULL) == EVAL_OK);
        const int R = (int)node_attr_int(n, "ranks");
        const bool causal = node_attr_int(n, "causal");
        const double L = (double)d[1];
        double pairs = zigzag || !causal ? ring_attention_pairs(d[1], R, r, causal)
                                         : L * (r * L) + L * (L + 1) / 2;
        f += 4.0 * (double)d[0] * (double)d[2] * (double)d[3] * pairs;
    }
    return f;
}

/* The whole sequence's length: a sequence input's rows on every sequence rank (0: none). */
static int64_t whole_seq(const autosp_graph_t *g) {
    for (autosp_tensor_t t = 0; t < g->n_tensors; t++) {
        const tensor_t *x = &g->tensors[t];
        int64_t v;
        if (x->kind == AUTOSP_KIND_INPUT && x->seq_dim >= 0 &&
            dim_eval(g, x->shape.d[x->seq_dim], &v) == EVAL_OK)
            return v * (x->layout == LAYOUT_SEQ ? autosp_graph_sp(g) : 1);
    }
    return 0;
}

/* The sequence's split: the padding, the mesh, and each ring position's attention work. */
static void print_sequence(const autosp_graph_t *g, FILE *out) {
    const int R = autosp_graph_ring(g), U = autosp_graph_sp(g) / R;
    if (g->padded_from) {
        const int64_t S = whole_seq(g);
        fprintf(out,
                "sequence: %" PRId64 " tokens fed, padded to %" PRId64 " (%" PRId64
                " per row at its end: no label, hidden from attention)\n",
                g->padded_from, S, S - g->padded_from);
    }
    if (R == 1) return;
    fprintf(out,
            "2-D sequence parallelism: ulysses %d x ring %d; sequence rank p = ring position "
            "p / %d, in zigzag order\n%-14s %20s %20s\n",
            U, R, U, "ring position", "attention FLOPs", "(contiguous split)");
    double lo[2] = {INFINITY, INFINITY}, hi[2] = {0, 0};
    for (int r = 0; r < R; r++) {
        double f[2] = {ring_flops(g, r, true), ring_flops(g, r, false)};
        fprintf(out, "%-14d %20.4e %20.4e\n", r, f[0], f[1]);
        for (int k = 0; k < 2; k++)
            lo[k] = f[k] < lo[k] ? f[k] : lo[k], hi[k] = f[k] > hi[k] ? f[k] : hi[k];
    }
    fprintf(out, "%-14s %20.3f %20.3f\n", "max / min", hi[0] / lo[0], hi[1] / lo[1]);
}

autosp_status_t autosp_graph_print_info(const autosp_graph_t *g, FILE *out, autosp_error_t *err) {
    autosp_graph_summary_t s;
    autosp_status_t st = autosp_graph_summarize(g, &s, err);
    if (st != AUTOSP_OK) return st;
    char human[32];
    fprintf(out, "graph \"%s\": %d nodes, %d tensors\n", g->name, g->n_nodes, g->n_tensors);
    fprintf(out, "symbols:");
    for (int i = 0; i < g->n_syms; i++)
        fprintf(out, " %s=%" PRId64, g->syms[i].name, g->syms[i].value);
    fprintf(out, "\nparameters: %" PRId64 " (%.3e), %s\n", s.num_params, (double)s.num_params,
            human_bytes((double)s.param_bytes, human, sizeof human));
    fprintf(out, "FLOPs of one run: %.4e\n", s.cost.flops);
    fprintf(out, "bytes read %.4e, written %.4e (each input and output once)\n", s.cost.bytes_read,
            s.cost.bytes_written);
    if (g->sp > 1 || g->dp > 1)
        fprintf(out, "per-rank program: sp = %d, dp = %d (%d ranks)\n", autosp_graph_sp(g),
                autosp_graph_dp(g), autosp_graph_sp(g) * autosp_graph_dp(g));
    print_sequence(g, out);
    print_ops(g, &s, out);
    print_activations(g, &s, out);
    bool any = false;
    for (int i = 0; i < g->n_nodes; i++) any |= op_table[g->nodes[i].op].collective;
    if (any) print_collectives(g, &s, out);
    print_sizes(g, out);
    return set_ok(err);
}

autosp_machine_t autosp_machine_default(void) {
    return (autosp_machine_t){
        .flops_per_s = 100e9, .mem_bytes_per_s = 10e9, .net_bytes_per_s = 5e9};
}

double autosp_cost_seconds(const autosp_cost_t *cost, const autosp_machine_t *m) {
    double compute = cost->flops / m->flops_per_s;
    double memory = (cost->bytes_read + cost->bytes_written) / m->mem_bytes_per_s;
    return (compute > memory ? compute : memory) + cost->bytes_sent / m->net_bytes_per_s;
}
