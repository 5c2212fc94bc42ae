/* base.c: allocation hooks, the arena, error records and the clock. */
#define _DEFAULT_SOURCE /* madvise */
#include "base/base.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#ifdef __linux__
#include <sys/mman.h>
#endif
#ifdef __GLIBC__
#include <malloc.h> /* malloc_usable_size */
#endif

/* The default allocator counts what it holds (autosp_heap_stats); the threads of the pool
 * allocate too, hence atomics. */
static _Atomic int64_t heap_live, heap_peak;

static int64_t block_bytes(void *p) {
#ifdef __GLIBC__
    return p ? (int64_t)malloc_usable_size(p) : 0;
#else
    (void)p;
    return 0;
#endif
}

static void heap_add(int64_t bytes) {
    int64_t live = atomic_fetch_add(&heap_live, bytes) + bytes;
    int64_t peak = atomic_load(&heap_peak);
    while (live > peak && !atomic_compare_exchange_weak(&heap_peak, &peak, live)) continue;
}

static void *default_malloc(void *ctx, size_t size) {
    (void)ctx;
    void *p = malloc(size);
    heap_add(block_bytes(p));
    return p;
}
static void *default_realloc(void *ctx, void *ptr, size_t size) {
    (void)ctx;
    int64_t before = block_bytes(ptr);
    void *p = realloc(ptr, size);
    if (p) heap_add(block_bytes(p) - before);
    return p;
}
static void default_free(void *ctx, void *ptr) {
    (void)ctx;
    heap_add(-block_bytes(ptr));
    free(ptr);
}

autosp_heap_stats_t autosp_heap_stats(void) {
    return (autosp_heap_stats_t){atomic_load(&heap_live), atomic_load(&heap_peak)};
}

void autosp_heap_mark(void) {
    atomic_store(&heap_peak, atomic_load(&heap_live));
}

static autosp_allocator_t allocator = {default_malloc, default_realloc, default_free, NULL};

void autosp_allocator_set(const autosp_allocator_t *a) {
    if (a)
        allocator = *a;
    else
        allocator = (autosp_allocator_t){default_malloc, default_realloc, default_free, NULL};
}

void *mem_alloc(size_t size) {
    return allocator.malloc_fn(allocator.ctx, size ? size : 1);
}

void *mem_calloc(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    void *p = mem_alloc(n * size);
    if (p) memset(p, 0, n * size);
    return p;
}

enum { HUGE_PAGE = 2 << 20 };

void *mem_alloc_huge(size_t size, void **raw) {
    if (size > SIZE_MAX - HUGE_PAGE || !(*raw = mem_alloc(size + HUGE_PAGE))) return NULL;
    uintptr_t start = ((uintptr_t)*raw + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
#ifdef MADV_HUGEPAGE
    if (size >= HUGE_PAGE) /* whole huge pages inside the buffer; a refusal only costs speed */
        (void)madvise((void *)start, size / HUGE_PAGE * HUGE_PAGE, MADV_HUGEPAGE);
#endif
    return (void *)start;
}

void *mem_realloc(void *ptr, size_t size) {
    return allocator.realloc_fn(allocator.ctx, ptr, size ? size : 1);
}

void mem_free(void *ptr) {
    if (ptr) allocator.free_fn(allocator.ctx, ptr);
}

void autosp_free(void *ptr) {
    mem_free(ptr);
}

int mem_grow(void **items, int *cap, int need, size_t elem) {
    if (need <= *cap) return 0;
    int64_t new_cap = *cap ? *cap : 16;
    while (new_cap < need) new_cap *= 2;
    if (new_cap > INT32_MAX || (size_t)new_cap > SIZE_MAX / elem) return -1;
    void *p = mem_realloc(*items, (size_t)new_cap * elem);
    if (!p) return -1;
    *items = p;
    *cap = (int)new_cap;
    return 0;
}

struct arena_chunk {
    arena_chunk_t *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
};

enum { ARENA_CHUNK = 64 * 1024 };

void *arena_alloc(arena_t *a, size_t size) {
    size = (size + 15) & ~(size_t)15;
    arena_chunk_t *c = a->head;
    if (!c || c->size - c->used < size) {
        size_t cap = size > ARENA_CHUNK ? size : ARENA_CHUNK;
        if (cap > SIZE_MAX - sizeof(arena_chunk_t)) return NULL;
        c = mem_alloc(sizeof(arena_chunk_t) + cap);
        if (!c) return NULL;
        c->used = 0;
        c->size = cap;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += size;
    memset(p, 0, size);
    return p;
}

char *arena_strndup(arena_t *a, const char *s, size_t n) {
    char *p = arena_alloc(a, n + 1);
    if (p) memcpy(p, s, n);
    return p;
}

char *arena_strdup(arena_t *a, const char *s) {
    return arena_strndup(a, s, strlen(s));
}

void arena_free(arena_t *a) {
    arena_chunk_t *c = a->head;
    while (c) {
        arena_chunk_t *next = c->next;
        mem_free(c);
        c = next;
    }
    a->head = NULL;
}

autosp_status_t set_verror(autosp_error_t *err, autosp_status_t status, const char *fmt,
                           va_list ap) {
    if (err) {
        err->status = status;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
    }
    return status;
}

autosp_status_t set_error(autosp_error_t *err, autosp_status_t status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set_verror(err, status, fmt, ap);
    va_end(ap);
    return status;
}

autosp_status_t set_ok(autosp_error_t *err) {
    if (err) {
        err->status = AUTOSP_OK;
        err->message[0] = '\0';
    }
    return AUTOSP_OK;
}

autosp_status_t nomem(autosp_error_t *err) {
    return set_error(err, AUTOSP_ERR_NOMEM, "out of memory");
}

const char *autosp_status_name(autosp_status_t status) {
    switch (status) {
    case AUTOSP_OK:
        return "ok";
    case AUTOSP_ERR_INVALID:
        return "invalid input";
    case AUTOSP_ERR_LIMIT:
        return "limit exceeded";
    case AUTOSP_ERR_IO:
        return "i/o error";
    case AUTOSP_ERR_NOMEM:
        return "out of memory";
    case AUTOSP_ERR_INTERNAL:
        return "internal error";
    }
    return "unknown status";
}

int autosp_status_exit_code(autosp_status_t status) {
    switch (status) {
    case AUTOSP_OK:
        return 0;
    case AUTOSP_ERR_INVALID:
    case AUTOSP_ERR_LIMIT:
    case AUTOSP_ERR_IO:
        return 2;
    case AUTOSP_ERR_NOMEM:
    case AUTOSP_ERR_INTERNAL:
        return 1;
    }
    return 1;
}

int64_t gcd64(int64_t a, int64_t b) {
    while (b) {
        int64_t t = a % b;
        a = b, b = t;
    }
    return a < 0 ? -a : a;
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
