#ifdef __linux__
#define _GNU_SOURCE /* pipe2 */
#endif
#include "portable.h"

#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#ifdef __APPLE__
#include <crt_externs.h>
#include <mach-o/dyld.h>
#else
extern char **environ;
#endif

int nl_fsync_full(int fd) {
#ifdef F_FULLFSYNC
  if (fcntl(fd, F_FULLFSYNC) == 0)
    return 0;
    /* Not every filesystem takes it (network and FAT ones): fsync then. */
#endif
  return fsync(fd);
}

void nl_socket_nosigpipe(int fd) {
#ifdef SO_NOSIGPIPE
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#else
  (void)fd;
#endif
}

int nl_socket(int domain, int type, int protocol) {
#ifdef SOCK_CLOEXEC
  int fd = socket(domain, type | SOCK_CLOEXEC, protocol);
#else
  /* A fork and exec between the two calls could leak it; the agent forks
   * no children, so the window is harmless here. */
  int fd = socket(domain, type, protocol);
  if (fd >= 0)
    fcntl(fd, F_SETFD, FD_CLOEXEC);
#endif
  if (fd >= 0)
    nl_socket_nosigpipe(fd);
  return fd;
}

int nl_pipe_nonblocking(int fds[2]) {
#ifdef __linux__
  return pipe2(fds, O_CLOEXEC | O_NONBLOCK);
#else
  if (pipe(fds) != 0)
    return -1;
  for (int i = 0; i < 2; i++) {
    fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
  }
  return 0;
#endif
}

char **nl_environ(void) {
#ifdef __APPLE__
  return *_NSGetEnviron();
#else
  return environ;
#endif
}

int nl_self_path(char *out, size_t outlen) {
#ifdef __APPLE__
  char raw[PATH_MAX];
  uint32_t size = sizeof raw;
  char resolved[PATH_MAX];
  if (_NSGetExecutablePath(raw, &size) != 0 || realpath(raw, resolved) == NULL)
    return -1;
  size_t n = strlen(resolved);
  if (n >= outlen)
    return -1;
  memcpy(out, resolved, n + 1);
  return 0;
#else
  ssize_t n = readlink("/proc/self/exe", out, outlen - 1);
  if (n <= 0 || (size_t)n >= outlen - 1)
    return -1;
  out[n] = '\0';
  return 0;
#endif
}

void nl_thread_name(const char *name) {
#ifdef __APPLE__
  (void)pthread_setname_np(name);
#else
  (void)pthread_setname_np(pthread_self(), name);
#endif
}
