/* The receiving side inside the agent: framed connections handed over by
 * the listener on TRANSFER_PORT (see nl_port_on_framed) are each
 * served on a detached thread of their own. Until a connection has proved
 * the cluster key (5 s at the most) it is in a small pool of its own,
 * NL_RECEIVER_PREAUTH_MAX in all and NL_RECEIVER_PREAUTH_PER_SOURCE per
 * source address; then it takes one of NL_RECEIVER_THREADS_MAX
 * authenticated slots. Connections past either bound are closed at once
 * (logged at most once a minute per source): strangers cannot hold the
 * slots that transfers need. */
#ifndef NODELUA_TRANSFER_RECEIVER_H
#define NODELUA_TRANSFER_RECEIVER_H

#include "transfer.h"

#define NL_RECEIVER_THREADS_MAX 64
#define NL_RECEIVER_PREAUTH_MAX 16
#define NL_RECEIVER_PREAUTH_PER_SOURCE 4

typedef struct nl_receiver nl_receiver;

/* Copies cfg (key and strings too), and makes, checks and opens the
 * receive folder dir (nl_recv_dir_open: mode 0700, refused if another user
 * could write it or it is a symlink), then sweeps its partial transfers
 * older than partial_ttl_seconds, at once and daily. Returns NULL with one
 * line in err. The receiver lives as long as the process: threads may
 * outlive any owner. */
nl_receiver *nl_receiver_new(const nl_transfer_config *cfg, const char *dir,
                             uint64_t partial_ttl_seconds, char *err,
                             size_t errlen);

/* An nl_port_framed_cb: takes over fd and serves it on a thread. */
void nl_receiver_accept(void *receiver, int fd, const uint8_t *read,
                        size_t len);

/* Waits until no receiver has a serving thread left, or timeout_ms has
 * passed: for a clean shutdown, once the port no longer hands over
 * connections. Returns the threads still running (0: all ended). A
 * transfer cut here resumes from its journal when sent again. */
int nl_receivers_wait_idle(int timeout_ms);

/* Authenticated connections being served right now. */
int nl_receiver_active(const nl_receiver *r);
/* Connections still to authenticate. */
int nl_receiver_preauth(const nl_receiver *r);

#endif
