/* test_threads.c: the default thread count (src/backends/cpu/threads.c). The cgroup quota is
 * read from fake trees (a /proc/self/cgroup, a /proc/self/mountinfo and the cgroup folders
 * under a temporary root): cgroup v2 without and with a quota, a quota on an ancestor, a
 * container's own cgroup mounted at /sys/fs/cgroup, the v1 fallback of a hybrid machine, no
 * mountinfo, nothing at all. Then the policy: the smallest of the limits, the division by the
 * ranks with a floor of 1, AUTOSP_NUM_THREADS valid and invalid, and this machine. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/cpu/threads.h"
#include "test_util.h"

static char dir[64];

static int setup(void **state) {
    (void)state;
    return temp_dir_make(dir, "test_threads");
}

static int teardown(void **state) {
    (void)state;
    return temp_dir_remove(dir);
}

/* A fresh fake root for one case: dir/name. */
static const char *fake_root(const char *name) {
    static char root[128];
    snprintf(root, sizeof root, "%s/%s", dir, name);
    assert_int_equal(mkdir(root, 0700), 0);
    return root;
}

/* root/rel with its folders made, holding text. */
static void put(const char *root, const char *rel, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *p = path + strlen(root) + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        assert_true(mkdir(path, 0700) == 0 || errno == EEXIST);
        *p = '/';
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* The mountinfo line of a cgroup2 (or v1 cgroup with super options) mount. */
#define V2_MOUNT(shown, at) "31 25 0:26 " shown " " at " rw,nosuid - cgroup2 cgroup2 rw\n"
#define V1_MOUNT(shown, at, super)                                                                 \
    "41 30 0:36 " shown " " at " rw,nosuid shared:16 - cgroup cgroup rw," super "\n"
#define OTHER_MOUNTS                                                                               \
    "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"                                                 \
    "23 1 0:50 / / rw,relatime - overlay overlay rw,lowerdir=/a:/b,upperdir=/c,workdir=/d\n"

static int quota_at(const char *root, int *version) {
    *version = -1;
    return cpu_cgroup_quota(root, version);
}

static void test_v2_no_quota(void **state) {
    (void)state;
    const char *root = fake_root("v2_max");
    put(root, "proc/self/cgroup", "0::/user.slice/job\n");
    put(root, "proc/self/mountinfo", OTHER_MOUNTS V2_MOUNT("/", "/sys/fs/cgroup"));
    put(root, "sys/fs/cgroup/user.slice/job/cpu.max", "max 100000\n");
    int version;
    assert_int_equal(quota_at(root, &version), 0);
    assert_int_equal(version, 2);
}

static void test_v2_quota_rounds_up(void **state) {
    (void)state;
    const char *root = fake_root("v2_150");
    put(root, "proc/self/cgroup", "0::/job\n");
    put(root, "proc/self/mountinfo", OTHER_MOUNTS V2_MOUNT("/", "/sys/fs/cgroup"));
    put(root, "sys/fs/cgroup/job/cpu.max", "150000 100000\n");
    int version;
    assert_int_equal(quota_at(root, &version), 2); /* 1.5 CPUs */
    assert_int_equal(version, 2);
    put(root, "sys/fs/cgroup/job/cpu.max", "50000 100000\n");
    assert_int_equal(quota_at(root, &version), 1); /* half a CPU is one thread */
    put(root, "sys/fs/cgroup/job/cpu.max", "400000 100000\n");
    assert_int_equal(quota_at(root, &version), 4); /* whole CPUs stay whole */
}

/* systemd's CPUQuota= on the slice: the smallest quota from the cgroup up to the mount. */
static void test_v2_quota_on_ancestor(void **state) {
    (void)state;
    const char *root = fake_root("v2_parent");
    put(root, "proc/self/cgroup", "0::/work.slice/run/job\n");
    put(root, "proc/self/mountinfo", V2_MOUNT("/", "/sys/fs/cgroup"));
    put(root, "sys/fs/cgroup/work.slice/cpu.max", "300000 100000\n");
    put(root, "sys/fs/cgroup/work.slice/run/cpu.max", "max 100000\n");
    put(root, "sys/fs/cgroup/work.slice/run/job/cpu.max", "max 100000\n");
    int version;
    assert_int_equal(quota_at(root, &version), 3);
    put(root, "sys/fs/cgroup/work.slice/run/job/cpu.max", "500000 100000\n");
    assert_int_equal(quota_at(root, &version), 3);
    put(root, "sys/fs/cgroup/work.slice/run/cpu.max", "200000 100000\n");
    assert_int_equal(quota_at(root, &version), 2);
}

/* A container without a cgroup namespace: /proc/self/cgroup names /docker/<id>, and the mount
 * shows that cgroup at /sys/fs/cgroup (mountinfo's root field). A space in the mount point. */
static void test_v2_container_mount(void **state) {
    (void)state;
    const char *root = fake_root("v2_docker");
    put(root, "proc/self/cgroup", "0::/docker/abc\n");
    put(root, "proc/self/mountinfo", V2_MOUNT("/docker/abc", "/sys/fs/my\\040cgroup"));
    put(root, "sys/fs/my cgroup/cpu.max", "250000 100000\n");
    int version;
    assert_int_equal(quota_at(root, &version), 3);
    assert_int_equal(version, 2);
}

/* A hybrid machine: v2 mounted without the cpu controller (no cpu.max), v1's cpu has it. */
static void test_v1_fallback(void **state) {
    (void)state;
    const char *root = fake_root("v1");
    put(root, "proc/self/cgroup",
        "12:pids:/job\n4:cpu,cpuacct:/job\n1:name=systemd:/job\n0::/job\n");
    put(root, "proc/self/mountinfo",
        OTHER_MOUNTS V2_MOUNT("/", "/sys/fs/cgroup/unified")
            V1_MOUNT("/", "/sys/fs/cgroup/cpuset", "cpuset")
                V1_MOUNT("/", "/sys/fs/cgroup/cpu,cpuacct", "cpu,cpuacct"));
    put(root, "sys/fs/cgroup/unified/job/cgroup.procs", "1\n");
    put(root, "sys/fs/cgroup/cpu,cpuacct/job/cpu.cfs_quota_us", "300000\n");
    put(root, "sys/fs/cgroup/cpu,cpuacct/job/cpu.cfs_period_us", "100000\n");
    int version;
    assert_int_equal(quota_at(root, &version), 3);
    assert_int_equal(version, 1);
    put(root, "sys/fs/cgroup/cpu,cpuacct/job/cpu.cfs_quota_us", "-1\n");
    assert_int_equal(quota_at(root, &version), 0);
    assert_int_equal(version, 1);
    put(root, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "150000\n"); /* the parent's */
    put(root, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
    assert_int_equal(quota_at(root, &version), 2);
}

/* Without mountinfo: the usual mount points, /sys/fs/cgroup (v2), /sys/fs/cgroup/cpu (v1). */
static void test_no_mountinfo(void **state) {
    (void)state;
    const char *root = fake_root("v2_default");
    put(root, "proc/self/cgroup", "0::/job\n");
    put(root, "sys/fs/cgroup/job/cpu.max", "150000 100000\n");
    int version;
    assert_int_equal(quota_at(root, &version), 2);
    assert_int_equal(version, 2);
    root = fake_root("v1_default");
    put(root, "proc/self/cgroup", "3:cpuacct,cpu:/job\n0::/\n");
    put(root, "sys/fs/cgroup/cpu/job/cpu.cfs_quota_us", "200000\n");
    put(root, "sys/fs/cgroup/cpu/job/cpu.cfs_period_us", "100000\n");
    assert_int_equal(quota_at(root, &version), 2);
    assert_int_equal(version, 1);
}

/* Missing or unreadable files: no quota, and the CPUs come from the affinity mask. */
static void test_missing_files(void **state) {
    (void)state;
    int version;
    const char *root = fake_root("empty");
    assert_int_equal(quota_at(root, &version), 0);
    assert_int_equal(version, 0);
    put(root, "proc/self/cgroup", "0::/job\n");
    put(root, "proc/self/mountinfo", V2_MOUNT("/", "/sys/fs/cgroup"));
    put(root, "sys/fs/cgroup/job/cpu.max", "garbage\n");
    assert_int_equal(quota_at(root, &version), 0);
    assert_int_equal(version, 0);
    assert_int_equal(quota_at("/nonexistent/root", &version), 0);
    assert_int_equal(version, 0);

    cpu_limits_t l = {.online = cpu_online_count(), .affinity = cpu_affinity_count()};
    l.quota = cpu_cgroup_quota(root, &l.cgroup_version);
    assert_true(l.affinity >= 1 && l.affinity <= l.online);
    assert_int_equal(cpu_usable(&l), l.affinity);
    autosp_thread_info_t ti;
    cpu_thread_info(&l, 1, NULL, &ti);
    assert_int_equal(ti.threads, l.affinity);
    assert_int_equal(ti.from, AUTOSP_THREADS_FROM_CPUS);
    assert_int_equal(ti.quota_cpus, 0);
    assert_int_equal(ti.cgroup_version, 0);
}

/* The smallest known limit wins; unknown ones (0) do not count. */
static void test_usable_is_the_smallest(void **state) {
    (void)state;
    assert_int_equal(cpu_usable(&(cpu_limits_t){.online = 8, .affinity = 4, .quota = 2}), 2);
    assert_int_equal(cpu_usable(&(cpu_limits_t){.online = 8, .affinity = 4, .quota = 6}), 4);
    assert_int_equal(cpu_usable(&(cpu_limits_t){.online = 8, .affinity = 0, .quota = 0}), 8);
    assert_int_equal(cpu_usable(&(cpu_limits_t){.online = 3, .affinity = 4, .quota = 0}), 3);
    assert_int_equal(cpu_usable(&(cpu_limits_t){0}), 1);
    /* a quota below this machine's affinity mask, read from a fake tree */
    const char *root = fake_root("below");
    put(root, "proc/self/cgroup", "0::/job\n");
    put(root, "sys/fs/cgroup/job/cpu.max", "50000 100000\n");
    cpu_limits_t l = {.online = cpu_online_count(), .affinity = cpu_affinity_count()};
    l.quota = cpu_cgroup_quota(root, &l.cgroup_version);
    assert_int_equal(cpu_usable(&l), 1);
    autosp_thread_info_t ti;
    cpu_thread_info(&l, 1, "", &ti);
    assert_int_equal(ti.threads, 1);
    assert_int_equal(ti.usable_cpus, 1);
    assert_int_equal(ti.quota_cpus, 1);
    assert_int_equal(ti.affinity_cpus, l.affinity);
    assert_int_equal(ti.cgroup_version, 2);
}

static void test_divided_by_ranks(void **state) {
    (void)state;
    cpu_limits_t l = {.online = 16, .affinity = 8, .quota = 0};
    int ranks[] = {1, 2, 3, 8, 9, 64, 0, -4}, want[] = {8, 4, 2, 1, 1, 1, 8, 8};
    for (size_t i = 0; i < sizeof ranks / sizeof ranks[0]; i++) {
        autosp_thread_info_t ti;
        cpu_thread_info(&l, ranks[i], NULL, &ti);
        assert_int_equal(ti.threads, want[i]);
        assert_int_equal(ti.ranks_on_node, ranks[i] < 1 ? 1 : ranks[i]);
        assert_int_equal(ti.usable_cpus, 8);
    }
}

static void test_env(void **state) {
    (void)state;
    cpu_limits_t l = {.online = 4, .affinity = 4, .quota = 0};
    autosp_thread_info_t ti;
    const char *valid[] = {"3", "1", "12", "1024", "007"};
    int want[] = {3, 1, 12, 1024, 7};
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        cpu_thread_info(&l, 2, valid[i], &ti); /* the environment is not divided by ranks */
        assert_int_equal(ti.threads, want[i]);
        assert_int_equal(ti.from, AUTOSP_THREADS_FROM_ENV);
        assert_string_equal(ti.env_ignored, "");
    }
    const char *invalid[] = {"0", "-2", "+3", " 3", "3 ", "4x", "1025", "99999999999999", "auto"};
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        cpu_thread_info(&l, 2, invalid[i], &ti);
        assert_int_equal(ti.threads, 2);
        assert_int_equal(ti.from, AUTOSP_THREADS_FROM_CPUS);
        assert_string_equal(ti.env_ignored, invalid[i]);
    }
    cpu_thread_info(&l, 2, "", &ti); /* empty: as if unset */
    assert_int_equal(ti.threads, 2);
    assert_string_equal(ti.env_ignored, "");
    char longer[100];
    memset(longer, 'x', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    cpu_thread_info(&l, 2, longer, &ti);
    assert_int_equal(strlen(ti.env_ignored), sizeof ti.env_ignored - 1);
}

/* The public functions on this machine, with AUTOSP_NUM_THREADS set and not. */
static void test_this_machine(void **state) {
    (void)state;
    long nproc = sysconf(_SC_NPROCESSORS_ONLN);
    assert_true(nproc >= 1);
    assert_int_equal(unsetenv("AUTOSP_NUM_THREADS"), 0);
    autosp_thread_info_t ti;
    autosp_thread_info(1, &ti);
    assert_true(ti.threads >= 1 && ti.threads <= nproc);
    assert_int_equal(ti.threads, ti.usable_cpus);
    assert_int_equal(ti.from, AUTOSP_THREADS_FROM_CPUS);
    assert_int_equal(ti.online_cpus, nproc);
    assert_true(ti.affinity_cpus >= 1 && ti.affinity_cpus <= nproc);
    assert_true(ti.usable_cpus <= ti.affinity_cpus);
    assert_true(ti.quota_cpus == 0 || ti.usable_cpus <= ti.quota_cpus);
    assert_int_equal(autosp_default_num_threads(1), ti.threads);
    assert_int_equal(autosp_default_num_threads(1000), 1);
    print_message("this machine: %d threads (online %d, affinity %d, cgroup v%d quota %d)\n",
                  ti.threads, ti.online_cpus, ti.affinity_cpus, ti.cgroup_version, ti.quota_cpus);

    assert_int_equal(setenv("AUTOSP_NUM_THREADS", "5", 1), 0);
    assert_int_equal(autosp_default_num_threads(1), 5);
    assert_int_equal(autosp_default_num_threads(1000), 5);
    assert_int_equal(setenv("AUTOSP_NUM_THREADS", "lots", 1), 0);
    autosp_thread_info(1, &ti);
    assert_true(ti.threads >= 1 && ti.threads <= nproc);
    assert_int_equal(ti.from, AUTOSP_THREADS_FROM_CPUS);
    assert_string_equal(ti.env_ignored, "lots");
    assert_int_equal(unsetenv("AUTOSP_NUM_THREADS"), 0);
    autosp_thread_info(1, &ti);
    assert_string_equal(ti.env_ignored, "");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v2_no_quota),          cmocka_unit_test(test_v2_quota_rounds_up),
        cmocka_unit_test(test_v2_quota_on_ancestor), cmocka_unit_test(test_v2_container_mount),
        cmocka_unit_test(test_v1_fallback),          cmocka_unit_test(test_no_mountinfo),
        cmocka_unit_test(test_missing_files),        cmocka_unit_test(test_usable_is_the_smallest),
        cmocka_unit_test(test_divided_by_ranks),     cmocka_unit_test(test_env),
        cmocka_unit_test(test_this_machine),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
