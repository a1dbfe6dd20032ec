#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define NL_LOG_MAX_SECRETS 16
#define NL_LOG_LINE_MAX 16384

/* Read by every thread that logs (transfer threads, the endpoint's), set
 * from the loop: atomics, relaxed, since nothing else is ordered by them. */
static _Atomic int current_level = NL_LOG_INFO;
static _Atomic int current_format = NL_LOG_TEXT;
static FILE *log_file; /* NULL means stderr */
static char *secrets[NL_LOG_MAX_SECRETS];
static size_t secret_count;
/* Worker threads (transfer, hashing) log too; one lock keeps lines whole. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"error", "warn", "info", "debug",
                                          "trace"};

int nl_log_level_parse(const char *name, nl_log_level *out) {
  if (name == NULL)
    return -EINVAL;
  for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
    if (strcasecmp(name, level_names[i]) == 0) {
      *out = (nl_log_level)i;
      return 0;
    }
  }
  if (strcasecmp(name, "warning") == 0) {
    *out = NL_LOG_WARN;
    return 0;
  }
  return -EINVAL;
}

const char *nl_log_level_name(nl_log_level level) {
  if ((unsigned)level > NL_LOG_TRACE)
    return "?";
  return level_names[level];
}

int nl_log_format_parse(const char *name, nl_log_format *out) {
  if (name != NULL && strcasecmp(name, "text") == 0) {
    *out = NL_LOG_TEXT;
    return 0;
  }
  if (name != NULL && strcasecmp(name, "json") == 0) {
    *out = NL_LOG_JSON;
    return 0;
  }
  return -EINVAL;
}

void nl_log_set_level(nl_log_level level) {
  atomic_store_explicit(&current_level, (int)level, memory_order_relaxed);
}
nl_log_level nl_log_get_level(void) {
  return (nl_log_level)atomic_load_explicit(&current_level,
                                            memory_order_relaxed);
}
void nl_log_set_format(nl_log_format format) {
  atomic_store_explicit(&current_format, (int)format, memory_order_relaxed);
}
static nl_log_format log_format(void) {
  return (nl_log_format)atomic_load_explicit(&current_format,
                                             memory_order_relaxed);
}
int nl_log_enabled(nl_log_level level) {
  return (int)level <= (int)nl_log_get_level();
}

int nl_log_set_file(const char *path) {
  FILE *next = NULL;
  if (path != NULL) {
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
      return -errno;
    next = fdopen(fd, "a");
    if (next == NULL) {
      int err = errno;
      close(fd);
      return -err;
    }
    setvbuf(next, NULL, _IOLBF, 0);
  }
  pthread_mutex_lock(&log_lock);
  FILE *old = log_file;
  log_file = next;
  pthread_mutex_unlock(&log_lock);
  if (old != NULL)
    fclose(old);
  return 0;
}

int nl_log_add_secret(const char *value) {
  if (value == NULL || strlen(value) < NL_LOG_MIN_SECRET)
    return 0;
  pthread_mutex_lock(&log_lock);
  for (size_t i = 0; i < secret_count; i++) {
    if (strcmp(secrets[i], value) == 0) {
      pthread_mutex_unlock(&log_lock);
      return 0;
    }
  }
  int rc = -ENOSPC;
  if (secret_count < NL_LOG_MAX_SECRETS) {
    char *copy = strdup(value);
    rc = copy ? 0 : -ENOMEM;
    if (copy)
      secrets[secret_count++] = copy;
  }
  pthread_mutex_unlock(&log_lock);
  return rc;
}

void nl_log_clear_secrets(void) {
  pthread_mutex_lock(&log_lock);
  for (size_t i = 0; i < secret_count; i++) {
    /* Overwrite before freeing so the key does not linger in freed memory. */
    volatile char *p = secrets[i];
    while (*p)
      *p++ = 0;
    free(secrets[i]);
    secrets[i] = NULL;
  }
  secret_count = 0;
  pthread_mutex_unlock(&log_lock);
}

/* Caller holds log_lock (or is single-threaded test code). */
static size_t redact_locked(const char *src, char *dst, size_t dstlen) {
  size_t out = 0;
  if (dstlen == 0)
    return 0;
  while (*src != '\0') {
    size_t matched = 0;
    for (size_t i = 0; i < secret_count; i++) {
      size_t n = strlen(secrets[i]);
      if (strncmp(src, secrets[i], n) == 0 && n > matched)
        matched = n;
    }
    if (matched > 0) {
      const char *r = NL_LOG_REDACTED;
      while (*r && out + 1 < dstlen)
        dst[out++] = *r++;
      src += matched;
    } else {
      if (out + 1 < dstlen)
        dst[out++] = *src;
      src++;
    }
  }
  dst[out] = '\0';
  return out;
}

size_t nl_log_redact(const char *src, char *dst, size_t dstlen) {
  pthread_mutex_lock(&log_lock);
  size_t n = redact_locked(src, dst, dstlen);
  pthread_mutex_unlock(&log_lock);
  return n;
}

static void format_timestamp(char *buf, size_t len) {
  struct timeval tv;
  struct tm tm;
  gettimeofday(&tv, NULL);
  time_t secs = tv.tv_sec;
  gmtime_r(&secs, &tm);
  snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
           (int)(tv.tv_usec / 1000));
}

typedef struct {
  char *buf;
  size_t len, cap;
} line_buf;

static void put(line_buf *b, const char *s, size_t n) {
  for (size_t i = 0; i < n && b->len + 1 < b->cap; i++)
    b->buf[b->len++] = s[i];
  b->buf[b->len] = '\0';
}

static void put_str(line_buf *b, const char *s) { put(b, s, strlen(s)); }

/* Text lines must stay one line each: newlines in a message (tracebacks)
 * become " | ", other control bytes become '?'. */
static void put_text_escaped(line_buf *b, const char *s) {
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '\n')
      put_str(b, " | ");
    else if (c == '\t')
      put(b, " ", 1);
    else if (c < 0x20 || c == 0x7f)
      put(b, "?", 1);
    else
      put(b, s, 1);
  }
}

static void put_json_escaped(line_buf *b, const char *s) {
  put(b, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    char esc[8];
    switch (c) {
    case '"':
      put_str(b, "\\\"");
      break;
    case '\\':
      put_str(b, "\\\\");
      break;
    case '\n':
      put_str(b, "\\n");
      break;
    case '\t':
      put_str(b, "\\t");
      break;
    case '\r':
      put_str(b, "\\r");
      break;
    default:
      if (c < 0x20 || c == 0x7f) {
        snprintf(esc, sizeof esc, "\\u%04x", c);
        put_str(b, esc);
      } else {
        put(b, s, 1);
      }
    }
  }
  put(b, "\"", 1);
}

size_t nl_log_format_line(char *buf, size_t buflen, nl_log_level level,
                          const char *component, const char *message) {
  line_buf b = {buf, 0, buflen};
  char ts[64];
  if (buflen == 0)
    return 0;
  buf[0] = '\0';
  format_timestamp(ts, sizeof ts);
  if (component == NULL)
    component = "nodelua";
  if (log_format() == NL_LOG_JSON) {
    put_str(&b, "{\"ts\":\"");
    put_str(&b, ts);
    put_str(&b, "\",\"level\":\"");
    put_str(&b, nl_log_level_name(level));
    put_str(&b, "\",\"component\":");
    put_json_escaped(&b, component);
    put_str(&b, ",\"msg\":");
    put_json_escaped(&b, message);
    put_str(&b, "}");
  } else {
    char upper[8];
    const char *name = nl_log_level_name(level);
    size_t i = 0;
    for (; name[i] && i < sizeof upper - 1; i++)
      upper[i] = (char)(name[i] - 'a' + 'A');
    upper[i] = '\0';
    put_str(&b, ts);
    put_str(&b, " ");
    put_str(&b, upper);
    put(&b, "     ", 6 - i);
    put_text_escaped(&b, component);
    put_str(&b, ": ");
    put_text_escaped(&b, message);
  }
  /* The newline is always written, even after truncation. */
  if (b.len + 1 >= b.cap)
    b.len = b.cap - 2;
  b.buf[b.len++] = '\n';
  b.buf[b.len] = '\0';
  return b.len;
}

void nl_log_vwrite(nl_log_level level, const char *component, const char *fmt,
                   va_list ap) {
  if (!nl_log_enabled(level))
    return;
  char *raw = malloc(NL_LOG_LINE_MAX);
  char *clean = malloc(NL_LOG_LINE_MAX);
  char *line = malloc(NL_LOG_LINE_MAX + 256);
  if (raw == NULL || clean == NULL || line == NULL) {
    free(raw);
    free(clean);
    free(line);
    return;
  }
  vsnprintf(raw, NL_LOG_LINE_MAX, fmt, ap);
  pthread_mutex_lock(&log_lock);
  redact_locked(raw, clean, NL_LOG_LINE_MAX);
  char comp[128];
  redact_locked(component ? component : "nodelua", comp, sizeof comp);
  size_t n =
      nl_log_format_line(line, NL_LOG_LINE_MAX + 256, level, comp, clean);
  FILE *out = log_file ? log_file : stderr;
  fwrite(line, 1, n, out);
  fflush(out);
  pthread_mutex_unlock(&log_lock);
  free(raw);
  free(clean);
  free(line);
}

void nl_log_write(nl_log_level level, const char *component, const char *fmt,
                  ...) {
  va_list ap;
  va_start(ap, fmt);
  nl_log_vwrite(level, component, fmt, ap);
  va_end(ap);
}
