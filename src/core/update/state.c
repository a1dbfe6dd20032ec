#include "state.h"

#include "core/portable.h"
#include "core/trust.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int nl_update_open(const char *dir, bool create, char *why, size_t whylen) {
  struct stat st;
  if (stat(dir, &st) != 0) {
    if (errno != ENOENT || !create) {
      int e = errno;
      snprintf(why, whylen, "%s: %s", dir, strerror(e));
      errno = e;
      return -1;
    }
    if (nl_mkdir_p(dir) != 0) {
      snprintf(why, whylen, "cannot make %s: %s", dir, strerror(errno));
      return -1;
    }
  }
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    snprintf(why, whylen, "%s: %s", dir, strerror(errno));
    return -1;
  }
  if (fstat(fd, &st) != 0 ||
      nl_trust_check_own_folder(&st, "UPDATE_DIR", why, whylen) != 0) {
    close(fd);
    errno = EPERM;
    return -1;
  }
  return fd;
}

bool nl_update_version_ok(const char *v) {
  size_t n = strlen(v);
  if (n == 0 || n > NL_UPDATE_VERSION_MAX || v[0] == '.' || v[0] == '-')
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = v[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
          (c >= 'A' && c <= 'Z') || c == '.' || c == '-' || c == '+'))
      return false;
  }
  return strstr(v, "..") == NULL;
}

int nl_update_link_version(int dirfd, const char *link, char *out,
                           size_t outlen) {
  char target[256];
  out[0] = '\0';
  ssize_t n = readlinkat(dirfd, link, target, sizeof target - 1);
  if (n < 0)
    return errno == ENOENT ? 0 : -1;
  target[n] = '\0';
  static const char prefix[] = "versions/";
  if (strncmp(target, prefix, sizeof prefix - 1) != 0 ||
      !nl_update_version_ok(target + sizeof prefix - 1))
    return -1;
  snprintf(out, outlen, "%s", target + sizeof prefix - 1);
  return 0;
}

int nl_update_set_link(int dirfd, const char *link, const char *version) {
  if (version[0] == '\0') {
    if (unlinkat(dirfd, link, 0) != 0 && errno != ENOENT)
      return -1;
    return nl_fsync_full(dirfd);
  }
  if (!nl_update_version_ok(version)) {
    errno = EINVAL;
    return -1;
  }
  char target[256], tmp[64];
  snprintf(target, sizeof target, "versions/%s", version);
  snprintf(tmp, sizeof tmp, ".%s.tmp", link);
  unlinkat(dirfd, tmp, 0);
  if (symlinkat(target, dirfd, tmp) != 0)
    return -1;
  /* rename replaces the old link in one step: there is never a moment
   * without one. */
  if (renameat(dirfd, tmp, dirfd, link) != 0) {
    int e = errno;
    unlinkat(dirfd, tmp, 0);
    errno = e;
    return -1;
  }
  return nl_fsync_full(dirfd);
}

/* Reads a file into out (at most max - 1 bytes, NUL-terminated; "" when
 * absent): its start, or with tail its end from a line's start (a record
 * that grew past what is kept loses its oldest lines, never a partial
 * one). 0, or -1 with errno. */
static int read_part(int dirfd, const char *name, char *out, size_t max,
                     bool tail) {
  out[0] = '\0';
  int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? 0 : -1;
  struct stat st;
  off_t from = 0;
  if (tail && fstat(fd, &st) == 0 && st.st_size > (off_t)(max - 1))
    from = st.st_size - (off_t)(max - 1);
  size_t len = 0;
  while (len + 1 < max) {
    ssize_t r = pread(fd, out + len, max - 1 - len, from + (off_t)len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    len += (size_t)r;
  }
  out[len] = '\0';
  close(fd);
  if (from > 0) {
    char *nl = strchr(out, '\n');
    memmove(out, nl ? nl + 1 : out + len, strlen(nl ? nl + 1 : out + len) + 1);
  }
  return 0;
}

int nl_update_read_file(int dirfd, const char *name, char *out, size_t max) {
  return read_part(dirfd, name, out, max, false);
}

int nl_update_write_file(int dirfd, const char *name, const char *text,
                         bool append) {
  /* What was there, its newest part: the file stays within
   * NL_UPDATE_APPEND_KEEP bytes with the new text. */
  static char old[NL_UPDATE_APPEND_KEEP + 1]; /* one thread: launcher, loop */
  size_t text_len = strlen(text);
  old[0] = '\0';
  if (append && text_len < NL_UPDATE_APPEND_KEEP &&
      read_part(dirfd, name, old, NL_UPDATE_APPEND_KEEP - text_len + 1, true) !=
          0)
    return -1;
  char tmp[128];
  snprintf(tmp, sizeof tmp, ".%s.tmp", name);
  unlinkat(dirfd, tmp, 0);
  int fd = openat(dirfd, tmp,
                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return -1;
  bool ok = true;
  for (int part = 0; part < 2 && ok; part++) {
    const char *p = part == 0 ? old : text;
    size_t n = strlen(p);
    while (n > 0 && ok) {
      ssize_t w = write(fd, p, n);
      if (w < 0 && errno == EINTR)
        continue;
      ok = w > 0;
      if (ok) {
        p += w;
        n -= (size_t)w;
      }
    }
  }
  int e = errno;
  if (!ok || nl_fsync_full(fd) != 0) {
    e = errno;
    close(fd);
    unlinkat(dirfd, tmp, 0);
    errno = e;
    return -1;
  }
  close(fd);
  if (renameat(dirfd, tmp, dirfd, name) != 0) {
    e = errno;
    unlinkat(dirfd, tmp, 0);
    errno = e;
    return -1;
  }
  return nl_fsync_full(dirfd);
}

int nl_update_read_trial(int dirfd, nl_update_trial *t) {
  memset(t, 0, sizeof *t);
  char text[1024];
  if (nl_update_read_file(dirfd, "trial", text, sizeof text) != 0)
    return -1;
  if (text[0] == '\0')
    return 0;
  for (char *line = strtok(text, "\n"); line != NULL;
       line = strtok(NULL, "\n")) {
    char *eq = strchr(line, '=');
    if (eq == NULL)
      continue;
    *eq = '\0';
    const char *v = eq + 1;
    if (strcmp(line, "version") == 0 && nl_update_version_ok(v))
      snprintf(t->version, sizeof t->version, "%s", v);
    else if (strcmp(line, "previous") == 0 &&
             (v[0] == '\0' || nl_update_version_ok(v)))
      snprintf(t->previous, sizeof t->previous, "%s", v);
    else if (strcmp(line, "starts") == 0)
      t->starts = atoi(v);
    else if (strcmp(line, "since") == 0)
      t->since = atoll(v);
  }
  /* A damaged file (no version) is no trial: the launcher then runs what
   * current says, which was switched before the trial file was written. */
  t->active = t->version[0] != '\0';
  return 0;
}

int nl_update_write_trial(int dirfd, const nl_update_trial *t) {
  if (!t->active) {
    if (unlinkat(dirfd, "trial", 0) != 0 && errno != ENOENT)
      return -1;
    return nl_fsync_full(dirfd);
  }
  char text[512];
  snprintf(text, sizeof text,
           "version=%s\nprevious=%s\nstarts=%d\nsince=%lld\n", t->version,
           t->previous, t->starts, t->since);
  return nl_update_write_file(dirfd, "trial", text, false);
}

void nl_update_binary_path(const char *dir, const char *version, char *out,
                           size_t outlen) {
  snprintf(out, outlen, "%s/versions/%s/nodelua", dir, version);
}

int nl_update_roll_back(int dirfd, const nl_update_trial *t,
                        const char *reason) {
  /* The order matters for a kill -9 between the steps: current first (the
   * next start runs the good version), then the record, then the trial. */
  if (nl_update_set_link(dirfd, "current", t->previous) != 0 ||
      nl_update_set_link(dirfd, "previous", "") != 0)
    return -1;
  /* One line per version: the reason's own line breaks become spaces. */
  char why[NL_UPDATE_REASON_MAX + 1];
  snprintf(why, sizeof why, "%s", reason);
  for (char *p = why; *p; p++)
    if (*p == '\n' || *p == '\r')
      *p = ' ';
  char line[NL_UPDATE_VERSION_MAX + NL_UPDATE_REASON_MAX + 4];
  snprintf(line, sizeof line, "%s %s\n", t->version, why);
  if (nl_update_write_file(dirfd, "skipped", line, true) != 0)
    return -1;
  nl_update_trial none = {0};
  return nl_update_write_trial(dirfd, &none);
}
