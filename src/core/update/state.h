/* The update folder (UPDATE_DIR) and what it records, shared by the
 * launcher (before any Lua runs) and the updater (nodelua.update):
 *
 *   versions/<version>/nodelua   each installed version, side by side
 *   current -> versions/<v>      the version the launcher starts; absent:
 *                                the entry point runs itself
 *   previous -> versions/<v>     the one before (absent: the entry point)
 *   trial                        the version on trial: "version=", "previous=",
 *                                "starts=", "since=" lines
 *   committed                    the highest version ever committed here
 *   skipped                      "<version> <reason>" lines: never again
 *
 * Every change is a new file or link renamed over the old one, then the
 * folder fsync'd: a kill -9 at any moment leaves either the old state or
 * the new. The folder must be the agent's own (not writable by others): it
 * decides which binary runs. */
#ifndef NODELUA_UPDATE_STATE_H
#define NODELUA_UPDATE_STATE_H

#include <stdbool.h>
#include <stddef.h>

#define NL_UPDATE_VERSION_MAX 64
#define NL_UPDATE_REASON_MAX 256
#define NL_UPDATE_MAX_STARTS 3
/* Of a record appended to (skipped), the newest this many bytes are kept. */
#define NL_UPDATE_APPEND_KEEP (64 * 1024)

typedef struct {
  bool active;
  char version[NL_UPDATE_VERSION_MAX + 1];
  char previous[NL_UPDATE_VERSION_MAX + 1]; /* "" for the entry point */
  int starts;
  long long since; /* Unix seconds the trial began */
} nl_update_trial;

/* Opens dir as the update folder: made (0700) if create and missing;
 * refused unless it is the agent's own. Returns a directory fd, or -1 with
 * why (errno ENOENT when it is not there and create is false). */
int nl_update_open(const char *dir, bool create, char *why, size_t whylen);

/* Whether version is a version name we accept in a path: digits, letters,
 * '.', '-', '+', at most NL_UPDATE_VERSION_MAX, not starting with '.'. */
bool nl_update_version_ok(const char *version);

/* The version a link (current, previous) points at, or "" when there is
 * none. 0, or -1 for a link that is not ours (outside versions/). */
int nl_update_link_version(int dirfd, const char *link, char *out,
                           size_t outlen);
/* Points link at versions/<version> ("" removes it), atomically. 0 / -1. */
int nl_update_set_link(int dirfd, const char *link, const char *version);

int nl_update_read_trial(int dirfd, nl_update_trial *out);
/* Writes the trial state (active false removes it), atomically. 0 / -1. */
int nl_update_write_trial(int dirfd, const nl_update_trial *trial);

/* Writes a small text file atomically (tmp, fsync, rename, folder fsync);
 * append adds to what is there (of which the newest
 * NL_UPDATE_APPEND_KEEP bytes are kept, whole lines). 0, or -1 with
 * errno. */
int nl_update_write_file(int dirfd, const char *name, const char *text,
                         bool append);
/* Reads a small file (at most max - 1 bytes) into out; "" when absent. */
int nl_update_read_file(int dirfd, const char *name, char *out, size_t max);

/* The path of versions/<version>/nodelua under dir. */
void nl_update_binary_path(const char *dir, const char *version, char *out,
                           size_t outlen);

/* Rolls the trial back: current to the trial's previous (and no previous
 * left), the version recorded as skipped with reason, the trial cleared.
 * 0 / -1. */
int nl_update_roll_back(int dirfd, const nl_update_trial *trial,
                        const char *reason);

#endif
