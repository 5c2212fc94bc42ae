/* autosp/status.h: status codes and the error record every fallible call fills in.
 *
 * Every function that can fail because of its input returns an autosp_status_t and, when the
 * caller passes a non-NULL autosp_error_t, writes a message that names what is wrong: the node,
 * the tensor, and what was expected versus found, e.g.
 *
 *     node "blk0.attn" (attention): input "k" (tensor "blk0.k_rope") has 3 heads,
 *     expected num_kv_heads=2
 *
 * The library never calls exit() and never prints on its own. Broken internal invariants
 * (bugs, not input) abort through AUTOSP_ASSERT with file:line.
 */
#ifndef AUTOSP_STATUS_H
#define AUTOSP_STATUS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum autosp_status {
    AUTOSP_OK = 0,
    AUTOSP_ERR_INVALID,  /* the input (graph, file contents, argument) is wrong */
    AUTOSP_ERR_LIMIT,    /* the input exceeds a size limit (see autosp/limits.h) */
    AUTOSP_ERR_IO,       /* a file could not be read or written */
    AUTOSP_ERR_NOMEM,    /* an allocation failed */
    AUTOSP_ERR_INTERNAL, /* a bug in libautosp: please report it */
} autosp_status_t;

#define AUTOSP_ERROR_MESSAGE_MAX 512

typedef struct autosp_error {
    autosp_status_t status;
    char message[AUTOSP_ERROR_MESSAGE_MAX];
} autosp_error_t;

/* Short name of a status ("invalid input", "out of memory", ...). Static storage. */
const char *autosp_status_name(autosp_status_t status);

/* Exit code the command-line tools use for a status: 0 ok, 2 bad input, 1 internal error. */
int autosp_status_exit_code(autosp_status_t status);

/* Allocation hooks. All memory the library allocates goes through these; pass NULL to restore
 * malloc/realloc/free. Not thread-safe: set them before creating any graph. Tests use them to
 * make the Nth allocation fail. */
typedef struct autosp_allocator {
    void *(*malloc_fn)(void *ctx, size_t size);
    void *(*realloc_fn)(void *ctx, void *ptr, size_t size);
    void (*free_fn)(void *ctx, void *ptr);
    void *ctx;
} autosp_allocator_t;

void autosp_allocator_set(const autosp_allocator_t *allocator);

/* What the library holds through the default allocator, in the bytes malloc gave each block
 * (malloc_usable_size): live now, and the most live at once since the last autosp_heap_mark.
 * Counted on glibc only, and not under an allocator set with autosp_allocator_set (both 0).
 * Memory that OpenBLAS, oneDNN or MPI allocate themselves is not in it. */
typedef struct autosp_heap_stats {
    int64_t live, peak;
} autosp_heap_stats_t;
autosp_heap_stats_t autosp_heap_stats(void);
void autosp_heap_mark(void); /* the peak starts again from what is live now */

#ifdef __cplusplus
}
#endif
#endif
