/* dim.c: symbolic dims (monomials over the graph's symbols) and shapes built from them. */
#include <ctype.h>
#include <inttypes.h>
#include <string.h>

#include "ir/ir.h"

static void dim_reduce(dim_t *d) {
    int64_t g = gcd64(d->num, d->den);
    if (g > 1) {
        d->num /= g;
        d->den /= g;
    }
}

dim_t dim_const(int64_t v) {
    return (dim_t){.num = v, .den = 1};
}

dim_t dim_symbol(int sym) {
    return (dim_t){.num = 1, .den = 1, .nsym = 1, .sym = {(int8_t)sym}};
}

bool dim_eq(dim_t a, dim_t b) {
    if (a.num != b.num || a.den != b.den || a.nsym != b.nsym) return false;
    return memcmp(a.sym, b.sym, (size_t)a.nsym) == 0;
}

bool dim_is_const(dim_t a, int64_t *value) {
    if (a.nsym != 0 || a.den != 1) return false;
    if (value) *value = a.num;
    return true;
}

bool dim_scale(dim_t a, int64_t num, int64_t den, dim_t *out) {
    if (den <= 0) return false;
    int64_t n, d;
    if (__builtin_mul_overflow(a.num, num, &n) || __builtin_mul_overflow(a.den, den, &d))
        return false;
    a.num = n;
    a.den = d;
    dim_reduce(&a);
    if (a.num > AUTOSP_MAX_DIM_VALUE || a.den > AUTOSP_MAX_DIM_VALUE) return false;
    *out = a;
    return true;
}

bool dim_mul(dim_t a, dim_t b, dim_t *out) {
    if (a.nsym + b.nsym > AUTOSP_MAX_DIM_FACTORS) return false;
    dim_t r = {0};
    int i = 0, j = 0;
    while (i < a.nsym || j < b.nsym) /* merge two sorted lists */
        r.sym[r.nsym++] =
            (j >= b.nsym || (i < a.nsym && a.sym[i] <= b.sym[j])) ? a.sym[i++] : b.sym[j++];
    r.num = a.num;
    r.den = a.den;
    if (!dim_scale(r, b.num, b.den, &r)) return false;
    *out = r;
    return true;
}

int dim_eval(const autosp_graph_t *g, dim_t d, int64_t *value) {
    int64_t v = d.num;
    for (int i = 0; i < d.nsym; i++) {
        int64_t s = g->syms[d.sym[i]].value;
        if (s == 0) return 0;
        if (__builtin_mul_overflow(v, s, &v)) return EVAL_TOO_LARGE;
    }
    if (v % d.den != 0) return EVAL_FRACTION;
    v /= d.den;
    if (v > AUTOSP_MAX_NUMEL) return EVAL_TOO_LARGE;
    *value = v;
    return 1;
}

bool dim_match(const autosp_graph_t *g, dim_t a, dim_t b) {
    if (dim_eq(a, b)) return true;
    int64_t va, vb;
    return dim_eval(g, a, &va) == 1 && dim_eval(g, b, &vb) == 1 && va == vb;
}

char *dim_str(const autosp_graph_t *g, dim_t d, char *buf, size_t n) {
    size_t len = 0;
    buf[0] = '\0';
#define APPEND(...)                                                                                \
    do {                                                                                           \
        int w = snprintf(buf + len, len < n ? n - len : 0, __VA_ARGS__);                           \
        if (w > 0) len += (size_t)w;                                                               \
    } while (0)
    if (d.nsym == 0 || d.num != 1) APPEND("%" PRId64, d.num);
    for (int i = 0; i < d.nsym; i++)
        APPEND("%s%s", (i == 0 && d.num == 1) ? "" : "*", g->syms[d.sym[i]].name);
    if (d.den != 1) APPEND("/%" PRId64, d.den);
#undef APPEND
    return buf;
}

int symbol_find(const autosp_graph_t *g, const char *name, size_t len) {
    for (int i = 0; i < g->n_syms; i++)
        if (strlen(g->syms[i].name) == len && memcmp(g->syms[i].name, name, len) == 0) return i;
    return -1;
}

/* One factor: a positive integer or a declared symbol. Advances *p. */
static autosp_status_t parse_factor(const autosp_graph_t *g, const char **p, dim_t *out,
                                    const char *text, autosp_error_t *err) {
    const char *s = *p;
    if (isdigit((unsigned char)*s)) {
        int64_t v = 0;
        while (isdigit((unsigned char)*s)) {
            v = v * 10 + (*s++ - '0');
            if (v > AUTOSP_MAX_DIM_VALUE)
                return set_error(err, AUTOSP_ERR_LIMIT,
                                 "shape \"%s\": a dim exceeds the limit %lld", text,
                                 (long long)AUTOSP_MAX_DIM_VALUE);
        }
        if (v == 0)
            return set_error(err, AUTOSP_ERR_INVALID,
                             "shape \"%s\": dims must be positive, found 0", text);
        *out = dim_const(v);
    } else if (isalpha((unsigned char)*s) || *s == '_') {
        const char *start = s;
        while (isalnum((unsigned char)*s) || *s == '_') s++;
        int sym = symbol_find(g, start, (size_t)(s - start));
        if (sym < 0)
            return set_error(err, AUTOSP_ERR_INVALID,
                             "shape \"%s\": symbol \"%.*s\" is not declared in \"symbols\"", text,
                             (int)(s - start), start);
        *out = dim_symbol(sym);
    } else {
        return set_error(err, AUTOSP_ERR_INVALID,
                         "shape \"%s\": expected an integer or a symbol at \"%s\"", text, s);
    }
    *p = s;
    return AUTOSP_OK;
}

/* dim := factor ('*' factor)* ('/' integer)? */
static autosp_status_t parse_dim(const autosp_graph_t *g, const char **p, dim_t *out,
                                 const char *text, autosp_error_t *err) {
    autosp_status_t st = parse_factor(g, p, out, text, err);
    bool divided = false;
    while (st == AUTOSP_OK && (**p == '*' || **p == '/')) {
        char op = *(*p)++;
        if (divided)
            return set_error(err, AUTOSP_ERR_INVALID,
                             "shape \"%s\": a divisor must come last in a dim (write 3*S/2)", text);
        divided = op == '/';
        dim_t f;
        if ((st = parse_factor(g, p, &f, text, err)) != AUTOSP_OK) break;
        int64_t k;
        bool ok;
        if (op == '*') {
            ok = dim_mul(*out, f, out);
        } else {
            if (!dim_is_const(f, &k))
                return set_error(err, AUTOSP_ERR_INVALID,
                                 "shape \"%s\": a dim may only be divided by an integer", text);
            ok = dim_scale(*out, 1, k, out);
        }
        if (!ok)
            return set_error(err, AUTOSP_ERR_LIMIT,
                             "shape \"%s\": a dim has more than %d symbol factors or is too large",
                             text, AUTOSP_MAX_DIM_FACTORS);
    }
    return st;
}

autosp_status_t shape_parse(const autosp_graph_t *g, const char *text, shape_t *out,
                            autosp_error_t *err) {
    memset(out, 0, sizeof *out);
    const char *p = text;
    while (*p == ' ') p++;
    if (*p == '\0') return AUTOSP_OK; /* a scalar */
    for (;;) {
        if (out->ndim == AUTOSP_MAX_DIMS)
            return set_error(err, AUTOSP_ERR_LIMIT, "shape \"%s\": more than %d dims", text,
                             AUTOSP_MAX_DIMS);
        while (*p == ' ') p++;
        autosp_status_t st = parse_dim(g, &p, &out->d[out->ndim++], text, err);
        if (st != AUTOSP_OK) return st;
        while (*p == ' ') p++;
        if (*p == '\0') return AUTOSP_OK;
        if (*p++ != ',')
            return set_error(err, AUTOSP_ERR_INVALID,
                             "shape \"%s\": expected ',' between dims at \"%s\"", text, p - 1);
    }
}

char *shape_str(const autosp_graph_t *g, const shape_t *s, char *buf, size_t n) {
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < s->ndim && len < n; i++) {
        char d[128];
        int w =
            snprintf(buf + len, n - len, "%s%s", i ? "," : "", dim_str(g, s->d[i], d, sizeof d));
        if (w > 0) len += (size_t)w;
    }
    return buf;
}

bool shape_numel(const shape_t *s, dim_t *out) {
    dim_t r = dim_const(1);
    for (int i = 0; i < s->ndim; i++)
        if (!dim_mul(r, s->d[i], &r)) return false;
    *out = r;
    return true;
}

bool shape_match(const autosp_graph_t *g, const shape_t *a, const shape_t *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (!dim_match(g, a->d[i], b->d[i])) return false;
    return true;
}

int shape_eval(const autosp_graph_t *g, const shape_t *s, int64_t *dims, int64_t *numel) {
    int64_t n = 1;
    bool unbound = false;
    for (int i = 0; i < s->ndim; i++) { /* a broken dim outranks an unbound one */
        int64_t v;
        int r = dim_eval(g, s->d[i], &v);
        if (r < EVAL_UNBOUND) return r;
        if (r == EVAL_UNBOUND) {
            unbound = true;
            continue;
        }
        if (__builtin_mul_overflow(n, v, &n) || n > AUTOSP_MAX_NUMEL) return EVAL_TOO_LARGE;
        if (dims) dims[i] = v;
    }
    if (unbound) return EVAL_UNBOUND;
    if (numel) *numel = n;
    return EVAL_OK;
}
