/* The receiving side inside the agent: framed connections handed over by
 * the listener on TRANSFER_PORT (see nl_probe_server_on_framed) are each
 * served on a detached thread of their own, at most
 * NL_RECEIVER_THREADS_MAX at a time (more are closed at once: a flood of
 * connections cannot exhaust the process). */
#ifndef NODELUA_TRANSFER_RECEIVER_H
#define NODELUA_TRANSFER_RECEIVER_H

#include "transfer.h"

#define NL_RECEIVER_THREADS_MAX 64

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

/* An nl_probe_framed_cb: takes over fd and serves it on a thread. */
void nl_receiver_accept(void *receiver, int fd, const uint8_t *read,
                        size_t len);

/* Connections being served right now. */
int nl_receiver_active(const nl_receiver *r);

#endif
