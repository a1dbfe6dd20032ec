/* The TXT record codec: what we write parses back, and damaged or hostile
 * records are refused or trimmed as RFC 6763 says. */
#include "check.h"
#include "core/discovery/txt.h"

#include <stdlib.h>

typedef struct {
  int count;
  char keys[16][16];
  char values[16][300];
  int has_value[16];
} seen;

static void collect(void *ud, const nl_txt_entry *e) {
  seen *s = ud;
  if (s->count >= 16)
    return;
  strcpy(s->keys[s->count], e->key);
  s->has_value[s->count] = e->value != NULL;
  if (e->value != NULL) {
    memcpy(s->values[s->count], e->value, e->value_len);
    s->values[s->count][e->value_len] = '\0';
  }
  s->count++;
}

static int parse(const void *record, size_t len, seen *s) {
  memset(s, 0, sizeof *s);
  return nl_txt_parse(record, len, collect, s);
}

static void round_trip(void) {
  unsigned char buf[NL_TXT_RECORD_MAX];
  size_t len = 0;
  CHECK(nl_txt_append(buf, sizeof buf, &len, "txtvers", "1", 1) == 0);
  CHECK(nl_txt_append(buf, sizeof buf, &len, "id", "00ff", 4) == 0);
  CHECK(nl_txt_append(buf, sizeof buf, &len, "empty", "", 0) == 0);
  CHECK(nl_txt_append(buf, sizeof buf, &len, "flag", NULL, 0) == 0);
  CHECK(nl_txt_append(buf, sizeof buf, &len, "bin", "a=b\0c", 5) == 0);
  CHECK(len == 1 + 9 + 1 + 7 + 1 + 6 + 1 + 4 + 1 + 9);
  seen s;
  CHECK(parse(buf, len, &s) == 5);
  CHECK_STR(s.keys[0], "txtvers");
  CHECK_STR(s.values[0], "1");
  CHECK_STR(s.keys[1], "id");
  CHECK_STR(s.values[1], "00ff");
  CHECK(s.has_value[2] && s.values[2][0] == '\0'); /* "empty=" */
  CHECK(!s.has_value[3]);                          /* "flag": a boolean */
  CHECK(memcmp(s.values[4], "a=b\0c", 5) == 0);    /* values are bytes */
}

static void refuses_bad_keys_and_sizes(void) {
  unsigned char buf[NL_TXT_RECORD_MAX];
  size_t len = 0;
  CHECK(nl_txt_append(buf, sizeof buf, &len, "", "x", 1) == -1);
  CHECK(nl_txt_append(buf, sizeof buf, &len, "tenletters", "x", 1) == -1);
  CHECK(nl_txt_append(buf, sizeof buf, &len, "a=b", "x", 1) == -1);
  CHECK(nl_txt_append(buf, sizeof buf, &len, "tab\t", "x", 1) == -1);
  char big[300];
  memset(big, 'v', sizeof big);
  CHECK(nl_txt_append(buf, sizeof buf, &len, "k", big, 254) == -1); /* 256 */
  CHECK(nl_txt_append(buf, sizeof buf, &len, "k", big, 253) == 0);  /* 255 */
  CHECK(len == 256);
  /* The record stops at its cap, and a refused entry writes nothing. */
  size_t small_len = 0;
  unsigned char small[8];
  CHECK(nl_txt_append(small, sizeof small, &small_len, "abc", "1234", 4) == -1);
  CHECK(small_len == 0);
  CHECK(nl_txt_append(small, sizeof small, &small_len, "ab", "1234", 4) == 0);
  CHECK(small_len == 8);
  /* And at NL_TXT_RECORD_MAX, however large the buffer. */
  unsigned char *large = malloc(4096);
  size_t large_len = 0;
  int appended = 0;
  while (nl_txt_append(large, 4096, &large_len, "k", big, 253) == 0)
    appended++;
  CHECK(appended == NL_TXT_RECORD_MAX / 256);
  CHECK(large_len <= NL_TXT_RECORD_MAX);
  free(large);
}

static void damaged_records(void) {
  seen s;
  /* A length past the end: nothing of it is believed. */
  static const unsigned char overrun[] = {3, 'a', '=', '1', 9, 'b', '=', '2'};
  CHECK(parse(overrun, sizeof overrun, &s) == -1);
  static const unsigned char only_length[] = {1};
  CHECK(parse(only_length, sizeof only_length, &s) == -1);
  /* Empty strings, empty keys, long keys and control characters are
   * skipped; the rest stands. */
  static const unsigned char odd[] = {0,   2,   '=', 'x', 11,  'e', 'l', 'e',
                                      'v', 'e', 'n', 'k', 'e', 'y', 's', '=',
                                      2,   1,   'k', 3,   'o', 'k', '='};
  CHECK(parse(odd, sizeof odd, &s) == 1);
  CHECK_STR(s.keys[0], "ok");
  CHECK(s.has_value[0]);
  /* An empty record (and the single zero byte that means one) is fine. */
  CHECK(parse("", 0, &s) == 0);
  static const unsigned char zero[] = {0};
  CHECK(parse(zero, 1, &s) == 0);
  /* Over NL_TXT_PARSE_MAX: refused unread. */
  unsigned char *huge = calloc(1, NL_TXT_PARSE_MAX + 1);
  CHECK(parse(huge, NL_TXT_PARSE_MAX + 1, &s) == -1);
  free(huge);
}

static void first_occurrence_wins(void) {
  /* Keys are case-insensitive and only the first of a key counts (6.4). */
  static const unsigned char dup[] = {
      4,   'I', 'D', '=', '1', 4,   'i', 'd', '=', '2', 2,   'i', 'd', 3,
      'x', '=', 'y', 4,   'i', 'D', '=', '3', 4,   'x', '=', 'z', 0};
  seen s;
  CHECK(parse(dup, sizeof dup, &s) == 2);
  CHECK_STR(s.keys[0], "id");
  CHECK_STR(s.values[0], "1");
  CHECK_STR(s.keys[1], "x");
  CHECK_STR(s.values[1], "y");
  /* A boolean first occurrence also hides a later key=value. */
  static const unsigned char flag_first[] = {1, 'f', 3, 'f', '=', '1'};
  CHECK(parse(flag_first, sizeof flag_first, &s) == 1);
  CHECK(!s.has_value[0]);
}

int main(void) {
  round_trip();
  refuses_bad_keys_and_sizes();
  damaged_records();
  first_occurrence_wins();
  return check_report("test_txt");
}
