/* comm.c: sequence groups of sp consecutive ranks, data groups across them. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <unistd.h>

#include "autosp/runtime.h"
#include "comm.h"
#include "base.h"
#include "kernels/parallel.h"

static autosp_status_t mpi_failed(autosp_error_t *err, const char *what, int code) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(code, text, &len);
    return set_error(err, AUTOSP_ERR_INTERNAL, "%s failed: %s", what, text);
}

autosp_comm_t *autosp_comm_new(MPI_Comm world, int sp, autosp_error_t *err) {
    int size, rank;
    MPI_Comm_size(world, &size);
    MPI_Comm_rank(world, &rank);
    if (sp < 1 || size % sp != 0) {
        set_error(err, AUTOSP_ERR_INVALID,
                  "sequence-parallel size %d does not divide the %d ranks of the world "
                  "(world = dp x sp)",
                  sp, size);
        return NULL;
    }
    autosp_comm_t *c = mem_calloc(1, sizeof *c);
    if (!c) {
        nomem(err);
        return NULL;
    }
    *c = (autosp_comm_t){.world = MPI_COMM_NULL,
                         .sp = MPI_COMM_NULL,
                         .dp = MPI_COMM_NULL,
                         .local = MPI_COMM_NULL,
                         .rank = rank,
                         .size = size};
    int code = MPI_Comm_dup(world, &c->world);
    if (code == MPI_SUCCESS) code = MPI_Comm_split(world, rank / sp, rank % sp, &c->sp);
    if (code == MPI_SUCCESS) code = MPI_Comm_split(world, rank % sp, rank / sp, &c->dp);
    if (code == MPI_SUCCESS)
        code = MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &c->local);
    /* errors come back as codes (the kernels turn them into messages), not an abort */
    MPI_Comm *mine[] = {&c->world, &c->sp, &c->dp, &c->local};
    for (size_t i = 0; code == MPI_SUCCESS && i < sizeof mine / sizeof mine[0]; i++)
        code = MPI_Comm_set_errhandler(*mine[i], MPI_ERRORS_RETURN);
    if (code != MPI_SUCCESS) {
        mpi_failed(err, "splitting the world into sequence and data groups", code);
        autosp_comm_free(c);
        return NULL;
    }
    MPI_Comm_rank(c->sp, &c->sp_rank);
    MPI_Comm_size(c->sp, &c->sp_size);
    MPI_Comm_rank(c->dp, &c->dp_rank);
    MPI_Comm_size(c->dp, &c->dp_size);
    MPI_Comm_size(c->local, &c->local_size);
    set_ok(err);
    return c;
}

void autosp_comm_free(autosp_comm_t *c) {
    if (!c) return;
    MPI_Comm *comms[] = {&c->world, &c->sp, &c->dp, &c->local};
    for (size_t i = 0; i < sizeof comms / sizeof comms[0]; i++)
        if (*comms[i] != MPI_COMM_NULL) MPI_Comm_free(comms[i]);
    mem_free(c);
}

int autosp_comm_rank(const autosp_comm_t *c) {
    return c->rank;
}
int autosp_comm_size(const autosp_comm_t *c) {
    return c->size;
}
int autosp_comm_sp_rank(const autosp_comm_t *c) {
    return c->sp_rank;
}
int autosp_comm_sp_size(const autosp_comm_t *c) {
    return c->sp_size;
}
int autosp_comm_dp_rank(const autosp_comm_t *c) {
    return c->dp_rank;
}
int autosp_comm_dp_size(const autosp_comm_t *c) {
    return c->dp_size;
}
MPI_Comm autosp_comm_world(const autosp_comm_t *c) {
    return c->world;
}
int autosp_comm_local_size(const autosp_comm_t *c) {
    return c->local_size;
}

int autosp_comm_fair_threads(const autosp_comm_t *c) {
    return autosp_default_num_threads(c->local_size);
}

void autosp_set_num_threads(int n) {
    par_set_threads(n < 1 ? 1 : n);
    openblas_set_num_threads(n < 1 ? 1 : n); /* for BLAS calls outside the library's steps */
}

int autosp_num_threads(void) {
    return par_threads();
}
