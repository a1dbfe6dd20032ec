#include "promtext.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
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

/* A value made by dividing a whole number by 10^k (k <= 6: ticks of 1/100
 * s, milliseconds, microseconds), written with k decimals, trailing zeros
 * dropped, without printf. That text parses back to exactly v: v is the
 * double nearest whole/10^k, and so is what a parser makes of the text.
 * False for any other value. */
static bool put_decimal(nl_buf *b, double v) {
  static const double scales[] = {1e1, 1e2, 1e3, 1e6};
  static const int digits[] = {1, 2, 3, 6};
  double magnitude = fabs(v);
  if (magnitude >= 1e9)
    return false;
  for (size_t i = 0; i < sizeof scales / sizeof scales[0]; i++) {
    double scaled = round(magnitude * scales[i]);
    if (scaled / scales[i] != magnitude)
      continue;
    uint64_t whole = (uint64_t)scaled;
    uint64_t unit = (uint64_t)scales[i];
    char frac[8];
    uint64_t rest = whole % unit;
    int n = digits[i];
    for (int d = n - 1; d >= 0; d--, rest /= 10)
      frac[d] = (char)('0' + rest % 10);
    while (n > 0 && frac[n - 1] == '0')
      n--;
    nl_buf_append(b, v < 0 ? " -" : " ", v < 0 ? 2 : 1);
    put_u64(b, whole / unit);
    if (n > 0) {
      nl_buf_append(b, ".", 1);
      nl_buf_append(b, frac, (size_t)n);
    }
    nl_buf_append(b, "\n", 1);
    return true;
  }
  return false;
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
  } else if (!put_decimal(b, v)) {
    /* 15 digits read well, but do not always read back as v; 17 do. */
    char text[40];
    snprintf(text, sizeof text, "%.15g", v);
    if (strtod(text, NULL) != v)
      snprintf(text, sizeof text, "%.17g", v);
    nl_buf_append(b, " ", 1);
    nl_buf_append(b, text, strlen(text));
    nl_buf_append(b, "\n", 1);
  }
}

void nl_prom_concat(char *dst, size_t cap, ...) {
  va_list ap;
  size_t n = 0;
  va_start(ap, cap);
  for (const char *part = va_arg(ap, const char *); part != NULL;
       part = va_arg(ap, const char *)) {
    size_t len = strlen(part);
    if (len > cap - 1 - n)
      len = cap - 1 - n;
    memcpy(dst + n, part, len);
    n += len;
  }
  va_end(ap);
  dst[n] = '\0';
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
