#include "envfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(nl_envfile_error *err, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(nl_envfile_error *err, int line, const char *fmt, ...) {
  if (err != NULL) {
    va_list ap;
    err->line = line;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
  }
  return -EINVAL;
}

static int is_blank(char c) { return c == ' ' || c == '\t'; }
static int is_key_start(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}
static int is_key_char(char c) {
  return is_key_start(c) || (c >= '0' && c <= '9');
}

/* After a closing quote only blanks and a comment may follow. */
static int rest_is_empty(const char *p, const char *end) {
  while (p < end && is_blank(*p))
    p++;
  return p == end || *p == '#';
}

/* Parses the value part of one line, [p, end), into out (which has room for
 * end - p + 1 bytes). Returns 0 or -EINVAL. */
static int parse_value(const char *p, const char *end, char *out, int line,
                       nl_envfile_error *err) {
  size_t n = 0;
  if (p < end && *p == '\'') {
    const char *close = memchr(p + 1, '\'', (size_t)(end - p - 1));
    if (close == NULL)
      return fail(err, line, "unterminated single-quoted value");
    n = (size_t)(close - p - 1);
    memcpy(out, p + 1, n);
    out[n] = '\0';
    if (!rest_is_empty(close + 1, end))
      return fail(err, line, "unexpected text after the closing quote");
    return 0;
  }
  if (p < end && *p == '"') {
    for (p++; p < end; p++) {
      if (*p == '"') {
        out[n] = '\0';
        if (!rest_is_empty(p + 1, end))
          return fail(err, line, "unexpected text after the closing quote");
        return 0;
      }
      if (*p == '\\' && p + 1 < end) {
        char next = p[1];
        char decoded = 0;
        switch (next) {
        case 'n':
          decoded = '\n';
          break;
        case 't':
          decoded = '\t';
          break;
        case 'r':
          decoded = '\r';
          break;
        case '"':
        case '\\':
        case '$':
          decoded = next;
          break;
        default:
          break;
        }
        if (decoded != 0) {
          out[n++] = decoded;
          p++;
          continue;
        }
      }
      out[n++] = *p;
    }
    return fail(err, line, "unterminated double-quoted value");
  }
  /* Unquoted: up to the end of the line or a '#' that follows a blank, with
   * trailing blanks trimmed. */
  const char *start = p;
  for (; p < end; p++) {
    if (*p == '#' && p > start && is_blank(p[-1]))
      break;
  }
  while (p > start && is_blank(p[-1]))
    p--;
  n = (size_t)(p - start);
  memcpy(out, start, n);
  out[n] = '\0';
  return 0;
}

int nl_envfile_parse(const char *buf, size_t len, nl_envfile_pair_cb cb,
                     void *ud, nl_envfile_error *err) {
  const char *p = buf;
  const char *end = buf + len;
  int line = 0;
  if (err != NULL) {
    err->line = 0;
    err->message[0] = '\0';
  }
  if (memchr(buf, '\0', len) != NULL) {
    const char *nul = memchr(buf, '\0', len);
    int nul_line = 1;
    for (const char *q = buf; q < nul; q++)
      nul_line += *q == '\n';
    return fail(err, nul_line, "NUL byte in file");
  }
  /* A UTF-8 byte-order mark, as some editors write, is not part of a key. */
  if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
    p += 3;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *line_end = eol ? eol : end;
    const char *next = eol ? eol + 1 : end;
    line++;
    if (line_end > p && line_end[-1] == '\r')
      line_end--;
    while (p < line_end && is_blank(*p))
      p++;
    if (p == line_end || *p == '#') {
      p = next;
      continue;
    }
    if ((size_t)(line_end - p) > 7 && memcmp(p, "export", 6) == 0 &&
        is_blank(p[6])) {
      p += 6;
      while (p < line_end && is_blank(*p))
        p++;
    }
    const char *key_start = p;
    if (p == line_end || !is_key_start(*p))
      return fail(err, line,
                  "expected NAME=VALUE with NAME of letters, "
                  "digits and '_', not starting with a digit");
    while (p < line_end && is_key_char(*p))
      p++;
    size_t key_len = (size_t)(p - key_start);
    if (key_len > NL_ENVFILE_MAX_KEY)
      return fail(err, line, "variable name longer than %d characters",
                  NL_ENVFILE_MAX_KEY);
    while (p < line_end && is_blank(*p))
      p++;
    if (p == line_end || *p != '=')
      return fail(err, line, "expected '=' after %.*s", (int)key_len,
                  key_start);
    p++;
    while (p < line_end && is_blank(*p))
      p++;
    char key[NL_ENVFILE_MAX_KEY + 1];
    memcpy(key, key_start, key_len);
    key[key_len] = '\0';
    char *value = malloc((size_t)(line_end - p) + 1);
    if (value == NULL)
      return -ENOMEM;
    int rc = parse_value(p, line_end, value, line, err);
    if (rc == 0)
      rc = cb(ud, key, value, line);
    free(value);
    if (rc < 0)
      return rc;
    p = next;
  }
  return 0;
}
