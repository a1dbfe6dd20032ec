/* Between the two halves of the macOS metrics: metrics_darwin.c (sysctl,
 * Mach, the routing socket, getfsstat; compiled on Linux too by
 * scripts/check-macos.sh) and metrics_darwin_frameworks.c (what needs
 * SystemConfiguration and IOKit). Not a public header. */
#ifndef NODELUA_METRICS_DARWIN_H
#define NODELUA_METRICS_DARWIN_H

#include "metrics_internal.h"

#include <stddef.h>

typedef struct {
  char name[32];
  nl_link_kind kind;
} nl_darwin_kind;

/* Reads the kind of every interface SystemConfiguration knows (and of each
 * bridge, from its members) into kinds; returns how many, at most max. */
size_t nl_darwin_link_kinds(nl_darwin_kind *kinds, size_t max);

/* Disk I/O of every whole disk into m's storage sample. 0 or -ENOMEM. */
int nl_darwin_sample_disks(nl_metrics *m);

#endif
