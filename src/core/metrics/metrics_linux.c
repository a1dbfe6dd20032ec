/* Linux: /proc, /sys, statvfs, and netlink dumps for interfaces. Files are
 * read with open/read into one reused buffer (stdio would allocate), and
 * sensors are found by index rather than by listing directories, so a
 * steady-state sample makes no heap allocation. */
#include "metrics_linux.h"
#include "procfs.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <math.h>
#include <net/if.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

/* The files of /proc and /sys are kept open and read again from offset 0:
 * the kernel makes their text afresh for each read from the start, and a
 * scrape saves an open and a close (a path walk) per file, about half of
 * its cost. Only files on procfs and sysfs are kept: elsewhere (fixture
 * trees, os-release) a file can be replaced and must be opened again. The
 * cache is shared by every collector of the process, keyed by a 64-bit
 * hash of the path, bounded, and locked. A kept file whose device is gone
 * is closed and opened afresh once. */
#define FD_CACHE_SIZE 160
#define PROC_SUPER_MAGIC_VALUE 0x9fa0
#define SYSFS_MAGIC_VALUE 0x62656572

static struct {
  uint64_t key; /* 0: free */
  int fd;
} fd_cache[FD_CACHE_SIZE];
static size_t fd_cache_next;
static pthread_mutex_t fd_cache_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t path_key(const char *path) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)path; *p; p++)
    h = (h ^ *p) * 1099511628211ULL;
  return h ? h : 1;
}

static bool kernel_fs(int fd) {
  struct statfs sf;
  return fstatfs(fd, &sf) == 0 &&
         ((unsigned long)sf.f_type == PROC_SUPER_MAGIC_VALUE ||
          (unsigned long)sf.f_type == SYSFS_MAGIC_VALUE);
}

/* Under fd_cache_lock: a kept descriptor for path, or a new one (kept if
 * on procfs or sysfs; *kept says which). -errno when it cannot be opened. */
static int open_kept(const char *path, uint64_t key, bool *kept) {
  for (size_t i = 0; i < FD_CACHE_SIZE; i++) {
    if (fd_cache[i].key == key) {
      *kept = true;
      return fd_cache[i].fd;
    }
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  *kept = kernel_fs(fd);
  if (*kept) {
    size_t slot = fd_cache_next++ % FD_CACHE_SIZE;
    if (fd_cache[slot].key != 0)
      close(fd_cache[slot].fd);
    fd_cache[slot].key = key;
    fd_cache[slot].fd = fd;
  }
  return fd;
}

static void forget_kept(uint64_t key) {
  for (size_t i = 0; i < FD_CACHE_SIZE; i++) {
    if (fd_cache[i].key == key) {
      close(fd_cache[i].fd);
      fd_cache[i].key = 0;
    }
  }
}

/* Reads the file from offset 0 into *buf, NUL-terminated: the whole file,
 * growing *buf, if grow; else one read (a sysfs attribute comes whole).
 * Returns the length or -errno. */
static ssize_t read_from_start(int fd, char **buf, size_t *cap, bool grow) {
  size_t len = 0;
  for (;;) {
    if (len + 1 >= *cap) {
      if (!grow)
        break;
      size_t next = *cap ? *cap * 2 : 65536;
      char *grown = realloc(*buf, next);
      if (grown == NULL)
        return -ENOMEM;
      *buf = grown;
      *cap = next;
    }
    size_t room = *cap - len - 1;
    ssize_t n = pread(fd, *buf + len, room, (off_t)len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    len += (size_t)n;
    /* A read that did not fill the room was the last: asking again would
     * have the kernel make a seq_file's text again up to the offset. */
    if ((size_t)n < room || !grow)
      break;
  }
  (*buf)[len] = '\0';
  return (ssize_t)len;
}

static ssize_t read_path(const char *path, char **buf, size_t *cap, bool grow) {
  uint64_t key = path_key(path);
  pthread_mutex_lock(&fd_cache_lock);
  ssize_t n = -EIO;
  for (int attempt = 0; attempt < 2; attempt++) {
    bool kept = false;
    int fd = open_kept(path, key, &kept);
    if (fd < 0) {
      n = fd;
      break;
    }
    n = read_from_start(fd, buf, cap, grow);
    if (!kept)
      close(fd);
    /* A kept file whose device or process is gone: once more, afresh.
     * Other errors (EINVAL from a down link's speed) are the answer. */
    if (n >= 0 || !kept ||
        (n != -ENODEV && n != -ENXIO && n != -ESTALE && n != -ESRCH))
      break;
    forget_kept(key);
  }
  pthread_mutex_unlock(&fd_cache_lock);
  return n;
}

ssize_t nl_linux_slurp(nl_metrics_os *os, const char *path) {
  return read_path(path, &os->buf, &os->cap, true);
}

ssize_t nl_linux_read_small(const char *path, char *buf, size_t cap) {
  size_t room = cap;
  ssize_t n = read_path(path, &buf, &room, false);
  if (n < 0)
    return n;
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
    n--;
  buf[n] = '\0';
  return n;
}

ssize_t nl_linux_read_once(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  size_t room = cap;
  ssize_t n = read_from_start(fd, &buf, &room, false);
  close(fd);
  return n;
}

int nl_linux_read_int64(const char *path, long long *out) {
  char buf[64];
  if (nl_linux_read_small(path, buf, sizeof buf) <= 0)
    return -1;
  char *end;
  errno = 0;
  long long v = strtoll(buf, &end, 0);
  if (errno != 0 || end == buf)
    return -1;
  *out = v;
  return 0;
}

int nl_linux_read_double(const char *path, double *out) {
  char buf[64];
  if (nl_linux_read_small(path, buf, sizeof buf) <= 0)
    return -1;
  char *end;
  double v = strtod(buf, &end);
  if (end == buf)
    return -1;
  *out = v;
  return 0;
}

static bool exists(const char *path) { return access(path, F_OK) == 0; }

bool nl_linux_read_proc(nl_metrics *m, const char *rel) {
  return nl_linux_slurp(m->os, nl_linux_path(m, NL_HOST_PROC, "%s", rel)) > 0;
}

nl_row *nl_linux_add_row(nl_metrics_os *os, size_t *count, const char *name) {
  if (nl_metrics_reserve((void **)&os->rows, &os->row_cap, *count + 1,
                         sizeof *os->rows) != 0)
    return NULL;
  nl_row *row = &os->rows[(*count)++];
  memset(row, 0, sizeof *row);
  nl_metrics_copy(row->name, sizeof row->name, name);
  return row;
}

nl_row *nl_linux_add_cpu_row(nl_metrics_os *os, size_t *count, int cpu) {
  char name[16];
  snprintf(name, sizeof name, "%d", cpu);
  return nl_linux_add_row(os, count, name);
}

const char *nl_linux_path(nl_metrics *m, nl_host base, const char *fmt, ...) {
  const char *root = base == NL_HOST_PROC  ? m->host_proc
                     : base == NL_HOST_SYS ? m->host_sys
                     : base == NL_HOST_RUN ? m->host_run
                                           : m->host_root;
  char *path = m->os->path;
  /* "/" joined with "/etc" is "/etc", not "//etc". */
  int n = strcmp(root, "/") == 0 ? 0 : snprintf(path, NL_PATH_MAX, "%s", root);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(path + n, NL_PATH_MAX - (size_t)n, fmt, ap);
  va_end(ap);
  return path;
}

static int compare_names(const void *a, const void *b) {
  return strcmp(((const nl_dir_name *)a)->name, ((const nl_dir_name *)b)->name);
}

void nl_linux_sort(void *base, size_t n, size_t size,
                   int (*cmp)(const void *, const void *)) {
  char held[NL_SORT_ELEMENT_MAX];
  char *a = base;
  if (size > sizeof held)
    return;
  /* Insertion sort: the lists are short, and glibc's qsort may malloc. */
  for (size_t i = 1; i < n; i++) {
    size_t j = i;
    memcpy(held, a + i * size, size);
    while (j > 0 && cmp(a + (j - 1) * size, held) > 0) {
      memcpy(a + j * size, a + (j - 1) * size, size);
      j--;
    }
    memcpy(a + j * size, held, size);
  }
}

int nl_linux_list_dir(nl_metrics_os *os, const char *path, size_t limit,
                      bool sorted) {
  os->name_count = 0;
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  char buf[8192] __attribute__((aligned(8)));
  for (;;) {
    long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    for (long at = 0; at < n;) {
      /* struct linux_dirent64: ino (8), off (8), reclen (2), type, name */
      unsigned short reclen;
      memcpy(&reclen, buf + at + 16, sizeof reclen);
      const char *name = buf + at + 19;
      at += reclen;
      if (reclen == 0)
        break;
      if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
          strlen(name) >= sizeof os->names[0].name || os->name_count >= limit)
        continue;
      if (nl_metrics_reserve((void **)&os->names, &os->name_cap,
                             os->name_count + 1, sizeof *os->names) != 0) {
        close(fd);
        return -ENOMEM;
      }
      nl_metrics_copy(os->names[os->name_count++].name,
                      sizeof os->names[0].name, name);
    }
  }
  close(fd);
  if (sorted)
    nl_linux_sort(os->names, os->name_count, sizeof *os->names, compare_names);
  return (int)os->name_count;
}

/* ---- static facts, read once ---- */

static void read_cpu_facts(nl_metrics *m) {
  nl_metrics_os *os = m->os;
  nl_cpu_sample *cpu = &m->snap.cpu;
  cpu->base_mhz = cpu->max_mhz = NAN;
  if (nl_linux_slurp(os, nl_linux_path(m, NL_HOST_PROC, "/cpuinfo")) > 0) {
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
    long long pkg, core;
    if (nl_linux_read_int64(nl_linux_path(m, NL_HOST_SYS,
                                          "/devices/system/cpu/cpu%d/topology/"
                                          "core_id",
                                          i),
                            &core) != 0) {
      if (!exists(
              nl_linux_path(m, NL_HOST_SYS, "/devices/system/cpu/cpu%d", i)))
        break;
      continue; /* offline CPU: no topology */
    }
    logical++;
    if (nl_linux_read_int64(nl_linux_path(m, NL_HOST_SYS,
                                          "/devices/system/cpu/cpu%d/topology/"
                                          "physical_package_id",
                                          i),
                            &pkg) != 0)
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
  if (nl_linux_read_int64(
          nl_linux_path(m, NL_HOST_SYS,
                        "/devices/system/cpu/cpu0/cpufreq/base_frequency"),
          &khz) == 0)
    cpu->base_mhz = (double)khz / 1000.0;
  if (nl_linux_read_int64(
          nl_linux_path(m, NL_HOST_SYS,
                        "/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"),
          &khz) == 0)
    cpu->max_mhz = (double)khz / 1000.0;
  os->have_cpufreq = exists(nl_linux_path(
      m, NL_HOST_SYS, "/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq"));
  cpu->modes = (1u << NL_CPU_MODE_COUNT) - 1; /* Linux has every mode */
  (void)logical;
}

/* os-release(5): KEY=value lines, the value perhaps quoted. The keys are
 * node_os_info's labels. */
static void read_os_release(nl_metrics *m) {
  nl_system_sample *sys = &m->snap.system;
  nl_metrics_os *os = m->os;
  const struct {
    const char *key;
    char *target;
    size_t cap;
  } keys[] = {
      {"NAME", sys->os_name, sizeof sys->os_name},
      {"VERSION_ID", sys->os_version, sizeof sys->os_version},
      {"ID", sys->os_id, sizeof sys->os_id},
      {"ID_LIKE", sys->os_id_like, sizeof sys->os_id_like},
      {"PRETTY_NAME", sys->os_pretty_name, sizeof sys->os_pretty_name},
      {"VERSION", sys->os_version_full, sizeof sys->os_version_full},
      {"VERSION_CODENAME", sys->os_codename, sizeof sys->os_codename},
      {"BUILD_ID", sys->os_build_id, sizeof sys->os_build_id},
      {"VARIANT", sys->os_variant, sizeof sys->os_variant},
      {"VARIANT_ID", sys->os_variant_id, sizeof sys->os_variant_id},
      {"IMAGE_ID", sys->os_image_id, sizeof sys->os_image_id},
      {"IMAGE_VERSION", sys->os_image_version, sizeof sys->os_image_version},
  };
  for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
    keys[k].target[0] = '\0';
  snprintf(sys->os_name, sizeof sys->os_name, "Linux");
  if (nl_linux_slurp(os, nl_linux_path(m, NL_HOST_ROOT, "/etc/os-release")) <=
          0 &&
      nl_linux_slurp(
          os, nl_linux_path(m, NL_HOST_ROOT, "/usr/lib/os-release")) <= 0)
    return;
  for (char *line = os->buf; line && *line;) {
    char *eol = strchr(line, '\n');
    size_t len = eol ? (size_t)(eol - line) : strlen(line);
    char *eq = memchr(line, '=', len);
    for (size_t k = 0; eq && k < sizeof keys / sizeof keys[0]; k++) {
      size_t klen = strlen(keys[k].key);
      if ((size_t)(eq - line) != klen || strncmp(line, keys[k].key, klen) != 0)
        continue;
      const char *v = eq + 1;
      size_t vlen = len - klen - 1;
      if (vlen >= 2 && (v[0] == '"' || v[0] == '\'') && v[vlen - 1] == v[0]) {
        v++;
        vlen -= 2;
      }
      nl_metrics_copy_n(keys[k].target, keys[k].cap, v, vlen);
    }
    line = eol ? eol + 1 : NULL;
  }
}

static void read_system_facts(nl_metrics *m) {
  nl_system_sample *sys = &m->snap.system;
  read_os_release(m);
  const char *model_paths[] = {"/firmware/devicetree/base/model",
                               "/devices/virtual/dmi/id/product_name"};
  sys->model[0] = '\0';
  for (size_t i = 0; i < 2 && !sys->model[0]; i++) {
    char buf[128];
    ssize_t n = nl_linux_read_small(
        nl_linux_path(m, NL_HOST_SYS, "%s", model_paths[i]), buf, sizeof buf);
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
static void find_sensors(nl_metrics *m) {
  nl_metrics_os *os = m->os;
  const char *sysfs = m->host_sys;
  os->sensor_count = 0;
  char path[NL_PATH_MAX], buf[96];
  for (int z = 0; z < 256 && os->sensor_count < NL_SENSORS_MAX; z++) {
    snprintf(path, sizeof path, "%s/class/thermal/thermal_zone%d/temp", sysfs,
             z);
    if (!exists(path)) {
      if (z > 8)
        break;
      continue;
    }
    nl_sensor_spec *s = &os->sensors[os->sensor_count++];
    nl_metrics_copy(s->path, sizeof s->path, path);
    snprintf(path, sizeof path, "%s/class/thermal/thermal_zone%d/type", sysfs,
             z);
    if (nl_linux_read_small(path, buf, sizeof buf) <= 0)
      snprintf(buf, sizeof buf, "zone%d", z);
    nl_metrics_copy(s->name, sizeof s->name, buf);
    snprintf(s->source, sizeof s->source, "thermal_zone");
    snprintf(s->chip, sizeof s->chip, "%d", z);
  }
  for (int h = 0; h < 64 && os->sensor_count < NL_SENSORS_MAX; h++) {
    char chip[32];
    snprintf(path, sizeof path, "%s/class/hwmon/hwmon%d/name", sysfs, h);
    if (nl_linux_read_small(path, chip, sizeof chip) <= 0) {
      if (h > 8)
        break;
      continue;
    }
    for (int t = 1; t < 64 && os->sensor_count < NL_SENSORS_MAX; t++) {
      snprintf(path, sizeof path, "%s/class/hwmon/hwmon%d/temp%d_input", sysfs,
               h, t);
      if (!exists(path)) {
        if (t > 8)
          break;
        continue;
      }
      nl_sensor_spec *s = &os->sensors[os->sensor_count++];
      nl_metrics_copy(s->path, sizeof s->path, path);
      snprintf(path, sizeof path, "%s/class/hwmon/hwmon%d/temp%d_label", sysfs,
               h, t);
      char label[48]; /* chip (32) + '/' + label fit the name (96) */
      if (nl_linux_read_small(path, label, sizeof label) <= 0)
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
  long hz = sysconf(_SC_CLK_TCK);
  os->ticks_per_second = hz > 0 ? (double)hz : 100.0;
  os->page_size = sysconf(_SC_PAGESIZE);
  os->netlink = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  read_cpu_facts(m);
  read_system_facts(m);
  find_sensors(m);
  /* The process start time, for the self group: field 22 of stat. */
  os->self_start_time = NAN;
  double btime = NAN;
  if (nl_linux_slurp(os, nl_linux_path(m, NL_HOST_PROC, "/stat")) > 0)
    nl_procfs_stat_btime(os->buf, &btime);
  if (nl_linux_slurp(os, "/proc/self/stat") > 0) {
    char *p = strrchr(os->buf, ')');
    for (int field = 2; p && field < 22; field++)
      p = strchr(p + 1, ' ');
    if (p && !isnan(btime))
      os->self_start_time = btime + strtod(p + 1, NULL) / os->ticks_per_second;
  }
  return 0;
}

void nl_metrics_os_paths_changed(nl_metrics *m) {
  m->os->kind_count = 0;
  memset(&m->snap.cpu.vendor, 0, sizeof m->snap.cpu.vendor);
  memset(&m->snap.cpu.brand, 0, sizeof m->snap.cpu.brand);
  read_cpu_facts(m);
  read_system_facts(m);
  find_sensors(m);
}

void nl_metrics_os_close(nl_metrics *m) {
  if (m->os == NULL)
    return;
  if (m->os->netlink >= 0)
    close(m->os->netlink);
  free(m->os->buf);
  free(m->os->kinds);
  free(m->os->names);
  free(m->os->rows);
  free(m->os->hwmon);
  free(m->os);
  m->os = NULL;
}

/* ---- samples ---- */

#define CPUINFO_MHZ_SECONDS 60.0

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
  /* /proc/cpuinfo is long, and the kernel asks every core for its clock to
   * write it: read at most every CPUINFO_MHZ_SECONDS, the clocks kept in
   * between (a report sends them once an hour at the defaults). */
  double now = nl_metrics_monotonic();
  if (!os->have_cpufreq && os->cpuinfo_mhz_at > 0 &&
      now - os->cpuinfo_mhz_at < CPUINFO_MHZ_SECONDS &&
      os->cpuinfo_mhz_cores == cpu->core_count)
    return;
  for (size_t i = 0; i < cpu->core_count; i++)
    cpu->cores[i].mhz = NAN;
  if (os->have_cpufreq) {
    for (size_t i = 0; i < cpu->core_count; i++) {
      long long khz;
      if (nl_linux_read_int64(nl_linux_path(m, NL_HOST_SYS,
                                            "/devices/system/cpu/cpu%d/cpufreq/"
                                            "scaling_cur_freq",
                                            cpu->cores[i].index),
                              &khz) == 0)
        cpu->cores[i].mhz = (double)khz / 1000.0;
    }
    return;
  }
  /* Without cpufreq (virtual machines) /proc/cpuinfo has "cpu MHz" per
   * processor; x86 only. */
  os->cpuinfo_mhz_at = now;
  os->cpuinfo_mhz_cores = cpu->core_count;
  if (nl_linux_slurp(os, nl_linux_path(m, NL_HOST_PROC, "/cpuinfo")) > 0)
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
  ssize_t n = nl_linux_slurp(m->os, nl_linux_path(m, NL_HOST_PROC, "/stat"));
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
  /* The boot time is on the same page; a scrape takes it from here. */
  nl_procfs_stat_btime(m->os->buf, &m->os->stat_btime);
  /* /metrics has no clock figure from /proc/cpuinfo (node_exporter's come
   * from cpufreq): a scrape leaves that file, long on big machines, alone. */
  if (!m->scraping)
    cpu_current_mhz(m);
  return 0;
}

static int sample_load(nl_metrics *m) {
  char buf[128];
  if (nl_linux_read_small(nl_linux_path(m, NL_HOST_PROC, "/loadavg"), buf,
                          sizeof buf) <= 0 ||
      nl_procfs_loadavg(buf, &m->snap.load) != 0)
    return -ENOTSUP;
  return 0;
}

static int sample_memory(nl_metrics *m) {
  /* A scrape's meminfo collector reads the file once for all it shows. */
  if (m->scraping)
    return 0;
  ssize_t n = nl_linux_slurp(m->os, nl_linux_path(m, NL_HOST_PROC, "/meminfo"));
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
static nl_link_kind cached_kind(nl_metrics *m, int ifindex, const char *name,
                                unsigned type) {
  nl_metrics_os *os = m->os;
  for (size_t i = 0; i < os->kind_count; i++) {
    if (os->kinds[i].ifindex == ifindex && strcmp(os->kinds[i].name, name) == 0)
      return os->kinds[i].kind;
  }
  nl_link_kind kind = nl_metrics_linux_link_kind(m->host_sys, name, type);
  if (nl_metrics_reserve((void **)&os->kinds, &os->kind_cap, os->kind_count + 1,
                         sizeof *os->kinds) == 0) {
    nl_kind_entry *e = &os->kinds[os->kind_count++];
    e->ifindex = ifindex;
    nl_metrics_copy(e->name, sizeof e->name, name);
    e->kind = kind;
  }
  return kind;
}

int nl_linux_netlink_dump(nl_metrics_os *os, int fd, struct nlmsghdr *req,
                          nl_netlink_cb cb, void *ud) {
  req->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req->nlmsg_seq = ++os->netlink_seq;
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  if (fd < 0 || sendto(fd, req, req->nlmsg_len, 0, (struct sockaddr *)&kernel,
                       sizeof kernel) < 0)
    return -1;
  for (;;) {
    ssize_t n = recv(fd, os->netlink_buf, sizeof os->netlink_buf, 0);
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
      cb(ud, h);
    }
  }
}

/* Sends one dump request (RTM_GETLINK or RTM_GETADDR) on the route socket
 * and hands every reply message to cb. Returns 0, or -1 when the kernel
 * could not be asked. */
static int netlink_dump(nl_metrics *m, int type, nl_netlink_cb cb) {
  struct {
    struct nlmsghdr h;
    struct rtgenmsg g;
  } req;
  memset(&req, 0, sizeof req);
  req.h.nlmsg_len = NLMSG_LENGTH(sizeof req.g);
  req.h.nlmsg_type = (unsigned short)type;
  req.g.rtgen_family = AF_UNSPEC;
  return nl_linux_netlink_dump(m->os, m->os->netlink, &req.h, cb, m);
}

static nl_netif *netif_by_index(nl_network_sample *net, int ifindex) {
  for (size_t i = 0; i < net->count; i++) {
    if (net->ifs[i].ifindex == ifindex)
      return &net->ifs[i];
  }
  return NULL;
}

/* An address as sysfs shows it: each byte in hex, colon-separated. */
static void hex_address(char *dst, size_t cap, const unsigned char *a,
                        size_t len) {
  size_t n = 0;
  dst[0] = '\0';
  for (size_t i = 0; i < len && n + 4 <= cap; i++)
    n += (size_t)snprintf(dst + n, cap - n, i ? ":%02x" : "%02x", a[i]);
}

static uint32_t rta_u32(const struct rtattr *rta, uint32_t fallback) {
  uint32_t v;
  if (RTA_PAYLOAD(rta) < sizeof v)
    return fallback;
  memcpy(&v, RTA_DATA(rta), sizeof v);
  return v;
}

static uint8_t rta_u8(const struct rtattr *rta, uint8_t fallback) {
  return RTA_PAYLOAD(rta) >= 1 ? *(const uint8_t *)RTA_DATA(rta) : fallback;
}

/* One RTM_NEWLINK: name, flags, MTU, MAC, link state and the 64-bit
 * counters. */
static void take_link(void *ud, struct nlmsghdr *h) {
  nl_metrics *m = ud;
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
  nif->link.flags = info->ifi_flags;
  nif->link.type = info->ifi_type;
  nif->link.iflink = info->ifi_index; /* unless IFLA_LINK says otherwise */
  nif->link.carrier = -1;
  nif->link.carrier_changes = nif->link.carrier_up = -1;
  nif->link.carrier_down = -1;
  nif->link.speed_raw = INT64_MIN;
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
    case IFLA_BROADCAST:
      hex_address(nif->link.broadcast, sizeof nif->link.broadcast,
                  RTA_DATA(rta), RTA_PAYLOAD(rta));
      break;
    case IFLA_IFALIAS:
      nl_metrics_copy_n(nif->link.ifalias, sizeof nif->link.ifalias,
                        RTA_DATA(rta),
                        strnlen(RTA_DATA(rta), RTA_PAYLOAD(rta)));
      break;
    case IFLA_LINK:
      nif->link.iflink = (int)rta_u32(rta, (uint32_t)info->ifi_index);
      break;
    case IFLA_OPERSTATE:
      nif->link.operstate = (int)rta_u8(rta, 0);
      break;
    case IFLA_LINKMODE:
      nif->link.link_mode = (int)rta_u8(rta, 0);
      break;
    case IFLA_GROUP:
      nif->link.group = (int)rta_u32(rta, 0);
      break;
    case IFLA_TXQLEN:
      nif->link.txqlen = (int)rta_u32(rta, 0);
      break;
    case IFLA_CARRIER:
      nif->link.carrier = (int)rta_u8(rta, 0);
      break;
    case IFLA_CARRIER_CHANGES:
      nif->link.carrier_changes = rta_u32(rta, 0);
      break;
    case IFLA_CARRIER_UP_COUNT:
      nif->link.carrier_up = rta_u32(rta, 0);
      break;
    case IFLA_CARRIER_DOWN_COUNT:
      nif->link.carrier_down = rta_u32(rta, 0);
      break;
    case IFLA_ADDRESS:
      hex_address(nif->link.address, sizeof nif->link.address, RTA_DATA(rta),
                  RTA_PAYLOAD(rta));
      if (RTA_PAYLOAD(rta) == 6) {
        const unsigned char *a = RTA_DATA(rta);
        if (a[0] | a[1] | a[2] | a[3] | a[4] | a[5])
          snprintf(nif->mac, sizeof nif->mac, "%02x:%02x:%02x:%02x:%02x:%02x",
                   a[0], a[1], a[2], a[3], a[4], a[5]);
      }
      break;
    case IFLA_STATS64:
      /* A kernel older or newer than our header sends a shorter or longer
       * struct: the 23 counters up to rx_nohandler's are in all since 2.6,
       * and a field the kernel did not send reads 0. */
      if (RTA_PAYLOAD(rta) >=
          offsetof(struct rtnl_link_stats64, rx_nohandler)) {
        struct rtnl_link_stats64 st;
        memset(&st, 0, sizeof st);
        memcpy(&st, RTA_DATA(rta),
               RTA_PAYLOAD(rta) < sizeof st ? RTA_PAYLOAD(rta) : sizeof st);
        nif->counters[NL_NET_RX_BYTES] = st.rx_bytes;
        nif->counters[NL_NET_TX_BYTES] = st.tx_bytes;
        nif->counters[NL_NET_RX_PACKETS] = st.rx_packets;
        nif->counters[NL_NET_TX_PACKETS] = st.tx_packets;
        nif->counters[NL_NET_RX_ERRORS] = st.rx_errors;
        nif->counters[NL_NET_TX_ERRORS] = st.tx_errors;
        /* As /proc/net/dev and node_exporter count receive drops. */
        nif->counters[NL_NET_RX_DROPS] = st.rx_dropped + st.rx_missed_errors;
        nif->counters[NL_NET_TX_DROPS] = st.tx_dropped;
        /* The columns of /proc/net/dev, summed as the kernel sums them
         * (dev_seq_printf_stats), and node_exporter after it. */
        const uint64_t columns[17] = {
            st.rx_bytes,
            st.rx_packets,
            st.rx_errors,
            st.rx_dropped + st.rx_missed_errors,
            st.rx_fifo_errors,
            st.rx_length_errors + st.rx_over_errors + st.rx_crc_errors +
                st.rx_frame_errors,
            st.rx_compressed,
            st.multicast,
            st.tx_bytes,
            st.tx_packets,
            st.tx_errors,
            st.tx_dropped,
            st.tx_fifo_errors,
            st.collisions,
            st.tx_carrier_errors + st.tx_aborted_errors + st.tx_window_errors +
                st.tx_heartbeat_errors,
            st.tx_compressed,
            st.rx_nohandler};
        memcpy(nif->netdev, columns, sizeof columns);
        have_stats = true;
      }
      break;
    default:
      break;
    }
  }
  if (!have_name || !have_stats)
    return;
  nif->kind = cached_kind(m, nif->ifindex, nif->name, info->ifi_type);
  /* The speed the driver reports: sysfs reads EINVAL while the link is
   * down and -1 when unknown. Virtual devices report one too, and it
   * matters: a bond's is the sum of its members', a VLAN's its parent's
   * (a veth's is a nominal 10000). */
  if (nif->kind != NL_LINK_LOOPBACK) {
    char path[NL_PATH_MAX];
    long long v;
    snprintf(path, sizeof path, "%s/class/net/%s/speed", m->host_sys,
             nif->name);
    if (nl_linux_read_int64(path, &v) == 0) {
      nif->link.speed_raw = v;
      if (v > 0)
        nif->speed_mbps = v;
    }
  }
  net->count++;
}

/* One RTM_NEWADDR: an address of an interface already listed. */
static void take_address(void *ud, struct nlmsghdr *h) {
  nl_metrics *m = ud;
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
  if (!m->scraping) /* addresses are for reports and discovery */
    netlink_dump(m, RTM_GETADDR, take_address);
  return 0;
}

/* node_exporter's default --collector.filesystem.mount-points-exclude,
 * ^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|
 * var/lib/containers/storage/.+)($|/), without a regex engine. */
bool nl_metrics_os_mount_excluded(const char *mount) {
  static const char *const whole[] = {"/dev", "/proc", "/sys"};
  static const char *const under[] = {"/run/credentials/", "/var/lib/docker/",
                                      "/var/lib/containers/storage/"};
  for (size_t i = 0; i < sizeof whole / sizeof whole[0]; i++) {
    size_t n = strlen(whole[i]);
    if (strncmp(mount, whole[i], n) == 0 &&
        (mount[n] == '\0' || mount[n] == '/'))
      return true;
  }
  for (size_t i = 0; i < sizeof under / sizeof under[0]; i++) {
    size_t n = strlen(under[i]);
    if (strncmp(mount, under[i], n) == 0 && mount[n] != '\0')
      return true;
  }
  return false;
}

/* node_exporter's default --collector.filesystem.fs-types-exclude. */
const char *const nl_metrics_os_default_excluded[] = {
    "autofs",    "binfmt_misc", "bpf",    "cgroup",     "cgroup2",
    "configfs",  "debugfs",     "devpts", "devtmpfs",   "fusectl",
    "hugetlbfs", "iso9660",     "mqueue", "nsfs",       "overlay",
    "proc",      "procfs",      "pstore", "rpc_pipefs", "securityfs",
    "selinuxfs", "squashfs",    "sysfs",  "tracefs"};
const size_t nl_metrics_os_default_excluded_count =
    sizeof nl_metrics_os_default_excluded /
    sizeof nl_metrics_os_default_excluded[0];

typedef struct {
  nl_metrics *m;
  size_t count;
} storage_fill;

/* A mount point as the host sees it: under HOST_ROOT, the prefix goes. */
static const char *host_mount_point(const nl_metrics *m, const char *mount) {
  size_t n = strlen(m->host_root);
  if (n <= 1 || strncmp(mount, m->host_root, n) != 0)
    return mount;
  if (mount[n] == '\0')
    return "/";
  return mount[n] == '/' ? mount + n : mount;
}

static bool has_option(const char *options, const char *option) {
  size_t n = strlen(option);
  for (const char *p = options; p && *p;) {
    if (strncmp(p, option, n) == 0 && (p[n] == ',' || p[n] == '\0'))
      return true;
    p = strchr(p, ',');
    p = p ? p + 1 : NULL;
  }
  return false;
}

static int take_mount(void *ud, const nl_mount_entry *e) {
  storage_fill *fill = ud;
  nl_metrics *m = fill->m;
  nl_storage_sample *st = &m->snap.storage;
  const char *mount = host_mount_point(m, e->mount);
  if (nl_metrics_fstype_excluded(m, e->fstype) ||
      nl_metrics_os_mount_excluded(mount))
    return 0;
  nl_filesystem fs;
  nl_metrics_statvfs(&fs, e->device, mount,
                     nl_linux_path(m, NL_HOST_ROOT, "%s", mount), e->fstype);
  /* As node_exporter: read-only is the mount's "ro" option. */
  fs.readonly = has_option(e->options, "ro");
  /* A later mount on the same point hides the earlier one. */
  size_t slot = fill->count;
  for (size_t i = 0; i < fill->count; i++) {
    if (strcmp(st->fs[i].mount, mount) == 0)
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
  /* PID 1's mounts are the host's; /proc/mounts (the agent's own) when
   * hidepid hides PID 1. */
  ssize_t n =
      nl_linux_slurp(m->os, nl_linux_path(m, NL_HOST_PROC, "/1/mounts"));
  if (n == -ENOENT || n == -EACCES || n == -EPERM)
    n = nl_linux_slurp(m->os, nl_linux_path(m, NL_HOST_PROC, "/mounts"));
  if (n <= 0)
    return n == -ENOMEM ? -ENOMEM : -ENOTSUP;
  storage_fill fill = {m, 0};
  int rc = nl_procfs_mounts(m->os->buf, take_mount, &fill);
  if (rc != 0)
    return rc;
  m->snap.storage.fs_count = fill.count;
  return 0;
}

static bool whole_disk(nl_metrics *m, const char *name) {
  static const char *const skip[] = {"loop", "ram", "zram", "fd"};
  for (size_t i = 0; i < 4; i++) {
    size_t n = strlen(skip[i]);
    if (strncmp(name, skip[i], n) == 0 && isdigit((unsigned char)name[n]))
      return false;
  }
  if (strchr(name, '/') != NULL)
    return false;
  /* partitions are not in /sys/block */
  return exists(nl_linux_path(m, NL_HOST_SYS, "/block/%s", name));
}

static int take_disk(void *ud, const nl_diskstat *d) {
  storage_fill *fill = ud;
  nl_storage_sample *st = &fill->m->snap.storage;
  if (!whole_disk(fill->m, d->name))
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
  ssize_t n =
      nl_linux_slurp(m->os, nl_linux_path(m, NL_HOST_PROC, "/diskstats"));
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
  /* A scrape writes node_disk_* from its own diskstats collector. */
  return m->scraping ? 0 : sample_disks(m);
}

static int sample_system(nl_metrics *m) {
  nl_system_sample *sys = &m->snap.system;
  if (gethostname(sys->hostname, sizeof sys->hostname) != 0)
    sys->hostname[0] = '\0';
  sys->hostname[sizeof sys->hostname - 1] = '\0';
  if (nl_linux_read_small(
          nl_linux_path(m, NL_HOST_PROC, "/sys/kernel/domainname"),
          sys->domainname, sizeof sys->domainname) < 0)
    sys->domainname[0] = '\0';
  char buf[128];
  sys->uptime = NAN;
  if (nl_linux_read_small(nl_linux_path(m, NL_HOST_PROC, "/uptime"), buf,
                          sizeof buf) > 0)
    sys->uptime = strtod(buf, NULL);
  sys->boot_time = NAN;
  if (m->scraping && (m->snap.present & NL_METRICS_CPU)) {
    sys->boot_time = m->os->stat_btime; /* read with the cpu lines */
    return 0;
  }
  ssize_t n = nl_linux_slurp(m->os, nl_linux_path(m, NL_HOST_PROC, "/stat"));
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
    if (nl_linux_read_int64(os->sensors[i].path, &milli) != 0)
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
  if (nl_linux_read_small("/proc/self/statm", buf, sizeof buf) > 0 &&
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
