/* DNS-SD TXT records (RFC 6763 section 6): a sequence of length-prefixed
 * "key=value" strings. The parser reads bytes from the network, so it takes
 * nothing on trust: every length is checked against what is left. */
#ifndef NODELUA_DISCOVERY_TXT_H
#define NODELUA_DISCOVERY_TXT_H

#include <stdbool.h>
#include <stddef.h>

/* Keys are short (RFC 6763 6.4 advises 9 characters or fewer, and so do we:
 * it is a hard limit here) and the record small enough for one packet. */
#define NL_TXT_KEY_MAX 9
#define NL_TXT_RECORD_MAX 1300
/* Records longer than this are refused unread: none of ours comes near, and
 * the duplicate-key check is quadratic in the number of entries. */
#define NL_TXT_PARSE_MAX 8192

typedef struct {
  char key[NL_TXT_KEY_MAX + 1]; /* lower-cased */
  const unsigned char *value;   /* into the record; NULL: a boolean key */
  size_t value_len;
} nl_txt_entry;

/* Calls each(ud, entry) for every well-formed entry, first occurrence of a
 * key only (6.4), skipping empty strings and entries whose key is empty,
 * over 9 characters or not printable ASCII. Returns the number of entries
 * given, or -1 when a length runs past the end (the record is damaged and
 * nothing of it should be believed) or the record is over NL_TXT_PARSE_MAX. */
int nl_txt_parse(const unsigned char *record, size_t len,
                 void (*each)(void *ud, const nl_txt_entry *entry), void *ud);

/* Appends "key=value" to the record in buf (of size cap, holding *len
 * bytes). Returns 0, or -1 with nothing written when the key is not 1 to 9
 * printable characters without '=', the string is over 255 bytes, or the
 * record would pass NL_TXT_RECORD_MAX or cap. */
int nl_txt_append(unsigned char *buf, size_t cap, size_t *len, const char *key,
                  const char *value, size_t value_len);

#endif
