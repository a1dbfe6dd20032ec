#include "recvdir.h"

#include "core/trust.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#ifndef O_DIRECTORY
#define O_DIRECTORY 0
#endif

#define SWEEP_EVERY_SECONDS (24 * 3600)
#define NL_RECV_PARTIAL_TTL_DEFAULT (7 * 24 * 3600)

int nl_recv_dir_check_fd(int fd, const char *what, char *err, size_t errlen) {
  struct stat st;
  if (fstat(fd, &st) != 0) {
    snprintf(err, errlen, "%s: %s", what, strerror(errno));
    return -1;
  }
  return nl_trust_check_own_folder(&st, what, err, errlen);
}

/* Opens name under at (a directory fd, or AT_FDCWD for a path) as a
 * directory, never through a symlink, and checks it. */
static int open_checked(int at, const char *name, const char *what, char *err,
                        size_t errlen) {
  int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    struct stat st;
    if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
      snprintf(err, errlen,
               "%s is a symlink: refused, since whoever made it chooses "
               "where received files go",
               what);
    else
      snprintf(err, errlen, "cannot open %s: %s", what, strerror(errno));
    return -1;
  }
  if (nl_recv_dir_check_fd(fd, what, err, errlen) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int nl_recv_dir_open(nl_recv_dir *d, const char *path, char *err,
                     size_t errlen) {
  memset(d, 0, sizeof *d);
  d->dir_fd = d->partial_fd = -1;
  if (path == NULL || path[0] != '/' ||
      strlen(path) >= sizeof d->path - sizeof NL_RECV_PARTIAL_DIR - 1) {
    snprintf(err, errlen, "TRANSFER_DIR must be an absolute path");
    return -1;
  }
  snprintf(d->path, sizeof d->path, "%s", path);
  int made = nl_mkdir_p(path);
  if (made != 0) {
    snprintf(err, errlen, "cannot make %s: %s", path, strerror(-made));
    return -1;
  }
  char what[4200];
  snprintf(what, sizeof what, "the receive folder %s", path);
  d->dir_fd = open_checked(AT_FDCWD, path, what, err, errlen);
  if (d->dir_fd < 0)
    return -1;
  snprintf(what, sizeof what, "the staging folder %s/%s", path,
           NL_RECV_PARTIAL_DIR);
  if (mkdirat(d->dir_fd, NL_RECV_PARTIAL_DIR, 0700) != 0 && errno != EEXIST) {
    snprintf(err, errlen, "cannot make %s: %s", what, strerror(errno));
    nl_recv_dir_close(d);
    return -1;
  }
  d->partial_fd =
      open_checked(d->dir_fd, NL_RECV_PARTIAL_DIR, what, err, errlen);
  if (d->partial_fd < 0) {
    nl_recv_dir_close(d);
    return -1;
  }
  pthread_mutex_init(&d->lock, NULL);
  return 0;
}

void nl_recv_dir_close(nl_recv_dir *d) {
  if (d->partial_fd >= 0)
    close(d->partial_fd);
  if (d->dir_fd >= 0) {
    close(d->dir_fd);
    pthread_mutex_destroy(&d->lock);
  }
  d->dir_fd = d->partial_fd = -1;
}

int nl_recv_dir_reserve(nl_recv_dir *d, uint64_t bytes, uint64_t *free_out) {
  struct statvfs sv;
  pthread_mutex_lock(&d->lock);
  uint64_t free_bytes = 0;
  bool known = fstatvfs(d->dir_fd, &sv) == 0;
  if (known)
    free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
  uint64_t left = free_bytes > d->reserved ? free_bytes - d->reserved : 0;
  /* A filesystem that cannot say is not refused here: a full disk still
   * fails the write, and the session gives its space back. */
  bool fits = !known || left >= bytes;
  if (fits)
    d->reserved += bytes;
  pthread_mutex_unlock(&d->lock);
  if (free_out != NULL)
    *free_out = left;
  return fits ? 0 : -1;
}

void nl_recv_dir_release(nl_recv_dir *d, uint64_t bytes) {
  pthread_mutex_lock(&d->lock);
  d->reserved = d->reserved > bytes ? d->reserved - bytes : 0;
  pthread_mutex_unlock(&d->lock);
}

uint64_t nl_recv_dir_reserved(nl_recv_dir *d) {
  pthread_mutex_lock(&d->lock);
  uint64_t n = d->reserved;
  pthread_mutex_unlock(&d->lock);
  return n;
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n > m && strcmp(s + n - m, suffix) == 0;
}

/* Whether the staging file name is older than the cut-off. */
static bool stale(int dir_fd, const char *name, time_t cutoff) {
  struct stat st;
  return fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
         st.st_mtime < cutoff;
}

int nl_recv_dir_sweep(nl_recv_dir *d, uint64_t ttl_seconds, time_t now) {
  /* A descriptor of its own: a dup would share the directory offset, and
   * the next sweep would start where this one ended. */
  int copy = openat(d->partial_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *dir = copy >= 0 ? fdopendir(copy) : NULL;
  if (dir == NULL) {
    if (copy >= 0)
      close(copy);
    return 0;
  }
  time_t cutoff = now - (time_t)ttl_seconds;
  int removed = 0;
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    char base[256], other[300];
    size_t len = strlen(e->d_name);
    if (ends_with(e->d_name, ".journal")) {
      if (!stale(d->partial_fd, e->d_name, cutoff))
        continue;
      /* A session that holds the journal's lock is still at work on it. */
      int fd =
          openat(d->partial_fd, e->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0)
        continue;
      if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
        snprintf(base, sizeof base, "%.*s", (int)(len - 8), e->d_name);
        snprintf(other, sizeof other, "%s.part", base);
        if (unlinkat(d->partial_fd, other, 0) == 0)
          removed++;
        if (unlinkat(d->partial_fd, e->d_name, 0) == 0)
          removed++;
      }
      close(fd); /* and its lock */
    } else if (ends_with(e->d_name, ".part")) {
      /* A part whose journal is gone belongs to nobody. */
      snprintf(base, sizeof base, "%.*s", (int)(len - 5), e->d_name);
      snprintf(other, sizeof other, "%s.journal", base);
      struct stat st;
      if (fstatat(d->partial_fd, other, &st, AT_SYMLINK_NOFOLLOW) != 0 &&
          stale(d->partial_fd, e->d_name, cutoff) &&
          unlinkat(d->partial_fd, e->d_name, 0) == 0)
        removed++;
    }
  }
  closedir(dir);
  pthread_mutex_lock(&d->lock);
  d->last_sweep = now;
  pthread_mutex_unlock(&d->lock);
  return removed;
}

int nl_recv_dir_sweep_if_due(nl_recv_dir *d) {
  time_t now = time(NULL);
  pthread_mutex_lock(&d->lock);
  bool due = d->last_sweep == 0 || now - d->last_sweep >= SWEEP_EVERY_SECONDS;
  if (due)
    d->last_sweep = now; /* one sweeper at a time */
  uint64_t ttl = d->partial_ttl_seconds ? d->partial_ttl_seconds
                                        : NL_RECV_PARTIAL_TTL_DEFAULT;
  pthread_mutex_unlock(&d->lock);
  return due ? nl_recv_dir_sweep(d, ttl, now) : 0;
}
