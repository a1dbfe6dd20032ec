/* The receiver's side of an RDMA connection (see link.h): a listener
 * bound to the control connection's address, a registered pool that the
 * sender writes chunks into, and the loop that hands each chunk on. */
#include "link_internal.h"

#include "core/mac.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct nl_rdma_listener {
  const nl_verbs *v;
  struct rdma_event_channel *ch;
  struct rdma_cm_id *listen_id, *conn_id;
  struct ibv_pd *pd;
  struct ibv_cq *cq;
  struct ibv_mr *mr;
  uint8_t *pool;
  uint16_t slots;
  uint32_t slot_size;
  bool qp, connected;
};

void nl_rdma_listener_free(nl_rdma_listener *ln) {
  if (ln == NULL)
    return;
  const nl_verbs *v = ln->v;
  if (ln->connected && v->disconnect(ln->conn_id) == 0)
    nl_rdma_cm_wait(v, ln->ch, RDMA_CM_EVENT_DISCONNECTED, 1000, NULL,
                    (char[8]){0}, 8);
  if (ln->qp)
    v->destroy_qp(ln->conn_id);
  if (ln->conn_id != NULL)
    v->destroy_id(ln->conn_id);
  if (ln->mr != NULL)
    v->dereg_mr(ln->mr);
  if (ln->cq != NULL)
    v->destroy_cq(ln->cq);
  if (ln->pd != NULL)
    v->dealloc_pd(ln->pd);
  if (ln->listen_id != NULL)
    v->destroy_id(ln->listen_id);
  if (ln->ch != NULL)
    v->destroy_event_channel(ln->ch);
  free(ln->pool);
  free(ln);
}

nl_rdma_listener *nl_rdma_listen(const struct sockaddr *local, uint16_t slots,
                                 uint32_t slot_size,
                                 nl_frame_rdma_answer *answer, char *why,
                                 size_t whylen) {
  const nl_verbs *v = nl_verbs_load(why, whylen);
  if (v == NULL)
    return NULL;
  nl_rdma_listener *ln = calloc(1, sizeof *ln);
  if (ln == NULL) {
    snprintf(why, whylen, "out of memory");
    return NULL;
  }
  *ln = (nl_rdma_listener){.v = v, .slots = slots, .slot_size = slot_size};
  struct sockaddr_storage at;
  memset(&at, 0, sizeof at);
  memcpy(&at, local,
         local->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                     : sizeof(struct sockaddr_in6));
  if (at.ss_family == AF_INET)
    ((struct sockaddr_in *)&at)->sin_port = 0;
  else
    ((struct sockaddr_in6 *)&at)->sin6_port = 0;
  ln->ch = nl_rdma_channel(v);
  if (ln->ch == NULL ||
      v->create_id(ln->ch, &ln->listen_id, NULL, RDMA_PS_TCP) != 0) {
    snprintf(why, whylen, "rdma_cm: %s", strerror(errno));
    goto fail;
  }
  /* Bound to the address the sender reached this node at, so that the
   * connection runs on the device of that interface, or on none. */
  if (v->bind_addr(ln->listen_id, (struct sockaddr *)&at) != 0 ||
      ln->listen_id->verbs == NULL) {
    snprintf(why, whylen,
             "no RDMA device serves the address the sender reached (%s)",
             errno ? strerror(errno) : "no device bound");
    goto fail;
  }
  size_t bytes = (size_t)slots * slot_size;
  ln->pd = v->alloc_pd(ln->listen_id->verbs);
  ln->cq = ln->pd ? v->create_cq(ln->listen_id->verbs, slots + 1, NULL, NULL, 0)
                  : NULL;
  ln->pool = ln->cq ? nl_rdma_pool_alloc(bytes) : NULL;
  ln->mr = ln->pool
               ? v->reg_mr(ln->pd, ln->pool, bytes,
                           IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE)
               : NULL;
  if (ln->mr == NULL) {
    snprintf(why, whylen, "cannot register a pool of %u x %u bytes: %s", slots,
             slot_size, strerror(errno));
    goto fail;
  }
  if (v->listen(ln->listen_id, 1) != 0) {
    snprintf(why, whylen, "rdma_listen: %s", strerror(errno));
    goto fail;
  }
  answer->ready = true;
  answer->port = ntohs(v->get_src_port(ln->listen_id));
  answer->slots = slots;
  answer->slot_size = slot_size;
  answer->addr = (uintptr_t)ln->pool;
  answer->rkey = ln->mr->rkey;
  return ln;
fail:
  nl_rdma_listener_free(ln);
  return NULL;
}

static int post_recv(nl_rdma_listener *ln, uint64_t id) {
  /* No buffer: a write with immediate consumes a receive for its
   * immediate only; the bytes land in the pool. */
  struct ibv_recv_wr wr = {.wr_id = id}, *bad = NULL;
  return ibv_post_recv(ln->conn_id->qp, &wr, &bad);
}

/* Takes the connect request whose private data is expected, rejecting
 * others, until the deadline. Returns 0 (connected) or -1 with why. */
static int accept_sender(nl_rdma_listener *ln, const uint8_t *expected,
                         int timeout_ms, char *why, size_t whylen) {
  const nl_verbs *v = ln->v;
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int left = timeout_ms - (int)((now.tv_sec - t0.tv_sec) * 1000 +
                                  (now.tv_nsec - t0.tv_nsec) / 1000000);
    struct rdma_cm_event *ev = NULL;
    if (left <= 0 || nl_rdma_cm_wait(v, ln->ch, RDMA_CM_EVENT_CONNECT_REQUEST,
                                     left, &ev, why, whylen) != 0)
      return -1;
    struct rdma_cm_id *id = ev->id;
    bool ours = ev->param.conn.private_data != NULL &&
                ev->param.conn.private_data_len >= NL_RDMA_PRIVATE_SIZE &&
                nl_mac_equal(ev->param.conn.private_data, expected) &&
                id->verbs == ln->listen_id->verbs;
    v->ack_cm_event(ev);
    if (!ours) {
      /* Another host, or one without this session's key. */
      v->reject(id, NULL, 0);
      v->destroy_id(id);
      continue;
    }
    ln->conn_id = id;
    break;
  }
  struct ibv_qp_init_attr qa = {.send_cq = ln->cq,
                                .recv_cq = ln->cq,
                                .qp_type = IBV_QPT_RC,
                                .cap = {.max_send_wr = 1,
                                        .max_recv_wr = ln->slots,
                                        .max_send_sge = 1,
                                        .max_recv_sge = 1}};
  if (v->create_qp(ln->conn_id, ln->pd, &qa) != 0) {
    snprintf(why, whylen, "cannot set up the queue pair: %s", strerror(errno));
    v->reject(ln->conn_id, NULL, 0);
    return -1;
  }
  ln->qp = true;
  for (uint16_t i = 0; i < ln->slots; i++) {
    if (post_recv(ln, i) != 0) {
      snprintf(why, whylen, "cannot post a receive");
      v->reject(ln->conn_id, NULL, 0);
      return -1;
    }
  }
  struct rdma_conn_param cp = {.rnr_retry_count = 7};
  struct rdma_cm_event *ev = NULL;
  if (v->accept(ln->conn_id, &cp) != 0 ||
      nl_rdma_cm_wait(v, ln->ch, RDMA_CM_EVENT_ESTABLISHED, timeout_ms, &ev,
                      why, whylen) != 0) {
    if (why[0] == '\0')
      snprintf(why, whylen, "rdma_accept: %s", strerror(errno));
    return -1;
  }
  v->ack_cm_event(ev);
  ln->connected = true;
  return 0;
}

int nl_rdma_serve(nl_rdma_listener *ln,
                  const uint8_t expected[NL_RDMA_PRIVATE_SIZE], int timeout_ms,
                  uint32_t chunk_count, nl_rdma_chunk_fn on_chunk, void *ud,
                  const atomic_bool *stop, char *why, size_t whylen) {
  why[0] = '\0';
  int rc = accept_sender(ln, expected, timeout_ms, why, whylen);
  unsigned idle = 0;
  while (rc == 0 && !atomic_load(stop)) {
    struct ibv_wc wc[NL_RDMA_SLOTS_MAX];
    int n = ibv_poll_cq(ln->cq, NL_RDMA_SLOTS_MAX, wc);
    if (n < 0) {
      snprintf(why, whylen, "ibv_poll_cq failed");
      rc = -1;
    }
    for (int i = 0; rc == 0 && i < n; i++) {
      uint16_t slot;
      uint32_t chunk;
      if (wc[i].status != IBV_WC_SUCCESS) {
        snprintf(why, whylen, "an RDMA completion failed: %s",
                 ln->v->wc_status_str(wc[i].status));
        rc = -1;
      } else if (wc[i].opcode != IBV_WC_RECV_RDMA_WITH_IMM ||
                 !(wc[i].wc_flags & IBV_WC_WITH_IMM) ||
                 !nl_rdma_imm_parse(ntohl(wc[i].imm_data), ln->slots,
                                    chunk_count, &slot, &chunk)) {
        snprintf(why, whylen, "an RDMA write that names no slot or chunk");
        rc = -1;
      } else if (on_chunk(ud, chunk, ln->pool + (size_t)slot * ln->slot_size,
                          wc[i].byte_len) != 0) {
        snprintf(why, whylen, "chunk %u could not be taken", chunk);
        rc = -1;
      } else if (post_recv(ln, slot) != 0) {
        snprintf(why, whylen, "cannot post a receive");
        rc = -1;
      }
    }
    if (rc == 0 && n == 0) {
      if (nl_rdma_cm_down(ln->v, ln->ch)) {
        ln->connected = false;
        break; /* the sender disconnected: its choice, not an error */
      }
      /* Spin briefly while writes come, then sleep in growing steps. */
      if (++idle > 64) {
        struct timespec nap = {0, idle > 4096 ? 1000000 : 20000};
        nanosleep(&nap, NULL);
      }
    } else {
      idle = 0;
    }
  }
  nl_rdma_listener_free(ln);
  return rc;
}
