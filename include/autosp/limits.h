/* autosp/limits.h: hard limits on graphs, so that a hostile file cannot make the library
 * allocate without bound or overflow an integer. Exceeding one is AUTOSP_ERR_LIMIT. */
#ifndef AUTOSP_LIMITS_H
#define AUTOSP_LIMITS_H

#define AUTOSP_MAX_DIMS         6         /* rank of a tensor */
#define AUTOSP_MAX_SYMBOLS      32        /* distinct shape symbols in one graph */
#define AUTOSP_MAX_DIM_FACTORS  8         /* symbols multiplied in one dim or element count */
#define AUTOSP_MAX_NAME         256       /* bytes in a tensor, node, symbol or graph name */
#define AUTOSP_MAX_NODES        (1 << 20) /* nodes in one graph */
#define AUTOSP_MAX_TENSORS      (1 << 21) /* tensors (inputs + params + values) in one graph */
#define AUTOSP_MAX_NODE_INPUTS  8
#define AUTOSP_MAX_NODE_OUTPUTS 8
#define AUTOSP_MAX_DIM_VALUE    (1LL << 40)  /* one dim, and any coefficient in a dim */
#define AUTOSP_MAX_NUMEL        (1LL << 50)  /* elements in one tensor once symbols are bound */
#define AUTOSP_MAX_FILE_BYTES   (256L << 20) /* size of a JSON graph file */

#endif
