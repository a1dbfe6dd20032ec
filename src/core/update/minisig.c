#include "minisig.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int fail(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *why, size_t whylen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, whylen, fmt, ap);
  va_end(ap);
  return -1;
}

/* The next line of text[*pos..len) without its newline (and a CR before
 * it); false at the end. */
static bool next_line(const char *text, size_t len, size_t *pos,
                      const char **line, size_t *line_len) {
  if (*pos >= len)
    return false;
  const char *start = text + *pos;
  const char *nl = memchr(start, '\n', len - *pos);
  size_t n = nl ? (size_t)(nl - start) : len - *pos;
  *pos += n + (nl ? 1 : 0);
  if (n > 0 && start[n - 1] == '\r')
    n--;
  *line = start;
  *line_len = n;
  return true;
}

/* Decodes one line of base64 into exactly want bytes. */
static bool decode_exact(const char *b64, size_t len, uint8_t *out,
                         size_t want) {
  uint8_t buf[256];
  if (len == 0 || len % 4 != 0 || len / 4 * 3 > sizeof buf)
    return false;
  for (size_t i = 0; i < len; i++) {
    char c = b64[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '+' || c == '/' ||
              (c == '=' && i >= len - 2);
    if (!ok)
      return false;
  }
  if (b64[len - 2] == '=' && b64[len - 1] != '=')
    return false;
  int n = EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)len);
  if (n < 0)
    return false;
  size_t pad = (b64[len - 1] == '=') + (b64[len - 2] == '=');
  if ((size_t)n - pad != want)
    return false;
  memcpy(out, buf, want);
  return true;
}

static bool starts_with(const char *line, size_t len, const char *prefix) {
  size_t n = strlen(prefix);
  return len >= n && memcmp(line, prefix, n) == 0;
}

int nl_minisign_parse_key(const char *text, size_t len, nl_minisign_key *out,
                          char *why, size_t whylen) {
  if (len > NL_MINISIGN_TEXT_MAX)
    return fail(why, whylen, "the public key is too long");
  size_t pos = 0;
  const char *line;
  size_t n;
  while (next_line(text, len, &pos, &line, &n)) {
    if (n == 0 || starts_with(line, n, "untrusted comment:"))
      continue;
    uint8_t raw[2 + NL_MINISIGN_KEYID_SIZE + 32];
    if (!decode_exact(line, n, raw, sizeof raw) || raw[0] != 'E' ||
        raw[1] != 'd')
      return fail(why, whylen,
                  "not a minisign public key (expected the base64 line of "
                  "`minisign -G`'s .pub file)");
    memcpy(out->key_id, raw + 2, NL_MINISIGN_KEYID_SIZE);
    memcpy(out->public_key, raw + 2 + NL_MINISIGN_KEYID_SIZE, 32);
    /* Nothing may follow the key line. */
    while (next_line(text, len, &pos, &line, &n))
      if (n > 0)
        return fail(why, whylen, "unexpected text after the public key");
    return 0;
  }
  return fail(why, whylen, "no public key in the text");
}

int nl_minisign_parse_sig(const char *text, size_t len, nl_minisign_sig *out,
                          char *why, size_t whylen) {
  static const char trusted[] = "trusted comment: ";
  if (len > NL_MINISIGN_TEXT_MAX)
    return fail(why, whylen, "the signature file is too long");
  memset(out, 0, sizeof *out);
  size_t pos = 0;
  const char *line;
  size_t n;
  if (!next_line(text, len, &pos, &line, &n) ||
      !starts_with(line, n, "untrusted comment:"))
    return fail(why, whylen, "not a minisign signature (no untrusted comment)");
  uint8_t raw[2 + NL_MINISIGN_KEYID_SIZE + 64];
  if (!next_line(text, len, &pos, &line, &n) ||
      !decode_exact(line, n, raw, sizeof raw) || raw[0] != 'E' ||
      (raw[1] != 'D' && raw[1] != 'd'))
    return fail(why, whylen, "not a minisign signature (bad signature line)");
  out->prehashed = raw[1] == 'D';
  memcpy(out->key_id, raw + 2, NL_MINISIGN_KEYID_SIZE);
  memcpy(out->signature, raw + 2 + NL_MINISIGN_KEYID_SIZE, 64);
  if (!next_line(text, len, &pos, &line, &n) || !starts_with(line, n, trusted))
    return fail(why, whylen, "the signature has no trusted comment");
  size_t comment_len = n - (sizeof trusted - 1);
  if (comment_len > NL_MINISIGN_COMMENT_MAX || memchr(line, '\0', n) != NULL)
    return fail(why, whylen, "the trusted comment is too long");
  memcpy(out->trusted_comment, line + sizeof trusted - 1, comment_len);
  out->trusted_comment[comment_len] = '\0';
  if (!next_line(text, len, &pos, &line, &n) ||
      !decode_exact(line, n, out->global_signature, 64))
    return fail(why, whylen, "the signature has no global signature");
  while (next_line(text, len, &pos, &line, &n))
    if (n > 0)
      return fail(why, whylen, "unexpected text after the signature");
  return 0;
}

/* Ed25519 verification of msg (one-shot: Ed25519 takes no digest). */
static bool ed25519_ok(const uint8_t pk[32], const uint8_t sig[64],
                       const uint8_t *msg, size_t len) {
  EVP_PKEY *key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pk, 32);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  bool ok = key != NULL && ctx != NULL &&
            EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1 &&
            EVP_DigestVerify(ctx, sig, 64, msg, len) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(key);
  return ok;
}

int nl_minisign_verify(const nl_minisign_key *key, const nl_minisign_sig *sig,
                       const uint8_t *data, size_t len, char *why,
                       size_t whylen) {
  if (memcmp(key->key_id, sig->key_id, NL_MINISIGN_KEYID_SIZE) != 0)
    return fail(why, whylen,
                "signed with another key (key id %02X%02X%02X%02X%02X%02X%02X"
                "%02X, not the configured one)",
                sig->key_id[7], sig->key_id[6], sig->key_id[5], sig->key_id[4],
                sig->key_id[3], sig->key_id[2], sig->key_id[1], sig->key_id[0]);
  uint8_t digest[64];
  const uint8_t *msg = data;
  size_t msg_len = len;
  if (sig->prehashed) {
    unsigned int dlen = 0;
    if (EVP_Digest(data, len, digest, &dlen, EVP_blake2b512(), NULL) != 1 ||
        dlen != sizeof digest)
      return fail(why, whylen, "BLAKE2b-512 failed");
    msg = digest;
    msg_len = sizeof digest;
  }
  if (!ed25519_ok(key->public_key, sig->signature, msg, msg_len))
    return fail(why, whylen, "the signature does not verify");
  /* The global signature covers the signature and the trusted comment:
   * a comment (tag, expiry) moved from another release does not match. */
  size_t clen = strlen(sig->trusted_comment);
  uint8_t global[64 + NL_MINISIGN_COMMENT_MAX];
  memcpy(global, sig->signature, 64);
  memcpy(global + 64, sig->trusted_comment, clen);
  if (!ed25519_ok(key->public_key, sig->global_signature, global, 64 + clen))
    return fail(why, whylen, "the trusted comment's signature does not verify");
  return 0;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int nl_sha256sums_find(const char *text, size_t len, const char *name,
                       uint8_t digest[32], char *why, size_t whylen) {
  size_t pos = 0, want = strlen(name);
  const char *line;
  size_t n;
  int found = 1;
  while (next_line(text, len, &pos, &line, &n)) {
    if (n == 0)
      continue;
    /* 64 hex digits, a space, then a space (text) or '*' (binary). */
    if (n < 64 + 2 + 1 || line[64] != ' ' ||
        (line[65] != ' ' && line[65] != '*'))
      return fail(why, whylen, "SHA256SUMS is not in sha256sum's format");
    uint8_t d[32];
    for (int i = 0; i < 32; i++) {
      int hi = hex_value(line[2 * i]), lo = hex_value(line[2 * i + 1]);
      if (hi < 0 || lo < 0)
        return fail(why, whylen, "SHA256SUMS is not in sha256sum's format");
      d[i] = (uint8_t)(hi << 4 | lo);
    }
    size_t name_len = n - 66;
    if (name_len == want && memcmp(line + 66, name, want) == 0) {
      if (found == 0)
        return fail(why, whylen, "SHA256SUMS lists %s twice", name);
      memcpy(digest, d, 32);
      found = 0;
    }
  }
  return found;
}
