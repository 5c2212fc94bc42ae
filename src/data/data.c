/* data.c: corpora of documents, their S-token windows, the epoch sampler and the pass-key
 * task (tools/data.h). */
#define _POSIX_C_SOURCE 200809L
#include "autosp/data.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

bool data_format_parse(const char *name, data_format_t *out) {
    static const char *const names[] = {"auto", "text", "u16", "u32"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, names[i])) {
            *out = (data_format_t)i;
            return true;
        }
    return false;
}

static uint64_t mix(uint64_t x) { /* splitmix64's finaliser */
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static uint64_t hash2(uint64_t a, uint64_t b) {
    return mix(a * 0x9E3779B97F4A7C15ull + mix(b + 0x632BE59BD9B4E019ull));
}

/* ---- reading ------------------------------------------------------------------------------ */

static int add_doc(corpus_t *c, int64_t *cap, int64_t start) {
    if (c->n_docs > 0 && c->doc_start[c->n_docs - 1] == start) return 0; /* empty document */
    if (c->n_docs + 2 > *cap) {
        int64_t *grown = realloc(c->doc_start, sizeof *grown * (size_t)(*cap = 2 * *cap + 64));
        if (!grown) return -1;
        c->doc_start = grown;
    }
    c->doc_start[c->n_docs++] = start;
    return 0;
}

/* Appends one text file: its bytes, less the lines holding only "%", which end a fortune. */
static int append_text(const char *prog, const char *path, corpus_t *c, int64_t *cap) {
    FILE *f = fopen(path, "rb");
    if (!f) return cli_usage_error(prog, "cannot open --data \"%s\": %s", path, strerror(errno));
    struct stat st;
    unsigned char *grown = NULL;
    if (fstat(fileno(f), &st) == 0) grown = realloc(c->text, (size_t)(c->n + st.st_size + 1));
    if (!grown) {
        fclose(f);
        return cli_usage_error(prog, "cannot read --data \"%s\"", path);
    }
    c->text = grown;
    int rc = add_doc(c, cap, c->n);
    char *line = NULL;
    size_t size = 0;
    for (ssize_t len; !rc && (len = getline(&line, &size, f)) > 0;) {
        if (!strcmp(line, "%\n") || !strcmp(line, "%")) {
            rc = add_doc(c, cap, c->n);
            continue;
        }
        memcpy(c->text + c->n, line, (size_t)len);
        c->n += len;
    }
    bool failed = ferror(f);
    free(line);
    fclose(f);
    if (failed) return cli_usage_error(prog, "cannot read --data \"%s\"", path);
    return rc ? cli_usage_error(prog, "out of memory reading --data \"%s\"", path) : 0;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A folder's regular files in name order, skipping symbolic links and the .dat index files of
 * a fortune folder such as /usr/share/games/fortunes. */
static int read_folder(const char *prog, const char *path, corpus_t *c, int64_t *cap) {
    DIR *d = opendir(path);
    if (!d) return cli_usage_error(prog, "cannot open --data \"%s\": %s", path, strerror(errno));
    char *names[4096];
    int n = 0, rc = 0;
    for (struct dirent *e; (e = readdir(d)) && n < 4096;) {
        char full[4096];
        size_t len = strlen(e->d_name);
        struct stat st;
        snprintf(full, sizeof full, "%s/%s", path, e->d_name);
        if (lstat(full, &st) == 0 && S_ISREG(st.st_mode) &&
            !(len > 4 && !strcmp(e->d_name + len - 4, ".dat")))
            names[n++] = strdup(full);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, by_name);
    for (int i = 0; i < n; i++) {
        if (!rc) rc = names[i] ? append_text(prog, names[i], c, cap) : -1;
        free(names[i]);
    }
    if (rc < 0) return cli_usage_error(prog, "out of memory reading --data \"%s\"", path);
    return n ? rc : cli_usage_error(prog, "--data \"%s\": the folder has no regular files", path);
}

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int64_t token_at(const corpus_t *c, int64_t i) {
    const unsigned char *p = c->tokens + i * c->width;
    switch (c->width) {
    case 1:
        return p[0];
    case 2:
        return p[0] | p[1] << 8;
    default:
        return le32(p);
    }
}

/* llm.c's .bin: 256 int32 (magic, version, token count, ...), then the tokens: magic 20240520
 * holds uint16 ids (GPT-2), 20240801 uint32 (Llama 3). Returns the id width, 0 if no such
 * header. */
static int llmc_width(const unsigned char *bytes, size_t size, int64_t *count) {
    if (size < 1024) return 0;
    uint32_t magic = le32(bytes);
    *count = le32(bytes + 8);
    return magic == 20240520u ? 2 : magic == 20240801u ? 4 : 0;
}

static int map_file(const char *prog, const char *path, corpus_t *c) {
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        return cli_usage_error(prog, "cannot open --data \"%s\": %s", path, strerror(e));
    }
    c->map_size = (size_t)st.st_size;
    c->map = c->map_size ? mmap(NULL, c->map_size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    close(fd);
    if (c->map == MAP_FAILED) {
        c->map = NULL;
        return cli_usage_error(prog, "cannot map --data \"%s\": %s", path, strerror(errno));
    }
    return 0;
}

/* A token stream: llm.c's header if there is one, else raw ids of the given width. */
static int open_stream(const char *prog, const char *path, data_format_t format, corpus_t *c) {
    int rc = map_file(prog, path, c);
    if (rc) return rc;
    int64_t count = 0;
    int header = llmc_width(c->map, c->map_size, &count);
    c->width = header ? header : format == DATA_U32 ? 4 : 2;
    if (header && format != DATA_AUTO && c->width != (format == DATA_U32 ? 4 : 2))
        return cli_usage_error(prog,
                               "--data \"%s\": llm.c header says %d-byte ids, --data-format "
                               "says %d",
                               path, c->width, format == DATA_U32 ? 4 : 2);
    c->tokens = (const unsigned char *)c->map + (header ? 1024 : 0);
    size_t body = c->map_size - (header ? 1024 : 0);
    c->n = (int64_t)(body / (size_t)c->width);
    if (body % (size_t)c->width || (header && count != c->n))
        return cli_usage_error(prog,
                               "--data \"%s\": %zu bytes of ids do not hold whole %d-byte ids%s "
                               "(header: %lld tokens)",
                               path, body, c->width, header ? " as its llm.c header says" : "",
                               (long long)count);
    return 0;
}

/* Documents of a token stream: each ends after an eot id (none: one document). */
static int split_stream(corpus_t *c, int64_t eot) {
    int64_t cap = 0;
    if (add_doc(c, &cap, 0)) return -1;
    for (int64_t i = 0; i < c->n; i++) {
        int64_t t = token_at(c, i);
        c->max_token = t > c->max_token ? t : c->max_token;
        if (t == eot && i + 1 < c->n && add_doc(c, &cap, i + 1)) return -1;
    }
    return 0;
}

static bool is_stream(const char *path, data_format_t format, bool folder) {
    if (format != DATA_AUTO) return format != DATA_TEXT;
    size_t len = strlen(path);
    return !folder && len > 4 && !strcmp(path + len - 4, ".bin");
}

int corpus_open(const char *prog, const char *path, data_format_t format, int64_t eot,
                corpus_t *c) {
    *c = (corpus_t){.width = 1};
    struct stat st;
    bool folder = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    int64_t cap = 0;
    int rc;
    if (is_stream(path, format, folder)) {
        rc = folder ? cli_usage_error(prog, "--data \"%s\": a token stream is one file", path)
                    : open_stream(prog, path, format, c);
        if (!rc && split_stream(c, eot))
            rc = cli_usage_error(prog, "out of memory reading --data \"%s\"", path);
    } else {
        rc = folder ? read_folder(prog, path, c, &cap) : append_text(prog, path, c, &cap);
        c->tokens = c->text;
        for (int64_t i = 0; !rc && i < c->n; i++)
            c->max_token = c->text[i] > c->max_token ? c->text[i] : c->max_token;
    }
    if (!rc && c->n_docs > 0 && c->doc_start[c->n_docs - 1] == c->n) c->n_docs--; /* empty tail */
    if (!rc) c->doc_start[c->n_docs] = c->n;
    return rc;
}

void corpus_close(corpus_t *c) {
    if (c->map) munmap(c->map, c->map_size);
    free(c->text);
    free(c->doc_start);
    *c = (corpus_t){0};
}

/* ---- windows --------------------------------------------------------------------------------- */

int64_t corpus_windows(const corpus_t *c, int64_t S) {
    return c->n > 1 ? (c->n - 1) / S : 0;
}

/* The document holding token i: the last d with doc_start[d] <= i. */
static int64_t doc_of(const corpus_t *c, int64_t i) {
    int64_t lo = 0, hi = c->n_docs; /* doc_start[lo] <= i < doc_start[hi] */
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (c->doc_start[mid] <= i)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

void corpus_row(const corpus_t *c, int64_t w, int64_t S, bool documents, row_t *out) {
    int64_t start = w * S, d = doc_of(c, start), first = d;
    for (int64_t s = 0; s < S; s++) {
        int64_t i = start + s;
        while (documents && i >= c->doc_start[d + 1]) d++;
        int64_t begin = documents && c->doc_start[d] > start ? c->doc_start[d] : start;
        bool label = !documents || i + 1 < c->doc_start[d + 1];
        if (out->tokens) out->tokens[s] = (int32_t)token_at(c, i);
        if (out->labels) out->labels[s] = label ? (int32_t)token_at(c, i + 1) : IGNORE_LABEL;
        if (out->positions) out->positions[s] = (int32_t)(i - begin);
        if (out->segments) out->segments[s] = (int32_t)(d - first);
    }
}

/* ---- the sampler ------------------------------------------------------------------------------
 */

int sampler_init(sampler_t *s, int64_t windows, uint64_t seed) {
    *s = (sampler_t){.windows = windows, .epoch = -1, .seed = seed};
    s->order = malloc(sizeof *s->order * (size_t)(windows + 1));
    return s->order ? 0 : -1;
}

int64_t sampler_window(sampler_t *s, int64_t i) {
    int64_t epoch = i / s->windows;
    if (epoch != s->epoch) { /* Fisher-Yates from (seed, epoch) */
        for (int64_t k = 0; k < s->windows; k++) s->order[k] = k;
        for (int64_t k = s->windows - 1; k > 0; k--) {
            int64_t j =
                (int64_t)(hash2(s->seed, (uint64_t)epoch << 40 | (uint64_t)k) % (uint64_t)(k + 1));
            int64_t t = s->order[k];
            s->order[k] = s->order[j], s->order[j] = t;
        }
        s->epoch = epoch;
    }
    return s->order[i % s->windows];
}

void sampler_free(sampler_t *s) {
    free(s->order);
    s->order = NULL;
}

/* ---- the pass-key task ------------------------------------------------------------------------
 */

int64_t passkey_answer_start(int64_t S) {
    return S - 1 - PASSKEY_DIGITS;
}

/* Distinct digits: an answer digit then names its successor without ambiguity. */
static void draw_key(uint64_t *state, char key[PASSKEY_DIGITS]) {
    char pool[10] = {'0', '1', '2', '3', '4', '5', '6', '7', '8', '9'};
    for (int k = 0; k < PASSKEY_DIGITS; k++) {
        int j = k + (int)(mix(++*state) % (uint64_t)(10 - k));
        char t = pool[k];
        pool[k] = pool[j], pool[j] = t;
        key[k] = pool[k];
    }
}

/* The filler is the classic pass-key one (Mohtashami and Jaggi, 2023): one sentence over and
 * over, from a random phase. Random letters learn too, but the noise they add to every
 * attention output grows with S and so does the training it takes (see data.h). */
int64_t passkey_row(uint64_t seed, int64_t i, int64_t S, row_t *out) {
    static const char STATEMENT[] = "key=",
                      FILLER[] = "The grass is green. The sky is blue. The sun is yellow. "
                                 "Here we go. There and back again. ";
    enum { MARK = sizeof STATEMENT - 1, SAID = MARK + PASSKEY_DIGITS + 1 };
    enum { PERIOD = sizeof FILLER - 1 };
    uint64_t state = hash2(seed, (uint64_t)i);
    char key[PASSKEY_DIGITS];
    draw_key(&state, key);
    int64_t question = S - MARK - PASSKEY_DIGITS; /* "key=D..D" ends the row */
    int64_t at = (int64_t)(mix(++state) % (uint64_t)(question - SAID + 1));
    int64_t phase = (int64_t)(mix(++state) % PERIOD);
    char *text = malloc((size_t)S + 1);
    if (!text) abort(); /* S bytes: the batch itself is larger */
    for (int64_t s = 0; s < S; s++) text[s] = FILLER[(s + phase) % PERIOD];
    memcpy(text + at, STATEMENT, MARK);
    memcpy(text + at + MARK, key, PASSKEY_DIGITS);
    text[at + SAID - 1] = ' ';
    memcpy(text + question, STATEMENT, MARK);
    memcpy(text + question + MARK, key, PASSKEY_DIGITS);
    int64_t answer = passkey_answer_start(S);
    for (int64_t s = 0; s < S; s++) {
        bool asked = s >= answer && s < S - 1;
        if (out->tokens) out->tokens[s] = (unsigned char)text[s];
        if (out->labels) out->labels[s] = asked ? (unsigned char)text[s + 1] : IGNORE_LABEL;
        if (out->positions) out->positions[s] = (int32_t)s;
        if (out->segments) out->segments[s] = 0;
    }
    free(text);
    return at + MARK;
}
