/* The launcher: what the service (and deploy.sh) start is a stable entry
 * point, $PREFIX/bin/nodelua, that an update never replaces. Before the
 * agent runs, it reads the update folder: a version on trial has its start
 * counted, and after NL_UPDATE_MAX_STARTS starts that never passed the
 * trial (a crash before main, a bad binary, an exit at once, a hang) the
 * launcher rolls it back itself. Then it execs `current` (the pid stays),
 * with an alarm set for a version on trial: one that hangs before its
 * health checks end is killed by SIGALRM, restarted by its supervisor, and
 * counted again. */
#ifndef NODELUA_UPDATE_LAUNCH_H
#define NODELUA_UPDATE_LAUNCH_H

/* Set in the environment of a launched version: its version, and the
 * entry point's path (what a version execs to switch or roll back). */
#define NL_UPDATE_ENV_LAUNCHED "NODELUA_LAUNCHED"
#define NL_UPDATE_ENV_ENTRY "NODELUA_ENTRY"

/* Runs the launcher for `nodelua agent`. Returns only when this process
 * itself is to run the agent: it was launched already, there is no update
 * folder or no current version, or the current one cannot be started (then
 * logged, and rolled back if it was on trial). argv is exec'd as is. */
void nl_update_launch(const char *update_dir, int health_timeout_seconds,
                      char **argv);

/* Keeps argv for nl_update_exec_entry (main calls it first thing). */
void nl_update_remember_argv(char **argv);

/* Execs the entry point with the argv the process started with, so that
 * the launcher decides again which version runs (after a switch or a
 * rollback); the pid stays. Returns only on failure (-1, errno set). */
int nl_update_exec_entry(void);

#endif
