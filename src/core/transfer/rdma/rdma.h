/* RDMA for the transfer core (docs/protocol.md, "RDMA"): what the rest of
 * the core calls, built either way. With NODELUA_RDMA off, off.c answers
 * that this build has none and no RDMA code is linked; with it on, the
 * files of this folder:
 *   verbs.c      rdma-core's libraries, loaded on first use;
 *   detect.c     which devices are usable;
 *   slots.c      the receiver's buffer pool and the sender's credits (pure);
 *   link.c       the sender's queue pair: connect, WRITE with immediate;
 *   link_recv.c  the receiver's: listen, accept the session's sender only,
 *                hand on each chunk from its buffer.
 * The transfer core's threads that use them are ../rdma_send.c and
 * ../rdma_serve.c. */
#ifndef NODELUA_TRANSFER_RDMA_H
#define NODELUA_TRANSFER_RDMA_H

#include <stdbool.h>
#include <stddef.h>

/* TRANSFER_RDMA: the values of nl_transfer_config.rdma. */
typedef enum {
  NL_RDMA_AUTO = 0,     /* where both ends can, else TCP streams */
  NL_RDMA_OFF = 1,      /* never */
  NL_RDMA_REQUIRED = 2, /* a send fails when RDMA cannot be set up */
} nl_rdma_mode;

/* Whether this build has RDMA (NODELUA_RDMA). */
bool nl_rdma_built(void);

typedef struct {
  int usable;     /* devices with an active port and a GID on a peer path */
  char list[256]; /* "rxe0 port 1 (eth0), ..." */
  char why[256];  /* when none: why */
} nl_rdma_caps;

/* Lists this host's usable RDMA devices: each needs an active port with a
 * GID on an interface that a peer path can use (up, not loopback, with an
 * address). A device with none (an Azure MANA NIC, a port down) is not
 * counted. Loads rdma-core only when /sys/class/infiniband lists a device.
 * Returns out->usable. */
int nl_rdma_detect(nl_rdma_caps *out);

#endif
