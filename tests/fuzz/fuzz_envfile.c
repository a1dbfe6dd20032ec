/* libFuzzer target for the .env parser: any bytes must give either pairs
 * whose keys are well formed, or a syntax error with a line number, and
 * never a crash, a leak or undefined behaviour. */
#include "core/envfile.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int check_pair(void *ud, const char *key, const char *value, int line) {
  (void)value;
  int *last_line = ud;
  if (key[0] == '\0' || isdigit((unsigned char)key[0]) || line <= *last_line)
    abort();
  for (const char *p = key; *p; p++) {
    if (!isalnum((unsigned char)*p) && *p != '_')
      abort();
  }
  *last_line = line;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  nl_envfile_error err;
  int last_line = 0;
  int rc =
      nl_envfile_parse((const char *)data, size, check_pair, &last_line, &err);
  if (rc != 0 && (err.line < 1 || err.message[0] == '\0'))
    abort();
  return 0;
}
