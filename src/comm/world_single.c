/* world_single.c: the world of a build without MPI: this one process. */
#include "base/base.h"
#include "comm/comm.h"

bool autosp_have_mpi(void) {
    return false;
}

autosp_status_t autosp_world_init(int *argc, char ***argv, autosp_error_t *err) {
    return set_ok(err);
}

void autosp_world_finalize(void) {}

int autosp_world_rank(void) {
    return 0;
}

int autosp_world_size(void) {
    return 1;
}

autosp_comm_t *autosp_comm_new_world(int sp, autosp_error_t *err) {
    return autosp_comm_new_world_ring(sp, 1, err);
}

autosp_comm_t *autosp_comm_new_world_ring(int sp, int ring, autosp_error_t *err) {
    if (comm_check_sizes(1, sp, ring, err) != AUTOSP_OK) return NULL;
    if (sp == 1) return autosp_comm_new_single(err);
    set_error(err, AUTOSP_ERR_INVALID,
              "sequence-parallel size %d: this build has no MPI (AUTOSP_WITH_MPI=OFF), so the "
              "world is one process and sp must be 1",
              sp);
    return NULL;
}
