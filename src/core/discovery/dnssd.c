#include "dnssd.h"

#include <arpa/inet.h> /* htons: Bonjour's dns_sd.h does not bring it */
#include <dns_sd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* kDNSServiceErr_ServiceNotRunning: Bonjour's header has it, Avahi's not. */
#define SERVICE_NOT_RUNNING (-65563)

struct nl_dnssd_op {
  uv_poll_t poll;
  DNSServiceRef ref;
  nl_dnssd_cb cb;
  void *ud;
  bool polling;
  bool closed;
  bool dispatching; /* inside DNSServiceProcessResult */
};

#if defined(__APPLE__)
#define DAEMON_HINT                                                            \
  "mDNSResponder is not answering: it is part of macOS, check `sudo "          \
  "launchctl list com.apple.mDNSResponder`"
#else
#define DAEMON_HINT                                                            \
  "avahi-daemon (or the D-Bus system bus it needs) is not running: start it "  \
  "with `sudo systemctl enable --now avahi-daemon` (Debian/Ubuntu package "    \
  "avahi-daemon)"
#endif

const char *nl_dnssd_strerror(int error) {
  switch (error) {
  case kDNSServiceErr_NoError:
    return "no error";
  case SERVICE_NOT_RUNNING:
  case kDNSServiceErr_Unknown:
  case kDNSServiceErr_Refused:
    return DAEMON_HINT;
  case kDNSServiceErr_NameConflict:
    return "the service name is already taken on this network";
  case kDNSServiceErr_BadParam:
    return "a bad parameter (a name over 63 bytes, or a TXT record over 65535)";
  case kDNSServiceErr_NoMemory:
    return "out of memory";
  case kDNSServiceErr_Unsupported:
    return "not supported by this dns_sd implementation";
  default:
    return "dns_sd failed";
  }
}

static void fail(nl_dnssd_op *op, int error) {
  nl_dnssd_event ev = {.kind = NL_DNSSD_FAILED,
                       .error = error,
                       .message = nl_dnssd_strerror(error)};
  nl_dnssd_cb cb = op->cb;
  op->cb = NULL; /* FAILED is the last event */
  if (cb != NULL)
    cb(op->ud, &ev);
}

static void free_op(uv_handle_t *handle) { free(handle->data); }

static void release(nl_dnssd_op *op) {
  if (op->ref != NULL) {
    DNSServiceRefDeallocate(op->ref);
    op->ref = NULL;
  }
  if (op->polling)
    uv_close((uv_handle_t *)&op->poll, free_op);
  else
    free(op);
}

static void on_readable(uv_poll_t *poll, int status, int events) {
  (void)events;
  nl_dnssd_op *op = poll->data;
  if (op->closed || op->cb == NULL)
    return;
  int error = kDNSServiceErr_Unknown;
  if (status == 0) {
    op->dispatching = true;
    error = DNSServiceProcessResult(op->ref);
    op->dispatching = false;
  }
  if (op->closed) { /* closed by its own callback */
    release(op);
    return;
  }
  if (error != kDNSServiceErr_NoError) {
    uv_poll_stop(&op->poll);
    fail(op, error);
  }
}

/* Watches the socket of the ref that the dns_sd call (which returned
 * error) made, and hands the op out; or cleans up and explains. */
static int start(uv_loop_t *loop, nl_dnssd_op *op, int error, nl_dnssd_op **out,
                 char *err, size_t errlen) {
  if (error == kDNSServiceErr_NoError) {
    int fd = DNSServiceRefSockFD(op->ref);
    if (fd < 0) {
      error = kDNSServiceErr_Unknown;
    } else {
      int rc = uv_poll_init(loop, &op->poll, fd);
      if (rc == 0) {
        op->polling = true;
        op->poll.data = op;
        rc = uv_poll_start(&op->poll, UV_READABLE, on_readable);
      }
      if (rc != 0) {
        snprintf(err, errlen, "watching the dns_sd socket: %s",
                 uv_strerror(rc));
        release(op);
        return kDNSServiceErr_Unknown;
      }
      *out = op;
      return 0;
    }
  }
  snprintf(err, errlen, "%s (dns_sd error %d)", nl_dnssd_strerror(error),
           error);
  if (op->ref != NULL) {
    DNSServiceRefDeallocate(op->ref);
    op->ref = NULL;
  }
  free(op);
  return error;
}

static nl_dnssd_op *new_op(nl_dnssd_cb cb, void *ud, nl_dnssd_op **out,
                           char *err, size_t errlen) {
  *out = NULL;
  nl_dnssd_op *op = calloc(1, sizeof *op);
  if (op == NULL) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  op->cb = cb;
  op->ud = ud;
  return op;
}

/* Whether a dns_sd callback has anything to deliver: not when the op was
 * closed, and an error is the op's last event (FAILED). */
static bool deliverable(nl_dnssd_op *op, DNSServiceErrorType error) {
  if (op->closed || op->cb == NULL)
    return false;
  if (error != kDNSServiceErr_NoError) {
    fail(op, error);
    return false;
  }
  return true;
}

static void on_register(DNSServiceRef ref, DNSServiceFlags flags,
                        DNSServiceErrorType error, const char *name,
                        const char *type, const char *domain, void *ctx) {
  (void)ref;
  (void)flags;
  nl_dnssd_op *op = ctx;
  if (!deliverable(op, error))
    return;
  nl_dnssd_event ev = {.kind = NL_DNSSD_REGISTERED,
                       .name = name,
                       .type = type,
                       .domain = domain};
  op->cb(op->ud, &ev);
}

int nl_dnssd_register(uv_loop_t *loop, const char *name, const char *type,
                      uint16_t port, const unsigned char *txt, size_t txt_len,
                      nl_dnssd_cb cb, void *ud, nl_dnssd_op **out, char *err,
                      size_t errlen) {
  if (txt_len > UINT16_MAX) {
    *out = NULL;
    snprintf(err, errlen, "the TXT record is over 65535 bytes");
    return kDNSServiceErr_BadParam;
  }
  nl_dnssd_op *op = new_op(cb, ud, out, err, errlen);
  if (op == NULL)
    return kDNSServiceErr_NoMemory;
  int error = DNSServiceRegister(&op->ref, 0, kDNSServiceInterfaceIndexAny,
                                 name, type, NULL, NULL, htons(port),
                                 (uint16_t)txt_len, txt, on_register, op);
  return start(loop, op, error, out, err, errlen);
}

int nl_dnssd_update_txt(nl_dnssd_op *op, const unsigned char *txt,
                        size_t txt_len) {
  if (op == NULL || op->closed || op->ref == NULL || txt_len > UINT16_MAX)
    return kDNSServiceErr_BadParam;
  return DNSServiceUpdateRecord(op->ref, NULL, 0, (uint16_t)txt_len, txt, 0);
}

static void on_browse(DNSServiceRef ref, DNSServiceFlags flags,
                      uint32_t ifindex, DNSServiceErrorType error,
                      const char *name, const char *type, const char *domain,
                      void *ctx) {
  (void)ref;
  nl_dnssd_op *op = ctx;
  if (!deliverable(op, error))
    return;
  nl_dnssd_event ev = {.kind = (flags & kDNSServiceFlagsAdd) ? NL_DNSSD_ADDED
                                                             : NL_DNSSD_REMOVED,
                       .ifindex = ifindex,
                       .name = name,
                       .type = type,
                       .domain = domain};
  op->cb(op->ud, &ev);
}

int nl_dnssd_browse(uv_loop_t *loop, const char *type, nl_dnssd_cb cb, void *ud,
                    nl_dnssd_op **out, char *err, size_t errlen) {
  nl_dnssd_op *op = new_op(cb, ud, out, err, errlen);
  if (op == NULL)
    return kDNSServiceErr_NoMemory;
  int error = DNSServiceBrowse(&op->ref, 0, kDNSServiceInterfaceIndexAny, type,
                               NULL, on_browse, op);
  return start(loop, op, error, out, err, errlen);
}

static void on_resolve(DNSServiceRef ref, DNSServiceFlags flags,
                       uint32_t ifindex, DNSServiceErrorType error,
                       const char *fullname, const char *host, uint16_t port_be,
                       uint16_t txt_len, const unsigned char *txt, void *ctx) {
  (void)ref;
  (void)flags;
  (void)fullname;
  nl_dnssd_op *op = ctx;
  if (!deliverable(op, error))
    return;
  nl_dnssd_event ev = {.kind = NL_DNSSD_RESOLVED,
                       .ifindex = ifindex,
                       .host = host,
                       .port = ntohs(port_be),
                       .txt = txt,
                       .txt_len = txt_len};
  op->cb(op->ud, &ev);
}

int nl_dnssd_resolve(uv_loop_t *loop, uint32_t ifindex, const char *name,
                     const char *type, const char *domain, nl_dnssd_cb cb,
                     void *ud, nl_dnssd_op **out, char *err, size_t errlen) {
  nl_dnssd_op *op = new_op(cb, ud, out, err, errlen);
  if (op == NULL)
    return kDNSServiceErr_NoMemory;
  int error = DNSServiceResolve(&op->ref, 0, ifindex, name, type, domain,
                                on_resolve, op);
  return start(loop, op, error, out, err, errlen);
}

void nl_dnssd_close(nl_dnssd_op *op) {
  if (op == NULL || op->closed)
    return;
  op->closed = true;
  op->cb = NULL;
  if (op->polling)
    uv_poll_stop(&op->poll);
  /* Inside its own callback the ref is still in use by ProcessResult:
   * on_readable releases it once that returns. */
  if (!op->dispatching)
    release(op);
}
