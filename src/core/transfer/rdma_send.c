/* The sender's RDMA thread (see sender.h; docs/protocol.md, "RDMA"). It
 * takes chunks from the same queue as the TCP streams would, each into a
 * free slot of the receiver's pool: read from the file into this side's
 * registered buffer for that slot, then one RDMA WRITE with immediate. A
 * slot is free again when the receiver answers its chunk on the control
 * connection (send.c's chunk_answer). On any failure (a completion with
 * an error, the queue pair in error, the connection down) the chunks in
 * flight go back to the queue and the control thread starts TCP streams.
 * Built only with NODELUA_RDMA on. */
#include "core/portable.h"
#include "sender.h"

/* While every slot is in flight, or nothing is queued, the thread looks
 * at its completions this often: a failure shows there first. */
#define IDLE_POLL_MS 2

/* Takes the next chunk and a free slot for it, waiting for both. Returns
 * 1, 0 when the transfer stops, or -1 with why when RDMA failed. */
static int rdma_take(sender *s, uint32_t *chunk, int *slot, char *why,
                     size_t whylen) {
  pthread_mutex_lock(&s->lock);
  for (;;) {
    if (s->stop) {
      pthread_mutex_unlock(&s->lock);
      return 0;
    }
    if (s->queued > 0 && s->credits.free_count > 0)
      break;
    nl_transfer_cond_wait(&s->cond, &s->lock, IDLE_POLL_MS);
    pthread_mutex_unlock(&s->lock);
    int reaped = nl_rdma_poll_writes(s->rdma, why, whylen);
    pthread_mutex_lock(&s->lock);
    if (reaped < 0) {
      pthread_mutex_unlock(&s->lock);
      return -1;
    }
  }
  *chunk = nl_send_queue_pop(s);
  *slot = nl_rdma_credit_take(&s->credits, *chunk);
  pthread_mutex_unlock(&s->lock);
  return 1;
}

/* RDMA failed: the chunks the receiver has not answered go back to the
 * queue, and the control thread is told to go on over TCP streams. */
static void fall_back(sender *s, const char *why) {
  uint32_t back[NL_RDMA_SLOTS_MAX];
  pthread_mutex_lock(&s->lock);
  size_t n = nl_rdma_credits_drain(&s->credits, back);
  uint32_t requeued = 0;
  for (size_t i = 0; i < n; i++) {
    if (!s->verified[back[i]]) {
      nl_send_queue_push(s, back[i]);
      requeued++;
    }
  }
  s->rdma_live = false;
  s->rdma_fell_back = true;
  s->rdma_requeued = requeued;
  snprintf(s->rdma_why, sizeof s->rdma_why, "%s", why);
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->lock);
  nl_send_wake_control(s);
}

void *nl_send_rdma_main(void *arg) {
  nl_thread_name("nl-tx-rdma");
  sender *s = arg;
  char why[200] = "";
  uint32_t chunk;
  int slot, got;
  while ((got = rdma_take(s, &chunk, &slot, why, sizeof why)) == 1) {
    uint32_t len = nl_frame_chunk_len(s->size, s->chunk_size, chunk);
    off_t at = (off_t)((uint64_t)chunk * s->chunk_size);
    ssize_t r = pread(s->file_fd, nl_rdma_slot_buffer(s->rdma, slot), len, at);
    if (r != (ssize_t)len) {
      /* The TCP streams meet the same error and report it. */
      snprintf(why, sizeof why, "cannot read the file: %s",
               r < 0 ? strerror(errno) : "it got shorter");
      got = -1;
      break;
    }
    if (nl_rdma_post_write(s->rdma, slot, chunk, len, why, sizeof why) != 0) {
      got = -1;
      break;
    }
    pthread_mutex_lock(&s->lock);
    s->result->chunks_rdma++;
    nl_send_account(s, len);
    bool fail_now = s->cfg->rdma_fail_after_chunks != 0 &&
                    s->result->chunks_rdma == s->cfg->rdma_fail_after_chunks;
    pthread_mutex_unlock(&s->lock);
    if (fail_now)
      nl_rdma_force_error(s->rdma); /* tests: as a failing link would */
  }
  if (got < 0)
    fall_back(s, why);
  return NULL;
}
