/* The agent's control socket: a Unix socket in the state directory through
 * which `nodelua repl` asks the running agent questions (list, status...).
 * Only the agent's own user (and root) can use it: the socket is made 0600
 * (under umask 077) in a 0700 directory, and the agent checks each
 * connection's uid with SO_PEERCRED (Linux) or getpeereid (macOS).
 *
 * The wire: the client sends one command line ("list\n"); the agent answers
 * "OK <length>\n" or "ERR <length>\n" followed by exactly that many bytes
 * of text. A connection may carry any number of commands in turn. */
#ifndef NODELUA_CONTROL_H
#define NODELUA_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <uv.h>

#define NL_CONTROL_LINE_MAX 4096
#define NL_CONTROL_REPLY_MAX (16 * 1024 * 1024)

typedef struct nl_control nl_control;

/* Answers one command line (without its newline): returns true for OK,
 * false for ERR, with the text in *reply (malloc'd, or NULL for none). Runs
 * on the loop. */
typedef bool (*nl_control_handler)(void *ud, const char *line, size_t len,
                                   char **reply, size_t *reply_len);

/* Listens on path. A socket left by an agent that died is replaced; one
 * that answers belongs to a running agent and is an error (-EADDRINUSE).
 * Returns 0 or a negative errno / libuv error with a message in err. */
int nl_control_start(uv_loop_t *loop, const char *path,
                     nl_control_handler handler, void *ud, nl_control **out,
                     char *err, size_t errlen);
/* Stops listening, closes connections and removes the socket file. */
void nl_control_stop(nl_control *ctl);

/* The uid of the process at the other end of a Unix socket. 0 or -1. */
int nl_control_peer_uid(int fd, uid_t *uid);

/* The client side, blocking (for the `nodelua repl` process, not the
 * agent): connects, or returns -1 with a message in err. */
int nl_control_connect(const char *path, char *err, size_t errlen);
/* Sends line and reads the answer: returns 1 for OK, 0 for ERR, -1 when
 * the connection failed (message in err). *reply is malloc'd and
 * NUL-terminated. */
int nl_control_ask(int fd, const char *line, char **reply, size_t *reply_len,
                   char *err, size_t errlen);

#endif
