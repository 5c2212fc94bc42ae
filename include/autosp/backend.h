/* autosp/backend.h: where ops are executed.
 *
 * The op table (the IR) says what an op computes; a backend says how one device runs it: a
 * kernel per (op, dtype), and the scratch bytes each kernel needs, which the memory plan
 * reserves. `cpu` (autosp_backend_cpu, in the runtime library) is the one built today.
 *
 *     autosp_backend_check(autosp_backend_cpu(), step, &err);   before anything runs
 *     cfg.backend = autosp_backend_cpu();   autosp_compile_training checks it, the planner
 *                                           plans its workspace
 */
#ifndef AUTOSP_BACKEND_H
#define AUTOSP_BACKEND_H

#include "autosp/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct autosp_backend autosp_backend_t;

/* "cpu"; static storage. */
const char *autosp_backend_name(const autosp_backend_t *backend);
/* Whether the backend has a kernel for op on dtype (a node's dtype is its first output's). */
bool autosp_backend_supports(const autosp_backend_t *backend, autosp_op_t op, autosp_dtype_t dtype);
/* Every node of g has a kernel, or the first that has none is named with its op and dtype:
 * `node "blk0.attn" (attention): the cpu backend has no attention kernel for bf16 (it has f32)`.
 * g needs no bound symbols. */
autosp_status_t autosp_backend_check(const autosp_backend_t *backend, const autosp_graph_t *g,
                                     autosp_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
