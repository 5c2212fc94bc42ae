/* The data API (autosp/data.h, src/data/data.c): fortune files split into documents, token
 * streams (raw and llm.c's header) split at an end-of-text id, windows with segment ids,
 * restarted positions and no label across a document boundary, the epoch sampler, batches, the
 * pass-key rows, and the errors of unreadable or malformed data: a status and a message naming
 * the file, nothing printed, a NULL err accepted, every allocation failure clean. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"

static char dir[64];

static int setup(void **state) {
    (void)state;
    return temp_dir_make(dir, "test_data");
}

static int teardown(void **state) {
    (void)state;
    return temp_dir_remove(dir);
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

static autosp_corpus_t *open_ok(const char *path, autosp_data_format_t format, int64_t eot) {
    autosp_error_t err;
    autosp_corpus_t *c = autosp_corpus_open(path, format, eot, &err);
    if (!c) fail_msg("%s", err.message);
    assert_int_equal(err.status, AUTOSP_OK);
    return c;
}

/* Opens what must fail: NULL, a status, a message naming the file in quotes, and not a byte
 * on stderr (the library never prints). The same call with a NULL err fails too. */
static autosp_status_t open_bad(const char *path, autosp_data_format_t format, int64_t eot,
                                autosp_error_t *err) {
    fflush(stderr);
    int saved = dup(2);
    FILE *tmp = tmpfile();
    dup2(fileno(tmp), 2);
    autosp_corpus_t *c = autosp_corpus_open(path, format, eot, err);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fseek(tmp, 0, SEEK_END);
    long printed = ftell(tmp);
    fclose(tmp);
    assert_null(c);
    assert_int_equal(printed, 0);
    assert_int_not_equal(err->status, AUTOSP_OK);
    char quoted[160];
    snprintf(quoted, sizeof quoted, "\"%s\"", path);
    if (!strstr(err->message, quoted)) fail_msg("\"%s\" does not name %s", err->message, quoted);
    assert_null(autosp_corpus_open(path, format, eot, NULL));
    return err->status;
}

static void fortune_documents(void **state) {
    (void)state;
    const char text[] = "ab\n%\ncd\n%\n%\nefg\n";
    autosp_corpus_t *c = open_ok(write_file("f", text, strlen(text)), AUTOSP_DATA_AUTO, -1);
    assert_int_equal(autosp_corpus_num_tokens(c), 10); /* "ab\ncd\nefg\n": "%" lines dropped */
    for (int i = 0; i < 10; i++) assert_int_equal(autosp_corpus_token(c, i), "ab\ncd\nefg\n"[i]);
    assert_int_equal(autosp_corpus_width(c), 1);
    assert_int_equal(autosp_corpus_num_documents(c), 3); /* the empty entry is no document */
    assert_int_equal(autosp_corpus_document_start(c, 0), 0);
    assert_int_equal(autosp_corpus_document_start(c, 1), 3);
    assert_int_equal(autosp_corpus_document_start(c, 2), 6);
    assert_int_equal(autosp_corpus_document_start(c, 3), 10);
    assert_int_equal(autosp_corpus_max_token(c), 'g');

    /* window 1 of S = 4: tokens 4..7 = "d\nef", labels up to token 8 */
    int32_t tok[4], lab[4], pos[4], seg[4];
    autosp_row_t r = {tok, lab, pos, seg};
    assert_int_equal(autosp_corpus_windows(c, 4), 2);
    autosp_corpus_row(c, 1, 4, true, &r);
    int32_t want_tok[4] = {'d', '\n', 'e', 'f'},
            want_lab[4] = {'\n', AUTOSP_IGNORE_LABEL, 'f', 'g'};
    int32_t want_pos[4] = {0, 1, 0, 1}, want_seg[4] = {0, 0, 1, 1};
    assert_memory_equal(tok, want_tok, sizeof tok);
    assert_memory_equal(lab, want_lab, sizeof lab);
    assert_memory_equal(pos, want_pos, sizeof pos);
    assert_memory_equal(seg, want_seg, sizeof seg);

    /* without segment ids the stream runs on: labels cross, positions count the window */
    autosp_corpus_row(c, 1, 4, false, &r);
    int32_t flat_lab[4] = {'\n', 'e', 'f', 'g'}, flat_pos[4] = {0, 1, 2, 3};
    assert_memory_equal(lab, flat_lab, sizeof lab);
    assert_memory_equal(pos, flat_pos, sizeof pos);
    autosp_corpus_close(c);
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
    autosp_corpus_t *c = open_ok(sub, AUTOSP_DATA_AUTO, -1);
    assert_int_equal(autosp_corpus_num_tokens(c), 3);
    for (int i = 0; i < 3; i++) /* a, then b; a.dat skipped */
        assert_int_equal(autosp_corpus_token(c, i), "ABB"[i]);
    assert_int_equal(autosp_corpus_num_documents(c), 2); /* every file is a document */
    autosp_corpus_close(c);
}

static void token_streams(void **state) {
    (void)state;
    uint16_t ids[7] = {5, 9, 50256, 7, 50256, 3, 1};
    const char *path = write_file("t.bin", ids, sizeof ids);
    autosp_corpus_t *c = open_ok(path, AUTOSP_DATA_AUTO, 50256);
    assert_int_equal(autosp_corpus_width(c), 2);
    assert_int_equal(autosp_corpus_num_tokens(c), 7);
    assert_int_equal(autosp_corpus_num_documents(c), 3); /* each ends after its end-of-text id */
    assert_int_equal(autosp_corpus_document_start(c, 1), 3);
    assert_int_equal(autosp_corpus_document_start(c, 2), 5);
    assert_int_equal(autosp_corpus_max_token(c), 50256);
    int32_t tok[3], lab[3];
    autosp_row_t r = {tok, lab, NULL, NULL};
    autosp_corpus_row(c, 0, 3, true, &r);
    int32_t want_lab[3] = {9, 50256, AUTOSP_IGNORE_LABEL}; /* the eot is learnt, not what follows */
    assert_memory_equal(lab, want_lab, sizeof lab);
    autosp_corpus_close(c);

    uint32_t wide[3] = {70000, 1, 2};
    c = open_ok(write_file("w.bin", wide, sizeof wide), AUTOSP_DATA_U32, -1);
    assert_int_equal(autosp_corpus_num_tokens(c), 3);
    assert_int_equal(autosp_corpus_max_token(c), 70000);
    assert_int_equal(autosp_corpus_num_documents(c), 1);
    autosp_corpus_close(c);
}

/* llm.c's files: 256 int32 (magic, version, count), then the ids. */
static void llmc_header(void **state) {
    (void)state;
    unsigned char file[1024 + 12] = {0};
    int32_t header[3] = {20240801, 7, 3};
    uint32_t body[3] = {128000, 4, 5};
    memcpy(file, header, sizeof header);
    memcpy(file + 1024, body, sizeof body);
    autosp_corpus_t *c = open_ok(write_file("l.bin", file, sizeof file), AUTOSP_DATA_AUTO, -1);
    assert_int_equal(autosp_corpus_width(c), 4);
    assert_int_equal(autosp_corpus_num_tokens(c), 3);
    assert_int_equal(autosp_corpus_max_token(c), 128000);
    autosp_corpus_close(c);

    autosp_error_t err;
    header[2] = 4; /* the header promises a token the file does not hold */
    memcpy(file, header, sizeof header);
    const char *path = write_file("bad.bin", file, sizeof file);
    assert_int_equal(open_bad(path, AUTOSP_DATA_AUTO, -1, &err), AUTOSP_ERR_INVALID);
    assert_non_null(strstr(err.message, "header: 4 tokens"));
    /* uint32 ids by the header, but the caller says uint16 */
    header[2] = 3;
    memcpy(file, header, sizeof header);
    path = write_file("l16.bin", file, sizeof file);
    assert_int_equal(open_bad(path, AUTOSP_DATA_U16, -1, &err), AUTOSP_ERR_INVALID);
    assert_non_null(strstr(err.message, "llm.c header says 4-byte ids, the format u16 says 2"));
}

static void bad_data(void **state) {
    (void)state;
    autosp_error_t err;
    assert_int_equal(open_bad("/nonexistent/x.txt", AUTOSP_DATA_AUTO, -1, &err), AUTOSP_ERR_IO);
    assert_non_null(strstr(err.message, "cannot open \"/nonexistent/x.txt\""));
    assert_non_null(strstr(err.message, "No such file or directory"));
    assert_int_equal(open_bad("/nonexistent/x.bin", AUTOSP_DATA_AUTO, -1, &err), AUTOSP_ERR_IO);
    const char odd[3] = {1, 2, 3}; /* not whole 2-byte ids */
    const char *path = write_file("odd.bin", odd, sizeof odd);
    assert_int_equal(open_bad(path, AUTOSP_DATA_U16, -1, &err), AUTOSP_ERR_INVALID);
    assert_non_null(strstr(err.message, "do not hold whole 2-byte ids"));
    assert_int_equal(open_bad(dir, AUTOSP_DATA_U16, -1, &err), AUTOSP_ERR_INVALID);
    assert_non_null(strstr(err.message, "a token stream is one file"));
    if (getuid() != 0) { /* root reads anything */
        const char *locked = write_file("locked.txt", "x", 1);
        chmod(locked, 0);
        assert_int_equal(open_bad(locked, AUTOSP_DATA_AUTO, -1, &err), AUTOSP_ERR_IO);
        assert_non_null(strstr(err.message, "Permission denied"));
    }
}

/* Files, fortunes and folders without a token: no corpus, rather than one with no windows. */
static void empty_data(void **state) {
    (void)state;
    autosp_error_t err;
    const char *names[] = {"empty.txt", "empty.bin", "percent.txt"};
    const char *texts[] = {"", "", "%\n%\n"};
    for (int i = 0; i < 3; i++) {
        const char *path = write_file(names[i], texts[i], strlen(texts[i]));
        assert_int_equal(open_bad(path, AUTOSP_DATA_AUTO, -1, &err), AUTOSP_ERR_INVALID);
        assert_non_null(strstr(err.message, "holds no tokens"));
    }
    char sub[128];
    snprintf(sub, sizeof sub, "%s/nothing", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(open_bad(sub, AUTOSP_DATA_AUTO, -1, &err), AUTOSP_ERR_INVALID);
    assert_non_null(strstr(err.message, "the folder has no regular files"));
}

static void format_names(void **state) {
    (void)state;
    const char *names[] = {"auto", "text", "u16", "u32"};
    autosp_data_format_t want[] = {AUTOSP_DATA_AUTO, AUTOSP_DATA_TEXT, AUTOSP_DATA_U16,
                                   AUTOSP_DATA_U32};
    autosp_error_t err;
    for (int i = 0; i < 4; i++) {
        autosp_data_format_t f = want[3 - i];
        assert_int_equal(autosp_data_format_parse(names[i], &f, &err), AUTOSP_OK);
        assert_int_equal(f, want[i]);
    }
    autosp_data_format_t f = AUTOSP_DATA_TEXT;
    assert_int_equal(autosp_data_format_parse("utf8", &f, &err), AUTOSP_ERR_INVALID);
    assert_int_equal(err.status, AUTOSP_ERR_INVALID);
    assert_string_equal(err.message,
                        "unknown data format \"utf8\": expected auto, text, u16 or u32");
    assert_int_equal(f, AUTOSP_DATA_TEXT); /* unchanged */
    assert_int_equal(autosp_data_format_parse("U16", &f, NULL), AUTOSP_ERR_INVALID);
    const char *path = write_file("fmt.txt", "abc", 3);
    assert_int_equal(open_bad(path, (autosp_data_format_t)7, -1, &err), AUTOSP_ERR_INVALID);
    assert_non_null(strstr(err.message, "unknown data format 7"));
}

/* Every window once per epoch, another order each epoch, the same for the same seed. */
static void sampler_epochs(void **state) {
    (void)state;
    enum { N = 50 };
    autosp_error_t err;
    autosp_sampler_t *a = autosp_sampler_new(N, 7, &err), *b = autosp_sampler_new(N, 7, NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(autosp_sampler_windows(a), N);
    int seen[2][N] = {{0}};
    for (int i = 0; i < 2 * N; i++) {
        int64_t w = autosp_sampler_window(a, i);
        assert_true(w >= 0 && w < N);
        seen[i / N][w]++;
    }
    for (int e = 0; e < 2; e++)
        for (int w = 0; w < N; w++) assert_int_equal(seen[e][w], 1);
    int differ = 0;
    for (int i = 0; i < N; i++)
        differ += autosp_sampler_window(b, i) != autosp_sampler_window(b, i + N);
    assert_true(differ > N / 2); /* epoch 1 is not epoch 0 again */
    for (int i = 0; i < 2 * N; i += 7)
        assert_int_equal(autosp_sampler_window(a, i), autosp_sampler_window(b, i));
    autosp_sampler_free(a);
    autosp_sampler_free(b);
    autosp_sampler_free(NULL);
    assert_null(autosp_sampler_new(0, 7, &err));
    assert_int_equal(err.status, AUTOSP_ERR_INVALID);
    assert_null(autosp_sampler_new(-1, 7, NULL));
}

/* A batch is its rows, each the sampler's window (corpus) or row first + b (pass-key). */
static void batches(void **state) {
    (void)state;
    enum { B = 3, S = 8 };
    char text[200];
    for (int i = 0; i < 199; i++) text[i] = i % 37 == 36 ? '\n' : (char)('a' + i % 26);
    text[199] = '\0';
    autosp_corpus_t *c = open_ok(write_file("batch.txt", text, strlen(text)), AUTOSP_DATA_TEXT, -1);
    autosp_error_t err;
    autosp_sampler_t *s = autosp_sampler_new(autosp_corpus_windows(c, S), 5, &err);
    assert_non_null(s);
    int32_t tok[B * S], lab[B * S], pos[B * S], seg[B * S], one[4][S];
    autosp_batch_t batch = {
        .B = B, .S = S, .tokens = tok, .labels = lab, .positions = pos, .segments = seg};
    assert_int_equal(autosp_batch_fill(c, s, 40, true, &batch, &err), AUTOSP_OK);
    for (int b = 0; b < B; b++) {
        autosp_row_t r = {one[0], one[1], one[2], one[3]};
        autosp_corpus_row(c, autosp_sampler_window(s, 40 + b), S, true, &r);
        assert_memory_equal(tok + b * S, one[0], sizeof one[0]);
        assert_memory_equal(lab + b * S, one[1], sizeof one[1]);
        assert_memory_equal(pos + b * S, one[2], sizeof one[2]);
        assert_memory_equal(seg + b * S, one[3], sizeof one[3]);
    }
    autosp_batch_t some = {.B = B, .S = S, .tokens = tok}; /* absent inputs are NULL */
    assert_int_equal(autosp_batch_fill(c, s, 0, false, &some, NULL), AUTOSP_OK);

    /* a sampler of more windows than the corpus has at this S, and a bad shape */
    autosp_batch_t longer = {.B = B, .S = 2 * S, .tokens = tok};
    assert_int_equal(autosp_batch_fill(c, s, 0, true, &longer, &err), AUTOSP_ERR_INVALID);
    assert_non_null(strstr(err.message, "batch.txt\" has 12 of S = 16"));
    autosp_batch_t none = {.B = 0, .S = S};
    assert_int_equal(autosp_batch_fill(c, s, 0, true, &none, &err), AUTOSP_ERR_INVALID);
    assert_int_equal(autosp_batch_fill(c, s, -1, true, &batch, NULL), AUTOSP_ERR_INVALID);
    assert_int_equal(autosp_batch_fill(c, NULL, 0, true, &batch, &err), AUTOSP_ERR_INVALID);
    assert_int_equal(autosp_batch_fill(c, s, 0, true, NULL, &err), AUTOSP_ERR_INVALID);
    autosp_sampler_free(s);
    autosp_corpus_close(c);

    enum { PS = 40 };
    int32_t ptok[B * PS], plab[B * PS], prow[2][PS];
    int64_t at[B];
    autosp_batch_t pk = {.B = B, .S = PS, .tokens = ptok, .labels = plab};
    assert_int_equal(autosp_batch_fill_passkey(9, 100, &pk, at, &err), AUTOSP_OK);
    for (int b = 0; b < B; b++) {
        autosp_row_t r = {prow[0], prow[1], NULL, NULL};
        assert_int_equal(autosp_passkey_row(9, 100 + b, PS, &r), at[b]);
        assert_memory_equal(ptok + b * PS, prow[0], sizeof prow[0]);
        assert_memory_equal(plab + b * PS, prow[1], sizeof prow[1]);
    }
    assert_int_equal(autosp_batch_fill_passkey(9, 0, &pk, NULL, NULL), AUTOSP_OK);
    pk.S = AUTOSP_PASSKEY_MIN_SEQ - 1;
    assert_int_equal(autosp_batch_fill_passkey(9, 0, &pk, at, &err), AUTOSP_ERR_INVALID);
    assert_non_null(strstr(err.message, "S >= 32"));
}

static void passkey_rows(void **state) {
    (void)state;
    enum { S = 64 };
    int32_t tok[S], lab[S], pos[S], seg[S], again[S];
    autosp_row_t r = {tok, lab, pos, seg}, r2 = {again, NULL, NULL, NULL};
    for (int i = 0; i < 200; i++) {
        int64_t at = autosp_passkey_row(3, i, S, &r);
        autosp_passkey_row(3, i, S, &r2);
        assert_memory_equal(tok, again, sizeof tok); /* row i is a function of (seed, i) */
        int64_t answer = autosp_passkey_answer_start(S);
        assert_true(at >= 4 && at + AUTOSP_PASSKEY_DIGITS <= answer - 4); /* before the question */
        assert_int_equal(tok[answer], '=');
        bool used[10] = {false};
        for (int k = 0; k < AUTOSP_PASSKEY_DIGITS; k++) {
            int d = tok[at + k] - '0';
            assert_true(d >= 0 && d < 10 && !used[d]); /* distinct digits */
            used[d] = true;
            assert_int_equal(tok[answer + 1 + k], tok[at + k]); /* asked back at the end */
            assert_int_equal(lab[answer + k], tok[at + k]);
        }
        int labelled = 0;
        for (int s = 0; s < S; s++) labelled += lab[s] != AUTOSP_IGNORE_LABEL;
        assert_int_equal(labelled, AUTOSP_PASSKEY_DIGITS);
    }
}

/* Allocation failure: the Nth allocation fails, for every N that opening a folder and a token
 * stream and making a sampler need; each fails with AUTOSP_ERR_NOMEM and frees what it took
 * (the sanitizer build checks the leaks). */
static failing_alloc_t oom = {.countdown = -1};

static void allocation_failures(void **state) {
    (void)state;
    char sub[128], path[160];
    snprintf(sub, sizeof sub, "%s/alloc", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%d", sub, i);
        FILE *f = fopen(path, "wb");
        for (int k = 0; k < 40; k++) fprintf(f, "fortune %d.%d\n%%\n", i, k);
        fclose(f);
    }
    uint16_t ids[300];
    for (int i = 0; i < 300; i++) ids[i] = (uint16_t)(i % 7 == 6 ? 9 : i);
    const char *stream = write_file("alloc.bin", ids, sizeof ids);
    const char *paths[2] = {sub, stream};
    autosp_allocator_t failing = failing_allocator(&oom);
    autosp_allocator_set(&failing);
    for (int p = 0; p < 3; p++) {
        oom.countdown = -1, oom.allocations = 0;
        autosp_corpus_t *c = p < 2 ? autosp_corpus_open(paths[p], AUTOSP_DATA_AUTO, 9, NULL) : NULL;
        autosp_sampler_t *s = p == 2 ? autosp_sampler_new(100, 1, NULL) : NULL;
        assert_true(c || s);
        autosp_corpus_close(c);
        autosp_sampler_free(s);
        long needed = oom.allocations;
        for (long n = 0; n < needed; n++) {
            oom.countdown = n;
            autosp_error_t err;
            void *got = p < 2 ? (void *)autosp_corpus_open(paths[p], AUTOSP_DATA_AUTO, 9, &err)
                              : (void *)autosp_sampler_new(100, 1, &err);
            if (got) fail_msg("%d: succeeded with allocation %ld failing", p, n);
            if (err.status != AUTOSP_ERR_NOMEM) fail_msg("allocation %ld: %s", n, err.message);
        }
    }
    oom.countdown = -1;
    autosp_allocator_set(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fortune_documents),
        cmocka_unit_test(folder_in_name_order),
        cmocka_unit_test(token_streams),
        cmocka_unit_test(llmc_header),
        cmocka_unit_test(bad_data),
        cmocka_unit_test(empty_data),
        cmocka_unit_test(format_names),
        cmocka_unit_test(sampler_epochs),
        cmocka_unit_test(batches),
        cmocka_unit_test(passkey_rows),
        cmocka_unit_test(allocation_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
