/* An absolute deadline on a blocking socket: before each read or write,
 * the socket's timeouts are set to what is left, so that a peer that
 * trickles a byte at a time cannot stretch a phase (the handshake, before
 * the peer is authenticated) past its deadline the way it can stretch a
 * per-read timeout. */
#ifndef NODELUA_TRANSFER_DEADLINE_H
#define NODELUA_TRANSFER_DEADLINE_H

#include <errno.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

/* now + seconds, on the monotonic clock. */
static inline struct timespec nl_deadline_in(int seconds) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  t.tv_sec += seconds;
  return t;
}

/* Sets fd's SO_RCVTIMEO and SO_SNDTIMEO to the time left until deadline.
 * Returns 0, or -1 with errno ETIMEDOUT when the deadline has passed. */
static inline int nl_deadline_arm(int fd, const struct timespec *deadline) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  long long left_us = (long long)(deadline->tv_sec - now.tv_sec) * 1000000 +
                      (deadline->tv_nsec - now.tv_nsec) / 1000;
  if (left_us <= 0) {
    errno = ETIMEDOUT;
    return -1;
  }
  struct timeval tv = {.tv_sec = (time_t)(left_us / 1000000),
                       .tv_usec = (suseconds_t)(left_us % 1000000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return 0;
}

#endif
