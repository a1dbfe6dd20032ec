/* Linux: the network collectors of a scrape, as node_exporter's: netdev
 * (from the snapshot's netlink dump, as node_exporter's default), netclass
 * (the same dump, and sysfs for the five attributes netlink lacks: the
 * values sysfs shows, for the devices of the agent's network namespace),
 * netstat (netstat, snmp, snmp6 with node_exporter's default field
 * filter), sockstat, softnet, arp, udp_queues and tcpstat (sock_diag). */
#include "metrics_linux.h"
#include "procfs.h"
#include "promtext.h"

#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* linux/if.h has it, but clashes with net/if.h. */
#ifndef IFF_DORMANT
#define IFF_DORMANT 0x20000
#endif

/* ---- netdev ---- */

bool nl_export_netdev(nl_metrics *m, nl_buf *out) {
  static const char *const names[17] = {
      "receive_bytes",       "receive_packets",   "receive_errs",
      "receive_drop",        "receive_fifo",      "receive_frame",
      "receive_compressed",  "receive_multicast", "transmit_bytes",
      "transmit_packets",    "transmit_errs",     "transmit_drop",
      "transmit_fifo",       "transmit_colls",    "transmit_carrier",
      "transmit_compressed", "receive_nohandler"};
  const nl_network_sample *net = &m->snap.network;
  if (!(m->snap.present & NL_METRICS_NETWORK))
    return false;
  for (int c = 0; c < 17; c++) {
    char family[64], help[80];
    nl_prom_concat(family, sizeof family, "node_network_", names[c], "_total",
                   NULL);
    nl_prom_concat(help, sizeof help, "Network device statistic ", names[c],
                   ".", NULL);
    nl_prom_family(out, family, "counter", help);
    for (size_t i = 0; i < net->count; i++) {
      const char *labels[] = {"device", net->ifs[i].name, NULL};
      nl_prom_u64(out, family, labels, net->ifs[i].netdev[c]);
    }
  }
  return true;
}

/* ---- netclass ---- */

/* What sysfs has and netlink does not: read per device under HOST_SYS
 * (decimal, or hexadecimal with 0x: dev_id, flags). An attribute the
 * kernel refuses (a down link's duplex) is absent. */
static bool sysfs_attr(nl_metrics *m, const char *dev, const char *attr,
                       double *out) {
  long long v;
  if (nl_linux_read_int64(
          nl_linux_path(m, NL_HOST_SYS, "/class/net/%s/%s", dev, attr), &v) !=
      0)
    return false;
  *out = (double)v;
  return true;
}

static const char *operstate_name(int state) {
  static const char *const names[] = {
      "unknown", "notpresent", "down", "lowerlayerdown",
      "testing", "dormant",    "up"};
  return state >= 0 && state <= 6 ? names[state] : "unknown";
}

/* The value of one netclass family for one device, as node_exporter reads
 * it from sysfs; false when sysfs would refuse it. */
static bool link_value(nl_metrics *m, const nl_netif *nif, int which,
                       double *v) {
  const bool running = (nif->link.flags & IFF_UP) != 0;
  switch (which) {
  case 0:
    return sysfs_attr(m, nif->name, "addr_assign_type", v);
  case 1: /* sysfs refuses carrier and dormant while the link is down */
    *v = nif->link.carrier;
    return running && nif->link.carrier >= 0;
  case 2:
    *v = (double)nif->link.carrier_changes;
    return nif->link.carrier_changes >= 0;
  case 3:
    *v = (double)nif->link.carrier_down;
    return nif->link.carrier_down >= 0;
  case 4:
    *v = (double)nif->link.carrier_up;
    return nif->link.carrier_up >= 0;
  case 5:
    return sysfs_attr(m, nif->name, "dev_id", v);
  case 6:
    *v = (nif->link.flags & IFF_DORMANT) ? 1 : 0;
    return running;
  case 7: /* dev->flags, which netlink reports changed */
    return sysfs_attr(m, nif->name, "flags", v);
  case 8:
    *v = nif->ifindex;
    return true;
  case 9:
    *v = nif->link.iflink;
    return true;
  case 10:
    *v = nif->link.link_mode;
    return true;
  case 11:
    *v = nif->mtu;
    return true;
  case 12:
    return sysfs_attr(m, nif->name, "name_assign_type", v);
  case 13:
    *v = nif->link.group;
    return true;
  case 14:
    *v = nif->link.type;
    return true;
  case 15: /* Mbit/s to bytes/s; -1 (unknown) stays negative */
    *v = (double)nif->link.speed_raw * 125000;
    return nif->link.speed_raw != INT64_MIN;
  default:
    *v = nif->link.txqlen;
    return true;
  }
}

bool nl_export_netclass(nl_metrics *m, nl_buf *out) {
  static const struct {
    const char *name, *type;
  } families[17] = {
      {"address_assign_type", "gauge"},
      {"carrier", "gauge"},
      {"carrier_changes_total", "counter"},
      {"carrier_down_changes_total", "counter"},
      {"carrier_up_changes_total", "counter"},
      {"device_id", "gauge"},
      {"dormant", "gauge"},
      {"flags", "gauge"},
      {"iface_id", "gauge"},
      {"iface_link", "gauge"},
      {"iface_link_mode", "gauge"},
      {"mtu_bytes", "gauge"},
      {"name_assign_type", "gauge"},
      {"net_dev_group", "gauge"},
      {"protocol_type", "gauge"},
      {"speed_bytes", "gauge"},
      {"transmit_queue_length", "gauge"},
  };
  const nl_network_sample *net = &m->snap.network;
  if (!(m->snap.present & NL_METRICS_NETWORK))
    return false;
  nl_prom_family(out, "node_network_info", "gauge",
                 "Non-numeric data from /sys/class/net/<iface>, value is "
                 "always 1.");
  for (size_t i = 0; i < net->count; i++) {
    const nl_netif *nif = &net->ifs[i];
    char duplex[16] = "";
    if (nl_linux_read_small(
            nl_linux_path(m, NL_HOST_SYS, "/class/net/%s/duplex", nif->name),
            duplex, sizeof duplex) < 0)
      duplex[0] = '\0';
    const char *labels[] = {"address",   nif->link.address,
                            "broadcast", nif->link.broadcast,
                            "device",    nif->name,
                            "duplex",    duplex,
                            "ifalias",   nif->link.ifalias,
                            "operstate", operstate_name(nif->link.operstate),
                            NULL};
    nl_prom_u64(out, "node_network_info", labels, 1);
  }
  for (int f = 0; f < 17; f++) {
    char family[64], help[80];
    nl_prom_concat(family, sizeof family, "node_network_", families[f].name,
                   NULL);
    nl_prom_concat(help, sizeof help,
                   "Network device property: ", families[f].name, NULL);
    bool opened = false;
    for (size_t i = 0; i < net->count; i++) {
      double v;
      if (!link_value(m, &net->ifs[i], f, &v))
        continue;
      if (!opened)
        nl_prom_family(out, family, families[f].type, help);
      opened = true;
      const char *labels[] = {"device", net->ifs[i].name, NULL};
      nl_prom_double(out, family, labels, v);
    }
  }
  /* Up is operstate "up", exactly: lo's "unknown" is 0. */
  nl_prom_family(out, "node_network_up", "gauge",
                 "Value is 1 if operstate is 'up', 0 otherwise.");
  for (size_t i = 0; i < net->count; i++) {
    const char *labels[] = {"device", net->ifs[i].name, NULL};
    nl_prom_u64(out, "node_network_up", labels,
                net->ifs[i].link.operstate == 6 ? 1 : 0);
  }
  return true;
}

/* ---- netstat ---- */

static bool any_of(const char *s, const char *const *list, size_t n,
                   bool prefix) {
  for (size_t i = 0; i < n; i++) {
    if (prefix ? strncmp(s, list[i], strlen(list[i])) == 0
               : strcmp(s, list[i]) == 0)
      return true;
  }
  return false;
}

/* node_exporter's default --collector.netstat.fields:
 * ^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|
 * Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|
 * TCPTimeouts)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|
 * RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|
 * RcvbufErrors|SndbufErrors))$ */
static bool netstat_wanted(const char *group, const char *field) {
  static const char *const octets[] = {"InOctets", "OutOctets"};
  static const char *const msgs[] = {"InMsgs", "OutMsgs"};
  static const char *const tcpext_prefix[] = {"Listen", "Syncookies"};
  static const char *const tcpext[] = {"TCPSynRetrans", "TCPTimeouts"};
  static const char *const tcp[] = {
      "ActiveOpens",  "InSegs",      "OutSegs",  "OutRsts",
      "PassiveOpens", "RetransSegs", "CurrEstab"};
  static const char *const udp[] = {"InDatagrams", "OutDatagrams", "NoPorts",
                                    "RcvbufErrors", "SndbufErrors"};
  if (strcmp(field, "InErrors") == 0 || strcmp(field, "InErrs") == 0)
    return true;
  if (strcmp(group, "Ip") == 0)
    return strcmp(field, "Forwarding") == 0;
  if (strcmp(group, "Ip6") == 0 || strcmp(group, "IpExt") == 0)
    return any_of(field, octets, 2, false);
  if (strcmp(group, "Icmp") == 0 || strcmp(group, "Icmp6") == 0)
    return any_of(field, msgs, 2, false);
  if (strcmp(group, "TcpExt") == 0)
    return any_of(field, tcpext_prefix, 2, true) ||
           any_of(field, tcpext, 2, false);
  if (strcmp(group, "Tcp") == 0)
    return any_of(field, tcp, 7, false);
  if (strcmp(group, "Udp") == 0 || strcmp(group, "Udp6") == 0)
    return any_of(field, udp, 5, false);
  return false;
}

static void take_netstat(void *ud, const char *group, const char *field,
                         double value) {
  if (!netstat_wanted(group, field))
    return;
  char family[160], help[200];
  nl_prom_concat(family, sizeof family, "node_netstat_", group, "_", field,
                 NULL);
  nl_prom_concat(help, sizeof help, "Statistic ", group, field, ".", NULL);
  nl_prom_family(ud, family, "untyped", help);
  nl_prom_double(ud, family, NULL, value);
}

/* snmp6 names its lines "Ip6InOctets": the group ends at the first 6. */
static void take_snmp6(void *ud, const char *name, double value, bool kb) {
  (void)kb;
  const char *six = strchr(name, '6');
  if (six == NULL || six[1] == '\0' || (size_t)(six - name) >= 32)
    return;
  char group[32];
  memcpy(group, name, (size_t)(six - name) + 1);
  group[six - name + 1] = '\0';
  take_netstat(ud, group, six + 1, value);
}

bool nl_export_netstat(nl_metrics *m, nl_buf *out) {
  bool any = false;
  if (nl_linux_read_proc(m, "/net/netstat")) {
    nl_procfs_header_pairs(m->os->buf, take_netstat, out);
    any = true;
  }
  if (nl_linux_read_proc(m, "/net/snmp")) {
    nl_procfs_header_pairs(m->os->buf, take_netstat, out);
    any = true;
  }
  if (nl_linux_read_proc(m, "/net/snmp6"))
    nl_procfs_keyvalues(m->os->buf, take_snmp6, out);
  return any;
}

/* ---- sockstat ---- */

static void take_sockstat(void *ud, const char *group, const char *field,
                          double value) {
  nl_metrics *m = ((void **)ud)[0];
  nl_buf *out = ((void **)ud)[1];
  char family[160], help[200];
  nl_prom_concat(family, sizeof family, "node_sockstat_", group, "_", field,
                 NULL);
  nl_prom_concat(help, sizeof help, "Number of ", group, " sockets in state ",
                 field, ".", NULL);
  nl_prom_gauge(out, family, help, value);
  /* mem is in pages; node_exporter adds it in bytes. */
  if (strcmp(field, "mem") == 0) {
    nl_prom_concat(family, sizeof family, "node_sockstat_", group, "_mem_bytes",
                   NULL);
    nl_prom_gauge(out, family, help, value * (double)m->os->page_size);
  }
}

bool nl_export_sockstat(nl_metrics *m, nl_buf *out) {
  void *ud[2] = {m, out};
  if (!nl_linux_read_proc(m, "/net/sockstat"))
    return false;
  nl_procfs_sockstat(m->os->buf, take_sockstat, ud);
  if (nl_linux_read_proc(m, "/net/sockstat6"))
    nl_procfs_sockstat(m->os->buf, take_sockstat, ud);
  return true;
}

/* ---- softnet ---- */

static int take_softnet(void *ud, int cpu, const unsigned long long *v) {
  nl_row_fill *f = ud;
  nl_row *row = nl_linux_add_cpu_row(f->m->os, &f->count, cpu);
  if (row == NULL)
    return -ENOMEM;
  for (int i = 0; i < NL_SOFTNET_FIELDS; i++)
    row->v[i] = (double)v[i];
  return 0;
}

bool nl_export_softnet(nl_metrics *m, nl_buf *out) {
  static const char *const names[NL_SOFTNET_FIELDS] = {
      "node_softnet_processed_total", "node_softnet_dropped_total",
      "node_softnet_times_squeezed_total", "node_softnet_received_rps_total",
      "node_softnet_flow_limit_count_total"};
  static const char *const helps[NL_SOFTNET_FIELDS] = {
      "Number of processed packets", "Number of dropped packets",
      "Number of times processing packets ran out of quota",
      "Number of times cpu woken up received_rps",
      "Number of times flow limit has been reached"};
  nl_row_fill f = {m, 0};
  if (!nl_linux_read_proc(m, "/net/softnet_stat") ||
      nl_procfs_softnet(m->os->buf, take_softnet, &f) != 0 || f.count == 0)
    return false;
  for (int k = 0; k < NL_SOFTNET_FIELDS; k++) {
    nl_prom_family(out, names[k], "counter", helps[k]);
    for (size_t i = 0; i < f.count; i++) {
      const char *labels[] = {"cpu", m->os->rows[i].name, NULL};
      nl_prom_double(out, names[k], labels, m->os->rows[i].v[k]);
    }
  }
  return true;
}

/* ---- arp ---- */

static int take_arp(void *ud, const char *device) {
  nl_row_fill *f = ud;
  nl_metrics_os *os = f->m->os;
  for (size_t i = 0; i < f->count; i++) {
    if (strcmp(os->rows[i].name, device) == 0) {
      os->rows[i].v[0]++;
      return 0;
    }
  }
  nl_row *row = nl_linux_add_row(os, &f->count, device);
  if (row == NULL)
    return -ENOMEM;
  row->v[0] = 1;
  return 0;
}

bool nl_export_arp(nl_metrics *m, nl_buf *out) {
  nl_row_fill f = {m, 0};
  if (!nl_linux_read_proc(m, "/net/arp") ||
      nl_procfs_arp(m->os->buf, take_arp, &f) != 0)
    return false;
  if (f.count == 0)
    return true;
  nl_prom_family(out, "node_arp_entries", "gauge", "ARP entries by device");
  for (size_t i = 0; i < f.count; i++) {
    const char *labels[] = {"device", m->os->rows[i].name, NULL};
    nl_prom_double(out, "node_arp_entries", labels, m->os->rows[i].v[0]);
  }
  return true;
}

/* ---- udp_queues ---- */

bool nl_export_udp_queues(nl_metrics *m, nl_buf *out) {
  double tx4, rx4, tx6, rx6;
  if (!nl_linux_read_proc(m, "/net/udp") ||
      nl_procfs_udp_queues(m->os->buf, &tx4, &rx4) != 0)
    return false;
  bool v6 = nl_linux_read_proc(m, "/net/udp6") &&
            nl_procfs_udp_queues(m->os->buf, &tx6, &rx6) == 0;
  nl_prom_family(out, "node_udp_queues", "gauge",
                 "Number of allocated memory in the kernel for UDP datagrams "
                 "in bytes.");
  const char *v4rx[] = {"ip", "v4", "queue", "rx", NULL};
  const char *v4tx[] = {"ip", "v4", "queue", "tx", NULL};
  nl_prom_double(out, "node_udp_queues", v4rx, rx4);
  nl_prom_double(out, "node_udp_queues", v4tx, tx4);
  if (v6) {
    const char *v6rx[] = {"ip", "v6", "queue", "rx", NULL};
    const char *v6tx[] = {"ip", "v6", "queue", "tx", NULL};
    nl_prom_double(out, "node_udp_queues", v6rx, rx6);
    nl_prom_double(out, "node_udp_queues", v6tx, tx6);
  }
  return true;
}

/* ---- tcpstat: a sock_diag dump of every TCP socket, counted by state ---- */

#define TCP_STATES 12 /* TCP_ESTABLISHED (1) .. TCP_CLOSING (11) */

static void count_state(void *ud, struct nlmsghdr *h) {
  double *counts = ud;
  if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
    return;
  const struct inet_diag_msg *msg = NLMSG_DATA(h);
  if (msg->idiag_state < TCP_STATES)
    counts[msg->idiag_state]++;
  /* node_exporter sums the queues as two more "states". */
  counts[TCP_STATES] += msg->idiag_rqueue;
  counts[TCP_STATES + 1] += msg->idiag_wqueue;
}

static int tcp_dump(nl_metrics_os *os, int fd, int family, double *counts) {
  struct {
    struct nlmsghdr h;
    struct inet_diag_req_v2 r;
  } req;
  memset(&req, 0, sizeof req);
  req.h.nlmsg_len = sizeof req;
  req.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  req.r.sdiag_family = (unsigned char)family;
  req.r.sdiag_protocol = IPPROTO_TCP;
  req.r.idiag_states = ~0u;
  return nl_linux_netlink_dump(os, fd, &req.h, count_state, counts);
}

bool nl_export_tcpstat(nl_metrics *m, nl_buf *out) {
  static const char *const states[TCP_STATES + 2] = {NULL,
                                                     "established",
                                                     "syn_sent",
                                                     "syn_recv",
                                                     "fin_wait1",
                                                     "fin_wait2",
                                                     "time_wait",
                                                     "close",
                                                     "close_wait",
                                                     "last_ack",
                                                     "listen",
                                                     "closing",
                                                     "rx_queued_bytes",
                                                     "tx_queued_bytes"};
  double counts[TCP_STATES + 2] = {0};
  int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0)
    return false;
  bool ok = tcp_dump(m->os, fd, AF_INET, counts) == 0;
  /* Without IPv6 the second dump fails; the IPv4 counts still stand. */
  tcp_dump(m->os, fd, AF_INET6, counts);
  close(fd);
  if (!ok)
    return false;
  nl_prom_family(out, "node_tcp_connection_states", "gauge",
                 "Number of connection states.");
  for (int s = 1; s < TCP_STATES + 2; s++) {
    const char *labels[] = {"state", states[s], NULL};
    nl_prom_double(out, "node_tcp_connection_states", labels, counts[s]);
  }
  return true;
}
