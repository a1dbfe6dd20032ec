/* libFuzzer target for the /proc parsers: any bytes give values or nothing,
 * never a crash, an overrun or undefined behaviour. Mount points are chosen
 * by any user with a FUSE mount, so these are bytes from outside. */
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
  nl_procfs_mounts(text, on_mount, &size); /* last: it splits text */
  free(text);
  return 0;
}
