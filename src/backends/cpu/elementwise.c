/* elementwise.c: activations, forward next to backward. All shapes are (n) -> (n); every
 * output element depends only on the input elements at the same index, so out may equal an
 * input and dx may equal dout. */
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
