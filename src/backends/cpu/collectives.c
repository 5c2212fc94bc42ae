/* collectives.c: all_to_all, all_reduce and all_gather, over the comm's groups (Open MPI, or
 * one process: src/comm/comm.h).
 *
 * A node may carry several tensors (Q, K and V; a bucket of gradients): they travel in one
 * message, packed into the node's workspace (planned by memplan, like any kernel's scratch),
 * so the step still allocates nothing. Tensors are dense row-major; a slice along one dim is
 * copied as `outer` runs of `len x inner` bytes. */
#include <string.h>

#include "backends/cpu/cpu_ops.h"
#include "base/bf16.h"
#include "comm/comm.h"

autosp_status_t cpu_comm_group(const kernel_args_t *r, comm_group_t *out, int *size) {
    char label[AUTOSP_MAX_NAME + 32];
    const node_t *n = r->c->node;
    const char *group = node_attr_str(n, "group");
    AUTOSP_ASSERT(r->comm && comm_group_parse(group, out)); /* the executor always has a comm */
    *size = comm_group_size(r->comm, *out);
    if (*size == node_attr_int(n, "ranks")) return AUTOSP_OK;
    return set_error(r->err, AUTOSP_ERR_INVALID,
                     "%s: group \"%s\" has %d ranks in this run, expected ranks=%lld",
                     node_label(r->g, r->node_index, label, sizeof label), group, *size,
                     (long long)node_attr_int(n, "ranks"));
}

autosp_status_t cpu_comm_named(const kernel_args_t *r, autosp_status_t st) {
    if (st == AUTOSP_OK) return st;
    char label[AUTOSP_MAX_NAME + 32], why[AUTOSP_ERROR_MESSAGE_MAX];
    snprintf(why, sizeof why, "%s", r->err ? r->err->message : "");
    return set_error(r->err, st, "%s: %s", node_label(r->g, r->node_index, label, sizeof label),
                     why);
}

/* Between a dense tensor (dims d) and a contiguous block holding indices [lo, lo + len) of
 * dim axis: to_block copies tensor -> block, else block -> tensor. */
static void block_copy(char *tensor, char *block, const cshape_t *s, int axis, int64_t lo,
                       int64_t len, bool to_block) {
    int64_t outer = 1, inner = (int64_t)s->esize;
    for (int k = 0; k < axis; k++) outer *= s->d[k];
    for (int k = axis + 1; k < s->ndim; k++) inner *= s->d[k];
    size_t run = (size_t)(len * inner);
    for (int64_t o = 0; o < outer; o++) {
        char *t = tensor + (o * s->d[axis] + lo) * inner, *b = block + o * len * inner;
        memcpy(to_block ? b : t, to_block ? t : b, run);
    }
}

/* Send and receive buffers: every tensor once each. */
static int64_t workspace_all_to_all(const cost_ctx_t *c) {
    return 2 * cshape_bytes(c->in, c->n_in);
}

/* Each tensor is split into P slices along split_dim; slice j of every tensor goes to rank j,
 * packed in input order; what rank i sends lands at slice i along concat_dim. */
static autosp_status_t run_all_to_all(const kernel_args_t *r) {
    comm_group_t group;
    int P;
    autosp_status_t st = cpu_comm_group(r, &group, &P);
    if (st != AUTOSP_OK) return st;
    const cost_ctx_t *c = r->c;
    int split = (int)node_attr_int(c->node, "split_dim");
    int concat = (int)node_attr_int(c->node, "concat_dim");
    int64_t per_rank = cshape_bytes(c->in, c->n_in) / P;
    char *send = r->workspace, *recv = send + per_rank * P;
    for (int j = 0; j < P; j++) {
        char *at = send + j * per_rank;
        for (int i = 0; i < c->n_in; i++) {
            int64_t len = c->in[i].d[split] / P;
            block_copy(r->in[i], at, &c->in[i], split, j * len, len, true);
            at += c->in[i].numel / P * (int64_t)c->in[i].esize;
        }
    }
    st = cpu_comm_named(
        r, r->comm->ops->all_to_all(r->comm, group, send, recv, (size_t)per_rank, r->err));
    for (int j = 0; j < P && st == AUTOSP_OK; j++) {
        char *at = recv + j * per_rank;
        for (int i = 0; i < c->n_in; i++) {
            int64_t len = c->in[i].d[concat];
            block_copy(r->out[i], at, &c->out[i], concat, j * len, len, false);
            at += c->in[i].numel / P * (int64_t)c->in[i].esize;
        }
    }
    return st;
}

/* One tensor reduces straight into its output; a bucket is packed into one buffer first. */
static int64_t workspace_all_reduce(const cost_ctx_t *c) {
    return c->n_in > 1 ? cshape_bytes(c->in, c->n_in) : 0;
}

/* mean: the sum divided by P, in f32 (a bf16 sum widened and rounded back) */
static void divide(void *x, int64_t n, size_t esize, int P) {
    for (int64_t k = 0; k < n; k++) {
        if (esize == 2)
            ((bf16_t *)x)[k] = f32_to_bf16(bf16_to_f32(((bf16_t *)x)[k]) / (float)P);
        else
            ((float *)x)[k] /= (float)P;
    }
}

/* f32 or bf16 (every input of a bucket the node's dtype: the dtype rules check it) */
static autosp_status_t run_all_reduce(const kernel_args_t *r) {
    comm_group_t group;
    int P;
    autosp_status_t st = cpu_comm_group(r, &group, &P);
    if (st != AUTOSP_OK) return st;
    const cost_ctx_t *c = r->c;
    const size_t esize = c->in[0].esize;
    const autosp_dtype_t dtype = esize == 2 ? AUTOSP_BF16 : AUTOSP_F32;
    bool mean = strcmp(node_attr_str(c->node, "op"), "mean") == 0;
    if (c->n_in == 1) {
        st = cpu_comm_named(r, r->comm->ops->sum(r->comm, group, r->in[0], r->out[0],
                                                 (size_t)c->in[0].numel, dtype, r->err));
        if (mean && st == AUTOSP_OK) divide(r->out[0], c->in[0].numel, esize, P);
        return st;
    }
    char *buf = r->workspace, *at = buf;
    for (int i = 0; i < c->n_in; i++, at += c->in[i - 1].numel * (int64_t)esize)
        memcpy(at, r->in[i], (size_t)c->in[i].numel * esize);
    size_t count = (size_t)(at - buf) / esize;
    st = cpu_comm_named(r, r->comm->ops->sum(r->comm, group, NULL, buf, count, dtype, r->err));
    at = buf;
    for (int i = 0; i < c->n_in && st == AUTOSP_OK;
         i++, at += c->in[i - 1].numel * (int64_t)esize) {
        memcpy(r->out[i], at, (size_t)c->in[i].numel * esize);
        if (mean) divide(r->out[i], c->in[i].numel, esize, P);
    }
    return st;
}

/* The P slices, as received, before they are placed along dim. */
static int64_t workspace_all_gather(const cost_ctx_t *c) {
    return cshape_bytes(c->out, 1);
}

static autosp_status_t run_all_gather(const kernel_args_t *r) {
    comm_group_t group;
    int P;
    autosp_status_t st = cpu_comm_group(r, &group, &P);
    if (st != AUTOSP_OK) return st;
    const cost_ctx_t *c = r->c;
    int dim = (int)node_attr_int(c->node, "dim");
    int64_t bytes = cshape_bytes(c->in, 1);
    st = cpu_comm_named(
        r, r->comm->ops->all_gather(r->comm, group, r->in[0], r->workspace, (size_t)bytes, r->err));
    int64_t len = c->in[0].d[dim];
    for (int j = 0; j < P && st == AUTOSP_OK; j++)
        block_copy(r->out[0], (char *)r->workspace + j * bytes, &c->out[0], dim, j * len, len,
                   false);
    return st;
}

/* The per-rank counts of the world's split, in the workspace. */
static int64_t workspace_reduce_scatter(const cost_ctx_t *c) {
    return node_attr_int(c->node, "ranks") * (int64_t)sizeof(int);
}

/* The world's split of n elements: counts[k] and (when displs) displs[k] = n k / P, P set.
 * Fails on a group that is not the world's or a count past MPI's int. */
static autosp_status_t world_split(const kernel_args_t *r, int64_t n, int *counts, int *displs,
                                   int *P) {
    comm_group_t group;
    autosp_status_t st = cpu_comm_group(r, &group, P);
    if (st != AUTOSP_OK) return st;
    if (n / *P >= INT32_MAX)
        return cpu_comm_named(
            r, set_error(r->err, AUTOSP_ERR_LIMIT,
                         "%lld elements per rank are more than MPI's int count allows",
                         (long long)(n / *P)));
    for (int k = 0; k < *P; k++) {
        counts[k] = (int)(n * (k + 1) / *P - n * k / *P);
        if (displs) displs[k] = (int)(n * k / *P);
    }
    return AUTOSP_OK;
}

/* x summed over the world; this rank's elements [n r / P, n (r + 1) / P) land at the start of
 * the output, the padding to ceil(n / P) is zeroed. */
static autosp_status_t run_reduce_scatter(const kernel_args_t *r) {
    int P, *counts = r->workspace;
    autosp_status_t st = world_split(r, r->c->in[0].numel, counts, NULL, &P);
    if (st != AUTOSP_OK) return st;
    float *out = r->out[0];
    int own = counts[r->comm->rank];
    st = cpu_comm_named(r, r->comm->ops->reduce_scatter(r->comm, r->in[0], out, counts, r->err));
    for (int64_t k = own; k < r->c->out[0].numel; k++) out[k] = 0.0f;
    return st;
}

/* The gather in flight, then the per-rank counts and displacements of the world's split: the
 * workspace, which a prefetched unshard holds from its start to its completion. */
static int64_t workspace_unshard(const cost_ctx_t *c) {
    return (int64_t)sizeof(comm_request_t) +
           2 * node_attr_int(c->node, "ranks") * (int64_t)sizeof(int);
}

/* This rank's shard at its place in the whole parameter, then every other rank's gathered
 * around it in place (reduce_scatter's layout, inverted), started. */
static autosp_status_t start_unshard(const kernel_args_t *r) {
    const size_t esize = r->c->out[0].esize;
    comm_request_t *req = r->workspace;
    int P, *counts = (int *)(req + 1), *displs = counts + node_attr_int(r->c->node, "ranks");
    autosp_status_t st = world_split(r, r->c->out[0].numel, counts, displs, &P);
    if (st != AUTOSP_OK) return st;
    int me = r->comm->rank;
    memcpy((char *)r->out[0] + (size_t)displs[me] * esize, r->in[0], (size_t)counts[me] * esize);
    return cpu_comm_named(r, r->comm->ops->all_gather_blocks_start(r->comm, r->out[0], esize,
                                                                   counts, displs, req, r->err));
}

static autosp_status_t run_unshard(const kernel_args_t *r) {
    autosp_status_t st = r->started ? AUTOSP_OK : start_unshard(r);
    if (st != AUTOSP_OK) return st;
    return cpu_comm_named(r, r->comm->ops->wait(r->comm, r->workspace, r->err));
}

/* all_reduce sums f32 or bf16; the others move bytes: bf16, and segment ids (i32), too */
static const cpu_kernel_reg_t kernels[] = {
    CPU_KERNEL(ALL_TO_ALL, BF16, run_all_to_all, .workspace = workspace_all_to_all),
    CPU_KERNEL(ALL_REDUCE, BF16, run_all_reduce, .workspace = workspace_all_reduce),
    CPU_KERNEL(ALL_GATHER, BF16, run_all_gather, .workspace = workspace_all_gather),
    CPU_KERNEL(ALL_TO_ALL, F32, run_all_to_all, .workspace = workspace_all_to_all),
    CPU_KERNEL(ALL_TO_ALL, I32, run_all_to_all, .workspace = workspace_all_to_all),
    CPU_KERNEL(ALL_REDUCE, F32, run_all_reduce, .workspace = workspace_all_reduce),
    CPU_KERNEL(ALL_GATHER, F32, run_all_gather, .workspace = workspace_all_gather),
    CPU_KERNEL(ALL_GATHER, I32, run_all_gather, .workspace = workspace_all_gather),
    CPU_KERNEL(REDUCE_SCATTER, F32, run_reduce_scatter, .workspace = workspace_reduce_scatter),
    CPU_KERNEL(UNSHARD, F32, run_unshard, .workspace = workspace_unshard, .start = start_unshard),
    CPU_KERNEL(UNSHARD, BF16, run_unshard, .workspace = workspace_unshard, .start = start_unshard),
};
CPU_FAMILY(collectives, kernels);
