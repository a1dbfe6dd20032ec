/* Linux only, shared by metrics_linux.c (the snapshot's groups) and the
 * export_linux*.c files (the node_exporter collectors a scrape adds): the
 * OS state, file reading into one reused buffer, and paths under the host
 * trees (HOST_PROC, HOST_SYS, HOST_ROOT, HOST_RUN). Not a public header. */
#ifndef NODELUA_METRICS_LINUX_H
#define NODELUA_METRICS_LINUX_H

#include "metrics_internal.h"

#include <stdarg.h>
#include <sys/types.h>

#define NL_SENSORS_MAX 64
#define NL_NETLINK_BUF 32768
#define NL_PATH_MAX 512

typedef struct {
  char path[128 + NL_HOST_PATH_MAX];
  char name[96];
  char source[16];
  char chip[32];
} nl_sensor_spec;

typedef struct {
  int ifindex;
  char name[32];
  nl_link_kind kind;
} nl_kind_entry;

/* A name found in a directory (net devices, hwmon chips, CPUs). */
typedef struct {
  char name[64];
} nl_dir_name;

/* One hwmon reading, held until the scrape writes them family by family. */
typedef struct {
  char family[80];
  char help[96];
  char chip[64];
  char sensor[32];
  char label[64]; /* node_hwmon_sensor_label and chip_names: the text */
  double value;
} nl_hwmon_reading;

/* One row of a per-device or per-CPU table that is written one family at a
 * time (net/dev, diskstats, softnet, schedstat, cpufreq). */
typedef struct {
  char name[32];
  unsigned major, minor;
  int field_count;
  double v[17];
} nl_row;

typedef enum { NL_HOST_PROC, NL_HOST_SYS, NL_HOST_ROOT, NL_HOST_RUN } nl_host;

struct nl_metrics_os {
  char *buf; /* the contents of the last file read */
  size_t cap;
  char path[NL_PATH_MAX]; /* the last path made by nl_linux_path */
  double ticks_per_second;
  long page_size;
  int netlink;
  unsigned netlink_seq;
  char netlink_buf[NL_NETLINK_BUF];
  nl_sensor_spec sensors[NL_SENSORS_MAX];
  size_t sensor_count;
  bool have_cpufreq;
  /* CLOCK_MONOTONIC seconds of the last read of /proc/cpuinfo's clocks. */
  double cpuinfo_mhz_at;
  size_t cpuinfo_mhz_cores; /* how many cores that read found */
  bool failed;              /* an allocation failed inside a netlink callback */
  double self_start_time;
  double stat_btime; /* btime of the last /proc/stat read for the cpu group */
  nl_kind_entry *kinds;
  size_t kind_count, kind_cap;
  /* The scrape's working arrays: they grow to the machine once. */
  nl_dir_name *names;
  size_t name_count, name_cap;
  nl_row *rows;
  size_t row_count, row_cap;
  nl_hwmon_reading *hwmon;
  size_t hwmon_count, hwmon_cap;
  char netstat_buf[4096]; /* scratch for netstat's filtered names */
};

/* Reads a whole file into os->buf, NUL-terminated; the buffer grows only
 * when a file is larger than any before. Returns the length or -errno. */
ssize_t nl_linux_slurp(nl_metrics_os *os, const char *path);
/* Reads a small file (a sysfs attribute) into buf without the trailing
 * newline. Returns the length or -errno. */
ssize_t nl_linux_read_small(const char *path, char *buf, size_t cap);
/* As nl_linux_read_small, but never kept open (a /proc/PID file: PIDs come
 * and go); the text is as read, newline included. */
ssize_t nl_linux_read_once(const char *path, char *buf, size_t cap);
int nl_linux_read_int64(const char *path, long long *out);
int nl_linux_read_double(const char *path, double *out);
/* base (one of the host trees) joined with the formatted rest, in
 * m->os->path; valid until the next call. */
const char *nl_linux_path(nl_metrics *m, nl_host base, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The entries of a directory, "." and ".." left out, into os->names (up to
 * limit), sorted by name if asked. Uses getdents64 on a stack buffer: no
 * DIR to allocate. Returns the count or -errno. */
int nl_linux_list_dir(nl_metrics_os *os, const char *path, size_t limit,
                      bool sorted);
/* Sorts in place without allocating (glibc's qsort may malloc); elements
 * of up to NL_SORT_ELEMENT_MAX bytes. */
#define NL_SORT_ELEMENT_MAX 512
void nl_linux_sort(void *base, size_t n, size_t size,
                   int (*cmp)(const void *, const void *));

/* Reads HOST_PROC/rel into os->buf; false when it cannot be read. */
bool nl_linux_read_proc(nl_metrics *m, const char *rel);

/* What a parser's callback needs to fill os->rows: the collector, and the
 * rows filled so far. */
typedef struct {
  nl_metrics *m;
  size_t count;
} nl_row_fill;

/* The next row of os->rows (growing it once to the machine), zeroed and
 * named; *count is the number of rows in use. NULL when out of memory.
 * A cpu index is named with nl_linux_add_cpu_row. */
nl_row *nl_linux_add_row(nl_metrics_os *os, size_t *count, const char *name);
nl_row *nl_linux_add_cpu_row(nl_metrics_os *os, size_t *count, int cpu);

/* Sends a netlink dump request on fd (its flags and sequence are set
 * here) and hands every reply of that sequence to cb, reading into
 * os->netlink_buf. Returns 0, or -1 when the kernel refused or could not
 * be asked. */
struct nlmsghdr;
typedef void (*nl_netlink_cb)(void *ud, struct nlmsghdr *h);
int nl_linux_netlink_dump(nl_metrics_os *os, int fd, struct nlmsghdr *req,
                          nl_netlink_cb cb, void *ud);

/* node_exporter's default device exclusion for diskstats: RAM and loop
 * devices, and partitions. */
bool nl_diskstats_device_excluded(const char *name);

/* The collectors a scrape adds (export_linux*.c). Each writes whole
 * families to out and returns true when its source could be read. */
bool nl_export_stat(nl_metrics *m, nl_buf *out);
bool nl_export_meminfo(nl_metrics *m, nl_buf *out);
bool nl_export_vmstat(nl_metrics *m, nl_buf *out);
bool nl_export_filefd(nl_metrics *m, nl_buf *out);
bool nl_export_entropy(nl_metrics *m, nl_buf *out);
bool nl_export_pressure(nl_metrics *m, nl_buf *out);
bool nl_export_schedstat(nl_metrics *m, nl_buf *out);
bool nl_export_conntrack(nl_metrics *m, nl_buf *out);
bool nl_export_processes(nl_metrics *m, nl_buf *out);
bool nl_export_time(nl_metrics *m, nl_buf *out);
bool nl_export_timex(nl_metrics *m, nl_buf *out);
bool nl_export_cpufreq(nl_metrics *m, nl_buf *out);
bool nl_export_hwmon(nl_metrics *m, nl_buf *out);
bool nl_export_netdev(nl_metrics *m, nl_buf *out);
bool nl_export_netclass(nl_metrics *m, nl_buf *out);
bool nl_export_netstat(nl_metrics *m, nl_buf *out);
bool nl_export_sockstat(nl_metrics *m, nl_buf *out);
bool nl_export_softnet(nl_metrics *m, nl_buf *out);
bool nl_export_arp(nl_metrics *m, nl_buf *out);
bool nl_export_udp_queues(nl_metrics *m, nl_buf *out);
bool nl_export_tcpstat(nl_metrics *m, nl_buf *out);
bool nl_export_diskstats(nl_metrics *m, nl_buf *out);
bool nl_export_self(nl_metrics *m, nl_buf *out);

#endif
