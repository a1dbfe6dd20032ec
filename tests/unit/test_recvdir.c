/* The receive folder: the attacks on a folder another user can reach are
 * refused when it is opened (a symlink in its place or the staging
 * folder's, another user's folder, a folder others can write); partial
 * transfers older than the TTL are swept, fresh ones and one a session
 * holds are kept; the free space is claimed across sessions. */
#include "check.h"
#include "core/transfer/recvdir.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

static char base[] = "/tmp/nodelua-recvdir-XXXXXX";

static void path_of(char *out, size_t n, const char *name) {
  snprintf(out, n, "%s/%s", base, name);
}

static void touch(int dir_fd, const char *name, time_t age_seconds) {
  int fd = openat(dir_fd, name, O_WRONLY | O_CREAT, 0600);
  CHECK(fd >= 0);
  close(fd);
  struct timespec t[2];
  clock_gettime(CLOCK_REALTIME, &t[0]);
  t[0].tv_sec -= age_seconds;
  t[1] = t[0];
  CHECK(utimensat(dir_fd, name, t, AT_SYMLINK_NOFOLLOW) == 0);
}

static bool exists_at(int dir_fd, const char *name) {
  struct stat st;
  return fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void refusals(void) {
  nl_recv_dir d;
  char err[512], path[512], target[512];

  /* Made when missing: 0700, and its staging folder too. */
  path_of(path, sizeof path, "fresh/received");
  CHECK(nl_recv_dir_open(&d, path, err, sizeof err) == 0);
  struct stat st;
  CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0700);
  CHECK(fstat(d.partial_fd, &st) == 0 && (st.st_mode & 0777) == 0700);
  nl_recv_dir_close(&d);

  /* A symlink in the folder's place, made by whoever got there first. */
  path_of(target, sizeof target, "elsewhere");
  CHECK(mkdir(target, 0700) == 0);
  path_of(path, sizeof path, "link");
  CHECK(symlink(target, path) == 0);
  CHECK(nl_recv_dir_open(&d, path, err, sizeof err) == -1);
  CHECK_CONTAINS(err, "is a symlink");
  CHECK_CONTAINS(err, path);

  /* A folder others can write: they could plant names in it. */
  path_of(path, sizeof path, "open");
  CHECK(mkdir(path, 0700) == 0 && chmod(path, 0777) == 0);
  CHECK(nl_recv_dir_open(&d, path, err, sizeof err) == -1);
  CHECK_CONTAINS(err, "writable by everyone");
  CHECK(chmod(path, 0770) == 0);
  CHECK(nl_recv_dir_open(&d, path, err, sizeof err) == -1);
  CHECK_CONTAINS(err, "writable by its group");

  /* The staging folder as a symlink: refused the same way. */
  path_of(path, sizeof path, "staged");
  CHECK(mkdir(path, 0700) == 0);
  char staging[600];
  snprintf(staging, sizeof staging, "%s/%s", path, NL_RECV_PARTIAL_DIR);
  CHECK(symlink(target, staging) == 0);
  CHECK(nl_recv_dir_open(&d, path, err, sizeof err) == -1);
  CHECK_CONTAINS(err, "staging folder");
  CHECK_CONTAINS(err, "symlink");

  /* Not a folder at all. */
  path_of(path, sizeof path, "plain");
  int fd = open(path, O_WRONLY | O_CREAT, 0600);
  close(fd);
  CHECK(nl_recv_dir_open(&d, path, err, sizeof err) == -1);

  /* Another user's folder (here: made by root, given to nobody). */
  if (geteuid() == 0) {
    path_of(path, sizeof path, "theirs");
    CHECK(mkdir(path, 0700) == 0 && chown(path, 65534, 65534) == 0);
    CHECK(nl_recv_dir_open(&d, path, err, sizeof err) == -1);
    CHECK_CONTAINS(err, "owned by uid 65534");
  } else {
    check_skip("another user's folder (needs root to make one)");
  }
}

static void sweep(void) {
  nl_recv_dir d;
  char err[512], path[512];
  path_of(path, sizeof path, "sweep");
  CHECK(nl_recv_dir_open(&d, path, err, sizeof err) == 0);
  int p = d.partial_fd;
  const time_t week = 7 * 24 * 3600, hour = 3600;
  touch(p, "old.part", week + hour);      /* abandoned: goes */
  touch(p, "old.journal", week + hour);   /* with its journal */
  touch(p, "new.part", hour);             /* recent: stays */
  touch(p, "new.journal", hour);          /* likewise */
  touch(p, "orphan.part", week + hour);   /* no journal, old: goes */
  touch(p, "held.part", week + hour);     /* old, but a session holds */
  touch(p, "held.journal", week + hour);  /* its journal's lock: stays */
  touch(p, "unrelated.txt", week + hour); /* not ours to sweep */
  int held = openat(p, "held.journal", O_RDWR);
  CHECK(held >= 0 && flock(held, LOCK_EX) == 0);
  CHECK(nl_recv_dir_sweep(&d, (uint64_t)week, time(NULL)) == 3);
  CHECK(!exists_at(p, "old.part") && !exists_at(p, "old.journal"));
  CHECK(!exists_at(p, "orphan.part"));
  CHECK(exists_at(p, "new.part") && exists_at(p, "new.journal"));
  CHECK(exists_at(p, "held.part") && exists_at(p, "held.journal"));
  CHECK(exists_at(p, "unrelated.txt"));
  close(held);
  /* A sweep is due once a day: the next call right after does nothing. */
  d.partial_ttl_seconds = (uint64_t)week;
  d.last_sweep = 0;
  CHECK(nl_recv_dir_sweep_if_due(&d) == 2); /* held's lock is gone now */
  touch(p, "later.part", week + hour);
  CHECK(nl_recv_dir_sweep_if_due(&d) == 0);
  CHECK(exists_at(p, "later.part"));
  nl_recv_dir_close(&d);
}

static void reservations(void) {
  nl_recv_dir d;
  char err[512], path[512];
  path_of(path, sizeof path, "space");
  CHECK(nl_recv_dir_open(&d, path, err, sizeof err) == 0);
  struct statvfs sv;
  CHECK(fstatvfs(d.dir_fd, &sv) == 0);
  uint64_t free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
  uint64_t most = free_bytes / 3 * 2;
  uint64_t left = 0;
  /* Two sessions that would each fit alone do not both fit. */
  CHECK(nl_recv_dir_reserve(&d, most, &left) == 0);
  CHECK(nl_recv_dir_reserve(&d, most, &left) == -1);
  CHECK(left < most);
  CHECK(nl_recv_dir_reserved(&d) == most);
  /* Given back, the second fits. */
  nl_recv_dir_release(&d, most);
  CHECK(nl_recv_dir_reserve(&d, most, &left) == 0);
  nl_recv_dir_release(&d, most);
  CHECK(nl_recv_dir_reserved(&d) == 0);
  nl_recv_dir_close(&d);
}

int main(void) {
  CHECK(mkdtemp(base) != NULL);
  refusals();
  sweep();
  reservations();
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
  CHECK(system(cmd) == 0);
  return check_report("test_recvdir");
}
