/* Linux: /proc, /sys, statvfs, and netlink dumps for interfaces. Files are
 * read with open/read into one reused buffer (stdio would allocate), and
 * sensors are found by index rather than by listing directories, so a
 * steady-state sample makes no heap allocation. */
#include "metrics_internal.h"
#include "procfs.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <math.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#define SENSORS_MAX 64
#define NETLINK_BUF 32768

typedef struct {
  char path[128];
  char name[96];
  char source[16];
  char chip[32];
} sensor_spec;

typedef struct {
  int ifindex;
  char name[32];
  nl_link_kind kind;
} kind_entry;

struct nl_metrics_os {
  char sysfs[128]; /* "/sys"; a fixture tree in tests */
  char *buf;       /* the contents of the last file read */
  size_t cap;
  double ticks_per_second;
  long page_size;
  int netlink;
  unsigned netlink_seq;
  char netlink_buf[NETLINK_BUF];
  sensor_spec sensors[SENSORS_MAX];
  size_t sensor_count;
  bool have_cpufreq;
  bool failed; /* an allocation failed inside a netlink callback */
  double self_start_time;
  kind_entry *kinds;
  size_t kind_count, kind_cap;
};

/* Reads a whole file into os->buf, NUL-terminated. The buffer grows only
 * when a file is larger than any before. Returns the length or -errno. */
static ssize_t slurp(nl_metrics_os *os, const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  size_t len = 0;
  for (;;) {
    if (len + 1 >= os->cap) {
      size_t next = os->cap ? os->cap * 2 : 65536;
      char *grown = realloc(os->buf, next);
      if (grown == NULL) {
        close(fd);
        return -ENOMEM;
      }
      os->buf = grown;
      os->cap = next;
    }
    ssize_t n = read(fd, os->buf + len, os->cap - len - 1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int e = errno;
      close(fd);
      return -e;
    }
    if (n == 0)
      break;
    len += (size_t)n;
  }
  close(fd);
  os->buf[len] = '\0';
  return (ssize_t)len;
}

/* Reads a small file (sysfs attribute) into buf, without the trailing
 * newline. Returns the length or -errno. */
static ssize_t read_small(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  ssize_t n;
  do {
    n = read(fd, buf, cap - 1);
  } while (n < 0 && errno == EINTR);
  int e = errno;
  close(fd);
  if (n < 0)
    return -e;
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
    n--;
  buf[n] = '\0';
  return n;
}

static int read_int64(const char *path, long long *out) {
  char buf[64];
  if (read_small(path, buf, sizeof buf) <= 0)
    return -1;
  char *end;
  errno = 0;
  long long v = strtoll(buf, &end, 0);
  if (errno != 0 || end == buf)
    return -1;
  *out = v;
  return 0;
}

static bool exists(const char *path) { return access(path, F_OK) == 0; }

/* ---- static facts, read once ---- */

static void read_cpu_facts(nl_metrics *m) {
  nl_metrics_os *os = m->os;
  nl_cpu_sample *cpu = &m->snap.cpu;
  cpu->base_mhz = cpu->max_mhz = NAN;
  if (slurp(os, "/proc/cpuinfo") > 0) {
    for (char *line = os->buf; line && *line;) {
      char *eol = strchr(line, '\n');
      char *colon = strchr(line, ':');
      if (colon && (!eol || colon < eol)) {
        size_t keylen = (size_t)(colon - line);
        while (keylen > 0 && isspace((unsigned char)line[keylen - 1]))
          keylen--;
        char *value = colon + 1;
        while (*value == ' ')
          value++;
        size_t vlen = eol ? (size_t)(eol - value) : strlen(value);
        if (keylen == 9 && strncmp(line, "vendor_id", 9) == 0 &&
            !cpu->vendor[0])
          nl_metrics_copy_n(cpu->vendor, sizeof cpu->vendor, value, vlen);
        else if (keylen == 10 && strncmp(line, "model name", 10) == 0 &&
                 !cpu->brand[0])
          nl_metrics_copy_n(cpu->brand, sizeof cpu->brand, value, vlen);
        else if (keylen == 8 && strncmp(line, "Hardware", 8) == 0 &&
                 !cpu->brand[0])
          nl_metrics_copy_n(cpu->brand, sizeof cpu->brand, value, vlen);
      }
      line = eol ? eol + 1 : NULL;
    }
  }
  /* Physical cores: distinct (package, core) pairs in the topology. */
  long long pairs[1024][2];
  size_t npairs = 0;
  int logical = 0;
  for (int i = 0; i < 4096; i++) {
    char path[128];
    long long pkg, core;
    snprintf(path, sizeof path,
             "/sys/devices/system/cpu/cpu%d/topology/core_id", i);
    if (read_int64(path, &core) != 0) {
      snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d", i);
      if (!exists(path))
        break;
      continue; /* offline CPU: no topology */
    }
    logical++;
    snprintf(path, sizeof path,
             "/sys/devices/system/cpu/cpu%d/topology/physical_package_id", i);
    if (read_int64(path, &pkg) != 0)
      pkg = 0;
    bool seen = false;
    for (size_t j = 0; j < npairs; j++)
      seen = seen || (pairs[j][0] == pkg && pairs[j][1] == core);
    if (!seen && npairs < 1024) {
      pairs[npairs][0] = pkg;
      pairs[npairs][1] = core;
      npairs++;
    }
  }
  cpu->physical_cores = (int)npairs;
  long long khz;
  if (read_int64("/sys/devices/system/cpu/cpu0/cpufreq/base_frequency", &khz) ==
      0)
    cpu->base_mhz = (double)khz / 1000.0;
  if (read_int64("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq",
                 &khz) == 0)
    cpu->max_mhz = (double)khz / 1000.0;
  os->have_cpufreq =
      exists("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq");
  cpu->modes = (1u << NL_CPU_MODE_COUNT) - 1; /* Linux has every mode */
  (void)logical;
}

static void read_os_release(nl_system_sample *sys, nl_metrics_os *os) {
  snprintf(sys->os_name, sizeof sys->os_name, "Linux");
  sys->os_version[0] = '\0';
  if (slurp(os, "/etc/os-release") <= 0 &&
      slurp(os, "/usr/lib/os-release") <= 0)
    return;
  for (char *line = os->buf; line && *line;) {
    char *eol = strchr(line, '\n');
    size_t len = eol ? (size_t)(eol - line) : strlen(line);
    char *target = NULL;
    size_t cap = 0, skip = 0;
    if (strncmp(line, "NAME=", 5) == 0) {
      target = sys->os_name, cap = sizeof sys->os_name, skip = 5;
    } else if (strncmp(line, "VERSION_ID=", 11) == 0) {
      target = sys->os_version, cap = sizeof sys->os_version, skip = 11;
    }
    if (target != NULL) {
      const char *v = line + skip;
      size_t vlen = len - skip;
      if (vlen >= 2 && (v[0] == '"' || v[0] == '\'') && v[vlen - 1] == v[0]) {
        v++;
        vlen -= 2;
      }
      nl_metrics_copy_n(target, cap, v, vlen);
    }
    line = eol ? eol + 1 : NULL;
  }
}

static void read_system_facts(nl_metrics *m) {
  nl_system_sample *sys = &m->snap.system;
  read_os_release(sys, m->os);
  const char *model_paths[] = {"/sys/firmware/devicetree/base/model",
                               "/sys/devices/virtual/dmi/id/product_name"};
  for (size_t i = 0; i < 2 && !sys->model[0]; i++) {
    char buf[128];
    ssize_t n = read_small(model_paths[i], buf, sizeof buf);
    /* The device-tree string ends in a NUL. */
    if (n > 0) {
      buf[strcspn(buf, "\n")] = '\0';
      nl_metrics_copy(sys->model, sizeof sys->model, buf);
    }
  }
  struct utsname u;
  if (uname(&u) == 0) {
    nl_metrics_copy(sys->sysname, sizeof sys->sysname, u.sysname);
    nl_metrics_copy(sys->kernel, sizeof sys->kernel, u.release);
    nl_metrics_copy(sys->kernel_version, sizeof sys->kernel_version, u.version);
    nl_metrics_copy(sys->arch, sizeof sys->arch, u.machine);
  }
  /* Linux on Apple Silicon (Asahi) tells by its device-tree model. */
  sys->apple_silicon = strcmp(sys->arch, "aarch64") == 0 &&
                       strncmp(sys->model, "Apple ", 6) == 0;
}

/* Sensors are found once, by index: thermal_zone0.., hwmon0/temp1_input..
 * A gap of a few indices ends the search. */
static void find_sensors(nl_metrics_os *os) {
  os->sensor_count = 0;
  char path[256], buf[96];
  for (int z = 0; z < 256 && os->sensor_count < SENSORS_MAX; z++) {
    snprintf(path, sizeof path, "%s/class/thermal/thermal_zone%d/temp",
             os->sysfs, z);
    if (!exists(path)) {
      if (z > 8)
        break;
      continue;
    }
    sensor_spec *s = &os->sensors[os->sensor_count++];
    nl_metrics_copy(s->path, sizeof s->path, path);
    snprintf(path, sizeof path, "%s/class/thermal/thermal_zone%d/type",
             os->sysfs, z);
    if (read_small(path, buf, sizeof buf) <= 0)
      snprintf(buf, sizeof buf, "zone%d", z);
    nl_metrics_copy(s->name, sizeof s->name, buf);
    snprintf(s->source, sizeof s->source, "thermal_zone");
    snprintf(s->chip, sizeof s->chip, "%d", z);
  }
  for (int h = 0; h < 64 && os->sensor_count < SENSORS_MAX; h++) {
    char chip[32];
    snprintf(path, sizeof path, "%s/class/hwmon/hwmon%d/name", os->sysfs, h);
    if (read_small(path, chip, sizeof chip) <= 0) {
      if (h > 8)
        break;
      continue;
    }
    for (int t = 1; t < 64 && os->sensor_count < SENSORS_MAX; t++) {
      snprintf(path, sizeof path, "%s/class/hwmon/hwmon%d/temp%d_input",
               os->sysfs, h, t);
      if (!exists(path)) {
        if (t > 8)
          break;
        continue;
      }
      sensor_spec *s = &os->sensors[os->sensor_count++];
      nl_metrics_copy(s->path, sizeof s->path, path);
      snprintf(path, sizeof path, "%s/class/hwmon/hwmon%d/temp%d_label",
               os->sysfs, h, t);
      char label[48]; /* chip (32) + '/' + label fit the name (96) */
      if (read_small(path, label, sizeof label) <= 0)
        snprintf(label, sizeof label, "temp%d", t);
      snprintf(s->name, sizeof s->name, "%s/%s", chip, label);
      snprintf(s->source, sizeof s->source, "hwmon");
      nl_metrics_copy(s->chip, sizeof s->chip, chip);
    }
  }
}

int nl_metrics_os_open(nl_metrics *m) {
  nl_metrics_os *os = calloc(1, sizeof *os);
  if (os == NULL)
    return -ENOMEM;
  m->os = os;
  nl_metrics_copy(os->sysfs, sizeof os->sysfs, "/sys");
  long hz = sysconf(_SC_CLK_TCK);
  os->ticks_per_second = hz > 0 ? (double)hz : 100.0;
  os->page_size = sysconf(_SC_PAGESIZE);
  os->netlink = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  read_cpu_facts(m);
  read_system_facts(m);
  find_sensors(os);
  /* The process start time, for the self group: field 22 of stat. */
  os->self_start_time = NAN;
  double btime = NAN;
  if (slurp(os, "/proc/stat") > 0)
    nl_procfs_stat_btime(os->buf, &btime);
  if (slurp(os, "/proc/self/stat") > 0) {
    char *p = strrchr(os->buf, ')');
    for (int field = 2; p && field < 22; field++)
      p = strchr(p + 1, ' ');
    if (p && !isnan(btime))
      os->self_start_time = btime + strtod(p + 1, NULL) / os->ticks_per_second;
  }
  return 0;
}

int nl_metrics_linux_set_sysfs(nl_metrics *m, const char *root) {
  if (strlen(root) >= sizeof m->os->sysfs)
    return -ENAMETOOLONG;
  nl_metrics_copy(m->os->sysfs, sizeof m->os->sysfs, root);
  m->os->kind_count = 0;
  find_sensors(m->os);
  return 0;
}

void nl_metrics_os_close(nl_metrics *m) {
  if (m->os == NULL)
    return;
  if (m->os->netlink >= 0)
    close(m->os->netlink);
  free(m->os->buf);
  free(m->os->kinds);
  free(m->os);
  m->os = NULL;
}

/* ---- samples ---- */

static void set_core_mhz(void *ud, int processor, double mhz) {
  nl_cpu_sample *cpu = ud;
  for (size_t i = 0; i < cpu->core_count; i++) {
    if (cpu->cores[i].index == processor)
      cpu->cores[i].mhz = mhz;
  }
}

static void cpu_current_mhz(nl_metrics *m) {
  nl_cpu_sample *cpu = &m->snap.cpu;
  nl_metrics_os *os = m->os;
  for (size_t i = 0; i < cpu->core_count; i++)
    cpu->cores[i].mhz = NAN;
  if (os->have_cpufreq) {
    for (size_t i = 0; i < cpu->core_count; i++) {
      char path[96];
      long long khz;
      snprintf(path, sizeof path,
               "/sys/devices/system/cpu/cpu%d/cpufreq/scaling_cur_freq",
               cpu->cores[i].index);
      if (read_int64(path, &khz) == 0)
        cpu->cores[i].mhz = (double)khz / 1000.0;
    }
    return;
  }
  /* Without cpufreq (virtual machines) /proc/cpuinfo has "cpu MHz" per
   * processor; x86 only. */
  if (slurp(os, "/proc/cpuinfo") > 0)
    nl_procfs_cpuinfo_mhz(os->buf, set_core_mhz, cpu);
}

typedef struct {
  nl_metrics *m;
  size_t count;
} cpu_fill;

static int take_cpu_line(void *ud, int index, const unsigned long long *ticks) {
  cpu_fill *fill = ud;
  nl_cpu_sample *cpu = &fill->m->snap.cpu;
  nl_cpu_times *t = &cpu->total;
  if (index >= 0) {
    if (nl_metrics_reserve((void **)&cpu->cores, &cpu->core_cap,
                           fill->count + 1, sizeof *cpu->cores) != 0)
      return -ENOMEM;
    t = &cpu->cores[fill->count++];
  }
  t->index = index;
  for (int i = 0; i < NL_CPU_MODE_COUNT; i++)
    t->seconds[i] = (double)ticks[i] / fill->m->os->ticks_per_second;
  return 0;
}

static int sample_cpu(nl_metrics *m) {
  nl_cpu_sample *cpu = &m->snap.cpu;
  ssize_t n = slurp(m->os, "/proc/stat");
  if (n <= 0)
    return n == -ENOMEM ? -ENOMEM : -ENOTSUP;
  cpu_fill fill = {m, 0};
  int cores = nl_procfs_stat_cpu(m->os->buf, take_cpu_line, &fill);
  if (cores == -ENOMEM)
    return -ENOMEM;
  if (cores <= 0)
    return -ENOTSUP;
  cpu->core_count = fill.count;
  cpu->logical_cores = (int)fill.count;
  cpu->total.mhz = NAN;
  cpu_current_mhz(m);
  return 0;
}

static int sample_load(nl_metrics *m) {
  char buf[128];
  if (read_small("/proc/loadavg", buf, sizeof buf) <= 0 ||
      nl_procfs_loadavg(buf, &m->snap.load) != 0)
    return -ENOTSUP;
  return 0;
}

static int sample_memory(nl_metrics *m) {
  ssize_t n = slurp(m->os, "/proc/meminfo");
  if (n <= 0)
    return n == -ENOMEM ? -ENOMEM : -ENOTSUP;
  return nl_procfs_meminfo(m->os->buf, &m->snap.memory) == 0 ? 0 : -ENOTSUP;
}

nl_link_kind nl_metrics_linux_link_kind(const char *sysfs, const char *name,
                                        unsigned type) {
  char path[256], target[256];
  if (type == 772) /* ARPHRD_LOOPBACK */
    return NL_LINK_LOOPBACK;
  snprintf(path, sizeof path, "%s/class/net/%s/bridge", sysfs, name);
  if (exists(path))
    return NL_LINK_BRIDGE;
  snprintf(path, sizeof path, "%s/class/net/%s/wireless", sysfs, name);
  char phy[256];
  snprintf(phy, sizeof phy, "%s/class/net/%s/phy80211", sysfs, name);
  if (exists(path) || exists(phy))
    return NL_LINK_WIFI;
  snprintf(path, sizeof path, "%s/class/net/%s/device/driver", sysfs, name);
  ssize_t n = readlink(path, target, sizeof target - 1);
  if (n <= 0)
    return NL_LINK_VIRTUAL; /* no device behind it: veth, tun, bond, ifb */
  target[n] = '\0';
  const char *driver = strrchr(target, '/');
  driver = driver ? driver + 1 : target;
  if (strcmp(driver, "thunderbolt-net") == 0 ||
      strcmp(driver, "thunderbolt_net") == 0)
    return NL_LINK_THUNDERBOLT;
  if (type == 1) /* ARPHRD_ETHER */
    return NL_LINK_ETHERNET;
  return NL_LINK_OTHER;
}

/* The kind of a link does not change while it exists: it is looked up in
 * sysfs once per (index, name) and kept. */
static nl_link_kind cached_kind(nl_metrics_os *os, int ifindex,
                                const char *name, unsigned type) {
  for (size_t i = 0; i < os->kind_count; i++) {
    if (os->kinds[i].ifindex == ifindex && strcmp(os->kinds[i].name, name) == 0)
      return os->kinds[i].kind;
  }
  nl_link_kind kind = nl_metrics_linux_link_kind(os->sysfs, name, type);
  if (nl_metrics_reserve((void **)&os->kinds, &os->kind_cap, os->kind_count + 1,
                         sizeof *os->kinds) == 0) {
    kind_entry *e = &os->kinds[os->kind_count++];
    e->ifindex = ifindex;
    nl_metrics_copy(e->name, sizeof e->name, name);
    e->kind = kind;
  }
  return kind;
}

typedef void (*netlink_cb)(nl_metrics *m, struct nlmsghdr *h);

/* Sends one dump request (RTM_GETLINK or RTM_GETADDR) and hands every reply
 * message to cb. Returns 0, or -1 when the kernel could not be asked. */
static int netlink_dump(nl_metrics *m, int type, netlink_cb cb) {
  nl_metrics_os *os = m->os;
  if (os->netlink < 0)
    return -1;
  struct {
    struct nlmsghdr h;
    struct rtgenmsg g;
  } req;
  memset(&req, 0, sizeof req);
  req.h.nlmsg_len = NLMSG_LENGTH(sizeof req.g);
  req.h.nlmsg_type = (unsigned short)type;
  req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.h.nlmsg_seq = ++os->netlink_seq;
  req.g.rtgen_family = AF_UNSPEC;
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  if (sendto(os->netlink, &req, req.h.nlmsg_len, 0, (struct sockaddr *)&kernel,
             sizeof kernel) < 0)
    return -1;
  for (;;) {
    ssize_t n = recv(os->netlink, os->netlink_buf, sizeof os->netlink_buf, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    for (struct nlmsghdr *h = (struct nlmsghdr *)os->netlink_buf;
         NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_seq != os->netlink_seq)
        continue;
      if (h->nlmsg_type == NLMSG_DONE)
        return 0;
      if (h->nlmsg_type == NLMSG_ERROR)
        return -1;
      cb(m, h);
    }
  }
}

static nl_netif *netif_by_index(nl_network_sample *net, int ifindex) {
  for (size_t i = 0; i < net->count; i++) {
    if (net->ifs[i].ifindex == ifindex)
      return &net->ifs[i];
  }
  return NULL;
}

/* One RTM_NEWLINK: name, flags, MTU, MAC and the 64-bit counters. */
static void take_link(nl_metrics *m, struct nlmsghdr *h) {
  nl_network_sample *net = &m->snap.network;
  if (h->nlmsg_type != RTM_NEWLINK)
    return;
  struct ifinfomsg *info = NLMSG_DATA(h);
  if (nl_metrics_reserve((void **)&net->ifs, &net->cap, net->count + 1,
                         sizeof *net->ifs) != 0) {
    m->os->failed = true;
    return;
  }
  nl_netif *nif = &net->ifs[net->count];
  memset(nif, 0, sizeof *nif);
  nif->ifindex = info->ifi_index;
  nif->up = (info->ifi_flags & IFF_UP) != 0;
  nif->speed_mbps = -1;
  bool have_name = false, have_stats = false;
  int len = (int)IFLA_PAYLOAD(h);
  for (struct rtattr *rta = IFLA_RTA(info); RTA_OK(rta, len);
       rta = RTA_NEXT(rta, len)) {
    switch (rta->rta_type) {
    case IFLA_IFNAME:
      nl_metrics_copy_n(nif->name, sizeof nif->name, RTA_DATA(rta),
                        strnlen(RTA_DATA(rta), RTA_PAYLOAD(rta)));
      have_name = nif->name[0] != '\0';
      break;
    case IFLA_MTU:
      if (RTA_PAYLOAD(rta) >= sizeof(uint32_t))
        nif->mtu = (int)*(uint32_t *)RTA_DATA(rta);
      break;
    case IFLA_ADDRESS:
      if (RTA_PAYLOAD(rta) == 6) {
        const unsigned char *a = RTA_DATA(rta);
        if (a[0] | a[1] | a[2] | a[3] | a[4] | a[5])
          snprintf(nif->mac, sizeof nif->mac, "%02x:%02x:%02x:%02x:%02x:%02x",
                   a[0], a[1], a[2], a[3], a[4], a[5]);
      }
      break;
    case IFLA_STATS64:
      if (RTA_PAYLOAD(rta) >= sizeof(struct rtnl_link_stats64)) {
        struct rtnl_link_stats64 st;
        memcpy(&st, RTA_DATA(rta), sizeof st);
        nif->counters[NL_NET_RX_BYTES] = st.rx_bytes;
        nif->counters[NL_NET_TX_BYTES] = st.tx_bytes;
        nif->counters[NL_NET_RX_PACKETS] = st.rx_packets;
        nif->counters[NL_NET_TX_PACKETS] = st.tx_packets;
        nif->counters[NL_NET_RX_ERRORS] = st.rx_errors;
        nif->counters[NL_NET_TX_ERRORS] = st.tx_errors;
        /* As /proc/net/dev and node_exporter count receive drops. */
        nif->counters[NL_NET_RX_DROPS] = st.rx_dropped + st.rx_missed_errors;
        nif->counters[NL_NET_TX_DROPS] = st.tx_dropped;
        have_stats = true;
      }
      break;
    default:
      break;
    }
  }
  if (!have_name || !have_stats)
    return;
  nif->kind = cached_kind(m->os, nif->ifindex, nif->name, info->ifi_type);
  /* The speed the driver reports: sysfs reads EINVAL while the link is
   * down and -1 when unknown. Virtual devices report one too, and it
   * matters: a bond's is the sum of its members', a VLAN's its parent's
   * (a veth's is a nominal 10000). */
  if (nif->kind != NL_LINK_LOOPBACK) {
    char path[256];
    long long v;
    snprintf(path, sizeof path, "%s/class/net/%s/speed", m->os->sysfs,
             nif->name);
    if (read_int64(path, &v) == 0 && v > 0)
      nif->speed_mbps = v;
  }
  net->count++;
}

/* One RTM_NEWADDR: an address of an interface already listed. */
static void take_address(nl_metrics *m, struct nlmsghdr *h) {
  if (h->nlmsg_type != RTM_NEWADDR)
    return;
  struct ifaddrmsg *a = NLMSG_DATA(h);
  nl_netif *nif = netif_by_index(&m->snap.network, (int)a->ifa_index);
  if (nif == NULL)
    return;
  const void *addr = NULL, *local = NULL;
  int len = (int)IFA_PAYLOAD(h);
  for (struct rtattr *rta = IFA_RTA(a); RTA_OK(rta, len);
       rta = RTA_NEXT(rta, len)) {
    if (rta->rta_type == IFA_ADDRESS)
      addr = RTA_DATA(rta);
    else if (rta->rta_type == IFA_LOCAL)
      local = RTA_DATA(rta);
  }
  if (a->ifa_family == AF_INET && (local || addr) &&
      nif->ipv4_count < NL_ADDRS_MAX) {
    /* IFA_LOCAL is ours; IFA_ADDRESS is the peer on point-to-point. */
    nif->ipv4_prefix[nif->ipv4_count] = a->ifa_prefixlen;
    inet_ntop(AF_INET, local ? local : addr, nif->ipv4[nif->ipv4_count++],
              sizeof nif->ipv4[0]);
  } else if (a->ifa_family == AF_INET6 && addr &&
             nif->ipv6_count < NL_ADDRS_MAX) {
    nif->ipv6_prefix[nif->ipv6_count] = a->ifa_prefixlen;
    inet_ntop(AF_INET6, addr, nif->ipv6[nif->ipv6_count++],
              sizeof nif->ipv6[0]);
  }
}

/* Two netlink dumps give every interface, its counters and its addresses:
 * far cheaper than a dozen sysfs files per interface. */
static int sample_network(nl_metrics *m) {
  nl_network_sample *net = &m->snap.network;
  net->count = 0;
  m->os->failed = false;
  if (netlink_dump(m, RTM_GETLINK, take_link) != 0)
    return -ENOTSUP;
  if (m->os->failed)
    return -ENOMEM;
  netlink_dump(m, RTM_GETADDR, take_address);
  return 0;
}

static bool pseudo_mount_point(const char *mount) {
  static const char *const prefixes[] = {"/proc", "/sys", "/dev"};
  for (size_t i = 0; i < 3; i++) {
    size_t n = strlen(prefixes[i]);
    if (strncmp(mount, prefixes[i], n) == 0 &&
        (mount[n] == '\0' || mount[n] == '/'))
      return true;
  }
  return false;
}

typedef struct {
  nl_metrics *m;
  size_t count;
} storage_fill;

static int take_mount(void *ud, const nl_mount_entry *e) {
  storage_fill *fill = ud;
  nl_storage_sample *st = &fill->m->snap.storage;
  if (nl_metrics_fstype_excluded(fill->m, e->fstype) ||
      pseudo_mount_point(e->mount))
    return 0;
  nl_filesystem fs;
  if (!nl_metrics_statvfs(&fs, e->device, e->mount, e->fstype))
    return 0;
  /* A later mount on the same point hides the earlier one. */
  size_t slot = fill->count;
  for (size_t i = 0; i < fill->count; i++) {
    if (strcmp(st->fs[i].mount, e->mount) == 0)
      slot = i;
  }
  if (slot == fill->count) {
    if (nl_metrics_reserve((void **)&st->fs, &st->fs_cap, fill->count + 1,
                           sizeof *st->fs) != 0)
      return -ENOMEM;
    fill->count++;
  }
  st->fs[slot] = fs;
  return 0;
}

static int sample_filesystems(nl_metrics *m) {
  ssize_t n = slurp(m->os, "/proc/self/mounts");
  if (n <= 0)
    return n == -ENOMEM ? -ENOMEM : -ENOTSUP;
  storage_fill fill = {m, 0};
  int rc = nl_procfs_mounts(m->os->buf, take_mount, &fill);
  if (rc != 0)
    return rc;
  m->snap.storage.fs_count = fill.count;
  return 0;
}

static bool whole_disk(const char *name) {
  static const char *const skip[] = {"loop", "ram", "zram", "fd"};
  for (size_t i = 0; i < 4; i++) {
    size_t n = strlen(skip[i]);
    if (strncmp(name, skip[i], n) == 0 && isdigit((unsigned char)name[n]))
      return false;
  }
  if (strchr(name, '/') != NULL)
    return false;
  char path[96];
  snprintf(path, sizeof path, "/sys/block/%s", name);
  return exists(path); /* partitions are not in /sys/block */
}

static int take_disk(void *ud, const nl_diskstat *d) {
  storage_fill *fill = ud;
  nl_storage_sample *st = &fill->m->snap.storage;
  if (!whole_disk(d->name))
    return 0;
  if (nl_metrics_reserve((void **)&st->disks, &st->disk_cap, fill->count + 1,
                         sizeof *st->disks) != 0)
    return -ENOMEM;
  nl_disk *disk = &st->disks[fill->count++];
  nl_metrics_copy(disk->name, sizeof disk->name, d->name);
  /* Sectors are 512 bytes whatever the device's block size. */
  disk->counters[NL_DISK_READS] = d->reads;
  disk->counters[NL_DISK_READ_BYTES] = d->read_sectors * 512;
  disk->counters[NL_DISK_WRITES] = d->writes;
  disk->counters[NL_DISK_WRITE_BYTES] = d->write_sectors * 512;
  disk->counters[NL_DISK_BUSY_MS] = d->io_ms;
  return 0;
}

static int sample_disks(nl_metrics *m) {
  nl_storage_sample *st = &m->snap.storage;
  st->disk_count = 0;
  ssize_t n = slurp(m->os, "/proc/diskstats");
  if (n <= 0)
    return n == -ENOMEM ? -ENOMEM : 0;
  storage_fill fill = {m, 0};
  int rc = nl_procfs_diskstats(m->os->buf, take_disk, &fill);
  st->disk_count = fill.count;
  return rc;
}

static int sample_storage(nl_metrics *m) {
  int rc = sample_filesystems(m);
  if (rc != 0)
    return rc;
  return sample_disks(m);
}

static int sample_system(nl_metrics *m) {
  nl_system_sample *sys = &m->snap.system;
  if (gethostname(sys->hostname, sizeof sys->hostname) != 0)
    sys->hostname[0] = '\0';
  sys->hostname[sizeof sys->hostname - 1] = '\0';
  char buf[128];
  sys->uptime = NAN;
  if (read_small("/proc/uptime", buf, sizeof buf) > 0)
    sys->uptime = strtod(buf, NULL);
  sys->boot_time = NAN;
  ssize_t n = slurp(m->os, "/proc/stat");
  if (n == -ENOMEM)
    return -ENOMEM;
  if (n > 0)
    nl_procfs_stat_btime(m->os->buf, &sys->boot_time);
  return 0;
}

static int sample_thermal(nl_metrics *m) {
  nl_metrics_os *os = m->os;
  nl_thermal_sample *th = &m->snap.thermal;
  if (nl_metrics_reserve((void **)&th->sensors, &th->cap, os->sensor_count,
                         sizeof *th->sensors) != 0)
    return -ENOMEM;
  size_t count = 0;
  for (size_t i = 0; i < os->sensor_count; i++) {
    long long milli;
    if (read_int64(os->sensors[i].path, &milli) != 0)
      continue;
    nl_sensor *s = &th->sensors[count++];
    nl_metrics_copy(s->name, sizeof s->name, os->sensors[i].name);
    nl_metrics_copy(s->source, sizeof s->source, os->sensors[i].source);
    nl_metrics_copy(s->chip, sizeof s->chip, os->sensors[i].chip);
    s->celsius = (double)milli / 1000.0;
  }
  th->count = count;
  return count > 0 ? 0 : -ENOTSUP;
}

static int sample_self(nl_metrics *m) {
  nl_self_sample *self = &m->snap.self;
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return -ENOTSUP;
  self->cpu_seconds = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                      (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
  char buf[128];
  unsigned long long size, resident;
  self->rss_bytes = NL_ABSENT;
  if (read_small("/proc/self/statm", buf, sizeof buf) > 0 &&
      sscanf(buf, "%llu %llu", &size, &resident) == 2)
    self->rss_bytes = resident * (uint64_t)m->os->page_size;
  self->start_time = m->os->self_start_time;
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
  case NL_METRICS_THERMAL:
    return sample_thermal(m);
  case NL_METRICS_SELF:
    return sample_self(m);
  default:
    return -ENOTSUP;
  }
}
