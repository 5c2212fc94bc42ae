/* data.c: corpora of documents, their S-token windows, the epoch sampler, batches and the
 * pass-key task (include/autosp/data.h). */
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

#include "base/base.h"

struct autosp_corpus {
    const unsigned char *tokens; /* n ids of `width` bytes each, little-endian */
    int width;                   /* 1: bytes of text, 2 or 4: a token stream */
    int64_t n;
    int64_t *doc_start; /* n_docs + 1 entries: document d is [doc_start[d], doc_start[d + 1]) */
    int64_t n_docs, doc_cap;
    int64_t max_token;
    void *map; /* the mmap'ed file of a token stream, or NULL */
    size_t map_size;
    unsigned char *text; /* the bytes read, for text */
    int64_t text_cap;
    char *path; /* for messages */
};

static const char *const FORMAT_NAMES[] = {
    [AUTOSP_DATA_AUTO] = "auto",
    [AUTOSP_DATA_TEXT] = "text",
    [AUTOSP_DATA_U16] = "u16",
    [AUTOSP_DATA_U32] = "u32",
};

autosp_status_t autosp_data_format_parse(const char *name, autosp_data_format_t *out,
                                         autosp_error_t *err) {
    for (size_t i = 0; i < ARRAY_LEN(FORMAT_NAMES); i++)
        if (!strcmp(name, FORMAT_NAMES[i])) {
            *out = (autosp_data_format_t)i;
            return set_ok(err);
        }
    return set_error(err, AUTOSP_ERR_INVALID,
                     "unknown data format \"%.128s\": expected auto, text, u16 or u32", name);
}

static uint64_t mix(uint64_t x) { /* splitmix64's finaliser */
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static uint64_t hash2(uint64_t a, uint64_t b) {
    return mix(a * 0x9E3779B97F4A7C15ull + mix(b + 0x632BE59BD9B4E019ull));
}

/* ---- reading --------------------------------------------------------------------------------- */

/* A document starts at token `start` (nothing if the last one starts there too: it is empty). */
static bool add_doc(autosp_corpus_t *c, int64_t start) {
    if (c->n_docs > 0 && c->doc_start[c->n_docs - 1] == start) return true;
    if (c->n_docs + 2 > c->doc_cap) {
        int64_t cap = 2 * c->doc_cap + 64;
        int64_t *grown = mem_realloc(c->doc_start, sizeof *grown * (size_t)cap);
        if (!grown) return false;
        c->doc_start = grown, c->doc_cap = cap;
    }
    c->doc_start[c->n_docs++] = start;
    return true;
}

/* Room for `need` bytes of text: exactly that many (the size of the files), or, when a file
 * holds more than it said, twice as many. */
static bool reserve_text(autosp_corpus_t *c, int64_t need, bool exact) {
    if (need <= c->text_cap) return true;
    int64_t cap = exact || need > 2 * c->text_cap ? need : 2 * c->text_cap;
    unsigned char *grown = mem_realloc(c->text, (size_t)cap);
    if (!grown) return false;
    c->text = grown, c->text_cap = cap;
    return true;
}

/* Appends one text file: its bytes, less the lines holding only "%", which end a fortune. */
static autosp_status_t append_text(const char *path, autosp_corpus_t *c, autosp_error_t *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return set_error(err, AUTOSP_ERR_IO, "cannot open \"%s\": %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        int e = errno;
        fclose(f);
        return set_error(err, AUTOSP_ERR_IO, "cannot read \"%s\": %s", path, strerror(e));
    }
    bool ok = reserve_text(c, c->n + st.st_size, true) && add_doc(c, c->n);
    char *line = NULL;
    size_t size = 0;
    for (ssize_t len; ok && (len = getline(&line, &size, f)) > 0;) {
        if (!strcmp(line, "%\n") || !strcmp(line, "%")) {
            ok = add_doc(c, c->n);
        } else if ((ok = reserve_text(c, c->n + len, false))) {
            memcpy(c->text + c->n, line, (size_t)len);
            c->n += len;
        }
    }
    int failed = ferror(f) ? errno : 0;
    free(line); /* getline's, from libc */
    fclose(f);
    if (failed)
        return set_error(err, AUTOSP_ERR_IO, "cannot read \"%s\": %s", path, strerror(failed));
    return ok ? AUTOSP_OK : set_error(err, AUTOSP_ERR_NOMEM, "out of memory reading \"%s\"", path);
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A folder's regular files in name order, skipping symbolic links and the .dat index files of
 * a fortune folder such as /usr/share/games/fortunes. */
static autosp_status_t read_folder(const char *path, autosp_corpus_t *c, autosp_error_t *err) {
    enum { MAX_FILES = 4096 };
    DIR *d = opendir(path);
    if (!d) return set_error(err, AUTOSP_ERR_IO, "cannot open \"%s\": %s", path, strerror(errno));
    arena_t names = {0};
    char *list[MAX_FILES];
    int n = 0;
    bool ok = true;
    for (struct dirent *e; ok && (e = readdir(d)) && n < MAX_FILES;) {
        char full[4096];
        size_t len = strlen(e->d_name);
        struct stat st;
        snprintf(full, sizeof full, "%s/%s", path, e->d_name);
        if (lstat(full, &st) == 0 && S_ISREG(st.st_mode) &&
            !(len > 4 && !strcmp(e->d_name + len - 4, ".dat")))
            ok = (list[n++] = arena_strdup(&names, full)) != NULL;
    }
    closedir(d);
    autosp_status_t rc =
        !ok  ? set_error(err, AUTOSP_ERR_NOMEM, "out of memory reading \"%s\"", path)
        : !n ? set_error(err, AUTOSP_ERR_INVALID, "\"%s\": the folder has no regular files", path)
             : AUTOSP_OK;
    if (!rc) qsort(list, (size_t)n, sizeof *list, by_name);
    for (int i = 0; i < n && !rc; i++) rc = append_text(list[i], c, err);
    arena_free(&names);
    return rc;
}

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int64_t token_at(const autosp_corpus_t *c, int64_t i) {
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

static autosp_status_t map_file(const char *path, autosp_corpus_t *c, autosp_error_t *err) {
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        return set_error(err, AUTOSP_ERR_IO, "cannot open \"%s\": %s", path, strerror(e));
    }
    c->map_size = (size_t)st.st_size;
    c->map = c->map_size ? mmap(NULL, c->map_size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    int e = errno;
    close(fd);
    if (c->map == MAP_FAILED) {
        c->map = NULL;
        return set_error(err, AUTOSP_ERR_IO, "cannot map \"%s\": %s", path, strerror(e));
    }
    return AUTOSP_OK;
}

/* A token stream: llm.c's header if there is one, else raw ids of the given width. */
static autosp_status_t open_stream(const char *path, autosp_data_format_t format,
                                   autosp_corpus_t *c, autosp_error_t *err) {
    autosp_status_t rc = map_file(path, c, err);
    if (rc) return rc;
    int64_t count = 0;
    int header = llmc_width(c->map, c->map_size, &count);
    int want = format == AUTOSP_DATA_U32 ? 4 : 2;
    c->width = header ? header : want;
    if (header && format != AUTOSP_DATA_AUTO && c->width != want)
        return set_error(err, AUTOSP_ERR_INVALID,
                         "\"%s\": llm.c header says %d-byte ids, the format %s says %d", path,
                         c->width, FORMAT_NAMES[format], want);
    size_t skip = header ? 1024 : 0, body = c->map_size - skip;
    c->tokens = c->map ? (const unsigned char *)c->map + skip : NULL;
    c->n = (int64_t)(body / (size_t)c->width);
    if (body % (size_t)c->width)
        return set_error(err, AUTOSP_ERR_INVALID,
                         "\"%s\": %zu bytes%s do not hold whole %d-byte ids", path, body,
                         header ? " after its llm.c header" : "", c->width);
    if (header && count != c->n)
        return set_error(err, AUTOSP_ERR_INVALID,
                         "\"%s\": its llm.c header: %lld tokens, but the %zu bytes after it hold "
                         "%lld %d-byte ids",
                         path, (long long)count, body, (long long)c->n, c->width);
    return AUTOSP_OK;
}

/* Documents of a token stream: each ends after an eot id (none: one document). */
static bool split_stream(autosp_corpus_t *c, int64_t eot) {
    if (!add_doc(c, 0)) return false;
    for (int64_t i = 0; i < c->n; i++) {
        int64_t t = token_at(c, i);
        c->max_token = t > c->max_token ? t : c->max_token;
        if (t == eot && i + 1 < c->n && !add_doc(c, i + 1)) return false;
    }
    return true;
}

static bool is_stream(const char *path, autosp_data_format_t format, bool folder) {
    if (format != AUTOSP_DATA_AUTO) return format != AUTOSP_DATA_TEXT;
    size_t len = strlen(path);
    return !folder && len > 4 && !strcmp(path + len - 4, ".bin");
}

static autosp_status_t read_corpus(const char *path, autosp_data_format_t format, int64_t eot,
                                   autosp_corpus_t *c, autosp_error_t *err) {
    struct stat st;
    bool folder = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    autosp_status_t rc;
    if (is_stream(path, format, folder)) {
        rc = folder ? set_error(err, AUTOSP_ERR_INVALID,
                                "\"%s\" is a folder: a token stream is one file", path)
                    : open_stream(path, format, c, err);
        if (!rc && !split_stream(c, eot))
            rc = set_error(err, AUTOSP_ERR_NOMEM, "out of memory reading \"%s\"", path);
    } else {
        rc = folder ? read_folder(path, c, err) : append_text(path, c, err);
        c->tokens = c->text;
        for (int64_t i = 0; !rc && i < c->n; i++)
            c->max_token = c->text[i] > c->max_token ? c->text[i] : c->max_token;
    }
    if (!rc && c->n == 0) rc = set_error(err, AUTOSP_ERR_INVALID, "\"%s\" holds no tokens", path);
    if (rc) return rc;
    /* n >= 1 and no two documents start at the same token: only the last may be empty */
    if (c->doc_start[c->n_docs - 1] == c->n) c->n_docs--;
    c->doc_start[c->n_docs] = c->n;
    return AUTOSP_OK;
}

autosp_corpus_t *autosp_corpus_open(const char *path, autosp_data_format_t format, int64_t eot,
                                    autosp_error_t *err) {
    if (!path) {
        set_error(err, AUTOSP_ERR_INVALID, "autosp_corpus_open: path is NULL");
        return NULL;
    }
    if ((unsigned)format >= ARRAY_LEN(FORMAT_NAMES)) {
        set_error(err, AUTOSP_ERR_INVALID, "\"%s\": unknown data format %d", path, (int)format);
        return NULL;
    }
    autosp_corpus_t *c = mem_calloc(1, sizeof *c);
    size_t len = strlen(path);
    if (c) c->path = mem_alloc(len + 1);
    if (!c || !c->path) {
        mem_free(c);
        set_error(err, AUTOSP_ERR_NOMEM, "out of memory reading \"%s\"", path);
        return NULL;
    }
    memcpy(c->path, path, len + 1);
    c->width = 1;
    if (read_corpus(path, format, eot, c, err) != AUTOSP_OK) {
        autosp_corpus_close(c);
        return NULL;
    }
    set_ok(err);
    return c;
}

void autosp_corpus_close(autosp_corpus_t *c) {
    if (!c) return;
    if (c->map) munmap(c->map, c->map_size);
    mem_free(c->text);
    mem_free(c->doc_start);
    mem_free(c->path);
    mem_free(c);
}

int64_t autosp_corpus_num_tokens(const autosp_corpus_t *c) {
    return c->n;
}

int64_t autosp_corpus_num_documents(const autosp_corpus_t *c) {
    return c->n_docs;
}

int64_t autosp_corpus_max_token(const autosp_corpus_t *c) {
    return c->max_token;
}

int autosp_corpus_width(const autosp_corpus_t *c) {
    return c->width;
}

int64_t autosp_corpus_token(const autosp_corpus_t *c, int64_t i) {
    AUTOSP_ASSERT(i >= 0 && i < c->n);
    return token_at(c, i);
}

int64_t autosp_corpus_document_start(const autosp_corpus_t *c, int64_t d) {
    AUTOSP_ASSERT(d >= 0 && d <= c->n_docs);
    return c->doc_start[d];
}

/* ---- windows --------------------------------------------------------------------------------- */

int64_t autosp_corpus_windows(const autosp_corpus_t *c, int64_t S) {
    AUTOSP_ASSERT(S >= 1);
    return c->n > 1 ? (c->n - 1) / S : 0;
}

/* The document holding token i: the last d with doc_start[d] <= i. */
static int64_t doc_of(const autosp_corpus_t *c, int64_t i) {
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

void autosp_corpus_row(const autosp_corpus_t *c, int64_t w, int64_t S, bool documents,
                       const autosp_row_t *out) {
    AUTOSP_ASSERT(w >= 0 && w < autosp_corpus_windows(c, S));
    int64_t start = w * S, d = doc_of(c, start), first = d;
    for (int64_t s = 0; s < S; s++) {
        int64_t i = start + s;
        while (documents && i >= c->doc_start[d + 1]) d++;
        int64_t begin = documents && c->doc_start[d] > start ? c->doc_start[d] : start;
        bool label = !documents || i + 1 < c->doc_start[d + 1];
        if (out->tokens) out->tokens[s] = (int32_t)token_at(c, i);
        if (out->labels) out->labels[s] = label ? (int32_t)token_at(c, i + 1) : AUTOSP_IGNORE_LABEL;
        if (out->positions) out->positions[s] = (int32_t)(i - begin);
        if (out->segments) out->segments[s] = (int32_t)(d - first);
    }
}

/* ---- the sampler ----------------------------------------------------------------------------- */

struct autosp_sampler {
    int64_t windows, epoch; /* epoch -1: no permutation made yet */
    uint64_t seed;
    int64_t order[]; /* the windows of `epoch`, in order */
};

autosp_sampler_t *autosp_sampler_new(int64_t windows, uint64_t seed, autosp_error_t *err) {
    if (windows < 1) {
        set_error(err, AUTOSP_ERR_INVALID, "a sampler needs at least one window, got %lld",
                  (long long)windows);
        return NULL;
    }
    autosp_sampler_t *s = NULL;
    if ((uint64_t)windows < (SIZE_MAX - sizeof *s) / sizeof(int64_t))
        s = mem_alloc(sizeof *s + sizeof(int64_t) * (size_t)windows);
    if (!s) {
        set_error(err, AUTOSP_ERR_NOMEM, "out of memory for a sampler of %lld windows",
                  (long long)windows);
        return NULL;
    }
    s->windows = windows, s->epoch = -1, s->seed = seed;
    set_ok(err);
    return s;
}

void autosp_sampler_free(autosp_sampler_t *s) {
    mem_free(s);
}

int64_t autosp_sampler_windows(const autosp_sampler_t *s) {
    return s->windows;
}

int64_t autosp_sampler_window(autosp_sampler_t *s, int64_t i) {
    AUTOSP_ASSERT(i >= 0);
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

/* ---- batches --------------------------------------------------------------------------------- */

/* The shape of a batch and of its row range, for the function `fn`. */
static autosp_status_t check_batch(const char *fn, const autosp_batch_t *out, int64_t first,
                                   int64_t min_S, autosp_error_t *err) {
    if (!out) return set_error(err, AUTOSP_ERR_INVALID, "%s: the batch is NULL", fn);
    if (out->B < 1 || out->S < min_S)
        return set_error(err, AUTOSP_ERR_INVALID,
                         "%s: batch of B = %lld, S = %lld: expected B >= 1 "
                         "and S >= %lld",
                         fn, (long long)out->B, (long long)out->S, (long long)min_S);
    if (out->B > INT64_MAX / out->S)
        return set_error(err, AUTOSP_ERR_LIMIT, "%s: batch of B = %lld, S = %lld is too large", fn,
                         (long long)out->B, (long long)out->S);
    if (first < 0 || first > INT64_MAX - out->B)
        return set_error(err, AUTOSP_ERR_INVALID, "%s: first row %lld is out of range", fn,
                         (long long)first);
    return AUTOSP_OK;
}

/* Row b of a batch: S entries of each array that is there. */
static autosp_row_t batch_row(const autosp_batch_t *batch, int64_t b) {
    int64_t at = b * batch->S;
    return (autosp_row_t){
        .tokens = batch->tokens ? batch->tokens + at : NULL,
        .labels = batch->labels ? batch->labels + at : NULL,
        .positions = batch->positions ? batch->positions + at : NULL,
        .segments = batch->segments ? batch->segments + at : NULL,
    };
}

autosp_status_t autosp_batch_fill(const autosp_corpus_t *c, autosp_sampler_t *s, int64_t first,
                                  bool documents, const autosp_batch_t *out, autosp_error_t *err) {
    if (!c || !s)
        return set_error(err, AUTOSP_ERR_INVALID, "autosp_batch_fill: the %s is NULL",
                         c ? "sampler" : "corpus");
    autosp_status_t rc = check_batch("autosp_batch_fill", out, first, 1, err);
    if (rc) return rc;
    int64_t windows = autosp_corpus_windows(c, out->S);
    if (s->windows > windows)
        return set_error(err, AUTOSP_ERR_INVALID,
                         "autosp_batch_fill: the sampler has %lld windows, but \"%s\" has %lld "
                         "of S = %lld tokens",
                         (long long)s->windows, c->path, (long long)windows, (long long)out->S);
    for (int64_t b = 0; b < out->B; b++) {
        autosp_row_t r = batch_row(out, b);
        autosp_corpus_row(c, autosp_sampler_window(s, first + b), out->S, documents, &r);
    }
    return set_ok(err);
}

/* ---- the pass-key task ----------------------------------------------------------------------- */

int64_t autosp_passkey_answer_start(int64_t S) {
    return S - 1 - AUTOSP_PASSKEY_DIGITS;
}

/* Distinct digits: an answer digit then names its successor without ambiguity. */
static void draw_key(uint64_t *state, char key[AUTOSP_PASSKEY_DIGITS]) {
    char pool[10] = {'0', '1', '2', '3', '4', '5', '6', '7', '8', '9'};
    for (int k = 0; k < AUTOSP_PASSKEY_DIGITS; k++) {
        int j = k + (int)(mix(++*state) % (uint64_t)(10 - k));
        char t = pool[k];
        pool[k] = pool[j], pool[j] = t;
        key[k] = pool[k];
    }
}

/* The filler is the classic pass-key one (Mohtashami and Jaggi, 2023): one sentence over and
 * over, from a random phase. Random letters learn too, but the noise they add to every
 * attention output grows with S and so does the training it takes (see data.h). */
static const char STATEMENT[] = "key=",
                  FILLER[] = "The grass is green. The sky is blue. The sun is yellow. "
                             "Here we go. There and back again. ";
enum { MARK = sizeof STATEMENT - 1, SAID = MARK + AUTOSP_PASSKEY_DIGITS + 1 };
enum { PERIOD = sizeof FILLER - 1 };

/* One pass-key row's text: the filler from `phase`, "key=DDDDDDDDDD " at `at`, and from
 * `question` to the end "key=DDDDDDDDDD". */
typedef struct passkey {
    char key[AUTOSP_PASSKEY_DIGITS];
    int64_t at, question, phase;
} passkey_t;

static unsigned char passkey_byte(const passkey_t *p, int64_t s) {
    int64_t k = s >= p->question                 ? s - p->question
                : s >= p->at && s < p->at + SAID ? s - p->at
                                                 : -1;
    if (k < 0) return (unsigned char)FILLER[(s + p->phase) % PERIOD];
    return (unsigned char)(k < MARK                           ? STATEMENT[k]
                           : k < MARK + AUTOSP_PASSKEY_DIGITS ? p->key[k - MARK]
                                                              : ' ');
}

int64_t autosp_passkey_row(uint64_t seed, int64_t i, int64_t S, const autosp_row_t *out) {
    AUTOSP_ASSERT(S >= AUTOSP_PASSKEY_MIN_SEQ && i >= 0);
    uint64_t state = hash2(seed, (uint64_t)i);
    passkey_t p;
    draw_key(&state, p.key);
    p.question = S - MARK - AUTOSP_PASSKEY_DIGITS; /* "key=D..D" ends the row */
    p.at = (int64_t)(mix(++state) % (uint64_t)(p.question - SAID + 1));
    p.phase = (int64_t)(mix(++state) % PERIOD);
    int64_t answer = autosp_passkey_answer_start(S);
    for (int64_t s = 0; s < S; s++) {
        bool asked = s >= answer && s < S - 1;
        if (out->tokens) out->tokens[s] = passkey_byte(&p, s);
        if (out->labels) out->labels[s] = asked ? passkey_byte(&p, s + 1) : AUTOSP_IGNORE_LABEL;
        if (out->positions) out->positions[s] = (int32_t)s;
        if (out->segments) out->segments[s] = 0;
    }
    return p.at + MARK;
}

autosp_status_t autosp_batch_fill_passkey(uint64_t seed, int64_t first, const autosp_batch_t *out,
                                          int64_t *at, autosp_error_t *err) {
    autosp_status_t rc =
        check_batch("autosp_batch_fill_passkey", out, first, AUTOSP_PASSKEY_MIN_SEQ, err);
    if (rc) return rc;
    for (int64_t b = 0; b < out->B; b++) {
        autosp_row_t r = batch_row(out, b);
        int64_t said = autosp_passkey_row(seed, first + b, out->S, &r);
        if (at) at[b] = said;
    }
    return set_ok(err);
}
