/* Parsers of the /proc files behind the node_exporter-compatible families
 * (meminfo, vmstat, netstat, sockstat, net/dev, pressure, softnet, arp,
 * udp, schedstat, PID stat): bytes in, values out, no I/O and no
 * allocation, fed anything by tests/fuzz/fuzz_procfs.c. Lines longer than
 * the local copies are cut, never overrun. */
#include "procfs.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 64
#define LINE_MAX_LEN 8192

static size_t line_length(const char *line) {
  const char *eol = strchr(line, '\n');
  return eol ? (size_t)(eol - line) : strlen(line);
}

/* Copies the line into a local, NUL-terminated buffer (cut to fit). */
static void copy_line(char *dst, size_t cap, const char *line) {
  size_t n = line_length(line);
  if (n >= cap)
    n = cap - 1;
  memcpy(dst, line, n);
  dst[n] = '\0';
}

static const char *skip_blanks(const char *p) {
  while (*p == ' ' || *p == '\t')
    p++;
  return p;
}

/* The next space-separated token of *p, copied into out; false at the end
 * of the line. */
static bool next_token(const char **p, char *out, size_t cap) {
  const char *s = skip_blanks(*p);
  size_t n = strcspn(s, " \t\n");
  if (n == 0)
    return false;
  size_t keep = n < cap ? n : cap - 1;
  memcpy(out, s, keep);
  out[keep] = '\0';
  *p = s + n;
  return true;
}

static bool number_end(char c) {
  return c == '\0' || c == ' ' || c == '\t' || c == '\n';
}

/* The n-th (1-based) space-separated token of line into out; false when
 * the line has fewer (out is then not to be read). */
static bool nth_token(const char *line, int n, char *out, size_t cap) {
  const char *p = line;
  for (int i = 0; i < n; i++) {
    if (!next_token(&p, out, cap))
      return false;
  }
  return true;
}

static bool parse_number(const char *s, double *out) {
  char *end;
  if (!((*s >= '0' && *s <= '9') || *s == '-'))
    return false;
  /* Nearly every value is a whole number of up to 15 digits: exact as a
   * double, and far cheaper than strtod. */
  uint64_t whole = 0;
  const char *p = s;
  while (*p >= '0' && *p <= '9' && p - s < 15)
    whole = whole * 10 + (uint64_t)(*p++ - '0');
  if (p > s && number_end(*p)) {
    *out = (double)whole;
    return true;
  }
  double v = strtod(s, &end);
  if (end == s || !number_end(*end))
    return false;
  *out = v;
  return true;
}

void nl_procfs_keyvalues(const char *buf, nl_procfs_kv_cb cb, void *ud) {
  char line[LINE_MAX_LEN];
  for (const char *at = buf; at && *at; at = nl_procfs_next_line(at)) {
    copy_line(line, sizeof line, at);
    const char *p = line;
    char name[NAME_MAX_LEN + 1], value[64], unit[8];
    if (!next_token(&p, name, sizeof name) || strlen(name) >= NAME_MAX_LEN)
      continue;
    size_t len = strlen(name);
    if (len > 0 && name[len - 1] == ':')
      name[--len] = '\0';
    double v;
    if (len == 0 || !next_token(&p, value, sizeof value) ||
        !parse_number(value, &v))
      continue;
    bool kb = next_token(&p, unit, sizeof unit) && strcmp(unit, "kB") == 0;
    cb(ud, name, v, kb);
  }
}

/* "Group:" at the start of line into group; returns what follows the
 * colon, or NULL when the line has no usable group. */
static const char *split_group(const char *line, char *group) {
  const char *colon = strchr(line, ':');
  size_t len = colon ? (size_t)(colon - line) : 0;
  if (colon == NULL || len == 0 || len >= NAME_MAX_LEN)
    return NULL;
  memcpy(group, line, len);
  group[len] = '\0';
  return colon + 1;
}

/* Pairs of (name, number) tokens, from two cursors (the two lines of a
 * netstat table) or one (a sockstat line: both cursors are the same). */
static void emit_pairs(const char **names, const char **numbers,
                       const char *group, nl_procfs_pair_cb cb, void *ud) {
  char field[NAME_MAX_LEN + 1], number[64];
  while (next_token(names, field, sizeof field) &&
         next_token(numbers, number, sizeof number)) {
    double value;
    if (strlen(field) < NAME_MAX_LEN && parse_number(number, &value))
      cb(ud, group, field, value);
  }
}

void nl_procfs_header_pairs(const char *buf, nl_procfs_pair_cb cb, void *ud) {
  char header[LINE_MAX_LEN], values[LINE_MAX_LEN];
  for (const char *at = buf; at && *at;) {
    const char *second = nl_procfs_next_line(at);
    if (second == NULL || *second == '\0')
      return;
    copy_line(header, sizeof header, at);
    copy_line(values, sizeof values, second);
    at = nl_procfs_next_line(second);
    char group[NAME_MAX_LEN], other[NAME_MAX_LEN];
    const char *h = split_group(header, group);
    const char *v = split_group(values, other);
    /* Both lines of a pair start with the same "Group:". */
    if (h == NULL || v == NULL || strcmp(group, other) != 0)
      continue;
    emit_pairs(&h, &v, group, cb, ud);
  }
}

void nl_procfs_sockstat(const char *buf, nl_procfs_pair_cb cb, void *ud) {
  char line[LINE_MAX_LEN];
  for (const char *at = buf; at && *at; at = nl_procfs_next_line(at)) {
    copy_line(line, sizeof line, at);
    char group[NAME_MAX_LEN];
    const char *p = split_group(line, group);
    if (p != NULL)
      emit_pairs(&p, &p, group, cb, ud);
  }
}

int nl_procfs_netdev(const char *buf, nl_procfs_netdev_cb cb, void *ud) {
  char line[LINE_MAX_LEN];
  for (const char *at = buf; at && *at; at = nl_procfs_next_line(at)) {
    copy_line(line, sizeof line, at);
    char *colon = strchr(line, ':');
    if (colon == NULL)
      continue; /* the two header lines */
    const char *name = skip_blanks(line);
    *colon = '\0';
    if (*name == '\0' || strlen(name) >= 32 || strchr(name, '|') != NULL)
      continue;
    unsigned long long v[NL_NETDEV_FIELDS];
    const char *p = colon + 1;
    int got = 0;
    for (; got < NL_NETDEV_FIELDS; got++) {
      char *end;
      p = skip_blanks(p);
      if (*p < '0' || *p > '9')
        break;
      v[got] = strtoull(p, &end, 10);
      p = end;
    }
    if (got < NL_NETDEV_FIELDS)
      continue;
    int rc = cb(ud, name, v);
    if (rc < 0)
      return rc;
  }
  return 0;
}

static double total_of(const char *line) {
  const char *t = strstr(line, "total=");
  double v;
  if (t == NULL || !parse_number(t + 6, &v))
    return -1;
  return v;
}

int nl_procfs_pressure(const char *buf, double *some_us, double *full_us) {
  char line[256];
  *some_us = *full_us = -1;
  for (const char *at = buf; at && *at; at = nl_procfs_next_line(at)) {
    copy_line(line, sizeof line, at);
    if (strncmp(line, "some ", 5) == 0)
      *some_us = total_of(line);
    else if (strncmp(line, "full ", 5) == 0)
      *full_us = total_of(line);
  }
  return *some_us >= 0 || *full_us >= 0 ? 0 : -1;
}

int nl_procfs_softnet(const char *buf, nl_procfs_softnet_cb cb, void *ud) {
  char line[LINE_MAX_LEN];
  int cpu = 0;
  for (const char *at = buf; at && *at; at = nl_procfs_next_line(at)) {
    copy_line(line, sizeof line, at);
    unsigned long long col[11] = {0};
    const char *p = line;
    int got = 0;
    for (; got < 11; got++) {
      char *end;
      p = skip_blanks(p);
      col[got] = strtoull(p, &end, 16);
      if (end == p)
        break;
      p = end;
    }
    if (got < 3)
      continue;
    /* Columns: processed, dropped, time_squeezed, 0 x5, cpu_collision,
     * received_rps, flow_limit_count (since 2.6.x / 3.x). */
    unsigned long long v[NL_SOFTNET_FIELDS] = {col[0], col[1], col[2], col[9],
                                               col[10]};
    int rc = cb(ud, cpu++, v);
    if (rc < 0)
      return rc;
  }
  return 0;
}

int nl_procfs_arp(const char *buf, nl_procfs_name_cb cb, void *ud) {
  char line[LINE_MAX_LEN];
  const char *at = nl_procfs_next_line(buf); /* the header */
  for (; at && *at; at = nl_procfs_next_line(at)) {
    copy_line(line, sizeof line, at);
    /* IP address, HW type, Flags, HW address, Mask, Device */
    char device[64];
    if (!nth_token(line, 6, device, sizeof device))
      continue;
    int rc = cb(ud, device);
    if (rc < 0)
      return rc;
  }
  return 0;
}

int nl_procfs_udp_queues(const char *buf, double *tx, double *rx) {
  char line[LINE_MAX_LEN];
  *tx = *rx = 0;
  if (strstr(buf, "tx_queue") == NULL)
    return -1;
  const char *at = nl_procfs_next_line(buf);
  for (; at && *at; at = nl_procfs_next_line(at)) {
    copy_line(line, sizeof line, at);
    /* sl local_address rem_address st tx_queue:rx_queue ... */
    char field[96];
    if (!nth_token(line, 5, field, sizeof field))
      continue;
    char *colon = strchr(field, ':');
    if (colon == NULL)
      continue;
    *tx += (double)strtoull(field, NULL, 16);
    *rx += (double)strtoull(colon + 1, NULL, 16);
  }
  return 0;
}

int nl_procfs_schedstat(const char *buf, nl_procfs_schedstat_cb cb, void *ud) {
  char line[LINE_MAX_LEN];
  for (const char *at = buf; at && *at; at = nl_procfs_next_line(at)) {
    if (strncmp(at, "cpu", 3) != 0 || at[3] < '0' || at[3] > '9')
      continue;
    copy_line(line, sizeof line, at);
    char *end;
    long cpu = strtol(line + 3, &end, 10);
    if (cpu < 0 || cpu > 1 << 20)
      continue;
    /* Nine counters follow; the last three are running ns, waiting ns and
     * timeslices. */
    double v[9];
    const char *p = end;
    int got = 0;
    for (; got < 9; got++) {
      char *next;
      p = skip_blanks(p);
      if (*p < '0' || *p > '9')
        break;
      v[got] = (double)strtoull(p, &next, 10);
      p = next;
    }
    if (got < 9)
      continue;
    int rc = cb(ud, (int)cpu, v[6], v[7], v[8]);
    if (rc < 0)
      return rc;
  }
  return 0;
}

int nl_procfs_pid_stat(const char *buf, char *state, long *threads) {
  const char *p = strrchr(buf, ')');
  if (p == NULL)
    return -1;
  p = skip_blanks(p + 1);
  if (*p == '\0' || *p == '\n')
    return -1;
  *state = *p;
  /* After the state (field 3), num_threads is field 20. */
  for (int field = 3; field < 20; field++) {
    p = strchr(p, ' ');
    if (p == NULL)
      return -1;
    p++;
  }
  char *end;
  long v = strtol(p, &end, 10);
  if (end == p)
    return -1;
  *threads = v;
  return 0;
}
