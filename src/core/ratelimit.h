/* Rate-limited warnings: at most one line per key (a source address) per
 * period, the next one saying how many were held back. For what strangers
 * can cause at will (failed handshakes, refused connections): a flood of
 * them must not become a flood of log lines. */
#ifndef NODELUA_RATELIMIT_H
#define NODELUA_RATELIMIT_H

#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#define NL_RATELIMIT_SLOTS 32
#define NL_RATELIMIT_KEY_MAX 64

typedef struct {
  char key[NL_RATELIMIT_KEY_MAX];
  time_t since;        /* when the last line for key was let through */
  unsigned suppressed; /* held back since */
} nl_ratelimit_slot;

typedef struct {
  pthread_mutex_t lock;
  int period_seconds;
  nl_ratelimit_slot slots[NL_RATELIMIT_SLOTS];
} nl_ratelimit;

#define NL_RATELIMIT_INIT(seconds)                                             \
  { .lock = PTHREAD_MUTEX_INITIALIZER, .period_seconds = (seconds) }

/* Whether a line for key may be written now. When it may, *held_back is
 * how many were held back for key since the last one. Keys past
 * NL_RATELIMIT_SLOTS take the slot used longest ago. */
bool nl_ratelimit_allow(nl_ratelimit *r, const char *key, time_t now,
                        unsigned *held_back);

#endif
