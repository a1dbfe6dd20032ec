/* Writing the Prometheus text exposition (format 0.0.4) into an nl_buf:
 * HELP and TYPE lines, series with escaped label values, and values. Shared
 * by prom.c (the snapshot's families) and the Linux exporter files
 * (export_linux*.c), which write what they read straight out. No printf on
 * the integer path: rendering runs on every scrape. */
#ifndef NODELUA_PROMTEXT_H
#define NODELUA_PROMTEXT_H

#include "metrics.h"

void nl_prom_family(nl_buf *b, const char *name, const char *type,
                    const char *help);
/* name{k1="v1",...} for a NULL-terminated list of pairs (labels may be
 * NULL), then the value and a newline. */
void nl_prom_u64(nl_buf *b, const char *name, const char *const *labels,
                 uint64_t v);
void nl_prom_double(nl_buf *b, const char *name, const char *const *labels,
                    double v);
/* The strings after cap, up to a NULL, joined into dst (cut to fit): names
 * and help texts without printf. */
void nl_prom_concat(char *dst, size_t cap, ...);

/* A family with a single unlabelled sample. */
void nl_prom_gauge(nl_buf *b, const char *name, const char *help, double v);
void nl_prom_counter(nl_buf *b, const char *name, const char *help, double v);

/* node_time_seconds and node_time_zone_offset_seconds: the clock now. */
void nl_prom_time(nl_buf *b);

#endif
