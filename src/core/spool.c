#include "spool.h"

#include "portable.h"

#include "trust.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct {
  uint64_t seq;
  int64_t time_ms;
  uint64_t size;
} entry;

struct nl_spool {
  char *dir;
  int dir_fd;
  uint64_t max_bytes;
  int64_t max_age_ms;
  entry *entries; /* waiting reports, oldest first, from index head */
  size_t head, count, cap;
  uint64_t bytes;
  uint64_t next_seq;
  /* Sequence numbers up to here are handed out already (the "sequence"
   * file says so): after a restart numbering goes on from here, even when
   * the queue was empty, so that no number is used twice. */
  uint64_t reserved_seq;
  uint64_t dropped, dead_lettered;
};

#define SEQUENCE_FILE "sequence"
#define SEQUENCE_BLOCK 1024
/* dead-letter.jsonl is rotated to dead-letter.1.jsonl past this size: two
 * files at the most. */
#define DEAD_LETTER_MAX (4 * 1024 * 1024)

static void entry_name(char *buf, size_t len, const entry *e) {
  snprintf(buf, len, "%020" PRIu64 "-%013" PRId64 ".json", e->seq, e->time_ms);
}

static entry *oldest(nl_spool *s) {
  return s->count > 0 ? &s->entries[s->head] : NULL;
}

static int append_entry(nl_spool *s, entry e) {
  if (s->head + s->count == s->cap) {
    if (s->head > 0) { /* reuse the room the delivered ones left */
      memmove(s->entries, s->entries + s->head, s->count * sizeof e);
      s->head = 0;
    } else {
      size_t next = s->cap ? s->cap * 2 : 64;
      entry *grown = realloc(s->entries, next * sizeof e);
      if (grown == NULL)
        return -ENOMEM;
      s->entries = grown;
      s->cap = next;
    }
  }
  s->entries[s->head + s->count++] = e;
  s->bytes += e.size;
  return 0;
}

/* Removes the oldest report, file first: if the file cannot be removed
 * (other than being gone already) it stays in the queue too, so that what
 * is on disk and what is counted never disagree. Returns 0 or a negative
 * errno. */
static int remove_oldest(nl_spool *s) {
  entry *e = oldest(s);
  char name[64];
  entry_name(name, sizeof name, e);
  if (unlinkat(s->dir_fd, name, 0) != 0 && errno != ENOENT)
    return -errno;
  s->bytes -= e->size;
  s->head++;
  s->count--;
  if (s->count == 0)
    s->head = 0;
  return 0;
}

static int compare_entries(const void *a, const void *b) {
  const entry *x = a, *y = b;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int reserve_block(nl_spool *s, uint64_t upto);

/* Reads the highest sequence number handed out so far (0 if none). */
static uint64_t read_reserved(int dir_fd) {
  char buf[32] = "";
  int fd = openat(dir_fd, SEQUENCE_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  buf[n > 0 ? n : 0] = '\0';
  return strtoull(buf, NULL, 10);
}

int nl_spool_open(const char *dir, uint64_t max_bytes, int64_t max_age_ms,
                  nl_spool **out, char *err, size_t errlen) {
  int rc = nl_mkdir_p(dir);
  if (rc != 0) {
    snprintf(err, errlen, "cannot create %s: %s", dir, strerror(-rc));
    return rc;
  }
  nl_spool *s = calloc(1, sizeof *s);
  if (s == NULL || (s->dir = strdup(dir)) == NULL) {
    free(s);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  s->max_bytes = max_bytes;
  s->max_age_ms = max_age_ms;
  s->next_seq = 1;
  s->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = s->dir_fd >= 0 ? fdopendir(dup(s->dir_fd)) : NULL;
  if (d == NULL) {
    rc = -errno;
    snprintf(err, errlen, "cannot open %s: %s", dir, strerror(errno));
    nl_spool_close(s);
    return rc;
  }
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    entry e;
    char tail[8];
    if (strncmp(de->d_name, ".tmp-", 5) == 0) {
      /* A push that a crash cut short: never renamed, never counted. */
      unlinkat(s->dir_fd, de->d_name, 0);
      continue;
    }
    if (sscanf(de->d_name, "%20" SCNu64 "-%13" SCNd64 "%5s", &e.seq, &e.time_ms,
               tail) != 3 ||
        strcmp(tail, ".json") != 0)
      continue;
    struct stat st;
    if (fstatat(s->dir_fd, de->d_name, &st, 0) != 0 || !S_ISREG(st.st_mode))
      continue;
    e.size = (uint64_t)st.st_size;
    if (append_entry(s, e) != 0) {
      closedir(d);
      snprintf(err, errlen, "out of memory");
      nl_spool_close(s);
      return -ENOMEM;
    }
    if (e.seq >= s->next_seq)
      s->next_seq = e.seq + 1;
  }
  closedir(d);
  s->reserved_seq = read_reserved(s->dir_fd);
  if (s->reserved_seq >= s->next_seq)
    s->next_seq = s->reserved_seq + 1;
  /* The first block now, at start: its syncs are not paid by the first
   * report (pushes run on the loop). */
  if ((rc = reserve_block(s, s->next_seq + SEQUENCE_BLOCK - 1)) != 0) {
    snprintf(err, errlen, "cannot reserve sequence numbers in %s: %s", dir,
             strerror(-rc));
    nl_spool_close(s);
    return rc;
  }
  if (s->count > 1) /* qsort must not be handed an empty (NULL) array */
    qsort(s->entries + s->head, s->count, sizeof(entry), compare_entries);
  *out = s;
  return 0;
}

void nl_spool_close(nl_spool *s) {
  if (s == NULL)
    return;
  if (s->dir_fd >= 0)
    close(s->dir_fd);
  free(s->entries);
  free(s->dir);
  free(s);
}

static int write_all(int fd, const char *data, size_t len);

/* Hands out the block of numbers below upto, durably, before any is used:
 * written to a temporary file, fsynced and renamed. Returns 0 or a
 * negative errno. */
static int reserve_block(nl_spool *s, uint64_t upto) {
  char text[32];
  int len = snprintf(text, sizeof text, "%" PRIu64 "\n", upto);
  int fd = openat(s->dir_fd, ".tmp-" SEQUENCE_FILE,
                  O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return -errno;
  int rc = write_all(fd, text, (size_t)len);
  if (rc == 0 && nl_fsync_full(fd) != 0)
    rc = -errno;
  if (close(fd) != 0 && rc == 0)
    rc = -errno;
  if (rc == 0 &&
      renameat(s->dir_fd, ".tmp-" SEQUENCE_FILE, s->dir_fd, SEQUENCE_FILE) != 0)
    rc = -errno;
  if (rc == 0 && nl_fsync_full(s->dir_fd) != 0)
    rc = -errno;
  if (rc == 0)
    s->reserved_seq = upto;
  return rc;
}

static int write_all(int fd, const char *data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

static void apply_bounds(nl_spool *s, int64_t now_ms) {
  /* The newest report is never dropped for the bounds: it is the one that
   * was just pushed. */
  while (s->count > 1 && s->max_bytes > 0 && s->bytes > s->max_bytes &&
         remove_oldest(s) == 0)
    s->dropped++;
  nl_spool_expire(s, now_ms);
}

void nl_spool_expire(nl_spool *s, int64_t now_ms) {
  while (s->count > 1 && s->max_age_ms > 0 &&
         now_ms - oldest(s)->time_ms > s->max_age_ms && remove_oldest(s) == 0)
    s->dropped++;
}

int nl_spool_push(nl_spool *s, const char *data, size_t len, int64_t now_ms) {
  if (s->next_seq > s->reserved_seq) {
    int rc = reserve_block(s, s->next_seq + SEQUENCE_BLOCK - 1);
    if (rc != 0)
      return rc;
  }
  entry e = {s->next_seq, now_ms, len};
  char tmp[64], name[64];
  snprintf(tmp, sizeof tmp, ".tmp-%020" PRIu64, e.seq);
  entry_name(name, sizeof name, &e);
  int fd =
      openat(s->dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return -errno;
  int rc = write_all(fd, data, len);
  if (rc == 0 && nl_fsync_full(fd) != 0)
    rc = -errno;
  if (close(fd) != 0 && rc == 0)
    rc = -errno;
  if (rc == 0 && renameat(s->dir_fd, tmp, s->dir_fd, name) != 0)
    rc = -errno;
  /* The rename is durable only once the directory is. */
  if (rc == 0 && nl_fsync_full(s->dir_fd) != 0)
    rc = -errno;
  if (rc != 0) {
    unlinkat(s->dir_fd, tmp, 0);
    return rc;
  }
  s->next_seq++;
  rc = append_entry(s, e);
  if (rc != 0)
    return rc;
  apply_bounds(s, now_ms);
  return 0;
}

static int read_entry(nl_spool *s, const entry *e, char **data, size_t *len) {
  char name[64];
  entry_name(name, sizeof name, e);
  int fd = openat(s->dir_fd, name, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int rc = -errno;
    close(fd);
    return rc;
  }
  size_t size = (size_t)st.st_size;
  char *buf = malloc(size + 1);
  if (buf == NULL) {
    close(fd);
    return -ENOMEM;
  }
  size_t got = 0;
  while (got < size) {
    ssize_t n = read(fd, buf + got, size - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  close(fd);
  if (got != size) {
    free(buf);
    return -EIO; /* shorter than it was a moment ago: try again later */
  }
  buf[size] = '\0';
  *data = buf;
  *len = size;
  return 0;
}

int nl_spool_peek(nl_spool *s, char **data, size_t *len, uint64_t *seq) {
  while (s->count > 0) {
    entry *e = oldest(s);
    int rc = read_entry(s, e, data, len);
    if (rc == 0) {
      *seq = e->seq;
      return 0;
    }
    /* Only a report whose file is gone (removed behind our back) leaves
     * here, counted: it cannot be sent. Any other failure (no free file
     * descriptor, a permission, an I/O error, memory) may pass: the
     * report stays first in line and the caller tries again later. */
    if (rc != -ENOENT)
      return rc;
    if ((rc = remove_oldest(s)) != 0)
      return rc;
    s->dropped++;
  }
  return -ENOENT;
}

int nl_spool_ack(nl_spool *s, uint64_t seq) {
  entry *e = oldest(s);
  if (e == NULL || e->seq != seq)
    return -ENOENT;
  return remove_oldest(s);
}

/* Appends a JSON string literal of text to a buffer of cap bytes. */
static size_t json_string(char *out, size_t cap, const char *text) {
  size_t o = 0;
  if (cap < 3)
    return 0;
  out[o++] = '"';
  for (const unsigned char *p = (const unsigned char *)text; *p && o + 8 < cap;
       p++) {
    if (*p == '"' || *p == '\\') {
      out[o++] = '\\';
      out[o++] = (char)*p;
    } else if (*p < 0x20) {
      o += (size_t)snprintf(out + o, cap - o, "\\u%04x", *p);
    } else {
      out[o++] = (char)*p;
    }
  }
  out[o++] = '"';
  out[o] = '\0';
  return o;
}

/* dead-letter.jsonl, opened to append a record of about len bytes; when
 * that would take it past DEAD_LETTER_MAX it is first rotated to
 * dead-letter.1.jsonl (the older one goes). Returns an fd or a negative
 * errno. */
static int open_dead_letters(nl_spool *s, size_t len) {
  struct stat st;
  if (fstatat(s->dir_fd, "dead-letter.jsonl", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      (uint64_t)st.st_size + len + 1024 > DEAD_LETTER_MAX &&
      renameat(s->dir_fd, "dead-letter.jsonl", s->dir_fd,
               "dead-letter.1.jsonl") != 0)
    return -errno;
  int fd = openat(s->dir_fd, "dead-letter.jsonl",
                  O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
  return fd >= 0 ? fd : -errno;
}

int nl_spool_dead_letter(nl_spool *s, uint64_t seq, long status,
                         const char *reason) {
  entry *e = oldest(s);
  if (e == NULL || e->seq != seq)
    return -ENOENT;
  char *data;
  size_t len;
  int rc = read_entry(s, e, &data, &len);
  if (rc != 0)
    return rc;
  int fd = open_dead_letters(s, len);
  if (fd < 0) {
    free(data);
    return fd;
  }
  char head[1024], quoted[768];
  json_string(quoted, sizeof quoted, reason ? reason : "");
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  int n = snprintf(head, sizeof head,
                   "{\"time_ms\":%lld,\"status\":%ld,\"reason\":%s,"
                   "\"payload\":",
                   (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000, status,
                   quoted);
  /* A payload is one JSON document; a newline inside it would break the
   * one-record-per-line file, so newlines become spaces (JSON allows them
   * only as white space outside strings, where a space means the same). */
  for (size_t i = 0; i < len; i++) {
    if (data[i] == '\n' || data[i] == '\r')
      data[i] = ' ';
  }
  rc = write_all(fd, head, (size_t)n);
  if (rc == 0)
    rc = write_all(fd, data, len);
  if (rc == 0)
    rc = write_all(fd, "}\n", 2);
  if (rc == 0 && nl_fsync_full(fd) != 0)
    rc = -errno;
  close(fd);
  free(data);
  if (rc != 0)
    return rc;
  /* In the dead letters now: if it cannot leave the queue it is sent
   * again, and a second refusal is a second line there. */
  if ((rc = remove_oldest(s)) != 0)
    return rc;
  s->dead_lettered++;
  return 0;
}

void nl_spool_stats_get(const nl_spool *s, nl_spool_stats *out) {
  out->depth = s->count;
  out->bytes = s->bytes;
  out->dropped = s->dropped;
  out->dead_lettered = s->dead_lettered;
  out->oldest_ms = s->count > 0 ? s->entries[s->head].time_ms : -1;
}

const char *nl_spool_dir(const nl_spool *s) { return s->dir; }
