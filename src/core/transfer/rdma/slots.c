/* The RDMA path's pure bookkeeping (see slots.h). */
#include "slots.h"

uint16_t nl_rdma_pool_slots(uint32_t chunk_size, uint32_t chunk_count) {
  uint32_t n = chunk_size ? NL_RDMA_POOL_BYTES_MAX / chunk_size : 1;
  if (n > NL_RDMA_SLOTS_MAX)
    n = NL_RDMA_SLOTS_MAX;
  if (n > chunk_count)
    n = chunk_count;
  return (uint16_t)(n ? n : 1);
}

uint32_t nl_rdma_imm(uint16_t slot, uint32_t chunk) {
  return (uint32_t)slot << NL_RDMA_IMM_CHUNK_BITS |
         (chunk & ((1u << NL_RDMA_IMM_CHUNK_BITS) - 1));
}

bool nl_rdma_imm_parse(uint32_t imm, uint16_t slots, uint32_t chunk_count,
                       uint16_t *slot, uint32_t *chunk) {
  uint32_t s = imm >> NL_RDMA_IMM_CHUNK_BITS;
  uint32_t c = imm & ((1u << NL_RDMA_IMM_CHUNK_BITS) - 1);
  if (s >= slots || c >= chunk_count)
    return false;
  *slot = (uint16_t)s;
  *chunk = c;
  return true;
}

void nl_rdma_credits_init(nl_rdma_credits *c, uint16_t count) {
  if (count > NL_RDMA_SLOTS_MAX)
    count = NL_RDMA_SLOTS_MAX;
  c->count = c->free_count = count;
  for (int i = 0; i < NL_RDMA_SLOTS_MAX; i++)
    c->chunk_in[i] = NL_RDMA_SLOT_FREE;
}

int nl_rdma_credit_take(nl_rdma_credits *c, uint32_t chunk) {
  if (c->free_count == 0 || chunk == NL_RDMA_SLOT_FREE)
    return -1;
  for (int i = 0; i < c->count; i++) {
    if (c->chunk_in[i] == NL_RDMA_SLOT_FREE) {
      c->chunk_in[i] = chunk;
      c->free_count--;
      return i;
    }
  }
  return -1;
}

bool nl_rdma_credit_return(nl_rdma_credits *c, uint32_t chunk) {
  for (int i = 0; i < c->count; i++) {
    if (c->chunk_in[i] == chunk) {
      c->chunk_in[i] = NL_RDMA_SLOT_FREE;
      c->free_count++;
      return true;
    }
  }
  return false;
}

size_t nl_rdma_credits_drain(nl_rdma_credits *c, uint32_t *out) {
  size_t n = 0;
  for (int i = 0; i < c->count; i++) {
    if (c->chunk_in[i] != NL_RDMA_SLOT_FREE) {
      out[n++] = c->chunk_in[i];
      c->chunk_in[i] = NL_RDMA_SLOT_FREE;
    }
  }
  c->free_count = c->count;
  return n;
}
