/* A minimal test harness: each CHECK that fails prints file:line and the
 * expression, and the process exits non-zero at the end. */
#ifndef NODELUA_TEST_CHECK_H
#define NODELUA_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures;
static int check_count;

#define CHECK(expr)                                                            \
  do {                                                                         \
    check_count++;                                                             \
    if (!(expr)) {                                                             \
      check_failures++;                                                        \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr); \
    }                                                                          \
  } while (0)

#define CHECK_STR(actual, expected)                                            \
  do {                                                                         \
    const char *check_a_ = (actual);                                           \
    const char *check_e_ = (expected);                                         \
    check_count++;                                                             \
    if (check_a_ == NULL || strcmp(check_a_, check_e_) != 0) {                 \
      check_failures++;                                                        \
      fprintf(stderr, "%s:%d: expected \"%s\", got \"%s\"\n", __FILE__,        \
              __LINE__, check_e_, check_a_ ? check_a_ : "(null)");             \
    }                                                                          \
  } while (0)

#define CHECK_CONTAINS(haystack, needle)                                       \
  do {                                                                         \
    const char *check_h_ = (haystack);                                         \
    check_count++;                                                             \
    if (check_h_ == NULL || strstr(check_h_, (needle)) == NULL) {              \
      check_failures++;                                                        \
      fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n", __FILE__,     \
              __LINE__, check_h_ ? check_h_ : "(null)", (needle));             \
    }                                                                          \
  } while (0)

static int check_skipped;

/* A case that cannot run here (it needs root, say): it says so, and the
 * test, if nothing failed, exits 77, which ctest shows as skipped rather
 * than passed. */
static inline void check_skip(const char *what) {
  check_skipped++;
  printf("SKIPPED: %s\n", what);
}

/* The exit status: 1 if a check failed, else 77 if a case was skipped,
 * else 0. */
static inline int check_report(const char *name) {
  printf("%s: %d checks, %d failed, %d cases skipped\n", name, check_count,
         check_failures, check_skipped);
  return check_failures != 0 ? 1 : check_skipped != 0 ? 77 : 0;
}

#endif
