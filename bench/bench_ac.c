/* bench_ac.c: what activation checkpointing buys in sequence length and costs in step time,
 * one table per mpirun.
 *
 *     mpirun -np P bench_ac [--header] [--preset NAME] [--mem BYTES] [--seq-step N]
 *                           [--steps N] [--warmup W] [--policies LIST] [--same-seq]
 *
 * Every rank is one sequence-parallel rank (sp = P, dp = 1). For each listed policy, every rank
 * plans the longest trainable S (autosp_max_seq: the forward graph with B = 1 and S unbound,
 * compiled for sp = P with that policy, ZeRO-0, S a multiple of --seq-step, the plan's total
 * within --mem per rank); the search is deterministic, so all ranks find the same S without
 * talking. Then they train at that S for real (autosp_trainer_new_comm): one whole random
 * sequence, W warm-up steps, N timed steps. Rank 0 prints one row per policy, every measured
 * value the maximum over the ranks: max S, the planned total, the measured bytes (the arena
 * bytes the kernels touched plus the AdamW state) and their ratio, the median step time, the
 * time per 1k tokens, the modelled recompute share and the peak RSS. After the rows, the
 * targets for this P with their measured values; with --same-seq, every policy again at one
 * common S (mincut-conservative's max S), to compare step times on equal work.
 * bench/run_ac.sh runs P = 1 (none only, with --header), then P = 2 and 4.
 *
 * A benchmark, not a test: it prints and asserts nothing. Exit 0 ok, 2 bad flags; a library
 * error aborts the whole job (MPI_Abort), so no rank waits forever in a collective.
 */
#define BENCH_NAME "bench_ac"
#include "bench_mpi.h" /* first: it defines _GNU_SOURCE */

#include <errno.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <autosp/autosp.h>

#include "bench_util.h"

#define MAX_STEPS    1000
#define MAX_POLICIES 4 /* each policy at most once */
#define SEQ_LIMIT    (INT64_C(1) << 20)
#define ZERO_STAGE   0 /* the trainer keeps the whole AdamW state on every rank */

typedef struct options {
    const char *preset;
    int64_t mem, seq_step;
    int steps, warmup;
    autosp_ac_policy_t policies[MAX_POLICIES];
    int n_policies;
    int header, same_seq;
} options_t;

/* One run at one S; every field is reduced with MPI_MAX over the ranks, so all are doubles. */
typedef struct measured {
    double bytes;  /* touched arena bytes + AdamW state */
    double arena;  /* the trainer's planned arena, to compare with the answer's */
    double step_s; /* median of the timed steps */
    double max_rss;
} measured_t;
enum { MEASURED_FIELDS = sizeof(measured_t) / sizeof(double) };

/* One policy: its planned answer, the run at its own max S and, with --same-seq, at the
 * common S. Only rank 0's copy of the measured parts holds the reduced values. */
typedef struct result {
    autosp_ac_policy_t policy;
    autosp_seq_answer_t answer;
    measured_t own, same;
} result_t;

static double mib(double bytes) {
    return bytes / (1024.0 * 1024.0);
}

/* ---- the model, its longest S and its inputs --------------------------------------------- */

/* A copy of forward with S bound: what the trainer takes. */
static autosp_graph_t *bind_seq(const autosp_graph_t *forward, int64_t seq) {
    autosp_error_t err = {0};
    autosp_graph_t *g = autosp_graph_clone(forward);
    if (!g) {
        snprintf(err.message, sizeof err.message, "out of memory");
        check(AUTOSP_ERR_NOMEM, &err, "autosp_graph_clone");
    }
    check(autosp_symbol_bind(g, "S", seq, &err), &err, "bind S");
    return g;
}

/* The longest S whose step, compiled for sp ranks with the policy, plans within --mem per
 * rank. Deterministic: every rank gets the same answer. */
static autosp_seq_answer_t max_seq(const autosp_graph_t *forward, const options_t *o, int sp,
                                   autosp_ac_policy_t policy) {
    autosp_parallel_config_t cfg = autosp_parallel_config_default();
    cfg.sp = sp;
    cfg.dp = 1;
    cfg.ac.policy = policy;
    autosp_seq_query_t q = {.symbol = "S",
                            .multiple = o->seq_step,
                            .limit = SEQ_LIMIT,
                            .mem_bytes = o->mem,
                            .zero_stage = ZERO_STAGE};
    autosp_seq_answer_t a;
    autosp_error_t err = {0};
    check(autosp_max_seq(forward, &cfg, &q, &a, &err), &err, "autosp_max_seq");
    return a;
}

/* ---- timing ------------------------------------------------------------------------------ */

/* warmup untimed steps, then steps timed one by one; returns the median. The barrier lines the
 * ranks up so the first timed step does not absorb another rank's late start. */
static double time_steps(autosp_trainer_t *tr, const options_t *o) {
    autosp_error_t err = {0};
    autosp_step_stats_t stats;
    for (int i = 0; i < o->warmup; i++) check(autosp_trainer_step(tr, &stats, &err), &err, "step");
    MPI_Barrier(MPI_COMM_WORLD);
    double times[MAX_STEPS];
    for (int i = 0; i < o->steps; i++) {
        double t0 = now_s();
        check(autosp_trainer_step(tr, &stats, &err), &err, "step");
        times[i] = now_s() - t0;
    }
    return median(times, o->steps);
}

/* Trains at seq with the policy; rank 0 gets the maximum of every field over the ranks. */
static measured_t run_at(const autosp_graph_t *forward, const options_t *o,
                         const autosp_comm_t *comm, autosp_ac_policy_t policy, int64_t seq) {
    autosp_error_t err = {0};
    autosp_graph_t *g = bind_seq(forward, seq);
    autosp_train_config_t tc = autosp_train_config_default();
    tc.ac.policy = policy;
    autosp_trainer_t *tr = autosp_trainer_new_comm(g, &tc, comm, &err);
    check(tr ? AUTOSP_OK : err.status, &err, "autosp_trainer_new_comm");
    autosp_trainer_init_params(tr, 1234);
    feed_sequence(tr, seq);
    measured_t mine = {0}, worst = {0};
    mine.step_s = time_steps(tr, o);
    mine.bytes = (double)(autosp_trainer_touched_bytes(tr) + autosp_trainer_state_bytes(tr));
    mine.arena = (double)autosp_trainer_arena_bytes(tr);
    mine.max_rss = (double)max_rss_bytes();
    autosp_trainer_free(tr);
    autosp_graph_free(g);
    MPI_Reduce(&mine, &worst, MEASURED_FIELDS, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    return worst;
}

/* ---- output ------------------------------------------------------------------------------ */

static const result_t *find(const result_t *res, int n, autosp_ac_policy_t policy) {
    for (int i = 0; i < n; i++)
        if (res[i].policy == policy && res[i].answer.seq > 0) return &res[i];
    return NULL;
}

/* milliseconds per 1000 tokens of the whole sequence */
static double ms_per_1k(double step_s, int64_t seq) {
    return step_s / (double)seq * 1e6;
}

static void print_preamble(const options_t *o) {
    printf("libautosp %s activation-checkpointing benchmark: %s, B=1, f32, AdamW, ZeRO-0, "
           "%.1f MiB per rank\n",
           AUTOSP_VERSION_STRING, o->preset, mib((double)o->mem));
    printf("OpenBLAS: %s\n", openblas_get_config());
    printf("load average (1 min): %.2f on %ld CPUs; %d warm-up + %d timed steps per run "
           "(median)\n",
           load_average(), sysconf(_SC_NPROCESSORS_ONLN), o->warmup, o->steps);
    printf("P ranks = sp (dp = 1); max_S: the longest S, a multiple of %lld and of P, whose step "
           "plans within the memory per rank (autosp_max_seq)\n",
           (long long)o->seq_step);
    printf("plan: autosp_plan_memory's total (arena + AdamW state); meas: the arena bytes the "
           "kernels touched + the AdamW state (max over ranks)\n");
    printf("recomp%%: modelled share of the step's time spent recomputing; rss: peak RSS of one "
           "rank (max over ranks)\n");
}

static void print_columns(int sp, int threads, int pinned) {
    printf("\nP = %d: sp = %d, dp = 1, %d OpenBLAS thread%s per rank, load average %.2f\n", sp, sp,
           threads, threads == 1 ? "" : "s", load_average());
    if (pinned)
        printf("    note: a rank runs more threads than the CPUs it is bound to (mpirun binds "
               "by default: pass --bind-to none)\n");
    printf("%3s %-20s %7s %9s %9s %9s %9s %10s %7s %8s\n", "P", "policy", "max_S", "plan_MiB",
           "meas_MiB", "meas/plan", "step_s", "ms/1k_tok", "recomp%", "rss_MiB");
    fflush(stdout);
}

static void print_row(int sp, const result_t *r) {
    const autosp_seq_answer_t *a = &r->answer;
    const char *name = autosp_ac_policy_name(r->policy);
    if (a->seq == 0) {
        printf("%3d %-20s %7s   (not even one step of S fits)\n", sp, name, "-");
        fflush(stdout);
        return;
    }
    double share = a->ac.step_seconds > 0 ? a->ac.recompute_seconds / a->ac.step_seconds : 0;
    printf("%3d %-20s %7lld %9.1f %9.1f %9.4f %9.2f %10.1f %7.1f %8.1f\n", sp, name,
           (long long)a->seq, mib((double)a->plan.total), mib(r->own.bytes),
           r->own.bytes / (double)a->plan.total, r->own.step_s, ms_per_1k(r->own.step_s, a->seq),
           100 * share, mib(r->own.max_rss));
    if (r->own.arena != (double)a->plan.arena)
        printf("    note: the trainer's arena %.0f != the planned arena %lld bytes\n", r->own.arena,
               (long long)a->plan.arena);
    fflush(stdout);
}

/* (a) and (b): sequence length bought by sac, and by P ranks without checkpointing. */
static void print_seq_targets(int sp, const result_t *res, int n, int64_t none_1rank) {
    const result_t *none = find(res, n, AUTOSP_AC_NONE);
    const result_t *mc = find(res, n, AUTOSP_AC_MINCUT_CONSERVATIVE);
    const result_t *sac = find(res, n, AUTOSP_AC_SAC);
    printf("\ntargets at P = %d:\n", sp);
    if (sac && mc)
        printf("  (a) sac S / mincut-conservative S = %lld / %lld = %.2f (target >= 3)\n",
               (long long)sac->answer.seq, (long long)mc->answer.seq,
               (double)sac->answer.seq / (double)mc->answer.seq);
    if (none && none_1rank > 0)
        printf("  (b) none at %d rank%s / (%d x none at 1 rank) = %lld / (%d x %lld) = %.3f "
               "(target >= 0.9; none at 1 rank planned only)\n",
               sp, sp == 1 ? "" : "s", sp, (long long)none->answer.seq, sp, (long long)none_1rank,
               (double)none->answer.seq / ((double)sp * (double)none_1rank));
    if (sac && mc)
        printf("  sac ms/1k tokens at its max S / mincut-conservative's at its max S = %.2f "
               "(informational: attention's cost per token grows with S)\n",
               ms_per_1k(sac->own.step_s, sac->answer.seq) /
                   ms_per_1k(mc->own.step_s, mc->answer.seq));
    fflush(stdout);
}

/* (c): every policy at the common S, and sac against mincut-conservative there. */
static void print_same_seq(const result_t *res, int n, int64_t seq) {
    const result_t *none = find(res, n, AUTOSP_AC_NONE);
    const result_t *mc = find(res, n, AUTOSP_AC_MINCUT_CONSERVATIVE);
    const result_t *sac = find(res, n, AUTOSP_AC_SAC);
    printf("\nat S = %lld (mincut-conservative's max S; a policy whose max S is lower runs "
           "above --mem):\n",
           (long long)seq);
    printf("  %-20s %9s %10s %9s %9s\n", "policy", "step_s", "ms/1k_tok", "rel_none", "meas_MiB");
    for (int i = 0; i < n; i++) {
        const measured_t *m = &res[i].same;
        printf("  %-20s %9.2f %10.1f ", autosp_ac_policy_name(res[i].policy), m->step_s,
               ms_per_1k(m->step_s, seq));
        if (none)
            printf("%9.3f", m->step_s / none->same.step_s);
        else
            printf("%9s", "-");
        printf(" %9.1f\n", mib(m->bytes));
    }
    if (sac && mc)
        printf("  (c) sac / mincut-conservative step time at the same S = %.3f (target <= 1.10)\n",
               sac->same.step_s / mc->same.step_s);
    fflush(stdout);
}

/* ---- flags ------------------------------------------------------------------------------- */

static const char USAGE[] =
    "usage: mpirun -np P bench_ac [--header] [--preset NAME] [--mem BYTES] [--seq-step N]\n"
    "                             [--steps N] [--warmup W] [--policies LIST] [--same-seq]\n"
    "  sp = P (every rank); defaults: llama-small, 256MiB per rank, S a multiple of 256,\n"
    "  1 timed step after 1 warm-up, policies none,mincut-conservative,sac,full\n"
    "  BYTES: a number with B, KB, MB, GB, KiB, MiB or GiB (none: bytes)\n";

/* "256MiB", "1.5GB", "4096": a positive number of bytes with an optional unit. */
static int parse_bytes(const char *flag, const char *s, int64_t *out, char *why, size_t why_size) {
    static const struct {
        const char *suffix;
        double scale;
    } units[] = {{"", 1},     {"B", 1},        {"KB", 1e3},        {"MB", 1e6},
                 {"GB", 1e9}, {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}};
    char *end = NULL;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    if (s && !errno && end != s && v > 0)
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
            if (strcmp(end, units[i].suffix) == 0 && v * units[i].scale >= 1 &&
                v * units[i].scale < 9e18) {
                *out = (int64_t)(v * units[i].scale);
                return 0;
            }
    snprintf(why, why_size,
             "bench_ac: %s expects a size such as 256MiB (units B KB MB GB KiB MiB GiB), found "
             "\"%s\"\n",
             flag, s ? s : "");
    return -1;
}

/* "none,sac": each name once, at most MAX_POLICIES. */
static int parse_policies(const char *s, options_t *o, char *why, size_t why_size) {
    o->n_policies = 0;
    while (s) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        char name[32];
        snprintf(name, sizeof name, "%.*s", (int)(len < sizeof name ? len : sizeof name - 1), s);
        autosp_ac_policy_t p;
        autosp_error_t err = {0};
        if (autosp_ac_policy_parse(name, &p, &err) != AUTOSP_OK) {
            snprintf(why, why_size, "bench_ac: --policies: %s\n", err.message);
            return -1;
        }
        for (int i = 0; i < o->n_policies; i++)
            if (o->policies[i] == p) {
                snprintf(why, why_size, "bench_ac: --policies: \"%s\" listed twice\n", name);
                return -1;
            }
        o->policies[o->n_policies++] = p;
        s = comma ? comma + 1 : NULL;
    }
    return 0;
}

static void default_options(options_t *o) {
    *o = (options_t){
        .preset = "llama-small",
        .mem = 256 * (INT64_C(1) << 20),
        .seq_step = 256,
        .steps = 1,
        .warmup = 1,
        .policies = {AUTOSP_AC_NONE, AUTOSP_AC_MINCUT_CONSERVATIVE, AUTOSP_AC_SAC, AUTOSP_AC_FULL},
        .n_policies = 4};
}

/* A flag with a value; 0 ok, -1 bad (why says which). */
static int parse_valued(const char *a, const char *v, options_t *o, char *why, size_t why_size) {
    int timing;
    if (strcmp(a, "--preset") == 0 && v) {
        o->preset = v;
    } else if (strcmp(a, "--mem") == 0) {
        return parse_bytes(a, v, &o->mem, why, why_size);
    } else if (strcmp(a, "--seq-step") == 0) {
        return parse_int(a, v, 1, SEQ_LIMIT, &o->seq_step, why, why_size);
    } else if ((timing = parse_timing(a, v, MAX_STEPS, &o->steps, &o->warmup, why, why_size)) <=
               0) {
        return timing;
    } else if (strcmp(a, "--policies") == 0 && v) {
        return parse_policies(v, o, why, why_size);
    } else {
        snprintf(why, why_size, "bench_ac: unknown argument \"%s\"\n%s", a, USAGE);
        return -1;
    }
    return 0;
}

/* 0 ok, 1 --help, -1 bad flags (why says which). */
static int parse_options(int argc, char **argv, void *options, char *why, size_t why_size) {
    options_t *o = options;
    default_options(o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--header") == 0) {
            o->header = 1;
        } else if (strcmp(a, "--same-seq") == 0) {
            o->same_seq = 1;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            return 1;
        } else {
            if (parse_valued(a, v, o, why, why_size) != 0) return -1;
            i++; /* the flag's value */
        }
    }
    return 0;
}

/* ---- threads and main -------------------------------------------------------------------- */

/* Each policy at its own max S, one row each as it finishes; then the sequence targets. */
static void run_own(const autosp_graph_t *forward, const options_t *o, const autosp_comm_t *comm,
                    int rank, int sp, result_t *res) {
    for (int i = 0; i < o->n_policies; i++) {
        res[i].policy = o->policies[i];
        res[i].answer = max_seq(forward, o, sp, o->policies[i]);
        if (res[i].answer.seq > 0)
            res[i].own = run_at(forward, o, comm, o->policies[i], res[i].answer.seq);
        if (rank == 0) print_row(sp, &res[i]);
    }
    if (rank != 0) return;
    int64_t none_1rank = 0;
    if (find(res, o->n_policies, AUTOSP_AC_NONE)) {
        none_1rank = max_seq(forward, o, 1, AUTOSP_AC_NONE).seq; /* planned only */
        printf("none at 1 rank (sp = 1, planned only): max S = %lld\n", (long long)none_1rank);
    }
    print_seq_targets(sp, res, o->n_policies, none_1rank);
}

/* --same-seq: every policy at mincut-conservative's max S (planned here if not listed). */
static void run_same(const autosp_graph_t *forward, const options_t *o, const autosp_comm_t *comm,
                     int rank, int sp, result_t *res) {
    int64_t seq = max_seq(forward, o, sp, AUTOSP_AC_MINCUT_CONSERVATIVE).seq;
    if (seq == 0) {
        if (rank == 0) printf("\n--same-seq: mincut-conservative fits no S; skipped\n");
        return;
    }
    for (int i = 0; i < o->n_policies; i++)
        res[i].same = run_at(forward, o, comm, o->policies[i], seq);
    if (rank == 0) print_same_seq(res, o->n_policies, seq);
}

int main(int argc, char **argv) {
    options_t o;
    int rank = 0, size = 1, exit_code = 0;
    autosp_comm_t *comm =
        bench_start(&argc, &argv, parse_options, &o, USAGE, &rank, &size, &exit_code);
    if (!comm) return exit_code;
    int threads = set_threads(comm), pinned = pinned_below(threads), any_pinned = 0;
    MPI_Reduce(&pinned, &any_pinned, 1, MPI_INT, MPI_MAX, 0, MPI_COMM_WORLD);
    autosp_graph_t *forward = build_preset(o.preset, 0);
    if (rank == 0) {
        if (o.header) print_preamble(&o);
        print_columns(size, threads, any_pinned);
    }
    result_t res[MAX_POLICIES] = {0};
    run_own(forward, &o, comm, rank, size, res);
    if (o.same_seq) run_same(forward, &o, comm, rank, size, res);
    autosp_graph_free(forward);
    autosp_comm_free(comm);
    MPI_Finalize();
    return 0;
}
