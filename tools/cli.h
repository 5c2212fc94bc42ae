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
/* A whole decimal integer in [lo, hi]; false otherwise. */
bool cli_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out);
/* A whole decimal number; false otherwise. */
bool cli_parse_double(const char *s, double *out);

#endif
