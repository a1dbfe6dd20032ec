/* The liveness probe: an application-level question on the transfer port
 * (the shared port of core/port.h hands the responder its request lines),
 * which tells a live peer from one that vanished without a goodbye (crash,
 * cable pulled) long before the mDNS cache would.
 *
 * The wire (version 2, docs/protocol.md): the prober connects and sends
 * one line, "NODELUA 2 PROBE <nonce>", then " <its id> <its port>" when it
 * is itself a peer, then " <mac>" when it holds the cluster key, and a
 * newline. The nonce is 32 fresh hex digits; the MAC (64 hex digits) is
 * HMAC(Kp, "nodelua-v2 probe" || the line before " <mac>"), with
 * Kp = HMAC(K, "nodelua-v2 probe key"). The responder answers with its
 * hello and closes:
 *   - to a request whose MAC it verified (it holds the same key): the full
 *     hello (one line of JSON: id, name, version, addresses with link kind
 *     and speed), then "MAC <hex>\n" with HMAC(Kp, "nodelua-v2 hello" ||
 *     nonce || the hello's line), which the prober checks;
 *   - to anyone else: the public hello, one line with id, name and
 *     version only, and no MAC.
 * Anything else gets "NODELUA ERR <why>\n" and a close.
 *
 * The introduction lets a node that was asked learn of the asker at once,
 * from the address the question came from, instead of waiting for the
 * asker's own mDNS registration (which Avahi probes for about a second).
 * A responder that holds the key takes introductions only from requests
 * whose MAC it verified. */
#ifndef NODELUA_DISCOVERY_PROBE_H
#define NODELUA_DISCOVERY_PROBE_H

#include "core/port.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include <stdbool.h>

#define NL_PROBE_REPLY_MAX (64 * 1024)
#define NL_PROBE_ID_MAX 64
#define NL_PROBE_NONCE_HEX 32
#define NL_PROBE_MAC_HEX 64
#define NL_PROBE_LINE_MAX NL_PORT_LINE_MAX
#define NL_PROBE_KEY_SIZE 32

typedef struct {
  char nonce[NL_PROBE_NONCE_HEX + 1];
  char id[NL_PROBE_ID_MAX + 1];   /* "" without an introduction */
  int port;                       /* 0 without an introduction */
  char mac[NL_PROBE_MAC_HEX + 1]; /* "" when the prober has no key */
  size_t signed_len;              /* bytes of the line the MAC covers */
} nl_probe_request;

/* Parses one request line (without its newline) into out. Returns 0, -1
 * for anything malformed, or -2 for a probe of another version ("NODELUA
 * 1 PROBE..."). Hex is taken in either case, and lower-cased. */
int nl_probe_parse_request(const char *line, size_t len, nl_probe_request *out);

/* Kp, the key of probes and hellos, from the cluster key. 0 or -1. */
int nl_probe_key(const uint8_t *cluster_key, size_t len,
                 uint8_t out[NL_PROBE_KEY_SIZE]);

typedef struct nl_probe_responder nl_probe_responder;

/* The answering side, with nothing to answer until a hello is set. It
 * answers the request lines that the shared port (core/port.h) hands it:
 * give nl_probe_responder_answer to nl_port_on_line. NULL when out of
 * memory. */
nl_probe_responder *nl_probe_responder_new(void);
/* The line handler for nl_port_on_line (ud: the responder). */
void nl_probe_responder_answer(void *responder, nl_port_conn *conn,
                               const char *line, size_t len);
/* What the next probes are answered with (copied; one line each, at most
 * NL_PROBE_REPLY_MAX - 100 bytes): the full hello, for probers that proved
 * the key, and the public one, for the rest. Returns 0 or UV_E2BIG /
 * UV_ENOMEM. */
int nl_probe_responder_set_hello(nl_probe_responder *r, const char *full,
                                 size_t full_len, const char *public_hello,
                                 size_t public_len);
/* The probe key (NULL: none). Without one every prober gets the public
 * hello and introductions are taken from anyone. */
void nl_probe_responder_set_key(nl_probe_responder *r,
                                const uint8_t key[NL_PROBE_KEY_SIZE]);
/* Called (on the loop, after the answer is sent) for each probe that
 * introduced its sender: the address it came from, its id and port. */
typedef void (*nl_probe_asker_cb)(void *ud, const char *address, const char *id,
                                  int port);
void nl_probe_responder_on_asker(nl_probe_responder *r, nl_probe_asker_cb cb,
                                 void *ud);
/* Frees the responder; the port must no longer hand it lines (close the
 * port first, or set another line handler). Safe on NULL. */
void nl_probe_responder_free(nl_probe_responder *r);

typedef struct nl_probe nl_probe;

typedef struct {
  int status;        /* 0, or a libuv error (UV_ETIMEDOUT, UV_ECONNREFUSED..) */
  const char *reply; /* the hello's line without its newline; status 0 */
  size_t reply_len;
  /* The hello carried a MAC that matches under the probe key, over this
   * probe's nonce: it is from a holder of the key, and fresh. */
  bool verified;
  const char *local_address; /* the address this host used; "" if unknown */
  double rtt_ms;             /* connect to end of reply */
} nl_probe_result;

typedef void (*nl_probe_cb)(void *ud, const nl_probe_result *result);

/* Probes address (numeric IPv4/IPv6, "%scope" allowed) on port,
 * introducing this node as self_id and self_port when self_id is not NULL,
 * with the probe key when key is not NULL; cb runs exactly once unless
 * nl_probe_cancel comes first. Returns 0 or a libuv error (bad address or
 * introduction, no memory), in which case cb never runs. */
int nl_probe_start(uv_loop_t *loop, const char *address, int port,
                   unsigned timeout_ms, const char *self_id, int self_port,
                   const uint8_t *key, nl_probe_cb cb, void *ud,
                   nl_probe **out);
void nl_probe_cancel(nl_probe *probe);

#endif
