/* autosp/passes.h: compiler passes, each a function from a graph to a new graph.
 *
 * A pass never modifies its input; it returns a new graph (free with autosp_graph_free) that
 * has passed autosp_graph_verify(), or NULL with err filled in.
 */
#ifndef AUTOSP_PASSES_H
#define AUTOSP_PASSES_H

#include "autosp/analysis.h"
#include "autosp/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* autodiff: appends the backward graph to a forward graph whose first output is a scalar loss
 * (a joint graph, as AOTAutograd makes). The result's outputs are the loss, the forward's other
 * outputs (kept, not differentiated), and then, for every parameter in order, its gradient,
 * named "<param>.grad". Each op's backward rule comes from
 * its op-table entry; attention nodes gain their log-sum-exp output (the backward reads it). */
autosp_graph_t *autosp_autodiff(const autosp_graph_t *forward, autosp_error_t *err);

/* ---- sequence parallelism (Ulysses) ------------------------------------------------------
 * A single-device forward graph becomes the program every rank of a dp x sp world runs:
 *
 *     sp_shard    inputs with a seq_dim are split over the sp ranks of a sequence group (their
 *                 seq dim becomes S/sp) and the split follows each op's sharding rule; a node
 *                 whose op has no rule for a split input is an error naming it
 *     ulysses     every attention gets an all_to_all before it (Q, K, V in one message: S/sp
 *                 tokens x H heads -> S tokens x H/sp heads) and one after it
 *     exact_loss  the cross-entropy becomes the single-device mean over all targets of all
 *                 ranks (a token-count-weighted sum), the same value on every rank
 *     autodiff    as for one device (all_to_all's adjoint is the inverse all_to_all)
 *     grad_sync   parameter gradients summed over the world, in buckets, each placed as soon
 *                 as its gradients are final
 *
 * The per-rank graph records sp and dp (autosp_graph_sp/dp, and "parallel" in JSON). Tensor
 * layouts (split by sequence, by heads, partial) are kept in memory for --dot and --info; a
 * graph loaded from JSON has none, so run the passes in one process, from the forward graph.
 * Positions: the positions input holds each token's global position, and labels are shifted
 * over the whole sequence before it is split (the caller prepares both; autosp_trainer_feed
 * then hands each rank its slice). */
autosp_graph_t *autosp_sp_shard(const autosp_graph_t *forward, int sp, autosp_error_t *err);
autosp_graph_t *autosp_ulysses(const autosp_graph_t *sharded, autosp_error_t *err);
/* 2-D sequence parallelism (USP): sp = (sp / ring) Ulysses ranks x ring positions. The
 * all_to_alls run in Ulysses groups of sp / ring consecutive ranks (none when that is 1) and
 * each attention becomes ring_attention over the ring; the per-rank graph records the ring
 * (autosp_graph_ring, "ring" in "parallel"), and its sequence is split in zigzag order: sequence
 * rank p = ring position r x (sp / ring) + u holds the u-th of the sp / ring equal parts of
 * chunks r and 2 ring - 1 - r of the 2 ring equal chunks of the sequence (the caller's feed
 * does this: autosp_trainer_feed). Errors: ring not dividing sp; the heads as for
 * autosp_ulysses with sp / ring in place of sp. ring 1 is autosp_ulysses. */
autosp_graph_t *autosp_ulysses_ring(const autosp_graph_t *sharded, int ring, autosp_error_t *err);
autosp_graph_t *autosp_exact_loss(const autosp_graph_t *g, int dp, autosp_error_t *err);
/* pad_sequence: a copy of g whose sequence symbol (the one seq dim of every tagged input) is
 * bound to the next multiple of `multiple` (the trainer's feed pads each row at its end with
 * token 0, label ignore_index, position 0, segment id -1: no target, hidden from attention),
 * recording the real length (autosp_graph_padded_from). autosp_parallelize runs it with sp,
 * or lcm(sp, 2 ring) with rings. Errors: a seq dim that is not one bound symbol; a sequence
 * input that is not tokens, labels, positions or segment ids (its pad is unknown); a
 * non-causal attention without segment ids (the padding would be visible). */
autosp_graph_t *autosp_pad_sequence(const autosp_graph_t *g, int64_t multiple, autosp_error_t *err);
autosp_graph_t *autosp_grad_sync(const autosp_graph_t *joint, int64_t bucket_bytes,
                                 autosp_error_t *err);
/* The same with the sum's wire dtype: AUTOSP_F32 (what autosp_grad_sync does), or AUTOSP_BF16:
 * each f32 gradient cast to bf16 ("<param>.grad_bf16"), the bucket summed in bf16 (half the
 * bytes; each partial sum rounded, docs/runtime.md gives the error), cast back to f32 as
 * "<param>.grad". */
autosp_graph_t *autosp_grad_sync_as(const autosp_graph_t *joint, int64_t bucket_bytes,
                                    autosp_dtype_t reduce_dtype, autosp_error_t *err);

/* chunked_loss: every cross_entropy(linear(x, weight), labels) whose logits nothing else reads
 * (and that has no bias) becomes one linear_cross_entropy node, which computes the loss and
 * its gradients over chunks of `chunk` rows (0: the planner's size, docs/ops.md), so no
 * more than a chunk of the rows x V logits ever exists; the backward recomputes each chunk's
 * logits (one more product of the lm head's size). Loss and gradients equal the unfused
 * graph's up to the order of the f32 sums (in bf16, also up to the logits' rounding: the fused
 * kernel keeps them in f32). Other graphs come back as a copy. */
autosp_graph_t *autosp_chunked_loss(const autosp_graph_t *g, int64_t chunk, autosp_error_t *err);

/* tiled_mlp: every linear(swiglu(linear(x, w_gate), linear(x, w_up)), w_down) whose
 * intermediates nothing else reads (no biases) becomes one mlp node, which computes the MLP
 * and its gradients over tiles of `tile` rows (0: the planner's size, docs/ops.md), so no more
 * than a tile of the rows x F intermediates ever exists; the backward recomputes each tile's
 * (the MLP's forward products once more). Values and gradients equal the unfused graph's up to
 * the order of the f32 sums. With tile > 0, GPT-2's linear(gelu(linear(x, w_fc, b_fc)), w_proj,
 * b_proj) likewise becomes one gelu_mlp node (at the planner's size it is left apart: tiled,
 * it planned a shorter S). Other graphs come back as a copy. */
autosp_graph_t *autosp_tiled_mlp(const autosp_graph_t *g, int64_t tile, autosp_error_t *err);

/* tiled_norm: every rmsnorm or layernorm whose output only linears read (as their x), and that
 * is not a graph output, is fused into each of them (an rmsnorm that only an unnormed mlp reads
 * becomes that mlp's norm_weight): rmsnorm_linear or layernorm_linear, which
 * normalises tiles of `tile` rows (0: the planner's size) on the way into the product, so the
 * rows x C normalised values never exist whole; the backward renormalises each tile. At tile 0
 * rmsnorms alone (GPT-2's fused layernorms planned a shorter S at the planner's tile). Run after
 * tiled_mlp (whose mlp node reads its norm as no linear does). Values and gradients equal the
 * unfused graph's up to the order of the f32 sums. Other graphs come back as a copy. */
autosp_graph_t *autosp_tiled_norm(const autosp_graph_t *g, int64_t tile, autosp_error_t *err);

/* grad_shard (ZeRO-2): every "<param>.grad" of a per-rank joint graph reduce-scattered over
 * the world right after the node that finishes it, its place among the outputs taken by this
 * rank's shard "<param>.grad_shard": elements [n r / world, n (r + 1) / world) of the flat
 * gradient, zero-padded to ceil(n / world). The whole gradients become values the memory plan
 * frees after their exchange. */
autosp_graph_t *autosp_grad_shard(const autosp_graph_t *joint, autosp_error_t *err);

/* param_shard (ZeRO-3): every parameter of a per-rank forward graph held as this rank's shard
 * (elements [n r / world, n (r + 1) / world) of the flat parameter, padded to ceil(n / world);
 * the parameter keeps its name, init and dtype) and gathered whole by an unshard node right
 * before each node that reads it, "<param>.gathered" (a second reader's "<param>.gathered2",
 * ...). Autodiff then gives each "<param>.grad" as the shard's, summed over the world; the
 * checkpoint pass frees every gathered parameter after its forward reader and gathers it again
 * for the backward. Fails on a parameter with a symbolic shape. */
autosp_graph_t *autosp_param_shard(const autosp_graph_t *forward, autosp_error_t *err);
/* autosp_param_shard with every unshard's `prefetch` attribute set to prefetch (1: the
 * default, each gather issued right after the previous one completes, on a backend that can;
 * 0: each gather at its place, blocking). */
autosp_graph_t *autosp_param_shard_as(const autosp_graph_t *forward, bool prefetch,
                                      autosp_error_t *err);

/* ---- activation checkpointing --------------------------------------------------------------
 * Which forward activations the backward reads from memory (saved) and which it recomputes.
 *
 *     none                 save everything the backward reads
 *     full                 save only each layer's input (and what follows the last layer);
 *                          recompute the rest of the layer, attention included (Megatron's
 *                          full recomputation)
 *     mincut-conservative  PyTorch 2.0's rule: the min cut of saved bytes where matmuls,
 *                          embeddings, the loss, attention and collectives are never recomputed
 *     sac                  sequence-aware: the min cut of saved bytes over every op but
 *                          attention, subject to a recompute budget in modelled step time; the
 *                          cost model (FLOPs and bytes as functions of S, on autosp_machine_t)
 *                          makes attention dominate at long S, so everything around it becomes
 *                          cheap to recompute
 *
 * Recomputation is written into the graph: each recomputed node gets a copy "<node>.recompute"
 * placed just before the first backward node that needs it, and the backward reads the copies'
 * outputs "<tensor>.recompute". The same kernels run on the same inputs, so losses and
 * gradients are bitwise those of `none`; the memory plan sees the shorter lifetimes.
 * docs/checkpointing.md derives the cut. */
typedef enum autosp_ac_policy {
    AUTOSP_AC_NONE,
    AUTOSP_AC_FULL,
    AUTOSP_AC_MINCUT_CONSERVATIVE,
    AUTOSP_AC_SAC,
} autosp_ac_policy_t;

typedef struct autosp_ac_config {
    autosp_ac_policy_t policy;
    double recompute_budget;  /* sac: extra modelled step time allowed, a fraction (0.10) */
    bool recompute_attention; /* sac may recompute attention too (default false) */
    autosp_machine_t machine; /* the cost model's rates */
} autosp_ac_config_t;

/* sac, budget 0.10, attention kept, autosp_machine_default() */
autosp_ac_config_t autosp_ac_config_default(void);
/* "none", "full", "mincut-conservative", "sac" */
const char *autosp_ac_policy_name(autosp_ac_policy_t policy);
/* AUTOSP_ERR_INVALID naming the accepted names when `name` is none of them. */
autosp_status_t autosp_ac_policy_parse(const char *name, autosp_ac_policy_t *policy,
                                       autosp_error_t *err);

typedef struct autosp_ac_report {
    autosp_ac_policy_t policy;
    int saved_tensors;                      /* forward tensors kept until the backward reads them */
    int64_t saved_bytes;                    /* their bytes (a view counts its source once) */
    int recomputed_nodes;                   /* forward nodes run again in the backward */
    double recompute_flops;                 /* FLOPs of those copies */
    double recompute_seconds, step_seconds; /* modelled; step: the joint graph before */
    double step_flops;
} autosp_ac_report_t;

/* Applies cfg's policy to a joint graph (autodiff's output; the loss is output 0) whose symbols
 * are all bound. Returns a new graph, which records the report. */
autosp_graph_t *autosp_checkpoint(const autosp_graph_t *joint, const autosp_ac_config_t *cfg,
                                  autosp_error_t *err);
/* The report of the checkpoint pass g went through (later passes keep it; it is not saved in
 * JSON), or NULL. Owned by g. */
const autosp_ac_report_t *autosp_graph_checkpoint_report(const autosp_graph_t *g);

typedef struct autosp_parallel_config {
    int sp, dp;            /* world = sp x dp ranks */
    int ring;              /* 0 or 1: Ulysses over sp; R > 1 dividing sp: sp / R Ulysses ranks x a
                            * ring of R (autosp_ulysses_ring) */
    int64_t bucket_bytes;  /* grad_sync: a bucket closes once it holds this many gradient bytes
                            * (so it may overshoot by its last tensor) or 8 tensors */
    autosp_ac_config_t ac; /* autosp_compile_training checkpoints the joint graph with it */
    int zero_stage;        /* 0: grad_sync all-reduces every gradient in the graph; 1 (ZeRO-1):
                            * no grad_sync, each rank's "<param>.grad" stays its own term and the
                            * optimizer reduce-scatters them (autosp/train.h); 2 (ZeRO-2):
                            * grad_shard, each rank keeps the shards of the summed gradients;
                            * 3 (ZeRO-3): param_shard before autodiff, the parameters too */
    /* the dtype grad_sync sums the f32 gradients in: AUTOSP_F32 (the default) or AUTOSP_BF16
     * (half the traffic, rounded partial sums: autosp_grad_sync_as) */
    autosp_dtype_t grad_reduce_dtype;
    /* the lm head and its loss: AUTOSP_LOSS_UNCHUNKED (-1) leaves them apart (the rows x V
     * logits saved for the backward); 0 (the default) fuses them (autosp_chunked_loss) in
     * chunks of the planner's size; N > 0 in chunks of N rows */
    int64_t loss_chunk;
    /* Llama's MLPs: AUTOSP_MLP_UNTILED (-1) leaves them apart; 0 (the default) fuses them
     * (autosp_tiled_mlp) in tiles of the planner's size when the checkpoint policy is full,
     * whose backward recomputes the intermediates anyway, and leaves them apart otherwise;
     * N > 0 fuses them in tiles of N rows under every policy */
    int64_t mlp_tile;
    /* the norms that feed projections (autosp_tiled_norm): the same choices, AUTOSP_NORM_UNTILED
     * (-1) apart, 0 (the default) fused in tiles of the planner's size under policy full, N > 0
     * in tiles of N rows under every policy */
    int64_t norm_tile;
    /* ZeRO-3's gathers: 0 (the default) each issued right after the one before it completes,
     * so it runs under the compute between them (the planner holds its output from there);
     * AUTOSP_PREFETCH_OFF each at its place, blocking */
    int zero3_prefetch;
    /* NULL, or the backend the step will run on: autosp_compile_training then fails at compile
     * time on a node it has no kernel for (autosp_backend_check), not at the first step */
    const struct autosp_backend *backend;
} autosp_parallel_config_t;

#define AUTOSP_LOSS_UNCHUNKED (-1)
#define AUTOSP_MLP_UNTILED    (-1)
#define AUTOSP_NORM_UNTILED   (-1)
#define AUTOSP_PREFETCH_OFF   (-1)

/* sp 1, dp 1, 25 MiB buckets (PyTorch DDP's default), autosp_ac_config_default(), ZeRO 0, the
 * loss chunked at the planner's size */
autosp_parallel_config_t autosp_parallel_config_default(void);

/* sp_shard, ulysses, exact_loss: the per-rank forward program. */
autosp_graph_t *autosp_parallelize(const autosp_graph_t *forward,
                                   const autosp_parallel_config_t *cfg, autosp_error_t *err);
/* autosp_parallelize, autodiff, checkpoint (cfg->ac), grad_sync: the per-rank training step
 * (loss and gradients). A world of one rank (sp = dp = 1) skips the parallel passes: autodiff
 * and checkpoint only. */
autosp_graph_t *autosp_compile_training(const autosp_graph_t *forward,
                                        const autosp_parallel_config_t *cfg, autosp_error_t *err);

/* ---- planning ------------------------------------------------------------------------------
 * "How long a context can I train?": the largest S (a multiple of `multiple` and of sp, at most
 * `limit`) whose step, compiled with cfg (policy, sp, dp) at that S, plans within mem_bytes
 * per rank (autosp_plan_memory). The answer is compiled for real, so checkpointing decisions
 * that change with S are in it. The search assumes the plan grows with S (every activation of
 * a transformer does). By default a compile's structure is re-planned at other S to predict
 * the answer, which is then compiled (two or three compiles); `exhaustive` doubles then
 * bisects with every candidate compiled (about fifteen). sac's plan is a sawtooth in S (it
 * recomputes more each time its budget allows), where either search returns a fitting S whose
 * next candidate does not fit, not always the longest. */
typedef struct autosp_seq_query {
    const char *symbol; /* the sequence-length symbol, "S" in the bundled models */
    int64_t multiple;   /* candidates are multiples of this */
    int64_t limit;      /* the largest candidate */
    int64_t mem_bytes;  /* one rank's memory */
    int zero_stage;     /* 0 to 3 (autosp_plan_memory); 2 and 3 also compile with grad_shard
                         * and param_shard */
    const struct autosp_backend *backend; /* whose workspace is planned; NULL: none */
    int64_t hint;    /* a first candidate near the answer (a neighbour's answer); 0: none */
    bool exhaustive; /* compile every candidate of a doubling and bisection, each from the
                      * forward graph (no joint graph shared): the reference for the default */
} autosp_seq_query_t;

typedef struct autosp_seq_answer {
    int64_t seq;               /* 0: even the smallest candidate does not fit */
    autosp_memory_plan_t plan; /* at seq; when nothing fits, at the smallest candidate */
    autosp_ac_report_t ac;     /* the same */
    int compiles, replans;     /* the search's work: full compiles, plans of a compiled step */
} autosp_seq_answer_t;

autosp_status_t autosp_max_seq(const autosp_graph_t *forward, const autosp_parallel_config_t *cfg,
                               const autosp_seq_query_t *query, autosp_seq_answer_t *answer,
                               autosp_error_t *err);

/* Choosing ulysses x ring = cfg->sp (cfg->ring is ignored): one candidate per ring dividing
 * sp, in increasing ring, each compiled as a training step with the rest of cfg. A candidate
 * that does not compile (the heads, usually) has its status and message; the others their
 * modelled step time on machine (NULL: autosp_machine_default(); NAN when a symbol is
 * unbound), bytes each rank sends, and planned peak per rank with cfg->backend's workspace
 * (-1: not planned). Returns how
 * many it wrote (at most max); *best is the index of the one with the most Ulysses whose time
 * is within 5% of the fastest's, -1 when none compiles. */
typedef struct autosp_mesh_candidate {
    int ulysses, ring;
    autosp_status_t status;
    char why[AUTOSP_ERROR_MESSAGE_MAX];
    double step_seconds, bytes_sent;
    int64_t memory;
} autosp_mesh_candidate_t;
int autosp_plan_mesh(const autosp_graph_t *forward, const autosp_parallel_config_t *cfg,
                     const autosp_machine_t *machine, autosp_mesh_candidate_t *out, int max,
                     int *best);
/* The smallest ring R dividing sp for which Ulysses over sp / R ranks takes every attention of
 * forward (its query heads divisible by sp / R, its kv heads repeatable to lcm(kv, sp / R),
 * which divides them): the most Ulysses the heads allow, found without compiling. sp when no
 * smaller ring does (ring only). */
int autosp_mesh_ring_for_heads(const autosp_graph_t *forward, int sp);

/* A series of queries on one forward graph (a table over policies and sp): the passes before
 * the checkpoint pass do not look at S's value, so their output (the joint graph) is compiled
 * once per configuration that changes it, and each candidate S runs only the passes from the
 * checkpoint pass on. autosp_max_seq is new, one run, free. The search borrows forward, which
 * must outlive it; free it with autosp_seq_search_free. NULL when out of memory. */
typedef struct autosp_seq_search autosp_seq_search_t;
autosp_seq_search_t *autosp_seq_search_new(const autosp_graph_t *forward);
autosp_status_t autosp_seq_search_run(autosp_seq_search_t *search,
                                      const autosp_parallel_config_t *cfg,
                                      const autosp_seq_query_t *query, autosp_seq_answer_t *answer,
                                      autosp_error_t *err);
void autosp_seq_search_free(autosp_seq_search_t *search);

#ifdef __cplusplus
}
#endif
#endif
