/* elementwise.c: activations, forward next to backward. All shapes are (n) -> (n); every
 * output element depends only on the input elements at the same index, so out may equal an
 * input and dx may equal dout. */
#include "fastmath.h"
#include "kernels.h"

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

// x (n) -> out (n)
void silu_forward(float *out, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = silu(x[i]);
}

// dout (n), x (n) -> dx (n)
void silu_backward(float *dx, const float *dout, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) dx[i] = dout[i] * silu_grad(x[i]);
}

/* gelu, GPT-2's tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
#define GELU_SQRT_2_OVER_PI 0.7978845608028654f
#define GELU_CUBE           0.044715f

// x (n) -> out (n)
void gelu_forward(float *out, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        float u = GELU_SQRT_2_OVER_PI * (v + GELU_CUBE * v * v * v);
        out[i] = 0.5f * v * (1.0f + tanh_approx(u));
    }
}

// dout (n), x (n) -> dx (n)
void gelu_backward(float *dx, const float *dout, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        float u = GELU_SQRT_2_OVER_PI * (v + GELU_CUBE * v * v * v);
        float t = tanh_approx(u);
        float du = GELU_SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_CUBE * v * v);
        float grad = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du;
        dx[i] = dout[i] * grad;
    }
}

// gate (n), up (n) -> out (n) = silu(gate) * up
void swiglu_forward(float *out, const float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = silu(gate[i]) * up[i];
}

// dout (n), gate (n), up (n) -> dgate (n), dup (n)
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                     const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i], u = up[i], d = dout[i]; /* read all before writing: aliasing-safe */
        dgate[i] = d * u * silu_grad(g);
        dup[i] = d * silu(g);
    }
}
