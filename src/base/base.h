/* base.h: allocation, arenas, errors and assertions shared by every file of the library. */
#ifndef AUTOSP_BASE_H
#define AUTOSP_BASE_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "autosp/status.h"

/* A broken invariant inside the library: a bug, never bad input. */
#define AUTOSP_ASSERT(cond)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "libautosp: %s:%d: assertion failed: %s\n", __FILE__, __LINE__,        \
                    #cond);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A hot loop over floats, compiled also for AVX-512 and AVX2, the loader picking one for the
 * CPU (GCC's target_clones, through an ifunc): the library stays portable (no -march) and the
 * baseline's 4-wide SSE2 does not bound the exp- and double-heavy loops. Feature names, not
 * "arch=": gcc 12 tells CPU models by their ids and fell back to SSE2 on the Xeon of our
 * benchmarks. Every clone computes the same bits: in ISO C mode gcc does not contract
 * a * b + c into an FMA, and without -ffast-math it vectorises only reductions whose lanes
 * the code spells out. AUTOSP_NO_VECTOR_CLONES turns it off. VECTOR_CLONES_AVX2 stops at AVX2:
 * gelu's backward and the norms ran slower as AVX-512 clones than as AVX2 ones (measured:
 * 50 against 34 ms, 66 against 56 ms over four GPT-2 steps), the cross-entropy faster. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__) &&       \
    !defined(AUTOSP_NO_VECTOR_CLONES)
#define VECTOR_CLONES      __attribute__((target_clones("avx512f", "avx2", "default")))
#define VECTOR_CLONES_AVX2 __attribute__((target_clones("avx2", "default")))
#else
#define VECTOR_CLONES
#define VECTOR_CLONES_AVX2
#endif

/* Through the hooks of autosp_allocator_set. */
void *mem_alloc(size_t size);
void *mem_calloc(size_t n, size_t size); /* zeroed; NULL on overflow */
void *mem_realloc(void *ptr, size_t size);
void mem_free(void *ptr);
/* A buffer the step streams through (the executor's arena, AdamW's state), not yet touched,
 * 2 MiB-aligned and asked to be backed by transparent huge pages (madvise; Debian's default
 * THP mode is madvise): a pass over hundreds of MiB then takes one TLB entry per 2 MiB, and
 * the hardware prefetcher does not stop every 4 KiB. *raw is what mem_free takes. */
void *mem_alloc_huge(size_t size, void **raw);

/* Grows *items (element size elem) so that it holds at least need elements. */
int mem_grow(void **items, int *cap, int need, size_t elem);

/* A bump allocator: everything is freed at once with arena_free. */
typedef struct arena_chunk arena_chunk_t;
typedef struct arena {
    arena_chunk_t *head;
} arena_t;

void *arena_alloc(arena_t *a, size_t size); /* zeroed, 16-byte aligned; NULL when out of memory */
char *arena_strdup(arena_t *a, const char *s);
char *arena_strndup(arena_t *a, const char *s, size_t n);
void arena_free(arena_t *a);

/* Fills err (may be NULL) and returns status. */
autosp_status_t set_error(autosp_error_t *err, autosp_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
autosp_status_t set_verror(autosp_error_t *err, autosp_status_t status, const char *fmt,
                           va_list ap);
autosp_status_t set_ok(autosp_error_t *err);
autosp_status_t nomem(autosp_error_t *err);

/* A monotonic clock, for durations. */
double now_seconds(void);

/* The greatest common divisor of |a| and |b| (gcd64(a, 0) = |a|). */
int64_t gcd64(int64_t a, int64_t b);

#endif
