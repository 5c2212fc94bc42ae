/* threads.h: how many CPUs this process may use, and the default thread count of a rank
 * (threads.c; the public side is autosp_thread_info in autosp/runtime.h).
 *
 * The pieces are apart so that tests can feed each one: the cgroup quota is read below a root
 * folder (a fake /proc and /sys tree in tests, "" for the machine), and the policy takes the
 * counts and the environment's value as arguments. */
#ifndef AUTOSP_BACKENDS_CPU_THREADS_H
#define AUTOSP_BACKENDS_CPU_THREADS_H

#include "autosp/runtime.h"

/* The three limits on the CPUs of this process; 0 where a limit is unknown or absent. */
typedef struct cpu_limits {
    int online;         /* sysconf(_SC_NPROCESSORS_ONLN) */
    int affinity;       /* CPUs in the affinity mask (sched_getaffinity) */
    int quota;          /* the cgroup's CPU quota in CPUs, rounded up; 0: no quota */
    int cgroup_version; /* the hierarchy whose CPU files were read: 2, 1, 0 none */
} cpu_limits_t;

int cpu_online_count(void);
int cpu_affinity_count(void);

/* The smallest CPU quota, ceil(quota / period), of the process's cgroup and its ancestors up
 * to the hierarchy's mount: cgroup v2's cpu.max, else v1's cpu.cfs_quota_us and
 * cpu.cfs_period_us. The cgroup comes from ROOT/proc/self/cgroup, its mount from
 * ROOT/proc/self/mountinfo (mount points taken under ROOT), else ROOT/sys/fs/cgroup (v2) or
 * ROOT/sys/fs/cgroup/cpu,cpuacct or .../cpu (v1). root "" is the machine itself; root must
 * not be NULL. Returns 0 when there is no quota or no file could be read; *version (not NULL)
 * is the hierarchy whose CPU files were read (2 or 1), 0 if none. */
int cpu_cgroup_quota(const char *root, int *version);

/* The machine's limits: online and affinity counts, and the quota at root "". */
void cpu_limits_read(cpu_limits_t *out);

/* min(online, affinity, quota) over those that are known (> 0), at least 1. */
int cpu_usable(const cpu_limits_t *limits);

/* The policy: env (AUTOSP_NUM_THREADS's value, NULL or "" when unset) if it is an integer in
 * 1..AUTOSP_MAX_THREADS_ENV written in digits only, else max(1, usable / ranks_on_node), with
 * ranks_on_node below 1 taken as 1. An env value that is not valid is copied (truncated) into
 * out->env_ignored; out is the caller's. */
void cpu_thread_info(const cpu_limits_t *limits, int ranks_on_node, const char *env,
                     autosp_thread_info_t *out);

#endif
