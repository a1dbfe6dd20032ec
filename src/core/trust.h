/* Local trust: files that are code or secrets (policies, env files, key
 * files) and the folders that hold them are used only when no other user
 * could have written them, and, for secrets, could not read them. Whoever
 * can write a policy runs code as the agent (often root); whoever can
 * write an env file chooses where it reports, what it trusts and which
 * folders it writes. */
#ifndef NODELUA_TRUST_H
#define NODELUA_TRUST_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

/* The file holds a secret: it must not be readable by group or others. */
#define NL_TRUST_SECRET 1u

/* Checks what st says of a file or folder (named what in the message):
 * owned by this process's effective uid or by root, not writable by group
 * or others and, with NL_TRUST_SECRET, not readable by them either (a
 * root-owned file of a group other than root's may be readable by that
 * group when it is the agent's own, or when the agent is root:
 * root:nodelua 0640).
 * Returns 0, or -1 with one line in err that says how to fix it. */
int nl_trust_check(const struct stat *st, unsigned flags, const char *what,
                   char *err, size_t errlen);

/* Reads the regular file at path (at most max bytes) after checking it
 * and the folder that holds it (for a symlink, its target and the
 * target's folder): the checks apply to what is read, not to a name that
 * could change meanwhile. Returns the contents (NUL-terminated, free()
 * them), their length and (st_out, if not NULL) the file's stat, or NULL with
 * one line in err (errno ENOENT for a file that is not there). */
char *nl_trust_read(const char *path, unsigned flags, size_t max, size_t *len,
                    struct stat *st_out, char *err, size_t errlen);

/* mkdir -p, each missing folder made with mode 0700; folders that exist
 * are left as they are. Returns 0 or a negative errno. */
int nl_mkdir_p(const char *path);

/* What st says of a folder the agent keeps its own (the state directory,
 * the receive folder): a folder, owned by this process's effective uid
 * (not even root's will do), not writable by group or others. Returns 0,
 * or -1 with one line in err naming what. */
int nl_trust_check_own_folder(const struct stat *st, const char *what,
                              char *err, size_t errlen);

/* A folder of the agent's own (the state directory): made (nl_mkdir_p) if
 * missing, then refused, with one line in err naming what, unless it is a
 * folder owned by this process's effective uid and not writable by group
 * or others. Returns 0 or -1. */
int nl_trust_own_folder(const char *path, const char *what, char *err,
                        size_t errlen);

#endif
