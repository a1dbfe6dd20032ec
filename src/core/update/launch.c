#include "launch.h"

#include "core/log.h"
#include "core/portable.h"
#include "core/trust.h"
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Extra seconds the alarm gives over the health timeout: the version's
 * own timer decides first; the alarm is for one that cannot. */
#define ALARM_GRACE_SECONDS 5

/* Whether path is a binary we may exec: a regular, executable file that
 * nobody but us or root could have written. */
static int runnable(const char *path, char *why, size_t whylen) {
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    snprintf(why, whylen, "%s: %s", path, strerror(errno));
    if (fd >= 0)
      close(fd);
    return -1;
  }
  close(fd);
  if (!S_ISREG(st.st_mode) || (st.st_mode & S_IXUSR) == 0) {
    snprintf(why, whylen, "%s is not an executable file", path);
    return -1;
  }
  return nl_trust_check(&st, 0, path, why, whylen);
}

static char **saved_argv;

void nl_update_remember_argv(char **argv) { saved_argv = argv; }

int nl_update_exec_entry(void) {
  if (saved_argv == NULL) {
    errno = EINVAL;
    return -1;
  }
  char self[PATH_MAX];
  const char *entry = getenv(NL_UPDATE_ENV_ENTRY);
  if (entry == NULL) {
    if (nl_self_path(self, sizeof self) != 0)
      return -1;
    entry = self;
  }
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s", entry);
  unsetenv(NL_UPDATE_ENV_LAUNCHED); /* the launcher decides again */
  alarm(0);
  execv(path, saved_argv);
  return -1;
}

void nl_update_launch(const char *update_dir, int health_timeout_seconds,
                      char **argv) {
  /* A pending alarm survives exec: whatever started us, none is left
   * running unless we set it below. */
  alarm(0);
  if (getenv(NL_UPDATE_ENV_LAUNCHED) != NULL)
    return; /* we are the launched version */
  char why[PATH_MAX + 512];
  int dirfd = nl_update_open(update_dir, false, why, sizeof why);
  if (dirfd < 0) {
    if (errno != ENOENT)
      nl_log_warn("update", "%s; running this binary", why);
    return;
  }
  char version[NL_UPDATE_VERSION_MAX + 1];
  if (nl_update_link_version(dirfd, "current", version, sizeof version) != 0) {
    nl_log_error("update",
                 "%s/current is not a link into versions/; running this "
                 "binary",
                 update_dir);
    close(dirfd);
    return;
  }
  nl_update_trial trial;
  if (nl_update_read_trial(dirfd, &trial) != 0)
    trial.active = false;
  if (trial.active && strcmp(trial.version, version) != 0) {
    /* A trial written just before a switch that never happened (killed
     * between the two): current still names the version before. */
    nl_log_warn("update",
                "a trial of %s was begun but never switched to: "
                "dropped",
                trial.version);
    trial.active = false;
    nl_update_write_trial(dirfd, &trial);
  }
  if (trial.active) {
    trial.starts++;
    if (trial.starts > NL_UPDATE_MAX_STARTS) {
      nl_log_error("update",
                   "version %s started %d times without passing its trial "
                   "(it crashed, exited or hung before its health checks): "
                   "rolling back to %s",
                   trial.version, NL_UPDATE_MAX_STARTS,
                   trial.previous[0] ? trial.previous : "this binary");
      if (nl_update_roll_back(
              dirfd, &trial, "did not start: no trial passed in 3 starts") != 0)
        nl_log_error("update", "rolling back failed: %s", strerror(errno));
      trial.active = false;
      snprintf(version, sizeof version, "%s", trial.previous);
    } else if (nl_update_write_trial(dirfd, &trial) != 0) {
      nl_log_error("update", "cannot count the start of %s: %s", trial.version,
                   strerror(errno));
    }
  }
  if (version[0] == '\0') {
    close(dirfd);
    return; /* no update installed: this binary is the version */
  }
  char path[PATH_MAX];
  nl_update_binary_path(update_dir, version, path, sizeof path);
  bool on_trial = trial.active;
  if (runnable(path, why, sizeof why) != 0) {
    nl_log_error("update", "cannot start version %s: %s", version, why);
    if (on_trial)
      nl_update_roll_back(dirfd, &trial, "its binary cannot be started");
    close(dirfd);
    return;
  }
  close(dirfd);
  char entry[PATH_MAX];
  if (nl_self_path(entry, sizeof entry) != 0)
    snprintf(entry, sizeof entry, "%s", argv[0]);
  setenv(NL_UPDATE_ENV_LAUNCHED, version, 1);
  setenv(NL_UPDATE_ENV_ENTRY, entry, 1);
  if (on_trial)
    alarm((unsigned)(health_timeout_seconds + ALARM_GRACE_SECONDS));
  execv(path, argv);
  /* Still here: the kernel refused it (a bad binary, another
   * architecture). The next start counts it; this one runs us. */
  int e = errno;
  alarm(0);
  unsetenv(NL_UPDATE_ENV_LAUNCHED);
  nl_log_error("update", "cannot exec version %s (%s): %s; running this binary",
               version, path, strerror(e));
  if (on_trial) {
    dirfd = nl_update_open(update_dir, false, why, sizeof why);
    if (dirfd >= 0) {
      nl_update_roll_back(dirfd, &trial, "its binary cannot be executed");
      close(dirfd);
    }
  }
}
