/* `nodelua repl`: the client of the agent's control socket. On a terminal
 * it edits lines with libedit (history in ~/.nodelua_history, tab
 * completion of commands and peer names and ids, which the agent lists);
 * otherwise it reads commands from standard input. libedit is loaded here,
 * when a person is at the terminal, not linked: the agent, which is the
 * same executable, never maps it and the terminal libraries it brings. A
 * command's answer is printed, unless it asks the client to act: `send` does,
 * so that the file goes from this process with its progress on this terminal,
 * through the same Lua sender as `nodelua send`. */
#include "repl_client.h"

#include "core/control.h"

#include <ctype.h>
#include <dlfcn.h>
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

/* ---- libedit, loaded when the REPL is interactive ---- */

#ifdef __APPLE__
#define LIBEDIT_NAME "libedit.3.dylib"
#else
#define LIBEDIT_NAME "libedit.so.2"
#endif

static struct {
  char *(*readline)(const char *);
  int (*add_history)(const char *);
  void (*using_history)(void);
  void (*stifle_history)(int);
  int (*read_history)(const char *);
  int (*write_history)(const char *);
  char **(*completion_matches)(const char *, rl_compentry_func_t *);
  int *attempted_completion_over;
  rl_completion_func_t **attempted_completion_function;
} edit;

/* Loads libedit with every symbol used here: NULL, or why not. */
static const char *load_libedit(void) {
  void *lib = dlopen(LIBEDIT_NAME, RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    const char *why = dlerror();
    return why != NULL ? why : "it cannot be opened";
  }
  /* dlsym returns void *; POSIX guarantees that storing it into a function
   * pointer this way works (the form its own rationale gives). */
  *(void **)&edit.readline = dlsym(lib, "readline");
  *(void **)&edit.add_history = dlsym(lib, "add_history");
  *(void **)&edit.using_history = dlsym(lib, "using_history");
  *(void **)&edit.stifle_history = dlsym(lib, "stifle_history");
  *(void **)&edit.read_history = dlsym(lib, "read_history");
  *(void **)&edit.write_history = dlsym(lib, "write_history");
  *(void **)&edit.completion_matches = dlsym(lib, "rl_completion_matches");
  edit.attempted_completion_over = dlsym(lib, "rl_attempted_completion_over");
  edit.attempted_completion_function =
      dlsym(lib, "rl_attempted_completion_function");
  if (edit.readline && edit.add_history && edit.using_history &&
      edit.stifle_history && edit.read_history && edit.write_history &&
      edit.completion_matches && edit.attempted_completion_over &&
      edit.attempted_completion_function)
    return NULL;
  dlclose(lib);
  return "it lacks a readline function this client uses";
}

static char **complete(const char *text, int start, int end) {
  (void)start;
  (void)end;
  *edit.attempted_completion_over = 1; /* no file names: only our words */
  return edit.completion_matches(text, next_word);
}

/* ---- send: the Lua sender, run by the caller ---- */

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
static int act(const nl_repl_client *client, const char *line, char *action) {
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
  /* host, port, peer label, path, and the id to prove when there is one:
   * the same sender as `nodelua send` (lua/nodelua/cli/send.lua). */
  const char *send_args[5] = {fields[1], fields[2], fields[3], path,
                              n == 6 ? fields[5] : NULL};
  fflush(stdout);
  return client->send(client->ud, send_args, n == 6 ? 5 : 4) == 0 ? 1 : 0;
}

/* Asks and prints (or acts); 1 done, 0 failed, -1 connection lost. */
static int ask(int fd, const nl_repl_client *client, const char *line) {
  char *reply;
  size_t len;
  char err[256];
  int rc = nl_control_ask(fd, line, &reply, &len, err, sizeof err);
  if (rc < 0) {
    fprintf(stderr, "nodelua repl: %s\n", err);
    return -1;
  }
  if (rc == 1 && len > 0 && reply[0] == '\1') {
    rc = act(client, line, reply);
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

/* Commands from standard input, one per line, without editing: 0, or 1 if
 * one failed or the agent went away. */
static int plain_lines(int fd, const nl_repl_client *client) {
  int code = 0;
  char line[NL_CONTROL_LINE_MAX];
  while (fgets(line, sizeof line, stdin) != NULL) {
    line[strcspn(line, "\r\n")] = '\0';
    if (strcmp(line, "quit") == 0 || strcmp(line, "exit") == 0)
      break;
    if (line[strspn(line, " \t")] == '\0')
      continue;
    int rc = ask(fd, client, line);
    if (rc < 0)
      return 1;
    if (rc == 0)
      code = 1;
  }
  return code;
}

int nl_repl_main(const nl_repl_client *client, int argc, char **argv) {
  const nl_config *cfg = client->cfg;
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
  const char *why = NULL; /* why libedit could not be loaded */
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
    code = ask(fd, client, line) == 1 ? 0 : 1;
  } else if (isatty(STDIN_FILENO) && (why = load_libedit()) != NULL) {
    fprintf(stderr,
            "nodelua repl: no line editing: %s could not be loaded (%s); "
            "commands are read as plain lines\n",
            LIBEDIT_NAME, why);
    code = plain_lines(fd, client);
  } else if (isatty(STDIN_FILENO)) {
    char history[1024];
    history_path(history, sizeof history);
    edit.using_history();
    edit.stifle_history(1000);
    edit.read_history(history);
    *edit.attempted_completion_function = complete;
    refresh_words(fd);
    char *line;
    while ((line = edit.readline("nodelua> ")) != NULL) {
      char *start = line + strspn(line, " \t");
      if (strcmp(start, "quit") == 0 || strcmp(start, "exit") == 0) {
        free(line);
        break;
      }
      if (*start != '\0') {
        edit.add_history(start);
        if (ask(fd, client, start) < 0) {
          free(line);
          code = 1;
          break;
        }
        refresh_words(fd);
      }
      free(line);
    }
    edit.write_history(history);
    forget_words();
  } else {
    code = plain_lines(fd, client);
  }
  close(fd);
  return code;
}
