#include "receiver.h"

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

static int mkdir_p(const char *path, mode_t mode) {
  char buf[4096];
  int n = snprintf(buf, sizeof buf, "%s", path);
  if (n <= 0 || (size_t)n >= sizeof buf) {
    errno = ENAMETOOLONG;
    return -1;
  }
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
      return -1;
    *p = '/';
  }
  if (mkdir(buf, mode) != 0 && errno != EEXIST)
    return -1;
  struct stat st;
  if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) {
    errno = ENOTDIR;
    return -1;
  }
  return 0;
}

nl_receiver *nl_receiver_new(const nl_transfer_config *cfg, char *err,
                             size_t errlen) {
  if (cfg->dir == NULL || mkdir_p(cfg->dir, 0700) != 0) {
    snprintf(err, errlen, "cannot make %s: %s", cfg->dir ? cfg->dir : "(none)",
             strerror(errno));
    return NULL;
  }
  nl_receiver *r = calloc(1, sizeof *r);
  uint8_t *key = malloc(cfg->key_len);
  char *dir = strdup(cfg->dir);
  char *id = strdup(cfg->node_id);
  if (r == NULL || key == NULL || dir == NULL || id == NULL) {
    free(r);
    free(key);
    free(dir);
    free(id);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  memcpy(key, cfg->key, cfg->key_len);
  r->cfg = *cfg;
  r->cfg.key = key;
  r->cfg.dir = dir;
  r->cfg.node_id = id;
  pthread_mutex_init(&r->lock, NULL);
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
