/* The RDMA path's bookkeeping, apart from any verbs so that it is tested
 * on its own (tests/unit/test_rdma.c):
 *   - the receiver's pool: `slots` buffers of one chunk each, registered
 *     once, that the sender writes chunks into;
 *   - the sender's credits: which slot holds which chunk. A slot is the
 *     sender's to write again only once the receiver answered that chunk
 *     (CHUNK_OK or CHUNK_BAD on the control connection): that answer is
 *     the credit's return, so no frame of its own is needed;
 *   - the immediate value that names the slot and the chunk of a write. */
#ifndef NODELUA_TRANSFER_RDMA_SLOTS_H
#define NODELUA_TRANSFER_RDMA_SLOTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* At most this many slots, and this much pinned memory per transfer. */
#define NL_RDMA_SLOTS_MAX 16
#define NL_RDMA_POOL_BYTES_MAX (64u * 1024 * 1024)

/* A chunk index takes the low 17 bits of the immediate (there are at most
 * 131072 chunks), the slot the bits above. */
#define NL_RDMA_IMM_CHUNK_BITS 17

/* Slots for a transfer of chunk_count chunks of chunk_size bytes: as many
 * as fit the memory bound and there are chunks, at least 1, at most
 * NL_RDMA_SLOTS_MAX. */
uint16_t nl_rdma_pool_slots(uint32_t chunk_size, uint32_t chunk_count);

uint32_t nl_rdma_imm(uint16_t slot, uint32_t chunk);
/* Decodes an immediate from the wire. False for a slot or chunk out of
 * range: the receiver then drops the queue pair. */
bool nl_rdma_imm_parse(uint32_t imm, uint16_t slots, uint32_t chunk_count,
                       uint16_t *slot, uint32_t *chunk);

#define NL_RDMA_SLOT_FREE UINT32_MAX

typedef struct {
  uint16_t count, free_count;
  uint32_t chunk_in[NL_RDMA_SLOTS_MAX]; /* NL_RDMA_SLOT_FREE or a chunk */
} nl_rdma_credits;

void nl_rdma_credits_init(nl_rdma_credits *c, uint16_t count);
/* A free slot for chunk, marked as holding it, or -1 when every slot is
 * in flight. */
int nl_rdma_credit_take(nl_rdma_credits *c, uint32_t chunk);
/* The receiver answered chunk: its slot, if one holds it, is free again.
 * Returns whether one did (a chunk that went on a TCP stream has none). */
bool nl_rdma_credit_return(nl_rdma_credits *c, uint32_t chunk);
/* The queue pair failed: every slot is free, and the chunks they held
 * (in flight, not answered) are written to out (room for count), to be
 * queued again for the TCP streams. Returns how many. */
size_t nl_rdma_credits_drain(nl_rdma_credits *c, uint32_t *out);

#endif
