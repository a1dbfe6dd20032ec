/* The liveness probe: an application-level question on the transfer port,
 * which tells a live peer from one that vanished without a goodbye (crash,
 * cable pulled) long before the mDNS cache would.
 *
 * The wire: the prober connects and sends the line "NODELUA 1 PROBE\n", or
 * "NODELUA 1 PROBE <its id> <its port>\n" when it is itself a peer; the
 * responder answers with its hello (one line of JSON: id, name, version,
 * addresses with link kind and speed) and closes. Anything else gets
 * "NODELUA ERR <why>\n" and a close.
 *
 * The introduction lets a node that was asked learn of the asker at once,
 * from the address the question came from, instead of waiting for the
 * asker's own mDNS registration (which Avahi probes for about a second). */
#ifndef NODELUA_DISCOVERY_PROBE_H
#define NODELUA_DISCOVERY_PROBE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define NL_PROBE_REQUEST "NODELUA 1 PROBE\n"
#define NL_PROBE_REPLY_MAX (64 * 1024)
#define NL_PROBE_ID_MAX 64
#define NL_PROBE_LINE_MAX 128

/* Parses one request line (without its newline). Returns 0 for a plain
 * probe, 1 for one with an introduction (id: 1 to 64 hex digits, lower-
 * cased, into id[NL_PROBE_ID_MAX + 1]; port 1 to 65535), -1 for anything
 * else. */
int nl_probe_parse_request(const char *line, size_t len, char *id, int *port);

typedef struct nl_probe_server nl_probe_server;

/* Listens on host:port (host "" for every address, IPv6 and IPv4). Returns
 * 0, or a libuv error with a message in err. */
int nl_probe_server_start(uv_loop_t *loop, const char *host, int port,
                          nl_probe_server **out, char *err, size_t errlen);
int nl_probe_server_port(const nl_probe_server *srv);
/* What the next probes are answered with (copied; at most
 * NL_PROBE_REPLY_MAX - 1 bytes). Returns 0 or UV_E2BIG / UV_ENOMEM. */
int nl_probe_server_set_hello(nl_probe_server *srv, const char *text,
                              size_t len);
/* Called (on the loop, after the answer is sent) for each probe that
 * introduced its sender: the address it came from, its id and port. */
typedef void (*nl_probe_asker_cb)(void *ud, const char *address, const char *id,
                                  int port);
void nl_probe_server_on_asker(nl_probe_server *srv, nl_probe_asker_cb cb,
                              void *ud);
/* Framed connections of the peer protocol (their first bytes are "NL")
 * share the port. With a handler, each is handed over: cb gets a blocking
 * duplicate of the socket (its to close) and the bytes already read, and
 * the listener lets go of it. Without one, each is answered with one ERROR
 * frame carrying refusal, and closed. */
typedef void (*nl_probe_framed_cb)(void *ud, int fd, const uint8_t *read,
                                   size_t len);
void nl_probe_server_on_framed(nl_probe_server *srv, nl_probe_framed_cb cb,
                               void *ud, const char *refusal);
/* Stops listening and drops open connections. Safe on NULL. */
void nl_probe_server_close(nl_probe_server *srv);

typedef struct nl_probe nl_probe;

typedef struct {
  int status;        /* 0, or a libuv error (UV_ETIMEDOUT, UV_ECONNREFUSED..) */
  const char *reply; /* the reply without its newline; status 0 only */
  size_t reply_len;
  const char *local_address; /* the address this host used; "" if unknown */
  double rtt_ms;             /* connect to end of reply */
} nl_probe_result;

typedef void (*nl_probe_cb)(void *ud, const nl_probe_result *result);

/* Probes address (numeric IPv4/IPv6, "%scope" allowed) on port,
 * introducing this node as self_id and self_port when self_id is not NULL;
 * cb runs exactly once unless nl_probe_cancel comes first. Returns 0 or a
 * libuv error (bad address or introduction, no memory), in which case cb
 * never runs. */
int nl_probe_start(uv_loop_t *loop, const char *address, int port,
                   unsigned timeout_ms, const char *self_id, int self_port,
                   nl_probe_cb cb, void *ud, nl_probe **out);
void nl_probe_cancel(nl_probe *probe);

#endif
