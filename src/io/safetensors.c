/* safetensors.c: the safetensors weight format (autosp/safetensors.h). The reader is where
 * untrusted bytes enter: the header length is checked before anything is allocated for it,
 * every JSON field is type-checked, every size is computed without overflow, and the tensors
 * must tile the data section exactly. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "autosp/io.h"
#include "autosp/safetensors.h"
#include "base/base.h"

/* Tensor data is handed out in place, so the host must share the file's byte order. */
#if defined(__BYTE_ORDER__)
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "safetensors data is little-endian: libautosp needs a little-endian host");
#endif

static const char *const st_dtype_names[] = {
    [AUTOSP_F32] = "F32", [AUTOSP_BF16] = "BF16", [AUTOSP_F16] = "F16",
    [AUTOSP_I32] = "I32", [AUTOSP_I64] = "I64",
};
_Static_assert(ARRAY_LEN(st_dtype_names) == AUTOSP_DTYPE_COUNT, "one safetensors name per dtype");

#define METADATA_KEY "__metadata__"

struct autosp_safetensors {
    arena_t arena;                       /* names, metadata strings and the tables below */
    void *block;                         /* the allocation that holds the file's bytes */
    int n, n_meta;                       /* tensors, metadata pairs */
    autosp_st_tensor_t *tensors;         /* in file order (ascending data offset) */
    const autosp_st_tensor_t **by_name;  /* the same tensors, sorted by name */
    const char **meta_keys, **meta_vals; /* in header order */
};

/* A tensor's size in bytes; false when it exceeds INT64_MAX. A dim of 0 makes it 0 whatever
 * the other dims are. */
static bool shape_bytes(const int64_t *shape, int ndim, autosp_dtype_t dtype, uint64_t *out) {
    uint64_t bytes = autosp_dtype_size(dtype);
    bool over = false;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == 0) {
            *out = 0;
            return true;
        }
        if (bytes > (uint64_t)INT64_MAX / (uint64_t)shape[i])
            over = true;
        else
            bytes *= (uint64_t)shape[i];
    }
    *out = bytes;
    return !over;
}

/* ---- writing ---- */

/* Whether jansson takes s as a string (it must be valid UTF-8). */
static bool utf8_ok(const char *s) {
    json_t *j = json_string(s);
    bool ok = j != NULL;
    json_decref(j);
    return ok;
}

/* Checks tensor i as the reader will, and returns its size in *bytes. */
static autosp_status_t check_tensor(const char *path, const autosp_st_tensor_t *t, int i,
                                    uint64_t *bytes, autosp_error_t *err) {
    if (!t->name) return set_error(err, AUTOSP_ERR_INVALID, "%s: tensor %d: name is NULL", path, i);
    if (!utf8_ok(t->name))
        return set_error(err, AUTOSP_ERR_INVALID, "%s: tensor %d: name is not valid UTF-8", path,
                         i);
    if (strcmp(t->name, METADATA_KEY) == 0)
        return set_error(err, AUTOSP_ERR_INVALID, "%s: tensor %d: name \"%s\" is reserved", path, i,
                         METADATA_KEY);
    const char *name = t->name;
    if ((unsigned)t->dtype >= AUTOSP_DTYPE_COUNT)
        return set_error(err, AUTOSP_ERR_INVALID,
                         "%s: tensor \"%.128s\": dtype is %d, expected 0..%d", path, name,
                         (int)t->dtype, AUTOSP_DTYPE_COUNT - 1);
    if (t->ndim < 0 || t->ndim > AUTOSP_MAX_DIMS)
        return set_error(err, AUTOSP_ERR_INVALID,
                         "%s: tensor \"%.128s\": ndim is %d, expected 0..%d", path, name, t->ndim,
                         AUTOSP_MAX_DIMS);
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] < 0)
            return set_error(err, AUTOSP_ERR_INVALID,
                             "%s: tensor \"%.128s\": shape[%d] is %lld, expected >= 0", path, name,
                             d, (long long)t->shape[d]);
    if (!shape_bytes(t->shape, t->ndim, t->dtype, bytes))
        return set_error(err, AUTOSP_ERR_LIMIT, "%s: tensor \"%.128s\" is more than 2^63 bytes",
                         path, name);
    if (*bytes && !t->data)
        return set_error(err, AUTOSP_ERR_INVALID, "%s: tensor \"%.128s\": data is NULL", path,
                         name);
    return AUTOSP_OK;
}

/* Adds "__metadata__" (first, as the reference writer does) when there are pairs. */
static autosp_status_t header_metadata(json_t *root, const char *path, const char *const *keys,
                                       const char *const *vals, int n, autosp_error_t *err) {
    if (n == 0) return AUTOSP_OK;
    json_t *m = json_object();
    if (!m || json_object_set_new(root, METADATA_KEY, m) != 0) return nomem(err);
    for (int i = 0; i < n; i++) {
        if (!keys[i] || !vals[i] || !utf8_ok(keys[i]) || !utf8_ok(vals[i]))
            return set_error(err, AUTOSP_ERR_INVALID,
                             "%s: metadata pair %d: expected a key and a value in valid UTF-8",
                             path, i);
        if (json_object_get(m, keys[i]))
            return set_error(err, AUTOSP_ERR_INVALID, "%s: metadata key \"%.128s\" is repeated",
                             path, keys[i]);
        if (json_object_set_new(m, keys[i], json_string(vals[i])) != 0) return nomem(err);
    }
    return AUTOSP_OK;
}

/* Adds one entry per tensor, laying them out back to back; *data_size is where they end. */
static autosp_status_t header_tensors(json_t *root, const char *path, const autosp_st_tensor_t *ts,
                                      int n, uint64_t *data_size, autosp_error_t *err) {
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const autosp_st_tensor_t *t = &ts[i];
        uint64_t bytes = 0;
        autosp_status_t st = check_tensor(path, t, i, &bytes, err);
        if (st != AUTOSP_OK) return st;
        if (bytes > (uint64_t)INT64_MAX - off)
            return set_error(err, AUTOSP_ERR_LIMIT, "%s: the tensors total more than 2^63 bytes",
                             path);
        if (json_object_get(root, t->name))
            return set_error(err, AUTOSP_ERR_INVALID, "%s: tensor %d: name \"%.128s\" is repeated",
                             path, i, t->name);
        json_t *shape = json_array();
        for (int d = 0; shape && d < t->ndim; d++)
            if (json_array_append_new(shape, json_integer(t->shape[d])) != 0) {
                json_decref(shape);
                return nomem(err);
            }
        json_t *v = json_pack("{s:s, s:o, s:[I, I]}", "dtype", st_dtype_names[t->dtype], "shape",
                              shape, "data_offsets", (json_int_t)off, (json_int_t)(off + bytes));
        if (!v || json_object_set_new(root, t->name, v) != 0) return nomem(err);
        off += bytes;
    }
    *data_size = off;
    return AUTOSP_OK;
}

/* Length, header padded with spaces to a multiple of 8, then the tensors back to back. */
static autosp_status_t write_bytes(const char *path, const char *header,
                                   const autosp_st_tensor_t *ts, int n, uint64_t data_size,
                                   autosp_error_t *err) {
    size_t hlen = strlen(header), padded = (hlen + 7) & ~(size_t)7;
    if (padded > AUTOSP_SAFETENSORS_MAX_HEADER)
        return set_error(err, AUTOSP_ERR_LIMIT, "%s: the header would be %zu bytes, limit %d", path,
                         padded, AUTOSP_SAFETENSORS_MAX_HEADER);
    if (data_size > SIZE_MAX - 8 - padded) return nomem(err);
    size_t total = 8 + padded + (size_t)data_size;
    unsigned char *buf = mem_alloc(total);
    if (!buf) return nomem(err);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(buf + 8, header, hlen);
    memset(buf + 8 + hlen, ' ', padded - hlen);
    unsigned char *p = buf + 8 + padded;
    for (int i = 0; i < n; i++) {
        uint64_t bytes = 0;
        shape_bytes(ts[i].shape, ts[i].ndim, ts[i].dtype, &bytes); /* checked already */
        if (bytes) memcpy(p, ts[i].data, (size_t)bytes);
        p += bytes;
    }
    autosp_status_t st = autosp_write_file_atomic(path, buf, total, err);
    mem_free(buf);
    return st;
}

autosp_status_t autosp_safetensors_write(const char *path, const autosp_st_tensor_t *tensors, int n,
                                         const char *const *meta_keys,
                                         const char *const *meta_values, int n_meta,
                                         autosp_error_t *err) {
    if (!path || n < 0 || (n > 0 && !tensors) || n_meta < 0 ||
        (n_meta > 0 && (!meta_keys || !meta_values)))
        return set_error(err, AUTOSP_ERR_INVALID,
                         "safetensors write: %s path, %d tensors, %d metadata pairs: expected a "
                         "path, n >= 0 and n_meta >= 0 with their arrays",
                         path ? "a" : "no", n, n_meta);
    json_t *root = json_object();
    uint64_t data_size = 0;
    autosp_status_t st = root ? AUTOSP_OK : nomem(err);
    if (st == AUTOSP_OK) st = header_metadata(root, path, meta_keys, meta_values, n_meta, err);
    if (st == AUTOSP_OK) st = header_tensors(root, path, tensors, n, &data_size, err);
    char *header = st == AUTOSP_OK ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (st == AUTOSP_OK && !header) st = nomem(err);
    if (st == AUTOSP_OK) st = write_bytes(path, header, tensors, n, data_size, err);
    free(header); /* jansson's allocation */
    return st;
}

/* ---- reading ---- */

typedef struct span {
    uint64_t begin, end; /* data_offsets */
    int index;           /* position in the header */
} span_t;

typedef struct reader {
    autosp_safetensors_t *f;
    autosp_error_t *err;
    const unsigned char *data; /* the data section, 8-byte aligned */
    uint64_t data_size;
} reader_t;

static autosp_status_t bad(reader_t *R, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static autosp_status_t bad(reader_t *R, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set_verror(R->err, AUTOSP_ERR_INVALID, fmt, ap);
    va_end(ap);
    return AUTOSP_ERR_INVALID;
}

/* v as compact JSON for a message ("missing" when NULL), cut to fit in buf. */
static const char *json_text(const json_t *v, char *buf, size_t n) {
    if (!v) return "missing";
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s) return "(unprintable)";
    snprintf(buf, n, "%s", s);
    if (strlen(s) >= n) memcpy(buf + n - 4, "...", 4);
    free(s);
    return buf;
}

static autosp_status_t read_dtype(reader_t *R, json_t *obj, const char *where,
                                  autosp_dtype_t *out) {
    json_t *v = json_object_get(obj, "dtype");
    const char *s = json_string_value(v);
    for (int d = 0; s && d < AUTOSP_DTYPE_COUNT; d++)
        if (strcmp(s, st_dtype_names[d]) == 0) {
            *out = (autosp_dtype_t)d;
            return AUTOSP_OK;
        }
    char buf[80];
    return bad(R, "%s: dtype is %s, expected \"F32\", \"BF16\", \"F16\", \"I32\" or \"I64\"", where,
               json_text(v, buf, sizeof buf));
}

static autosp_status_t read_shape(reader_t *R, json_t *obj, const char *where,
                                  autosp_st_tensor_t *t) {
    json_t *a = json_object_get(obj, "shape"), *d;
    char buf[80];
    if (!json_is_array(a))
        return bad(R, "%s: shape is %s, expected an array of integers", where,
                   json_text(a, buf, sizeof buf));
    if (json_array_size(a) > AUTOSP_MAX_DIMS)
        return set_error(R->err, AUTOSP_ERR_LIMIT, "%s: shape has %zu dims, limit %d", where,
                         json_array_size(a), AUTOSP_MAX_DIMS);
    size_t i;
    json_array_foreach(a, i, d) {
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return bad(R, "%s: shape[%zu] is %s, expected an integer >= 0", where, i,
                       json_text(d, buf, sizeof buf));
        t->shape[i] = json_integer_value(d);
    }
    t->ndim = (int)json_array_size(a);
    return AUTOSP_OK;
}

static autosp_status_t read_offsets(reader_t *R, json_t *obj, const char *where, span_t *s) {
    json_t *o = json_object_get(obj, "data_offsets");
    json_t *b = json_array_get(o, 0), *e = json_array_get(o, 1);
    char buf[80];
    if (json_array_size(o) != 2 || !json_is_integer(b) || !json_is_integer(e) ||
        json_integer_value(b) < 0 || json_integer_value(b) > json_integer_value(e))
        return bad(R, "%s: data_offsets is %s, expected [begin, end] with 0 <= begin <= end", where,
                   json_text(o, buf, sizeof buf));
    s->begin = (uint64_t)json_integer_value(b);
    s->end = (uint64_t)json_integer_value(e);
    if (s->end > R->data_size)
        return bad(R,
                   "%s: data_offsets [%llu,%llu] reach past the data section, which is %llu bytes",
                   where, (unsigned long long)s->begin, (unsigned long long)s->end,
                   (unsigned long long)R->data_size);
    return AUTOSP_OK;
}

/* Dtype size x element count must be exactly what data_offsets hold. */
static autosp_status_t check_size(reader_t *R, json_t *obj, const char *where,
                                  const autosp_st_tensor_t *t, const span_t *s) {
    uint64_t need;
    bool fits = shape_bytes(t->shape, t->ndim, t->dtype, &need);
    if (fits && need == s->end - s->begin) return AUTOSP_OK;
    char shape[80], bytes[32];
    if (fits)
        snprintf(bytes, sizeof bytes, "%llu", (unsigned long long)need);
    else
        snprintf(bytes, sizeof bytes, "more than 2^63");
    return bad(R, "%s: shape %s of %s is %s bytes, but data_offsets [%llu,%llu] hold %llu", where,
               json_text(json_object_get(obj, "shape"), shape, sizeof shape),
               st_dtype_names[t->dtype], bytes, (unsigned long long)s->begin,
               (unsigned long long)s->end, (unsigned long long)(s->end - s->begin));
}

static autosp_status_t read_tensor(reader_t *R, const char *name, json_t *v, autosp_st_tensor_t *t,
                                   span_t *s) {
    char where[160], buf[80];
    snprintf(where, sizeof where, "tensor \"%.128s\"", name);
    if (!json_is_object(v))
        return bad(R, "%s is %s, expected an object", where, json_text(v, buf, sizeof buf));
    const char *key;
    json_t *field;
    json_object_foreach(v, key, field) {
        if (strcmp(key, "dtype") != 0 && strcmp(key, "shape") != 0 &&
            strcmp(key, "data_offsets") != 0)
            return bad(R, "%s: unknown key \"%.64s\" (known keys: dtype, shape, data_offsets)",
                       where, key);
    }
    autosp_status_t st;
    if ((st = read_dtype(R, v, where, &t->dtype)) || (st = read_shape(R, v, where, t)) ||
        (st = read_offsets(R, v, where, s)))
        return st;
    return check_size(R, v, where, t, s);
}

static autosp_status_t read_metadata(reader_t *R, json_t *m) {
    autosp_safetensors_t *f = R->f;
    char buf[80];
    if (!json_is_object(m))
        return bad(R, "%s is %s, expected an object of strings or null", METADATA_KEY,
                   json_text(m, buf, sizeof buf));
    size_t n = json_object_size(m);
    f->meta_keys = arena_alloc(&f->arena, n * sizeof *f->meta_keys);
    f->meta_vals = arena_alloc(&f->arena, n * sizeof *f->meta_vals);
    if (!f->meta_keys || !f->meta_vals) return nomem(R->err);
    const char *key;
    json_t *v;
    json_object_foreach(m, key, v) {
        if (!json_is_string(v))
            return bad(R, "%s: \"%.128s\" is %s, expected a string", METADATA_KEY, key,
                       json_text(v, buf, sizeof buf));
        f->meta_keys[f->n_meta] = arena_strdup(&f->arena, key);
        f->meta_vals[f->n_meta] =
            arena_strndup(&f->arena, json_string_value(v), json_string_length(v));
        if (!f->meta_keys[f->n_meta] || !f->meta_vals[f->n_meta]) return nomem(R->err);
        f->n_meta++;
    }
    return AUTOSP_OK;
}

static int span_cmp(const void *a, const void *b) {
    const span_t *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

static int name_cmp(const void *a, const void *b) {
    const autosp_st_tensor_t *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* spans[k] (sorted) does not start at pos, where the tensor before it ends. */
static autosp_status_t gap_error(reader_t *R, const autosp_st_tensor_t *tmp, const span_t *spans,
                                 int k, uint64_t pos) {
    const span_t *s = &spans[k], *p = k ? &spans[k - 1] : NULL;
    char prev[200] = "the data section starts";
    if (p)
        snprintf(prev, sizeof prev, "tensor \"%.128s\" [%llu,%llu] ends", tmp[p->index].name,
                 (unsigned long long)p->begin, (unsigned long long)p->end);
    return bad(R,
               "tensor \"%.128s\": data_offsets [%llu,%llu] start at %llu, expected %llu, where %s "
               "(%s)",
               tmp[s->index].name, (unsigned long long)s->begin, (unsigned long long)s->end,
               (unsigned long long)s->begin, (unsigned long long)pos, prev,
               s->begin < pos ? "tensors must not overlap" : "the format allows no holes");
}

/* Sorts the tensors into file order, checks that they tile the data section, points each at its
 * data and builds the name index. */
static autosp_status_t place_tensors(reader_t *R, const autosp_st_tensor_t *tmp, span_t *spans,
                                     int n) {
    autosp_safetensors_t *f = R->f;
    qsort(spans, (size_t)n, sizeof *spans, span_cmp);
    uint64_t pos = 0;
    for (int k = 0; k < n; k++) {
        if (spans[k].begin != pos) return gap_error(R, tmp, spans, k, pos);
        pos = spans[k].end;
    }
    if (pos != R->data_size)
        return bad(R,
                   "the tensors end at %llu, expected %llu, where the data section ends (the "
                   "format allows no holes)",
                   (unsigned long long)pos, (unsigned long long)R->data_size);
    f->tensors = arena_alloc(&f->arena, (size_t)n * sizeof *f->tensors);
    f->by_name = arena_alloc(&f->arena, (size_t)n * sizeof *f->by_name);
    if (!f->tensors || !f->by_name) return nomem(R->err);
    for (int k = 0; k < n; k++) {
        f->tensors[k] = tmp[spans[k].index];
        f->tensors[k].data = R->data + spans[k].begin;
        f->by_name[k] = &f->tensors[k];
    }
    qsort(f->by_name, (size_t)n, sizeof *f->by_name, name_cmp);
    f->n = n;
    return AUTOSP_OK;
}

static autosp_status_t read_header(reader_t *R, json_t *root) {
    char buf[80];
    if (!json_is_object(root))
        return bad(R, "header is %s, expected a JSON object", json_text(root, buf, sizeof buf));
    json_t *meta = json_object_get(root, METADATA_KEY), *v;
    /* null means none, as the reference reader allows */
    autosp_status_t st = meta && !json_is_null(meta) ? read_metadata(R, meta) : AUTOSP_OK;
    if (st != AUTOSP_OK) return st;
    /* fewer than INT_MAX: each entry takes a few bytes of a header of at most 100 MB */
    int n = (int)(json_object_size(root) - (meta != NULL)), i = 0;
    autosp_st_tensor_t *tmp = mem_calloc((size_t)n, sizeof *tmp);
    span_t *spans = mem_calloc((size_t)n, sizeof *spans);
    if (!tmp || !spans) st = nomem(R->err);
    const char *key;
    json_object_foreach(root, key, v) {
        if (st != AUTOSP_OK) break;
        if (v == meta) continue;
        spans[i].index = i;
        st = read_tensor(R, key, v, &tmp[i], &spans[i]);
        if (st == AUTOSP_OK && !(tmp[i].name = arena_strdup(&R->f->arena, key))) st = nomem(R->err);
        i++;
    }
    if (st == AUTOSP_OK) st = place_tensors(R, tmp, spans, n);
    mem_free(tmp);
    mem_free(spans);
    return st;
}

/* The 8-byte little-endian header length, checked against the size of the whole file. */
static autosp_status_t header_length(const unsigned char *prefix, uint64_t size, uint64_t *hlen,
                                     autosp_error_t *err) {
    if (size < 8)
        return set_error(err, AUTOSP_ERR_INVALID,
                         "the file is %llu bytes, too short for the 8-byte header length",
                         (unsigned long long)size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | prefix[i];
    if (n > AUTOSP_SAFETENSORS_MAX_HEADER)
        return set_error(err, AUTOSP_ERR_LIMIT, "the header length is %llu bytes, limit %d",
                         (unsigned long long)n, AUTOSP_SAFETENSORS_MAX_HEADER);
    if (n > size - 8)
        return set_error(err, AUTOSP_ERR_INVALID,
                         "the header length is %llu bytes, but only %llu bytes follow it",
                         (unsigned long long)n, (unsigned long long)(size - 8));
    *hlen = n;
    return AUTOSP_OK;
}

/* Allocates room for a file of size bytes placed so that its data section (at 8 + hlen) starts
 * on an 8-byte boundary; returns where the file's first byte goes, or NULL. */
static unsigned char *alloc_file(void **block, uint64_t size, uint64_t hlen) {
    *block = size <= SIZE_MAX - 16 ? mem_alloc((size_t)size + 15) : NULL;
    if (!*block) return NULL;
    uintptr_t p = ((uintptr_t)*block + 7) & ~(uintptr_t)7;
    return (unsigned char *)(p + (8 - hlen % 8) % 8);
}

/* Parses a file laid out by alloc_file; takes block, which is freed on failure. */
static autosp_safetensors_t *load(void *block, const unsigned char *file, uint64_t size,
                                  uint64_t hlen, autosp_error_t *err) {
    autosp_safetensors_t *f = mem_calloc(1, sizeof *f);
    if (!f) {
        mem_free(block);
        nomem(err);
        return NULL;
    }
    f->block = block;
    reader_t R = {.f = f, .err = err, .data = file + 8 + hlen, .data_size = size - 8 - hlen};
    json_error_t jerr;
    json_t *root = json_loadb((const char *)file + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    autosp_status_t st = root ? read_header(&R, root)
                              : bad(&R, "malformed JSON header at line %d, column %d: %s",
                                    jerr.line, jerr.column, jerr.text);
    json_decref(root);
    if (st != AUTOSP_OK) {
        autosp_safetensors_close(f);
        return NULL;
    }
    set_ok(err);
    return f;
}

autosp_safetensors_t *autosp_safetensors_parse(const void *bytes, size_t size,
                                               autosp_error_t *err) {
    uint64_t hlen = 0;
    void *block;
    if (!bytes && size) size = 0; /* reported as too short */
    if (header_length(bytes, size, &hlen, err) != AUTOSP_OK) return NULL;
    unsigned char *file = alloc_file(&block, size, hlen);
    if (!file) {
        nomem(err);
        return NULL;
    }
    memcpy(file, bytes, size);
    return load(block, file, size, hlen, err);
}

/* Reads the open file fp (of *size bytes) whole into a block laid out by alloc_file, checking
 * the header length before allocating. */
static autosp_status_t read_all(FILE *fp, const char *path, void **block, unsigned char **file,
                                uint64_t *size, uint64_t *hlen, autosp_error_t *err) {
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode))
        return set_error(err, AUTOSP_ERR_IO, "cannot read \"%s\": not a regular file", path);
    unsigned char prefix[8];
    *size = (uint64_t)sb.st_size;
    size_t want = *size < 8 ? (size_t)*size : 8;
    if (fread(prefix, 1, want, fp) != want)
        return set_error(err, AUTOSP_ERR_IO, "cannot read \"%s\"", path);
    autosp_status_t st = header_length(prefix, *size, hlen, err);
    if (st != AUTOSP_OK) return st;
    if (!(*file = alloc_file(block, *size, *hlen))) return nomem(err);
    memcpy(*file, prefix, 8);
    if (fread(*file + 8, 1, (size_t)(*size - 8), fp) != *size - 8 || fgetc(fp) != EOF) {
        mem_free(*block);
        return set_error(err, AUTOSP_ERR_IO, "cannot read \"%s\": it changed while being read",
                         path);
    }
    return AUTOSP_OK;
}

autosp_safetensors_t *autosp_safetensors_open(const char *path, autosp_error_t *err) {
    autosp_error_t local;
    if (!err) err = &local;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        set_error(err, AUTOSP_ERR_IO, "cannot open \"%s\": %s", path, strerror(errno));
        return NULL;
    }
    void *block = NULL;
    unsigned char *file = NULL;
    uint64_t size = 0, hlen = 0;
    autosp_status_t st = read_all(fp, path, &block, &file, &size, &hlen, err);
    fclose(fp);
    autosp_safetensors_t *f = st == AUTOSP_OK ? load(block, file, size, hlen, err) : NULL;
    if (!f && err->status != AUTOSP_ERR_IO) { /* say which file */
        char msg[AUTOSP_ERROR_MESSAGE_MAX];
        snprintf(msg, sizeof msg, "%s", err->message);
        set_error(err, err->status, "%s: %s", path, msg);
    }
    return f;
}

int autosp_safetensors_count(const autosp_safetensors_t *f) {
    return f ? f->n : 0;
}

const autosp_st_tensor_t *autosp_safetensors_tensor(const autosp_safetensors_t *f, int i) {
    return f && i >= 0 && i < f->n ? &f->tensors[i] : NULL;
}

const autosp_st_tensor_t *autosp_safetensors_find(const autosp_safetensors_t *f, const char *name) {
    if (!f || !name) return NULL;
    int lo = 0, hi = f->n; /* the answer is in [lo, hi) */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(name, f->by_name[mid]->name);
        if (c == 0) return f->by_name[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *autosp_safetensors_metadata(const autosp_safetensors_t *f, const char *key) {
    for (int i = 0; f && key && i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_vals[i];
    return NULL;
}

void autosp_safetensors_close(autosp_safetensors_t *f) {
    if (!f) return;
    arena_free(&f->arena);
    mem_free(f->block);
    mem_free(f);
}
