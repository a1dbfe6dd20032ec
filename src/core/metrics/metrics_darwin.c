/* macOS 11+: sysctl, Mach host statistics, the routing socket's 64-bit
 * interface counters, getfsstat/statvfs. The part that needs Apple's
 * frameworks (link kinds from SystemConfiguration and IOKit, disk
 * statistics from IOKit) is metrics_darwin_frameworks.c. Built only on
 * macOS (see CMakeLists.txt), compiled on Linux by scripts/check-macos.sh;
 * not run on a Mac by us yet (README says so).
 *
 * Differences from Linux, on purpose:
 * - CPU modes are user, nice, system and idle: the only ones Mach counts.
 * - Thermal is absent: macOS has no documented, unprivileged temperature
 *   source (the SMC and IOHID sensors are private), and we invent nothing.
 * - Disk busy time is absent: IOKit gives read and write times, whose sum
 *   is not busy time when requests overlap.
 * - getifaddrs (addresses) and IOKit (disk statistics) allocate inside the
 *   system libraries; the zero-allocation guarantee is verified on Linux. */
#include "metrics_darwin.h"
#include "promtext.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <libproc.h>
#include <mach/mach.h>
#include <mach/mach_host.h>
#include <mach/processor_info.h>
#include <mach/vm_page_size.h>
#include <math.h>
#include <net/if.h>
#include <net/if_dl.h>
/* IFT_ETHER and IFT_BRIDGE. Apple's SDK has this header; the copy of the
 * macOS headers that scripts/check-macos.sh compiles against (zig's) lacks
 * it, and then the numbers are IANA's ifType values (IANAifType-MIB), which
 * is what the header defines. */
#if __has_include(<net/if_types.h>)
#include <net/if_types.h>
#else
#define IFT_ETHER 0x6
#define IFT_BRIDGE 0xd1
#endif
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/sysctl.h>
#include <sys/time.h>
#include <time.h>
#include <sys/utsname.h>
#include <unistd.h>

#define KIND_CACHE_MAX 64
#define MISS_CACHE_MAX 16
#define MISS_RETRY_SECONDS 300.0

/* An interface name that SystemConfiguration did not list, and when. */
typedef struct {
  char name[32];
  double at;
} kind_miss;

struct nl_metrics_os {
  host_t host;
  double ticks_per_second;
  uint64_t page_size;
  char *route_buf; /* the NET_RT_IFLIST2 dump, reused */
  size_t route_cap;
  struct statfs *mounts; /* the getfsstat list, reused */
  int mount_cap;
  nl_darwin_kind kinds[KIND_CACHE_MAX];
  size_t kind_count;
  kind_miss misses[MISS_CACHE_MAX];
  size_t miss_count;
};

static int sysctl_string(const char *name, char *out, size_t cap) {
  size_t len = cap;
  if (sysctlbyname(name, out, &len, NULL, 0) != 0 || len == 0) {
    out[0] = '\0';
    return -1;
  }
  out[cap - 1] = '\0';
  return 0;
}

static int sysctl_u64(const char *name, uint64_t *out) {
  uint64_t v = 0;
  size_t len = sizeof v;
  if (sysctlbyname(name, &v, &len, NULL, 0) != 0)
    return -1;
  /* Some are 32-bit: the value sits in the low bytes on little-endian. */
  if (len == sizeof(uint32_t)) {
    uint32_t v32;
    memcpy(&v32, &v, sizeof v32);
    v = v32;
  }
  *out = v;
  return 0;
}

/* ---- link kinds ---- */

/* Rebuilds the name -> kind table (metrics_darwin_frameworks.c). */
static void refresh_kinds(nl_metrics_os *os) {
  os->kind_count = nl_darwin_link_kinds(os->kinds, KIND_CACHE_MAX);
}

/* Whether name missed the table at its last refresh, less than
 * MISS_RETRY_SECONDS ago: then it is not worth another refresh, which asks
 * SystemConfiguration and walks IOKit (milliseconds, every sample). */
static bool recently_missed(nl_metrics_os *os, const char *name) {
  double now = nl_metrics_monotonic();
  for (size_t i = 0; i < os->miss_count; i++) {
    if (strcmp(os->misses[i].name, name) == 0)
      return now - os->misses[i].at < MISS_RETRY_SECONDS;
  }
  return false;
}

static void remember_miss(nl_metrics_os *os, const char *name) {
  double now = nl_metrics_monotonic();
  size_t slot = os->miss_count;
  for (size_t i = 0; i < os->miss_count; i++) {
    if (strcmp(os->misses[i].name, name) == 0) {
      slot = i;
      break;
    }
  }
  if (slot == os->miss_count) {
    if (os->miss_count == MISS_CACHE_MAX)
      slot = 0; /* full: the oldest entries are the first ones */
    else
      os->miss_count++;
  }
  nl_metrics_copy(os->misses[slot].name, sizeof os->misses[slot].name, name);
  os->misses[slot].at = now;
}

static nl_link_kind kind_of(nl_metrics_os *os, const char *name,
                            unsigned ifi_type, unsigned flags) {
  if (flags & IFF_LOOPBACK)
    return NL_LINK_LOOPBACK;
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0; i < os->kind_count; i++) {
      if (strcmp(os->kinds[i].name, name) == 0)
        return os->kinds[i].kind;
    }
    /* An interface that SystemConfiguration did not list: if it is new
     * since the last look, look once more; a second miss means virtual,
     * and is remembered, so that it costs no refresh for a while. */
    if (pass == 0 && ifi_type == IFT_ETHER && strncmp(name, "en", 2) == 0 &&
        !recently_missed(os, name))
      refresh_kinds(os);
    else
      break;
  }
  if (ifi_type == IFT_ETHER && strncmp(name, "en", 2) == 0)
    remember_miss(os, name);
  if (ifi_type == IFT_BRIDGE)
    return NL_LINK_BRIDGE;
  return NL_LINK_VIRTUAL; /* utun, awdl, llw, gif, stf, anpi, ... */
}

/* ---- node_exporter's defaults, and what a scrape adds ---- */

/* node_exporter's darwin defaults: devfs, and whatever is under /dev. */
const char *const nl_metrics_os_default_excluded[] = {"devfs"};
const size_t nl_metrics_os_default_excluded_count = 1;

bool nl_metrics_os_mount_excluded(const char *mount) {
  return strncmp(mount, "/dev", 4) == 0 &&
         (mount[4] == '\0' || mount[4] == '/');
}

/* The darwin families all come from the snapshot (prom.c); host paths are
 * a Linux container's need and are not used here. */
const unsigned nl_metrics_os_prom_skip = 0;

void nl_metrics_os_paths_changed(nl_metrics *m) { (void)m; }

/* node_exporter's darwin time collector; the rest of its darwin
 * families (meminfo, netdev, diskstats, filesystem, loadavg, cpu,
 * boottime, uname) come from the snapshot. */
int nl_metrics_os_export(nl_metrics *m, nl_buf *out) {
  double started = nl_metrics_monotonic();
  nl_prom_time(out);
  nl_metrics_scrape_log(m, "time", started, true);
  return out->failed ? -ENOMEM : 0;
}

/* ---- open ---- */

int nl_metrics_os_open(nl_metrics *m) {
  nl_metrics_os *os = calloc(1, sizeof *os);
  if (os == NULL)
    return -ENOMEM;
  m->os = os;
  os->host = mach_host_self();
  long hz = sysconf(_SC_CLK_TCK);
  os->ticks_per_second = hz > 0 ? (double)hz : 100.0;
  /* The kernel's page size: 16 KiB on Apple Silicon. hw.pagesize reports
   * 4 KiB to a process translated by Rosetta, so it only stands in. */
  os->page_size = vm_kernel_page_size;
  if (os->page_size == 0 && sysctl_u64("hw.pagesize", &os->page_size) != 0)
    os->page_size = 4096;

  nl_cpu_sample *cpu = &m->snap.cpu;
  sysctl_string("machdep.cpu.vendor", cpu->vendor, sizeof cpu->vendor);
  sysctl_string("machdep.cpu.brand_string", cpu->brand, sizeof cpu->brand);
  uint64_t v;
  if (sysctl_u64("hw.physicalcpu", &v) == 0)
    cpu->physical_cores = (int)v;
  /* Intel Macs tell their clock; Apple Silicon does not, and then it is
   * absent. */
  cpu->base_mhz =
      sysctl_u64("hw.cpufrequency", &v) == 0 ? (double)v / 1e6 : NAN;
  cpu->max_mhz =
      sysctl_u64("hw.cpufrequency_max", &v) == 0 ? (double)v / 1e6 : NAN;
  cpu->modes = (1u << NL_CPU_USER) | (1u << NL_CPU_NICE) |
               (1u << NL_CPU_SYSTEM) | (1u << NL_CPU_IDLE);

  nl_system_sample *sys = &m->snap.system;
  nl_metrics_copy(sys->os_name, sizeof sys->os_name, "macOS");
  sysctl_string("kern.osproductversion", sys->os_version,
                sizeof sys->os_version);
  sysctl_string("hw.model", sys->model, sizeof sys->model);
  struct utsname u;
  if (uname(&u) == 0) {
    nl_metrics_copy(sys->sysname, sizeof sys->sysname, u.sysname);
    nl_metrics_copy(sys->kernel, sizeof sys->kernel, u.release);
    nl_metrics_copy(sys->kernel_version, sizeof sys->kernel_version, u.version);
    nl_metrics_copy(sys->arch, sizeof sys->arch, u.machine);
  }
  /* hw.optional.arm64 is 1 on Apple Silicon, also to translated processes,
   * which is what the machine is. */
  sys->apple_silicon = sysctl_u64("hw.optional.arm64", &v) == 0 && v == 1;
  refresh_kinds(os);
  return 0;
}

void nl_metrics_os_close(nl_metrics *m) {
  nl_metrics_os *os = m->os;
  if (os == NULL)
    return;
  mach_port_deallocate(mach_task_self(), os->host);
  free(os->route_buf);
  free(os->mounts);
  free(os);
  m->os = NULL;
}

/* ---- samples ---- */

static int sample_cpu(nl_metrics *m) {
  nl_metrics_os *os = m->os;
  nl_cpu_sample *cpu = &m->snap.cpu;
  natural_t count = 0;
  processor_info_array_t info = NULL;
  mach_msg_type_number_t info_count = 0;
  if (host_processor_info(os->host, PROCESSOR_CPU_LOAD_INFO, &count, &info,
                          &info_count) != KERN_SUCCESS)
    return -ENOTSUP;
  if (nl_metrics_reserve((void **)&cpu->cores, &cpu->core_cap, count,
                         sizeof *cpu->cores) != 0) {
    vm_deallocate(mach_task_self(), (vm_address_t)info,
                  info_count * sizeof(integer_t));
    return -ENOMEM;
  }
  processor_cpu_load_info_t load = (processor_cpu_load_info_t)info;
  memset(&cpu->total, 0, sizeof cpu->total);
  cpu->total.index = -1;
  cpu->total.mhz = NAN;
  static const struct {
    int state;
    nl_cpu_mode mode;
  } map[] = {{CPU_STATE_USER, NL_CPU_USER},
             {CPU_STATE_NICE, NL_CPU_NICE},
             {CPU_STATE_SYSTEM, NL_CPU_SYSTEM},
             {CPU_STATE_IDLE, NL_CPU_IDLE}};
  for (natural_t i = 0; i < count; i++) {
    nl_cpu_times *core = &cpu->cores[i];
    memset(core->seconds, 0, sizeof core->seconds);
    core->index = (int)i;
    core->mhz = NAN;
    for (size_t k = 0; k < 4; k++) {
      double s = (double)load[i].cpu_ticks[map[k].state] / os->ticks_per_second;
      core->seconds[map[k].mode] = s;
      cpu->total.seconds[map[k].mode] += s;
    }
  }
  vm_deallocate(mach_task_self(), (vm_address_t)info,
                info_count * sizeof(integer_t));
  cpu->core_count = count;
  cpu->logical_cores = (int)count;
  return 0;
}

static int sample_load(nl_metrics *m) {
  struct loadavg la;
  size_t len = sizeof la;
  if (sysctlbyname("vm.loadavg", &la, &len, NULL, 0) != 0 || la.fscale == 0)
    return -ENOTSUP;
  m->snap.load.load1 = (double)la.ldavg[0] / (double)la.fscale;
  m->snap.load.load5 = (double)la.ldavg[1] / (double)la.fscale;
  m->snap.load.load15 = (double)la.ldavg[2] / (double)la.fscale;
  return 0;
}

static int sample_memory(nl_metrics *m) {
  nl_memory_sample *mem = &m->snap.memory;
  uint64_t *all = (uint64_t *)mem;
  for (size_t i = 0; i < sizeof *mem / sizeof(uint64_t); i++)
    all[i] = NL_ABSENT;
  if (sysctl_u64("hw.memsize", &mem->total) != 0)
    return -ENOTSUP;
  vm_statistics64_data_t vm;
  mach_msg_type_number_t count = HOST_VM_INFO64_COUNT;
  if (host_statistics64(m->os->host, HOST_VM_INFO64, (host_info64_t)&vm,
                        &count) != KERN_SUCCESS)
    return -ENOTSUP;
  uint64_t page = m->os->page_size;
  mem->free = ((uint64_t)vm.free_count - vm.speculative_count) * page;
  mem->active = (uint64_t)vm.active_count * page;
  mem->inactive = (uint64_t)vm.inactive_count * page;
  mem->wired = (uint64_t)vm.wire_count * page;
  mem->compressed = (uint64_t)vm.compressor_page_count * page;
  /* Free, inactive and speculative pages can be handed out at once. */
  mem->available = ((uint64_t)vm.free_count + vm.inactive_count) * page;
  if (mem->available > mem->total)
    mem->available = mem->total;
  mem->used = mem->total - mem->available;
  struct xsw_usage swap;
  size_t len = sizeof swap;
  if (sysctlbyname("vm.swapusage", &swap, &len, NULL, 0) == 0) {
    mem->swap_total = swap.xsu_total;
    mem->swap_used = swap.xsu_used;
    mem->swap_free = swap.xsu_avail;
  }
  return 0;
}

/* The prefix length of a netmask (an address of bytes bytes), or the full
 * length when there is none. */
static uint8_t mask_bits(const struct sockaddr *mask, size_t bytes) {
  if (mask == NULL)
    return (uint8_t)(bytes * 8);
  const uint8_t *b =
      bytes == 4
          ? (const uint8_t *)&((const struct sockaddr_in *)(const void *)mask)
                ->sin_addr
          : (const uint8_t *)&((const struct sockaddr_in6 *)(const void *)mask)
                ->sin6_addr;
  uint8_t n = 0;
  for (size_t i = 0; i < bytes; i++)
    for (int bit = 7; bit >= 0 && (b[i] >> bit & 1); bit--)
      n++;
  return n;
}

static void netif_addresses(nl_network_sample *net) {
  struct ifaddrs *list = NULL;
  for (size_t i = 0; i < net->count; i++)
    net->ifs[i].ipv4_count = net->ifs[i].ipv6_count = 0;
  if (getifaddrs(&list) != 0)
    return;
  for (struct ifaddrs *a = list; a != NULL; a = a->ifa_next) {
    if (a->ifa_addr == NULL)
      continue;
    nl_netif *nif = NULL;
    for (size_t i = 0; i < net->count && !nif; i++) {
      if (strcmp(net->ifs[i].name, a->ifa_name) == 0)
        nif = &net->ifs[i];
    }
    if (nif == NULL)
      continue;
    if (a->ifa_addr->sa_family == AF_INET && nif->ipv4_count < NL_ADDRS_MAX) {
      nif->ipv4_prefix[nif->ipv4_count] = mask_bits(a->ifa_netmask, 4);
      inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)a->ifa_addr)->sin_addr,
                nif->ipv4[nif->ipv4_count++], sizeof nif->ipv4[0]);
    } else if (a->ifa_addr->sa_family == AF_INET6 &&
               nif->ipv6_count < NL_ADDRS_MAX) {
      nif->ipv6_prefix[nif->ipv6_count] = mask_bits(a->ifa_netmask, 16);
      inet_ntop(AF_INET6,
                &((struct sockaddr_in6 *)(void *)a->ifa_addr)->sin6_addr,
                nif->ipv6[nif->ipv6_count++], sizeof nif->ipv6[0]);
    }
  }
  freeifaddrs(list);
}

/* Interface counters from the routing socket's NET_RT_IFLIST2 dump: 64-bit
 * (getifaddrs' if_data is 32-bit and wraps at 4 GiB). */
static int sample_network(nl_metrics *m) {
  nl_metrics_os *os = m->os;
  nl_network_sample *net = &m->snap.network;
  int mib[] = {CTL_NET, PF_ROUTE, 0, 0, NET_RT_IFLIST2, 0};
  size_t needed = 0;
  for (int attempt = 0;; attempt++) {
    if (sysctl(mib, 6, NULL, &needed, NULL, 0) != 0)
      return -ENOTSUP;
    if (needed > os->route_cap) {
      char *grown = realloc(os->route_buf, needed * 2);
      if (grown == NULL)
        return -ENOMEM;
      os->route_buf = grown;
      os->route_cap = needed * 2;
    }
    needed = os->route_cap;
    if (sysctl(mib, 6, os->route_buf, &needed, NULL, 0) == 0)
      break;
    if (errno != ENOMEM || attempt > 3)
      return -ENOTSUP;
  }
  size_t count = 0;
  for (char *p = os->route_buf; p < os->route_buf + needed;) {
    struct if_msghdr *ifm = (struct if_msghdr *)(void *)p;
    if (ifm->ifm_msglen == 0)
      break;
    p += ifm->ifm_msglen;
    if (ifm->ifm_type != RTM_IFINFO2)
      continue;
    struct if_msghdr2 *if2 = (struct if_msghdr2 *)(void *)ifm;
    struct sockaddr_dl *sdl = (struct sockaddr_dl *)(void *)(if2 + 1);
    if (sdl->sdl_family != AF_LINK)
      continue;
    if (nl_metrics_reserve((void **)&net->ifs, &net->cap, count + 1,
                           sizeof *net->ifs) != 0)
      return -ENOMEM;
    nl_netif *nif = &net->ifs[count++];
    size_t nlen =
        sdl->sdl_nlen < sizeof nif->name ? sdl->sdl_nlen : sizeof nif->name - 1;
    memcpy(nif->name, sdl->sdl_data, nlen);
    nif->name[nlen] = '\0';
    nif->ifindex = if2->ifm_index;
    nif->mac[0] = '\0';
    if (sdl->sdl_alen == 6) {
      const unsigned char *mac = (const unsigned char *)LLADDR(sdl);
      snprintf(nif->mac, sizeof nif->mac, "%02x:%02x:%02x:%02x:%02x:%02x",
               mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
    }
    const struct if_data64 *d = &if2->ifm_data;
    nif->up = (if2->ifm_flags & IFF_UP) != 0;
    nif->mtu = (int)d->ifi_mtu;
    nif->speed_mbps =
        d->ifi_baudrate > 0 ? (int64_t)(d->ifi_baudrate / 1000000) : -1;
    if (nif->speed_mbps == 0)
      nif->speed_mbps = -1;
    nif->kind = kind_of(os, nif->name, d->ifi_type, (unsigned)if2->ifm_flags);
    nif->counters[NL_NET_RX_BYTES] = d->ifi_ibytes;
    nif->counters[NL_NET_TX_BYTES] = d->ifi_obytes;
    nif->counters[NL_NET_RX_PACKETS] = d->ifi_ipackets;
    nif->counters[NL_NET_TX_PACKETS] = d->ifi_opackets;
    nif->counters[NL_NET_RX_ERRORS] = d->ifi_ierrors;
    nif->counters[NL_NET_TX_ERRORS] = d->ifi_oerrors;
    nif->counters[NL_NET_RX_DROPS] = d->ifi_iqdrops;
    nif->counters[NL_NET_TX_DROPS] = NL_ABSENT; /* Darwin does not count it */
  }
  net->count = count;
  netif_addresses(net);
  return 0;
}

/* The APFS volumes macOS mounts for itself under /System/Volumes (VM,
 * Preboot, Update, xarts, iSCPreboot, Hardware): they share the disk's
 * container with the others and would only repeat its figures, as
 * node_exporter's users exclude them. The Data volume stays: it holds
 * everything the users and the agent write. */
static bool system_volume(const char *mount) {
  static const char prefix[] = "/System/Volumes/";
  return strncmp(mount, prefix, sizeof prefix - 1) == 0 &&
         strcmp(mount, "/System/Volumes/Data") != 0;
}

static int sample_filesystems(nl_metrics *m) {
  nl_metrics_os *os = m->os;
  nl_storage_sample *st = &m->snap.storage;
  int n = getfsstat(NULL, 0, MNT_NOWAIT);
  if (n < 0)
    return -ENOTSUP;
  if (n + 4 > os->mount_cap) {
    struct statfs *grown = realloc(os->mounts, sizeof *grown * (size_t)(n + 8));
    if (grown == NULL)
      return -ENOMEM;
    os->mounts = grown;
    os->mount_cap = n + 8;
  }
  /* MNT_NOWAIT: never wait on an unresponsive network filesystem. */
  n = getfsstat(os->mounts, (int)(sizeof *os->mounts * (size_t)os->mount_cap),
                MNT_NOWAIT);
  if (n < 0)
    return -ENOTSUP;
  size_t count = 0;
  for (int i = 0; i < n; i++) {
    const struct statfs *f = &os->mounts[i];
    if (nl_metrics_fstype_excluded(m, f->f_fstypename) ||
        system_volume(f->f_mntonname))
      continue;
    if (nl_metrics_reserve((void **)&st->fs, &st->fs_cap, count + 1,
                           sizeof *st->fs) != 0)
      return -ENOMEM;
    nl_filesystem *fs = &st->fs[count];
    if (nl_metrics_os_mount_excluded(f->f_mntonname) ||
        !nl_metrics_statvfs(fs, f->f_mntfromname, f->f_mntonname,
                            f->f_mntonname, f->f_fstypename))
      continue;
    fs->readonly = fs->readonly || (f->f_flags & MNT_RDONLY) != 0;
    count++;
  }
  st->fs_count = count;
  return 0;
}

static int sample_storage(nl_metrics *m) {
  int rc = sample_filesystems(m);
  return rc != 0 ? rc : nl_darwin_sample_disks(m);
}

static int sample_system(nl_metrics *m) {
  nl_system_sample *sys = &m->snap.system;
  if (gethostname(sys->hostname, sizeof sys->hostname) != 0)
    sys->hostname[0] = '\0';
  sys->hostname[sizeof sys->hostname - 1] = '\0';
  struct timeval boot;
  size_t len = sizeof boot;
  sys->boot_time = sys->uptime = NAN;
  if (sysctlbyname("kern.boottime", &boot, &len, NULL, 0) == 0) {
    struct timeval now;
    gettimeofday(&now, NULL);
    sys->boot_time = (double)boot.tv_sec + boot.tv_usec / 1e6;
    sys->uptime = (double)now.tv_sec + now.tv_usec / 1e6 - sys->boot_time;
  }
  return 0;
}

static int sample_self(nl_metrics *m) {
  nl_self_sample *self = &m->snap.self;
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return -ENOTSUP;
  self->cpu_seconds = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                      (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
  mach_task_basic_info_data_t info;
  mach_msg_type_number_t count = MACH_TASK_BASIC_INFO_COUNT;
  self->rss_bytes = task_info(mach_task_self(), MACH_TASK_BASIC_INFO,
                              (task_info_t)&info, &count) == KERN_SUCCESS
                        ? info.resident_size
                        : NL_ABSENT;
  struct proc_bsdinfo bsd;
  self->start_time = NAN;
  if (proc_pidinfo(getpid(), PROC_PIDTBSDINFO, 0, &bsd, sizeof bsd) ==
      (int)sizeof bsd)
    self->start_time = (double)bsd.pbi_start_tvsec + bsd.pbi_start_tvusec / 1e6;
  return 0;
}

int nl_metrics_os_sample(nl_metrics *m, unsigned group) {
  switch (group) {
  case NL_METRICS_CPU:
    return sample_cpu(m);
  case NL_METRICS_LOAD:
    return sample_load(m);
  case NL_METRICS_MEMORY:
    return sample_memory(m);
  case NL_METRICS_NETWORK:
    return sample_network(m);
  case NL_METRICS_STORAGE:
    return sample_storage(m);
  case NL_METRICS_SYSTEM:
    return sample_system(m);
  case NL_METRICS_SELF:
    return sample_self(m);
  case NL_METRICS_THERMAL: /* no documented unprivileged source */
  default:
    return -ENOTSUP;
  }
}
