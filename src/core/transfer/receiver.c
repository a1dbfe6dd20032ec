#include "receiver.h"
#include "core/portable.h"

#include "core/log.h"
#include "core/ratelimit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A source address and its connections not yet authenticated. */
typedef struct {
  char address[INET6_ADDRSTRLEN];
  int count;
} source;

struct nl_receiver {
  nl_transfer_config cfg;
  nl_recv_dir dir;
  pthread_mutex_t lock;
  /* Two pools: connections that have not proved the key yet (small, and
   * at most a few per source address, each for the handshake's 5 s at
   * the most), and authenticated ones. Strangers can fill only the
   * first. */
  int active; /* authenticated */
  int preauth;
  int threads; /* serving threads started and not yet ended */
  source sources[NL_RECEIVER_PREAUTH_MAX];
  nl_receiver *next;
};

/* Every receiver made, kept reachable for the life of the process. */
static nl_receiver *receivers;
static pthread_mutex_t receivers_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct {
  nl_receiver *r;
  int fd;
  bool left_preauth;  /* it proved the key */
  bool authenticated; /* and took an authenticated slot */
  char from[INET6_ADDRSTRLEN];
  size_t len;
  uint8_t read[];
} job;

static nl_ratelimit refusals = NL_RATELIMIT_INIT(60);

/* Partial transfers nobody came back for are swept at start, then once a
 * day by this thread (and by a connection that finds a sweep due). */
static void *sweeper(void *arg) {
  nl_thread_name("nl-rx-sweep");
  nl_receiver *r = arg;
  for (;;) {
    sleep(3600);
    nl_recv_dir_sweep_if_due(&r->dir);
  }
  return NULL;
}

nl_receiver *nl_receiver_new(const nl_transfer_config *cfg, const char *dir,
                             uint64_t partial_ttl_seconds, char *err,
                             size_t errlen) {
  nl_receiver *r = calloc(1, sizeof *r);
  uint8_t *key = malloc(cfg->key_len);
  char *id = strdup(cfg->node_id);
  if (r == NULL || key == NULL || id == NULL) {
    free(r);
    free(key);
    free(id);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  if (nl_recv_dir_open(&r->dir, dir, err, errlen) != 0) {
    free(r);
    free(key);
    free(id);
    return NULL;
  }
  r->dir.partial_ttl_seconds = partial_ttl_seconds;
  int swept = nl_recv_dir_sweep_if_due(&r->dir);
  if (swept > 0)
    nl_log_info("transfer",
                "swept %d staging file(s) of transfers abandoned for over "
                "%llu hours from %s",
                swept, (unsigned long long)partial_ttl_seconds / 3600, dir);
  memcpy(key, cfg->key, cfg->key_len);
  r->cfg = *cfg;
  r->cfg.key = key;
  r->cfg.recv_dir = &r->dir;
  r->cfg.node_id = id;
  pthread_mutex_init(&r->lock, NULL);
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&t, &attr, sweeper, r) != 0)
    nl_log_warn("transfer", "no daily sweep of %s: no thread for it", dir);
  pthread_attr_destroy(&attr);
  pthread_mutex_lock(&receivers_lock);
  r->next = receivers;
  receivers = r;
  pthread_mutex_unlock(&receivers_lock);
  return r;
}

static source *source_of(nl_receiver *r, const char *address) {
  for (int i = 0; i < NL_RECEIVER_PREAUTH_MAX; i++)
    if (r->sources[i].count > 0 && strcmp(r->sources[i].address, address) == 0)
      return &r->sources[i];
  return NULL;
}

/* A pre-auth connection from address ends, or is authenticated. Caller
 * holds the lock. */
static void preauth_done(nl_receiver *r, const char *address) {
  source *src = source_of(r, address);
  if (src != NULL)
    src->count--;
  r->preauth--;
}

/* The peer proved the key: it leaves the pre-auth pool for the
 * authenticated one, if that has room. */
static bool admit(void *arg) {
  job *j = arg;
  pthread_mutex_lock(&j->r->lock);
  preauth_done(j->r, j->from);
  j->left_preauth = true;
  j->authenticated = j->r->active < NL_RECEIVER_THREADS_MAX;
  if (j->authenticated)
    j->r->active++;
  pthread_mutex_unlock(&j->r->lock);
  return j->authenticated;
}

static void *serve(void *arg) {
  nl_thread_name("nl-rx-serve");
  job *j = arg;
  nl_transfer_serve_gated(j->fd, j->read, j->len, &j->r->cfg, admit, j);
  nl_receiver *r = j->r;
  pthread_mutex_lock(&r->lock);
  if (j->authenticated)
    r->active--;
  else if (!j->left_preauth)
    preauth_done(r, j->from); /* it never proved the key */
  free(j);
  r->threads--; /* last: nothing of the job is touched after this */
  pthread_mutex_unlock(&r->lock);
  return NULL;
}

/* Takes a pre-auth slot for address; NULL (and why) when there is none:
 * the pool is full, or this address has its share. Caller holds the
 * lock. */
static const char *take_preauth(nl_receiver *r, const char *address) {
  if (r->preauth >= NL_RECEIVER_PREAUTH_MAX)
    return "too many connections are still to authenticate";
  source *src = source_of(r, address);
  if (src != NULL && src->count >= NL_RECEIVER_PREAUTH_PER_SOURCE)
    return "too many connections from there are still to authenticate";
  if (src == NULL) {
    for (int i = 0; i < NL_RECEIVER_PREAUTH_MAX && src == NULL; i++)
      if (r->sources[i].count == 0)
        src = &r->sources[i];
    snprintf(src->address, sizeof src->address, "%s", address);
  }
  src->count++;
  r->preauth++;
  return NULL;
}

void nl_receiver_accept(void *receiver, int fd, const uint8_t *read,
                        size_t len) {
  nl_receiver *r = receiver;
  job *j = malloc(sizeof *j + len);
  char from[INET6_ADDRSTRLEN];
  nl_transfer_peer_address(fd, from, sizeof from);
  pthread_mutex_lock(&r->lock);
  const char *refused = j == NULL ? "out of memory" : take_preauth(r, from);
  if (refused == NULL)
    r->threads++; /* before the thread exists, so it is never missed */
  pthread_mutex_unlock(&r->lock);
  if (refused != NULL) {
    unsigned held_back = 0;
    if (nl_ratelimit_allow(&refusals, from, time(NULL), &held_back)) {
      if (held_back > 0)
        nl_log_warn("transfer",
                    "closed a connection from %s at once: %s (and %u more "
                    "from there in the last minute)",
                    from, refused, held_back);
      else
        nl_log_warn("transfer", "closed a connection from %s at once: %s", from,
                    refused);
    }
    free(j);
    close(fd);
    return;
  }
  *j = (job){.r = r, .fd = fd, .len = len};
  snprintf(j->from, sizeof j->from, "%s", from);
  if (len > 0)
    memcpy(j->read, read, len);
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&t, &attr, serve, j) != 0) {
    pthread_mutex_lock(&r->lock);
    preauth_done(r, from);
    r->threads--;
    pthread_mutex_unlock(&r->lock);
    close(fd);
    free(j);
  }
  pthread_attr_destroy(&attr);
}

int nl_receivers_wait_idle(int timeout_ms) {
  struct timespec step = {.tv_sec = 0, .tv_nsec = 20 * 1000 * 1000};
  for (int waited = 0;; waited += 20) {
    int running = 0;
    pthread_mutex_lock(&receivers_lock);
    for (nl_receiver *r = receivers; r != NULL; r = r->next) {
      pthread_mutex_lock(&r->lock);
      running += r->threads;
      pthread_mutex_unlock(&r->lock);
    }
    pthread_mutex_unlock(&receivers_lock);
    if (running == 0 || waited >= timeout_ms)
      return running;
    nanosleep(&step, NULL);
  }
}

int nl_receiver_active(const nl_receiver *r) {
  pthread_mutex_lock((pthread_mutex_t *)&r->lock);
  int n = r->active;
  pthread_mutex_unlock((pthread_mutex_t *)&r->lock);
  return n;
}

int nl_receiver_preauth(const nl_receiver *r) {
  pthread_mutex_lock((pthread_mutex_t *)&r->lock);
  int n = r->preauth;
  pthread_mutex_unlock((pthread_mutex_t *)&r->lock);
  return n;
}
