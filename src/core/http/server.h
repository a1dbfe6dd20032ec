/* The local endpoint: a small HTTP server (libmicrohttpd, on a thread of its
 * own) that serves what the loop publishes: /metrics, /healthz and the last
 * JSON payload. The request thread never touches Lua or the samples; it
 * copies the latest published body under a lock, so a slow monitoring API
 * or a busy loop cannot make it slow. libmicrohttpd bounds each
 * connection's memory (and so the request size), times idle connections
 * out, limits connections, and answers malformed requests with 400; a
 * watchdog ends a request that takes over its deadline however slowly its
 * bytes come, and a request with a body is refused with 413. */
#ifndef NODELUA_HTTP_SERVER_H
#define NODELUA_HTTP_SERVER_H

#include <stddef.h>

typedef struct nl_endpoint nl_endpoint;

/* listen is "host:port" or "[v6]:port". Returns 0 or a negative errno with
 * a message in err. */
int nl_endpoint_start(const char *listen, nl_endpoint **out, char *err,
                      size_t errlen);
void nl_endpoint_stop(nl_endpoint *ep);

/* The port bound (useful with port 0). */
int nl_endpoint_port(const nl_endpoint *ep);

/* Sets what GET path answers: a copy of body, with content_type (NULL
 * keeps the one it had). A route
 * marked live answers 503 once the loop has not called nl_endpoint_beat
 * for stale_after_ms: it is the health check of the loop itself. Returns 0
 * or -ENOMEM / -ENOSPC (at most 16 routes). */
int nl_endpoint_publish(nl_endpoint *ep, const char *path, const char *body,
                        size_t len, const char *content_type, int live);
void nl_endpoint_beat(nl_endpoint *ep, long stale_after_ms);

/* Renders path only when it is asked for: a request for it, once
 * nl_endpoint_invalidate has marked it out of date, calls wake(ud) from the
 * request thread (wake must only signal the loop, e.g. uv_async_send) and
 * waits up to wait_ms for the loop to publish it afresh; then it answers
 * with what is there. Nobody scraping costs nothing. A fresh route is
 * rendered for every request (/metrics: figures as old as the scrape). */
typedef void (*nl_endpoint_wake)(void *ud);
void nl_endpoint_set_wake(nl_endpoint *ep, nl_endpoint_wake wake, void *ud,
                          long wait_ms);
int nl_endpoint_on_demand(nl_endpoint *ep, const char *path,
                          const char *content_type, int live, int fresh);
void nl_endpoint_invalidate(nl_endpoint *ep, const char *path);
/* Whether a request waits for path: the loop renders it then. Clears the
 * request. */
int nl_endpoint_wanted(nl_endpoint *ep, const char *path);

/* How long a request may take, from a connection's first byte or its
 * previous answer, before the connection is shut down (10 s; for tests). */
void nl_endpoint_set_request_deadline(nl_endpoint *ep, long ms);

/* Requests that reached a handler so far. */
unsigned long nl_endpoint_requests(nl_endpoint *ep);

#endif
