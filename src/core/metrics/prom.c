/* The Prometheus text exposition (format 0.0.4) of a snapshot. Where
 * node_exporter has the same measure, its name and labels are used, so that
 * dashboards built for it work unchanged; our own carry `nodelua_`. */
#include "metrics.h"
#include "promtext.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static void format_cpu(const nl_cpu_sample *cpu, nl_buf *b) {
  char index[16];
  nl_prom_family(b, "node_cpu_seconds_total", "counter",
                 "Seconds the CPUs spent in each mode.");
  for (size_t i = 0; i < cpu->core_count; i++) {
    snprintf(index, sizeof index, "%d", cpu->cores[i].index);
    for (int mode = 0; mode < NL_CPU_MODE_COUNT; mode++) {
      if (!(cpu->modes & (1u << mode)))
        continue;
      const char *labels[] = {"cpu", index, "mode", nl_cpu_mode_names[mode],
                              NULL};
      nl_prom_double(b, "node_cpu_seconds_total", labels,
                     cpu->cores[i].seconds[mode]);
    }
  }
  nl_prom_family(b, "nodelua_cpu_info", "gauge",
                 "CPU vendor and model; the value is always 1.");
  const char *info[] = {"vendor", cpu->vendor, "model_name", cpu->brand, NULL};
  nl_prom_u64(b, "nodelua_cpu_info", info, 1);
  nl_prom_family(b, "nodelua_cpu_logical_cores", "gauge",
                 "Logical CPUs online.");
  nl_prom_u64(b, "nodelua_cpu_logical_cores", NULL,
              (uint64_t)cpu->logical_cores);
  if (cpu->physical_cores > 0) {
    nl_prom_family(b, "nodelua_cpu_physical_cores", "gauge",
                   "Physical CPU cores.");
    nl_prom_u64(b, "nodelua_cpu_physical_cores", NULL,
                (uint64_t)cpu->physical_cores);
  }
}

static void format_load(const nl_load_sample *l, nl_buf *b) {
  nl_prom_family(b, "node_load1", "gauge", "1m load average.");
  nl_prom_double(b, "node_load1", NULL, l->load1);
  nl_prom_family(b, "node_load5", "gauge", "5m load average.");
  nl_prom_double(b, "node_load5", NULL, l->load5);
  nl_prom_family(b, "node_load15", "gauge", "15m load average.");
  nl_prom_double(b, "node_load15", NULL, l->load15);
}

typedef struct {
  const char *name;
  const char *help;
  size_t offset;
} memory_field;

static void format_memory(const nl_memory_sample *mem, unsigned skip,
                          nl_buf *b) {
  /* node_exporter names the figures after their source: /proc/meminfo keys
   * on Linux, lower-case names on macOS. Which set applies is told by the
   * figures present, not by an OS check. */
  static const memory_field linux_fields[] = {
      {"node_memory_MemTotal_bytes", "Memory information field MemTotal_bytes.",
       offsetof(nl_memory_sample, total)},
      {"node_memory_MemFree_bytes", "Memory information field MemFree_bytes.",
       offsetof(nl_memory_sample, free)},
      {"node_memory_MemAvailable_bytes",
       "Memory information field MemAvailable_bytes.",
       offsetof(nl_memory_sample, available)},
      {"node_memory_Buffers_bytes", "Memory information field Buffers_bytes.",
       offsetof(nl_memory_sample, buffers)},
      {"node_memory_Cached_bytes", "Memory information field Cached_bytes.",
       offsetof(nl_memory_sample, cached)},
      {"node_memory_SReclaimable_bytes",
       "Memory information field SReclaimable_bytes.",
       offsetof(nl_memory_sample, slab_reclaimable)},
      {"node_memory_Active_bytes", "Memory information field Active_bytes.",
       offsetof(nl_memory_sample, active)},
      {"node_memory_Inactive_bytes", "Memory information field Inactive_bytes.",
       offsetof(nl_memory_sample, inactive)},
      {"node_memory_SwapTotal_bytes",
       "Memory information field SwapTotal_bytes.",
       offsetof(nl_memory_sample, swap_total)},
      {"node_memory_SwapFree_bytes", "Memory information field SwapFree_bytes.",
       offsetof(nl_memory_sample, swap_free)},
  };
  static const memory_field darwin_fields[] = {
      {"node_memory_total_bytes", "Memory information field total_bytes.",
       offsetof(nl_memory_sample, total)},
      {"node_memory_free_bytes", "Memory information field free_bytes.",
       offsetof(nl_memory_sample, free)},
      {"node_memory_active_bytes", "Memory information field active_bytes.",
       offsetof(nl_memory_sample, active)},
      {"node_memory_inactive_bytes", "Memory information field inactive_bytes.",
       offsetof(nl_memory_sample, inactive)},
      {"node_memory_wired_bytes", "Memory information field wired_bytes.",
       offsetof(nl_memory_sample, wired)},
      {"node_memory_compressed_bytes",
       "Memory information field compressed_bytes.",
       offsetof(nl_memory_sample, compressed)},
      {"node_memory_swap_total_bytes",
       "Memory information field swap_total_bytes.",
       offsetof(nl_memory_sample, swap_total)},
      {"node_memory_swap_used_bytes",
       "Memory information field swap_used_bytes.",
       offsetof(nl_memory_sample, swap_used)},
  };
  bool darwin = mem->wired != NL_ABSENT;
  const memory_field *fields = darwin ? darwin_fields : linux_fields;
  size_t n = darwin ? sizeof darwin_fields / sizeof darwin_fields[0]
                    : sizeof linux_fields / sizeof linux_fields[0];
  for (size_t i = 0; i < n && !(skip & NL_PROM_SKIP_MEMORY); i++) {
    uint64_t v = *(const uint64_t *)((const char *)mem + fields[i].offset);
    if (v == NL_ABSENT)
      continue;
    nl_prom_family(b, fields[i].name, "gauge", fields[i].help);
    nl_prom_u64(b, fields[i].name, NULL, v);
  }
  if (mem->used != NL_ABSENT && !(skip & NL_PROM_SKIP_MEMORY)) {
    nl_prom_family(b, "nodelua_memory_used_bytes", "gauge",
                   "Memory neither free nor reclaimable cache.");
    nl_prom_u64(b, "nodelua_memory_used_bytes", NULL, mem->used);
  }
}

static void format_network(const nl_network_sample *net, unsigned skip,
                           nl_buf *b) {
  static const struct {
    nl_net_counter counter;
    const char *name;
    const char *help;
  } counters[] = {
      {NL_NET_RX_BYTES, "node_network_receive_bytes_total",
       "Network device statistic receive_bytes."},
      {NL_NET_TX_BYTES, "node_network_transmit_bytes_total",
       "Network device statistic transmit_bytes."},
      {NL_NET_RX_PACKETS, "node_network_receive_packets_total",
       "Network device statistic receive_packets."},
      {NL_NET_TX_PACKETS, "node_network_transmit_packets_total",
       "Network device statistic transmit_packets."},
      {NL_NET_RX_ERRORS, "node_network_receive_errs_total",
       "Network device statistic receive_errs."},
      {NL_NET_TX_ERRORS, "node_network_transmit_errs_total",
       "Network device statistic transmit_errs."},
      {NL_NET_RX_DROPS, "node_network_receive_drop_total",
       "Network device statistic receive_drop."},
      {NL_NET_TX_DROPS, "node_network_transmit_drop_total",
       "Network device statistic transmit_drop."},
  };
  if (skip & NL_PROM_SKIP_NETWORK)
    goto kinds;
  for (size_t c = 0; c < sizeof counters / sizeof counters[0]; c++) {
    nl_prom_family(b, counters[c].name, "counter", counters[c].help);
    for (size_t i = 0; i < net->count; i++) {
      const char *labels[] = {"device", net->ifs[i].name, NULL};
      nl_prom_u64(b, counters[c].name, labels,
                  net->ifs[i].counters[counters[c].counter]);
    }
  }
  nl_prom_family(b, "node_network_up", "gauge",
                 "Value is 1 if the interface is administratively up.");
  for (size_t i = 0; i < net->count; i++) {
    const char *labels[] = {"device", net->ifs[i].name, NULL};
    nl_prom_u64(b, "node_network_up", labels, net->ifs[i].up ? 1 : 0);
  }
  nl_prom_family(b, "node_network_mtu_bytes", "gauge", "MTU of the interface.");
  for (size_t i = 0; i < net->count; i++) {
    const char *labels[] = {"device", net->ifs[i].name, NULL};
    nl_prom_u64(b, "node_network_mtu_bytes", labels, (uint64_t)net->ifs[i].mtu);
  }
  bool any_speed = false;
  for (size_t i = 0; i < net->count; i++)
    any_speed = any_speed || net->ifs[i].speed_mbps > 0;
  if (any_speed) {
    nl_prom_family(b, "node_network_speed_bytes", "gauge",
                   "Link speed in bytes per second.");
    for (size_t i = 0; i < net->count; i++) {
      if (net->ifs[i].speed_mbps <= 0)
        continue;
      const char *labels[] = {"device", net->ifs[i].name, NULL};
      nl_prom_u64(b, "node_network_speed_bytes", labels,
                  (uint64_t)net->ifs[i].speed_mbps * 125000);
    }
  }
  nl_prom_family(b, "node_network_info", "gauge",
                 "Interface facts; the value is always 1.");
  for (size_t i = 0; i < net->count; i++) {
    const char *labels[] = {"address",   net->ifs[i].mac,
                            "device",    net->ifs[i].name,
                            "operstate", net->ifs[i].up ? "up" : "down",
                            NULL};
    nl_prom_u64(b, "node_network_info", labels, 1);
  }
kinds:
  nl_prom_family(b, "nodelua_network_link_info", "gauge",
                 "Kind of link (loopback, ethernet, wifi, thunderbolt, bridge, "
                 "virtual, other); the value is always 1.");
  for (size_t i = 0; i < net->count; i++) {
    const char *labels[] = {"device", net->ifs[i].name, "kind",
                            nl_link_kind_name(net->ifs[i].kind), NULL};
    nl_prom_u64(b, "nodelua_network_link_info", labels, 1);
  }
}

static const char *const *fs_labels(const nl_filesystem *fs,
                                    const char **labels) {
  labels[0] = "device", labels[1] = fs->device;
  labels[2] = "fstype", labels[3] = fs->fstype;
  labels[4] = "mountpoint", labels[5] = fs->mount;
  labels[6] = NULL;
  return labels;
}

static void format_storage(const nl_storage_sample *st, unsigned skip,
                           nl_buf *b) {
  const char *labels[7];
  static const struct {
    const char *name;
    const char *help;
    size_t offset;
  } fields[] = {
      {"node_filesystem_size_bytes", "Filesystem size in bytes.",
       offsetof(nl_filesystem, size)},
      {"node_filesystem_free_bytes", "Filesystem free space in bytes.",
       offsetof(nl_filesystem, free)},
      {"node_filesystem_avail_bytes",
       "Filesystem space available to non-root users in bytes.",
       offsetof(nl_filesystem, available)},
      {"node_filesystem_files", "Filesystem total file nodes.",
       offsetof(nl_filesystem, inodes_total)},
      {"node_filesystem_files_free", "Filesystem total free file nodes.",
       offsetof(nl_filesystem, inodes_free)},
  };
  for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
    nl_prom_family(b, fields[f].name, "gauge", fields[f].help);
    for (size_t i = 0; i < st->fs_count; i++) {
      const nl_filesystem *fs = &st->fs[i];
      if (fs->device_error)
        continue;
      nl_prom_u64(b, fields[f].name, fs_labels(fs, labels),
                  *(const uint64_t *)((const char *)fs + fields[f].offset));
    }
  }
  nl_prom_family(b, "node_filesystem_readonly", "gauge",
                 "Filesystem read-only status.");
  for (size_t i = 0; i < st->fs_count; i++)
    nl_prom_u64(b, "node_filesystem_readonly", fs_labels(&st->fs[i], labels),
                st->fs[i].readonly ? 1 : 0);
  nl_prom_family(b, "node_filesystem_device_error", "gauge",
                 "Whether an error occurred while getting statistics for the "
                 "given device.");
  for (size_t i = 0; i < st->fs_count; i++)
    nl_prom_u64(b, "node_filesystem_device_error",
                fs_labels(&st->fs[i], labels), st->fs[i].device_error ? 1 : 0);
  static const struct {
    nl_disk_counter counter;
    const char *name;
    const char *help;
    double scale;
  } disk[] = {
      {NL_DISK_READ_BYTES, "node_disk_read_bytes_total",
       "The total number of bytes read successfully.", 1},
      {NL_DISK_WRITE_BYTES, "node_disk_written_bytes_total",
       "The total number of bytes written successfully.", 1},
      {NL_DISK_READS, "node_disk_reads_completed_total",
       "The total number of reads completed successfully.", 1},
      {NL_DISK_WRITES, "node_disk_writes_completed_total",
       "The total number of writes completed successfully.", 1},
      {NL_DISK_BUSY_MS, "node_disk_io_time_seconds_total",
       "Total seconds spent doing I/Os.", 0.001},
  };
  if (st->disk_count == 0 || (skip & NL_PROM_SKIP_DISKS))
    return;
  for (size_t c = 0; c < sizeof disk / sizeof disk[0]; c++) {
    nl_prom_family(b, disk[c].name, "counter", disk[c].help);
    for (size_t i = 0; i < st->disk_count; i++) {
      const char *device[] = {"device", st->disks[i].name, NULL};
      uint64_t v = st->disks[i].counters[disk[c].counter];
      if (v == NL_ABSENT)
        continue;
      if (disk[c].scale == 1)
        nl_prom_u64(b, disk[c].name, device, v);
      else
        nl_prom_double(b, disk[c].name, device, (double)v / 1000);
    }
  }
}

static void format_system(const nl_system_sample *sys, nl_buf *b) {
  if (!isnan(sys->boot_time)) {
    nl_prom_family(b, "node_boot_time_seconds", "gauge",
                   "Node boot time, in unixtime.");
    nl_prom_double(b, "node_boot_time_seconds", NULL, sys->boot_time);
  }
  nl_prom_family(
      b, "node_uname_info", "gauge",
      "Labeled system information as provided by the uname system call.");
  const char *uname[] = {
      "domainname",  sys->domainname,     "machine",   sys->arch, "nodename",
      sys->hostname, "release",           sys->kernel, "sysname", sys->sysname,
      "version",     sys->kernel_version, NULL};
  nl_prom_u64(b, "node_uname_info", uname, 1);
  nl_prom_family(
      b, "node_os_info", "gauge",
      "A metric with a constant '1' value labeled by build_id, id, "
      "id_like, image_id, image_version, name, pretty_name, variant, "
      "variant_id, version, version_codename, version_id.");
  const char *os[] = {"build_id",
                      sys->os_build_id,
                      "id",
                      sys->os_id,
                      "id_like",
                      sys->os_id_like,
                      "image_id",
                      sys->os_image_id,
                      "image_version",
                      sys->os_image_version,
                      "name",
                      sys->os_name,
                      "pretty_name",
                      sys->os_pretty_name,
                      "variant",
                      sys->os_variant,
                      "variant_id",
                      sys->os_variant_id,
                      "version",
                      sys->os_version_full,
                      "version_codename",
                      sys->os_codename,
                      "version_id",
                      sys->os_version,
                      NULL};
  nl_prom_u64(b, "node_os_info", os, 1);
  if (sys->model[0]) {
    nl_prom_family(b, "nodelua_system_model_info", "gauge",
                   "Hardware model; the value is always 1.");
    const char *model[] = {"model", sys->model, NULL};
    nl_prom_u64(b, "nodelua_system_model_info", model, 1);
  }
  nl_prom_family(b, "nodelua_system_apple_silicon", "gauge",
                 "1 on Apple Silicon, 0 elsewhere.");
  nl_prom_u64(b, "nodelua_system_apple_silicon", NULL, sys->apple_silicon);
}

static void format_thermal(const nl_thermal_sample *th, unsigned skip,
                           nl_buf *b) {
  bool zones = false, hwmon = false, other = false;
  for (size_t i = 0; i < th->count; i++) {
    zones = zones || strcmp(th->sensors[i].source, "thermal_zone") == 0;
    hwmon = hwmon || (strcmp(th->sensors[i].source, "hwmon") == 0 &&
                      !(skip & NL_PROM_SKIP_HWMON));
    other = other || (strcmp(th->sensors[i].source, "thermal_zone") != 0 &&
                      strcmp(th->sensors[i].source, "hwmon") != 0);
  }
  if (zones) {
    nl_prom_family(b, "node_thermal_zone_temp", "gauge",
                   "Zone temperature in Celsius");
    for (size_t i = 0; i < th->count; i++) {
      const nl_sensor *s = &th->sensors[i];
      if (strcmp(s->source, "thermal_zone") != 0)
        continue;
      const char *labels[] = {"type", s->name, "zone", s->chip, NULL};
      nl_prom_double(b, "node_thermal_zone_temp", labels, s->celsius);
    }
  }
  if (hwmon) {
    nl_prom_family(b, "node_hwmon_temp_celsius", "gauge",
                   "Hardware monitor for temperature (input)");
    for (size_t i = 0; i < th->count; i++) {
      const nl_sensor *s = &th->sensors[i];
      if (strcmp(s->source, "hwmon") != 0)
        continue;
      const char *sensor = strchr(s->name, '/');
      const char *labels[] = {"chip", s->chip, "sensor",
                              sensor ? sensor + 1 : s->name, NULL};
      nl_prom_double(b, "node_hwmon_temp_celsius", labels, s->celsius);
    }
  }
  if (other) {
    nl_prom_family(b, "nodelua_temperature_celsius", "gauge",
                   "Temperature of a sensor, in Celsius.");
    for (size_t i = 0; i < th->count; i++) {
      const nl_sensor *s = &th->sensors[i];
      if (strcmp(s->source, "thermal_zone") == 0 ||
          strcmp(s->source, "hwmon") == 0)
        continue;
      const char *labels[] = {"sensor", s->name, "source", s->source, NULL};
      nl_prom_double(b, "nodelua_temperature_celsius", labels, s->celsius);
    }
  }
}

static void format_self(const nl_self_sample *self, nl_buf *b) {
  nl_prom_family(b, "process_cpu_seconds_total", "counter",
                 "Total user and system CPU time spent in seconds.");
  nl_prom_double(b, "process_cpu_seconds_total", NULL, self->cpu_seconds);
  if (self->rss_bytes != NL_ABSENT) {
    nl_prom_family(b, "process_resident_memory_bytes", "gauge",
                   "Resident memory size in bytes.");
    nl_prom_u64(b, "process_resident_memory_bytes", NULL, self->rss_bytes);
  }
  if (!isnan(self->start_time)) {
    nl_prom_family(b, "process_start_time_seconds", "gauge",
                   "Start time of the process since unix epoch in seconds.");
    nl_prom_double(b, "process_start_time_seconds", NULL, self->start_time);
  }
}

int nl_metrics_format_prom(const nl_metrics_snapshot *s, unsigned skip,
                           nl_buf *out) {
  nl_buf_reset(out);
  if (s->present & NL_METRICS_CPU)
    format_cpu(&s->cpu, out);
  if (s->present & NL_METRICS_LOAD)
    format_load(&s->load, out);
  if (s->present & NL_METRICS_MEMORY)
    format_memory(&s->memory, skip, out);
  if (s->present & NL_METRICS_NETWORK)
    format_network(&s->network, skip, out);
  if (s->present & NL_METRICS_STORAGE)
    format_storage(&s->storage, skip, out);
  if (s->present & NL_METRICS_SYSTEM)
    format_system(&s->system, out);
  if (s->present & NL_METRICS_THERMAL)
    format_thermal(&s->thermal, skip, out);
  if (s->present & NL_METRICS_SELF)
    format_self(&s->self, out);
  return out->failed ? -ENOMEM : 0;
}
