/* An RDMA connection of one transfer: a reliable-connected queue pair set
 * up through rdma_cm. The sender writes chunks with RDMA WRITE with
 * immediate into the receiver's registered pool; the immediate names the
 * slot and the chunk (slots.h). The connection is bound to the transfer's
 * authenticated session: its private data is a MAC under the control
 * connection's key over both sides' nonces, and the receiver rejects any
 * other. Declared either way; with NODELUA_RDMA off, off.c's versions fail
 * with "this build has no RDMA". Blocking, for the transfer's threads. */
#ifndef NODELUA_TRANSFER_RDMA_LINK_H
#define NODELUA_TRANSFER_RDMA_LINK_H

#include "core/transfer/frame.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define NL_RDMA_PRIVATE_SIZE 32

typedef struct nl_rdma_link nl_rdma_link;

/* Sender: connects to the receiver at peer (its address on the control
 * connection; the port from the answer), within timeout_ms for each step,
 * and registers one buffer per slot. NULL with why. */
nl_rdma_link *nl_rdma_connect(const struct sockaddr *peer,
                              const nl_frame_rdma_answer *answer,
                              const uint8_t private_data[NL_RDMA_PRIVATE_SIZE],
                              int timeout_ms, char *why, size_t whylen);
/* The sender's registered buffer of a slot: the chunk goes there first. */
uint8_t *nl_rdma_slot_buffer(nl_rdma_link *l, int slot);
/* Posts the write of len bytes of that buffer into the receiver's slot,
 * with the immediate that names slot and chunk, after reaping completions
 * (and waiting for one while the send queue is full). 0, or -1 with why
 * (a completion failed, or the connection went down: fall back). */
int nl_rdma_post_write(nl_rdma_link *l, int slot, uint32_t chunk, uint32_t len,
                       char *why, size_t whylen);
/* Reaps the sender's completions without waiting. Returns how many
 * writes completed, or -1 with why when one failed or the connection
 * went down (the queue pair is then in error: fall back). */
int nl_rdma_poll_writes(nl_rdma_link *l, char *why, size_t whylen);
/* For tests: moves the queue pair to the error state, as a failing link
 * would; the writes in flight then complete with an error. */
void nl_rdma_force_error(nl_rdma_link *l);
void nl_rdma_close(nl_rdma_link *l);

/* Receiver: a listener on local (the control connection's own address)
 * and a registered pool of slots buffers of slot_size bytes; fills the
 * answer's port, slots, slot size, address and key. NULL with why: no
 * RDMA device serves that address, or the pool cannot be registered. */
typedef struct nl_rdma_listener nl_rdma_listener;
nl_rdma_listener *nl_rdma_listen(const struct sockaddr *local, uint16_t slots,
                                 uint32_t slot_size,
                                 nl_frame_rdma_answer *answer, char *why,
                                 size_t whylen);

/* What the receiver does with a chunk that arrived whole in its slot
 * (data, len bytes). Returns 0, or -1 to drop the connection. */
typedef int (*nl_rdma_chunk_fn)(void *ud, uint32_t chunk, const uint8_t *data,
                                uint32_t len);

/* Receiver: waits up to timeout_ms for the sender's connect request whose
 * private data is expected (others are rejected), accepts it, then hands
 * each chunk written to on_chunk until the connection ends, *stop turns
 * true, or a completion fails. Returns 0 when the sender disconnected,
 * -1 with why otherwise. Frees the listener. */
int nl_rdma_serve(nl_rdma_listener *ln,
                  const uint8_t expected[NL_RDMA_PRIVATE_SIZE], int timeout_ms,
                  uint32_t chunk_count, nl_rdma_chunk_fn on_chunk, void *ud,
                  const atomic_bool *stop, char *why, size_t whylen);
void nl_rdma_listener_free(nl_rdma_listener *ln);

#endif
