/* The receiving side of the transfer core: the registry of sessions, each
 * session's staging file, journal of verified chunks, whole-file hash and
 * publish (fsync, rename, directory fsync), and serving a connection,
 * control or data, once the port has handed it over. */
#include "transfer_internal.h"

/* ---- the receiver's sessions ---- */

typedef struct session session;
struct session {
  uint8_t id[NL_FRAME_TRANSFER_ID_SIZE];
  uint8_t key[NL_AUTH_SIZE]; /* the control connection's */
  conn *control;             /* NULL once the sender has gone */
  int streams;               /* data streams attached now */
  struct timespec active_at; /* when the last one left, or the start */
  pthread_mutex_t lock;      /* everything below, and all I/O on control */
  char name[NL_FRAME_NAME_MAX + 1];
  uint64_t size;
  uint32_t chunk_size, chunk_count, remaining;
  uint8_t file_digest[32];
  uint8_t *digests;
  uint8_t *verified; /* per chunk */
  /* Verified chunks not yet in the journal: they are recorded in batches,
   * each after one fdatasync that covers them all, instead of a sync per
   * chunk. A crash loses at most a batch, which is then sent again. */
  uint32_t *unjournaled;
  uint32_t unjournaled_count;
  pthread_mutex_t journal_lock; /* one batch at a time, and journal_end */
  off_t journal_end;
  pthread_mutex_t write_lock; /* pwrites to data_fd */
  /* Two worker threads fold and journal, so that data streams never wait
   * on a read-back or an fdatasync. They wait on work (with lock) for a
   * chunk verified, or the end. */
  pthread_t folder, journaler;
  pthread_cond_t work;
  bool folder_started, journaler_started, workers_stop;
  int data_fd, journal_fd;
  /* Names under the receive folder's fds (s->rd), never paths: nothing
   * done to the folder's path after it was checked can redirect them. */
  nl_recv_dir *rd;
  char part_name[80], journal_name[80];
  bool replace;      /* the sender asked to replace an existing file */
  uint64_t reserved; /* free space this session still claims in rd */
  char peer_id[NL_FRAME_ID_MAX + 1];
  /* The whole-file hash, folded in chunk order as chunks are verified, so
   * that little is left to hash once the last arrives. */
  pthread_mutex_t fold_lock;
  nl_sha256 *whole;
  uint32_t folded;
  bool fold_failed;
  bool finishing, finished, failed;
  int refs;
  session *next;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static session *registry;
static int registry_count;

int nl_transfer_sessions(void) {
  pthread_mutex_lock(&registry_lock);
  int n = registry_count;
  pthread_mutex_unlock(&registry_lock);
  return n;
}

/* Makes the verified chunks not yet journaled durable, then records them:
 * one fdatasync for the batch. Called without s->lock. */
static void journal_flush(session *s) {
  pthread_mutex_lock(&s->journal_lock);
  pthread_mutex_lock(&s->lock);
  uint32_t count = s->unjournaled_count;
  uint8_t *records = count ? malloc((size_t)count * 4) : NULL;
  for (uint32_t i = 0; records != NULL && i < count; i++) {
    nl_put_be32(records + (size_t)i * 4, s->unjournaled[i]);
  }
  if (records != NULL)
    s->unjournaled_count = 0;
  pthread_mutex_unlock(&s->lock);
  /* A chunk is on disk before the journal says so; a failed sync leaves
   * the batch out of the journal, and a resume sends it again. */
  size_t n = (size_t)count * 4;
  if (records != NULL && fdatasync(s->data_fd) == 0 &&
      pwrite(s->journal_fd, records, n, s->journal_end) == (ssize_t)n)
    s->journal_end += (off_t)n;
  /* else the next batch overwrites a torn tail */
  free(records);
  pthread_mutex_unlock(&s->journal_lock);
}

static void session_release(session *s) {
  pthread_mutex_lock(&registry_lock);
  bool last = --s->refs == 0, registered = false;
  if (last) {
    for (session **at = &registry; *at; at = &(*at)->next)
      if (*at == s) {
        *at = s->next; /* no longer findable by JOINs */
        registered = true;
        break;
      }
  }
  pthread_mutex_unlock(&registry_lock);
  if (!last)
    return;
  pthread_mutex_lock(&s->lock);
  s->workers_stop = true;
  pthread_cond_broadcast(&s->work);
  pthread_mutex_unlock(&s->lock);
  if (s->folder_started)
    pthread_join(s->folder, NULL);
  if (s->journaler_started)
    pthread_join(s->journaler, NULL);
  if (!s->finished)
    journal_flush(s); /* what was verified survives for the resume */
  if (s->data_fd >= 0)
    close(s->data_fd);
  if (s->journal_fd >= 0)
    close(s->journal_fd); /* and with it the lock */
  if (s->rd != NULL)
    nl_recv_dir_release(s->rd, s->reserved);
  pthread_mutex_destroy(&s->lock);
  pthread_mutex_destroy(&s->fold_lock);
  pthread_mutex_destroy(&s->journal_lock);
  pthread_mutex_destroy(&s->write_lock);
  pthread_cond_destroy(&s->work);
  nl_sha256_free(s->whole);
  free(s->digests);
  free(s->verified);
  free(s->unjournaled);
  free(s);
  /* Counted as in progress until here: once nl_transfer_sessions() says
   * none, no session touches its journal, files or receive folder. */
  if (registered) {
    pthread_mutex_lock(&registry_lock);
    registry_count--;
    pthread_mutex_unlock(&registry_lock);
  }
}

static session *session_find(const uint8_t id[NL_FRAME_TRANSFER_ID_SIZE]) {
  pthread_mutex_lock(&registry_lock);
  session *s = registry;
  while (s != NULL && memcmp(s->id, id, NL_FRAME_TRANSFER_ID_SIZE) != 0)
    s = s->next;
  if (s != NULL)
    s->refs++;
  pthread_mutex_unlock(&registry_lock);
  return s;
}

static uint32_t chunk_len(const session *s, uint32_t i) {
  uint64_t start = (uint64_t)i * s->chunk_size;
  uint64_t left = s->size - start;
  return left < s->chunk_size ? (uint32_t)left : s->chunk_size;
}

/* Sends a MAC'd frame on the control connection; the caller holds lock.
 * Once the sender has gone, there is nobody to tell: data already on its
 * way is still verified and journaled, for the resume. */
static void control_send(session *s, nl_writer *w) {
  if (s->control == NULL)
    return;
  long n = nl_tx_finish_with_mac(w, s->control);
  if (n < 0 || nl_tx_conn_write(s->control, w->buf, (size_t)n) != 0)
    s->control = NULL;
}

#define JOURNAL_MAGIC "NLJ1"

/* Opens name under dir_fd, never through a symlink. */
static int open_under(int dir_fd, const char *name, int flags) {
  return openat(dir_fd, name, flags | O_NOFOLLOW | O_CLOEXEC, 0600);
}

/* Renames the staging file to its final name. Without replace, a file
 * that appeared there meanwhile is kept (EEXIST), atomically where the
 * system can: renameat2's RENAME_NOREPLACE, renameatx_np's RENAME_EXCL. */
static int publish_rename(session *s) {
  int from = s->rd->partial_fd, to = s->rd->dir_fd;
  if (s->replace)
    return renameat(from, s->part_name, to, s->name);
#if defined(__linux__) && defined(RENAME_NOREPLACE)
  if (renameat2(from, s->part_name, to, s->name, RENAME_NOREPLACE) == 0)
    return 0;
  if (errno != EINVAL && errno != ENOSYS)
    return -1;
#elif defined(__APPLE__) && defined(RENAME_EXCL)
  if (renameatx_np(from, s->part_name, to, s->name, RENAME_EXCL) == 0)
    return 0;
  if (errno != EINVAL && errno != ENOTSUP)
    return -1;
#endif
  /* A filesystem without the atomic form: link, which never replaces,
   * then drop the staging name. */
  if (linkat(from, s->part_name, to, s->name, 0) != 0)
    return -1;
  unlinkat(from, s->part_name, 0);
  return 0;
}

/* Writes the journal's header for this offer; returns 0 or -1. */
static int journal_header(session *s) {
  uint8_t h[4 + 8 + 4 + 32 + 2 + NL_FRAME_NAME_MAX];
  nl_writer w = {.buf = h, .cap = sizeof h};
  nl_write_bytes(&w, JOURNAL_MAGIC, 4);
  nl_write_u64(&w, s->size);
  nl_write_u32(&w, s->chunk_size);
  nl_write_bytes(&w, s->file_digest, 32);
  nl_write_string(&w, s->name, strlen(s->name));
  if (w.failed || ftruncate(s->journal_fd, 0) != 0 ||
      pwrite(s->journal_fd, h, w.len, 0) != (ssize_t)w.len ||
      fsync(s->journal_fd) != 0)
    return -1;
  return (int)w.len;
}

/* Reads what the journal says is verified already, if it is this offer's.
 * Returns the header's length (records follow), or -1 for a journal to
 * start afresh. */
static long journal_load(session *s) {
  struct stat st;
  if (fstat(s->journal_fd, &st) != 0 || st.st_size == 0 ||
      st.st_size > 64 * 1024 * 1024)
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
  const uint8_t *digest = nl_read_bytes(&r, 32);
  size_t name_len = 0;
  const char *name = nl_read_string(&r, NL_FRAME_NAME_MAX, &name_len);
  long header = -1;
  if (!r.failed && memcmp(magic, JOURNAL_MAGIC, 4) == 0 && size == s->size &&
      cs == s->chunk_size && memcmp(digest, s->file_digest, 32) == 0 &&
      name_len == strlen(s->name) && memcmp(name, s->name, name_len) == 0) {
    header = (long)r.pos;
    /* Whole records only: a torn last one (a crash mid-write) is ignored. */
    while (r.len - r.pos >= 4) {
      uint32_t i = nl_read_u32(&r);
      if (i < s->chunk_count && !s->verified[i]) {
        s->verified[i] = 1;
        s->remaining--;
      }
    }
  }
  free(j);
  return header;
}

/* Opens (or resumes) the partial file and journal of an offer, under the
 * staging folder's fd. Returns 0, or an error code with the message in
 * err. */
static int session_open_files(session *s, char *err, size_t errlen) {
  int partial = s->rd->partial_fd;
  /* Named by what is being sent: the same file sent again finds its
   * journal; another file of the same name does not. */
  nl_sha256 *h = nl_sha256_new();
  uint8_t key[32];
  uint8_t size_be[8];
  nl_put_be64(size_be, s->size);
  if (h == NULL || nl_sha256_update(h, s->name, strlen(s->name) + 1) != 0 ||
      nl_sha256_update(h, size_be, 8) != 0 ||
      nl_sha256_update(h, s->file_digest, 32) != 0 ||
      nl_sha256_final(h, key) != 0) {
    nl_sha256_free(h);
    snprintf(err, errlen, "hashing failed");
    return ERR_IO;
  }
  nl_sha256_free(h);
  char hex[NL_SHA256_HEX_SIZE];
  nl_sha256_hex(key, hex);
  hex[32] = '\0';
  snprintf(s->part_name, sizeof s->part_name, "%s.part", hex);
  snprintf(s->journal_name, sizeof s->journal_name, "%s.journal", hex);
  /* A sender that died a moment ago leaves its session for the grace
   * period: wait that long for its lock before calling the file busy. The
   * lock counts only on the journal still at its name: a session that
   * finished while we waited has published the part and unlinked the
   * journal we hold, and its records would claim chunks of a file that
   * is no longer there. Then we open the name afresh. */
  bool locked = false;
  for (int i = 0; i < (JOIN_GRACE_SECONDS + 2) * 20 && !locked; i++) {
    if (s->journal_fd < 0) {
      s->journal_fd = open_under(partial, s->journal_name, O_RDWR | O_CREAT);
      if (s->journal_fd < 0) {
        snprintf(err, errlen, "cannot open the journal %s: %s", s->journal_name,
                 strerror(errno));
        return ERR_IO;
      }
    }
    if (flock(s->journal_fd, LOCK_EX | LOCK_NB) == 0) {
      struct stat held, named;
      locked =
          fstat(s->journal_fd, &held) == 0 &&
          fstatat(partial, s->journal_name, &named, AT_SYMLINK_NOFOLLOW) == 0 &&
          held.st_ino == named.st_ino && held.st_dev == named.st_dev;
      if (!locked) {
        close(s->journal_fd); /* and its lock */
        s->journal_fd = -1;
        continue;
      }
    } else {
      usleep(50 * 1000);
    }
  }
  if (!locked) {
    snprintf(err, errlen,
             "this file (%.150s) is being received from another sender right "
             "now",
             s->name);
    return ERR_BUSY;
  }
  long header = journal_load(s);
  if (header >= 0) {
    /* A resume: the part must be the one the journal speaks of. */
    s->data_fd = open_under(partial, s->part_name, O_RDWR);
    if (s->data_fd < 0) {
      for (uint32_t i = 0; i < s->chunk_count; i++)
        s->verified[i] = 0;
      s->remaining = s->chunk_count;
      header = -1;
    }
  }
  if (header < 0) {
    /* Afresh: a new staging file, made here and now (O_EXCL), never one
     * that was there before. */
    if (unlinkat(partial, s->part_name, 0) != 0 && errno != ENOENT) {
      snprintf(err, errlen, "cannot remove the stale %s: %s", s->part_name,
               strerror(errno));
      return ERR_IO;
    }
    s->data_fd = open_under(partial, s->part_name, O_RDWR | O_CREAT | O_EXCL);
    if (s->data_fd < 0 || (s->journal_end = journal_header(s)) < 0) {
      snprintf(err, errlen, "cannot start %s: %s", s->part_name,
               strerror(errno));
      return ERR_IO;
    }
  } else {
    /* Records go after what is there; a torn record is cut off first. */
    struct stat st;
    fstat(s->journal_fd, &st);
    s->journal_end = header + (st.st_size - header) / 4 * 4;
    if (ftruncate(s->journal_fd, s->journal_end) != 0) {
      snprintf(err, errlen, "cannot trim %s", s->journal_name);
      return ERR_IO;
    }
  }
  /* Room for what is still to come, claimed before anything is taken:
   * sessions side by side each see what the others have claimed. */
  uint64_t missing = 0, left = 0;
  for (uint32_t i = 0; i < s->chunk_count; i++)
    if (!s->verified[i])
      missing += chunk_len(s, i);
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

/* Folds verified chunks into the whole-file hash, in order, as far as
 * they go: the session's worker as chunks come, and the finishing thread
 * for what is left. One at a time. Called without s->lock. */
static void fold(session *s) {
  pthread_mutex_lock(&s->fold_lock);
  enum { BUF = 256 * 1024 };
  uint8_t *buf = NULL;
  for (;;) {
    pthread_mutex_lock(&s->lock);
    uint32_t c = s->folded;
    bool ready = c < s->chunk_count && s->verified[c] && !s->fold_failed;
    pthread_mutex_unlock(&s->lock);
    if (!ready)
      break;
    if (buf == NULL && (buf = malloc(BUF)) == NULL) {
      pthread_mutex_lock(&s->lock);
      s->fold_failed = true; /* rather than a folder that spins */
      pthread_mutex_unlock(&s->lock);
      break;
    }
    uint64_t at = (uint64_t)c * s->chunk_size;
    uint32_t left = chunk_len(s, c);
    while (left > 0) {
      ssize_t got = pread(s->data_fd, buf, left < BUF ? left : BUF, (off_t)at);
      if (got <= 0 || nl_sha256_update(s->whole, buf, (size_t)got) != 0) {
        pthread_mutex_lock(&s->lock);
        s->fold_failed = true;
        pthread_mutex_unlock(&s->lock);
        break;
      }
      at += (uint64_t)got;
      left -= (uint32_t)got;
    }
    pthread_mutex_lock(&s->lock);
    if (!s->fold_failed)
      s->folded++;
    pthread_mutex_unlock(&s->lock);
  }
  free(buf);
  pthread_mutex_unlock(&s->fold_lock);
}

/* The whole file is verified chunk by chunk: check it whole, make it
 * durable, publish it under its name, and say DONE. Called without the
 * lock, by the one thread that set s->finishing. */
static void session_finish(session *s) {
  fold(s);
  uint8_t digest[32];
  bool whole_ok = !s->fold_failed && s->folded == s->chunk_count &&
                  nl_sha256_final(s->whole, digest) == 0 &&
                  memcmp(digest, s->file_digest, 32) == 0;
  if (!whole_ok) {
    /* Which chunks are not what was verified: for the log, since this
     * means the staging file changed under us (or a bug). */
    uint32_t differ = 0, first = 0;
    for (uint32_t c = 0; c < s->chunk_count; c++) {
      uint8_t d[32];
      if (nl_sha256_file_range(s->data_fd, (uint64_t)c * s->chunk_size,
                               chunk_len(s, c), d) != 0 ||
          memcmp(d, s->digests + (size_t)c * 32, 32) != 0) {
        if (differ++ == 0)
          first = c;
      }
    }
    nl_log_warn("transfer",
                "%s from %s: the whole file does not match; %u of %u chunks "
                "differ on disk from what was verified (the first: %u)",
                s->name, s->peer_id, differ, s->chunk_count, first);
  }
  pthread_mutex_lock(&s->lock);
  if (!whole_ok) {
    nl_tx_send_error(
        s->control, ERR_HASH,
        "the whole file's SHA-256 does not match; nothing published");
    unlinkat(s->rd->partial_fd, s->part_name, 0);
    unlinkat(s->rd->partial_fd, s->journal_name, 0);
    s->failed = true;
    pthread_mutex_unlock(&s->lock);
    return;
  }
  if (ftruncate(s->data_fd, (off_t)s->size) != 0 ||
      nl_fsync_full(s->data_fd) != 0) {
    nl_tx_send_error(s->control, ERR_IO, "cannot publish %s: %s", s->name,
                     strerror(errno));
    s->failed = true;
    pthread_mutex_unlock(&s->lock);
    return;
  }
  if (publish_rename(s) != 0) {
    int e = errno;
    if (e == EEXIST)
      nl_tx_send_error(s->control, ERR_EXISTS,
                       "%s exists on the receiver (it appeared during the "
                       "transfer); send again with --force to replace it",
                       s->name);
    else
      nl_tx_send_error(s->control, ERR_IO, "cannot publish %s: %s", s->name,
                       strerror(e));
    s->failed = true;
    pthread_mutex_unlock(&s->lock);
    return;
  }
  /* The new name is durable once its directory is. */
  nl_fsync_full(s->rd->dir_fd);
  unlinkat(s->rd->partial_fd, s->journal_name, 0);
  s->finished = true;
  char hex[NL_SHA256_HEX_SIZE];
  nl_sha256_hex(digest, hex);
  nl_log_info("transfer", "received %s/%s (%llu bytes) from %s: sha256 %s",
              s->rd->path, s->name, (unsigned long long)s->size, s->peer_id,
              hex);
  uint8_t f[NL_FRAME_HEADER_SIZE + 64];
  nl_writer w;
  nl_writer_begin(&w, f, sizeof f, NL_FRAME_DONE);
  nl_write_bytes(&w, digest, 32);
  control_send(s, &w);
  pthread_mutex_unlock(&s->lock);
}

/* A worker of the session: does work, outside the lock, whenever ready
 * says there is some, until the session ends. */
static void run_worker(session *s, bool (*ready)(const session *),
                       void (*work)(session *)) {
  pthread_mutex_lock(&s->lock);
  while (!s->workers_stop) {
    if (ready(s)) {
      pthread_mutex_unlock(&s->lock);
      work(s);
      pthread_mutex_lock(&s->lock);
    } else {
      pthread_cond_wait(&s->work, &s->lock);
    }
  }
  pthread_mutex_unlock(&s->lock);
}

static bool fold_ready(const session *s) {
  return s->folded < s->chunk_count && s->verified[s->folded] &&
         !s->fold_failed;
}

static bool journal_ready(const session *s) { return s->unjournaled_count > 0; }

/* The folder: verified chunks into the whole-file hash, in order. */
static void *session_folder(void *arg) {
  run_worker(arg, fold_ready, fold);
  return NULL;
}

/* The journaler: whatever was verified since its last fdatasync, one sync
 * for all of it (a group commit: the batches are as large as the disk is
 * slow, and no data stream waits for them). */
static void *session_journaler(void *arg) {
  run_worker(arg, journal_ready, journal_flush);
  return NULL;
}

/* One data stream's chunk in progress. A chunk's DATA frames come on one
 * stream, in order from offset 0, and are hashed as they arrive: a chunk
 * is verified from the bytes received, without reading it back. (The
 * whole-file hash is folded from the file itself, which checks what is on
 * disk end to end.) */
typedef struct {
  nl_sha256 *hash;
  uint32_t chunk, next;
  bool open, skip;
} stream_chunk;

/* A whole chunk has arrived: answer CHUNK_OK or CHUNK_BAD, and record it. */
static void chunk_checked(session *s, uint32_t c, bool good) {
#ifdef __linux__
  /* Start writing it out now, so that the journal's sync and the final
   * fsync find little left to do. */
  if (good)
    sync_file_range(s->data_fd, (off_t)((uint64_t)c * s->chunk_size),
                    (off_t)chunk_len(s, c), SYNC_FILE_RANGE_WRITE);
#endif
  pthread_mutex_lock(&s->lock);
  uint8_t f[64];
  nl_writer w;
  nl_writer_begin(&w, f, sizeof f, NL_FRAME_CHUNK);
  nl_write_u32(&w, c);
  nl_write_u8(&w, good ? 1 : 0); /* 0: to be sent again, alone */
  if (good && !s->verified[c]) {
    s->verified[c] = 1;
    s->remaining--;
    /* Written now: the disk's free space counts it, the claim need not. */
    uint64_t n = chunk_len(s, c) < s->reserved ? chunk_len(s, c) : s->reserved;
    s->reserved -= n;
    nl_recv_dir_release(s->rd, n);
    s->unjournaled[s->unjournaled_count++] = c;
    pthread_cond_broadcast(&s->work); /* to fold it, and journal it */
  }
  control_send(s, &w);
  bool finish_now = good && s->remaining == 0 && !s->failed && !s->finishing;
  if (finish_now)
    s->finishing = true;
  pthread_mutex_unlock(&s->lock);
  if (finish_now)
    session_finish(s);
}

/* DATA into the partial file. Returns 0, or -1 to drop the stream (a frame
 * out of order, or the file could not be written). */
static int session_data(session *s, stream_chunk *sc, const nl_frame_data *d) {
  if (d->chunk >= s->chunk_count ||
      d->offset + (uint64_t)d->len > chunk_len(s, d->chunk))
    return -1;
  pthread_mutex_lock(&s->lock);
  bool failed = s->failed, verified = s->verified[d->chunk];
  pthread_mutex_unlock(&s->lock);
  if (d->offset == 0 && !sc->open) {
    *sc = (stream_chunk){
        .hash = sc->hash, .chunk = d->chunk, .open = true, .skip = verified};
  } else if (!sc->open || d->chunk != sc->chunk || d->offset != sc->next) {
    return -1;
  }
  sc->next += d->len;
  bool last = sc->next == chunk_len(s, d->chunk);
  if (last)
    sc->open = false;
  if (sc->skip || failed)
    return 0;
  off_t at = (off_t)((uint64_t)d->chunk * s->chunk_size + d->offset);
  /* Writes to one file are serialised by the kernel anyway (the inode's
   * lock); waiting here sleeps, where waiting there spins a core. */
  pthread_mutex_lock(&s->write_lock);
  ssize_t written = pwrite(s->data_fd, d->data, d->len, at);
  pthread_mutex_unlock(&s->write_lock);
  if (written != (ssize_t)d->len) {
    int e = written < 0 ? errno : ENOSPC;
    pthread_mutex_lock(&s->lock);
    nl_tx_send_error(s->control, e == ENOSPC ? ERR_NO_SPACE : ERR_IO,
                     "the receiver cannot write %s: %s", s->name, strerror(e));
    if (e == ENOSPC && !s->failed) {
      /* A full disk is everybody's problem: give the space back now
       * rather than keep the part for a resume that could not fit. */
      unlinkat(s->rd->partial_fd, s->part_name, 0);
      unlinkat(s->rd->partial_fd, s->journal_name, 0);
      if (ftruncate(s->data_fd, 0) != 0) {
        /* the space comes back when the session closes the file */
      }
      nl_log_warn("transfer", "%s from %s: the disk is full; dropped it",
                  s->name, s->peer_id);
    }
    s->failed = true;
    pthread_mutex_unlock(&s->lock);
    return -1;
  }
  uint8_t digest[32];
  if (nl_sha256_update(sc->hash, d->data, d->len) != 0 ||
      (last && nl_sha256_final(sc->hash, digest) != 0))
    return -1;
  if (last)
    chunk_checked(s, d->chunk,
                  memcmp(digest, s->digests + (size_t)d->chunk * 32, 32) == 0);
  return 0;
}

/* Waits until the sender closes the control connection: it says nothing
 * more after its OFFER, and anything it does say ends the session. Data
 * threads write CHUNK frames on this connection, and a TLS connection is
 * not to be used from two threads at once, so reads take the session's
 * lock; poll waits without it. A sender that vanished without closing is
 * given up once no data stream has been attached for the timeout. */
static void await_close(session *s, conn *c, const nl_transfer_config *cfg) {
  int timeout = cfg->timeout_seconds > 0 ? cfg->timeout_seconds : 30;
  uint8_t scrap[64];
  for (;;) {
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    int ready = poll(&p, 1, 1000);
    if (ready < 0 && errno != EINTR)
      return;
    pthread_mutex_lock(&s->lock);
    bool idle =
        s->streams == 0 && nl_tx_seconds_since(&s->active_at) > (double)timeout;
    ssize_t got = -2;
    if (ready > 0) {
      if (c->tls != NULL)
        got = nl_tls_read(c->tls, scrap, sizeof scrap);
      else if ((got = recv(c->fd, scrap, sizeof scrap, MSG_DONTWAIT)) < 0 &&
               (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        got = -2;
    }
    pthread_mutex_unlock(&s->lock);
    if (got != -2 || (ready == 0 && idle))
      return;
  }
}

static void serve_control(conn *c, const nl_transfer_config *cfg, handshake *hs,
                          buffer *b) {
  uint8_t hdr[NL_FRAME_HEADER_SIZE];
  nl_frame_type type;
  uint32_t len;
  if (nl_tx_recv_frame(c, hdr, b, &type, &len) != 0)
    return;
  char why[256];
  nl_frame_offer o;
  if (type != NL_FRAME_OFFER) {
    nl_tx_send_error(c, ERR_PROTOCOL, "expected an OFFER");
    return;
  }
  if (!nl_tx_mac_ok(c, hdr, b->p, len)) {
    nl_tx_send_error(c, ERR_PROTOCOL, "the OFFER's MAC does not match");
    return;
  }
  if (nl_frame_parse_offer(b->p, len, &o, why, sizeof why) != 0) {
    nl_tx_send_error(c, strstr(why, "name") ? ERR_NAME : ERR_PROTOCOL, "%s",
                     why);
    return;
  }
  if (o.size > cfg->max_bytes) {
    nl_tx_send_error(c, ERR_TOO_BIG,
                     "%s is %llu bytes, over this receiver's maximum of %llu "
                     "(TRANSFER_MAX_BYTES)",
                     o.name, (unsigned long long)o.size,
                     (unsigned long long)cfg->max_bytes);
    return;
  }
  /* A file of that name stays unless the sender asked to replace it; the
   * publishing rename checks again, atomically, at the end. */
  struct stat existing;
  if (!o.replace && fstatat(cfg->recv_dir->dir_fd, o.name, &existing,
                            AT_SYMLINK_NOFOLLOW) == 0) {
    nl_tx_send_error(
        c, ERR_EXISTS,
        "%s exists on the receiver; send with --force to replace it", o.name);
    return;
  }
  nl_recv_dir_sweep_if_due(cfg->recv_dir);
  session *s = calloc(1, sizeof *s);
  if (s == NULL)
    return;
  pthread_mutex_init(&s->lock, NULL);
  pthread_mutex_init(&s->fold_lock, NULL);
  pthread_mutex_init(&s->journal_lock, NULL);
  pthread_mutex_init(&s->write_lock, NULL);
  pthread_cond_init(&s->work, NULL);
  s->whole = nl_sha256_new();
  s->control = c;
  s->data_fd = s->journal_fd = -1;
  s->refs = 1;
  memcpy(s->key, hs->key, NL_AUTH_SIZE);
  snprintf(s->peer_id, sizeof s->peer_id, "%s", hs->peer_id);
  snprintf(s->name, sizeof s->name, "%s", o.name);
  s->rd = cfg->recv_dir;
  s->replace = o.replace;
  s->size = o.size;
  s->chunk_size = o.chunk_size;
  s->chunk_count = s->remaining = o.chunk_count;
  memcpy(s->file_digest, o.file_digest, 32);
  size_t count = o.chunk_count ? o.chunk_count : 1;
  s->digests = malloc(count * 32);
  s->verified = calloc(count, 1);
  s->unjournaled = calloc(count, sizeof *s->unjournaled);
  clock_gettime(CLOCK_MONOTONIC, &s->active_at);
  if (s->digests == NULL || s->verified == NULL || s->unjournaled == NULL ||
      s->whole == NULL || nl_random(s->id, sizeof s->id) != 0) {
    session_release(s);
    return;
  }
  memcpy(s->digests, o.chunk_digests, (size_t)o.chunk_count * 32);
  int code = session_open_files(s, why, sizeof why);
  if (code != 0) {
    nl_log_warn("transfer", "refused %s from %s: %s", s->name, s->peer_id, why);
    nl_tx_send_error(c, code, "%s", why);
    session_release(s);
    return;
  }
  pthread_mutex_lock(&registry_lock);
  s->next = registry;
  registry = s;
  registry_count++;
  pthread_mutex_unlock(&registry_lock);
  /* Without its workers a session still works: the fold is done at the
   * end, and the journal written when the session closes. */
  s->folder_started = pthread_create(&s->folder, NULL, session_folder, s) == 0;
  s->journaler_started =
      pthread_create(&s->journaler, NULL, session_journaler, s) == 0;

  /* ACCEPT: the transfer's id and the chunks still wanted. */
  size_t bitmap = (s->chunk_count + 7) / 8;
  uint8_t *f = malloc(NL_FRAME_HEADER_SIZE + 16 + bitmap + 32);
  if (f != NULL) {
    nl_writer w;
    nl_writer_begin(&w, f, NL_FRAME_HEADER_SIZE + 16 + bitmap + 32,
                    NL_FRAME_ACCEPT);
    nl_write_bytes(&w, s->id, sizeof s->id);
    for (size_t i = 0; i < bitmap; i++) {
      uint8_t byte = 0;
      for (uint32_t bit = 0; bit < 8; bit++) {
        uint32_t chunk = (uint32_t)(i * 8 + bit);
        if (chunk < s->chunk_count && !s->verified[chunk])
          byte |= (uint8_t)(0x80 >> bit);
      }
      nl_write_u8(&w, byte);
    }
    pthread_mutex_lock(&s->lock);
    control_send(s, &w);
    /* An empty file, or all of it there already: finish now. */
    bool finish_now = s->remaining == 0 && !s->failed && !s->finishing;
    if (finish_now)
      s->finishing = true;
    pthread_mutex_unlock(&s->lock);
    free(f);
    if (finish_now)
      session_finish(s);
    /* else the worker folds what a resume found verified, as data comes */
  }
  /* The sender says nothing more here; its closing ends the session (the
   * journal stays for a resume unless the file was published). */
  await_close(s, c, cfg);
  pthread_mutex_lock(&s->lock);
  s->control = NULL;
  bool finished = s->finished;
  pthread_mutex_unlock(&s->lock);
  /* A sender that died may have left data in the kernel's buffers of
   * streams whose threads have not joined yet: the session stays findable
   * a moment longer, so that what arrived is verified and journaled. */
  if (!finished)
    sleep(JOIN_GRACE_SECONDS);
  session_release(s);
}

static void serve_data(conn *c, handshake *hs, buffer *b) {
  uint8_t hdr[NL_FRAME_HEADER_SIZE];
  nl_frame_type type;
  uint32_t len;
  if (nl_tx_recv_frame(c, hdr, b, &type, &len) != 0 || type != NL_FRAME_JOIN ||
      len != NL_FRAME_TRANSFER_ID_SIZE + 2 + NL_AUTH_SIZE)
    return;
  session *s = session_find(b->p);
  if (s == NULL) {
    nl_tx_send_error(c, ERR_PROTOCOL, "no such transfer");
    return;
  }
  uint16_t index = (uint16_t)(b->p[16] << 8 | b->p[17]);
  uint8_t expected[NL_AUTH_SIZE];
  if (nl_tx_join_mac(s->key, b->p, index, hs->cn, hs->sn, expected) != 0 ||
      !nl_mac_equal(expected, b->p + 18)) {
    nl_tx_send_error(c, ERR_REFUSED, "JOIN refused");
    session_release(s);
    return;
  }
  pthread_mutex_lock(&s->lock);
  s->streams++;
  pthread_mutex_unlock(&s->lock);
  char why[128];
  stream_chunk sc = {.hash = nl_sha256_new()};
  while (sc.hash != NULL && nl_tx_recv_frame(c, hdr, b, &type, &len) == 0) {
    nl_frame_data d;
    if (type != NL_FRAME_DATA ||
        nl_frame_parse_data(b->p, len, s->chunk_size, &d, why, sizeof why) !=
            0 ||
        session_data(s, &sc, &d) != 0)
      break;
  }
  nl_sha256_free(sc.hash);
  pthread_mutex_lock(&s->lock);
  s->streams--;
  clock_gettime(CLOCK_MONOTONIC, &s->active_at);
  pthread_mutex_unlock(&s->lock);
  session_release(s);
}

/* A framed connection of another protocol version: told so in a frame its
 * own version can read (an ERROR's layout is the same in versions 1 and
 * 2), rather than closed without a word. */
static void refuse_version(conn *c, uint8_t version) {
  char msg[160];
  int n = snprintf(msg, sizeof msg,
                   "protocol version %u is not spoken here: this node speaks "
                   "nodelua protocol version %d; upgrade the older side",
                   version, NL_FRAME_VERSION);
  uint8_t f[NL_FRAME_HEADER_SIZE + 4 + sizeof msg];
  nl_writer w;
  nl_writer_begin(&w, f, sizeof f, NL_FRAME_ERROR);
  nl_write_u16(&w, ERR_PROTOCOL);
  nl_write_string(&w, msg, (size_t)n);
  long len = nl_writer_finish(&w);
  f[2] = version;
  if (len > 0)
    nl_tx_conn_write(c, f, (size_t)len);
}

void nl_transfer_serve(int fd, const void *prefix, size_t prefix_len,
                       const nl_transfer_config *cfg) {
  nl_transfer_serve_gated(fd, prefix, prefix_len, cfg, NULL, NULL);
}

void nl_transfer_serve_gated(int fd, const void *prefix, size_t prefix_len,
                             const nl_transfer_config *cfg,
                             bool (*admit)(void *ud), void *ud) {
  /* Nothing is known of the peer until it proves it holds the key: it
   * has HANDSHAKE_SECONDS from here, TLS included, however it paces its
   * bytes. */
  struct timespec deadline = nl_deadline_in(HANDSHAKE_SECONDS);
  conn c = {.fd = fd, .deadline = &deadline};
  /* What the listener read tells; if it read nothing, a peek does. */
  uint8_t first = 0;
  if (prefix_len > 0)
    first = *(const uint8_t *)prefix;
  else if (nl_deadline_arm(fd, &deadline) != 0 ||
           recv(fd, &first, 1, MSG_PEEK) != 1)
    first = 0;
  bool encrypted = first == NL_TLS_RECORD_HANDSHAKE;
  char why[256];
  if (encrypted) {
    c.tls = nl_tls_server(fd, prefix, prefix_len, cfg->key, cfg->key_len,
                          &deadline, why, sizeof why);
    if (c.tls == NULL) {
      nl_tx_handshake_failed(fd,
                             "refused an encrypted connection: %s (a sender "
                             "without this cluster's key?)",
                             why);
      close(fd);
      return;
    }
  } else {
    c.pre = prefix;
    c.pre_len = prefix_len;
  }
  buffer b = {0};
  uint8_t hdr[NL_FRAME_HEADER_SIZE];
  nl_frame_type type;
  uint32_t len;
  nl_frame_hello hello;
  handshake hs;
  /* The first header by hand: a peer of another version is told so. */
  bool have_header = nl_tx_conn_read(&c, hdr, NL_FRAME_HEADER_SIZE) == 0;
  bool other_version = have_header && hdr[0] == 'N' && hdr[1] == 'L' &&
                       hdr[2] != NL_FRAME_VERSION;
  if (other_version) {
    refuse_version(&c, hdr[2]);
  } else if (have_header && !encrypted && cfg->encrypt) {
    nl_tx_send_error(&c, ERR_REFUSED,
                     "this node takes encrypted transfers only: set "
                     "TRANSFER_ENCRYPT=true at the sender too");
  } else if (have_header &&
             nl_tx_payload_of(&c, hdr, &b, &type, &len, NL_FRAME_HELLO, 0) ==
                 0 &&
             nl_frame_parse_hello(b.p, len, &hello, why, sizeof why) == 0 &&
             nl_tx_server_handshake(&c, cfg, &hello, &hs, &b) == 0) {
    nl_tx_conn_end_deadline(&c, cfg->timeout_seconds);
    /* From here every frame this side sends, ERRORs included, is MAC'd. */
    c.mac_key = hs.key;
    c.out_dir = NL_AUTH_TO_SENDER;
    c.in_dir = NL_AUTH_TO_RECEIVER;
    if (admit != NULL && !admit(ud))
      nl_tx_send_error(&c, ERR_BUSY,
                       "this node is serving as many transfers as it can; try "
                       "again shortly");
    else if (hello.role == 0)
      serve_control(&c, cfg, &hs, &b);
    else
      serve_data(&c, &hs, &b);
  }
  free(b.p);
  nl_tls_free(c.tls);
  close(fd);
}
