/* The control socket: its own user is answered; another user who reaches
 * it (here the socket's mode is opened on purpose, as a mistaken chmod
 * would) is refused by the kernel's word on who connected, not by the
 * mode alone; the socket is 0600 from the moment it exists. Needs root to
 * act as another user; otherwise that case says SKIPPED. */
#include "check.h"
#include "core/control.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static bool answer(void *ud, const char *line, size_t len, char **reply,
                   size_t *reply_len) {
  (void)ud;
  (void)line;
  (void)len;
  *reply = strdup("hello");
  *reply_len = 5;
  return true;
}

static uv_loop_t loop;
static uv_async_t stop;
static nl_control *ctl;

static void on_stop(uv_async_t *a) {
  nl_control_stop(ctl);
  uv_close((uv_handle_t *)a, NULL);
}

static void *run_loop(void *arg) {
  (void)arg;
  uv_run(&loop, UV_RUN_DEFAULT);
  return NULL;
}

/* Asks "status" as the current user: 1 answered, 0 refused (closed). */
static int ask(const char *path) {
  char err[256];
  int fd = nl_control_connect(path, err, sizeof err);
  if (fd < 0)
    return 0;
  char *reply = NULL;
  size_t len = 0;
  int rc = nl_control_ask(fd, "status", &reply, &len, err, sizeof err);
  free(reply);
  close(fd);
  return rc == 1;
}

int main(void) {
  char dir[] = "/tmp/nodelua-control-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char path[256], err[256];
  snprintf(path, sizeof path, "%s/control.sock", dir);
  uv_loop_init(&loop);
  uv_async_init(&loop, &stop, on_stop);
  CHECK(nl_control_start(&loop, path, answer, NULL, &ctl, err, sizeof err) ==
        0);
  struct stat st;
  CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
  pthread_t t;
  pthread_create(&t, NULL, run_loop, NULL);

  CHECK(ask(path) == 1);
  if (geteuid() == 0) {
    /* Open the way on purpose: only the uid check is left. */
    CHECK(chmod(dir, 0755) == 0 && chmod(path, 0666) == 0);
    pid_t child = fork();
    if (child == 0) {
      if (setgid(65534) != 0 || setuid(65534) != 0)
        _exit(3);
      _exit(ask(path) == 0 ? 0 : 1); /* 0: refused, as it must be */
    }
    int status = 0;
    waitpid(child, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(ask(path) == 1); /* and its own user still is answered */
  } else {
    check_skip("a connection from another uid (needs root)");
  }

  uv_async_send(&stop);
  pthread_join(t, NULL);
  uv_loop_close(&loop);
  rmdir(dir);
  return check_report("test_control");
}
