#include "frame.h"
#include "rdma/slots.h"

#include <stdio.h>
#include <string.h>

size_t nl_frame_max_payload(unsigned type) {
  switch (type) {
  case NL_FRAME_HELLO:
  case NL_FRAME_CHALLENGE:
    return 128;
  case NL_FRAME_AUTH:
    return NL_FRAME_DIGEST_SIZE;
  case NL_FRAME_OK:
    return 0;
  case NL_FRAME_ERROR:
    return 1024;
  case NL_FRAME_OFFER:
    return NL_FRAME_OFFER_MAX;
  case NL_FRAME_ACCEPT:
    return NL_FRAME_ACCEPT_MAX;
  case NL_FRAME_JOIN:
  case NL_FRAME_CHUNK:
    return 64;
  case NL_FRAME_DIGEST:
    return 4 + 2 * NL_FRAME_DIGEST_SIZE;
  case NL_FRAME_END:
  case NL_FRAME_DONE:
    return 3 * NL_FRAME_DIGEST_SIZE; /* tree, SHA-256 when asked, MAC */
  case NL_FRAME_DATA:
    return NL_FRAME_DATA_MAX + 8;
  case NL_FRAME_RDMA:
    return NL_FRAME_NONCE_SIZE + 32;
  case NL_FRAME_RDMA_ANSWER:
    return NL_FRAME_RDMA_ANSWER_MAX;
  default:
    return 0;
  }
}

static bool known_type(unsigned type) {
  return (type >= NL_FRAME_HELLO && type <= NL_FRAME_ERROR) ||
         (type >= NL_FRAME_OFFER && type <= NL_FRAME_RDMA_ANSWER);
}

int nl_frame_parse_header(const uint8_t h[NL_FRAME_HEADER_SIZE],
                          nl_frame_type *type, uint32_t *length) {
  if (h[0] != 'N' || h[1] != 'L' || h[2] != NL_FRAME_VERSION ||
      !known_type(h[3]))
    return -1;
  uint32_t n = nl_get_be32(h + 4);
  if (n > nl_frame_max_payload(h[3]))
    return -1;
  *type = (nl_frame_type)h[3];
  *length = n;
  return 0;
}

/* ---- reader ---- */

void nl_reader_init(nl_reader *r, const uint8_t *p, size_t len) {
  r->p = p;
  r->len = len;
  r->pos = 0;
  r->failed = false;
}

const uint8_t *nl_read_bytes(nl_reader *r, size_t n) {
  if (r->failed || n > r->len - r->pos) {
    r->failed = true;
    return NULL;
  }
  const uint8_t *at = r->p + r->pos;
  r->pos += n;
  return at;
}

static uint64_t read_be(nl_reader *r, size_t n) {
  const uint8_t *p = nl_read_bytes(r, n);
  uint64_t v = 0;
  for (size_t i = 0; p != NULL && i < n; i++)
    v = v << 8 | p[i];
  return v;
}

uint8_t nl_read_u8(nl_reader *r) { return (uint8_t)read_be(r, 1); }
uint16_t nl_read_u16(nl_reader *r) { return (uint16_t)read_be(r, 2); }
uint32_t nl_read_u32(nl_reader *r) { return (uint32_t)read_be(r, 4); }
uint64_t nl_read_u64(nl_reader *r) { return read_be(r, 8); }

const char *nl_read_string(nl_reader *r, size_t max, size_t *len) {
  size_t n = nl_read_u16(r);
  if (n > max)
    r->failed = true;
  const uint8_t *p = nl_read_bytes(r, n);
  if (p == NULL || memchr(p, '\0', n) != NULL) {
    r->failed = true;
    return NULL;
  }
  *len = n;
  return (const char *)p;
}

bool nl_reader_done(const nl_reader *r) {
  return !r->failed && r->pos == r->len;
}

/* ---- writer ---- */

void nl_writer_begin(nl_writer *w, uint8_t *buf, size_t cap,
                     nl_frame_type type) {
  w->buf = buf;
  w->cap = cap;
  w->len = 0;
  w->failed = cap < NL_FRAME_HEADER_SIZE;
  if (!w->failed) {
    buf[0] = 'N';
    buf[1] = 'L';
    buf[2] = NL_FRAME_VERSION;
    buf[3] = (uint8_t)type;
    w->len = NL_FRAME_HEADER_SIZE;
  }
}

void nl_write_bytes(nl_writer *w, const void *p, size_t n) {
  if (w->failed || n > w->cap - w->len) {
    w->failed = true;
    return;
  }
  if (n > 0)
    memcpy(w->buf + w->len, p, n);
  w->len += n;
}

static void write_be(nl_writer *w, uint64_t v, size_t n) {
  uint8_t b[8];
  for (size_t i = 0; i < n; i++)
    b[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
  nl_write_bytes(w, b, n);
}

void nl_write_u8(nl_writer *w, uint8_t v) { write_be(w, v, 1); }
void nl_write_u16(nl_writer *w, uint16_t v) { write_be(w, v, 2); }
void nl_write_u32(nl_writer *w, uint32_t v) { write_be(w, v, 4); }
void nl_write_u64(nl_writer *w, uint64_t v) { write_be(w, v, 8); }

void nl_write_string(nl_writer *w, const char *s, size_t len) {
  if (len > UINT16_MAX || memchr(s, '\0', len) != NULL) {
    w->failed = true;
    return;
  }
  nl_write_u16(w, (uint16_t)len);
  nl_write_bytes(w, s, len);
}

long nl_writer_finish(nl_writer *w) {
  if (w->failed)
    return -1;
  size_t payload = w->len - NL_FRAME_HEADER_SIZE;
  if (payload > nl_frame_max_payload(w->buf[3]))
    return -1;
  nl_put_be32(w->buf + 4, (uint32_t)payload);
  return (long)w->len;
}

/* ---- typed payloads ---- */

static int fail(char *err, size_t errlen, const char *why) {
  snprintf(err, errlen, "%s", why);
  return -1;
}

/* A node id: 1 to 64 hex digits, copied lower-cased and NUL-terminated. */
static bool read_id(nl_reader *r, char out[NL_FRAME_ID_MAX + 1]) {
  size_t n;
  const char *s = nl_read_string(r, NL_FRAME_ID_MAX, &n);
  if (s == NULL || n == 0)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c >= 'A' && c <= 'F')
      c = (char)(c - 'A' + 'a');
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return false;
    out[i] = c;
  }
  out[n] = '\0';
  return true;
}

int nl_frame_parse_hello(const uint8_t *p, size_t len, nl_frame_hello *out,
                         char *err, size_t errlen) {
  nl_reader r;
  nl_reader_init(&r, p, len);
  out->role = nl_read_u8(&r);
  out->nonce = nl_read_bytes(&r, NL_FRAME_NONCE_SIZE);
  bool id_ok = read_id(&r, out->id);
  if (!nl_reader_done(&r) || !id_ok)
    return fail(err, errlen, "malformed HELLO");
  if (out->role > 1)
    return fail(err, errlen, "HELLO: unknown role");
  return 0;
}

int nl_frame_parse_challenge(const uint8_t *p, size_t len,
                             nl_frame_challenge *out, char *err,
                             size_t errlen) {
  nl_reader r;
  nl_reader_init(&r, p, len);
  out->nonce = nl_read_bytes(&r, NL_FRAME_NONCE_SIZE);
  out->proof = nl_read_bytes(&r, NL_FRAME_DIGEST_SIZE);
  bool id_ok = read_id(&r, out->id);
  if (!nl_reader_done(&r) || !id_ok)
    return fail(err, errlen, "malformed CHALLENGE");
  return 0;
}

int nl_frame_parse_error(const uint8_t *p, size_t len, nl_frame_error *out,
                         char *err, size_t errlen) {
  nl_reader r;
  nl_reader_init(&r, p, len);
  out->code = nl_read_u16(&r);
  size_t n = 0;
  const char *m = nl_read_string(&r, NL_FRAME_MESSAGE_MAX, &n);
  if (!nl_reader_done(&r) || m == NULL)
    return fail(err, errlen, "malformed ERROR");
  /* Shown to a person: control characters become '?'. */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)m[i];
    out->message[i] = (char)(c < 0x20 || c == 0x7f ? '?' : c);
  }
  out->message[n] = '\0';
  return 0;
}

/* The length of the UTF-8 sequence at s (of n bytes), or 0 if invalid:
 * no overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_sequence(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  if (c < 0x80)
    return 1;
  size_t len;
  uint32_t cp;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (len > n)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    cp = cp << 6 | (s[i] & 0x3f);
  }
  if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
      (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
    return 0;
  return len;
}

int nl_frame_name_check(const char *name, size_t len, char *err,
                        size_t errlen) {
  if (len == 0)
    return fail(err, errlen, "the file name is empty");
  if (len > NL_FRAME_NAME_MAX)
    return fail(err, errlen, "the file name is over 255 bytes");
  if ((len == 1 && name[0] == '.') ||
      (len == 2 && name[0] == '.' && name[1] == '.'))
    return fail(err, errlen, "the file name is . or ..");
  if (len == sizeof NL_FRAME_RESERVED_NAME - 1 &&
      memcmp(name, NL_FRAME_RESERVED_NAME, len) == 0)
    return fail(err, errlen,
                "the file name is the receiver's staging folder's");
  const unsigned char *s = (const unsigned char *)name;
  for (size_t i = 0; i < len;) {
    if (s[i] == '/')
      return fail(err, errlen,
                  "the file name has a '/': a name is one path component");
    if (s[i] == '\0' || s[i] < 0x20 || s[i] == 0x7f)
      return fail(err, errlen, "the file name has a NUL or control character");
    size_t n = utf8_sequence(s + i, len - i);
    if (n == 0)
      return fail(err, errlen, "the file name is not valid UTF-8");
    i += n;
  }
  return 0;
}

int nl_frame_parse_offer(const uint8_t *p, size_t len, nl_frame_offer *out,
                         char *err, size_t errlen) {
  nl_reader r;
  nl_reader_init(&r, p, len);
  size_t name_len = 0;
  const char *name = nl_read_string(&r, NL_FRAME_NAME_MAX, &name_len);
  uint8_t flags = nl_read_u8(&r);
  out->replace = (flags & NL_OFFER_REPLACE) != 0;
  out->sha256 = (flags & NL_OFFER_SHA256) != 0;
  out->size = nl_read_u64(&r);
  out->chunk_size = nl_read_u32(&r);
  out->mac = nl_read_bytes(&r, NL_FRAME_DIGEST_SIZE);
  if (!nl_reader_done(&r) || name == NULL)
    return fail(err, errlen, "malformed OFFER");
  if ((flags & ~(NL_OFFER_REPLACE | NL_OFFER_SHA256)) != 0)
    return fail(err, errlen, "OFFER: unknown flags");
  if (nl_frame_name_check(name, name_len, err, errlen) != 0)
    return -1;
  memcpy(out->name, name, name_len);
  out->name[name_len] = '\0';
  uint32_t cs = out->chunk_size;
  if (cs < NL_FRAME_CHUNK_MIN || cs > NL_FRAME_CHUNK_MAX || (cs & (cs - 1)))
    return fail(err, errlen,
                "OFFER: the chunk size is not a power of two from 64 KiB "
                "to 64 MiB");
  uint64_t chunks = nl_frame_chunks(out->size, cs);
  if (chunks > NL_FRAME_CHUNKS_MAX)
    return fail(err, errlen, "OFFER: too many chunks for this chunk size");
  out->chunk_count = (uint32_t)chunks;
  return 0;
}

int nl_frame_parse_accept(const uint8_t *p, size_t len, uint32_t chunk_count,
                          nl_frame_accept *out, char *err, size_t errlen) {
  nl_reader r;
  nl_reader_init(&r, p, len);
  size_t bitmap = ((size_t)chunk_count + 7) / 8;
  out->id = nl_read_bytes(&r, NL_FRAME_TRANSFER_ID_SIZE);
  out->held = nl_read_bytes(&r, bitmap);
  if (r.failed)
    return fail(err, errlen, "malformed ACCEPT");
  uint32_t held = 0;
  for (size_t i = 0; i < bitmap * 8; i++) {
    bool set = (out->held[i / 8] & (0x80 >> (i % 8))) != 0;
    if (set && i >= chunk_count)
      return fail(err, errlen, "ACCEPT: a chunk past the file's end");
    held += set;
  }
  out->held_count = held;
  out->digests = nl_read_bytes(&r, (size_t)held * NL_FRAME_DIGEST_SIZE);
  out->mac = nl_read_bytes(&r, NL_FRAME_DIGEST_SIZE);
  if (!nl_reader_done(&r))
    return fail(err, errlen, "malformed ACCEPT");
  return 0;
}

int nl_frame_parse_data(const uint8_t *p, size_t len, uint32_t chunk_size,
                        nl_frame_data *out, char *err, size_t errlen) {
  nl_reader r;
  nl_reader_init(&r, p, len);
  out->chunk = nl_read_u32(&r);
  out->offset = nl_read_u32(&r);
  if (r.failed)
    return fail(err, errlen, "malformed DATA");
  out->len = (uint32_t)(r.len - r.pos);
  out->data = nl_read_bytes(&r, out->len);
  if (out->len == 0 || out->offset >= chunk_size ||
      out->len > chunk_size - out->offset)
    return fail(err, errlen, "DATA outside its chunk");
  return 0;
}

int nl_frame_parse_rdma(const uint8_t *p, size_t len, nl_frame_rdma *out,
                        char *err, size_t errlen) {
  nl_reader r;
  nl_reader_init(&r, p, len);
  out->nonce = nl_read_bytes(&r, NL_FRAME_NONCE_SIZE);
  out->mac = nl_read_bytes(&r, 32);
  if (!nl_reader_done(&r))
    return fail(err, errlen, "malformed RDMA proposal");
  return 0;
}

int nl_frame_parse_rdma_answer(const uint8_t *p, size_t len,
                               uint32_t chunk_size, nl_frame_rdma_answer *out,
                               char *err, size_t errlen) {
  nl_reader r;
  nl_reader_init(&r, p, len);
  memset(out, 0, sizeof *out);
  uint8_t ready = nl_read_u8(&r);
  if (ready == 1) {
    out->ready = true;
    out->port = nl_read_u16(&r);
    out->slots = nl_read_u16(&r);
    out->slot_size = nl_read_u32(&r);
    out->addr = nl_read_u64(&r);
    out->rkey = nl_read_u32(&r);
    out->nonce = nl_read_bytes(&r, NL_FRAME_NONCE_SIZE);
  } else if (ready == 0) {
    size_t n = 0;
    const char *m = nl_read_string(&r, NL_FRAME_MESSAGE_MAX, &n);
    for (size_t i = 0; m != NULL && i < n; i++) {
      unsigned char c = (unsigned char)m[i];
      out->reason[i] = (char)(c < 0x20 || c == 0x7f ? '?' : c);
    }
    out->reason[m != NULL ? n : 0] = '\0';
  } else {
    return fail(err, errlen, "malformed RDMA answer");
  }
  out->mac = nl_read_bytes(&r, 32);
  if (!nl_reader_done(&r))
    return fail(err, errlen, "malformed RDMA answer");
  /* The sender registers as much memory as the pool: it must be within
   * the bound the receiver keeps to (one slot may be a whole chunk of up
   * to 64 MiB, which is the bound). */
  uint64_t pool = (uint64_t)out->slots * out->slot_size;
  if (out->ready &&
      (out->port == 0 || out->slots == 0 || out->slots > NL_RDMA_SLOTS_MAX ||
       out->slot_size != chunk_size ||
       (out->slots > 1 && pool > NL_RDMA_POOL_BYTES_MAX) ||
       out->addr > UINT64_MAX - pool))
    return fail(err, errlen, "an RDMA answer with an impossible pool");
  return 0;
}
