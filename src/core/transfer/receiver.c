#include "receiver.h"

#include "core/log.h"

#include <errno.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct nl_receiver {
  nl_transfer_config cfg;
  nl_recv_dir dir;
  pthread_mutex_t lock;
  int active;
  nl_receiver *next;
};

/* Every receiver made, kept reachable for the life of the process. */
static nl_receiver *receivers;
static pthread_mutex_t receivers_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct {
  nl_receiver *r;
  int fd;
  size_t len;
  uint8_t read[];
} job;

/* Partial transfers nobody came back for are swept at start, then once a
 * day by this thread (and by a connection that finds a sweep due). */
static void *sweeper(void *arg) {
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

static void *serve(void *arg) {
  job *j = arg;
  nl_transfer_serve(j->fd, j->read, j->len, &j->r->cfg);
  pthread_mutex_lock(&j->r->lock);
  j->r->active--;
  pthread_mutex_unlock(&j->r->lock);
  free(j);
  return NULL;
}

void nl_receiver_accept(void *receiver, int fd, const uint8_t *read,
                        size_t len) {
  nl_receiver *r = receiver;
  job *j = malloc(sizeof *j + len);
  pthread_mutex_lock(&r->lock);
  bool room = r->active < NL_RECEIVER_THREADS_MAX;
  if (room && j != NULL)
    r->active++;
  pthread_mutex_unlock(&r->lock);
  if (!room || j == NULL) {
    free(j);
    close(fd);
    return;
  }
  j->r = r;
  j->fd = fd;
  j->len = len;
  memcpy(j->read, read, len);
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&t, &attr, serve, j) != 0) {
    pthread_mutex_lock(&r->lock);
    r->active--;
    pthread_mutex_unlock(&r->lock);
    close(fd);
    free(j);
  }
  pthread_attr_destroy(&attr);
}

int nl_receiver_active(const nl_receiver *r) {
  pthread_mutex_lock((pthread_mutex_t *)&r->lock);
  int n = r->active;
  pthread_mutex_unlock((pthread_mutex_t *)&r->lock);
  return n;
}
