#include "metrics_internal.h"
#include "promtext.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

const char *const nl_cpu_mode_names[NL_CPU_MODE_COUNT] = {
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"};

const char *const nl_net_counter_names[NL_NET_COUNTER_COUNT] = {
    "rx_bytes",  "tx_bytes",  "rx_packets", "tx_packets",
    "rx_errors", "tx_errors", "rx_drops",   "tx_drops"};

const char *const nl_disk_counter_names[NL_DISK_COUNTER_COUNT] = {
    "read_bytes", "write_bytes", "reads", "writes", "busy_ms"};

static const char *const group_names[NL_GROUP_COUNT] = {
    "cpu", "load", "memory", "network", "storage", "system", "thermal", "self"};

unsigned nl_metrics_group_parse(const char *name) {
  for (unsigned i = 0; i < NL_GROUP_COUNT; i++) {
    if (strcmp(name, group_names[i]) == 0)
      return 1u << i;
  }
  return 0;
}

const char *nl_metrics_group_name(unsigned group) {
  for (unsigned i = 0; i < NL_GROUP_COUNT; i++) {
    if (group == 1u << i)
      return group_names[i];
  }
  return NULL;
}

const char *nl_link_kind_name(nl_link_kind kind) {
  static const char *const names[] = {"loopback",    "ethernet", "wifi",
                                      "thunderbolt", "bridge",   "virtual",
                                      "other"};
  if ((unsigned)kind > NL_LINK_OTHER)
    return "other";
  return names[kind];
}

double nl_metrics_monotonic(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void nl_metrics_copy_n(char *dst, size_t cap, const char *src, size_t n) {
  if (n >= cap)
    n = cap - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
}

void nl_metrics_copy(char *dst, size_t cap, const char *src) {
  nl_metrics_copy_n(dst, cap, src, strlen(src));
}

bool nl_metrics_statvfs(nl_filesystem *fs, const char *device,
                        const char *mount, const char *path,
                        const char *fstype) {
  memset(fs, 0, sizeof *fs);
  nl_metrics_copy(fs->device, sizeof fs->device, device);
  nl_metrics_copy(fs->mount, sizeof fs->mount, mount);
  nl_metrics_copy(fs->fstype, sizeof fs->fstype, fstype);
  struct statvfs sv;
  if (statvfs(path, &sv) != 0) {
    fs->device_error = true;
    return false;
  }
  uint64_t frsize = sv.f_frsize ? sv.f_frsize : sv.f_bsize;
  fs->size = (uint64_t)sv.f_blocks * frsize;
  fs->free = (uint64_t)sv.f_bfree * frsize;
  fs->available = (uint64_t)sv.f_bavail * frsize;
  fs->used = fs->size - fs->free;
  fs->inodes_total = sv.f_files;
  fs->inodes_free = sv.f_ffree;
  fs->readonly = (sv.f_flag & ST_RDONLY) != 0;
  return true;
}

int nl_metrics_reserve(void **array, size_t *cap, size_t need, size_t size) {
  if (need <= *cap)
    return 0;
  size_t next = *cap ? *cap : 8;
  while (next < need)
    next *= 2;
  void *grown = realloc(*array, next * size);
  if (grown == NULL)
    return -ENOMEM;
  memset((char *)grown + *cap * size, 0, (next - *cap) * size);
  *array = grown;
  *cap = next;
  return 0;
}

int nl_metrics_set_excluded_fstypes(nl_metrics *m, const char *const *types,
                                    size_t count) {
  char **copy = calloc(count ? count : 1, sizeof *copy);
  if (copy == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < count; i++) {
    copy[i] = strdup(types[i]);
    if (copy[i] == NULL) {
      while (i-- > 0)
        free(copy[i]);
      free(copy);
      return -ENOMEM;
    }
  }
  for (size_t i = 0; i < m->excluded_count; i++)
    free(m->excluded_fstypes[i]);
  free(m->excluded_fstypes);
  m->excluded_fstypes = copy;
  m->excluded_count = count;
  return 0;
}

size_t nl_metrics_excluded_fstypes(const nl_metrics *m,
                                   const char *const **types) {
  *types = (const char *const *)m->excluded_fstypes;
  return m->excluded_count;
}

bool nl_metrics_fstype_excluded(const nl_metrics *m, const char *fstype) {
  for (size_t i = 0; i < m->excluded_count; i++) {
    if (strcmp(m->excluded_fstypes[i], fstype) == 0)
      return true;
  }
  return false;
}

nl_metrics *nl_metrics_open(void) {
  nl_metrics *m = calloc(1, sizeof *m);
  if (m == NULL)
    return NULL;
  nl_metrics_copy(m->host_proc, sizeof m->host_proc, "/proc");
  nl_metrics_copy(m->host_sys, sizeof m->host_sys, "/sys");
  nl_metrics_copy(m->host_root, sizeof m->host_root, "/");
  nl_metrics_copy(m->host_run, sizeof m->host_run, "/run");
  if (nl_metrics_set_excluded_fstypes(m, nl_metrics_os_default_excluded,
                                      nl_metrics_os_default_excluded_count) !=
          0 ||
      nl_metrics_os_open(m) != 0) {
    nl_metrics_close(m);
    return NULL;
  }
  return m;
}

void nl_metrics_close(nl_metrics *m) {
  if (m == NULL)
    return;
  nl_metrics_os_close(m);
  free(m->snap.cpu.cores);
  free(m->snap.network.ifs);
  free(m->snap.storage.fs);
  free(m->snap.storage.disks);
  free(m->snap.thermal.sensors);
  free(m->prev_cores);
  free(m->prev_ifs);
  free(m->prev_disks);
  for (size_t i = 0; i < m->excluded_count; i++)
    free(m->excluded_fstypes[i]);
  free(m->excluded_fstypes);
  free(m);
}

/* A path for the host's tree: absolute, and without a trailing slash
 * (except "/" itself), so that joining it to "/stat" gives one slash. */
static int set_path(char *dst, const char *src, const char *fallback) {
  if (src == NULL || src[0] == '\0')
    src = fallback;
  if (src[0] != '/')
    return -EINVAL;
  size_t n = strlen(src);
  while (n > 1 && src[n - 1] == '/')
    n--;
  if (n >= NL_HOST_PATH_MAX)
    return -ENAMETOOLONG;
  nl_metrics_copy_n(dst, NL_HOST_PATH_MAX, src, n);
  return 0;
}

int nl_metrics_set_host_paths(nl_metrics *m, const nl_host_paths *paths) {
  char proc[NL_HOST_PATH_MAX], sys[NL_HOST_PATH_MAX];
  char root[NL_HOST_PATH_MAX], run[NL_HOST_PATH_MAX];
  int rc;
  /* All are checked before any is changed. */
  if ((rc = set_path(proc, paths->proc, "/proc")) != 0 ||
      (rc = set_path(sys, paths->sys, "/sys")) != 0 ||
      (rc = set_path(root, paths->root, "/")) != 0 ||
      (rc = set_path(run, paths->run, "/run")) != 0)
    return rc;
  memcpy(m->host_proc, proc, sizeof proc);
  memcpy(m->host_sys, sys, sizeof sys);
  memcpy(m->host_root, root, sizeof root);
  memcpy(m->host_run, run, sizeof run);
  nl_metrics_os_paths_changed(m);
  return 0;
}

void nl_metrics_enable_collectors(nl_metrics *m, unsigned collectors) {
  m->extra_collectors = collectors;
}

void nl_metrics_scrape_log(nl_metrics *m, const char *name, double started,
                           bool ok) {
  /* Two runs under one name (the snapshot's memory group and the meminfo
   * collector) are one collector's. */
  for (size_t i = 0; i < m->scrape_count; i++) {
    if (strcmp(m->scrape_log[i].name, name) == 0) {
      m->scrape_log[i].seconds += nl_metrics_monotonic() - started;
      m->scrape_log[i].ok = m->scrape_log[i].ok && ok;
      return;
    }
  }
  if (m->scrape_count >= NL_SCRAPE_LOG_MAX)
    return;
  nl_scrape_entry *e = &m->scrape_log[m->scrape_count++];
  e->name = name;
  e->seconds = nl_metrics_monotonic() - started;
  e->ok = ok;
}

/* node_exporter's collector names for the snapshot's groups. */
static const char *const group_collectors[NL_GROUP_COUNT] = {
    "cpu",        "loadavg", "meminfo",      "netlink",
    "filesystem", "uname",   "thermal_zone", "process"};

int nl_metrics_scrape(nl_metrics *m, nl_buf *out) {
  m->scrape_count = 0;
  m->scraping = true;
  for (unsigned i = 0; i < NL_GROUP_COUNT; i++) {
    double started = nl_metrics_monotonic();
    if (nl_metrics_sample(m, 1u << i) != 0) {
      m->scraping = false;
      return -ENOMEM;
    }
    nl_metrics_scrape_log(m, group_collectors[i], started,
                          (m->snap.present & (1u << i)) != 0);
  }
  m->scraping = false;
  if (nl_metrics_format_prom(&m->snap, nl_metrics_os_prom_skip, out) != 0 ||
      nl_metrics_os_export(m, out) != 0)
    return -ENOMEM;
  nl_textfile_collect(m, out);
  nl_prom_family(out, "node_scrape_collector_duration_seconds", "gauge",
                 "node_exporter: Duration of a collector scrape.");
  for (size_t i = 0; i < m->scrape_count; i++) {
    const char *labels[] = {"collector", m->scrape_log[i].name, NULL};
    nl_prom_double(out, "node_scrape_collector_duration_seconds", labels,
                   m->scrape_log[i].seconds);
  }
  nl_prom_family(out, "node_scrape_collector_success", "gauge",
                 "node_exporter: Whether a collector succeeded.");
  for (size_t i = 0; i < m->scrape_count; i++) {
    const char *labels[] = {"collector", m->scrape_log[i].name, NULL};
    nl_prom_u64(out, "node_scrape_collector_success", labels,
                m->scrape_log[i].ok ? 1 : 0);
  }
  return out->failed ? -ENOMEM : 0;
}

const nl_metrics_snapshot *nl_metrics_get(const nl_metrics *m) {
  return &m->snap;
}

/* Linux's idle and iowait counters can step back a little: proc(5) says
 * iowait "may decrease", and tickless kernels estimate idle time. A step
 * back smaller than this is no time in that mode, and the higher reading
 * is kept, so that the counter never decreases (node_exporter does the
 * same, with the same bound). A bigger one is a reset. */
#define CPU_JUMP_BACK_SECONDS 3.0

/* Percentages of each mode over the interval since prev. False when a
 * counter went back by more than a kernel's estimate strays (a CPU taken
 * offline and back, a reset): then no rate is better than a wrong one. */
static bool cpu_rates(nl_cpu_times *cur, const nl_cpu_times *prev) {
  double delta[NL_CPU_MODE_COUNT], total = 0;
  for (int i = 0; i < NL_CPU_MODE_COUNT; i++) {
    delta[i] = cur->seconds[i] - prev->seconds[i];
    if (delta[i] <= -CPU_JUMP_BACK_SECONDS)
      goto none;
    if (delta[i] < 0) {
      cur->seconds[i] = prev->seconds[i];
      delta[i] = 0;
    }
    total += delta[i];
  }
  if (total <= 0)
    goto none;
  for (int i = 0; i < NL_CPU_MODE_COUNT; i++)
    cur->percent[i] = 100.0 * delta[i] / total;
  cur->usage_percent =
      100.0 - cur->percent[NL_CPU_IDLE] - cur->percent[NL_CPU_IOWAIT];
  if (cur->usage_percent < 0)
    cur->usage_percent = 0;
  return true;
none:
  for (int i = 0; i < NL_CPU_MODE_COUNT; i++)
    cur->percent[i] = NAN;
  cur->usage_percent = NAN;
  return false;
}

static int after_cpu(nl_metrics *m) {
  nl_cpu_sample *cpu = &m->snap.cpu;
  cpu->has_rate = false;
  if (m->cpu_has_prev) {
    cpu->has_rate = cpu_rates(&cpu->total, &m->prev_total);
    for (size_t i = 0; i < cpu->core_count; i++) {
      const nl_cpu_times *prev = NULL;
      for (size_t j = 0; j < m->prev_core_count; j++) {
        if (m->prev_cores[j].index == cpu->cores[i].index) {
          prev = &m->prev_cores[j];
          break;
        }
      }
      if (prev != NULL)
        cpu_rates(&cpu->cores[i], prev);
      else
        cpu_rates(&cpu->cores[i], &cpu->cores[i]); /* no rate */
    }
  } else {
    cpu_rates(&cpu->total, &cpu->total);
    for (size_t i = 0; i < cpu->core_count; i++)
      cpu_rates(&cpu->cores[i], &cpu->cores[i]);
  }
  if (nl_metrics_reserve((void **)&m->prev_cores, &m->prev_core_cap,
                         cpu->core_count, sizeof *m->prev_cores) != 0)
    return -ENOMEM;
  if (cpu->core_count > 0)
    memcpy(m->prev_cores, cpu->cores, cpu->core_count * sizeof *cpu->cores);
  m->prev_core_count = cpu->core_count;
  m->prev_total = cpu->total;
  m->cpu_has_prev = true;
  return 0;
}

/* Rate of one counter: NAN on the first sample or when it went backwards. */
static double counter_rate(uint64_t cur, uint64_t prev, double dt) {
  if (cur == NL_ABSENT || prev == NL_ABSENT || cur < prev || dt <= 0)
    return NAN;
  return (double)(cur - prev) / dt;
}

static int after_network(nl_metrics *m, double now) {
  nl_network_sample *net = &m->snap.network;
  double dt = now - m->prev_net_time;
  for (size_t i = 0; i < net->count; i++) {
    nl_netif *cur = &net->ifs[i];
    const nl_netif *prev = NULL;
    for (size_t j = 0; j < m->prev_if_count; j++) {
      if (strcmp(m->prev_ifs[j].name, cur->name) == 0) {
        prev = &m->prev_ifs[j];
        break;
      }
    }
    for (int c = 0; c < NL_NET_COUNTER_COUNT; c++)
      cur->rates[c] =
          prev ? counter_rate(cur->counters[c], prev->counters[c], dt) : NAN;
  }
  if (nl_metrics_reserve((void **)&m->prev_ifs, &m->prev_if_cap, net->count,
                         sizeof *m->prev_ifs) != 0)
    return -ENOMEM;
  if (net->count > 0)
    memcpy(m->prev_ifs, net->ifs, net->count * sizeof *net->ifs);
  m->prev_if_count = net->count;
  m->prev_net_time = now;
  return 0;
}

static int after_storage(nl_metrics *m, double now) {
  nl_storage_sample *st = &m->snap.storage;
  double dt = now - m->prev_disk_time;
  for (size_t i = 0; i < st->disk_count; i++) {
    nl_disk *cur = &st->disks[i];
    const nl_disk *prev = NULL;
    for (size_t j = 0; j < m->prev_disk_count; j++) {
      if (strcmp(m->prev_disks[j].name, cur->name) == 0) {
        prev = &m->prev_disks[j];
        break;
      }
    }
    for (int c = 0; c < NL_DISK_COUNTER_COUNT; c++)
      cur->rates[c] =
          prev ? counter_rate(cur->counters[c], prev->counters[c], dt) : NAN;
  }
  if (nl_metrics_reserve((void **)&m->prev_disks, &m->prev_disk_cap,
                         st->disk_count, sizeof *m->prev_disks) != 0)
    return -ENOMEM;
  if (st->disk_count > 0) /* a scrape lists no disks here: disks is NULL */
    memcpy(m->prev_disks, st->disks, st->disk_count * sizeof *st->disks);
  m->prev_disk_count = st->disk_count;
  m->prev_disk_time = now;
  return 0;
}

int nl_metrics_sample(nl_metrics *m, unsigned groups) {
  for (unsigned i = 0; i < NL_GROUP_COUNT; i++) {
    unsigned group = 1u << i;
    if (!(groups & group))
      continue;
    double now = nl_metrics_monotonic();
    int rc = nl_metrics_os_sample(m, group);
    if (rc == -ENOMEM)
      return rc;
    if (rc != 0) {
      m->snap.present &= ~group;
      continue;
    }
    m->snap.present |= group;
    m->snap.sampled_at[i] = now;
    if (group == NL_METRICS_CPU)
      rc = after_cpu(m);
    else if (group == NL_METRICS_NETWORK)
      rc = after_network(m, now);
    else if (group == NL_METRICS_STORAGE)
      rc = after_storage(m, now);
    if (rc != 0)
      return rc;
  }
  return 0;
}

void nl_buf_reset(nl_buf *b) {
  b->len = 0;
  b->failed = false;
  if (b->data)
    b->data[0] = '\0';
}

void nl_buf_free(nl_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

static bool buf_room(nl_buf *b, size_t extra) {
  if (b->failed)
    return false;
  if (b->len + extra + 1 <= b->cap)
    return true;
  size_t next = b->cap ? b->cap : 4096;
  while (next < b->len + extra + 1)
    next *= 2;
  char *grown = realloc(b->data, next);
  if (grown == NULL) {
    b->failed = true;
    return false;
  }
  b->data = grown;
  b->cap = next;
  return true;
}

void nl_buf_append(nl_buf *b, const char *s, size_t n) {
  /* The common case first: room, no call. */
  if (!(b->len + n + 1 <= b->cap && !b->failed) && !buf_room(b, n))
    return;
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
}

void nl_buf_printf(nl_buf *b, const char *fmt, ...) {
  va_list ap;
  char small[256];
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  if ((size_t)n < sizeof small) {
    nl_buf_append(b, small, (size_t)n);
    return;
  }
  if (!buf_room(b, (size_t)n))
    return;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}
