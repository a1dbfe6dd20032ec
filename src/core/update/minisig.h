/* minisign's formats, verified with OpenSSL: a public key, a signature
 * file (.minisig) and what it signs. A release's SHA256SUMS is signed with
 * the standard `minisign -S` (prehashed: Ed25519 over BLAKE2b-512 of the
 * file; the legacy "Ed" form signs the file itself), and its trusted
 * comment is signed too (the global signature, over the signature and the
 * comment). Every byte parsed here comes from the network or from an
 * operator's setting: sizes are checked, nothing is trusted before the
 * signatures verify. */
#ifndef NODELUA_UPDATE_MINISIG_H
#define NODELUA_UPDATE_MINISIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NL_MINISIGN_KEYID_SIZE 8
#define NL_MINISIGN_COMMENT_MAX 1024
#define NL_MINISIGN_TEXT_MAX 4096 /* a key or signature file, at most */

typedef struct {
  uint8_t key_id[NL_MINISIGN_KEYID_SIZE];
  uint8_t public_key[32];
} nl_minisign_key;

typedef struct {
  bool prehashed; /* "ED": over BLAKE2b-512 of the file; "Ed": the file */
  uint8_t key_id[NL_MINISIGN_KEYID_SIZE];
  uint8_t signature[64];
  char trusted_comment[NL_MINISIGN_COMMENT_MAX + 1];
  uint8_t global_signature[64];
} nl_minisign_sig;

/* A public key: the base64 line alone, or minisign's .pub file (an
 * "untrusted comment:" line, then the base64 line). 0, or -1 with why. */
int nl_minisign_parse_key(const char *text, size_t len, nl_minisign_key *out,
                          char *why, size_t whylen);

/* A .minisig file: untrusted comment, signature line, "trusted comment:"
 * line, global signature line. 0, or -1 with why. */
int nl_minisign_parse_sig(const char *text, size_t len, nl_minisign_sig *out,
                          char *why, size_t whylen);

/* Whether sig is key's signature of data, trusted comment included:
 * 0, or -1 with why (another key, a bad signature, a changed comment). */
int nl_minisign_verify(const nl_minisign_key *key, const nl_minisign_sig *sig,
                       const uint8_t *data, size_t len, char *why,
                       size_t whylen);

/* The SHA-256 that a sha256sum-format file (lines "<64 hex>  NAME" or
 * "<64 hex> *NAME") gives for name. 0, 1 when name is not listed, -1 for a
 * file that is not in that format (with why). */
int nl_sha256sums_find(const char *text, size_t len, const char *name,
                       uint8_t digest[32], char *why, size_t whylen);

#endif
