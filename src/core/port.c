#include "port.h"

#include "core/transfer/frame.h"
#include "core/transfer/tls.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct nl_port {
  uv_tcp_t listener;
  nl_port_line_cb on_line;
  void *line_ud;
  nl_port_framed_cb on_framed;
  void *framed_ud;
  char refusal[256]; /* for framed connections without a handler */
  nl_port_conn *conns;
  int conn_count;
  int number;
};

struct nl_port_conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_write_t write_req;
  nl_port *port; /* NULL once unlinked */
  char request[NL_PORT_LINE_MAX];
  size_t request_len;
  char *reply;
  nl_port_sent_cb sent_cb;
  void *sent_ud;
  int open_handles;
  bool closing;
  bool answered;
  nl_port_conn *next, *prev;
};

static void conn_free_cb(uv_handle_t *handle) {
  nl_port_conn *c = handle->data;
  if (--c->open_handles == 0) {
    free(c->reply);
    free(c);
  }
}

static void conn_close(nl_port_conn *c) {
  if (c->closing)
    return;
  c->closing = true;
  if (c->port != NULL) {
    if (c->prev)
      c->prev->next = c->next;
    else
      c->port->conns = c->next;
    if (c->next)
      c->next->prev = c->prev;
    c->port->conn_count--;
    c->port = NULL;
  }
  uv_close((uv_handle_t *)&c->tcp, conn_free_cb);
  uv_close((uv_handle_t *)&c->timer, conn_free_cb);
}

static void on_conn_timeout(uv_timer_t *timer) { conn_close(timer->data); }

/* Tells the reply's callback how it went, once. */
static void report_sent(nl_port_conn *c, int sent) {
  nl_port_sent_cb cb = c->sent_cb;
  c->sent_cb = NULL;
  if (cb == NULL)
    return;
  char address[64] = "";
  if (sent) {
    struct sockaddr_storage peer;
    int peer_len = sizeof peer;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer, &peer_len) == 0) {
      if (peer.ss_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)&peer, address, sizeof address);
      else
        uv_ip4_name((struct sockaddr_in *)&peer, address, sizeof address);
    }
    sent = address[0] != '\0';
  }
  cb(c->sent_ud, sent, address);
}

static void on_reply_written(uv_write_t *req, int status) {
  nl_port_conn *c = req->data;
  /* A connection already closed (the port is closing, or its deadline
   * passed) reports nothing sent: its port's handlers may be gone. */
  report_sent(c, status == 0 && c->port != NULL);
  conn_close(c);
}

void nl_port_reply(nl_port_conn *c, const char *text, size_t len,
                   nl_port_sent_cb cb, void *ud) {
  c->answered = true;
  c->sent_cb = cb;
  c->sent_ud = ud;
  uv_read_stop((uv_stream_t *)&c->tcp);
  c->reply = malloc(len);
  if (c->reply == NULL) {
    report_sent(c, 0);
    conn_close(c);
    return;
  }
  memcpy(c->reply, text, len);
  uv_buf_t buf = uv_buf_init(c->reply, (unsigned)len);
  c->write_req.data = c;
  if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1,
               on_reply_written) != 0) {
    report_sent(c, 0);
    conn_close(c);
  }
}

static void reply_text(nl_port_conn *c, const char *text) {
  nl_port_reply(c, text, strlen(text), NULL, NULL);
}

/* A framed connection: to its handler, or refused with an ERROR frame. */
static void hand_over(nl_port_conn *c) {
  nl_port *port = c->port;
  uv_os_fd_t fd;
  int copy = -1;
  if (port->on_framed != NULL && uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
    copy = dup(fd);
  if (copy < 0) {
    uint8_t f[NL_FRAME_HEADER_SIZE + 4 + sizeof port->refusal];
    nl_writer w;
    nl_writer_begin(&w, f, sizeof f, NL_FRAME_ERROR);
    nl_write_u16(&w, 1);
    nl_write_string(&w, port->refusal, strlen(port->refusal));
    long n = nl_writer_finish(&w);
    if (n > 0)
      nl_port_reply(c, (const char *)f, (size_t)n, NULL, NULL);
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
  uint8_t read[NL_PORT_LINE_MAX];
  size_t len = c->request_len;
  memcpy(read, c->request, len);
  uv_read_stop((uv_stream_t *)&c->tcp);
  conn_close(c);
  port->on_framed(port->framed_ud, copy, read, len);
}

static void conn_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  nl_port_conn *c = handle->data;
  buf->base = c->request + c->request_len;
  buf->len = NL_PORT_LINE_MAX - c->request_len;
}

static void on_conn_read(uv_stream_t *stream, ssize_t nread,
                         const uv_buf_t *buf) {
  (void)buf;
  nl_port_conn *c = stream->data;
  if (nread < 0) {
    conn_close(c);
    return;
  }
  if (c->answered || c->port == NULL)
    return;
  c->request_len += (size_t)nread;
  /* Framed ("NL") and encrypted (a TLS handshake record) connections go to
   * the file receiver, which reads on from these bytes. */
  bool framed =
      c->request_len >= 2 && c->request[0] == 'N' && c->request[1] == 'L';
  bool tls = (uint8_t)c->request[0] == NL_TLS_RECORD_HANDSHAKE;
  if (framed || tls) {
    hand_over(c);
    return;
  }
  const char *newline = memchr(c->request, '\n', c->request_len);
  if (newline == NULL) {
    if (c->request_len == NL_PORT_LINE_MAX)
      reply_text(c, "NODELUA ERR request line too long\n");
    return;
  }
  if (c->port->on_line == NULL) {
    reply_text(c, "NODELUA ERR starting\n"); /* not ready */
    return;
  }
  c->port->on_line(c->port->line_ud, c, c->request,
                   (size_t)(newline - c->request));
  if (!c->answered) /* a handler that did not answer: never left open */
    conn_close(c);
}

static void on_connection(uv_stream_t *listener, int status) {
  nl_port *port = listener->data;
  if (status < 0)
    return;
  nl_port_conn *c = calloc(1, sizeof *c);
  if (c == NULL)
    return;
  uv_tcp_init(listener->loop, &c->tcp);
  uv_timer_init(listener->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->open_handles = 2;
  c->port = port;
  c->next = port->conns;
  if (port->conns)
    port->conns->prev = c;
  port->conns = c;
  port->conn_count++;
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 ||
      port->conn_count > NL_PORT_CONN_MAX) {
    conn_close(c);
    return;
  }
  /* The deadline counts from the accept (see bind/timer.c). */
  uv_update_time(listener->loop);
  uv_timer_start(&c->timer, on_conn_timeout, NL_PORT_DEADLINE_MS, 0);
  uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, on_conn_read);
}

static void port_free_cb(uv_handle_t *handle) { free(handle->data); }

static int bind_listen(nl_port *port, const struct sockaddr *addr) {
  int rc = uv_tcp_bind(&port->listener, addr, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&port->listener, 128, on_connection);
  return rc;
}

int nl_port_start(uv_loop_t *loop, const char *host, int number, nl_port **out,
                  char *err, size_t errlen) {
  *out = NULL;
  nl_port *port = calloc(1, sizeof *port);
  if (port == NULL) {
    snprintf(err, errlen, "out of memory");
    return UV_ENOMEM;
  }
  uv_tcp_init(loop, &port->listener);
  port->listener.data = port;
  snprintf(port->refusal, sizeof port->refusal,
           "file transfer is off on this node");
  struct sockaddr_storage ss;
  int rc;
  if (host == NULL || host[0] == '\0') {
    /* "::" takes IPv4 too where the OS allows dual stack (Linux, macOS);
     * a host without IPv6 gets 0.0.0.0. */
    uv_ip6_addr("::", number, (struct sockaddr_in6 *)&ss);
    rc = bind_listen(port, (struct sockaddr *)&ss);
    if (rc == UV_EAFNOSUPPORT || rc == UV_EADDRNOTAVAIL) {
      uv_close((uv_handle_t *)&port->listener, NULL);
      uv_tcp_init(loop, &port->listener);
      uv_ip4_addr("0.0.0.0", number, (struct sockaddr_in *)&ss);
      rc = bind_listen(port, (struct sockaddr *)&ss);
    }
  } else if (uv_ip4_addr(host, number, (struct sockaddr_in *)&ss) == 0 ||
             uv_ip6_addr(host, number, (struct sockaddr_in6 *)&ss) == 0) {
    rc = bind_listen(port, (struct sockaddr *)&ss);
  } else {
    rc = UV_EINVAL;
  }
  if (rc != 0) {
    snprintf(err, errlen, "listening on port %d: %s", number, uv_strerror(rc));
    uv_close((uv_handle_t *)&port->listener, port_free_cb);
    return rc;
  }
  struct sockaddr_storage bound;
  int bound_len = sizeof bound;
  if (uv_tcp_getsockname(&port->listener, (struct sockaddr *)&bound,
                         &bound_len) == 0)
    port->number = ntohs(bound.ss_family == AF_INET6
                             ? ((struct sockaddr_in6 *)&bound)->sin6_port
                             : ((struct sockaddr_in *)&bound)->sin_port);
  *out = port;
  return 0;
}

int nl_port_number(const nl_port *port) { return port->number; }

void nl_port_on_line(nl_port *port, nl_port_line_cb cb, void *ud) {
  port->on_line = cb;
  port->line_ud = ud;
}

void nl_port_on_framed(nl_port *port, nl_port_framed_cb cb, void *ud,
                       const char *refusal) {
  port->on_framed = cb;
  port->framed_ud = ud;
  snprintf(port->refusal, sizeof port->refusal, "%s",
           refusal ? refusal : "file transfer is off on this node");
}

void nl_port_close(nl_port *port) {
  if (port == NULL)
    return;
  while (port->conns != NULL)
    conn_close(port->conns);
  uv_close((uv_handle_t *)&port->listener, port_free_cb);
}
