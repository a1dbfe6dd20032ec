/* Metrics: one sampling core with one interface and a file per OS
 * (metrics_linux.c, metrics_darwin.c). Every figure is read from the OS in
 * the unit documented in docs/metrics.md, or it is absent: NL_ABSENT for
 * integers, NAN for reals, a group missing from `present`. Nothing runs in a
 * subprocess, and once the arrays have grown to the machine's size a sample
 * allocates nothing. */
#ifndef NODELUA_METRICS_H
#define NODELUA_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NL_ABSENT UINT64_MAX

typedef enum {
  NL_METRICS_CPU = 1u << 0,
  NL_METRICS_LOAD = 1u << 1,
  NL_METRICS_MEMORY = 1u << 2,
  NL_METRICS_NETWORK = 1u << 3,
  NL_METRICS_STORAGE = 1u << 4, /* filesystems and disk I/O */
  NL_METRICS_SYSTEM = 1u << 5,
  NL_METRICS_THERMAL = 1u << 6,
  NL_METRICS_SELF = 1u << 7,
  NL_METRICS_ALL = (1u << 8) - 1
} nl_metrics_group;

/* Returns the group of a name ("cpu", ...) or 0. */
unsigned nl_metrics_group_parse(const char *name);
const char *nl_metrics_group_name(unsigned group);

typedef enum {
  NL_CPU_USER,
  NL_CPU_NICE,
  NL_CPU_SYSTEM,
  NL_CPU_IDLE,
  NL_CPU_IOWAIT,
  NL_CPU_IRQ,
  NL_CPU_SOFTIRQ,
  NL_CPU_STEAL,
  NL_CPU_MODE_COUNT
} nl_cpu_mode;

extern const char *const nl_cpu_mode_names[NL_CPU_MODE_COUNT];

typedef struct {
  int index;                         /* -1 for the total */
  double seconds[NL_CPU_MODE_COUNT]; /* cumulative, since boot */
  double percent[NL_CPU_MODE_COUNT]; /* over the last interval */
  double usage_percent;              /* 100 - idle - iowait */
  double mhz;                        /* current clock, or NAN */
} nl_cpu_times;

typedef struct {
  char vendor[64];
  char brand[128];
  int physical_cores; /* 0 when unknown */
  int logical_cores;
  double base_mhz, max_mhz; /* NAN when the OS does not tell */
  unsigned modes;           /* bit (1 << mode) for each mode the OS has */
  bool has_rate;            /* percent[] valid: a previous sample exists */
  nl_cpu_times total;
  nl_cpu_times *cores;
  size_t core_count, core_cap;
} nl_cpu_sample;

typedef struct {
  double load1, load5, load15;
} nl_load_sample;

/* Bytes; NL_ABSENT where the OS has no such figure. */
typedef struct {
  uint64_t total, available, used, free, active, inactive;
  uint64_t buffers, cached, slab_reclaimable; /* Linux */
  uint64_t wired, compressed;                 /* macOS */
  uint64_t swap_total, swap_used, swap_free;
} nl_memory_sample;

typedef enum {
  NL_LINK_LOOPBACK,
  NL_LINK_ETHERNET,
  NL_LINK_WIFI,
  NL_LINK_THUNDERBOLT,
  NL_LINK_BRIDGE,
  NL_LINK_VIRTUAL,
  NL_LINK_OTHER
} nl_link_kind;

const char *nl_link_kind_name(nl_link_kind kind);

typedef enum {
  NL_NET_RX_BYTES,
  NL_NET_TX_BYTES,
  NL_NET_RX_PACKETS,
  NL_NET_TX_PACKETS,
  NL_NET_RX_ERRORS,
  NL_NET_TX_ERRORS,
  NL_NET_RX_DROPS,
  NL_NET_TX_DROPS,
  NL_NET_COUNTER_COUNT
} nl_net_counter;

extern const char *const nl_net_counter_names[NL_NET_COUNTER_COUNT];

#define NL_ADDRS_MAX 8

typedef struct {
  char name[32];
  int ifindex; /* the OS's interface index; 0 when unknown */
  nl_link_kind kind;
  char mac[18]; /* "" when the interface has none */
  char ipv4[NL_ADDRS_MAX][16];
  char ipv6[NL_ADDRS_MAX][46];
  int ipv4_count, ipv6_count;
  /* Each address's prefix length (its subnet), index for index. */
  uint8_t ipv4_prefix[NL_ADDRS_MAX], ipv6_prefix[NL_ADDRS_MAX];
  int64_t speed_mbps; /* -1 when unknown */
  bool up;
  int mtu;
  uint64_t counters[NL_NET_COUNTER_COUNT];
  double rates[NL_NET_COUNTER_COUNT]; /* per second; NAN: no rate */
  /* Linux: the 16 columns of /proc/net/dev as the kernel sums them, then
   * receive_nohandler (node_network_*_total); zero elsewhere. */
  uint64_t netdev[17];
  /* Linux, from the same netlink message, for node_exporter's netclass
   * families: what sysfs would show, without opening 20 files. */
  struct {
    char address[64], broadcast[64]; /* hex bytes with colons, as sysfs */
    char ifalias[128];
    unsigned flags; /* the netlink flags (IFF_UP, ...) */
    int type, iflink, operstate, link_mode, group, txqlen;
    int carrier;                                       /* -1: absent */
    int64_t carrier_changes, carrier_up, carrier_down; /* -1: absent */
    int64_t speed_raw; /* sysfs speed; INT64_MIN: none */
  } link;
} nl_netif;

typedef struct {
  nl_netif *ifs;
  size_t count, cap;
} nl_network_sample;

typedef struct {
  char device[128];
  char mount[256];
  char fstype[32];
  uint64_t size, used, available, free, inodes_total, inodes_free;
  bool readonly;
  /* statvfs failed: only the labels are valid (node_filesystem_device_error).
   * These, and filesystems of size 0, are left out of the Lua tables. */
  bool device_error;
} nl_filesystem;

typedef enum {
  NL_DISK_READ_BYTES,
  NL_DISK_WRITE_BYTES,
  NL_DISK_READS,
  NL_DISK_WRITES,
  NL_DISK_BUSY_MS,
  NL_DISK_COUNTER_COUNT
} nl_disk_counter;

extern const char *const nl_disk_counter_names[NL_DISK_COUNTER_COUNT];

typedef struct {
  char name[32];
  uint64_t counters[NL_DISK_COUNTER_COUNT];
  double rates[NL_DISK_COUNTER_COUNT];
} nl_disk;

typedef struct {
  nl_filesystem *fs;
  size_t fs_count, fs_cap;
  nl_disk *disks;
  size_t disk_count, disk_cap;
} nl_storage_sample;

typedef struct {
  char hostname[256];
  char os_name[64];
  char os_version[64];
  char sysname[32]; /* uname: "Linux", "Darwin" */
  char kernel[128]; /* uname release */
  char kernel_version[256];
  char arch[32];
  char domainname[65]; /* uname: the NIS domain, "(none)" when unset */
  /* os-release fields (node_os_info's labels); "" when absent. */
  char os_id[32], os_id_like[64], os_pretty_name[128], os_version_full[64];
  char os_codename[32], os_build_id[64], os_variant[64], os_variant_id[32];
  char os_image_id[64], os_image_version[32];
  char model[128]; /* "" when unknown */
  bool apple_silicon;
  double boot_time; /* Unix seconds */
  double uptime;    /* seconds */
} nl_system_sample;

typedef struct {
  char name[96];   /* "x86_pkg_temp" (zone type), "coretemp/Core 0" */
  char source[16]; /* "thermal_zone", "hwmon", "smc" */
  char chip[32];   /* hwmon chip or zone id, for labels */
  double celsius;
} nl_sensor;

typedef struct {
  nl_sensor *sensors;
  size_t count, cap;
} nl_thermal_sample;

typedef struct {
  uint64_t rss_bytes;
  double cpu_seconds;
  double start_time; /* Unix seconds */
} nl_self_sample;

typedef struct nl_metrics_os nl_metrics_os; /* the OS file's private state */

typedef struct {
  unsigned present;     /* groups in this snapshot */
  double sampled_at[8]; /* monotonic seconds of each group's last sample */
  nl_cpu_sample cpu;
  nl_load_sample load;
  nl_memory_sample memory;
  nl_network_sample network;
  nl_storage_sample storage;
  nl_system_sample system;
  nl_thermal_sample thermal;
  nl_self_sample self;
} nl_metrics_snapshot;

typedef struct nl_metrics nl_metrics;

/* Returns NULL on allocation failure. */
nl_metrics *nl_metrics_open(void);
void nl_metrics_close(nl_metrics *m);

/* Samples the groups asked for; the others keep their last values. A group
 * the OS cannot give is left out of snapshot->present. Returns 0 or -ENOMEM;
 * an unreadable source only leaves its group absent. */
int nl_metrics_sample(nl_metrics *m, unsigned groups);
const nl_metrics_snapshot *nl_metrics_get(const nl_metrics *m);

/* Where the machine's files are, for an agent in a container that has the
 * host's mounted elsewhere (HOST_PROC, HOST_SYS, HOST_ROOT, HOST_RUN, with
 * node_exporter's --path.* meanings): proc and sys replace /proc and /sys
 * in every machine figure (the agent's own process_* figures stay on
 * /proc/self); mounts are read from proc/1/mounts, reported as the host
 * sees them and measured under root; os-release is read under root; udev's
 * data under run. NULL or "" leaves the default ("/proc", "/sys", "/",
 * "/run"). Returns 0, -EINVAL for a relative path, -ENAMETOOLONG. Linux
 * only: elsewhere the paths are kept and unused. */
typedef struct {
  const char *proc, *sys, *root, *run;
} nl_host_paths;
int nl_metrics_set_host_paths(nl_metrics *m, const nl_host_paths *paths);

/* Collectors that node_exporter leaves off by default, for their cost:
 * processes reads every /proc/PID/stat, tcpstat has the kernel walk every
 * TCP socket hash bucket (milliseconds on a machine with much memory). */
enum { NL_COLLECT_PROCESSES = 1u << 0, NL_COLLECT_TCPSTAT = 1u << 1 };
void nl_metrics_enable_collectors(nl_metrics *m, unsigned collectors);

/* node_exporter's textfile collector: the *.prom files of dir are added to
 * every scrape (textfile.c says which files are served). "" turns it off.
 * Returns 0, -EINVAL for a relative path, -ENAMETOOLONG. */
int nl_metrics_set_textfile_dir(nl_metrics *m, const char *dir);
/* 0 when text is valid Prometheus exposition text without timestamps,
 * else the number of the first bad line. */
int nl_textfile_check(const char *text, size_t len);

/* Filesystem types left out of storage: a copy of the list is kept. */
int nl_metrics_set_excluded_fstypes(nl_metrics *m, const char *const *types,
                                    size_t count);
size_t nl_metrics_excluded_fstypes(const nl_metrics *m,
                                   const char *const **types);
bool nl_metrics_fstype_excluded(const nl_metrics *m, const char *fstype);

/* A growable text buffer, reused between calls. */
typedef struct {
  char *data;
  size_t len, cap;
  bool failed; /* an allocation failed: the text is incomplete */
} nl_buf;

void nl_buf_reset(nl_buf *b);
void nl_buf_free(nl_buf *b);
void nl_buf_append(nl_buf *b, const char *s, size_t n);
void nl_buf_printf(nl_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The Prometheus text exposition of the snapshot, with node_exporter's
 * names where it has the same measure (prom.c). skip is a set of
 * NL_PROM_SKIP_* bits: families that an OS exporter writes itself, in
 * full. Returns 0 or -ENOMEM. */
enum {
  NL_PROM_SKIP_MEMORY = 1u << 0,  /* node_memory_*, nodelua_memory_used */
  NL_PROM_SKIP_NETWORK = 1u << 1, /* node_network_* */
  NL_PROM_SKIP_DISKS = 1u << 2,   /* node_disk_* */
  NL_PROM_SKIP_HWMON = 1u << 3,   /* node_hwmon_* */
};
int nl_metrics_format_prom(const nl_metrics_snapshot *s, unsigned skip,
                           nl_buf *out);

/* What /metrics serves: every group sampled now (so that a counter is as
 * old as the scrape, as node_exporter's are), the snapshot's families, the
 * OS's node_exporter collectors (export_linux*.c), and each collector's
 * node_scrape_collector_duration_seconds and _success. Use a collector of
 * its own: sampling moves the "previous" values that rates are computed
 * from. Returns 0 or -ENOMEM. */
int nl_metrics_scrape(nl_metrics *m, nl_buf *out);

#endif
