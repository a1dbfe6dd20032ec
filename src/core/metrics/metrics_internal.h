/* Shared by metrics.c and the OS files; not a public header. */
#ifndef NODELUA_METRICS_INTERNAL_H
#define NODELUA_METRICS_INTERNAL_H

#include "metrics.h"

#define NL_GROUP_COUNT 8
#define NL_SCRAPE_LOG_MAX 48
#define NL_HOST_PATH_MAX 256
#define NL_TEXTFILE_FILES_MAX 64

/* One collector's run in a scrape, for node_scrape_collector_*. */
typedef struct {
  const char *name; /* a string literal */
  double seconds;
  bool ok;
} nl_scrape_entry;

struct nl_metrics {
  char host_proc[NL_HOST_PATH_MAX], host_sys[NL_HOST_PATH_MAX];
  char host_root[NL_HOST_PATH_MAX], host_run[NL_HOST_PATH_MAX];
  nl_scrape_entry scrape_log[NL_SCRAPE_LOG_MAX];
  size_t scrape_count;
  unsigned extra_collectors; /* NL_COLLECT_* */
  /* Within nl_metrics_scrape: the OS file may skip what /metrics does not
   * show (per-core clocks, addresses, the snapshot's disk list). */
  bool scraping;
  char textfile_dir[NL_HOST_PATH_MAX]; /* "" when off */
  char textfile_names[NL_TEXTFILE_FILES_MAX][64];
  double textfile_mtimes[NL_TEXTFILE_FILES_MAX];
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

/* Fills fs from statvfs(2) of path (the mount point, under HOST_ROOT on
 * Linux), labelled with mount: sizes, inodes, read-only. When statvfs
 * fails, fs has its labels and device_error set, and false is returned. */
bool nl_metrics_statvfs(nl_filesystem *fs, const char *device,
                        const char *mount, const char *path,
                        const char *fstype);

/* Appends the textfile directory's files and node_textfile_* (textfile.c). */
void nl_textfile_collect(nl_metrics *m, nl_buf *out);

/* Records a collector's run for node_scrape_collector_* (scrape only). */
void nl_metrics_scrape_log(nl_metrics *m, const char *name, double started,
                           bool ok);

/* The OS file's half. nl_metrics_os_sample returns 0, -ENOTSUP when the OS
 * cannot give the group (it is then absent), or -ENOMEM.
 * nl_metrics_os_paths_changed reads again what depends on the host paths
 * (facts, sensors). nl_metrics_os_export appends the OS's own collectors to
 * a scrape and returns 0 or -ENOMEM; nl_metrics_os_prom_skip says which of
 * prom.c's families they replace. */
int nl_metrics_os_open(nl_metrics *m);
void nl_metrics_os_close(nl_metrics *m);
int nl_metrics_os_sample(nl_metrics *m, unsigned group);
void nl_metrics_os_paths_changed(nl_metrics *m);
int nl_metrics_os_export(nl_metrics *m, nl_buf *out);
extern const unsigned nl_metrics_os_prom_skip;

/* The fstypes and mount points that node_exporter leaves out by default on
 * this OS. */
extern const char *const nl_metrics_os_default_excluded[];
extern const size_t nl_metrics_os_default_excluded_count;
bool nl_metrics_os_mount_excluded(const char *mount);

#ifdef __linux__
nl_link_kind nl_metrics_linux_link_kind(const char *sysfs, const char *name,
                                        unsigned type);
#endif

#endif
