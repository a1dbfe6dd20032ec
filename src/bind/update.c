/* nodelua.update.native: the C side of self-update, for
 * lua/nodelua/update/ (the Lua package nodelua.update).
 *
 *   update.verify(public_key, minisig, data) -> trusted comment
 *   update.sha256sums_find(text, name) -> hex digest (nil, why: not listed)
 *   update.sha256_file(path) -> hex digest
 *   update.state(dir) -> {current, previous, committed, trial = {version,
 *       previous, starts, since} or nil, skipped = {{version, reason}...}}
 *   update.stage(dir, version, path) -> true: path becomes
 *       versions/<version>/nodelua (0755), durably
 *   update.begin_trial(dir, version) -> true: the trial is recorded, then
 *       previous and current are switched
 *   update.commit(dir, version) -> true: committed, trial cleared, alarm off
 *   update.roll_back(dir, reason) -> true: current back to previous, the
 *       version on trial (or the current one) recorded as skipped
 *   update.prune(dir) -> removed: versions neither current nor previous
 *   update.prepare(dir) -> true: made if missing, checked to be ours
 *   update.exec_entry() -> only returns on failure: nil, why, errno
 *   update.launched() -> the version the launcher started, or nil
 * Failures return nil, a message and an errno. */
#include "runtime.h"

#include "core/hash.h"
#include "core/portable.h"
#include "core/update/launch.h"
#include "core/update/minisig.h"
#include "core/update/state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int l_verify(lua_State *L) {
  size_t key_len, sig_len, data_len;
  const char *key_text = luaL_checklstring(L, 1, &key_len);
  const char *sig_text = luaL_checklstring(L, 2, &sig_len);
  const char *data = luaL_checklstring(L, 3, &data_len);
  nl_minisign_key key;
  nl_minisign_sig sig;
  char why[256];
  if (nl_minisign_parse_key(key_text, key_len, &key, why, sizeof why) != 0)
    return nl_push_failure(L, EINVAL, "the public key: %s", why);
  if (nl_minisign_parse_sig(sig_text, sig_len, &sig, why, sizeof why) != 0 ||
      nl_minisign_verify(&key, &sig, (const uint8_t *)data, data_len, why,
                         sizeof why) != 0)
    return nl_push_failure(L, EBADMSG, "%s", why);
  lua_pushstring(L, sig.trusted_comment);
  return 1;
}

static int l_sha256sums_find(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  const char *name = luaL_checkstring(L, 2);
  uint8_t digest[32];
  char why[256];
  int rc = nl_sha256sums_find(text, len, name, digest, why, sizeof why);
  if (rc < 0)
    return nl_push_failure(L, EBADMSG, "%s", why);
  if (rc > 0)
    return nl_push_failure(L, ENOENT, "SHA256SUMS does not list %s", name);
  char hex[NL_SHA256_HEX_SIZE];
  nl_sha256_hex(digest, hex);
  lua_pushstring(L, hex);
  return 1;
}

static int l_sha256_file(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    return nl_push_failure(L, e, "%s: %s", path, strerror(e));
  }
  uint8_t digest[32];
  int rc = nl_sha256_file_range(fd, 0, (uint64_t)st.st_size, digest);
  int e = errno;
  close(fd);
  if (rc != 0)
    return nl_push_failure(L, e, "%s: %s", path, strerror(e));
  char hex[NL_SHA256_HEX_SIZE];
  nl_sha256_hex(digest, hex);
  lua_pushstring(L, hex);
  return 1;
}

/* Opens the update folder named by argument 1, or raises nothing and
 * pushes a failure (returns -1). */
static int open_dir(lua_State *L, bool create) {
  char why[512];
  int fd = nl_update_open(luaL_checkstring(L, 1), create, why, sizeof why);
  if (fd < 0) {
    int e = errno; /* before Lua allocates */
    nl_push_failure(L, e, "%s", why);
    errno = e;
  }
  return fd;
}

static int fail_errno(lua_State *L, int dirfd, const char *what) {
  int e = errno;
  close(dirfd);
  return nl_push_failure(L, e, "%s: %s", what, strerror(e));
}

static void set_str(lua_State *L, const char *key, const char *value) {
  lua_pushstring(L, value);
  lua_setfield(L, -2, key);
}

static int l_state(lua_State *L) {
  int dirfd = open_dir(L, false);
  if (dirfd < 0 && errno == ENOENT) {
    lua_newtable(L); /* no update folder yet: nothing installed */
    return 1;
  }
  if (dirfd < 0)
    return 3;
  char current[NL_UPDATE_VERSION_MAX + 1], previous[NL_UPDATE_VERSION_MAX + 1];
  char committed[NL_UPDATE_VERSION_MAX + 2];
  static char skipped[NL_UPDATE_APPEND_KEEP + 1]; /* the loop thread only */
  nl_update_trial trial;
  if (nl_update_link_version(dirfd, "current", current, sizeof current) != 0 ||
      nl_update_link_version(dirfd, "previous", previous, sizeof previous) !=
          0 ||
      nl_update_read_trial(dirfd, &trial) != 0 ||
      nl_update_read_file(dirfd, "committed", committed, sizeof committed) !=
          0 ||
      nl_update_read_file(dirfd, "skipped", skipped, sizeof skipped) != 0)
    return fail_errno(L, dirfd, "reading the update folder");
  close(dirfd);
  committed[strcspn(committed, "\n")] = '\0';
  lua_createtable(L, 0, 6);
  set_str(L, "current", current);
  set_str(L, "previous", previous);
  set_str(L, "committed", nl_update_version_ok(committed) ? committed : "");
  if (trial.active) {
    lua_createtable(L, 0, 4);
    set_str(L, "version", trial.version);
    set_str(L, "previous", trial.previous);
    lua_pushinteger(L, trial.starts);
    lua_setfield(L, -2, "starts");
    lua_pushinteger(L, trial.since);
    lua_setfield(L, -2, "since");
    lua_setfield(L, -2, "trial");
  }
  lua_newtable(L);
  int n = 0;
  for (char *line = strtok(skipped, "\n"); line != NULL;
       line = strtok(NULL, "\n")) {
    char *space = strchr(line, ' ');
    if (space != NULL)
      *space = '\0';
    if (!nl_update_version_ok(line))
      continue;
    lua_createtable(L, 0, 2);
    set_str(L, "version", line);
    set_str(L, "reason", space ? space + 1 : "");
    lua_rawseti(L, -2, ++n);
  }
  lua_setfield(L, -2, "skipped");
  return 1;
}

static const char *check_version(lua_State *L, int arg) {
  const char *v = luaL_checkstring(L, arg);
  luaL_argcheck(L, nl_update_version_ok(v), arg, "a version name");
  return v;
}

/* The downloaded file becomes versions/<version>/nodelua: made
 * executable, fsync'd, renamed into place, its folders fsync'd. */
static int l_stage(lua_State *L) {
  const char *version = check_version(L, 2);
  const char *path = luaL_checkstring(L, 3);
  int dirfd = open_dir(L, true);
  if (dirfd < 0)
    return 3;
  if (mkdirat(dirfd, "versions", 0700) != 0 && errno != EEXIST)
    return fail_errno(L, dirfd, "versions");
  char rel[NL_UPDATE_VERSION_MAX + 32];
  snprintf(rel, sizeof rel, "versions/%s", version);
  if (mkdirat(dirfd, rel, 0700) != 0 && errno != EEXIST)
    return fail_errno(L, dirfd, rel);
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 || fchmod(fd, 0755) != 0 || nl_fsync_full(fd) != 0) {
    if (fd >= 0)
      close(fd);
    return fail_errno(L, dirfd, path);
  }
  close(fd);
  snprintf(rel, sizeof rel, "versions/%s/nodelua", version);
  if (renameat(AT_FDCWD, path, dirfd, rel) != 0)
    return fail_errno(L, dirfd, rel);
  snprintf(rel, sizeof rel, "versions/%s", version);
  int vfd = openat(dirfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (vfd >= 0) {
    nl_fsync_full(vfd);
    close(vfd);
  }
  nl_fsync_full(dirfd);
  close(dirfd);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_begin_trial(lua_State *L) {
  const char *version = check_version(L, 2);
  int dirfd = open_dir(L, false);
  if (dirfd < 0)
    return 3;
  nl_update_trial t = {
      .active = true, .starts = 0, .since = (long long)time(NULL)};
  snprintf(t.version, sizeof t.version, "%s", version);
  if (nl_update_link_version(dirfd, "current", t.previous, sizeof t.previous) !=
      0)
    return fail_errno(L, dirfd, "current");
  /* The trial first, then the links: killed between the two, the launcher
   * finds a trial of a version that current does not name, and drops it. */
  if (nl_update_write_trial(dirfd, &t) != 0 ||
      nl_update_set_link(dirfd, "previous", t.previous) != 0 ||
      nl_update_set_link(dirfd, "current", version) != 0)
    return fail_errno(L, dirfd, "switching versions");
  close(dirfd);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_commit(lua_State *L) {
  const char *version = check_version(L, 2);
  int dirfd = open_dir(L, false);
  if (dirfd < 0)
    return 3;
  char line[NL_UPDATE_VERSION_MAX + 2];
  snprintf(line, sizeof line, "%s\n", version);
  nl_update_trial none = {0};
  if (nl_update_write_file(dirfd, "committed", line, false) != 0 ||
      nl_update_write_trial(dirfd, &none) != 0)
    return fail_errno(L, dirfd, "committing");
  close(dirfd);
  alarm(0); /* the launcher's watchdog for the trial */
  lua_pushboolean(L, 1);
  return 1;
}

static int l_roll_back(lua_State *L) {
  const char *reason = luaL_checkstring(L, 2);
  int dirfd = open_dir(L, false);
  if (dirfd < 0)
    return 3;
  nl_update_trial t;
  if (nl_update_read_trial(dirfd, &t) != 0)
    return fail_errno(L, dirfd, "trial");
  if (!t.active) {
    /* By hand: from current back to previous. */
    t.active = true;
    if (nl_update_link_version(dirfd, "current", t.version, sizeof t.version) !=
            0 ||
        nl_update_link_version(dirfd, "previous", t.previous,
                               sizeof t.previous) != 0)
      return fail_errno(L, dirfd, "current");
    if (t.version[0] == '\0') {
      close(dirfd);
      return nl_push_failure(L, ENOENT,
                             "nothing to roll back: no update is installed");
    }
  }
  if (nl_update_roll_back(dirfd, &t, reason) != 0)
    return fail_errno(L, dirfd, "rolling back");
  close(dirfd);
  lua_pushstring(L, t.version);
  return 1;
}

static int l_prune(lua_State *L) {
  int dirfd = open_dir(L, false);
  if (dirfd < 0)
    return 3;
  char keep[2][NL_UPDATE_VERSION_MAX + 1];
  nl_update_link_version(dirfd, "current", keep[0], sizeof keep[0]);
  nl_update_link_version(dirfd, "previous", keep[1], sizeof keep[1]);
  int vfd = openat(dirfd, "versions", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  lua_newtable(L);
  if (vfd < 0) {
    close(dirfd);
    return 1;
  }
  DIR *d = fdopendir(vfd);
  int n = 0;
  struct dirent *e;
  while (d != NULL && (e = readdir(d)) != NULL) {
    if (!nl_update_version_ok(e->d_name) || strcmp(e->d_name, keep[0]) == 0 ||
        strcmp(e->d_name, keep[1]) == 0)
      continue;
    int sub = openat(vfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (sub >= 0) {
      unlinkat(sub, "nodelua", 0);
      close(sub);
    }
    if (unlinkat(vfd, e->d_name, AT_REMOVEDIR) == 0) {
      lua_pushstring(L, e->d_name);
      lua_rawseti(L, -2, ++n);
    }
  }
  if (d != NULL)
    closedir(d);
  else
    close(vfd);
  close(dirfd);
  return 1;
}

/* update.prepare(dir): the folder made (0700) if missing and checked to be
 * the agent's own, before anything is downloaded into it. */
static int l_prepare(lua_State *L) {
  int dirfd = open_dir(L, true);
  if (dirfd < 0)
    return 3;
  close(dirfd);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_exec_entry(lua_State *L) {
  nl_update_exec_entry();
  return nl_push_failure(L, errno, "cannot exec the entry point: %s",
                         strerror(errno));
}

static int l_launched(lua_State *L) {
  const char *v = getenv(NL_UPDATE_ENV_LAUNCHED);
  if (v == NULL)
    lua_pushnil(L);
  else
    lua_pushstring(L, v);
  return 1;
}

static const luaL_Reg update_functions[] = {
    {"verify", l_verify},
    {"sha256sums_find", l_sha256sums_find},
    {"sha256_file", l_sha256_file},
    {"state", l_state},
    {"stage", l_stage},
    {"begin_trial", l_begin_trial},
    {"commit", l_commit},
    {"roll_back", l_roll_back},
    {"prune", l_prune},
    {"prepare", l_prepare},
    {"exec_entry", l_exec_entry},
    {"launched", l_launched},
    {NULL, NULL},
};

int luaopen_nodelua_update_native(lua_State *L) {
  luaL_newlib(L, update_functions);
  return 1;
}
