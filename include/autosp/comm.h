/* autosp/comm.h: the process groups of a sequence- and data-parallel run (Open MPI).
 *
 * World = dp x sp ranks. Sequence groups are blocks of sp consecutive ranks (so the all-to-alls
 * around attention stay inside a node when ranks are placed by core); data groups join the
 * ranks that hold the same sequence slice. The program owns MPI_Init and MPI_Finalize:
 *
 *     MPI_Init(&argc, &argv);
 *     autosp_comm_t *comm = autosp_comm_new(MPI_COMM_WORLD, sp, &err);
 *     ... autosp_executor_new_comm(per_rank_graph, comm, &err) or autosp_trainer_new_comm ...
 *     autosp_comm_free(comm);
 *     MPI_Finalize();
 */
#ifndef AUTOSP_COMM_H
#define AUTOSP_COMM_H

#include <mpi.h>

#include "autosp/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct autosp_comm autosp_comm_t;

/* Splits world (which the comm duplicates; the caller keeps its own) into groups of sp.
 * Errors: sp < 1, or world's size not a multiple of sp. Free with autosp_comm_free before
 * MPI_Finalize. Collective over world: every rank must call it. */
autosp_comm_t *autosp_comm_new(MPI_Comm world, int sp, autosp_error_t *err);
void autosp_comm_free(autosp_comm_t *comm);

int autosp_comm_rank(const autosp_comm_t *comm); /* in world */
int autosp_comm_size(const autosp_comm_t *comm);
int autosp_comm_sp_rank(const autosp_comm_t *comm); /* position in the sequence group */
int autosp_comm_sp_size(const autosp_comm_t *comm);
int autosp_comm_dp_rank(const autosp_comm_t *comm); /* position in the data group */
int autosp_comm_dp_size(const autosp_comm_t *comm);
/* World, to let the program broadcast its own data; owned by the comm. */
MPI_Comm autosp_comm_world(const autosp_comm_t *comm);

/* Ranks of world on this rank's node (MPI_COMM_TYPE_SHARED): what the thread count divides. */
int autosp_comm_local_size(const autosp_comm_t *comm);
/* autosp_default_num_threads(autosp_comm_local_size(comm)): AUTOSP_NUM_THREADS, else the CPUs
 * this process may use divided by the node's ranks (at least 1), so that ranks x threads does
 * not exceed them. Give it to autosp_set_num_threads. */
int autosp_comm_fair_threads(const autosp_comm_t *comm);

#ifdef __cplusplus
}
#endif
#endif
