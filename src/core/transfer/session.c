/* The receiver's sessions (docs/protocol.md, "Integrity and resume"): the
 * registry that data streams find their transfer in, each chunk's state
 * from the sender's digest and the bytes a stream delivered, the writes
 * into the staging file, and the end: the tree digest checked against the
 * sender's, then fsync, rename and directory fsync, and DONE. The bytes
 * of a chunk are hashed once, as they arrive; nothing is read back unless
 * the sender asked for the plain SHA-256 too. */
#include "session.h"
#include "core/portable.h"

#include "hashpool.h"

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static session *registry;
static int registry_count;

int nl_transfer_sessions(void) {
  pthread_mutex_lock(&registry_lock);
  int n = registry_count;
  pthread_mutex_unlock(&registry_lock);
  return n;
}

uint32_t nl_session_chunk_len(const session *s, uint32_t i) {
  return nl_frame_chunk_len(s->size, s->chunk_size, i);
}

session *nl_session_new(const nl_frame_offer *o, const handshake *hs,
                        conn *control, nl_recv_dir *rd) {
  session *s = calloc(1, sizeof *s);
  if (s == NULL)
    return NULL;
  pthread_mutex_init(&s->lock, NULL);
  pthread_mutex_init(&s->fold_lock, NULL);
  pthread_mutex_init(&s->journal_lock, NULL);
  pthread_mutex_init(&s->write_lock, NULL);
  pthread_cond_init(&s->work, NULL);
  s->control = control;
  s->data_fd = s->journal_fd = -1;
  s->refs = 1;
  memcpy(s->key, hs->key, NL_AUTH_SIZE);
  snprintf(s->peer_id, sizeof s->peer_id, "%s", hs->peer_id);
  snprintf(s->name, sizeof s->name, "%s", o->name);
  s->rd = rd;
  s->replace = o->replace;
  s->sha256 = o->sha256;
  s->size = o->size;
  s->chunk_size = o->chunk_size;
  s->chunk_count = s->remaining = o->chunk_count;
  size_t count = o->chunk_count ? o->chunk_count : 1;
  s->state = calloc(count, 1);
  s->flags = calloc(count, 1);
  s->expected = malloc(count * 32);
  s->here = malloc(count * 32);
  s->unjournaled = calloc(count, sizeof *s->unjournaled);
  if (o->sha256)
    s->whole = nl_sha256_new();
  clock_gettime(CLOCK_MONOTONIC, &s->active_at);
  if (s->state == NULL || s->flags == NULL || s->expected == NULL ||
      s->here == NULL || s->unjournaled == NULL ||
      (o->sha256 && s->whole == NULL) || nl_random(s->id, sizeof s->id) != 0) {
    nl_session_release(s);
    return NULL;
  }
  return s;
}

void nl_session_register(session *s) {
  pthread_mutex_lock(&registry_lock);
  s->next = registry;
  registry = s;
  registry_count++;
  pthread_mutex_unlock(&registry_lock);
}

session *nl_session_find(const uint8_t id[NL_FRAME_TRANSFER_ID_SIZE]) {
  pthread_mutex_lock(&registry_lock);
  session *s = registry;
  while (s != NULL && memcmp(s->id, id, NL_FRAME_TRANSFER_ID_SIZE) != 0)
    s = s->next;
  if (s != NULL)
    s->refs++;
  pthread_mutex_unlock(&registry_lock);
  return s;
}

static void session_free(session *s) {
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
  free(s->state);
  free(s->flags);
  free(s->expected);
  free(s->here);
  free(s->unjournaled);
  free(s);
}

void nl_session_release(session *s) {
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
  if (!s->finished && s->journal_fd >= 0 && s->data_fd >= 0)
    nl_journal_flush(s); /* what was verified survives for the resume */
  session_free(s);
  /* Counted as in progress until here: once nl_transfer_sessions() says
   * none, no session touches its journal, files or receive folder. */
  if (registered) {
    pthread_mutex_lock(&registry_lock);
    registry_count--;
    pthread_mutex_unlock(&registry_lock);
  }
}

/* Once the sender has gone there is nobody to tell: data already on its
 * way is still verified and journaled, for the resume. */
void nl_session_control_send(session *s, nl_writer *w) {
  if (s->control == NULL)
    return;
  long n = nl_tx_finish_with_mac(w, s->control);
  if (n < 0 || nl_tx_conn_write(s->control, w->buf, (size_t)n) != 0)
    s->control = NULL;
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

/* With sha256: folds verified chunks into the plain SHA-256, in order, as
 * far as they go, reading them from the staging file. The folder thread
 * as chunks come, and the finishing thread for what is left; one at a
 * time. Called without s->lock. */
static void fold(session *s) {
  pthread_mutex_lock(&s->fold_lock);
  enum { BUF = 256 * 1024 };
  uint8_t *buf = NULL;
  for (;;) {
    pthread_mutex_lock(&s->lock);
    uint32_t c = s->folded;
    bool ready =
        c < s->chunk_count && s->state[c] == CHUNK_VERIFIED && !s->fold_failed;
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
    uint32_t left = nl_session_chunk_len(s, c);
    bool ok = true;
    while (ok && left > 0) {
      ssize_t got = pread(s->data_fd, buf, left < BUF ? left : BUF, (off_t)at);
      ok = got > 0 && nl_sha256_update(s->whole, buf, (size_t)got) == 0;
      at += ok ? (uint64_t)got : 0;
      left -= ok ? (uint32_t)got : 0;
    }
    pthread_mutex_lock(&s->lock);
    if (ok)
      s->folded++;
    else
      s->fold_failed = true;
    pthread_mutex_unlock(&s->lock);
  }
  free(buf);
  pthread_mutex_unlock(&s->fold_lock);
}

/* Whether what was verified adds up to what the sender authenticated:
 * the tree digest over the chunks' digests, and with sha256 the plain
 * SHA-256 of the staging file. Called without the lock. */
static bool whole_matches(session *s, uint8_t sha256[32], const char **what) {
  uint8_t tree[32];
  *what = "tree digest";
  if (nl_tree_root(s->size, s->chunk_size, s->expected, s->chunk_count, tree) !=
          0 ||
      memcmp(tree, s->tree, 32) != 0)
    return false;
  if (!s->sha256)
    return true;
  *what = "SHA-256";
  fold(s);
  return !s->fold_failed && s->folded == s->chunk_count &&
         nl_sha256_final(s->whole, sha256) == 0 &&
         memcmp(sha256, s->whole_expected, 32) == 0;
}

/* Makes the staging file durable and gives it its name. Called with the
 * lock; returns 0, or -1 having told the sender why. */
static int publish(session *s) {
  if (ftruncate(s->data_fd, (off_t)s->size) != 0 ||
      nl_fsync_full(s->data_fd) != 0) {
    nl_tx_send_error(s->control, ERR_IO, "cannot publish %s: %s", s->name,
                     strerror(errno));
    return -1;
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
    return -1;
  }
  /* The new name is durable once its directory is. */
  nl_fsync_full(s->rd->dir_fd);
  unlinkat(s->rd->partial_fd, s->journal_name, 0);
  return 0;
}

/* Every chunk is verified and the sender's END is in: check the whole,
 * publish, and say DONE. Called without the lock, by the one thread that
 * set s->finishing. */
static void session_finish(session *s) {
  uint8_t sha256[32];
  const char *what = "";
  bool whole_ok = whole_matches(s, sha256, &what);
  pthread_mutex_lock(&s->lock);
  if (!whole_ok) {
    nl_log_warn("transfer", "%s from %s: the %s does not match", s->name,
                s->peer_id, what);
    nl_tx_send_error(s->control, ERR_HASH,
                     "the whole file's %s does not match; nothing published",
                     what);
    unlinkat(s->rd->partial_fd, s->part_name, 0);
    unlinkat(s->rd->partial_fd, s->journal_name, 0);
    s->failed = true;
  } else if (publish(s) != 0) {
    s->failed = true;
  } else {
    s->finished = true;
    char tree[NL_SHA256_HEX_SIZE], plain[NL_SHA256_HEX_SIZE];
    nl_sha256_hex(s->tree, tree);
    nl_sha256_hex(sha256, plain);
    nl_log_info("transfer", "received %s/%s (%llu bytes) from %s: tree %s%s%s",
                s->rd->path, s->name, (unsigned long long)s->size, s->peer_id,
                tree, s->sha256 ? ", sha256 " : "", s->sha256 ? plain : "");
    uint8_t f[NL_FRAME_HEADER_SIZE + 96];
    nl_writer w;
    nl_writer_begin(&w, f, sizeof f, NL_FRAME_DONE);
    nl_write_bytes(&w, s->tree, 32);
    if (s->sha256)
      nl_write_bytes(&w, sha256, 32);
    nl_session_control_send(s, &w);
  }
  pthread_mutex_unlock(&s->lock);
}

void nl_session_finish_if_ready(session *s) {
  if (s->remaining != 0 || !s->ended || s->failed || s->finishing)
    return;
  s->finishing = true;
  pthread_mutex_unlock(&s->lock);
  session_finish(s);
  pthread_mutex_lock(&s->lock);
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
  return s->folded < s->chunk_count && s->state[s->folded] == CHUNK_VERIFIED &&
         !s->fold_failed;
}

static bool journal_ready(const session *s) { return s->unjournaled_count > 0; }

static void *session_folder(void *arg) {
  nl_thread_name("nl-rx-folder");
  run_worker(arg, fold_ready, fold);
  return NULL;
}

/* The journaler: whatever was verified since its last fdatasync, one sync
 * for all of it (a group commit: the batches are as large as the disk is
 * slow, and no data stream waits for them). */
static void *session_journaler(void *arg) {
  nl_thread_name("nl-rx-journal");
  run_worker(arg, journal_ready, nl_journal_flush);
  return NULL;
}

/* Without its workers a session still works: the fold is done at the
 * end, and the journal written when the session closes. */
void nl_session_start_workers(session *s) {
  if (s->sha256)
    s->folder_started =
        pthread_create(&s->folder, NULL, session_folder, s) == 0;
  s->journaler_started =
      pthread_create(&s->journaler, NULL, session_journaler, s) == 0;
}

/* Chunk c's bytes here do or do not match the sender's digest: CHUNK_OK
 * and a record in the journal, or CHUNK_BAD and the chunk is sent again,
 * alone. With the lock. */
static void verdict(session *s, uint32_t c, bool good) {
  uint8_t f[64];
  nl_writer w;
  nl_writer_begin(&w, f, sizeof f, NL_FRAME_CHUNK);
  nl_write_u32(&w, c);
  nl_write_u8(&w, good ? 1 : 0);
  if (good) {
    s->state[c] = CHUNK_VERIFIED;
    s->remaining--;
    /* Written now: the disk's free space counts it, the claim need not. */
    uint32_t len = nl_session_chunk_len(s, c);
    uint64_t n = len < s->reserved ? len : s->reserved;
    s->reserved -= n;
    nl_recv_dir_release(s->rd, n);
    s->unjournaled[s->unjournaled_count++] = c;
    pthread_cond_broadcast(&s->work); /* to journal it, and fold it */
  } else {
    s->state[c] = CHUNK_MISSING;
  }
  nl_session_control_send(s, &w);
}

int nl_session_digest(session *s, uint32_t c, const uint8_t digest[32]) {
  if (c >= s->chunk_count || (s->flags[c] & CHUNK_EXPECTED) || s->ended)
    return -1;
  s->flags[c] |= CHUNK_EXPECTED;
  memcpy(s->expected + (size_t)c * 32, digest, 32);
  bool same = memcmp(s->here + (size_t)c * 32, digest, 32) == 0;
  if (s->state[c] == CHUNK_HELD && same) {
    /* The journal has it already: the sender sends nothing of it. */
    s->state[c] = CHUNK_VERIFIED;
    s->remaining--;
    pthread_cond_broadcast(&s->work); /* to fold it */
  } else if (s->state[c] == CHUNK_HELD) {
    s->state[c] = CHUNK_MISSING; /* another file's: it comes again */
  } else if (s->state[c] == CHUNK_RECEIVED) {
    verdict(s, c, same);
  }
  nl_session_finish_if_ready(s);
  return 0;
}

int nl_session_end(session *s, const uint8_t tree[32], const uint8_t *sha256) {
  if (s->ended || (sha256 != NULL) != s->sha256)
    return -1;
  for (uint32_t c = 0; c < s->chunk_count; c++)
    if (!(s->flags[c] & CHUNK_EXPECTED))
      return -1; /* END before every chunk's digest */
  s->ended = true;
  memcpy(s->tree, tree, 32);
  if (sha256 != NULL)
    memcpy(s->whole_expected, sha256, 32);
  nl_session_finish_if_ready(s);
  return 0;
}

void nl_session_received(session *s, uint32_t c, const uint8_t digest[32]) {
#ifdef __linux__
  /* Start writing it out now, so that the journal's sync and the final
   * fsync find little left to do. */
  sync_file_range(s->data_fd, (off_t)((uint64_t)c * s->chunk_size),
                  (off_t)nl_session_chunk_len(s, c), SYNC_FILE_RANGE_WRITE);
#endif
  pthread_mutex_lock(&s->lock);
  if (s->state[c] != CHUNK_VERIFIED) {
    memcpy(s->here + (size_t)c * 32, digest, 32);
    if (s->flags[c] & CHUNK_EXPECTED)
      verdict(s, c, memcmp(digest, s->expected + (size_t)c * 32, 32) == 0);
    else
      s->state[c] = CHUNK_RECEIVED; /* its digest is on its way */
    nl_session_finish_if_ready(s);
  }
  pthread_mutex_unlock(&s->lock);
}

int nl_session_begin_chunk(session *s, uint32_t c) {
  pthread_mutex_lock(&s->lock);
  bool verified = s->state[c] == CHUNK_VERIFIED;
  bool withdraw = !verified && (s->flags[c] & CHUNK_FROM_JOURNAL);
  if (withdraw) {
    s->flags[c] &= (uint8_t)~CHUNK_FROM_JOURNAL;
    if (s->state[c] == CHUNK_HELD)
      s->state[c] = CHUNK_MISSING;
  }
  pthread_mutex_unlock(&s->lock);
  if (withdraw && nl_journal_withdraw(s, c) != 0) {
    /* Still vouched for: the next stream to begin it tries again. */
    pthread_mutex_lock(&s->lock);
    s->flags[c] |= CHUNK_FROM_JOURNAL;
    pthread_mutex_unlock(&s->lock);
    return -1;
  }
  return verified ? 0 : 1;
}

/* A write failed: tell the sender, and on a full disk give the space back
 * now rather than keep the part for a resume that could not fit. */
static void write_failed(session *s, int e) {
  pthread_mutex_lock(&s->lock);
  nl_tx_send_error(s->control, e == ENOSPC ? ERR_NO_SPACE : ERR_IO,
                   "the receiver cannot write %s: %s", s->name, strerror(e));
  if (e == ENOSPC && !s->failed) {
    unlinkat(s->rd->partial_fd, s->part_name, 0);
    unlinkat(s->rd->partial_fd, s->journal_name, 0);
    if (ftruncate(s->data_fd, 0) != 0) {
      /* the space comes back when the session closes the file */
    }
    nl_log_warn("transfer", "%s from %s: the disk is full; dropped it", s->name,
                s->peer_id);
  }
  s->failed = true;
  pthread_mutex_unlock(&s->lock);
}

int nl_session_write(session *s, const nl_frame_data *d) {
  pthread_mutex_lock(&s->lock);
  bool failed = s->failed;
  pthread_mutex_unlock(&s->lock);
  if (failed)
    return -1;
  off_t at = (off_t)((uint64_t)d->chunk * s->chunk_size + d->offset);
  /* Writes to one file are serialised by the kernel anyway (the inode's
   * lock); waiting here sleeps, where waiting there spins a core. */
  pthread_mutex_lock(&s->write_lock);
  ssize_t written = pwrite(s->data_fd, d->data, d->len, at);
  pthread_mutex_unlock(&s->write_lock);
  if (written == (ssize_t)d->len)
    return 0;
  write_failed(s, written < 0 ? errno : ENOSPC);
  return -1;
}
