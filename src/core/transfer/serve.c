/* Serving a framed connection once the port has handed it over: the
 * version check, TLS, the handshake, then either a control connection
 * (the OFFER, the ACCEPT, then the sender's DIGEST and END frames) or a
 * data stream (JOIN, then DATA into its session). */
#include "rdma/rdma.h"
#include "session.h"

/* The sender's RDMA proposal, with the lock held: answered ready (a
 * listener and pool for this session, served on a thread of its own), or
 * refused with why, on which the sender goes on over TCP streams. Returns
 * NULL, or what breaks the protocol. */
static const char *rdma_proposal(session *s, conn *c,
                                 const nl_transfer_config *cfg,
                                 const uint8_t *p, uint32_t len) {
  nl_frame_rdma r;
  char why[NL_FRAME_MESSAGE_MAX + 1] = "";
  if (s->rdma_asked || nl_frame_parse_rdma(p, len, &r, why, sizeof why) != 0)
    return "a second RDMA proposal, or a malformed one";
  s->rdma_asked = true;
  nl_frame_rdma_answer a = {0};
  uint8_t nonce[NL_FRAME_NONCE_SIZE];
  nl_rdma_caps caps;
  if (c->tls != NULL)
    snprintf(why, sizeof why,
             "the transfer is encrypted, and RDMA would carry its bytes in "
             "clear");
  else if (cfg->rdma == NL_RDMA_OFF)
    snprintf(why, sizeof why,
             "RDMA is off at the receiver (TRANSFER_RDMA=off)");
  else if (nl_rdma_detect(&caps) == 0) /* no device, or no RDMA built */
    snprintf(why, sizeof why, "%s", caps.why);
#if NL_RDMA
  else if (nl_session_rdma_listen(s, c, r.nonce, &a, nonce, why, sizeof why) !=
           0)
    a.ready = false;
#endif
  uint8_t f[NL_FRAME_HEADER_SIZE + NL_FRAME_RDMA_ANSWER_MAX];
  nl_writer w;
  nl_writer_begin(&w, f, sizeof f, NL_FRAME_RDMA_ANSWER);
  nl_write_u8(&w, a.ready ? 1 : 0);
  if (a.ready) {
    nl_write_u16(&w, a.port);
    nl_write_u16(&w, a.slots);
    nl_write_u32(&w, a.slot_size);
    nl_write_u64(&w, a.addr);
    nl_write_u32(&w, a.rkey);
    nl_write_bytes(&w, nonce, sizeof nonce);
  } else {
    nl_log_debug("transfer", "%s from %s: RDMA refused: %s", s->name,
                 s->peer_id, why);
    nl_write_string(&w, why, strlen(why));
  }
  nl_session_control_send(s, &w);
  return NULL;
}

/* Reads the sender's frames on the control connection until it closes
 * it: a DIGEST per chunk, then END. Data threads write CHUNK frames on
 * this connection, and a TLS connection is not to be used from two
 * threads at once, so reads take the session's lock; poll waits without
 * it. A sender that vanished without closing is given up once no data
 * stream has been attached for the timeout. */
static void control_loop(session *s, conn *c, const nl_transfer_config *cfg,
                         buffer *b) {
  int timeout = cfg->timeout_seconds > 0 ? cfg->timeout_seconds : 30;
  uint8_t hdr[NL_FRAME_HEADER_SIZE];
  nl_frame_type type;
  uint32_t len;
  for (;;) {
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    /* Bytes TLS decrypted already are not on the socket for poll to see;
     * the SSL object is asked under the lock, as data threads write on it. */
    pthread_mutex_lock(&s->lock);
    bool pending = c->tls != NULL && nl_tls_pending(c->tls);
    pthread_mutex_unlock(&s->lock);
    int ready = pending ? 1 : poll(&p, 1, 1000);
    if (ready < 0 && errno != EINTR)
      return;
    pthread_mutex_lock(&s->lock);
    bool idle =
        s->streams == 0 && nl_tx_seconds_since(&s->active_at) > (double)timeout;
    const char *broken = NULL;
    bool end = ready == 0 && idle;
    if (ready > 0) {
      end = nl_tx_recv_frame(c, hdr, b, &type, &len) != 0 ||
            type == NL_FRAME_ERROR;
      if (!end && !nl_tx_mac_ok(c, hdr, b->p, len))
        broken = "a control frame's MAC does not match (changed, replayed or "
                 "injected on the way)";
      else if (!end && type == NL_FRAME_DIGEST && len == 4 + 64)
        broken = nl_session_digest(s, nl_get_be32(b->p), b->p + 4) != 0
                     ? "a DIGEST for no chunk, or for one twice"
                     : NULL;
      else if (!end && type == NL_FRAME_END && (len == 64 || len == 96))
        broken = nl_session_end(s, b->p, len == 96 ? b->p + 32 : NULL) != 0
                     ? "an END before every chunk's digest, or twice"
                     : NULL;
      else if (!end && type == NL_FRAME_RDMA)
        broken = rdma_proposal(s, c, cfg, b->p, len);
      else if (!end)
        broken = "an unexpected frame on the control connection";
    }
    if (broken != NULL) {
      nl_log_warn("transfer", "%s from %s: %s; stopped", s->name, s->peer_id,
                  broken);
      nl_tx_send_error(c, ERR_PROTOCOL, "%s", broken);
      s->failed = true;
    }
    pthread_mutex_unlock(&s->lock);
    if (end || broken != NULL)
      return;
  }
}

/* Whether the OFFER may be taken at all; otherwise the sender is told
 * why and 0 returned. */
static bool offer_acceptable(conn *c, const nl_transfer_config *cfg, buffer *b,
                             const uint8_t *hdr, uint32_t len,
                             nl_frame_type type, nl_frame_offer *o) {
  char why[256];
  if (type != NL_FRAME_OFFER) {
    nl_tx_send_error(c, ERR_PROTOCOL, "expected an OFFER");
    return false;
  }
  if (!nl_tx_mac_ok(c, hdr, b->p, len)) {
    nl_tx_send_error(c, ERR_PROTOCOL, "the OFFER's MAC does not match");
    return false;
  }
  if (nl_frame_parse_offer(b->p, len, o, why, sizeof why) != 0) {
    nl_tx_send_error(c, strstr(why, "name") ? ERR_NAME : ERR_PROTOCOL, "%s",
                     why);
    return false;
  }
  if (o->size > cfg->max_bytes) {
    nl_tx_send_error(c, ERR_TOO_BIG,
                     "%s is %llu bytes, over this receiver's maximum of %llu "
                     "(TRANSFER_MAX_BYTES)",
                     o->name, (unsigned long long)o->size,
                     (unsigned long long)cfg->max_bytes);
    return false;
  }
  /* A file of that name stays unless the sender asked to replace it; the
   * publishing rename checks again, atomically, at the end. */
  struct stat existing;
  if (!o->replace && fstatat(cfg->recv_dir->dir_fd, o->name, &existing,
                             AT_SYMLINK_NOFOLLOW) == 0) {
    nl_tx_send_error(
        c, ERR_EXISTS,
        "%s exists on the receiver; send with --force to replace it", o->name);
    return false;
  }
  return true;
}

/* ACCEPT: the transfer's id, and the chunks held already with the digests
 * the journal recorded for them. Returns 0 or -1. */
static int send_accept(session *s) {
  size_t bitmap = (s->chunk_count + 7) / 8, held = 0;
  for (uint32_t i = 0; i < s->chunk_count; i++)
    held += s->state[i] == CHUNK_HELD;
  size_t cap = NL_FRAME_HEADER_SIZE + 16 + bitmap + held * 32 + 32;
  uint8_t *f = malloc(cap);
  if (f == NULL)
    return -1;
  nl_writer w;
  nl_writer_begin(&w, f, cap, NL_FRAME_ACCEPT);
  nl_write_bytes(&w, s->id, sizeof s->id);
  for (size_t i = 0; i < bitmap; i++) {
    uint8_t byte = 0;
    for (uint32_t bit = 0; bit < 8; bit++) {
      uint32_t chunk = (uint32_t)(i * 8 + bit);
      if (chunk < s->chunk_count && s->state[chunk] == CHUNK_HELD)
        byte |= (uint8_t)(0x80 >> bit);
    }
    nl_write_u8(&w, byte);
  }
  for (uint32_t i = 0; i < s->chunk_count; i++)
    if (s->state[i] == CHUNK_HELD)
      nl_write_bytes(&w, s->here + (size_t)i * 32, 32);
  pthread_mutex_lock(&s->lock);
  nl_session_control_send(s, &w);
  bool sent = s->control != NULL;
  pthread_mutex_unlock(&s->lock);
  free(f);
  return sent ? 0 : -1;
}

static void serve_control(conn *c, const nl_transfer_config *cfg, handshake *hs,
                          buffer *b) {
  uint8_t hdr[NL_FRAME_HEADER_SIZE];
  nl_frame_type type;
  uint32_t len;
  nl_frame_offer o;
  if (nl_tx_recv_frame(c, hdr, b, &type, &len) != 0 ||
      !offer_acceptable(c, cfg, b, hdr, len, type, &o))
    return;
  nl_recv_dir_sweep_if_due(cfg->recv_dir);
  session *s = nl_session_new(&o, hs, c, cfg->recv_dir);
  if (s == NULL)
    return;
  char why[256];
  int code = nl_journal_open(s, why, sizeof why);
  if (code != 0) {
    nl_log_warn("transfer", "refused %s from %s: %s", s->name, s->peer_id, why);
    nl_tx_send_error(c, code, "%s", why);
    nl_session_release(s);
    return;
  }
  nl_session_register(s);
  nl_session_start_workers(s);
  /* Then the sender's digests and END; its closing ends the session (the
   * journal stays for a resume unless the file was published). */
  if (send_accept(s) == 0)
    control_loop(s, c, cfg, b);
  pthread_mutex_lock(&s->lock);
  s->control = NULL;
  atomic_store(&s->rdma_stop, true);
  bool finished = s->finished;
  pthread_mutex_unlock(&s->lock);
  /* A sender that died may have left data in the kernel's buffers of
   * streams whose threads have not joined yet: the session stays findable
   * a moment longer, so that what arrived is verified and journaled. */
  if (!finished)
    sleep(JOIN_GRACE_SECONDS);
  nl_session_release(s);
}

/* One data stream's chunk in progress. A chunk's DATA frames come on one
 * stream, in order from offset 0, and are hashed as they arrive: a chunk
 * is verified from the bytes received, never read back. */
typedef struct {
  nl_sha256 *hash;
  uint32_t chunk, next;
  bool open, write;
} stream_chunk;

/* DATA into the staging file. Returns 0, or -1 to drop the stream (a
 * frame out of order, or the file could not be written). */
static int stream_data(session *s, stream_chunk *sc, const nl_frame_data *d) {
  if (d->chunk >= s->chunk_count ||
      d->offset + (uint64_t)d->len > nl_session_chunk_len(s, d->chunk))
    return -1;
  if (d->offset == 0 && !sc->open) {
    int begin = nl_session_begin_chunk(s, d->chunk);
    if (begin < 0)
      return -1;
    *sc = (stream_chunk){
        .hash = sc->hash, .chunk = d->chunk, .open = true, .write = begin > 0};
  } else if (!sc->open || d->chunk != sc->chunk || d->offset != sc->next) {
    return -1;
  }
  sc->next += d->len;
  bool last = sc->next == nl_session_chunk_len(s, d->chunk);
  if (last)
    sc->open = false;
  if (!sc->write)
    return 0; /* verified already: sent twice */
  if (nl_session_write(s, d) != 0)
    return -1;
  uint8_t digest[32];
  if (nl_sha256_update(sc->hash, d->data, d->len) != 0 ||
      (last && nl_sha256_final(sc->hash, digest) != 0))
    return -1;
  if (last)
    nl_session_received(s, d->chunk, digest);
  return 0;
}

static void serve_data(conn *c, handshake *hs, buffer *b) {
  uint8_t hdr[NL_FRAME_HEADER_SIZE];
  nl_frame_type type;
  uint32_t len;
  if (nl_tx_recv_frame(c, hdr, b, &type, &len) != 0 || type != NL_FRAME_JOIN ||
      len != NL_FRAME_TRANSFER_ID_SIZE + 2 + NL_AUTH_SIZE)
    return;
  session *s = nl_session_find(b->p);
  if (s == NULL) {
    nl_tx_send_error(c, ERR_PROTOCOL, "no such transfer");
    return;
  }
  uint16_t index = (uint16_t)(b->p[16] << 8 | b->p[17]);
  uint8_t expected[NL_AUTH_SIZE];
  if (nl_tx_join_mac(s->key, b->p, index, hs->cn, hs->sn, expected) != 0 ||
      !nl_mac_equal(expected, b->p + 18)) {
    nl_tx_send_error(c, ERR_REFUSED, "JOIN refused");
    nl_session_release(s);
    return;
  }
  pthread_mutex_lock(&s->lock);
  s->streams++;
  pthread_mutex_unlock(&s->lock);
  char why[128];
  stream_chunk sc = {.hash = nl_sha256_new()};
  while (sc.hash != NULL && nl_tx_recv_frame(c, hdr, b, &type, &len) == 0) {
    nl_frame_data d;
    if (type != NL_FRAME_DATA ||
        nl_frame_parse_data(b->p, len, s->chunk_size, &d, why, sizeof why) !=
            0 ||
        stream_data(s, &sc, &d) != 0)
      break;
  }
  nl_sha256_free(sc.hash);
  pthread_mutex_lock(&s->lock);
  s->streams--;
  clock_gettime(CLOCK_MONOTONIC, &s->active_at);
  pthread_mutex_unlock(&s->lock);
  nl_session_release(s);
}

/* A framed connection of another protocol version: told so in a frame its
 * own version can read (an ERROR's layout is the same in versions 1 and
 * 2), rather than closed without a word. */
static void refuse_version(conn *c, uint8_t version) {
  char msg[160];
  int n = snprintf(msg, sizeof msg,
                   "protocol version %u is not spoken here: this node speaks "
                   "nodelua protocol version %d; upgrade the older side",
                   version, NL_FRAME_VERSION);
  uint8_t f[NL_FRAME_HEADER_SIZE + 4 + sizeof msg];
  nl_writer w;
  nl_writer_begin(&w, f, sizeof f, NL_FRAME_ERROR);
  nl_write_u16(&w, ERR_PROTOCOL);
  nl_write_string(&w, msg, (size_t)n);
  long len = nl_writer_finish(&w);
  f[2] = version;
  if (len > 0)
    nl_tx_conn_write(c, f, (size_t)len);
}

void nl_transfer_serve(int fd, const void *prefix, size_t prefix_len,
                       const nl_transfer_config *cfg) {
  nl_transfer_serve_gated(fd, prefix, prefix_len, cfg, NULL, NULL);
}

void nl_transfer_serve_gated(int fd, const void *prefix, size_t prefix_len,
                             const nl_transfer_config *cfg,
                             bool (*admit)(void *ud), void *ud) {
  /* Nothing is known of the peer until it proves it holds the key: it
   * has HANDSHAKE_SECONDS from here, TLS included, however it paces its
   * bytes. */
  struct timespec deadline = nl_deadline_in(HANDSHAKE_SECONDS);
  conn c = {.fd = fd, .deadline = &deadline};
  /* What the listener read tells; if it read nothing, a peek does. */
  uint8_t first = 0;
  if (prefix_len > 0)
    first = *(const uint8_t *)prefix;
  else if (nl_deadline_arm(fd, &deadline) != 0 ||
           recv(fd, &first, 1, MSG_PEEK) != 1)
    first = 0;
  bool encrypted = first == NL_TLS_RECORD_HANDSHAKE;
  char why[256];
  if (encrypted) {
    c.tls = nl_tls_server(fd, prefix, prefix_len, cfg->key, cfg->key_len,
                          &deadline, why, sizeof why);
    if (c.tls == NULL) {
      nl_tx_handshake_failed(fd,
                             "refused an encrypted connection: %s (a sender "
                             "without this cluster's key?)",
                             why);
      close(fd);
      return;
    }
  } else {
    c.pre = prefix;
    c.pre_len = prefix_len;
  }
  buffer b = {0};
  uint8_t hdr[NL_FRAME_HEADER_SIZE];
  nl_frame_type type;
  uint32_t len;
  nl_frame_hello hello;
  handshake hs;
  /* The first header by hand: a peer of another version is told so. */
  bool have_header = nl_tx_conn_read(&c, hdr, NL_FRAME_HEADER_SIZE) == 0;
  bool other_version = have_header && hdr[0] == 'N' && hdr[1] == 'L' &&
                       hdr[2] != NL_FRAME_VERSION;
  if (other_version) {
    refuse_version(&c, hdr[2]);
  } else if (have_header && !encrypted && cfg->encrypt) {
    nl_tx_send_error(&c, ERR_REFUSED,
                     "this node takes encrypted transfers only: set "
                     "TRANSFER_ENCRYPT=true at the sender too");
  } else if (have_header &&
             nl_tx_payload_of(&c, hdr, &b, &type, &len, NL_FRAME_HELLO, 0) ==
                 0 &&
             nl_frame_parse_hello(b.p, len, &hello, why, sizeof why) == 0 &&
             nl_tx_server_handshake(&c, cfg, &hello, &hs, &b) == 0) {
    nl_tx_conn_end_deadline(&c, cfg->timeout_seconds);
    /* From here every frame this side sends, ERRORs included, is MAC'd. */
    c.mac_key = hs.key;
    c.out_dir = NL_AUTH_TO_SENDER;
    c.in_dir = NL_AUTH_TO_RECEIVER;
    if (admit != NULL && !admit(ud))
      nl_tx_send_error(&c, ERR_BUSY,
                       "this node is serving as many transfers as it can; try "
                       "again shortly");
    else if (hello.role == 0)
      serve_control(&c, cfg, &hs, &b);
    else
      serve_data(&c, &hs, &b);
  }
  free(b.p);
  nl_tls_free(c.tls);
  close(fd);
}
