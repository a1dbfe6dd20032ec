/* Local trust: a file another user could have written (its mode, its
 * owner, its folder, or a symlink to such a file) is refused with one line
 * that says how to fix it; a secret others could read is refused; what
 * passes is read whole. Run as root, files are given to nobody (65534) for
 * the owner cases; as another user those cases say SKIPPED. */
#include "check.h"
#include "core/trust.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char base[] = "/tmp/nodelua-trust-XXXXXX";

static void put(const char *path, const char *text, mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  CHECK(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text));
  close(fd);
  CHECK(chmod(path, mode) == 0);
}

static char *read_it(const char *path, unsigned flags, char *err,
                     size_t errlen) {
  size_t len = 0;
  return nl_trust_read(path, flags, 4096, &len, NULL, err, errlen);
}

/* The service's env file, root:nodelua 0640: readable by the agent's own
 * group (or by root, who chose that group), never by others. */
static void service_group_secret(void) {
  struct stat st = {.st_uid = 0, .st_mode = S_IFREG | 0640};
  char err[512];
  if (geteuid() != 0) {
    st.st_gid = getegid();
    CHECK(nl_trust_check(&st, NL_TRUST_SECRET, "env", err, sizeof err) == 0);
    st.st_gid = getegid() + 1;
    CHECK(nl_trust_check(&st, NL_TRUST_SECRET, "env", err, sizeof err) != 0);
    st.st_gid = getegid();
    st.st_mode = S_IFREG | 0644;
    CHECK(nl_trust_check(&st, NL_TRUST_SECRET, "env", err, sizeof err) != 0);
    return;
  }
  /* As root: root chose the group; others still may not read. */
  st.st_gid = 65534;
  CHECK(nl_trust_check(&st, NL_TRUST_SECRET, "env", err, sizeof err) == 0);
  st.st_mode = S_IFREG | 0644;
  CHECK(nl_trust_check(&st, NL_TRUST_SECRET, "env", err, sizeof err) != 0);
  st.st_mode = S_IFREG | 0640;
  /* A file of another owner: never group-readable. */
  st.st_uid = 1000;
  st.st_gid = 1000;
  CHECK(nl_trust_check(&st, NL_TRUST_SECRET, "env", err, sizeof err) != 0);
  st.st_uid = 0;
  /* As nobody (65534), in a child. */
  pid_t pid = fork();
  if (pid == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0)
      _exit(2);
    st.st_gid = 65534;
    int ok = nl_trust_check(&st, NL_TRUST_SECRET, "env", err, sizeof err) == 0;
    st.st_mode = S_IFREG | 0644;
    int refused_others =
        nl_trust_check(&st, NL_TRUST_SECRET, "env", err, sizeof err) != 0;
    st.st_mode = S_IFREG | 0640;
    st.st_gid = 65533;
    int refused_group =
        nl_trust_check(&st, NL_TRUST_SECRET, "env", err, sizeof err) != 0;
    _exit(ok && refused_others && refused_group ? 0 : 1);
  }
  int status = 0;
  CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void) {
  service_group_secret();
  CHECK(mkdtemp(base) != NULL);
  char path[512], other[512], folder[512], link[512], err[1024];

  snprintf(path, sizeof path, "%s/good.lua", base);
  put(path, "return {}", 0644);
  char *text = read_it(path, 0, err, sizeof err);
  CHECK(text != NULL && strcmp(text, "return {}") == 0);
  free(text);

  /* Writable by group or others: anyone could change the code. */
  CHECK(chmod(path, 0664) == 0);
  CHECK(read_it(path, 0, err, sizeof err) == NULL);
  CHECK_CONTAINS(err, "writable by its group");
  CHECK_CONTAINS(err, "chmod go-w");
  CHECK(chmod(path, 0646) == 0);
  CHECK(read_it(path, 0, err, sizeof err) == NULL);
  CHECK_CONTAINS(err, "writable by everyone");

  /* A secret readable by others: refused, saying chmod 600. */
  snprintf(other, sizeof other, "%s/key", base);
  put(other, "a-cluster-key-0123456789", 0640);
  CHECK(read_it(other, NL_TRUST_SECRET, err, sizeof err) == NULL);
  CHECK_CONTAINS(err, "chmod 600");
  CHECK(chmod(other, 0600) == 0);
  text = read_it(other, NL_TRUST_SECRET, err, sizeof err);
  CHECK(text != NULL);
  free(text);

  /* A folder others can write: they could put another file in its place. */
  snprintf(folder, sizeof folder, "%s/open", base);
  CHECK(mkdir(folder, 0700) == 0 && chmod(folder, 0777) == 0);
  snprintf(path, sizeof path, "%s/open/p.lua", base);
  put(path, "return {}", 0644);
  CHECK(read_it(path, 0, err, sizeof err) == NULL);
  CHECK_CONTAINS(err, "the folder");
  CHECK_CONTAINS(err, "writable by everyone");
  /* ...unless it is sticky (like /tmp): others cannot replace what they
   * do not own there. */
  CHECK(chmod(folder, 01777) == 0);
  text = read_it(path, 0, err, sizeof err);
  CHECK(text != NULL);
  free(text);

  /* A symlink from a good folder to a file in a bad one: the target's
   * folder is what counts. */
  CHECK(chmod(folder, 0777) == 0);
  snprintf(link, sizeof link, "%s/linked.lua", base);
  CHECK(symlink(path, link) == 0);
  CHECK(read_it(link, 0, err, sizeof err) == NULL);
  CHECK_CONTAINS(err, "the folder");

  /* Missing: ENOENT, for callers to whom a missing file is fine. */
  snprintf(path, sizeof path, "%s/none.lua", base);
  CHECK(read_it(path, 0, err, sizeof err) == NULL && errno == ENOENT);

  /* Another user's file, or a symlink to it. */
  if (geteuid() == 0) {
    snprintf(path, sizeof path, "%s/theirs.lua", base);
    put(path, "return {}", 0644);
    CHECK(chown(path, 65534, 65534) == 0);
    CHECK(read_it(path, 0, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "owned by uid 65534");
    snprintf(link, sizeof link, "%s/to-theirs.lua", base);
    CHECK(symlink(path, link) == 0);
    CHECK(read_it(link, 0, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "owned by uid 65534");
  } else {
    check_skip("another user's file (needs root to make one)");
  }

  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
  CHECK(system(cmd) == 0);
  return check_report("test_trust");
}
