#include "tls.h"

#include "auth.h"
#include "deadline.h"
#include "frame.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* macOS: SO_NOSIGPIPE is set on the socket */
#endif

/* The PSK's identity: a version, so that another derivation can come. */
static const char IDENTITY[] = "nodelua-v1";
/* Both use SHA-256, the hash the PSK is for. AES-128-GCM is first: it has
 * hardware behind it on x86-64 and Apple silicon. */
static const char SUITES[] =
    "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256";

struct nl_tls {
  SSL_CTX *ctx;
  SSL *ssl;
  int fd;
  uint8_t psk[NL_AUTH_SIZE];
  uint8_t *pre; /* bytes the listener read before the handover */
  size_t pre_len, pre_at;
  int failed; /* a fatal error: no close_notify */
  /* A client keeps the first bytes the server sent: a node that cannot
   * take TLS (no key, an old version) answers with a frame in clear, and
   * what it says is worth more than "wrong version number". */
  uint8_t seen[NL_FRAME_HEADER_SIZE + 4 + NL_FRAME_MESSAGE_MAX];
  size_t seen_len;
  /* While set, every read and write must finish by then (the receiver's
   * handshake: nothing unauthenticated holds a thread past it). */
  struct timespec deadline;
  bool has_deadline;
};

/* ---- a BIO over the blocking socket that first gives back the prefix ---- */

static int io_read(BIO *bio, char *out, size_t n, size_t *got) {
  nl_tls *t = BIO_get_data(bio);
  BIO_clear_retry_flags(bio);
  if (t->pre_at < t->pre_len) {
    size_t take = t->pre_len - t->pre_at < n ? t->pre_len - t->pre_at : n;
    memcpy(out, t->pre + t->pre_at, take);
    t->pre_at += take;
    *got = take;
    return 1;
  }
  ssize_t r;
  do
    r = t->has_deadline && nl_deadline_arm(t->fd, &t->deadline) != 0
            ? -1
            : recv(t->fd, out, n, 0);
  while (r < 0 && errno == EINTR);
  *got = r > 0 ? (size_t)r : 0;
  if (r > 0 && t->seen_len < sizeof t->seen) {
    size_t keep = sizeof t->seen - t->seen_len < (size_t)r
                      ? sizeof t->seen - t->seen_len
                      : (size_t)r;
    memcpy(t->seen + t->seen_len, out, keep);
    t->seen_len += keep;
  }
  return r > 0; /* end, error or timeout: no retry, the connection is over */
}

static int io_write(BIO *bio, const char *in, size_t n, size_t *put) {
  nl_tls *t = BIO_get_data(bio);
  BIO_clear_retry_flags(bio);
  ssize_t w;
  do
    w = t->has_deadline && nl_deadline_arm(t->fd, &t->deadline) != 0
            ? -1
            : send(t->fd, in, n, MSG_NOSIGNAL);
  while (w < 0 && errno == EINTR);
  *put = w > 0 ? (size_t)w : 0;
  return w > 0;
}

static long io_ctrl(BIO *bio, int cmd, long num, void *ptr) {
  (void)bio;
  (void)num;
  (void)ptr;
  return cmd == BIO_CTRL_FLUSH; /* nothing is buffered here */
}

static BIO_METHOD *io_method;
static pthread_once_t io_once = PTHREAD_ONCE_INIT;

static void io_method_init(void) {
  BIO_METHOD *m =
      BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "nodelua fd");
  if (m != NULL && BIO_meth_set_read_ex(m, io_read) == 1 &&
      BIO_meth_set_write_ex(m, io_write) == 1 &&
      BIO_meth_set_ctrl(m, io_ctrl) == 1)
    io_method = m;
  else
    BIO_meth_free(m);
}

/* ---- the PSK ---- */

static SSL_SESSION *psk_session(SSL *ssl, const uint8_t psk[NL_AUTH_SIZE]) {
  static const unsigned char aes128gcm_sha256[] = {0x13, 0x01};
  const SSL_CIPHER *cipher = SSL_CIPHER_find(ssl, aes128gcm_sha256);
  SSL_SESSION *s = cipher != NULL ? SSL_SESSION_new() : NULL;
  if (s != NULL && (SSL_SESSION_set1_master_key(s, psk, NL_AUTH_SIZE) != 1 ||
                    SSL_SESSION_set_cipher(s, cipher) != 1 ||
                    SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION) != 1)) {
    SSL_SESSION_free(s);
    s = NULL;
  }
  return s;
}

static int use_psk(SSL *ssl, const EVP_MD *md, const unsigned char **id,
                   size_t *id_len, SSL_SESSION **sess) {
  nl_tls *t = SSL_get_app_data(ssl);
  *sess = NULL;
  /* Called again with the server's choice of hash: ours is SHA-256 only. */
  if (md != NULL && EVP_MD_get_type(md) != NID_sha256)
    return 1;
  if ((*sess = psk_session(ssl, t->psk)) == NULL)
    return 0;
  *id = (const unsigned char *)IDENTITY;
  *id_len = sizeof IDENTITY - 1;
  return 1;
}

static int find_psk(SSL *ssl, const unsigned char *id, size_t id_len,
                    SSL_SESSION **sess) {
  nl_tls *t = SSL_get_app_data(ssl);
  *sess = NULL;
  if (id_len != sizeof IDENTITY - 1 || memcmp(id, IDENTITY, id_len) != 0)
    return 1; /* not ours: the handshake fails */
  return (*sess = psk_session(ssl, t->psk)) != NULL;
}

/* ---- connections ---- */

/* what, and OpenSSL's reason for the last error ("binder does not
 * verify"), or that the peer closed. */
static void reason(char *err, size_t errlen, const char *what) {
  unsigned long e = ERR_peek_last_error();
  const char *why = e != 0 ? ERR_reason_error_string(e) : NULL;
  snprintf(err, errlen, "%s: %s", what, why ? why : "the connection closed");
  ERR_clear_error();
}

/* Whether the server answered the handshake with an ERROR frame in clear
 * (of any protocol version): then err says what it said. */
static bool answered_in_clear(nl_tls *t, char *err, size_t errlen) {
  const uint8_t *h = t->seen;
  if (t->seen_len < 2 || h[0] != 'N' || h[1] != 'L')
    return false;
  /* OpenSSL stopped at the record header it could not take: the rest of
   * the frame is still in the socket. */
  while (t->seen_len < sizeof t->seen) {
    ssize_t r =
        recv(t->fd, t->seen + t->seen_len, sizeof t->seen - t->seen_len, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    t->seen_len += (size_t)r;
  }
  if (t->seen_len < NL_FRAME_HEADER_SIZE || h[3] != NL_FRAME_ERROR)
    return false;
  size_t len = nl_get_be32(h + 4);
  nl_frame_error e;
  char why[64];
  if (len > t->seen_len - NL_FRAME_HEADER_SIZE ||
      nl_frame_parse_error(h + NL_FRAME_HEADER_SIZE, len, &e, why,
                           sizeof why) != 0)
    return false;
  snprintf(err, errlen, "the receiver refused: %s", e.message);
  return true;
}

static nl_tls *tls_new(int fd, int server, const void *prefix,
                       size_t prefix_len, const uint8_t *key, size_t key_len,
                       const struct timespec *deadline, char *err,
                       size_t errlen) {
  pthread_once(&io_once, io_method_init);
  nl_tls *t = calloc(1, sizeof *t);
  if (t == NULL || io_method == NULL ||
      nl_auth_tls_psk(key, key_len, t->psk) != 0) {
    snprintf(err, errlen, "cannot set up TLS");
    free(t);
    return NULL;
  }
  t->fd = fd;
  if (deadline != NULL) {
    t->deadline = *deadline;
    t->has_deadline = true;
  }
  if (prefix_len > 0) {
    if ((t->pre = malloc(prefix_len)) == NULL) {
      snprintf(err, errlen, "out of memory");
      free(t);
      return NULL;
    }
    memcpy(t->pre, prefix, prefix_len);
    t->pre_len = prefix_len;
  }
  ERR_clear_error();
  t->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  BIO *bio = BIO_new(io_method);
  if (t->ctx == NULL || bio == NULL ||
      SSL_CTX_set_min_proto_version(t->ctx, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(t->ctx, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_ciphersuites(t->ctx, SUITES) != 1 ||
      (t->ssl = SSL_new(t->ctx)) == NULL) {
    BIO_free(bio);
    reason(err, errlen, "cannot set up TLS");
    t->failed = 1;
    nl_tls_free(t);
    return NULL;
  }
  /* A blocking read returns after a record that is not data (rather than
   * waiting on for data): the receiver's control thread polls. */
  SSL_clear_mode(t->ssl, SSL_MODE_AUTO_RETRY);
  SSL_set_app_data(t->ssl, t);
  BIO_set_data(bio, t);
  BIO_set_init(bio, 1);
  SSL_set_bio(t->ssl, bio, bio);
  int ok;
  if (server) {
    SSL_set_num_tickets(t->ssl, 0); /* nothing to resume: each is fresh */
    SSL_set_psk_find_session_callback(t->ssl, find_psk);
    ok = SSL_accept(t->ssl);
  } else {
    SSL_set_psk_use_session_callback(t->ssl, use_psk);
    ok = SSL_connect(t->ssl);
  }
  if (ok != 1 && !server && answered_in_clear(t, err, errlen)) {
    ERR_clear_error();
    t->failed = 1;
    nl_tls_free(t);
    return NULL;
  }
  if (ok != 1) {
    reason(err, errlen, "the TLS handshake failed");
    t->failed = 1;
    nl_tls_free(t);
    return NULL;
  }
  return t;
}

nl_tls *nl_tls_client(int fd, const uint8_t *key, size_t key_len, char *err,
                      size_t errlen) {
  return tls_new(fd, 0, NULL, 0, key, key_len, NULL, err, errlen);
}

nl_tls *nl_tls_server(int fd, const void *prefix, size_t prefix_len,
                      const uint8_t *key, size_t key_len,
                      const struct timespec *deadline, char *err,
                      size_t errlen) {
  return tls_new(fd, 1, prefix, prefix_len, key, key_len, deadline, err,
                 errlen);
}

void nl_tls_set_deadline(nl_tls *t, const struct timespec *deadline) {
  t->has_deadline = deadline != NULL;
  if (deadline != NULL)
    t->deadline = *deadline;
}

int nl_tls_write(nl_tls *t, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    size_t put = 0;
    ERR_clear_error();
    if (SSL_write_ex(t->ssl, c, n, &put) != 1) {
      int e = SSL_get_error(t->ssl, 0);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        continue;
      t->failed = 1;
      ERR_clear_error();
      return -1;
    }
    c += put;
    n -= put;
  }
  return 0;
}

ssize_t nl_tls_read(nl_tls *t, void *p, size_t n) {
  size_t got = 0;
  ERR_clear_error();
  if (SSL_read_ex(t->ssl, p, n, &got) == 1)
    return (ssize_t)got;
  int e = SSL_get_error(t->ssl, 0);
  ERR_clear_error();
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
    return -2;
  if (e == SSL_ERROR_ZERO_RETURN)
    return 0;
  t->failed = 1;
  return -1;
}

bool nl_tls_pending(nl_tls *t) { return SSL_pending(t->ssl) > 0; }

void nl_tls_free(nl_tls *t) {
  if (t == NULL)
    return;
  if (t->ssl != NULL) {
    if (!t->failed)
      SSL_shutdown(t->ssl); /* close_notify, without waiting for the peer's */
    SSL_free(t->ssl);       /* and the BIO with it */
  }
  SSL_CTX_free(t->ctx);
  OPENSSL_cleanse(t->psk, sizeof t->psk);
  free(t->pre);
  free(t);
  ERR_clear_error();
}
