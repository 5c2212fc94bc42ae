/* repeat.c: repeating slices along one dim (GQA's kv heads, when more sequence-parallel ranks
 * than kv heads need their own copy), forward next to backward. */
#include <string.h>

#include "backends/cpu/cpu_ops.h"
#include "kernels.h"

/* the copies of `inner` bytes: shared by every element size */
static void repeat_bytes(char *out, const char *x, int64_t outer, int64_t n, int64_t r,
                         int64_t inner) {
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < n; i++) {
            const char *src = x + (o * n + i) * inner;
            for (int64_t k = 0; k < r; k++)
                memcpy(out + ((o * n + i) * r + k) * inner, src, (size_t)inner);
        }
}

void repeat_forward(float *out, const float *x, int64_t outer, int64_t n, int64_t r,
                    int64_t inner) {
    repeat_bytes((char *)out, (const char *)x, outer, n, r, inner * (int64_t)sizeof(float));
}

void repeat_backward(float *dx, const float *dout, int64_t outer, int64_t n, int64_t r,
                     int64_t inner) {
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < n; i++) {
            float *d = dx + (o * n + i) * inner;
            memcpy(d, dout + (o * n + i) * r * inner, sizeof(float) * (size_t)inner);
            for (int64_t k = 1; k < r; k++) {
                const float *g = dout + ((o * n + i) * r + k) * inner;
                for (int64_t j = 0; j < inner; j++) d[j] += g[j];
            }
        }
}

/* ---- adapters: a node's shapes and buffers, turned into one kernel call ------------------- */

/* x viewed as (outer, n, inner) around the repeated dim */
static void repeat_dims(const kernel_args_t *r, const cshape_t *x, int64_t *outer, int64_t *n,
                        int64_t *inner) {
    int dim = (int)node_attr_int(r->c->node, "dim");
    *outer = *inner = 1;
    for (int k = 0; k < dim; k++) *outer *= x->d[k];
    for (int k = dim + 1; k < x->ndim; k++) *inner *= x->d[k];
    *n = x->d[dim];
}

static autosp_status_t run_repeat(const kernel_args_t *r) {
    int64_t outer, n, inner;
    repeat_dims(r, &r->c->in[0], &outer, &n, &inner);
    repeat_bytes(r->out[0], r->in[0], outer, n, node_attr_int(r->c->node, "repeats"),
                 inner * (int64_t)r->c->in[0].esize);
    return AUTOSP_OK;
}

static autosp_status_t run_repeat_backward(const kernel_args_t *r) { /* (dout, x) */
    int64_t outer, n, inner;
    repeat_dims(r, &r->c->in[1], &outer, &n, &inner);
    repeat_backward(F(r->out[0]), CF(r->in[0]), outer, n, node_attr_int(r->c->node, "repeats"),
                    inner);
    return AUTOSP_OK;
}

/* bf16 backward: the f32 one on the whole tensors widened (staged.c; it reads the repeated dim,
 * so it runs as one block). */
CPU_STAGED(repeat_backward, run_repeat_backward, NULL, 0, 0)

/* the forward only moves bytes: bf16, and segment ids (i32), go through it too */
static const cpu_kernel_reg_t kernels[] = {
    CPU_KERNEL(REPEAT, BF16, run_repeat),
    CPU_STAGED_ROW(REPEAT_BACKWARD, repeat_backward),
    CPU_KERNEL(REPEAT, F32, run_repeat),
    CPU_KERNEL(REPEAT, I32, run_repeat),
    CPU_KERNEL(REPEAT_BACKWARD, F32, run_repeat_backward),
};
CPU_FAMILY(repeat, kernels);
