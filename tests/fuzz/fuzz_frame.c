/* libFuzzer target for the frame parsers (bytes from any host that
 * connects to TRANSFER_PORT). The input is a header and a payload: the
 * header must be refused or give a length within its type's bound, and each
 * typed parser must refuse or give fields that hold their rules: ids of hex
 * digits, a name that is one safe path component, one digest per chunk,
 * data inside its chunk, messages without control characters, an RDMA
 * pool within its bounds. */
#include "core/transfer/frame.h"

#include <stdlib.h>
#include <string.h>

static void check_id(const char *id) {
  size_t n = strlen(id);
  if (n == 0 || n > NL_FRAME_ID_MAX)
    abort();
  for (size_t i = 0; i < n; i++)
    if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
      abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[256];
  if (size >= NL_FRAME_HEADER_SIZE) {
    nl_frame_type type;
    uint32_t len;
    if (nl_frame_parse_header(data, &type, &len) == 0 &&
        len > nl_frame_max_payload(type))
      abort();
  }
  const uint8_t *p = size > 0 ? data + 1 : data;
  size_t n = size > 0 ? size - 1 : 0;
  switch (size > 0 ? data[0] % 8 : 0) {
  case 0: {
    nl_frame_hello h;
    if (nl_frame_parse_hello(p, n, &h, err, sizeof err) == 0) {
      check_id(h.id);
      if (h.role > 1 || h.nonce < p || h.nonce + 32 > p + n)
        abort();
    }
    break;
  }
  case 1: {
    nl_frame_challenge c;
    if (nl_frame_parse_challenge(p, n, &c, err, sizeof err) == 0)
      check_id(c.id);
    break;
  }
  case 2: {
    nl_frame_error e;
    if (nl_frame_parse_error(p, n, &e, err, sizeof err) == 0)
      for (const char *m = e.message; *m; m++)
        if ((unsigned char)*m < 0x20 || *m == 0x7f)
          abort();
    break;
  }
  case 3: {
    nl_frame_offer o;
    if (nl_frame_parse_offer(p, n, &o, err, sizeof err) == 0) {
      if (nl_frame_name_check(o.name, strlen(o.name), err, sizeof err) != 0 ||
          strchr(o.name, '/') != NULL)
        abort();
      uint64_t chunks = o.size / o.chunk_size + (o.size % o.chunk_size != 0);
      if (chunks != o.chunk_count || chunks > NL_FRAME_CHUNKS_MAX ||
          o.mac + 32 != p + n)
        abort();
    }
    break;
  }
  case 5: {
    /* The chunk count comes from the offer the sender made: any of them. */
    uint32_t chunks = n > 0 ? (uint32_t)p[0] * 7 : 0;
    nl_frame_accept a;
    if (nl_frame_parse_accept(p, n, chunks, &a, err, sizeof err) == 0) {
      uint32_t held = 0;
      for (uint32_t i = 0; i < (chunks + 7) / 8 * 8; i++)
        if (nl_frame_bit(a.held, i) && (i >= chunks || ++held == 0))
          abort();
      if (held != a.held_count || a.digests + (size_t)held * 32 != a.mac ||
          a.mac + 32 != p + n)
        abort();
    }
    break;
  }
  case 6: {
    nl_frame_rdma r;
    if (nl_frame_parse_rdma(p, n, &r, err, sizeof err) == 0 &&
        (n != NL_FRAME_NONCE_SIZE + 32 || r.nonce != p || r.mac + 32 != p + n))
      abort();
    break;
  }
  case 7: {
    uint32_t chunk = n > 0 ? NL_FRAME_CHUNK_MIN << (p[0] % 11) : 0;
    nl_frame_rdma_answer a;
    if (nl_frame_parse_rdma_answer(p, n, chunk, &a, err, sizeof err) == 0) {
      uint64_t pool = (uint64_t)a.slots * a.slot_size;
      if (a.mac + 32 != p + n ||
          (a.ready &&
           (a.port == 0 || a.slots == 0 || a.slots > 16 ||
            a.slot_size != chunk || (a.slots > 1 && pool > 64u * 1024 * 1024) ||
            a.addr + pool < a.addr)))
        abort();
      for (const char *m = a.reason; *m; m++)
        if ((unsigned char)*m < 0x20 || *m == 0x7f)
          abort();
    }
    break;
  }
  case 4: {
    nl_frame_data d;
    uint32_t chunk = NL_FRAME_CHUNK_MIN;
    if (nl_frame_parse_data(p, n, chunk, &d, err, sizeof err) == 0 &&
        (d.len == 0 || d.offset >= chunk || d.offset + d.len > chunk ||
         d.data + d.len != p + n))
      abort();
    break;
  }
  }
  return 0;
}
