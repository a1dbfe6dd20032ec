/* Linux: the node_exporter collectors that a scrape adds to the snapshot's
 * families, in node_exporter's names, labels, units and types, read when
 * /metrics is scraped. This file runs them (each timed for
 * node_scrape_collector_*) and holds the /proc collectors of kernel-wide
 * counters: stat, meminfo, vmstat, filefd, entropy, pressure, schedstat,
 * conntrack, and the agent's own process_* figures. The network ones are in
 * export_linux_net.c, disks in export_linux_disk.c, and the sysfs, clock
 * and process-table ones in export_linux_sys.c. */
#include "metrics_linux.h"
#include "procfs.h"
#include "promtext.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* prom.c's families that the collectors below write in full instead. */
const unsigned nl_metrics_os_prom_skip =
    NL_PROM_SKIP_MEMORY | NL_PROM_SKIP_NETWORK | NL_PROM_SKIP_DISKS |
    NL_PROM_SKIP_HWMON;

typedef bool (*export_fn)(nl_metrics *m, nl_buf *out);

static const struct {
  const char *name; /* node_exporter's collector name */
  export_fn run;
  unsigned only_if; /* an NL_COLLECT_* bit that must be set, or 0 */
} collectors[] = {
    {"arp", nl_export_arp, 0},
    {"conntrack", nl_export_conntrack, 0},
    {"cpufreq", nl_export_cpufreq, 0},
    {"diskstats", nl_export_diskstats, 0},
    {"entropy", nl_export_entropy, 0},
    {"filefd", nl_export_filefd, 0},
    {"hwmon", nl_export_hwmon, 0},
    {"meminfo", nl_export_meminfo, 0},
    {"netclass", nl_export_netclass, 0},
    {"netdev", nl_export_netdev, 0},
    {"netstat", nl_export_netstat, 0},
    {"pressure", nl_export_pressure, 0},
    {"processes", nl_export_processes, NL_COLLECT_PROCESSES},
    {"schedstat", nl_export_schedstat, 0},
    {"sockstat", nl_export_sockstat, 0},
    {"softnet", nl_export_softnet, 0},
    {"stat", nl_export_stat, 0},
    {"tcpstat", nl_export_tcpstat, NL_COLLECT_TCPSTAT},
    {"time", nl_export_time, 0},
    {"timex", nl_export_timex, 0},
    {"udp_queues", nl_export_udp_queues, 0},
    {"vmstat", nl_export_vmstat, 0},
    {"process", nl_export_self, 0},
};

int nl_metrics_os_export(nl_metrics *m, nl_buf *out) {
  for (size_t i = 0; i < sizeof collectors / sizeof collectors[0]; i++) {
    if (collectors[i].only_if && !(m->extra_collectors & collectors[i].only_if))
      continue;
    double started = nl_metrics_monotonic();
    bool ok = collectors[i].run(m, out);
    nl_metrics_scrape_log(m, collectors[i].name, started, ok);
  }
  return out->failed ? -ENOMEM : 0;
}

/* ---- stat: /proc/stat beyond the cpu lines ---- */

typedef struct {
  double ctxt, intr, forks, running, blocked;
} stat_counts;

static void take_stat(void *ud, const char *name, double value, bool kb) {
  stat_counts *c = ud;
  (void)kb;
  if (strcmp(name, "ctxt") == 0)
    c->ctxt = value;
  else if (strcmp(name, "intr") == 0)
    c->intr = value; /* the first number is the total */
  else if (strcmp(name, "processes") == 0)
    c->forks = value;
  else if (strcmp(name, "procs_running") == 0)
    c->running = value;
  else if (strcmp(name, "procs_blocked") == 0)
    c->blocked = value;
}

typedef struct {
  nl_metrics *m;
  size_t count;
  double ticks;
} guest_fill;

static int take_guest(void *ud, int index, const unsigned long long *ticks) {
  guest_fill *g = ud;
  if (index < 0)
    return 0;
  nl_row *row = nl_linux_add_cpu_row(g->m->os, &g->count, index);
  if (row == NULL)
    return -ENOMEM;
  row->v[0] = (double)ticks[NL_CPU_MODE_COUNT] / g->ticks;
  row->v[1] = (double)ticks[NL_CPU_MODE_COUNT + 1] / g->ticks;
  return 0;
}

bool nl_export_stat(nl_metrics *m, nl_buf *out) {
  if (!nl_linux_read_proc(m, "/stat"))
    return false;
  stat_counts c = {NAN, NAN, NAN, NAN, NAN};
  nl_procfs_keyvalues(m->os->buf, take_stat, &c);
  guest_fill g = {m, 0, m->os->ticks_per_second};
  if (nl_procfs_stat_cpu(m->os->buf, take_guest, &g) > 0) {
    nl_prom_family(out, "node_cpu_guest_seconds_total", "counter",
                   "Seconds the CPUs spent in guests (VMs) for each mode.");
    for (size_t i = 0; i < g.count; i++) {
      const char *user[] = {"cpu", m->os->rows[i].name, "mode", "user", NULL};
      const char *nice[] = {"cpu", m->os->rows[i].name, "mode", "nice", NULL};
      nl_prom_double(out, "node_cpu_guest_seconds_total", user,
                     m->os->rows[i].v[0]);
      nl_prom_double(out, "node_cpu_guest_seconds_total", nice,
                     m->os->rows[i].v[1]);
    }
  }
  if (!isnan(c.ctxt))
    nl_prom_counter(out, "node_context_switches_total",
                    "Total number of context switches.", c.ctxt);
  if (!isnan(c.forks))
    nl_prom_counter(out, "node_forks_total", "Total number of forks.", c.forks);
  if (!isnan(c.intr))
    nl_prom_counter(out, "node_intr_total",
                    "Total number of interrupts serviced.", c.intr);
  if (!isnan(c.blocked))
    nl_prom_gauge(out, "node_procs_blocked",
                  "Number of processes blocked waiting for I/O to complete.",
                  c.blocked);
  if (!isnan(c.running))
    nl_prom_gauge(out, "node_procs_running",
                  "Number of processes in runnable state.", c.running);
  return true;
}

/* ---- meminfo: every field, named as node_exporter names them ---- */

static void take_meminfo(void *ud, const char *name, double value, bool kb) {
  nl_buf *out = ud;
  /* "Active(anon)" is node_memory_Active_anon_bytes; values in kB are
   * bytes with a _bytes suffix, the others (HugePages_Total) as they are. */
  char family[128] = "node_memory_";
  size_t n = strlen(family);
  for (const char *p = name; *p && n < sizeof family - 8; p++) {
    if (*p == '(')
      family[n++] = '_';
    else if (isalnum((unsigned char)*p) || *p == '_')
      family[n++] = *p;
  }
  family[n] = '\0';
  if (kb) {
    memcpy(family + n, "_bytes", 7);
    value *= 1024;
  }
  char help[160];
  nl_prom_concat(help, sizeof help, "Memory information field ",
                 family + strlen("node_memory_"), ".", NULL);
  nl_prom_gauge(out, family, help, value);
}

bool nl_export_meminfo(nl_metrics *m, nl_buf *out) {
  if (!nl_linux_read_proc(m, "/meminfo"))
    return false;
  nl_procfs_keyvalues(m->os->buf, take_meminfo, out);
  nl_memory_sample mem;
  if (nl_procfs_meminfo(m->os->buf, &mem) == 0 && mem.used != NL_ABSENT)
    nl_prom_gauge(out, "nodelua_memory_used_bytes",
                  "Memory neither free nor reclaimable cache.",
                  (double)mem.used);
  return true;
}

/* ---- vmstat: node_exporter's default fields ---- */

/* ^(oom_kill|pgpg|pswp|pg.*fault).* */
static bool vmstat_field(const char *name) {
  if (strncmp(name, "oom_kill", 8) == 0 || strncmp(name, "pgpg", 4) == 0 ||
      strncmp(name, "pswp", 4) == 0)
    return true;
  return strncmp(name, "pg", 2) == 0 && strstr(name + 2, "fault") != NULL;
}

static void take_vmstat(void *ud, const char *name, double value, bool kb) {
  (void)kb;
  if (!vmstat_field(name))
    return;
  char family[96], help[128];
  nl_prom_concat(family, sizeof family, "node_vmstat_", name, NULL);
  nl_prom_concat(help, sizeof help, "/proc/vmstat information field ", name,
                 ".", NULL);
  nl_prom_family(ud, family, "untyped", help);
  nl_prom_double(ud, family, NULL, value);
}

bool nl_export_vmstat(nl_metrics *m, nl_buf *out) {
  if (!nl_linux_read_proc(m, "/vmstat"))
    return false;
  nl_procfs_keyvalues(m->os->buf, take_vmstat, out);
  return true;
}

/* ---- filefd, entropy ---- */

bool nl_export_filefd(nl_metrics *m, nl_buf *out) {
  char buf[128];
  unsigned long long allocated, unused, maximum;
  if (nl_linux_read_small(nl_linux_path(m, NL_HOST_PROC, "/sys/fs/file-nr"),
                          buf, sizeof buf) <= 0 ||
      sscanf(buf, "%llu %llu %llu", &allocated, &unused, &maximum) != 3)
    return false;
  nl_prom_gauge(out, "node_filefd_allocated",
                "File descriptor statistics: allocated.", (double)allocated);
  nl_prom_gauge(out, "node_filefd_maximum",
                "File descriptor statistics: maximum.", (double)maximum);
  return true;
}

bool nl_export_entropy(nl_metrics *m, nl_buf *out) {
  double available, pool;
  if (nl_linux_read_double(
          nl_linux_path(m, NL_HOST_PROC, "/sys/kernel/random/entropy_avail"),
          &available) != 0)
    return false;
  nl_prom_gauge(out, "node_entropy_available_bits",
                "Bits of available entropy.", available);
  if (nl_linux_read_double(
          nl_linux_path(m, NL_HOST_PROC, "/sys/kernel/random/poolsize"),
          &pool) == 0)
    nl_prom_gauge(out, "node_entropy_pool_size_bits", "Bits of entropy pool.",
                  pool);
  return true;
}

/* ---- pressure (PSI) ---- */

bool nl_export_pressure(nl_metrics *m, nl_buf *out) {
  static const struct {
    const char *resource, *some_name, *some_help, *full_name, *full_help;
  } kinds[] = {
      {"cpu", "node_pressure_cpu_waiting_seconds_total",
       "Total time in seconds that processes have waited for CPU time", NULL,
       NULL},
      {"io", "node_pressure_io_waiting_seconds_total",
       "Total time in seconds that processes have waited due to IO congestion",
       "node_pressure_io_stalled_seconds_total",
       "Total time in seconds no process could make progress due to IO "
       "congestion"},
      {"memory", "node_pressure_memory_waiting_seconds_total",
       "Total time in seconds that processes have waited for memory",
       "node_pressure_memory_stalled_seconds_total",
       "Total time in seconds no process could make progress due to memory "
       "congestion"},
      {"irq", NULL, NULL, "node_pressure_irq_stalled_seconds_total",
       "Total time in seconds no process could make progress due to IRQ "
       "congestion"},
  };
  bool any = false;
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
    char rel[32];
    snprintf(rel, sizeof rel, "/pressure/%s", kinds[i].resource);
    double some, full;
    if (!nl_linux_read_proc(m, rel) ||
        nl_procfs_pressure(m->os->buf, &some, &full) != 0)
      continue;
    any = true;
    if (kinds[i].some_name && some >= 0)
      nl_prom_counter(out, kinds[i].some_name, kinds[i].some_help, some / 1e6);
    if (kinds[i].full_name && full >= 0)
      nl_prom_counter(out, kinds[i].full_name, kinds[i].full_help, full / 1e6);
  }
  return any;
}

/* ---- schedstat ---- */

static int take_schedstat(void *ud, int cpu, double running_ns,
                          double waiting_ns, double timeslices) {
  nl_row_fill *f = ud;
  nl_row *row = nl_linux_add_cpu_row(f->m->os, &f->count, cpu);
  if (row == NULL)
    return -ENOMEM;
  row->v[0] = running_ns / 1e9;
  row->v[1] = waiting_ns / 1e9;
  row->v[2] = timeslices;
  return 0;
}

bool nl_export_schedstat(nl_metrics *m, nl_buf *out) {
  static const char *const names[] = {"node_schedstat_running_seconds_total",
                                      "node_schedstat_waiting_seconds_total",
                                      "node_schedstat_timeslices_total"};
  static const char *const helps[] = {
      "Number of seconds CPU spent running a process.",
      "Number of seconds spent by processing waiting for this CPU.",
      "Number of timeslices executed by CPU."};
  nl_row_fill f = {m, 0};
  if (!nl_linux_read_proc(m, "/schedstat") ||
      nl_procfs_schedstat(m->os->buf, take_schedstat, &f) != 0 || f.count == 0)
    return false;
  for (int k = 0; k < 3; k++) {
    nl_prom_family(out, names[k], "counter", helps[k]);
    for (size_t i = 0; i < f.count; i++) {
      const char *labels[] = {"cpu", m->os->rows[i].name, NULL};
      nl_prom_double(out, names[k], labels, m->os->rows[i].v[k]);
    }
  }
  return true;
}

/* ---- conntrack ---- */

bool nl_export_conntrack(nl_metrics *m, nl_buf *out) {
  double entries, limit;
  if (nl_linux_read_double(
          nl_linux_path(m, NL_HOST_PROC,
                        "/sys/net/netfilter/nf_conntrack_count"),
          &entries) != 0 ||
      nl_linux_read_double(
          nl_linux_path(m, NL_HOST_PROC, "/sys/net/netfilter/nf_conntrack_max"),
          &limit) != 0)
    return false;
  nl_prom_gauge(out, "node_nf_conntrack_entries",
                "Number of currently allocated flow entries for connection "
                "tracking.",
                entries);
  nl_prom_gauge(out, "node_nf_conntrack_entries_limit",
                "Maximum size of connection tracking table.", limit);
  return true;
}

/* ---- the agent itself: always its own /proc/self, never HOST_PROC ---- */

bool nl_export_self(nl_metrics *m, nl_buf *out) {
  struct rlimit files, address;
  int fds = nl_linux_list_dir(m->os, "/proc/self/fd", (size_t)-1, false);
  if (fds >= 0)
    nl_prom_gauge(out, "process_open_fds", "Number of open file descriptors.",
                  fds - 1.0); /* less the one listing the directory */
  if (getrlimit(RLIMIT_NOFILE, &files) == 0)
    nl_prom_gauge(out, "process_max_fds",
                  "Maximum number of open file descriptors.",
                  (double)files.rlim_cur);
  if (nl_linux_slurp(m->os, "/proc/self/stat") > 0) {
    /* vsize is field 23, the 21st after the ')' that ends the name. */
    const char *p = strrchr(m->os->buf, ')');
    for (int field = 2; p && field < 23; field++)
      p = strchr(p + 1, ' ');
    if (p)
      nl_prom_gauge(out, "process_virtual_memory_bytes",
                    "Virtual memory size in bytes.", strtod(p + 1, NULL));
  }
  if (getrlimit(RLIMIT_AS, &address) == 0)
    nl_prom_gauge(out, "process_virtual_memory_max_bytes",
                  "Maximum amount of virtual memory available in bytes.",
                  (double)address.rlim_cur);
  return fds >= 0;
}
