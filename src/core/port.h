/* The shared TRANSFER_PORT: one TCP listener for the two protocols that
 * peers speak to a node. Each connection is told apart by its first bytes:
 *   - "NL" (a frame of the peer protocol) or a TLS handshake record: a file
 *     transfer, handed over to the framed handler (the transfer receiver)
 *     as a blocking socket, or refused with one ERROR frame when there is
 *     none;
 *   - anything else: one request line, given to the line handler (the
 *     probe responder), which answers it with nl_port_reply.
 * Before a connection is handed over or answered it costs the loop only:
 * at most NL_PORT_CONN_MAX at a time, each closed after a fixed deadline. */
#ifndef NODELUA_PORT_H
#define NODELUA_PORT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define NL_PORT_LINE_MAX 256
#define NL_PORT_CONN_MAX 256
#define NL_PORT_DEADLINE_MS 3000

typedef struct nl_port nl_port;
typedef struct nl_port_conn nl_port_conn;

/* Listens on host:port (host "" for every address, IPv6 and IPv4; port 0
 * for any free one). Returns 0, or a libuv error with a message in err. */
int nl_port_start(uv_loop_t *loop, const char *host, int port, nl_port **out,
                  char *err, size_t errlen);
/* The port it listens on (the one chosen, for port 0). */
int nl_port_number(const nl_port *port);

/* A request line (without its newline), at most NL_PORT_LINE_MAX bytes.
 * The handler must answer with nl_port_reply, at once. */
typedef void (*nl_port_line_cb)(void *ud, nl_port_conn *conn, const char *line,
                                size_t len);
void nl_port_on_line(nl_port *port, nl_port_line_cb cb, void *ud);

/* Called once after a reply: sent is 1 when it was written in full, with
 * the address the connection came from; 0 when it was not, or the port was
 * closed meanwhile (then address is ""). */
typedef void (*nl_port_sent_cb)(void *ud, int sent, const char *address);
/* Writes text (copied) and closes the connection; cb (may be NULL) is told
 * how it went. */
void nl_port_reply(nl_port_conn *conn, const char *text, size_t len,
                   nl_port_sent_cb cb, void *ud);

/* Framed and TLS connections. With a handler, each is handed over: cb gets
 * a blocking duplicate of the socket (its to close) and the bytes already
 * read, and the listener lets go of it. Without one (cb NULL), each is
 * answered with one ERROR frame carrying refusal, and closed. */
typedef void (*nl_port_framed_cb)(void *ud, int fd, const uint8_t *read,
                                  size_t len);
void nl_port_on_framed(nl_port *port, nl_port_framed_cb cb, void *ud,
                       const char *refusal);

/* Stops listening and drops open connections. Safe on NULL. */
void nl_port_close(nl_port *port);

#endif
