/* bench_mpi.h: what the MPI benchmarks (bench_sp, bench_ac) share: stopping the whole job on
 * a library error, one random whole sequence fed to every rank, threads per rank, and integer
 * flags (the median of timed values is in bench_util.h). Header-only; define BENCH_NAME (the
 * program's name, for messages) before including it. */
#ifndef AUTOSP_BENCH_MPI_H
#define AUTOSP_BENCH_MPI_H

#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */

#include <cblas.h>
#include <mpi.h>

#include "autosp/comm_mpi.h"
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <autosp/autosp.h>
#include <autosp/comm.h>

#include "bench_util.h" /* median */

#define TOKEN_RANGE  256  /* random tokens in [0, 256): every preset's vocabulary is >= 256 */
#define IGNORE_LABEL -100 /* cross_entropy's ignore_index: the last token predicts nothing */

/* A library error on one rank would leave the others blocked in the next collective: stop the
 * whole job instead. */
static inline void check(autosp_status_t st, const autosp_error_t *err, const char *what) {
    if (st == AUTOSP_OK) return;
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    fprintf(stderr, BENCH_NAME ": rank %d: %s: %s\n", rank, what, err->message);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

/* The preset's forward graph with B = 1; S is bound when seq > 0, else left unbound. */
static inline autosp_graph_t *build_preset_as(const char *preset, int64_t seq,
                                              autosp_dtype_t dtype) {
    autosp_model_config_t mc;
    autosp_error_t err = {0};
    if (!autosp_model_preset(preset, &mc)) {
        snprintf(err.message, sizeof err.message, "unknown preset \"%s\"", preset);
        check(AUTOSP_ERR_INVALID, &err, "model");
    }
    mc.dtype = dtype;
    autosp_graph_t *g = autosp_model_build(&mc, preset, &err);
    check(g ? AUTOSP_OK : err.status, &err, "autosp_model_build");
    check(autosp_symbol_bind(g, "B", 1, &err), &err, "bind B");
    if (seq > 0) check(autosp_symbol_bind(g, "S", seq, &err), &err, "bind S");
    return g;
}

static inline autosp_graph_t *build_preset(const char *preset, int64_t seq) {
    return build_preset_as(preset, seq, AUTOSP_F32);
}

static inline uint64_t lcg_next(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

/* The whole sequence, identical on every rank (same seed): random tokens, labels = the next
 * token (the last ignored), global positions. Each rank's trainer takes its own slice. */
static inline void feed_sequence(autosp_trainer_t *tr, int64_t seq) {
    int32_t *buf = malloc(3 * (size_t)seq * sizeof *buf);
    autosp_error_t err = {0};
    if (!buf) {
        snprintf(err.message, sizeof err.message, "out of memory for %lld tokens", (long long)seq);
        check(AUTOSP_ERR_NOMEM, &err, "inputs");
    }
    int32_t *tokens = buf, *labels = buf + seq, *positions = buf + 2 * seq;
    uint64_t s = 0x5eed;
    for (int64_t i = 0; i < seq; i++) {
        tokens[i] = (int32_t)(lcg_next(&s) % TOKEN_RANGE);
        positions[i] = (int32_t)i;
    }
    for (int64_t i = 0; i < seq; i++) labels[i] = i + 1 < seq ? tokens[i + 1] : IGNORE_LABEL;
    check(autosp_trainer_feed(tr, "tokens", tokens, &err), &err, "feed tokens");
    check(autosp_trainer_feed(tr, "labels", labels, &err), &err, "feed labels");
    check(autosp_trainer_feed(tr, "positions", positions, &err), &err, "feed positions");
    free(buf);
}

/* Ranks x threads must not exceed the cores, or OpenBLAS threads fight over them. */
static inline int set_threads(const autosp_comm_t *comm) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int local = autosp_comm_local_size(comm);
    int threads = cores > 0 ? (int)(cores / (local > 0 ? local : 1)) : 1;
    threads = threads < 1 ? 1 : threads;
    openblas_set_num_threads(threads);
    return threads;
}

/* mpirun binds each of up to 2 ranks to one core: then a rank's 2 threads share that core,
 * and a row would time the binding, not the code. */
static inline int pinned_below(int threads) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
    return CPU_COUNT(&set) < threads;
}

/* Every rank parses the flags, but only rank 0 should complain: the message goes to why. */
static inline int parse_int(const char *flag, const char *s, long min, long max, int64_t *out,
                            char *why, size_t why_size) {
    char *end;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || *end != '\0' || v < min || v > max) {
        snprintf(why, why_size, BENCH_NAME ": %s expects an integer in %ld..%ld, found \"%s\"\n",
                 flag, min, max, s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

/* --steps N (1..max) and --warmup W (0..max), the timing flags of every benchmark: 0 taken,
 * -1 bad (why says so), 1 not a timing flag. */
static inline int parse_timing(const char *flag, const char *value, int max, int *steps,
                               int *warmup, char *why, size_t why_size) {
    bool is_steps = strcmp(flag, "--steps") == 0;
    if (!is_steps && strcmp(flag, "--warmup") != 0) return 1;
    int64_t n;
    if (parse_int(flag, value, is_steps ? 1 : 0, max, &n, why, why_size) != 0) return -1;
    *(is_steps ? steps : warmup) = (int)n;
    return 0;
}

/* MPI_Init, the flags (parse: 0 ok, 1 --help, -1 bad with the reason in why; rank 0 prints
 * the usage or the reason), and one sequence group of every rank (sp = world). NULL when the
 * program should stop (MPI finalised) with *exit_code. */
typedef int (*bench_parse_fn)(int argc, char **argv, void *options, char *why, size_t why_size);
static inline autosp_comm_t *bench_start(int *argc, char ***argv, bench_parse_fn parse,
                                         void *options, const char *usage, int *rank, int *size,
                                         int *exit_code) {
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
    char why[1024] = "";
    int parsed = parse(*argc, *argv, options, why, sizeof why);
    if (parsed != 0) {
        if (*rank == 0) fputs(parsed > 0 ? usage : why, parsed > 0 ? stdout : stderr);
        MPI_Finalize();
        *exit_code = parsed > 0 ? 0 : 2;
        return NULL;
    }
    autosp_error_t err = {0};
    autosp_comm_t *comm = autosp_comm_new_mpi(MPI_COMM_WORLD, *size, &err);
    check(comm ? AUTOSP_OK : err.status, &err, "autosp_comm_new_mpi");
    return comm;
}

#endif
