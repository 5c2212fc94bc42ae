/* cli.c: error reporting and number parsing for the tools. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cli_fail(const char *prog, const autosp_error_t *err) {
    fprintf(stderr, "%s: %s\n", prog,
            err->message[0] ? err->message : autosp_status_name(err->status));
    return autosp_status_exit_code(err->status);
}

int cli_usage_error(const char *prog, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see %s --help)\n", prog);
    return 2;
}

bool cli_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

bool cli_parse_double(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end) return false;
    *out = v;
    return true;
}

bool cli_parse_bytes(const char *s, int64_t *out) {
    static const struct {
        const char *suffix;
        double scale;
    } units[] = {{"", 1},
                 {"B", 1},
                 {"KB", 1e3},
                 {"MB", 1e6},
                 {"GB", 1e9},
                 {"TB", 1e12},
                 {"KiB", 1024.0},
                 {"MiB", 1048576.0},
                 {"GiB", 1073741824.0},
                 {"TiB", 1099511627776.0}};
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !(v > 0)) return false;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (!strcmp(end, units[i].suffix) && v * units[i].scale < 9e18) {
            *out = (int64_t)(v * units[i].scale);
            return *out > 0;
        }
    return false;
}

int cli_parse_ac(const char *prog, const char *flag, const char *value, autosp_ac_config_t *ac) {
    autosp_error_t err;
    if (!strcmp(flag, "--ac")) {
        if (autosp_ac_policy_parse(value, &ac->policy, &err) != AUTOSP_OK)
            return cli_usage_error(prog, "--ac: %s", err.message);
        return 0;
    }
    double budget;
    if (!cli_parse_double(value, &budget) || !(budget >= 0 && budget <= 10))
        return cli_usage_error(prog,
                               "--recompute-budget \"%s\": expected a fraction of the step's time "
                               "between 0 and 10 (0.1 = 10%%)",
                               value);
    ac->recompute_budget = budget;
    return 0;
}

int cli_parse_rows(const char *prog, const char *flag, const char *value, int64_t *rows) {
    _Static_assert(AUTOSP_LOSS_UNCHUNKED == -1 && AUTOSP_MLP_UNTILED == -1, "off is -1");
    if (!strcmp(value, "off")) {
        *rows = -1;
        return 0;
    }
    if (!strcmp(value, "planned")) {
        *rows = 0;
        return 0;
    }
    if (cli_parse_int(value, 0, INT64_MAX / 2, rows)) return 0; /* 0: planned */
    return cli_usage_error(prog, "%s \"%s\": expected planned, off or a number of rows", flag,
                           value);
}

int64_t cli_rss_bytes(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long long kib = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, n) && line[n] == ':' && sscanf(line + n + 1, "%lld", &kib) == 1)
            break;
    fclose(f);
    return kib < 0 ? -1 : (int64_t)kib * 1024;
}

static bool write_all(int fd, const char *text) {
    size_t left = strlen(text);
    while (left > 0) {
        ssize_t w = write(fd, text, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        text += w;
        left -= (size_t)w;
    }
    return fchmod(fd, 0644) == 0 && fsync(fd) == 0;
}

autosp_status_t cli_write_files(int n, const char *const *paths, const char *const *texts,
                                autosp_error_t *err) {
    char tmp[8][4096];
    int made = 0;
    autosp_status_t st = AUTOSP_OK;
    for (; made < n && made < 8; made++) {
        snprintf(tmp[made], sizeof tmp[made], "%s.tmp.XXXXXX", paths[made]);
        int fd = mkstemp(tmp[made]);
        bool ok = fd >= 0 && write_all(fd, texts[made]);
        int saved = errno;
        if (fd >= 0 && close(fd) != 0) ok = false;
        if (!ok) {
            if (fd >= 0) unlink(tmp[made]);
            err->status = st = AUTOSP_ERR_IO;
            snprintf(err->message, sizeof err->message, "cannot write \"%s\": %s", paths[made],
                     strerror(saved));
            break;
        }
    }
    for (int i = 0; i < made; i++) {
        if (st == AUTOSP_OK && rename(tmp[i], paths[i]) == 0) continue;
        if (st == AUTOSP_OK) {
            err->status = st = AUTOSP_ERR_IO;
            snprintf(err->message, sizeof err->message, "cannot write \"%s\": %s", paths[i],
                     strerror(errno));
        }
        unlink(tmp[i]);
    }
    return st;
}

int cli_sp_mesh(const char *prog, int64_t *sp, int64_t *ulysses, int64_t *ring) {
    if (!*ulysses && !*ring) return 0; /* the tool's planner chooses */
    if (!*sp) {
        *sp = (*ulysses ? *ulysses : 1) * (*ring ? *ring : 1);
    } else if (*ulysses && *ring && *ulysses * *ring != *sp) {
        return cli_usage_error(prog, "--ulysses %lld x --ring %lld is %lld, not --sp %lld",
                               (long long)*ulysses, (long long)*ring, (long long)(*ulysses * *ring),
                               (long long)*sp);
    }
    int64_t *given = *ring ? ring : ulysses, *other = *ring ? ulysses : ring;
    const char *flag = *ring ? "--ring" : "--ulysses";
    if (*sp % *given != 0)
        return cli_usage_error(prog, "%s %lld does not divide --sp %lld (sp = ulysses x ring)",
                               flag, (long long)*given, (long long)*sp);
    *other = *sp / *given;
    return 0;
}
