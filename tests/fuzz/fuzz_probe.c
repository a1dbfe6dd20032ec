/* libFuzzer target for the probe request parser (bytes from any host that
 * connects to TRANSFER_PORT): an accepted request has a 32-digit nonce, an
 * introduction (if any) with a lower-case hex id of 1 to 64 digits and a
 * port from 1 to 65535, a MAC (if any) of 64 digits, a signed part that is
 * a prefix of the line, and is exactly what the prober would have written
 * for them. */
#include "core/discovery/probe.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void lower_hex(const char *s, size_t min, size_t max) {
  size_t n = strlen(s);
  if (n < min || n > max)
    abort();
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  nl_probe_request r;
  int kind = nl_probe_parse_request((const char *)data, size, &r);
  if (kind < -2 || kind > 0)
    abort();
  if (kind != 0)
    return 0;
  lower_hex(r.nonce, NL_PROBE_NONCE_HEX, NL_PROBE_NONCE_HEX);
  char again[NL_PROBE_LINE_MAX + 64];
  int len = snprintf(again, sizeof again, "NODELUA 2 PROBE %s", r.nonce);
  if (r.port != 0) {
    lower_hex(r.id, 1, NL_PROBE_ID_MAX);
    if (r.port < 1 || r.port > 65535)
      abort();
    len += snprintf(again + len, sizeof again - (size_t)len, " %s %d", r.id,
                    r.port);
  } else if (r.id[0] != '\0') {
    abort();
  }
  if ((size_t)len != r.signed_len)
    abort();
  if (r.mac[0] != '\0') {
    lower_hex(r.mac, NL_PROBE_MAC_HEX, NL_PROBE_MAC_HEX);
    len += snprintf(again + len, sizeof again - (size_t)len, " %s", r.mac);
  }
  /* The same line, but for the case of the hex digits. */
  if ((size_t)len != size || strncasecmp(again, (const char *)data, size) != 0)
    abort();
  return 0;
}
