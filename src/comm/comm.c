/* comm.c: what every comm shares (its layout, the public calls), and the comm of one process,
 * whose groups have one rank each: every collective is a copy. */
#include <string.h>

#include "base/base.h"
#include "comm/comm.h"

void comm_set_layout(autosp_comm_t *c, int rank, int size, int sp, int ring) {
    c->rank = rank;
    c->size = size;
    c->sp_size = sp;
    c->sp_rank = rank % sp;
    c->dp_size = size / sp;
    c->dp_rank = rank / sp;
    c->ring_size = ring;
    c->ulysses_size = sp / ring;
    c->ring_rank = c->sp_rank / c->ulysses_size;
    c->ulysses_rank = c->sp_rank % c->ulysses_size;
}

autosp_status_t comm_check_sizes(int size, int sp, int ring, autosp_error_t *err) {
    if (sp < 1 || size % sp != 0)
        return set_error(err, AUTOSP_ERR_INVALID,
                         "sequence-parallel size %d does not divide the %d ranks of the world "
                         "(world = dp x sp)",
                         sp, size);
    if (ring < 1 || sp % ring != 0)
        return set_error(err, AUTOSP_ERR_INVALID,
                         "ring size %d does not divide sp = %d (sp = ulysses x ring)", ring, sp);
    return set_ok(err);
}

bool comm_group_parse(const char *name, comm_group_t *out) {
    static const char *const names[COMM_GROUPS] = {"world", "sp", "dp", "ulysses", "ring"};
    for (int g = 0; g < COMM_GROUPS; g++)
        if (strcmp(name, names[g]) == 0) return *out = (comm_group_t)g, true;
    return false;
}

int comm_group_size(const autosp_comm_t *c, comm_group_t g) {
    switch (g) {
    case COMM_SP:
        return c->sp_size;
    case COMM_DP:
        return c->dp_size;
    case COMM_ULYSSES:
        return c->ulysses_size;
    case COMM_RING:
        return c->ring_size;
    default:
        return c->size;
    }
}

/* ---- one process ------------------------------------------------------------------------ */

static size_t value_size(autosp_dtype_t dtype) {
    return dtype == COMM_F64 ? sizeof(double) : autosp_dtype_size(dtype);
}

static autosp_status_t single_copy(const autosp_comm_t *c, comm_group_t g, const void *send,
                                   void *recv, size_t bytes, autosp_error_t *err) {
    if (send != recv) memmove(recv, send, bytes);
    return AUTOSP_OK;
}

static autosp_status_t single_sum(const autosp_comm_t *c, comm_group_t g, const void *in, void *out,
                                  size_t n, autosp_dtype_t dtype, autosp_error_t *err) {
    if (in && in != out) memmove(out, in, n * value_size(dtype));
    return AUTOSP_OK;
}

static autosp_status_t single_reduce_scatter(const autosp_comm_t *c, const float *send, float *recv,
                                             const int *counts, autosp_error_t *err) {
    memmove(recv, send, sizeof(float) * (size_t)counts[0]);
    return AUTOSP_OK;
}

static autosp_status_t single_all_gather_blocks(const autosp_comm_t *c, void *buf, size_t esize,
                                                const int *counts, const int *displs,
                                                autosp_error_t *err) {
    return AUTOSP_OK; /* the one block is in place */
}

static autosp_status_t single_gather_blocks(const autosp_comm_t *c, const float *send, float *recv,
                                            const int *counts, const int *displs,
                                            autosp_error_t *err) {
    memmove(recv + displs[0], send, sizeof(float) * (size_t)counts[0]);
    return AUTOSP_OK;
}

static autosp_status_t single_broadcast(const autosp_comm_t *c, void *buf, size_t bytes,
                                        autosp_error_t *err) {
    return AUTOSP_OK;
}

static void single_destroy(autosp_comm_t *c) {}

static autosp_status_t single_all_gather_blocks_start(const autosp_comm_t *c, void *buf,
                                                      size_t esize, const int *counts,
                                                      const int *displs, comm_request_t *req,
                                                      autosp_error_t *err) {
    (void)req;
    return single_all_gather_blocks(c, buf, esize, counts, displs, err);
}

static autosp_status_t single_shift_start(const autosp_comm_t *c, comm_group_t g, const void *send,
                                          void *recv, size_t bytes, int tag, comm_request_t *req,
                                          autosp_error_t *err) {
    (void)req, (void)tag;
    return single_copy(c, g, send, recv, bytes, err);
}

static autosp_status_t single_wait(const autosp_comm_t *c, comm_request_t *req,
                                   autosp_error_t *err) {
    (void)c, (void)req;
    return set_ok(err);
}

static autosp_status_t single_progress(const autosp_comm_t *c, autosp_error_t *err) {
    (void)c;
    return set_ok(err);
}

static const comm_ops_t single_ops = {
    .kind = "single",
    .all_to_all = single_copy,
    .all_gather = single_copy,
    .sum = single_sum,
    .reduce_scatter = single_reduce_scatter,
    .all_gather_blocks = single_all_gather_blocks,
    .all_gather_blocks_start = single_all_gather_blocks_start,
    .shift_start = single_shift_start,
    .wait = single_wait,
    .progress = single_progress,
    .gather_blocks = single_gather_blocks,
    .broadcast = single_broadcast,
    .destroy = single_destroy,
};

autosp_comm_t *autosp_comm_new_single(autosp_error_t *err) {
    autosp_comm_t *c = mem_calloc(1, sizeof *c);
    if (!c) {
        nomem(err);
        return NULL;
    }
    c->ops = &single_ops;
    comm_set_layout(c, 0, 1, 1, 1);
    c->local_size = 1;
    set_ok(err);
    return c;
}

/* ---- every comm ------------------------------------------------------------------------- */

void autosp_comm_free(autosp_comm_t *c) {
    if (!c) return;
    c->ops->destroy(c);
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
int autosp_comm_ring_size(const autosp_comm_t *c) {
    return c->ring_size;
}
int autosp_comm_ring_rank(const autosp_comm_t *c) {
    return c->ring_rank;
}
int autosp_comm_local_size(const autosp_comm_t *c) {
    return c->local_size;
}
const char *autosp_comm_kind(const autosp_comm_t *c) {
    return c->ops->kind;
}

autosp_status_t autosp_comm_broadcast(const autosp_comm_t *c, void *buf, size_t bytes,
                                      autosp_error_t *err) {
    autosp_status_t st = c->ops->broadcast(c, buf, bytes, err);
    return st == AUTOSP_OK ? set_ok(err) : st;
}

autosp_status_t autosp_comm_sum(const autosp_comm_t *c, void *values, size_t n,
                                autosp_dtype_t dtype, autosp_error_t *err) {
    if (dtype != AUTOSP_F32 && dtype != AUTOSP_I32 && dtype != AUTOSP_I64)
        return set_error(err, AUTOSP_ERR_INVALID,
                         "autosp_comm_sum: dtype %s, expected f32, "
                         "i32 or i64",
                         autosp_dtype_name(dtype));
    autosp_status_t st = c->ops->sum(c, COMM_WORLD, NULL, values, n, dtype, err);
    return st == AUTOSP_OK ? set_ok(err) : st;
}
