/* Linux: node_exporter's collectors of sysfs devices, clocks and the
 * process table: cpufreq, hwmon, time, timex (adjtimex) and processes. */
#include "metrics_linux.h"
#include "procfs.h"
#include "promtext.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timex.h>
#include <time.h>
#include <unistd.h>

/* ---- cpufreq ---- */

bool nl_export_cpufreq(nl_metrics *m, nl_buf *out) {
  static const struct {
    const char *file, *family, *help;
  } files[] = {
      {"cpuinfo_cur_freq", "node_cpu_frequency_hertz",
       "Current cpu thread frequency in hertz."},
      {"cpuinfo_max_freq", "node_cpu_frequency_max_hertz",
       "Maximum cpu thread frequency in hertz."},
      {"cpuinfo_min_freq", "node_cpu_frequency_min_hertz",
       "Minimum cpu thread frequency in hertz."},
      {"scaling_cur_freq", "node_cpu_scaling_frequency_hertz",
       "Current scaled CPU thread frequency in hertz."},
      {"scaling_max_freq", "node_cpu_scaling_frequency_max_hertz",
       "Maximum scaled CPU thread frequency in hertz."},
      {"scaling_min_freq", "node_cpu_scaling_frequency_min_hertz",
       "Minimum scaled CPU thread frequency in hertz."},
  };
  const nl_cpu_sample *cpu = &m->snap.cpu;
  /* Whether the kernel has cpufreq is found when the paths are set; the
   * CPUs are the snapshot's (the cpuN lines of /proc/stat). */
  if (!m->os->have_cpufreq || !(m->snap.present & NL_METRICS_CPU))
    return false;
  for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
    bool opened = false;
    for (size_t i = 0; i < cpu->core_count; i++) {
      double khz;
      char index[16];
      if (nl_linux_read_double(nl_linux_path(m, NL_HOST_SYS,
                                             "/devices/system/cpu/cpu%d/"
                                             "cpufreq/%s",
                                             cpu->cores[i].index,
                                             files[f].file),
                               &khz) != 0)
        continue;
      if (!opened)
        nl_prom_family(out, files[f].family, "gauge", files[f].help);
      opened = true;
      snprintf(index, sizeof index, "%d", cpu->cores[i].index);
      const char *labels[] = {"cpu", index, NULL};
      nl_prom_double(out, files[f].family, labels, khz * 1000);
    }
  }
  return true;
}

/* ---- hwmon ---- */

/* node_exporter's cleanMetricName: lower case, [^a-z0-9:_] to '_', '_'
 * trimmed at both ends. */
static void clean_name(char *dst, size_t cap, const char *src, size_t len) {
  size_t n = 0;
  for (size_t i = 0; i < len && n + 1 < cap; i++) {
    char c = (char)tolower((unsigned char)src[i]);
    dst[n++] = (isalnum((unsigned char)c) && !isupper((unsigned char)c)) ||
                       c == ':' || c == '_'
                   ? c
                   : '_';
  }
  dst[n] = '\0';
  size_t start = 0;
  while (dst[start] == '_')
    start++;
  memmove(dst, dst + start, n - start + 1);
  n -= start;
  while (n > 0 && dst[n - 1] == '_')
    dst[--n] = '\0';
}

/* The chip label: "<bus>_<device>" from the device link, as node_exporter
 * derives it ("platform_coretemp_0", "pci0000:00_0000:00:18_3"), else the
 * chip's name file. */
static bool chip_label(nl_metrics *m, const char *hwmon, const char *name_file,
                       char *chip, size_t cap) {
  char target[NL_PATH_MAX];
  const char *dir =
      nl_linux_path(m, NL_HOST_SYS, "/class/hwmon/%s/device", hwmon);
  if (realpath(dir, target) != NULL) {
    char *slash = strrchr(target, '/');
    if (slash && slash != target) {
      *slash = '\0';
      const char *name = slash + 1;
      char *parent = strrchr(target, '/');
      char type[64], dev[64];
      clean_name(type, sizeof type, parent ? parent + 1 : target,
                 strlen(parent ? parent + 1 : target));
      clean_name(dev, sizeof dev, name, strlen(name));
      if (type[0] && dev[0]) {
        /* Cut to fit, as every label here is. */
        size_t t = strlen(type) < cap - 1 ? strlen(type) : cap - 1;
        memcpy(chip, type, t);
        chip[t] = '\0';
        strncat(chip, "_", cap - strlen(chip) - 1);
        strncat(chip, dev, cap - strlen(chip) - 1);
        return true;
      }
      if (dev[0]) {
        snprintf(chip, cap, "%s", dev);
        return true;
      }
    }
  }
  if (name_file[0]) {
    clean_name(chip, cap, name_file, strlen(name_file));
    if (chip[0])
      return true;
  }
  clean_name(chip, cap, hwmon, strlen(hwmon));
  return chip[0] != '\0';
}

static nl_hwmon_reading *add_reading(nl_metrics_os *os) {
  if (nl_metrics_reserve((void **)&os->hwmon, &os->hwmon_cap,
                         os->hwmon_count + 1, sizeof *os->hwmon) != 0)
    return NULL;
  nl_hwmon_reading *r = &os->hwmon[os->hwmon_count++];
  memset(r, 0, sizeof *r);
  return r;
}

/* One sensor file ("temp1_input", "fan2_min", "in0_input") into a reading
 * named as node_exporter names it, with its unit converted. */
static void take_sensor_file(nl_metrics *m, const char *hwmon, const char *chip,
                             const char *file) {
  static const char *const types[] = {"temp",  "fan",    "in",      "curr",
                                      "power", "energy", "humidity"};
  size_t tlen = strcspn(file, "0123456789");
  const char *type = NULL;
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
    if (strlen(types[i]) == tlen && strncmp(file, types[i], tlen) == 0)
      type = types[i];
  }
  const char *num = file + tlen;
  size_t nlen = strspn(num, "0123456789");
  if (type == NULL || nlen == 0 || num[nlen] != '_')
    return;
  const char *element = num + nlen + 1;
  char sensor[32];
  snprintf(sensor, sizeof sensor, "%s%.*s", type, (int)nlen, num);
  char text[256];
  if (nl_linux_read_small(
          nl_linux_path(m, NL_HOST_SYS, "/class/hwmon/%s/%s", hwmon, file),
          text, sizeof text) < 0)
    return;
  nl_hwmon_reading *r = add_reading(m->os);
  if (r == NULL)
    return;
  nl_metrics_copy(r->chip, sizeof r->chip, chip);
  nl_metrics_copy(r->sensor, sizeof r->sensor, sensor);
  if (strcmp(element, "label") == 0) {
    snprintf(r->family, sizeof r->family, "node_hwmon_sensor_label");
    snprintf(r->help, sizeof r->help, "Label for given chip and sensor");
    nl_metrics_copy(r->label, sizeof r->label, text);
    r->value = 1;
    return;
  }
  char *end;
  double v = strtod(text, &end);
  char el[48];
  clean_name(el, sizeof el, element, strlen(element));
  if (end == text || el[0] == '\0') {
    m->os->hwmon_count--;
    return;
  }
  const char *suffix = "";
  double divisor = 1; /* a division, so that 51000 m°C is exactly 51 */
  if (strcmp(el, "alarm") == 0 || strcmp(el, "fault") == 0 ||
      (strcmp(type, "temp") == 0 && strcmp(el, "type") == 0)) {
    /* a status or a kind: no unit */
  } else if (strcmp(type, "temp") == 0) {
    suffix = "_celsius", divisor = 1000;
  } else if (strcmp(type, "in") == 0) {
    suffix = "_volts", divisor = 1000;
  } else if (strcmp(type, "curr") == 0) {
    suffix = "_amps", divisor = 1000;
  } else if (strcmp(type, "power") == 0) {
    suffix = "_watt", divisor = 1e6;
  } else if (strcmp(type, "energy") == 0) {
    suffix = "_joule_total", divisor = 1e6;
  } else if (strcmp(type, "humidity") == 0) {
    divisor = 1e6;
  } else if (strcmp(type, "fan") == 0 &&
             (strcmp(el, "input") == 0 || strcmp(el, "min") == 0 ||
              strcmp(el, "max") == 0 || strcmp(el, "target") == 0)) {
    suffix = "_rpm";
  }
  /* temp1_input is node_hwmon_temp_celsius; temp1_max is
   * node_hwmon_temp_max_celsius. */
  if (strcmp(el, "input") == 0)
    snprintf(r->family, sizeof r->family, "node_hwmon_%s%s", type, suffix);
  else
    snprintf(r->family, sizeof r->family, "node_hwmon_%s_%s%s", type, el,
             suffix);
  snprintf(r->help, sizeof r->help, "Hardware monitor for %s (%s)", type, el);
  r->value = v / divisor;
}

static int compare_readings(const void *a, const void *b) {
  const nl_hwmon_reading *x = a, *y = b;
  int c = strcmp(x->family, y->family);
  if (c == 0)
    c = strcmp(x->chip, y->chip);
  return c != 0 ? c : strcmp(x->sensor, y->sensor);
}

/* Sensors are found by listing each hwmon directory (node_exporter does
 * not look under device/, which only old drivers use). */
static void read_chip(nl_metrics *m, const char *hwmon) {
  nl_metrics_os *os = m->os;
  /* The chip's name file, read once: a label of its own, and the chip's
   * name when it has no device link. */
  char raw[64] = "";
  if (nl_linux_read_small(
          nl_linux_path(m, NL_HOST_SYS, "/class/hwmon/%s/name", hwmon), raw,
          sizeof raw) <= 0)
    raw[0] = '\0';
  char chip[64];
  if (!chip_label(m, hwmon, raw, chip, sizeof chip))
    return;
  if (raw[0]) {
    nl_hwmon_reading *r = add_reading(os);
    if (r != NULL) {
      snprintf(r->family, sizeof r->family, "node_hwmon_chip_names");
      snprintf(r->help, sizeof r->help,
               "Annotation metric for human-readable chip names");
      nl_metrics_copy(r->chip, sizeof r->chip, chip);
      clean_name(r->label, sizeof r->label, raw, strlen(raw));
      r->value = 1;
    }
  }
  /* list_dir reuses os->names: copy the file names out first. */
  if (nl_linux_list_dir(os,
                        nl_linux_path(m, NL_HOST_SYS, "/class/hwmon/%s", hwmon),
                        512, true) <= 0)
    return;
  nl_dir_name files[512];
  size_t count = os->name_count;
  memcpy(files, os->names, count * sizeof *files);
  for (size_t i = 0; i < count; i++)
    take_sensor_file(m, hwmon, chip, files[i].name);
}

bool nl_export_hwmon(nl_metrics *m, nl_buf *out) {
  nl_metrics_os *os = m->os;
  if (nl_linux_list_dir(os, nl_linux_path(m, NL_HOST_SYS, "/class/hwmon"), 256,
                        true) <= 0)
    return false;
  nl_dir_name chips[256];
  size_t count = os->name_count;
  memcpy(chips, os->names, count * sizeof *chips);
  os->hwmon_count = 0;
  for (size_t i = 0; i < count; i++)
    read_chip(m, chips[i].name);
  nl_linux_sort(os->hwmon, os->hwmon_count, sizeof *os->hwmon,
                compare_readings);
  for (size_t i = 0; i < os->hwmon_count; i++) {
    const nl_hwmon_reading *r = &os->hwmon[i];
    if (i == 0 || strcmp(r->family, os->hwmon[i - 1].family) != 0)
      nl_prom_family(out, r->family, "gauge", r->help);
    if (strcmp(r->family, "node_hwmon_chip_names") == 0) {
      const char *labels[] = {"chip", r->chip, "chip_name", r->label, NULL};
      nl_prom_double(out, r->family, labels, r->value);
    } else if (strcmp(r->family, "node_hwmon_sensor_label") == 0) {
      const char *labels[] = {"chip",   r->chip,   "label", r->label,
                              "sensor", r->sensor, NULL};
      nl_prom_double(out, r->family, labels, r->value);
    } else {
      const char *labels[] = {"chip", r->chip, "sensor", r->sensor, NULL};
      nl_prom_double(out, r->family, labels, r->value);
    }
  }
  return true;
}

/* ---- time ---- */

static void clocksources(nl_metrics *m, nl_buf *out, const char *file,
                         const char *family, const char *help) {
  char text[512];
  if (nl_linux_read_small(nl_linux_path(m, NL_HOST_SYS,
                                        "/devices/system/clocksource/"
                                        "clocksource0/%s",
                                        file),
                          text, sizeof text) <= 0)
    return;
  nl_prom_family(out, family, "gauge", help);
  char *save = NULL;
  for (char *name = strtok_r(text, " ", &save); name;
       name = strtok_r(NULL, " ", &save)) {
    const char *labels[] = {"clocksource", name, "device", "0", NULL};
    nl_prom_u64(out, family, labels, 1);
  }
}

bool nl_export_time(nl_metrics *m, nl_buf *out) {
  nl_prom_time(out);
  clocksources(m, out, "available_clocksource",
               "node_time_clocksource_available_info",
               "Available clocksources read from "
               "'/sys/devices/system/clocksource'.");
  clocksources(m, out, "current_clocksource",
               "node_time_clocksource_current_info",
               "Current clocksource read from "
               "'/sys/devices/system/clocksource'.");
  return true;
}

/* ---- timex ---- */

bool nl_export_timex(nl_metrics *m, nl_buf *out) {
  (void)m;
  struct timex tx;
  memset(&tx, 0, sizeof tx); /* modes 0: read only */
  int state = adjtimex(&tx);
  if (state < 0)
    return false;
  const double ppm16 = 1000000.0 * 65536.0;
  double divisor = (tx.status & STA_NANO) ? 1e9 : 1e6;
  const struct {
    const char *name, *type, *help;
    double value;
  } values[] = {
      {"node_timex_sync_status", "gauge",
       "Is clock synchronized to a reliable server (1 = yes, 0 = no).",
       state == TIME_ERROR ? 0 : 1},
      {"node_timex_offset_seconds", "gauge",
       "Time offset in between local "
       "system and reference clock.",
       (double)tx.offset / divisor},
      {"node_timex_frequency_adjustment_ratio", "gauge",
       "Local clock frequency adjustment.", 1 + (double)tx.freq / ppm16},
      {"node_timex_maxerror_seconds", "gauge", "Maximum error in seconds.",
       (double)tx.maxerror / 1e6},
      {"node_timex_estimated_error_seconds", "gauge",
       "Estimated error in seconds.", (double)tx.esterror / 1e6},
      {"node_timex_status", "gauge", "Value of the status array bits.",
       (double)tx.status},
      {"node_timex_loop_time_constant", "gauge",
       "Phase-locked loop time "
       "constant.",
       (double)tx.constant},
      {"node_timex_tick_seconds", "gauge", "Seconds between clock ticks.",
       (double)tx.tick / 1e6},
      {"node_timex_pps_frequency_hertz", "gauge", "Pulse per second frequency.",
       (double)tx.ppsfreq / ppm16},
      {"node_timex_pps_jitter_seconds", "gauge", "Pulse per second jitter.",
       (double)tx.jitter / divisor},
      {"node_timex_pps_shift_seconds", "gauge",
       "Pulse per second interval duration.", (double)tx.shift},
      {"node_timex_pps_stability_hertz", "gauge",
       "Pulse per second stability, average of recent frequency changes.",
       (double)tx.stabil / ppm16},
      {"node_timex_pps_jitter_total", "counter",
       "Pulse per second count of jitter limit exceeded events.",
       (double)tx.jitcnt},
      {"node_timex_pps_calibration_total", "counter",
       "Pulse per second count of calibration intervals.", (double)tx.calcnt},
      {"node_timex_pps_error_total", "counter",
       "Pulse per second count of calibration errors.", (double)tx.errcnt},
      {"node_timex_pps_stability_exceeded_total", "counter",
       "Pulse per second count of stability limit exceeded events.",
       (double)tx.stbcnt},
      {"node_timex_tai_offset_seconds", "gauge",
       "International Atomic Time (TAI) offset.", (double)tx.tai},
  };
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    nl_prom_family(out, values[i].name, values[i].type, values[i].help);
    nl_prom_double(out, values[i].name, NULL, values[i].value);
  }
  return true;
}

/* ---- processes: the process table under HOST_PROC ---- */

bool nl_export_processes(nl_metrics *m, nl_buf *out) {
  static const char states[] = "RSDZTtXxKWPI";
  double counts[sizeof states] = {0};
  double pids = 0, threads = 0;
  nl_metrics_os *os = m->os;
  if (nl_linux_list_dir(os, nl_linux_path(m, NL_HOST_PROC, "%s", ""),
                        (size_t)-1, false) <= 0)
    return false;
  for (size_t i = 0; i < os->name_count; i++) {
    const char *pid = os->names[i].name;
    if (!isdigit((unsigned char)pid[0]))
      continue;
    char buf[1024];
    char state;
    long n;
    /* A process may end between the listing and the read. */
    if (nl_linux_read_once(nl_linux_path(m, NL_HOST_PROC, "/%s/stat", pid), buf,
                           sizeof buf) <= 0 ||
        nl_procfs_pid_stat(buf, &state, &n) != 0)
      continue;
    pids++;
    threads += (double)n;
    const char *at = strchr(states, state);
    if (at != NULL && state != '\0')
      counts[at - states]++;
  }
  double max_threads, max_pids;
  nl_prom_gauge(out, "node_processes_threads", "Allocated threads in system",
                threads);
  if (nl_linux_read_double(
          nl_linux_path(m, NL_HOST_PROC, "/sys/kernel/threads-max"),
          &max_threads) == 0)
    nl_prom_gauge(out, "node_processes_max_threads",
                  "Limit of threads in the system", max_threads);
  nl_prom_family(out, "node_processes_state", "gauge",
                 "Number of processes in each state.");
  for (size_t s = 0; s < sizeof states - 1; s++) {
    if (counts[s] == 0)
      continue;
    char name[2] = {states[s], '\0'};
    const char *labels[] = {"state", name, NULL};
    nl_prom_double(out, "node_processes_state", labels, counts[s]);
  }
  nl_prom_gauge(out, "node_processes_pids", "Number of PIDs", pids);
  if (nl_linux_read_double(
          nl_linux_path(m, NL_HOST_PROC, "/sys/kernel/pid_max"), &max_pids) ==
      0)
    nl_prom_gauge(out, "node_processes_max_processes",
                  "Number of max PIDs limit", max_pids);
  return true;
}
