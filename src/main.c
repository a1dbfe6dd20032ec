/* nodelua: the command line. Exit status 0 done, 1 failed, 2 usage or
 * configuration error. */
#include "bind/embedded.h"
#include "bind/runtime.h"
#include "core/config.h"
#include "core/log.h"
#include "core/control.h"
#include "core/portable.h"
#include "core/update/launch.h"
#include "nl_build.h"
#include "version.h"
#include "nl_gitrev.h"
#include "repl_client.h"

#include <curl/curl.h>
#include <lauxlib.h>
#include <lualib.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <string.h>
#include <unistd.h>
#include <uv.h>

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

#define NL_CONTROL_WORDS_MAX 16 /* words of an update command */

typedef struct {
  const char *env_file;
  const char *log_format;
  int argc; /* what follows the command */
  char **argv;
} cli;

static void print_main_help(FILE *out) {
  fprintf(out,
          "Usage: nodelua [OPTIONS] COMMAND [ARGS]\n"
          "\n"
          "A node agent for Mac and Linux clusters: C cores, Lua policies.\n"
          "\n"
          "Commands:\n"
          "  agent                   Run the node agent: sample, report "
          "through the spool, serve /metrics\n"
          "  run SCRIPT.lua [ARGS]   Run a Lua script with the nodelua "
          "modules and the event loop\n"
          "  list [--json]           List the peers found over mDNS and "
          "NODELUA_PEERS\n"
          "  metrics [--json|--prom] Print one snapshot of this machine's "
          "metrics\n"
          "  send PEER PATH          Send a file to a peer (id, name or "
          "host:port)\n"
          "  hash [--sha256] FILE... Print files' tree digests (every core), "
          "or SHA-256\n"
          "  repl [COMMAND]          Ask the running agent: list, peers, "
          "status, help\n"
          "  update SUBCOMMAND       Self-update: status, check, apply "
          "[VERSION], rollback\n"
          "  config [--markdown]     Print the settings in effect and "
          "where each came from\n"
          "  version                 Print version, git revision, build "
          "options and library versions\n"
          "  help                    Show this help\n"
          "\n"
          "Options (before the command):\n"
          "  --env-file FILE         Read NAME=VALUE settings from FILE "
          "(after ./.env, before the environment)\n"
          "  --log-format text|json  Log line format (overrides "
          "NODELUA_LOG_FORMAT)\n"
          "  -h, --help              Show help; after a command, that "
          "command's help\n"
          "\n"
          "Configuration, from the built-in defaults, %s, ./.env,\n"
          "--env-file and the environment, the later winning:\n",
          NL_CONFIG_SERVICE_ENV_FILE);
  nl_config_print_help(out);
  fprintf(out, "\nExit status: 0 done, 1 failed, 2 usage or configuration "
               "error.\n");
}

static void print_run_help(FILE *out) {
  fprintf(out,
          "Usage: nodelua [OPTIONS] run SCRIPT.lua [ARGS]\n"
          "\n"
          "Runs SCRIPT.lua with the nodelua modules (nodelua.timer, "
          "nodelua.log,\n"
          "nodelua.config, nodelua.runtime, nodelua.policy) and the event "
          "loop.\n"
          "ARGS are in the global `arg` table and in `...`. The loop runs "
          "until no\n"
          "timer is left or the script calls runtime.exit(code); SIGINT and "
          "SIGTERM\n"
          "run the shutdown hooks and end it with status 0.\n"
          "\n"
          "Exit status: the integer the script returns or passes to "
          "runtime.exit;\n"
          "0 if it returns nothing; 1 if it fails to load or raises an "
          "error.\n");
}

static void print_version_help(FILE *out) {
  fprintf(out, "Usage: nodelua version\n\nPrints the version, the git "
               "revision, the build options and the versions of Lua,\n"
               "libuv, libcurl, OpenSSL and lua-cjson.\n");
}

static void print_config_help(FILE *out) {
  fprintf(out,
          "Usage: nodelua config [--markdown]\n"
          "\n"
          "Loads and validates the configuration as the agent would, then "
          "prints each\nsetting as NAME=value with where it came from; "
          "secrets show as %s.\n"
          "--markdown prints instead the table of every setting (README's "
          "\"Configuration\"\ntable is this output).\n",
          NL_LOG_REDACTED);
}

static int usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "nodelua: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "; see nodelua --help\n");
  return EXIT_USAGE;
}

static int cmd_version(void) {
  const curl_version_info_data *curl = curl_version_info(CURLVERSION_NOW);
  lua_State *L = luaL_newstate();
  const char *cjson = "not found (install lua-cjson for Lua 5.4)";
  if (L != NULL) {
    luaL_openlibs(L);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson");
    if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_istable(L, -1)) {
      lua_getfield(L, -1, "_VERSION");
      if (lua_isstring(L, -1))
        cjson = lua_tostring(L, -1);
    }
  }
  printf("nodelua %s (git %s)\n", nl_version(), NL_GIT_REVISION);
  /* What the build chose. rdma=on says the RDMA code is in this binary;
   * whether this host can use it, the agent logs at start ("transfers:
   * RDMA usable on ..." or "transfers: TCP streams only: ..."). */
  printf("build: %s, asan=%s, ubsan=%s, fuzz=%s, rdma=%s\n", NL_BUILD_TYPE,
         NL_BUILD_ASAN, NL_BUILD_UBSAN, NL_BUILD_FUZZ, NL_BUILD_RDMA);
  printf("lua: %s\n", LUA_RELEASE);
  printf("libuv: %s\n", uv_version_string());
  printf("libcurl: %s (%s)\n", curl->version,
         curl->ssl_version ? curl->ssl_version : "no TLS");
  printf("openssl: %s\n", OpenSSL_version(OPENSSL_VERSION));
  printf("lua-cjson: %s\n", cjson);
  if (L != NULL)
    lua_close(L);
  return EXIT_OK;
}

typedef struct {
  nl_config *config;
  cli *cli;
  const char *module; /* an embedded command module, or NULL for a script */
  const char *entry;  /* the module's function to call: "main", ... */
  int exit_code;
} run_context;

/* Loads what is to run: the script file argv[0], or the function main of
 * the embedded command module. Pushes the function and its arguments and
 * returns their count, or -1 after logging why it cannot load. */
static int push_entry(lua_State *L, run_context *ctx) {
  if (ctx->module != NULL) {
    lua_getglobal(L, "require");
    lua_pushstring(L, ctx->module);
    lua_call(L, 1, 1);
    lua_getfield(L, -1, ctx->entry);
    lua_remove(L, -2);
    lua_createtable(L, ctx->cli->argc, 0);
    for (int i = 0; i < ctx->cli->argc; i++) {
      lua_pushstring(L, ctx->cli->argv[i]);
      lua_rawseti(L, -2, i + 1);
    }
    return 1;
  }
  if (luaL_loadfilex(L, ctx->cli->argv[0], "t") != LUA_OK) {
    nl_log_error("run", "cannot load script: %s", lua_tostring(L, -1));
    return -1;
  }
  for (int i = 1; i < ctx->cli->argc; i++)
    lua_pushstring(L, ctx->cli->argv[i]);
  return ctx->cli->argc - 1;
}

/* Everything that touches Lua runs inside one protected call, as lua.c
 * does, so that an error while setting up cannot reach lua_atpanic. */
static int run_protected(lua_State *L) {
  run_context *ctx = lua_touserdata(L, 1);
  luaL_openlibs(L);
  nl_embedded_install(L);
  nl_runtime_preload(L);
  nl_runtime *rt = nl_runtime_open(L, ctx->config);
  ctx->config = NULL; /* the runtime owns it now */
  int rc = nl_runtime_install_signals(rt);
  if (rc != 0)
    return luaL_error(L, "cannot handle signals: %s", uv_strerror(rc));

  lua_createtable(L, ctx->cli->argc, 1);
  for (int i = 0; ctx->module == NULL && i < ctx->cli->argc; i++) {
    lua_pushstring(L, ctx->cli->argv[i]);
    lua_rawseti(L, -2, i);
  }
  lua_setglobal(L, "arg");

  int nargs = push_entry(L, ctx);
  if (nargs < 0) {
    ctx->exit_code = EXIT_FAILED;
    return 0;
  }
  if (nl_runtime_pcall(L, nargs, 1, NL_CALL_UNBOUNDED,
                       ctx->module ? "command failed" : "script failed") !=
      LUA_OK) {
    ctx->exit_code = EXIT_FAILED;
    return 0;
  }
  int code = EXIT_OK;
  if (lua_isinteger(L, -1)) {
    lua_Integer v = lua_tointeger(L, -1);
    code = (v >= 0 && v <= 255) ? (int)v : EXIT_FAILED;
  } else if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) {
    code = EXIT_FAILED;
  }
  lua_pop(L, 1);
  nl_runtime_run(rt);
  int requested;
  if (nl_runtime_exit_requested(rt, &requested))
    code = requested;
  ctx->exit_code = code;
  return 0;
}

/* Loads the configuration from the usual sources; on error prints it and
 * returns -1. */
static int load_config(const cli *c, nl_config *cfg) {
  char err[1024];
  nl_config_sources src = {.service_env_file = NULL,
                           .dotenv_file = "./.env",
                           .env_file = c->env_file,
                           .environ = nl_environ(),
                           .update_repository = nl_update_repository()};
  if (nl_config_load(cfg, &src, err, sizeof err) != 0) {
    fprintf(stderr, "nodelua: %s\n", err);
    return -1;
  }
  return 0;
}

/* Runs a script (module NULL) or the function entry of an embedded command
 * module on the loop, with the validated configuration; its warnings are
 * logged unless quiet (a second run in the same command). */
static int run_entry(cli *c, const char *module, const char *entry,
                     bool quiet) {
  nl_config *cfg = malloc(sizeof *cfg);
  if (cfg == NULL) {
    fprintf(stderr, "nodelua: out of memory\n");
    return EXIT_FAILED;
  }
  if (load_config(c, cfg) != 0) {
    free(cfg);
    return EXIT_USAGE;
  }
  nl_config_register_secrets(cfg);
  nl_log_set_level((nl_log_level)nl_config_num(cfg, NL_CFG_LOG));
  nl_log_format format = (nl_log_format)nl_config_num(cfg, NL_CFG_LOG_FORMAT);
  if (c->log_format != NULL)
    nl_log_format_parse(c->log_format, &format);
  nl_log_set_format(format);
  for (size_t i = 0; !quiet && i < cfg->warning_count; i++)
    nl_log_warn("config", "%s", cfg->warnings[i]);

  lua_State *L = luaL_newstate();
  if (L == NULL) {
    nl_config_free(cfg);
    free(cfg);
    fprintf(stderr, "nodelua: cannot create a Lua state\n");
    return EXIT_FAILED;
  }
  run_context ctx = {cfg, c, module, entry, EXIT_FAILED};
  lua_pushcfunction(L, run_protected);
  lua_pushlightuserdata(L, &ctx);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    nl_log_error("run", "%s", lua_tostring(L, -1));
    ctx.exit_code = EXIT_FAILED;
  }
  if (ctx.config != NULL) { /* the runtime never took it */
    nl_config_free(ctx.config);
    free(ctx.config);
  }
  lua_close(L);
  return ctx.exit_code;
}

static int run_on_loop(cli *c, const char *module) {
  return run_entry(c, module, "main", false);
}

/* The REPL client's send: the Lua sender of `nodelua send`, in a runtime
 * of its own, so that the REPL and the command line send the same way. */
static int repl_send(void *ud, const char *const *args, int nargs) {
  const cli *parent = ud;
  cli c = *parent;
  c.argc = nargs;
  c.argv = (char **)args;
  return run_entry(&c, "nodelua.cli.send", "from_repl", true);
}

static int cmd_run(cli *c) {
  if (c->argc < 1)
    return usage_error("%s", "run needs a SCRIPT.lua");
  if (strcmp(c->argv[0], "--help") == 0 || strcmp(c->argv[0], "-h") == 0) {
    print_run_help(stdout);
    return EXIT_OK;
  }
  return run_on_loop(c, NULL);
}

static int is_help(const char *arg) {
  return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

static int cmd_config(cli *c) {
  if (c->argc > 0 && is_help(c->argv[0])) {
    print_config_help(stdout);
    return EXIT_OK;
  }
  if (c->argc == 1 && strcmp(c->argv[0], "--markdown") == 0) {
    nl_config_print_markdown(stdout);
    return EXIT_OK;
  }
  if (c->argc > 0)
    return usage_error("config takes only --markdown, not '%s'", c->argv[0]);
  nl_config cfg;
  if (load_config(c, &cfg) != 0)
    return EXIT_USAGE;
  for (size_t i = 0; i < cfg.warning_count; i++)
    fprintf(stderr, "nodelua: warning: %s\n", cfg.warnings[i]);
  for (int i = 0; i < NL_CFG_COUNT; i++) {
    const nl_config_var *v = nl_config_var_info((nl_config_id)i);
    printf("%s=%s  # %s\n", v->name,
           v->secret && nl_config_str(&cfg, (nl_config_id)i)[0] != '\0'
               ? NL_LOG_REDACTED
               : nl_config_str(&cfg, (nl_config_id)i),
           cfg.source[i]);
  }
  nl_config_free(&cfg);
  return EXIT_OK;
}

static void print_repl_help(FILE *out) {
  fprintf(
      out,
      "Usage: nodelua repl [COMMAND [ARGS]]\n"
      "\n"
      "Talks to the running agent through its control socket\n"
      "($NODELUA_STATE_DIR/control.sock). With a COMMAND, runs it and "
      "exits (1 if\nit failed); without, reads commands from standard "
      "input, one per line,\nuntil EOF or `quit`. `help` lists the "
      "commands: list, peers, status and\nthose the commands policy adds.\n");
}

static int cmd_repl(cli *c) {
  if (c->argc > 0 && is_help(c->argv[0])) {
    print_repl_help(stdout);
    return EXIT_OK;
  }
  nl_config cfg;
  if (load_config(c, &cfg) != 0)
    return EXIT_USAGE;
  nl_repl_client client = {.cfg = &cfg, .send = repl_send, .ud = c};
  int code = nl_repl_main(&client, c->argc, c->argv);
  nl_config_free(&cfg);
  return code;
}

/* `nodelua agent`: the launcher first (core/update/launch.h), which may
 * exec the installed version instead; then the agent. */
/* The agent runs for months: memory it frees goes back to the OS. glibc
 * otherwise raises its mmap threshold to the largest block ever freed (a
 * /metrics page, a report), and from then on keeps such blocks in the heap,
 * dirty, after they are freed. Fixed thresholds turn that off. In the 60 s
 * of scripts/bench/agent.sh the difference is within its noise (about
 * 100 KiB); it is the months after a large transfer that it is for. */
static void return_freed_memory(void) {
#ifdef __GLIBC__
  mallopt(M_MMAP_THRESHOLD, 64 * 1024);
  mallopt(M_TRIM_THRESHOLD, 64 * 1024);
#endif
}

static int cmd_agent(cli *c, char **argv) {
  return_freed_memory();
  nl_config cfg;
  if (load_config(c, &cfg) != 0)
    return EXIT_USAGE;
  nl_update_launch(nl_config_str(&cfg, NL_CFG_UPDATE_DIR),
                   (int)nl_config_num(&cfg, NL_CFG_UPDATE_HEALTH_TIMEOUT),
                   argv);
  nl_config_free(&cfg);
  return run_on_loop(c, "nodelua.agent");
}

/* `nodelua update ...`: the running agent does it when one answers on the
 * control socket (it is the one to restart into a new version); otherwise
 * this process does (lua/nodelua/cli/update.lua). */
static int cmd_update(cli *c) {
  if (c->argc > 0 && is_help(c->argv[0]))
    return run_on_loop(c, "nodelua.cli.update");
  nl_config cfg;
  if (load_config(c, &cfg) != 0)
    return EXIT_USAGE;
  char path[1024], err[256];
  snprintf(path, sizeof path, "%s/control.sock",
           nl_config_str(&cfg, NL_CFG_STATE_DIR));
  int fd = nl_control_connect(path, err, sizeof err);
  if (fd < 0) {
    nl_config_free(&cfg);
    return run_on_loop(c, "nodelua.cli.update");
  }
  close(fd);
  char *words[NL_CONTROL_WORDS_MAX + 1];
  int n = 0;
  words[n++] = "update";
  for (int i = 0; i < c->argc && n < NL_CONTROL_WORDS_MAX; i++)
    words[n++] = c->argv[i];
  words[n] = NULL;
  nl_repl_client client = {.cfg = &cfg, .send = repl_send, .ud = c};
  int code = nl_repl_main(&client, n, words);
  nl_config_free(&cfg);
  return code;
}

int main(int argc, char **argv) {
  nl_update_remember_argv(argv);
  cli c = {0};
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (is_help(a)) {
      print_main_help(stdout);
      return EXIT_OK;
    } else if (strcmp(a, "--env-file") == 0 || strcmp(a, "--log-format") == 0) {
      if (i + 1 >= argc)
        return usage_error("%s needs a value", a);
      if (a[2] == 'e')
        c.env_file = argv[++i];
      else
        c.log_format = argv[++i];
    } else if (strncmp(a, "--env-file=", 11) == 0) {
      c.env_file = a + 11;
    } else if (strncmp(a, "--log-format=", 13) == 0) {
      c.log_format = a + 13;
    } else if (a[0] == '-') {
      return usage_error("unknown option '%s'", a);
    } else {
      break;
    }
  }
  nl_log_format format;
  if (c.log_format != NULL && nl_log_format_parse(c.log_format, &format) != 0)
    return usage_error("--log-format takes text or json, not '%s'",
                       c.log_format);
  if (c.env_file != NULL && c.env_file[0] == '\0')
    return usage_error("%s", "--env-file needs a file name");
  if (i >= argc) {
    print_main_help(stderr);
    return EXIT_USAGE;
  }
  const char *command = argv[i];
  c.argc = argc - i - 1;
  c.argv = argv + i + 1;
  if (strcmp(command, "help") == 0) {
    print_main_help(stdout);
    return EXIT_OK;
  }
  if (strcmp(command, "version") == 0) {
    if (c.argc > 0 && is_help(c.argv[0])) {
      print_version_help(stdout);
      return EXIT_OK;
    }
    if (c.argc > 0)
      return usage_error("version takes no argument, not '%s'", c.argv[0]);
    return cmd_version();
  }
  if (strcmp(command, "run") == 0)
    return cmd_run(&c);
  if (strcmp(command, "metrics") == 0)
    return run_on_loop(&c, "nodelua.cli.metrics");
  if (strcmp(command, "agent") == 0)
    return cmd_agent(&c, argv);
  if (strcmp(command, "list") == 0)
    return run_on_loop(&c, "nodelua.cli.list");
  if (strcmp(command, "repl") == 0)
    return cmd_repl(&c);
  if (strcmp(command, "config") == 0)
    return cmd_config(&c);
  if (strcmp(command, "update") == 0)
    return cmd_update(&c);
  if (strcmp(command, "send") == 0)
    return run_on_loop(&c, "nodelua.cli.send");
  if (strcmp(command, "hash") == 0)
    return run_on_loop(&c, "nodelua.cli.hash");
  return usage_error("unknown command '%s'", command);
}
