/* Shared by metrics.c and the OS files; not a public header. */
#ifndef NODELUA_METRICS_INTERNAL_H
#define NODELUA_METRICS_INTERNAL_H

#include "metrics.h"

#define NL_GROUP_COUNT 8

struct nl_metrics {
  nl_metrics_snapshot snap;
  /* Previous counters, for rates. */
  nl_cpu_times prev_total;
  nl_cpu_times *prev_cores;
  size_t prev_core_count, prev_core_cap;
  bool cpu_has_prev;
  nl_netif *prev_ifs;
  size_t prev_if_count, prev_if_cap;
  double prev_net_time;
  nl_disk *prev_disks;
  size_t prev_disk_count, prev_disk_cap;
  double prev_disk_time;
  char **excluded_fstypes;
  size_t excluded_count;
  nl_metrics_os *os;
};

/* Makes room for `need` elements of `size` bytes in *array. Grows (and so
 * allocates) only when the machine has more of something than before. */
int nl_metrics_reserve(void **array, size_t *cap, size_t need, size_t size);

double nl_metrics_monotonic(void);

/* Copies n bytes (or all of src) into dst of cap bytes, cut to fit, always
 * terminated. */
void nl_metrics_copy_n(char *dst, size_t cap, const char *src, size_t n);
void nl_metrics_copy(char *dst, size_t cap, const char *src);

/* Fills fs from statvfs(2) of mount: sizes, inodes, read-only. Returns
 * false when it cannot be read or has no blocks (then it is left out). */
bool nl_metrics_statvfs(nl_filesystem *fs, const char *device,
                        const char *mount, const char *fstype);

/* The OS file's half. nl_metrics_os_sample returns 0, -ENOTSUP when the OS
 * cannot give the group (it is then absent), or -ENOMEM. */
int nl_metrics_os_open(nl_metrics *m);
void nl_metrics_os_close(nl_metrics *m);
int nl_metrics_os_sample(nl_metrics *m, unsigned group);

#ifdef __linux__
/* Where sysfs is (for the class/ trees: net, thermal, hwmon): "/sys", or a
 * fixture tree in tests. Finds the sensors again. */
int nl_metrics_linux_set_sysfs(nl_metrics *m, const char *root);
nl_link_kind nl_metrics_linux_link_kind(const char *sysfs, const char *name,
                                        unsigned type);
#endif

#endif
