/* comm.h: the process groups, as the collective kernels see them. */
#ifndef AUTOSP_RUNTIME_COMM_H
#define AUTOSP_RUNTIME_COMM_H

#include "autosp/comm.h"

struct autosp_comm {
    MPI_Comm world, sp, dp, local;
    int rank, size, sp_rank, sp_size, dp_rank, dp_size, local_size;
};

#endif
