/* The sending side of the transfer core: the file's chunk and whole-file
 * digests, the control connection (offer, acknowledgements, DONE), the
 * data streams that take chunks from a shared queue, and the requeueing of
 * what a lost stream had in flight. */
#include "transfer_internal.h"

/* ---- the sender ---- */

typedef struct {
  const nl_transfer_config *cfg;
  const char *host;
  int port;
  int file_fd;
  uint64_t size;
  uint32_t chunk_size, chunk_count;
  uint8_t id[NL_FRAME_TRANSFER_ID_SIZE];
  uint8_t control_key[NL_AUTH_SIZE];
  conn control;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  uint32_t *queue;   /* chunks to send, a ring of chunk_count slots */
  uint8_t *in_queue; /* per chunk: in the ring now */
  uint8_t *verified; /* per chunk: the receiver said CHUNK_OK */
  /* Per chunk, the stream that last sent it (-1: none). A stream that
   * fails loses what it had in flight, however much of it was written:
   * its chunks not yet verified are queued again. */
  int8_t *sent_on;
  size_t head, queued;
  int live_streams;
  int stream_fds[64];
  bool stop, killed;
  uint32_t sent_attempts;
  nl_transfer_result *result;
  nl_transfer_progress_cb progress;
  void *ud;
  char stream_error[256];
} sender;

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
static int open_conn(conn *c, const char *host, int port,
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

static void close_conn(conn *c) {
  nl_tls_free(c->tls);
  if (c->fd >= 0)
    close(c->fd);
  *c = (conn){.fd = -1};
}

/* Queues a chunk to send, once: a chunk both refused by the receiver and
 * on a stream that failed must not take two slots of the ring. */
static void queue_push(sender *s, uint32_t chunk) {
  if (s->in_queue[chunk] || s->queued >= s->chunk_count)
    return;
  s->in_queue[chunk] = 1;
  s->queue[(s->head + s->queued) % s->chunk_count] = chunk;
  s->queued++;
}

typedef struct {
  sender *s;
  uint16_t index;
  pthread_t thread;
} stream;

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
      queue_push(s, i);
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

static void *stream_main(void *arg) {
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
  char err[256] = "";
  buffer b = {0};
  uint8_t *f = malloc(NL_FRAME_HEADER_SIZE + 8 + PIECE);
  conn c = {.fd = -1};
  handshake hs;
  if (f == NULL)
    snprintf(err, sizeof err, "out of memory");
  bool ok =
      f != NULL &&
      open_conn(&c, s->host, s->port, s->cfg, err, sizeof err) == 0 &&
      nl_tx_client_handshake(&c, s->cfg, 1, &hs, &b, err, sizeof err) == 0;
  if (ok) {
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    uint8_t j[NL_FRAME_HEADER_SIZE + 64], mac[NL_AUTH_SIZE];
    nl_writer w;
    nl_writer_begin(&w, j, sizeof j, NL_FRAME_JOIN);
    nl_write_bytes(&w, s->id, sizeof s->id);
    nl_write_u16(&w, st->index);
    ok = nl_tx_join_mac(s->control_key, s->id, st->index, hs.cn, hs.sn, mac) ==
         0;
    nl_write_bytes(&w, mac, sizeof mac);
    long n = nl_writer_finish(&w);
    ok = ok && n > 0 && nl_tx_conn_write(&c, j, (size_t)n) == 0;
  }
  pthread_mutex_lock(&s->lock);
  if (ok)
    s->stream_fds[st->index] = c.fd;
  pthread_mutex_unlock(&s->lock);
  while (ok) {
    pthread_mutex_lock(&s->lock);
    /* While there is nothing to send, watch the connection too: the
     * receiver says nothing on a data stream, so anything readable is its
     * end, and what this stream sent may not all have arrived. */
    while (!s->stop && s->queued == 0 && !peer_closed(c.fd))
      nl_transfer_cond_wait(&s->cond, &s->lock, 200);
    if (!s->stop && s->queued == 0) {
      lose_stream(s, st->index);
      snprintf(err, sizeof err, "the receiver closed a data stream");
      pthread_mutex_unlock(&s->lock);
      break;
    }
    if (s->stop) {
      pthread_mutex_unlock(&s->lock);
      break;
    }
    uint32_t chunk = s->queue[s->head];
    s->head = (s->head + 1) % s->chunk_count;
    s->queued--;
    s->in_queue[chunk] = 0;
    pthread_mutex_unlock(&s->lock);
    uint64_t start = (uint64_t)chunk * s->chunk_size;
    uint64_t left = s->size - start;
    uint32_t len = left < s->chunk_size ? (uint32_t)left : s->chunk_size;
    for (uint32_t off = 0; ok && off < len; off += PIECE) {
      uint32_t n = len - off < PIECE ? len - off : PIECE;
      nl_writer w;
      nl_writer_begin(&w, f, NL_FRAME_HEADER_SIZE + 8 + PIECE, NL_FRAME_DATA);
      nl_write_u32(&w, chunk);
      nl_write_u32(&w, off);
      size_t head = w.len;
      w.len += n; /* the header counts the file's bytes that follow */
      long total = nl_writer_finish(&w);
      int sent = total > 0 ? send_piece(&c, f, head, s->file_fd,
                                        (off_t)(start + off), n)
                           : -1;
      ok = sent == 0;
      if (sent == -2)
        snprintf(err, sizeof err, "cannot read the file: %s",
                 errno ? strerror(errno) : "it got shorter");
      else if (!ok)
        snprintf(err, sizeof err, "a data stream was cut: %s", strerror(errno));
    }
    pthread_mutex_lock(&s->lock);
    s->sent_on[chunk] = (int8_t)st->index;
    if (!ok) {
      lose_stream(s, st->index);
    } else {
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
    pthread_mutex_unlock(&s->lock);
  }
  pthread_mutex_lock(&s->lock);
  if (--s->live_streams == 0 && !s->stop) {
    /* No stream is left to carry the rest. */
    snprintf(s->stream_error, sizeof s->stream_error, "%s", err);
    s->stop = true;
    shutdown(s->control.fd, SHUT_RDWR);
  }
  s->stream_fds[st->index] = -1;
  pthread_mutex_unlock(&s->lock);
  close_conn(&c);
  free(f);
  free(b.p);
  return NULL;
}

typedef struct {
  int fd;
  uint64_t size;
  uint8_t digest[32];
  int rc;
} whole_job;

static void *hash_whole(void *arg) {
  whole_job *j = arg;
  j->rc = nl_sha256_file_range(j->fd, 0, j->size, j->digest);
  return NULL;
}

/* Hashes every chunk here and the whole file on a second thread at the
 * same time: two passes over the page cache, on two cores. */
static int hash_file(sender *s, uint8_t *digests, uint8_t file_digest[32]) {
  whole_job whole = {.fd = s->file_fd, .size = s->size, .rc = -1};
  pthread_t thread;
  bool threaded = pthread_create(&thread, NULL, hash_whole, &whole) == 0;
  int rc = 0;
  for (uint32_t c = 0; c < s->chunk_count && rc == 0; c++) {
    uint64_t start = (uint64_t)c * s->chunk_size;
    uint64_t left = s->size - start;
    uint32_t len = left < s->chunk_size ? (uint32_t)left : s->chunk_size;
    rc = nl_sha256_file_range(s->file_fd, start, len, digests + (size_t)c * 32);
  }
  if (threaded)
    pthread_join(thread, NULL);
  else
    hash_whole(&whole);
  memcpy(file_digest, whole.digest, 32);
  return rc == 0 && whole.rc == 0 ? 0 : -1;
}

int nl_transfer_send(const char *host, int port, const char *path,
                     const char *remote_name, const nl_transfer_config *cfg,
                     nl_transfer_progress_cb progress, void *ud,
                     nl_transfer_result *result, char *err, size_t errlen) {
  memset(result, 0, sizeof *result);
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  /* A sender without an id of its own is a new stranger each time, never
   * a fixed id (all zeros) that every such sender would share. */
  nl_transfer_config with_id;
  char random_id[33];
  if (cfg->node_id == NULL || cfg->node_id[0] == '\0') {
    uint8_t raw[16];
    if (nl_random(raw, sizeof raw) != 0) {
      snprintf(err, errlen, "no random bytes for a node id");
      return -1;
    }
    nl_hex(raw, sizeof raw, random_id);
    with_id = *cfg;
    with_id.node_id = random_id;
    cfg = &with_id;
  }
  if (remote_name == NULL) {
    const char *slash = strrchr(path, '/');
    remote_name = slash ? slash + 1 : path;
  }
  if (nl_frame_name_check(remote_name, strlen(remote_name), err, errlen) != 0)
    return -1;
  uint32_t cs = cfg->chunk_size;
  if (cs < NL_FRAME_CHUNK_MIN || cs > NL_FRAME_CHUNK_MAX || (cs & (cs - 1)) ||
      cfg->streams < 1 || cfg->streams > 64) {
    snprintf(err, errlen, "bad chunk size or stream count");
    return -1;
  }
  sender s = {.cfg = cfg,
              .host = host,
              .port = port,
              .control = {.fd = -1},
              .result = result,
              .progress = progress,
              .ud = ud};
  s.file_fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (s.file_fd < 0 || fstat(s.file_fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    snprintf(err, errlen, "%s: %s", path,
             s.file_fd < 0 ? strerror(errno) : "not a regular file");
    if (s.file_fd >= 0)
      close(s.file_fd);
    return -1;
  }
  s.size = (uint64_t)st.st_size;
  s.chunk_size = cs;
  uint64_t chunks = s.size / cs + (s.size % cs != 0);
  if ((chunks + 2) * 32 + 300 > NL_FRAME_OFFER_MAX) {
    snprintf(err, errlen,
             "%s has too many chunks for one offer: use a "
             "larger chunk size",
             path);
    close(s.file_fd);
    return -1;
  }
  s.chunk_count = (uint32_t)chunks;
  result->size = s.size;
  result->chunks = s.chunk_count;
  size_t offer_cap = NL_FRAME_HEADER_SIZE + 2 + strlen(remote_name) + 1 + 8 +
                     4 + 32 + (size_t)s.chunk_count * 32 + 32;
  uint8_t *offer = malloc(offer_cap);
  uint8_t *digests = malloc(s.chunk_count ? (size_t)s.chunk_count * 32 : 1);
  s.queue = malloc((s.chunk_count ? s.chunk_count : 1) * sizeof *s.queue);
  s.in_queue = calloc(s.chunk_count ? s.chunk_count : 1, 1);
  s.verified = calloc(s.chunk_count ? s.chunk_count : 1, 1);
  s.sent_on = malloc(s.chunk_count ? s.chunk_count : 1);
  if (s.sent_on != NULL)
    memset(s.sent_on, -1, s.chunk_count ? s.chunk_count : 1);
  buffer b = {0};
  stream streams[64];
  int started = 0, rc = -1;
  uint8_t file_digest[32];
  pthread_mutex_init(&s.lock, NULL);
  pthread_cond_init(&s.cond, NULL);
  for (int i = 0; i < 64; i++)
    s.stream_fds[i] = -1;
  if (offer == NULL || digests == NULL || s.queue == NULL ||
      s.in_queue == NULL || s.verified == NULL || s.sent_on == NULL) {
    snprintf(err, errlen, "out of memory");
    goto done;
  }
  if (hash_file(&s, digests, file_digest) != 0) {
    snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    goto done;
  }
  nl_sha256_hex(file_digest, result->sha256);

  handshake hs;
  if (open_conn(&s.control, host, port, cfg, err, errlen) != 0 ||
      nl_tx_client_handshake(&s.control, cfg, 0, &hs, &b, err, errlen) != 0)
    goto done;
  memcpy(s.control_key, hs.key, sizeof s.control_key);
  s.control.mac_key = s.control_key;
  s.control.out_dir = NL_AUTH_TO_RECEIVER;
  s.control.in_dir = NL_AUTH_TO_SENDER;
  snprintf(result->peer_id, sizeof result->peer_id, "%s", hs.peer_id);

  nl_writer w;
  nl_writer_begin(&w, offer, offer_cap, NL_FRAME_OFFER);
  nl_write_string(&w, remote_name, strlen(remote_name));
  nl_write_u8(&w, cfg->replace ? NL_OFFER_REPLACE : 0);
  nl_write_u64(&w, s.size);
  nl_write_u32(&w, cs);
  nl_write_bytes(&w, file_digest, 32);
  nl_write_bytes(&w, digests, (size_t)s.chunk_count * 32);
  long n = nl_tx_finish_with_mac(&w, &s.control);
  uint8_t hdr[NL_FRAME_HEADER_SIZE];
  nl_frame_type type;
  uint32_t len;
  if (n < 0 || nl_tx_conn_write(&s.control, offer, (size_t)n) != 0 ||
      nl_tx_recv_frame(&s.control, hdr, &b, &type, &len) != 0) {
    snprintf(err, errlen, "the receiver closed the connection");
    goto done;
  }
  size_t bitmap = (s.chunk_count + 7) / 8;
  if (type != NL_FRAME_ACCEPT || len != 16 + bitmap + 32 ||
      !nl_tx_mac_ok(&s.control, hdr, b.p, len)) {
    nl_tx_error_from(&s.control, hdr, b.p, len, type, err, errlen,
                     type == NL_FRAME_ACCEPT
                         ? "the ACCEPT's MAC does not match"
                         : "unexpected answer to the offer");
    goto done;
  }
  memcpy(s.id, b.p, 16);
  for (uint32_t c = 0; c < s.chunk_count; c++) {
    if (b.p[16 + c / 8] & (0x80 >> (c % 8)))
      queue_push(&s, c);
    else {
      s.verified[c] = 1;
      result->chunks_skipped++;
    }
  }
  int want = (int)s.queued < cfg->streams ? (int)s.queued : cfg->streams;
  s.live_streams = want;
  for (; started < want; started++) {
    streams[started] = (stream){.s = &s, .index = (uint16_t)started};
    if (pthread_create(&streams[started].thread, NULL, stream_main,
                       &streams[started]) != 0) {
      pthread_mutex_lock(&s.lock);
      s.live_streams -= want - started;
      pthread_mutex_unlock(&s.lock);
      break;
    }
  }
  /* The control connection: chunks verified or refused, then DONE. */
  for (;;) {
    if (nl_tx_recv_frame(&s.control, hdr, &b, &type, &len) != 0) {
      pthread_mutex_lock(&s.lock);
      if (s.killed)
        snprintf(err, errlen, "stopped after %u chunks, as asked",
                 s.sent_attempts);
      else if (s.stream_error[0])
        snprintf(err, errlen, "%s", s.stream_error);
      else
        snprintf(err, errlen, "the receiver went away");
      pthread_mutex_unlock(&s.lock);
      break;
    }
    if (type == NL_FRAME_ERROR) {
      nl_tx_error_from(&s.control, hdr, b.p, len, type, err, errlen,
                       "the receiver failed");
      break;
    }
    if (!nl_tx_mac_ok(&s.control, hdr, b.p, len)) {
      snprintf(err, errlen,
               "a control frame's MAC does not match (changed, replayed or "
               "injected on the way): the transfer was stopped");
      break;
    }
    if (type == NL_FRAME_CHUNK && len == 4 + 1 + 32) {
      uint32_t c = nl_get_be32(b.p);
      if (c >= s.chunk_count)
        continue;
      pthread_mutex_lock(&s.lock);
      if (b.p[4] == 1 && !s.verified[c]) {
        s.verified[c] = 1;
        result->seconds = nl_tx_seconds_since(&t0);
        if (progress)
          progress(ud, result);
      } else if (b.p[4] == 0) {
        result->chunks_resent++;
        queue_push(&s, c);
        pthread_cond_broadcast(&s.cond);
      }
      pthread_mutex_unlock(&s.lock);
    } else if (type == NL_FRAME_DONE && len == 64) {
      if (memcmp(b.p, file_digest, 32) != 0) {
        snprintf(err, errlen, "the receiver's SHA-256 differs from ours");
        break;
      }
      rc = 0;
      break;
    } else {
      snprintf(err, errlen, "unexpected frame %d from the receiver", type);
      break;
    }
  }
done:
  pthread_mutex_lock(&s.lock);
  s.stop = true;
  for (int i = 0; i < 64; i++)
    if (s.stream_fds[i] >= 0)
      shutdown(s.stream_fds[i], SHUT_RDWR);
  pthread_cond_broadcast(&s.cond);
  pthread_mutex_unlock(&s.lock);
  for (int i = 0; i < started; i++)
    pthread_join(streams[i].thread, NULL);
  close_conn(&s.control);
  close(s.file_fd);
  pthread_cond_destroy(&s.cond);
  pthread_mutex_destroy(&s.lock);
  result->seconds = nl_tx_seconds_since(&t0);
  free(offer);
  free(digests);
  free(s.queue);
  free(s.in_queue);
  free(s.verified);
  free(s.sent_on);
  free(b.p);
  return rc;
}
