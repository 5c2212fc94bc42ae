/* run_ops.c: what the cpu backend's adapters share (zeroing on the pool, checking the ids a
 * user controls) and the layout ops, which have no kernel family of their own: reshape (a
 * view) and transpose. Every other adapter sits in its family file, next to its kernels. */
#include <string.h>

#include "backends/cpu/cpu_ops.h"
#include "backends/cpu/parallel.h"

static void zero_range(void *ctx, int64_t lo, int64_t hi) {
    memset((char *)ctx + lo, 0, (size_t)(hi - lo));
}
void cpu_zero(void *p, const cshape_t *s) {
    par_for(s->numel * s->esize, 1 << 20, zero_range, p);
}

autosp_status_t cpu_check_ids(const kernel_args_t *r, int input, int64_t limit, int64_t allowed) {
    const int32_t *ids = I32(r->in[input]);
    for (int64_t i = 0; i < r->c->in[input].numel; i++) {
        if ((ids[i] >= 0 && ids[i] < limit) || ids[i] == allowed) continue;
        char label[AUTOSP_MAX_NAME + 32];
        return set_error(r->err, AUTOSP_ERR_INVALID,
                         "%s: input \"%s\" has %d at index %lld, "
                         "expected 0..%lld",
                         node_label(r->g, r->node_index, label, sizeof label),
                         op_table[r->c->node->op].input_names[input], ids[i], (long long)i,
                         (long long)limit - 1);
    }
    return AUTOSP_OK;
}

static autosp_status_t
run_view(const kernel_args_t *r) { /* reshape: the plan gave it its input's bytes */
    AUTOSP_ASSERT(r->out[0] == r->in[0]);
    return AUTOSP_OK;
}

/* out.d[i] = x.d[perm[i]]: walk the output, gather from the input */
static autosp_status_t run_transpose(const kernel_args_t *r) {
    const attr_value_t *perm = node_attr(r->c->node, "perm");
    const cshape_t *x = &r->c->in[0], *o = &r->c->out[0];
    int64_t stride[AUTOSP_MAX_DIMS], s = 1;
    for (int k = x->ndim - 1; k >= 0; k--) stride[k] = s, s *= x->d[k];
    for (int64_t i = 0; i < o->numel; i++) {
        int64_t rem = i, src = 0;
        for (int k = o->ndim - 1; k >= 0; k--) {
            src += (rem % o->d[k]) * stride[perm->ints[k]];
            rem /= o->d[k];
        }
        if (x->esize == 2)
            ((uint16_t *)r->out[0])[i] = ((const uint16_t *)r->in[0])[src];
        else
            F(r->out[0])[i] = CF(r->in[0])[src];
    }
    return AUTOSP_OK;
}

/* both only move bytes: bf16, and segment ids (i32), go through them too */
static const cpu_kernel_reg_t kernels[] = {
    CPU_KERNEL(RESHAPE, BF16, run_view),       CPU_KERNEL(TRANSPOSE, BF16, run_transpose),
    CPU_KERNEL(RESHAPE, F32, run_view),        CPU_KERNEL(RESHAPE, I32, run_view),
    CPU_KERNEL(TRANSPOSE, F32, run_transpose), CPU_KERNEL(TRANSPOSE, I32, run_transpose),
};
CPU_FAMILY(layout, kernels);
