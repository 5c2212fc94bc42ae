/* cpu_backend.c: the cpu backend's table: one kernel per (op, dtype), one workspace rule per
 * op. f32 values and i32 ids; ops that only move bytes (views, transposes, collectives other
 * than the sum) also run on i32 tensors, since segment ids travel through them. */
#include <cblas.h>

#include "autosp/runtime.h"
#include "backends/cpu/cpu_ops.h"
#include "backends/cpu/parallel.h"

#define F32(op, fn)   [AUTOSP_OP_##op][AUTOSP_F32] = fn
#define BYTES(op, fn) [AUTOSP_OP_##op][AUTOSP_F32] = fn, [AUTOSP_OP_##op][AUTOSP_I32] = fn

static const kernel_fn cpu_kernels[AUTOSP_OP_COUNT][AUTOSP_DTYPE_COUNT] = {
    F32(EMBEDDING, run_embedding),
    F32(MATMUL, run_matmul),
    F32(LINEAR, run_linear),
    F32(ADD, run_add),
    F32(MUL, run_mul),
    F32(SCALE, run_scale),
    F32(RMSNORM, run_rmsnorm),
    F32(LAYERNORM, run_layernorm),
    F32(ROPE, run_rope),
    F32(SILU, run_silu),
    F32(GELU, run_gelu),
    F32(SWIGLU, run_swiglu),
    F32(SOFTMAX, run_softmax),
    F32(ATTENTION, run_attention),
    BYTES(RESHAPE, run_view),
    BYTES(TRANSPOSE, run_transpose),
    F32(CROSS_ENTROPY, run_cross_entropy),
    F32(TARGET_COUNT, run_target_count),
    BYTES(REPEAT, run_repeat),
    BYTES(ALL_TO_ALL, run_all_to_all),
    F32(ALL_REDUCE, run_all_reduce),
    BYTES(ALL_GATHER, run_all_gather),
    F32(FILL, run_fill),
    F32(SUM_TO, run_sum_to),
    F32(EMBEDDING_BACKWARD, run_embedding_backward),
    F32(MATMUL_BACKWARD, run_matmul_backward),
    F32(LINEAR_BACKWARD, run_linear_backward),
    F32(RMSNORM_BACKWARD, run_rmsnorm_backward),
    F32(LAYERNORM_BACKWARD, run_layernorm_backward),
    F32(SILU_BACKWARD, run_silu_backward),
    F32(GELU_BACKWARD, run_gelu_backward),
    F32(SWIGLU_BACKWARD, run_swiglu_backward),
    F32(SOFTMAX_BACKWARD, run_softmax_backward),
    F32(ATTENTION_BACKWARD, run_attention_backward),
    F32(CROSS_ENTROPY_BACKWARD, run_cross_entropy_backward),
    F32(REPEAT_BACKWARD, run_repeat_backward),
    F32(INDEX_ADD, run_index_add),
};

static const workspace_fn cpu_workspace[AUTOSP_OP_COUNT] = {
    [AUTOSP_OP_ATTENTION] = workspace_attention,
    [AUTOSP_OP_ATTENTION_BACKWARD] = workspace_attention_backward,
    [AUTOSP_OP_RMSNORM_BACKWARD] = workspace_norm_backward,
    [AUTOSP_OP_LAYERNORM_BACKWARD] = workspace_norm_backward,
    [AUTOSP_OP_ALL_TO_ALL] = workspace_all_to_all,
    [AUTOSP_OP_ALL_REDUCE] = workspace_all_reduce,
    [AUTOSP_OP_ALL_GATHER] = workspace_all_gather,
};

static const autosp_backend_t cpu = {
    .name = "cpu", .kernels = cpu_kernels, .workspace = cpu_workspace};

const autosp_backend_t *autosp_backend_cpu(void) {
    return &cpu;
}

void autosp_set_num_threads(int n) {
    par_set_threads(n < 1 ? 1 : n);
    openblas_set_num_threads(n < 1 ? 1 : n); /* for BLAS calls outside the library's steps */
}

int autosp_num_threads(void) {
    return par_threads();
}
