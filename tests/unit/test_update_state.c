/* The update folder's records: links switched atomically and read back,
 * the trial file, a rollback, an append that keeps whole lines, and a
 * folder that others could write refused. */
#include "core/update/state.h"

#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int main(void) {
  char dir[] = "/tmp/nodelua-update-state-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char why[512];
  int fd = nl_update_open(dir, false, why, sizeof why);
  CHECK(fd >= 0);

  CHECK(nl_update_version_ok("1.4.0-rc.1+b.5"));
  CHECK(!nl_update_version_ok("../1.0.0"));
  CHECK(!nl_update_version_ok("1.0.0/x"));
  CHECK(!nl_update_version_ok(""));

  /* Links: none, then set, then replaced, then removed. */
  char v[NL_UPDATE_VERSION_MAX + 1];
  CHECK(nl_update_link_version(fd, "current", v, sizeof v) == 0 && v[0] == 0);
  CHECK(nl_update_set_link(fd, "current", "1.0.0") == 0);
  CHECK(nl_update_link_version(fd, "current", v, sizeof v) == 0);
  CHECK_STR(v, "1.0.0");
  CHECK(nl_update_set_link(fd, "current", "1.1.0") == 0);
  CHECK(nl_update_link_version(fd, "current", v, sizeof v) == 0);
  CHECK_STR(v, "1.1.0");
  CHECK(nl_update_set_link(fd, "current", "../evil") != 0);
  /* A link someone pointed elsewhere is not ours. */
  CHECK(symlinkat("/usr/bin/true", fd, "previous") == 0);
  CHECK(nl_update_link_version(fd, "previous", v, sizeof v) != 0);
  CHECK(nl_update_set_link(fd, "previous", "") == 0);

  /* The trial, and a rollback from it. */
  nl_update_trial t = {.active = true, .starts = 2, .since = 1700000000};
  snprintf(t.version, sizeof t.version, "1.1.0");
  snprintf(t.previous, sizeof t.previous, "1.0.0");
  CHECK(nl_update_write_trial(fd, &t) == 0);
  nl_update_trial back;
  CHECK(nl_update_read_trial(fd, &back) == 0);
  CHECK(back.active && back.starts == 2 && back.since == 1700000000);
  CHECK_STR(back.version, "1.1.0");
  CHECK_STR(back.previous, "1.0.0");
  CHECK(nl_update_roll_back(fd, &back, "a reason\nwith a newline") == 0);
  CHECK(nl_update_link_version(fd, "current", v, sizeof v) == 0);
  CHECK_STR(v, "1.0.0");
  CHECK(nl_update_read_trial(fd, &back) == 0 && !back.active);
  char text[NL_UPDATE_APPEND_KEEP + 1];
  CHECK(nl_update_read_file(fd, "skipped", text, sizeof text) == 0);
  CHECK_STR(text, "1.1.0 a reason with a newline\n");

  /* An append past what is kept: the oldest lines go, whole. */
  char line[64];
  for (int i = 0; i < 3000; i++) {
    snprintf(line, sizeof line, "9.9.%d skipped for a test, line %d\n", i, i);
    CHECK(nl_update_write_file(fd, "skipped", line, true) == 0);
    if (i % 500 == 0)
      CHECK(nl_update_read_file(fd, "skipped", text, sizeof text) == 0);
  }
  CHECK(nl_update_read_file(fd, "skipped", text, sizeof text) == 0);
  CHECK(strlen(text) <= NL_UPDATE_APPEND_KEEP);
  CHECK(strncmp(text, "9.9.", 4) == 0); /* starts at a whole line */
  CHECK_CONTAINS(text, "9.9.2999 skipped for a test, line 2999\n");
  close(fd);

  /* A folder others could write decides nothing. */
  CHECK(chmod(dir, 0777) == 0);
  CHECK(nl_update_open(dir, false, why, sizeof why) < 0);
  CHECK_CONTAINS(why, "UPDATE_DIR");
  CHECK(chmod(dir, 0700) == 0);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
  return check_report("test_update_state");
}
