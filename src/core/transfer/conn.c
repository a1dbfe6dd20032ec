/* Blocking frame I/O on one connection of the transfer core, plain or TLS:
 * exact reads and writes under the handshake's deadline, frames read with
 * their payload bounded by type before anything is allocated, and the MAC
 * of every frame of an authenticated connection (its direction and number
 * in that direction), so that none can be changed, replayed, dropped or
 * injected unseen. */
#include "transfer_internal.h"

static const char JOIN_LABEL[] = "nodelua-v2 join";
static const char RDMA_LABEL[] = "nodelua-v3 rdma";

double nl_tx_seconds_since(const struct timespec *t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)(t.tv_sec - t0->tv_sec) + (t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* ---- blocking frame I/O ---- */

void nl_tx_set_timeouts(int fd, int seconds) {
  struct timeval tv = {.tv_sec = seconds > 0 ? seconds : 30};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  nl_socket_nosigpipe(fd); /* macOS: it has no MSG_NOSIGNAL */
}

int nl_tx_send_all(int fd, const void *p, size_t n, int flags) {
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

int nl_tx_write_all(int fd, const void *p, size_t n) {
  return nl_tx_send_all(fd, p, n, 0);
}

/* The handshake's deadline over: from now on the connection's own I/O
 * timeouts apply. */
void nl_tx_conn_end_deadline(conn *c, int timeout_seconds) {
  c->deadline = NULL;
  if (c->tls != NULL)
    nl_tls_set_deadline(c->tls, NULL);
  nl_tx_set_timeouts(c->fd, timeout_seconds);
}

int nl_tx_conn_write(conn *c, const void *p, size_t n) {
  if (c->tls == NULL && c->deadline != NULL &&
      nl_deadline_arm(c->fd, c->deadline) != 0)
    return -1;
  return c->tls != NULL ? nl_tls_write(c->tls, p, n)
                        : nl_tx_write_all(c->fd, p, n);
}

/* Reads exactly n bytes. Returns 0, or -1 (closed, timed out, failed). */
int nl_tx_conn_read(conn *c, void *dst, size_t n) {
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

/* Reads one frame: header into hdr (nl_tx_payload_of: the header was read
 * already), payload into b (grown as needed up to the type's bound). A
 * frame of another type than want (or, if it is
 * not 0, also_want) is refused from its header, before anything is
 * allocated for it: in a handshake a peer gets no more memory than the
 * step expects (want 0: any type). Returns 0, or -1 (closed, timed out,
 * malformed, unexpected). */
int nl_tx_payload_of(conn *c, const uint8_t hdr[NL_FRAME_HEADER_SIZE],
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
  return *len == 0 ? 0 : nl_tx_conn_read(c, b->p, *len);
}

int nl_tx_recv_frame_of(conn *c, uint8_t hdr[NL_FRAME_HEADER_SIZE], buffer *b,
                        nl_frame_type *type, uint32_t *len, unsigned want,
                        unsigned also_want) {
  return nl_tx_conn_read(c, hdr, NL_FRAME_HEADER_SIZE) == 0
             ? nl_tx_payload_of(c, hdr, b, type, len, want, also_want)
             : -1;
}

int nl_tx_recv_frame(conn *c, uint8_t hdr[NL_FRAME_HEADER_SIZE], buffer *b,
                     nl_frame_type *type, uint32_t *len) {
  return nl_tx_recv_frame_of(c, hdr, b, type, len, 0, 0);
}

/* Appends the MAC of the frame so far (header with its final length) and
 * finishes it: the connection's next frame in its direction. */
long nl_tx_finish_with_mac(nl_writer *w, conn *c) {
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
bool nl_tx_mac_ok(conn *c, const uint8_t hdr[NL_FRAME_HEADER_SIZE],
                  const uint8_t *p, uint32_t len) {
  uint8_t mac[NL_AUTH_SIZE];
  uint64_t seq = c->in_seq++;
  return c->mac_key != NULL && len >= NL_AUTH_SIZE &&
         nl_auth_frame_mac(c->mac_key, c->in_dir, seq, hdr, p,
                           len - NL_AUTH_SIZE, mac) == 0 &&
         nl_mac_equal(mac, p + len - NL_AUTH_SIZE);
}

int nl_tx_send_error(conn *c, int code, const char *fmt, ...) {
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
  long n =
      c->mac_key != NULL ? nl_tx_finish_with_mac(&w, c) : nl_writer_finish(&w);
  return n > 0 ? nl_tx_conn_write(c, f, (size_t)n) : -1;
}

/* A MAC under the control key that binds a connection to its transfer:
 * over the label, the transfer id and what follows it (suffix), then the
 * two sides' nonces. */
static int bound_mac(const uint8_t control_key[NL_AUTH_SIZE], const char *label,
                     const uint8_t id[NL_FRAME_TRANSFER_ID_SIZE],
                     const uint8_t *suffix, size_t suffix_len,
                     const uint8_t first[NL_FRAME_NONCE_SIZE],
                     const uint8_t second[NL_FRAME_NONCE_SIZE],
                     uint8_t out[NL_AUTH_SIZE]) {
  uint8_t a[32 + NL_FRAME_TRANSFER_ID_SIZE + 8];
  size_t label_len = strlen(label);
  if (label_len > 32 || suffix_len > 8)
    return -1;
  memcpy(a, label, label_len);
  memcpy(a + label_len, id, NL_FRAME_TRANSFER_ID_SIZE);
  if (suffix_len > 0)
    memcpy(a + label_len + NL_FRAME_TRANSFER_ID_SIZE, suffix, suffix_len);
  uint8_t b[2 * NL_FRAME_NONCE_SIZE];
  memcpy(b, first, NL_FRAME_NONCE_SIZE);
  memcpy(b + NL_FRAME_NONCE_SIZE, second, NL_FRAME_NONCE_SIZE);
  return nl_mac(control_key, a,
                label_len + NL_FRAME_TRANSFER_ID_SIZE + suffix_len, b, sizeof b,
                out);
}

int nl_tx_join_mac(const uint8_t control_key[NL_AUTH_SIZE],
                   const uint8_t id[NL_FRAME_TRANSFER_ID_SIZE], uint16_t index,
                   const uint8_t cn[32], const uint8_t sn[32],
                   uint8_t out[NL_AUTH_SIZE]) {
  const uint8_t be_index[2] = {(uint8_t)(index >> 8), (uint8_t)index};
  return bound_mac(control_key, JOIN_LABEL, id, be_index, sizeof be_index, cn,
                   sn, out);
}

int nl_tx_rdma_mac(const uint8_t control_key[NL_AUTH_SIZE],
                   const uint8_t id[NL_FRAME_TRANSFER_ID_SIZE],
                   const uint8_t sender_nonce[NL_FRAME_NONCE_SIZE],
                   const uint8_t receiver_nonce[NL_FRAME_NONCE_SIZE],
                   uint8_t out[NL_AUTH_SIZE]) {
  return bound_mac(control_key, RDMA_LABEL, id, NULL, 0, sender_nonce,
                   receiver_nonce, out);
}
