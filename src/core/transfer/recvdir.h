/* The receive folder (TRANSFER_DIR) as the receiver holds it: two open
 * directory fds, the folder and its staging folder ".nodelua-partial",
 * checked once when they are opened and used for every file operation
 * after that (openat, renameat, unlinkat with O_NOFOLLOW), so that nothing
 * another user does to the paths later can redirect a write. It also keeps
 * the space that sessions in progress have claimed, so that two offers
 * cannot both be told the same free bytes, and sweeps partial transfers
 * that nobody came back for. */
#ifndef NODELUA_TRANSFER_RECVDIR_H
#define NODELUA_TRANSFER_RECVDIR_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "frame.h"

#define NL_RECV_PARTIAL_DIR NL_FRAME_RESERVED_NAME

typedef struct {
  int dir_fd, partial_fd;
  char path[4096];
  pthread_mutex_t lock; /* reserved and last_sweep */
  uint64_t reserved;    /* bytes claimed by sessions still writing */
  time_t last_sweep;
  /* Age after which a partial transfer is abandoned (0: 7 days). */
  uint64_t partial_ttl_seconds;
} nl_recv_dir;

/* Makes path (missing parents and the folder itself mode 0700) and its
 * staging folder, then opens both. Refuses, with one line in err naming
 * the folder and the reason, a folder (or staging folder) that is a
 * symlink, not a directory, not owned by this process's effective uid, or
 * writable by group or others. Returns 0 or -1. */
int nl_recv_dir_open(nl_recv_dir *d, const char *path, char *err,
                     size_t errlen);
void nl_recv_dir_close(nl_recv_dir *d);

/* Checks an open directory fd as nl_recv_dir_open does; what names it in
 * the message. Returns 0, or -1 with the reason in err. */
int nl_recv_dir_check_fd(int fd, const char *what, char *err, size_t errlen);

/* Claims bytes of the folder's free space for a session. Returns 0, or -1
 * when the free space less what other sessions claimed is short (free_out
 * then says how much was left to claim). */
int nl_recv_dir_reserve(nl_recv_dir *d, uint64_t bytes, uint64_t *free_out);
/* Gives back bytes claimed (as they are written, or when a session ends). */
void nl_recv_dir_release(nl_recv_dir *d, uint64_t bytes);
uint64_t nl_recv_dir_reserved(nl_recv_dir *d);

/* Removes the staging files (.part and .journal) whose last change is
 * older than ttl_seconds before now and whose journal no session holds.
 * Returns how many files went. */
int nl_recv_dir_sweep(nl_recv_dir *d, uint64_t ttl_seconds, time_t now);

/* Sweeps, with the folder's TTL, if the last sweep was a day or more ago
 * (or never). Returns what nl_recv_dir_sweep did, or 0. */
int nl_recv_dir_sweep_if_due(nl_recv_dir *d);

#endif
