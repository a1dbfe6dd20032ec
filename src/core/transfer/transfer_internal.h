/* Shared by the files of the transfer core, not a public header (that is
 * transfer.h): the error codes of ERROR frames, the core's limits, the
 * connection (conn.c), the read buffer, the handshake's result
 * (handshake.c), and the functions the files call across. Who owns what:
 *   conn.c       blocking frame I/O on a connection, plain or TLS, and the
 *                per-frame MACs of an authenticated one;
 *   handshake.c  HELLO to OK on both sides, the keys, and the rate-limited
 *                log of failures before authentication;
 *   journal.c, session.c, serve.c
 *                the receiver: staging and journal, sessions and publish,
 *                serving a connection (their own header: session.h);
 *   send.c, stream.c
 *                the sender: the transfer's course and its control
 *                connection, hashing while sending (hashpool.c's workers);
 *                the data streams (their own header: sender.h). */
#ifndef NODELUA_TRANSFER_INTERNAL_H
#define NODELUA_TRANSFER_INTERNAL_H

#ifdef __linux__
#define _GNU_SOURCE /* sync_file_range */
#endif
#include "transfer.h"

#include "auth.h"
#include "core/hash.h"
#include "deadline.h"
#include "core/log.h"
#include "core/portable.h"
#include "core/ratelimit.h"
#include "tls.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#ifdef __linux__
#include <sys/sendfile.h>
#endif
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#ifdef __APPLE__
/* macOS has no fdatasync in its headers; fsync is the same promise here. */
#define fdatasync(fd) fsync(fd)
#endif

enum {
  ERR_REFUSED = 1,  /* authentication */
  ERR_NAME = 2,     /* a file name that is not one safe component */
  ERR_TOO_BIG = 3,  /* over the receiver's maximum */
  ERR_NO_SPACE = 4, /* not enough free space, or the disk filled */
  ERR_BUSY = 5,     /* the same file is being received already */
  ERR_PROTOCOL = 6, /* a malformed or unexpected frame */
  ERR_IO = 7,       /* the receiver could not write */
  ERR_HASH = 8,     /* the whole file did not match */
  ERR_EXISTS = 9,   /* a file of that name is there, and no replace asked */
};

/* From accept to authenticated, TLS included: a fixed deadline, so that
 * a peer without the key holds a thread for this long at the most. */
#define HANDSHAKE_SECONDS 5
#define PIECE (1024 * 1024) /* bytes of file per DATA frame */
#define JOIN_GRACE_SECONDS 1

/* A connection: its socket, and TLS over it in the encrypted mode. On a
 * plain one, the bytes the listener read before the handover (pre) come
 * first; on a TLS one the TLS layer has them. */
typedef struct {
  int fd;
  nl_tls *tls;
  const uint8_t *pre;
  size_t pre_len;
  bool no_sendfile; /* the file's filesystem cannot sendfile */
  /* Before authentication, every read and write ends by this deadline. */
  const struct timespec *deadline;
  /* Once authenticated (a control connection): every frame is MAC'd with
   * this key over its direction and its number in that direction, so that
   * none can be changed, replayed, dropped or injected unseen. */
  const uint8_t *mac_key;
  uint8_t out_dir, in_dir;
  uint64_t out_seq, in_seq;
} conn;

/* A connection's read buffer, grown to the largest frame read so far. */
typedef struct {
  uint8_t *p;
  size_t cap;
} buffer;

typedef struct {
  uint8_t cn[32], sn[32];
  uint8_t key[NL_AUTH_SIZE]; /* the connection key */
  char peer_id[NL_FRAME_ID_MAX + 1];
} handshake;

double nl_tx_seconds_since(const struct timespec *t0);
void nl_tx_set_timeouts(int fd, int seconds);
int nl_tx_send_all(int fd, const void *p, size_t n, int flags);
int nl_tx_write_all(int fd, const void *p, size_t n);
void nl_tx_conn_end_deadline(conn *c, int timeout_seconds);
int nl_tx_conn_write(conn *c, const void *p, size_t n);
int nl_tx_conn_read(conn *c, void *dst, size_t n);
int nl_tx_payload_of(conn *c, const uint8_t hdr[NL_FRAME_HEADER_SIZE],
                     buffer *b, nl_frame_type *type, uint32_t *len,
                     unsigned want, unsigned also_want);
int nl_tx_recv_frame_of(conn *c, uint8_t hdr[NL_FRAME_HEADER_SIZE], buffer *b,
                        nl_frame_type *type, uint32_t *len, unsigned want,
                        unsigned also_want);
int nl_tx_recv_frame(conn *c, uint8_t hdr[NL_FRAME_HEADER_SIZE], buffer *b,
                     nl_frame_type *type, uint32_t *len);
long nl_tx_finish_with_mac(nl_writer *w, conn *c);
bool nl_tx_mac_ok(conn *c, const uint8_t hdr[NL_FRAME_HEADER_SIZE],
                  const uint8_t *p, uint32_t len);
int nl_tx_send_error(conn *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int nl_tx_join_mac(const uint8_t control_key[NL_AUTH_SIZE],
                   const uint8_t id[NL_FRAME_TRANSFER_ID_SIZE], uint16_t index,
                   const uint8_t cn[32], const uint8_t sn[32],
                   uint8_t out[NL_AUTH_SIZE]);
/* The private data of a transfer's RDMA connect request: a MAC under the
 * control connection's key over the transfer id and both sides' nonces
 * (the RDMA and RDMA_ANSWER frames), so that only the sender of this
 * session can attach to the receiver's queue pair. */
int nl_tx_rdma_mac(const uint8_t control_key[NL_AUTH_SIZE],
                   const uint8_t id[NL_FRAME_TRANSFER_ID_SIZE],
                   const uint8_t sender_nonce[NL_FRAME_NONCE_SIZE],
                   const uint8_t receiver_nonce[NL_FRAME_NONCE_SIZE],
                   uint8_t out[NL_AUTH_SIZE]);
void nl_tx_handshake_failed(int fd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void nl_tx_error_from(conn *c, const uint8_t hdr[NL_FRAME_HEADER_SIZE],
                      const uint8_t *p, uint32_t len, nl_frame_type type,
                      char *err, size_t errlen, const char *otherwise);
void nl_tx_canonical_id(char out[NL_FRAME_ID_MAX + 1], const char *id);
int nl_tx_derive(const nl_transfer_config *cfg, nl_auth_label label,
                 const handshake *hs, uint8_t role, const char *sender_id,
                 const char *receiver_id, uint8_t out[NL_AUTH_SIZE]);
bool nl_tx_same_id(const char *a, const char *b);
int nl_tx_client_handshake(conn *c, const nl_transfer_config *cfg, uint8_t role,
                           handshake *hs, buffer *b, char *err, size_t errlen);
/* TRANSFER_STREAMS=auto's step (send.c): with base_rate the rate before
 * the last step (0: none yet), rate the rate since, and started streams,
 * how many to add now: as many again, up to 16 in all, when the rate grew
 * by a tenth or more; 0 to stop adapting. */
int nl_tx_auto_more(double base_rate, double rate, int started);
int nl_tx_server_handshake(conn *c, const nl_transfer_config *cfg,
                           const nl_frame_hello *hello, handshake *hs,
                           buffer *b);

#endif
