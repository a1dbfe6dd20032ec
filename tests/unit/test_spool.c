#include "core/spool.h"

#include "check.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static int count_files(const char *suffix) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "ls -1a '%s' | grep -c -- '%s$' > %s/.count", dir,
           suffix, dir);
  if (system(cmd) < 0)
    return -1;
  char path[128];
  snprintf(path, sizeof path, "%s/.count", dir);
  FILE *f = fopen(path, "r");
  int n = -1;
  if (f) {
    if (fscanf(f, "%d", &n) != 1)
      n = -1;
    fclose(f);
  }
  unlink(path);
  return n;
}

static void test_order_and_reopen(void) {
  nl_spool *s;
  char err[256];
  CHECK(nl_spool_open(dir, 0, 0, &s, err, sizeof err) == 0);
  CHECK(nl_spool_push(s, "one", 3, 1000) == 0);
  CHECK(nl_spool_push(s, "two", 3, 2000) == 0);
  CHECK(nl_spool_push(s, "three", 5, 3000) == 0);
  char *data;
  size_t len;
  uint64_t seq;
  CHECK(nl_spool_peek(s, &data, &len, &seq) == 0);
  CHECK(len == 3 && memcmp(data, "one", 3) == 0 && seq == 1);
  free(data);
  CHECK(nl_spool_ack(s, 2) == -ENOENT); /* only the oldest can be acked */
  CHECK(nl_spool_ack(s, 1) == 0);
  nl_spool_close(s);

  /* A push a crash cut short leaves a temporary file: reopening removes it,
   * and the queue goes on in order with fresh numbers. */
  char tmp[128];
  snprintf(tmp, sizeof tmp, "%s/.tmp-00000000000000000099", dir);
  FILE *f = fopen(tmp, "w");
  fputs("half a rep", f);
  fclose(f);
  CHECK(nl_spool_open(dir, 0, 0, &s, err, sizeof err) == 0);
  CHECK(access(tmp, F_OK) != 0);
  nl_spool_stats st;
  nl_spool_stats_get(s, &st);
  CHECK(st.depth == 2 && st.bytes == 8 && st.oldest_ms == 2000);
  CHECK(nl_spool_push(s, "four", 4, 4000) == 0);
  const char *want[] = {"two", "three", "four"};
  for (int i = 0; i < 3; i++) {
    CHECK(nl_spool_peek(s, &data, &len, &seq) == 0);
    CHECK(strlen(want[i]) == len && memcmp(data, want[i], len) == 0);
    CHECK(seq == (uint64_t)i + 2);
    free(data);
    CHECK(nl_spool_ack(s, seq) == 0);
  }
  CHECK(nl_spool_peek(s, &data, &len, &seq) == -ENOENT);
  CHECK(count_files(".json") == 0);
  nl_spool_close(s);
}

static void test_bounds(void) {
  nl_spool *s;
  char err[256];
  char report[100];
  memset(report, 'r', sizeof report);
  /* 350 bytes hold three reports of 100. */
  CHECK(nl_spool_open(dir, 350, 10000, &s, err, sizeof err) == 0);
  for (int i = 0; i < 5; i++)
    CHECK(nl_spool_push(s, report, sizeof report, 100000 + i) == 0);
  nl_spool_stats st;
  nl_spool_stats_get(s, &st);
  CHECK(st.depth == 3 && st.dropped == 2 && st.bytes == 300);
  CHECK(st.oldest_ms == 100002); /* the oldest went first */
  /* Age: everything older than 10 s as of now goes, but the newest. */
  nl_spool_expire(s, 100004 + 10001);
  nl_spool_stats_get(s, &st);
  CHECK(st.depth == 1 && st.dropped == 4);
  /* A single report larger than the bound is still kept: it is the one
   * just pushed. */
  char big[500];
  memset(big, 'b', sizeof big);
  CHECK(nl_spool_push(s, big, sizeof big, 200000) == 0);
  nl_spool_stats_get(s, &st);
  CHECK(st.depth == 1 && st.bytes == 500 && st.dropped == 5);
  char *data;
  size_t len;
  uint64_t seq;
  CHECK(nl_spool_peek(s, &data, &len, &seq) == 0 && len == 500);
  free(data);
  CHECK(nl_spool_ack(s, seq) == 0);
  nl_spool_close(s);
}

static void test_dead_letter_and_damage(void) {
  nl_spool *s;
  char err[256];
  CHECK(nl_spool_open(dir, 0, 0, &s, err, sizeof err) == 0);
  const char *payload = "{\"a\": 1,\n \"b\": \"x\"}";
  CHECK(nl_spool_push(s, payload, strlen(payload), 5000) == 0);
  char *data;
  size_t len;
  uint64_t seq;
  CHECK(nl_spool_peek(s, &data, &len, &seq) == 0);
  free(data);
  CHECK(nl_spool_dead_letter(s, seq, 400, "bad \"field\"\n") == 0);
  char path[128];
  snprintf(path, sizeof path, "%s/dead-letter.jsonl", dir);
  FILE *f = fopen(path, "r");
  char line[512] = "";
  CHECK(f && fgets(line, sizeof line, f) != NULL);
  if (f)
    fclose(f);
  CHECK_CONTAINS(line,
                 "\"status\":400,\"reason\":\"bad \\\"field\\\"\\u000a\",");
  CHECK_CONTAINS(line, "\"payload\":{\"a\": 1,  \"b\": \"x\"}}\n");
  nl_spool_stats st;
  nl_spool_stats_get(s, &st);
  CHECK(st.depth == 0 && st.dead_lettered == 1);
  /* A report removed behind the spool's back is skipped and counted. */
  CHECK(nl_spool_push(s, "gone", 4, 6000) == 0);
  CHECK(nl_spool_push(s, "kept", 4, 7000) == 0);
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -f '%s'/*-0000000006000.json", dir);
  CHECK(system(cmd) == 0);
  CHECK(nl_spool_peek(s, &data, &len, &seq) == 0);
  CHECK(len == 4 && memcmp(data, "kept", 4) == 0);
  free(data);
  nl_spool_stats_get(s, &st);
  CHECK(st.dropped == 1);
  nl_spool_close(s);
  struct stat sb;
  CHECK(stat(dir, &sb) == 0 && (sb.st_mode & 0777) == 0700);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/nodelua-spool-XXXXXX");
  if (mkdtemp(dir) == NULL)
    return 1;
  char sub[96];
  snprintf(sub, sizeof sub, "%s/a/b", dir); /* created, parents too */
  snprintf(dir + strlen(dir), sizeof dir - strlen(dir), "/a/b");
  (void)sub;
  test_order_and_reopen();
  test_bounds();
  test_dead_letter_and_damage();
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%.*s'", (int)(strlen(dir) - 4), dir);
  if (system(cmd) != 0)
    return 1;
  return check_report("test_spool");
}
