/* The spool: an on-disk queue of reports waiting for the monitoring API.
 * Every report is a file of its own, `<seq>-<unix ms>.json`, written to a
 * temporary name, fsynced, renamed into place and the directory fsynced
 * before nl_spool_push returns: a report that was pushed survives a kill -9
 * or a power cut. Reports leave in push order, and only when delivered
 * (acked), refused for good (dead-lettered), or dropped for the bounds:
 * the spool is bounded in bytes and in age, and beyond either bound the
 * oldest reports are dropped and counted. Any other failure (a file that
 * cannot be read or removed right now) keeps the report for a later try.
 * Sequence numbers never repeat, across restarts too: they identify a
 * report to the API (its Idempotency-Key). A report the API refuses for
 * good goes to dead-letter.jsonl, which is rotated to dead-letter.1.jsonl
 * at 4 MiB. */
#ifndef NODELUA_SPOOL_H
#define NODELUA_SPOOL_H

#include <stddef.h>
#include <stdint.h>

typedef struct nl_spool nl_spool;

typedef struct {
  uint64_t depth;         /* reports waiting */
  uint64_t bytes;         /* their size on disk */
  uint64_t dropped;       /* dropped for the bounds since open */
  uint64_t dead_lettered; /* moved to dead-letter.jsonl since open */
  int64_t oldest_ms;      /* Unix ms of the oldest waiting report, or -1 */
} nl_spool_stats;

/* Opens (creating, mode 0700) the spool in dir. max_bytes and max_age_ms
 * bound it (0: no bound). Returns 0 or a negative errno, with a message in
 * err. */
int nl_spool_open(const char *dir, uint64_t max_bytes, int64_t max_age_ms,
                  nl_spool **out, char *err, size_t errlen);
void nl_spool_close(nl_spool *s);

/* Writes a report durably, then applies the bounds (which may drop the
 * oldest reports, never this one). now_ms is the report's Unix time.
 * Returns 0 or a negative errno. */
int nl_spool_push(nl_spool *s, const char *data, size_t len, int64_t now_ms);

/* Drops reports older than the age bound, as of now_ms. */
void nl_spool_expire(nl_spool *s, int64_t now_ms);

/* The oldest waiting report: *data is malloc'd (the caller frees it).
 * Returns 0, -ENOENT when the spool is empty, or a negative errno: then the
 * report stays first in line, to be tried again. Only a report whose file
 * is gone is dropped (and counted), and the next one tried. */
int nl_spool_peek(nl_spool *s, char **data, size_t *len, uint64_t *seq);

/* The report seq was delivered: it is removed. Returns 0, or a negative
 * errno when its file could not be removed: it then stays, and is sent
 * again (with the same sequence number). */
int nl_spool_ack(nl_spool *s, uint64_t seq);

/* The report seq was refused for good: appended to dead-letter.jsonl as
 * {"time_ms":..,"status":..,"reason":"..","payload":<the report>}, then
 * removed from the queue. */
int nl_spool_dead_letter(nl_spool *s, uint64_t seq, long status,
                         const char *reason);

void nl_spool_stats_get(const nl_spool *s, nl_spool_stats *out);
const char *nl_spool_dir(const nl_spool *s);

#endif
