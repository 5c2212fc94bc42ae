/* elementwise.c: activations (silu, gelu, swiglu, softcap), forward next to backward, then the
 * elementwise ops' adapters (add, mul, scale, fill, sum_to, the activations) and their rows in the
 * cpu backend's table. The activations' shapes are (n) -> (n); every output element depends only on
 * the input elements at the same index, so out may equal an input and dx may equal dout. */
#include <string.h>

#include "backends/cpu/cpu_ops.h"
#include "base/base.h"
#include "fastmath.h"
#include "kernels.h"
#include "parallel.h"

static inline float sigmoidf(float x) {
    return sigmoid_approx(x); /* vectorisable; libm's expf is a call per element */
}

/* silu(x) = x * sigmoid(x); silu'(x) = s * (1 + x * (1 - s)) with s = sigmoid(x).
 * The two helpers serve silu and swiglu. */
static inline float silu(float x) {
    return x * sigmoidf(x);
}

static inline float silu_grad(float x) {
    float s = sigmoidf(x);
    return s * (1.0f + x * (1.0f - s));
}

/* The loops below run on the pool in contiguous ranges of at least EW_GRAIN elements; every
 * element is computed the same way whatever the split. */
enum { EW_GRAIN = 1 << 14 };
typedef struct ew {
    float *out, *out2;
    const float *x, *y, *z;
    float k; /* a constant of the op (softcap's cap) */
} ew_t;

VECTOR_CLONES static void silu_fwd_range(void *ctx, int64_t lo, int64_t hi) {
    const ew_t *a = ctx; /* locals: a store through a->out could alias *a */
    float *out = a->out;
    const float *x = a->x;
    for (int64_t i = lo; i < hi; i++) out[i] = silu(x[i]);
}

// x (n) -> out (n)
void silu_forward(float *out, const float *x, int64_t n) {
    par_for(n, EW_GRAIN, silu_fwd_range, &(ew_t){.out = out, .x = x});
}

VECTOR_CLONES static void silu_bwd_range(void *ctx, int64_t lo, int64_t hi) {
    const ew_t *a = ctx; /* locals: a store through a->out could alias *a */
    float *out = a->out;
    const float *x = a->x, *y = a->y;
    for (int64_t i = lo; i < hi; i++) out[i] = y[i] * silu_grad(x[i]);
}

// dout (n), x (n) -> dx (n)
void silu_backward(float *dx, const float *dout, const float *x, int64_t n) {
    par_for(n, EW_GRAIN, silu_bwd_range, &(ew_t){.out = dx, .x = x, .y = dout});
}

/* gelu, GPT-2's tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
#define GELU_SQRT_2_OVER_PI 0.7978845608028654f
#define GELU_CUBE           0.044715f

VECTOR_CLONES static void gelu_fwd_range(void *ctx, int64_t lo, int64_t hi) {
    const ew_t *a = ctx; /* locals: a store through a->out could alias *a */
    float *out = a->out;
    const float *x = a->x;
    for (int64_t i = lo; i < hi; i++) {
        float v = x[i];
        float u = GELU_SQRT_2_OVER_PI * (v + GELU_CUBE * v * v * v);
        out[i] = 0.5f * v * (1.0f + tanh_approx(u));
    }
}

// x (n) -> out (n)
void gelu_forward(float *out, const float *x, int64_t n) {
    par_for(n, EW_GRAIN, gelu_fwd_range, &(ew_t){.out = out, .x = x});
}

VECTOR_CLONES_AVX2 static void gelu_bwd_range(void *ctx, int64_t lo, int64_t hi) {
    const ew_t *a = ctx; /* locals: a store through a->out could alias *a */
    float *out = a->out;
    const float *x = a->x, *y = a->y;
    for (int64_t i = lo; i < hi; i++) {
        float v = x[i];
        float u = GELU_SQRT_2_OVER_PI * (v + GELU_CUBE * v * v * v);
        float t = tanh_approx(u);
        float du = GELU_SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_CUBE * v * v);
        float grad = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du;
        out[i] = y[i] * grad;
    }
}

// dout (n), x (n) -> dx (n)
void gelu_backward(float *dx, const float *dout, const float *x, int64_t n) {
    par_for(n, EW_GRAIN, gelu_bwd_range, &(ew_t){.out = dx, .x = x, .y = dout});
}

VECTOR_CLONES static void swiglu_fwd_range(void *ctx, int64_t lo, int64_t hi) {
    const ew_t *a = ctx; /* locals: a store through a->out could alias *a */
    float *out = a->out;
    const float *x = a->x, *y = a->y;
    for (int64_t i = lo; i < hi; i++) out[i] = silu(x[i]) * y[i];
}

// gate (n), up (n) -> out (n) = silu(gate) * up
void swiglu_forward(float *out, const float *gate, const float *up, int64_t n) {
    par_for(n, EW_GRAIN, swiglu_fwd_range, &(ew_t){.out = out, .x = gate, .y = up});
}

VECTOR_CLONES static void swiglu_bwd_range(void *ctx, int64_t lo, int64_t hi) {
    const ew_t *a = ctx; /* locals: a store through a->out could alias *a */
    float *out = a->out, *out2 = a->out2;
    const float *x = a->x, *y = a->y, *z = a->z;
    for (int64_t i = lo; i < hi; i++) {
        float g = x[i], u = y[i], d = z[i]; /* read all before writing: aliasing-safe */
        out[i] = d * u * silu_grad(g);
        out2[i] = d * silu(g);
    }
}

// dout (n), gate (n), up (n) -> dgate (n), dup (n)
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                     const float *up, int64_t n) {
    par_for(n, EW_GRAIN, swiglu_bwd_range,
            &(ew_t){.out = dgate, .out2 = dup, .x = gate, .y = up, .z = dout});
}

/* softcap, Gemma 2's logit soft-capping: out = cap * tanh(x / cap), which stays in (-cap, cap);
 * d out / dx = 1 - tanh^2(x / cap). */
VECTOR_CLONES static void softcap_fwd_range(void *ctx, int64_t lo, int64_t hi) {
    const ew_t *a = ctx; /* locals: a store through a->out could alias *a */
    float *out = a->out, cap = a->k, inv = 1.0f / a->k;
    const float *x = a->x;
    for (int64_t i = lo; i < hi; i++) out[i] = cap * tanh_approx(x[i] * inv);
}

// x (n) -> out (n)
static void softcap_forward(float *out, const float *x, int64_t n, float cap) {
    par_for(n, EW_GRAIN, softcap_fwd_range, &(ew_t){.out = out, .x = x, .k = cap});
}

VECTOR_CLONES static void softcap_bwd_range(void *ctx, int64_t lo, int64_t hi) {
    const ew_t *a = ctx; /* locals: a store through a->out could alias *a */
    float *out = a->out, inv = 1.0f / a->k;
    const float *x = a->x, *y = a->y;
    for (int64_t i = lo; i < hi; i++) {
        float t = tanh_approx(x[i] * inv);
        out[i] = y[i] * (1.0f - t * t);
    }
}

// dout (n), x (n) -> dx (n)
static void softcap_backward(float *dx, const float *dout, const float *x, int64_t n, float cap) {
    par_for(n, EW_GRAIN, softcap_bwd_range, &(ew_t){.out = dx, .x = x, .y = dout, .k = cap});
}

/* ---- adapters: a node's shapes and buffers, turned into one kernel call ------------------- */

/* Index of element i of `big` in `small`, which broadcasts to it (numpy rules, right-aligned). */
static int64_t broadcast_index(int64_t i, const cshape_t *big, const cshape_t *small) {
    int64_t j = 0, stride = 1;
    for (int k = big->ndim - 1, s = small->ndim - 1; k >= 0 && s >= 0; k--, s--) {
        int64_t coord = i % big->d[k];
        i /= big->d[k];
        if (small->d[s] != 1) j += coord * stride;
        stride *= small->d[s];
    }
    return j;
}

typedef struct binary_job {
    const cshape_t *a, *b;
    const float *x, *y;
    float *out;
    bool multiply;
} binary_job_t;

VECTOR_CLONES static void binary_range(void *ctx, int64_t lo, int64_t hi) {
    const binary_job_t *j = ctx;
    const float *x = j->x, *y = j->y;
    float *out = j->out;
    if (j->a->numel == j->b->numel) { /* the common case, kept simple enough to vectorise */
        if (j->multiply)
            for (int64_t i = lo; i < hi; i++) out[i] = x[i] * y[i];
        else
            for (int64_t i = lo; i < hi; i++) out[i] = x[i] + y[i];
        return;
    }
    for (int64_t i = lo; i < hi; i++) {
        float v = y[broadcast_index(i, j->a, j->b)];
        out[i] = j->multiply ? x[i] * v : x[i] + v;
    }
}

static autosp_status_t run_binary(const kernel_args_t *r, bool multiply) {
    binary_job_t j = {.a = &r->c->in[0],
                      .b = &r->c->in[1],
                      .x = CF(r->in[0]),
                      .y = CF(r->in[1]),
                      .out = F(r->out[0]),
                      .multiply = multiply};
    par_for(j.a->numel, 1 << 14, binary_range, &j);
    return AUTOSP_OK;
}
static autosp_status_t run_add(const kernel_args_t *r) {
    return run_binary(r, false);
}
static autosp_status_t run_mul(const kernel_args_t *r) {
    return run_binary(r, true);
}

/* x (...) summed down to like's shape */
static autosp_status_t run_sum_to(const kernel_args_t *r) {
    const cshape_t *x = &r->c->in[0], *like = &r->c->out[0];
    float *out = F(r->out[0]);
    const float *in = CF(r->in[0]);
    cpu_zero(out, like);
    if (like->numel == x->numel)
        memcpy(out, in, (size_t)x->numel * sizeof(float));
    else
        for (int64_t i = 0; i < x->numel; i++) out[broadcast_index(i, x, like)] += in[i];
    return AUTOSP_OK;
}

static autosp_status_t run_scale(const kernel_args_t *r) {
    float alpha = (float)node_attr_float(r->c->node, "alpha");
    for (int64_t i = 0; i < r->c->out[0].numel; i++) F(r->out[0])[i] = alpha * CF(r->in[0])[i];
    return AUTOSP_OK;
}

static autosp_status_t run_fill(const kernel_args_t *r) {
    float v = (float)node_attr_float(r->c->node, "value");
    for (int64_t i = 0; i < r->c->out[0].numel; i++) F(r->out[0])[i] = v;
    return AUTOSP_OK;
}

static autosp_status_t run_silu(const kernel_args_t *r) {
    silu_forward(F(r->out[0]), CF(r->in[0]), r->c->out[0].numel);
    return AUTOSP_OK;
}
static autosp_status_t run_silu_backward(const kernel_args_t *r) {
    silu_backward(F(r->out[0]), CF(r->in[0]), CF(r->in[1]), r->c->out[0].numel);
    return AUTOSP_OK;
}
static autosp_status_t run_gelu(const kernel_args_t *r) {
    gelu_forward(F(r->out[0]), CF(r->in[0]), r->c->out[0].numel);
    return AUTOSP_OK;
}
static autosp_status_t run_gelu_backward(const kernel_args_t *r) {
    gelu_backward(F(r->out[0]), CF(r->in[0]), CF(r->in[1]), r->c->out[0].numel);
    return AUTOSP_OK;
}
static autosp_status_t run_swiglu(const kernel_args_t *r) {
    swiglu_forward(F(r->out[0]), CF(r->in[0]), CF(r->in[1]), r->c->out[0].numel);
    return AUTOSP_OK;
}
static autosp_status_t run_swiglu_backward(const kernel_args_t *r) { /* (dout, gate, up) */
    swiglu_backward(F(r->out[0]), F(r->out[1]), CF(r->in[0]), CF(r->in[1]), CF(r->in[2]),
                    r->c->out[0].numel);
    return AUTOSP_OK;
}

static float cap_of(const kernel_args_t *r) {
    return (float)node_attr_float(r->c->node, "cap");
}
static autosp_status_t run_softcap(const kernel_args_t *r) {
    softcap_forward(F(r->out[0]), CF(r->in[0]), r->c->out[0].numel, cap_of(r));
    return AUTOSP_OK;
}
static autosp_status_t run_softcap_backward(const kernel_args_t *r) { /* (dout, x) */
    softcap_backward(F(r->out[0]), CF(r->in[0]), CF(r->in[1]), r->c->out[0].numel, cap_of(r));
    return AUTOSP_OK;
}

/* bf16: the f32 adapters on blocks of rows (staged.c). A broadcast add or mul, and sum_to, run
 * as one block (their operands' rows differ). */
CPU_STAGED(add, run_add, NULL, 3, 1)
CPU_STAGED(mul, run_mul, NULL, 3, 1)
CPU_STAGED(scale, run_scale, NULL, 1, 1)
CPU_STAGED(fill, run_fill, NULL, 0, 1)
CPU_STAGED(sum_to, run_sum_to, NULL, 0, 0)
CPU_STAGED(silu, run_silu, NULL, 1, 1)
CPU_STAGED(silu_backward, run_silu_backward, NULL, 3, 1)
CPU_STAGED(gelu, run_gelu, NULL, 1, 1)
CPU_STAGED(gelu_backward, run_gelu_backward, NULL, 3, 1)
CPU_STAGED(swiglu, run_swiglu, NULL, 3, 1)
CPU_STAGED(swiglu_backward, run_swiglu_backward, NULL, 7, 3)
CPU_STAGED(softcap, run_softcap, NULL, 1, 1)
CPU_STAGED(softcap_backward, run_softcap_backward, NULL, 3, 1)

static const cpu_kernel_reg_t kernels[] = {
    CPU_STAGED_ROW(ADD, add),
    CPU_STAGED_ROW(MUL, mul),
    CPU_STAGED_ROW(SCALE, scale),
    CPU_STAGED_ROW(FILL, fill),
    CPU_STAGED_ROW(SUM_TO, sum_to),
    CPU_STAGED_ROW(SILU, silu),
    CPU_STAGED_ROW(SILU_BACKWARD, silu_backward),
    CPU_STAGED_ROW(GELU, gelu),
    CPU_STAGED_ROW(GELU_BACKWARD, gelu_backward),
    CPU_STAGED_ROW(SWIGLU, swiglu),
    CPU_STAGED_ROW(SWIGLU_BACKWARD, swiglu_backward),
    CPU_STAGED_ROW(SOFTCAP, softcap),
    CPU_STAGED_ROW(SOFTCAP_BACKWARD, softcap_backward),
    CPU_KERNEL(ADD, F32, run_add),
    CPU_KERNEL(MUL, F32, run_mul),
    CPU_KERNEL(SCALE, F32, run_scale),
    CPU_KERNEL(FILL, F32, run_fill),
    CPU_KERNEL(SUM_TO, F32, run_sum_to),
    CPU_KERNEL(SILU, F32, run_silu),
    CPU_KERNEL(SILU_BACKWARD, F32, run_silu_backward),
    CPU_KERNEL(GELU, F32, run_gelu),
    CPU_KERNEL(GELU_BACKWARD, F32, run_gelu_backward),
    CPU_KERNEL(SWIGLU, F32, run_swiglu),
    CPU_KERNEL(SWIGLU_BACKWARD, F32, run_swiglu_backward),
    CPU_KERNEL(SOFTCAP, F32, run_softcap),
    CPU_KERNEL(SOFTCAP_BACKWARD, F32, run_softcap_backward),
};
CPU_FAMILY(elementwise, kernels);
