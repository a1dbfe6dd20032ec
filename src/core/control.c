#ifdef __linux__
#define _GNU_SOURCE /* struct ucred */
#endif
#include "control.h"

#include "log.h"
#include "portable.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

typedef struct ctl_conn ctl_conn;

struct nl_control {
  uv_pipe_t pipe;
  char *path;
  nl_control_handler handler;
  void *ud;
  ctl_conn *conns;
};

struct ctl_conn {
  uv_pipe_t pipe;
  nl_control *ctl; /* NULL once unlinked */
  char line[NL_CONTROL_LINE_MAX];
  size_t len;
  bool closing;
  ctl_conn *next, *prev;
};

typedef struct {
  uv_write_t req;
  char header[32];
  char *body;
} ctl_write;

static void conn_freed(uv_handle_t *handle) { free(handle->data); }

static void conn_close(ctl_conn *c) {
  if (c->closing)
    return;
  c->closing = true;
  if (c->ctl != NULL) {
    if (c->prev)
      c->prev->next = c->next;
    else
      c->ctl->conns = c->next;
    if (c->next)
      c->next->prev = c->prev;
    c->ctl = NULL;
  }
  uv_close((uv_handle_t *)&c->pipe, conn_freed);
}

static void on_written(uv_write_t *req, int status) {
  ctl_write *w = (ctl_write *)req;
  free(w->body);
  free(w);
  (void)status; /* a client that went away is noticed by the read side */
}

static void send_reply(ctl_conn *c, bool ok, char *body, size_t len) {
  ctl_write *w = malloc(sizeof *w);
  if (w == NULL) {
    free(body);
    conn_close(c);
    return;
  }
  w->body = body;
  int n =
      snprintf(w->header, sizeof w->header, "%s %zu\n", ok ? "OK" : "ERR", len);
  uv_buf_t bufs[2] = {uv_buf_init(w->header, (unsigned)n),
                      uv_buf_init(body, (unsigned)len)};
  if (uv_write(&w->req, (uv_stream_t *)&c->pipe, bufs, len > 0 ? 2 : 1,
               on_written) != 0) {
    free(body);
    free(w);
    conn_close(c);
  }
}

static void conn_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  ctl_conn *c = handle->data;
  buf->base = c->line + c->len;
  buf->len = sizeof c->line - c->len;
}

static void on_conn_read(uv_stream_t *stream, ssize_t nread,
                         const uv_buf_t *buf) {
  (void)buf;
  ctl_conn *c = stream->data;
  if (nread < 0) {
    conn_close(c);
    return;
  }
  c->len += (size_t)nread;
  char *newline;
  while (!c->closing && c->ctl != NULL &&
         (newline = memchr(c->line, '\n', c->len)) != NULL) {
    size_t line_len = (size_t)(newline - c->line);
    char *reply = NULL;
    size_t reply_len = 0;
    bool ok =
        c->ctl->handler(c->ctl->ud, c->line, line_len, &reply, &reply_len);
    if (reply_len > NL_CONTROL_REPLY_MAX) {
      free(reply);
      reply = strdup("the answer is over 16 MiB");
      reply_len = reply ? strlen(reply) : 0;
      ok = false;
    }
    send_reply(c, ok, reply, reply_len);
    c->len -= line_len + 1;
    memmove(c->line, newline + 1, c->len);
  }
  if (!c->closing && c->len == sizeof c->line) {
    char *msg = strdup("command line too long");
    send_reply(c, false, msg, msg ? strlen(msg) : 0);
    conn_close(c);
  }
}

int nl_control_peer_uid(int fd, uid_t *uid) {
#if defined(SO_PEERCRED)
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
    return -1;
  *uid = cred.uid;
  return 0;
#else
  gid_t gid;
  return getpeereid(fd, uid, &gid);
#endif
}

/* Only the agent's own user and root may ask it anything: the socket's
 * mode says so too, but a mode is one chmod away, and the kernel's word
 * on who connected is not. */
static bool peer_allowed(uv_pipe_t *pipe) {
  uv_os_fd_t fd;
  uid_t uid;
  if (uv_fileno((uv_handle_t *)pipe, &fd) != 0 ||
      nl_control_peer_uid(fd, &uid) != 0)
    return false;
  if (uid == geteuid() || uid == 0)
    return true;
  nl_log_warn("control",
              "refused a connection from uid %u to the control "
              "socket: only this agent's user and root may use it",
              (unsigned)uid);
  return false;
}

static void on_connection(uv_stream_t *server, int status) {
  nl_control *ctl = server->data;
  if (status < 0)
    return;
  ctl_conn *c = calloc(1, sizeof *c);
  if (c == NULL)
    return;
  uv_pipe_init(server->loop, &c->pipe, 0);
  c->pipe.data = c;
  c->ctl = ctl;
  c->next = ctl->conns;
  if (ctl->conns)
    ctl->conns->prev = c;
  ctl->conns = c;
  if (uv_accept(server, (uv_stream_t *)&c->pipe) != 0 ||
      !peer_allowed(&c->pipe) ||
      uv_read_start((uv_stream_t *)&c->pipe, conn_alloc, on_conn_read) != 0)
    conn_close(c);
}

int nl_control_connect(const char *path, char *err, size_t errlen) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) {
    snprintf(err, errlen, "%s: the path is over %zu bytes", path,
             sizeof sa.sun_path - 1);
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(sa.sun_path, path, strlen(path) + 1);
  int fd = nl_socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) {
    snprintf(err, errlen, "socket: %s", strerror(errno));
    return -1;
  }
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    int e = errno;
    snprintf(err, errlen, "%s: %s", path, strerror(e));
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

static void control_freed(uv_handle_t *handle) {
  nl_control *ctl = handle->data;
  free(ctl->path);
  free(ctl);
}

int nl_control_start(uv_loop_t *loop, const char *path,
                     nl_control_handler handler, void *ud, nl_control **out,
                     char *err, size_t errlen) {
  *out = NULL;
  char probe_err[256];
  int fd = nl_control_connect(path, probe_err, sizeof probe_err);
  if (fd >= 0) {
    close(fd);
    snprintf(err, errlen,
             "another agent is running with this state directory: its "
             "control socket %s answers",
             path);
    return -EADDRINUSE;
  }
  if (errno == ENAMETOOLONG) {
    snprintf(err, errlen, "%s", probe_err);
    return -ENAMETOOLONG;
  }
  if (errno == ECONNREFUSED)
    unlink(path); /* left by an agent that is gone */
  nl_control *ctl = calloc(1, sizeof *ctl);
  char *copy = strdup(path);
  if (ctl == NULL || copy == NULL) {
    free(ctl);
    free(copy);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  ctl->path = copy;
  ctl->handler = handler;
  ctl->ud = ud;
  uv_pipe_init(loop, &ctl->pipe, 0);
  ctl->pipe.data = ctl;
  /* Made 0600 from the start (umask 077): no moment in which another
   * user could connect before the chmod. */
  mode_t mask = umask(077);
  int rc = uv_pipe_bind(&ctl->pipe, path);
  umask(mask);
  if (rc == 0 && chmod(path, 0600) != 0)
    rc = -errno;
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&ctl->pipe, 16, on_connection);
  if (rc != 0) {
    snprintf(err, errlen, "control socket %s: %s", path, uv_strerror(rc));
    uv_close((uv_handle_t *)&ctl->pipe, control_freed);
    return rc;
  }
  *out = ctl;
  return 0;
}

void nl_control_stop(nl_control *ctl) {
  if (ctl == NULL)
    return;
  while (ctl->conns != NULL)
    conn_close(ctl->conns);
  unlink(ctl->path);
  uv_close((uv_handle_t *)&ctl->pipe, control_freed);
}

/* Writes to the agent's socket: an agent that went away is an error to
 * return (EPIPE), not a SIGPIPE that ends the client without a word. */
static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int nl_control_ask(int fd, const char *line, char **reply, size_t *reply_len,
                   char *err, size_t errlen) {
  *reply = NULL;
  *reply_len = 0;
  size_t n = strlen(line);
  if (n >= NL_CONTROL_LINE_MAX || memchr(line, '\n', n) != NULL) {
    snprintf(err, errlen, "a command is one line of under %d bytes",
             NL_CONTROL_LINE_MAX);
    return -1;
  }
  if (write_all(fd, line, n) != 0 || write_all(fd, "\n", 1) != 0) {
    snprintf(err, errlen, "the agent closed the connection");
    return -1;
  }
  /* The header, byte by byte: it is short, and nothing past it is ours. */
  char header[32];
  size_t h = 0;
  for (;;) {
    ssize_t r = read(fd, header + h, 1);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0 || h == sizeof header - 1) {
      snprintf(err, errlen, "the agent closed the connection");
      return -1;
    }
    if (header[h] == '\n')
      break;
    h++;
  }
  header[h] = '\0';
  char status[4];
  unsigned long long len;
  if (sscanf(header, "%3s %llu", status, &len) != 2 ||
      len > NL_CONTROL_REPLY_MAX ||
      (strcmp(status, "OK") != 0 && strcmp(status, "ERR") != 0)) {
    snprintf(err, errlen, "the agent's answer is malformed");
    return -1;
  }
  char *body = malloc((size_t)len + 1);
  if (body == NULL) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  size_t got = 0;
  while (got < len) {
    ssize_t r = read(fd, body + got, (size_t)len - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      free(body);
      snprintf(err, errlen, "the agent closed the connection mid-answer");
      return -1;
    }
    got += (size_t)r;
  }
  body[len] = '\0';
  *reply = body;
  *reply_len = (size_t)len;
  return strcmp(status, "OK") == 0 ? 1 : 0;
}
