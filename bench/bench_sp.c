/* bench_sp.c: memory and step time of one sequence-parallel run, one row per mpirun.
 *
 *     mpirun -np P bench_sp [--header] [--preset NAME] [--seq S] [--steps N] [--warmup W]
 *                           [--dtype f32|bf16] [--zero 0-3] [--no-prefetch]
 *
 * Every rank builds the single-device forward graph (B = 1, S bound), compiles it for sp = P
 * ranks (autosp_trainer_new_comm), feeds its slice of one whole random sequence, runs W
 * warm-up steps and times N steps. Rank 0 prints one row, every value the maximum over the
 * ranks: the planned arena and the bytes the kernels really touched, the plan's split
 * (parameters, gradients, inputs, activations, workspace; memplan_build on the trainer's
 * per-rank graph, through the internal header src/plan/memplan.h), the activations as a share
 * of the single-device plan (planned in-process, not run) next to 1/P, the median step time
 * and the share of the timed wall time spent inside collectives, with the time inside
 * MPI_Alltoall and MPI_Allreduce themselves (caught through the MPI profiling interface).
 * Measured memory: the activations the kernels touched (the touched arena less the persistent
 * parameters, gradients and inputs at its start) and the rank's whole memory (touched arena +
 * optimizer state) against autosp_plan_memory's total (plan/meas).
 * bench/run_sp.sh runs P = 1, 2, 4 and passes --header to the first.
 *
 * A benchmark, not a test: it prints and asserts nothing. Exit 0 ok, 2 bad flags; a library
 * error aborts the whole job (MPI_Abort), so no rank waits forever in a collective.
 */
#define BENCH_NAME "bench_sp"
#include "bench_mpi.h" /* first: it defines _GNU_SOURCE */

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <autosp/autosp.h>

#include "bench_util.h"

#include "plan/memplan.h"

#define MAX_STEPS 1000

typedef struct options {
    const char *preset;
    autosp_dtype_t dtype;
    int64_t seq;
    int steps, warmup;
    int header;
    int zero, no_prefetch; /* the trainer's zero_stage; ZeRO-3's gathers blocking */
    int ring;              /* sp = P / ring Ulysses x ring (1: Ulysses only) */
} options_t;

/* What a row shows; every field is reduced with MPI_MAX over the ranks, so all are doubles. */
typedef struct row {
    double arena, touched, params, grads, inputs, acts, workspace;
    double acts_touched, plan_total, measured_total; /* see the top of the file */
    double act_ratio; /* acts / the single-device plan's activations */
    double step_s, comm_share, comm_s, a2a_s, allreduce_s, ring_s, late_s, transfer_s, threads,
        max_rss;
    double pinned; /* 1: this rank's threads outnumber the CPUs it may run on */
} row_t;
enum { ROW_FIELDS = sizeof(row_t) / sizeof(double) };

static double mib(double bytes) {
    return bytes / (1024.0 * 1024.0);
}

/* ---- time inside MPI, by collective ------------------------------------------------------
 * The executor reports one total per run (autosp_trainer_comm_seconds, packing included). To
 * see where it goes, the program defines MPI_Alltoall and MPI_Allreduce itself (the MPI
 * profiling interface): the library's calls land here and go on to PMPI_*. Counted only
 * while timing, so set-up and the final reduction stay out. */

enum { COLL_A2A, COLL_ALLREDUCE, COLL_WAITALL, COLL_KINDS };
static double coll_seconds[COLL_KINDS];
static int coll_counting;

int MPI_Alltoall(const void *sendbuf, int sendcount, MPI_Datatype sendtype, void *recvbuf,
                 int recvcount, MPI_Datatype recvtype, MPI_Comm comm) {
    double t0 = PMPI_Wtime();
    int rc = PMPI_Alltoall(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype, comm);
    if (coll_counting) coll_seconds[COLL_A2A] += PMPI_Wtime() - t0;
    return rc;
}

int MPI_Allreduce(const void *sendbuf, void *recvbuf, int count, MPI_Datatype datatype, MPI_Op op,
                  MPI_Comm comm) {
    double t0 = PMPI_Wtime();
    int rc = PMPI_Allreduce(sendbuf, recvbuf, count, datatype, op, comm);
    if (coll_counting) coll_seconds[COLL_ALLREDUCE] += PMPI_Wtime() - t0;
    return rc;
}

/* ring attention's waits for its transfers (ZeRO-3's gathers wait in MPI_Wait) */
int MPI_Waitall(int count, MPI_Request requests[], MPI_Status statuses[]) {
    double t0 = PMPI_Wtime();
    int rc = PMPI_Waitall(count, requests, statuses);
    if (coll_counting) coll_seconds[COLL_WAITALL] += PMPI_Wtime() - t0;
    return rc;
}

/* ---- the model and its inputs ------------------------------------------------------------ */

/* ---- the memory plan's split ------------------------------------------------------------- */

/* The executor keeps its plan private, so plan the trainer's graph again: memplan_build is
 * deterministic, and the row checks that both arenas agree. */
static void plan_split(const autosp_graph_t *joint, row_t *r) {
    memplan_t plan;
    autosp_error_t err = {0};
    check(memplan_build(joint, autosp_backend_cpu(), &plan, &err), &err, "memplan_build");
    if ((double)plan.arena_bytes != r->arena)
        fprintf(stderr, "bench_sp: warning: re-planned arena %lld != the executor's %.0f\n",
                (long long)plan.arena_bytes, r->arena);
    r->params = (double)plan.param_bytes;
    r->grads = (double)plan.output_bytes; /* the gradients, plus 64 bytes for the loss */
    r->inputs = (double)plan.input_bytes;
    r->acts = (double)plan.activation_peak;
    r->workspace = (double)plan.workspace_peak;
    memplan_free(&plan);
}

/* The activations of the single-device joint graph at the same B and S: the sp = 1 baseline
 * of the ratio, planned here so every run is self-contained (nothing is allocated or run). */
static double single_device_acts(const autosp_graph_t *forward) {
    autosp_error_t err = {0};
    autosp_graph_t *joint = autosp_autodiff(forward, &err);
    check(joint ? AUTOSP_OK : err.status, &err, "autosp_autodiff");
    memplan_t plan;
    check(memplan_build(joint, autosp_backend_cpu(), &plan, &err), &err,
          "memplan_build (single device)");
    double acts = (double)plan.activation_peak;
    memplan_free(&plan);
    autosp_graph_free(joint);
    return acts;
}

/* ---- timing ------------------------------------------------------------------------------ */

/* warmup untimed steps, then steps timed one by one. The barrier lines the ranks up so the
 * first timed step does not absorb another rank's late start as collective wait. */
static void time_steps(autosp_trainer_t *tr, const options_t *o, row_t *r) {
    autosp_error_t err = {0};
    autosp_step_stats_t stats;
    for (int i = 0; i < o->warmup; i++) check(autosp_trainer_step(tr, &stats, &err), &err, "step");
    MPI_Barrier(MPI_COMM_WORLD);
    double times[MAX_STEPS], total = 0, comm0 = autosp_trainer_comm_seconds(tr),
                             late0 = autosp_trainer_late_peer_seconds(tr);
    coll_counting = 1;
    for (int i = 0; i < o->steps; i++) {
        double t0 = now_s();
        check(autosp_trainer_step(tr, &stats, &err), &err, "step");
        times[i] = now_s() - t0;
        total += times[i];
    }
    coll_counting = 0;
    r->comm_s = (autosp_trainer_comm_seconds(tr) - comm0) / o->steps;
    r->a2a_s = coll_seconds[COLL_A2A] / o->steps;
    r->allreduce_s = coll_seconds[COLL_ALLREDUCE] / o->steps;
    r->ring_s = coll_seconds[COLL_WAITALL] / o->steps;
    r->late_s = (autosp_trainer_late_peer_seconds(tr) - late0) / o->steps;
    r->transfer_s = r->ring_s - r->late_s; /* on this rank: the max over ranks comes after */
    r->comm_share = total > 0 ? r->comm_s * o->steps / total : 0;
    r->step_s = median(times, o->steps);
}

/* ---- output ------------------------------------------------------------------------------ */

static void print_preamble(const options_t *o) {
    printf("libautosp %s sequence-parallel benchmark: %s, B=1, S=%lld, %s, AdamW, ZeRO-%d%s\n",
           AUTOSP_VERSION_STRING, o->preset, (long long)o->seq, autosp_dtype_name(o->dtype),
           o->zero, o->zero == 3 && o->no_prefetch ? " (gathers blocking)" : "");
    printf("OpenBLAS: %s\n", openblas_get_config());
    printf("load average (1 min): %.2f on %ld CPUs; %d warm-up + %d timed steps per run\n",
           load_average(), sysconf(_SC_NPROCESSORS_ONLN), o->warmup, o->steps);
    printf("every value: max over ranks; act = the plan's activation peak per rank; thr = "
           "OpenBLAS threads per rank; UxR = ulysses x ring; comm = exposed communication (the "
           "ring's: its waits, ring_ms; of them late_ms before the sending rank had sent, so "
           "xfer_ms = ring_ms - late_ms waited for transfers)%s\n\n",
           getenv("AUTOSP_RING_OVERLAP") && !strcmp(getenv("AUTOSP_RING_OVERLAP"), "0")
               ? "; AUTOSP_RING_OVERLAP=0: each ring transfer waited for at once"
               : "");
    printf("%3s %5s %6s %3s %9s %9s %9s %9s %9s %9s %9s %8s %7s %6s %9s %8s %6s %8s %8s %8s %8s "
           "%8s %9s %9s\n",
           "sp", "UxR", "S", "thr", "arena_MiB", "touch_MiB", "param_MiB", "grad_MiB", "input_MiB",
           "act_MiB", "actm_MiB", "ws_MiB", "act/sp1", "1/P", "step_ms", "comm_ms", "comm%",
           "a2a_ms", "ar_ms", "ring_ms", "late_ms", "xfer_ms", "rss_MiB", "plan/meas");
}

static void print_row(int sp, const options_t *o, const row_t *r) {
    char mesh[16];
    snprintf(mesh, sizeof mesh, "%dx%d", sp / o->ring, o->ring);
    printf("%3d %5s %6lld %3.0f %9.1f %9.1f %9.1f %9.1f %9.3f %9.1f %9.1f %8.1f %7.3f %6.3f %9.1f "
           "%8.1f %6.1f %8.1f %8.1f %8.1f %8.1f %8.1f %9.1f %9.3f\n",
           sp, mesh, (long long)o->seq, r->threads, mib(r->arena), mib(r->touched), mib(r->params),
           mib(r->grads), mib(r->inputs), mib(r->acts), mib(r->acts_touched), mib(r->workspace),
           r->act_ratio, 1.0 / sp, 1e3 * r->step_s, 1e3 * r->comm_s, 100.0 * r->comm_share,
           1e3 * r->a2a_s, 1e3 * r->allreduce_s, 1e3 * r->ring_s, 1e3 * r->late_s,
           1e3 * r->transfer_s, mib(r->max_rss), r->plan_total / r->measured_total);
    if (r->touched > r->arena)
        printf("    note: touched > planned (%.0f > %.0f bytes): a kernel wrote past its block\n",
               r->touched, r->arena);
    if (r->pinned)
        printf("    note: a rank runs more threads than the CPUs it is bound to (mpirun binds "
               "by default: pass --bind-to none)\n");
    fflush(stdout);
}

/* ---- flags and main ---------------------------------------------------------------------- */

static const char USAGE[] =
    "usage: mpirun -np P bench_sp [--header] [--preset NAME] [--seq S] [--steps N] [--warmup W]\n"
    "                             [--dtype f32|bf16] [--zero 0-3] [--no-prefetch] [--ring R]\n"
    "  sp = P (every rank) = P/R Ulysses x a ring of R; defaults: llama-small, S=4096, f32,\n"
    "  ring 1, 3 timed steps after 1 warm-up\n";

/* 0 ok, 1 --help, -1 bad flags (why says which). */
static int parse_options(int argc, char **argv, void *options, char *why, size_t why_size) {
    options_t *o = options;
    *o = (options_t){.preset = "llama-small", .seq = 4096, .steps = 3, .warmup = 1, .ring = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t n = 0;
        int timing;
        if (strcmp(a, "--header") == 0 || strcmp(a, "--no-prefetch") == 0) {
            *(a[2] == 'h' ? &o->header : &o->no_prefetch) = 1;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return 1;
        if (strcmp(a, "--preset") == 0 && v) {
            o->preset = v;
        } else if (strcmp(a, "--dtype") == 0 && v && (!strcmp(v, "f32") || !strcmp(v, "bf16"))) {
            o->dtype = !strcmp(v, "bf16") ? AUTOSP_BF16 : AUTOSP_F32;
        } else if (strcmp(a, "--zero") == 0) {
            if (parse_int(a, v, 0, 3, &n, why, why_size) != 0) return -1;
            o->zero = (int)n;
        } else if (strcmp(a, "--ring") == 0) {
            if (parse_int(a, v, 1, 1 << 20, &n, why, why_size) != 0) return -1;
            o->ring = (int)n;
        } else if (strcmp(a, "--seq") == 0) {
            if (parse_int(a, v, 1, 1 << 24, &n, why, why_size) != 0) return -1;
            o->seq = n;
        } else if ((timing = parse_timing(a, v, MAX_STEPS, &o->steps, &o->warmup, why, why_size)) <=
                   0) {
            if (timing < 0) return -1;
        } else {
            snprintf(why, why_size, "bench_sp: unknown argument \"%s\"\n%s", a, USAGE);
            return -1;
        }
        i++; /* the flag's value */
    }
    return 0;
}

static void run(const options_t *o, const autosp_comm_t *comm, row_t *r) {
    autosp_error_t err = {0};
    r->threads = set_threads(comm);
    r->pinned = pinned_below((int)r->threads);
    autosp_graph_t *forward = build_preset_as(o->preset, o->seq, o->dtype);
    autosp_train_config_t tc = autosp_train_config_default();
    tc.ac.policy = AUTOSP_AC_NONE; /* what sequence parallelism alone does (bench_ac: the rest) */
    tc.zero_stage = o->zero;
    tc.zero3_prefetch = o->no_prefetch ? AUTOSP_PREFETCH_OFF : 0;
    autosp_trainer_t *tr = autosp_trainer_new_comm(forward, &tc, comm, &err);
    check(tr ? AUTOSP_OK : err.status, &err, "autosp_trainer_new_comm");
    autosp_trainer_init_params(tr, 1234);
    feed_sequence(tr, o->seq);
    r->arena = (double)autosp_trainer_arena_bytes(tr);
    plan_split(autosp_trainer_graph(tr), r);
    r->act_ratio = r->acts / single_device_acts(forward);
    time_steps(tr, o, r);
    r->touched = (double)autosp_trainer_touched_bytes(tr);
    r->acts_touched = r->touched - (r->params + r->grads + r->inputs);
    r->measured_total = r->touched + (double)autosp_trainer_state_bytes(tr);
    autosp_memory_plan_t mp;
    check(autosp_plan_memory(autosp_trainer_graph(tr), o->zero, autosp_backend_cpu(), &mp, &err),
          &err, "autosp_plan_memory");
    r->plan_total = (double)mp.total;
    r->max_rss = (double)max_rss_bytes();
    autosp_trainer_free(tr);
    autosp_graph_free(forward);
}

int main(int argc, char **argv) {
    options_t o;
    int rank = 0, size = 1, exit_code = 0;
    autosp_comm_t *comm =
        bench_start(&argc, &argv, parse_options, &o, USAGE, &rank, &size, &exit_code);
    if (!comm) return exit_code;
    if (o.ring > 1) { /* the same world, its sequence group as rings */
        autosp_error_t err = {0};
        autosp_comm_free(comm);
        comm = autosp_comm_new_mpi_ring(MPI_COMM_WORLD, size, o.ring, &err);
        check(comm ? AUTOSP_OK : err.status, &err, "autosp_comm_new_mpi_ring");
    }
    if (rank == 0 && o.header) print_preamble(&o);
    row_t mine = {0}, worst;
    run(&o, comm, &mine);
    MPI_Reduce(&mine, &worst, ROW_FIELDS, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    if (rank == 0) print_row(size, &o, &worst);
    autosp_comm_free(comm);
    MPI_Finalize();
    return 0;
}
