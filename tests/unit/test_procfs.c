#include "core/metrics/procfs.h"

#include "check.h"

#include <math.h>

static int cpu_lines, total_lines;
static unsigned long long cpu1_idle, total_user, old_steal;

static int on_cpu(void *ud, int index, const unsigned long long *ticks) {
  (void)ud;
  if (index < 0) {
    total_lines++;
    total_user = ticks[NL_CPU_USER];
  } else {
    cpu_lines++;
    if (index == 1)
      cpu1_idle = ticks[NL_CPU_IDLE];
    old_steal = ticks[NL_CPU_STEAL];
  }
  return 0;
}

static void test_stat(void) {
  const char *stat = "cpu  17674 0 6302 314516 608 0 376 2077 0 0\n"
                     "cpu0 5615 0 2571 161404 50 0 156 991 0 0\n"
                     "cpu1 12059 0 3730 153112 557 0 220 1086 0 0\n"
                     "intr 1 2 3\nctxt 99\nbtime 1795881826\n";
  CHECK(nl_procfs_stat_cpu(stat, on_cpu, NULL) == 2);
  CHECK(cpu_lines == 2 && total_lines == 1);
  CHECK(total_user == 17674 && cpu1_idle == 153112);
  double btime = 0;
  CHECK(nl_procfs_stat_btime(stat, &btime) == 0 && btime == 1795881826.0);
  CHECK(nl_procfs_stat_btime("btime 5\n", &btime) == 0 && btime == 5.0);
  CHECK(nl_procfs_stat_btime("ctxt 1\n", &btime) == -1);
  /* An old kernel without iowait..steal: those modes read zero. */
  cpu_lines = 0;
  CHECK(nl_procfs_stat_cpu("cpu  1 2 3 4\ncpu0 1 2 3 4\n", on_cpu, NULL) == 1);
  CHECK(old_steal == 0);
  CHECK(nl_procfs_stat_cpu("intr 1\n", on_cpu, NULL) == -1);
}

static void test_meminfo(void) {
  nl_memory_sample m;
  const char *text = "MemTotal:       1000 kB\nMemFree:         100 kB\n"
                     "MemAvailable:    600 kB\nBuffers:          10 kB\n"
                     "Cached:          200 kB\nSwapCached:        7 kB\n"
                     "Active:          300 kB\nInactive:        250 kB\n"
                     "SwapTotal:       512 kB\nSwapFree:        500 kB\n"
                     "SReclaimable:     40 kB\n";
  CHECK(nl_procfs_meminfo(text, &m) == 0);
  CHECK(m.total == 1000 * 1024ULL && m.free == 100 * 1024ULL);
  CHECK(m.available == 600 * 1024ULL);
  CHECK(m.cached == 200 * 1024ULL); /* not SwapCached */
  CHECK(m.used == (1000 - 100 - 10 - 200 - 40) * 1024ULL);
  CHECK(m.swap_used == 12 * 1024ULL);
  CHECK(m.wired == NL_ABSENT && m.compressed == NL_ABSENT);
  CHECK(nl_procfs_meminfo("MemFree: 1 kB\n", &m) == -1);
  /* Without MemAvailable (kernels before 3.14) it is absent, not zero. */
  CHECK(nl_procfs_meminfo("MemTotal: 10 kB\nMemFree: 5 kB\n", &m) == 0);
  CHECK(m.available == NL_ABSENT);
  CHECK(m.used == 5 * 1024ULL);
}

static char mounts_seen[4][64];
static int mount_count;

static int on_mount(void *ud, const nl_mount_entry *e) {
  (void)ud;
  if (mount_count < 4)
    snprintf(mounts_seen[mount_count], sizeof mounts_seen[0], "%s|%s|%s|%s",
             e->device, e->mount, e->fstype, e->options);
  mount_count++;
  return 0;
}

static void test_mounts(void) {
  char text[] = "/dev/sda1 /mnt/with\\040space ext4 rw,relatime 0 0\n"
                "sshfs#u@h: /home/u/back\\134slash fuse.sshfs ro 0 0\n"
                "short line\n"
                "/dev/sdb /data xfs rw 0 0";
  CHECK(nl_procfs_mounts(text, on_mount, NULL) == 0);
  CHECK(mount_count == 3);
  CHECK_STR(mounts_seen[0], "/dev/sda1|/mnt/with space|ext4|rw,relatime");
  CHECK_STR(mounts_seen[1], "sshfs#u@h:|/home/u/back\\slash|fuse.sshfs|ro");
  CHECK_STR(mounts_seen[2], "/dev/sdb|/data|xfs|rw");
}

static nl_diskstat last_disk;
static int disk_count;

static int on_disk(void *ud, const nl_diskstat *d) {
  (void)ud;
  last_disk = *d;
  disk_count++;
  return 0;
}

static void test_diskstats(void) {
  const char *text =
      " 254       0 vda 35740 8346 3598490 19611 7649 9223 636408 5486 0 "
      "11244 27686 5896 38 209544 2124 927 463\n"
      "   7       0 loop0 0 0 0 0\n";
  CHECK(nl_procfs_diskstats(text, on_disk, NULL) == 0);
  CHECK(disk_count == 1); /* the short line is not a reading */
  CHECK_STR(last_disk.name, "vda");
  CHECK(last_disk.reads == 35740 && last_disk.read_sectors == 3598490);
  CHECK(last_disk.writes == 7649 && last_disk.write_sectors == 636408);
  CHECK(last_disk.io_ms == 11244);
}

static double mhz_of[4];

static void on_mhz(void *ud, int processor, double mhz) {
  (void)ud;
  if (processor >= 0 && processor < 4)
    mhz_of[processor] = mhz;
}

static void test_small(void) {
  nl_load_sample l;
  CHECK(nl_procfs_loadavg("0.09 0.23 0.16 1/123 456\n", &l) == 0);
  CHECK(l.load1 == 0.09 && l.load5 == 0.23 && l.load15 == 0.16);
  CHECK(nl_procfs_loadavg("garbage", &l) == -1);
  nl_procfs_cpuinfo_mhz("processor\t: 0\ncpu MHz\t\t: 2445.406\n\n"
                        "processor\t: 1\ncpu MHz\t\t: 1200.5\n",
                        on_mhz, NULL);
  CHECK(fabs(mhz_of[0] - 2445.406) < 1e-9 && fabs(mhz_of[1] - 1200.5) < 1e-9);
}

int main(void) {
  test_stat();
  test_meminfo();
  test_mounts();
  test_diskstats();
  test_small();
  return check_report("test_procfs");
}
