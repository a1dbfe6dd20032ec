#include "auth.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

int nl_auth_random(uint8_t *buf, size_t n) {
  return n <= 0x7fffffff && RAND_bytes(buf, (int)n) == 1 ? 0 : -1;
}

static const char *const labels[] = {
    [NL_AUTH_SERVER_PROOF] = "nodelua-v2 server",
    [NL_AUTH_CLIENT_PROOF] = "nodelua-v2 client",
    [NL_AUTH_SESSION_KEY] = "nodelua-v2 session",
};

/* HMAC-SHA256(key, a || b || c) through EVP_MAC, so that a large b (an
 * offer's digest list) is never copied. */
static int hmac3(const uint8_t *key, size_t key_len, const void *a,
                 size_t a_len, const void *b, size_t b_len, const void *c,
                 size_t c_len, uint8_t out[NL_AUTH_SIZE]) {
  EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256",
                                       0),
      OSSL_PARAM_construct_end(),
  };
  size_t n = 0;
  int rc = -1;
  if (ctx != NULL && EVP_MAC_init(ctx, key, key_len, params) == 1 &&
      EVP_MAC_update(ctx, a, a_len) == 1 &&
      EVP_MAC_update(ctx, b, b_len) == 1 &&
      EVP_MAC_update(ctx, c, c_len) == 1 &&
      EVP_MAC_final(ctx, out, &n, NL_AUTH_SIZE) == 1 && n == NL_AUTH_SIZE)
    rc = 0;
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  return rc;
}

int nl_auth_derive(const uint8_t *key, size_t key_len, nl_auth_label label,
                   const nl_auth_binding *b, uint8_t out[NL_AUTH_SIZE]) {
  const char *ids[2] = {b->sender_id ? b->sender_id : "",
                        b->receiver_id ? b->receiver_id : ""};
  if (key_len < NL_AUTH_KEY_MIN || (unsigned)label > NL_AUTH_SESSION_KEY ||
      strlen(ids[0]) > 64 || strlen(ids[1]) > 64)
    return -1;
  /* One canonical encoding: lengths before the ids, so that no two
   * different bindings give the same bytes. */
  uint8_t m[2 * NL_AUTH_SIZE + 1 + 2 * (2 + 64)];
  size_t n = 0;
  memcpy(m, b->client_nonce, NL_AUTH_SIZE);
  memcpy(m + NL_AUTH_SIZE, b->server_nonce, NL_AUTH_SIZE);
  n = 2 * NL_AUTH_SIZE;
  m[n++] = b->role;
  for (int i = 0; i < 2; i++) {
    size_t len = strlen(ids[i]);
    m[n++] = (uint8_t)(len >> 8);
    m[n++] = (uint8_t)len;
    memcpy(m + n, ids[i], len);
    n += len;
  }
  const char *l = labels[label];
  return hmac3(key, key_len, l, strlen(l), m, n, "", 0, out);
}

int nl_auth_tls_psk(const uint8_t *key, size_t key_len,
                    uint8_t out[NL_AUTH_SIZE]) {
  return nl_auth_derive_key(key, key_len, "nodelua-v1 tls psk", out);
}

int nl_auth_derive_key(const uint8_t *key, size_t key_len, const char *label,
                       uint8_t out[NL_AUTH_SIZE]) {
  if (key_len < NL_AUTH_KEY_MIN)
    return -1;
  return hmac3(key, key_len, label, strlen(label), "", 0, "", 0, out);
}

int nl_auth_mac(const uint8_t key[NL_AUTH_SIZE], const void *a, size_t a_len,
                const void *b, size_t b_len, uint8_t out[NL_AUTH_SIZE]) {
  return hmac3(key, NL_AUTH_SIZE, a, a_len, b, b_len, "", 0, out);
}

int nl_auth_frame_mac(const uint8_t key[NL_AUTH_SIZE], uint8_t direction,
                      uint64_t seq, const uint8_t header[8],
                      const uint8_t *payload, size_t len,
                      uint8_t out[NL_AUTH_SIZE]) {
  uint8_t a[1 + 8 + 8];
  a[0] = direction;
  for (int i = 0; i < 8; i++)
    a[1 + i] = (uint8_t)(seq >> (56 - 8 * i));
  memcpy(a + 9, header, 8);
  return hmac3(key, NL_AUTH_SIZE, a, sizeof a, payload, len, "", 0, out);
}

bool nl_auth_equal(const uint8_t a[NL_AUTH_SIZE],
                   const uint8_t b[NL_AUTH_SIZE]) {
  return CRYPTO_memcmp(a, b, NL_AUTH_SIZE) == 0;
}
