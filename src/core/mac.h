/* Keyed MACs (HMAC-SHA256 through OpenSSL) and keys derived from the
 * cluster key: the primitives that the probe protocol and the transfer
 * protocol both build on. Comparisons run in constant time. */
#ifndef NODELUA_MAC_H
#define NODELUA_MAC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NL_MAC_SIZE 32
#define NL_MAC_KEY_MIN 16 /* bytes of cluster key, at the least */

/* Fills buf with n bytes from OpenSSL's CSPRNG. Returns 0 or -1. */
int nl_random(uint8_t *buf, size_t n);

/* HMAC-SHA256(key, a || b || c), without copying the parts together.
 * Returns 0 or -1. */
int nl_mac_parts(const uint8_t *key, size_t key_len, const void *a,
                 size_t a_len, const void *b, size_t b_len, const void *c,
                 size_t c_len, uint8_t out[NL_MAC_SIZE]);

/* HMAC-SHA256(key, a || b) under a derived 32-byte key. 0 or -1. */
int nl_mac(const uint8_t key[NL_MAC_SIZE], const void *a, size_t a_len,
           const void *b, size_t b_len, uint8_t out[NL_MAC_SIZE]);

/* A 32-byte key for one use, derived from the cluster key:
 * HMAC-SHA256(K, label). Returns 0 or -1 (a key under NL_MAC_KEY_MIN). */
int nl_mac_derive_key(const uint8_t *key, size_t key_len, const char *label,
                      uint8_t out[NL_MAC_SIZE]);

/* Whether two MACs are equal, in time that does not depend on where they
 * differ. */
bool nl_mac_equal(const uint8_t a[NL_MAC_SIZE], const uint8_t b[NL_MAC_SIZE]);

#endif
