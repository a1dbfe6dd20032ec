/* The receiver's staging file and journal (docs/protocol.md, "Integrity
 * and resume"): opening them for an offer, afresh or to resume; recording
 * verified chunks with their digests in group commits; and dropping a
 * chunk from the journal before its bytes are overwritten.
 *
 * The journal is a header (magic, size, chunk size, name) then records of
 * 40 bytes: the chunk's index, its SHA-256, and the first 4 bytes of the
 * SHA-256 of those 36, so that a record torn by a crash is seen as such
 * and its chunk sent again. A record with an all-zero digest withdraws the
 * chunk. The last record of a chunk is the one that counts. */
#include "session.h"

#define JOURNAL_MAGIC "NLJ3"
#define RECORD_SIZE 40

static const uint8_t no_digest[32];

/* Opens name under dir_fd, never through a symlink. */
static int open_under(int dir_fd, const char *name, int flags) {
  return openat(dir_fd, name, flags | O_NOFOLLOW | O_CLOEXEC, 0600);
}

static int record_fill(uint8_t r[RECORD_SIZE], uint32_t chunk,
                       const uint8_t digest[32]) {
  uint8_t check[32];
  nl_put_be32(r, chunk);
  memcpy(r + 4, digest, 32);
  if (nl_sha256_buffer(r, 36, check) != 0)
    return -1;
  memcpy(r + 36, check, 4);
  return 0;
}

static bool record_whole(const uint8_t r[RECORD_SIZE]) {
  uint8_t check[32];
  return nl_sha256_buffer(r, 36, check) == 0 && memcmp(check, r + 36, 4) == 0;
}

/* Makes the verified chunks not yet journaled durable, then records them:
 * one fdatasync for the batch, then its records written from a buffer on
 * the stack, 64 at a time (nothing is allocated per chunk or batch). The
 * batch is the chunks verified before the sync began; chunks verified
 * meanwhile are appended after it and wait for the next. A failed sync or
 * write leaves the batch out of the journal, and a resume sends it again.
 * Called without s->lock. */
void nl_journal_flush(session *s) {
  enum { PIECE_RECORDS = 64 };
  uint8_t records[PIECE_RECORDS * RECORD_SIZE];
  pthread_mutex_lock(&s->journal_lock);
  pthread_mutex_lock(&s->lock);
  uint32_t count = s->unjournaled_count;
  pthread_mutex_unlock(&s->lock);
  bool ok = count > 0 && fdatasync(s->data_fd) == 0;
  for (uint32_t at = 0; ok && at < count; at += PIECE_RECORDS) {
    uint32_t n = count - at < PIECE_RECORDS ? count - at : PIECE_RECORDS;
    pthread_mutex_lock(&s->lock);
    for (uint32_t i = 0; ok && i < n; i++) {
      uint32_t c = s->unjournaled[at + i];
      ok = record_fill(records + (size_t)i * RECORD_SIZE, c,
                       s->here + (size_t)c * 32) == 0;
    }
    pthread_mutex_unlock(&s->lock);
    size_t bytes = (size_t)n * RECORD_SIZE;
    ok = ok && pwrite(s->journal_fd, records, bytes, s->journal_end) ==
                   (ssize_t)bytes;
    if (ok)
      s->journal_end += (off_t)bytes;
  }
  /* else the next batch overwrites a torn tail */
  pthread_mutex_lock(&s->lock);
  memmove(s->unjournaled, s->unjournaled + count,
          (size_t)(s->unjournaled_count - count) * sizeof *s->unjournaled);
  s->unjournaled_count -= count;
  pthread_mutex_unlock(&s->lock);
  pthread_mutex_unlock(&s->journal_lock);
}

/* Withdraws chunk c from the journal, durably, before its bytes in the
 * staging file are overwritten: a crash in the middle must not leave a
 * record that vouches for bytes no longer there. Called without s->lock.
 * Returns 0 or -1. */
int nl_journal_withdraw(session *s, uint32_t c) {
  uint8_t r[RECORD_SIZE];
  pthread_mutex_lock(&s->journal_lock);
  int rc = record_fill(r, c, no_digest);
  if (rc == 0 &&
      pwrite(s->journal_fd, r, sizeof r, s->journal_end) == (ssize_t)sizeof r &&
      fdatasync(s->journal_fd) == 0)
    s->journal_end += RECORD_SIZE;
  else
    rc = -1;
  pthread_mutex_unlock(&s->journal_lock);
  return rc;
}

/* Writes the journal's header for this offer; returns its length or -1. */
static off_t journal_header(session *s) {
  uint8_t h[4 + 8 + 4 + 2 + NL_FRAME_NAME_MAX];
  nl_writer w = {.buf = h, .cap = sizeof h};
  nl_write_bytes(&w, JOURNAL_MAGIC, 4);
  nl_write_u64(&w, s->size);
  nl_write_u32(&w, s->chunk_size);
  nl_write_string(&w, s->name, strlen(s->name));
  if (w.failed || ftruncate(s->journal_fd, 0) != 0 ||
      pwrite(s->journal_fd, h, w.len, 0) != (ssize_t)w.len ||
      fsync(s->journal_fd) != 0)
    return -1;
  return (off_t)w.len;
}

/* Reads which chunks the journal holds, and with which digests, if it is
 * this offer's. Returns the length of what it read whole (records go
 * after it), or -1 for a journal to start afresh. */
static off_t journal_load(session *s) {
  struct stat st;
  uint64_t most = 4096 + (uint64_t)NL_FRAME_CHUNKS_MAX * 4 * RECORD_SIZE;
  if (fstat(s->journal_fd, &st) != 0 || st.st_size == 0 ||
      (uint64_t)st.st_size > most)
    return -1;
  uint8_t *j = malloc((size_t)st.st_size);
  if (j == NULL ||
      pread(s->journal_fd, j, (size_t)st.st_size, 0) != (ssize_t)st.st_size) {
    free(j);
    return -1;
  }
  nl_reader r;
  nl_reader_init(&r, j, (size_t)st.st_size);
  const uint8_t *magic = nl_read_bytes(&r, 4);
  uint64_t size = nl_read_u64(&r);
  uint32_t cs = nl_read_u32(&r);
  size_t name_len = 0;
  const char *name = nl_read_string(&r, NL_FRAME_NAME_MAX, &name_len);
  off_t end = -1;
  if (!r.failed && memcmp(magic, JOURNAL_MAGIC, 4) == 0 && size == s->size &&
      cs == s->chunk_size && name_len == strlen(s->name) &&
      memcmp(name, s->name, name_len) == 0) {
    /* Whole records only: a torn one (a crash mid-write) is left out,
     * and its chunk is sent again. */
    while (r.len - r.pos >= RECORD_SIZE) {
      const uint8_t *rec = nl_read_bytes(&r, RECORD_SIZE);
      uint32_t c = nl_get_be32(rec);
      if (!record_whole(rec) || c >= s->chunk_count)
        continue;
      bool withdrawn = memcmp(rec + 4, no_digest, 32) == 0;
      s->state[c] = withdrawn ? CHUNK_MISSING : CHUNK_HELD;
      s->flags[c] = withdrawn ? 0 : CHUNK_FROM_JOURNAL;
      memcpy(s->here + (size_t)c * 32, rec + 4, 32);
    }
    end = (off_t)r.pos;
  }
  free(j);
  return end;
}

/* Waits for the journal's lock, as long as a sender that died a moment
 * ago keeps its session. The lock counts only on the journal still at its
 * name: a session that finished while we waited has published the part
 * and unlinked the journal we hold. Returns 0 once held, or an error
 * code with the message in err. */
static int journal_lock(session *s, int partial, char *err, size_t errlen) {
  for (int i = 0; i < (JOIN_GRACE_SECONDS + 2) * 20; i++) {
    if (s->journal_fd < 0) {
      s->journal_fd = open_under(partial, s->journal_name, O_RDWR | O_CREAT);
      if (s->journal_fd < 0) {
        snprintf(err, errlen, "cannot open the journal %s: %s", s->journal_name,
                 strerror(errno));
        return ERR_IO;
      }
    }
    if (flock(s->journal_fd, LOCK_EX | LOCK_NB) != 0) {
      usleep(50 * 1000);
      continue;
    }
    struct stat held, named;
    if (fstat(s->journal_fd, &held) == 0 &&
        fstatat(partial, s->journal_name, &named, AT_SYMLINK_NOFOLLOW) == 0 &&
        held.st_ino == named.st_ino && held.st_dev == named.st_dev)
      return 0;
    close(s->journal_fd); /* and its lock */
    s->journal_fd = -1;
  }
  snprintf(err, errlen,
           "this file (%.150s) is being received from another sender right "
           "now",
           s->name);
  return ERR_BUSY;
}

/* Names the staging file and journal by what is being sent (name, size,
 * chunk size): the same file sent again finds its journal. */
static int journal_names(session *s) {
  uint8_t key[32], tail[12];
  nl_put_be64(tail, s->size);
  nl_put_be32(tail + 8, s->chunk_size);
  nl_sha256 *h = nl_sha256_new();
  int rc = h != NULL &&
                   nl_sha256_update(h, s->name, strlen(s->name) + 1) == 0 &&
                   nl_sha256_update(h, tail, sizeof tail) == 0 &&
                   nl_sha256_final(h, key) == 0
               ? 0
               : -1;
  nl_sha256_free(h);
  char hex[NL_SHA256_HEX_SIZE];
  nl_sha256_hex(key, hex);
  hex[32] = '\0';
  snprintf(s->part_name, sizeof s->part_name, "%s.part", hex);
  snprintf(s->journal_name, sizeof s->journal_name, "%s.journal", hex);
  return rc;
}

/* A new staging file, made here and now (O_EXCL), never one that was
 * there before, and a fresh journal. */
static int start_afresh(session *s, int partial, char *err, size_t errlen) {
  for (uint32_t i = 0; i < s->chunk_count; i++)
    s->state[i] = s->flags[i] = 0;
  if (unlinkat(partial, s->part_name, 0) != 0 && errno != ENOENT) {
    snprintf(err, errlen, "cannot remove the stale %s: %s", s->part_name,
             strerror(errno));
    return ERR_IO;
  }
  s->data_fd = open_under(partial, s->part_name, O_RDWR | O_CREAT | O_EXCL);
  if (s->data_fd < 0 || (s->journal_end = journal_header(s)) < 0) {
    snprintf(err, errlen, "cannot start %s: %s", s->part_name, strerror(errno));
    return ERR_IO;
  }
  return 0;
}

/* Opens (or resumes) the staging file and journal of an offer, under the
 * staging folder's fd, and claims the space still to be written. Returns
 * 0, or an error code with the message in err. */
int nl_journal_open(session *s, char *err, size_t errlen) {
  int partial = s->rd->partial_fd;
  if (journal_names(s) != 0) {
    snprintf(err, errlen, "hashing failed");
    return ERR_IO;
  }
  int code = journal_lock(s, partial, err, errlen);
  if (code != 0)
    return code;
  off_t end = journal_load(s);
  /* A resume: the part must be the one the journal speaks of. */
  if (end >= 0 && (s->data_fd = open_under(partial, s->part_name, O_RDWR)) < 0)
    end = -1;
  if (end < 0) {
    code = start_afresh(s, partial, err, errlen);
    if (code != 0)
      return code;
  } else {
    /* Records go after what was read whole; a torn tail is cut off. */
    s->journal_end = end;
    if (ftruncate(s->journal_fd, end) != 0) {
      snprintf(err, errlen, "cannot trim %s", s->journal_name);
      return ERR_IO;
    }
  }
  /* Room for what is still to come, claimed before anything is taken:
   * sessions side by side each see what the others have claimed. */
  uint64_t missing = 0, left = 0;
  for (uint32_t i = 0; i < s->chunk_count; i++)
    if (s->state[i] != CHUNK_HELD)
      missing += nl_session_chunk_len(s, i);
  if (nl_recv_dir_reserve(s->rd, missing, &left) != 0) {
    snprintf(err, errlen,
             "not enough space: %llu bytes to write, %llu free in %.100s "
             "(less what transfers in progress need)",
             (unsigned long long)missing, (unsigned long long)left,
             s->rd->path);
    return ERR_NO_SPACE;
  }
  s->reserved = missing;
  return 0;
}
