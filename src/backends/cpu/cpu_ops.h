/* cpu_ops.h: how the cpu backend's kernel table is filled.
 *
 * A kernel adapter (kernel_fn, src/ir/backend.h) turns a node's shapes, attributes and buffers
 * into one call of a kernel (kernels.h). Each family file (elementwise.c, norm.c, linear.c, ...)
 * keeps its adapters next to its kernels and ends with its registration rows, one per
 * (op, dtype); cpu_backend.c builds the [op][dtype] table from the list of families once. So a
 * new op's cpu kernel lives in one file: the kernel, its adapter and its rows. */
#ifndef AUTOSP_CPU_OPS_H
#define AUTOSP_CPU_OPS_H

#include "comm/comm.h"
#include "ir/backend.h"

typedef struct cpu_kernel_reg {
    autosp_op_t op;
    autosp_dtype_t dtype;
    kernel_fn run;
    workspace_fn workspace; /* scratch bytes this (op, dtype) kernel needs; NULL: none */
    kernel_fn start;        /* begins the node ahead of its place (ir/backend.h); NULL: none */
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
    cpu_attention, cpu_cross_entropy, cpu_repeat, cpu_collectives, cpu_layout, cpu_cast, cpu_mlp,
    cpu_norm_linear, cpu_ring_attention;

/* bf16 through f32 (staged.c): the op's f32 adapter run on blocks of rows, the bf16 tensors
 * widened into the workspace on the way in and rounded on the way out. Bit k of rows_in
 * (rows_out) cuts input (output) k into rows; the other tensors are whole: inputs widened once,
 * and outputs summed over the blocks, so a whole output must be a sum over the rows (a
 * parameter's gradient). The f32 adapter must read its shapes through numel, rows_of and
 * last_dim only, since a block's shapes are (1, .., rows, last). When the split tensors' rows
 * disagree, or one is 1-D, one block holds the whole node. */
typedef struct cpu_stage {
    kernel_fn f32;
    workspace_fn f32_workspace; /* the f32 adapter's rule, or NULL */
    unsigned rows_in, rows_out;
} cpu_stage_t;
autosp_status_t cpu_run_staged(const kernel_args_t *r, const cpu_stage_t *st);
int64_t cpu_staged_workspace(const cost_ctx_t *c, const cpu_stage_t *st);
/* CPU_STAGED(silu, run_silu, NULL, 1, 1) defines run_silu_bf16 and workspace_silu_bf16;
 * CPU_STAGED_ROW(SILU, silu) is its table row. */
#define CPU_STAGED(name, f32_, rule_, in_, out_)                                                   \
    static const cpu_stage_t name##_stage = {f32_, rule_, in_, out_};                              \
    static autosp_status_t run_##name##_bf16(const kernel_args_t *r) {                             \
        return cpu_run_staged(r, &name##_stage);                                                   \
    }                                                                                              \
    static int64_t workspace_##name##_bf16(const cost_ctx_t *c) {                                  \
        return cpu_staged_workspace(c, &name##_stage);                                             \
    }
#define CPU_STAGED_ROW(op_, name)                                                                  \
    CPU_KERNEL(op_, BF16, run_##name##_bf16, .workspace = workspace_##name##_bf16)
/* bf16 <-> f32 of n elements, on the pool (round: to nearest even) */
void cpu_widen(float *dst, const void *src, int64_t n);
void cpu_round(void *dst, const float *src, int64_t n);
/* Rows of row_elems elements in a staging block (for kernels that stage by hand). */
int64_t cpu_stage_rows(int64_t row_elems);

/* For the kernels that communicate (collectives.c): the group node r->c->node names, checked
 * against its "ranks" attribute; and a failed exchange's message prefixed with the node. */
autosp_status_t cpu_comm_group(const kernel_args_t *r, comm_group_t *group, int *size);
autosp_status_t cpu_comm_named(const kernel_args_t *r, autosp_status_t st);

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
