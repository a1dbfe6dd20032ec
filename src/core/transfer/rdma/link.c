/* The RDMA connection's common part and the sender's side (see link.h). */
#include "link_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int nl_rdma_cm_wait(const nl_verbs *v, struct rdma_event_channel *ch,
                    enum rdma_cm_event_type want, int timeout_ms,
                    struct rdma_cm_event **out, char *why, size_t whylen) {
  struct pollfd p = {.fd = ch->fd, .events = POLLIN};
  int ready;
  do
    ready = poll(&p, 1, timeout_ms);
  while (ready < 0 && errno == EINTR);
  if (ready == 0) {
    snprintf(why, whylen, "rdma_cm: no %s within %d ms", v->event_str(want),
             timeout_ms);
    return -1;
  }
  struct rdma_cm_event *ev = NULL;
  if (ready < 0 || v->get_cm_event(ch, &ev) != 0) {
    snprintf(why, whylen, "rdma_cm: %s", strerror(errno));
    return -1;
  }
  if (ev->event != want) {
    snprintf(why, whylen, "rdma_cm: %s (status %d) instead of %s",
             v->event_str(ev->event), ev->status, v->event_str(want));
    v->ack_cm_event(ev);
    return -1;
  }
  if (out != NULL)
    *out = ev;
  else
    v->ack_cm_event(ev);
  return 0;
}

/* Whether rdma_cm said the connection is gone (the peer disconnected, or
 * the device went away), without waiting. */
bool nl_rdma_cm_down(const nl_verbs *v, struct rdma_event_channel *ch) {
  struct pollfd p = {.fd = ch->fd, .events = POLLIN};
  if (poll(&p, 1, 0) <= 0)
    return false;
  struct rdma_cm_event *ev = NULL;
  if (v->get_cm_event(ch, &ev) != 0)
    return false;
  bool down = ev->event == RDMA_CM_EVENT_DISCONNECTED ||
              ev->event == RDMA_CM_EVENT_DEVICE_REMOVAL ||
              ev->event == RDMA_CM_EVENT_TIMEWAIT_EXIT;
  v->ack_cm_event(ev);
  return down;
}

struct rdma_event_channel *nl_rdma_channel(const nl_verbs *v) {
  struct rdma_event_channel *ch = v->create_event_channel();
  if (ch != NULL) {
    int flags = fcntl(ch->fd, F_GETFL);
    fcntl(ch->fd, F_SETFL, flags | O_NONBLOCK);
    fcntl(ch->fd, F_SETFD, FD_CLOEXEC);
  }
  return ch;
}

void *nl_rdma_pool_alloc(size_t bytes) {
  void *p = NULL;
  /* Page-aligned: registration pins whole pages. */
  if (posix_memalign(&p, 4096, bytes) != 0)
    return NULL;
  memset(p, 0, bytes);
  return p;
}

struct nl_rdma_link {
  const nl_verbs *v;
  struct rdma_event_channel *ch;
  struct rdma_cm_id *id;
  struct ibv_pd *pd;
  struct ibv_cq *cq;
  struct ibv_mr *mr;
  uint8_t *buf;
  bool qp, connected;
  uint16_t slots;
  uint32_t slot_size;
  uint64_t remote_addr;
  uint32_t rkey;
  /* Writes posted whose completions were not reaped yet: at most slots,
   * the send queue's depth, so the completion queue (slots + 1) never
   * overflows, which would put the queue pair in error. */
  uint32_t outstanding;
};

void nl_rdma_close(nl_rdma_link *l) {
  if (l == NULL)
    return;
  const nl_verbs *v = l->v;
  if (l->connected && v->disconnect(l->id) == 0)
    nl_rdma_cm_wait(v, l->ch, RDMA_CM_EVENT_DISCONNECTED, 1000, NULL,
                    (char[8]){0}, 8);
  if (l->qp)
    v->destroy_qp(l->id);
  if (l->mr != NULL)
    v->dereg_mr(l->mr);
  if (l->cq != NULL)
    v->destroy_cq(l->cq);
  if (l->pd != NULL)
    v->dealloc_pd(l->pd);
  if (l->id != NULL)
    v->destroy_id(l->id);
  if (l->ch != NULL)
    v->destroy_event_channel(l->ch);
  free(l->buf);
  free(l);
}

/* rdma_cm's steps to a connected queue pair. Returns 0 or -1 with why. */
static int connect_steps(nl_rdma_link *l, const struct sockaddr *peer,
                         const uint8_t *private_data, int timeout_ms, char *why,
                         size_t whylen) {
  const nl_verbs *v = l->v;
  if (v->resolve_addr(l->id, NULL, (struct sockaddr *)peer, timeout_ms) != 0 ||
      nl_rdma_cm_wait(v, l->ch, RDMA_CM_EVENT_ADDR_RESOLVED, timeout_ms + 500,
                      NULL, why, whylen) != 0) {
    if (why[0] == '\0')
      snprintf(why, whylen, "rdma_resolve_addr: %s", strerror(errno));
    return -1;
  }
  if (v->resolve_route(l->id, timeout_ms) != 0 ||
      nl_rdma_cm_wait(v, l->ch, RDMA_CM_EVENT_ROUTE_RESOLVED, timeout_ms + 500,
                      NULL, why, whylen) != 0) {
    if (why[0] == '\0')
      snprintf(why, whylen, "rdma_resolve_route: %s", strerror(errno));
    return -1;
  }
  l->pd = v->alloc_pd(l->id->verbs);
  l->cq =
      l->pd ? v->create_cq(l->id->verbs, l->slots + 1, NULL, NULL, 0) : NULL;
  size_t bytes = (size_t)l->slots * l->slot_size;
  l->buf = l->cq ? nl_rdma_pool_alloc(bytes) : NULL;
  l->mr =
      l->buf ? v->reg_mr(l->pd, l->buf, bytes, IBV_ACCESS_LOCAL_WRITE) : NULL;
  struct ibv_qp_init_attr qa = {.send_cq = l->cq,
                                .recv_cq = l->cq,
                                .qp_type = IBV_QPT_RC,
                                .sq_sig_all = 1,
                                .cap = {.max_send_wr = l->slots,
                                        .max_recv_wr = 1,
                                        .max_send_sge = 1,
                                        .max_recv_sge = 1}};
  if (l->mr == NULL || v->create_qp(l->id, l->pd, &qa) != 0) {
    snprintf(why, whylen, "cannot set up the queue pair: %s", strerror(errno));
    return -1;
  }
  l->qp = true;
  struct rdma_conn_param cp = {.private_data = private_data,
                               .private_data_len = NL_RDMA_PRIVATE_SIZE,
                               .retry_count = 7,
                               .rnr_retry_count = 7};
  struct rdma_cm_event *ev = NULL;
  if (v->connect(l->id, &cp) != 0) {
    snprintf(why, whylen, "rdma_connect: %s", strerror(errno));
    return -1;
  }
  if (nl_rdma_cm_wait(v, l->ch, RDMA_CM_EVENT_ESTABLISHED, timeout_ms, &ev, why,
                      whylen) != 0)
    return -1; /* refused (REJECTED), unreachable or timed out: why says */
  v->ack_cm_event(ev);
  l->connected = true;
  return 0;
}

nl_rdma_link *nl_rdma_connect(const struct sockaddr *peer,
                              const nl_frame_rdma_answer *answer,
                              const uint8_t private_data[NL_RDMA_PRIVATE_SIZE],
                              int timeout_ms, char *why, size_t whylen) {
  why[0] = '\0';
  const nl_verbs *v = nl_verbs_load(why, whylen);
  if (v == NULL)
    return NULL;
  nl_rdma_link *l = calloc(1, sizeof *l);
  if (l == NULL) {
    snprintf(why, whylen, "out of memory");
    return NULL;
  }
  *l = (nl_rdma_link){.v = v,
                      .slots = answer->slots,
                      .slot_size = answer->slot_size,
                      .remote_addr = answer->addr,
                      .rkey = answer->rkey};
  struct sockaddr_storage to;
  memset(&to, 0, sizeof to);
  if (peer->sa_family == AF_INET) {
    memcpy(&to, peer, sizeof(struct sockaddr_in));
    ((struct sockaddr_in *)&to)->sin_port = htons(answer->port);
  } else {
    memcpy(&to, peer, sizeof(struct sockaddr_in6));
    ((struct sockaddr_in6 *)&to)->sin6_port = htons(answer->port);
  }
  l->ch = nl_rdma_channel(v);
  if (l->ch == NULL || v->create_id(l->ch, &l->id, NULL, RDMA_PS_TCP) != 0) {
    snprintf(why, whylen, "rdma_cm: %s", strerror(errno));
    nl_rdma_close(l);
    return NULL;
  }
  if (connect_steps(l, (struct sockaddr *)&to, private_data, timeout_ms, why,
                    whylen) != 0) {
    nl_rdma_close(l);
    return NULL;
  }
  return l;
}

uint8_t *nl_rdma_slot_buffer(nl_rdma_link *l, int slot) {
  return l->buf + (size_t)slot * l->slot_size;
}

int nl_rdma_post_write(nl_rdma_link *l, int slot, uint32_t chunk, uint32_t len,
                       char *why, size_t whylen) {
  /* A credit comes back when the receiver has the chunk, which can be
   * before this side's completion of its write: reap first, and wait for
   * room while the send queue is full. */
  do {
    if (nl_rdma_poll_writes(l, why, whylen) < 0)
      return -1;
    if (l->outstanding >= l->slots)
      sched_yield();
  } while (l->outstanding >= l->slots);
  struct ibv_sge sge = {.addr = (uintptr_t)nl_rdma_slot_buffer(l, slot),
                        .length = len,
                        .lkey = l->mr->lkey};
  struct ibv_send_wr wr = {
      .wr_id = (uint64_t)slot,
      .sg_list = &sge,
      .num_sge = 1,
      .opcode = IBV_WR_RDMA_WRITE_WITH_IMM,
      .send_flags = IBV_SEND_SIGNALED,
      .imm_data = htonl(nl_rdma_imm((uint16_t)slot, chunk)),
      .wr.rdma = {.remote_addr = l->remote_addr + (uint64_t)slot * l->slot_size,
                  .rkey = l->rkey}};
  struct ibv_send_wr *bad = NULL;
  int rc = ibv_post_send(l->id->qp, &wr, &bad);
  if (rc != 0) {
    snprintf(why, whylen, "ibv_post_send: %s", strerror(rc));
    return -1;
  }
  l->outstanding++;
  return 0;
}

int nl_rdma_poll_writes(nl_rdma_link *l, char *why, size_t whylen) {
  struct ibv_wc wc[NL_RDMA_SLOTS_MAX];
  int n = ibv_poll_cq(l->cq, NL_RDMA_SLOTS_MAX, wc);
  if (n < 0) {
    snprintf(why, whylen, "ibv_poll_cq failed");
    return -1;
  }
  l->outstanding -= (uint32_t)n < l->outstanding ? (uint32_t)n : l->outstanding;
  for (int i = 0; i < n; i++) {
    if (wc[i].status != IBV_WC_SUCCESS) {
      snprintf(why, whylen, "an RDMA write completed with an error: %s",
               l->v->wc_status_str(wc[i].status));
      return -1;
    }
  }
  if (n == 0 && nl_rdma_cm_down(l->v, l->ch)) {
    l->connected = false;
    snprintf(why, whylen, "the RDMA connection went down");
    return -1;
  }
  return n;
}

void nl_rdma_force_error(nl_rdma_link *l) {
  struct ibv_qp_attr attr = {.qp_state = IBV_QPS_ERR};
  l->v->modify_qp(l->id->qp, &attr, IBV_QP_STATE);
}
