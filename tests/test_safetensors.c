/* The safetensors format: write -> read gives the same tensors and metadata for every dtype; the
 * writer's bytes match a hand-written file exactly; every malformed file in a table is refused
 * with its exact message; writes are atomic; allocation failures fail cleanly. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"

/* ---- helpers ---- */

static char tmp_dir[64];

static int make_dir(void **state) {
    (void)state;
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/autosp-st-XXXXXX");
    return mkdtemp(tmp_dir) ? 0 : -1;
}

/* Removes every file in tmp_dir, then tmp_dir. */
static int remove_dir(void **state) {
    (void)state;
    DIR *d = opendir(tmp_dir);
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", tmp_dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    return rmdir(tmp_dir);
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static unsigned char *read_bytes(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return buf;
}

/* A file: the 8-byte length (hlen, or strlen(header) when hlen is 0), the header, then data
 * bytes 0, 1, 2, ... of the data section. */
static unsigned char *make_file(const char *header, uint64_t hlen, size_t data, size_t *size) {
    size_t n = strlen(header);
    unsigned char *buf = malloc(8 + n + data);
    assert_non_null(buf);
    uint64_t len = hlen ? hlen : n;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(len >> (8 * i));
    memcpy(buf + 8, header, n);
    for (size_t i = 0; i < data; i++) buf[8 + n + i] = (unsigned char)i;
    *size = 8 + n + data;
    return buf;
}

/* ---- round trip ---- */

static const float f32_data[6] = {0.5f, -1.25f, 3.0f, 1e-3f, -7.5f, 100.0f};
static const uint16_t bf16_data[4] = {0x3f80, 0xc000, 0x4049, 0x0000}; /* 1, -2, 3.140625, 0 */
static const uint16_t f16_data[3] = {0x3c00, 0xc000, 0x3555};          /* 1, -2, 0.333 */
static const int32_t i32_data[4] = {1, -2, 2147483647, -2147483647 - 1};
static const int64_t i64_data[3] = {INT64_MAX, -5, 1LL << 40};
static const float scalar_data[1] = {42.0f};

/* F16 (6 bytes) puts the tensors after it at offsets that are not multiples of 8. */
static const autosp_st_tensor_t tensors[] = {
    {"blk0.w", AUTOSP_F32, 2, {2, 3}, f32_data},
    {"blk0.bf", AUTOSP_BF16, 1, {4}, bf16_data},
    {"half", AUTOSP_F16, 1, {3}, f16_data},
    {"ids", AUTOSP_I32, 2, {2, 2}, i32_data},
    {"big", AUTOSP_I64, 1, {3}, i64_data},
    {"scalar", AUTOSP_F32, 0, {0}, scalar_data},
    {"empty", AUTOSP_I64, 2, {0, 5}, NULL},
    {"\xc3\xa9t\xc3\xa9", AUTOSP_F32, 3, {1, 1, 1}, scalar_data}, /* "été": UTF-8 */
};
static const char *const meta_keys[] = {"format", "step", "note"};
static const char *const meta_vals[] = {"pt", "100", "a \"quoted\" \\ value"};

static void assert_same_tensors(const autosp_safetensors_t *f) {
    int n = (int)(sizeof tensors / sizeof tensors[0]);
    assert_int_equal(autosp_safetensors_count(f), n);
    for (int i = 0; i < n; i++) {
        const autosp_st_tensor_t *want = &tensors[i], *got = autosp_safetensors_tensor(f, i);
        assert_non_null(got);
        assert_string_equal(got->name, want->name);
        assert_ptr_equal(autosp_safetensors_find(f, want->name), got);
        assert_int_equal(got->dtype, want->dtype);
        assert_int_equal(got->ndim, want->ndim);
        size_t numel = 1;
        for (int d = 0; d < want->ndim; d++) {
            assert_int_equal(got->shape[d], want->shape[d]);
            numel *= (size_t)want->shape[d];
        }
        assert_non_null(got->data);
        if (numel)
            assert_memory_equal(got->data, want->data, numel * autosp_dtype_size(want->dtype));
    }
    assert_null(autosp_safetensors_tensor(f, -1));
    assert_null(autosp_safetensors_tensor(f, n));
    assert_null(autosp_safetensors_find(f, "blk0"));
    assert_null(autosp_safetensors_find(f, "zzz"));
    assert_int_equal((uintptr_t)autosp_safetensors_tensor(f, 0)->data % 8, 0);
    for (int i = 0; i < 3; i++)
        assert_string_equal(autosp_safetensors_metadata(f, meta_keys[i]), meta_vals[i]);
    assert_null(autosp_safetensors_metadata(f, "absent"));
}

static void test_roundtrip_every_dtype(void **state) {
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/all.safetensors", tmp_dir);
    autosp_error_t err;
    int n = (int)(sizeof tensors / sizeof tensors[0]);
    assert_int_equal(autosp_safetensors_write(path, tensors, n, meta_keys, meta_vals, 3, &err),
                     AUTOSP_OK);
    autosp_safetensors_t *f = autosp_safetensors_open(path, &err);
    if (!f) fail_msg("%s", err.message);
    assert_same_tensors(f);
    autosp_safetensors_close(f);
    size_t size;
    unsigned char *bytes = read_bytes(path, &size);
    assert_int_equal(bytes[0] % 8, 0); /* the writer pads the header */
    f = autosp_safetensors_parse(bytes, size, &err);
    free(bytes); /* parse copied them */
    if (!f) fail_msg("%s", err.message);
    assert_same_tensors(f);
    autosp_safetensors_close(f);
    unlink(path);
}

/* No tensors and no metadata, and a file from a writer that does not pad its header. */
static void test_edge_files(void **state) {
    (void)state;
    autosp_error_t err;
    char path[256];
    snprintf(path, sizeof path, "%s/none.safetensors", tmp_dir);
    assert_int_equal(autosp_safetensors_write(path, NULL, 0, NULL, NULL, 0, &err), AUTOSP_OK);
    size_t size;
    unsigned char *bytes = read_bytes(path, &size);
    assert_int_equal(size, 16);
    assert_memory_equal(bytes, "\x08\0\0\0\0\0\0\0{}      ", 16);
    free(bytes);
    autosp_safetensors_t *f = autosp_safetensors_open(path, &err);
    assert_non_null(f);
    assert_int_equal(autosp_safetensors_count(f), 0);
    assert_null(autosp_safetensors_find(f, "x"));
    assert_null(autosp_safetensors_metadata(f, "x"));
    autosp_safetensors_close(f);
    unlink(path);
    const char *header = "{\"x\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]},"
                         "\"y\":{\"data_offsets\":[2,6],\"shape\":[],\"dtype\":\"I32\"}}";
    bytes = make_file(header, 0, 6, &size);
    assert_int_not_equal((8 + strlen(header)) % 8, 0);
    f = autosp_safetensors_parse(bytes, size, &err);
    free(bytes);
    if (!f) fail_msg("%s", err.message);
    const autosp_st_tensor_t *x = autosp_safetensors_tensor(f, 0);
    assert_int_equal((uintptr_t)x->data % 8, 0); /* the library aligned its copy */
    assert_int_equal(((const unsigned char *)autosp_safetensors_find(f, "y")->data)[3], 5);
    autosp_safetensors_close(f);
    bytes = make_file("{\"__metadata__\":null}", 0, 0, &size); /* the reference reader allows it */
    f = autosp_safetensors_parse(bytes, size, &err);
    free(bytes);
    assert_non_null(f);
    assert_int_equal(autosp_safetensors_count(f), 0);
    assert_null(autosp_safetensors_metadata(f, "x"));
    autosp_safetensors_close(f);
}

/* ---- exact bytes ---- */

static void test_exact_bytes(void **state) {
    (void)state;
    static const float a[2] = {1.0f, 2.0f};
    static const int32_t b[1] = {7};
    const autosp_st_tensor_t ts[] = {{"a", AUTOSP_F32, 1, {2}, a}, {"b", AUTOSP_I32, 0, {0}, b}};
    const char *keys[] = {"format"}, *vals[] = {"pt"};
    char path[256];
    snprintf(path, sizeof path, "%s/tiny.safetensors", tmp_dir);
    autosp_error_t err;
    assert_int_equal(autosp_safetensors_write(path, ts, 2, keys, vals, 1, &err), AUTOSP_OK);
    /* 138 bytes of JSON padded with 6 spaces to 144 = 0x90 */
    static const char expected[] = "\x90\0\0\0\0\0\0\0"
                                   "{\"__metadata__\":{\"format\":\"pt\"},"
                                   "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                                   "\"b\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[8,12]}}"
                                   "      "
                                   "\x00\x00\x80\x3f"  /* 1.0f */
                                   "\x00\x00\x00\x40"  /* 2.0f */
                                   "\x07\x00\x00\x00"; /* 7 */
    size_t size;
    unsigned char *bytes = read_bytes(path, &size);
    assert_int_equal(size, sizeof expected - 1);
    assert_int_equal(size, 8 + 144 + 12);
    assert_memory_equal(bytes, expected, size);
    free(bytes);
    unlink(path);
}

/* ---- malformed files ---- */

typedef struct bad_case {
    const char *header; /* JSON text */
    size_t data;        /* bytes in the data section */
    uint64_t hlen;      /* header length to write; 0: the true one */
    size_t keep;        /* keep only this many bytes of the file; 0: all */
    autosp_status_t status;
    const char *message;
} bad_case_t;

#define T(dtype, shape, offsets)                                                                   \
    "{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":" offsets "}"

static const bad_case_t bad_cases[] = {
    /* truncated */
    {"{}", 0, 0, 5, AUTOSP_ERR_INVALID,
     "the file is 5 bytes, too short for the 8-byte header length"},
    {"{}", 0, 0, 9, AUTOSP_ERR_INVALID, "the header length is 2 bytes, but only 1 bytes follow it"},
    /* header length too big */
    {"{}", 0, 1000, 0, AUTOSP_ERR_INVALID,
     "the header length is 1000 bytes, but only 2 bytes follow it"},
    {"{}", 0, 100000001, 0, AUTOSP_ERR_LIMIT,
     "the header length is 100000001 bytes, limit 100000000"},
    /* bad JSON */
    {"{\"a\": ", 0, 0, 0, AUTOSP_ERR_INVALID,
     "malformed JSON header at line 1, column 6: unexpected token near end of file"},
    {"{\"\xff\":{}}", 0, 0, 0, AUTOSP_ERR_INVALID,
     "malformed JSON header at line 1, column 2: unable to decode byte 0xff near '\"'"},
    {"[1,2]", 0, 0, 0, AUTOSP_ERR_INVALID, "header is [1,2], expected a JSON object"},
    {"{\"a\":[1]}", 0, 0, 0, AUTOSP_ERR_INVALID, "tensor \"a\" is [1], expected an object"},
    /* unknown keys and dtypes, bad shapes */
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"offset\":0}}", 4, 0, 0,
     AUTOSP_ERR_INVALID,
     "tensor \"a\": unknown key \"offset\" (known keys: dtype, shape, data_offsets)"},
    {"{\"a\":" T("F64", "[1]", "[0,8]") "}", 8, 0, 0, AUTOSP_ERR_INVALID,
     "tensor \"a\": dtype is \"F64\", expected \"F32\", \"BF16\", \"F16\", \"I32\" or \"I64\""},
    {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 0, 0, AUTOSP_ERR_INVALID,
     "tensor \"a\": dtype is missing, expected \"F32\", \"BF16\", \"F16\", \"I32\" or \"I64\""},
    {"{\"a\":" T("F32", "[2,-3]", "[0,0]") "}", 0, 0, 0, AUTOSP_ERR_INVALID,
     "tensor \"a\": shape[1] is -3, expected an integer >= 0"},
    {"{\"a\":" T("F32", "[2.0]", "[0,8]") "}", 8, 0, 0, AUTOSP_ERR_INVALID,
     "tensor \"a\": shape[0] is 2.0, expected an integer >= 0"},
    {"{\"a\":" T("F32", "\"2\"", "[0,8]") "}", 8, 0, 0, AUTOSP_ERR_INVALID,
     "tensor \"a\": shape is \"2\", expected an array of integers"},
    {"{\"a\":" T("F32", "[1,1,1,1,1,1,1]", "[0,4]") "}", 4, 0, 0, AUTOSP_ERR_LIMIT,
     "tensor \"a\": shape has 7 dims, limit 6"},
    /* offsets out of range or malformed */
    {"{\"a\":" T("F32", "[4]", "[0,16]") "}", 8, 0, 0, AUTOSP_ERR_INVALID,
     "tensor \"a\": data_offsets [0,16] reach past the data section, which is 8 bytes"},
    {"{\"a\":" T("F32", "[1]", "[8,4]") "}", 8, 0, 0, AUTOSP_ERR_INVALID,
     "tensor \"a\": data_offsets is [8,4], expected [begin, end] with 0 <= begin <= end"},
    {"{\"a\":" T("F32", "[1]", "[-4,0]") "}", 0, 0, 0, AUTOSP_ERR_INVALID,
     "tensor \"a\": data_offsets is [-4,0], expected [begin, end] with 0 <= begin <= end"},
    {"{\"a\":" T("F32", "[1]", "[0]") "}", 4, 0, 0, AUTOSP_ERR_INVALID,
     "tensor \"a\": data_offsets is [0], expected [begin, end] with 0 <= begin <= end"},
    /* size mismatch, with and without overflow */
    {"{\"a\":" T("F32", "[3]", "[0,8]") "}", 8, 0, 0, AUTOSP_ERR_INVALID,
     "tensor \"a\": shape [3] of F32 is 12 bytes, but data_offsets [0,8] hold 8"},
    {"{\"a\":" T("I64", "[4294967296,4294967296]", "[0,8]") "}", 8, 0, 0, AUTOSP_ERR_INVALID,
     "tensor \"a\": shape [4294967296,4294967296] of I64 is more than 2^63 bytes, but "
     "data_offsets [0,8] hold 8"},
    /* overlap, holes */
    {"{\"a\":" T("F32", "[2]", "[0,8]") ",\"b\":" T("F32", "[2]", "[4,12]") "}", 12, 0, 0,
     AUTOSP_ERR_INVALID,
     "tensor \"b\": data_offsets [4,12] start at 4, expected 8, where tensor \"a\" [0,8] ends "
     "(tensors must not overlap)"},
    {"{\"a\":" T("F32", "[2]", "[0,8]") ",\"z\":" T("F32", "[0]", "[4,4]") "}", 8, 0, 0,
     AUTOSP_ERR_INVALID,
     "tensor \"z\": data_offsets [4,4] start at 4, expected 8, where tensor \"a\" [0,8] ends "
     "(tensors must not overlap)"},
    {"{\"b\":" T("F32", "[1]", "[8,12]") ",\"a\":" T("F32", "[1]", "[0,4]") "}", 12, 0, 0,
     AUTOSP_ERR_INVALID,
     "tensor \"b\": data_offsets [8,12] start at 8, expected 4, where tensor \"a\" [0,4] ends "
     "(the format allows no holes)"},
    {"{\"a\":" T("F32", "[1]", "[4,8]") "}", 8, 0, 0, AUTOSP_ERR_INVALID,
     "tensor \"a\": data_offsets [4,8] start at 4, expected 0, where the data section starts "
     "(the format allows no holes)"},
    {"{\"a\":" T("F32", "[1]", "[0,4]") "}", 8, 0, 0, AUTOSP_ERR_INVALID,
     "the tensors end at 4, expected 8, where the data section ends (the format allows no holes)"},
    {"{}", 3, 0, 0, AUTOSP_ERR_INVALID,
     "the tensors end at 0, expected 3, where the data section ends (the format allows no holes)"},
    /* duplicate name */
    {"{\"a\":" T("F32", "[1]", "[0,4]") ",\"a\":" T("F32", "[1]", "[4,8]") "}", 8, 0, 0,
     AUTOSP_ERR_INVALID,
     "malformed JSON header at line 1, column 57: duplicate object key near '\"a\"'"},
    /* metadata */
    {"{\"__metadata__\":{\"step\":100}}", 0, 0, 0, AUTOSP_ERR_INVALID,
     "__metadata__: \"step\" is 100, expected a string"},
    {"{\"__metadata__\":[\"x\"]}", 0, 0, 0, AUTOSP_ERR_INVALID,
     "__metadata__ is [\"x\"], expected an object of strings or null"},
};

static void test_malformed_files(void **state) {
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case_t *c = &bad_cases[i];
        size_t size;
        unsigned char *bytes = make_file(c->header, c->hlen, c->data, &size);
        if (c->keep) size = c->keep;
        autosp_error_t err;
        autosp_safetensors_t *f = autosp_safetensors_parse(bytes, size, &err);
        free(bytes);
        if (f) {
            print_error("case %zu (%s) was accepted\n", i, c->header);
            autosp_safetensors_close(f);
            failures++;
        } else if (err.status != c->status || strcmp(err.message, c->message) != 0) {
            print_error("case %zu: got status %d \"%s\"\n  expected status %d \"%s\"\n", i,
                        (int)err.status, err.message, (int)c->status, c->message);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* open() puts the path in front of the same messages. */
static void test_open_errors(void **state) {
    (void)state;
    autosp_error_t err;
    assert_null(autosp_safetensors_open("/nonexistent/x.safetensors", &err));
    assert_int_equal(err.status, AUTOSP_ERR_IO);
    assert_string_equal(err.message,
                        "cannot open \"/nonexistent/x.safetensors\": No such file or directory");
    assert_null(autosp_safetensors_open(tmp_dir, &err));
    assert_int_equal(err.status, AUTOSP_ERR_IO);
    char path[256], want[512];
    snprintf(path, sizeof path, "%s/bad.safetensors", tmp_dir);
    size_t size;
    unsigned char *bytes = make_file("{\"a\":" T("F32", "[3]", "[0,8]") "}", 0, 8, &size);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(bytes, 1, size, fp), size);
    fclose(fp);
    free(bytes);
    assert_null(autosp_safetensors_open(path, &err));
    snprintf(want, sizeof want,
             "%s: tensor \"a\": shape [3] of F32 is 12 bytes, but data_offsets [0,8] hold 8", path);
    assert_string_equal(err.message, want);
    assert_null(autosp_safetensors_open(path, NULL)); /* err may be NULL */
    fp = fopen(path, "wb");
    fclose(fp); /* empty */
    assert_null(autosp_safetensors_open(path, &err));
    snprintf(want, sizeof want, "%s: the file is 0 bytes, too short for the 8-byte header length",
             path);
    assert_string_equal(err.message, want);
    unlink(path);
}

/* ---- writing ---- */

static void test_write_is_atomic(void **state) {
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/missing/out.safetensors", tmp_dir);
    autosp_error_t err;
    int before = count_files(tmp_dir);
    assert_int_equal(autosp_safetensors_write(path, tensors, 2, NULL, NULL, 0, &err),
                     AUTOSP_ERR_IO);
    char want[512];
    snprintf(want, sizeof want, "cannot write \"%s\": No such file or directory", path);
    assert_string_equal(err.message, want);
    assert_int_equal(count_files(tmp_dir), before); /* no temp file beside it either */
    /* a failed write leaves the old file as it was */
    snprintf(path, sizeof path, "%s/keep.safetensors", tmp_dir);
    assert_int_equal(autosp_safetensors_write(path, tensors, 1, NULL, NULL, 0, &err), AUTOSP_OK);
    autosp_st_tensor_t broken = tensors[0];
    broken.ndim = 7;
    assert_int_equal(autosp_safetensors_write(path, &broken, 1, NULL, NULL, 0, &err),
                     AUTOSP_ERR_INVALID);
    autosp_safetensors_t *f = autosp_safetensors_open(path, &err);
    assert_non_null(f);
    assert_int_equal(autosp_safetensors_count(f), 1);
    autosp_safetensors_close(f);
    assert_int_equal(count_files(tmp_dir), before + 1);
    unlink(path);
}

/* What the writer refuses, each with its message; nothing is written. */
static void test_write_rejects(void **state) {
    (void)state;
    char path[256], want[512];
    snprintf(path, sizeof path, "%s/rejected.safetensors", tmp_dir);
    static const float x[2] = {1, 2};
    struct {
        autosp_st_tensor_t t[2];
        const char *message;
    } cases[] = {
        {{{"a", AUTOSP_F32, 1, {2}, x}, {"a", AUTOSP_F32, 1, {2}, x}},
         "tensor 1: name \"a\" is repeated"},
        {{{"a", AUTOSP_F32, 1, {2}, x}, {"__metadata__", AUTOSP_F32, 1, {2}, x}},
         "tensor 1: name \"__metadata__\" is reserved"},
        {{{"a", AUTOSP_F32, 1, {2}, x}, {NULL, AUTOSP_F32, 1, {2}, x}}, "tensor 1: name is NULL"},
        {{{"a\xff", AUTOSP_F32, 1, {2}, x}, {"b", AUTOSP_F32, 1, {2}, x}},
         "tensor 0: name is not valid UTF-8"},
        {{{"a", AUTOSP_F32, 1, {2}, x}, {"b", AUTOSP_F32, 7, {2}, x}},
         "tensor \"b\": ndim is 7, expected 0..6"},
        {{{"a", AUTOSP_F32, 1, {2}, x}, {"b", AUTOSP_F32, 2, {2, -1}, x}},
         "tensor \"b\": shape[1] is -1, expected >= 0"},
        {{{"a", AUTOSP_F32, 1, {2}, x}, {"b", AUTOSP_DTYPE_COUNT, 1, {2}, x}},
         "tensor \"b\": dtype is 5, expected 0..4"},
        {{{"a", AUTOSP_F32, 1, {2}, x}, {"b", AUTOSP_F32, 1, {2}, NULL}},
         "tensor \"b\": data is NULL"},
    };
    autosp_error_t err;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(autosp_safetensors_write(path, cases[i].t, 2, NULL, NULL, 0, &err),
                         AUTOSP_ERR_INVALID);
        snprintf(want, sizeof want, "%s: %s", path, cases[i].message);
        assert_string_equal(err.message, want);
    }
    const char *keys[] = {"k", "k"}, *vals[] = {"1", "2"};
    assert_int_equal(autosp_safetensors_write(path, cases[0].t, 1, keys, vals, 2, &err),
                     AUTOSP_ERR_INVALID);
    snprintf(want, sizeof want, "%s: metadata key \"k\" is repeated", path);
    assert_string_equal(err.message, want);
    assert_int_equal(autosp_safetensors_write(path, NULL, 1, NULL, NULL, 0, &err),
                     AUTOSP_ERR_INVALID);
    assert_int_equal(access(path, F_OK), -1);
}

/* ---- allocation failure ---- */

static failing_alloc_t oom = {.countdown = -1};

static void test_allocation_failure(void **state) {
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/alloc.safetensors", tmp_dir);
    int n = (int)(sizeof tensors / sizeof tensors[0]), before = count_files(tmp_dir);
    autosp_allocator_t failing = failing_allocator(&oom);
    autosp_allocator_set(&failing);
    for (long k = 0;; k++) { /* the writer */
        oom.countdown = k;
        autosp_error_t err;
        if (autosp_safetensors_write(path, tensors, n, meta_keys, meta_vals, 3, &err) == AUTOSP_OK)
            break;
        assert_int_equal(err.status, AUTOSP_ERR_NOMEM);
        assert_int_equal(count_files(tmp_dir), before);
    }
    oom.countdown = -1;
    size_t size;
    unsigned char *bytes = read_bytes(path, &size);
    long needed = 0;
    for (long k = 0;; k++, needed++) { /* the reader */
        oom.countdown = k;
        autosp_error_t err;
        autosp_safetensors_t *f = autosp_safetensors_parse(bytes, size, &err);
        if (f) {
            autosp_safetensors_close(f);
            break;
        }
        assert_int_equal(err.status, AUTOSP_ERR_NOMEM);
    }
    assert_true(needed >= 5);
    oom.countdown = -1;
    autosp_allocator_set(NULL);
    free(bytes);
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_every_dtype), cmocka_unit_test(test_edge_files),
        cmocka_unit_test(test_exact_bytes),           cmocka_unit_test(test_malformed_files),
        cmocka_unit_test(test_open_errors),           cmocka_unit_test(test_write_is_atomic),
        cmocka_unit_test(test_write_rejects),         cmocka_unit_test(test_allocation_failure),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
