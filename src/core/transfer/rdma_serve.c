/* The receiver's side of a transfer's RDMA (docs/protocol.md, "RDMA"):
 * on the sender's proposal, a listener and a registered pool for this
 * session; then, on a thread of its own, each chunk the sender writes
 * into the pool is verified from there and written out as a data stream's
 * would be. Built only with NODELUA_RDMA on. */
#include "core/portable.h"
#include "rdma/link.h"
#include "rdma/slots.h"
#include "session.h"

/* How long the listener waits for the sender's queue pair: it connects
 * right after the answer, so this is only for a sender that gave up. */
#define ACCEPT_MS 10000

typedef struct {
  session *s; /* a reference of its own */
  nl_rdma_listener *ln;
  uint8_t expected[NL_RDMA_PRIVATE_SIZE];
  uint32_t chunk_count;
} rdma_job;

/* A chunk whose bytes came a second time, after it was verified: the
 * sender still waits for its slot back, which an answer gives. */
static void answer_again(session *s, uint32_t c) {
  uint8_t f[NL_FRAME_HEADER_SIZE + 5 + 32];
  nl_writer w;
  nl_writer_begin(&w, f, sizeof f, NL_FRAME_CHUNK);
  nl_write_u32(&w, c);
  nl_write_u8(&w, 1);
  pthread_mutex_lock(&s->lock);
  nl_session_control_send(s, &w);
  pthread_mutex_unlock(&s->lock);
}

/* A chunk arrived whole in its slot: verified from the registered buffer,
 * then written out. The slot is not written again before the sender has
 * this chunk's answer, which nl_session_received (or the DIGEST, if it
 * comes later) sends only after this returns. */
static int take_chunk(void *ud, uint32_t c, const uint8_t *data, uint32_t len) {
  session *s = ud;
  if (len != nl_session_chunk_len(s, c))
    return -1;
  int begin = nl_session_begin_chunk(s, c);
  if (begin < 0)
    return -1;
  if (begin == 0) {
    answer_again(s, c);
    return 0;
  }
  nl_frame_data d = {.chunk = c, .offset = 0, .data = data, .len = len};
  uint8_t digest[32];
  if (nl_session_write(s, &d) != 0 || nl_sha256_buffer(data, len, digest) != 0)
    return -1;
  nl_session_received(s, c, digest);
  return 0;
}

static void *serve_rdma(void *arg) {
  nl_thread_name("nl-rx-rdma");
  rdma_job *j = arg;
  session *s = j->s;
  char why[256];
  int rc = nl_rdma_serve(j->ln, j->expected, ACCEPT_MS, j->chunk_count,
                         take_chunk, s, &s->rdma_stop, why, sizeof why);
  pthread_mutex_lock(&s->lock);
  s->streams--;
  clock_gettime(CLOCK_MONOTONIC, &s->active_at);
  pthread_mutex_unlock(&s->lock);
  /* The sender goes on over TCP streams; its log says so too. */
  if (rc != 0)
    nl_log_info("transfer", "%s from %s: the RDMA connection ended: %s",
                s->name, s->peer_id, why);
  nl_session_release(s);
  free(j);
  return NULL;
}

int nl_session_rdma_listen(session *s, conn *c, const uint8_t *sender_nonce,
                           nl_frame_rdma_answer *answer, uint8_t *nonce,
                           char *why, size_t whylen) {
  struct sockaddr_storage local;
  socklen_t local_len = sizeof local;
  if (getsockname(c->fd, (struct sockaddr *)&local, &local_len) != 0) {
    snprintf(why, whylen, "getsockname: %s", strerror(errno));
    return -1;
  }
  rdma_job *j = calloc(1, sizeof *j);
  if (j == NULL || nl_random(nonce, NL_FRAME_NONCE_SIZE) != 0 ||
      nl_tx_rdma_mac(s->key, s->id, sender_nonce, nonce, j->expected) != 0) {
    snprintf(why, whylen, "out of memory or random bytes");
    free(j);
    return -1;
  }
  uint16_t slots = nl_rdma_pool_slots(s->chunk_size, s->chunk_count);
  j->ln = nl_rdma_listen((struct sockaddr *)&local, slots, s->chunk_size,
                         answer, why, whylen);
  if (j->ln == NULL) {
    free(j);
    return -1;
  }
  answer->nonce = nonce;
  j->chunk_count = s->chunk_count;
  /* The thread's own reference: the session outlives the control
   * connection while RDMA writes may still come. */
  j->s = nl_session_find(s->id);
  pthread_t thread;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  s->streams++; /* the caller holds the lock */
  int started =
      j->s != NULL ? pthread_create(&thread, &attr, serve_rdma, j) : -1;
  pthread_attr_destroy(&attr);
  if (started != 0) {
    s->streams--;
    snprintf(why, whylen, "cannot start a thread for RDMA");
    nl_rdma_listener_free(j->ln);
    if (j->s != NULL) {
      /* nl_session_release takes the registry lock, never s->lock. */
      nl_session_release(j->s);
    }
    free(j);
    answer->ready = false;
    return -1;
  }
  return 0;
}
