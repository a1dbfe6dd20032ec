/* libFuzzer target for the TXT record parser (bytes from any host on the
 * network): it must refuse or accept without reading out of bounds, give
 * only well-formed keys, each key once, with values inside the record; and
 * what the encoder writes from those entries must parse back the same. */
#include "core/discovery/txt.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const uint8_t *data;
  size_t size;
  char keys[64][NL_TXT_KEY_MAX + 1];
  int count;
  unsigned char rebuilt[NL_TXT_RECORD_MAX];
  size_t rebuilt_len;
  int rebuilt_entries;
} state;

static void check_entry(void *ud, const nl_txt_entry *e) {
  state *s = ud;
  size_t key_len = strlen(e->key);
  if (key_len == 0 || key_len > NL_TXT_KEY_MAX)
    abort();
  for (size_t i = 0; i < key_len; i++) {
    unsigned char c = (unsigned char)e->key[i];
    if (c < 0x20 || c > 0x7e || c == '=' || (c >= 'A' && c <= 'Z'))
      abort();
  }
  if (e->value != NULL &&
      (e->value < s->data || e->value + e->value_len > s->data + s->size))
    abort();
  for (int i = 0; i < s->count && i < 64; i++)
    if (strcmp(s->keys[i], e->key) == 0)
      abort(); /* a key given twice */
  if (s->count < 64)
    strcpy(s->keys[s->count], e->key);
  s->count++;
  if (nl_txt_append(s->rebuilt, sizeof s->rebuilt, &s->rebuilt_len, e->key,
                    (const char *)e->value, e->value_len) == 0)
    s->rebuilt_entries++;
}

static void count_entry(void *ud, const nl_txt_entry *e) {
  (void)e;
  (*(int *)ud)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  state *s = calloc(1, sizeof *s);
  if (s == NULL)
    return 0;
  s->data = data;
  s->size = size;
  int given = nl_txt_parse(data, size, check_entry, s);
  if (given < -1 || (given >= 0 && given != s->count))
    abort();
  /* On -1 the entries before the damage were given: allowed, since the
   * caller drops them all. */
  if (given >= 0) {
    int again = 0;
    if (nl_txt_parse(s->rebuilt, s->rebuilt_len, count_entry, &again) !=
            s->rebuilt_entries ||
        again != s->rebuilt_entries)
      abort();
  }
  free(s);
  return 0;
}
