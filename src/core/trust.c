#include "trust.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int nl_trust_check(const struct stat *st, unsigned flags, const char *what,
                   char *err, size_t errlen) {
  unsigned mode = (unsigned)(st->st_mode & 0777);
  if (st->st_uid != geteuid() && st->st_uid != 0) {
    snprintf(err, errlen,
             "%s is owned by uid %u, neither this agent's (uid %u) nor root: "
             "refused, since its owner could change what it says",
             what, (unsigned)st->st_uid, (unsigned)geteuid());
    return -1;
  }
  if ((st->st_mode & 022) != 0) {
    snprintf(err, errlen,
             "%s is writable by %s (mode %03o): refused; run chmod go-w "
             "on it",
             what, (st->st_mode & 002) ? "everyone" : "its group", mode);
    return -1;
  }
  /* A secret may be readable by its group when root owns it and the group
   * is a service's, not root's: root chose to share it with that group
   * (root:nodelua 0640, as install.sh makes the service's env file). The
   * agent reads it as that group, or as root (an operator's `nodelua
   * update status`). */
  bool group_is_ours =
      st->st_uid == 0 && st->st_gid != 0 &&
      ((st->st_gid == getegid() && geteuid() != 0) || geteuid() == 0);
  if ((flags & NL_TRUST_SECRET) &&
      (st->st_mode & (group_is_ours ? 007 : 077)) != 0) {
    snprintf(err, errlen,
             "%s holds a secret and is readable by others (mode %03o): "
             "refused; run chmod 600 on it",
             what, mode);
    return -1;
  }
  return 0;
}

/* The folder part of path ("." when there is none). */
static void folder_of(const char *path, char *out, size_t n) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL)
    snprintf(out, n, ".");
  else if (slash == path)
    snprintf(out, n, "/");
  else
    snprintf(out, n, "%.*s", (int)(slash - path), path);
}

char *nl_trust_read(const char *path, unsigned flags, size_t max, size_t *len,
                    struct stat *st_out, char *err, size_t errlen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int e = errno;
    snprintf(err, errlen, "%s: %s", path, strerror(e));
    errno = e;
    return NULL;
  }
  struct stat st;
  char what[PATH_MAX + 32], real[PATH_MAX], folder[PATH_MAX];
  snprintf(what, sizeof what, "%s", path);
  bool ok = fstat(fd, &st) == 0;
  if (!ok)
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
  else if (!S_ISREG(st.st_mode)) {
    snprintf(err, errlen, "%s is not a regular file", path);
    ok = false;
  } else if ((size_t)st.st_size > max) {
    snprintf(err, errlen, "%s is over %zu bytes", path, max);
    ok = false;
  }
  ok = ok && nl_trust_check(&st, flags, what, err, errlen) == 0;
  /* The folder that holds the file (the target's, through symlinks):
   * whoever can write it can put another file in its place. It may be
   * sticky (like /tmp): then others cannot replace what they do not own. */
  if (ok && realpath(path, real) == NULL) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    ok = false;
  }
  if (ok) {
    folder_of(real, folder, sizeof folder);
    struct stat dir;
    snprintf(what, sizeof what, "the folder %s", folder);
    if (stat(folder, &dir) != 0) {
      snprintf(err, errlen, "%s: %s", folder, strerror(errno));
      ok = false;
    } else if (!(dir.st_mode & S_ISVTX)) {
      ok = nl_trust_check(&dir, 0, what, err, errlen) == 0;
    }
  }
  char *buf = ok ? malloc((size_t)st.st_size + 1) : NULL;
  size_t got = 0;
  if (ok && buf == NULL)
    snprintf(err, errlen, "out of memory");
  while (buf != NULL && got < (size_t)st.st_size) {
    ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      snprintf(err, errlen, "%s: %s", path, strerror(errno));
      free(buf);
      buf = NULL;
    }
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  close(fd);
  if (buf != NULL) {
    buf[got] = '\0';
    *len = got;
    if (st_out != NULL)
      *st_out = st;
  }
  errno = buf != NULL ? 0 : EPERM;
  return buf;
}

int nl_mkdir_p(const char *path) {
  char buf[PATH_MAX];
  if (strlen(path) >= sizeof buf)
    return -ENAMETOOLONG;
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
      return -errno;
    *p = '/';
  }
  if (mkdir(buf, 0700) != 0 && errno != EEXIST)
    return -errno;
  return 0;
}

int nl_trust_check_own_folder(const struct stat *st, const char *what,
                              char *err, size_t errlen) {
  if (!S_ISDIR(st->st_mode)) {
    snprintf(err, errlen, "%s is not a folder", what);
    return -1;
  }
  if (st->st_uid != geteuid()) {
    snprintf(err, errlen,
             "%s is owned by uid %u, not by this agent (uid %u): another "
             "user could read or change what is in it",
             what, (unsigned)st->st_uid, (unsigned)geteuid());
    return -1;
  }
  return nl_trust_check(st, 0, what, err, errlen);
}

int nl_trust_own_folder(const char *path, const char *what, char *err,
                        size_t errlen) {
  int rc = nl_mkdir_p(path);
  if (rc != 0) {
    snprintf(err, errlen, "cannot make %s %s: %s", what, path, strerror(-rc));
    return -1;
  }
  char named[PATH_MAX + 64];
  snprintf(named, sizeof named, "%s %s", what, path);
  struct stat st;
  if (stat(path, &st) != 0) {
    snprintf(err, errlen, "%s: %s", named, strerror(errno));
    return -1;
  }
  return nl_trust_check_own_folder(&st, named, err, errlen);
}
