/* autosp/types.h: the small enums shared by the IR, the op table and the tools. */
#ifndef AUTOSP_TYPES_H
#define AUTOSP_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum autosp_dtype {
    AUTOSP_F32,
    AUTOSP_BF16,
    AUTOSP_F16,
    AUTOSP_I32,
    AUTOSP_I64,
    AUTOSP_DTYPE_COUNT
} autosp_dtype_t;

/* What a graph tensor is: fed by the caller each step, a trained parameter, or computed. */
typedef enum autosp_kind {
    AUTOSP_KIND_INPUT,
    AUTOSP_KIND_PARAM,
    AUTOSP_KIND_VALUE,
} autosp_kind_t;

/* What a graph input carries; the sequence-parallel passes key off it. */
typedef enum autosp_role {
    AUTOSP_ROLE_OTHER,
    AUTOSP_ROLE_TOKENS,
    AUTOSP_ROLE_LABELS,
    AUTOSP_ROLE_POSITIONS,
    AUTOSP_ROLE_MASK,
    AUTOSP_ROLE_SEGMENT_IDS,
    AUTOSP_ROLE_COUNT
} autosp_role_t;

/* How a parameter is initialised (the trainer reads it; the compiler only carries it). */
typedef enum autosp_init {
    AUTOSP_INIT_NORMAL, /* N(0, std^2) */
    AUTOSP_INIT_ZEROS,
    AUTOSP_INIT_ONES,
    AUTOSP_INIT_COUNT
} autosp_init_t;

/* The op enum. Every op has exactly one entry in the op table (src/ir/op_table.c). */
typedef enum autosp_op {
    AUTOSP_OP_EMBEDDING,
    AUTOSP_OP_MATMUL,
    AUTOSP_OP_LINEAR,
    AUTOSP_OP_ADD,
    AUTOSP_OP_MUL,
    AUTOSP_OP_SCALE,
    AUTOSP_OP_RMSNORM,
    AUTOSP_OP_LAYERNORM,
    AUTOSP_OP_ROPE,
    AUTOSP_OP_SILU,
    AUTOSP_OP_GELU,
    AUTOSP_OP_SWIGLU,
    AUTOSP_OP_SOFTMAX,
    AUTOSP_OP_ATTENTION,
    AUTOSP_OP_RESHAPE,
    AUTOSP_OP_TRANSPOSE,
    AUTOSP_OP_CROSS_ENTROPY,
    AUTOSP_OP_TARGET_COUNT,
    AUTOSP_OP_REPEAT,
    AUTOSP_OP_ALL_TO_ALL,
    AUTOSP_OP_ALL_REDUCE,
    AUTOSP_OP_ALL_GATHER,
    /* constants and gradients: what the autodiff pass emits */
    AUTOSP_OP_FILL,
    AUTOSP_OP_SUM_TO,
    AUTOSP_OP_EMBEDDING_BACKWARD,
    AUTOSP_OP_MATMUL_BACKWARD,
    AUTOSP_OP_LINEAR_BACKWARD,
    AUTOSP_OP_RMSNORM_BACKWARD,
    AUTOSP_OP_LAYERNORM_BACKWARD,
    AUTOSP_OP_SILU_BACKWARD,
    AUTOSP_OP_GELU_BACKWARD,
    AUTOSP_OP_SWIGLU_BACKWARD,
    AUTOSP_OP_SOFTMAX_BACKWARD,
    AUTOSP_OP_ATTENTION_BACKWARD,
    AUTOSP_OP_CROSS_ENTROPY_BACKWARD,
    AUTOSP_OP_REPEAT_BACKWARD,
    AUTOSP_OP_INDEX_ADD, /* base + rows of src added at ids: a tied embedding's gradient */
    AUTOSP_OP_COUNT
} autosp_op_t;

/* Names as they appear in JSON ("f32", "tokens", "rmsnorm", ...). Static storage. */
const char *autosp_dtype_name(autosp_dtype_t dtype);
const char *autosp_role_name(autosp_role_t role);
const char *autosp_init_name(autosp_init_t init);
const char *autosp_op_name(autosp_op_t op);
size_t autosp_dtype_size(autosp_dtype_t dtype);

/* Reverse lookups; return false when the name is unknown. */
bool autosp_dtype_from_name(const char *name, autosp_dtype_t *out);
bool autosp_role_from_name(const char *name, autosp_role_t *out);
bool autosp_init_from_name(const char *name, autosp_init_t *out);
bool autosp_op_from_name(const char *name, autosp_op_t *out);

#ifdef __cplusplus
}
#endif
#endif
