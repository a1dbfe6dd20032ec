/* node_exporter's textfile collector: the *.prom files of one directory
 * (METRICS_TEXTFILE_DIR), written by the operator's own jobs, appended to
 * /metrics. Other programs write those files, so each is checked before a
 * byte of it is served: a regular file (opened without following a
 * symlink), not writable by others, at most NL_TEXTFILE_MAX bytes, and
 * valid exposition text without timestamps (nl_textfile_check, fuzzed by
 * tests/fuzz/fuzz_procfs.c). A file that fails is left out whole and sets
 * node_textfile_scrape_error to 1, as node_exporter does. */
#include "metrics_internal.h"
#include "promtext.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NL_TEXTFILE_MAX (1 << 20)

static bool name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         c == ':';
}

static bool name_char(char c) {
  return name_start(c) || (c >= '0' && c <= '9');
}

/* A metric name at p; returns the end or NULL. */
static const char *metric_name(const char *p, const char *end) {
  if (p >= end || !name_start(*p))
    return NULL;
  while (p < end && name_char(*p))
    p++;
  return p;
}

/* {label="value",...} at p (p at '{'); returns the end or NULL. */
static const char *label_set(const char *p, const char *end) {
  p++;
  for (;;) {
    if (p < end && *p == '}')
      return p + 1;
    if (p >= end || !(name_start(*p) && *p != ':'))
      return NULL;
    while (p < end && name_char(*p) && *p != ':')
      p++;
    if (p + 1 >= end || p[0] != '=' || p[1] != '"')
      return NULL;
    for (p += 2; p < end && *p != '"'; p++) {
      if (*p == '\\') {
        if (p + 1 >= end || (p[1] != '\\' && p[1] != '"' && p[1] != 'n'))
          return NULL;
        p++;
      } else if (*p == '\n') {
        return NULL;
      }
    }
    if (p >= end)
      return NULL;
    p++; /* the closing quote */
    if (p < end && *p == ',')
      p++;
  }
}

/* A sample value: a float, NaN, +Inf or -Inf, up to the end of the line. */
static bool sample_value(const char *p, const char *end) {
  size_t n = (size_t)(end - p);
  if ((n == 3 && strncmp(p, "NaN", 3) == 0) ||
      (n == 4 && (strncmp(p, "+Inf", 4) == 0 || strncmp(p, "-Inf", 4) == 0)))
    return true;
  char text[64];
  if (n == 0 || n >= sizeof text)
    return false;
  memcpy(text, p, n);
  text[n] = '\0';
  char *stop;
  strtod(text, &stop);
  return *stop == '\0' && (text[0] == '-' || text[0] == '+' || text[0] == '.' ||
                           (text[0] >= '0' && text[0] <= '9'));
}

static bool check_line(const char *p, const char *end) {
  if (p == end)
    return true;
  if (*p == '#') {
    /* HELP and TYPE name a metric; other comments are free text. */
    if (end - p >= 7 &&
        (strncmp(p, "# HELP ", 7) == 0 || strncmp(p, "# TYPE ", 7) == 0)) {
      const char *name_end = metric_name(p + 7, end);
      return name_end != NULL && (name_end == end || *name_end == ' ');
    }
    return true;
  }
  const char *q = metric_name(p, end);
  if (q == NULL)
    return false;
  if (q < end && *q == '{' && (q = label_set(q, end)) == NULL)
    return false;
  if (q >= end || *q != ' ')
    return false;
  /* One value, and no timestamp: node_exporter refuses those too. */
  return sample_value(q + 1, end);
}

int nl_textfile_check(const char *text, size_t len) {
  const char *end = text + len;
  int line = 1;
  for (const char *p = text; p < end; line++) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *stop = eol ? eol : end;
    if (memchr(p, '\0', (size_t)(stop - p)) != NULL || !check_line(p, stop))
      return line;
    p = eol ? eol + 1 : end;
  }
  return 0;
}

int nl_metrics_set_textfile_dir(nl_metrics *m, const char *dir) {
  if (dir == NULL)
    dir = "";
  if (dir[0] != '\0' && dir[0] != '/')
    return -EINVAL;
  if (strlen(dir) >= sizeof m->textfile_dir)
    return -ENAMETOOLONG;
  nl_metrics_copy(m->textfile_dir, sizeof m->textfile_dir, dir);
  return 0;
}

/* Appends one file to out if it passes; false if it does not. */
static bool append_file(int dir_fd, const char *name, nl_buf *out,
                        double *mtime) {
  int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return false;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & S_IWOTH) ||
      st.st_size > NL_TEXTFILE_MAX) {
    close(fd);
    return false;
  }
  size_t start = out->len, want = (size_t)st.st_size;
  nl_buf_append(out, "", 0);
  /* Read straight into the exposition, and take it back if it fails. */
  bool ok = true;
  while (ok && out->len - start < want) {
    char chunk[4096];
    size_t left = want - (out->len - start);
    ssize_t n = read(fd, chunk, left < sizeof chunk ? left : sizeof chunk);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break; /* the file shrank: check what there is */
    nl_buf_append(out, chunk, (size_t)n);
    ok = !out->failed;
  }
  close(fd);
  if (ok && nl_textfile_check(out->data + start, out->len - start) != 0)
    ok = false;
  if (!ok) {
    out->len = start;
    if (out->data)
      out->data[start] = '\0';
    return false;
  }
  if (out->len > start && out->data[out->len - 1] != '\n')
    nl_buf_append(out, "\n", 1);
#ifdef __APPLE__
  *mtime = (double)st.st_mtimespec.tv_sec + st.st_mtimespec.tv_nsec / 1e9;
#else
  *mtime = (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9;
#endif
  return true;
}

static bool prom_file(const char *name) {
  size_t n = strlen(name);
  return n > 5 && strcmp(name + n - 5, ".prom") == 0 && name[0] != '.';
}

void nl_textfile_collect(nl_metrics *m, nl_buf *out) {
  bool error = false;
  size_t count = 0;
  if (m->textfile_dir[0] != '\0') {
    double started = nl_metrics_monotonic();
    int dir_fd = open(m->textfile_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat st;
    DIR *dir = NULL;
    /* A directory anyone may write into serves nobody's metrics. */
    if (dir_fd < 0 || fstat(dir_fd, &st) != 0 || (st.st_mode & S_IWOTH) ||
        (dir = fdopendir(dir_fd)) == NULL) {
      error = true;
      if (dir_fd >= 0)
        close(dir_fd);
    } else {
      struct dirent *e;
      while ((e = readdir(dir)) != NULL && count < NL_TEXTFILE_FILES_MAX) {
        if (!prom_file(e->d_name) || strlen(e->d_name) >= 64)
          continue;
        double mtime;
        if (!append_file(dirfd(dir), e->d_name, out, &mtime)) {
          error = true;
          continue;
        }
        nl_metrics_copy(m->textfile_names[count], 64, e->d_name);
        m->textfile_mtimes[count++] = mtime;
      }
      closedir(dir);
    }
    nl_metrics_scrape_log(m, "textfile", started, !error);
  }
  if (count > 0) {
    nl_prom_family(out, "node_textfile_mtime_seconds", "gauge",
                   "Unixtime mtime of textfiles successfully read.");
    for (size_t i = 0; i < count; i++) {
      const char *labels[] = {"file", m->textfile_names[i], NULL};
      nl_prom_double(out, "node_textfile_mtime_seconds", labels,
                     m->textfile_mtimes[i]);
    }
  }
  nl_prom_gauge(out, "node_textfile_scrape_error",
                "1 if there was an error opening or reading a file, 0 "
                "otherwise",
                error ? 1 : 0);
}
