/* cpu_ops.h: how the cpu backend's kernel table is filled.
 *
 * A kernel adapter (kernel_fn, src/ir/backend.h) turns a node's shapes, attributes and buffers
 * into one call of a kernel (kernels.h). Each family file (elementwise.c, norm.c, linear.c, ...)
 * keeps its adapters next to its kernels and ends with its registration rows, one per
 * (op, dtype); cpu_backend.c builds the [op][dtype] table from the list of families once. So a
 * new op's cpu kernel lives in one file: the kernel, its adapter and its rows. */
#ifndef AUTOSP_CPU_OPS_H
#define AUTOSP_CPU_OPS_H

#include "ir/backend.h"

typedef struct cpu_kernel_reg {
    autosp_op_t op;
    autosp_dtype_t dtype;
    kernel_fn run;
    workspace_fn workspace; /* scratch bytes this (op, dtype) kernel needs; NULL: none */
} cpu_kernel_reg_t;

typedef struct cpu_family {
    const char *name;
    const cpu_kernel_reg_t *rows;
    int n_rows;
} cpu_family_t;

/* One row: CPU_KERNEL(GELU, F32, run_gelu), or with a workspace rule
 * CPU_KERNEL(ATTENTION, F32, run_attention, .workspace = workspace_attention). */
#define CPU_KERNEL(op_, dtype_, run_, ...)                                                         \
    { .op = AUTOSP_OP_##op_, .dtype = AUTOSP_##dtype_, .run = run_, __VA_ARGS__ }

/* The last line of a family file: CPU_FAMILY(elementwise, kernels) defines cpu_elementwise. */
#define CPU_FAMILY(family, table)                                                                  \
    const cpu_family_t cpu_##family = {                                                            \
        .name = #family, .rows = table, .n_rows = (int)ARRAY_LEN(table)}

extern const cpu_family_t cpu_elementwise, cpu_norm, cpu_linear, cpu_embedding, cpu_rope,
    cpu_attention, cpu_cross_entropy, cpu_repeat, cpu_collectives, cpu_layout, cpu_cast;

/* Helpers the adapters share (run_ops.c). */
#define F(p)   ((float *)(p))
#define CF(p)  ((const float *)(p))
#define I32(p) ((const int32_t *)(p))

static inline int64_t last_dim(const cshape_t *s) {
    return s->ndim ? s->d[s->ndim - 1] : 1;
}
static inline int64_t rows_of(const cshape_t *s) {
    return s->numel / (last_dim(s) ? last_dim(s) : 1);
}
/* Zeroes a tensor of shape s, on the pool (the embedding's gradient is 154 MB for GPT-2). */
void cpu_zero(void *p, const cshape_t *s);
/* Input `input` holds ids in [0, limit), except `allowed` (ignore_index; CPU_NO_EXCEPTION:
 * none), or the error names the node, the input and the first bad id. */
#define CPU_NO_EXCEPTION INT64_MIN
autosp_status_t cpu_check_ids(const kernel_args_t *r, int input, int64_t limit, int64_t allowed);

#endif
