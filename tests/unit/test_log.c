#include "core/log.h"

#include "check.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static void test_levels(void) {
  nl_log_level level;
  CHECK(nl_log_level_parse("error", &level) == 0 && level == NL_LOG_ERROR);
  CHECK(nl_log_level_parse("WARN", &level) == 0 && level == NL_LOG_WARN);
  CHECK(nl_log_level_parse("warning", &level) == 0 && level == NL_LOG_WARN);
  CHECK(nl_log_level_parse("Info", &level) == 0 && level == NL_LOG_INFO);
  CHECK(nl_log_level_parse("debug", &level) == 0 && level == NL_LOG_DEBUG);
  CHECK(nl_log_level_parse("trace", &level) == 0 && level == NL_LOG_TRACE);
  CHECK(nl_log_level_parse("loud", &level) == -EINVAL);
  CHECK(nl_log_level_parse("", &level) == -EINVAL);
  nl_log_set_level(NL_LOG_WARN);
  CHECK(nl_log_enabled(NL_LOG_ERROR));
  CHECK(nl_log_enabled(NL_LOG_WARN));
  CHECK(!nl_log_enabled(NL_LOG_INFO));
  nl_log_set_level(NL_LOG_INFO);
}

static void test_text_line(void) {
  char line[512];
  nl_log_set_format(NL_LOG_TEXT);
  size_t n = nl_log_format_line(line, sizeof line, NL_LOG_WARN, "runtime",
                                "first\nsecond\tthird\x01");
  CHECK(n == strlen(line));
  CHECK(line[n - 1] == '\n');
  CHECK(strchr(line, '\n') == line + n - 1);
  /* 2026-11-28T16:04:37.123Z WARN  runtime: first | second third? */
  CHECK(line[4] == '-' && line[10] == 'T' && line[23] == 'Z');
  CHECK_CONTAINS(line, "Z WARN  runtime: first | second third?\n");
}

static void test_json_line(void) {
  char line[512];
  nl_log_set_format(NL_LOG_JSON);
  nl_log_format_line(line, sizeof line, NL_LOG_ERROR, "lua",
                     "say \"hi\"\\\n\x02");
  CHECK(strncmp(line, "{\"ts\":\"", 7) == 0);
  CHECK_CONTAINS(line, "\"level\":\"error\",\"component\":\"lua\","
                       "\"msg\":\"say \\\"hi\\\"\\\\\\n\\u0002\"}\n");
  nl_log_set_format(NL_LOG_TEXT);
}

static void test_truncation(void) {
  char line[64];
  char big[200];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  size_t n = nl_log_format_line(line, sizeof line, NL_LOG_INFO, "c", big);
  CHECK(n == sizeof line - 1);
  CHECK(line[n - 1] == '\n');
}

static void test_redaction(void) {
  char out[128];
  CHECK(nl_log_add_secret("abc") == 0); /* too short: ignored */
  CHECK(nl_log_add_secret("topsecret") == 0);
  CHECK(nl_log_add_secret("topsecret-longer") == 0);
  nl_log_redact("abc topsecret-longer and topsecret, topsecrettopsecret", out,
                sizeof out);
  CHECK_STR(out, "abc [REDACTED] and [REDACTED], [REDACTED][REDACTED]");
  nl_log_redact("nothing here", out, sizeof out);
  CHECK_STR(out, "nothing here");
  char small[8];
  nl_log_redact("topsecret", small, sizeof small);
  CHECK(strlen(small) == sizeof small - 1);
  nl_log_clear_secrets();
  nl_log_redact("topsecret", out, sizeof out);
  CHECK_STR(out, "topsecret");
}

static void test_file_output(void) {
  char path[] = "/tmp/nodelua-log-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  close(fd);
  CHECK(nl_log_add_secret("hunter2-key") == 0);
  CHECK(nl_log_set_file(path) == 0);
  nl_log_info("test", "the key is %s", "hunter2-key");
  nl_log_debug("test", "below the level: not written");
  CHECK(nl_log_set_file(NULL) == 0);
  FILE *f = fopen(path, "r");
  char buf[512] = "";
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  buf[n] = '\0';
  if (f)
    fclose(f);
  CHECK_CONTAINS(buf, "INFO  test: the key is [REDACTED]\n");
  CHECK(strstr(buf, "hunter2") == NULL);
  CHECK(strstr(buf, "below the level") == NULL);
  unlink(path);
  CHECK(nl_log_set_file("/nonexistent-dir/x.log") == -ENOENT);
  nl_log_clear_secrets();
}

int main(void) {
  test_levels();
  test_text_line();
  test_json_line();
  test_truncation();
  test_redaction();
  test_file_output();
  return check_report("test_log");
}
