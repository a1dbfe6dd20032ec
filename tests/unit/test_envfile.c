#include "core/envfile.h"

#include "check.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct {
  char keys[16][64];
  char values[16][256];
  int lines[16];
  int count;
} pairs;

static int collect(void *ud, const char *key, const char *value, int line) {
  pairs *p = ud;
  if (p->count >= 16)
    return -ENOSPC;
  snprintf(p->keys[p->count], sizeof p->keys[0], "%s", key);
  snprintf(p->values[p->count], sizeof p->values[0], "%s", value);
  p->lines[p->count] = line;
  p->count++;
  return 0;
}

static int parse(const char *text, pairs *p, nl_envfile_error *err) {
  memset(p, 0, sizeof *p);
  return nl_envfile_parse(text, strlen(text), collect, p, err);
}

static void test_basic_forms(void) {
  pairs p;
  nl_envfile_error err;
  const char *text = "# a comment\n"
                     "\n"
                     "   \t\n"
                     "PLAIN=value\n"
                     "export EXPORTED=yes\n"
                     "export   SPACED  =  padded value  \n"
                     "SINGLE='it''s'\n" /* not valid: text after quote */;
  CHECK(parse(text, &p, &err) == -EINVAL);
  CHECK(err.line == 7);
  CHECK_CONTAINS(err.message, "after the closing quote");
  CHECK(p.count == 3);
  CHECK_STR(p.keys[0], "PLAIN");
  CHECK_STR(p.values[0], "value");
  CHECK(p.lines[0] == 4);
  CHECK_STR(p.keys[1], "EXPORTED");
  CHECK_STR(p.values[1], "yes");
  CHECK_STR(p.keys[2], "SPACED");
  CHECK_STR(p.values[2], "padded value");
}

static void test_quotes(void) {
  pairs p;
  nl_envfile_error err;
  const char *text = "S='single # not a comment $HOME \\n'\n"
                     "D=\"tab\\there \\\"q\\\" back\\\\slash \\$X\" # c\n"
                     "E=\"\"\n"
                     "U=unquoted # trailing comment\n"
                     "H=a#b\n"
                     "EMPTY=\n"
                     "CRLF=win\r\n";
  CHECK(parse(text, &p, &err) == 0);
  CHECK(p.count == 7);
  CHECK_STR(p.values[0], "single # not a comment $HOME \\n");
  CHECK_STR(p.values[1], "tab\there \"q\" back\\slash $X");
  CHECK_STR(p.values[2], "");
  CHECK_STR(p.values[3], "unquoted");
  CHECK_STR(p.values[4], "a#b");
  CHECK_STR(p.values[5], "");
  CHECK_STR(p.keys[6], "CRLF");
  CHECK_STR(p.values[6], "win");
}

static void test_errors(void) {
  pairs p;
  nl_envfile_error err;
  CHECK(parse("A=1\nB='open\n", &p, &err) == -EINVAL);
  CHECK(err.line == 2);
  CHECK_CONTAINS(err.message, "unterminated single-quoted");
  CHECK(parse("A=\"open\n", &p, &err) == -EINVAL);
  CHECK_CONTAINS(err.message, "unterminated double-quoted");
  CHECK(parse("just words\n", &p, &err) == -EINVAL);
  CHECK(err.line == 1);
  CHECK_CONTAINS(err.message, "expected '=' after just");
  CHECK(parse("1BAD=x\n", &p, &err) == -EINVAL);
  CHECK_CONTAINS(err.message, "expected NAME=VALUE");
  CHECK(parse("=x\n", &p, &err) == -EINVAL);
  CHECK(parse("A-B=x\n", &p, &err) == -EINVAL);
  CHECK(parse("D=\"x\" y\n", &p, &err) == -EINVAL);
  CHECK_CONTAINS(err.message, "after the closing quote");
  CHECK(nl_envfile_parse("A=1\nB=\0\n", 8, collect, &p, &err) == -EINVAL);
  CHECK(err.line == 2);
  CHECK_CONTAINS(err.message, "NUL");
  char longkey[300];
  memset(longkey, 'K', 290);
  memcpy(longkey + 290, "=v\n", 4);
  CHECK(parse(longkey, &p, &err) == -EINVAL);
  CHECK_CONTAINS(err.message, "longer than");
}

static void test_edges(void) {
  pairs p;
  nl_envfile_error err;
  /* "export" alone as a name, a BOM, no final newline. */
  CHECK(parse("\xEF\xBB\xBF"
              "export=1\nLAST=end",
              &p, &err) == 0);
  CHECK(p.count == 2);
  CHECK_STR(p.keys[0], "export");
  CHECK_STR(p.values[1], "end");
  CHECK(parse("", &p, &err) == 0);
  CHECK(p.count == 0);
  /* A callback's error stops the parse and is returned as is. */
  pairs many;
  memset(&many, 0, sizeof many);
  char text[16 * 8 + 16] = "";
  for (int i = 0; i < 17; i++)
    snprintf(text + strlen(text), sizeof text - strlen(text), "K%d=v\n", i);
  CHECK(nl_envfile_parse(text, strlen(text), collect, &many, &err) == -ENOSPC);
}

int main(void) {
  test_basic_forms();
  test_quotes();
  test_errors();
  test_edges();
  return check_report("test_envfile");
}
