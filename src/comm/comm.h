/* comm.h: the communicator interface the runtime talks through.
 *
 * The kernels of the collectives and the trainer's ZeRO-1 exchanges call these operations,
 * never MPI: comm_mpi.c implements them on Open MPI (built with AUTOSP_WITH_MPI), comm.c in
 * one process, where every group has one rank and each operation is a copy. Every operation
 * is collective over its group and returns a status with the message in err. */
#ifndef AUTOSP_RUNTIME_COMM_H
#define AUTOSP_RUNTIME_COMM_H

#include "autosp/comm.h"

/* A sequence group of sp = ulysses x ring ranks: sequence rank p is (ring position p / ulysses,
 * Ulysses position p % ulysses), so a Ulysses group is ulysses consecutive ranks (its
 * all-to-alls stay on the closest cores) and a ring group joins every ulysses-th. */
typedef enum comm_group {
    COMM_WORLD,
    COMM_SP,
    COMM_DP,
    COMM_ULYSSES,
    COMM_RING,
    COMM_GROUPS
} comm_group_t;

/* A collective in flight (started by a *_start operation, completed by wait): room for the
 * implementation's handle (MPI's request). It lives where its starter put it (the node's
 * workspace) until the wait. */
typedef struct comm_request {
    _Alignas(8) unsigned char handle[32];
} comm_request_t;

typedef struct comm_ops {
    const char *kind;
    /* send holds one block of `bytes` per rank of g (block j goes to rank j); recv gets one
     * from each (block j from rank j) */
    autosp_status_t (*all_to_all)(const autosp_comm_t *c, comm_group_t g, const void *send,
                                  void *recv, size_t bytes, autosp_error_t *err);
    /* recv gets every rank's `bytes` of send, in rank order */
    autosp_status_t (*all_gather)(const autosp_comm_t *c, comm_group_t g, const void *send,
                                  void *recv, size_t bytes, autosp_error_t *err);
    /* out = the element-wise sum of every rank's in (n values of dtype: f32, bf16, i32, i64, or
     * AUTOSP_DTYPE_COUNT for f64); in NULL: out is summed in place */
    autosp_status_t (*sum)(const autosp_comm_t *c, comm_group_t g, const void *in, void *out,
                           size_t n, autosp_dtype_t dtype, autosp_error_t *err);
    /* over the world, f32: rank r gets the sum of every rank's elements
     * [displs[r], displs[r] + counts[r]) of send in recv */
    autosp_status_t (*reduce_scatter)(const autosp_comm_t *c, const float *send, float *recv,
                                      const int *counts, autosp_error_t *err);
    /* over the world, in place: rank r's block [displs[r], + counts[r]) of buf to all; the
     * elements are f32 (esize 4) or 2-byte (bf16) */
    autosp_status_t (*all_gather_blocks)(const autosp_comm_t *c, void *buf, size_t esize,
                                         const int *counts, const int *displs, autosp_error_t *err);
    /* all_gather_blocks started: buf, counts and displs must stay as they are until wait(req)
     * returns; nothing else may touch buf meanwhile */
    autosp_status_t (*all_gather_blocks_start)(const autosp_comm_t *c, void *buf, size_t esize,
                                               const int *counts, const int *displs,
                                               comm_request_t *req, autosp_error_t *err);
    /* started: `bytes` of send to the next rank of group g (position + 1, around), recv gets
     * the previous rank's; send and recv must not overlap nor change until wait(req). Shifts
     * in flight together need different tags (0..15). */
    autosp_status_t (*shift_start)(const autosp_comm_t *c, comm_group_t g, const void *send,
                                   void *recv, size_t bytes, int tag, comm_request_t *req,
                                   autosp_error_t *err);
    autosp_status_t (*wait)(const autosp_comm_t *c, comm_request_t *req, autosp_error_t *err);
    /* lets the started collectives move on (Open MPI moves a non-blocking collective only
     * inside its calls); wait still completes each */
    autosp_status_t (*progress)(const autosp_comm_t *c, autosp_error_t *err);
    /* over the world, f32: rank r's counts[r] floats of send land at recv + displs[r] on
     * rank 0 (recv is only read on rank 0) */
    autosp_status_t (*gather_blocks)(const autosp_comm_t *c, const float *send, float *recv,
                                     const int *counts, const int *displs, autosp_error_t *err);
    /* over the world: rank 0's bytes of buf to every rank */
    autosp_status_t (*broadcast)(const autosp_comm_t *c, void *buf, size_t bytes,
                                 autosp_error_t *err);
    void (*destroy)(autosp_comm_t *c); /* frees impl */
} comm_ops_t;

/* f64 for comm_ops_t.sum (not an IR dtype: only the trainer's norm sums doubles) */
#define COMM_F64 AUTOSP_DTYPE_COUNT

struct autosp_comm {
    const comm_ops_t *ops;
    void *impl;
    int rank, size, sp_rank, sp_size, dp_rank, dp_size, local_size;
    int ring_rank, ring_size, ulysses_rank, ulysses_size; /* inside the sequence group */
};

/* The group a collective node names ("sp", "dp", "world"); false for another name. */
bool comm_group_parse(const char *name, comm_group_t *out);
int comm_group_size(const autosp_comm_t *c, comm_group_t g);
/* The groups' positions of world rank `rank` of `size` split into groups of sp, each a ring of
 * `ring` Ulysses groups. */
void comm_set_layout(autosp_comm_t *c, int rank, int size, int sp, int ring);
/* ok when sp divides the world's size and ring divides sp, else the error naming which */
autosp_status_t comm_check_sizes(int size, int sp, int ring, autosp_error_t *err);

#endif
