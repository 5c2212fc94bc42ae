/* autosp/comm.h: the process groups of a sequence- and data-parallel run.
 *
 * World = dp x sp ranks. Sequence groups are blocks of sp consecutive ranks (so the all-to-alls
 * around attention stay inside a node when ranks are placed by core); data groups join the
 * ranks that hold the same sequence slice. A comm runs on Open MPI (autosp/comm_mpi.h, in a
 * build with AUTOSP_WITH_MPI) or in one process (autosp_comm_new_single: every group has one
 * rank, every collective is a copy). Nothing here needs mpi.h:
 *
 *     autosp_world_init(&argc, &argv, &err);          MPI_Init under MPI, nothing otherwise
 *     autosp_comm_t *comm = autosp_comm_new_world(sp, &err);
 *     ... autosp_executor_new_comm(per_rank_graph, comm, &err) or autosp_trainer_new_comm ...
 *     autosp_comm_free(comm);
 *     autosp_world_finalize();
 */
#ifndef AUTOSP_COMM_H
#define AUTOSP_COMM_H

#include <stddef.h>

#include "autosp/status.h"
#include "autosp/types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct autosp_comm autosp_comm_t;

/* Whether this build runs collectives on MPI (AUTOSP_WITH_MPI). */
bool autosp_have_mpi(void);

/* Starts the world of processes: MPI_Init (unless the program did already) in an MPI build,
 * nothing otherwise. argc and argv may be NULL. autosp_world_finalize ends what it started. */
autosp_status_t autosp_world_init(int *argc, char ***argv, autosp_error_t *err);
void autosp_world_finalize(void);
/* This process's rank in the world and the world's size (0 and 1 without MPI, or before
 * autosp_world_init). */
int autosp_world_rank(void);
int autosp_world_size(void);

/* Every process of the world, split into groups of sp (MPI_COMM_WORLD under MPI; without MPI
 * a world of one process, so sp must be 1). Collective: every rank calls it. Errors: sp < 1,
 * or the world's size not a multiple of sp. Free with autosp_comm_free (before
 * autosp_world_finalize). */
autosp_comm_t *autosp_comm_new_world(int sp, autosp_error_t *err);
/* The same, each sequence group a ring of `ring` Ulysses groups of sp / ring consecutive ranks
 * (2-D sequence parallelism: ring attention between the Ulysses groups); ring 1 is
 * autosp_comm_new_world. Errors also: ring < 1 or not dividing sp. */
autosp_comm_t *autosp_comm_new_world_ring(int sp, int ring, autosp_error_t *err);
/* One process alone: sp = dp = 1. */
autosp_comm_t *autosp_comm_new_single(autosp_error_t *err);
void autosp_comm_free(autosp_comm_t *comm); /* NULL: nothing */

int autosp_comm_rank(const autosp_comm_t *comm); /* in the world */
int autosp_comm_size(const autosp_comm_t *comm);
int autosp_comm_sp_rank(const autosp_comm_t *comm); /* position in the sequence group */
int autosp_comm_sp_size(const autosp_comm_t *comm);
int autosp_comm_dp_rank(const autosp_comm_t *comm); /* position in the data group */
int autosp_comm_dp_size(const autosp_comm_t *comm);
int autosp_comm_ring_size(const autosp_comm_t *comm); /* the rings of a sequence group: 1 or more */
int autosp_comm_ring_rank(const autosp_comm_t *comm); /* position in the ring */
/* "mpi" or "single"; static storage. */
const char *autosp_comm_kind(const autosp_comm_t *comm);

/* Ranks of the world on this rank's node: what the thread count divides. */
int autosp_comm_local_size(const autosp_comm_t *comm);
/* autosp_default_num_threads(autosp_comm_local_size(comm)): AUTOSP_NUM_THREADS, else the CPUs
 * this process may use divided by the node's ranks (at least 1), so that ranks x threads does
 * not exceed them. Give it to autosp_set_num_threads. */
int autosp_comm_fair_threads(const autosp_comm_t *comm);

/* For a program's own small decisions over the world (a file that failed to open on rank 0,
 * counts of an evaluation): collective, every rank calls them. */
/* bytes of world rank 0's buf, to buf on every rank */
autosp_status_t autosp_comm_broadcast(const autosp_comm_t *comm, void *buf, size_t bytes,
                                      autosp_error_t *err);
/* element-wise sum over the world of n values of dtype (AUTOSP_F32, AUTOSP_I32 or AUTOSP_I64),
 * in place */
autosp_status_t autosp_comm_sum(const autosp_comm_t *comm, void *values, size_t n,
                                autosp_dtype_t dtype, autosp_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
