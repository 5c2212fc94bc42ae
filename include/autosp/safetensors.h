/* autosp/safetensors.h: tensors in the safetensors format, the Hugging Face ecosystem's weight
 * format, written and read with every byte checked.
 *
 * A file is three parts:
 *     8 bytes      N, the header length, an unsigned little-endian 64-bit integer
 *     N bytes      the header: a UTF-8 JSON object, e.g.
 *                    {"__metadata__":{"step":"100"},
 *                     "wte":{"dtype":"F32","shape":[50304,768],"data_offsets":[0,154533888]}}
 *     the rest     the data section: every tensor's raw little-endian bytes, back to back
 * data_offsets are [begin, end) in bytes from the start of the data section. "__metadata__" is
 * optional (absent, or null as the reference reader allows) and maps strings to strings. Dtypes are
 * F32, BF16, F16, I32 and I64 (autosp_dtype_t); the format's other dtypes (F64, U8, BOOL, ...) are
 * rejected as unknown.
 *
 * Writing puts the tensors in the order given, back to back with no gaps, and pads the header
 * with spaces so that the data section starts at a multiple of 8 bytes.
 *
 * Reading takes the whole file into memory and trusts nothing in it: the header length (at most
 * AUTOSP_SAFETENSORS_MAX_HEADER and no more than the bytes that follow it), the JSON (valid
 * UTF-8, no duplicate names), each tensor (known keys only, a known dtype, at most
 * AUTOSP_MAX_DIMS dims each >= 0, a byte size equal to end - begin without overflow, offsets
 * inside the data section) and the tensors together (they tile the data section exactly: no
 * overlap, no hole, no trailing bytes, as the format requires). A zero-size tensor is allowed.
 *
 * Alignment: the data section sits at an 8-byte boundary in memory. A tensor's data is aligned
 * as far as its begin offset is, and a file may put an F32 tensor at offset 6 (after three
 * F16s), so check `(uintptr_t)t->data % autosp_dtype_size(t->dtype)` or memcpy before reading
 * elements in place. To write files whose tensors are all aligned to their dtype, give them in
 * descending dtype size (I64, then F32 and I32, then BF16 and F16), as the reference writer does.
 *
 * Byte order: the data is little-endian and is used in place, so the library builds only for
 * little-endian hosts (a compile-time check in src/io/safetensors.c).
 *
 * Typical use:
 *     autosp_error_t err;
 *     autosp_safetensors_t *f = autosp_safetensors_open("model.safetensors", &err);
 *     if (!f) { fprintf(stderr, "%s\n", err.message); return 2; }
 *     const autosp_st_tensor_t *w = autosp_safetensors_find(f, "wte");
 *     if (w && w->dtype == AUTOSP_F32) use(w->data, w->shape[0], w->shape[1]);
 *     autosp_safetensors_close(f);
 */
#ifndef AUTOSP_SAFETENSORS_H
#define AUTOSP_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "autosp/limits.h"
#include "autosp/status.h"
#include "autosp/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The largest header a reader accepts (the reference implementation's limit); a longer one is
 * AUTOSP_ERR_LIMIT. */
#define AUTOSP_SAFETENSORS_MAX_HEADER 100000000

/* One tensor. Row-major, shape[0..ndim-1] (ndim 0 is a scalar of one element); a dim of 0 makes
 * a zero-size tensor. */
typedef struct autosp_st_tensor {
    const char *name;
    autosp_dtype_t dtype;
    int ndim;
    int64_t shape[AUTOSP_MAX_DIMS];
    const void *data; /* numel * autosp_dtype_size(dtype) bytes, little-endian */
} autosp_st_tensor_t;

/* Writes n tensors (in that order) and n_meta metadata pairs to path. Everything passed in stays
 * the caller's and is only read during the call. Names must be unique, valid UTF-8 and not
 * "__metadata__"; data may be NULL only for a zero-size tensor. meta_keys and meta_values may be
 * NULL when n_meta is 0; keys must be unique. Atomic: a temp file beside path, fsync, rename, so
 * a failed write leaves neither a partial file nor a temp file, and never clobbers the old one.
 * Returns AUTOSP_OK, or a status with err (may be NULL) filled in. */
autosp_status_t autosp_safetensors_write(const char *path, const autosp_st_tensor_t *tensors, int n,
                                         const char *const *meta_keys,
                                         const char *const *meta_values, int n_meta,
                                         autosp_error_t *err);

/* A file read whole into memory and checked. Opaque; the caller owns it and releases it with
 * autosp_safetensors_close, which also invalidates every pointer the accessors below returned. */
typedef struct autosp_safetensors autosp_safetensors_t;

/* Reads and checks path. Returns a new file (the caller's), or NULL with err (may be NULL)
 * filled in; every message names the path. */
autosp_safetensors_t *autosp_safetensors_open(const char *path, autosp_error_t *err);

/* The same for a file already in memory: bytes stay the caller's and are copied, so they may be
 * freed as soon as this returns. */
autosp_safetensors_t *autosp_safetensors_parse(const void *bytes, size_t size, autosp_error_t *err);

/* Number of tensors (0 for a file that has only metadata). */
int autosp_safetensors_count(const autosp_safetensors_t *f);

/* Tensor i in file order (ascending data offset; for a file this library wrote, the order the
 * tensors were given), or NULL when i is out of range. Owned by f, as is everything it points
 * to (name, data). */
const autosp_st_tensor_t *autosp_safetensors_tensor(const autosp_safetensors_t *f, int i);

/* The tensor called name (binary search), or NULL. Owned by f. */
const autosp_st_tensor_t *autosp_safetensors_find(const autosp_safetensors_t *f, const char *name);

/* The metadata value for key, or NULL if absent. Owned by f. */
const char *autosp_safetensors_metadata(const autosp_safetensors_t *f, const char *key);

/* Releases f and everything the accessors returned from it. f may be NULL. */
void autosp_safetensors_close(autosp_safetensors_t *f);

#ifdef __cplusplus
}
#endif
#endif
