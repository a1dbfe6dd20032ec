#include "portable.h"

#include <fcntl.h>
#include <unistd.h>

#ifdef __APPLE__
#include <crt_externs.h>
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

char **nl_environ(void) {
#ifdef __APPLE__
  return *_NSGetEnviron();
#else
  return environ;
#endif
}
