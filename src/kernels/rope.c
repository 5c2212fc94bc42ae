/* rope.c: rotary position embedding, rotate-half pairing. Its backward is itself with
 * inverse = !inverse (a rotation's transpose is the rotation by the opposite angle). */
#include <math.h>

#include "kernels.h"

/* x (B,S,H,D), positions (B,S) int32 -> out (B,S,H,D). For each pair (i, i + D/2), i < D/2:
 *   out[i]       = x[i] cos(a) - x[i + D/2] sin(a)
 *   out[i + D/2] = x[i] sin(a) + x[i + D/2] cos(a),   a = p * theta^(-2i/D) (negated if inverse)
 * The angle is computed once per (position, i) and reused for all H heads, so it costs nothing
 * to do it in double: a float angle loses precision at long positions (ulp(1e5) ~ 0.008 rad).
 * Each pair is read before it is written, so out may equal x. */
void rope_forward(float *out, const float *x, const int32_t *positions, int64_t B, int64_t S,
                  int64_t H, int64_t D, float theta, bool inverse) {
    int64_t half = D / 2;
    for (int64_t bs = 0; bs < B * S; bs++) {
        double p = (double)positions[bs];
        const float *xbs = x + bs * H * D;
        float *outbs = out + bs * H * D;
        for (int64_t i = 0; i < half; i++) {
            double angle = p * pow((double)theta, -2.0 * (double)i / (double)D);
            float c = (float)cos(angle);
            float s = inverse ? -(float)sin(angle) : (float)sin(angle);
            for (int64_t h = 0; h < H; h++) {
                float x1 = xbs[h * D + i], x2 = xbs[h * D + i + half];
                outbs[h * D + i] = x1 * c - x2 * s;
                outbs[h * D + i + half] = x1 * s + x2 * c;
            }
        }
    }
}
