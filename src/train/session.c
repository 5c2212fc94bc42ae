/* session.c: the compiled program, its executor and comm, as the trainer and the evaluator
 * use them. */
#include <string.h>

#include "autosp/safetensors.h"
#include "comm/comm.h"
#include "train/session.h"

#include "base/bf16.h"

autosp_status_t session_comm(session_t *s, const autosp_comm_t *comm, autosp_error_t *err) {
    s->comm = comm;
    if (!comm && !(s->comm = s->own_comm = autosp_comm_new_single(err))) return err->status;
    return AUTOSP_OK;
}

autosp_status_t session_start(session_t *s, autosp_graph_t *g, autosp_error_t *err) {
    s->g = g;
    if (!g) return err->status;
    s->ex = autosp_executor_new_comm(g, s->comm, err);
    return s->ex ? AUTOSP_OK : err->status;
}

void session_close(session_t *s) {
    autosp_executor_free(s->ex);
    autosp_graph_free(s->g);
    autosp_comm_free(s->own_comm);
    memset(s, 0, sizeof *s);
}

/* Where rank (dp_rank, sp_rank)'s slice of x sits in the whole tensor: dim 0 is the batch,
 * split over the data group (unless dim 0 is the sequence, as in an (S) input shared by the
 * batch), and a sequence-split dim is split over the sequence group: row i of the slice is
 * row seq_global_row(i) of the whole (consecutive rows without rings, zigzag with them). */
typedef struct slice {
    int64_t whole[AUTOSP_MAX_DIMS], offset[AUTOSP_MAX_DIMS];
    int seq_dim;   /* -1: none */
    int64_t *rows; /* seq_dim's global row of each local row (mem_alloc'd) */
} slice_t;

static autosp_status_t slice_of(const session_t *s, const tensor_t *x, int dp_rank, int sp_rank,
                                const int64_t *local, slice_t *out, autosp_error_t *err) {
    const autosp_comm_t *c = s->comm;
    bool seq_first = x->seq_dim == 0 || (x->layout == LAYOUT_SEQ && x->layout_dim == 0);
    for (int k = 0; k < x->shape.ndim; k++) out->whole[k] = local[k], out->offset[k] = 0;
    out->seq_dim = -1;
    out->rows = NULL;
    if (x->shape.ndim > 0 && !seq_first) {
        out->whole[0] *= c->dp_size;
        out->offset[0] = local[0] * dp_rank;
    }
    if (x->layout != LAYOUT_SEQ) return AUTOSP_OK;
    int d = out->seq_dim = x->layout_dim;
    out->whole[d] *= c->sp_size;
    if (!(out->rows = mem_alloc(sizeof(int64_t) * (size_t)(local[d] + 1)))) return nomem(err);
    for (int64_t i = 0; i < local[d]; i++)
        out->rows[i] = seq_global_row(s->g, sp_rank, local[d], i);
    return AUTOSP_OK;
}

/* Between a rank's slice (numel elements of esize bytes) and the whole tensor: walks the
 * slice, finds each element's place in the whole. */
static void copy_slice(const tensor_t *x, const int64_t *local, int64_t numel, const slice_t *sl,
                       char *slice, char *all, bool to_slice) {
    size_t esize = autosp_dtype_size(x->dtype);
    for (int64_t i = 0; i < numel; i++) {
        int64_t rem = i, at = 0, stride = 1;
        for (int k = x->shape.ndim - 1; k >= 0; k--) {
            int64_t idx = rem % local[k];
            at += (k == sl->seq_dim ? sl->rows[idx] : idx + sl->offset[k]) * stride;
            rem /= local[k];
            stride *= sl->whole[k];
        }
        char *a = all + (size_t)at * esize, *b = slice + (size_t)i * esize;
        memcpy(to_slice ? b : a, to_slice ? a : b, esize);
    }
}

/* A padded program (autosp_pad_sequence): the caller's tensor has g->padded_from rows on x's
 * sequence dim where the program's whole has whole[seq_dim]; outer and inner (bytes) around
 * that dim. False when x is not padded. */
static bool padded(const session_t *s, const tensor_t *x, const slice_t *sl, int64_t *outer,
                   int64_t *inner) {
    if (!s->g->padded_from || sl->seq_dim < 0) return false;
    *outer = 1, *inner = (int64_t)autosp_dtype_size(x->dtype);
    for (int k = 0; k < sl->seq_dim; k++) *outer *= sl->whole[k];
    for (int k = sl->seq_dim + 1; k < x->shape.ndim; k++) *inner *= sl->whole[k];
    return true;
}

/* What a padded row of an input holds: no token, no label, no position, no segment. */
static int32_t pad_value(const session_t *s, const tensor_t *x) {
    switch (x->role) {
    case AUTOSP_ROLE_LABELS:
        return s->g->pad_label;
    case AUTOSP_ROLE_SEGMENT_IDS:
        return -1;
    default:
        return 0;
    }
}

/* Between the caller's rows (real of them) and the program's (rows): to_padded fills the rows
 * after the real ones with pad (int32 elements), else only the real rows are copied back. */
static void pad_copy(char *caller, char *program, int64_t outer, int64_t inner, int64_t real,
                     int64_t rows, bool to_padded, int32_t pad) {
    for (int64_t o = 0; o < outer; o++) {
        char *c = caller + o * real * inner, *p = program + o * rows * inner;
        memcpy(to_padded ? p : c, to_padded ? c : p, (size_t)(real * inner));
        for (int64_t i = real * inner; to_padded && i < rows * inner; i += 4)
            memcpy(p + i, &pad, 4);
    }
}

static const tensor_t *local_shape(const session_t *s, const char *name, int64_t *local,
                                   int64_t *numel) {
    autosp_tensor_t t = autosp_tensor_find(s->g, name);
    if (t < 0) return NULL;
    const tensor_t *x = &s->g->tensors[t];
    AUTOSP_ASSERT(shape_eval(s->g, &x->shape, local, numel) == EVAL_OK);
    return x;
}

autosp_status_t session_feed(session_t *s, const char *name, const void *global,
                             autosp_error_t *err) {
    int64_t local[AUTOSP_MAX_DIMS], numel;
    const tensor_t *x = local_shape(s, name, local, &numel);
    if (!x || x->kind != AUTOSP_KIND_INPUT)
        return set_error(err, AUTOSP_ERR_INVALID, "feed: the graph has no input \"%s\"", name);
    slice_t sl;
    autosp_status_t st = slice_of(s, x, s->comm->dp_rank, s->comm->sp_rank, local, &sl, err);
    int64_t outer, inner;
    char *whole = (char *)global, *own = NULL;
    if (st == AUTOSP_OK && padded(s, x, &sl, &outer, &inner)) {
        const int64_t rows = sl.whole[sl.seq_dim];
        if (!(whole = own = mem_alloc((size_t)(outer * rows * inner)))) st = nomem(err);
        if (own)
            pad_copy((char *)global, own, outer, inner, s->g->padded_from, rows, true,
                     pad_value(s, x));
    }
    if (st == AUTOSP_OK)
        copy_slice(x, local, numel, &sl, autosp_executor_data(s->ex, name), whole, true);
    mem_free(own);
    mem_free(sl.rows);
    return st == AUTOSP_OK ? set_ok(err) : st;
}

autosp_status_t session_gather(session_t *s, const char *name, void *global, autosp_error_t *err) {
    int64_t local[AUTOSP_MAX_DIMS], numel;
    const tensor_t *x = local_shape(s, name, local, &numel);
    if (!x || x->kind == AUTOSP_KIND_PARAM)
        return set_error(err, AUTOSP_ERR_INVALID,
                         "gather: the graph has no input or computed tensor \"%s\"", name);
    if (x->layout == LAYOUT_HEADS || x->layout == LAYOUT_PARTIAL)
        return set_error(err, AUTOSP_ERR_INVALID,
                         "gather: tensor \"%s\" is %s on each rank, not a slice of the sequence",
                         name,
                         x->layout == LAYOUT_HEADS ? "a share of the heads" : "a partial sum");
    size_t bytes = (size_t)numel * autosp_dtype_size(x->dtype);
    char *all = mem_alloc(bytes * (size_t)s->comm->size + 1);
    if (!all) return nomem(err);
    autosp_status_t st = s->comm->ops->all_gather(
        s->comm, COMM_WORLD, autosp_executor_data(s->ex, name), all, bytes, err);
    char *whole = global, *own = NULL;
    int64_t outer = 0, inner = 0, rows = 0;
    for (int r = 0; r < s->comm->size && st == AUTOSP_OK; r++) {
        slice_t sl;
        st = slice_of(s, x, r / s->comm->sp_size, r % s->comm->sp_size, local, &sl, err);
        if (st == AUTOSP_OK && r == 0 && padded(s, x, &sl, &outer, &inner)) {
            rows = sl.whole[sl.seq_dim];
            if (!(whole = own = mem_alloc((size_t)(outer * rows * inner)))) st = nomem(err);
        }
        if (st == AUTOSP_OK)
            copy_slice(x, local, numel, &sl, all + bytes * (size_t)r, whole, false);
        mem_free(sl.rows);
    }
    if (own && st == AUTOSP_OK)
        pad_copy(global, own, outer, inner, s->g->padded_from, rows, false, 0);
    mem_free(own);
    mem_free(all);
    return st == AUTOSP_OK ? set_ok(err) : st;
}

static void shape_text(const int64_t *d, int n, char *buf, size_t size) {
    buf[0] = '\0';
    for (int k = 0; k < n; k++) {
        size_t used = strlen(buf);
        snprintf(buf + used, size - used, "%s%lld", k ? "," : "", (long long)d[k]);
    }
}

static bool f32_or_bf16(autosp_dtype_t t) {
    return t == AUTOSP_F32 || t == AUTOSP_BF16;
}

int64_t session_param_slice(const session_t *s, autosp_tensor_t t, int64_t *lo, int64_t *count) {
    const shape_t *whole = param_whole_shape(s->g, t);
    int64_t n;
    AUTOSP_ASSERT(shape_eval(s->g, whole, NULL, &n) == EVAL_OK);
    *lo = 0, *count = n;
    if (whole != &s->g->tensors[t].shape) {
        int r = s->comm->rank, ranks = s->comm->size;
        *lo = n * r / ranks;
        *count = n * (r + 1) / ranks - *lo;
    }
    return n;
}

/* The file's tensor for parameter x, checked: x's (whole) shape, and x's dtype or another of
 * f32 and bf16 (converted: a bf16 model starts from f32 weights, and the other way round). */
static autosp_status_t check_weight(const autosp_st_tensor_t *w, const session_t *s,
                                    autosp_tensor_t t, const char *path, autosp_error_t *err) {
    const tensor_t *x = &s->g->tensors[t];
    const shape_t *whole = param_whole_shape(s->g, t);
    int64_t dims[AUTOSP_MAX_DIMS], numel;
    AUTOSP_ASSERT(shape_eval(s->g, whole, dims, &numel) == EVAL_OK);
    bool same = w->ndim == whole->ndim &&
                (w->dtype == x->dtype || (f32_or_bf16(w->dtype) && f32_or_bf16(x->dtype)));
    for (int k = 0; same && k < w->ndim; k++) same = w->shape[k] == dims[k];
    if (same) return AUTOSP_OK;
    char want[128], found[128];
    shape_text(dims, whole->ndim, want, sizeof want);
    shape_text(w->shape, w->ndim, found, sizeof found);
    return set_error(err, AUTOSP_ERR_INVALID,
                     "weights \"%s\": tensor \"%s\" is %s [%s], expected %s [%s]", path, x->name,
                     autosp_dtype_name(w->dtype), found, autosp_dtype_name(x->dtype), want);
}

/* Names of parameters missing from f, then of f's tensors that are no parameter (a checkpoint's
 * optimizer state excepted), into buf; how many there are. */
static int mismatched(const session_t *s, const autosp_safetensors_t *f, char *buf, size_t size) {
    const char *fmt = autosp_safetensors_metadata(f, "format");
    bool checkpoint = fmt && strcmp(fmt, "autosp-checkpoint") == 0;
    int n = 0;
    buf[0] = '\0';
    for (autosp_tensor_t t = 0; t < s->g->n_tensors; t++) {
        const tensor_t *x = &s->g->tensors[t];
        if (x->kind != AUTOSP_KIND_PARAM || autosp_safetensors_find(f, x->name)) continue;
        size_t used = strlen(buf);
        snprintf(buf + used, size - used, "%smissing \"%s\"", n++ ? ", " : "", x->name);
    }
    for (int i = 0; i < autosp_safetensors_count(f); i++) {
        const char *name = autosp_safetensors_tensor(f, i)->name, *dot = strrchr(name, '.');
        autosp_tensor_t t = autosp_tensor_find(s->g, name);
        if (t >= 0 && s->g->tensors[t].kind == AUTOSP_KIND_PARAM) continue;
        if (checkpoint && dot && (!strcmp(dot, ".adam_m") || !strcmp(dot, ".adam_v"))) continue;
        size_t used = strlen(buf);
        snprintf(buf + used, size - used, "%sextra \"%s\"", n++ ? ", " : "", name);
    }
    return n;
}

autosp_status_t session_load_weights(session_t *s, const char *path, autosp_error_t *err) {
    autosp_safetensors_t *f = autosp_safetensors_open(path, err);
    if (!f) return err->status;
    char names[AUTOSP_ERROR_MESSAGE_MAX];
    int bad = mismatched(s, f, names, sizeof names);
    autosp_status_t st =
        bad ? set_error(err, AUTOSP_ERR_INVALID,
                        "weights \"%s\" do not match graph \"%s\" (%d tensor%s): %s", path,
                        s->g->name, bad, bad == 1 ? "" : "s", names)
            : AUTOSP_OK;
    for (autosp_tensor_t t = 0; st == AUTOSP_OK && t < s->g->n_tensors; t++) {
        const tensor_t *x = &s->g->tensors[t];
        if (x->kind != AUTOSP_KIND_PARAM) continue;
        const autosp_st_tensor_t *w = autosp_safetensors_find(f, x->name);
        if ((st = check_weight(w, s, t, path, err)) != AUTOSP_OK) break;
        void *dst = autosp_executor_data(s->ex, x->name);
        int64_t lo, n;
        session_param_slice(s, t, &lo, &n);
        const char *src = (const char *)w->data + (size_t)lo * autosp_dtype_size(w->dtype);
        if (w->dtype == x->dtype)
            memcpy(dst, src, (size_t)n * autosp_dtype_size(x->dtype));
        else if (x->dtype == AUTOSP_BF16)
            bf16_from_f32_n(dst, (const float *)src, n);
        else
            bf16_to_f32_n(dst, (const bf16_t *)src, n);
    }
    autosp_safetensors_close(f);
    return st == AUTOSP_OK ? set_ok(err) : st;
}

autosp_status_t session_outcome(const session_t *s, autosp_status_t st, const char *what,
                                const char *path, autosp_error_t *err) {
    int code = (int)st;
    autosp_error_t ignored;
    if (s->comm->ops->broadcast(s->comm, &code, sizeof code, &ignored) != AUTOSP_OK)
        return st == AUTOSP_OK ? set_error(err, ignored.status, "%s: %s", what, ignored.message)
                               : st;
    if (s->comm->rank != 0 && code != AUTOSP_OK && st == AUTOSP_OK)
        return set_error(err, (autosp_status_t)code, "%s: rank 0 could not write \"%s\"", what,
                         path);
    return st == AUTOSP_OK ? set_ok(err) : st;
}

static autosp_status_t write_weights(const session_t *s, const char *path, autosp_error_t *err) {
    const autosp_graph_t *g = s->g;
    autosp_st_tensor_t *list = mem_calloc((size_t)g->n_tensors + 1, sizeof *list);
    if (!list) return nomem(err);
    int n = 0;
    for (autosp_tensor_t t = 0; t < g->n_tensors; t++) {
        const tensor_t *x = &g->tensors[t];
        if (x->kind != AUTOSP_KIND_PARAM) continue;
        autosp_st_tensor_t *e = &list[n++];
        *e = (autosp_st_tensor_t){.name = x->name, .dtype = x->dtype, .ndim = x->shape.ndim};
        AUTOSP_ASSERT(shape_eval(g, &x->shape, e->shape, NULL) == EVAL_OK);
        e->data = autosp_executor_data(s->ex, x->name);
    }
    const char *keys[1] = {"format"}, *values[1] = {"autosp"};
    autosp_status_t st = autosp_safetensors_write(path, list, n, keys, values, 1, err);
    mem_free(list);
    return st;
}

autosp_status_t session_save_weights(const session_t *s, const char *path, autosp_error_t *err) {
    autosp_status_t st = s->comm->rank == 0 ? write_weights(s, path, err) : AUTOSP_OK;
    return session_outcome(s, st, "weights", path, err);
}
