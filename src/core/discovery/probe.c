#include "probe.h"

#include "core/hash.h"
#include "core/mac.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the responder ---- */

struct nl_probe_responder {
  nl_probe_asker_cb on_asker;
  void *asker_ud;
  char *hello; /* the full hello, with its newline */
  size_t hello_len;
  char *public_hello; /* id, name, version: for probers without the key */
  size_t public_len;
  uint8_t key[NL_PROBE_KEY_SIZE];
  bool has_key;
};

/* An introduction, reported once the answer is written. */
typedef struct {
  nl_probe_asker_cb cb;
  void *ud;
  char id[NL_PROBE_ID_MAX + 1];
  int port;
} introduction;

static void on_answer_sent(void *ud, int sent, const char *address) {
  introduction *intro = ud;
  if (sent)
    intro->cb(intro->ud, address, intro->id, intro->port);
  free(intro);
}

static bool is_hex(char ch) {
  return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
         (ch >= 'A' && ch <= 'F');
}

/* Reads count hex digits at line[*pos] into out (lower-cased), exactly:
 * the next byte must be a space or the end. */
static bool read_hex(const char *line, size_t len, size_t *pos, size_t min,
                     size_t max, char *out) {
  size_t n = 0;
  while (*pos < len && is_hex(line[*pos]) && n < max) {
    char ch = line[(*pos)++];
    out[n++] = (char)(ch >= 'A' && ch <= 'F' ? ch - 'A' + 'a' : ch);
  }
  out[n] = '\0';
  return n >= min && (*pos == len || line[*pos] == ' ');
}

static bool read_port(const char *line, size_t len, size_t *pos, int *port) {
  long value = 0;
  size_t digits = 0, start = *pos;
  while (*pos < len && line[*pos] >= '0' && line[*pos] <= '9' && digits < 5) {
    value = value * 10 + (line[(*pos)++] - '0');
    digits++;
  }
  if (digits == 0 || (*pos < len && line[*pos] != ' ') || value < 1 ||
      value > 65535 || (digits > 1 && line[start] == '0'))
    return false;
  *port = (int)value;
  return true;
}

int nl_probe_parse_request(const char *line, size_t len,
                           nl_probe_request *out) {
  static const char head[] = "NODELUA 2 PROBE ";
  const size_t head_len = sizeof head - 1;
  memset(out, 0, sizeof *out);
  if (len >= 10 && memcmp(line, "NODELUA ", 8) == 0 && line[8] != '2' &&
      line[9] == ' ')
    return -2;
  if (len < head_len || memcmp(line, head, head_len) != 0)
    return -1;
  size_t pos = head_len;
  if (!read_hex(line, len, &pos, NL_PROBE_NONCE_HEX, NL_PROBE_NONCE_HEX,
                out->nonce))
    return -1;
  /* Then, each after one space: an introduction (id and port), a MAC, or
   * both in that order. A MAC is the only 64-digit word not followed by a
   * port. */
  char word[NL_PROBE_MAC_HEX + 1];
  out->signed_len = pos;
  if (pos == len)
    return 0;
  pos++;
  if (!read_hex(line, len, &pos, 1, NL_PROBE_MAC_HEX, word))
    return -1;
  if (pos < len) {
    /* An id, then its port. */
    if (strlen(word) > NL_PROBE_ID_MAX)
      return -1;
    pos++;
    if (!read_port(line, len, &pos, &out->port))
      return -1;
    memcpy(out->id, word, strlen(word) + 1);
    out->signed_len = pos;
    if (pos == len)
      return 0;
    pos++;
    if (!read_hex(line, len, &pos, NL_PROBE_MAC_HEX, NL_PROBE_MAC_HEX, word) ||
        pos != len)
      return -1;
  } else if (strlen(word) != NL_PROBE_MAC_HEX) {
    return -1; /* an id without a port */
  }
  memcpy(out->mac, word, NL_PROBE_MAC_HEX + 1);
  return 0;
}

int nl_probe_key(const uint8_t *cluster_key, size_t len,
                 uint8_t out[NL_PROBE_KEY_SIZE]) {
  return nl_mac_derive_key(cluster_key, len, "nodelua-v2 probe key", out);
}

/* The MAC of a request's signed part, as hex. */
static int request_mac(const uint8_t key[NL_PROBE_KEY_SIZE], const char *line,
                       size_t signed_len, char out[NL_PROBE_MAC_HEX + 1]) {
  static const char label[] = "nodelua-v2 probe";
  uint8_t mac[NL_MAC_SIZE];
  if (nl_mac(key, label, sizeof label - 1, line, signed_len, mac) != 0)
    return -1;
  nl_hex(mac, sizeof mac, out);
  return 0;
}

/* The MAC of a hello's line for this nonce, as hex. */
static int hello_mac(const uint8_t key[NL_PROBE_KEY_SIZE], const char *nonce,
                     const char *hello, size_t len,
                     char out[NL_PROBE_MAC_HEX + 1]) {
  char a[sizeof "nodelua-v2 hello" - 1 + NL_PROBE_NONCE_HEX];
  memcpy(a, "nodelua-v2 hello", sizeof "nodelua-v2 hello" - 1);
  memcpy(a + sizeof "nodelua-v2 hello" - 1, nonce, NL_PROBE_NONCE_HEX);
  uint8_t mac[NL_MAC_SIZE];
  if (nl_mac(key, a, sizeof a, hello, len, mac) != 0)
    return -1;
  nl_hex(mac, sizeof mac, out);
  return 0;
}

static bool hex_equal(const char *a, const char *b) {
  /* Constant time, like every other comparison of MACs here. */
  return CRYPTO_memcmp(a, b, NL_PROBE_MAC_HEX) == 0;
}

static void reply_text(nl_port_conn *conn, const char *text) {
  nl_port_reply(conn, text, strlen(text), NULL, NULL);
}

/* Answers a probe: the full hello and its MAC to a prober that proved the
 * key, the public hello to anyone else. An introduction is taken from a
 * prober that proved the key, or from anyone when there is no key. */
void nl_probe_responder_answer(void *ud, nl_port_conn *conn, const char *line,
                               size_t len) {
  nl_probe_responder *r = ud;
  nl_probe_request req;
  int kind = nl_probe_parse_request(line, len, &req);
  if (kind == -2) {
    reply_text(conn, "NODELUA ERR protocol version 2 is spoken here; upgrade "
                     "the prober\n");
    return;
  }
  if (kind < 0) {
    reply_text(conn, "NODELUA ERR unknown request\n");
    return;
  }
  if (r->hello == NULL) {
    reply_text(conn, "NODELUA ERR starting\n"); /* not ready */
    return;
  }
  char expected[NL_PROBE_MAC_HEX + 1];
  bool proved = r->has_key && req.mac[0] != '\0' &&
                request_mac(r->key, line, req.signed_len, expected) == 0 &&
                hex_equal(expected, req.mac);
  introduction *intro = NULL;
  if (req.port != 0 && (proved || !r->has_key) && r->on_asker != NULL &&
      (intro = malloc(sizeof *intro)) != NULL) {
    intro->cb = r->on_asker;
    intro->ud = r->asker_ud;
    memcpy(intro->id, req.id, sizeof intro->id);
    intro->port = req.port;
  }
  nl_port_sent_cb sent = intro != NULL ? on_answer_sent : NULL;
  if (!proved) {
    nl_port_reply(conn, r->public_hello, r->public_len, sent, intro);
    return;
  }
  char mac[NL_PROBE_MAC_HEX + 1];
  char *text = malloc(r->hello_len + 5 + NL_PROBE_MAC_HEX + 1);
  if (text == NULL ||
      hello_mac(r->key, req.nonce, r->hello, r->hello_len - 1, mac) != 0) {
    free(text);
    free(intro);
    reply_text(conn, "NODELUA ERR out of memory\n");
    return;
  }
  memcpy(text, r->hello, r->hello_len);
  int n =
      snprintf(text + r->hello_len, 5 + NL_PROBE_MAC_HEX + 1, "MAC %s\n", mac);
  nl_port_reply(conn, text, r->hello_len + (size_t)n, sent, intro);
  free(text);
}

nl_probe_responder *nl_probe_responder_new(void) {
  return calloc(1, sizeof(nl_probe_responder));
}

void nl_probe_responder_on_asker(nl_probe_responder *r, nl_probe_asker_cb cb,
                                 void *ud) {
  r->on_asker = cb;
  r->asker_ud = ud;
}

/* A copy of a line with its newline, or NULL. */
static char *line_copy(const char *text, size_t len) {
  char *copy = malloc(len + 1);
  if (copy != NULL) {
    memcpy(copy, text, len);
    copy[len] = '\n';
  }
  return copy;
}

int nl_probe_responder_set_hello(nl_probe_responder *r, const char *full,
                                 size_t full_len, const char *public_hello,
                                 size_t public_len) {
  /* Room for the MAC line after the full hello. */
  if (full_len >= NL_PROBE_REPLY_MAX - 100 ||
      public_len >= NL_PROBE_REPLY_MAX - 100)
    return UV_E2BIG;
  char *a = line_copy(full, full_len), *b = line_copy(public_hello, public_len);
  if (a == NULL || b == NULL) {
    free(a);
    free(b);
    return UV_ENOMEM;
  }
  free(r->hello);
  free(r->public_hello);
  r->hello = a;
  r->hello_len = full_len + 1;
  r->public_hello = b;
  r->public_len = public_len + 1;
  return 0;
}

void nl_probe_responder_set_key(nl_probe_responder *r,
                                const uint8_t key[NL_PROBE_KEY_SIZE]) {
  r->has_key = key != NULL;
  if (key != NULL)
    memcpy(r->key, key, NL_PROBE_KEY_SIZE);
  else
    OPENSSL_cleanse(r->key, sizeof r->key);
}

void nl_probe_responder_free(nl_probe_responder *r) {
  if (r == NULL)
    return;
  free(r->hello);
  free(r->public_hello);
  OPENSSL_cleanse(r->key, sizeof r->key);
  free(r);
}

/* ---- the prober ---- */

struct nl_probe {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_connect_t connect_req;
  uv_write_t write_req;
  nl_probe_cb cb;
  void *ud;
  char *buf;
  size_t len, cap;
  uint64_t started_ms;
  char local[64];
  char request[NL_PROBE_LINE_MAX];
  char nonce[NL_PROBE_NONCE_HEX + 1];
  uint8_t key[NL_PROBE_KEY_SIZE];
  bool has_key;
  int open_handles;
  bool done;
};

static void probe_free_cb(uv_handle_t *handle) {
  nl_probe *p = handle->data;
  if (--p->open_handles == 0) {
    free(p->buf);
    free(p);
  }
}

/* Whether the line after the hello is "MAC <hex>" and the MAC is the
 * hello's, for this probe's nonce, under our key. */
static bool hello_verified(const nl_probe *p, const char *hello, size_t len,
                           const char *after) {
  size_t rest = p->len - (size_t)(after - p->buf);
  char expected[NL_PROBE_MAC_HEX + 1];
  return p->has_key && rest >= 4 + NL_PROBE_MAC_HEX &&
         memcmp(after, "MAC ", 4) == 0 &&
         hello_mac(p->key, p->nonce, hello, len, expected) == 0 &&
         hex_equal(expected, after + 4);
}

static void finish(nl_probe *p, int status) {
  if (p->done)
    return;
  p->done = true;
  nl_probe_cb cb = p->cb;
  p->cb = NULL;
  if (cb != NULL) {
    nl_probe_result r = {.status = status, .local_address = p->local};
    if (status == 0) {
      char *newline = memchr(p->buf, '\n', p->len);
      r.reply = p->buf;
      r.reply_len = newline != NULL ? (size_t)(newline - p->buf) : p->len;
      if (r.reply_len >= 11 && memcmp(p->buf, "NODELUA ERR", 11) == 0)
        r.status = UV_EPROTO;
      r.verified = r.status == 0 && newline != NULL &&
                   hello_verified(p, r.reply, r.reply_len, newline + 1);
    }
    r.rtt_ms = (double)(uv_now(p->tcp.loop) - p->started_ms);
    cb(p->ud, &r);
  }
  uv_close((uv_handle_t *)&p->tcp, probe_free_cb);
  uv_close((uv_handle_t *)&p->timer, probe_free_cb);
}

static void on_probe_timeout(uv_timer_t *timer) {
  finish(timer->data, UV_ETIMEDOUT);
}

static void probe_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  nl_probe *p = handle->data;
  if (p->cap - p->len < 4096 && p->cap < NL_PROBE_REPLY_MAX) {
    size_t cap = p->cap == 0 ? 4096 : p->cap * 2;
    if (cap > NL_PROBE_REPLY_MAX)
      cap = NL_PROBE_REPLY_MAX;
    char *grown = realloc(p->buf, cap);
    if (grown != NULL) {
      p->buf = grown;
      p->cap = cap;
    }
  }
  buf->base = p->buf != NULL ? p->buf + p->len : NULL;
  buf->len = p->cap - p->len;
}

static void on_probe_read(uv_stream_t *stream, ssize_t nread,
                          const uv_buf_t *buf) {
  (void)buf;
  nl_probe *p = stream->data;
  if (p->done)
    return;
  if (nread == UV_EOF) {
    finish(p, p->len > 0 ? 0 : UV_EPROTO);
  } else if (nread < 0) {
    finish(p, (int)nread);
  } else {
    p->len += (size_t)nread;
    if (p->len == NL_PROBE_REPLY_MAX)
      finish(p, UV_E2BIG);
    else if (nread == 0 && p->cap == p->len)
      finish(p, UV_ENOMEM);
  }
}

static void on_probe_written(uv_write_t *req, int status) {
  nl_probe *p = req->data;
  if (status != 0)
    finish(p, status);
}

static void on_probe_connect(uv_connect_t *req, int status) {
  nl_probe *p = req->data;
  if (p->done)
    return;
  if (status != 0) {
    finish(p, status);
    return;
  }
  struct sockaddr_storage local;
  int local_len = sizeof local;
  if (uv_tcp_getsockname(&p->tcp, (struct sockaddr *)&local, &local_len) == 0) {
    if (local.ss_family == AF_INET6)
      uv_ip6_name((struct sockaddr_in6 *)&local, p->local, sizeof p->local);
    else
      uv_ip4_name((struct sockaddr_in *)&local, p->local, sizeof p->local);
  }
  uv_buf_t buf = uv_buf_init(p->request, (unsigned)strlen(p->request));
  p->write_req.data = p;
  int rc = uv_write(&p->write_req, (uv_stream_t *)&p->tcp, &buf, 1,
                    on_probe_written);
  if (rc == 0)
    rc = uv_read_start((uv_stream_t *)&p->tcp, probe_alloc, on_probe_read);
  if (rc != 0)
    finish(p, rc);
}

int nl_probe_start(uv_loop_t *loop, const char *address, int port,
                   unsigned timeout_ms, const char *self_id, int self_port,
                   const uint8_t *key, nl_probe_cb cb, void *ud,
                   nl_probe **out) {
  *out = NULL;
  struct sockaddr_storage ss;
  if (port < 1 || port > 65535)
    return UV_EINVAL;
  /* A fresh nonce: the hello's MAC covers it, so that no recorded hello
   * answers this probe. */
  uint8_t raw[NL_PROBE_NONCE_HEX / 2];
  char nonce[NL_PROBE_NONCE_HEX + 1];
  if (nl_random(raw, sizeof raw) != 0)
    return UV_EIO;
  nl_hex(raw, sizeof raw, nonce);
  char request[NL_PROBE_LINE_MAX];
  int n;
  if (self_id == NULL)
    n = snprintf(request, sizeof request, "NODELUA 2 PROBE %s", nonce);
  else
    n = snprintf(request, sizeof request, "NODELUA 2 PROBE %s %s %d", nonce,
                 self_id, self_port);
  if (n < 0 || (size_t)n >= sizeof request - NL_PROBE_MAC_HEX - 3)
    return UV_EINVAL;
  if (key != NULL) {
    char mac[NL_PROBE_MAC_HEX + 1];
    if (request_mac(key, request, (size_t)n, mac) != 0)
      return UV_EIO;
    n += snprintf(request + n, sizeof request - (size_t)n, " %s", mac);
  }
  nl_probe_request check;
  if (nl_probe_parse_request(request, (size_t)n, &check) != 0 ||
      (self_id != NULL && check.port == 0))
    return UV_EINVAL;
  request[n] = '\n';
  request[n + 1] = '\0';
  if (uv_ip4_addr(address, port, (struct sockaddr_in *)&ss) != 0 &&
      uv_ip6_addr(address, port, (struct sockaddr_in6 *)&ss) != 0)
    return UV_EINVAL;
  /* uv_ip6_addr takes any string with a colon; make sure it was one. */
  if (ss.ss_family == AF_INET6 && strchr(address, ':') == NULL)
    return UV_EINVAL;
  nl_probe *p = calloc(1, sizeof *p);
  if (p == NULL)
    return UV_ENOMEM;
  p->cb = cb;
  p->ud = ud;
  memcpy(p->request, request, sizeof request);
  memcpy(p->nonce, nonce, sizeof nonce);
  if (key != NULL) {
    memcpy(p->key, key, NL_PROBE_KEY_SIZE);
    p->has_key = true;
  }
  uv_tcp_init(loop, &p->tcp);
  uv_timer_init(loop, &p->timer);
  p->tcp.data = p->timer.data = p->connect_req.data = p;
  p->open_handles = 2;
  /* The round trip and the deadline count from now, not from when the loop
   * last turned (see bind/timer.c). */
  uv_update_time(loop);
  p->started_ms = uv_now(loop);
  int rc = uv_tcp_connect(&p->connect_req, &p->tcp, (struct sockaddr *)&ss,
                          on_probe_connect);
  if (rc != 0) {
    p->cb = NULL;
    finish(p, rc);
    return rc;
  }
  uv_timer_start(&p->timer, on_probe_timeout, timeout_ms, 0);
  *out = p;
  return 0;
}

void nl_probe_cancel(nl_probe *probe) {
  if (probe == NULL)
    return;
  probe->cb = NULL;
  finish(probe, UV_ECANCELED);
}
