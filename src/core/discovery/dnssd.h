/* dns_sd on the libuv loop: Bonjour on macOS, Avahi's compatibility library
 * on Linux. Each operation owns one DNSServiceRef whose socket is watched by
 * a uv_poll, so results arrive as loop callbacks and nothing blocks.
 *
 * Only what both backends do is used: no flags on calls (Avahi refuses
 * them), no DNSServiceGetAddrInfo (Avahi lacks it) and no
 * DNSServiceQueryRecord (Avahi's accepts the call and never answers). Host
 * names are turned into addresses by getaddrinfo on a worker thread, which
 * reaches mDNS through nss-mdns on Linux and natively on macOS. */
#ifndef NODELUA_DISCOVERY_DNSSD_H
#define NODELUA_DISCOVERY_DNSSD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct nl_dnssd_op nl_dnssd_op;

typedef enum {
  NL_DNSSD_ADDED,    /* browse: an instance appeared on an interface */
  NL_DNSSD_REMOVED,  /* browse: it said goodbye there (or expired) */
  NL_DNSSD_RESOLVED, /* resolve: host, port and TXT of an instance */
  NL_DNSSD_REGISTERED,
  NL_DNSSD_FAILED, /* the daemon went away or refused: the op is dead */
} nl_dnssd_event_kind;

typedef struct {
  nl_dnssd_event_kind kind;
  uint32_t ifindex;
  const char *name; /* instance name (browse, register) */
  const char *type, *domain;
  const char *host; /* resolve: target host, e.g. "node-7.local." */
  uint16_t port;    /* resolve: host order */
  const unsigned char *txt;
  size_t txt_len;
  int error;           /* FAILED: the DNSServiceErrorType */
  const char *message; /* FAILED: what it means, with the fix */
} nl_dnssd_event;

typedef void (*nl_dnssd_cb)(void *ud, const nl_dnssd_event *ev);

/* Each returns 0 and the op in *out, or the (negative) dns_sd error with a
 * message in err naming the likely fix. cb may run many times until
 * nl_dnssd_close; after a FAILED event it never runs again. */
int nl_dnssd_register(uv_loop_t *loop, const char *name, const char *type,
                      uint16_t port, const unsigned char *txt, size_t txt_len,
                      nl_dnssd_cb cb, void *ud, nl_dnssd_op **out, char *err,
                      size_t errlen);
int nl_dnssd_browse(uv_loop_t *loop, const char *type, nl_dnssd_cb cb, void *ud,
                    nl_dnssd_op **out, char *err, size_t errlen);
int nl_dnssd_resolve(uv_loop_t *loop, uint32_t ifindex, const char *name,
                     const char *type, const char *domain, nl_dnssd_cb cb,
                     void *ud, nl_dnssd_op **out, char *err, size_t errlen);
/* Replaces the TXT record of a registration. */
int nl_dnssd_update_txt(nl_dnssd_op *op, const unsigned char *txt,
                        size_t txt_len);

/* Stops the op; no callback runs after this returns. Safe on NULL. */
void nl_dnssd_close(nl_dnssd_op *op);

/* What a dns_sd error code means for an operator, one line. */
const char *nl_dnssd_strerror(int error);

#endif
