#include "client.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

typedef struct request {
  CURL *easy;
  struct curl_slist *headers;
  char *body;
  char *answer;
  size_t answer_len;
  size_t answer_max;  /* kept of the body in memory */
  int fd;             /* a GET into a file: the body goes there; else -1 */
  uint64_t received;  /* bytes of the final answer's body */
  uint64_t max_bytes; /* a GET: more is an error; 0: no limit */
  bool too_large;
  char *answer_headers; /* a GET: the final answer's header lines */
  size_t answer_headers_len;
  char retry_after[64];
  char error[CURL_ERROR_SIZE];
  nl_http_done done;
  void *ud;
  struct request *next, *prev;
} request;

struct nl_http {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  long connect_timeout_ms, total_timeout_ms;
  char *ca_file;
  char *user_agent;
  request *requests;
  struct socket_watch *watches; /* sockets curl asked us to watch */
  size_t in_flight;
  int open_handles; /* the timer and the socket polls still open */
  bool closing;
};

typedef struct socket_watch {
  uv_poll_t poll;
  curl_socket_t fd;
  nl_http *http;
  struct socket_watch *next, *prev;
} socket_watch;

static void maybe_free(nl_http *h) {
  if (h->closing && h->open_handles == 0) {
    free(h->ca_file);
    free(h->user_agent);
    free(h);
  }
}

static void watch_closed(uv_handle_t *handle) {
  socket_watch *w = handle->data;
  nl_http *h = w->http;
  free(w);
  h->open_handles--;
  maybe_free(h);
}

static void timer_closed(uv_handle_t *handle) {
  nl_http *h = handle->data;
  h->open_handles--;
  maybe_free(h);
}

/* Stops watching a socket; the watch is freed once libuv has closed it. */
static void unwatch(nl_http *h, socket_watch *w) {
  if (w->prev)
    w->prev->next = w->next;
  else
    h->watches = w->next;
  if (w->next)
    w->next->prev = w->prev;
  uv_poll_stop(&w->poll);
  uv_close((uv_handle_t *)&w->poll, watch_closed);
}

static void finish(nl_http *h, request *r, const char *error) {
  long status = 0;
  if (error == NULL)
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
  curl_multi_remove_handle(h->multi, r->easy);
  if (r->prev)
    r->prev->next = r->next;
  else
    h->requests = r->next;
  if (r->next)
    r->next->prev = r->prev;
  h->in_flight--;
  nl_http_response resp = {
      .status = status,
      .body = r->answer ? r->answer : "",
      .body_len = r->answer_len,
      .retry_after = r->retry_after,
      .error = error ? error : "",
      .headers = r->answer_headers ? r->answer_headers : "",
      .received = r->received,
  };
  r->done(r->ud, &resp);
  curl_easy_cleanup(r->easy);
  curl_slist_free_all(r->headers);
  free(r->body);
  free(r->answer);
  free(r->answer_headers);
  free(r);
}

static void check_done(nl_http *h) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(h->multi, &left)) != NULL) {
    if (msg->msg != CURLMSG_DONE)
      continue;
    request *r = NULL;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
    CURLcode code = msg->data.result;
    if (code == CURLE_OK) {
      finish(h, r, NULL);
    } else if (r->too_large) {
      snprintf(r->error, sizeof r->error,
               "the answer is larger than %llu bytes: stopped",
               (unsigned long long)r->max_bytes);
      finish(h, r, r->error);
    } else {
      if (r->error[0] == '\0')
        snprintf(r->error, sizeof r->error, "%s", curl_easy_strerror(code));
      finish(h, r, r->error);
    }
  }
}

static void on_socket_event(uv_poll_t *poll, int status, int events) {
  socket_watch *w = poll->data;
  nl_http *h = w->http;
  int flags = 0;
  if (status < 0)
    flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE)
    flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE)
    flags |= CURL_CSELECT_OUT;
  int running;
  curl_multi_socket_action(h->multi, w->fd, flags, &running);
  check_done(h);
}

static void on_timeout(uv_timer_t *timer) {
  nl_http *h = timer->data;
  int running;
  curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(h);
}

static int socket_callback(CURL *easy, curl_socket_t fd, int action,
                           void *userp, void *socketp) {
  (void)easy;
  nl_http *h = userp;
  socket_watch *w = socketp;
  if (action == CURL_POLL_REMOVE) {
    if (w != NULL) {
      unwatch(h, w);
      curl_multi_assign(h->multi, fd, NULL);
    }
    return 0;
  }
  if (w == NULL) {
    w = calloc(1, sizeof *w);
    if (w == NULL)
      return -1;
    w->fd = fd;
    w->http = h;
    if (uv_poll_init_socket(h->loop, &w->poll, fd) != 0) {
      free(w);
      return -1;
    }
    w->poll.data = w;
    h->open_handles++;
    w->next = h->watches;
    if (h->watches)
      h->watches->prev = w;
    h->watches = w;
    curl_multi_assign(h->multi, fd, w);
  }
  int events = 0;
  if (action == CURL_POLL_IN || action == CURL_POLL_INOUT)
    events |= UV_READABLE;
  if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT)
    events |= UV_WRITABLE;
  uv_poll_start(&w->poll, events, on_socket_event);
  return 0;
}

static int timer_callback(CURLM *multi, long timeout_ms, void *userp) {
  (void)multi;
  nl_http *h = userp;
  if (timeout_ms < 0)
    uv_timer_stop(&h->timer);
  else {
    /* From now, not from when the loop last turned (see bind/timer.c). */
    uv_update_time(h->timer.loop);
    uv_timer_start(&h->timer, on_timeout, (uint64_t)timeout_ms, 0);
  }
  return 0;
}

nl_http *nl_http_new(uv_loop_t *loop, const nl_http_options *opts) {
  static bool initialised;
  if (!initialised) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      return NULL;
    initialised = true;
  }
  nl_http *h = calloc(1, sizeof *h);
  if (h == NULL)
    return NULL;
  h->loop = loop;
  h->connect_timeout_ms = opts->connect_timeout_ms;
  h->total_timeout_ms = opts->total_timeout_ms;
  h->ca_file = opts->ca_file && opts->ca_file[0] ? strdup(opts->ca_file) : NULL;
  h->user_agent = strdup(opts->user_agent ? opts->user_agent : "nodelua");
  h->multi = curl_multi_init();
  if (h->multi == NULL || h->user_agent == NULL ||
      (opts->ca_file && opts->ca_file[0] && h->ca_file == NULL) ||
      uv_timer_init(loop, &h->timer) != 0) {
    if (h->multi)
      curl_multi_cleanup(h->multi);
    free(h->ca_file);
    free(h->user_agent);
    free(h);
    return NULL;
  }
  h->timer.data = h;
  h->open_handles = 1;
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_callback);
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_callback);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
  return h;
}

static size_t on_body(char *data, size_t size, size_t n, void *ud) {
  request *r = ud;
  size_t len = size * n;
  r->received += len;
  if (r->max_bytes > 0 && r->received > r->max_bytes) {
    r->too_large = true; /* an endless body stops here */
    return 0;
  }
  if (r->fd >= 0) {
    for (size_t done = 0; done < len;) {
      ssize_t w = write(r->fd, data + done, len - done);
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0)
        return 0; /* curl reports the write error */
      done += (size_t)w;
    }
    return len;
  }
  size_t room = r->answer_max - r->answer_len;
  size_t take = len < room ? len : room;
  if (take > 0) {
    char *grown = realloc(r->answer, r->answer_len + take + 1);
    if (grown == NULL)
      return 0; /* curl reports the write error */
    memcpy(grown + r->answer_len, data, take);
    r->answer = grown;
    r->answer_len += take;
    r->answer[r->answer_len] = '\0';
  }
  return len; /* the rest of a long body is read and not kept */
}

/* Keeps the header lines of the final answer (each redirect's answer
 * starts anew with its status line), at most 64 KiB of them. */
static void keep_header(request *r, const char *data, size_t len) {
  if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
    r->answer_headers_len = 0;
    r->received = 0;
  }
  if (r->answer_headers_len + len > 64 * 1024)
    return;
  char *grown = realloc(r->answer_headers, r->answer_headers_len + len + 1);
  if (grown == NULL)
    return;
  memcpy(grown + r->answer_headers_len, data, len);
  r->answer_headers = grown;
  r->answer_headers_len += len;
  r->answer_headers[r->answer_headers_len] = '\0';
}

static size_t on_header(char *data, size_t size, size_t n, void *ud) {
  request *r = ud;
  size_t len = size * n;
  keep_header(r, data, len);
  static const char name[] = "retry-after:";
  if (len > sizeof name - 1 && strncasecmp(data, name, sizeof name - 1) == 0) {
    const char *v = data + sizeof name - 1;
    size_t vlen = len - (sizeof name - 1);
    while (vlen > 0 && (*v == ' ' || *v == '\t'))
      v++, vlen--;
    while (vlen > 0 &&
           (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
      vlen--;
    if (vlen >= sizeof r->retry_after)
      vlen = sizeof r->retry_after - 1;
    memcpy(r->retry_after, v, vlen);
    r->retry_after[vlen] = '\0';
  }
  return len;
}

/* A request with its easy handle and headers, set up the same way for
 * every method; NULL when out of memory. */
static request *new_request(nl_http *h, const char *url,
                            const char *const *headers, nl_http_done done,
                            void *ud) {
  request *r = calloc(1, sizeof *r);
  if (r == NULL)
    return NULL;
  r->done = done;
  r->ud = ud;
  r->fd = -1;
  r->answer_max = NL_HTTP_BODY_MAX;
  r->easy = curl_easy_init();
  if (r->easy == NULL)
    goto nomem;
  for (size_t i = 0; headers && headers[i]; i++) {
    struct curl_slist *next = curl_slist_append(r->headers, headers[i]);
    if (next == NULL)
      goto nomem;
    r->headers = next;
  }
  CURL *e = r->easy;
  curl_easy_setopt(e, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(e, CURLOPT_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS,
                   CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, h->total_timeout_ms);
  curl_easy_setopt(e, CURLOPT_USERAGENT, h->user_agent);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
  if (h->ca_file)
    curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_file);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->error);
  curl_easy_setopt(e, CURLOPT_PRIVATE, r);
  return r;
nomem:
  if (r->easy)
    curl_easy_cleanup(r->easy);
  curl_slist_free_all(r->headers);
  free(r);
  return NULL;
}

static void free_request(request *r) {
  curl_easy_cleanup(r->easy);
  curl_slist_free_all(r->headers);
  free(r->body);
  free(r);
}

/* Hands r to curl's multi handle: it runs on the loop from now on. */
static int start(nl_http *h, request *r) {
  curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
  if (curl_multi_add_handle(h->multi, r->easy) != CURLM_OK) {
    free_request(r);
    return -ENOMEM;
  }
  r->next = h->requests;
  if (h->requests)
    h->requests->prev = r;
  h->requests = r;
  h->in_flight++;
  return 0;
}

int nl_http_post(nl_http *h, const char *url, const char *const *headers,
                 const char *body, size_t len, nl_http_done done, void *ud) {
  if (h->closing)
    return -ECANCELED;
  request *r = new_request(h, url, headers, done, ud);
  if (r == NULL)
    return -ENOMEM;
  /* curl adds "Expect: 100-continue" to larger POSTs, which costs a round
   * trip and which some servers mishandle. */
  struct curl_slist *next = curl_slist_append(r->headers, "Expect:");
  r->body = malloc(len + 1);
  if (next == NULL || r->body == NULL) {
    if (next != NULL)
      r->headers = next;
    free_request(r);
    return -ENOMEM;
  }
  r->headers = next;
  memcpy(r->body, body, len);
  r->body[len] = '\0';
  curl_easy_setopt(r->easy, CURLOPT_POST, 1L);
  curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->body);
  curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  return start(h, r);
}

int nl_http_get(nl_http *h, const char *url, const char *const *headers,
                const nl_http_get_options *opts, nl_http_done done, void *ud) {
  if (h->closing)
    return -ECANCELED;
  request *r = new_request(h, url, headers, done, ud);
  if (r == NULL)
    return -ENOMEM;
  CURL *e = r->easy;
  r->fd = opts->fd;
  r->max_bytes = opts->max_bytes;
  if (opts->max_bytes > 0 && opts->max_bytes < NL_HTTP_GET_BODY_MAX)
    r->answer_max = (size_t)opts->max_bytes;
  else
    r->answer_max = NL_HTTP_GET_BODY_MAX;
  curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  if (opts->max_redirects > 0) {
    /* curl never sends a custom Authorization header to another host, so
     * a token for the API does not follow a redirect to an asset host. */
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, opts->max_redirects);
  }
  if (opts->total_timeout_ms > 0)
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, opts->total_timeout_ms);
  if (opts->low_speed_bytes > 0 && opts->low_speed_seconds > 0) {
    /* A body that trickles (slow retrieval) is cut, not waited for. */
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, opts->low_speed_bytes);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, opts->low_speed_seconds);
  }
  return start(h, r);
}

size_t nl_http_in_flight(const nl_http *h) { return h->in_flight; }

void nl_http_close(nl_http *h) {
  if (h == NULL || h->closing)
    return;
  while (h->requests != NULL)
    finish(h, h->requests, "cancelled");
  h->closing = true;
  /* curl closes its pooled connections in curl_multi_cleanup without a
   * word to the socket callback: every watch stops first (a polled fd must
   * not be closed under libuv), and the callbacks are detached. */
  while (h->watches != NULL)
    unwatch(h, h->watches);
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, NULL);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, NULL);
  curl_multi_cleanup(h->multi);
  h->multi = NULL;
  uv_timer_stop(&h->timer);
  uv_close((uv_handle_t *)&h->timer, timer_closed);
}
