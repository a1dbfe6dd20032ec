/* The sender's state, shared by the two files of the sending side (not a
 * public header):
 *   send.c    the transfer's course: the OFFER and ACCEPT, the hashing of
 *             the chunks on hashpool.c's workers while the file is sent,
 *             the DIGEST frames, END and DONE, and TRANSFER_STREAMS=auto;
 *   stream.c  the data streams: connecting and JOINing, taking chunks from
 *             the shared queue, sending them (sendfile in clear, pread and
 *             TLS otherwise), and requeueing what a lost stream had in
 *             flight;
 *   rdma_send.c (NODELUA_RDMA on) the RDMA thread: chunks written into
 *             the receiver's pool while a slot is free, and on a failure
 *             the chunks in flight handed back for TCP streams. */
#ifndef NODELUA_TRANSFER_SENDER_H
#define NODELUA_TRANSFER_SENDER_H

#include "rdma/link.h"
#include "rdma/slots.h"
#include "transfer_internal.h"

/* TRANSFER_STREAMS=auto: the streams a transfer starts with, and the most
 * it doubles to. */
#define AUTO_STREAMS_FIRST 4
#define AUTO_STREAMS_MAX 16

typedef struct {
  const nl_transfer_config *cfg;
  const char *host;
  int port;
  int file_fd;
  uint64_t size;
  uint32_t chunk_size, chunk_count;
  uint8_t id[NL_FRAME_TRANSFER_ID_SIZE];
  uint8_t control_key[NL_AUTH_SIZE];
  conn control;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  uint32_t *queue;   /* chunks to send, a ring of chunk_count slots */
  uint8_t *in_queue; /* per chunk: in the ring now */
  uint8_t *verified; /* per chunk: the receiver has it, verified */
  uint32_t verified_count;
  /* Per chunk, the stream that last sent it (-1: none). A stream that
   * fails loses what it had in flight, however much of it was written:
   * its chunks not yet verified are queued again. */
  int8_t *sent_on;
  size_t head, queued;
  int live_streams;
  int stream_fds[64];
  bool stop, killed;
  uint32_t sent_attempts;
  /* The hashing, on its own thread and pool: chunk digests as they come
   * (hashed, in the order they came, for the control connection to send
   * as DIGEST frames: digests_sent of them so far), then the tree digest;
   * with cfg->sha256 the plain SHA-256 on a thread of its own. */
  uint8_t *digests;
  uint32_t *hashed, hashed_count, digests_sent;
  const uint8_t *held, *held_digests; /* from the ACCEPT */
  uint32_t *held_at;                  /* chunk -> index in held_digests */
  bool hash_done, sha_done, first_data;
  int hash_rc, sha_rc;
  uint8_t tree[32], sha[32];
  /* Wakes the control thread for new digests (a pipe: poll sees it). */
  int wake[2];
  /* TRANSFER_STREAMS=auto: the rate over the last window, the window's
   * start, and whether streams are still being added. */
  bool adapting, settling;
  double base_rate;
  uint64_t tick_bytes;
  struct timespec tick_at;
  /* RDMA: the queue pair, the receiver's slots (a credit each, back with
   * that chunk's CHUNK answer), whether the RDMA thread carries the
   * chunks, and, once it failed and until the control thread has logged
   * it and started TCP streams, rdma_fell_back, why and how many chunks
   * it handed back. */
  nl_rdma_link *rdma;
  nl_rdma_credits credits;
  bool rdma_live, rdma_fell_back;
  uint32_t rdma_requeued;
  char rdma_why[200];
  nl_transfer_result *result;
  nl_transfer_progress_cb progress;
  void *ud;
  char stream_error[256];
} sender;

typedef struct {
  sender *s;
  uint16_t index;
  pthread_t thread;
} stream;

typedef struct {
  stream streams[64];
  int started;
  pthread_t hasher, plain, rdma;
  bool hashing, plain_hashing, rdma_running;
} workers;

/* Queues a chunk to send, once: a chunk both refused by the receiver and
 * on a stream that failed must not take two slots of the ring. Called
 * with the lock. */
void nl_send_queue_push(sender *s, uint32_t chunk);
/* Takes the chunk at the head of the queue (there must be one) and notes
 * the first data out. Called with the lock. */
uint32_t nl_send_queue_pop(sender *s);
/* A chunk of len bytes went out: counts it, and with stop_after_chunks
 * stops the transfer as if killed. Called with the lock. */
void nl_send_account(sender *s, uint32_t len);
/* The RDMA thread (arg: the sender), with NODELUA_RDMA on (rdma_send.c). */
void *nl_send_rdma_main(void *arg);
/* A data stream's thread (arg: its stream). */
void *nl_send_stream_main(void *arg);
/* Connects c to host:port, with TLS over it in the encrypted mode.
 * Returns 0, or -1 with err set. */
int nl_send_open_conn(conn *c, const char *host, int port,
                      const nl_transfer_config *cfg, char *err, size_t errlen);
void nl_send_close_conn(conn *c);
/* Wakes the control thread from its wait (send.c). */
void nl_send_wake_control(sender *s);

#endif
