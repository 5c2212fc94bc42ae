/* json_save.c: writes a graph as JSON (docs/json-format.md), one tensor or node per line. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "autosp/io.h"
#include "ir/op_table.h"

typedef struct strbuf {
    char *data;
    size_t len, cap;
    bool failed;
} strbuf_t;

static void sb_append(strbuf_t *b, const char *s) {
    size_t n = strlen(s);
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = mem_realloc(b->data, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n + 1);
    b->len += n;
}

/* Fewest significant digits (<= 17) with which every real in v reads back exactly. */
static int real_precision(const double *v, int n) {
    for (int p = 1; p < 17; p++) {
        bool exact = true;
        for (int i = 0; i < n && exact; i++) {
            char buf[40];
            snprintf(buf, sizeof buf, "%.*g", p, v[i]);
            exact = strtod(buf, NULL) == v[i];
        }
        if (exact) return p;
    }
    return 17;
}

/* Appends one JSON value on its own line (jansson's separators: ", " and ": "). */
static void sb_json(strbuf_t *b, json_t *v, const double *reals, int n_reals, bool last) {
    if (!v) {
        b->failed = true;
        return;
    }
    char *s = json_dumps(v, JSON_REAL_PRECISION(real_precision(reals, n_reals)) | JSON_ENCODE_ANY);
    json_decref(v);
    if (!s) {
        b->failed = true;
        return;
    }
    sb_append(b, "    ");
    sb_append(b, s);
    sb_append(b, last ? "\n" : ",\n");
    free(s);
}

static json_t *dim_json(const autosp_graph_t *g, dim_t d) {
    int64_t v;
    char buf[128];
    return dim_is_const(d, &v) ? json_integer(v) : json_string(dim_str(g, d, buf, sizeof buf));
}

static json_t *shape_json(const autosp_graph_t *g, const shape_t *s) {
    json_t *a = json_array();
    for (int i = 0; a && i < s->ndim; i++) json_array_append_new(a, dim_json(g, s->d[i]));
    return a;
}

static json_t *tensor_json(const autosp_graph_t *g, const tensor_t *t) {
    return json_pack("{s:s, s:s, s:o}", "name", t->name, "dtype", autosp_dtype_name(t->dtype),
                     "shape", shape_json(g, &t->shape));
}

static json_t *attr_json(const autosp_graph_t *g, const attr_spec_t *spec, const attr_value_t *v) {
    switch (spec->type) {
    case AUTOSP_ATTR_INT:
        return json_integer(v->i);
    case AUTOSP_ATTR_BOOL:
        return json_boolean(v->i);
    case AUTOSP_ATTR_FLOAT:
        return json_real(v->f);
    case AUTOSP_ATTR_STRING:
        return json_string(v->s);
    case AUTOSP_ATTR_SHAPE:
        return shape_json(g, v->shape);
    case AUTOSP_ATTR_INTS: {
        json_t *a = json_array();
        for (int i = 0; a && i < v->n_ints; i++) json_array_append_new(a, json_integer(v->ints[i]));
        return a;
    }
    }
    return NULL;
}

static void write_node(strbuf_t *b, const autosp_graph_t *g, const node_t *n, bool last) {
    const op_info_t *info = &op_table[n->op];
    json_t *inputs = json_array(), *outputs = json_array(), *attrs = json_object();
    double reals[16];
    int n_reals = 0;
    for (int i = 0; i < n->n_in; i++)
        json_array_append_new(inputs, json_string(g->tensors[n->in[i]].name));
    for (int i = 0; i < n->n_out; i++)
        json_array_append_new(outputs, tensor_json(g, &g->tensors[n->out[i]]));
    for (int i = 0; i < info->n_attrs; i++) {
        json_object_set_new(attrs, info->attrs[i].name,
                            attr_json(g, &info->attrs[i], &n->attrs[i]));
        if (info->attrs[i].type == AUTOSP_ATTR_FLOAT) reals[n_reals++] = n->attrs[i].f;
    }
    json_t *node = json_pack("{s:s, s:s, s:o, s:o}", "name", n->name, "op", info->name, "inputs",
                             inputs, "outputs", outputs);
    if (node && info->n_attrs)
        json_object_set_new(node, "attrs", attrs);
    else
        json_decref(attrs);
    sb_json(b, node, reals, n_reals, last);
}

static void write_leaf(strbuf_t *b, const autosp_graph_t *g, const tensor_t *t, bool last) {
    json_t *j = tensor_json(g, t);
    if (j && t->kind == AUTOSP_KIND_INPUT) {
        json_object_set_new(j, "role", json_string(autosp_role_name(t->role)));
        json_object_set_new(j, "seq_dim", t->seq_dim >= 0 ? json_integer(t->seq_dim) : json_null());
    } else if (j) {
        json_object_set_new(j, "init", json_string(autosp_init_name(t->init)));
        if (t->init == AUTOSP_INIT_NORMAL) json_object_set_new(j, "std", json_real(t->init_std));
    }
    sb_json(b, j, &t->init_std, t->kind == AUTOSP_KIND_PARAM, last);
}

static void write_leaves(strbuf_t *b, const autosp_graph_t *g, autosp_kind_t kind) {
    int count = 0, seen = 0;
    for (int i = 0; i < g->n_tensors; i++) count += g->tensors[i].kind == kind;
    for (int i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].kind == kind) write_leaf(b, g, &g->tensors[i], ++seen == count);
}

char *autosp_graph_save_string(const autosp_graph_t *g, autosp_error_t *err) {
    strbuf_t b = {0};
    json_t *head =
        json_pack("{s:s, s:i, s:s}", "format", "autosp-graph", "version", 1, "name", g->name);
    json_t *syms = json_object(), *outs = json_array();
    for (int i = 0; i < g->n_syms; i++)
        json_object_set_new(syms, g->syms[i].name,
                            g->syms[i].value ? json_integer(g->syms[i].value) : json_null());
    for (int i = 0; i < g->n_outputs; i++)
        json_array_append_new(outs, json_string(g->tensors[g->outputs[i]].name));
    char *h = head ? json_dumps(head, 0) : NULL;
    char *s = json_dumps(syms, 0), *o = json_dumps(outs, 0);
    if (h && s && o) {
        h[strlen(h) - 1] = '\0'; /* reopen the object */
        sb_append(&b, "{\n  ");
        sb_append(&b, h + 1);
        sb_append(&b, ",\n  \"symbols\": ");
        sb_append(&b, s);
        if (g->sp > 1 || g->dp > 1) {
            char par[192], ring[96] = "";
            if (g->ring > 1) snprintf(ring, sizeof ring, ", \"ring\": %d", g->ring);
            if (g->padded_from)
                snprintf(ring + strlen(ring), sizeof ring - strlen(ring),
                         ", \"padded_from\": %lld, \"pad_label\": %d", (long long)g->padded_from,
                         (int)g->pad_label);
            snprintf(par, sizeof par, ",\n  \"parallel\": {\"sp\": %d, \"dp\": %d%s}",
                     g->sp > 1 ? g->sp : 1, g->dp > 1 ? g->dp : 1, ring);
            sb_append(&b, par);
        }
        sb_append(&b, ",\n  \"inputs\": [\n");
        write_leaves(&b, g, AUTOSP_KIND_INPUT);
        sb_append(&b, "  ],\n  \"params\": [\n");
        write_leaves(&b, g, AUTOSP_KIND_PARAM);
        sb_append(&b, "  ],\n  \"nodes\": [\n");
        for (int i = 0; i < g->n_nodes; i++) write_node(&b, g, &g->nodes[i], i + 1 == g->n_nodes);
        sb_append(&b, "  ],\n  \"outputs\": ");
        sb_append(&b, o);
        sb_append(&b, "\n}\n");
    } else {
        b.failed = true;
    }
    free(h);
    free(s);
    free(o);
    json_decref(head);
    json_decref(syms);
    json_decref(outs);
    if (b.failed) {
        mem_free(b.data);
        nomem(err);
        return NULL;
    }
    set_ok(err);
    return b.data;
}

/* Fault injection for the tests: with AUTOSP_FAULT_KILL_BEFORE_RENAME set to a suffix, a write
 * to a path ending in it dies by SIGKILL after the temporary file is complete and synced, just
 * before the rename: the window a crash during a save would hit. */
static void kill_if_injected(const char *path) {
    const char *suffix = getenv("AUTOSP_FAULT_KILL_BEFORE_RENAME");
    size_t n = suffix ? strlen(suffix) : 0, len = strlen(path);
    if (n && len >= n && strcmp(path + len - n, suffix) == 0) raise(SIGKILL);
}

autosp_status_t autosp_write_file_atomic(const char *path, const void *data, size_t size,
                                         autosp_error_t *err) {
    size_t n = strlen(path);
    char *tmp = mem_alloc(n + 16);
    if (!tmp) return nomem(err);
    snprintf(tmp, n + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        set_error(err, AUTOSP_ERR_IO, "cannot write \"%s\": %s", path, strerror(errno));
        mem_free(tmp);
        return AUTOSP_ERR_IO;
    }
    const char *p = data;
    size_t left = size;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        p += w;
        left -= (size_t)w;
    }
    int saved = errno;
    bool ok = left == 0 && fchmod(fd, 0644) == 0 && fsync(fd) == 0;
    if (!ok && left == 0) saved = errno;
    ok = close(fd) == 0 && ok;
    kill_if_injected(path);
    if (ok && rename(tmp, path) != 0) {
        saved = errno;
        ok = false;
    }
    if (!ok) {
        unlink(tmp);
        set_error(err, AUTOSP_ERR_IO, "cannot write \"%s\": %s", path, strerror(saved));
    }
    mem_free(tmp);
    return ok ? set_ok(err) : AUTOSP_ERR_IO;
}

autosp_status_t autosp_graph_save_file(const autosp_graph_t *g, const char *path,
                                       autosp_error_t *err) {
    char *text = autosp_graph_save_string(g, err);
    if (!text) return err ? err->status : AUTOSP_ERR_NOMEM;
    autosp_status_t st = autosp_write_file_atomic(path, text, strlen(text), err);
    mem_free(text);
    return st;
}
