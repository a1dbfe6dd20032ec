/* The local endpoint against clients that would hold it: a request with a
 * body is refused with 413 before the body is read; a client that sends
 * its request a byte at a time is cut off at the request deadline, though
 * each byte comes well within the idle timeout; a client that keeps its
 * connection and asks again gets its answers. */
#include "check.h"
#include "core/http/server.h"
#include "core/log.h"
#include "net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdlib.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int connect_to(int port) {
  int fd = test_connect(port, 5);
  CHECK(fd >= 0);
  return fd;
}

/* Sends request and reads the answer's first line into line. */
static void ask(int port, const char *request, char *line, size_t n) {
  int fd = connect_to(port);
  CHECK(send(fd, request, strlen(request), MSG_NOSIGNAL) ==
        (ssize_t)strlen(request));
  ssize_t got = recv(fd, line, n - 1, 0);
  line[got > 0 ? got : 0] = '\0';
  char *end = strstr(line, "\r\n");
  if (end != NULL)
    *end = '\0';
  close(fd);
}

static void bodies(int port) {
  char line[256];
  ask(port,
      "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
      line, sizeof line);
  CHECK_STR(line, "HTTP/1.1 413 Content Too Large");
  ask(port,
      "GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n0\r\n\r\n",
      line, sizeof line);
  CHECK_STR(line, "HTTP/1.1 413 Content Too Large");
  ask(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
      line, sizeof line);
  CHECK_STR(line, "HTTP/1.1 200 OK");
  ask(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", line, sizeof line);
  CHECK_STR(line, "HTTP/1.1 200 OK");
}

/* Whether the peer has closed fd (read end, or reset). */
static bool closed(int fd) {
  char c;
  ssize_t r = recv(fd, &c, 1, MSG_DONTWAIT);
  return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

static void dribbler(int port) {
  /* The deadline is 1.5 s here; a byte every 0.3 s is far inside the idle
   * timeout (10 s), so only the deadline can end this. It is given 8 s. */
  int fd = connect_to(port);
  const char *request = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: "
                        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
  bool cut = false;
  for (size_t i = 0; i < strlen(request) && !cut; i++) {
    if (send(fd, request + i, 1, MSG_NOSIGNAL) != 1 || closed(fd))
      cut = true;
    else
      usleep(300 * 1000);
  }
  CHECK(cut);
  close(fd);
}

static void keep_alive(int port) {
  /* Two requests on one connection, apart by more than the deadline:
   * each has its own time. */
  int fd = connect_to(port);
  const char *request = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  char buf[512];
  for (int i = 0; i < 2; i++) {
    CHECK(send(fd, request, strlen(request), MSG_NOSIGNAL) ==
          (ssize_t)strlen(request));
    ssize_t got = recv(fd, buf, sizeof buf - 1, 0);
    buf[got > 0 ? got : 0] = '\0';
    CHECK(strncmp(buf, "HTTP/1.1 200 OK", 15) == 0);
    usleep(i == 0 ? 1000 * 1000 : 0);
  }
  close(fd);
}

/* Listening beyond loopback is taken, with a warning that says what it
 * exposes; on loopback, no warning. */
static void exposure_warning(void) {
  char path[] = "/tmp/nodelua-endpoint-log-XXXXXX";
  int fd = mkstemp(path);
  close(fd);
  CHECK(nl_log_set_file(path) == 0);
  nl_endpoint *ep = NULL;
  char err[256];
  CHECK(nl_endpoint_start("127.0.0.1:0", &ep, err, sizeof err) == 0);
  nl_endpoint_stop(ep);
  CHECK(nl_endpoint_start("0.0.0.0:0", &ep, err, sizeof err) == 0);
  nl_endpoint_stop(ep);
  nl_log_set_file(NULL);
  char text[2048] = "";
  FILE *f = fopen(path, "r");
  size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
  text[n] = '\0';
  if (f)
    fclose(f);
  unlink(path);
  CHECK_CONTAINS(text, "METRICS_LISTEN=0.0.0.0:0 is not a loopback address");
  CHECK(strstr(text, "METRICS_LISTEN=127.0.0.1:0") == NULL);
}

int main(void) {
  nl_endpoint *ep = NULL;
  char err[256];
  CHECK(nl_endpoint_start("127.0.0.1:0", &ep, err, sizeof err) == 0);
  if (ep == NULL)
    return check_report("test_endpoint");
  nl_endpoint_publish(ep, "/metrics", "up 1\n", 5, "text/plain", 0);
  nl_endpoint_set_request_deadline(ep, 1500);
  int port = nl_endpoint_port(ep);
  bodies(port);
  dribbler(port);
  keep_alive(port);
  nl_endpoint_stop(ep);
  exposure_warning();
  return check_report("test_endpoint");
}
