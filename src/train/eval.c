/* eval.c: the forward program alone, on the executor: loss and kept tensors of a batch. */
#include <string.h>

#include "autosp/eval.h"
#include "autosp/passes.h"
#include "autosp/train.h"
#include "comm/comm.h"
#include "train/session.h"

struct autosp_evaluator {
    session_t s;
};

/* forward with the kept tensors as outputs (so the memory plan keeps them), compiled for the
 * comm's world: the parallel passes, no autodiff. */
static autosp_graph_t *compile_forward(const autosp_graph_t *forward, const char *const *keep,
                                       int n_keep, const autosp_comm_t *comm, autosp_error_t *err) {
    autosp_graph_t *g = autosp_graph_clone(forward);
    if (!g) return nomem(err), NULL;
    for (int i = 0; i < n_keep; i++) {
        autosp_tensor_t t = autosp_tensor_find(g, keep[i]);
        if (t < 0 || autosp_output(g, t) != AUTOSP_OK) {
            set_error(err, AUTOSP_ERR_INVALID,
                      "evaluator: graph \"%s\" has no tensor \"%s\" to keep",
                      autosp_graph_name(forward), keep[i]);
            autosp_graph_free(g);
            return NULL;
        }
    }
    autosp_parallel_config_t cfg = autosp_parallel_config_default();
    cfg.sp = comm->sp_size;
    cfg.ring = comm->ring_size;
    cfg.dp = comm->dp_size;
    cfg.backend = autosp_backend_cpu();
    autosp_graph_t *per_rank = cfg.sp * cfg.dp > 1 ? autosp_parallelize(g, &cfg, err) : g;
    if (per_rank != g) autosp_graph_free(g);
    if (per_rank && autosp_backend_check(cfg.backend, per_rank, err) != AUTOSP_OK) {
        autosp_graph_free(per_rank);
        return NULL;
    }
    return per_rank;
}

autosp_evaluator_t *autosp_evaluator_new(const autosp_graph_t *forward, const char *const *keep,
                                         int n_keep, const autosp_comm_t *comm,
                                         autosp_error_t *err) {
    autosp_error_t local;
    if (!err) err = &local;
    autosp_evaluator_t *ev = mem_calloc(1, sizeof *ev);
    if (!ev) return nomem(err), NULL;
    autosp_status_t st = autosp_graph_verify(forward, AUTOSP_VERIFY_BOUND, err);
    if (st == AUTOSP_OK) st = session_comm(&ev->s, comm, err);
    if (st == AUTOSP_OK)
        st = session_start(&ev->s, compile_forward(forward, keep, n_keep, ev->s.comm, err), err);
    if (st != AUTOSP_OK) {
        autosp_evaluator_free(ev);
        return NULL;
    }
    return ev;
}

void autosp_evaluator_free(autosp_evaluator_t *ev) {
    if (!ev) return;
    session_close(&ev->s);
    mem_free(ev);
}

void *autosp_evaluator_data(autosp_evaluator_t *ev, const char *name) {
    return autosp_executor_data(ev->s.ex, name);
}

autosp_status_t autosp_evaluator_feed(autosp_evaluator_t *ev, const char *name, const void *global,
                                      autosp_error_t *err) {
    return session_feed(&ev->s, name, global, err);
}

autosp_status_t autosp_evaluator_run(autosp_evaluator_t *ev, float *loss, autosp_error_t *err) {
    autosp_status_t st = autosp_executor_run(ev->s.ex, err);
    autosp_tensor_t out = autosp_graph_output(ev->s.g, 0);
    if (st == AUTOSP_OK && loss)
        *loss = *(float *)autosp_executor_data(ev->s.ex, autosp_tensor_name(ev->s.g, out));
    return st;
}

autosp_status_t autosp_evaluator_gather(autosp_evaluator_t *ev, const char *name, void *global,
                                        autosp_error_t *err) {
    return session_gather(&ev->s, name, global, err);
}

autosp_status_t autosp_evaluator_load_weights(autosp_evaluator_t *ev, const char *path,
                                              autosp_error_t *err) {
    autosp_error_t local;
    return session_load_weights(&ev->s, path, err ? err : &local);
}

autosp_status_t autosp_evaluator_copy_weights(autosp_evaluator_t *ev, autosp_trainer_t *tr,
                                              autosp_error_t *err) {
    const autosp_graph_t *g = ev->s.g;
    for (autosp_tensor_t t = 0; t < g->n_tensors; t++) {
        if (g->tensors[t].kind != AUTOSP_KIND_PARAM) continue;
        const void *from = autosp_trainer_data(tr, g->tensors[t].name);
        if (!from)
            return set_error(err, AUTOSP_ERR_INVALID,
                             "evaluator: the trainer has no parameter \"%s\"", g->tensors[t].name);
        memcpy(autosp_executor_data(ev->s.ex, g->tensors[t].name), from,
               (size_t)autosp_tensor_numel(g, t) * autosp_dtype_size(g->tensors[t].dtype));
    }
    return set_ok(err);
}

int64_t autosp_evaluator_arena_bytes(const autosp_evaluator_t *ev) {
    return autosp_executor_arena_bytes(ev->s.ex);
}

const autosp_graph_t *autosp_evaluator_graph(const autosp_evaluator_t *ev) {
    return ev->s.g;
}
