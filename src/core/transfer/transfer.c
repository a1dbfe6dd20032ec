#ifdef __linux__
#define _GNU_SOURCE /* sync_file_range */
#endif
#include "transfer.h"

#include "auth.h"
#include "core/hash.h"
#include "deadline.h"
#include "core/log.h"
#include "core/portable.h"
#include "core/ratelimit.h"
#include "tls.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#ifdef __linux__
#include <sys/sendfile.h>
#endif
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#ifdef __APPLE__
/* macOS has no fdatasync in its headers; fsync is the same promise here. */
#define fdatasync(fd) fsync(fd)
#endif

enum {
  ERR_REFUSED = 1,  /* authentication */
  ERR_NAME = 2,     /* a file name that is not one safe component */
  ERR_TOO_BIG = 3,  /* over the receiver's maximum */
  ERR_NO_SPACE = 4, /* not enough free space, or the disk filled */
  ERR_BUSY = 5,     /* the same file is being received already */
  ERR_PROTOCOL = 6, /* a malformed or unexpected frame */
  ERR_IO = 7,       /* the receiver could not write */
  ERR_HASH = 8,     /* the whole file did not match */
  ERR_EXISTS = 9,   /* a file of that name is there, and no replace asked */
};

static const char JOIN_LABEL[] = "nodelua-v2 join";
/* From accept to authenticated, TLS included: a fixed deadline, so that
 * a peer without the key holds a thread for this long at the most. */
#define HANDSHAKE_SECONDS 5
#define PIECE (1024 * 1024) /* bytes of file per DATA frame */
#define JOIN_GRACE_SECONDS 1

static double seconds_since(const struct timespec *t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)(t.tv_sec - t0->tv_sec) + (t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* ---- blocking frame I/O ---- */

static void set_timeouts(int fd, int seconds) {
  struct timeval tv = {.tv_sec = seconds > 0 ? seconds : 30};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  nl_socket_nosigpipe(fd); /* macOS: it has no MSG_NOSIGNAL */
}

static int send_all(int fd, const void *p, size_t n, int flags) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = send(fd, c, n, MSG_NOSIGNAL | flags);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

static int write_all(int fd, const void *p, size_t n) {
  return send_all(fd, p, n, 0);
}

/* A connection: its socket, and TLS over it in the encrypted mode. On a
 * plain one, the bytes the listener read before the handover (pre) come
 * first; on a TLS one the TLS layer has them. */
typedef struct {
  int fd;
  nl_tls *tls;
  const uint8_t *pre;
  size_t pre_len;
  bool no_sendfile; /* the file's filesystem cannot sendfile */
  /* Before authentication, every read and write ends by this deadline. */
  const struct timespec *deadline;
  /* Once authenticated (a control connection): every frame is MAC'd with
   * this key over its direction and its number in that direction, so that
   * none can be changed, replayed, dropped or injected unseen. */
  const uint8_t *mac_key;
  uint8_t out_dir, in_dir;
  uint64_t out_seq, in_seq;
} conn;

/* The handshake's deadline over: from now on the connection's own I/O
 * timeouts apply. */
static void conn_end_deadline(conn *c, int timeout_seconds) {
  c->deadline = NULL;
  if (c->tls != NULL)
    nl_tls_set_deadline(c->tls, NULL);
  set_timeouts(c->fd, timeout_seconds);
}

static int conn_write(conn *c, const void *p, size_t n) {
  if (c->tls == NULL && c->deadline != NULL &&
      nl_deadline_arm(c->fd, c->deadline) != 0)
    return -1;
  return c->tls != NULL ? nl_tls_write(c->tls, p, n) : write_all(c->fd, p, n);
}

/* Reads exactly n bytes. Returns 0, or -1 (closed, timed out, failed). */
static int conn_read(conn *c, void *dst, size_t n) {
  uint8_t *d = dst;
  size_t take = c->pre_len < n ? c->pre_len : n;
  if (take > 0) {
    memcpy(d, c->pre, take);
    c->pre += take;
    c->pre_len -= take;
  }
  d += take;
  n -= take;
  while (n > 0) {
    ssize_t r; /* -2: nothing yet (a TLS record that was not data, EINTR) */
    if (c->tls != NULL)
      r = nl_tls_read(c->tls, d, n);
    else if (c->deadline != NULL && nl_deadline_arm(c->fd, c->deadline) != 0)
      r = -1;
    else if ((r = recv(c->fd, d, n, 0)) < 0 && errno == EINTR)
      r = -2;
    if (r == -2)
      continue;
    if (r <= 0)
      return -1;
    d += r;
    n -= (size_t)r;
  }
  return 0;
}

/* A connection's read buffer, grown to the largest frame read so far. */
typedef struct {
  uint8_t *p;
  size_t cap;
} buffer;

/* Reads one frame: header into hdr (payload_of: the header was read
 * already), payload into b (grown as needed up to the type's bound). A
 * frame of another type than want (or, if it is
 * not 0, also_want) is refused from its header, before anything is
 * allocated for it: in a handshake a peer gets no more memory than the
 * step expects (want 0: any type). Returns 0, or -1 (closed, timed out,
 * malformed, unexpected). */
static int payload_of(conn *c, const uint8_t hdr[NL_FRAME_HEADER_SIZE],
                      buffer *b, nl_frame_type *type, uint32_t *len,
                      unsigned want, unsigned also_want) {
  if (nl_frame_parse_header(hdr, type, len) != 0)
    return -1;
  if (want != 0 && *type != want && (also_want == 0 || *type != also_want))
    return -1;
  if (*len > b->cap) {
    uint8_t *grown = realloc(b->p, *len);
    if (grown == NULL)
      return -1;
    b->p = grown;
    b->cap = *len;
  }
  return *len == 0 ? 0 : conn_read(c, b->p, *len);
}

static int recv_frame_of(conn *c, uint8_t hdr[NL_FRAME_HEADER_SIZE], buffer *b,
                         nl_frame_type *type, uint32_t *len, unsigned want,
                         unsigned also_want) {
  return conn_read(c, hdr, NL_FRAME_HEADER_SIZE) == 0
             ? payload_of(c, hdr, b, type, len, want, also_want)
             : -1;
}

static int recv_frame(conn *c, uint8_t hdr[NL_FRAME_HEADER_SIZE], buffer *b,
                      nl_frame_type *type, uint32_t *len) {
  return recv_frame_of(c, hdr, b, type, len, 0, 0);
}

/* Appends the MAC of the frame so far (header with its final length) and
 * finishes it: the connection's next frame in its direction. */
static long finish_with_mac(nl_writer *w, conn *c) {
  if (w->failed || w->cap - w->len < NL_AUTH_SIZE || c->mac_key == NULL)
    return -1;
  size_t payload = w->len - NL_FRAME_HEADER_SIZE + NL_AUTH_SIZE;
  nl_put_be32(w->buf + 4, (uint32_t)payload);
  uint8_t mac[NL_AUTH_SIZE];
  if (nl_auth_frame_mac(c->mac_key, c->out_dir, c->out_seq, w->buf,
                        w->buf + NL_FRAME_HEADER_SIZE,
                        w->len - NL_FRAME_HEADER_SIZE, mac) != 0)
    return -1;
  c->out_seq++;
  nl_write_bytes(w, mac, sizeof mac);
  return nl_writer_finish(w);
}

/* Whether the last 32 bytes of a payload just read are its frame's MAC, as
 * the next frame of the peer's direction. Every frame read after
 * authentication takes its number, whether it matches or not. */
static bool mac_ok(conn *c, const uint8_t hdr[NL_FRAME_HEADER_SIZE],
                   const uint8_t *p, uint32_t len) {
  uint8_t mac[NL_AUTH_SIZE];
  uint64_t seq = c->in_seq++;
  return c->mac_key != NULL && len >= NL_AUTH_SIZE &&
         nl_auth_frame_mac(c->mac_key, c->in_dir, seq, hdr, p,
                           len - NL_AUTH_SIZE, mac) == 0 &&
         nl_mac_equal(mac, p + len - NL_AUTH_SIZE);
}

static int send_error(conn *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int send_error(conn *c, int code, const char *fmt, ...) {
  char msg[NL_FRAME_MESSAGE_MAX + 1];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (c == NULL)
    return -1;
  uint8_t f[NL_FRAME_HEADER_SIZE + 4 + NL_FRAME_MESSAGE_MAX + NL_AUTH_SIZE];
  nl_writer w;
  nl_writer_begin(&w, f, sizeof f, NL_FRAME_ERROR);
  nl_write_u16(&w, (uint16_t)code);
  nl_write_string(&w, msg, strlen(msg));
  /* After authentication an ERROR is MAC'd like every other frame: one
   * injected on the way would otherwise end a transfer. */
  long n = c->mac_key != NULL ? finish_with_mac(&w, c) : nl_writer_finish(&w);
  return n > 0 ? conn_write(c, f, (size_t)n) : -1;
}

static int join_mac(const uint8_t control_key[NL_AUTH_SIZE],
                    const uint8_t id[NL_FRAME_TRANSFER_ID_SIZE], uint16_t index,
                    const uint8_t cn[32], const uint8_t sn[32],
                    uint8_t out[NL_AUTH_SIZE]) {
  uint8_t a[sizeof JOIN_LABEL - 1 + NL_FRAME_TRANSFER_ID_SIZE + 2];
  memcpy(a, JOIN_LABEL, sizeof JOIN_LABEL - 1);
  memcpy(a + sizeof JOIN_LABEL - 1, id, NL_FRAME_TRANSFER_ID_SIZE);
  a[sizeof a - 2] = (uint8_t)(index >> 8);
  a[sizeof a - 1] = (uint8_t)index;
  uint8_t b[64];
  memcpy(b, cn, 32);
  memcpy(b + 32, sn, 32);
  return nl_mac(control_key, a, sizeof a, b, sizeof b, out);
}

/* ---- failures before authentication, logged at most once a minute per
 * source: a stranger can cause them at will ---- */

static nl_ratelimit handshake_failures = NL_RATELIMIT_INIT(60);

void nl_transfer_peer_address(int fd, char *out, size_t n) {
  struct sockaddr_storage a;
  socklen_t len = sizeof a;
  snprintf(out, n, "?");
  if (getpeername(fd, (struct sockaddr *)&a, &len) != 0)
    return;
  if (a.ss_family == AF_INET) {
    inet_ntop(AF_INET, &((struct sockaddr_in *)&a)->sin_addr, out,
              (socklen_t)n);
  } else if (a.ss_family == AF_INET6) {
    const struct in6_addr *v6 = &((struct sockaddr_in6 *)&a)->sin6_addr;
    /* An IPv4 peer on a dual-stack listener is the IPv4 address. */
    if (IN6_IS_ADDR_V4MAPPED(v6))
      inet_ntop(AF_INET, v6->s6_addr + 12, out, (socklen_t)n);
    else
      inet_ntop(AF_INET6, v6, out, (socklen_t)n);
  }
}

static void handshake_failed(int fd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void handshake_failed(int fd, const char *fmt, ...) {
  char from[64], what[400];
  nl_transfer_peer_address(fd, from, sizeof from);
  unsigned held_back = 0;
  if (!nl_ratelimit_allow(&handshake_failures, from, time(NULL), &held_back))
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  if (held_back > 0)
    nl_log_warn("transfer",
                "%s, from %s (and %u more from there in the last minute)", what,
                from, held_back);
  else
    nl_log_warn("transfer", "%s, from %s", what, from);
}

/* ---- the handshake ---- */

typedef struct {
  uint8_t cn[32], sn[32];
  uint8_t key[NL_AUTH_SIZE]; /* the connection key */
  char peer_id[NL_FRAME_ID_MAX + 1];
} handshake;

/* Reads an ERROR frame's message into err, if the frame is one. On an
 * authenticated connection its MAC must match first (the caller has not
 * checked it): an ERROR that does not match was changed or injected on
 * the way, and says nothing of what the receiver said. */
static void error_from(conn *c, const uint8_t hdr[NL_FRAME_HEADER_SIZE],
                       const uint8_t *p, uint32_t len, nl_frame_type type,
                       char *err, size_t errlen, const char *otherwise) {
  nl_frame_error e;
  char why[64];
  if (type == NL_FRAME_ERROR && c->mac_key != NULL) {
    if (!mac_ok(c, hdr, p, len)) {
      snprintf(err, errlen,
               "an ERROR frame whose MAC does not match (changed or injected "
               "on the way): the transfer was stopped");
      return;
    }
    len -= NL_AUTH_SIZE;
  }
  if (type == NL_FRAME_ERROR &&
      nl_frame_parse_error(p, len, &e, why, sizeof why) == 0)
    snprintf(err, errlen, "the receiver refused: %s", e.message);
  else
    snprintf(err, errlen, "%s", otherwise);
}

/* An id as the handshake binds it: hex in lower case, as the frames'
 * parser gives it, whatever case a side was configured with. */
static void canonical_id(char out[NL_FRAME_ID_MAX + 1], const char *id) {
  size_t i = 0;
  for (; id[i] != '\0' && i < NL_FRAME_ID_MAX; i++)
    out[i] = (char)tolower((unsigned char)id[i]);
  out[i] = '\0';
}

static int derive(const nl_transfer_config *cfg, nl_auth_label label,
                  const handshake *hs, uint8_t role, const char *sender_id,
                  const char *receiver_id, uint8_t out[NL_AUTH_SIZE]) {
  char sender[NL_FRAME_ID_MAX + 1], receiver[NL_FRAME_ID_MAX + 1];
  canonical_id(sender, sender_id);
  canonical_id(receiver, receiver_id);
  nl_auth_binding b = {.client_nonce = hs->cn,
                       .server_nonce = hs->sn,
                       .role = role,
                       .sender_id = sender,
                       .receiver_id = receiver};
  return nl_auth_derive(cfg->key, cfg->key_len, label, &b, out);
}

static bool same_id(const char *a, const char *b) {
  return strcasecmp(a, b) == 0;
}

static int client_handshake(conn *c, const nl_transfer_config *cfg,
                            uint8_t role, handshake *hs, buffer *b, char *err,
                            size_t errlen) {
  uint8_t f[256], hdr[NL_FRAME_HEADER_SIZE];
  if (nl_random(hs->cn, 32) != 0) {
    snprintf(err, errlen, "no random bytes");
    return -1;
  }
  nl_writer w;
  nl_writer_begin(&w, f, sizeof f, NL_FRAME_HELLO);
  nl_write_u8(&w, role);
  nl_write_bytes(&w, hs->cn, 32);
  nl_write_string(&w, cfg->node_id, strlen(cfg->node_id));
  long n = nl_writer_finish(&w);
  nl_frame_type type;
  uint32_t len;
  if (n < 0 || conn_write(c, f, (size_t)n) != 0 ||
      recv_frame_of(c, hdr, b, &type, &len, NL_FRAME_CHALLENGE,
                    NL_FRAME_ERROR) != 0) {
    snprintf(err, errlen,
             "the receiver closed the connection during the handshake (a "
             "node of another protocol version, or not nodelua?)");
    return -1;
  }
  nl_frame_challenge ch;
  char why[128];
  if (type != NL_FRAME_CHALLENGE ||
      nl_frame_parse_challenge(b->p, len, &ch, why, sizeof why) != 0) {
    error_from(c, hdr, b->p, len, type, err, errlen,
               "the receiver does not speak the nodelua protocol");
    return -1;
  }
  memcpy(hs->sn, ch.nonce, 32);
  snprintf(hs->peer_id, sizeof hs->peer_id, "%s", ch.id);
  /* The proof is bound to both ids as stated: the receiver's id below is
   * the one it proved, not one a relay put in. */
  uint8_t expected[NL_AUTH_SIZE], proof[NL_AUTH_SIZE];
  if (derive(cfg, NL_AUTH_SERVER_PROOF, hs, role, cfg->node_id, ch.id,
             expected) != 0 ||
      !nl_mac_equal(expected, ch.proof)) {
    snprintf(err, errlen,
             "the receiver does not hold this cluster's key "
             "(NODELUA_CLUSTER_KEY differs): nothing was sent");
    return -1;
  }
  if (cfg->expect_id != NULL && cfg->expect_id[0] != '\0' &&
      !same_id(ch.id, cfg->expect_id)) {
    snprintf(err, errlen,
             "the node that answered is %s, not %s that was meant (an "
             "address that moved to another node, or a redirected "
             "connection): nothing was sent",
             ch.id, cfg->expect_id);
    return -1;
  }
  if (derive(cfg, NL_AUTH_CLIENT_PROOF, hs, role, cfg->node_id, ch.id, proof) !=
          0 ||
      derive(cfg, NL_AUTH_SESSION_KEY, hs, role, cfg->node_id, ch.id,
             hs->key) != 0) {
    snprintf(err, errlen, "cannot compute the proof");
    return -1;
  }
  nl_writer_begin(&w, f, sizeof f, NL_FRAME_AUTH);
  nl_write_bytes(&w, proof, sizeof proof);
  n = nl_writer_finish(&w);
  if (n < 0 || conn_write(c, f, (size_t)n) != 0 ||
      recv_frame_of(c, hdr, b, &type, &len, NL_FRAME_OK, NL_FRAME_ERROR) != 0) {
    snprintf(err, errlen, "the receiver closed the connection");
    return -1;
  }
  if (type != NL_FRAME_OK) {
    error_from(c, hdr, b->p, len, type, err, errlen,
               "unexpected answer to AUTH");
    return -1;
  }
  return 0;
}

/* The receiver's half, after HELLO was read into hello. */
static int server_handshake(conn *c, const nl_transfer_config *cfg,
                            const nl_frame_hello *hello, handshake *hs,
                            buffer *b) {
  uint8_t f[256], hdr[NL_FRAME_HEADER_SIZE], proof[NL_AUTH_SIZE];
  memcpy(hs->cn, hello->nonce, 32);
  snprintf(hs->peer_id, sizeof hs->peer_id, "%s", hello->id);
  if (nl_random(hs->sn, 32) != 0 ||
      derive(cfg, NL_AUTH_SERVER_PROOF, hs, hello->role, hello->id,
             cfg->node_id, proof) != 0)
    return -1;
  nl_writer w;
  nl_writer_begin(&w, f, sizeof f, NL_FRAME_CHALLENGE);
  nl_write_bytes(&w, hs->sn, 32);
  nl_write_bytes(&w, proof, sizeof proof);
  nl_write_string(&w, cfg->node_id, strlen(cfg->node_id));
  long n = nl_writer_finish(&w);
  nl_frame_type type;
  uint32_t len;
  if (n < 0 || conn_write(c, f, (size_t)n) != 0 ||
      recv_frame_of(c, hdr, b, &type, &len, NL_FRAME_AUTH, 0) != 0 ||
      len != NL_AUTH_SIZE)
    return -1;
  uint8_t expected[NL_AUTH_SIZE];
  if (derive(cfg, NL_AUTH_CLIENT_PROOF, hs, hello->role, hello->id,
             cfg->node_id, expected) != 0 ||
      !nl_mac_equal(expected, b->p)) {
    send_error(c, ERR_REFUSED, "refused: not this cluster's key");
    handshake_failed(c->fd,
                     "refused a sender (node %s) that does not hold the "
                     "cluster key",
                     hs->peer_id);
    return -1;
  }
  if (derive(cfg, NL_AUTH_SESSION_KEY, hs, hello->role, hello->id, cfg->node_id,
             hs->key) != 0)
    return -1;
  nl_writer_begin(&w, f, sizeof f, NL_FRAME_OK);
  n = nl_writer_finish(&w);
  return n > 0 ? conn_write(c, f, (size_t)n) : -1;
}

/* ---- the receiver's sessions ---- */

typedef struct session session;
struct session {
  uint8_t id[NL_FRAME_TRANSFER_ID_SIZE];
  uint8_t key[NL_AUTH_SIZE]; /* the control connection's */
  conn *control;             /* NULL once the sender has gone */
  int streams;               /* data streams attached now */
  struct timespec active_at; /* when the last one left, or the start */
  pthread_mutex_t lock;      /* everything below, and all I/O on control */
  char name[NL_FRAME_NAME_MAX + 1];
  uint64_t size;
  uint32_t chunk_size, chunk_count, remaining;
  uint8_t file_digest[32];
  uint8_t *digests;
  uint8_t *verified; /* per chunk */
  /* Verified chunks not yet in the journal: they are recorded in batches,
   * each after one fdatasync that covers them all, instead of a sync per
   * chunk. A crash loses at most a batch, which is then sent again. */
  uint32_t *unjournaled;
  uint32_t unjournaled_count;
  pthread_mutex_t journal_lock; /* one batch at a time, and journal_end */
  off_t journal_end;
  pthread_mutex_t write_lock; /* pwrites to data_fd */
  /* Two worker threads fold and journal, so that data streams never wait
   * on a read-back or an fdatasync. They wait on work (with lock) for a
   * chunk verified, or the end. */
  pthread_t folder, journaler;
  pthread_cond_t work;
  bool folder_started, journaler_started, workers_stop;
  int data_fd, journal_fd;
  /* Names under the receive folder's fds (s->rd), never paths: nothing
   * done to the folder's path after it was checked can redirect them. */
  nl_recv_dir *rd;
  char part_name[80], journal_name[80];
  bool replace;      /* the sender asked to replace an existing file */
  uint64_t reserved; /* free space this session still claims in rd */
  char peer_id[NL_FRAME_ID_MAX + 1];
  /* The whole-file hash, folded in chunk order as chunks are verified, so
   * that little is left to hash once the last arrives. */
  pthread_mutex_t fold_lock;
  nl_sha256 *whole;
  uint32_t folded;
  bool fold_failed;
  bool finishing, finished, failed;
  int refs;
  session *next;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static session *registry;
static int registry_count;

int nl_transfer_sessions(void) {
  pthread_mutex_lock(&registry_lock);
  int n = registry_count;
  pthread_mutex_unlock(&registry_lock);
  return n;
}

/* Makes the verified chunks not yet journaled durable, then records them:
 * one fdatasync for the batch. Called without s->lock. */
static void journal_flush(session *s) {
  pthread_mutex_lock(&s->journal_lock);
  pthread_mutex_lock(&s->lock);
  uint32_t count = s->unjournaled_count;
  uint8_t *records = count ? malloc((size_t)count * 4) : NULL;
  for (uint32_t i = 0; records != NULL && i < count; i++) {
    nl_put_be32(records + (size_t)i * 4, s->unjournaled[i]);
  }
  if (records != NULL)
    s->unjournaled_count = 0;
  pthread_mutex_unlock(&s->lock);
  /* A chunk is on disk before the journal says so; a failed sync leaves
   * the batch out of the journal, and a resume sends it again. */
  size_t n = (size_t)count * 4;
  if (records != NULL && fdatasync(s->data_fd) == 0 &&
      pwrite(s->journal_fd, records, n, s->journal_end) == (ssize_t)n)
    s->journal_end += (off_t)n;
  /* else the next batch overwrites a torn tail */
  free(records);
  pthread_mutex_unlock(&s->journal_lock);
}

static void session_release(session *s) {
  pthread_mutex_lock(&registry_lock);
  bool last = --s->refs == 0, registered = false;
  if (last) {
    for (session **at = &registry; *at; at = &(*at)->next)
      if (*at == s) {
        *at = s->next; /* no longer findable by JOINs */
        registered = true;
        break;
      }
  }
  pthread_mutex_unlock(&registry_lock);
  if (!last)
    return;
  pthread_mutex_lock(&s->lock);
  s->workers_stop = true;
  pthread_cond_broadcast(&s->work);
  pthread_mutex_unlock(&s->lock);
  if (s->folder_started)
    pthread_join(s->folder, NULL);
  if (s->journaler_started)
    pthread_join(s->journaler, NULL);
  if (!s->finished)
    journal_flush(s); /* what was verified survives for the resume */
  if (s->data_fd >= 0)
    close(s->data_fd);
  if (s->journal_fd >= 0)
    close(s->journal_fd); /* and with it the lock */
  if (s->rd != NULL)
    nl_recv_dir_release(s->rd, s->reserved);
  pthread_mutex_destroy(&s->lock);
  pthread_mutex_destroy(&s->fold_lock);
  pthread_mutex_destroy(&s->journal_lock);
  pthread_mutex_destroy(&s->write_lock);
  pthread_cond_destroy(&s->work);
  nl_sha256_free(s->whole);
  free(s->digests);
  free(s->verified);
  free(s->unjournaled);
  free(s);
  /* Counted as in progress until here: once nl_transfer_sessions() says
   * none, no session touches its journal, files or receive folder. */
  if (registered) {
    pthread_mutex_lock(&registry_lock);
    registry_count--;
    pthread_mutex_unlock(&registry_lock);
  }
}

static session *session_find(const uint8_t id[NL_FRAME_TRANSFER_ID_SIZE]) {
  pthread_mutex_lock(&registry_lock);
  session *s = registry;
  while (s != NULL && memcmp(s->id, id, NL_FRAME_TRANSFER_ID_SIZE) != 0)
    s = s->next;
  if (s != NULL)
    s->refs++;
  pthread_mutex_unlock(&registry_lock);
  return s;
}

static uint32_t chunk_len(const session *s, uint32_t i) {
  uint64_t start = (uint64_t)i * s->chunk_size;
  uint64_t left = s->size - start;
  return left < s->chunk_size ? (uint32_t)left : s->chunk_size;
}

/* Sends a MAC'd frame on the control connection; the caller holds lock.
 * Once the sender has gone, there is nobody to tell: data already on its
 * way is still verified and journaled, for the resume. */
static void control_send(session *s, nl_writer *w) {
  if (s->control == NULL)
    return;
  long n = finish_with_mac(w, s->control);
  if (n < 0 || conn_write(s->control, w->buf, (size_t)n) != 0)
    s->control = NULL;
}

#define JOURNAL_MAGIC "NLJ1"

/* Opens name under dir_fd, never through a symlink. */
static int open_under(int dir_fd, const char *name, int flags) {
  return openat(dir_fd, name, flags | O_NOFOLLOW | O_CLOEXEC, 0600);
}

/* Renames the staging file to its final name. Without replace, a file
 * that appeared there meanwhile is kept (EEXIST), atomically where the
 * system can: renameat2's RENAME_NOREPLACE, renameatx_np's RENAME_EXCL. */
static int publish_rename(session *s) {
  int from = s->rd->partial_fd, to = s->rd->dir_fd;
  if (s->replace)
    return renameat(from, s->part_name, to, s->name);
#if defined(__linux__) && defined(RENAME_NOREPLACE)
  if (renameat2(from, s->part_name, to, s->name, RENAME_NOREPLACE) == 0)
    return 0;
  if (errno != EINVAL && errno != ENOSYS)
    return -1;
#elif defined(__APPLE__) && defined(RENAME_EXCL)
  if (renameatx_np(from, s->part_name, to, s->name, RENAME_EXCL) == 0)
    return 0;
  if (errno != EINVAL && errno != ENOTSUP)
    return -1;
#endif
  /* A filesystem without the atomic form: link, which never replaces,
   * then drop the staging name. */
  if (linkat(from, s->part_name, to, s->name, 0) != 0)
    return -1;
  unlinkat(from, s->part_name, 0);
  return 0;
}

/* Writes the journal's header for this offer; returns 0 or -1. */
static int journal_header(session *s) {
  uint8_t h[4 + 8 + 4 + 32 + 2 + NL_FRAME_NAME_MAX];
  nl_writer w = {.buf = h, .cap = sizeof h};
  nl_write_bytes(&w, JOURNAL_MAGIC, 4);
  nl_write_u64(&w, s->size);
  nl_write_u32(&w, s->chunk_size);
  nl_write_bytes(&w, s->file_digest, 32);
  nl_write_string(&w, s->name, strlen(s->name));
  if (w.failed || ftruncate(s->journal_fd, 0) != 0 ||
      pwrite(s->journal_fd, h, w.len, 0) != (ssize_t)w.len ||
      fsync(s->journal_fd) != 0)
    return -1;
  return (int)w.len;
}

/* Reads what the journal says is verified already, if it is this offer's.
 * Returns the header's length (records follow), or -1 for a journal to
 * start afresh. */
static long journal_load(session *s) {
  struct stat st;
  if (fstat(s->journal_fd, &st) != 0 || st.st_size == 0 ||
      st.st_size > 64 * 1024 * 1024)
    return -1;
  uint8_t *j = malloc((size_t)st.st_size);
  if (j == NULL ||
      pread(s->journal_fd, j, (size_t)st.st_size, 0) != (ssize_t)st.st_size) {
    free(j);
    return -1;
  }
  nl_reader r;
  nl_reader_init(&r, j, (size_t)st.st_size);
  const uint8_t *magic = nl_read_bytes(&r, 4);
  uint64_t size = nl_read_u64(&r);
  uint32_t cs = nl_read_u32(&r);
  const uint8_t *digest = nl_read_bytes(&r, 32);
  size_t name_len = 0;
  const char *name = nl_read_string(&r, NL_FRAME_NAME_MAX, &name_len);
  long header = -1;
  if (!r.failed && memcmp(magic, JOURNAL_MAGIC, 4) == 0 && size == s->size &&
      cs == s->chunk_size && memcmp(digest, s->file_digest, 32) == 0 &&
      name_len == strlen(s->name) && memcmp(name, s->name, name_len) == 0) {
    header = (long)r.pos;
    /* Whole records only: a torn last one (a crash mid-write) is ignored. */
    while (r.len - r.pos >= 4) {
      uint32_t i = nl_read_u32(&r);
      if (i < s->chunk_count && !s->verified[i]) {
        s->verified[i] = 1;
        s->remaining--;
      }
    }
  }
  free(j);
  return header;
}

/* Opens (or resumes) the partial file and journal of an offer, under the
 * staging folder's fd. Returns 0, or an error code with the message in
 * err. */
static int session_open_files(session *s, char *err, size_t errlen) {
  int partial = s->rd->partial_fd;
  /* Named by what is being sent: the same file sent again finds its
   * journal; another file of the same name does not. */
  nl_sha256 *h = nl_sha256_new();
  uint8_t key[32];
  uint8_t size_be[8];
  nl_put_be64(size_be, s->size);
  if (h == NULL || nl_sha256_update(h, s->name, strlen(s->name) + 1) != 0 ||
      nl_sha256_update(h, size_be, 8) != 0 ||
      nl_sha256_update(h, s->file_digest, 32) != 0 ||
      nl_sha256_final(h, key) != 0) {
    nl_sha256_free(h);
    snprintf(err, errlen, "hashing failed");
    return ERR_IO;
  }
  nl_sha256_free(h);
  char hex[NL_SHA256_HEX_SIZE];
  nl_sha256_hex(key, hex);
  hex[32] = '\0';
  snprintf(s->part_name, sizeof s->part_name, "%s.part", hex);
  snprintf(s->journal_name, sizeof s->journal_name, "%s.journal", hex);
  /* A sender that died a moment ago leaves its session for the grace
   * period: wait that long for its lock before calling the file busy. The
   * lock counts only on the journal still at its name: a session that
   * finished while we waited has published the part and unlinked the
   * journal we hold, and its records would claim chunks of a file that
   * is no longer there. Then we open the name afresh. */
  bool locked = false;
  for (int i = 0; i < (JOIN_GRACE_SECONDS + 2) * 20 && !locked; i++) {
    if (s->journal_fd < 0) {
      s->journal_fd = open_under(partial, s->journal_name, O_RDWR | O_CREAT);
      if (s->journal_fd < 0) {
        snprintf(err, errlen, "cannot open the journal %s: %s", s->journal_name,
                 strerror(errno));
        return ERR_IO;
      }
    }
    if (flock(s->journal_fd, LOCK_EX | LOCK_NB) == 0) {
      struct stat held, named;
      locked =
          fstat(s->journal_fd, &held) == 0 &&
          fstatat(partial, s->journal_name, &named, AT_SYMLINK_NOFOLLOW) == 0 &&
          held.st_ino == named.st_ino && held.st_dev == named.st_dev;
      if (!locked) {
        close(s->journal_fd); /* and its lock */
        s->journal_fd = -1;
        continue;
      }
    } else {
      usleep(50 * 1000);
    }
  }
  if (!locked) {
    snprintf(err, errlen,
             "this file (%.150s) is being received from another sender right "
             "now",
             s->name);
    return ERR_BUSY;
  }
  long header = journal_load(s);
  if (header >= 0) {
    /* A resume: the part must be the one the journal speaks of. */
    s->data_fd = open_under(partial, s->part_name, O_RDWR);
    if (s->data_fd < 0) {
      for (uint32_t i = 0; i < s->chunk_count; i++)
        s->verified[i] = 0;
      s->remaining = s->chunk_count;
      header = -1;
    }
  }
  if (header < 0) {
    /* Afresh: a new staging file, made here and now (O_EXCL), never one
     * that was there before. */
    if (unlinkat(partial, s->part_name, 0) != 0 && errno != ENOENT) {
      snprintf(err, errlen, "cannot remove the stale %s: %s", s->part_name,
               strerror(errno));
      return ERR_IO;
    }
    s->data_fd = open_under(partial, s->part_name, O_RDWR | O_CREAT | O_EXCL);
    if (s->data_fd < 0 || (s->journal_end = journal_header(s)) < 0) {
      snprintf(err, errlen, "cannot start %s: %s", s->part_name,
               strerror(errno));
      return ERR_IO;
    }
  } else {
    /* Records go after what is there; a torn record is cut off first. */
    struct stat st;
    fstat(s->journal_fd, &st);
    s->journal_end = header + (st.st_size - header) / 4 * 4;
    if (ftruncate(s->journal_fd, s->journal_end) != 0) {
      snprintf(err, errlen, "cannot trim %s", s->journal_name);
      return ERR_IO;
    }
  }
  /* Room for what is still to come, claimed before anything is taken:
   * sessions side by side each see what the others have claimed. */
  uint64_t missing = 0, left = 0;
  for (uint32_t i = 0; i < s->chunk_count; i++)
    if (!s->verified[i])
      missing += chunk_len(s, i);
  if (nl_recv_dir_reserve(s->rd, missing, &left) != 0) {
    snprintf(err, errlen,
             "not enough space: %llu bytes to write, %llu free in %.100s "
             "(less what transfers in progress need)",
             (unsigned long long)missing, (unsigned long long)left,
             s->rd->path);
    return ERR_NO_SPACE;
  }
  s->reserved = missing;
  return 0;
}

/* Folds verified chunks into the whole-file hash, in order, as far as
 * they go: the session's worker as chunks come, and the finishing thread
 * for what is left. One at a time. Called without s->lock. */
static void fold(session *s) {
  pthread_mutex_lock(&s->fold_lock);
  enum { BUF = 256 * 1024 };
  uint8_t *buf = NULL;
  for (;;) {
    pthread_mutex_lock(&s->lock);
    uint32_t c = s->folded;
    bool ready = c < s->chunk_count && s->verified[c] && !s->fold_failed;
    pthread_mutex_unlock(&s->lock);
    if (!ready)
      break;
    if (buf == NULL && (buf = malloc(BUF)) == NULL) {
      pthread_mutex_lock(&s->lock);
      s->fold_failed = true; /* rather than a folder that spins */
      pthread_mutex_unlock(&s->lock);
      break;
    }
    uint64_t at = (uint64_t)c * s->chunk_size;
    uint32_t left = chunk_len(s, c);
    while (left > 0) {
      ssize_t got = pread(s->data_fd, buf, left < BUF ? left : BUF, (off_t)at);
      if (got <= 0 || nl_sha256_update(s->whole, buf, (size_t)got) != 0) {
        pthread_mutex_lock(&s->lock);
        s->fold_failed = true;
        pthread_mutex_unlock(&s->lock);
        break;
      }
      at += (uint64_t)got;
      left -= (uint32_t)got;
    }
    pthread_mutex_lock(&s->lock);
    if (!s->fold_failed)
      s->folded++;
    pthread_mutex_unlock(&s->lock);
  }
  free(buf);
  pthread_mutex_unlock(&s->fold_lock);
}

/* The whole file is verified chunk by chunk: check it whole, make it
 * durable, publish it under its name, and say DONE. Called without the
 * lock, by the one thread that set s->finishing. */
static void session_finish(session *s) {
  fold(s);
  uint8_t digest[32];
  bool whole_ok = !s->fold_failed && s->folded == s->chunk_count &&
                  nl_sha256_final(s->whole, digest) == 0 &&
                  memcmp(digest, s->file_digest, 32) == 0;
  if (!whole_ok) {
    /* Which chunks are not what was verified: for the log, since this
     * means the staging file changed under us (or a bug). */
    uint32_t differ = 0, first = 0;
    for (uint32_t c = 0; c < s->chunk_count; c++) {
      uint8_t d[32];
      if (nl_sha256_file_range(s->data_fd, (uint64_t)c * s->chunk_size,
                               chunk_len(s, c), d) != 0 ||
          memcmp(d, s->digests + (size_t)c * 32, 32) != 0) {
        if (differ++ == 0)
          first = c;
      }
    }
    nl_log_warn("transfer",
                "%s from %s: the whole file does not match; %u of %u chunks "
                "differ on disk from what was verified (the first: %u)",
                s->name, s->peer_id, differ, s->chunk_count, first);
  }
  pthread_mutex_lock(&s->lock);
  if (!whole_ok) {
    send_error(s->control, ERR_HASH,
               "the whole file's SHA-256 does not match; nothing published");
    unlinkat(s->rd->partial_fd, s->part_name, 0);
    unlinkat(s->rd->partial_fd, s->journal_name, 0);
    s->failed = true;
    pthread_mutex_unlock(&s->lock);
    return;
  }
  if (ftruncate(s->data_fd, (off_t)s->size) != 0 ||
      nl_fsync_full(s->data_fd) != 0) {
    send_error(s->control, ERR_IO, "cannot publish %s: %s", s->name,
               strerror(errno));
    s->failed = true;
    pthread_mutex_unlock(&s->lock);
    return;
  }
  if (publish_rename(s) != 0) {
    int e = errno;
    if (e == EEXIST)
      send_error(s->control, ERR_EXISTS,
                 "%s exists on the receiver (it appeared during the "
                 "transfer); send again with --force to replace it",
                 s->name);
    else
      send_error(s->control, ERR_IO, "cannot publish %s: %s", s->name,
                 strerror(e));
    s->failed = true;
    pthread_mutex_unlock(&s->lock);
    return;
  }
  /* The new name is durable once its directory is. */
  nl_fsync_full(s->rd->dir_fd);
  unlinkat(s->rd->partial_fd, s->journal_name, 0);
  s->finished = true;
  char hex[NL_SHA256_HEX_SIZE];
  nl_sha256_hex(digest, hex);
  nl_log_info("transfer", "received %s/%s (%llu bytes) from %s: sha256 %s",
              s->rd->path, s->name, (unsigned long long)s->size, s->peer_id,
              hex);
  uint8_t f[NL_FRAME_HEADER_SIZE + 64];
  nl_writer w;
  nl_writer_begin(&w, f, sizeof f, NL_FRAME_DONE);
  nl_write_bytes(&w, digest, 32);
  control_send(s, &w);
  pthread_mutex_unlock(&s->lock);
}

/* A worker of the session: does work, outside the lock, whenever ready
 * says there is some, until the session ends. */
static void run_worker(session *s, bool (*ready)(const session *),
                       void (*work)(session *)) {
  pthread_mutex_lock(&s->lock);
  while (!s->workers_stop) {
    if (ready(s)) {
      pthread_mutex_unlock(&s->lock);
      work(s);
      pthread_mutex_lock(&s->lock);
    } else {
      pthread_cond_wait(&s->work, &s->lock);
    }
  }
  pthread_mutex_unlock(&s->lock);
}

static bool fold_ready(const session *s) {
  return s->folded < s->chunk_count && s->verified[s->folded] &&
         !s->fold_failed;
}

static bool journal_ready(const session *s) { return s->unjournaled_count > 0; }

/* The folder: verified chunks into the whole-file hash, in order. */
static void *session_folder(void *arg) {
  run_worker(arg, fold_ready, fold);
  return NULL;
}

/* The journaler: whatever was verified since its last fdatasync, one sync
 * for all of it (a group commit: the batches are as large as the disk is
 * slow, and no data stream waits for them). */
static void *session_journaler(void *arg) {
  run_worker(arg, journal_ready, journal_flush);
  return NULL;
}

/* One data stream's chunk in progress. A chunk's DATA frames come on one
 * stream, in order from offset 0, and are hashed as they arrive: a chunk
 * is verified from the bytes received, without reading it back. (The
 * whole-file hash is folded from the file itself, which checks what is on
 * disk end to end.) */
typedef struct {
  nl_sha256 *hash;
  uint32_t chunk, next;
  bool open, skip;
} stream_chunk;

/* A whole chunk has arrived: answer CHUNK_OK or CHUNK_BAD, and record it. */
static void chunk_checked(session *s, uint32_t c, bool good) {
#ifdef __linux__
  /* Start writing it out now, so that the journal's sync and the final
   * fsync find little left to do. */
  if (good)
    sync_file_range(s->data_fd, (off_t)((uint64_t)c * s->chunk_size),
                    (off_t)chunk_len(s, c), SYNC_FILE_RANGE_WRITE);
#endif
  pthread_mutex_lock(&s->lock);
  uint8_t f[64];
  nl_writer w;
  nl_writer_begin(&w, f, sizeof f, NL_FRAME_CHUNK);
  nl_write_u32(&w, c);
  nl_write_u8(&w, good ? 1 : 0); /* 0: to be sent again, alone */
  if (good && !s->verified[c]) {
    s->verified[c] = 1;
    s->remaining--;
    /* Written now: the disk's free space counts it, the claim need not. */
    uint64_t n = chunk_len(s, c) < s->reserved ? chunk_len(s, c) : s->reserved;
    s->reserved -= n;
    nl_recv_dir_release(s->rd, n);
    s->unjournaled[s->unjournaled_count++] = c;
    pthread_cond_broadcast(&s->work); /* to fold it, and journal it */
  }
  control_send(s, &w);
  bool finish_now = good && s->remaining == 0 && !s->failed && !s->finishing;
  if (finish_now)
    s->finishing = true;
  pthread_mutex_unlock(&s->lock);
  if (finish_now)
    session_finish(s);
}

/* DATA into the partial file. Returns 0, or -1 to drop the stream (a frame
 * out of order, or the file could not be written). */
static int session_data(session *s, stream_chunk *sc, const nl_frame_data *d) {
  if (d->chunk >= s->chunk_count ||
      d->offset + (uint64_t)d->len > chunk_len(s, d->chunk))
    return -1;
  pthread_mutex_lock(&s->lock);
  bool failed = s->failed, verified = s->verified[d->chunk];
  pthread_mutex_unlock(&s->lock);
  if (d->offset == 0 && !sc->open) {
    *sc = (stream_chunk){
        .hash = sc->hash, .chunk = d->chunk, .open = true, .skip = verified};
  } else if (!sc->open || d->chunk != sc->chunk || d->offset != sc->next) {
    return -1;
  }
  sc->next += d->len;
  bool last = sc->next == chunk_len(s, d->chunk);
  if (last)
    sc->open = false;
  if (sc->skip || failed)
    return 0;
  off_t at = (off_t)((uint64_t)d->chunk * s->chunk_size + d->offset);
  /* Writes to one file are serialised by the kernel anyway (the inode's
   * lock); waiting here sleeps, where waiting there spins a core. */
  pthread_mutex_lock(&s->write_lock);
  ssize_t written = pwrite(s->data_fd, d->data, d->len, at);
  pthread_mutex_unlock(&s->write_lock);
  if (written != (ssize_t)d->len) {
    int e = written < 0 ? errno : ENOSPC;
    pthread_mutex_lock(&s->lock);
    send_error(s->control, e == ENOSPC ? ERR_NO_SPACE : ERR_IO,
               "the receiver cannot write %s: %s", s->name, strerror(e));
    if (e == ENOSPC && !s->failed) {
      /* A full disk is everybody's problem: give the space back now
       * rather than keep the part for a resume that could not fit. */
      unlinkat(s->rd->partial_fd, s->part_name, 0);
      unlinkat(s->rd->partial_fd, s->journal_name, 0);
      if (ftruncate(s->data_fd, 0) != 0) {
        /* the space comes back when the session closes the file */
      }
      nl_log_warn("transfer", "%s from %s: the disk is full; dropped it",
                  s->name, s->peer_id);
    }
    s->failed = true;
    pthread_mutex_unlock(&s->lock);
    return -1;
  }
  uint8_t digest[32];
  if (nl_sha256_update(sc->hash, d->data, d->len) != 0 ||
      (last && nl_sha256_final(sc->hash, digest) != 0))
    return -1;
  if (last)
    chunk_checked(s, d->chunk,
                  memcmp(digest, s->digests + (size_t)d->chunk * 32, 32) == 0);
  return 0;
}

/* Waits until the sender closes the control connection: it says nothing
 * more after its OFFER, and anything it does say ends the session. Data
 * threads write CHUNK frames on this connection, and a TLS connection is
 * not to be used from two threads at once, so reads take the session's
 * lock; poll waits without it. A sender that vanished without closing is
 * given up once no data stream has been attached for the timeout. */
static void await_close(session *s, conn *c, const nl_transfer_config *cfg) {
  int timeout = cfg->timeout_seconds > 0 ? cfg->timeout_seconds : 30;
  uint8_t scrap[64];
  for (;;) {
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    int ready = poll(&p, 1, 1000);
    if (ready < 0 && errno != EINTR)
      return;
    pthread_mutex_lock(&s->lock);
    bool idle =
        s->streams == 0 && seconds_since(&s->active_at) > (double)timeout;
    ssize_t got = -2;
    if (ready > 0) {
      if (c->tls != NULL)
        got = nl_tls_read(c->tls, scrap, sizeof scrap);
      else if ((got = recv(c->fd, scrap, sizeof scrap, MSG_DONTWAIT)) < 0 &&
               (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        got = -2;
    }
    pthread_mutex_unlock(&s->lock);
    if (got != -2 || (ready == 0 && idle))
      return;
  }
}

static void serve_control(conn *c, const nl_transfer_config *cfg, handshake *hs,
                          buffer *b) {
  uint8_t hdr[NL_FRAME_HEADER_SIZE];
  nl_frame_type type;
  uint32_t len;
  if (recv_frame(c, hdr, b, &type, &len) != 0)
    return;
  char why[256];
  nl_frame_offer o;
  if (type != NL_FRAME_OFFER) {
    send_error(c, ERR_PROTOCOL, "expected an OFFER");
    return;
  }
  if (!mac_ok(c, hdr, b->p, len)) {
    send_error(c, ERR_PROTOCOL, "the OFFER's MAC does not match");
    return;
  }
  if (nl_frame_parse_offer(b->p, len, &o, why, sizeof why) != 0) {
    send_error(c, strstr(why, "name") ? ERR_NAME : ERR_PROTOCOL, "%s", why);
    return;
  }
  if (o.size > cfg->max_bytes) {
    send_error(c, ERR_TOO_BIG,
               "%s is %llu bytes, over this receiver's maximum of %llu "
               "(TRANSFER_MAX_BYTES)",
               o.name, (unsigned long long)o.size,
               (unsigned long long)cfg->max_bytes);
    return;
  }
  /* A file of that name stays unless the sender asked to replace it; the
   * publishing rename checks again, atomically, at the end. */
  struct stat existing;
  if (!o.replace && fstatat(cfg->recv_dir->dir_fd, o.name, &existing,
                            AT_SYMLINK_NOFOLLOW) == 0) {
    send_error(c, ERR_EXISTS,
               "%s exists on the receiver; send with --force to replace it",
               o.name);
    return;
  }
  nl_recv_dir_sweep_if_due(cfg->recv_dir);
  session *s = calloc(1, sizeof *s);
  if (s == NULL)
    return;
  pthread_mutex_init(&s->lock, NULL);
  pthread_mutex_init(&s->fold_lock, NULL);
  pthread_mutex_init(&s->journal_lock, NULL);
  pthread_mutex_init(&s->write_lock, NULL);
  pthread_cond_init(&s->work, NULL);
  s->whole = nl_sha256_new();
  s->control = c;
  s->data_fd = s->journal_fd = -1;
  s->refs = 1;
  memcpy(s->key, hs->key, NL_AUTH_SIZE);
  snprintf(s->peer_id, sizeof s->peer_id, "%s", hs->peer_id);
  snprintf(s->name, sizeof s->name, "%s", o.name);
  s->rd = cfg->recv_dir;
  s->replace = o.replace;
  s->size = o.size;
  s->chunk_size = o.chunk_size;
  s->chunk_count = s->remaining = o.chunk_count;
  memcpy(s->file_digest, o.file_digest, 32);
  size_t count = o.chunk_count ? o.chunk_count : 1;
  s->digests = malloc(count * 32);
  s->verified = calloc(count, 1);
  s->unjournaled = calloc(count, sizeof *s->unjournaled);
  clock_gettime(CLOCK_MONOTONIC, &s->active_at);
  if (s->digests == NULL || s->verified == NULL || s->unjournaled == NULL ||
      s->whole == NULL || nl_random(s->id, sizeof s->id) != 0) {
    session_release(s);
    return;
  }
  memcpy(s->digests, o.chunk_digests, (size_t)o.chunk_count * 32);
  int code = session_open_files(s, why, sizeof why);
  if (code != 0) {
    nl_log_warn("transfer", "refused %s from %s: %s", s->name, s->peer_id, why);
    send_error(c, code, "%s", why);
    session_release(s);
    return;
  }
  pthread_mutex_lock(&registry_lock);
  s->next = registry;
  registry = s;
  registry_count++;
  pthread_mutex_unlock(&registry_lock);
  /* Without its workers a session still works: the fold is done at the
   * end, and the journal written when the session closes. */
  s->folder_started = pthread_create(&s->folder, NULL, session_folder, s) == 0;
  s->journaler_started =
      pthread_create(&s->journaler, NULL, session_journaler, s) == 0;

  /* ACCEPT: the transfer's id and the chunks still wanted. */
  size_t bitmap = (s->chunk_count + 7) / 8;
  uint8_t *f = malloc(NL_FRAME_HEADER_SIZE + 16 + bitmap + 32);
  if (f != NULL) {
    nl_writer w;
    nl_writer_begin(&w, f, NL_FRAME_HEADER_SIZE + 16 + bitmap + 32,
                    NL_FRAME_ACCEPT);
    nl_write_bytes(&w, s->id, sizeof s->id);
    for (size_t i = 0; i < bitmap; i++) {
      uint8_t byte = 0;
      for (uint32_t bit = 0; bit < 8; bit++) {
        uint32_t chunk = (uint32_t)(i * 8 + bit);
        if (chunk < s->chunk_count && !s->verified[chunk])
          byte |= (uint8_t)(0x80 >> bit);
      }
      nl_write_u8(&w, byte);
    }
    pthread_mutex_lock(&s->lock);
    control_send(s, &w);
    /* An empty file, or all of it there already: finish now. */
    bool finish_now = s->remaining == 0 && !s->failed && !s->finishing;
    if (finish_now)
      s->finishing = true;
    pthread_mutex_unlock(&s->lock);
    free(f);
    if (finish_now)
      session_finish(s);
    /* else the worker folds what a resume found verified, as data comes */
  }
  /* The sender says nothing more here; its closing ends the session (the
   * journal stays for a resume unless the file was published). */
  await_close(s, c, cfg);
  pthread_mutex_lock(&s->lock);
  s->control = NULL;
  bool finished = s->finished;
  pthread_mutex_unlock(&s->lock);
  /* A sender that died may have left data in the kernel's buffers of
   * streams whose threads have not joined yet: the session stays findable
   * a moment longer, so that what arrived is verified and journaled. */
  if (!finished)
    sleep(JOIN_GRACE_SECONDS);
  session_release(s);
}

static void serve_data(conn *c, handshake *hs, buffer *b) {
  uint8_t hdr[NL_FRAME_HEADER_SIZE];
  nl_frame_type type;
  uint32_t len;
  if (recv_frame(c, hdr, b, &type, &len) != 0 || type != NL_FRAME_JOIN ||
      len != NL_FRAME_TRANSFER_ID_SIZE + 2 + NL_AUTH_SIZE)
    return;
  session *s = session_find(b->p);
  if (s == NULL) {
    send_error(c, ERR_PROTOCOL, "no such transfer");
    return;
  }
  uint16_t index = (uint16_t)(b->p[16] << 8 | b->p[17]);
  uint8_t expected[NL_AUTH_SIZE];
  if (join_mac(s->key, b->p, index, hs->cn, hs->sn, expected) != 0 ||
      !nl_mac_equal(expected, b->p + 18)) {
    send_error(c, ERR_REFUSED, "JOIN refused");
    session_release(s);
    return;
  }
  pthread_mutex_lock(&s->lock);
  s->streams++;
  pthread_mutex_unlock(&s->lock);
  char why[128];
  stream_chunk sc = {.hash = nl_sha256_new()};
  while (sc.hash != NULL && recv_frame(c, hdr, b, &type, &len) == 0) {
    nl_frame_data d;
    if (type != NL_FRAME_DATA ||
        nl_frame_parse_data(b->p, len, s->chunk_size, &d, why, sizeof why) !=
            0 ||
        session_data(s, &sc, &d) != 0)
      break;
  }
  nl_sha256_free(sc.hash);
  pthread_mutex_lock(&s->lock);
  s->streams--;
  clock_gettime(CLOCK_MONOTONIC, &s->active_at);
  pthread_mutex_unlock(&s->lock);
  session_release(s);
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
    conn_write(c, f, (size_t)len);
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
      handshake_failed(fd,
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
  bool have_header = conn_read(&c, hdr, NL_FRAME_HEADER_SIZE) == 0;
  bool other_version = have_header && hdr[0] == 'N' && hdr[1] == 'L' &&
                       hdr[2] != NL_FRAME_VERSION;
  if (other_version) {
    refuse_version(&c, hdr[2]);
  } else if (have_header && !encrypted && cfg->encrypt) {
    send_error(&c, ERR_REFUSED,
               "this node takes encrypted transfers only: set "
               "TRANSFER_ENCRYPT=true at the sender too");
  } else if (have_header &&
             payload_of(&c, hdr, &b, &type, &len, NL_FRAME_HELLO, 0) == 0 &&
             nl_frame_parse_hello(b.p, len, &hello, why, sizeof why) == 0 &&
             server_handshake(&c, cfg, &hello, &hs, &b) == 0) {
    conn_end_deadline(&c, cfg->timeout_seconds);
    /* From here every frame this side sends, ERRORs included, is MAC'd. */
    c.mac_key = hs.key;
    c.out_dir = NL_AUTH_TO_SENDER;
    c.in_dir = NL_AUTH_TO_RECEIVER;
    if (admit != NULL && !admit(ud))
      send_error(&c, ERR_BUSY,
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
    set_timeouts(fd, timeout);
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
    if (send_all(c->fd, buf, head, MSG_MORE) != 0)
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
  return conn_write(c, buf + from, head + n - from) == 0 ? 0 : -1;
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
  bool ok = f != NULL &&
            open_conn(&c, s->host, s->port, s->cfg, err, sizeof err) == 0 &&
            client_handshake(&c, s->cfg, 1, &hs, &b, err, sizeof err) == 0;
  if (ok) {
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    uint8_t j[NL_FRAME_HEADER_SIZE + 64], mac[NL_AUTH_SIZE];
    nl_writer w;
    nl_writer_begin(&w, j, sizeof j, NL_FRAME_JOIN);
    nl_write_bytes(&w, s->id, sizeof s->id);
    nl_write_u16(&w, st->index);
    ok = join_mac(s->control_key, s->id, st->index, hs.cn, hs.sn, mac) == 0;
    nl_write_bytes(&w, mac, sizeof mac);
    long n = nl_writer_finish(&w);
    ok = ok && n > 0 && conn_write(&c, j, (size_t)n) == 0;
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
      client_handshake(&s.control, cfg, 0, &hs, &b, err, errlen) != 0)
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
  long n = finish_with_mac(&w, &s.control);
  uint8_t hdr[NL_FRAME_HEADER_SIZE];
  nl_frame_type type;
  uint32_t len;
  if (n < 0 || conn_write(&s.control, offer, (size_t)n) != 0 ||
      recv_frame(&s.control, hdr, &b, &type, &len) != 0) {
    snprintf(err, errlen, "the receiver closed the connection");
    goto done;
  }
  size_t bitmap = (s.chunk_count + 7) / 8;
  if (type != NL_FRAME_ACCEPT || len != 16 + bitmap + 32 ||
      !mac_ok(&s.control, hdr, b.p, len)) {
    error_from(&s.control, hdr, b.p, len, type, err, errlen,
               type == NL_FRAME_ACCEPT ? "the ACCEPT's MAC does not match"
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
    if (recv_frame(&s.control, hdr, &b, &type, &len) != 0) {
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
      error_from(&s.control, hdr, b.p, len, type, err, errlen,
                 "the receiver failed");
      break;
    }
    if (!mac_ok(&s.control, hdr, b.p, len)) {
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
        result->seconds = seconds_since(&t0);
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
  result->seconds = seconds_since(&t0);
  free(offer);
  free(digests);
  free(s.queue);
  free(s.in_queue);
  free(s.verified);
  free(s.sent_on);
  free(b.p);
  return rc;
}
