/* The challenge-response of the peer protocol (docs/protocol.md): each side
 * proves it holds the cluster key K over both sides' fresh nonces, and both
 * derive the connection key that MACs the frames that follow. The MACs
 * themselves (HMAC-SHA256) are core/mac.h's. */
#ifndef NODELUA_TRANSFER_AUTH_H
#define NODELUA_TRANSFER_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mac.h"

#define NL_AUTH_SIZE NL_MAC_SIZE
#define NL_AUTH_KEY_MIN NL_MAC_KEY_MIN

typedef enum {
  NL_AUTH_SERVER_PROOF, /* "nodelua-v2 server" */
  NL_AUTH_CLIENT_PROOF, /* "nodelua-v2 client" */
  NL_AUTH_SESSION_KEY,  /* "nodelua-v2 session" */
} nl_auth_label;

/* What a handshake's proofs and keys are bound to: both fresh nonces, the
 * connection's role (0 control, 1 data), and both node ids as each side
 * stated them. A proof made for one of these is worth nothing for
 * another. */
typedef struct {
  const uint8_t *client_nonce, *server_nonce; /* NL_AUTH_SIZE bytes each */
  uint8_t role;
  const char *sender_id, *receiver_id; /* at most 64 bytes each */
} nl_auth_binding;

/* HMAC-SHA256(K, label || client nonce || server nonce || role ||
 * u16 length || sender id || u16 length || receiver id). Returns 0 or -1
 * (a key shorter than NL_AUTH_KEY_MIN, an id over 64 bytes, or OpenSSL
 * failed). */
int nl_auth_derive(const uint8_t *key, size_t key_len, nl_auth_label label,
                   const nl_auth_binding *binding, uint8_t out[NL_AUTH_SIZE]);

/* The TLS 1.3 external PSK of the encrypted mode:
 * HMAC-SHA256(K, "nodelua-v1 tls psk"). Returns 0 or -1. */
int nl_auth_tls_psk(const uint8_t *key, size_t key_len,
                    uint8_t out[NL_AUTH_SIZE]);

/* Which way a frame goes: each direction counts its own frames. */
#define NL_AUTH_TO_RECEIVER 'S' /* sent by the sender */
#define NL_AUTH_TO_SENDER 'R'   /* sent by the receiver */

/* The MAC of an authenticated frame: HMAC-SHA256(connection key,
 * direction (1) || sequence number (8, big-endian) || header || payload
 * before the MAC). The sequence number is not sent: each side counts the
 * frames of each direction from 0, so a frame replayed, dropped,
 * reordered or reflected no longer matches. Returns 0 or -1. */
int nl_auth_frame_mac(const uint8_t key[NL_AUTH_SIZE], uint8_t direction,
                      uint64_t seq, const uint8_t header[8],
                      const uint8_t *payload, size_t len,
                      uint8_t out[NL_AUTH_SIZE]);

#endif
