#include "promtext.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Appending without printf: rendering is on the path of every scrape. */
static void put_str(nl_buf *b, const char *s) {
  nl_buf_append(b, s, strlen(s));
}

static void put_u64(nl_buf *b, uint64_t v) {
  char digits[24];
  size_t n = sizeof digits;
  do {
    digits[--n] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  nl_buf_append(b, digits + n, sizeof digits - n);
}

void nl_prom_family(nl_buf *b, const char *name, const char *type,
                    const char *help) {
  put_str(b, "# HELP ");
  put_str(b, name);
  nl_buf_append(b, " ", 1);
  put_str(b, help);
  put_str(b, "\n# TYPE ");
  put_str(b, name);
  nl_buf_append(b, " ", 1);
  put_str(b, type);
  nl_buf_append(b, "\n", 1);
}

/* Label values escape backslash, double quote and newline. */
static void label_value(nl_buf *b, const char *v) {
  const char *run = v;
  for (const char *p = v;; p++) {
    if (*p != '\\' && *p != '"' && *p != '\n' && *p != '\0')
      continue;
    nl_buf_append(b, run, (size_t)(p - run));
    if (*p == '\0')
      return;
    nl_buf_append(b, *p == '\n' ? "\\n" : *p == '"' ? "\\\"" : "\\\\", 2);
    run = p + 1;
  }
}

/* Writes name{k1="v1",k2="v2"...} for a NULL-terminated list of pairs. */
static void series(nl_buf *b, const char *name, const char *const *labels) {
  nl_buf_append(b, name, strlen(name));
  if (labels != NULL && labels[0] != NULL) {
    nl_buf_append(b, "{", 1);
    for (size_t i = 0; labels[i] != NULL; i += 2) {
      if (i > 0)
        nl_buf_append(b, ",", 1);
      put_str(b, labels[i]);
      nl_buf_append(b, "=\"", 2);
      label_value(b, labels[i + 1]);
      nl_buf_append(b, "\"", 1);
    }
    nl_buf_append(b, "}", 1);
  }
}

void nl_prom_u64(nl_buf *b, const char *name, const char *const *labels,
                 uint64_t v) {
  series(b, name, labels);
  nl_buf_append(b, " ", 1);
  put_u64(b, v);
  nl_buf_append(b, "\n", 1);
}

void nl_prom_double(nl_buf *b, const char *name, const char *const *labels,
                    double v) {
  series(b, name, labels);
  if (isnan(v)) {
    nl_buf_append(b, " NaN\n", 5);
  } else if (isinf(v)) {
    nl_buf_append(b, v > 0 ? " +Inf\n" : " -Inf\n", 6);
  } else if (v == floor(v) && fabs(v) < 9007199254740992.0) {
    /* Most values are whole (counters, bytes): no printf for them. */
    nl_buf_append(b, v < 0 ? " -" : " ", v < 0 ? 2 : 1);
    put_u64(b, (uint64_t)fabs(v));
    nl_buf_append(b, "\n", 1);
  } else {
    nl_buf_printf(b, " %.15g\n", v);
  }
}

void nl_prom_gauge(nl_buf *b, const char *name, const char *help, double v) {
  nl_prom_family(b, name, "gauge", help);
  nl_prom_double(b, name, NULL, v);
}

void nl_prom_counter(nl_buf *b, const char *name, const char *help, double v) {
  nl_prom_family(b, name, "counter", help);
  nl_prom_double(b, name, NULL, v);
}

void nl_prom_time(nl_buf *b) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  nl_prom_gauge(b, "node_time_seconds",
                "System time in seconds since epoch (1970).",
                (double)now.tv_sec + (double)now.tv_nsec / 1e9);
  struct tm local;
  time_t t = now.tv_sec;
  if (localtime_r(&t, &local) == NULL)
    return;
  nl_prom_family(b, "node_time_zone_offset_seconds", "gauge",
                 "System time zone offset in seconds.");
  const char *labels[] = {"time_zone", local.tm_zone ? local.tm_zone : "",
                          NULL};
  nl_prom_double(b, "node_time_zone_offset_seconds", labels,
                 (double)local.tm_gmtoff);
}
