/* minisign verification against files made by the real minisign 0.11
 * (tests/fixtures/update: two public keys, a SHA256SUMS signed prehashed
 * and one signed in the legacy form, both by key a). */
#include "core/update/minisig.h"

#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FIXTURES
#error "FIXTURES: the path of tests/fixtures/update"
#endif

static char *slurp(const char *name, size_t *len) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", FIXTURES, name);
  FILE *f = fopen(path, "rb");
  CHECK(f != NULL);
  if (f == NULL)
    exit(check_report("test_minisig"));
  static char bufs[8][8192];
  static int next;
  char *buf = bufs[next++ % 8];
  *len = fread(buf, 1, sizeof bufs[0] - 1, f);
  buf[*len] = '\0';
  fclose(f);
  return buf;
}

static nl_minisign_key key_of(const char *name) {
  size_t len;
  char *text = slurp(name, &len);
  nl_minisign_key k;
  char why[256];
  CHECK(nl_minisign_parse_key(text, len, &k, why, sizeof why) == 0);
  return k;
}

int main(void) {
  char why[256];
  size_t sums_len, sig_len, legacy_len, legacy_sig_len;
  char *sums = slurp("SHA256SUMS", &sums_len);
  char *sig_text = slurp("SHA256SUMS.minisig", &sig_len);
  char *legacy = slurp("SHA256SUMS.legacy", &legacy_len);
  char *legacy_sig_text = slurp("SHA256SUMS.legacy.minisig", &legacy_sig_len);
  nl_minisign_key a = key_of("a.pub"), b = key_of("b.pub");

  /* The good case, prehashed and legacy. */
  nl_minisign_sig sig;
  CHECK(nl_minisign_parse_sig(sig_text, sig_len, &sig, why, sizeof why) == 0);
  CHECK(sig.prehashed);
  CHECK_STR(sig.trusted_comment, "tag=stable-1.2.0 expires=1999999999");
  CHECK(nl_minisign_verify(&a, &sig, (const uint8_t *)sums, sums_len, why,
                           sizeof why) == 0);
  nl_minisign_sig legacy_sig;
  CHECK(nl_minisign_parse_sig(legacy_sig_text, legacy_sig_len, &legacy_sig, why,
                              sizeof why) == 0);
  CHECK(!legacy_sig.prehashed);
  CHECK(nl_minisign_verify(&a, &legacy_sig, (const uint8_t *)legacy, legacy_len,
                           why, sizeof why) == 0);

  /* Another key: refused by its id before any arithmetic. */
  CHECK(nl_minisign_verify(&b, &sig, (const uint8_t *)sums, sums_len, why,
                           sizeof why) != 0);
  CHECK_CONTAINS(why, "another key");
  /* Another key that claims a's id: the signature does not verify. */
  nl_minisign_key forged = b;
  memcpy(forged.key_id, a.key_id, sizeof forged.key_id);
  CHECK(nl_minisign_verify(&forged, &sig, (const uint8_t *)sums, sums_len, why,
                           sizeof why) != 0);

  /* One byte of the file changed. */
  char tampered[8192];
  memcpy(tampered, sums, sums_len);
  tampered[3] ^= 1;
  CHECK(nl_minisign_verify(&a, &sig, (const uint8_t *)tampered, sums_len, why,
                           sizeof why) != 0);
  CHECK_CONTAINS(why, "does not verify");

  /* The trusted comment changed (another tag, a later expiry): the global
   * signature no longer matches. */
  nl_minisign_sig moved = sig;
  snprintf(moved.trusted_comment, sizeof moved.trusted_comment,
           "tag=stable-9.9.9 expires=1999999999");
  CHECK(nl_minisign_verify(&a, &moved, (const uint8_t *)sums, sums_len, why,
                           sizeof why) != 0);
  CHECK_CONTAINS(why, "trusted comment");

  /* Malformed input is refused with a reason, never read past. */
  const char *bad[] = {
      "",
      "untrusted comment: x\n",
      "untrusted comment: x\nRWQ!!!!\ntrusted comment: t\nAAAA\n",
      "no comment\nRUQRolVE8fiW0pjh\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    nl_minisign_sig s;
    why[0] = '\0';
    CHECK(nl_minisign_parse_sig(bad[i], strlen(bad[i]), &s, why, sizeof why) !=
          0);
    CHECK(why[0] != '\0');
  }
  nl_minisign_key k;
  CHECK(nl_minisign_parse_key("RWQ", 3, &k, why, sizeof why) != 0);
  CHECK(nl_minisign_parse_key("", 0, &k, why, sizeof why) != 0);
  /* The bare base64 line is a key too (UPDATE_PUBLIC_KEY). */
  size_t pub_len;
  char *pub = slurp("a.pub", &pub_len);
  const char *line = strchr(pub, '\n') + 1;
  CHECK(nl_minisign_parse_key(line, strlen(line), &k, why, sizeof why) == 0);
  CHECK(memcmp(k.public_key, a.public_key, 32) == 0);

  /* SHA256SUMS. */
  uint8_t d[32];
  CHECK(nl_sha256sums_find(sums, sums_len, "nodelua-linux-x86_64", d, why,
                           sizeof why) == 0);
  CHECK(d[0] == 0x2d); /* sha256("x") = 2d711642... */
  CHECK(nl_sha256sums_find(sums, sums_len, "nodelua-linux-aarch64", d, why,
                           sizeof why) == 1);
  CHECK(nl_sha256sums_find(sums, sums_len, "nodelua-linux-x86", d, why,
                           sizeof why) == 1); /* no prefix match */
  const char *twice = "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717"
                      "921a4881  f\n"
                      "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717"
                      "921a4881 *f\n";
  CHECK(nl_sha256sums_find(twice, strlen(twice), "f", d, why, sizeof why) ==
        -1);
  CHECK(nl_sha256sums_find("not a sum\n", 10, "f", d, why, sizeof why) == -1);
  return check_report("test_minisig");
}
