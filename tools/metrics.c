/* metrics.c: the JSON Lines metrics file and its SVG loss curve (metrics.h). */
#include "metrics.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

FILE *metrics_open(const char *path, bool append, autosp_error_t *err) {
    FILE *f = fopen(path, append ? "a" : "w");
    if (!f) {
        snprintf(err->message, sizeof err->message, "cannot write metrics \"%s\": %s", path,
                 strerror(errno));
        err->status = AUTOSP_ERR_IO;
    }
    return f;
}

void metrics_write(FILE *f, const metric_row_t *r) {
    fprintf(f,
            "{\"step\": %lld, \"loss\": %.7g, \"lr\": %.7g, \"grad_norm\": %.7g, "
            "\"tokens_per_s\": %.1f, \"gflops\": %.3f, \"step_ms\": %.3f, \"comm_share\": %.4f, "
            "\"mem_bytes\": %lld}\n",
            (long long)r->step, r->loss, r->lr, r->grad_norm, r->tokens_per_s, r->gflops,
            r->step_ms, r->comm_share, (long long)r->mem_bytes);
    fflush(f);
}

typedef struct curve {
    double *step, *loss;
    int n, cap;
} curve_t;

static autosp_status_t fail(autosp_error_t *err, autosp_status_t st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static autosp_status_t fail(autosp_error_t *err, autosp_status_t st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return err->status = st;
}

/* Every line's step and loss, in file order. */
static autosp_status_t read_curve(const char *path, curve_t *c, autosp_error_t *err) {
    FILE *f = fopen(path, "r");
    if (!f)
        return fail(err, AUTOSP_ERR_IO, "cannot read metrics \"%s\": %s", path, strerror(errno));
    char line[4096];
    autosp_status_t st = AUTOSP_OK;
    for (long no = 1; st == AUTOSP_OK && fgets(line, sizeof line, f); no++) {
        json_t *o = json_loads(line, 0, NULL);
        json_t *step = json_object_get(o, "step"), *loss = json_object_get(o, "loss");
        if (!json_is_integer(step) || !json_is_number(loss)) {
            st = fail(err, AUTOSP_ERR_INVALID,
                      "metrics \"%s\", line %ld: expected an object with \"step\" and \"loss\"",
                      path, no);
        } else if (c->n == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 256;
            double *s = realloc(c->step, sizeof *s * (size_t)c->cap);
            double *l = s ? realloc(c->loss, sizeof *l * (size_t)c->cap) : NULL;
            if (s) c->step = s;
            if (l) c->loss = l;
            if (!s || !l) st = fail(err, AUTOSP_ERR_NOMEM, "out of memory reading \"%s\"", path);
        }
        if (st == AUTOSP_OK) {
            c->step[c->n] = (double)json_integer_value(step);
            c->loss[c->n++] = json_number_value(loss);
        }
        json_decref(o);
    }
    fclose(f);
    return st;
}

/* Appends printf output to a growing string; false when out of memory. */
static bool put(char **s, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool put(char **s, size_t *len, size_t *cap, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(*s ? *s + *len : NULL, *s ? *cap - *len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return false;
        if (*s && *len + (size_t)n < *cap) {
            *len += (size_t)n;
            return true;
        }
        size_t want = (*cap ? *cap * 2 : 4096) + (size_t)n;
        char *grown = realloc(*s, want);
        if (!grown) return false;
        *s = grown;
        *cap = want;
    }
}

enum { W = 800, H = 420, LEFT = 70, RIGHT = 20, TOP = 40, BOTTOM = 50 };

/* Axes with the first, middle and last value of each range, the title, and the curve. */
/* title with &, < and > escaped for XML, cut to fit */
static void escape(const char *title, char *out, size_t n) {
    size_t k = 0;
    for (; *title && k + 6 < n; title++) {
        const char *e = *title == '&'   ? "&amp;"
                        : *title == '<' ? "&lt;"
                        : *title == '>' ? "&gt;"
                                        : NULL;
        if (e)
            k += (size_t)snprintf(out + k, n - k, "%s", e);
        else
            out[k++] = *title;
    }
    out[k] = '\0';
}

static bool draw(const curve_t *c, const char *raw_title, char **s, size_t *len, size_t *cap) {
    char title[512];
    escape(raw_title, title, sizeof title);
    double s0 = c->step[0], s1 = c->step[0], l0 = c->loss[0], l1 = c->loss[0];
    for (int i = 0; i < c->n; i++) {
        s0 = fmin(s0, c->step[i]), s1 = fmax(s1, c->step[i]);
        l0 = fmin(l0, c->loss[i]), l1 = fmax(l1, c->loss[i]);
    }
    if (s1 == s0) s1 = s0 + 1;
    if (l1 == l0) l1 = l0 + 1;
    double pw = W - LEFT - RIGHT, ph = H - TOP - BOTTOM;
    bool ok = put(s, len, cap,
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                  "font-family=\"sans-serif\" font-size=\"12\">\n"
                  "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
                  "<text x=\"%d\" y=\"24\" font-size=\"15\">%s</text>\n"
                  "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n"
                  "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n"
                  "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">step</text>\n"
                  "<text x=\"16\" y=\"%d\" transform=\"rotate(-90 16 %d)\" "
                  "text-anchor=\"middle\">loss</text>\n",
                  W, H, LEFT, title, LEFT, TOP, LEFT, H - BOTTOM, LEFT, H - BOTTOM, W - RIGHT,
                  H - BOTTOM, LEFT + W / 2 - RIGHT, H - 12, TOP + H / 3, TOP + H / 3);
    for (int k = 0; ok && k <= 2; k++) {
        double x = LEFT + pw * k / 2, y = H - BOTTOM - ph * k / 2;
        ok = put(s, len, cap,
                 "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.0f</text>\n"
                 "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.3f</text>\n",
                 x, H - BOTTOM + 18, s0 + (s1 - s0) * k / 2, LEFT - 6, y + 4,
                 l0 + (l1 - l0) * k / 2);
    }
    ok = ok && put(s, len, cap,
                   "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"");
    for (int i = 0; ok && i < c->n; i++)
        ok = put(s, len, cap, "%.1f,%.1f ", LEFT + pw * (c->step[i] - s0) / (s1 - s0),
                 H - BOTTOM - ph * (c->loss[i] - l0) / (l1 - l0));
    return ok && put(s, len, cap, "\"/>\n</svg>\n");
}

autosp_status_t metrics_plot(const char *jsonl, const char *svg, const char *title,
                             autosp_error_t *err) {
    curve_t c = {0};
    autosp_status_t st = read_curve(jsonl, &c, err);
    if (st == AUTOSP_OK && c.n == 0)
        st = fail(err, AUTOSP_ERR_INVALID, "metrics \"%s\" has no rows to plot", jsonl);
    char *text = NULL;
    size_t len = 0, cap = 0;
    if (st == AUTOSP_OK && !draw(&c, title, &text, &len, &cap))
        st = fail(err, AUTOSP_ERR_NOMEM, "out of memory drawing \"%s\"", svg);
    if (st == AUTOSP_OK) st = autosp_write_file_atomic(svg, text, len, err);
    free(text);
    free(c.step);
    free(c.loss);
    return st;
}
