/* HTTP client: libcurl's multi interface on the libuv loop. Sockets are
 * watched with uv_poll and curl's timeouts run on a uv_timer, so a request
 * never blocks the loop. Connections are kept alive and reused across
 * requests; redirects are followed only by a GET that asks; http_proxy,
 * https_proxy and no_proxy in the environment are honoured, as curl users
 * expect. */
#ifndef NODELUA_HTTP_CLIENT_H
#define NODELUA_HTTP_CLIENT_H

#include <stddef.h>
#include <uv.h>

typedef struct nl_http nl_http;

typedef struct {
  long connect_timeout_ms;
  long total_timeout_ms;
  const char *ca_file;    /* pins a private CA; NULL: the OS's CA store */
  const char *user_agent; /* NULL: "nodelua" */
} nl_http_options;

#define NL_HTTP_BODY_MAX (64 * 1024) /* kept of an answer's body */

typedef struct {
  long status;      /* HTTP status, or 0 when there was no answer */
  const char *body; /* the first NL_HTTP_BODY_MAX bytes, terminated */
  size_t body_len;
  const char *retry_after; /* the Retry-After header, or "" */
  const char *error;       /* "" on an answer; why there was none otherwise */
  const char *headers;     /* a GET's final answer: its header lines, raw */
  unsigned long long received; /* bytes of the final answer's body */
} nl_http_response;

/* Of a GET's body, kept in memory when it does not go to a file. */
#define NL_HTTP_GET_BODY_MAX (8 * 1024 * 1024)

typedef struct {
  int fd;                       /* >= 0: the body is written there, not kept */
  unsigned long long max_bytes; /* more body than this is an error; 0: none */
  long max_redirects;           /* 0: none followed */
  long total_timeout_ms;        /* 0: the client's */
  long low_speed_bytes;         /* below this many bytes per second ... */
  long low_speed_seconds;       /* ... for this long, the transfer is cut */
} nl_http_get_options;

typedef void (*nl_http_done)(void *ud, const nl_http_response *response);

/* Returns NULL on failure. */
nl_http *nl_http_new(uv_loop_t *loop, const nl_http_options *options);

/* Starts a POST. headers is a NULL-terminated list of "Name: value".
 * done is called once, on the loop, with the answer or the failure; also
 * with error "cancelled" when the client is closed first. Returns 0 or a
 * negative errno. */
int nl_http_post(nl_http *h, const char *url, const char *const *headers,
                 const char *body, size_t len, nl_http_done done, void *ud);

/* Starts a GET. Like nl_http_post, and: the body goes to opts->fd when it
 * is >= 0 (else up to NL_HTTP_GET_BODY_MAX bytes are kept), stops with an
 * error past opts->max_bytes, follows up to opts->max_redirects (http and
 * https only), and the answer carries its header lines. */
int nl_http_get(nl_http *h, const char *url, const char *const *headers,
                const nl_http_get_options *opts, nl_http_done done, void *ud);

size_t nl_http_in_flight(const nl_http *h);

/* Cancels what is in flight (done gets "cancelled") and frees the client
 * once libuv has closed its handles. */
void nl_http_close(nl_http *h);

#endif
