/* threads.c: how many CPUs this process may use (online, affinity mask, cgroup quota), and the
 * default thread count of a rank: AUTOSP_NUM_THREADS, else usable CPUs / ranks on the node.
 *
 * The cgroup quota: /proc/self/cgroup names the process's cgroup in each hierarchy ("0::/path"
 * for v2, "4:cpu,cpuacct:/path" for v1), /proc/self/mountinfo says where that hierarchy is
 * mounted and which of its cgroups the mount shows (a container without a cgroup namespace
 * sees its own cgroup at /sys/fs/cgroup while /proc/self/cgroup still says /docker/<id>). The
 * quota is read in the cgroup's folder and in each parent up to the mount point, the smallest
 * wins (systemd's CPUQuota= sits on a slice above the process). v2 first; v1 when no v2 cpu.max
 * could be read (a hybrid machine mounts v2 without the cpu controller). */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT_S */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autosp/comm.h"
#include "backends/cpu/threads.h"

enum {
    PATH_BYTES = 4096,
    LINE_BYTES = 4096 /* longer lines (overlay mounts' options) are skipped, never ours */
};

int cpu_online_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 && n <= INT_MAX ? (int)n : 0;
}

int cpu_affinity_count(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
    /* EINVAL: the kernel's mask is wider than cpu_set_t's CPU_SETSIZE (1024) CPUs */
    bool wider = errno == EINVAL;
    for (int cpus = 2 * CPU_SETSIZE; wider && cpus <= (1 << 20); cpus *= 2) {
        cpu_set_t *big = CPU_ALLOC(cpus);
        if (!big) return 0;
        size_t size = CPU_ALLOC_SIZE(cpus);
        int rc = sched_getaffinity(0, size, big);
        int count = rc == 0 ? CPU_COUNT_S(size, big) : 0;
        wider = rc != 0 && errno == EINVAL;
        CPU_FREE(big);
        if (rc == 0) return count;
    }
    return 0;
}

/* The next line of f, without its newline; false at the end. A longer line is skipped. */
static bool read_line(FILE *f, char *line, size_t size) {
    while (fgets(line, (int)size, f)) {
        size_t n = strlen(line);
        if (n > 0 && line[n - 1] == '\n') {
            line[n - 1] = '\0';
            return true;
        }
        if (feof(f)) return true; /* the last line, without a newline */
        int c;
        while ((c = fgetc(f)) != EOF && c != '\n') continue;
    }
    return false;
}

/* Is word one of the comma-separated items of list? */
static bool has_item(const char *list, const char *word) {
    size_t n = strlen(word);
    for (const char *p = list; p; p = strchr(p, ',')) {
        if (*p == ',') p++;
        if (strncmp(p, word, n) == 0 && (p[n] == ',' || p[n] == '\0')) return true;
    }
    return false;
}

static bool join(char *out, const char *a, const char *b) {
    int n = snprintf(out, PATH_BYTES, "%s%s", a, b);
    return n >= 0 && n < PATH_BYTES;
}

/* The cgroup path of the v2 hierarchy (version 2) or of the v1 one holding the cpu controller
 * (version 1, *controllers its list, e.g. "cpu,cpuacct"). */
static bool own_cgroup(const char *root, int version, char *path, char *controllers) {
    char file[PATH_BYTES], line[LINE_BYTES];
    FILE *f = join(file, root, "/proc/self/cgroup") ? fopen(file, "r") : NULL;
    bool found = false;
    while (f && !found && read_line(f, line, sizeof line)) {
        char *list = strchr(line, ':'), *cgroup = list ? strchr(list + 1, ':') : NULL;
        if (!cgroup) continue;
        *list++ = '\0';
        *cgroup++ = '\0';
        found = version == 2 ? strcmp(line, "0") == 0 && *list == '\0' : has_item(list, "cpu");
        if (found) {
            snprintf(path, PATH_BYTES, "%s", cgroup);
            snprintf(controllers, PATH_BYTES, "%s", list);
        }
    }
    if (f) fclose(f);
    return found;
}

/* A mountinfo field in place: "\040" and the other octal escapes decoded. */
static char *next_field(char **s) {
    char *start = *s, *out = start;
    if (!start) return NULL;
    char *in = start;
    for (; *in && *in != ' '; in++) {
        if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' && in[2] >= '0' && in[2] <= '7' &&
            in[3] >= '0' && in[3] <= '7') {
            *out++ = (char)((in[1] - '0') * 64 + (in[2] - '0') * 8 + (in[3] - '0'));
            in += 3;
        } else {
            *out++ = *in;
        }
    }
    *s = *in ? in + 1 : NULL;
    *out = '\0';
    return start;
}

/* Where the hierarchy is mounted (ROOT + mount point) and which cgroup the mount shows. */
static bool find_mount(const char *root, int version, char *mount, char *shown) {
    char file[PATH_BYTES], line[LINE_BYTES];
    FILE *f = join(file, root, "/proc/self/mountinfo") ? fopen(file, "r") : NULL;
    bool found = false;
    while (f && !found && read_line(f, line, sizeof line)) {
        /* id parent major:minor root mount-point options [optional...] - type source super */
        char *s = line, *field[5];
        for (int i = 0; i < 5; i++) field[i] = next_field(&s);
        char *sep;
        while ((sep = next_field(&s)) && strcmp(sep, "-") != 0) continue;
        char *type = next_field(&s), *source = next_field(&s), *super = next_field(&s);
        if (!field[4] || !type || !source || !super) continue;
        found = version == 2 ? strcmp(type, "cgroup2") == 0
                             : strcmp(type, "cgroup") == 0 && has_item(super, "cpu");
        if (found) {
            found = join(mount, root, field[4]);
            snprintf(shown, PATH_BYTES, "%s", field[3]);
        }
    }
    if (f) fclose(f);
    return found;
}

/* ceil(quota / period) in CPUs; 0 for no quota (-1 in v1, or nonsense). */
static int quota_cpus(long long quota, long long period) {
    if (quota <= 0 || period <= 0) return 0;
    long long cpus = quota / period + (quota % period != 0);
    return cpus > INT_MAX ? INT_MAX : (int)cpus;
}

/* The quota set in one cgroup folder, 0 none; *read: its CPU files were there. */
static int folder_quota(const char *dir, int version, bool *read) {
    char file[PATH_BYTES], word[32];
    long long quota = 0, period = 0;
    bool ok = false;
    if (version == 2 && join(file, dir, "/cpu.max")) {
        FILE *f = fopen(file, "r");
        ok = f && fscanf(f, "%31s %lld", word, &period) == 2;
        if (f) fclose(f);
        if (ok && strcmp(word, "max") != 0) {
            char *end;
            quota = strtoll(word, &end, 10);
            if (*end) quota = 0;
        }
    } else if (version == 1 && join(file, dir, "/cpu.cfs_quota_us")) {
        FILE *f = fopen(file, "r");
        ok = f && fscanf(f, "%lld", &quota) == 1;
        if (f) fclose(f);
        f = ok && join(file, dir, "/cpu.cfs_period_us") ? fopen(file, "r") : NULL;
        ok = f && fscanf(f, "%lld", &period) == 1;
        if (f) fclose(f);
    }
    *read = *read || ok;
    return ok ? quota_cpus(quota, period) : 0;
}

/* The folder of the mount that holds the cgroup: the path less the part the mount hides. */
static bool cgroup_folder(const char *mount, const char *shown, const char *path, char *dir) {
    size_t n = strlen(shown);
    const char *rel = path;
    if (strcmp(shown, "/") != 0)
        rel = strncmp(path, shown, n) == 0 && (path[n] == '/' || path[n] == '\0') ? path + n : "";
    if (!join(dir, mount, rel)) return false;
    for (size_t len = strlen(dir); len > strlen(mount) && dir[len - 1] == '/'; len--)
        dir[len - 1] = '\0';
    return true;
}

/* The mount points to try when mountinfo does not say. */
static int default_mounts(const char *root, int version, const char *controllers,
                          char mounts[2][PATH_BYTES]) {
    char sub[PATH_BYTES];
    if (version == 2) return join(mounts[0], root, "/sys/fs/cgroup");
    int n = 0;
    if (snprintf(sub, sizeof sub, "/sys/fs/cgroup/%s", controllers) < PATH_BYTES &&
        join(mounts[n], root, sub))
        n++;
    if (strcmp(controllers, "cpu") != 0 && join(mounts[n], root, "/sys/fs/cgroup/cpu")) n++;
    return n;
}

/* The smallest quota from the cgroup's folder up to the mount point. */
static int hierarchy_quota(const char *mount, const char *shown, const char *path, int version,
                           bool *read) {
    char dir[PATH_BYTES];
    if (!cgroup_folder(mount, shown, path, dir)) return 0;
    size_t top = strlen(mount);
    int best = 0;
    for (;;) {
        int q = folder_quota(dir, version, read);
        if (q > 0 && (best == 0 || q < best)) best = q;
        char *slash = strlen(dir) > top ? strrchr(dir + top, '/') : NULL;
        if (!slash) break;
        *slash = '\0';
    }
    return best;
}

int cpu_cgroup_quota(const char *root, int *version) {
    *version = 0;
    for (int v = 2; v >= 1; v--) {
        char path[PATH_BYTES], controllers[PATH_BYTES], shown[PATH_BYTES];
        char mounts[2][PATH_BYTES];
        if (!own_cgroup(root, v, path, controllers)) continue;
        int n = 1;
        if (!find_mount(root, v, mounts[0], shown)) {
            n = default_mounts(root, v, controllers, mounts);
            snprintf(shown, sizeof shown, "/");
        }
        for (int i = 0; i < n; i++) {
            bool read = false;
            int quota = hierarchy_quota(mounts[i], shown, path, v, &read);
            if (read) {
                *version = v;
                return quota;
            }
        }
    }
    return 0;
}

void cpu_limits_read(cpu_limits_t *out) {
    *out = (cpu_limits_t){.online = cpu_online_count(), .affinity = cpu_affinity_count()};
    out->quota = cpu_cgroup_quota("", &out->cgroup_version);
}

int cpu_usable(const cpu_limits_t *l) {
    int counts[] = {l->online, l->affinity, l->quota}, best = 0;
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        if (counts[i] > 0 && (best == 0 || counts[i] < best)) best = counts[i];
    return best > 0 ? best : 1;
}

/* A count in 1..AUTOSP_MAX_THREADS_ENV, digits only; 0 for anything else. */
static int parse_threads(const char *s) {
    int n = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return 0;
        n = n * 10 + (*p - '0');
        if (n > AUTOSP_MAX_THREADS_ENV) return 0;
    }
    return n;
}

void cpu_thread_info(const cpu_limits_t *l, int ranks_on_node, const char *env,
                     autosp_thread_info_t *out) {
    *out = (autosp_thread_info_t){.from = AUTOSP_THREADS_FROM_CPUS,
                                  .usable_cpus = cpu_usable(l),
                                  .online_cpus = l->online,
                                  .affinity_cpus = l->affinity,
                                  .quota_cpus = l->quota,
                                  .cgroup_version = l->cgroup_version,
                                  .ranks_on_node = ranks_on_node < 1 ? 1 : ranks_on_node};
    int per_rank = out->usable_cpus / out->ranks_on_node;
    out->threads = per_rank < 1 ? 1 : per_rank;
    if (!env || !*env) return;
    int n = parse_threads(env);
    if (n > 0) {
        out->threads = n;
        out->from = AUTOSP_THREADS_FROM_ENV;
    } else {
        snprintf(out->env_ignored, sizeof out->env_ignored, "%s", env);
    }
}

void autosp_thread_info(int ranks_on_node, autosp_thread_info_t *out) {
    cpu_limits_t limits;
    cpu_limits_read(&limits);
    cpu_thread_info(&limits, ranks_on_node, getenv("AUTOSP_NUM_THREADS"), out);
}

int autosp_default_num_threads(int ranks_on_node) {
    autosp_thread_info_t info;
    autosp_thread_info(ranks_on_node, &info);
    return info.threads;
}

int autosp_comm_fair_threads(const autosp_comm_t *comm) {
    return autosp_default_num_threads(autosp_comm_local_size(comm));
}
