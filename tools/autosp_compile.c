/* autosp-compile: load, verify, bind and write a graph; print its cost table or a Graphviz view.
 * Exit 0 ok, 2 bad input (message on stderr), 1 internal error. No output file is created on
 * failure: outputs are written only after every check passed, each one atomically. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char *prog = "autosp-compile";

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: autosp-compile IN.json [-o OUT.json] [--set SYM=VAL]... [--sp P] [--dp D]\n"
        "                      [--autodiff] [--info] [--dot OUT.dot]\n"
        "\n"
        "Loads and verifies a graph (docs/json-format.md), binds shape symbols, and writes it.\n"
        "\n"
        "  -o, --output OUT.json  write the verified graph (with the bindings) to OUT.json\n"
        "  --set SYM=VAL          bind shape symbol SYM (e.g. --set S=8192); repeatable\n"
        "  --sp P                 rewrite the single-device graph into the program of one rank\n"
        "                         of P-way sequence parallelism (Ulysses): sp_shard, ulysses,\n"
        "                         exact_loss (docs/passes.md)\n"
        "  --dp D                 and D-way data parallelism (world = D x P ranks)\n"
        "  --autodiff             append the backward graph; the outputs become the loss and\n"
        "                         \"<param>.grad\" for every parameter (with --sp or --dp, summed\n"
        "                         over all ranks by grad_sync)\n"
        "  --info                 print nodes by op, parameter count, the FLOPs of one run\n"
        "                         (forward, or forward and backward after --autodiff), the\n"
        "                         bytes of every activation and every collective with the\n"
        "                         bytes each rank sends (needs every symbol bound)\n"
        "  --dot OUT.dot          write a Graphviz view of the graph (split tensors coloured:\n"
        "                         green by sequence, purple by heads, orange a\n"
        "                         partial sum over ranks)\n"
        "  -h, --help             print this help\n"
        "\n"
        "Exit status: 0 ok, 2 bad input or usage, 1 internal error.\n");
}

typedef struct options {
    const char *in, *out, *dot;
    const char *sets[64];
    int n_sets;
    bool info, autodiff;
    int64_t sp, dp; /* 0: not given */
} options_t;

static int parse_args(int argc, char **argv, options_t *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return -1;
        } else if (!strcmp(a, "--info")) {
            o->info = true;
        } else if (!strcmp(a, "--autodiff")) {
            o->autodiff = true;
        } else if (!strcmp(a, "--sp") || !strcmp(a, "--dp")) {
            if (!has_value) return cli_usage_error(prog, "%s needs a value", a);
            int64_t *v = !strcmp(a, "--sp") ? &o->sp : &o->dp;
            if (!cli_parse_int(argv[++i], 1, 1 << 20, v))
                return cli_usage_error(prog, "%s \"%s\": expected a positive integer", a, argv[i]);
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "--dot") ||
                   !strcmp(a, "--set")) {
            if (!has_value) return cli_usage_error(prog, "%s needs a value", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--dot"))
                o->dot = v;
            else if (!strcmp(a, "--set")) {
                if (o->n_sets == (int)(sizeof o->sets / sizeof o->sets[0]))
                    return cli_usage_error(prog, "too many --set flags");
                o->sets[o->n_sets++] = v;
            } else
                o->out = v;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error(prog, "unknown option \"%s\"", a);
        } else if (o->in) {
            return cli_usage_error(prog, "more than one input graph (\"%s\" and \"%s\")", o->in, a);
        } else {
            o->in = a;
        }
    }
    if (!o->in) return cli_usage_error(prog, "no input graph given");
    return 0;
}

/* --set SYM=VAL */
static int bind_symbol(autosp_graph_t *g, const char *set) {
    const char *eq = strchr(set, '=');
    char name[AUTOSP_MAX_NAME];
    int64_t value;
    if (!eq || eq == set || (size_t)(eq - set) >= sizeof name)
        return cli_usage_error(prog, "--set \"%s\": expected SYM=VALUE, e.g. --set S=8192", set);
    memcpy(name, set, (size_t)(eq - set));
    name[eq - set] = '\0';
    if (!cli_parse_int(eq + 1, 1, INT64_MAX, &value))
        return cli_usage_error(prog, "--set %s: \"%s\" is not a positive integer", name, eq + 1);
    autosp_error_t err;
    if (autosp_symbol_bind(g, name, value, &err) != AUTOSP_OK) return cli_fail(prog, &err);
    return 0;
}

/* Runs the requested passes in pipeline order; *g is replaced by each pass's result. */
static int run_passes(const options_t *o, autosp_graph_t **g) {
    autosp_error_t err;
    autosp_graph_t *next = NULL;
    if (o->sp || o->dp) {
        autosp_parallel_config_t cfg = autosp_parallel_config_default();
        cfg.sp = o->sp ? (int)o->sp : 1;
        cfg.dp = o->dp ? (int)o->dp : 1;
        next = o->autodiff ? autosp_compile_training(*g, &cfg, &err)
                           : autosp_parallelize(*g, &cfg, &err);
    } else if (o->autodiff) {
        next = autosp_autodiff(*g, &err);
    } else {
        return 0;
    }
    if (!next) return cli_fail(prog, &err);
    autosp_graph_free(*g);
    *g = next;
    return 0;
}

static int run(const options_t *o, autosp_graph_t **gp) {
    autosp_error_t err;
    for (int i = 0; i < o->n_sets; i++) {
        int rc = bind_symbol(*gp, o->sets[i]);
        if (rc) return rc;
    }
    int rc = run_passes(o, gp);
    if (rc) return rc;
    autosp_graph_t *g = *gp;
    if (autosp_graph_verify(g, o->info ? AUTOSP_VERIFY_BOUND : 0, &err) != AUTOSP_OK)
        return cli_fail(prog, &err);
    /* every output is rendered first, then all files are written together or not at all */
    const char *paths[2];
    char *texts[2] = {NULL, NULL};
    int n = 0;
    if (o->out && !(paths[n] = o->out, texts[n++] = autosp_graph_save_string(g, &err))) rc = 1;
    if (!rc && o->dot && !(paths[n] = o->dot, texts[n++] = autosp_graph_dot_string(g, &err)))
        rc = 1;
    if (rc) rc = cli_fail(prog, &err);
    if (!rc && o->info && autosp_graph_print_info(g, stdout, &err) != AUTOSP_OK)
        rc = cli_fail(prog, &err);
    if (!rc && n && cli_write_files(n, paths, (const char *const *)texts, &err) != AUTOSP_OK)
        rc = cli_fail(prog, &err);
    for (int i = 0; i < n; i++) autosp_free(texts[i]);
    return rc;
}

int main(int argc, char **argv) {
    options_t o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    autosp_error_t err;
    autosp_graph_t *g = autosp_graph_load_file(o.in, &err);
    if (!g) return cli_fail(prog, &err);
    rc = run(&o, &g);
    autosp_graph_free(g);
    return rc;
}
