/* `nodelua repl`: the client of the agent's control socket. On a terminal
 * it edits lines with libedit (history in ~/.nodelua_history, tab
 * completion of commands and peer names and ids, which the agent lists);
 * otherwise it reads commands from standard input. A command's answer is
 * printed, unless it asks the client to act: `send` does, so that the file
 * goes from this process with its progress on this terminal. */
#include "repl_client.h"

#include "core/control.h"
#include "core/transfer/transfer.h"
#include "core/trust.h"

#include <ctype.h>
#include <editline/readline.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WORDS_MAX 512

static char *words[WORDS_MAX];
static int word_count;

static void forget_words(void) {
  for (int i = 0; i < word_count; i++)
    free(words[i]);
  word_count = 0;
}

/* Asks the agent which words complete (commands, peer names and ids). */
static void refresh_words(int fd) {
  char *reply;
  size_t len;
  char err[256];
  if (nl_control_ask(fd, "__words", &reply, &len, err, sizeof err) != 1)
    return;
  forget_words();
  for (char *line = strtok(reply, "\n"); line && word_count < WORDS_MAX;
       line = strtok(NULL, "\n"))
    words[word_count++] = strdup(line);
  free(reply);
}

static char *next_word(const char *text, int state) {
  static int at;
  static size_t len;
  if (state == 0) {
    at = 0;
    len = strlen(text);
  }
  while (at < word_count) {
    const char *w = words[at++];
    if (w != NULL && strncmp(w, text, len) == 0)
      return strdup(w);
  }
  return NULL;
}

static char **complete(const char *text, int start, int end) {
  (void)start;
  (void)end;
  rl_attempted_completion_over = 1; /* no file names: only our words */
  return rl_completion_matches(text, next_word);
}

/* ---- send, done here ---- */

typedef struct {
  bool tty;
  long last_second;
} progress_state;

static void human(double bytes, char *out, size_t len) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    u++;
  }
  if (u == 0)
    snprintf(out, len, "%.0f B", bytes);
  else
    snprintf(out, len, "%.1f %s", bytes, units[u]);
}

static void on_progress(void *ud, const nl_transfer_result *r) {
  progress_state *p = ud;
  double done = (double)r->chunks_skipped * 4 * 1024 * 1024 + r->bytes_sent;
  if (done > (double)r->size)
    done = (double)r->size;
  double pct = r->size ? done * 100 / (double)r->size : 100;
  double rate = r->seconds > 0 ? r->bytes_sent / r->seconds : 0;
  char rate_text[32];
  human(rate, rate_text, sizeof rate_text);
  int eta = rate > 0 ? (int)(((double)r->size - done) / rate + 0.999) : 0;
  if (p->tty) {
    char bar[31];
    int fill = (int)(pct * 30 / 100);
    for (int i = 0; i < 30; i++)
      bar[i] = i < fill ? '#' : ' ';
    bar[30] = '\0';
    fprintf(stderr, "\r[%s] %3d%%  %9s/s  ETA %ds", bar, (int)pct, rate_text,
            eta);
  } else if ((long)r->seconds > p->last_second) {
    p->last_second = (long)r->seconds;
    fprintf(stderr, "%3d%%  %9s/s  ETA %ds\n", (int)pct, rate_text, eta);
  }
  fflush(stderr);
}

static void explicit_clear(char *p, size_t n) {
  volatile char *v = p;
  while (n-- > 0)
    *v++ = 0;
}

/* Reads the cluster key as the agent does: NODELUA_CLUSTER_KEY, or the
 * contents of NODELUA_CLUSTER_KEY_FILE without surrounding white space. */
static char *cluster_key(const nl_config *cfg, char *err, size_t errlen) {
  const char *key = nl_config_str(cfg, NL_CFG_CLUSTER_KEY);
  if (key[0] != '\0')
    return strdup(key);
  const char *path = nl_config_str(cfg, NL_CFG_CLUSTER_KEY_FILE);
  if (path[0] == '\0') {
    snprintf(err, errlen,
             "no cluster key: set NODELUA_CLUSTER_KEY, or "
             "NODELUA_CLUSTER_KEY_FILE (mode 0600)");
    return NULL;
  }
  /* As the agent does: refused unless the agent's (or root's) and nobody
   * else can read or write it. */
  size_t n = 0;
  char *buf =
      nl_trust_read(path, NL_TRUST_SECRET, 64 * 1024, &n, NULL, err, errlen);
  if (buf == NULL)
    return NULL;
  char *start = buf;
  while (*start && isspace((unsigned char)*start))
    start++;
  size_t len = strlen(start);
  while (len > 0 && isspace((unsigned char)start[len - 1]))
    start[--len] = '\0';
  char *copy = len >= 16 ? strdup(start) : NULL;
  explicit_clear(buf, n);
  free(buf);
  if (len < 16)
    snprintf(err, errlen, "NODELUA_CLUSTER_KEY_FILE holds no key of 16 bytes");
  return copy;
}

/* This node's id from the state directory, or "" (the transfer core then
 * sends a random one, never a fixed one). */
static void node_id(const nl_config *cfg, char out[65]) {
  char path[1024];
  snprintf(path, sizeof path, "%s/node-id",
           nl_config_str(cfg, NL_CFG_STATE_DIR));
  FILE *f = fopen(path, "r");
  char buf[128] = "";
  if (f) {
    if (fgets(buf, sizeof buf, f) == NULL)
      buf[0] = '\0';
    fclose(f);
  }
  size_t n = strspn(buf, "0123456789abcdef");
  if (n == 32) {
    memcpy(out, buf, 32);
    out[32] = '\0';
  } else {
    out[0] = '\0';
  }
}

/* The path in the user's own line "send PEER PATH" (words split on white
 * space, as the agent splits them), or NULL. */
static const char *typed_path(const char *line, char *buf, size_t n) {
  char parts[3][1024];
  int count = 0;
  const char *p = line;
  while (*p != '\0') {
    p += strspn(p, " \t");
    size_t len = strcspn(p, " \t");
    if (len == 0)
      break;
    if (count == 3 || len >= sizeof parts[0])
      return NULL;
    snprintf(parts[count++], sizeof parts[0], "%.*s", (int)len, p);
    p += len;
  }
  if (count != 3 || strcmp(parts[0], "send") != 0)
    return NULL;
  snprintf(buf, n, "%s", parts[2]);
  return buf;
}

/* "\1send\thost\tport\tlabel\tpath\tid\n", the agent's answer to the
 * user's line: returns 1 sent, 0 failed. The agent chooses where to (it
 * knows the peers), never what: the file is the path the user typed, and
 * an answer naming another is refused. */
static int act(const nl_config *cfg, const char *line, char *action) {
  char *fields[7] = {0};
  int n = 0;
  action[strcspn(action, "\n")] = '\0';
  for (char *f = strtok(action + 1, "\t"); f && n < 7; f = strtok(NULL, "\t"))
    fields[n++] = f;
  char path[1024];
  if ((n != 5 && n != 6) || strcmp(fields[0], "send") != 0 ||
      typed_path(line, path, sizeof path) == NULL) {
    fprintf(stderr, "nodelua repl: the agent asked for something unknown\n");
    return 0;
  }
  if (strcmp(fields[4], path) != 0) {
    fprintf(stderr,
            "nodelua repl: the agent asked to send %s, not the %s you "
            "typed: refused\n",
            fields[4], path);
    return 0;
  }
  char err[512];
  char *key = cluster_key(cfg, err, sizeof err);
  if (key == NULL) {
    fprintf(stderr, "send: %s\n", err);
    return 0;
  }
  char id[65];
  node_id(cfg, id);
  nl_transfer_config tc = {
      .key = (const uint8_t *)key,
      .key_len = strlen(key),
      .node_id = id,
      .expect_id = n == 6 ? fields[5] : NULL, /* a send by id or name */
      .streams = (int)nl_config_num(cfg, NL_CFG_TRANSFER_STREAMS),
      .chunk_size = 4 * 1024 * 1024,
      .encrypt = nl_config_num(cfg, NL_CFG_TRANSFER_ENCRYPT) != 0,
      .timeout_seconds = 30,
  };
  progress_state p = {.tty = isatty(STDERR_FILENO), .last_second = -1};
  nl_transfer_result r;
  int rc = nl_transfer_send(fields[1], atoi(fields[2]), path, NULL, &tc,
                            on_progress, &p, &r, err, sizeof err);
  if (p.tty)
    fputc('\n', stderr);
  explicit_clear(key, strlen(key));
  free(key);
  if (rc != 0) {
    fprintf(stderr, "send: %s\n", err);
    return 0;
  }
  char size[32], rate[32];
  human((double)r.size, size, sizeof size);
  human(r.seconds > 0 ? r.bytes_sent / r.seconds : 0, rate, sizeof rate);
  printf("sent %s to %s: %s in %.2f s (%s/s), sha256 %s", path, fields[3], size,
         r.seconds, rate, r.sha256);
  if (r.chunks_skipped > 0)
    printf(" (resumed: %u of %u chunks were there already)", r.chunks_skipped,
           r.chunks);
  printf("\n");
  fflush(stdout);
  return 1;
}

/* Asks and prints (or acts); 1 done, 0 failed, -1 connection lost. */
static int ask(int fd, const nl_config *cfg, const char *line) {
  char *reply;
  size_t len;
  char err[256];
  int rc = nl_control_ask(fd, line, &reply, &len, err, sizeof err);
  if (rc < 0) {
    fprintf(stderr, "nodelua repl: %s\n", err);
    return -1;
  }
  if (rc == 1 && len > 0 && reply[0] == '\1') {
    rc = act(cfg, line, reply);
    free(reply);
    return rc;
  }
  FILE *out = rc == 1 ? stdout : stderr;
  fwrite(reply, 1, len, out);
  if (len > 0 && reply[len - 1] != '\n')
    fputc('\n', out);
  fflush(out);
  free(reply);
  return rc;
}

static void history_path(char *out, size_t len) {
  const char *home = getenv("HOME");
  snprintf(out, len, "%s/.nodelua_history", home ? home : ".");
}

int nl_repl_main(const nl_config *cfg, int argc, char **argv) {
  char path[1024], err[512];
  snprintf(path, sizeof path, "%s/control.sock",
           nl_config_str(cfg, NL_CFG_STATE_DIR));
  int fd = nl_control_connect(path, err, sizeof err);
  if (fd < 0) {
    fprintf(stderr,
            "nodelua repl: no agent answers at %s (%s); is `nodelua agent` "
            "running with this NODELUA_STATE_DIR, as this user?\n",
            path, err);
    return 1;
  }
  int code = 0;
  if (argc > 0) {
    char line[NL_CONTROL_LINE_MAX];
    size_t n = 0;
    for (int i = 0; i < argc; i++) {
      int w =
          snprintf(line + n, sizeof line - n, "%s%s", i ? " " : "", argv[i]);
      if (w < 0 || (size_t)w >= sizeof line - n) {
        close(fd);
        fprintf(stderr, "nodelua repl: the command is too long\n");
        return 2;
      }
      n += (size_t)w;
    }
    code = ask(fd, cfg, line) == 1 ? 0 : 1;
  } else if (isatty(STDIN_FILENO)) {
    char history[1024];
    history_path(history, sizeof history);
    using_history();
    stifle_history(1000);
    read_history(history);
    rl_attempted_completion_function = complete;
    refresh_words(fd);
    char *line;
    while ((line = readline("nodelua> ")) != NULL) {
      char *start = line + strspn(line, " \t");
      if (strcmp(start, "quit") == 0 || strcmp(start, "exit") == 0) {
        free(line);
        break;
      }
      if (*start != '\0') {
        add_history(start);
        if (ask(fd, cfg, start) < 0) {
          free(line);
          code = 1;
          break;
        }
        refresh_words(fd);
      }
      free(line);
    }
    write_history(history);
    forget_words();
  } else {
    char line[NL_CONTROL_LINE_MAX];
    while (fgets(line, sizeof line, stdin) != NULL) {
      line[strcspn(line, "\r\n")] = '\0';
      if (strcmp(line, "quit") == 0 || strcmp(line, "exit") == 0)
        break;
      if (line[strspn(line, " \t")] == '\0')
        continue;
      int rc = ask(fd, cfg, line);
      if (rc < 0) {
        code = 1;
        break;
      }
      if (rc == 0)
        code = 1;
    }
  }
  close(fd);
  return code;
}
