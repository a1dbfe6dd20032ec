/* Frames and authentication of the peer protocol: what is written parses
 * back, every bound is enforced, and the handshake's proofs only verify
 * with the right key and the same nonces. */
#include "check.h"
#include "core/hash.h"
#include "core/transfer/auth.h"
#include "core/transfer/frame.h"

#include <stdlib.h>

static uint8_t buf[NL_FRAME_HEADER_SIZE + 4096];
static char err[256];

static void headers(void) {
  nl_writer w;
  nl_writer_begin(&w, buf, sizeof buf, NL_FRAME_OK);
  CHECK(nl_writer_finish(&w) == NL_FRAME_HEADER_SIZE);
  nl_frame_type type;
  uint32_t len;
  CHECK(nl_frame_parse_header(buf, &type, &len) == 0);
  CHECK(type == NL_FRAME_OK && len == 0);

  static const uint8_t bad_magic[] = {'N', 'X', 3, 4, 0, 0, 0, 0};
  static const uint8_t old_version[] = {'N', 'L', 2, 4, 0, 0, 0, 0};
  static const uint8_t next_version[] = {'N', 'L', 4, 4, 0, 0, 0, 0};
  static const uint8_t bad_type[] = {'N', 'L', 3, 0x09, 0, 0, 0, 0};
  static const uint8_t past_types[] = {'N', 'L', 3, 0x1a, 0, 0, 0, 0};
  static const uint8_t too_long[] = {'N', 'L', 3, 0x03, 0, 0, 0, 33};
  static const uint8_t huge[] = {'N', 'L', 3, 0x13, 0xff, 0xff, 0xff, 0xff};
  static const uint8_t digest_long[] = {'N', 'L', 3, 0x16, 0, 0, 0, 69};
  CHECK(nl_frame_parse_header(bad_magic, &type, &len) == -1);
  CHECK(nl_frame_parse_header(old_version, &type, &len) == -1);
  CHECK(nl_frame_parse_header(next_version, &type, &len) == -1);
  CHECK(nl_frame_parse_header(bad_type, &type, &len) == -1);
  CHECK(nl_frame_parse_header(past_types, &type, &len) == -1);
  CHECK(nl_frame_parse_header(too_long, &type, &len) == -1);
  CHECK(nl_frame_parse_header(huge, &type, &len) == -1);
  CHECK(nl_frame_parse_header(digest_long, &type, &len) == -1);
  static const uint8_t data_max[] = {'N', 'L', 3, 0x13, 0, 0x10, 0, 8};
  CHECK(nl_frame_parse_header(data_max, &type, &len) == 0 &&
        len == NL_FRAME_DATA_MAX + 8);
  static const uint8_t end_max[] = {'N', 'L', 3, 0x17, 0, 0, 0, 96};
  CHECK(nl_frame_parse_header(end_max, &type, &len) == 0 &&
        type == NL_FRAME_END);

  /* A writer refuses what does not fit its buffer or its type. */
  uint8_t small[12];
  nl_writer_begin(&w, small, sizeof small, NL_FRAME_AUTH);
  nl_write_bytes(&w, buf, 32);
  CHECK(nl_writer_finish(&w) == -1);
  nl_writer_begin(&w, buf, sizeof buf, NL_FRAME_OK);
  nl_write_u8(&w, 1);
  CHECK(nl_writer_finish(&w) == -1); /* OK carries nothing */
}

static size_t hello(uint8_t role, const char *id) {
  uint8_t nonce[32];
  memset(nonce, 7, sizeof nonce);
  nl_writer w;
  nl_writer_begin(&w, buf, sizeof buf, NL_FRAME_HELLO);
  nl_write_u8(&w, role);
  nl_write_bytes(&w, nonce, sizeof nonce);
  nl_write_string(&w, id, strlen(id));
  long n = nl_writer_finish(&w);
  CHECK(n > 0);
  return (size_t)n - NL_FRAME_HEADER_SIZE;
}

static void hellos(void) {
  nl_frame_hello h;
  size_t n = hello(0, "ABCdef0123");
  CHECK(nl_frame_parse_hello(buf + 8, n, &h, err, sizeof err) == 0);
  CHECK(h.role == 0 && h.nonce[0] == 7);
  CHECK_STR(h.id, "abcdef0123");
  n = hello(2, "ab");
  CHECK(nl_frame_parse_hello(buf + 8, n, &h, err, sizeof err) == -1);
  n = hello(1, "not-hex");
  CHECK(nl_frame_parse_hello(buf + 8, n, &h, err, sizeof err) == -1);
  n = hello(1, "");
  CHECK(nl_frame_parse_hello(buf + 8, n, &h, err, sizeof err) == -1);
  /* Every truncation, and a byte too many, are refused. */
  n = hello(1, "ab");
  for (size_t cut = 0; cut < n; cut++)
    CHECK(nl_frame_parse_hello(buf + 8, cut, &h, err, sizeof err) == -1);
  CHECK(nl_frame_parse_hello(buf + 8, n + 1, &h, err, sizeof err) == -1);
}

static void names(void) {
  static const char *const good[] = {"data.bin",   "a",      "...", ".hidden",
                                     "résumé.pdf", "日本語", "a b"};
  for (size_t i = 0; i < sizeof good / sizeof *good; i++)
    CHECK(nl_frame_name_check(good[i], strlen(good[i]), err, sizeof err) == 0);
  static const char *const bad[] = {"",
                                    ".",
                                    "..",
                                    "../etc/passwd",
                                    "a/b",
                                    "/abs",
                                    "tab\there",
                                    "bell\a",
                                    "del\x7f",
                                    "\xc3\x28",
                                    "\xe0\x80\x80",
                                    "\xed\xa0\x80",
                                    "\xf4\x90\x80\x80",
                                    "\xff"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    CHECK(nl_frame_name_check(bad[i], strlen(bad[i]), err, sizeof err) == -1);
  CHECK(nl_frame_name_check("a\0b", 3, err, sizeof err) == -1);
  CHECK_CONTAINS((nl_frame_name_check("x/y", 3, err, sizeof err), err),
                 "one path component");
  char long_name[300];
  memset(long_name, 'n', sizeof long_name);
  CHECK(nl_frame_name_check(long_name, 255, err, sizeof err) == 0);
  CHECK(nl_frame_name_check(long_name, 256, err, sizeof err) == -1);
}

static long offer_flags(const char *name, uint8_t flags, uint64_t size,
                        uint32_t chunk_size, uint8_t *out, size_t cap) {
  nl_writer w;
  nl_writer_begin(&w, out, cap, NL_FRAME_OFFER);
  nl_write_string(&w, name, strlen(name));
  nl_write_u8(&w, flags);
  nl_write_u64(&w, size);
  nl_write_u32(&w, chunk_size);
  uint8_t mac[32];
  memset(mac, 0x55, sizeof mac);
  nl_write_bytes(&w, mac, sizeof mac);
  return nl_writer_finish(&w);
}

static long offer(const char *name, uint64_t size, uint32_t chunk_size,
                  uint8_t *out, size_t cap) {
  return offer_flags(name, 0, size, chunk_size, out, cap);
}

static void offers(void) {
  size_t cap = 4096;
  uint8_t *f = malloc(cap);
  nl_frame_offer o;
  const uint32_t chunk = 4 * 1024 * 1024;
  /* 0 bytes: no chunk; chunk-1, chunk: one; chunk+1: two. */
  long n = offer("empty", 0, chunk, f, cap);
  CHECK(nl_frame_parse_offer(f + 8, (size_t)n - 8, &o, err, sizeof err) == 0);
  CHECK(o.chunk_count == 0 && o.size == 0);
  n = offer("x", chunk - 1, chunk, f, cap);
  CHECK(nl_frame_parse_offer(f + 8, (size_t)n - 8, &o, err, sizeof err) == 0);
  CHECK(o.chunk_count == 1);
  n = offer("x", chunk, chunk, f, cap);
  CHECK(nl_frame_parse_offer(f + 8, (size_t)n - 8, &o, err, sizeof err) == 0);
  CHECK(o.chunk_count == 1);
  n = offer("x", (uint64_t)chunk + 1, chunk, f, cap);
  CHECK(nl_frame_parse_offer(f + 8, (size_t)n - 8, &o, err, sizeof err) == 0);
  CHECK(o.chunk_count == 2 && o.mac[0] == 0x55);
  CHECK_STR(o.name, "x");
  /* A byte more or less: refused whole. */
  CHECK(nl_frame_parse_offer(f + 8, (size_t)n - 9, &o, err, sizeof err) == -1);
  CHECK(nl_frame_parse_offer(f + 8, (size_t)n - 7, &o, err, sizeof err) == -1);
  /* More chunks than an ACCEPT could list: refused. */
  n = offer("x", (uint64_t)NL_FRAME_CHUNKS_MAX * NL_FRAME_CHUNK_MIN,
            NL_FRAME_CHUNK_MIN, f, cap);
  CHECK(nl_frame_parse_offer(f + 8, (size_t)n - 8, &o, err, sizeof err) == 0);
  n = offer("x", (uint64_t)NL_FRAME_CHUNKS_MAX * NL_FRAME_CHUNK_MIN + 1,
            NL_FRAME_CHUNK_MIN, f, cap);
  CHECK(nl_frame_parse_offer(f + 8, (size_t)n - 8, &o, err, sizeof err) == -1);
  CHECK_CONTAINS(err, "too many chunks");
  n = offer("x", UINT64_MAX, NL_FRAME_CHUNK_MIN, f, cap);
  CHECK(nl_frame_parse_offer(f + 8, (size_t)n - 8, &o, err, sizeof err) == -1);
  /* Chunk sizes: powers of two from 64 KiB to 64 MiB. */
  n = offer("x", 10, 3 * 65536, f, cap);
  CHECK(nl_frame_parse_offer(f + 8, (size_t)n - 8, &o, err, sizeof err) == -1);
  n = offer("x", 10, 32768, f, cap);
  CHECK(nl_frame_parse_offer(f + 8, (size_t)n - 8, &o, err, sizeof err) == -1);
  /* A traversal name is refused with the reason the sender will see. */
  n = offer("../../etc/cron.d/x", 10, chunk, f, cap);
  CHECK(nl_frame_parse_offer(f + 8, (size_t)n - 8, &o, err, sizeof err) == -1);
  /* The flags: replace and sha256 asked or not; a flag this version does
   * not know is refused, not ignored. */
  n = offer_flags("x", NL_OFFER_REPLACE, 10, chunk, f, cap);
  CHECK(nl_frame_parse_offer(f + 8, (size_t)n - 8, &o, err, sizeof err) == 0);
  CHECK(o.replace && !o.sha256);
  n = offer_flags("x", NL_OFFER_SHA256, 10, chunk, f, cap);
  CHECK(nl_frame_parse_offer(f + 8, (size_t)n - 8, &o, err, sizeof err) == 0);
  CHECK(!o.replace && o.sha256);
  n = offer_flags("x", 0x80, 10, chunk, f, cap);
  CHECK(nl_frame_parse_offer(f + 8, (size_t)n - 8, &o, err, sizeof err) == -1);
  CHECK_CONTAINS(err, "unknown flags");
  /* The staging folder's name is never a file's. */
  n = offer(".nodelua-partial", 10, chunk, f, cap);
  CHECK(nl_frame_parse_offer(f + 8, (size_t)n - 8, &o, err, sizeof err) == -1);
  CHECK_CONTAINS(err, "staging folder");
  free(f);
}

/* An ACCEPT for chunks chunks, holding those whose bit is set in held (a
 * one-byte bitmap), with digests digests listed. */
static long accept_frame(uint8_t held, uint32_t digests, uint8_t *out,
                         size_t cap) {
  nl_writer w;
  nl_writer_begin(&w, out, cap, NL_FRAME_ACCEPT);
  uint8_t id[16] = {7};
  nl_write_bytes(&w, id, sizeof id);
  nl_write_u8(&w, held);
  uint8_t d[32];
  for (uint32_t i = 0; i < digests + 1; i++) { /* the digests, the MAC */
    memset(d, i < digests ? (int)i + 1 : 0x55, sizeof d);
    nl_write_bytes(&w, d, sizeof d);
  }
  return nl_writer_finish(&w);
}

static void accepts(void) {
  uint8_t f[512];
  nl_frame_accept a;
  /* Nothing held; chunks 0 and 2 of 5 held, with their digests. */
  long n = accept_frame(0, 0, f, sizeof f);
  CHECK(nl_frame_parse_accept(f + 8, (size_t)n - 8, 5, &a, err, sizeof err) ==
        0);
  CHECK(a.held_count == 0 && a.id[0] == 7 && a.mac[0] == 0x55);
  n = accept_frame(0xa0, 2, f, sizeof f);
  CHECK(nl_frame_parse_accept(f + 8, (size_t)n - 8, 5, &a, err, sizeof err) ==
        0);
  CHECK(a.held_count == 2 && nl_frame_bit(a.held, 0) &&
        !nl_frame_bit(a.held, 1) && nl_frame_bit(a.held, 2));
  CHECK(a.digests[0] == 1 && a.digests[32] == 2 && a.mac[0] == 0x55);
  /* A digest short or too many: refused. */
  n = accept_frame(0xa0, 1, f, sizeof f);
  CHECK(nl_frame_parse_accept(f + 8, (size_t)n - 8, 5, &a, err, sizeof err) ==
        -1);
  n = accept_frame(0xa0, 3, f, sizeof f);
  CHECK(nl_frame_parse_accept(f + 8, (size_t)n - 8, 5, &a, err, sizeof err) ==
        -1);
  /* A chunk past the file's end (bit 5 of a 5-chunk file). */
  n = accept_frame(0x04, 1, f, sizeof f);
  CHECK(nl_frame_parse_accept(f + 8, (size_t)n - 8, 5, &a, err, sizeof err) ==
        -1);
  CHECK_CONTAINS(err, "past the file's end");
}

static void data_frames(void) {
  uint8_t p[64];
  nl_writer w;
  nl_writer_begin(&w, buf, sizeof buf, NL_FRAME_DATA);
  nl_write_u32(&w, 3);
  nl_write_u32(&w, 65536 - 4);
  nl_write_bytes(&w, "abcd", 4);
  long n = nl_writer_finish(&w);
  nl_frame_data d;
  CHECK(nl_frame_parse_data(buf + 8, (size_t)n - 8, 65536, &d, err,
                            sizeof err) == 0);
  CHECK(d.chunk == 3 && d.offset == 65532 && d.len == 4 &&
        memcmp(d.data, "abcd", 4) == 0);
  /* A byte past the chunk's end, or nothing at all, is refused. */
  CHECK(nl_frame_parse_data(buf + 8, (size_t)n - 8, 65535, &d, err,
                            sizeof err) == -1);
  memcpy(p, buf + 8, 8);
  CHECK(nl_frame_parse_data(p, 8, 65536, &d, err, sizeof err) == -1);
  CHECK(nl_frame_parse_data(p, 5, 65536, &d, err, sizeof err) == -1);
}

/* An RDMA_ANSWER that says ready, into buf. Returns the frame's length. */
static long ready_answer(uint16_t port, uint16_t slots, uint32_t slot_size,
                         uint64_t addr, uint32_t rkey, const uint8_t nonce[32],
                         const uint8_t mac[32]) {
  nl_writer w;
  nl_writer_begin(&w, buf, sizeof buf, NL_FRAME_RDMA_ANSWER);
  nl_write_u8(&w, 1);
  nl_write_u16(&w, port);
  nl_write_u16(&w, slots);
  nl_write_u32(&w, slot_size);
  nl_write_u64(&w, addr);
  nl_write_u32(&w, rkey);
  nl_write_bytes(&w, nonce, 32);
  nl_write_bytes(&w, mac, 32);
  return nl_writer_finish(&w);
}

static void rdma_frames(void) {
  const uint32_t chunk = 4u << 20;
  uint8_t nonce[32], mac[32];
  memset(nonce, 0xab, sizeof nonce);
  memset(mac, 0xcd, sizeof mac);
  nl_writer w;
  nl_writer_begin(&w, buf, sizeof buf, NL_FRAME_RDMA);
  nl_write_bytes(&w, nonce, 32);
  nl_write_bytes(&w, mac, 32);
  long n = nl_writer_finish(&w);
  nl_frame_rdma r;
  CHECK(nl_frame_parse_rdma(buf + 8, (size_t)n - 8, &r, err, sizeof err) == 0);
  CHECK(memcmp(r.nonce, nonce, 32) == 0 && memcmp(r.mac, mac, 32) == 0);
  CHECK(nl_frame_parse_rdma(buf + 8, (size_t)n - 9, &r, err, sizeof err) == -1);

  /* ready: port, slots, slot size, address, key, nonce, MAC */
  struct {
    uint16_t port, slots;
    uint32_t slot_size;
    uint64_t addr;
    int rc;
  } cases[] = {
      {4791, 16, chunk, 0x7f0000001000, 0},
      {0, 16, chunk, 0x1000, -1},            /* no port */
      {4791, 0, chunk, 0x1000, -1},          /* no slot */
      {4791, 17, chunk, 0x1000, -1},         /* more than 16 */
      {4791, 4, chunk / 2, 0x1000, -1},      /* not the chunk size */
      {4791, 1, chunk, UINT64_MAX - 16, -1}, /* a pool that wraps */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    n = ready_answer(cases[i].port, cases[i].slots, cases[i].slot_size,
                     cases[i].addr, 0x1234, nonce, mac);
    nl_frame_rdma_answer a;
    CHECK(nl_frame_parse_rdma_answer(buf + 8, (size_t)n - 8, chunk, &a, err,
                                     sizeof err) == cases[i].rc);
    if (cases[i].rc == 0)
      CHECK(a.ready && a.port == 4791 && a.slots == 16 &&
            a.slot_size == chunk && a.addr == 0x7f0000001000 &&
            a.rkey == 0x1234 && memcmp(a.nonce, nonce, 32) == 0);
  }
  /* 64 MiB chunks: one slot is the whole bound, two are over it. */
  nl_frame_rdma_answer a;
  for (uint16_t slots = 1; slots <= 2; slots++) {
    n = ready_answer(4791, slots, 64u << 20, 0x1000, 1, nonce, mac);
    CHECK(nl_frame_parse_rdma_answer(buf + 8, (size_t)n - 8, 64u << 20, &a, err,
                                     sizeof err) == (slots == 1 ? 0 : -1));
  }
  /* refused: why, with nothing that a terminal would act on */
  nl_writer_begin(&w, buf, sizeof buf, NL_FRAME_RDMA_ANSWER);
  nl_write_u8(&w, 0);
  nl_write_string(&w, "no\x1b[31m device", 14);
  nl_write_bytes(&w, mac, 32);
  n = nl_writer_finish(&w);
  CHECK(nl_frame_parse_rdma_answer(buf + 8, (size_t)n - 8, chunk, &a, err,
                                   sizeof err) == 0);
  CHECK(!a.ready);
  CHECK_STR(a.reason, "no?[31m device");
  /* Neither ready nor refused, or a byte too many: malformed. */
  buf[8] = 2;
  CHECK(nl_frame_parse_rdma_answer(buf + 8, (size_t)n - 8, chunk, &a, err,
                                   sizeof err) == -1);
  buf[8] = 0;
  CHECK(nl_frame_parse_rdma_answer(buf + 8, (size_t)n - 7, chunk, &a, err,
                                   sizeof err) == -1);
}

static void error_frames(void) {
  nl_writer w;
  nl_writer_begin(&w, buf, sizeof buf, NL_FRAME_ERROR);
  nl_write_u16(&w, 7);
  nl_write_string(&w, "no\x1b[31m space", 13);
  long n = nl_writer_finish(&w);
  nl_frame_error e;
  CHECK(nl_frame_parse_error(buf + 8, (size_t)n - 8, &e, err, sizeof err) == 0);
  CHECK(e.code == 7);
  CHECK_STR(e.message, "no?[31m space"); /* no escape reaches a terminal */
}

static void handshake(void) {
  uint8_t key[32], other[32], cn[32], sn[32];
  CHECK(nl_random(key, sizeof key) == 0);
  memcpy(other, key, sizeof other);
  other[31] ^= 1;
  CHECK(nl_random(cn, sizeof cn) == 0);
  CHECK(nl_random(sn, sizeof sn) == 0);
  CHECK(memcmp(cn, sn, 32) != 0);
  nl_auth_binding b = {.client_nonce = cn,
                       .server_nonce = sn,
                       .role = 0,
                       .sender_id = "5e4d",
                       .receiver_id = "7ec0"};
  uint8_t server[32], server_again[32], client[32], session[32];
  CHECK(nl_auth_derive(key, 32, NL_AUTH_SERVER_PROOF, &b, server) == 0);
  CHECK(nl_auth_derive(key, 32, NL_AUTH_SERVER_PROOF, &b, server_again) == 0);
  CHECK(nl_mac_equal(server, server_again));
  CHECK(nl_auth_derive(key, 32, NL_AUTH_CLIENT_PROOF, &b, client) == 0);
  CHECK(nl_auth_derive(key, 32, NL_AUTH_SESSION_KEY, &b, session) == 0);
  /* The three are different: a server proof cannot be replayed as the
   * client's, nor either used as the key. */
  CHECK(!nl_mac_equal(server, client) && !nl_mac_equal(client, session));
  /* Another key, other nonces, another role or other ids: other proofs. */
  uint8_t x[32];
  CHECK(nl_auth_derive(other, 32, NL_AUTH_CLIENT_PROOF, &b, x) == 0);
  CHECK(!nl_mac_equal(x, client));
  nl_auth_binding swapped = b;
  swapped.client_nonce = sn;
  swapped.server_nonce = cn;
  CHECK(nl_auth_derive(key, 32, NL_AUTH_CLIENT_PROOF, &swapped, x) == 0);
  CHECK(!nl_mac_equal(x, client));
  nl_auth_binding data = b;
  data.role = 1;
  CHECK(nl_auth_derive(key, 32, NL_AUTH_CLIENT_PROOF, &data, x) == 0);
  CHECK(!nl_mac_equal(x, client));
  nl_auth_binding elsewhere = b;
  elsewhere.receiver_id = "7ec1";
  CHECK(nl_auth_derive(key, 32, NL_AUTH_SERVER_PROOF, &elsewhere, x) == 0);
  CHECK(!nl_mac_equal(x, server));
  /* The ids are length-prefixed: moving a digit from one to the other
   * is another binding. */
  nl_auth_binding shifted = b;
  shifted.sender_id = "5e4d7";
  shifted.receiver_id = "ec0";
  CHECK(nl_auth_derive(key, 32, NL_AUTH_SERVER_PROOF, &shifted, x) == 0);
  CHECK(!nl_mac_equal(x, server));
  /* A key under 16 bytes is refused. */
  CHECK(nl_auth_derive(key, 15, NL_AUTH_CLIENT_PROOF, &b, x) == -1);
  uint8_t mac[32], mac2[32];
  CHECK(nl_mac(session, "header", 6, "payload", 7, mac) == 0);
  CHECK(nl_mac(session, "headerpay", 9, "load", 4, mac2) == 0);
  CHECK(nl_mac_equal(mac, mac2)); /* a MAC of the concatenation */
  CHECK(nl_mac(session, "header", 6, "payloaD", 7, mac2) == 0);
  CHECK(!nl_mac_equal(mac, mac2));
  /* A frame's MAC depends on its direction and its place in the order. */
  const uint8_t hdr[8] = "NL\x02\x14\0\0\0\x05";
  CHECK(nl_auth_frame_mac(session, 'R', 3, hdr, (const uint8_t *)"abcde", 5,
                          mac) == 0);
  CHECK(nl_auth_frame_mac(session, 'R', 4, hdr, (const uint8_t *)"abcde", 5,
                          mac2) == 0);
  CHECK(!nl_mac_equal(mac, mac2));
  CHECK(nl_auth_frame_mac(session, 'S', 3, hdr, (const uint8_t *)"abcde", 5,
                          mac2) == 0);
  CHECK(!nl_mac_equal(mac, mac2));
}

/* Known answers, computed with Python's hmac module from docs/protocol.md:
 * they pin the protocol for other implementations. */
static void known_answers(void) {
  uint8_t key[32], cn[32], sn[32], out[32];
  for (int i = 0; i < 32; i++)
    key[i] = (uint8_t)i;
  memset(cn, 1, sizeof cn);
  memset(sn, 2, sizeof sn);
  nl_auth_binding b = {.client_nonce = cn,
                       .server_nonce = sn,
                       .role = 0,
                       .sender_id = "5e4d",
                       .receiver_id = "7ec0"};
  char hex[NL_SHA256_HEX_SIZE];
  CHECK(nl_auth_derive(key, 32, NL_AUTH_SERVER_PROOF, &b, out) == 0);
  nl_sha256_hex(out, hex);
  CHECK_STR(hex,
            "10d78c744d1e2a5ecbcf1327e36377dba953354118cc4a015412f35642264648");
  CHECK(nl_auth_derive(key, 32, NL_AUTH_CLIENT_PROOF, &b, out) == 0);
  nl_sha256_hex(out, hex);
  CHECK_STR(hex,
            "a1160c058f6547434124ee504cd042d04587419859b0dca33031100bd070b44c");
  uint8_t session[32];
  CHECK(nl_auth_derive(key, 32, NL_AUTH_SESSION_KEY, &b, session) == 0);
  nl_sha256_hex(session, hex);
  CHECK_STR(hex,
            "293b3ba39461d49a5da43ede649365bd2ec617c0bb0a426275690f0f6ebb9f62");
  /* Here "header" stands for the 8 header bytes' place: 6 bytes, so the
   * frame MAC is taken over "S", 0 as 8 bytes, then the rest. */
  uint8_t a[6 + 2] = "header";
  a[6] = 'p';
  a[7] = 'a';
  CHECK(nl_auth_frame_mac(session, 'S', 0, a, (const uint8_t *)"yload", 5,
                          out) == 0);
  nl_sha256_hex(out, hex);
  CHECK_STR(hex,
            "d756853c4b122b9410d449dde1ff8eeb777cc17f9d08076bbf80000dc65fc424");
}

int main(void) {
  known_answers();
  headers();
  hellos();
  names();
  offers();
  accepts();
  data_frames();
  error_frames();
  rdma_frames();
  handshake();
  return check_report("test_frame");
}
