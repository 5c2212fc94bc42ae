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

/* The op enum, one value per entry of autosp/ops.def, in its order; the op table
 * (src/ir/op_table.c) is built from the same list. */
#define AUTOSP_OP(id, ...)        AUTOSP_OP_##id,
#define AUTOSP_BACKWARD(fwd, ...) AUTOSP_OP_##fwd##_BACKWARD,
#define AUTOSP_ATTRS(...)
typedef enum autosp_op {
#include "autosp/ops.def"
    AUTOSP_OP_COUNT
} autosp_op_t;
#undef AUTOSP_OP
#undef AUTOSP_BACKWARD
#undef AUTOSP_ATTRS

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
