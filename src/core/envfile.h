/* The .env parser: KEY=VALUE lines, with comments, blank lines, single and
 * double quotes and `export ` prefixes. It reads bytes from files that an
 * operator (or an attacker with write access to them) controls, so it has a
 * fuzz target (tests/fuzz/fuzz_envfile.c). */
#ifndef NODELUA_ENVFILE_H
#define NODELUA_ENVFILE_H

#include <stddef.h>

/* Files larger than this are refused rather than read into memory. */
#define NL_ENVFILE_MAX_BYTES (1024 * 1024)
#define NL_ENVFILE_MAX_KEY 255

typedef struct {
  int line; /* 1-based; 0 when the error is not about one line */
  char message[192];
} nl_envfile_error;

/* Called once per assignment, in file order. A negative return stops the
 * parse and is returned by nl_envfile_parse. */
typedef int (*nl_envfile_pair_cb)(void *ud, const char *key, const char *value,
                                  int line);

/* Returns 0, -EINVAL for a syntax error (err says where and why), -ENOMEM,
 * or the callback's negative return. */
int nl_envfile_parse(const char *buf, size_t len, nl_envfile_pair_cb cb,
                     void *ud, nl_envfile_error *err);

#endif
