/* cast.c: the cast op's kernels, f32 <-> bf16 (and a same-dtype copy), on the pool. Narrowing
 * rounds to nearest even, widening is exact (src/base/bf16.h). */
#include <string.h>

#include "backends/cpu/cpu_ops.h"
#include "backends/cpu/parallel.h"
#include "base/bf16.h"

typedef struct cast_job {
    const void *x;
    void *out;
    size_t in_size, out_size;
} cast_job_t;

static void cast_range(void *ctx, int64_t lo, int64_t hi) {
    const cast_job_t *j = ctx;
    const char *x = (const char *)j->x + lo * (int64_t)j->in_size;
    char *out = (char *)j->out + lo * (int64_t)j->out_size;
    if (j->in_size == j->out_size)
        memmove(out, x, (size_t)(hi - lo) * j->in_size);
    else if (j->in_size == 4)
        bf16_from_f32_n((bf16_t *)out, (const float *)x, hi - lo);
    else
        bf16_to_f32_n((float *)out, (const bf16_t *)x, hi - lo);
}

/* f16 has no kernel: the table has f32 and bf16 rows, and the element sizes tell them apart. */
static autosp_status_t run_cast(const kernel_args_t *r) {
    cast_job_t j = {r->in[0], r->out[0], r->c->in[0].esize, r->c->out[0].esize};
    if (r->g->tensors[r->c->node->out[0]].dtype == AUTOSP_F16) {
        char label[AUTOSP_MAX_NAME + 32];
        return set_error(r->err, AUTOSP_ERR_INVALID, "%s: the cpu backend has no f16 kernels",
                         node_label(r->g, r->node_index, label, sizeof label));
    }
    par_for(r->c->in[0].numel, 1 << 15, cast_range, &j);
    return AUTOSP_OK;
}

static const cpu_kernel_reg_t kernels[] = {
    CPU_KERNEL(CAST, F32, run_cast),
    CPU_KERNEL(CAST, BF16, run_cast),
};
CPU_FAMILY(cast, kernels);
