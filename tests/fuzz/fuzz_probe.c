/* libFuzzer target for the probe request parser (bytes from any host that
 * connects to TRANSFER_PORT): an accepted introduction has a lower-case hex
 * id of 1 to 64 digits and a port from 1 to 65535, and is exactly what the
 * prober would have written for them. */
#include "core/discovery/probe.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char id[NL_PROBE_ID_MAX + 1];
  int port = 0;
  int kind = nl_probe_parse_request((const char *)data, size, id, &port);
  if (kind == 0 && (size != 15 || memcmp(data, "NODELUA 1 PROBE", 15) != 0))
    abort();
  if (kind == 1) {
    size_t n = strlen(id);
    if (n == 0 || n > NL_PROBE_ID_MAX || port < 1 || port > 65535)
      abort();
    for (size_t i = 0; i < n; i++)
      if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
        abort();
    char again[NL_PROBE_LINE_MAX];
    int len = snprintf(again, sizeof again, "NODELUA 1 PROBE %s %d", id, port);
    /* The same line, but for the case of the hex digits. */
    if ((size_t)len != size ||
        strncasecmp(again, (const char *)data, size) != 0)
      abort();
  }
  if (kind < -1 || kind > 1)
    abort();
  return 0;
}
