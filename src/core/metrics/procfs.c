#include "procfs.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *nl_procfs_next_line(const char *line) {
  const char *eol = strchr(line, '\n');
  return eol ? eol + 1 : NULL;
}

int nl_procfs_stat_cpu(const char *buf, nl_procfs_cpu_cb cb, void *ud) {
  int cores = 0;
  bool total = false;
  for (const char *line = buf; line && *line;
       line = nl_procfs_next_line(line)) {
    if (strncmp(line, "cpu", 3) != 0)
      break; /* the cpu lines come first */
    const char *p = line + 3;
    int index = -1;
    if (*p >= '0' && *p <= '9') {
      char *end;
      long v = strtol(p, &end, 10);
      if (v < 0 || v > 1 << 20)
        continue;
      index = (int)v;
      p = end;
    } else if (*p != ' ') {
      continue;
    }
    unsigned long long ticks[NL_PROCFS_CPU_TICKS];
    for (int i = 0; i < NL_PROCFS_CPU_TICKS; i++) {
      char *end;
      ticks[i] = strtoull(p, &end, 10);
      if (end == p || *p == '\n')
        ticks[i] = 0; /* an older kernel without this mode */
      p = end;
    }
    if (index < 0)
      total = true;
    else
      cores++;
    int rc = cb(ud, index, ticks);
    if (rc < 0)
      return rc;
  }
  return total ? cores : -1;
}

int nl_procfs_stat_btime(const char *buf, double *btime) {
  const char *value = NULL;
  if (strncmp(buf, "btime ", 6) == 0) {
    value = buf + 6;
  } else {
    const char *line = strstr(buf, "\nbtime ");
    if (line != NULL)
      value = line + 7;
  }
  if (value == NULL)
    return -1;
  char *end;
  double v = strtod(value, &end);
  if (end == value)
    return -1;
  *btime = v;
  return 0;
}

int nl_procfs_meminfo(const char *buf, nl_memory_sample *mem) {
  static const struct {
    const char *key;
    size_t offset;
  } fields[] = {
      {"MemTotal:", offsetof(nl_memory_sample, total)},
      {"MemFree:", offsetof(nl_memory_sample, free)},
      {"MemAvailable:", offsetof(nl_memory_sample, available)},
      {"Buffers:", offsetof(nl_memory_sample, buffers)},
      {"Cached:", offsetof(nl_memory_sample, cached)},
      {"SReclaimable:", offsetof(nl_memory_sample, slab_reclaimable)},
      {"Active:", offsetof(nl_memory_sample, active)},
      {"Inactive:", offsetof(nl_memory_sample, inactive)},
      {"SwapTotal:", offsetof(nl_memory_sample, swap_total)},
      {"SwapFree:", offsetof(nl_memory_sample, swap_free)},
  };
  uint64_t *all = (uint64_t *)mem;
  for (size_t i = 0; i < sizeof *mem / sizeof(uint64_t); i++)
    all[i] = NL_ABSENT;
  for (const char *line = buf; line && *line;
       line = nl_procfs_next_line(line)) {
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
      size_t klen = strlen(fields[i].key);
      if (strncmp(line, fields[i].key, klen) == 0) {
        unsigned long long kib = strtoull(line + klen, NULL, 10);
        /* Values are in KiB; one that would overflow is not a reading. */
        if (kib < (NL_ABSENT - 1) / 1024)
          *(uint64_t *)((char *)mem + fields[i].offset) = kib * 1024;
        break;
      }
    }
  }
  if (mem->total == NL_ABSENT || mem->free == NL_ABSENT)
    return -1;
  /* As free(1) computes it: what is neither free nor reclaimable cache. */
  uint64_t reclaimable = 0;
  const uint64_t *parts[] = {&mem->buffers, &mem->cached,
                             &mem->slab_reclaimable};
  for (size_t i = 0; i < 3; i++) {
    if (*parts[i] != NL_ABSENT)
      reclaimable += *parts[i];
  }
  if (mem->free <= mem->total)
    mem->used = mem->total - mem->free > reclaimable
                    ? mem->total - mem->free - reclaimable
                    : mem->total - mem->free;
  if (mem->swap_total != NL_ABSENT && mem->swap_free != NL_ABSENT &&
      mem->swap_free <= mem->swap_total)
    mem->swap_used = mem->swap_total - mem->swap_free;
  return 0;
}

int nl_procfs_loadavg(const char *buf, nl_load_sample *load) {
  if (sscanf(buf, "%lf %lf %lf", &load->load1, &load->load5, &load->load15) !=
      3)
    return -1;
  return 0;
}

void nl_procfs_cpuinfo_mhz(const char *buf, nl_procfs_mhz_cb cb, void *ud) {
  int processor = -1;
  for (const char *line = buf; line && *line;
       line = nl_procfs_next_line(line)) {
    const char *colon = strchr(line, ':');
    const char *eol = strchr(line, '\n');
    if (colon == NULL || (eol != NULL && colon > eol))
      continue;
    if (strncmp(line, "processor", 9) == 0)
      processor = atoi(colon + 1);
    else if (strncmp(line, "cpu MHz", 7) == 0 && processor >= 0)
      cb(ud, processor, strtod(colon + 1, NULL));
  }
}

/* /proc/self/mounts escapes space, tab, newline and backslash as \ooo. */
static void unescape_mount(char *s) {
  char *out = s;
  for (char *p = s; *p; p++) {
    if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' &&
        p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
      *out++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
      p += 3;
    } else {
      *out++ = *p;
    }
  }
  *out = '\0';
}

int nl_procfs_mounts(char *buf, nl_procfs_mount_cb cb, void *ud) {
  for (char *line = buf; line && *line;) {
    char *eol = strchr(line, '\n');
    if (eol)
      *eol = '\0';
    char *fields[4] = {0};
    char *save = NULL;
    int nf = 0;
    for (char *tok = strtok_r(line, " ", &save); tok && nf < 4;
         tok = strtok_r(NULL, " ", &save))
      fields[nf++] = tok;
    line = eol ? eol + 1 : NULL;
    if (nf < 4)
      continue;
    unescape_mount(fields[0]);
    unescape_mount(fields[1]);
    nl_mount_entry e = {fields[0], fields[1], fields[2], fields[3]};
    int rc = cb(ud, &e);
    if (rc < 0)
      return rc;
  }
  return 0;
}

int nl_procfs_diskstats(const char *buf, nl_procfs_disk_cb cb, void *ud) {
  for (const char *line = buf; line && *line;
       line = nl_procfs_next_line(line)) {
    nl_diskstat d;
    int used = 0;
    if (sscanf(line, "%u %u %31s%n", &d.major, &d.minor, d.name, &used) < 3)
      continue;
    const char *p = line + used;
    d.field_count = 0;
    while (d.field_count < NL_DISKSTAT_FIELDS) {
      char *end;
      while (*p == ' ' || *p == '\t')
        p++;
      if (*p < '0' || *p > '9')
        break;
      d.fields[d.field_count++] = strtoull(p, &end, 10);
      p = end;
    }
    /* reads, merged, sectors read, ms reading, writes, merged, sectors
     * written, ms writing, in flight, ms doing I/O, weighted ms: the first
     * 11 are in every kernel since 2.6. */
    if (d.field_count < 11)
      continue;
    d.reads = d.fields[0];
    d.read_sectors = d.fields[2];
    d.writes = d.fields[4];
    d.write_sectors = d.fields[6];
    d.io_ms = d.fields[9];
    int rc = cb(ud, &d);
    if (rc < 0)
      return rc;
  }
  return 0;
}
