/* autosp-train's data (tools/data.c): fortune files split into documents, token streams (raw
 * and llm.c's header) split at an end-of-text id, windows with segment ids, restarted positions
 * and no label across a document boundary, the epoch sampler, the pass-key rows, and the
 * errors of unreadable or malformed data. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "autosp/data.h"
#include "test_util.h"

static char dir[64];

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/test_data.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

static const char *write_file(const char *name, const void *bytes, size_t n) {
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    fclose(f);
    return path;
}

/* stderr of the call into a buffer, to check the message of an error. */
static int open_quietly(const char *path, data_format_t format, int64_t eot, corpus_t *c,
                        char *message, size_t size) {
    fflush(stderr);
    int saved = dup(2);
    FILE *tmp = tmpfile();
    dup2(fileno(tmp), 2);
    int rc = corpus_open("test", path, format, eot, c);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(message, 1, size - 1, tmp);
    message[n] = '\0';
    fclose(tmp);
    return rc;
}

static void fortune_documents(void **state) {
    (void)state;
    const char text[] = "ab\n%\ncd\n%\n%\nefg\n";
    corpus_t c;
    assert_int_equal(corpus_open("test", write_file("f", text, strlen(text)), DATA_AUTO, -1, &c),
                     0);
    assert_int_equal(c.n, 10); /* "ab\ncd\nefg\n": the "%" lines are dropped */
    assert_memory_equal(c.text, "ab\ncd\nefg\n", 10);
    assert_int_equal(c.n_docs, 3); /* the empty entry between two "%" is no document */
    assert_int_equal(c.doc_start[1], 3);
    assert_int_equal(c.doc_start[2], 6);
    assert_int_equal(c.doc_start[3], 10);
    assert_int_equal(c.max_token, 'g');

    /* window 1 of S = 4: tokens 4..7 = "d\nef", labels up to token 8 */
    int32_t tok[4], lab[4], pos[4], seg[4];
    row_t r = {tok, lab, pos, seg};
    assert_int_equal(corpus_windows(&c, 4), 2);
    corpus_row(&c, 1, 4, true, &r);
    int32_t want_tok[4] = {'d', '\n', 'e', 'f'}, want_lab[4] = {'\n', IGNORE_LABEL, 'f', 'g'};
    int32_t want_pos[4] = {0, 1, 0, 1}, want_seg[4] = {0, 0, 1, 1};
    assert_memory_equal(tok, want_tok, sizeof tok);
    assert_memory_equal(lab, want_lab, sizeof lab);
    assert_memory_equal(pos, want_pos, sizeof pos);
    assert_memory_equal(seg, want_seg, sizeof seg);

    /* without segment ids the stream runs on: labels cross, positions count the window */
    corpus_row(&c, 1, 4, false, &r);
    int32_t flat_lab[4] = {'\n', 'e', 'f', 'g'}, flat_pos[4] = {0, 1, 2, 3};
    assert_memory_equal(lab, flat_lab, sizeof lab);
    assert_memory_equal(pos, flat_pos, sizeof pos);
    corpus_close(&c);
}

static void folder_in_name_order(void **state) {
    (void)state;
    char sub[128], path[160];
    snprintf(sub, sizeof sub, "%s/folder", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    const char *files[][2] = {{"b", "BB"}, {"a", "A"}, {"a.dat", "index"}};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", sub, files[i][0]);
        FILE *f = fopen(path, "wb");
        fputs(files[i][1], f);
        fclose(f);
    }
    corpus_t c;
    assert_int_equal(corpus_open("test", sub, DATA_AUTO, -1, &c), 0);
    assert_int_equal(c.n, 3);
    assert_memory_equal(c.text, "ABB", 3); /* a, then b; a.dat skipped */
    assert_int_equal(c.n_docs, 2);         /* every file is a document */
    corpus_close(&c);
}

static void token_streams(void **state) {
    (void)state;
    uint16_t ids[7] = {5, 9, 50256, 7, 50256, 3, 1};
    corpus_t c;
    const char *path = write_file("t.bin", ids, sizeof ids);
    assert_int_equal(corpus_open("test", path, DATA_AUTO, 50256, &c), 0);
    assert_int_equal(c.width, 2);
    assert_int_equal(c.n, 7);
    assert_int_equal(c.n_docs, 3); /* each document ends after its end-of-text id */
    assert_int_equal(c.doc_start[1], 3);
    assert_int_equal(c.doc_start[2], 5);
    assert_int_equal(c.max_token, 50256);
    int32_t tok[3], lab[3];
    row_t r = {tok, lab, NULL, NULL};
    corpus_row(&c, 0, 3, true, &r);
    int32_t want_lab[3] = {9, 50256, IGNORE_LABEL}; /* the eot is learnt, not what follows */
    assert_memory_equal(lab, want_lab, sizeof lab);
    corpus_close(&c);

    uint32_t wide[3] = {70000, 1, 2};
    assert_int_equal(corpus_open("test", write_file("w.bin", wide, sizeof wide), DATA_U32, -1, &c),
                     0);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.max_token, 70000);
    assert_int_equal(c.n_docs, 1);
    corpus_close(&c);
}

/* llm.c's files: 256 int32 (magic, version, count), then the ids. */
static void llmc_header(void **state) {
    (void)state;
    unsigned char file[1024 + 12] = {0};
    int32_t header[3] = {20240801, 7, 3};
    uint32_t body[3] = {128000, 4, 5};
    memcpy(file, header, sizeof header);
    memcpy(file + 1024, body, sizeof body);
    corpus_t c;
    assert_int_equal(corpus_open("test", write_file("l.bin", file, sizeof file), DATA_AUTO, -1, &c),
                     0);
    assert_int_equal(c.width, 4);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.max_token, 128000);
    corpus_close(&c);

    char message[512];
    header[2] = 4; /* the header promises a token the file does not hold */
    memcpy(file, header, sizeof header);
    const char *path = write_file("bad.bin", file, sizeof file);
    assert_int_equal(open_quietly(path, DATA_AUTO, -1, &c, message, sizeof message), 2);
    assert_non_null(strstr(message, "header: 4 tokens"));
    corpus_close(&c);
}

static void bad_data(void **state) {
    (void)state;
    char message[512];
    corpus_t c;
    assert_int_equal(open_quietly("/nonexistent/x.txt", DATA_AUTO, -1, &c, message, sizeof message),
                     2);
    assert_non_null(strstr(message, "cannot open --data \"/nonexistent/x.txt\""));
    corpus_close(&c);
    const char odd[3] = {1, 2, 3}; /* not whole 2-byte ids */
    const char *path = write_file("odd.bin", odd, sizeof odd);
    assert_int_equal(open_quietly(path, DATA_U16, -1, &c, message, sizeof message), 2);
    assert_non_null(strstr(message, "do not hold whole 2-byte ids"));
    corpus_close(&c);
    assert_int_equal(open_quietly(dir, DATA_U16, -1, &c, message, sizeof message), 2);
    assert_non_null(strstr(message, "a token stream is one file"));
    corpus_close(&c);
    if (getuid() != 0) { /* root reads anything */
        const char *locked = write_file("locked.txt", "x", 1);
        chmod(locked, 0);
        assert_int_equal(open_quietly(locked, DATA_AUTO, -1, &c, message, sizeof message), 2);
        assert_non_null(strstr(message, "Permission denied"));
        corpus_close(&c);
    }
}

/* Every window once per epoch, another order each epoch, the same for the same seed. */
static void sampler_epochs(void **state) {
    (void)state;
    enum { N = 50 };
    sampler_t a, b;
    assert_int_equal(sampler_init(&a, N, 7), 0);
    assert_int_equal(sampler_init(&b, N, 7), 0);
    int seen[2][N] = {{0}};
    for (int i = 0; i < 2 * N; i++) {
        int64_t w = sampler_window(&a, i);
        assert_true(w >= 0 && w < N);
        seen[i / N][w]++;
    }
    for (int e = 0; e < 2; e++)
        for (int w = 0; w < N; w++) assert_int_equal(seen[e][w], 1);
    int differ = 0;
    for (int i = 0; i < N; i++) differ += sampler_window(&b, i) != sampler_window(&b, i + N);
    assert_true(differ > N / 2); /* epoch 1 is not epoch 0 again */
    for (int i = 0; i < 2 * N; i += 7)
        assert_int_equal(sampler_window(&a, i), sampler_window(&b, i));
    sampler_free(&a);
    sampler_free(&b);
}

static void passkey_rows(void **state) {
    (void)state;
    enum { S = 64 };
    int32_t tok[S], lab[S], pos[S], seg[S], again[S];
    row_t r = {tok, lab, pos, seg}, r2 = {again, NULL, NULL, NULL};
    for (int i = 0; i < 200; i++) {
        int64_t at = passkey_row(3, i, S, &r);
        passkey_row(3, i, S, &r2);
        assert_memory_equal(tok, again, sizeof tok); /* row i is a function of (seed, i) */
        int64_t answer = passkey_answer_start(S);
        assert_true(at >= 4 && at + PASSKEY_DIGITS <= answer - 4); /* before the question */
        assert_int_equal(tok[answer], '=');
        bool used[10] = {false};
        for (int k = 0; k < PASSKEY_DIGITS; k++) {
            int d = tok[at + k] - '0';
            assert_true(d >= 0 && d < 10 && !used[d]); /* distinct digits */
            used[d] = true;
            assert_int_equal(tok[answer + 1 + k], tok[at + k]); /* asked back at the end */
            assert_int_equal(lab[answer + k], tok[at + k]);
        }
        int labelled = 0;
        for (int s = 0; s < S; s++) labelled += lab[s] != IGNORE_LABEL;
        assert_int_equal(labelled, PASSKEY_DIGITS);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fortune_documents), cmocka_unit_test(folder_in_name_order),
        cmocka_unit_test(token_streams),     cmocka_unit_test(llmc_header),
        cmocka_unit_test(bad_data),          cmocka_unit_test(sampler_epochs),
        cmocka_unit_test(passkey_rows),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
