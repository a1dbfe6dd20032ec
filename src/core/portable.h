/* The few system calls that differ between Linux and macOS, behind one
 * name each, so that no other file needs an #ifdef for them. Read against
 * Apple's documentation; the macOS side is compiled by scripts/check-macos.sh
 * and built by the macOS workflow. */
#ifndef NODELUA_PORTABLE_H
#define NODELUA_PORTABLE_H

#include <stddef.h>
#include <sys/socket.h>

/* send(2)'s flag that keeps a write to a closed peer from raising SIGPIPE.
 * macOS has none: nl_socket_nosigpipe sets the socket's option instead. */
#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

/* Makes what fd has written durable: fsync on Linux; on macOS, where fsync
 * only reaches the drive's cache, fcntl(F_FULLFSYNC), falling back to fsync
 * on filesystems that do not support it. 0, or -1 with errno set. */
int nl_fsync_full(int fd);

/* socket(2) whose descriptor is close-on-exec from the start where the
 * system allows (SOCK_CLOEXEC), else set at once with fcntl; on macOS the
 * socket also never raises SIGPIPE (SO_NOSIGPIPE). -1 with errno set. */
int nl_socket(int domain, int type, int protocol);

/* SO_NOSIGPIPE where the system has it (macOS): a write to a peer that
 * closed fails with EPIPE instead of killing the process. */
void nl_socket_nosigpipe(int fd);

/* pipe(2) with both ends close-on-exec and non-blocking (pipe2 where the
 * system has it; macOS sets the flags after). 0, or -1 with errno set. */
int nl_pipe_nonblocking(int fds[2]);

/* The absolute path of this process's executable (Linux: /proc/self/exe;
 * macOS: _NSGetExecutablePath, resolved). 0, or -1. */
int nl_self_path(char *out, size_t outlen);

/* The process environment: environ, or _NSGetEnviron() on macOS, where a
 * shared library (the loadable module) cannot reach environ. */
char **nl_environ(void);

/* Names the calling thread (at most 15 characters), as top -H and
 * /proc/PID/task/TID/comm show it, and scripts/bench/agent.sh reports.
 * Best effort: a name refused changes nothing. */
void nl_thread_name(const char *name);

#endif
