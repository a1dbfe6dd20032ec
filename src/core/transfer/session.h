/* The receiver's session of one transfer, shared by the files that serve
 * it (not a public header). Who owns what:
 *   journal.c  the staging file and the journal of verified chunks: open
 *              or resume, record in group commits, load;
 *   session.c  the registry of sessions, each chunk's state (digest from
 *              the sender, bytes from a stream, or both), the whole-file
 *              check and the publish;
 *   serve.c    a connection once the port has handed it over: the
 *              handshake, then the control connection's frames or a data
 *              stream's.
 *
 * A chunk is verified when the digest of the bytes a stream delivered
 * equals the digest the sender gave on the control connection, whichever
 * of the two came first; or, on a resume, when the digest the journal
 * recorded equals the sender's. */
#ifndef NODELUA_TRANSFER_SESSION_H
#define NODELUA_TRANSFER_SESSION_H

#include "transfer_internal.h"

#include <stdatomic.h>

/* A chunk's state at the receiver. */
enum {
  CHUNK_MISSING = 0, /* nothing usable of it here */
  CHUNK_HELD,        /* in the staging file by the journal, not confirmed */
  CHUNK_RECEIVED,    /* its bytes arrived; the sender's digest has not */
  CHUNK_VERIFIED,    /* its bytes match the sender's digest */
};

/* A chunk's flags. */
enum {
  CHUNK_EXPECTED = 1,     /* the sender's digest came */
  CHUNK_FROM_JOURNAL = 2, /* the journal vouches for it: withdraw it there
                             before its bytes are overwritten */
};

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
  /* Per chunk: its state and flags, the sender's digest (expected), and
   * the digest of what is here (received or held). */
  uint8_t *state, *flags;
  uint8_t *expected, *here;
  /* END: the sender's tree digest, and its plain SHA-256 when asked. */
  bool ended, sha256;
  uint8_t tree[32], whole_expected[32];
  /* Verified chunks not yet in the journal: they are recorded in batches,
   * each after one fdatasync that covers them all, instead of a sync per
   * chunk. A crash loses at most a batch, which is then sent again. */
  uint32_t *unjournaled;
  uint32_t unjournaled_count;
  pthread_mutex_t journal_lock; /* one batch at a time, and journal_end */
  off_t journal_end;
  pthread_mutex_t write_lock; /* pwrites to data_fd */
  /* Worker threads journal (and, with sha256, fold the whole file), so
   * that data streams never wait on an fdatasync. They wait on work (with
   * lock) for a chunk verified, or the end. */
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
  /* With sha256: the plain SHA-256 folded in chunk order from the staging
   * file as chunks are verified (the one re-read, and only when asked). */
  pthread_mutex_t fold_lock;
  nl_sha256 *whole;
  uint32_t folded;
  bool fold_failed;
  bool finishing, finished, failed;
  /* RDMA: the sender proposed it (once per session), and the RDMA thread
   * is to stop (the control connection ended). */
  bool rdma_asked;
  atomic_bool rdma_stop;
  int refs;
  session *next;
};

/* session.c */
session *nl_session_new(const nl_frame_offer *o, const handshake *hs,
                        conn *control, nl_recv_dir *rd);
void nl_session_register(session *s);
session *nl_session_find(const uint8_t id[NL_FRAME_TRANSFER_ID_SIZE]);
void nl_session_release(session *s);
uint32_t nl_session_chunk_len(const session *s, uint32_t i);
void nl_session_start_workers(session *s);
/* Sends a MAC'd frame on the control connection; the caller holds lock. */
void nl_session_control_send(session *s, nl_writer *w);
/* The sender's DIGEST of chunk c, and its END. With the lock held; they
 * return 0, or -1 for a frame that breaks the protocol (a second digest
 * for a chunk, a second END). */
int nl_session_digest(session *s, uint32_t c, const uint8_t digest[32]);
int nl_session_end(session *s, const uint8_t tree[32], const uint8_t *sha256);
/* A stream delivered all of chunk c, whose bytes hash to digest. Without
 * the lock. */
void nl_session_received(session *s, uint32_t c, const uint8_t digest[32]);
/* A stream begins chunk c. Returns 1 when its bytes are to be written, 0
 * for a chunk verified already (its bytes are read and dropped), or -1
 * when the journal could not withdraw it (the stream is dropped). A held
 * chunk sent again is not the journal's any more. Without the lock. */
int nl_session_begin_chunk(session *s, uint32_t c);
/* Writes a DATA frame's bytes at their place in the staging file. Returns
 * 0, or -1 once the session failed (the sender was told why). Without the
 * lock. */
int nl_session_write(session *s, const nl_frame_data *d);
/* Finishes now if everything is in; called with the lock, which it drops
 * and takes again around the finish. */
void nl_session_finish_if_ready(session *s);

/* rdma_serve.c, with NODELUA_RDMA on: answers the sender's proposal
 * (its nonce) with a listener and pool for this session, served on a
 * thread of its own that holds a reference and counts as a stream; fills
 * answer (its nonce in the caller's nonce buffer). The caller has
 * checked that this node has a usable device. Returns 0, or -1 with why
 * to refuse. With the lock held. */
int nl_session_rdma_listen(session *s, conn *c, const uint8_t *sender_nonce,
                           nl_frame_rdma_answer *answer, uint8_t *nonce,
                           char *why, size_t whylen);

/* journal.c */
int nl_journal_open(session *s, char *err, size_t errlen);
void nl_journal_flush(session *s);
int nl_journal_withdraw(session *s, uint32_t c);

#endif
