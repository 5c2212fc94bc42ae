/* comm_mpi.c: the comm on Open MPI. Sequence groups of sp consecutive ranks, data groups
 * across them; every operation of comm_ops_t on the matching MPI collective. */
#include <limits.h>
#include <string.h>

#include "autosp/comm_mpi.h"
#include "base/base.h"
#include "base/bf16.h"
#include "comm/comm.h"

typedef struct mpi_comm {
    MPI_Comm group[COMM_GROUPS]; /* world (our duplicate), sp, dp, ulysses, ring */
    MPI_Comm local;              /* the ranks on this node */
} mpi_comm_t;

static MPI_Comm group_of(const autosp_comm_t *c, comm_group_t g) {
    return ((const mpi_comm_t *)c->impl)->group[g];
}

static autosp_status_t mpi_failed(autosp_error_t *err, const char *what, int code) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(code, text, &len);
    return set_error(err, AUTOSP_ERR_INTERNAL, "%s failed: %s", what, text);
}

static autosp_status_t check(int code, const char *what, autosp_error_t *err) {
    return code == MPI_SUCCESS ? AUTOSP_OK : mpi_failed(err, what, code);
}

static autosp_status_t fits_int(size_t count, const char *what, autosp_error_t *err) {
    if (count <= INT_MAX) return AUTOSP_OK;
    return set_error(err, AUTOSP_ERR_LIMIT,
                     "%s: %zu bytes per rank in one message, more than MPI's int count allows",
                     what, count);
}

static autosp_status_t mpi_all_to_all(const autosp_comm_t *c, comm_group_t g, const void *send,
                                      void *recv, size_t bytes, autosp_error_t *err) {
    autosp_status_t st = fits_int(bytes, "MPI_Alltoall", err);
    if (st != AUTOSP_OK) return st;
    return check(
        MPI_Alltoall(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, group_of(c, g)),
        "MPI_Alltoall", err);
}

static autosp_status_t mpi_all_gather(const autosp_comm_t *c, comm_group_t g, const void *send,
                                      void *recv, size_t bytes, autosp_error_t *err) {
    autosp_status_t st = fits_int(bytes, "MPI_Allgather", err);
    if (st != AUTOSP_OK) return st;
    return check(
        MPI_Allgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, group_of(c, g)),
        "MPI_Allgather", err);
}

/* bf16 has no MPI type: 16-bit words, summed by bf16_add (each partial sum widened, added in
 * f32 and rounded back, so a sum over P ranks is rounded P - 1 times). */
static void bf16_add(void *in, void *inout, int *len, MPI_Datatype *type) {
    (void)type;
    const bf16_t *a = in;
    bf16_t *b = inout;
    for (int i = 0; i < *len; i++) b[i] = f32_to_bf16(bf16_to_f32(a[i]) + bf16_to_f32(b[i]));
}

static MPI_Op bf16_sum_op(void) {
    static MPI_Op op = MPI_OP_NULL; /* created once, by the first bf16 sum (on every rank) */
    if (op == MPI_OP_NULL) MPI_Op_create(bf16_add, 1, &op);
    return op;
}

static MPI_Datatype mpi_type(autosp_dtype_t dtype, size_t *size) {
    switch ((int)dtype) {
    case AUTOSP_BF16:
        return *size = 2, MPI_UINT16_T;
    case AUTOSP_I32:
        return *size = 4, MPI_INT32_T;
    case AUTOSP_I64:
        return *size = 8, MPI_INT64_T;
    case COMM_F64:
        return *size = 8, MPI_DOUBLE;
    default:
        return *size = 4, MPI_FLOAT;
    }
}

/* In chunks, so that a bucket of more than INT_MAX values still goes. */
static autosp_status_t mpi_sum(const autosp_comm_t *c, comm_group_t g, const void *in, void *out,
                               size_t n, autosp_dtype_t dtype, autosp_error_t *err) {
    const size_t chunk = INT_MAX / 2;
    size_t size;
    MPI_Datatype type = mpi_type(dtype, &size);
    autosp_status_t st = AUTOSP_OK;
    for (size_t at = 0; at < n && st == AUTOSP_OK; at += chunk) {
        int count = (int)(n - at < chunk ? n - at : chunk);
        const void *from = in ? (const char *)in + at * size : MPI_IN_PLACE;
        st = check(MPI_Allreduce(from, (char *)out + at * size, count, type,
                                 dtype == AUTOSP_BF16 ? bf16_sum_op() : MPI_SUM, group_of(c, g)),
                   "MPI_Allreduce", err);
    }
    return st;
}

static autosp_status_t mpi_reduce_scatter(const autosp_comm_t *c, const float *send, float *recv,
                                          const int *counts, autosp_error_t *err) {
    return check(
        MPI_Reduce_scatter(send, recv, counts, MPI_FLOAT, MPI_SUM, group_of(c, COMM_WORLD)),
        "MPI_Reduce_scatter", err);
}

static autosp_status_t mpi_all_gather_blocks(const autosp_comm_t *c, void *buf, size_t esize,
                                             const int *counts, const int *displs,
                                             autosp_error_t *err) {
    MPI_Datatype type = esize == 2 ? MPI_UINT16_T : MPI_FLOAT;
    AUTOSP_ASSERT(esize == 2 || esize == 4);
    return check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs, type,
                                group_of(c, COMM_WORLD)),
                 "MPI_Allgatherv", err);
}

/* What a comm_request_t holds: one collective's request, or a shift's send and receive. */
typedef struct mpi_request {
    MPI_Request r[2];
    int n;
} mpi_request_t;
_Static_assert(sizeof(mpi_request_t) <= sizeof(comm_request_t), "requests fit a comm_request_t");

static void put_requests(comm_request_t *req, const MPI_Request *r, int n) {
    mpi_request_t m = {.n = n};
    for (int i = 0; i < n; i++) m.r[i] = r[i];
    memcpy(req->handle, &m, sizeof m);
}

static autosp_status_t mpi_all_gather_blocks_start(const autosp_comm_t *c, void *buf, size_t esize,
                                                   const int *counts, const int *displs,
                                                   comm_request_t *req, autosp_error_t *err) {
    MPI_Datatype type = esize == 2 ? MPI_UINT16_T : MPI_FLOAT;
    AUTOSP_ASSERT(esize == 2 || esize == 4);
    MPI_Request r;
    int code = MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs, type,
                               group_of(c, COMM_WORLD), &r);
    put_requests(req, &r, code == MPI_SUCCESS);
    return check(code, "MPI_Iallgatherv", err);
}

static autosp_status_t mpi_shift_start(const autosp_comm_t *c, comm_group_t g, const void *send,
                                       void *recv, size_t bytes, int tag, comm_request_t *req,
                                       autosp_error_t *err) {
    autosp_status_t st = fits_int(bytes, "MPI_Isend", err);
    if (st != AUTOSP_OK) return st;
    MPI_Comm comm = group_of(c, g);
    int size, rank;
    MPI_Comm_size(comm, &size);
    MPI_Comm_rank(comm, &rank);
    MPI_Request r[2];
    int code = MPI_Irecv(recv, (int)bytes, MPI_BYTE, (rank + size - 1) % size, tag, comm, &r[0]);
    if (code != MPI_SUCCESS) return mpi_failed(err, "MPI_Irecv", code);
    code = MPI_Isend(send, (int)bytes, MPI_BYTE, (rank + 1) % size, tag, comm, &r[1]);
    if (code != MPI_SUCCESS) {
        MPI_Cancel(&r[0]);
        MPI_Request_free(&r[0]);
        return mpi_failed(err, "MPI_Isend", code);
    }
    put_requests(req, r, 2);
    return set_ok(err);
}

static autosp_status_t mpi_wait(const autosp_comm_t *c, comm_request_t *req, autosp_error_t *err) {
    (void)c;
    mpi_request_t m;
    memcpy(&m, req->handle, sizeof m);
    return check(MPI_Waitall(m.n, m.r, MPI_STATUSES_IGNORE), "MPI_Waitall", err);
}

/* Any MPI call runs Open MPI's progress engine; a probe for a message nobody sends is the
 * cheapest that touches no request. */
static autosp_status_t mpi_progress(const autosp_comm_t *c, autosp_error_t *err) {
    int flag = 0;
    return check(
        MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, group_of(c, COMM_WORLD), &flag, MPI_STATUS_IGNORE),
        "MPI_Iprobe", err);
}

static autosp_status_t mpi_gather_blocks(const autosp_comm_t *c, const float *send, float *recv,
                                         const int *counts, const int *displs,
                                         autosp_error_t *err) {
    return check(MPI_Gatherv(send, counts[c->rank], MPI_FLOAT, recv, counts, displs, MPI_FLOAT, 0,
                             group_of(c, COMM_WORLD)),
                 "MPI_Gatherv", err);
}

static autosp_status_t mpi_broadcast(const autosp_comm_t *c, void *buf, size_t bytes,
                                     autosp_error_t *err) {
    autosp_status_t st = fits_int(bytes, "MPI_Bcast", err);
    if (st != AUTOSP_OK) return st;
    return check(MPI_Bcast(buf, (int)bytes, MPI_BYTE, 0, group_of(c, COMM_WORLD)), "MPI_Bcast",
                 err);
}

static void mpi_destroy(autosp_comm_t *c) {
    mpi_comm_t *m = c->impl;
    if (!m) return;
    for (int g = 0; g < COMM_GROUPS; g++)
        if (m->group[g] != MPI_COMM_NULL) MPI_Comm_free(&m->group[g]);
    if (m->local != MPI_COMM_NULL) MPI_Comm_free(&m->local);
    mem_free(m);
}

static const comm_ops_t mpi_ops = {
    .kind = "mpi",
    .all_to_all = mpi_all_to_all,
    .all_gather = mpi_all_gather,
    .sum = mpi_sum,
    .reduce_scatter = mpi_reduce_scatter,
    .all_gather_blocks = mpi_all_gather_blocks,
    .all_gather_blocks_start = mpi_all_gather_blocks_start,
    .shift_start = mpi_shift_start,
    .wait = mpi_wait,
    .progress = mpi_progress,
    .gather_blocks = mpi_gather_blocks,
    .broadcast = mpi_broadcast,
    .destroy = mpi_destroy,
};

/* Our own duplicate of world, the groups and the node's ranks; errors come back as codes
 * (turned into messages), not an abort. */
static int split(MPI_Comm world, const autosp_comm_t *c, mpi_comm_t *m) {
    const int rank = c->rank, sp = c->sp_size, U = c->ulysses_size;
    int code = MPI_Comm_dup(world, &m->group[COMM_WORLD]);
    if (code == MPI_SUCCESS) code = MPI_Comm_split(world, rank / sp, rank % sp, &m->group[COMM_SP]);
    if (code == MPI_SUCCESS) code = MPI_Comm_split(world, rank % sp, rank / sp, &m->group[COMM_DP]);
    if (code == MPI_SUCCESS)
        code = MPI_Comm_split(world, rank / U, rank % U, &m->group[COMM_ULYSSES]);
    if (code == MPI_SUCCESS)
        code = MPI_Comm_split(world, rank / sp * U + c->ulysses_rank, c->ring_rank,
                              &m->group[COMM_RING]);
    if (code == MPI_SUCCESS)
        code = MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &m->local);
    for (int g = 0; code == MPI_SUCCESS && g < COMM_GROUPS; g++)
        code = MPI_Comm_set_errhandler(m->group[g], MPI_ERRORS_RETURN);
    if (code == MPI_SUCCESS) code = MPI_Comm_set_errhandler(m->local, MPI_ERRORS_RETURN);
    return code;
}

autosp_comm_t *autosp_comm_new_mpi(MPI_Comm world, int sp, autosp_error_t *err) {
    return autosp_comm_new_mpi_ring(world, sp, 1, err);
}

autosp_comm_t *autosp_comm_new_mpi_ring(MPI_Comm world, int sp, int ring, autosp_error_t *err) {
    int size, rank;
    MPI_Comm_size(world, &size);
    MPI_Comm_rank(world, &rank);
    if (comm_check_sizes(size, sp, ring, err) != AUTOSP_OK) return NULL;
    autosp_comm_t *c = mem_calloc(1, sizeof *c);
    mpi_comm_t *m = mem_calloc(1, sizeof *m);
    if (!c || !m) {
        mem_free(c), mem_free(m);
        nomem(err);
        return NULL;
    }
    for (int g = 0; g < COMM_GROUPS; g++) m->group[g] = MPI_COMM_NULL;
    m->local = MPI_COMM_NULL;
    *c = (autosp_comm_t){.ops = &mpi_ops, .impl = m};
    comm_set_layout(c, rank, size, sp, ring);
    int code = split(world, c, m);
    if (code != MPI_SUCCESS) {
        mpi_failed(err, "splitting the world into sequence and data groups", code);
        autosp_comm_free(c);
        return NULL;
    }
    MPI_Comm_size(m->local, &c->local_size);
    set_ok(err);
    return c;
}

MPI_Comm autosp_comm_mpi_world(const autosp_comm_t *c) {
    return c->ops == &mpi_ops ? group_of(c, COMM_WORLD) : MPI_COMM_NULL;
}

/* ---- the world ---------------------------------------------------------------------------- */

static bool started_mpi; /* autosp_world_init called MPI_Init, so finalize ends it */

bool autosp_have_mpi(void) {
    return true;
}

autosp_status_t autosp_world_init(int *argc, char ***argv, autosp_error_t *err) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) return set_ok(err);
    int code = MPI_Init(argc, argv);
    if (code != MPI_SUCCESS) return mpi_failed(err, "MPI_Init", code);
    started_mpi = true;
    return set_ok(err);
}

void autosp_world_finalize(void) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (started_mpi && !finalized) MPI_Finalize();
    started_mpi = false;
}

static bool mpi_running(void) {
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    return initialized && !finalized;
}

int autosp_world_rank(void) {
    int rank = 0;
    if (mpi_running()) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return rank;
}

int autosp_world_size(void) {
    int size = 1;
    if (mpi_running()) MPI_Comm_size(MPI_COMM_WORLD, &size);
    return size;
}

autosp_comm_t *autosp_comm_new_world(int sp, autosp_error_t *err) {
    return autosp_comm_new_world_ring(sp, 1, err);
}

autosp_comm_t *autosp_comm_new_world_ring(int sp, int ring, autosp_error_t *err) {
    if (mpi_running()) return autosp_comm_new_mpi_ring(MPI_COMM_WORLD, sp, ring, err);
    set_error(err, AUTOSP_ERR_INVALID, "autosp_comm_new_world: call autosp_world_init first");
    return NULL;
}
