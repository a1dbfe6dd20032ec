#include "txt.h"

#include <string.h>

static bool key_char(unsigned char c) {
  return c >= 0x20 && c <= 0x7e && c != '=';
}

int nl_txt_parse(const unsigned char *record, size_t len,
                 void (*each)(void *ud, const nl_txt_entry *entry), void *ud) {
  if (len > NL_TXT_PARSE_MAX)
    return -1;
  size_t pos = 0;
  int given = 0;
  while (pos < len) {
    size_t n = record[pos++];
    if (n > len - pos)
      return -1;
    const unsigned char *s = record + pos;
    pos += n;
    size_t key_len = 0;
    while (key_len < n && s[key_len] != '=')
      key_len++;
    if (key_len == 0 || key_len > NL_TXT_KEY_MAX)
      continue;
    nl_txt_entry entry = {0};
    bool valid = true;
    for (size_t i = 0; i < key_len; i++) {
      if (!key_char(s[i])) {
        valid = false;
        break;
      }
      unsigned char c = s[i];
      entry.key[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    if (!valid)
      continue;
    /* Was this key given already? The earlier strings were bounds-checked
     * on the way here; a record is small, so they are simply scanned again
     * rather than kept in a set. */
    size_t start = pos - n - 1;
    bool seen = false;
    for (size_t at = 0; at < start && !seen;) {
      size_t m = record[at];
      const unsigned char *t = record + at + 1;
      if (m >= key_len && (m == key_len || t[key_len] == '=')) {
        seen = true;
        for (size_t i = 0; i < key_len; i++) {
          unsigned char c = t[i];
          c = (unsigned char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
          if (c != (unsigned char)entry.key[i]) {
            seen = false;
            break;
          }
        }
      }
      at += 1 + m;
    }
    if (seen)
      continue;
    if (key_len < n) {
      entry.value = s + key_len + 1;
      entry.value_len = n - key_len - 1;
    }
    if (each != NULL)
      each(ud, &entry);
    given++;
  }
  return given;
}

int nl_txt_append(unsigned char *buf, size_t cap, size_t *len, const char *key,
                  const char *value, size_t value_len) {
  size_t key_len = strlen(key);
  if (key_len == 0 || key_len > NL_TXT_KEY_MAX)
    return -1;
  for (size_t i = 0; i < key_len; i++)
    if (!key_char((unsigned char)key[i]))
      return -1;
  size_t n = key_len + (value != NULL ? 1 + value_len : 0);
  if (n > 255)
    return -1;
  size_t limit = cap < NL_TXT_RECORD_MAX ? cap : NL_TXT_RECORD_MAX;
  if (*len > limit || 1 + n > limit - *len)
    return -1;
  unsigned char *p = buf + *len;
  *p++ = (unsigned char)n;
  memcpy(p, key, key_len);
  p += key_len;
  if (value != NULL) {
    *p++ = '=';
    if (value_len > 0)
      memcpy(p, value, value_len);
  }
  *len += 1 + n;
  return 0;
}
