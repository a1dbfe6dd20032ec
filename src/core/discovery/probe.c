#include "probe.h"

#include "core/transfer/frame.h"
#include "core/transfer/tls.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the responder ---- */

#define REQUEST_MAX NL_PROBE_LINE_MAX
#define CONN_TIMEOUT_MS 3000
/* A responder's memory is bounded: past this, new connections are closed
 * at once. Probes are short; this many at a time is far beyond a cluster's
 * worth of peers probing every second or two. */
#define CONN_MAX 256

typedef struct conn conn;

struct nl_probe_server {
  uv_tcp_t listener;
  nl_probe_asker_cb on_asker;
  void *asker_ud;
  nl_probe_framed_cb on_framed;
  void *framed_ud;
  char refusal[256]; /* for framed connections without a handler */
  char *hello;       /* with its newline */
  size_t hello_len;
  conn *conns;
  int conn_count;
  int port;
};

struct conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_write_t write_req;
  nl_probe_server *srv; /* NULL once unlinked */
  char request[REQUEST_MAX];
  size_t request_len;
  char *reply;
  int open_handles;
  bool closing;
  conn *next, *prev;
  /* An introduction, reported once the answer is written. */
  char asker_id[NL_PROBE_ID_MAX + 1];
  int asker_port;
};

static void conn_free_cb(uv_handle_t *handle) {
  conn *c = handle->data;
  if (--c->open_handles == 0) {
    free(c->reply);
    free(c);
  }
}

static void conn_close(conn *c) {
  if (c->closing)
    return;
  c->closing = true;
  if (c->srv != NULL) {
    if (c->prev)
      c->prev->next = c->next;
    else
      c->srv->conns = c->next;
    if (c->next)
      c->next->prev = c->prev;
    c->srv->conn_count--;
    c->srv = NULL;
  }
  uv_close((uv_handle_t *)&c->tcp, conn_free_cb);
  uv_close((uv_handle_t *)&c->timer, conn_free_cb);
}

static void on_conn_timeout(uv_timer_t *timer) { conn_close(timer->data); }

static void on_reply_written(uv_write_t *req, int status) {
  conn *c = req->data;
  if (status == 0 && c->asker_port != 0 && c->srv != NULL &&
      c->srv->on_asker != NULL) {
    struct sockaddr_storage peer;
    int peer_len = sizeof peer;
    char address[64] = "";
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer, &peer_len) == 0) {
      if (peer.ss_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)&peer, address, sizeof address);
      else
        uv_ip4_name((struct sockaddr_in *)&peer, address, sizeof address);
    }
    if (address[0] != '\0')
      c->srv->on_asker(c->srv->asker_ud, address, c->asker_id, c->asker_port);
  }
  conn_close(c);
}

static bool is_hex(char ch) {
  return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
         (ch >= 'A' && ch <= 'F');
}

int nl_probe_parse_request(const char *line, size_t len, char *id, int *port) {
  static const char head[] = "NODELUA 1 PROBE";
  const size_t head_len = sizeof head - 1;
  if (len < head_len || memcmp(line, head, head_len) != 0)
    return -1;
  if (len == head_len)
    return 0;
  /* " <id> <port>": exactly one space before each, nothing after. */
  size_t pos = head_len;
  if (line[pos++] != ' ')
    return -1;
  size_t id_len = 0;
  while (pos < len && is_hex(line[pos]) && id_len < NL_PROBE_ID_MAX) {
    char ch = line[pos++];
    id[id_len++] = (char)(ch >= 'A' && ch <= 'F' ? ch - 'A' + 'a' : ch);
  }
  id[id_len] = '\0';
  if (id_len == 0 || pos >= len || line[pos++] != ' ')
    return -1;
  long value = 0;
  size_t digits = 0;
  while (pos < len && line[pos] >= '0' && line[pos] <= '9' && digits < 5) {
    value = value * 10 + (line[pos++] - '0');
    digits++;
  }
  if (digits == 0 || pos != len || value < 1 || value > 65535 ||
      (digits > 1 && line[pos - digits] == '0'))
    return -1;
  *port = (int)value;
  return 1;
}

static void reply(conn *c, const char *text, size_t len) {
  uv_read_stop((uv_stream_t *)&c->tcp);
  c->reply = malloc(len);
  if (c->reply == NULL) {
    conn_close(c);
    return;
  }
  memcpy(c->reply, text, len);
  uv_buf_t buf = uv_buf_init(c->reply, (unsigned)len);
  c->write_req.data = c;
  if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1,
               on_reply_written) != 0)
    conn_close(c);
}

/* A framed connection: to its handler, or refused with an ERROR frame. */
static void hand_over(conn *c) {
  nl_probe_server *srv = c->srv;
  uv_os_fd_t fd;
  int copy = -1;
  if (srv->on_framed != NULL && uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
    copy = dup(fd);
  if (copy < 0) {
    uint8_t f[NL_FRAME_HEADER_SIZE + 4 + sizeof srv->refusal];
    nl_writer w;
    nl_writer_begin(&w, f, sizeof f, NL_FRAME_ERROR);
    nl_write_u16(&w, 1);
    nl_write_string(&w, srv->refusal, strlen(srv->refusal));
    long n = nl_writer_finish(&w);
    if (n > 0)
      reply(c, (const char *)f, (size_t)n);
    else
      conn_close(c);
    return;
  }
  /* The duplicate shares the socket's flags: blocking from now on, for the
   * handler's thread; libuv's descriptor is closed with the handle. */
  fcntl(copy, F_SETFD, FD_CLOEXEC);
  int flags = fcntl(copy, F_GETFL);
  if (flags >= 0)
    fcntl(copy, F_SETFL, flags & ~O_NONBLOCK);
  uint8_t read[REQUEST_MAX];
  size_t len = c->request_len;
  memcpy(read, c->request, len);
  uv_read_stop((uv_stream_t *)&c->tcp);
  conn_close(c);
  srv->on_framed(srv->framed_ud, copy, read, len);
}

static void conn_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  conn *c = handle->data;
  buf->base = c->request + c->request_len;
  buf->len = REQUEST_MAX - c->request_len;
}

static void on_conn_read(uv_stream_t *stream, ssize_t nread,
                         const uv_buf_t *buf) {
  (void)buf;
  conn *c = stream->data;
  if (nread < 0) {
    conn_close(c);
    return;
  }
  c->request_len += (size_t)nread;
  /* Framed ("NL") and encrypted (a TLS handshake record) connections go to
   * the file receiver, which reads on from these bytes. */
  bool framed =
      c->request_len >= 2 && c->request[0] == 'N' && c->request[1] == 'L';
  bool tls = (uint8_t)c->request[0] == NL_TLS_RECORD_HANDSHAKE;
  if ((framed || tls) && c->srv != NULL) {
    hand_over(c);
    return;
  }
  const char *newline = memchr(c->request, '\n', c->request_len);
  if (newline == NULL) {
    if (c->request_len == REQUEST_MAX) {
      static const char too_long[] = "NODELUA ERR request line too long\n";
      reply(c, too_long, sizeof too_long - 1);
    }
    return;
  }
  size_t line_len = (size_t)(newline - c->request);
  int kind =
      nl_probe_parse_request(c->request, line_len, c->asker_id, &c->asker_port);
  if (kind < 0) {
    c->asker_port = 0;
    static const char unknown[] = "NODELUA ERR unknown request\n";
    reply(c, unknown, sizeof unknown - 1);
  } else if (c->srv == NULL || c->srv->hello == NULL) {
    c->asker_port = 0; /* not ready to be anybody's peer */
    static const char starting[] = "NODELUA ERR starting\n";
    reply(c, starting, sizeof starting - 1);
  } else {
    if (kind == 0)
      c->asker_port = 0;
    reply(c, c->srv->hello, c->srv->hello_len);
  }
}

static void on_connection(uv_stream_t *listener, int status) {
  nl_probe_server *srv = listener->data;
  if (status < 0)
    return;
  conn *c = calloc(1, sizeof *c);
  if (c == NULL)
    return;
  uv_tcp_init(listener->loop, &c->tcp);
  uv_timer_init(listener->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->open_handles = 2;
  c->srv = srv;
  c->next = srv->conns;
  if (srv->conns)
    srv->conns->prev = c;
  srv->conns = c;
  srv->conn_count++;
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 ||
      srv->conn_count > CONN_MAX) {
    conn_close(c);
    return;
  }
  uv_timer_start(&c->timer, on_conn_timeout, CONN_TIMEOUT_MS, 0);
  uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, on_conn_read);
}

static void server_free_cb(uv_handle_t *handle) {
  nl_probe_server *srv = handle->data;
  free(srv->hello);
  free(srv);
}

static int bind_listen(nl_probe_server *srv, const struct sockaddr *addr) {
  int rc = uv_tcp_bind(&srv->listener, addr, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&srv->listener, 128, on_connection);
  return rc;
}

int nl_probe_server_start(uv_loop_t *loop, const char *host, int port,
                          nl_probe_server **out, char *err, size_t errlen) {
  *out = NULL;
  nl_probe_server *srv = calloc(1, sizeof *srv);
  if (srv == NULL) {
    snprintf(err, errlen, "out of memory");
    return UV_ENOMEM;
  }
  uv_tcp_init(loop, &srv->listener);
  srv->listener.data = srv;
  snprintf(srv->refusal, sizeof srv->refusal,
           "file transfer is off on this node");
  struct sockaddr_storage ss;
  int rc;
  if (host == NULL || host[0] == '\0') {
    /* "::" takes IPv4 too where the OS allows dual stack (Linux, macOS);
     * a host without IPv6 gets 0.0.0.0. */
    uv_ip6_addr("::", port, (struct sockaddr_in6 *)&ss);
    rc = bind_listen(srv, (struct sockaddr *)&ss);
    if (rc == UV_EAFNOSUPPORT || rc == UV_EADDRNOTAVAIL) {
      uv_close((uv_handle_t *)&srv->listener, NULL);
      uv_tcp_init(loop, &srv->listener);
      uv_ip4_addr("0.0.0.0", port, (struct sockaddr_in *)&ss);
      rc = bind_listen(srv, (struct sockaddr *)&ss);
    }
  } else if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) == 0 ||
             uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) == 0) {
    rc = bind_listen(srv, (struct sockaddr *)&ss);
  } else {
    rc = UV_EINVAL;
  }
  if (rc != 0) {
    snprintf(err, errlen, "listening on port %d: %s", port, uv_strerror(rc));
    uv_close((uv_handle_t *)&srv->listener, server_free_cb);
    return rc;
  }
  struct sockaddr_storage bound;
  int bound_len = sizeof bound;
  if (uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&bound,
                         &bound_len) == 0)
    srv->port = ntohs(bound.ss_family == AF_INET6
                          ? ((struct sockaddr_in6 *)&bound)->sin6_port
                          : ((struct sockaddr_in *)&bound)->sin_port);
  *out = srv;
  return 0;
}

int nl_probe_server_port(const nl_probe_server *srv) { return srv->port; }

void nl_probe_server_on_framed(nl_probe_server *srv, nl_probe_framed_cb cb,
                               void *ud, const char *refusal) {
  srv->on_framed = cb;
  srv->framed_ud = ud;
  snprintf(srv->refusal, sizeof srv->refusal, "%s",
           refusal ? refusal : "file transfer is off on this node");
}

void nl_probe_server_on_asker(nl_probe_server *srv, nl_probe_asker_cb cb,
                              void *ud) {
  srv->on_asker = cb;
  srv->asker_ud = ud;
}

int nl_probe_server_set_hello(nl_probe_server *srv, const char *text,
                              size_t len) {
  if (len >= NL_PROBE_REPLY_MAX)
    return UV_E2BIG;
  char *copy = malloc(len + 1);
  if (copy == NULL)
    return UV_ENOMEM;
  memcpy(copy, text, len);
  copy[len] = '\n';
  free(srv->hello);
  srv->hello = copy;
  srv->hello_len = len + 1;
  return 0;
}

void nl_probe_server_close(nl_probe_server *srv) {
  if (srv == NULL)
    return;
  while (srv->conns != NULL)
    conn_close(srv->conns);
  uv_close((uv_handle_t *)&srv->listener, server_free_cb);
}

/* ---- the prober ---- */

struct nl_probe {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_connect_t connect_req;
  uv_write_t write_req;
  nl_probe_cb cb;
  void *ud;
  char *buf;
  size_t len, cap;
  uint64_t started_ms;
  char local[64];
  char request[NL_PROBE_LINE_MAX];
  int open_handles;
  bool done;
};

static void probe_free_cb(uv_handle_t *handle) {
  nl_probe *p = handle->data;
  if (--p->open_handles == 0) {
    free(p->buf);
    free(p);
  }
}

static void finish(nl_probe *p, int status) {
  if (p->done)
    return;
  p->done = true;
  nl_probe_cb cb = p->cb;
  p->cb = NULL;
  if (cb != NULL) {
    nl_probe_result r = {.status = status, .local_address = p->local};
    if (status == 0) {
      char *newline = memchr(p->buf, '\n', p->len);
      r.reply = p->buf;
      r.reply_len = newline != NULL ? (size_t)(newline - p->buf) : p->len;
      if (r.reply_len >= 11 && memcmp(p->buf, "NODELUA ERR", 11) == 0)
        r.status = UV_EPROTO;
    }
    r.rtt_ms = (double)(uv_now(p->tcp.loop) - p->started_ms);
    cb(p->ud, &r);
  }
  uv_close((uv_handle_t *)&p->tcp, probe_free_cb);
  uv_close((uv_handle_t *)&p->timer, probe_free_cb);
}

static void on_probe_timeout(uv_timer_t *timer) {
  finish(timer->data, UV_ETIMEDOUT);
}

static void probe_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  nl_probe *p = handle->data;
  if (p->cap - p->len < 4096 && p->cap < NL_PROBE_REPLY_MAX) {
    size_t cap = p->cap == 0 ? 4096 : p->cap * 2;
    if (cap > NL_PROBE_REPLY_MAX)
      cap = NL_PROBE_REPLY_MAX;
    char *grown = realloc(p->buf, cap);
    if (grown != NULL) {
      p->buf = grown;
      p->cap = cap;
    }
  }
  buf->base = p->buf != NULL ? p->buf + p->len : NULL;
  buf->len = p->cap - p->len;
}

static void on_probe_read(uv_stream_t *stream, ssize_t nread,
                          const uv_buf_t *buf) {
  (void)buf;
  nl_probe *p = stream->data;
  if (p->done)
    return;
  if (nread == UV_EOF) {
    finish(p, p->len > 0 ? 0 : UV_EPROTO);
  } else if (nread < 0) {
    finish(p, (int)nread);
  } else {
    p->len += (size_t)nread;
    if (p->len == NL_PROBE_REPLY_MAX)
      finish(p, UV_E2BIG);
    else if (nread == 0 && p->cap == p->len)
      finish(p, UV_ENOMEM);
  }
}

static void on_probe_written(uv_write_t *req, int status) {
  nl_probe *p = req->data;
  if (status != 0)
    finish(p, status);
}

static void on_probe_connect(uv_connect_t *req, int status) {
  nl_probe *p = req->data;
  if (p->done)
    return;
  if (status != 0) {
    finish(p, status);
    return;
  }
  struct sockaddr_storage local;
  int local_len = sizeof local;
  if (uv_tcp_getsockname(&p->tcp, (struct sockaddr *)&local, &local_len) == 0) {
    if (local.ss_family == AF_INET6)
      uv_ip6_name((struct sockaddr_in6 *)&local, p->local, sizeof p->local);
    else
      uv_ip4_name((struct sockaddr_in *)&local, p->local, sizeof p->local);
  }
  uv_buf_t buf = uv_buf_init(p->request, (unsigned)strlen(p->request));
  p->write_req.data = p;
  int rc = uv_write(&p->write_req, (uv_stream_t *)&p->tcp, &buf, 1,
                    on_probe_written);
  if (rc == 0)
    rc = uv_read_start((uv_stream_t *)&p->tcp, probe_alloc, on_probe_read);
  if (rc != 0)
    finish(p, rc);
}

int nl_probe_start(uv_loop_t *loop, const char *address, int port,
                   unsigned timeout_ms, const char *self_id, int self_port,
                   nl_probe_cb cb, void *ud, nl_probe **out) {
  *out = NULL;
  struct sockaddr_storage ss;
  if (port < 1 || port > 65535)
    return UV_EINVAL;
  char request[NL_PROBE_LINE_MAX];
  if (self_id == NULL) {
    snprintf(request, sizeof request, "%s", NL_PROBE_REQUEST);
  } else {
    int n = snprintf(request, sizeof request, "NODELUA 1 PROBE %s %d\n",
                     self_id, self_port);
    char id[NL_PROBE_ID_MAX + 1];
    int parsed_port;
    if (n < 0 || (size_t)n >= sizeof request ||
        nl_probe_parse_request(request, (size_t)n - 1, id, &parsed_port) != 1)
      return UV_EINVAL;
  }
  if (uv_ip4_addr(address, port, (struct sockaddr_in *)&ss) != 0 &&
      uv_ip6_addr(address, port, (struct sockaddr_in6 *)&ss) != 0)
    return UV_EINVAL;
  /* uv_ip6_addr takes any string with a colon; make sure it was one. */
  if (ss.ss_family == AF_INET6 && strchr(address, ':') == NULL)
    return UV_EINVAL;
  nl_probe *p = calloc(1, sizeof *p);
  if (p == NULL)
    return UV_ENOMEM;
  p->cb = cb;
  p->ud = ud;
  memcpy(p->request, request, sizeof request);
  uv_tcp_init(loop, &p->tcp);
  uv_timer_init(loop, &p->timer);
  p->tcp.data = p->timer.data = p->connect_req.data = p;
  p->open_handles = 2;
  p->started_ms = uv_now(loop);
  int rc = uv_tcp_connect(&p->connect_req, &p->tcp, (struct sockaddr *)&ss,
                          on_probe_connect);
  if (rc != 0) {
    p->cb = NULL;
    finish(p, rc);
    return rc;
  }
  uv_timer_start(&p->timer, on_probe_timeout, timeout_ms, 0);
  *out = p;
  return 0;
}

void nl_probe_cancel(nl_probe *probe) {
  if (probe == NULL)
    return;
  probe->cb = NULL;
  finish(probe, UV_ECANCELED);
}
