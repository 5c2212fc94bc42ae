/* rope.c: rotary position embedding, rotate-half pairing. Its backward is itself with
 * inverse = !inverse (a rotation's transpose is the rotation by the opposite angle). */
#define _GNU_SOURCE /* sincos */
#include <math.h>
#include <string.h>

#include "backends/cpu/cpu_ops.h"
#include "base/bf16.h"
#include "kernels.h"
#include "parallel.h"

enum {
    ROPE_BLOCK = 64,      /* pair indices whose frequencies and angles are held at once */
    ROPE_GRAIN = 1 << 14, /* elements per range on the pool */
};

typedef struct rope_job {
    float *out;
    const float *x;
    const int32_t *positions;
    int64_t H, D;
    const rope_freqs_t *freqs;
    bool inverse;
} rope_job_t;

/* Hugging Face's rope_scaling, in double: "linear" (position interpolation) divides every
 * frequency; "llama3" divides only the low ones (wavelength above original / low_freq_factor)
 * and blends linearly in 1 / wavelength up to original / high_freq_factor. */
double rope_inv_freq(const rope_freqs_t *f, int64_t i, int64_t D) {
    const double inv = pow(f->theta, -2.0 * (double)i / (double)D);
    if (f->scaling == ROPE_LINEAR) return inv / f->factor;
    if (f->scaling != ROPE_LLAMA3) return inv;
    const double wavelen = 2.0 * M_PI / inv, orig = f->original_max_position;
    if (wavelen < orig / f->high_freq_factor) return inv;
    if (wavelen > orig / f->low_freq_factor) return inv / f->factor;
    const double smooth =
        (orig / wavelen - f->low_freq_factor) / (f->high_freq_factor - f->low_freq_factor);
    return (1.0 - smooth) * inv / f->factor + smooth * inv;
}

/* Rows (b, s) in [r0, r1), pair indices [i0, i0 + n): the angles of a row once, then every
 * head's pairs in a loop over contiguous floats that gcc vectorises. */
static void rope_block(const rope_job_t *j, int64_t r0, int64_t r1, int64_t i0, int64_t n) {
    const int64_t half = j->D / 2;
    double inv_freq[ROPE_BLOCK];
    for (int64_t k = 0; k < n; k++) inv_freq[k] = rope_inv_freq(j->freqs, i0 + k, j->D);
    for (int64_t r = r0; r < r1; r++) {
        const double p = (double)j->positions[r];
        float c[ROPE_BLOCK], s[ROPE_BLOCK];
        for (int64_t k = 0; k < n; k++) {
            double sd, cd;
            sincos(p * inv_freq[k], &sd, &cd);
            c[k] = (float)cd;
            s[k] = j->inverse ? -(float)sd : (float)sd;
        }
        for (int64_t h = 0; h < j->H; h++) {
            const float *x1 = j->x + (r * j->H + h) * j->D + i0, *x2 = x1 + half;
            float *o1 = j->out + (r * j->H + h) * j->D + i0, *o2 = o1 + half;
            for (int64_t k = 0; k < n; k++) {
                const float a = x1[k], b = x2[k];
                o1[k] = a * c[k] - b * s[k];
                o2[k] = a * s[k] + b * c[k];
            }
        }
    }
}

static void rope_rows(void *ctx, int64_t r0, int64_t r1) {
    const rope_job_t *j = ctx;
    for (int64_t i0 = 0; i0 < j->D / 2; i0 += ROPE_BLOCK) {
        const int64_t n = j->D / 2 - i0 < ROPE_BLOCK ? j->D / 2 - i0 : ROPE_BLOCK;
        rope_block(j, r0, r1, i0, n);
    }
}

/* x (B,S,H,D), positions (B,S) int32 -> out (B,S,H,D). For each pair (i, i + D/2), i < D/2:
 *   out[i]       = x[i] cos(a) - x[i + D/2] sin(a)
 *   out[i + D/2] = x[i] sin(a) + x[i + D/2] cos(a),   a = p * theta^(-2i/D) (negated if inverse)
 * The angle is computed once per (position, i) and reused for all H heads, so it costs little
 * to do it in double: a float angle loses precision at long positions (ulp(1e5) ~ 0.008 rad).
 * Each pair is read before it is written, so out may equal x. */
void rope_forward_freqs(float *out, const float *x, const int32_t *positions, int64_t B, int64_t S,
                        int64_t H, int64_t D, const rope_freqs_t *f, bool inverse) {
    rope_job_t j = {
        .out = out, .x = x, .positions = positions, .H = H, .D = D, .freqs = f, .inverse = inverse};
    const int64_t row = H * D > 0 ? H * D : 1;
    par_for(B * S, ROPE_GRAIN / row + 1, rope_rows, &j);
}

void rope_forward(float *out, const float *x, const int32_t *positions, int64_t B, int64_t S,
                  int64_t H, int64_t D, float theta, bool inverse) {
    const rope_freqs_t f = {.theta = (double)theta, .scaling = ROPE_PLAIN};
    rope_forward_freqs(out, x, positions, B, S, H, D, &f, inverse);
}

/* The node's frequencies (its theta rounded to f32, as the kernel has always taken it). */
static rope_freqs_t node_freqs(const node_t *n) {
    const char *s = node_attr_str(n, "scaling");
    return (rope_freqs_t){.theta = (double)(float)node_attr_float(n, "theta"),
                          .scaling = !strcmp(s, "linear")   ? ROPE_LINEAR
                                     : !strcmp(s, "llama3") ? ROPE_LLAMA3
                                                            : ROPE_PLAIN,
                          .factor = node_attr_float(n, "factor"),
                          .low_freq_factor = node_attr_float(n, "low_freq_factor"),
                          .high_freq_factor = node_attr_float(n, "high_freq_factor"),
                          .original_max_position = node_attr_float(n, "original_max_position")};
}

/* ---- adapters: a node's shapes and buffers, turned into one kernel call ------------------- */

/* positions (B,S) or (S): a 1-D table is shared by every batch entry */
static autosp_status_t run_rope(const kernel_args_t *r) {
    const cshape_t *x = &r->c->in[0], *p = &r->c->in[1];
    int64_t B = x->d[0], S = x->d[1], H = x->d[2], D = x->d[3], per_batch = S * H * D;
    const rope_freqs_t f = node_freqs(r->c->node);
    bool inverse = node_attr_int(r->c->node, "inverse");
    if (p->ndim == 2) {
        rope_forward_freqs(F(r->out[0]), CF(r->in[0]), I32(r->in[1]), B, S, H, D, &f, inverse);
        return AUTOSP_OK;
    }
    for (int64_t b = 0; b < B; b++)
        rope_forward_freqs(F(r->out[0]) + b * per_batch, CF(r->in[0]) + b * per_batch,
                           I32(r->in[1]), 1, S, H, D, &f, inverse);
    return AUTOSP_OK;
}

/* bf16: blocks of (b, s) rows widened into the workspace, rotated there, rounded into out (the
 * angles in double as in f32). A block stays within one batch entry, so a 1-D positions table
 * is read at the block's own s. */
static int64_t rope_block_rows(const cshape_t *x) {
    int64_t rows = cpu_stage_rows(x->d[2] * x->d[3]);
    return rows < x->d[1] ? rows : x->d[1];
}
static int64_t workspace_rope_bf16(const cost_ctx_t *c) {
    return rope_block_rows(&c->in[0]) * c->in[0].d[2] * c->in[0].d[3] * (int64_t)sizeof(float);
}

static autosp_status_t run_rope_bf16(const kernel_args_t *r) {
    const cshape_t *x = &r->c->in[0];
    int64_t S = x->d[1], row = x->d[2] * x->d[3], block = rope_block_rows(x);
    const rope_freqs_t f = node_freqs(r->c->node);
    float *ws = r->workspace;
    bool inverse = node_attr_int(r->c->node, "inverse"), shared = r->c->in[1].ndim == 1;
    for (int64_t b = 0; b < x->d[0]; b++)
        for (int64_t s0 = 0; s0 < S; s0 += block) {
            int64_t n = S - s0 < block ? S - s0 : block, at = (b * S + s0) * row;
            const int32_t *pos = I32(r->in[1]) + (shared ? s0 : b * S + s0);
            cpu_widen(ws, (const bf16_t *)r->in[0] + at, n * row);
            rope_forward_freqs(ws, ws, pos, 1, n, x->d[2], x->d[3], &f, inverse);
            cpu_round((bf16_t *)r->out[0] + at, ws, n * row);
        }
    return AUTOSP_OK;
}

static const cpu_kernel_reg_t kernels[] = {
    CPU_KERNEL(ROPE, BF16, run_rope_bf16, .workspace = workspace_rope_bf16),
    CPU_KERNEL(ROPE, F32, run_rope),
};
CPU_FAMILY(rope, kernels);
