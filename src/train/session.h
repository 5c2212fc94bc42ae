/* session.h: what the trainer and the evaluator share: a compiled per-rank program, its
 * executor and the process groups, with the copies between a rank's slice of a tensor and the
 * whole single-device tensor (feeding inputs, gathering outputs) and weights-only loading. */
#ifndef AUTOSP_TRAIN_SESSION_H
#define AUTOSP_TRAIN_SESSION_H

#include "autosp/runtime.h"
#include "ir/ir.h"

typedef struct session {
    autosp_graph_t *g; /* the compiled program, owned */
    autosp_executor_t *ex;
    const autosp_comm_t *comm; /* the caller's, or own_comm */
    autosp_comm_t *own_comm;   /* one process, when the caller gave no comm */
} session_t;

/* s's process groups: comm, or a comm of one process when comm is NULL. */
autosp_status_t session_comm(session_t *s, const autosp_comm_t *comm, autosp_error_t *err);
/* Takes g (freed on failure too) and makes its executor over s's comm. */
autosp_status_t session_start(session_t *s, autosp_graph_t *g, autosp_error_t *err);
void session_close(session_t *s);

/* This rank's slice of the whole-batch tensor `global` into the arena (see autosp_trainer_feed),
 * and the reverse: every rank's slice of a value, gathered into `global` on every rank. */
autosp_status_t session_feed(session_t *s, const char *name, const void *global,
                             autosp_error_t *err);
autosp_status_t session_gather(session_t *s, const char *name, void *global, autosp_error_t *err);
/* Every parameter, in graph order, to a safetensors file (metadata "format": "autosp"),
 * written by world rank 0; every rank returns the outcome. */
autosp_status_t session_save_weights(const session_t *s, const char *path, autosp_error_t *err);
/* st on world rank 0 (a file it wrote) made every rank's: what, path name it in a message. */
autosp_status_t session_outcome(const session_t *s, autosp_status_t st, const char *what,
                                const char *path, autosp_error_t *err);
/* The whole numel of parameter t, and the elements [*lo, *lo + *count) of it this rank's arena
 * holds: all of it, or under ZeRO-3 its shard (the first *count elements of the tensor). */
int64_t session_param_slice(const session_t *s, autosp_tensor_t t, int64_t *lo, int64_t *count);
/* Every parameter (this rank's part of it) from a weights file, names and shapes checked
 * (autosp_trainer_load_weights). */
autosp_status_t session_load_weights(session_t *s, const char *path, autosp_error_t *err);

#endif
