/* cpu_backend.c: the cpu backend's table: one kernel per (op, dtype), each with its workspace
 * rule, built once from the registration rows at the end of each family file (cpu_ops.h). f32
 * values and i32 ids; ops that only move bytes (views, transposes, collectives other than the
 * sum) also run on i32 tensors, since segment ids travel through them. */
#include <cblas.h>
#include <pthread.h>

#include "autosp/runtime.h"
#include "backends/cpu/cpu_ops.h"
#include "backends/cpu/parallel.h"

static const cpu_family_t *const families[] = {
    &cpu_elementwise, &cpu_norm,          &cpu_linear,      &cpu_embedding,   &cpu_rope,
    &cpu_attention,   &cpu_cross_entropy, &cpu_repeat,      &cpu_collectives, &cpu_layout,
    &cpu_cast,        &cpu_mlp,           &cpu_norm_linear, &cpu_ring_attention,
};

static kernel_fn kernels[AUTOSP_OP_COUNT][AUTOSP_DTYPE_COUNT];
static workspace_fn workspace[AUTOSP_OP_COUNT][AUTOSP_DTYPE_COUNT];
static kernel_fn starts[AUTOSP_OP_COUNT][AUTOSP_DTYPE_COUNT];
/* One parallel region for a whole run: OpenBLAS stays single-threaded throughout, so its
 * threads do not wake and spin between the kernels (parallel.h). */
static autosp_backend_t cpu = {.name = "cpu", .begin_run = par_begin, .end_run = par_end};
static pthread_once_t built = PTHREAD_ONCE_INIT;

/* A row registered twice is a bug in a family file. */
static void add_row(const cpu_kernel_reg_t *row) {
    AUTOSP_ASSERT((unsigned)row->op < AUTOSP_OP_COUNT && (unsigned)row->dtype < AUTOSP_DTYPE_COUNT);
    AUTOSP_ASSERT(row->run && !kernels[row->op][row->dtype]);
    kernels[row->op][row->dtype] = row->run;
    workspace[row->op][row->dtype] = row->workspace;
    starts[row->op][row->dtype] = row->start;
}

static void build(void) {
    for (size_t f = 0; f < ARRAY_LEN(families); f++)
        for (int i = 0; i < families[f]->n_rows; i++) add_row(&families[f]->rows[i]);
    cpu.kernels = (const kernel_fn(*)[AUTOSP_DTYPE_COUNT])kernels; /* read-only from here on */
    cpu.workspace = (const workspace_fn(*)[AUTOSP_DTYPE_COUNT])workspace;
    cpu.starts = (const kernel_fn(*)[AUTOSP_DTYPE_COUNT])starts;
}

const autosp_backend_t *autosp_backend_cpu(void) {
    pthread_once(&built, build);
    return &cpu;
}

void autosp_set_num_threads(int n) {
    par_set_threads(n < 1 ? 1 : n);
    openblas_set_num_threads(n < 1 ? 1 : n); /* for BLAS calls outside the library's steps */
}

int autosp_num_threads(void) {
    return par_threads();
}
