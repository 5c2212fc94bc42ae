/* linear_dnnl.c: the bf16 product of linear_bf16.h on oneDNN's matmul primitive (bf16 x bf16,
 * f32 accumulation, f32 or bf16 C), built with AUTOSP_WITH_DNNL.
 *
 * Why oneDNN: Debian's OpenBLAS 0.3.21 has no sbgemm, and oneDNN's bf16 matmul runs at about
 * twice the f32 sgemm's rate on AVX512_BF16 (bench/README.md).
 *
 * Threads: the pool's, as for the f32 sgemm. C is cut into blocks of BLOCK rows (or columns,
 * when N >= M), a fixed size, so the blocks, and so the bits, are the same for every thread
 * count; each block is one single-threaded primitive run on a pool thread (OpenMP at one
 * thread around it). Measured at GPT-2 124M's shapes on 2 threads, this beat one primitive on
 * OpenMP's two threads on every product (lm head dW: 661 against 349 GFLOP/s).
 *
 * Primitives are created at plan time (dnnl_bgemm_prepare, from the workspace rules) and kept
 * in a small table for the process, keyed by the block's shape; a step only looks them up. The
 * scratchpad is the user's: one slice per pool thread, in the node's workspace. */
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "backends/cpu/kernels.h"
#include "backends/cpu/linear_bf16.h"
#include "backends/cpu/parallel.h"

#if DNNL_CPU_RUNTIME != DNNL_RUNTIME_OMP
#error "linear_dnnl.c runs oneDNN one thread per block through omp_set_num_threads: needs OpenMP"
#endif

enum { BLOCK = BGEMM_BLOCK, SCRATCH_ALIGN = 64 };
enum { ARG_A, ARG_B, ARG_C, ARG_BIAS, ARG_SCRATCH, N_ARGS };

/* One block's product: its shape, and the whole operands' leading dims. */
typedef struct prim_key {
    int64_t M, N, K, lda, ldb, ldc;
    bool ta, tb, c_f32, accumulate, bias;
} prim_key_t;

typedef struct entry {
    prim_key_t key;
    dnnl_primitive_t prim; /* NULL: oneDNN has no primitive for it (the portable product runs) */
    int64_t scratch;       /* scratchpad bytes, rounded up to SCRATCH_ALIGN */
    dnnl_memory_t (*mem)[N_ARGS]; /* per pool thread, the data handles set at each run */
} entry_t;

static struct {
    pthread_mutex_t lock; /* the table */
    bool ready, broken;
    dnnl_engine_t engine;
    int slots;                  /* pool threads a run uses: attention_thread_capacity() */
    dnnl_stream_t *stream;      /* per slot */
    pthread_mutex_t *slot_lock; /* per slot: a second executor's inline run also uses slot 0 */
    entry_t **entry;            /* each allocated once and never moved: a run holds its pointers */
    int n, cap;
    int *index; /* open addressing over entry by key: position + 1, 0 empty; at most half full */
    int index_cap;
} dn = {.lock = PTHREAD_MUTEX_INITIALIZER};

static bool init_locked(void) {
    if (dn.ready || dn.broken) return dn.ready;
    dn.broken = true;
    if (dnnl_engine_create(&dn.engine, dnnl_cpu, 0) != dnnl_success) return false;
    dn.slots = attention_thread_capacity();
    dn.stream = calloc((size_t)dn.slots, sizeof *dn.stream);
    dn.slot_lock = calloc((size_t)dn.slots, sizeof *dn.slot_lock);
    if (!dn.stream || !dn.slot_lock) return false;
    for (int s = 0; s < dn.slots; s++) {
        pthread_mutex_init(&dn.slot_lock[s], NULL);
        if (dnnl_stream_create(&dn.stream[s], dn.engine, dnnl_stream_default_flags) != dnnl_success)
            return false;
    }
    dn.broken = false;
    return dn.ready = true;
}

/* ---- blocks -------------------------------------------------------------------------------- */

typedef struct blocking {
    bool by_rows;
    int64_t chunk, n, last; /* block length, count, the last one's length */
} blocking_t;

static blocking_t blocking(const bgemm_t *g) {
    blocking_t b = {.by_rows = g->M > g->N};
    const int64_t dim = b.by_rows ? g->M : g->N;
    b.chunk = dim < BLOCK ? dim : BLOCK;
    b.n = (dim + b.chunk - 1) / b.chunk;
    b.last = dim - (b.n - 1) * b.chunk;
    return b;
}

static prim_key_t block_key(const bgemm_t *g, const blocking_t *b, int64_t len) {
    prim_key_t k;
    memset(&k, 0, sizeof k); /* the padding too: keys are compared with memcmp */
    k.M = b->by_rows ? len : g->M;
    k.N = b->by_rows ? g->N : len;
    k.K = g->K;
    k.lda = g->ta ? g->M : g->K;
    k.ldb = g->tb ? g->K : g->N;
    k.ldc = g->N;
    k.ta = g->ta, k.tb = g->tb, k.c_f32 = g->c_f32, k.accumulate = g->accumulate;
    k.bias = g->bias;
    return k;
}

/* ---- the table ----------------------------------------------------------------------------- */

/* A (rows, cols) matrix with leading dim ld, or stored transposed (cols, rows). */
static dnnl_status_t md_2d(dnnl_memory_desc_t *md, int64_t rows, int64_t cols, int64_t ld,
                           bool transposed, dnnl_data_type_t dt) {
    dnnl_dims_t dims = {rows, cols}, strides = {transposed ? 1 : ld, transposed ? ld : 1};
    return dnnl_memory_desc_init_by_strides(md, 2, dims, dt, strides);
}

static dnnl_status_t create_prim(entry_t *e, dnnl_memory_desc_t md[N_ARGS]) {
    const prim_key_t *k = &e->key;
    dnnl_status_t st;
    if ((st = md_2d(&md[ARG_A], k->M, k->K, k->lda, k->ta, dnnl_bf16)) ||
        (st = md_2d(&md[ARG_B], k->K, k->N, k->ldb, k->tb, dnnl_bf16)) ||
        (st = md_2d(&md[ARG_C], k->M, k->N, k->ldc, false, k->c_f32 ? dnnl_f32 : dnnl_bf16)) ||
        (st = md_2d(&md[ARG_BIAS], 1, k->N, k->N, false, dnnl_bf16)))
        return st;
    dnnl_matmul_desc_t desc;
    st = dnnl_matmul_desc_init(&desc, &md[ARG_A], &md[ARG_B], k->bias ? &md[ARG_BIAS] : NULL,
                               &md[ARG_C]);
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t ops = NULL;
    dnnl_primitive_desc_t pd = NULL;
    if (!st) st = dnnl_primitive_attr_create(&attr);
    if (!st) st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (!st && k->accumulate) { /* C += the product, in f32 */
        st = dnnl_post_ops_create(&ops);
        if (!st) st = dnnl_post_ops_append_sum(ops, 1.0f);
        if (!st) st = dnnl_primitive_attr_set_post_ops(attr, ops);
    }
    if (!st) st = dnnl_primitive_desc_create(&pd, &desc, attr, dn.engine, NULL);
    if (!st) {
        md[ARG_SCRATCH] = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
        const int64_t bytes = (int64_t)dnnl_memory_desc_get_size(&md[ARG_SCRATCH]);
        e->scratch = (bytes + SCRATCH_ALIGN - 1) / SCRATCH_ALIGN * SCRATCH_ALIGN;
        st = dnnl_primitive_create(&e->prim, pd);
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (ops) dnnl_post_ops_destroy(ops);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return st;
}

/* The memory objects each slot runs the primitive with: created here, their buffers set later. */
static dnnl_status_t create_memory(entry_t *e, const dnnl_memory_desc_t md[N_ARGS]) {
    e->mem = calloc((size_t)dn.slots, sizeof *e->mem);
    if (!e->mem) return dnnl_out_of_memory;
    for (int s = 0; s < dn.slots; s++) {
        for (int a = 0; a < N_ARGS; a++) {
            dnnl_status_t st =
                dnnl_memory_create(&e->mem[s][a], &md[a], dn.engine, DNNL_MEMORY_NONE);
            if (st) return st;
        }
    }
    return dnnl_success;
}

static void destroy_entry(entry_t *e) {
    for (int s = 0; e->mem && s < dn.slots; s++) {
        for (int a = 0; a < N_ARGS; a++)
            if (e->mem[s][a]) dnnl_memory_destroy(e->mem[s][a]);
    }
    free(e->mem);
    e->mem = NULL;
    if (e->prim) dnnl_primitive_destroy(e->prim);
    e->prim = NULL;
}

static uint32_t key_hash(const prim_key_t *k) {
    const unsigned char *p = (const unsigned char *)k;
    uint32_t h = 2166136261u; /* FNV-1a over the bytes: the padding is zeroed (block_key) */
    for (size_t i = 0; i < sizeof *k; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

static entry_t *find_locked(const prim_key_t *k) {
    if (!dn.index_cap) return NULL;
    const uint32_t mask = (uint32_t)dn.index_cap - 1;
    for (uint32_t i = key_hash(k) & mask; dn.index[i]; i = (i + 1) & mask)
        if (!memcmp(&dn.entry[dn.index[i] - 1]->key, k, sizeof *k))
            return dn.entry[dn.index[i] - 1];
    return NULL;
}

/* Entry `at` into the index, which grows (rehashed) to stay at most half full. */
static bool index_locked(int at) {
    if (2 * (at + 1) > dn.index_cap) {
        int cap = dn.index_cap ? 2 * dn.index_cap : 128;
        int *grown = calloc((size_t)cap, sizeof *grown);
        if (!grown) return false;
        free(dn.index);
        dn.index = grown, dn.index_cap = cap;
        for (int i = 0; i < at; i++) index_locked(i); /* fits: no growth */
    }
    const uint32_t mask = (uint32_t)dn.index_cap - 1;
    uint32_t i = key_hash(&dn.entry[at]->key) & mask;
    while (dn.index[i]) i = (i + 1) & mask;
    dn.index[i] = at + 1;
    return true;
}

/* The entry of k, created if need be (a failed creation is kept too, without a primitive);
 * NULL when out of memory. The table grows without bound: a plan that found a primitive must
 * find it again when it runs, and a fixed-size table once full made every later plan (max-seq
 * plans dozens of sequence lengths) fall back to the portable product's much larger staging.
 * oneDNN sizes a primitive for OpenMP's thread count at creation: one thread, as it will run. */
static entry_t *get_locked(const prim_key_t *k) {
    entry_t *e = find_locked(k);
    if (e) return e;
    if (dn.n == dn.cap) {
        int cap = dn.cap ? 2 * dn.cap : 64;
        entry_t **grown = realloc(dn.entry, sizeof *grown * (size_t)cap);
        if (!grown) return NULL;
        dn.entry = grown, dn.cap = cap;
    }
    if (!(e = malloc(sizeof *e))) return NULL;
    *e = (entry_t){.key = *k};
    dn.entry[dn.n] = e;
    if (!index_locked(dn.n)) {
        free(e);
        return NULL;
    }
    dn.n++;
    dnnl_memory_desc_t md[N_ARGS];
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    if (create_prim(e, md) || create_memory(e, md)) destroy_entry(e);
    omp_set_num_threads(threads);
    return e;
}

int dnnl_bgemm_cached(void) {
    pthread_mutex_lock(&dn.lock);
    int n = 0;
    for (int i = 0; i < dn.n; i++) n += dn.entry[i]->prim != NULL;
    pthread_mutex_unlock(&dn.lock);
    return n;
}

/* The two block shapes of g (one when every block is whole); false: no primitive for one. */
static bool lookup(const bgemm_t *g, const blocking_t *b, bool create, entry_t *e[2]) {
    if (g->K == 0) return false; /* C = bias: the portable product does that */
    if (g->accumulate && (!g->c_f32 || g->bias)) return false;
    const prim_key_t full = block_key(g, b, b->chunk), last = block_key(g, b, b->last);
    pthread_mutex_lock(&dn.lock);
    bool ok = init_locked();
    if (ok) {
        e[0] = create ? get_locked(&full) : find_locked(&full);
        e[1] = create ? get_locked(&last) : find_locked(&last);
        ok = e[0] && e[1] && e[0]->prim && e[1]->prim;
    }
    pthread_mutex_unlock(&dn.lock);
    return ok;
}

static int64_t scratch_of(entry_t *e[2]) {
    return e[0]->scratch > e[1]->scratch ? e[0]->scratch : e[1]->scratch;
}

int64_t dnnl_bgemm_prepare(const bgemm_t *g) {
    blocking_t b = blocking(g);
    entry_t *e[2];
    if (!lookup(g, &b, true, e)) return -1;
    return dn.slots * scratch_of(e) + SCRATCH_ALIGN;
}

/* ---- a run --------------------------------------------------------------------------------- */

typedef struct run_prod {
    const bgemm_call_t *c;
    blocking_t b;
    entry_t *e[2];
} run_prod_t;

typedef struct run_job {
    run_prod_t prod[BGEMM_MAX_CALLS];
    int n;
    char *scratch;
    int64_t slice; /* bytes of scratchpad per slot */
} run_job_t;

static void run_block(void *ctx, int64_t task, int slot) {
    const run_job_t *j = ctx;
    int i = 0;
    while (task >= j->prod[i].b.n) task -= j->prod[i++].b.n;
    const run_prod_t *p = &j->prod[i];
    const bgemm_t *g = &p->c->g;
    const int64_t lo = task * p->b.chunk, esize = g->c_f32 ? 4 : 2;
    const entry_t *e = p->e[task == p->b.n - 1 ? 1 : 0];
    const prim_key_t *k = &e->key;
    const bf16_t *A = p->c->A, *B = p->c->B, *bias = g->bias ? p->c->bias : NULL;
    char *C = p->c->C;
    if (p->b.by_rows) {
        A += g->ta ? lo : lo * k->lda;
        C += lo * k->ldc * esize;
    } else {
        B += g->tb ? lo * k->ldb : lo;
        C += lo * esize;
        if (bias) bias += lo;
    }
    void *data[N_ARGS] = {(void *)A, (void *)B, C, (void *)bias, j->scratch + slot * j->slice};
    static const int arg_id[N_ARGS] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST, DNNL_ARG_BIAS,
                                       DNNL_ARG_SCRATCHPAD};
    dnnl_exec_arg_t args[N_ARGS];
    int n = 0;
    pthread_mutex_lock(&dn.slot_lock[slot]);
    for (int a = 0; a < N_ARGS; a++) {
        if (a == ARG_BIAS && !bias) continue;
        if (a == ARG_SCRATCH && !e->scratch) continue;
        AUTOSP_ASSERT(dnnl_memory_set_data_handle(e->mem[slot][a], data[a]) == dnnl_success);
        args[n++] = (dnnl_exec_arg_t){arg_id[a], e->mem[slot][a]};
    }
    const int threads = omp_get_max_threads();
    if (threads != 1) omp_set_num_threads(1);
    AUTOSP_ASSERT(dnnl_primitive_execute(e->prim, dn.stream[slot], n, args) == dnnl_success);
    AUTOSP_ASSERT(dnnl_stream_wait(dn.stream[slot]) == dnnl_success);
    if (threads != 1) omp_set_num_threads(threads);
    pthread_mutex_unlock(&dn.slot_lock[slot]);
}

/* The products' blocks, in the order given, are one list of tasks on the pool: the first
 * product's blocks are handed out first (give the one with the longest blocks first). */
bool dnnl_bgemm_run(const bgemm_call_t *calls, int n, void *workspace) {
    run_job_t j = {.n = n};
    int64_t tasks = 0;
    for (int i = 0; i < n; i++) {
        run_prod_t *p = &j.prod[i];
        p->c = &calls[i];
        p->b = blocking(&calls[i].g);
        if (!lookup(&calls[i].g, &p->b, false, p->e)) return false;
        if (scratch_of(p->e) > j.slice) j.slice = scratch_of(p->e);
        tasks += p->b.n;
    }
    j.scratch =
        (char *)(((uintptr_t)workspace + SCRATCH_ALIGN - 1) & ~(uintptr_t)(SCRATCH_ALIGN - 1));
    par_run(tasks, dn.slots, run_block, &j);
    return true;
}
