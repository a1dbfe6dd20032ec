/* libFuzzer target for the /proc parsers (procfs.c, procfs_node.c) and the
 * textfile checker: any bytes give values or nothing, never a crash, an
 * overrun or undefined behaviour. Mount points are chosen by any user with
 * a FUSE mount, interface names by whoever creates one, and *.prom files
 * by the operator's jobs, so these are bytes from outside. */
#include "core/metrics/metrics.h"
#include "core/metrics/procfs.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int on_cpu(void *ud, int index, const unsigned long long *ticks) {
  (void)ud;
  (void)ticks;
  if (index < -1)
    abort();
  return 0;
}

static void on_mhz(void *ud, int processor, double mhz) {
  (void)ud;
  (void)mhz;
  if (processor < 0)
    abort();
}

static int on_mount(void *ud, const nl_mount_entry *e) {
  size_t limit = *(size_t *)ud;
  /* Decoding only shortens: every field fits in the input. */
  if (strlen(e->device) > limit || strlen(e->mount) > limit ||
      strlen(e->fstype) > limit || strlen(e->options) > limit)
    abort();
  return 0;
}

static int on_disk(void *ud, const nl_diskstat *d) {
  (void)ud;
  if (strlen(d->name) >= sizeof d->name)
    abort();
  return 0;
}

static void on_kv(void *ud, const char *name, double value, bool kb) {
  (void)ud;
  (void)value;
  (void)kb;
  if (strlen(name) >= 64)
    abort();
}

static void on_pair(void *ud, const char *group, const char *field,
                    double value) {
  (void)ud;
  (void)value;
  if (strlen(group) >= 64 || strlen(field) >= 64)
    abort();
}

static int on_netdev(void *ud, const char *name, const unsigned long long *v) {
  (void)ud;
  (void)v;
  if (strlen(name) >= 32)
    abort();
  return 0;
}

static int on_softnet(void *ud, int cpu, const unsigned long long *v) {
  (void)ud;
  (void)v;
  if (cpu < 0)
    abort();
  return 0;
}

static int on_name(void *ud, const char *name) {
  (void)ud;
  if (strlen(name) >= 64)
    abort();
  return 0;
}

static int on_schedstat(void *ud, int cpu, double running, double waiting,
                        double slices) {
  (void)ud;
  (void)running;
  (void)waiting;
  (void)slices;
  if (cpu < 0)
    abort();
  return 0;
}

static void node_parsers(const char *text, size_t size) {
  double a, b;
  char state;
  long threads;
  nl_procfs_keyvalues(text, on_kv, NULL);
  nl_procfs_header_pairs(text, on_pair, NULL);
  nl_procfs_sockstat(text, on_pair, NULL);
  nl_procfs_netdev(text, on_netdev, NULL);
  nl_procfs_pressure(text, &a, &b);
  nl_procfs_softnet(text, on_softnet, NULL);
  nl_procfs_arp(text, on_name, NULL);
  nl_procfs_udp_queues(text, &a, &b);
  nl_procfs_schedstat(text, on_schedstat, NULL);
  nl_procfs_pid_stat(text, &state, &threads);
  /* The checker takes the raw bytes, NULs included. */
  int line = nl_textfile_check(text, size);
  if (line < 0)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (text == NULL)
    return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  double btime;
  nl_memory_sample mem;
  nl_load_sample load;
  nl_procfs_stat_cpu(text, on_cpu, NULL);
  nl_procfs_stat_btime(text, &btime);
  if (nl_procfs_meminfo(text, &mem) == 0 && mem.used != NL_ABSENT &&
      mem.used > mem.total)
    abort();
  nl_procfs_loadavg(text, &load);
  nl_procfs_cpuinfo_mhz(text, on_mhz, NULL);
  nl_procfs_diskstats(text, on_disk, NULL);
  node_parsers(text, size);
  nl_procfs_mounts(text, on_mount, &size); /* last: it splits text */
  free(text);
  return 0;
}
