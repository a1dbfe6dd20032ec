/* netdelay MS: holds every packet of netfilter queue 0 for MS milliseconds,
 * then lets it go, in order: a fixed one-way delay where the kernel has no
 * netem (sch_netem). For scripts/bench/transfer-delay.sh, run inside a
 * network namespace of the bench's own, fed by an iptables NFQUEUE rule.
 * Only packet ids and times are kept (NFQNL_COPY_META); GSO packets are
 * taken whole. A packet that finds the ring full goes at once rather than
 * being dropped. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#define RING (1u << 20)

typedef struct {
  uint32_t id;
  struct timespec due;
} held;

static held *ring;
static size_t head, count;
static long delay_ns;
static volatile sig_atomic_t stop;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg,
                     struct nfq_data *nfa, void *data) {
  (void)msg;
  (void)data;
  struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
  if (ph == NULL)
    return 0;
  uint32_t id = ntohl(ph->packet_id);
  if (count == RING)
    return nfq_set_verdict(qh, id, NF_ACCEPT, 0, NULL);
  held *h = &ring[(head + count) % RING];
  h->id = id;
  clock_gettime(CLOCK_MONOTONIC, &h->due);
  h->due.tv_nsec += delay_ns;
  h->due.tv_sec += h->due.tv_nsec / 1000000000;
  h->due.tv_nsec %= 1000000000;
  count++;
  return 0;
}

static long ns_until(const struct timespec *t) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (t->tv_sec - now.tv_sec) * 1000000000L + (t->tv_nsec - now.tv_nsec);
}

int main(int argc, char **argv) {
  long ms = argc == 2 ? strtol(argv[1], NULL, 10) : -1;
  if (ms < 0 || ms > 10000) {
    fprintf(stderr, "usage: netdelay MS (0 to 10000)\n");
    return 2;
  }
  delay_ns = ms * 1000000L;
  ring = malloc(RING * sizeof *ring);
  struct nfq_handle *h = nfq_open();
  if (ring == NULL || h == NULL) {
    perror("netdelay: nfq_open");
    return 1;
  }
  nfq_unbind_pf(h, AF_INET);
  struct nfq_q_handle *qh = NULL;
  if (nfq_bind_pf(h, AF_INET) < 0 ||
      (qh = nfq_create_queue(h, 0, on_packet, NULL)) == NULL ||
      nfq_set_mode(qh, NFQNL_COPY_META, 0) < 0) {
    perror("netdelay: queue 0");
    return 1;
  }
  nfq_set_queue_maxlen(qh, 1u << 16);
  nfq_set_queue_flags(qh, NFQA_CFG_F_GSO, NFQA_CFG_F_GSO);
  nfnl_rcvbufsiz(nfq_nfnlh(h), 64u << 20);
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  int fd = nfq_fd(h);
  char buf[65536];
  fprintf(stderr, "netdelay: holding packets %ld ms\n", ms);
  while (!stop) {
    struct timespec wait = {1, 0};
    if (count > 0) {
      long ns = ns_until(&ring[head].due);
      wait.tv_sec = ns > 0 ? ns / 1000000000L : 0;
      wait.tv_nsec = ns > 0 ? ns % 1000000000L : 0;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (ppoll(&p, 1, &wait, NULL) > 0) {
      ssize_t n;
      while ((n = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
        nfq_handle_packet(h, buf, (int)n);
      if (n < 0 && errno == ENOBUFS)
        fprintf(stderr, "netdelay: the kernel dropped queue messages\n");
    }
    while (count > 0 && ns_until(&ring[head].due) <= 0) {
      nfq_set_verdict(qh, ring[head].id, NF_ACCEPT, 0, NULL);
      head = (head + 1) % RING;
      count--;
    }
  }
  nfq_destroy_queue(qh);
  nfq_close(h);
  free(ring);
  return 0;
}
