#include "auth.h"

#include "frame.h"

#include <string.h>

static const char *const labels[] = {
    [NL_AUTH_SERVER_PROOF] = "nodelua-v2 server",
    [NL_AUTH_CLIENT_PROOF] = "nodelua-v2 client",
    [NL_AUTH_SESSION_KEY] = "nodelua-v2 session",
};

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
  return nl_mac_parts(key, key_len, l, strlen(l), m, n, "", 0, out);
}

int nl_auth_tls_psk(const uint8_t *key, size_t key_len,
                    uint8_t out[NL_AUTH_SIZE]) {
  return nl_mac_derive_key(key, key_len, "nodelua-v1 tls psk", out);
}

int nl_auth_frame_mac(const uint8_t key[NL_AUTH_SIZE], uint8_t direction,
                      uint64_t seq, const uint8_t header[8],
                      const uint8_t *payload, size_t len,
                      uint8_t out[NL_AUTH_SIZE]) {
  uint8_t a[1 + 8 + 8];
  a[0] = direction;
  nl_put_be64(a + 1, seq);
  memcpy(a + 9, header, 8);
  return nl_mac_parts(key, NL_AUTH_SIZE, a, sizeof a, payload, len, "", 0, out);
}
