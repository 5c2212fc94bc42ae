/* Flash attention (src/backends/cpu/attention.c) against the naive reference (ref_attention.c), and
 * the reference backward against finite differences of the reference forward.
 *
 * Every buffer handed to the fast kernels is malloc'd at its exact size (the workspace too, at
 * a deliberately misaligned address), so the sanitizer build catches any access past an end;
 * outputs and workspace start as NaN, so a value the kernel forgets to write shows up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/kernels.h"
#include "base/bf16.h"
#include "ref/ref.h"

/* ---- deterministic inputs ------------------------------------------------------------------ */

typedef struct rng {
    uint64_t s;
} rng_t;

static uint64_t rng_next(rng_t *r) { /* xorshift64 */
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return r->s;
}

static float rng_uniform(rng_t *r, float lo, float hi) { /* [lo, hi) */
    return lo + (hi - lo) * (float)((rng_next(r) >> 40) * (1.0 / 16777216.0));
}

static float *random_floats(rng_t *r, size_t n, float lo, float hi) {
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    for (size_t t = 0; t < n; t++) x[t] = rng_uniform(r, lo, hi);
    return x;
}

static float *nan_floats(size_t n) {
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    for (size_t t = 0; t < n; t++) x[t] = NAN;
    return x;
}

/* ---- cases --------------------------------------------------------------------------------- */

typedef enum {
    SEG_NONE,    /* segment_ids = NULL */
    SEG_DOCS,    /* packed documents of 23 + 11b tokens (3 + b when S <= 16), so they start
                  * mid-tile, then the last tenth padding (-1); odd batches also start with 3
                  * padding tokens */
    SEG_SCATTER, /* ids drawn at random from {-1, 0, 1, 2}: unsorted, non-contiguous */
} seg_kind_t;

typedef struct attn_case {
    const char *name;
    int64_t B, S, Skv, Hq, Hkv, D;
    bool causal;
    seg_kind_t seg;
} attn_case_t;

static int32_t *make_segments(const attn_case_t *c, rng_t *r) {
    if (c->seg == SEG_NONE) return NULL;
    int32_t *seg = malloc((size_t)(c->B * c->S) * sizeof *seg);
    assert_non_null(seg);
    for (int64_t b = 0; b < c->B; b++) {
        const int64_t doc_len = c->S <= 16 ? 3 + b : 23 + 11 * b;
        const int64_t pad_from = c->S - (c->S + 9) / 10;
        for (int64_t i = 0; i < c->S; i++) {
            int32_t id = (int32_t)(i / doc_len);
            if (i >= pad_from || (b % 2 == 1 && i < 3)) id = -1;
            if (c->seg == SEG_SCATTER) id = (int32_t)(rng_next(r) % 4) - 1;
            seg[b * c->S + i] = id;
        }
    }
    return seg;
}

static attention_dims_t dims_of(const attn_case_t *c) {
    attention_dims_t d = {.B = c->B,
                          .S = c->S,
                          .Skv = c->Skv,
                          .Hq = c->Hq,
                          .Hkv = c->Hkv,
                          .D = c->D,
                          .causal = c->causal,
                          .scale = 1.0f / sqrtf((float)c->D)};
    return d;
}

/* One case's tensors. */
typedef struct attn_data {
    attention_dims_t d;
    size_t nq, nkv, nlse;
    float *q, *k, *v, *dout;
    int32_t *seg;
} attn_data_t;

static attn_data_t data_new(const attn_case_t *c, uint64_t seed) {
    rng_t r = {seed};
    attn_data_t a = {.d = dims_of(c)};
    a.nq = (size_t)(c->B * c->S * c->Hq * c->D);
    a.nkv = (size_t)(c->B * c->Skv * c->Hkv * c->D);
    a.nlse = (size_t)(c->B * c->Hq * c->S);
    /* |q.k| up to ~2 sqrt(D) before the 1/sqrt(D) scale: peaked and flat rows both occur */
    a.q = random_floats(&r, a.nq, -2.0f, 2.0f);
    a.k = random_floats(&r, a.nkv, -2.0f, 2.0f);
    a.v = random_floats(&r, a.nkv, -1.0f, 1.0f);
    a.dout = random_floats(&r, a.nq, -1.0f, 1.0f);
    a.seg = make_segments(c, &r);
    return a;
}

static void data_free(attn_data_t *a) {
    free(a->q), free(a->k), free(a->v), free(a->dout), free(a->seg);
}

/* ---- comparisons --------------------------------------------------------------------------- */

/* sum (a-b)^2 / sum b^2 over the entries where b is finite; a must be -inf exactly where b is
 * (lse of a row that sees nothing), and finite everywhere else. When b is all zero, as dq is
 * when every query sees one key (dP - delta cancels exactly), a is the f32 rounding of that
 * cancellation of O(1) terms: |a| <= ZERO_ABS_MAX is required instead, and 0 returned. */
#define ZERO_ABS_MAX 1e-5
static double nmse(const float *a, const float *b, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t t = 0; t < n; t++) {
        if (isinf(b[t])) {
            assert_true(a[t] == b[t]);
            continue;
        }
        assert_true(isfinite(a[t]));
        num += ((double)a[t] - b[t]) * ((double)a[t] - b[t]);
        den += (double)b[t] * b[t];
    }
    if (den == 0.0) {
        for (size_t t = 0; t < n; t++) assert_true(fabsf(a[t]) <= ZERO_ABS_MAX);
        return 0.0;
    }
    return num / den;
}

#define NMSE_MAX 1e-10

#define assert_close(what, a, b, n)                                                                \
    do {                                                                                           \
        double e_ = nmse((a), (b), (n));                                                           \
        if (!(e_ < NMSE_MAX)) fail_msg("%s: %s nmse %.3g >= %.0e", c->name, what, e_, NMSE_MAX);   \
    } while (0)

/* Does query i of batch b see any key? */
static bool sees_a_key(const attn_data_t *a, int64_t b, int64_t i) {
    const int32_t *seg = a->seg ? a->seg + b * a->d.S : NULL;
    const int64_t end = a->d.causal ? i + 1 : a->d.Skv;
    for (int64_t j = 0; j < end; j++)
        if (!seg || (seg[j] == seg[i] && seg[j] >= 0)) return true;
    return false;
}

/* (4): queries that see nothing output zeros with lse = -inf and get dq = 0; padding keys
 * get dk = dv = 0. Everything finite (checked by nmse). */
static void check_padding(const attn_case_t *c, const attn_data_t *a, const float *out,
                          const float *lse, const float *dq, const float *dk, const float *dv) {
    const attention_dims_t *d = &a->d;
    for (int64_t b = 0; b < d->B; b++) {
        for (int64_t i = 0; i < d->S; i++) {
            if (sees_a_key(a, b, i)) continue;
            for (int64_t h = 0; h < d->Hq; h++) {
                assert_true(isinf(lse[(b * d->Hq + h) * d->S + i]));
                for (int64_t t = 0; t < d->D; t++) {
                    const size_t at = (size_t)(((b * d->S + i) * d->Hq + h) * d->D + t);
                    if (out[at] != 0.0f || dq[at] != 0.0f)
                        fail_msg("%s: padding query %lld has out %g dq %g", c->name, (long long)i,
                                 out[at], dq[at]);
                }
            }
        }
        for (int64_t j = 0; a->seg && j < d->Skv; j++) {
            if (a->seg[b * d->S + j] >= 0) continue;
            for (size_t t = 0; t < (size_t)(d->Hkv * d->D); t++) {
                const size_t at = (size_t)((b * d->Skv + j) * d->Hkv * d->D) + t;
                if (dk[at] != 0.0f || dv[at] != 0.0f)
                    fail_msg("%s: padding key %lld has dk %g dv %g", c->name, (long long)j, dk[at],
                             dv[at]);
            }
        }
    }
}

/* A workspace of exactly `size` bytes that starts 1 byte into a malloc'd block (misaligned on
 * purpose), filled with NaN bytes. */
static void *workspace_new(size_t size, void **block) {
    *block = malloc(size + 1);
    assert_non_null(*block);
    memset(*block, 0xff, size + 1);
    return (char *)*block + 1;
}

/* ---- (1) (2) (4) (5): fast vs reference, one case ------------------------------------------ */

static void test_fast_vs_reference(void **state) {
    const attn_case_t *c = *state;
    attn_data_t a = data_new(c, 0x9e3779b97f4a7c15ull ^ (uint64_t)(c->S * 131 + c->D));
    float *out = nan_floats(a.nq), *lse = nan_floats(a.nlse);
    float *out_ref = nan_floats(a.nq), *lse_ref = nan_floats(a.nlse);
    void *block;
    void *ws = workspace_new(attention_forward_workspace(&a.d), &block);
    attention_forward(out, lse, a.q, a.k, a.v, a.seg, &a.d, ws);
    free(block);
    ref_attention_forward(out_ref, lse_ref, a.q, a.k, a.v, a.seg, &a.d);
    assert_close("out", out, out_ref, a.nq);
    assert_close("lse", lse, lse_ref, a.nlse);

    float *dq = nan_floats(a.nq), *dk = nan_floats(a.nkv), *dv = nan_floats(a.nkv);
    float *dq_ref = nan_floats(a.nq), *dk_ref = nan_floats(a.nkv), *dv_ref = nan_floats(a.nkv);
    ws = workspace_new(attention_backward_workspace(&a.d), &block);
    attention_backward(dq, dk, dv, a.dout, a.q, a.k, a.v, a.seg, out, lse, &a.d, ws);
    free(block);
    ref_attention_backward(dq_ref, dk_ref, dv_ref, a.dout, a.q, a.k, a.v, a.seg, &a.d);
    assert_close("dq", dq, dq_ref, a.nq);
    assert_close("dk", dk, dk_ref, a.nkv);
    assert_close("dv", dv, dv_ref, a.nkv);
    check_padding(c, &a, out, lse, dq, dk, dv);
    check_padding(c, &a, out_ref, lse_ref, dq_ref, dk_ref, dv_ref);

    free(out), free(lse), free(out_ref), free(lse_ref);
    free(dq), free(dk), free(dv), free(dq_ref), free(dk_ref), free(dv_ref);
    data_free(&a);
}

/* ---- (3): reference backward vs central finite differences -------------------------------- */

/* L = sum(out * R), out from the reference forward (double accumulators, f32 result). */
static double loss(const attn_data_t *a, const float *R, float *out, float *lse) {
    ref_attention_forward(out, lse, a->q, a->k, a->v, a->seg, &a->d);
    double L = 0.0;
    for (size_t t = 0; t < a->nq; t++) L += (double)out[t] * R[t];
    return L;
}

/* The bound. Inputs are f32, so x +- eps is rounded to f32: the step used is the one actually
 * taken, xp - xm (computed in double). A central difference errs by truncation, eps^2/6 |L'''|,
 * ~1e-5 .. 1e-4 with O(1) scores, and by rounding: the f32 rounding of the out entries that the
 * step changes (one row of D for a q coordinate, the rows attending one key for k and v) over
 * 2 eps, ~ sqrt(D) * 6e-8 / 2e-2 ~ 1e-5. A smaller eps grows the second, a larger one the first;
 * at eps = 1e-2 both are ~1e-3 or less of a typical gradient entry (0.01 .. 1; measured worst
 * relative error 1.3e-3), hence the bound 1e-2, taken against max(|analytic|, 1e-2 * max
 * |analytic| of the tensor) so that entries near 0 are judged on the tensor's scale. A wrong
 * term (a missing scale, delta or GQA sum) gives an O(1) error. */
#define FD_EPS     1e-2f
#define FD_REL_MAX 1e-2

static void check_fd(const char *case_name, const char *what, const attn_data_t *a, float *x,
                     const float *grad, size_t n, size_t n_probe, rng_t *r, const float *R) {
    float *out = malloc(a->nq * sizeof *out), *lse = malloc(a->nlse * sizeof *lse);
    assert_non_null(out), assert_non_null(lse);
    double gmax = 0.0;
    for (size_t t = 0; t < n; t++) gmax = fmax(gmax, fabs(grad[t]));
    for (size_t p = 0; p < (n_probe ? n_probe : n); p++) {
        const size_t t = n_probe ? (size_t)(rng_next(r) % n) : p;
        const float x0 = x[t], xp = x0 + FD_EPS, xm = x0 - FD_EPS;
        x[t] = xp;
        const double lp = loss(a, R, out, lse);
        x[t] = xm;
        const double lm = loss(a, R, out, lse);
        x[t] = x0;
        const double fd = (lp - lm) / ((double)xp - xm);
        const double err = fabs(fd - grad[t]) / fmax(fabs(grad[t]), 1e-2 * gmax);
        if (!(err < FD_REL_MAX) && !(fd == 0.0 && grad[t] == 0.0))
            fail_msg("%s: d%s[%zu] analytic %.6g, finite difference %.6g (rel err %.3g)", case_name,
                     what, t, grad[t], fd, err);
    }
    free(out), free(lse);
}

/* n_probe random coordinates of each of q, k, v; 0 = every coordinate */
static void fd_case(const attn_case_t *c, size_t n_probe) {
    attn_data_t a = data_new(c, 0x2545f4914f6cdd1dull + (uint64_t)c->S);
    rng_t r = {0xdeadbeefcafef00dull};
    float *R = random_floats(&r, a.nq, -1.0f, 1.0f);
    float *dq = nan_floats(a.nq), *dk = nan_floats(a.nkv), *dv = nan_floats(a.nkv);
    ref_attention_backward(dq, dk, dv, R, a.q, a.k, a.v, a.seg, &a.d); /* dL/dout = R */
    check_fd(c->name, "q", &a, a.q, dq, a.nq, n_probe, &r, R);
    check_fd(c->name, "k", &a, a.k, dk, a.nkv, n_probe, &r, R);
    check_fd(c->name, "v", &a, a.v, dv, a.nkv, n_probe, &r, R);
    free(R), free(dq), free(dk), free(dv);
    data_free(&a);
}

static void test_fd_full_small(void **state) {
    (void)state;
    /* GQA, causal, two documents and padding: every coordinate */
    const attn_case_t c = {"fd small", 1, 9, 9, 4, 2, 8, true, SEG_DOCS};
    const attn_case_t c2 = {"fd small cross", 2, 5, 7, 2, 1, 5, false, SEG_NONE};
    fd_case(&c, 0);
    fd_case(&c2, 0);
}

static void test_fd_random_coords(void **state) {
    (void)state;
    const attn_case_t c = {"fd S=65", 2, 65, 65, 8, 1, 16, true, SEG_DOCS};
    fd_case(&c, 24);
}

/* ---- NaN in, NaN out ---------------------------------------------------------------------- */

/* A NaN in one query row makes that row's out and lse NaN (not zeros, which would look like
 * padding) and leaves every other row finite, in both kernels. */
static void test_nan_propagates(void **state) {
    (void)state;
    const attn_case_t cs = {"nan", 1, 130, 130, 4, 2, 16, true, SEG_NONE};
    const attn_case_t *c = &cs;
    attn_data_t a = data_new(c, 7);
    const int64_t row = 70, head = 1;
    a.q[(row * c->Hq + head) * c->D + 3] = NAN;
    float *out = nan_floats(a.nq), *lse = nan_floats(a.nlse);
    void *block;
    void *ws = workspace_new(attention_forward_workspace(&a.d), &block);
    for (int fast = 0; fast < 2; fast++) {
        if (fast)
            attention_forward(out, lse, a.q, a.k, a.v, a.seg, &a.d, ws);
        else
            ref_attention_forward(out, lse, a.q, a.k, a.v, a.seg, &a.d);
        for (int64_t i = 0; i < c->S; i++) {
            for (int64_t h = 0; h < c->Hq; h++) {
                const bool poisoned = i == row && h == head;
                if (poisoned != (bool)isnan(lse[h * c->S + i]))
                    fail_msg("%s: row %lld head %lld lse %g", fast ? "fast" : "ref", (long long)i,
                             (long long)h, lse[h * c->S + i]);
                for (int64_t t = 0; t < c->D; t++)
                    assert_true(poisoned == (bool)isnan(out[(i * c->Hq + h) * c->D + t]));
            }
        }
    }
    free(block), free(out), free(lse);
    data_free(&a);
}

/* ---- (6): the thread count changes which thread computes a head, not a single bit --------- */

typedef struct attn_run {
    float *out, *lse, *dq, *dk, *dv;
} attn_run_t;

/* forward and backward of a with a->d.threads = threads, every buffer at its exact size */
static attn_run_t run_with_threads(attn_data_t *a, int threads) {
    attn_run_t r = {nan_floats(a->nq), nan_floats(a->nlse), nan_floats(a->nq), nan_floats(a->nkv),
                    nan_floats(a->nkv)};
    a->d.threads = threads;
    void *block;
    void *ws = workspace_new(attention_forward_workspace(&a->d), &block);
    attention_forward(r.out, r.lse, a->q, a->k, a->v, a->seg, &a->d, ws);
    free(block);
    ws = workspace_new(attention_backward_workspace(&a->d), &block);
    attention_backward(r.dq, r.dk, r.dv, a->dout, a->q, a->k, a->v, a->seg, r.out, r.lse, &a->d,
                       ws);
    free(block);
    return r;
}

static void run_free(attn_run_t *r) {
    free(r->out), free(r->lse), free(r->dq), free(r->dk), free(r->dv);
}

static void test_threads_bitwise(void **state) {
    const attn_case_t *c = *state;
    const int saved = openblas_get_num_threads();
    openblas_set_num_threads(3); /* the kernel uses min(this, d.threads) threads */
    attn_data_t a = data_new(c, 0x51ed270b27a4f3c9ull ^ (uint64_t)(c->S * 131 + c->D));
    attn_run_t one = run_with_threads(&a, 1), three = run_with_threads(&a, 3);
    openblas_set_num_threads(saved);
    /* no scratch slice for a thread that gets no item: with one (batch, kv head), as a rank
     * of Llama 3.1 8B at sp 8 has, the backward's workspace is one slice at any thread count */
    attention_dims_t d1 = a.d, d3 = a.d;
    d1.threads = 1, d3.threads = 3;
    if (c->B * c->Hkv == 1)
        assert_int_equal(attention_backward_workspace(&d3), attention_backward_workspace(&d1));
    else
        assert_true(attention_backward_workspace(&d3) > attention_backward_workspace(&d1));
    assert_memory_equal(one.out, three.out, a.nq * sizeof(float));
    assert_memory_equal(one.lse, three.lse, a.nlse * sizeof(float));
    assert_memory_equal(one.dq, three.dq, a.nq * sizeof(float));
    assert_memory_equal(one.dk, three.dk, a.nkv * sizeof(float));
    assert_memory_equal(one.dv, three.dv, a.nkv * sizeof(float));
    run_free(&one), run_free(&three);
    data_free(&a);
}

/* ---- bf16 against f32 on the same bf16 values ----------------------------------------------
 * Portable path (AUTOSP_BF16_PORTABLE=1, or a CPU without AVX512_BF16): the kernel widens its
 * tiles and runs the f32 code on them, so it must give the f32 kernel's results bit for bit
 * (lse, and the gradients kept in f32) or their rounding to bf16 (out, the bf16 gradients); a
 * missing tile, a stale scratch row or a gradient summed in bf16 breaks that.
 * Native path (AVX512_BF16): the products run on bf16 operands, P and dS rounded to bf16 (as
 * FlashAttention does), so the results are within a few roundings: normwise, out within 2u
 * (P's rounding and its own), lse within 64 f32 roundings of its scores, each gradient within
 * 4u (P and dS, its own, the rounded out in delta), u = 2^-8. A wrong term is O(1) off.
 * Both with bf16 gradients and with f32 ones. */

#define BF16_U 0.00390625

static bf16_t *narrowed(const float *x, size_t n) {
    bf16_t *h = malloc(n * sizeof *h + 1);
    assert_non_null(h);
    bf16_from_f32_n(h, x, (int64_t)n);
    return h;
}

static void round_in_place(float *x, size_t n) { /* x = widen(round(x)) */
    bf16_t *h = narrowed(x, n);
    bf16_to_f32_n(x, h, (int64_t)n);
    free(h);
}

static float got_at(const void *got, bool got_bf16, size_t t) {
    return got_bf16 ? bf16_to_f32(((const bf16_t *)got)[t]) : ((const float *)got)[t];
}

/* Portable: got (bf16, or float) is want, rounded when got is bf16. Native: normwise within
 * `bound`. */
static void assert_matches(const char *name, const char *what, const void *got, bool got_bf16,
                           const float *want, size_t n, double bound) {
    if (!bf16_native()) {
        for (size_t t = 0; t < n; t++) {
            const float g = got_at(got, got_bf16, t);
            const float w = got_bf16 ? bf16_to_f32(f32_to_bf16(want[t])) : want[t];
            if (memcmp(&g, &w, sizeof g))
                fail_msg("%s: bf16 %s[%zu] is %.9g, expected %.9g", name, what, t, g, w);
        }
        return;
    }
    double num = 0, den = 0;
    for (size_t t = 0; t < n; t++) {
        if (isinf(want[t])) { /* lse of a row that sees nothing */
            assert_true(got_at(got, got_bf16, t) == want[t]);
            continue;
        }
        const double e = (double)got_at(got, got_bf16, t) - want[t];
        num += e * e, den += (double)want[t] * want[t];
    }
    /* a gradient that cancels to zero (one key per query: dP = delta) is f32 rounding residue
     * in `want`: measured against ZERO_ABS_MAX per element instead */
    const double floor2 = ZERO_ABS_MAX * ZERO_ABS_MAX * (double)n;
    const double err = sqrt(num / (den > floor2 ? den : floor2));
    if (!(err <= bound))
        fail_msg("%s: bf16 %s off by %.3g normwise, bound %.3g", name, what, err, bound);
    if (getenv("ATTN_BF16_VERBOSE")) print_message("%s %s %.3g\n", name, what, err);
}

static void bf16_case(const attn_case_t *c, unsigned f32_grads) {
    attn_data_t a = data_new(c, 0x243f6a8885a308d3ull ^ (uint64_t)(c->S * 131 + c->D));
    round_in_place(a.q, a.nq), round_in_place(a.k, a.nkv), round_in_place(a.v, a.nkv);
    round_in_place(a.dout, a.nq);
    bf16_t *q = narrowed(a.q, a.nq), *k = narrowed(a.k, a.nkv), *v = narrowed(a.v, a.nkv);
    bf16_t *dout = narrowed(a.dout, a.nq), *out = narrowed(a.q, a.nq); /* out: overwritten */
    float *lse = nan_floats(a.nlse), *out_f = nan_floats(a.nq), *lse_f = nan_floats(a.nlse);
    attention_dims_t d16 = a.d;
    d16.bf16 = true, d16.f32_grads = f32_grads;
    void *block;
    void *ws = workspace_new(attention_forward_workspace(&d16), &block);
    attention_forward(out, lse, q, k, v, a.seg, &d16, ws);
    free(block);
    ws = workspace_new(attention_forward_workspace(&a.d), &block);
    attention_forward(out_f, lse_f, a.q, a.k, a.v, a.seg, &a.d, ws);
    free(block);
    assert_matches(c->name, "out", out, true, out_f, a.nq, 2 * BF16_U);
    assert_matches(c->name, "lse", lse, false, lse_f, a.nlse, 64.0 / (1 << 24));

    /* the backward from the bf16 forward's out, in both kernels */
    bf16_to_f32_n(out_f, out, (int64_t)a.nq);
    const size_t esize[3] = {f32_grads & AUTOSP_ATTENTION_DQ_F32 ? 4 : 2,
                             f32_grads & AUTOSP_ATTENTION_DK_F32 ? 4 : 2,
                             f32_grads & AUTOSP_ATTENTION_DV_F32 ? 4 : 2};
    void *dq = malloc(a.nq * esize[0]), *dk = malloc(a.nkv * esize[1]),
         *dv = malloc(a.nkv * esize[2]);
    float *dq_f = nan_floats(a.nq), *dk_f = nan_floats(a.nkv), *dv_f = nan_floats(a.nkv);
    memset(dq, 0xff, a.nq * esize[0]), memset(dk, 0xff, a.nkv * esize[1]);
    memset(dv, 0xff, a.nkv * esize[2]);
    ws = workspace_new(attention_backward_workspace(&d16), &block);
    attention_backward(dq, dk, dv, dout, q, k, v, a.seg, out, lse, &d16, ws);
    free(block);
    ws = workspace_new(attention_backward_workspace(&a.d), &block);
    attention_backward(dq_f, dk_f, dv_f, a.dout, a.q, a.k, a.v, a.seg, out_f, lse, &a.d, ws);
    free(block);
    assert_matches(c->name, "dq", dq, esize[0] == 2, dq_f, a.nq, 4 * BF16_U);
    assert_matches(c->name, "dk", dk, esize[1] == 2, dk_f, a.nkv, 4 * BF16_U);
    assert_matches(c->name, "dv", dv, esize[2] == 2, dv_f, a.nkv, 4 * BF16_U);

    free(q), free(k), free(v), free(dout), free(out), free(lse), free(out_f), free(lse_f);
    free(dq), free(dk), free(dv), free(dq_f), free(dk_f), free(dv_f);
    data_free(&a);
}

static void test_bf16_rounds_f32(void **state) {
    const attn_case_t *c = *state;
    bf16_case(c, 0);
    bf16_case(c, AUTOSP_ATTENTION_DQ_F32 | AUTOSP_ATTENTION_DV_F32);
}

/* ---- the cases ----------------------------------------------------------------------------- */

static const attn_case_t cases[] = {
    /* name                         B   S  Skv Hq Hkv  D causal seg */
    {"S=1 MHA", 1, 1, 1, 2, 2, 8, false, SEG_NONE},
    {"S=1 causal", 2, 1, 1, 2, 2, 8, true, SEG_NONE},
    {"S=7 MHA causal", 1, 7, 7, 2, 2, 8, true, SEG_NONE},
    {"S=7 GQA4/2", 2, 7, 7, 4, 2, 16, false, SEG_NONE},
    {"S=65 GQA4/2 causal", 1, 65, 65, 4, 2, 16, true, SEG_NONE},
    {"S=65 GQA8/1 causal docs", 2, 65, 65, 8, 1, 16, true, SEG_DOCS},
    {"S=130 MHA causal D=64", 1, 130, 130, 2, 2, 64, true, SEG_NONE},
    {"S=130 GQA8/1 causal docs D=64", 2, 130, 130, 8, 1, 64, true, SEG_DOCS},
    {"S=130 GQA4/2 docs D=64", 2, 130, 130, 4, 2, 64, false, SEG_DOCS},
    {"S=130 GQA4/2 causal scatter", 2, 130, 130, 4, 2, 16, true, SEG_SCATTER},
    {"S=130 MHA scatter D=8", 1, 130, 130, 2, 2, 8, false, SEG_SCATTER},
    {"S=7 Skv=130 GQA4/2", 2, 7, 130, 4, 2, 16, false, SEG_NONE},
    {"S=65 Skv=1 GQA8/1", 1, 65, 1, 8, 1, 8, false, SEG_NONE},
    {"S=130 Skv=65 D=64", 1, 130, 65, 4, 4, 64, false, SEG_NONE},
    {"D odd S=65 causal docs", 2, 65, 65, 4, 2, 5, true, SEG_DOCS},
    {"S=257 GQA4/2 causal D=64", 1, 257, 257, 4, 2, 64, true, SEG_NONE},
};

int main(void) {
    const size_t n_cases = sizeof cases / sizeof cases[0];
    struct CMUnitTest tests[3 * (sizeof cases / sizeof cases[0]) + 3];
    static char thread_names[sizeof cases / sizeof cases[0]][96];
    static char bf16_names[sizeof cases / sizeof cases[0]][96];
    for (size_t t = 0; t < n_cases; t++) {
        tests[t] = (struct CMUnitTest){.name = cases[t].name,
                                       .test_func = test_fast_vs_reference,
                                       .initial_state = (void *)&cases[t]};
        snprintf(thread_names[t], sizeof thread_names[t], "threads 1 vs 3 bitwise: %s",
                 cases[t].name);
        tests[n_cases + 3 + t] = (struct CMUnitTest){.name = thread_names[t],
                                                     .test_func = test_threads_bitwise,
                                                     .initial_state = (void *)&cases[t]};
        snprintf(bf16_names[t], sizeof bf16_names[t], "bf16 = f32 rounded: %s", cases[t].name);
        tests[2 * n_cases + 3 + t] = (struct CMUnitTest){.name = bf16_names[t],
                                                         .test_func = test_bf16_rounds_f32,
                                                         .initial_state = (void *)&cases[t]};
    }
    tests[n_cases] = (struct CMUnitTest){.name = "fd full small", .test_func = test_fd_full_small};
    tests[n_cases + 1] =
        (struct CMUnitTest){.name = "fd random coords", .test_func = test_fd_random_coords};
    tests[n_cases + 2] =
        (struct CMUnitTest){.name = "nan propagates", .test_func = test_nan_propagates};
    return cmocka_run_group_tests_name("kernel_attention", tests, NULL, NULL);
}
