#include "server.h"
#include "core/portable.h"

#include "core/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define ROUTES_MAX 16
#define CONNECTIONS_MAX 64
/* From a connection's first byte (or its last answer) to the end of the
 * next request: however slowly a client sends, this is all it gets. */
#define REQUEST_DEADLINE_MS 10000

/* A connection and when its request in progress began. */
typedef struct {
  int fd; /* -1: a free slot */
  double since;
} tracked;

typedef struct {
  char path[64];
  char content_type[64];
  char *body;
  size_t len;
  int live;
  int on_demand;
  int stale;             /* on demand: the loop has newer data than body */
  int fresh;             /* on demand: every request gets a new rendering */
  int wanted;            /* on demand: a request waits for a render */
  unsigned long version; /* bumped by every publish */
} route;

struct nl_endpoint {
  struct MHD_Daemon *daemon;
  pthread_mutex_t lock;
  route routes[ROUTES_MAX];
  size_t route_count;
  double beat; /* monotonic seconds of the loop's last beat */
  long stale_after_ms;
  unsigned long requests;
  int port;
  pthread_cond_t published;
  nl_endpoint_wake wake;
  void *wake_ud;
  long wait_ms;
  /* The deadline's watchdog: it shuts a connection down once its request
   * has taken longer than request_deadline_ms. MHD's own timeout is an
   * idle one, which a client that sends a byte now and then never hits. */
  tracked conns[CONNECTIONS_MAX];
  long request_deadline_ms;
  pthread_t watchdog;
  bool watchdog_started, stopping;
  pthread_cond_t stop; /* signalled to stop, and when a connection opens */
};

static double monotonic(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status,
                              const char *type, const char *body, size_t len) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (r == NULL)
    return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  MHD_add_response_header(r, "Cache-Control", "no-store");
  enum MHD_Result ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

static const char text[] = "text/plain; charset=utf-8";

/* Whether a request says a body follows. */
static bool has_body(struct MHD_Connection *c) {
  const char *length = MHD_lookup_connection_value(
      c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  const char *coding = MHD_lookup_connection_value(
      c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
  return coding != NULL || (length != NULL && strcmp(length, "0") != 0);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **state) {
  (void)version;
  (void)upload;
  nl_endpoint *ep = cls;
  /* The first call is for the headers alone. No route takes a body: one
   * is refused before it is read (MHD then closes the connection). */
  if (*state == NULL) {
    *state = ep;
    if (has_body(c))
      return answer(c, MHD_HTTP_CONTENT_TOO_LARGE, text,
                    "no request body is taken here\n", 30);
    return MHD_YES;
  }
  if (*upload_size != 0) {
    *upload_size = 0; /* not announced, and discarded */
    return MHD_YES;
  }
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
    return answer(c, MHD_HTTP_METHOD_NOT_ALLOWED, text, "only GET and HEAD\n",
                  18);
  pthread_mutex_lock(&ep->lock);
  ep->requests++;
  route *hit = NULL;
  for (size_t i = 0; i < ep->route_count && hit == NULL; i++) {
    if (strcmp(ep->routes[i].path, url) == 0)
      hit = &ep->routes[i];
  }
  enum MHD_Result ret;
  if (hit == NULL) {
    pthread_mutex_unlock(&ep->lock);
    return answer(c, MHD_HTTP_NOT_FOUND, text, "not found\n", 10);
  }
  if (hit->on_demand && hit->stale && ep->wake != NULL) {
    /* Ask the loop for a fresh rendering and wait a little for it. */
    unsigned long seen = hit->version;
    hit->wanted = 1;
    ep->wake(ep->wake_ud);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ep->wait_ms / 1000;
    until.tv_nsec += (ep->wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    while (hit->version == seen &&
           pthread_cond_timedwait(&ep->published, &ep->lock, &until) == 0)
      ;
  }
  double stalled = monotonic() - ep->beat;
  if (hit->live && stalled * 1000 > (double)ep->stale_after_ms) {
    char body[128];
    int n = snprintf(body, sizeof body,
                     "{\"status\":\"stalled\",\"loop_silent_seconds\":%.1f}\n",
                     stalled);
    pthread_mutex_unlock(&ep->lock);
    return answer(c, MHD_HTTP_SERVICE_UNAVAILABLE, "application/json", body,
                  (size_t)n);
  }
  if (hit->body == NULL) {
    pthread_mutex_unlock(&ep->lock);
    return answer(c, MHD_HTTP_SERVICE_UNAVAILABLE, text, "not ready yet\n", 14);
  }
  ret = answer(c, MHD_HTTP_OK, hit->content_type, hit->body, hit->len);
  pthread_mutex_unlock(&ep->lock);
  return ret;
}

static double now_ms(void) { return monotonic() * 1000; }

static tracked *tracked_for(nl_endpoint *ep, int fd) {
  for (int i = 0; i < CONNECTIONS_MAX; i++)
    if (ep->conns[i].fd == fd)
      return &ep->conns[i];
  return NULL;
}

/* The connection's socket, or -1. */
static int fd_of(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  return info != NULL ? info->connect_fd : -1;
}

/* The slot of fd (-1: a free one) gets fd_after and a new start time. */
static void track(nl_endpoint *ep, int fd, int fd_after) {
  pthread_mutex_lock(&ep->lock);
  tracked *t = tracked_for(ep, fd);
  if (t != NULL) {
    t->fd = fd_after;
    t->since = now_ms();
    if (fd_after >= 0) /* the watchdog may be asleep with nothing to watch */
      pthread_cond_signal(&ep->stop);
  }
  pthread_mutex_unlock(&ep->lock);
}

static void on_connection(void *cls, struct MHD_Connection *c,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
  (void)socket_context;
  int fd = fd_of(c);
  if (fd < 0)
    return;
  /* Closed: forgotten before MHD closes the fd, so the watchdog never
   * shuts down a number that was given to another file. */
  if (code == MHD_CONNECTION_NOTIFY_STARTED)
    track(cls, -1, fd);
  else
    track(cls, fd, -1);
}

/* A request answered: the next one on the connection has its own time. */
static void on_completed(void *cls, struct MHD_Connection *c, void **state,
                         enum MHD_RequestTerminationCode code) {
  (void)state;
  (void)code;
  int fd = fd_of(c);
  if (fd >= 0)
    track(cls, fd, fd);
}

static void *watchdog(void *arg) {
  nl_thread_name("nl-http-watch");
  nl_endpoint *ep = arg;
  pthread_mutex_lock(&ep->lock);
  while (!ep->stopping) {
    double now = now_ms();
    bool watching = false;
    for (int i = 0; i < CONNECTIONS_MAX; i++) {
      tracked *t = &ep->conns[i];
      watching = watching || t->fd >= 0;
      if (t->fd >= 0 && now - t->since > (double)ep->request_deadline_ms) {
        shutdown(t->fd, SHUT_RDWR); /* MHD sees it end, and closes it */
        t->since = now;
      }
    }
    /* With no connection open it sleeps until one opens (track() wakes
     * it): an idle agent is not woken four times a second for nothing. */
    if (!watching) {
      pthread_cond_wait(&ep->stop, &ep->lock);
      continue;
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 250 * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&ep->stop, &ep->lock, &until);
  }
  pthread_mutex_unlock(&ep->lock);
  return NULL;
}

void nl_endpoint_set_request_deadline(nl_endpoint *ep, long ms) {
  pthread_mutex_lock(&ep->lock);
  ep->request_deadline_ms = ms;
  pthread_mutex_unlock(&ep->lock);
}

static bool is_loopback(const struct sockaddr_storage *a) {
  if (a->ss_family == AF_INET)
    return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) ==
           127;
  if (a->ss_family == AF_INET6) {
    const struct in6_addr *v6 = &((const struct sockaddr_in6 *)a)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(v6) ||
           (IN6_IS_ADDR_V4MAPPED(v6) && v6->s6_addr[12] == 127);
  }
  return false;
}

static int parse_listen(const char *listen, struct sockaddr_storage *addr,
                        char *err, size_t errlen) {
  char host[256];
  const char *port;
  if (listen[0] == '[') {
    const char *close = strchr(listen, ']');
    if (close == NULL || close[1] != ':' || (size_t)(close - listen) > 250)
      goto bad;
    memcpy(host, listen + 1, (size_t)(close - listen - 1));
    host[close - listen - 1] = '\0';
    port = close + 2;
  } else {
    const char *colon = strrchr(listen, ':');
    if (colon == NULL || (size_t)(colon - listen) > 250)
      goto bad;
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    port = colon + 1;
  }
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
  struct addrinfo *res = NULL;
  int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
  if (rc != 0) {
    snprintf(err, errlen, "cannot resolve %s: %s", listen, gai_strerror(rc));
    return -EINVAL;
  }
  memcpy(addr, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  return 0;
bad:
  snprintf(err, errlen, "expected host:port or [v6]:port, not %s", listen);
  return -EINVAL;
}

int nl_endpoint_start(const char *listen, nl_endpoint **out, char *err,
                      size_t errlen) {
  struct sockaddr_storage addr;
  int rc = parse_listen(listen, &addr, err, errlen);
  if (rc != 0)
    return rc;
  if (!is_loopback(&addr))
    nl_log_warn("http",
                "METRICS_LISTEN=%s is not a loopback address: anyone who can "
                "reach it reads this node's addresses, mounts and peers "
                "(/metrics, /api/v1/metrics/latest); keep it on 127.0.0.1, or "
                "firewall the port",
                listen);
  nl_endpoint *ep = calloc(1, sizeof *ep);
  if (ep == NULL) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  pthread_mutex_init(&ep->lock, NULL);
  pthread_cond_init(&ep->published, NULL);
  pthread_cond_init(&ep->stop, NULL);
  ep->beat = monotonic();
  ep->stale_after_ms = 10000;
  ep->request_deadline_ms = REQUEST_DEADLINE_MS;
  for (int i = 0; i < CONNECTIONS_MAX; i++)
    ep->conns[i].fd = -1;
  unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD;
  if (addr.ss_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  ep->daemon = MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, ep, MHD_OPTION_SOCK_ADDR,
      (struct sockaddr *)&addr,
      /* Each connection's buffers, request line and headers included. */
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTIONS_MAX,
      MHD_OPTION_NOTIFY_CONNECTION, on_connection, ep,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, ep,
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)32,
      /* Idle connections go after 10 s; slow ones (a byte now and then)
       * at the request deadline, by the watchdog. */
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_THREAD_STACK_SIZE,
      (size_t)(256 * 1024), MHD_OPTION_END);
  if (ep->daemon == NULL) {
    snprintf(err, errlen,
             "cannot listen on %s (in use, or not an address "
             "of this machine)",
             listen);
    pthread_mutex_destroy(&ep->lock);
    pthread_cond_destroy(&ep->published);
    pthread_cond_destroy(&ep->stop);
    free(ep);
    return -EADDRINUSE;
  }
  ep->watchdog_started = pthread_create(&ep->watchdog, NULL, watchdog, ep) == 0;
  const union MHD_DaemonInfo *info =
      MHD_get_daemon_info(ep->daemon, MHD_DAEMON_INFO_BIND_PORT);
  ep->port = info ? info->port : 0;
  *out = ep;
  return 0;
}

void nl_endpoint_stop(nl_endpoint *ep) {
  if (ep == NULL)
    return;
  pthread_mutex_lock(&ep->lock);
  ep->stopping = true;
  pthread_cond_signal(&ep->stop);
  pthread_mutex_unlock(&ep->lock);
  if (ep->watchdog_started)
    pthread_join(ep->watchdog, NULL);
  MHD_stop_daemon(ep->daemon);
  for (size_t i = 0; i < ep->route_count; i++)
    free(ep->routes[i].body);
  pthread_mutex_destroy(&ep->lock);
  pthread_cond_destroy(&ep->published);
  pthread_cond_destroy(&ep->stop);
  free(ep);
}

int nl_endpoint_port(const nl_endpoint *ep) { return ep->port; }

/* The route for path, made if there is none. Caller holds the lock. */
static route *route_for(nl_endpoint *ep, const char *path) {
  for (size_t i = 0; i < ep->route_count; i++) {
    if (strcmp(ep->routes[i].path, path) == 0)
      return &ep->routes[i];
  }
  if (ep->route_count == ROUTES_MAX ||
      strlen(path) >= sizeof ep->routes[0].path)
    return NULL;
  route *r = &ep->routes[ep->route_count++];
  memset(r, 0, sizeof *r);
  snprintf(r->path, sizeof r->path, "%s", path);
  return r;
}

int nl_endpoint_publish(nl_endpoint *ep, const char *path, const char *body,
                        size_t len, const char *content_type, int live) {
  char *copy = malloc(len + 1);
  if (copy == NULL)
    return -ENOMEM;
  memcpy(copy, body, len);
  copy[len] = '\0';
  pthread_mutex_lock(&ep->lock);
  route *r = route_for(ep, path);
  if (r == NULL) {
    pthread_mutex_unlock(&ep->lock);
    free(copy);
    return -ENOSPC;
  }
  char *old = r->body;
  r->body = copy;
  r->len = len;
  r->stale = r->fresh; /* a fresh route is out of date once rendered */
  r->version++;
  if (content_type != NULL) { /* NULL: an on-demand rendering keeps both */
    r->live = live;
    snprintf(r->content_type, sizeof r->content_type, "%s", content_type);
  }
  pthread_cond_broadcast(&ep->published);
  pthread_mutex_unlock(&ep->lock);
  free(old);
  return 0;
}

void nl_endpoint_set_wake(nl_endpoint *ep, nl_endpoint_wake wake, void *ud,
                          long wait_ms) {
  pthread_mutex_lock(&ep->lock);
  ep->wake = wake;
  ep->wake_ud = ud;
  ep->wait_ms = wait_ms;
  pthread_mutex_unlock(&ep->lock);
}

int nl_endpoint_on_demand(nl_endpoint *ep, const char *path,
                          const char *content_type, int live, int fresh) {
  pthread_mutex_lock(&ep->lock);
  route *r = route_for(ep, path);
  if (r != NULL) {
    r->on_demand = 1;
    r->live = live;
    r->fresh = fresh;
    r->stale = 1;
    snprintf(r->content_type, sizeof r->content_type, "%s", content_type);
  }
  pthread_mutex_unlock(&ep->lock);
  return r != NULL ? 0 : -ENOSPC;
}

void nl_endpoint_invalidate(nl_endpoint *ep, const char *path) {
  pthread_mutex_lock(&ep->lock);
  for (size_t i = 0; i < ep->route_count; i++) {
    if (strcmp(ep->routes[i].path, path) == 0)
      ep->routes[i].stale = 1;
  }
  pthread_mutex_unlock(&ep->lock);
}

int nl_endpoint_wanted(nl_endpoint *ep, const char *path) {
  int wanted = 0;
  pthread_mutex_lock(&ep->lock);
  for (size_t i = 0; i < ep->route_count; i++) {
    if (strcmp(ep->routes[i].path, path) == 0) {
      wanted = ep->routes[i].wanted;
      ep->routes[i].wanted = 0;
    }
  }
  pthread_mutex_unlock(&ep->lock);
  return wanted;
}

void nl_endpoint_beat(nl_endpoint *ep, long stale_after_ms) {
  pthread_mutex_lock(&ep->lock);
  ep->beat = monotonic();
  ep->stale_after_ms = stale_after_ms;
  pthread_mutex_unlock(&ep->lock);
}

unsigned long nl_endpoint_requests(nl_endpoint *ep) {
  pthread_mutex_lock(&ep->lock);
  unsigned long n = ep->requests;
  pthread_mutex_unlock(&ep->lock);
  return n;
}
