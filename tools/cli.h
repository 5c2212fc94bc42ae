/* cli.h: small pieces the command-line tools share. */
#ifndef AUTOSP_CLI_H
#define AUTOSP_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "autosp/autosp.h"

/* Prints "prog: message" to stderr; returns the exit code for err's status (2 bad input,
 * 1 internal error). */
int cli_fail(const char *prog, const autosp_error_t *err);
/* Prints "prog: message" to stderr for a usage mistake; returns 2. */
int cli_usage_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes several files all or nothing: each goes to a temporary file beside its target first,
 * and only when every one is written and synced are they renamed into place. On failure
 * nothing is left (old files stay as they were) and the message names the file. */
autosp_status_t cli_write_files(int n, const char *const *paths, const char *const *texts,
                                autosp_error_t *err);
/* A whole decimal integer in [lo, hi]; false otherwise. */
bool cli_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out);
/* A whole decimal number; false otherwise. */
bool cli_parse_double(const char *s, double *out);
/* A positive size: a number with an optional unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB). */
bool cli_parse_bytes(const char *s, int64_t *out);
/* --ac POLICY or --recompute-budget FRACTION into ac; 0, or the exit code of a usage error. */
int cli_parse_ac(const char *prog, const char *flag, const char *value, autosp_ac_config_t *ac);
/* --loss-chunk and --mlp-tile: "planned" (0), "off" (-1: AUTOSP_LOSS_UNCHUNKED,
 * AUTOSP_MLP_UNTILED) or rows per chunk or tile; 0 or a usage error (2). */
int cli_parse_rows(const char *prog, const char *flag, const char *value, int64_t *rows);
/* --sp P, --ulysses U, --ring R (each 0 when not given) made whole: P = U x R, one of them
 * found from the other two (--ulysses or --ring alone with --sp; both without it); both stay
 * 0 when neither is given (the tool's planner chooses). 0, or a usage error (2) naming the
 * constraint. */
int cli_sp_mesh(const char *prog, int64_t *sp, int64_t *ulysses, int64_t *ring);
/* A line of /proc/self/status in bytes: "VmRSS" (resident now) or "VmHWM" (its high-water
 * mark); -1 where there is none (not Linux). */
int64_t cli_rss_bytes(const char *field);

#endif
