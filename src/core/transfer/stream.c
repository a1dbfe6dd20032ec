/* The sender's data streams (see sender.h): each connects, proves the
 * cluster key and JOINs the transfer, then takes chunks from the shared
 * queue as the hashing releases them and sends them in DATA frames; a
 * stream that fails hands every chunk it sent and the receiver has not
 * verified back to the queue for the others. */
#include "sender.h"

static int connect_to(const char *host, int port, int timeout, char *err,
                      size_t errlen) {
  char service[8];
  snprintf(service, sizeof service, "%d", port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  struct addrinfo *res = NULL;
  int rc = getaddrinfo(host, service, &hints, &res);
  if (rc != 0) {
    snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
    return -1;
  }
  int fd = -1, e = 0;
  for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
    fd = nl_socket(ai->ai_family, ai->ai_socktype, 0);
    if (fd < 0)
      continue;
    nl_tx_set_timeouts(fd, timeout);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      e = errno;
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0)
    snprintf(err, errlen, "cannot connect to %s port %d: %s", host, port,
             strerror(e ? e : ECONNREFUSED));
  return fd;
}

/* Connects c to host:port, with TLS over it in the encrypted mode. */
int nl_send_open_conn(conn *c, const char *host, int port,
                      const nl_transfer_config *cfg, char *err, size_t errlen) {
  *c = (conn){.fd = connect_to(host, port, cfg->timeout_seconds, err, errlen)};
  if (c->fd < 0 || !cfg->encrypt)
    return c->fd < 0 ? -1 : 0;
  char why[200];
  c->tls = nl_tls_client(c->fd, cfg->key, cfg->key_len, why, sizeof why);
  if (c->tls == NULL && strncmp(why, "the receiver refused", 20) == 0) {
    snprintf(err, errlen, "%s", why); /* it said why, in clear */
    return -1;
  }
  if (c->tls == NULL) {
    snprintf(err, errlen,
             "the encrypted handshake with %s port %d failed: it does not "
             "hold this cluster's key (NODELUA_CLUSTER_KEY differs), or does "
             "not take encrypted transfers (%s)",
             host, port, why);
    return -1;
  }
  return 0;
}

void nl_send_close_conn(conn *c) {
  nl_tls_free(c->tls);
  if (c->fd >= 0)
    close(c->fd);
  *c = (conn){.fd = -1};
}

void nl_send_queue_push(sender *s, uint32_t chunk) {
  if (s->in_queue[chunk] || s->queued >= s->chunk_count)
    return;
  s->in_queue[chunk] = 1;
  s->queue[(s->head + s->queued) % s->chunk_count] = chunk;
  s->queued++;
}

uint32_t nl_send_queue_pop(sender *s) {
  uint32_t chunk = s->queue[s->head];
  s->head = (s->head + 1) % s->chunk_count;
  s->queued--;
  s->in_queue[chunk] = 0;
  if (!s->first_data) {
    s->first_data = true;
    s->result->hashed_at_first_data = s->hashed_count;
  }
  return chunk;
}

/* Sends a DATA frame: its head (header, chunk and offset), built in buf,
 * then n bytes of the file at offset. On plain Linux connections the
 * file's bytes go from the page cache to the socket with sendfile, never
 * through this process; otherwise (TLS, or not Linux) they are read into
 * buf after the head. Returns 0, -1 (the connection failed) or -2 (the
 * file could not be read, errno set, or 0 for a file that got shorter). */
static int send_piece(conn *c, uint8_t *buf, size_t head, int file_fd,
                      off_t offset, size_t n) {
  size_t from = 0; /* of buf, what is still to go */
#ifdef __linux__
  if (c->tls == NULL && !c->no_sendfile) {
    if (nl_tx_send_all(c->fd, buf, head, MSG_MORE) != 0)
      return -1;
    from = head;
    size_t sent = 0;
    while (sent < n) {
      ssize_t w = sendfile(c->fd, file_fd, &offset, n - sent);
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0 && (errno == EINVAL || errno == ENOSYS) && sent == 0) {
        c->no_sendfile = true; /* this filesystem: read and write, below */
        break;
      }
      if (w < 0 && errno != EIO)
        return -1; /* the socket */
      if (w <= 0) {
        if (w == 0)
          errno = 0;
        return -2;
      }
      sent += (size_t)w;
    }
    if (sent == n)
      return 0;
  }
#endif
  ssize_t got = pread(file_fd, buf + head, n, offset);
  if (got != (ssize_t)n) {
    if (got >= 0)
      errno = 0;
    return -2;
  }
  return nl_tx_conn_write(c, buf + from, head + n - from) == 0 ? 0 : -1;
}

/* A stream failed: other streams take every chunk it sent that is not
 * verified yet. Called with the lock. */
static void lose_stream(sender *s, uint16_t index) {
  for (uint32_t i = 0; i < s->chunk_count; i++)
    if (s->sent_on[i] == (int8_t)index && !s->verified[i])
      nl_send_queue_push(s, i);
  pthread_cond_broadcast(&s->cond);
}

/* Whether the peer closed fd (or sent something, which on a data stream
 * is an ERROR before it closes). */
static bool peer_closed(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return poll(&p, 1, 0) > 0;
}

void nl_transfer_cond_wait(pthread_cond_t *cond, pthread_mutex_t *lock,
                           int ms) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += ms / 1000;
  until.tv_nsec += (long)(ms % 1000) * 1000 * 1000;
  if (until.tv_nsec >= 1000000000) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000;
  }
  pthread_cond_timedwait(cond, lock, &until);
}

/* Connects a data stream, authenticates it and JOINs it to the transfer.
 * Returns true, or false with err set. */
static bool stream_open(stream *st, conn *c, buffer *b, char *err,
                        size_t errlen) {
  sender *s = st->s;
  handshake hs;
  if (nl_send_open_conn(c, s->host, s->port, s->cfg, err, errlen) != 0 ||
      nl_tx_client_handshake(c, s->cfg, 1, &hs, b, err, errlen) != 0)
    return false;
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  uint8_t j[NL_FRAME_HEADER_SIZE + 64], mac[NL_AUTH_SIZE];
  nl_writer w;
  nl_writer_begin(&w, j, sizeof j, NL_FRAME_JOIN);
  nl_write_bytes(&w, s->id, sizeof s->id);
  nl_write_u16(&w, st->index);
  bool ok =
      nl_tx_join_mac(s->control_key, s->id, st->index, hs.cn, hs.sn, mac) == 0;
  nl_write_bytes(&w, mac, sizeof mac);
  long n = nl_writer_finish(&w);
  ok = ok && n > 0 && nl_tx_conn_write(c, j, (size_t)n) == 0;
  if (!ok)
    snprintf(err, errlen, "a data stream could not join the transfer");
  return ok;
}

/* Takes the next chunk to send, waiting for one. Returns false when the
 * stream is to end: the transfer stopped, or the receiver closed this
 * stream (err set, and its chunks queued for the others). */
static bool stream_take(stream *st, int fd, uint32_t *chunk, char *err,
                        size_t errlen) {
  sender *s = st->s;
  pthread_mutex_lock(&s->lock);
  /* While there is nothing to send, watch the connection too: the
   * receiver says nothing on a data stream, so anything readable is its
   * end, and what this stream sent may not all have arrived. */
  while (!s->stop && s->queued == 0 && !peer_closed(fd))
    nl_transfer_cond_wait(&s->cond, &s->lock, 200);
  bool take = !s->stop && s->queued > 0;
  if (take) {
    *chunk = nl_send_queue_pop(s);
  } else if (!s->stop) {
    lose_stream(s, st->index);
    snprintf(err, errlen, "the receiver closed a data stream");
  }
  pthread_mutex_unlock(&s->lock);
  return take;
}

/* Sends one chunk's DATA frames on c. Returns true, or false with err. */
static bool stream_send_chunk(sender *s, conn *c, uint8_t *f, uint32_t chunk,
                              uint32_t len, char *err, size_t errlen) {
  uint64_t start = (uint64_t)chunk * s->chunk_size;
  for (uint32_t off = 0; off < len; off += PIECE) {
    uint32_t n = len - off < PIECE ? len - off : PIECE;
    nl_writer w;
    nl_writer_begin(&w, f, NL_FRAME_HEADER_SIZE + 8 + PIECE, NL_FRAME_DATA);
    nl_write_u32(&w, chunk);
    nl_write_u32(&w, off);
    size_t head = w.len;
    w.len += n; /* the header counts the file's bytes that follow */
    long total = nl_writer_finish(&w);
    int sent = total > 0
                   ? send_piece(c, f, head, s->file_fd, (off_t)(start + off), n)
                   : -1;
    if (sent == -2)
      snprintf(err, errlen, "cannot read the file: %s",
               errno ? strerror(errno) : "it got shorter");
    else if (sent != 0)
      snprintf(err, errlen, "a data stream was cut: %s", strerror(errno));
    if (sent != 0)
      return false;
  }
  return true;
}

/* A chunk went (ok) or its stream failed: account for it. */
static void stream_sent(stream *st, uint32_t chunk, uint32_t len, bool ok) {
  sender *s = st->s;
  pthread_mutex_lock(&s->lock);
  s->sent_on[chunk] = (int8_t)st->index;
  if (!ok) {
    lose_stream(s, st->index);
  } else {
    nl_send_account(s, len);
  }
  pthread_mutex_unlock(&s->lock);
}

void nl_send_account(sender *s, uint32_t len) {
  s->result->chunks_sent++;
  s->result->bytes_sent += len;
  s->sent_attempts++;
  if (s->cfg->stop_after_chunks &&
      s->sent_attempts >= s->cfg->stop_after_chunks) {
    /* As if killed: every connection dropped, nothing said. */
    s->killed = s->stop = true;
    shutdown(s->control.fd, SHUT_RDWR);
    pthread_cond_broadcast(&s->cond);
  }
}

void *nl_send_stream_main(void *arg) {
  stream *st = arg;
  sender *s = st->s;
#ifdef __linux__
  /* sendfile has no MSG_NOSIGNAL: a peer gone is an error here, not a
   * SIGPIPE that ends the process. */
  sigset_t pipe_only;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_only, NULL);
#endif
  char err[256] = "out of memory";
  buffer b = {0};
  uint8_t *f = malloc(NL_FRAME_HEADER_SIZE + 8 + PIECE);
  conn c = {.fd = -1};
  bool ok = f != NULL && stream_open(st, &c, &b, err, sizeof err);
  pthread_mutex_lock(&s->lock);
  if (ok)
    s->stream_fds[st->index] = c.fd;
  pthread_mutex_unlock(&s->lock);
  uint32_t chunk;
  while (ok && stream_take(st, c.fd, &chunk, err, sizeof err)) {
    uint32_t len = nl_frame_chunk_len(s->size, s->chunk_size, chunk);
    ok = stream_send_chunk(s, &c, f, chunk, len, err, sizeof err);
    stream_sent(st, chunk, len, ok);
  }
  pthread_mutex_lock(&s->lock);
  if (--s->live_streams == 0 && !s->stop) {
    /* No stream is left to carry the rest. The control thread is woken,
     * and a write it is blocked in fails; its reading side stays open,
     * because the receiver's ERROR, its reason for closing the streams,
     * may still be on the way (a socket shut for reading would answer it
     * with a reset, and lose it). */
    snprintf(s->stream_error, sizeof s->stream_error, "%s", err);
    s->stop = true;
    shutdown(s->control.fd, SHUT_WR);
    nl_send_wake_control(s);
  }
  s->stream_fds[st->index] = -1;
  pthread_mutex_unlock(&s->lock);
  nl_send_close_conn(&c);
  free(f);
  free(b.p);
  return NULL;
}

/* The threads of a transfer: hashing (and the plain SHA-256 when asked)
 * and the data streams, which wait for chunks as they are hashed. */
