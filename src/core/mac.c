#include "mac.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <string.h>

int nl_random(uint8_t *buf, size_t n) {
  return n <= 0x7fffffff && RAND_bytes(buf, (int)n) == 1 ? 0 : -1;
}

/* The HMAC implementation is fetched once, and each thread keeps one
 * context set to SHA-256 that every MAC re-keys: fetching and setting the
 * digest cost more than the MAC of a probe or a chunk header, which the
 * agent computes every second. A thread's context is freed when it ends. */
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;
static EVP_MAC *hmac;
static pthread_key_t hmac_ctx_key;
static bool hmac_ready;

static void free_hmac_ctx(void *ctx) { EVP_MAC_CTX_free(ctx); }

static void hmac_init(void) {
  hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  hmac_ready =
      hmac != NULL && pthread_key_create(&hmac_ctx_key, free_hmac_ctx) == 0;
}

static EVP_MAC_CTX *thread_hmac_ctx(void) {
  if (pthread_once(&hmac_once, hmac_init) != 0 || !hmac_ready)
    return NULL;
  EVP_MAC_CTX *ctx = pthread_getspecific(hmac_ctx_key);
  if (ctx != NULL)
    return ctx;
  ctx = EVP_MAC_CTX_new(hmac);
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256",
                                       0),
      OSSL_PARAM_construct_end(),
  };
  if (ctx == NULL || EVP_MAC_CTX_set_params(ctx, params) != 1 ||
      pthread_setspecific(hmac_ctx_key, ctx) != 0) {
    EVP_MAC_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

/* Through EVP_MAC, so that a large part (an offer's digest list) is never
 * copied. */
int nl_mac_parts(const uint8_t *key, size_t key_len, const void *a,
                 size_t a_len, const void *b, size_t b_len, const void *c,
                 size_t c_len, uint8_t out[NL_MAC_SIZE]) {
  EVP_MAC_CTX *ctx = thread_hmac_ctx();
  size_t n = 0;
  if (ctx != NULL && EVP_MAC_init(ctx, key, key_len, NULL) == 1 &&
      EVP_MAC_update(ctx, a, a_len) == 1 &&
      EVP_MAC_update(ctx, b, b_len) == 1 &&
      EVP_MAC_update(ctx, c, c_len) == 1 &&
      EVP_MAC_final(ctx, out, &n, NL_MAC_SIZE) == 1 && n == NL_MAC_SIZE)
    return 0;
  return -1;
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
