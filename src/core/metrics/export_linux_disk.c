/* Linux: node_exporter's diskstats collector. Every field of
 * /proc/diskstats (discards since 4.18, flushes since 5.5), for the devices
 * node_exporter keeps by default, and node_disk_info from udev's database
 * (HOST_RUN/udev/data). */
#include "metrics_linux.h"
#include "procfs.h"
#include "promtext.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* "^[0-9]+$" from s */
static bool all_digits(const char *s) {
  if (*s == '\0')
    return false;
  for (; *s; s++) {
    if (!isdigit((unsigned char)*s))
      return false;
  }
  return true;
}

/* Skips one or more digits; NULL if there is none. */
static const char *digits(const char *s) {
  if (!isdigit((unsigned char)*s))
    return NULL;
  while (isdigit((unsigned char)*s))
    s++;
  return s;
}

/* node_exporter's default --collector.diskstats.device-exclude,
 * ^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$: memory and loop
 * devices, and partitions. */
bool nl_diskstats_device_excluded(const char *name) {
  static const char *const plain[] = {"ram", "loop", "fd"};
  for (size_t i = 0; i < 3; i++) {
    size_t n = strlen(plain[i]);
    if (strncmp(name, plain[i], n) == 0 && all_digits(name + n))
      return true;
  }
  const char *p = name;
  if (strncmp(p, "xv", 2) == 0)
    p += 2;
  else if (*p == 'h' || *p == 's' || *p == 'v')
    p += 1;
  else
    p = NULL;
  if (p && p[0] == 'd' && p[1] >= 'a' && p[1] <= 'z' && all_digits(p + 2))
    return true;
  if (strncmp(name, "nvme", 4) == 0) {
    p = digits(name + 4);
    if (p && *p == 'n' && (p = digits(p + 1)) != NULL && *p == 'p' &&
        all_digits(p + 1))
      return true;
  }
  return false;
}

static int take_disk(void *ud, const nl_diskstat *d) {
  nl_row_fill *f = ud;
  if (nl_diskstats_device_excluded(d->name))
    return 0;
  nl_row *row = nl_linux_add_row(f->m->os, &f->count, d->name);
  if (row == NULL)
    return -ENOMEM;
  row->major = d->major;
  row->minor = d->minor;
  row->field_count = d->field_count;
  for (int i = 0; i < d->field_count; i++)
    row->v[i] = (double)d->fields[i];
  return 0;
}

/* The udev properties node_disk_info carries, from "E:KEY=value" lines. */
typedef struct {
  char path[128], wwn[64], model[64], serial[64], revision[32];
} udev_props;

static void read_udev(nl_metrics *m, const nl_row *row, udev_props *p) {
  memset(p, 0, sizeof *p);
  if (nl_linux_slurp(m->os, nl_linux_path(m, NL_HOST_RUN, "/udev/data/b%u:%u",
                                          row->major, row->minor)) <= 0)
    return;
  const struct {
    const char *key;
    char *dst;
    size_t cap;
  } keys[] = {{"E:ID_PATH=", p->path, sizeof p->path},
              {"E:ID_WWN=", p->wwn, sizeof p->wwn},
              {"E:ID_MODEL=", p->model, sizeof p->model},
              {"E:ID_SERIAL_SHORT=", p->serial, sizeof p->serial},
              {"E:ID_REVISION=", p->revision, sizeof p->revision}};
  for (const char *line = m->os->buf; line && *line;) {
    const char *eol = strchr(line, '\n');
    size_t len = eol ? (size_t)(eol - line) : strlen(line);
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
      size_t n = strlen(keys[k].key);
      if (len > n && strncmp(line, keys[k].key, n) == 0)
        nl_metrics_copy_n(keys[k].dst, keys[k].cap, line + n, len - n);
    }
    line = eol ? eol + 1 : NULL;
  }
}

bool nl_export_diskstats(nl_metrics *m, nl_buf *out) {
  static const struct {
    const char *name, *type, *help;
    double scale; /* below 1: a divisor (1000: ms), so that 9 ms is 0.009 */
  } fields[NL_DISKSTAT_FIELDS] = {
      {"node_disk_reads_completed_total", "counter",
       "The total number of reads completed successfully.", 1},
      {"node_disk_reads_merged_total", "counter",
       "The total number of reads merged.", 1},
      {"node_disk_read_bytes_total", "counter",
       "The total number of bytes read successfully.", 512},
      {"node_disk_read_time_seconds_total", "counter",
       "The total number of seconds spent by all reads.", 0.001},
      {"node_disk_writes_completed_total", "counter",
       "The total number of writes completed successfully.", 1},
      {"node_disk_writes_merged_total", "counter",
       "The number of writes merged.", 1},
      {"node_disk_written_bytes_total", "counter",
       "The total number of bytes written successfully.", 512},
      {"node_disk_write_time_seconds_total", "counter",
       "This is the total number of seconds spent by all writes.", 0.001},
      {"node_disk_io_now", "gauge", "The number of I/Os currently in progress.",
       1},
      {"node_disk_io_time_seconds_total", "counter",
       "Total seconds spent doing I/Os.", 0.001},
      {"node_disk_io_time_weighted_seconds_total", "counter",
       "The weighted # of seconds spent doing I/Os.", 0.001},
      {"node_disk_discards_completed_total", "counter",
       "The total number of discards completed successfully.", 1},
      {"node_disk_discards_merged_total", "counter",
       "The total number of discards merged.", 1},
      {"node_disk_discarded_sectors_total", "counter",
       "The total number of sectors discarded successfully.", 1},
      {"node_disk_discard_time_seconds_total", "counter",
       "This is the total number of seconds spent by all discards.", 0.001},
      {"node_disk_flush_requests_total", "counter",
       "The total number of flush requests completed successfully", 1},
      {"node_disk_flush_requests_time_seconds_total", "counter",
       "This is the total number of seconds spent by all flush requests.",
       0.001},
  };
  nl_row_fill f = {m, 0};
  if (!nl_linux_read_proc(m, "/diskstats") ||
      nl_procfs_diskstats(m->os->buf, take_disk, &f) != 0)
    return false;
  const nl_row *rows = m->os->rows;
  for (int k = 0; k < NL_DISKSTAT_FIELDS; k++) {
    bool opened = false;
    for (size_t i = 0; i < f.count; i++) {
      if (rows[i].field_count <= k)
        continue; /* an older kernel without discards or flushes */
      if (!opened)
        nl_prom_family(out, fields[k].name, fields[k].type, fields[k].help);
      opened = true;
      const char *labels[] = {"device", rows[i].name, NULL};
      nl_prom_double(out, fields[k].name, labels,
                     fields[k].scale < 1 ? rows[i].v[k] / 1000
                                         : rows[i].v[k] * fields[k].scale);
    }
  }
  if (f.count == 0)
    return true;
  nl_prom_family(out, "node_disk_info", "gauge",
                 "Info of /sys/block/<block_device>.");
  for (size_t i = 0; i < f.count; i++) {
    udev_props p;
    char major[16], minor[16];
    read_udev(m, &rows[i], &p);
    snprintf(major, sizeof major, "%u", rows[i].major);
    snprintf(minor, sizeof minor, "%u", rows[i].minor);
    const char *labels[] = {
        "device", rows[i].name, "major", major,  "minor",    minor,
        "model",  p.model,      "path",  p.path, "revision", p.revision,
        "serial", p.serial,     "wwn",   p.wwn,  NULL};
    nl_prom_u64(out, "node_disk_info", labels, 1);
  }
  return true;
}
