/* The encrypted mode of the peer protocol (docs/protocol.md): TLS 1.3 over
 * a connected blocking socket, keyed by an external PSK derived from the
 * cluster key, with an ephemeral (EC)DHE exchange for forward secrecy. No
 * certificates: holding the key is what is proved, by both sides. The
 * framed protocol then runs inside unchanged. */
#ifndef NODELUA_TRANSFER_TLS_H
#define NODELUA_TRANSFER_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

typedef struct nl_tls nl_tls;

/* The first byte of a TLS handshake record: how the listener tells an
 * encrypted connection from a framed one ("NL"). */
#define NL_TLS_RECORD_HANDSHAKE 0x16

/* Handshakes as the client (the sender) on fd. Returns the connection, or
 * NULL with one line in err. fd stays the caller's. */
nl_tls *nl_tls_client(int fd, const uint8_t *key, size_t key_len, char *err,
                      size_t errlen);

/* Handshakes as the server (the receiver) on fd, whose first prefix_len
 * bytes were read already (prefix, copied). Every read and write, the
 * handshake's included, must end by deadline (NULL: none) until
 * nl_tls_set_deadline changes it. Returns the connection, or NULL with one
 * line in err. */
nl_tls *nl_tls_server(int fd, const void *prefix, size_t prefix_len,
                      const uint8_t *key, size_t key_len,
                      const struct timespec *deadline, char *err,
                      size_t errlen);

/* A new deadline for reads and writes, or none (NULL). */
void nl_tls_set_deadline(nl_tls *t, const struct timespec *deadline);

/* Writes all n bytes. Returns 0 or -1. */
int nl_tls_write(nl_tls *t, const void *p, size_t n);

/* Reads up to n bytes: returns how many (> 0), 0 at the end of the
 * connection, -1 on an error, or -2 when a record other than data was
 * read and nothing is there for now. */
ssize_t nl_tls_read(nl_tls *t, void *p, size_t n);

/* Whether bytes already decrypted wait to be read: a poll on the socket
 * does not see them. */
bool nl_tls_pending(nl_tls *t);

/* Says close_notify (best effort) and frees; fd stays open. NULL is fine. */
void nl_tls_free(nl_tls *t);

#endif
