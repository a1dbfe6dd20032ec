#include "mac.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

int nl_random(uint8_t *buf, size_t n) {
  return n <= 0x7fffffff && RAND_bytes(buf, (int)n) == 1 ? 0 : -1;
}

/* Through EVP_MAC, so that a large part (an offer's digest list) is never
 * copied. */
int nl_mac_parts(const uint8_t *key, size_t key_len, const void *a,
                 size_t a_len, const void *b, size_t b_len, const void *c,
                 size_t c_len, uint8_t out[NL_MAC_SIZE]) {
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
      EVP_MAC_final(ctx, out, &n, NL_MAC_SIZE) == 1 && n == NL_MAC_SIZE)
    rc = 0;
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  return rc;
}

int nl_mac(const uint8_t key[NL_MAC_SIZE], const void *a, size_t a_len,
           const void *b, size_t b_len, uint8_t out[NL_MAC_SIZE]) {
  return nl_mac_parts(key, NL_MAC_SIZE, a, a_len, b, b_len, "", 0, out);
}

int nl_mac_derive_key(const uint8_t *key, size_t key_len, const char *label,
                      uint8_t out[NL_MAC_SIZE]) {
  if (key_len < NL_MAC_KEY_MIN)
    return -1;
  return nl_mac_parts(key, key_len, label, strlen(label), "", 0, "", 0, out);
}

bool nl_mac_equal(const uint8_t a[NL_MAC_SIZE], const uint8_t b[NL_MAC_SIZE]) {
  return CRYPTO_memcmp(a, b, NL_MAC_SIZE) == 0;
}
