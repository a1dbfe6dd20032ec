/* File transfer between nodes (docs/protocol.md): a sender and a receiver
 * over blocking sockets, meant for worker threads, never the loop. One
 * control connection per transfer and several data streams, each
 * authenticated with the cluster key; every chunk checked against its
 * SHA-256, sent on the control connection under its MACs as the sender
 * hashes (protocol version 3), a bad one asked for again alone; the file
 * published by rename only when its tree digest matches; a journal of
 * verified chunks and their digests so that sending again resumes. */
#ifndef NODELUA_TRANSFER_H
#define NODELUA_TRANSFER_H

#include "frame.h"
#include "recvdir.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  const uint8_t *key; /* the cluster key; at least NL_AUTH_KEY_MIN bytes */
  size_t key_len;
  /* This node's id, hex. A sender without one (NULL or "") sends a random
   * id of its own for this transfer, never a fixed one. */
  const char *node_id;
  /* Sender: the id the receiver must prove it holds (its CHALLENGE is
   * bound to it by the handshake's MACs); NULL to take whichever node
   * answers at host:port. */
  const char *expect_id;
  /* Receiver: the receive folder, opened and checked (nl_recv_dir_open),
   * and the largest file accepted. */
  nl_recv_dir *recv_dir;
  uint64_t max_bytes;
  /* Sender: ask the receiver to replace a file of the same name (without
   * it, an existing file is an error: "exists"). */
  bool replace;
  /* Sender: data streams (1 to 64; 0: auto, 4 doubled up to 16 while the
   * rate grows by a tenth) and chunk size (a power of two, 64 KiB to 64
   * MiB). */
  int streams;
  uint32_t chunk_size;
  /* Sender, for tests: stop as if killed once this many chunks were sent
   * (0: never). */
  uint32_t stop_after_chunks;
  /* Sender: wrap every connection in TLS 1.3 keyed by the cluster key.
   * Receiver: refuse connections that are not (TLS ones are taken either
   * way). */
  bool encrypt;
  /* I/O timeout of every socket, in seconds (0: 30). */
  int timeout_seconds;
  /* Sender: workers hashing chunks (0: the online CPUs). */
  unsigned hash_threads;
  /* Sender: both sides also compute and compare the file's plain SHA-256
   * (one more sequential pass each, alongside the transfer). */
  bool sha256;
  /* TRANSFER_RDMA, an nl_rdma_mode (rdma/rdma.h): auto (0), off or
   * required. Sender: whether to propose RDMA after the ACCEPT. Receiver:
   * off refuses every proposal. */
  int rdma;
  /* Sender, for tests: propose RDMA even without a local device, so that
   * the receiver's refusal is exercised on any host; and move the queue
   * pair to the error state after this many chunks went over RDMA (0:
   * never), to exercise the fallback mid-transfer. */
  bool rdma_propose_anyway;
  uint32_t rdma_fail_after_chunks;
} nl_transfer_config;

typedef struct {
  uint64_t size;
  uint32_t chunks;         /* in the file */
  uint32_t chunks_skipped; /* already verified at the receiver: resumed */
  uint32_t chunks_sent;
  uint32_t chunks_resent; /* refused by the receiver and sent again */
  uint64_t bytes_sent;
  double seconds;
  char tree[65];   /* the tree digest (docs/protocol.md), hex */
  char sha256[65]; /* the plain SHA-256, hex; "" unless asked for */
  /* Chunks hashed when the first DATA went out: fewer than chunks when
   * sending began before hashing ended. */
  uint32_t hashed_at_first_data;
  uint32_t streams; /* data streams opened */
  /* Chunks that went over RDMA, and why RDMA was not used or stopped
   * being used ("" if it was never proposed, or carried the transfer). */
  uint32_t chunks_rdma;
  char rdma_note[256];
  char peer_id[NL_FRAME_ID_MAX + 1];
} nl_transfer_result;

/* Called from the sender's threads (serialised) as chunks are verified. */
typedef void (*nl_transfer_progress_cb)(void *ud,
                                        const nl_transfer_result *so_far);

/* Sends the file at path to host:port as remote_name (NULL: the path's
 * last component). Blocking. Returns 0, or -1 with one line in err. */
int nl_transfer_send(const char *host, int port, const char *path,
                     const char *remote_name, const nl_transfer_config *cfg,
                     nl_transfer_progress_cb progress, void *ud,
                     nl_transfer_result *result, char *err, size_t errlen);

/* Serves one framed connection accepted on fd, whose first prefix_len
 * bytes were read already (prefix). Blocking, for a thread of its own;
 * closes fd. The peer has 5 s from here to prove the cluster key, TLS
 * included. The config must outlive every connection. */
void nl_transfer_serve(int fd, const void *prefix, size_t prefix_len,
                       const nl_transfer_config *cfg);

/* The same, for a listener that keeps unauthenticated connections in a
 * pool of their own: admit(ud) is called once the peer has proved the key,
 * and a false answer refuses it as busy. */
void nl_transfer_serve_gated(int fd, const void *prefix, size_t prefix_len,
                             const nl_transfer_config *cfg,
                             bool (*admit)(void *ud), void *ud);

/* The address of fd's peer as text (an IPv4-mapped one as IPv4), or "?". */
void nl_transfer_peer_address(int fd, char *out, size_t n);

/* Waits on cond (with lock held) for up to ms milliseconds. */
void nl_transfer_cond_wait(pthread_cond_t *cond, pthread_mutex_t *lock, int ms);

/* Whether the receiver side has nothing in progress (for tests and a clean
 * shutdown). */
int nl_transfer_sessions(void);

#endif
