/* The sending side's course (see sender.h): the OFFER and ACCEPT, the
 * hashing of the file's chunks on a pool of workers while it is sent
 * (each chunk goes to the streams as soon as its DIGEST frame is out on
 * the control connection), TRANSFER_STREAMS=auto, and END and DONE. */
#include "hashpool.h"
#include "core/portable.h"
#include "rdma/rdma.h"
#include "sender.h"

/* How many I/O timeouts the sender waits for DONE once the receiver has
 * verified every chunk: its final fsync (5 minutes at the default 30 s). */
#define PUBLISH_TIMEOUT_FACTOR 10

/* ---- hashing while sending ---- */

void nl_send_wake_control(sender *s) {
  char one = 1;
  if (write(s->wake[1], &one, 1) < 0) {
    /* the pipe is full: the control thread has a wake-up pending anyway */
  }
}

/* A chunk's digest is in: the control thread sends it as a DIGEST, then
 * hands the chunk to the streams. Stops the hashing once the transfer is
 * over. */
static int on_hashed(void *ud, uint64_t index) {
  sender *s = ud;
  pthread_mutex_lock(&s->lock);
  bool stop = s->stop;
  s->hashed[s->hashed_count++] = (uint32_t)index;
  pthread_mutex_unlock(&s->lock);
  nl_send_wake_control(s);
  return stop;
}

/* Chunks whose DIGEST went out go to the streams, unless the receiver
 * holds them already with that digest. Called with the lock. */
static void release_chunks(sender *s, uint32_t from, uint32_t to) {
  for (uint32_t i = from; i < to; i++) {
    uint32_t c = s->hashed[i];
    if (nl_frame_bit(s->held, c) &&
        memcmp(s->held_digests + (size_t)s->held_at[c] * 32,
               s->digests + (size_t)c * 32, 32) == 0) {
      s->verified[c] = 1;
      s->verified_count++;
      s->result->chunks_skipped++;
    } else {
      nl_send_queue_push(s, c);
    }
  }
  pthread_cond_broadcast(&s->cond);
}

static void *hash_chunks(void *arg) {
  nl_thread_name("nl-tx-hash");
  sender *s = arg;
  uint8_t tree[32];
  int rc =
      nl_tree_hash_fd(s->file_fd, s->size, s->chunk_size, s->cfg->hash_threads,
                      s->digests, tree, on_hashed, s);
  pthread_mutex_lock(&s->lock);
  memcpy(s->tree, tree, 32);
  s->hash_rc = rc;
  s->hash_done = true;
  pthread_mutex_unlock(&s->lock);
  nl_send_wake_control(s);
  return NULL;
}

/* The plain SHA-256, asked for with cfg->sha256: one sequential pass, on
 * a core of its own, while the chunks are hashed and sent. */
static void *hash_plain(void *arg) {
  nl_thread_name("nl-tx-sha256");
  sender *s = arg;
  uint8_t sha[32];
  int rc = nl_sha256_file_range(s->file_fd, 0, s->size, sha);
  int e = errno;
  pthread_mutex_lock(&s->lock);
  memcpy(s->sha, sha, 32);
  s->sha_rc = rc == 0 ? 0 : -e;
  s->sha_done = true;
  pthread_mutex_unlock(&s->lock);
  nl_send_wake_control(s);
  return NULL;
}

/* ---- the control connection ---- */

/* How long the sender looks for the receiver's ERROR once it has seen
 * the transfer end another way. The receiver writes its ERROR before it
 * closes anything, so the frame is normally in already. */
#define LAST_WORD_MS 1000

/* The receiver's ERROR, if one is waiting on the control connection (or
 * comes within LAST_WORD_MS): true with err set to it. A receiver that
 * stops writes its ERROR, then closes the data streams too; a data stream
 * or the hashing may see that end before this thread reads the frame, and
 * the receiver's reason is the one the user needs, not "a stream closed".
 * Frames before the ERROR are passed over, with their MACs checked so that
 * the ERROR's numbering holds. */
static bool receiver_said(sender *s, char *err, size_t errlen) {
  buffer b = {0};
  uint8_t hdr[NL_FRAME_HEADER_SIZE];
  nl_frame_type type;
  uint32_t len;
  bool said = false;
  struct timespec since;
  clock_gettime(CLOCK_MONOTONIC, &since);
  for (;;) {
    int left = LAST_WORD_MS - (int)(nl_tx_seconds_since(&since) * 1000);
    bool ready = s->control.tls != NULL && nl_tls_pending(s->control.tls);
    if (!ready && left > 0) {
      struct pollfd p = {.fd = s->control.fd, .events = POLLIN};
      ready = poll(&p, 1, left) > 0;
    }
    if (!ready || nl_tx_recv_frame(&s->control, hdr, &b, &type, &len) != 0)
      break;
    if (type == NL_FRAME_ERROR) {
      nl_tx_error_from(&s->control, hdr, b.p, len, type, err, errlen,
                       "the receiver failed");
      said = true;
      break;
    }
    if (!nl_tx_mac_ok(&s->control, hdr, b.p, len))
      break;
  }
  free(b.p);
  return said;
}

/* Why the control connection ended when it did: what the receiver said,
 * if it said anything, over what this side saw. */
static void control_lost(sender *s, char *err, size_t errlen) {
  pthread_mutex_lock(&s->lock);
  bool killed = s->killed;
  if (killed)
    snprintf(err, errlen, "stopped after %u chunks, as asked",
             s->sent_attempts);
  pthread_mutex_unlock(&s->lock);
  if (killed)
    return;
  if (receiver_said(s, err, errlen))
    return;
  pthread_mutex_lock(&s->lock);
  if (s->stream_error[0])
    snprintf(err, errlen, "%s", s->stream_error);
  else
    snprintf(err, errlen, "the receiver went away");
  pthread_mutex_unlock(&s->lock);
}

/* Sends the DIGEST frames of chunks hashed since the last call, then END
 * once every digest is out and the hashing is over. Returns 0, 1 when END
 * went out, or -1 with err set. */
static int send_digests(sender *s, char *err, size_t errlen) {
  pthread_mutex_lock(&s->lock);
  uint32_t from = s->digests_sent, to = s->hashed_count;
  bool hashed = s->hash_done, plain = s->sha_done || !s->cfg->sha256;
  int rc = hashed && s->hash_rc != 0 ? s->hash_rc : s->sha_rc;
  pthread_mutex_unlock(&s->lock);
  if (rc == -ECANCELED) { /* the transfer stopped first: say why */
    control_lost(s, err, errlen);
    return -1;
  }
  if (rc != 0) {
    snprintf(err, errlen, "cannot read the file: %s", strerror(-rc));
    return -1;
  }
  for (uint32_t i = from; i < to; i++) {
    uint32_t c = s->hashed[i];
    uint8_t f[NL_FRAME_HEADER_SIZE + 4 + 64];
    nl_writer w;
    nl_writer_begin(&w, f, sizeof f, NL_FRAME_DIGEST);
    nl_write_u32(&w, c);
    nl_write_bytes(&w, s->digests + (size_t)c * 32, 32);
    long n = nl_tx_finish_with_mac(&w, &s->control);
    if (n < 0 || nl_tx_conn_write(&s->control, f, (size_t)n) != 0) {
      control_lost(s, err, errlen);
      return -1;
    }
  }
  /* Each chunk's digest is on its way before its first byte is: the
   * receiver mostly checks a chunk the moment it is whole. */
  pthread_mutex_lock(&s->lock);
  s->digests_sent = to;
  release_chunks(s, from, to);
  pthread_mutex_unlock(&s->lock);
  if (!hashed || !plain || to != s->chunk_count)
    return 0;
  uint8_t f[NL_FRAME_HEADER_SIZE + 96];
  nl_writer w;
  nl_writer_begin(&w, f, sizeof f, NL_FRAME_END);
  nl_write_bytes(&w, s->tree, 32);
  if (s->cfg->sha256)
    nl_write_bytes(&w, s->sha, 32);
  long n = nl_tx_finish_with_mac(&w, &s->control);
  if (n < 0 || nl_tx_conn_write(&s->control, f, (size_t)n) != 0) {
    control_lost(s, err, errlen);
    return -1;
  }
  return 1;
}

/* Waits for the control connection to be readable or a wake-up, for up
 * to ms: returns 1 for a frame to read, 0 for digests to send or the time
 * up, -1 on an error. */
static int control_wait(sender *s, int ms) {
  if (s->control.tls != NULL && nl_tls_pending(s->control.tls))
    return 1;
  struct pollfd p[2] = {{.fd = s->control.fd, .events = POLLIN},
                        {.fd = s->wake[0], .events = POLLIN}};
  int n = poll(p, 2, ms);
  if (n < 0 && errno != EINTR)
    return -1;
  if (n > 0 && p[1].revents) {
    char scrap[64];
    while (read(s->wake[0], scrap, sizeof scrap) > 0) {
    }
  }
  return n > 0 && p[0].revents ? 1 : 0;
}

static void add_streams(sender *s, workers *k, int n);
static void start_streams(sender *s, workers *k);

/* RDMA failed mid-transfer (rdma_send.c handed its chunks in flight back
 * to the queue): one log line, and the rest goes over TCP streams. With
 * TRANSFER_RDMA=required too: it was set up, and nothing is lost. */
static void rdma_fallback(sender *s, workers *k) {
  pthread_mutex_lock(&s->lock);
  bool now = s->rdma_fell_back && !s->stop;
  if (now) {
    s->rdma_fell_back = false; /* handled: once */
    snprintf(s->result->rdma_note, sizeof s->result->rdma_note,
             "RDMA stopped after %u chunks: %s", s->result->chunks_rdma,
             s->rdma_why);
    nl_log_info("transfer",
                "RDMA stopped mid-transfer after %u chunks: %s; the %u chunks "
                "in flight and the rest go over TCP streams",
                s->result->chunks_rdma, s->rdma_why, s->rdma_requeued);
  }
  pthread_mutex_unlock(&s->lock);
  if (now)
    start_streams(s, k);
}

int nl_tx_auto_more(double base_rate, double rate, int started) {
  bool grew = base_rate <= 0 || rate >= base_rate * 1.1;
  if (!grew || rate <= 0 || started >= AUTO_STREAMS_MAX)
    return 0;
  return started < AUTO_STREAMS_MAX - started ? started
                                              : AUTO_STREAMS_MAX - started;
}

/* TRANSFER_STREAMS=auto: every half second, the rate of the window just
 * past; after each step (the window right after it skipped, while the new
 * streams ramp up) the streams double if the rate grew by a tenth or
 * more, up to 16, as long as there is work left; the first window that
 * did not grow ends the adapting. */
static void adapt_streams(sender *s, workers *k) {
  double dt = nl_tx_seconds_since(&s->tick_at);
  if (!s->adapting || dt < 0.5)
    return;
  pthread_mutex_lock(&s->lock);
  uint64_t bytes = s->result->bytes_sent;
  bool work_left = s->queued > 0 || !s->hash_done;
  bool stopped = s->stop;
  pthread_mutex_unlock(&s->lock);
  double rate = (double)(bytes - s->tick_bytes) / dt;
  s->tick_bytes = bytes;
  clock_gettime(CLOCK_MONOTONIC, &s->tick_at);
  if (s->settling) {
    s->settling = false;
    return;
  }
  int more = work_left && !stopped
                 ? nl_tx_auto_more(s->base_rate, rate, k->started)
                 : 0;
  if (more == 0) {
    s->adapting = false;
    return;
  }
  s->base_rate = rate;
  add_streams(s, k, more);
  s->settling = true;
}

/* A CHUNK_OK or CHUNK_BAD from the receiver. */
static void chunk_answer(sender *s, const uint8_t *p, struct timespec *t0) {
  uint32_t c = nl_get_be32(p);
  if (c >= s->chunk_count)
    return;
  pthread_mutex_lock(&s->lock);
  /* The answer frees the receiver's slot that held the chunk, if RDMA
   * carried it: the RDMA thread may write there again. */
#if NL_RDMA
  if (s->rdma_live && nl_rdma_credit_return(&s->credits, c))
    pthread_cond_broadcast(&s->cond);
#endif
  if (p[4] == 1 && !s->verified[c]) {
    s->verified[c] = 1;
    s->verified_count++;
    s->result->seconds = nl_tx_seconds_since(t0);
    if (s->progress)
      s->progress(s->ud, s->result);
  } else if (p[4] == 0) {
    s->result->chunks_resent++;
    nl_send_queue_push(s, c);
    pthread_cond_broadcast(&s->cond);
  }
  pthread_mutex_unlock(&s->lock);
}

/* The DONE: the receiver's tree digest (and plain SHA-256) must be ours. */
static int check_done(sender *s, const uint8_t *p, uint32_t len, char *err,
                      size_t errlen) {
  if (len != (s->cfg->sha256 ? 96u : 64u)) {
    snprintf(err, errlen, "a malformed DONE from the receiver");
    return -1;
  }
  if (memcmp(p, s->tree, 32) != 0) {
    snprintf(err, errlen, "the receiver's tree digest differs from ours");
    return -1;
  }
  if (s->cfg->sha256 && memcmp(p + 32, s->sha, 32) != 0) {
    snprintf(err, errlen, "the receiver's SHA-256 differs from ours");
    return -1;
  }
  return 0;
}

/* The control connection after the ACCEPT: the digests out as they are
 * computed, then END; in, chunks verified or refused, then DONE. This
 * thread is the only one that touches the connection. */
static int run_control(sender *s, workers *k, buffer *b, struct timespec *t0,
                       char *err, size_t errlen) {
  uint8_t hdr[NL_FRAME_HEADER_SIZE];
  nl_frame_type type;
  uint32_t len;
  bool ended = false;
  /* The receiver answers every chunk: silence this long is a lost peer. */
  double timeout = s->cfg->timeout_seconds > 0 ? s->cfg->timeout_seconds : 30;
  struct timespec heard;
  clock_gettime(CLOCK_MONOTONIC, &heard);
  for (;;) {
    int sent = ended ? 0 : send_digests(s, err, errlen);
    if (sent < 0)
      return -1;
    ended = ended || sent == 1;
    int ready = control_wait(s, s->adapting ? 250 : 1000);
    rdma_fallback(s, k);
    adapt_streams(s, k);
    /* Once END is out and every chunk verified, the receiver's last
     * fsync of the whole file comes before DONE: on a disk much slower
     * than the network that is minutes of silence, not a lost peer. */
    pthread_mutex_lock(&s->lock);
    bool all_in = ended && s->verified_count == s->chunk_count;
    pthread_mutex_unlock(&s->lock);
    double limit = all_in ? timeout * PUBLISH_TIMEOUT_FACTOR : timeout;
    if (ready == 0 && nl_tx_seconds_since(&heard) <= limit)
      continue;
    if (ready <= 0 || nl_tx_recv_frame(&s->control, hdr, b, &type, &len) != 0) {
      control_lost(s, err, errlen);
      return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &heard);
    if (type == NL_FRAME_ERROR) {
      nl_tx_error_from(&s->control, hdr, b->p, len, type, err, errlen,
                       "the receiver failed");
      return -1;
    }
    if (!nl_tx_mac_ok(&s->control, hdr, b->p, len)) {
      snprintf(err, errlen,
               "a control frame's MAC does not match (changed, replayed or "
               "injected on the way): the transfer was stopped");
      return -1;
    }
    if (type == NL_FRAME_CHUNK && len == 4 + 1 + 32)
      chunk_answer(s, b->p, t0);
    else if (type == NL_FRAME_DONE && ended)
      return check_done(s, b->p, len, err, errlen);
    else {
      snprintf(err, errlen, "unexpected frame %d from the receiver", type);
      return -1;
    }
  }
}

/* ---- the offer ---- */

/* Sends the frame being written in w (into f) with its MAC, and reads the
 * receiver's answer into hdr and b. Returns 0 or -1 with err set. */
static int ask(sender *s, nl_writer *w, uint8_t *f, uint8_t *hdr, buffer *b,
               nl_frame_type *type, uint32_t *len, char *err, size_t errlen) {
  long n = nl_tx_finish_with_mac(w, &s->control);
  if (n < 0 || nl_tx_conn_write(&s->control, f, (size_t)n) != 0 ||
      nl_tx_recv_frame(&s->control, hdr, b, type, len) != 0) {
    snprintf(err, errlen, "the receiver closed the connection");
    return -1;
  }
  return 0;
}

/* OFFER, then the ACCEPT: the transfer's id and what the receiver holds.
 * Returns 0 or -1 with err set. */
static int offer(sender *s, const char *remote_name, buffer *b, char *err,
                 size_t errlen) {
  uint8_t f[NL_FRAME_HEADER_SIZE + NL_FRAME_OFFER_MAX];
  nl_writer w;
  nl_writer_begin(&w, f, sizeof f, NL_FRAME_OFFER);
  nl_write_string(&w, remote_name, strlen(remote_name));
  nl_write_u8(&w, (uint8_t)((s->cfg->replace ? NL_OFFER_REPLACE : 0) |
                            (s->cfg->sha256 ? NL_OFFER_SHA256 : 0)));
  nl_write_u64(&w, s->size);
  nl_write_u32(&w, s->chunk_size);
  uint8_t hdr[NL_FRAME_HEADER_SIZE];
  nl_frame_type type;
  uint32_t len;
  if (ask(s, &w, f, hdr, b, &type, &len, err, errlen) != 0)
    return -1;
  nl_frame_accept a;
  char why[128];
  if (type != NL_FRAME_ACCEPT || !nl_tx_mac_ok(&s->control, hdr, b->p, len) ||
      nl_frame_parse_accept(b->p, len, s->chunk_count, &a, why, sizeof why) !=
          0) {
    nl_tx_error_from(&s->control, hdr, b->p, len, type, err, errlen,
                     type == NL_FRAME_ACCEPT
                         ? "the ACCEPT's MAC does not match, or it is malformed"
                         : "unexpected answer to the offer");
    return -1;
  }
  memcpy(s->id, a.id, sizeof s->id);
  /* b is overwritten by the next frame: keep what the hashing needs. */
  size_t bitmap = (s->chunk_count + 7) / 8;
  uint8_t *held = malloc(bitmap + (size_t)a.held_count * 32 + 1);
  if (held == NULL) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  memcpy(held, a.held, bitmap);
  memcpy(held + bitmap, a.digests, (size_t)a.held_count * 32);
  s->held = held;
  s->held_digests = held + bitmap;
  for (uint32_t c = 0, k = 0; c < s->chunk_count; c++)
    if (nl_frame_bit(held, c))
      s->held_at[c] = k++;
  return 0;
}

/* ---- RDMA (docs/protocol.md, "RDMA") ---- */

/* RDMA will not carry this transfer: with TRANSFER_RDMA=required that
 * fails the send; otherwise one log line says why and the TCP streams
 * carry it (a debug line only when this node has no device, which is
 * nearly every node, every time). Returns 0 or -1 with err set. */
static int rdma_not_used(sender *s, bool quiet, const char *why, char *err,
                         size_t errlen) {
  snprintf(s->result->rdma_note, sizeof s->result->rdma_note, "%s", why);
  if (s->cfg->rdma == NL_RDMA_REQUIRED) {
    snprintf(err, errlen,
             "RDMA was required (TRANSFER_RDMA=required) but cannot be used: "
             "%s",
             why);
    return -1;
  }
  if (quiet)
    nl_log_debug("transfer", "RDMA not used: %s", why);
  else
    nl_log_info("transfer", "RDMA not used: %s; sending over TCP streams", why);
  return 0;
}

#if NL_RDMA
/* The receiver is ready: the queue pair, bound to this session by the
 * MAC in its private data. Returns 0 or -1 with why. */
static int rdma_connect(sender *s, const nl_frame_rdma_answer *a,
                        const uint8_t nonce[NL_FRAME_NONCE_SIZE], char *why,
                        size_t whylen) {
  uint8_t private_data[NL_RDMA_PRIVATE_SIZE];
  struct sockaddr_storage peer;
  socklen_t peer_len = sizeof peer;
  if (nl_tx_rdma_mac(s->control_key, s->id, nonce, a->nonce, private_data) !=
          0 ||
      getpeername(s->control.fd, (struct sockaddr *)&peer, &peer_len) != 0) {
    snprintf(why, whylen, "no MAC or peer address for the connection");
    return -1;
  }
  int timeout = s->cfg->timeout_seconds > 0 ? s->cfg->timeout_seconds : 30;
  s->rdma = nl_rdma_connect((struct sockaddr *)&peer, a, private_data,
                            (timeout < 5 ? timeout : 5) * 1000, why, whylen);
  if (s->rdma == NULL)
    return -1;
  nl_rdma_credits_init(&s->credits, a->slots);
  s->rdma_live = true;
  return 0;
}
#endif

/* After the ACCEPT, RDMA is proposed where this node has a usable device
 * (or a test asks): the receiver answers ready, with its pool, or why
 * not; then the queue pair is connected. Any failure on the way leaves
 * the transfer to the TCP streams, or fails it with required. Returns 0
 * or -1 with err set. */
static int propose_rdma(sender *s, buffer *b, char *err, size_t errlen) {
  if (s->cfg->rdma == NL_RDMA_OFF || s->chunk_count == 0)
    return 0;
  char why[NL_FRAME_MESSAGE_MAX + 64] = "";
  nl_rdma_caps caps;
  bool here = nl_rdma_detect(&caps) > 0;
  /* RDMA WRITE moves the file's bytes as they are: an encrypted transfer
   * stays on its TLS streams. */
  if (s->cfg->encrypt) {
    snprintf(why, sizeof why,
             "the transfer is encrypted (TRANSFER_ENCRYPT=true or --encrypt) "
             "and RDMA would carry its bytes in clear");
    return rdma_not_used(s, !here, why, err, errlen);
  }
  if (!here && !s->cfg->rdma_propose_anyway) {
    snprintf(why, sizeof why, "this node cannot use RDMA: %s", caps.why);
    return rdma_not_used(s, true, why, err, errlen);
  }
  uint8_t nonce[NL_FRAME_NONCE_SIZE];
  uint8_t f[NL_FRAME_HEADER_SIZE + NL_FRAME_NONCE_SIZE + 32];
  nl_writer w;
  nl_writer_begin(&w, f, sizeof f, NL_FRAME_RDMA);
  if (nl_random(nonce, sizeof nonce) != 0) {
    snprintf(err, errlen, "no random bytes for a nonce");
    return -1;
  }
  nl_write_bytes(&w, nonce, sizeof nonce);
  uint8_t hdr[NL_FRAME_HEADER_SIZE];
  nl_frame_type type;
  uint32_t len;
  if (ask(s, &w, f, hdr, b, &type, &len, err, errlen) != 0)
    return -1;
  nl_frame_rdma_answer a;
  if (type != NL_FRAME_RDMA_ANSWER ||
      !nl_tx_mac_ok(&s->control, hdr, b->p, len) ||
      nl_frame_parse_rdma_answer(b->p, len, s->chunk_size, &a, why,
                                 sizeof why) != 0) {
    nl_tx_error_from(&s->control, hdr, b->p, len, type, err, errlen,
                     type == NL_FRAME_RDMA_ANSWER
                         ? "the RDMA answer's MAC does not match, or it is "
                           "malformed"
                         : "unexpected answer to the RDMA proposal");
    return -1;
  }
  if (!a.ready) {
    char refused[NL_FRAME_MESSAGE_MAX + 32];
    snprintf(refused, sizeof refused, "the receiver refused it: %s", a.reason);
    return rdma_not_used(s, false, refused, err, errlen);
  }
  if (!here) {
    snprintf(why, sizeof why, "this node cannot use RDMA: %s", caps.why);
    return rdma_not_used(s, false, why, err, errlen);
  }
#if NL_RDMA
  if (rdma_connect(s, &a, nonce, why, sizeof why) == 0)
    return 0;
#endif
  return rdma_not_used(s, false, why, err, errlen);
}

/* ---- the transfer ---- */

/* Checks the request and opens the file. Returns 0 or -1 with err set. */
static int open_source(sender *s, const char *path, char *err, size_t errlen) {
  uint32_t cs = s->cfg->chunk_size;
  if (cs < NL_FRAME_CHUNK_MIN || cs > NL_FRAME_CHUNK_MAX || (cs & (cs - 1)) ||
      s->cfg->streams < 0 || s->cfg->streams > 64) {
    snprintf(err, errlen, "bad chunk size or stream count");
    return -1;
  }
  s->file_fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (s->file_fd < 0 || fstat(s->file_fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    snprintf(err, errlen, "%s: %s", path,
             s->file_fd < 0 ? strerror(errno) : "not a regular file");
    return -1;
  }
  s->size = (uint64_t)st.st_size;
  s->chunk_size = cs;
  uint64_t chunks = nl_frame_chunks(s->size, cs);
  if (chunks > NL_FRAME_CHUNKS_MAX) {
    snprintf(err, errlen,
             "%s has too many chunks for one transfer: use a larger chunk "
             "size",
             path);
    return -1;
  }
  s->chunk_count = (uint32_t)chunks;
  s->result->size = s->size;
  s->result->chunks = s->chunk_count;
  return 0;
}

static int alloc_state(sender *s, char *err, size_t errlen) {
  size_t n = s->chunk_count ? s->chunk_count : 1;
  s->queue = malloc(n * sizeof *s->queue);
  s->in_queue = calloc(n, 1);
  s->verified = calloc(n, 1);
  s->sent_on = malloc(n);
  s->digests = malloc(n * 32);
  s->hashed = malloc(n * sizeof *s->hashed);
  s->held_at = malloc(n * sizeof *s->held_at);
  if (s->queue == NULL || s->in_queue == NULL || s->verified == NULL ||
      s->sent_on == NULL || s->digests == NULL || s->hashed == NULL ||
      s->held_at == NULL) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  memset(s->sent_on, -1, n);
  return 0;
}

static void free_state(sender *s) {
  free(s->queue);
  free(s->in_queue);
  free(s->verified);
  free(s->sent_on);
  free(s->digests);
  free(s->hashed);
  free(s->held_at);
  free((void *)s->held);
}

/* The control connection, authenticated, and the OFFER answered. */
static int start_control(sender *s, const char *remote_name, buffer *b,
                         char *err, size_t errlen) {
  handshake hs;
  if (nl_send_open_conn(&s->control, s->host, s->port, s->cfg, err, errlen) !=
          0 ||
      nl_tx_client_handshake(&s->control, s->cfg, 0, &hs, b, err, errlen) != 0)
    return -1;
  memcpy(s->control_key, hs.key, sizeof s->control_key);
  s->control.mac_key = s->control_key;
  s->control.out_dir = NL_AUTH_TO_RECEIVER;
  s->control.in_dir = NL_AUTH_TO_SENDER;
  snprintf(s->result->peer_id, sizeof s->result->peer_id, "%s", hs.peer_id);
  return offer(s, remote_name, b, err, errlen);
}

/* Starts n more data streams (fewer if threads cannot be had). */
static void add_streams(sender *s, workers *k, int n) {
  pthread_mutex_lock(&s->lock);
  s->live_streams += n;
  pthread_mutex_unlock(&s->lock);
  for (int i = 0; i < n; i++, k->started++) {
    stream *st = &k->streams[k->started];
    *st = (stream){.s = s, .index = (uint16_t)k->started};
    if (pthread_create(&st->thread, NULL, nl_send_stream_main, st) != 0) {
      pthread_mutex_lock(&s->lock);
      s->live_streams -= n - i;
      pthread_mutex_unlock(&s->lock);
      break;
    }
  }
}

static void start_workers(sender *s, workers *k) {
  k->hashing = pthread_create(&k->hasher, NULL, hash_chunks, s) == 0;
  if (!k->hashing)
    hash_chunks(s); /* no thread: hash first, then send */
  if (s->cfg->sha256) {
    k->plain_hashing = pthread_create(&k->plain, NULL, hash_plain, s) == 0;
    if (!k->plain_hashing)
      hash_plain(s);
  }
#if NL_RDMA
  if (s->rdma_live) {
    k->rdma_running = pthread_create(&k->rdma, NULL, nl_send_rdma_main, s) == 0;
    if (k->rdma_running)
      return;
    pthread_mutex_lock(&s->lock);
    s->rdma_live = false;
    snprintf(s->result->rdma_note, sizeof s->result->rdma_note,
             "no thread for RDMA");
    pthread_mutex_unlock(&s->lock);
    nl_log_info("transfer", "RDMA not used: no thread for it; sending over "
                            "TCP streams");
  }
#endif
  start_streams(s, k);
}

/* The TCP data streams: TRANSFER_STREAMS of them, or auto's first four. */
static void start_streams(sender *s, workers *k) {
  int want = s->cfg->streams == 0 ? AUTO_STREAMS_FIRST : s->cfg->streams;
  if ((uint32_t)want > s->chunk_count)
    want = (int)s->chunk_count;
  /* Adapting pays only where there are more chunks than streams. */
  s->adapting = s->cfg->streams == 0 && s->chunk_count > AUTO_STREAMS_FIRST;
  s->settling = true; /* the first window is the streams' ramp-up */
  s->tick_bytes = s->result->bytes_sent;
  clock_gettime(CLOCK_MONOTONIC, &s->tick_at);
  add_streams(s, k, want);
}

static void stop_workers(sender *s, workers *k) {
  pthread_mutex_lock(&s->lock);
  s->stop = true;
  for (int i = 0; i < 64; i++)
    if (s->stream_fds[i] >= 0)
      shutdown(s->stream_fds[i], SHUT_RDWR);
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->lock);
  for (int i = 0; i < k->started; i++)
    pthread_join(k->streams[i].thread, NULL);
#if NL_RDMA
  if (k->rdma_running)
    pthread_join(k->rdma, NULL);
  nl_rdma_close(s->rdma);
  s->rdma = NULL;
#endif
  if (k->hashing)
    pthread_join(k->hasher, NULL);
  if (k->plain_hashing)
    pthread_join(k->plain, NULL); /* one pass, not cancelled */
}

/* A sender without an id of its own is a new stranger each time, never a
 * fixed id (all zeros) that every such sender would share. */
static const nl_transfer_config *with_node_id(const nl_transfer_config *cfg,
                                              nl_transfer_config *copy,
                                              char id[33]) {
  if (cfg->node_id != NULL && cfg->node_id[0] != '\0')
    return cfg;
  uint8_t raw[16];
  if (nl_random(raw, sizeof raw) != 0)
    return NULL;
  nl_hex(raw, sizeof raw, id);
  *copy = *cfg;
  copy->node_id = id;
  return copy;
}

int nl_transfer_send(const char *host, int port, const char *path,
                     const char *remote_name, const nl_transfer_config *cfg,
                     nl_transfer_progress_cb progress, void *ud,
                     nl_transfer_result *result, char *err, size_t errlen) {
  memset(result, 0, sizeof *result);
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  nl_transfer_config copy;
  char random_id[33];
  if ((cfg = with_node_id(cfg, &copy, random_id)) == NULL) {
    snprintf(err, errlen, "no random bytes for a node id");
    return -1;
  }
  if (remote_name == NULL) {
    const char *slash = strrchr(path, '/');
    remote_name = slash ? slash + 1 : path;
  }
  if (nl_frame_name_check(remote_name, strlen(remote_name), err, errlen) != 0)
    return -1;
  sender s = {.cfg = cfg,
              .host = host,
              .port = port,
              .file_fd = -1,
              .control = {.fd = -1},
              .wake = {-1, -1},
              .result = result,
              .progress = progress,
              .ud = ud};
  for (int i = 0; i < 64; i++)
    s.stream_fds[i] = -1;
  pthread_mutex_init(&s.lock, NULL);
  pthread_cond_init(&s.cond, NULL);
  buffer b = {0};
  workers k = {0};
  int rc = -1;
  if (open_source(&s, path, err, errlen) != 0 ||
      alloc_state(&s, err, errlen) != 0)
    goto done;
  if (nl_pipe_nonblocking(s.wake) != 0) {
    snprintf(err, errlen, "cannot make a pipe: %s", strerror(errno));
    goto done;
  }
  if (start_control(&s, remote_name, &b, err, errlen) != 0 ||
      propose_rdma(&s, &b, err, errlen) != 0)
    goto done;
  start_workers(&s, &k);
  rc = run_control(&s, &k, &b, &t0, err, errlen);
  result->streams = (uint32_t)k.started;
done:
  stop_workers(&s, &k);
  nl_sha256_hex(s.tree, result->tree);
  if (cfg->sha256)
    nl_sha256_hex(s.sha, result->sha256);
  nl_send_close_conn(&s.control);
  if (s.file_fd >= 0)
    close(s.file_fd);
  for (int i = 0; i < 2; i++)
    if (s.wake[i] >= 0)
      close(s.wake[i]);
  pthread_cond_destroy(&s.cond);
  pthread_mutex_destroy(&s.lock);
  result->seconds = nl_tx_seconds_since(&t0);
  free_state(&s);
  free(b.p);
  return rc;
}
