#define _GNU_SOURCE /* RTLD_NEXT */
#include "core/spool.h"

#include "check.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* An injected failure: while fail_unlink is set, removing a file fails
 * with that errno (this definition stands in for libc's in this test
 * program, the spool's calls included). */
static int fail_unlink;

int unlinkat(int dir_fd, const char *path, int flags) {
  if (fail_unlink != 0) {
    errno = fail_unlink;
    return -1;
  }
  int (*real)(int, const char *, int) =
      (int (*)(int, const char *, int))dlsym(RTLD_NEXT, "unlinkat");
  return real(dir_fd, path, flags);
}

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
  uint64_t last = 1;
  for (int i = 0; i < 3; i++) {
    CHECK(nl_spool_peek(s, &data, &len, &seq) == 0);
    CHECK(strlen(want[i]) == len && memcmp(data, want[i], len) == 0);
    CHECK(i < 2 ? seq == (uint64_t)i + 2 : seq > last); /* never reused */
    last = seq;
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

/* Acks whatever an earlier case left. */
static void drain(nl_spool *s) {
  char *data;
  size_t len;
  uint64_t seq;
  while (nl_spool_peek(s, &data, &len, &seq) == 0) {
    free(data);
    CHECK(nl_spool_ack(s, seq) == 0);
  }
}

/* Numbers identify reports to the API (Idempotency-Key): a spool emptied
 * and reopened goes on with new ones, never one used before. */
static void test_sequence_never_repeats(void) {
  nl_spool *s;
  char err[256], *data;
  size_t len;
  uint64_t first, second;
  CHECK(nl_spool_open(dir, 0, 0, &s, err, sizeof err) == 0);
  drain(s);
  CHECK(nl_spool_push(s, "a", 1, 1000) == 0);
  CHECK(nl_spool_peek(s, &data, &len, &first) == 0);
  free(data);
  CHECK(nl_spool_ack(s, first) == 0);
  nl_spool_close(s);
  CHECK(nl_spool_open(dir, 0, 0, &s, err, sizeof err) == 0);
  CHECK(nl_spool_push(s, "b", 1, 2000) == 0);
  CHECK(nl_spool_peek(s, &data, &len, &second) == 0);
  free(data);
  CHECK(second > first);
  CHECK(nl_spool_ack(s, second) == 0);
  nl_spool_close(s);
}

/* Errors that may pass keep the report: no file descriptor left (EMFILE)
 * at peek, a file that cannot be removed (EIO) at ack. Nothing is
 * dropped or counted; once the error passes the same report goes. */
static void test_errors_keep_reports(void) {
  nl_spool *s;
  char err[256], *data = NULL;
  size_t len;
  uint64_t seq;
  CHECK(nl_spool_open(dir, 0, 0, &s, err, sizeof err) == 0);
  drain(s);
  CHECK(nl_spool_push(s, "precious", 8, 1000) == 0);
  struct rlimit old, low;
  getrlimit(RLIMIT_NOFILE, &old);
  low = old;
  low.rlim_cur = 64;
  CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
  int fds[64], n = 0;
  while (n < 64 && (fds[n] = dup(0)) >= 0)
    n++;
  CHECK(nl_spool_peek(s, &data, &len, &seq) == -EMFILE);
  for (int i = 0; i < n; i++)
    close(fds[i]);
  setrlimit(RLIMIT_NOFILE, &old);
  nl_spool_stats st;
  nl_spool_stats_get(s, &st);
  CHECK(st.depth == 1 && st.dropped == 0);
  CHECK(nl_spool_peek(s, &data, &len, &seq) == 0 && len == 8 &&
        memcmp(data, "precious", 8) == 0);
  free(data);

  fail_unlink = EIO;
  CHECK(nl_spool_ack(s, seq) == -EIO);
  fail_unlink = 0;
  nl_spool_stats_get(s, &st);
  CHECK(st.depth == 1 && st.dropped == 0);
  uint64_t again;
  CHECK(nl_spool_peek(s, &data, &len, &again) == 0 && again == seq);
  free(data);
  CHECK(nl_spool_ack(s, seq) == 0);
  CHECK(count_files(".json") == 0);
  nl_spool_close(s);
}

/* dead-letter.jsonl is rotated, not grown without end: two files of about
 * 4 MiB at the most. */
static void test_dead_letters_bounded(void) {
  nl_spool *s;
  char err[256], *data;
  size_t len;
  uint64_t seq;
  CHECK(nl_spool_open(dir, 0, 0, &s, err, sizeof err) == 0);
  size_t size = 1536 * 1024;
  char *big = malloc(size);
  memset(big, 'x', size);
  for (int i = 0; i < 7; i++) {
    CHECK(nl_spool_push(s, big, size, 1000 + i) == 0);
    CHECK(nl_spool_peek(s, &data, &len, &seq) == 0);
    free(data);
    CHECK(nl_spool_dead_letter(s, seq, 400, "refused") == 0);
  }
  free(big);
  char path[128];
  struct stat a, b;
  snprintf(path, sizeof path, "%s/dead-letter.jsonl", dir);
  CHECK(stat(path, &a) == 0 && a.st_size <= 4 * 1024 * 1024);
  snprintf(path, sizeof path, "%s/dead-letter.1.jsonl", dir);
  CHECK(stat(path, &b) == 0 && b.st_size <= 4 * 1024 * 1024);
  nl_spool_close(s);
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
  test_sequence_never_repeats();
  test_errors_keep_reports();
  test_dead_letters_bounded();
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%.*s'", (int)(strlen(dir) - 4), dir);
  if (system(cmd) != 0)
    return 1;
  return check_report("test_spool");
}
