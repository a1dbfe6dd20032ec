/* Which RDMA devices this host can use for transfers (see rdma.h). */
#include "rdma.h"
#include "verbs.h"

#include <dirent.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>

#define SYSFS_RDMA "/sys/class/infiniband"
#define MAX_PATH_IFS 64
#define GID_SCAN_MAX 128

bool nl_rdma_built(void) { return true; }

/* The interfaces a peer path can use: up, not loopback, with an IPv4 or
 * IPv6 address (discovery's rule for the addresses it offers). */
static int path_interfaces(unsigned out[MAX_PATH_IFS]) {
  struct ifaddrs *all = NULL;
  if (getifaddrs(&all) != 0)
    return 0;
  int n = 0;
  for (struct ifaddrs *a = all; a != NULL; a = a->ifa_next) {
    if (a->ifa_addr == NULL || !(a->ifa_flags & IFF_UP) ||
        (a->ifa_flags & IFF_LOOPBACK) ||
        (a->ifa_addr->sa_family != AF_INET &&
         a->ifa_addr->sa_family != AF_INET6))
      continue;
    unsigned index = if_nametoindex(a->ifa_name);
    bool seen = index == 0;
    for (int i = 0; i < n && !seen; i++)
      seen = out[i] == index;
    if (!seen && n < MAX_PATH_IFS)
      out[n++] = index;
  }
  freeifaddrs(all);
  return n;
}

static bool on_path(unsigned index, const unsigned *ifs, int n) {
  for (int i = 0; i < n; i++)
    if (ifs[i] == index)
      return true;
  return false;
}

/* InfiniBand GIDs name no netdev: the device's IPoIB interfaces do. */
static unsigned ipoib_interface(const char *dev, const unsigned *ifs, int n) {
  char path[300];
  snprintf(path, sizeof path, SYSFS_RDMA "/%s/device/net", dev);
  DIR *d = opendir(path);
  if (d == NULL)
    return 0;
  unsigned found = 0;
  for (struct dirent *e; found == 0 && (e = readdir(d)) != NULL;) {
    unsigned index = e->d_name[0] == '.' ? 0 : if_nametoindex(e->d_name);
    if (index != 0 && on_path(index, ifs, n))
      found = index;
  }
  closedir(d);
  return found;
}

static bool gid_is_zero(const union ibv_gid *g) {
  for (size_t i = 0; i < sizeof g->raw; i++)
    if (g->raw[i] != 0)
      return false;
  return true;
}

/* The interface of the port's first GID on a peer path, or 0. */
static unsigned port_path(const nl_verbs *v, struct ibv_context *ctx,
                          const char *dev, uint8_t port,
                          const struct ibv_port_attr *pa, const unsigned *ifs,
                          int n) {
  if (pa->link_layer == IBV_LINK_LAYER_INFINIBAND)
    return ipoib_interface(dev, ifs, n);
  int len = pa->gid_tbl_len < GID_SCAN_MAX ? pa->gid_tbl_len : GID_SCAN_MAX;
  for (int i = 0; i < len; i++) {
    struct ibv_gid_entry entry;
    if (v->query_gid_ex(ctx, port, (uint32_t)i, &entry, 0, sizeof entry) != 0)
      continue;
    if (!gid_is_zero(&entry.gid) && entry.ndev_ifindex != 0 &&
        on_path(entry.ndev_ifindex, ifs, n))
      return entry.ndev_ifindex;
  }
  return 0;
}

static void append(char *list, size_t cap, const char *dev, int port,
                   unsigned ifindex) {
  char name[IF_NAMESIZE] = "?";
  if_indextoname(ifindex, name);
  size_t len = strlen(list);
  snprintf(list + len, cap - len, "%s%s port %d (%s)", len ? ", " : "", dev,
           port, name);
}

static bool sysfs_lists_a_device(void) {
  DIR *d = opendir(SYSFS_RDMA);
  if (d == NULL)
    return false;
  bool any = false;
  for (struct dirent *e; !any && (e = readdir(d)) != NULL;)
    any = e->d_name[0] != '.';
  closedir(d);
  return any;
}

int nl_rdma_detect(nl_rdma_caps *out) {
  memset(out, 0, sizeof *out);
  /* Nothing is loaded on the (usual) host without a device. */
  if (!sysfs_lists_a_device()) {
    snprintf(out->why, sizeof out->why,
             "no RDMA device (" SYSFS_RDMA " lists none)");
    return 0;
  }
  const nl_verbs *v = nl_verbs_load(out->why, sizeof out->why);
  if (v == NULL)
    return 0;
  int count = 0;
  struct ibv_device **devs = v->get_device_list(&count);
  if (devs == NULL || count == 0) {
    snprintf(out->why, sizeof out->why,
             "no RDMA device (ibv_get_device_list lists none)");
    if (devs != NULL)
      v->free_device_list(devs);
    return 0;
  }
  unsigned ifs[MAX_PATH_IFS];
  int n = path_interfaces(ifs);
  char seen[200] = "";
  for (int d = 0; d < count; d++) {
    const char *name = v->get_device_name(devs[d]);
    size_t len = strlen(seen);
    snprintf(seen + len, sizeof seen - len, "%s%s", len ? ", " : "", name);
    struct ibv_context *ctx = v->open_device(devs[d]);
    struct ibv_device_attr da;
    if (ctx == NULL || v->query_device(ctx, &da) != 0) {
      if (ctx != NULL)
        v->close_device(ctx);
      continue;
    }
    bool counted = false;
    for (int port = 1; port <= da.phys_port_cnt; port++) {
      struct ibv_port_attr pa;
      if (nl_verbs_query_port(v, ctx, (uint8_t)port, &pa) != 0 ||
          pa.state != IBV_PORT_ACTIVE)
        continue;
      unsigned ifindex = port_path(v, ctx, name, (uint8_t)port, &pa, ifs, n);
      if (ifindex == 0)
        continue;
      append(out->list, sizeof out->list, name, port, ifindex);
      counted = true;
    }
    out->usable += counted;
    v->close_device(ctx);
  }
  v->free_device_list(devs);
  if (out->usable == 0)
    snprintf(out->why, sizeof out->why,
             "no usable RDMA device: %.150s %s no active port with a GID on "
             "an interface a peer path uses",
             seen, count == 1 ? "has" : "have");
  return out->usable;
}
