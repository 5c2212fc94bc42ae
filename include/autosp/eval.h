/* autosp/eval.h: forward-only evaluation of a model, in one process or on every rank.
 *
 * An evaluator compiles the forward graph alone (the parallel passes for comm's sp and dp; no
 * backward, no checkpointing, no optimizer), so its memory plan holds one forward's
 * activations and nothing else. The loss is the single-device loss of the whole batch, as in
 * training; tensors named in `keep` (the logits, say) stay readable after a run, and a
 * sequence-split one can be gathered whole.
 *
 *     const char *keep[] = {"logits"};
 *     autosp_evaluator_t *ev = autosp_evaluator_new(forward, keep, 1, comm, &err);
 *     autosp_evaluator_load_weights(ev, "run/model.safetensors", &err);
 *     autosp_evaluator_feed(ev, "tokens", tokens, &err);  ... labels, positions ...
 *     float loss;
 *     autosp_evaluator_run(ev, &loss, &err);
 *     autosp_evaluator_gather(ev, "logits", all_logits, &err);
 *     autosp_evaluator_free(ev);
 */
#ifndef AUTOSP_EVAL_H
#define AUTOSP_EVAL_H

#include "autosp/comm.h"
#include "autosp/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct autosp_evaluator autosp_evaluator_t;
typedef struct autosp_trainer autosp_trainer_t; /* autosp/train.h */

/* forward: the single-device forward graph, first output a scalar loss, B bound to the
 * per-rank batch and S to the whole sequence (as for autosp_trainer_new_comm). keep: n_keep
 * names of forward tensors to keep after a run (may be NULL when n_keep is 0; each must exist:
 * the error names it). comm: NULL for one process; else it must outlive the evaluator, and
 * every rank makes the same calls. The parameters hold no meaningful values until they are
 * loaded (autosp_evaluator_load_weights) or copied (autosp_evaluator_copy_weights). err may
 * be NULL. Free with autosp_evaluator_free. */
autosp_evaluator_t *autosp_evaluator_new(const autosp_graph_t *forward, const char *const *keep,
                                         int n_keep, const autosp_comm_t *comm,
                                         autosp_error_t *err);
void autosp_evaluator_free(autosp_evaluator_t *ev); /* NULL: nothing */

/* A tensor of the per-rank forward program (inputs, parameters, the loss, the kept tensors),
 * as autosp_executor_data; NULL for an unknown name. */
void *autosp_evaluator_data(autosp_evaluator_t *ev, const char *name);
/* This rank's slice of a whole-batch input (as autosp_trainer_feed). */
autosp_status_t autosp_evaluator_feed(autosp_evaluator_t *ev, const char *name, const void *global,
                                      autosp_error_t *err);
/* Runs the forward once; *loss (may be NULL) gets the loss. Collective. */
autosp_status_t autosp_evaluator_run(autosp_evaluator_t *ev, float *loss, autosp_error_t *err);
/* A kept tensor whole, on every rank: each rank's slice of the batch (the data group) and of
 * the sequence (the sequence group) put in its place, laid out as in the single-device graph.
 * global: the caller's buffer of the whole tensor's bytes. Collective. Errors: an unknown
 * name, a parameter, a tensor split by heads or holding a partial sum. */
autosp_status_t autosp_evaluator_gather(autosp_evaluator_t *ev, const char *name, void *global,
                                        autosp_error_t *err);
/* Every parameter from a weights file (safetensors: autosp-train's model.safetensors, or a
 * checkpoint, whose optimizer state is skipped): every missing or extra tensor is named, and
 * a tensor of another shape or dtype is named with both shapes. */
autosp_status_t autosp_evaluator_load_weights(autosp_evaluator_t *ev, const char *path,
                                              autosp_error_t *err);
/* The trainer's current parameters (the same forward graph, the same comm layout). */
autosp_status_t autosp_evaluator_copy_weights(autosp_evaluator_t *ev, autosp_trainer_t *tr,
                                              autosp_error_t *err);
/* The arena of the forward program (the evaluator's one allocation), in bytes. */
int64_t autosp_evaluator_arena_bytes(const autosp_evaluator_t *ev);
/* The per-rank forward program (owned by ev). */
const autosp_graph_t *autosp_evaluator_graph(const autosp_evaluator_t *ev);

#ifdef __cplusplus
}
#endif
#endif
