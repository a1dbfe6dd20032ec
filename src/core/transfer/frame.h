/* Frames of the peer protocol (docs/protocol.md): an 8-byte header ("NL",
 * version 3, type, big-endian length) and a payload whose fields are read
 * with bounds checks. Every type has a maximum length, and a payload must
 * parse to exactly its length: a frame that does not is refused whole.
 * Nothing here allocates; parsed byte fields point into the payload. */
#ifndef NODELUA_TRANSFER_FRAME_H
#define NODELUA_TRANSFER_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Big-endian integers, as every number of the protocol (and of the
 * journal) is written. */
static inline void nl_put_be32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (24 - 8 * i));
}
static inline uint32_t nl_get_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}
static inline void nl_put_be64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* A file's chunks: how many there are, and chunk i's length (the last
 * one short). Every part of the core cuts a file the same way, here. */
static inline uint64_t nl_frame_chunks(uint64_t size, uint32_t chunk_size) {
  return size / chunk_size + (size % chunk_size != 0);
}
static inline uint32_t nl_frame_chunk_len(uint64_t size, uint32_t chunk_size,
                                          uint64_t i) {
  uint64_t left = size - i * chunk_size;
  return left < chunk_size ? (uint32_t)left : chunk_size;
}

#define NL_FRAME_HEADER_SIZE 8
#define NL_FRAME_VERSION 3
/* The staging folder inside the receive folder: never a file's name. */
#define NL_FRAME_RESERVED_NAME ".nodelua-partial"
#define NL_FRAME_NONCE_SIZE 32
#define NL_FRAME_DIGEST_SIZE 32
#define NL_FRAME_ID_MAX 64
#define NL_FRAME_TRANSFER_ID_SIZE 16
#define NL_FRAME_NAME_MAX 255
#define NL_FRAME_MESSAGE_MAX 512
#define NL_FRAME_DATA_MAX (1024 * 1024)
#define NL_FRAME_CHUNK_MIN (64 * 1024)
#define NL_FRAME_CHUNK_MAX (64 * 1024 * 1024)
/* The most chunks a file may have: the ACCEPT, which may list a digest
 * for each, must fit its frame. */
#define NL_FRAME_CHUNKS_MAX (128 * 1024)
#define NL_FRAME_OFFER_MAX 512
#define NL_FRAME_RDMA_ANSWER_MAX (1 + 2 + NL_FRAME_MESSAGE_MAX + 32)
#define NL_FRAME_ACCEPT_MAX                                                    \
  (NL_FRAME_TRANSFER_ID_SIZE + NL_FRAME_CHUNKS_MAX / 8 +                       \
   NL_FRAME_CHUNKS_MAX * 32 + 32)

typedef enum {
  NL_FRAME_HELLO = 0x01,
  NL_FRAME_CHALLENGE = 0x02,
  NL_FRAME_AUTH = 0x03,
  NL_FRAME_OK = 0x04,
  NL_FRAME_ERROR = 0x05,
  NL_FRAME_OFFER = 0x10,
  NL_FRAME_ACCEPT = 0x11,
  NL_FRAME_JOIN = 0x12,
  NL_FRAME_DATA = 0x13,
  NL_FRAME_CHUNK = 0x14,
  NL_FRAME_DONE = 0x15,
  NL_FRAME_DIGEST = 0x16,
  NL_FRAME_END = 0x17,
  NL_FRAME_RDMA = 0x18,
  NL_FRAME_RDMA_ANSWER = 0x19,
} nl_frame_type;

/* The largest payload of a type, or 0 for a type that does not exist. */
size_t nl_frame_max_payload(unsigned type);

/* Reads a header. Returns 0 with the type and payload length, or -1 for a
 * bad magic or version, an unknown type, or a length over the type's
 * maximum. */
int nl_frame_parse_header(const uint8_t header[NL_FRAME_HEADER_SIZE],
                          nl_frame_type *type, uint32_t *length);

/* ---- reading and writing fields ---- */

typedef struct {
  const uint8_t *p;
  size_t len, pos;
  bool failed;
} nl_reader;

void nl_reader_init(nl_reader *r, const uint8_t *p, size_t len);
uint8_t nl_read_u8(nl_reader *r);
uint16_t nl_read_u16(nl_reader *r);
uint32_t nl_read_u32(nl_reader *r);
uint64_t nl_read_u64(nl_reader *r);
/* n bytes in place, or NULL (and failed) when fewer are left. */
const uint8_t *nl_read_bytes(nl_reader *r, size_t n);
/* A 2-byte length and that many bytes, at most max, without NUL. */
const char *nl_read_string(nl_reader *r, size_t max, size_t *len);
/* True when every read fitted and the payload is used up exactly. */
bool nl_reader_done(const nl_reader *r);

typedef struct {
  uint8_t *buf;
  size_t cap, len;
  bool failed;
} nl_writer;

/* Starts a frame of type in buf (header first, length filled in by
 * nl_writer_finish). */
void nl_writer_begin(nl_writer *w, uint8_t *buf, size_t cap,
                     nl_frame_type type);
void nl_write_u8(nl_writer *w, uint8_t v);
void nl_write_u16(nl_writer *w, uint16_t v);
void nl_write_u32(nl_writer *w, uint32_t v);
void nl_write_u64(nl_writer *w, uint64_t v);
void nl_write_bytes(nl_writer *w, const void *p, size_t n);
void nl_write_string(nl_writer *w, const char *s, size_t len);
/* The whole frame's size, or -1 when it did not fit the buffer or its
 * type's maximum. */
long nl_writer_finish(nl_writer *w);

/* ---- typed payloads ---- */

typedef struct {
  uint8_t role; /* 0 control, 1 data */
  const uint8_t *nonce;
  char id[NL_FRAME_ID_MAX + 1];
} nl_frame_hello;

typedef struct {
  const uint8_t *nonce, *proof;
  char id[NL_FRAME_ID_MAX + 1];
} nl_frame_challenge;

typedef struct {
  uint16_t code;
  char message[NL_FRAME_MESSAGE_MAX + 1];
} nl_frame_error;

/* OFFER flags. */
#define NL_OFFER_REPLACE 0x01 /* replace a file of the same name */
#define NL_OFFER_SHA256 0x02  /* both sides also hash the whole file */

typedef struct {
  char name[NL_FRAME_NAME_MAX + 1];
  bool replace, sha256;
  uint64_t size;
  uint32_t chunk_size;
  uint32_t chunk_count;
  const uint8_t *mac;
} nl_frame_offer;

/* The receiver's answer: the chunks it holds already (from its journal),
 * each with the digest it recorded, so that the sender sends only the
 * chunks whose digests differ. */
typedef struct {
  const uint8_t *id;      /* NL_FRAME_TRANSFER_ID_SIZE bytes */
  const uint8_t *held;    /* a bitmap, most significant bit first */
  const uint8_t *digests; /* held_count * 32 bytes, in chunk order */
  uint32_t held_count;
  const uint8_t *mac;
} nl_frame_accept;

/* Whether chunk i is set in a bitmap of the ACCEPT's layout. */
static inline bool nl_frame_bit(const uint8_t *bitmap, uint32_t i) {
  return (bitmap[i / 8] & (0x80 >> (i % 8))) != 0;
}

typedef struct {
  uint32_t chunk;
  uint32_t offset;
  const uint8_t *data;
  uint32_t len;
} nl_frame_data;

/* RDMA: the sender's proposal (its nonce), and the receiver's answer:
 * ready, with where to connect and write, or refused, with why. */
typedef struct {
  const uint8_t *nonce;
  const uint8_t *mac;
} nl_frame_rdma;

typedef struct {
  bool ready;
  uint16_t port;      /* the receiver's rdma_cm port */
  uint16_t slots;     /* buffers in its pool, one chunk each */
  uint32_t slot_size; /* bytes of each: the chunk size */
  uint64_t addr;      /* the pool's address, for RDMA WRITE */
  uint32_t rkey;      /* its remote key */
  const uint8_t *nonce;
  char reason[NL_FRAME_MESSAGE_MAX + 1];
  const uint8_t *mac;
} nl_frame_rdma_answer;

int nl_frame_parse_rdma(const uint8_t *p, size_t len, nl_frame_rdma *out,
                        char *err, size_t errlen);
/* Checks the slots against what this transfer needs: chunk_size each, at
 * least 1, at most NL_RDMA_SLOTS_MAX (16), a pool that does not wrap. */
int nl_frame_parse_rdma_answer(const uint8_t *p, size_t len,
                               uint32_t chunk_size, nl_frame_rdma_answer *out,
                               char *err, size_t errlen);

/* Each returns 0, or -1 with why in err (for the ERROR frame to the
 * peer). Ids are 1 to 64 hex digits; roles 0 or 1. */
int nl_frame_parse_hello(const uint8_t *p, size_t len, nl_frame_hello *out,
                         char *err, size_t errlen);
int nl_frame_parse_challenge(const uint8_t *p, size_t len,
                             nl_frame_challenge *out, char *err, size_t errlen);
int nl_frame_parse_error(const uint8_t *p, size_t len, nl_frame_error *out,
                         char *err, size_t errlen);
/* Checks the name (nl_frame_name_check), the flags, the chunk size (a
 * power of two from 64 KiB to 64 MiB) and the chunk count (at most
 * NL_FRAME_CHUNKS_MAX). */
int nl_frame_parse_offer(const uint8_t *p, size_t len, nl_frame_offer *out,
                         char *err, size_t errlen);
/* An ACCEPT for an offer of chunk_count chunks: the bitmap's spare bits
 * are 0, and there is one digest per bit set. */
int nl_frame_parse_accept(const uint8_t *p, size_t len, uint32_t chunk_count,
                          nl_frame_accept *out, char *err, size_t errlen);
/* data chunk and offset are within the offered chunk_size; the caller
 * checks them against the file. */
int nl_frame_parse_data(const uint8_t *p, size_t len, uint32_t chunk_size,
                        nl_frame_data *out, char *err, size_t errlen);

/* Whether name may be created in the receive directory: one path
 * component of 1 to 255 bytes, not "." or ".." or the staging folder's
 * name (NL_FRAME_RESERVED_NAME), no '/', NUL or control
 * character, valid UTF-8. Returns 0, or -1 with why in err. */
int nl_frame_name_check(const char *name, size_t len, char *err, size_t errlen);

#endif
