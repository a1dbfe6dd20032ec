/* libFuzzer target for the parsers of what a release brings (bytes from
 * the network, before any signature is verified): minisign public keys
 * and signature files, and SHA256SUMS. Each must refuse or accept without
 * reading out of bounds; an accepted signature has a terminated trusted
 * comment within its bound, and verifying it against the same bytes with
 * a key parsed from them never crashes. */
#include "core/update/minisig.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char why[256];
  const char *text = (const char *)data;
  nl_minisign_key key;
  nl_minisign_sig sig;
  int have_key = nl_minisign_parse_key(text, size, &key, why, sizeof why) == 0;
  if (nl_minisign_parse_sig(text, size, &sig, why, sizeof why) == 0) {
    size_t n = strnlen(sig.trusted_comment, sizeof sig.trusted_comment);
    if (n > NL_MINISIGN_COMMENT_MAX)
      abort();
    if (have_key)
      nl_minisign_verify(&key, &sig, data, size, why, sizeof why);
  }
  uint8_t digest[32];
  int rc = nl_sha256sums_find(text, size, "nodelua-linux-x86_64", digest, why,
                              sizeof why);
  if (rc < -1 || rc > 1)
    abort();
  return 0;
}
