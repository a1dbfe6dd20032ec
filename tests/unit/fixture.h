/* A fixture tree under a temporary directory, for the unit tests that
 * point the metrics core at a fake /proc or /sys: put(rel, text) writes a
 * file (making its directories), mkdirs(rel) a directory, link_to(rel,
 * target) a symlink. `fixture` is the tree's root, set by the test. */
#ifndef NODELUA_TEST_FIXTURE_H
#define NODELUA_TEST_FIXTURE_H

#include "check.h"

#include <stdio.h>
#include <stdlib.h>

static char fixture[64];

static inline void put(const char *rel, const char *text) {
  char path[256], cmd[640];
  snprintf(path, sizeof path, "%s/%s", fixture, rel);
  snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\"", path);
  CHECK(system(cmd) == 0);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (f) {
    fputs(text, f);
    fclose(f);
  }
}

static inline void mkdirs(const char *rel) {
  char cmd[320];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s/%s'", fixture, rel);
  CHECK(system(cmd) == 0);
}

static inline void link_to(const char *rel, const char *target) {
  char path[256], cmd[768];
  snprintf(path, sizeof path, "%s/%s", fixture, rel);
  snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\" && ln -s '%s' '%s'",
           path, target, path);
  CHECK(system(cmd) == 0);
}

#endif
