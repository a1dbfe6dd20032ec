/* Loopback sockets for the C tests: a listener on a free port, and a
 * client connection with a receive timeout. */
#ifndef NODELUA_TEST_NET_H
#define NODELUA_TEST_NET_H

#include "core/portable.h" /* MSG_NOSIGNAL, or SO_NOSIGPIPE on macOS */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* A listening socket on 127.0.0.1 and a port the kernel chose. */
static inline int test_listen(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bind(fd, (struct sockaddr *)&sa, sizeof sa);
  listen(fd, 128);
  socklen_t len = sizeof sa;
  getsockname(fd, (struct sockaddr *)&sa, &len);
  *port = ntohs(sa.sin_port);
  return fd;
}

/* A connection to 127.0.0.1:port whose reads time out after seconds;
 * -1 if it cannot connect. */
static inline int test_connect(int port, int seconds) {
  int fd = nl_socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  struct timeval tv = {.tv_sec = seconds};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

#endif
