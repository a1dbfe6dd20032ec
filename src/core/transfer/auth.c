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
    [NL_AUTH_SERVER_PROOF] = "nodelua-v1 server",
    [NL_AUTH_CLIENT_PROOF] = "nodelua-v1 client",
    [NL_AUTH_SESSION_KEY] = "nodelua-v1 session",
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
                   const uint8_t client_nonce[NL_AUTH_SIZE],
                   const uint8_t server_nonce[NL_AUTH_SIZE],
                   uint8_t out[NL_AUTH_SIZE]) {
  if (key_len < NL_AUTH_KEY_MIN || (unsigned)label > NL_AUTH_SESSION_KEY)
    return -1;
  const char *l = labels[label];
  return hmac3(key, key_len, l, strlen(l), client_nonce, NL_AUTH_SIZE,
               server_nonce, NL_AUTH_SIZE, out);
}

int nl_auth_tls_psk(const uint8_t *key, size_t key_len,
                    uint8_t out[NL_AUTH_SIZE]) {
  static const char label[] = "nodelua-v1 tls psk";
  if (key_len < NL_AUTH_KEY_MIN)
    return -1;
  return hmac3(key, key_len, label, sizeof label - 1, "", 0, "", 0, out);
}

int nl_auth_mac(const uint8_t key[NL_AUTH_SIZE], const void *a, size_t a_len,
                const void *b, size_t b_len, uint8_t out[NL_AUTH_SIZE]) {
  return hmac3(key, NL_AUTH_SIZE, a, a_len, b, b_len, "", 0, out);
}

bool nl_auth_equal(const uint8_t a[NL_AUTH_SIZE],
                   const uint8_t b[NL_AUTH_SIZE]) {
  return CRYPTO_memcmp(a, b, NL_AUTH_SIZE) == 0;
}
