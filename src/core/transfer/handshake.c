/* The handshake of the transfer core, from HELLO to OK on both sides:
 * nonces, proofs of the cluster key, the keys derived for the connection,
 * and the log of failures before authentication, at most once a minute
 * per source (a stranger can cause them at will). */
#include "transfer_internal.h"

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

void nl_tx_handshake_failed(int fd, const char *fmt, ...) {
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

/* Reads an ERROR frame's message into err, if the frame is one. On an
 * authenticated connection its MAC must match first (the caller has not
 * checked it): an ERROR that does not match was changed or injected on
 * the way, and says nothing of what the receiver said. */
void nl_tx_error_from(conn *c, const uint8_t hdr[NL_FRAME_HEADER_SIZE],
                      const uint8_t *p, uint32_t len, nl_frame_type type,
                      char *err, size_t errlen, const char *otherwise) {
  nl_frame_error e;
  char why[64];
  if (type == NL_FRAME_ERROR && c->mac_key != NULL) {
    if (!nl_tx_mac_ok(c, hdr, p, len)) {
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
void nl_tx_canonical_id(char out[NL_FRAME_ID_MAX + 1], const char *id) {
  size_t i = 0;
  for (; id[i] != '\0' && i < NL_FRAME_ID_MAX; i++)
    out[i] = (char)tolower((unsigned char)id[i]);
  out[i] = '\0';
}

int nl_tx_derive(const nl_transfer_config *cfg, nl_auth_label label,
                 const handshake *hs, uint8_t role, const char *sender_id,
                 const char *receiver_id, uint8_t out[NL_AUTH_SIZE]) {
  char sender[NL_FRAME_ID_MAX + 1], receiver[NL_FRAME_ID_MAX + 1];
  nl_tx_canonical_id(sender, sender_id);
  nl_tx_canonical_id(receiver, receiver_id);
  nl_auth_binding b = {.client_nonce = hs->cn,
                       .server_nonce = hs->sn,
                       .role = role,
                       .sender_id = sender,
                       .receiver_id = receiver};
  return nl_auth_derive(cfg->key, cfg->key_len, label, &b, out);
}

bool nl_tx_same_id(const char *a, const char *b) {
  return strcasecmp(a, b) == 0;
}

int nl_tx_client_handshake(conn *c, const nl_transfer_config *cfg, uint8_t role,
                           handshake *hs, buffer *b, char *err, size_t errlen) {
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
  if (n < 0 || nl_tx_conn_write(c, f, (size_t)n) != 0 ||
      nl_tx_recv_frame_of(c, hdr, b, &type, &len, NL_FRAME_CHALLENGE,
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
    nl_tx_error_from(c, hdr, b->p, len, type, err, errlen,
                     "the receiver does not speak the nodelua protocol");
    return -1;
  }
  memcpy(hs->sn, ch.nonce, 32);
  snprintf(hs->peer_id, sizeof hs->peer_id, "%s", ch.id);
  /* The proof is bound to both ids as stated: the receiver's id below is
   * the one it proved, not one a relay put in. */
  uint8_t expected[NL_AUTH_SIZE], proof[NL_AUTH_SIZE];
  if (nl_tx_derive(cfg, NL_AUTH_SERVER_PROOF, hs, role, cfg->node_id, ch.id,
                   expected) != 0 ||
      !nl_mac_equal(expected, ch.proof)) {
    snprintf(err, errlen,
             "the receiver does not hold this cluster's key "
             "(NODELUA_CLUSTER_KEY differs): nothing was sent");
    return -1;
  }
  if (cfg->expect_id != NULL && cfg->expect_id[0] != '\0' &&
      !nl_tx_same_id(ch.id, cfg->expect_id)) {
    snprintf(err, errlen,
             "the node that answered is %s, not %s that was meant (an "
             "address that moved to another node, or a redirected "
             "connection): nothing was sent",
             ch.id, cfg->expect_id);
    return -1;
  }
  if (nl_tx_derive(cfg, NL_AUTH_CLIENT_PROOF, hs, role, cfg->node_id, ch.id,
                   proof) != 0 ||
      nl_tx_derive(cfg, NL_AUTH_SESSION_KEY, hs, role, cfg->node_id, ch.id,
                   hs->key) != 0) {
    snprintf(err, errlen, "cannot compute the proof");
    return -1;
  }
  nl_writer_begin(&w, f, sizeof f, NL_FRAME_AUTH);
  nl_write_bytes(&w, proof, sizeof proof);
  n = nl_writer_finish(&w);
  if (n < 0 || nl_tx_conn_write(c, f, (size_t)n) != 0 ||
      nl_tx_recv_frame_of(c, hdr, b, &type, &len, NL_FRAME_OK,
                          NL_FRAME_ERROR) != 0) {
    snprintf(err, errlen, "the receiver closed the connection");
    return -1;
  }
  if (type != NL_FRAME_OK) {
    nl_tx_error_from(c, hdr, b->p, len, type, err, errlen,
                     "unexpected answer to AUTH");
    return -1;
  }
  return 0;
}

/* The receiver's half, after HELLO was read into hello. */
int nl_tx_server_handshake(conn *c, const nl_transfer_config *cfg,
                           const nl_frame_hello *hello, handshake *hs,
                           buffer *b) {
  uint8_t f[256], hdr[NL_FRAME_HEADER_SIZE], proof[NL_AUTH_SIZE];
  memcpy(hs->cn, hello->nonce, 32);
  snprintf(hs->peer_id, sizeof hs->peer_id, "%s", hello->id);
  if (nl_random(hs->sn, 32) != 0 ||
      nl_tx_derive(cfg, NL_AUTH_SERVER_PROOF, hs, hello->role, hello->id,
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
  if (n < 0 || nl_tx_conn_write(c, f, (size_t)n) != 0 ||
      nl_tx_recv_frame_of(c, hdr, b, &type, &len, NL_FRAME_AUTH, 0) != 0 ||
      len != NL_AUTH_SIZE)
    return -1;
  uint8_t expected[NL_AUTH_SIZE];
  if (nl_tx_derive(cfg, NL_AUTH_CLIENT_PROOF, hs, hello->role, hello->id,
                   cfg->node_id, expected) != 0 ||
      !nl_mac_equal(expected, b->p)) {
    nl_tx_send_error(c, ERR_REFUSED, "refused: not this cluster's key");
    nl_tx_handshake_failed(c->fd,
                           "refused a sender (node %s) that does not hold the "
                           "cluster key",
                           hs->peer_id);
    return -1;
  }
  if (nl_tx_derive(cfg, NL_AUTH_SESSION_KEY, hs, hello->role, hello->id,
                   cfg->node_id, hs->key) != 0)
    return -1;
  nl_writer_begin(&w, f, sizeof f, NL_FRAME_OK);
  n = nl_writer_finish(&w);
  return n > 0 ? nl_tx_conn_write(c, f, (size_t)n) : -1;
}
