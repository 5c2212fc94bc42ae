/* autosp/comm_mpi.h: a comm over a communicator the program brings (an MPI build only:
 * AUTOSP_WITH_MPI; this header includes mpi.h). The program owns MPI_Init and MPI_Finalize:
 *
 *     MPI_Init(&argc, &argv);
 *     autosp_comm_t *comm = autosp_comm_new_mpi(MPI_COMM_WORLD, sp, &err);
 *     ...
 *     autosp_comm_free(comm);
 *     MPI_Finalize();
 */
#ifndef AUTOSP_COMM_MPI_H
#define AUTOSP_COMM_MPI_H

#include <mpi.h>

#include "autosp/comm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Splits world (which the comm duplicates; the caller keeps its own) into groups of sp.
 * Errors: sp < 1, or world's size not a multiple of sp. Free with autosp_comm_free before
 * MPI_Finalize. Collective over world: every rank must call it. */
autosp_comm_t *autosp_comm_new_mpi(MPI_Comm world, int sp, autosp_error_t *err);
/* The same with rings (autosp_comm_new_world_ring). */
autosp_comm_t *autosp_comm_new_mpi_ring(MPI_Comm world, int sp, int ring, autosp_error_t *err);
/* The comm's duplicate of world, for the program's own messages; owned by the comm.
 * MPI_COMM_NULL for a comm that is not on MPI. */
MPI_Comm autosp_comm_mpi_world(const autosp_comm_t *comm);

#ifdef __cplusplus
}
#endif
#endif
