/* The liveness probe and the control socket over loopback, on a real libuv
 * loop: answers, refusals, timeouts, cancellation, and the control socket's
 * framing, single-agent check and stale-socket recovery. */
#include "check.h"
#include "core/transfer/auth.h"
#include "net.h"
#include "core/control.h"
#include "core/discovery/probe.h"
#include "core/mac.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static uv_loop_t loop;

typedef struct {
  int calls;
  int status;
  char reply[256];
  char local[64];
  bool verified;
} probe_seen;

static void on_probe(void *ud, const nl_probe_result *r) {
  probe_seen *s = ud;
  s->calls++;
  s->status = r->status;
  if (r->reply != NULL) {
    size_t n =
        r->reply_len < sizeof s->reply - 1 ? r->reply_len : sizeof s->reply - 1;
    memcpy(s->reply, r->reply, n);
    s->reply[n] = '\0';
  }
  snprintf(s->local, sizeof s->local, "%s", r->local_address);
  s->verified = r->verified;
}

/* The shared port with the probe responder answering its lines, as the
 * agent sets it up (src/bind/port.c). */
typedef struct {
  nl_port *port;
  nl_probe_responder *responder;
} probe_server;

static probe_server *start_server(void) {
  static probe_server servers[8];
  static int next;
  probe_server *srv = &servers[next++ % 8];
  char err[256];
  srv->responder = nl_probe_responder_new();
  CHECK(srv->responder != NULL);
  CHECK(nl_port_start(&loop, "127.0.0.1", 0, &srv->port, err, sizeof err) == 0);
  CHECK(srv->port != NULL && nl_port_number(srv->port) > 0);
  nl_port_on_line(srv->port, nl_probe_responder_answer, srv->responder);
  return srv;
}

static void stop_server(probe_server *srv) {
  nl_port_close(srv->port);
  nl_probe_responder_free(srv->responder);
}

static probe_seen probe(int port, unsigned timeout_ms) {
  probe_seen s = {0};
  nl_probe *p;
  CHECK(nl_probe_start(&loop, "127.0.0.1", port, timeout_ms, NULL, 0, NULL,
                       on_probe, &s, &p) == 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  return s;
}

/* A port nobody listens on: bound, then closed. */
static int dead_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bind(fd, (struct sockaddr *)&sa, sizeof sa);
  socklen_t len = sizeof sa;
  getsockname(fd, (struct sockaddr *)&sa, &len);
  close(fd);
  return ntohs(sa.sin_port);
}

static void answers_with_hello(void) {
  probe_server *srv = start_server();
  int port = nl_port_number(srv->port);
  /* Before the hello is set: a clear "starting", not a hang. */
  probe_seen s = {0};
  nl_probe *p;
  CHECK(nl_probe_start(&loop, "127.0.0.1", port, 2000, NULL, 0, NULL, on_probe,
                       &s, &p) == 0);
  while (s.calls == 0)
    uv_run(&loop, UV_RUN_ONCE);
  CHECK(s.status == UV_EPROTO);
  CHECK_STR(s.reply, "NODELUA ERR starting");

  static const char hello[] = "{\"id\":\"00ff\",\"name\":\"n\"}";
  CHECK(nl_probe_responder_set_hello(srv->responder, hello, sizeof hello - 1,
                                     hello, sizeof hello - 1) == 0);
  memset(&s, 0, sizeof s);
  CHECK(nl_probe_start(&loop, "127.0.0.1", port, 2000, NULL, 0, NULL, on_probe,
                       &s, &p) == 0);
  while (s.calls == 0)
    uv_run(&loop, UV_RUN_ONCE);
  CHECK(s.calls == 1);
  CHECK(s.status == 0);
  CHECK_STR(s.reply, hello);
  CHECK_STR(s.local, "127.0.0.1");

  /* A hello too large for a probe's reply is refused, the old one kept. */
  char *big = malloc(NL_PROBE_REPLY_MAX);
  memset(big, 'x', NL_PROBE_REPLY_MAX);
  CHECK(nl_probe_responder_set_hello(srv->responder, big, NL_PROBE_REPLY_MAX,
                                     "{}", 2) == UV_E2BIG);
  free(big);
  stop_server(srv);
  uv_run(&loop, UV_RUN_DEFAULT);
}

static void refused_and_bad_addresses(void) {
  probe_seen s = probe(dead_port(), 2000);
  CHECK(s.calls == 1);
  CHECK(s.status == UV_ECONNREFUSED);
  nl_probe *p;
  CHECK(nl_probe_start(&loop, "not-an-address", 7879, 100, NULL, 0, NULL,
                       on_probe, &s, &p) == UV_EINVAL);
  CHECK(nl_probe_start(&loop, "127.0.0.1", 0, 100, NULL, 0, NULL, on_probe, &s,
                       &p) == UV_EINVAL);
  CHECK(nl_probe_start(&loop, "127.0.0.1", 70000, 100, NULL, 0, NULL, on_probe,
                       &s, &p) == UV_EINVAL);
}

static void times_out_and_cancels(void) {
  int port;
  int fd = test_listen(&port);
  probe_seen s = probe(port, 150);
  CHECK(s.calls == 1);
  CHECK(s.status == UV_ETIMEDOUT);

  /* Cancelled: the callback never runs, and the loop ends (no handle is
   * left behind). */
  memset(&s, 0, sizeof s);
  nl_probe *p;
  CHECK(nl_probe_start(&loop, "127.0.0.1", port, 5000, NULL, 0, NULL, on_probe,
                       &s, &p) == 0);
  uv_run(&loop, UV_RUN_NOWAIT);
  nl_probe_cancel(p);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(s.calls == 0);
  close(fd);
}

/* A client that speaks something else gets an error line, not a hello. */
typedef struct {
  int port;
  char got[128];
  const char *request; /* NULL: an HTTP request */
  atomic_bool done;    /* got is complete; the loop polls it */
} raw_client;

static void raw_client_thread(void *arg) {
  raw_client *c = arg;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)c->port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
    const char *request = c->request ? c->request : "GET / HTTP/1.0\r\n\r\n";
    if (write(fd, request, strlen(request)) > 0) {
      ssize_t n, total = 0;
      while ((n = read(fd, c->got + total, sizeof c->got - 1 - total)) > 0)
        total += n;
      c->got[total] = '\0';
    }
  }
  close(fd);
  atomic_store(&c->done, true);
}

/* A timer that only keeps the loop turning while a client thread works. */
static void keep_turning(uv_timer_t *t) { (void)t; }

static void refuses_other_requests(void) {
  probe_server *srv = start_server();
  CHECK(nl_probe_responder_set_hello(srv->responder, "{}", 2, "{}", 2) == 0);
  raw_client c = {.port = nl_port_number(srv->port)};
  uv_thread_t thread;
  uv_thread_create(&thread, raw_client_thread, &c);
  /* The loop serves until the client has its answer. */
  uv_timer_t tick;
  uv_timer_init(&loop, &tick);
  uv_timer_start(&tick, keep_turning, 10, 10);
  for (int i = 0; i < 500 && !atomic_load(&c.done); i++)
    uv_run(&loop, UV_RUN_ONCE);
  uv_thread_join(&thread);
  CHECK_STR(c.got, "NODELUA ERR unknown request\n");
  uv_close((uv_handle_t *)&tick, NULL);
  stop_server(srv);
  uv_run(&loop, UV_RUN_DEFAULT);
}

static void parses_requests(void) {
  nl_probe_request r;
  static const char nonce[] = "00112233445566778899aabbccddeeff";
  char line[300], mac[65];
  memset(mac, 'a', 64);
  mac[64] = '\0';
#define PARSE(text) nl_probe_parse_request(text, strlen(text), &r)
  snprintf(line, sizeof line, "NODELUA 2 PROBE %s", nonce);
  CHECK(PARSE(line) == 0 && r.port == 0 && r.id[0] == '\0' &&
        r.mac[0] == '\0' && r.signed_len == strlen(line));
  CHECK_STR(r.nonce, nonce);
  snprintf(line, sizeof line, "NODELUA 2 PROBE %s 00FFaa 7879", nonce);
  CHECK(PARSE(line) == 0 && r.port == 7879 && r.mac[0] == '\0');
  CHECK_STR(r.id, "00ffaa");
  snprintf(line, sizeof line, "NODELUA 2 PROBE %s 00ffaa 7879 %s", nonce, mac);
  CHECK(PARSE(line) == 0 && r.port == 7879);
  CHECK_STR(r.mac, mac);
  CHECK(r.signed_len == strlen(line) - 65); /* all but " <mac>" */
  snprintf(line, sizeof line, "NODELUA 2 PROBE %s %s", nonce, mac);
  CHECK(PARSE(line) == 0 && r.port == 0);
  CHECK_STR(r.mac, mac);
  const char *bad[] = {
      "NODELUA 2 PROBE",
      "NODELUA 2 PROBE 0011",                                /* short nonce */
      "NODELUA 2 PROBE 00112233445566778899aabbccddeeff ab", /* no port */
      "NODELUA 2 PROBE 00112233445566778899aabbccddeeff ab 0",
      "NODELUA 2 PROBE 00112233445566778899aabbccddeeff ab 65536",
      "NODELUA 2 PROBE 00112233445566778899aabbccddeeff ab 07879",
      "NODELUA 2 PROBE 00112233445566778899aabbccddeeff ab 7879 ",
      "NODELUA 2 PROBE 00112233445566778899aabbccddeeff ab  7879",
      "NODELUA 2 PROBE 00112233445566778899aabbccddeeff xyz 7879",
      "NODELUA 2 PROBE 00112233445566778899aabbccddeeff ab 7879 abc",
      "NODELUA 2 PROBEX",
      "",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    CHECK(PARSE(bad[i]) == -1);
  /* Another version is told apart from garbage. */
  CHECK(PARSE("NODELUA 1 PROBE") == -2);
  CHECK(PARSE("NODELUA 1 PROBE ab 7879") == -2);
  char long_id[300];
  snprintf(long_id, sizeof long_id, "NODELUA 2 PROBE %s ", nonce);
  memset(long_id + strlen(long_id), 'a', 65);
  strcpy(long_id + 16 + 32 + 1 + 65, " 1");
  CHECK(PARSE(long_id) == -1); /* 65 hex digits: over NL_PROBE_ID_MAX */
#undef PARSE
}

typedef struct {
  int calls;
  char address[64], id[NL_PROBE_ID_MAX + 1];
  int port;
} asker_seen;

static void on_asker(void *ud, const char *address, const char *id, int port) {
  asker_seen *a = ud;
  a->calls++;
  snprintf(a->address, sizeof a->address, "%s", address);
  snprintf(a->id, sizeof a->id, "%s", id);
  a->port = port;
}

/* A probe that introduces its sender is answered, then reported with the
 * address it came from; a plain probe is not reported. */
static void introductions(void) {
  probe_server *srv = start_server();
  CHECK(nl_probe_responder_set_hello(srv->responder, "{}", 2, "{}", 2) == 0);
  asker_seen a = {0};
  nl_probe_responder_on_asker(srv->responder, on_asker, &a);
  int port = nl_port_number(srv->port);
  probe_seen s = {0};
  nl_probe *p;
  CHECK(nl_probe_start(&loop, "127.0.0.1", port, 2000, "c0ffee", 4242, NULL,
                       on_probe, &s, &p) == 0);
  while (s.calls == 0 || a.calls == 0)
    uv_run(&loop, UV_RUN_ONCE);
  CHECK(s.status == 0);
  CHECK(a.calls == 1);
  CHECK(strstr(a.address, "127.0.0.1") != NULL); /* maybe ::ffff:-mapped */
  CHECK_STR(a.id, "c0ffee");
  CHECK(a.port == 4242);
  memset(&s, 0, sizeof s);
  CHECK(nl_probe_start(&loop, "127.0.0.1", port, 2000, NULL, 0, NULL, on_probe,
                       &s, &p) == 0);
  while (s.calls == 0)
    uv_run(&loop, UV_RUN_ONCE);
  CHECK(a.calls == 1);
  /* An introduction that is not one is refused before anything is sent. */
  CHECK(nl_probe_start(&loop, "127.0.0.1", port, 2000, "not hex", 1, NULL,
                       on_probe, &s, &p) == UV_EINVAL);
  stop_server(srv);
  uv_run(&loop, UV_RUN_DEFAULT);
}

/* A responder of the test's own that answers one probe with a hello of
 * its choosing: a stranger's, or a recorded one played again. With key,
 * it signs the hello for the nonce of the request it got, as a holder of
 * the key does (docs/protocol.md); with sign_nonce, for that nonce. */
typedef struct {
  int listener;
  const char *hello;
  const uint8_t *key;
  const char *sign_nonce; /* NULL: the request's own */
} fake_responder;

static void hello_mac_hex(const uint8_t *key, const char *nonce,
                          const char *hello, char out[65]) {
  char a[16 + 32];
  memcpy(a, "nodelua-v2 hello", 16);
  memcpy(a + 16, nonce, 32);
  uint8_t mac[32];
  nl_mac(key, a, sizeof a, hello, strlen(hello), mac);
  for (int i = 0; i < 32; i++)
    snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

static void fake_responder_thread(void *arg) {
  fake_responder *f = arg;
  int fd = accept(f->listener, NULL, NULL);
  char line[512] = "", reply[1024];
  ssize_t n = fd >= 0 ? read(fd, line, sizeof line - 1) : -1;
  if (n > 16 + 32) {
    char nonce[33], mac[65];
    snprintf(nonce, sizeof nonce, "%.32s",
             f->sign_nonce ? f->sign_nonce : line + 16);
    if (f->key != NULL)
      hello_mac_hex(f->key, nonce, f->hello, mac);
    else
      memset(mac, 'a', 64), mac[64] = '\0'; /* made up */
    int len = snprintf(reply, sizeof reply, "%s\nMAC %s\n", f->hello, mac);
    CHECK(write(fd, reply, (size_t)len) == len);
  }
  if (fd >= 0)
    close(fd);
}

static probe_seen probe_fake(fake_responder f, const uint8_t *key) {
  int port;
  f.listener = test_listen(&port);
  uv_thread_t thread;
  uv_thread_create(&thread, fake_responder_thread, &f);
  probe_seen s = {0};
  nl_probe *p;
  CHECK(nl_probe_start(&loop, "127.0.0.1", port, 2000, NULL, 0, key, on_probe,
                       &s, &p) == 0);
  while (s.calls == 0)
    uv_run(&loop, UV_RUN_ONCE);
  uv_thread_join(&thread);
  close(f.listener);
  return s;
}

static probe_seen probe_with(int port, const uint8_t *key,
                             const char *self_id) {
  probe_seen s = {0};
  nl_probe *p;
  CHECK(nl_probe_start(&loop, "127.0.0.1", port, 2000, self_id,
                       self_id ? 4242 : 0, key, on_probe, &s, &p) == 0);
  while (s.calls == 0)
    uv_run(&loop, UV_RUN_ONCE);
  return s;
}

/* With a cluster key, the hello is authenticated: a prober that proves the
 * key gets the full hello with a MAC over its own fresh nonce; anyone
 * else the public hello (no addresses), and no introduction is taken from
 * them. A stranger's hello, or a recorded one played again, is not
 * verified, whatever node id it claims. */
static void authenticated_hellos(void) {
  uint8_t cluster[32], other[32], key[NL_PROBE_KEY_SIZE],
      other_key[NL_PROBE_KEY_SIZE];
  memset(cluster, 7, sizeof cluster);
  memset(other, 8, sizeof other);
  CHECK(nl_probe_key(cluster, sizeof cluster, key) == 0);
  CHECK(nl_probe_key(other, sizeof other, other_key) == 0);
  probe_server *srv = start_server();
  static const char full[] =
      "{\"id\":\"00ff\",\"name\":\"n\",\"addrs\":[{\"address\":\"10.0.0.1\"}]}";
  static const char public_hello[] = "{\"id\":\"00ff\",\"name\":\"n\"}";
  CHECK(nl_probe_responder_set_hello(srv->responder, full, sizeof full - 1,
                                     public_hello,
                                     sizeof public_hello - 1) == 0);
  nl_probe_responder_set_key(srv->responder, key);
  asker_seen a = {0};
  nl_probe_responder_on_asker(srv->responder, on_asker, &a);
  int port = nl_port_number(srv->port);

  probe_seen s = probe_with(port, key, "c0ffee");
  CHECK(s.status == 0 && s.verified);
  CHECK_STR(s.reply, full);
  for (int i = 0; i < 100 && a.calls == 0; i++)
    uv_run(&loop, UV_RUN_NOWAIT);
  CHECK(a.calls == 1); /* a proved introduction is taken */

  s = probe_with(port, NULL, "c0ffee"); /* no key: the public hello */
  CHECK(s.status == 0 && !s.verified);
  CHECK_STR(s.reply, public_hello);
  s = probe_with(port, other_key, "c0ffee"); /* another cluster's key */
  CHECK(s.status == 0 && !s.verified);
  CHECK_STR(s.reply, public_hello);
  for (int i = 0; i < 100; i++)
    uv_run(&loop, UV_RUN_NOWAIT);
  CHECK(a.calls == 1); /* neither introduction was taken */

  /* A stranger claims the node's id with a made-up MAC; a hello signed
   * for another probe's nonce (a recording) is played again; a hello
   * signed with another cluster's key. None is verified. The same
   * responder signing with the key for this probe's nonce is: the test
   * can tell them apart. */
  fake_responder stranger = {.hello = full};
  CHECK(!probe_fake(stranger, key).verified);
  fake_responder replay = {.hello = full,
                           .key = key,
                           .sign_nonce = "00112233445566778899aabbccddeeff"};
  CHECK(!probe_fake(replay, key).verified);
  fake_responder foreign = {.hello = full, .key = other_key};
  CHECK(!probe_fake(foreign, key).verified);
  fake_responder genuine = {.hello = full, .key = key};
  s = probe_fake(genuine, key);
  CHECK(s.verified);
  CHECK_STR(s.reply, full);
  /* A prober without the key never calls a hello verified. */
  CHECK(!probe_fake(genuine, NULL).verified);
  stop_server(srv);
  uv_run(&loop, UV_RUN_DEFAULT);
}

/* ---- the control socket ---- */

static bool echo_handler(void *ud, const char *line, size_t len, char **reply,
                         size_t *reply_len) {
  int *calls = ud;
  (*calls)++;
  if (len == 4 && memcmp(line, "fail", 4) == 0) {
    *reply = strdup("no");
    *reply_len = 2;
    return false;
  }
  *reply = malloc(len + 10);
  *reply_len = (size_t)sprintf(*reply, "you said %.*s", (int)len, line);
  return true;
}

typedef struct {
  const char *path;
  int ok_rc, fail_rc, empty_rc;
  char ok_reply[64], fail_reply[64];
  atomic_int done; /* the results are in; the loop polls it */
} control_client;

static void control_client_thread(void *arg) {
  control_client *c = arg;
  char err[256];
  int fd = nl_control_connect(c->path, err, sizeof err);
  if (fd >= 0) {
    char *reply;
    size_t len;
    c->ok_rc = nl_control_ask(fd, "hello there", &reply, &len, err, sizeof err);
    if (c->ok_rc >= 0) {
      snprintf(c->ok_reply, sizeof c->ok_reply, "%s", reply);
      free(reply);
    }
    c->fail_rc = nl_control_ask(fd, "fail", &reply, &len, err, sizeof err);
    if (c->fail_rc >= 0) {
      snprintf(c->fail_reply, sizeof c->fail_reply, "%s", reply);
      free(reply);
    }
    /* A command line may not hold a newline of its own. */
    c->empty_rc = nl_control_ask(fd, "a\nb", &reply, &len, err, sizeof err);
    close(fd);
  }
  atomic_store(&c->done, 1);
}

static void control_socket(void) {
  char dir[] = "/tmp/nodelua-control-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char path[128];
  snprintf(path, sizeof path, "%s/control.sock", dir);

  /* A socket file left by a dead agent: replaced. */
  int stale = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  strcpy(sa.sun_path, path);
  CHECK(bind(stale, (struct sockaddr *)&sa, sizeof sa) == 0);
  close(stale);

  int calls = 0;
  nl_control *ctl = NULL;
  char err[256];
  CHECK(nl_control_start(&loop, path, echo_handler, &calls, &ctl, err,
                         sizeof err) == 0);
  struct stat st;
  CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);

  /* A second agent on the same state directory is refused. */
  nl_control *second = NULL;
  CHECK(nl_control_start(&loop, path, echo_handler, &calls, &second, err,
                         sizeof err) == -EADDRINUSE);
  CHECK_CONTAINS(err, "another agent is running");

  control_client c = {.path = path, .ok_rc = -2, .fail_rc = -2};
  uv_thread_t thread;
  uv_thread_create(&thread, control_client_thread, &c);
  uv_timer_t tick; /* keeps the loop turning while the client works */
  uv_timer_init(&loop, &tick);
  uv_timer_start(&tick, keep_turning, 10, 10);
  for (int i = 0; i < 500 && !atomic_load(&c.done); i++)
    uv_run(&loop, UV_RUN_ONCE);
  uv_thread_join(&thread);
  CHECK(c.ok_rc == 1);
  CHECK_STR(c.ok_reply, "you said hello there");
  CHECK(c.fail_rc == 0);
  CHECK_STR(c.fail_reply, "no");
  CHECK(c.empty_rc == -1);
  CHECK(calls == 2);

  uv_close((uv_handle_t *)&tick, NULL);
  nl_control_stop(ctl);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(access(path, F_OK) != 0); /* the socket file is gone */

  /* A path longer than a socket address can hold: a clear error. */
  char long_path[300];
  memset(long_path, 'x', sizeof long_path - 1);
  long_path[0] = '/';
  long_path[sizeof long_path - 1] = '\0';
  CHECK(nl_control_start(&loop, long_path, echo_handler, &calls, &ctl, err,
                         sizeof err) == -ENAMETOOLONG);
  rmdir(dir);
}

/* HMAC-SHA256 against RFC 4231's test case 2, split into three parts, on
 * this thread and on another (each thread keeps its own context), and again
 * after a MAC under another key: re-keying a kept context must forget the
 * old key. */
static const char *const RFC4231_2 =
    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";

static bool mac_matches_rfc4231(void) {
  uint8_t out[NL_MAC_SIZE], other[NL_MAC_SIZE];
  if (nl_mac_parts((const uint8_t *)"another key, longer", 19, "x", 1, "", 0,
                   "", 0, other) != 0 ||
      nl_mac_parts((const uint8_t *)"Jefe", 4, "what do ya", 10, " want ", 6,
                   "for nothing?", 12, out) != 0)
    return false;
  char hex[2 * NL_MAC_SIZE + 1];
  for (int i = 0; i < NL_MAC_SIZE; i++)
    snprintf(hex + 2 * i, 3, "%02x", out[i]);
  return strcmp(hex, RFC4231_2) == 0;
}

static void *mac_on_thread(void *arg) {
  *(bool *)arg = mac_matches_rfc4231() && mac_matches_rfc4231();
  return NULL;
}

static void mac_known_answer(void) {
  CHECK(mac_matches_rfc4231());
  CHECK(mac_matches_rfc4231());
  bool on_thread = false;
  pthread_t t;
  CHECK(pthread_create(&t, NULL, mac_on_thread, &on_thread) == 0);
  pthread_join(t, NULL);
  CHECK(on_thread);
}

int main(void) {
  uv_loop_init(&loop);
  mac_known_answer();
  answers_with_hello();
  refused_and_bad_addresses();
  times_out_and_cancels();
  refuses_other_requests();
  parses_requests();
  introductions();
  authenticated_hellos();
  control_socket();
  CHECK(uv_loop_close(&loop) == 0); /* nothing left open */
  return check_report("test_probe");
}
