/* kernels.h: the f32 compute kernels, one forward next to its backward (llm.c style).
 *
 * Conventions, for every kernel here:
 *  - Tensors are dense, row-major, contiguous float32 (ids, labels, positions and segment ids
 *    are int32). Shapes use the IR's letters: B batch, S sequence, H heads, D head dim,
 *    C channels, V vocabulary; `rows` is the product of all leading dims.
 *  - Backward kernels take the forward's inputs (not saved intermediates, unless named, like
 *    attention's lse) and recompute what is cheap. Gradients of parameters (dweight, dbias)
 *    are ACCUMULATED (+=), except linear's (see there), so that a kernel can serve a parameter
 *    used twice; gradients of activations (dx, ...) are OVERWRITTEN.
 *  - No kernel allocates: scratch memory comes from the caller (see the *_workspace functions),
 *    and the memory plan sizes it before the step loop.
 *  - Each optimised kernel has a naive reference in ref.c, used only by the tests.
 */
#ifndef AUTOSP_KERNELS_H
#define AUTOSP_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- embedding: ids (rows) int32, weight (V,C) -> out (rows,C) ------------------------- */
void embedding_forward(float *out, const int32_t *ids, const float *weight, int64_t rows,
                       int64_t C);
void embedding_backward(float *dweight, const int32_t *ids, const float *dout, int64_t rows,
                        int64_t C);

/* ---- linear: x (rows,K), weight (N,K), bias (N) or NULL -> out (rows,N) ---------------- */
void linear_forward(float *out, const float *x, const float *weight, const float *bias,
                    int64_t rows, int64_t K, int64_t N);
/* dx (rows,K) = dout @ weight; dweight (N,K) = dout^T @ x; dbias (N) = colsum(dout).
 * Any of dx, dweight, dbias may be NULL (not needed). The one parameter-gradient kernel that
 * overwrites: dweight is one sgemm with beta = 0, where zeroing it first and accumulating
 * would add a pass over the largest tensors of the step. */
void linear_backward(float *dx, float *dweight, float *dbias, const float *dout, const float *x,
                     const float *weight, int64_t rows, int64_t K, int64_t N);

/* ---- matmul: a (batch,M,K) or (M,K) ... see matmul_dims_t -------------------------------- */
typedef struct matmul_dims {
    int64_t batch; /* product of the batch dims of the output */
    int64_t M, N, K;
    bool trans_a, trans_b;   /* a is stored (K,M) / b is stored (N,K) */
    bool a_shared, b_shared; /* a 2-D operand shared by every batch entry */
} matmul_dims_t;
void matmul_forward(float *out, const float *a, const float *b, const matmul_dims_t *d);
/* da, db may be NULL. A shared operand's gradient is summed over the batch. Overwrites. */
void matmul_backward(float *da, float *db, const float *dout, const float *a, const float *b,
                     const matmul_dims_t *d);

/* ---- elementwise: n elements -------------------------------------------------------------- */
void silu_forward(float *out, const float *x, int64_t n);
void silu_backward(float *dx, const float *dout, const float *x, int64_t n);
/* gelu with the tanh approximation (GPT-2's) */
void gelu_forward(float *out, const float *x, int64_t n);
void gelu_backward(float *dx, const float *dout, const float *x, int64_t n);
/* out = silu(gate) * up */
void swiglu_forward(float *out, const float *gate, const float *up, int64_t n);
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                     const float *up, int64_t n);

/* ---- normalisation over the last dim: x (rows,C), weight and bias (C) ---------------------- */
void rmsnorm_forward(float *out, const float *x, const float *weight, int64_t rows, int64_t C,
                     float eps);
/* The backwards need norm_backward_workspace(rows) bytes of scratch (8-byte aligned), and dx
 * must not alias dout or x: dweight and dbias are summed after dx is written. */
size_t norm_backward_workspace(int64_t rows);
void rmsnorm_backward(float *dx, float *dweight, const float *dout, const float *x,
                      const float *weight, int64_t rows, int64_t C, float eps, void *workspace);
void layernorm_forward(float *out, const float *x, const float *weight, const float *bias,
                       int64_t rows, int64_t C, float eps);
void layernorm_backward(float *dx, float *dweight, float *dbias, const float *dout, const float *x,
                        const float *weight, int64_t rows, int64_t C, float eps, void *workspace);

/* ---- softmax over the last dim: x (rows,C) ------------------------------------------------- */
void softmax_forward(float *out, const float *x, int64_t rows, int64_t C);
/* y is the forward output */
void softmax_backward(float *dx, const float *dout, const float *y, int64_t rows, int64_t C);

/* ---- rope, rotate-half pairing (i, i + D/2): x (B,S,H,D), positions (B,S) int32 -------------
 * angle(p, i) = p * theta^(-2i/D) for i < D/2. inverse = true rotates by -angle, which is the
 * backward (dx = rope(dout, inverse)). out may equal x (in place). */
void rope_forward(float *out, const float *x, const int32_t *positions, int64_t B, int64_t S,
                  int64_t H, int64_t D, float theta, bool inverse);
/* The frequencies of a context-extended rope (the op's scaling attributes, ops.def) */
typedef enum { ROPE_PLAIN, ROPE_LINEAR, ROPE_LLAMA3 } rope_scaling_t;
typedef struct rope_freqs {
    double theta;
    rope_scaling_t scaling;
    double factor, low_freq_factor, high_freq_factor, original_max_position;
} rope_freqs_t;
/* pair i's frequency (angle per position) of a head dim D */
double rope_inv_freq(const rope_freqs_t *f, int64_t i, int64_t D);
/* rope_forward with any frequencies */
void rope_forward_freqs(float *out, const float *x, const int32_t *positions, int64_t B, int64_t S,
                        int64_t H, int64_t D, const rope_freqs_t *f, bool inverse);

/* ---- cross-entropy: logits (rows,V), labels (rows) int32 ----------------------------------
 * loss = mean over rows with labels[r] != ignore_index of logsumexp(logits[r]) - logits[r][label]
 * (0 when every label is ignored). Labels outside [0,V) that are not ignore_index are a caller
 * bug (checked by the executor before the kernel runs). */
float cross_entropy_forward(const float *logits, const int32_t *labels, int64_t rows, int64_t V,
                            int32_t ignore_index);
/* dlogits = dloss * (softmax(logits) - onehot(label)) / valid_count per valid row, 0 for
 * ignored rows. dlogits may equal logits (in place: no second rows x V buffer). */
void cross_entropy_backward(float *dlogits, const float *logits, const int32_t *labels,
                            int64_t rows, int64_t V, int32_t ignore_index, float dloss);
/* The same with the divisor given: the number of targets over all ranks (exact_loss), so each
 * rank's loss is its share of the global mean. */
float cross_entropy_forward_over(const float *logits, const int32_t *labels, int64_t rows,
                                 int64_t V, int32_t ignore_index, double count);
void cross_entropy_backward_over(float *dlogits, const float *logits, const int32_t *labels,
                                 int64_t rows, int64_t V, int32_t ignore_index, float dloss,
                                 double count);
int64_t count_targets(const int32_t *labels, int64_t rows, int32_t ignore_index);

/* ---- repeat: x (outer, n, inner) -> out (outer, n * r, inner), out slice i = x slice i / r -- */
void repeat_forward(float *out, const float *x, int64_t outer, int64_t n, int64_t r, int64_t inner);
/* dx (outer, n, inner) = sum over the r copies of dout */
void repeat_backward(float *dx, const float *dout, int64_t outer, int64_t n, int64_t r,
                     int64_t inner);

/* ---- attention, flash-style: never an S x S matrix ------------------------------------------
 * q (B,S,Hq,D), k and v (B,Skv,Hkv,D), segment_ids (B,S) int32 or NULL, out (B,S,Hq,D),
 * lse (B,Hq,S): the log-sum-exp of each query row's scaled scores (what the backward needs).
 * Query head h reads kv head h / (Hq/Hkv). causal: query i sees keys j <= i (Skv == S).
 * Segment ids: query i sees key j only if seg[i] == seg[j] and seg[j] >= 0; a query that
 * sees no key (padding) outputs zeros and lse = -inf.
 * dtypes: q, k, v, out and dout are all f32 or all bf16 (d->bf16); lse is f32. In bf16 each
 * tile is widened into per-thread f32 scratch, every sum runs in f32, and each output is
 * rounded once. A gradient is bf16 too unless its bit in d->f32_grads is set (a parameter's
 * gradient, kept in f32). */
#define AUTOSP_ATTENTION_MAX_THREADS 64
#define AUTOSP_ATTENTION_DQ_F32      1u
#define AUTOSP_ATTENTION_DK_F32      2u
#define AUTOSP_ATTENTION_DV_F32      4u
typedef struct attention_dims {
    int64_t B, S, Skv, Hq, Hkv, D;
    bool causal;
    float scale; /* usually 1/sqrt(D) */
    /* Thread capacity: the workspace holds one scratch slice per thread for this many threads
     * (<= 0 counts as 1, above AUTOSP_ATTENTION_MAX_THREADS as that). The kernels run on
     * min(threads, par_threads(), number of (batch, head) pairs) threads of the pool, the
     * calling thread included; so the same `threads` must be given to the workspace functions
     * and to the kernel call, and the thread count may change in between without
     * overflowing the workspace. The results are bitwise identical for every thread count. */
    int threads;
    bool bf16;          /* q, k, v, out, dout are bf16_t */
    unsigned f32_grads; /* AUTOSP_ATTENTION_D*_F32 bits: those gradients are float (bf16 only) */
    /* A block of a longer sequence (ring attention): the causal mask compares q_pos[i] (S) and
     * kv_pos[j] (Skv), the global indices of the rows, and the keys' segment ids are
     * kv_segment_ids (B,Skv); then Skv need not be S. NULL: the row indices, segment_ids. */
    const int32_t *q_pos, *kv_pos, *kv_segment_ids;
    bool accumulate; /* f32 only: the backward adds to dq, dk, dv instead of overwriting them */
    /* NULL, or called on the calling thread after each of its query tiles: ring attention lets
     * its transfers move there (Open MPI moves a message only inside an MPI call) */
    void (*poll)(void *ctx);
    void *poll_ctx;
} attention_dims_t;
/* A thread capacity that does not change while the process runs (OpenBLAS's CPU count, at
 * most AUTOSP_ATTENTION_MAX_THREADS): what the executor puts in `threads` both when it sizes
 * the workspace and when it runs the kernel. */
int attention_thread_capacity(void);
/* bytes of scratch the forward and the backward need (per call, reused across calls): a
 * per-thread scratch times the thread capacity d->threads. In f32 the scratch is one tile per
 * thread; bf16 adds the widened q, k, v, out, dout tiles and, for a bf16 dk or dv, an f32 sum
 * of one kv head (Skv x D) per thread. */
size_t attention_forward_workspace(const attention_dims_t *d);
size_t attention_backward_workspace(const attention_dims_t *d);
/* The tensors are float or bf16_t as d says. */
void attention_forward(void *out, float *lse, const void *q, const void *k, const void *v,
                       const int32_t *segment_ids, const attention_dims_t *d, void *workspace);
/* dq (B,S,Hq,D), dk and dv (B,Skv,Hkv,D), overwritten. out and lse from the forward. */
void attention_backward(void *dq, void *dk, void *dv, const void *dout, const void *q,
                        const void *k, const void *v, const int32_t *segment_ids, const void *out,
                        const float *lse, const attention_dims_t *d, void *workspace);

/* ---- reductions for gradients of broadcast operands ---------------------------------------- */
/* out (C) += sum over rows of x (rows,C) */
void sum_rows_accumulate(float *out, const float *x, int64_t rows, int64_t C);

#endif
