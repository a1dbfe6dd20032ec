#include "runtime_internal.h"

#include "core/portable.h"

#include "core/log.h"
#include "nl_build.h"
#include "nl_gitrev.h"
#include "version.h"

#include <lauxlib.h>
#include <lualib.h>
#include <signal.h>
#include <stdarg.h>
#include <time.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The registry holds the runtime under RUNTIME_KEY and its metatable under
 * RUNTIME_META: two keys, or the one would overwrite the other. */
static const char RUNTIME_KEY[] = "nodelua.runtime";
static const char RUNTIME_META[] = "nodelua.runtime.meta";
#define TRACEBACK_MARK "\nstack traceback:"

static void close_walk_cb(uv_handle_t *handle, void *arg) {
  (void)arg;
  if (!uv_is_closing(handle))
    uv_close(handle, NULL);
}

/* Finalizer of the runtime userdata: lua_close runs it, after which nothing
 * may touch Lua. Timers are closed, the loop drained and closed. */
static int runtime_gc(lua_State *L) {
  nl_runtime *rt = luaL_checkudata(L, 1, RUNTIME_META);
  if (rt->L == NULL)
    return 0;
  rt->closing_state = true;
  nl_timer_close_all(rt);
  uv_walk(&rt->loop, close_walk_cb, NULL);
  uv_run(&rt->loop, UV_RUN_DEFAULT);
  uv_loop_close(&rt->loop);
  if (rt->config != NULL) {
    nl_config_free(rt->config);
    free(rt->config);
    rt->config = NULL;
  }
  rt->L = NULL;
  return 0;
}

nl_runtime *nl_runtime_open(lua_State *L, nl_config *cfg) {
  char err[1024];
  if (cfg == NULL) {
    nl_config_sources src = {.service_env_file = "",
                             .dotenv_file = NULL,
                             .env_file = NULL,
                             .environ = nl_environ(),
                             .update_repository = nl_update_repository()};
    cfg = malloc(sizeof *cfg);
    if (cfg == NULL)
      luaL_error(L, "out of memory");
    if (nl_config_load(cfg, &src, err, sizeof err) != 0) {
      free(cfg);
      luaL_error(L, "nodelua: configuration: %s", err);
    }
    nl_config_register_secrets(cfg);
    /* Without a main (the loadable module) the environment also decides the
     * log level and format. */
    nl_log_set_level((nl_log_level)nl_config_num(cfg, NL_CFG_LOG));
    nl_log_set_format((nl_log_format)nl_config_num(cfg, NL_CFG_LOG_FORMAT));
  }
  nl_runtime *rt = lua_newuserdatauv(L, sizeof *rt, 0);
  memset(rt, 0, sizeof *rt);
  rt->shutdown_hooks = LUA_NOREF;
  rt->reload_hooks = LUA_NOREF;
  if (uv_loop_init(&rt->loop) != 0) {
    nl_config_free(cfg);
    free(cfg);
    luaL_error(L, "cannot create the event loop");
  }
  /* Only from here on may the finalizer close anything. */
  rt->L = L;
  rt->config = cfg;
  rt->budget = (int)nl_config_num(cfg, NL_CFG_CALLBACK_BUDGET);
  if (luaL_newmetatable(L, RUNTIME_META)) {
    lua_pushcfunction(L, runtime_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, RUNTIME_KEY);
  lua_newtable(L);
  rt->shutdown_hooks = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_newtable(L);
  rt->reload_hooks = luaL_ref(L, LUA_REGISTRYINDEX);
  return rt;
}

nl_runtime *nl_runtime_get(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, RUNTIME_KEY);
  nl_runtime *rt = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (rt == NULL || rt->L == NULL)
    rt = nl_runtime_open(L, NULL);
  return rt;
}

uv_loop_t *nl_runtime_loop(nl_runtime *rt) { return &rt->loop; }
const nl_config *nl_runtime_config(nl_runtime *rt) { return rt->config; }

/* Message handler: the error with a traceback appended. */
static int traceback_handler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      msg = lua_tostring(L, -1);
    else
      msg = lua_pushfstring(L, "(error object is a %s value)",
                            luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

static void budget_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  nl_runtime *rt = nl_runtime_get(L);
  /* From now on every instruction fails, so that a callback that catches
   * this error with pcall cannot go on looping. */
  lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
  /* A hook has no frame of its own: level 0 is the running function, the
   * loop that would not end, whose file:line the message names. */
  lua_Debug where;
  if (lua_getstack(L, 0, &where) && lua_getinfo(L, "Sl", &where) &&
      where.currentline > 0)
    lua_pushfstring(L, "%s:%d: ", where.short_src, where.currentline);
  else
    lua_pushliteral(L, "");
  lua_pushfstring(L,
                  "stopped: ran past the budget of %d Lua instructions "
                  "(NODELUA_CALLBACK_BUDGET)",
                  rt->budget);
  lua_concat(L, 2);
  lua_error(L);
}

/* Calls the function below nargs arguments with traceback_handler as the
 * message handler, which it inserts below the function and leaves there:
 * the handler's index is returned in *handler. */
static int call_with_traceback(lua_State *L, int nargs, int nresults,
                               nl_call_bound bound, int *handler) {
  nl_runtime *rt = nl_runtime_get(L);
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, traceback_handler);
  lua_insert(L, base);
  *handler = base;
  /* A nested bounded call shares the outer budget rather than resetting it:
   * otherwise a callback could renew its budget by calling pcall. */
  bool arm = bound == NL_CALL_BOUNDED && rt->bound_depth == 0;
  if (arm)
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, rt->budget);
  if (bound == NL_CALL_BOUNDED)
    rt->bound_depth++;
  int status = lua_pcall(L, nargs, nresults, base);
  if (bound == NL_CALL_BOUNDED)
    rt->bound_depth--;
  if (arm)
    lua_sethook(L, NULL, 0, 0);
  return status;
}

int nl_runtime_pcall(lua_State *L, int nargs, int nresults, nl_call_bound bound,
                     const char *what) {
  int handler;
  int status = call_with_traceback(L, nargs, nresults, bound, &handler);
  lua_remove(L, handler);
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    nl_runtime_get(L)->error_count++;
    nl_log_error("lua", "%s: %s", what ? what : "Lua call failed",
                 msg ? msg : "(no message)");
    lua_pop(L, 1);
  }
  return status;
}

/* Calls every function in the hook array ref, newest first when reverse. */
static void run_hooks(nl_runtime *rt, int ref, bool reverse, const char *what) {
  lua_State *L = rt->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
  lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
  for (lua_Integer i = 0; i < n; i++) {
    lua_rawgeti(L, -1, reverse ? n - i : i + 1);
    nl_runtime_pcall(L, 0, 0, NL_CALL_BOUNDED, what);
  }
  lua_pop(L, 1);
}

static void close_signal(uv_signal_t *sig) {
  if (!uv_is_closing((uv_handle_t *)sig))
    uv_close((uv_handle_t *)sig, NULL);
}

void nl_runtime_shutdown(nl_runtime *rt, int exit_code) {
  if (rt->shutting_down)
    return;
  rt->shutting_down = true;
  rt->exit_requested = true;
  rt->exit_code = exit_code;
  /* Hooks first, while timers and the loop still work, so that pending work
   * can be flushed; then everything that keeps the loop alive is closed. */
  run_hooks(rt, rt->shutdown_hooks, true, "shutdown hook failed");
  nl_timer_close_all(rt);
  if (rt->signals_installed) {
    close_signal(&rt->sig_int);
    close_signal(&rt->sig_term);
    close_signal(&rt->sig_hup);
    rt->signals_installed = false;
  }
}

bool nl_runtime_exit_requested(nl_runtime *rt, int *exit_code) {
  if (rt->exit_requested && exit_code != NULL)
    *exit_code = rt->exit_code;
  return rt->exit_requested;
}

static void on_signal(uv_signal_t *handle, int signum) {
  nl_runtime *rt = handle->data;
  if (signum == SIGHUP) {
    nl_log_info("runtime", "SIGHUP: reloading policies");
    run_hooks(rt, rt->reload_hooks, false, "reload hook failed");
    return;
  }
  const char *name = signum == SIGINT ? "SIGINT" : "SIGTERM";
  if (rt->shutting_down) {
    /* A second signal while the hooks flush means the operator wants out
     * now; there is nothing safe left to wait for. */
    nl_log_warn("runtime", "%s during shutdown: exiting at once", name);
    _exit(1);
  }
  nl_log_info("runtime", "%s: shutting down", name);
  nl_runtime_shutdown(rt, 0);
}

int nl_runtime_install_signals(nl_runtime *rt) {
  if (rt->signals_installed)
    return 0;
  uv_signal_t *sigs[] = {&rt->sig_int, &rt->sig_term, &rt->sig_hup};
  int nums[] = {SIGINT, SIGTERM, SIGHUP};
  for (int i = 0; i < 3; i++) {
    int rc = uv_signal_init(&rt->loop, sigs[i]);
    if (rc == 0)
      rc = uv_signal_start(sigs[i], on_signal, nums[i]);
    if (rc != 0) {
      for (int j = 0; j <= i; j++)
        close_signal(sigs[j]);
      return rc;
    }
    sigs[i]->data = rt;
    /* Signal handlers alone must not keep the loop (or a script) alive. */
    uv_unref((uv_handle_t *)sigs[i]);
  }
  rt->signals_installed = true;
  return 0;
}

int nl_runtime_run(nl_runtime *rt) {
  rt->running = true;
  int rc = uv_run(&rt->loop, UV_RUN_DEFAULT);
  rt->running = false;
  if (rt->shutting_down) {
    /* Closing callbacks ran; the runtime can be used again (busted specs
     * run it many times in one process). */
    rt->shutting_down = false;
  }
  return rc;
}

/* ---- the nodelua.runtime module ---- */

static nl_runtime *check_runtime(lua_State *L) { return nl_runtime_get(L); }

static int l_run(lua_State *L) {
  nl_runtime *rt = check_runtime(L);
  if (rt->running)
    return luaL_error(L, "runtime.run: the loop is already running");
  nl_runtime_run(rt);
  return 0;
}

static int l_stop(lua_State *L) {
  uv_stop(&check_runtime(L)->loop);
  return 0;
}

static int l_exit(lua_State *L) {
  nl_runtime *rt = check_runtime(L);
  lua_Integer code = luaL_optinteger(L, 1, 0);
  luaL_argcheck(L, code >= 0 && code <= 255, 1, "exit status from 0 to 255");
  nl_runtime_shutdown(rt, (int)code);
  return 0;
}

static int add_hook(lua_State *L, int ref) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  return 0;
}

static int l_on_shutdown(lua_State *L) {
  return add_hook(L, check_runtime(L)->shutdown_hooks);
}

static int l_on_reload(lua_State *L) {
  return add_hook(L, check_runtime(L)->reload_hooks);
}

/* runtime.pcall(fn, ...): true, results... or false, message, traceback.
 * Bounded like a callback, so a policy's top-level chunk cannot hang us. */
static int l_pcall(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  int handler;
  int status = call_with_traceback(L, lua_gettop(L) - 1, LUA_MULTRET,
                                   NL_CALL_BOUNDED, &handler);
  if (status == LUA_OK) {
    lua_pushboolean(L, 1);
    lua_replace(L, handler); /* the handler's slot becomes `true` */
    return lua_gettop(L);
  }
  size_t len;
  const char *full = lua_tolstring(L, -1, &len);
  const char *mark = full ? strstr(full, TRACEBACK_MARK) : NULL;
  lua_pushboolean(L, 0);
  if (mark != NULL) {
    lua_pushlstring(L, full, (size_t)(mark - full));
    lua_pushstring(L, mark + 1);
  } else {
    lua_pushstring(L, full ? full : "(no message)");
    lua_pushliteral(L, "");
  }
  return 3;
}

void nl_new_class(lua_State *L, const char *key, const luaL_Reg *methods,
                  lua_CFunction close) {
  if (luaL_newmetatable(L, key)) {
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
}

int nl_push_failure(lua_State *L, int code, const char *fmt, ...) {
  va_list ap;
  lua_pushnil(L);
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_pushinteger(L, code < 0 ? -(lua_Integer)code : code);
  return 3;
}

static int l_install_signals(lua_State *L) {
  int rc = nl_runtime_install_signals(check_runtime(L));
  if (rc != 0)
    return nl_push_failure(L, rc, "%s", uv_strerror(rc));
  lua_pushboolean(L, 1);
  return 1;
}

static int l_budget(lua_State *L) {
  lua_pushinteger(L, check_runtime(L)->budget);
  return 1;
}

static int l_errors(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_runtime(L)->error_count);
  return 1;
}

static int l_pid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

static int l_revision(lua_State *L) {
  lua_pushstring(L, NL_GIT_REVISION);
  return 1;
}

static int l_version(lua_State *L) {
  lua_pushstring(L, nl_version());
  return 1;
}

/* Wall-clock time in seconds, with the milliseconds: for timestamps. */
static int l_time(lua_State *L) {
  uv_timeval64_t tv;
  if (uv_gettimeofday(&tv) != 0)
    return luaL_error(L, "runtime.time: no clock");
  lua_pushnumber(L, (lua_Number)tv.tv_sec + (lua_Number)tv.tv_usec / 1e6);
  return 1;
}

static int l_now(lua_State *L) {
  nl_runtime *rt = check_runtime(L);
  uv_update_time(&rt->loop);
  lua_pushnumber(L, (lua_Number)uv_now(&rt->loop) / 1000.0);
  return 1;
}

/* Seconds of CPU this thread has used (user and kernel), for the agent's
 * own account of where its time goes (nodelua.account). */
static int l_cpu(lua_State *L) {
  struct timespec ts;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
    return luaL_error(L, "runtime.cpu: no thread clock");
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

/* Gives the free pages inside the C heap back to the OS (glibc's
 * malloc_trim): true if some were. Without glibc, nothing to do: false. */
static int l_trim(lua_State *L) {
#ifdef __GLIBC__
  lua_pushboolean(L, malloc_trim(0));
#else
  lua_pushboolean(L, 0);
#endif
  return 1;
}

static const luaL_Reg runtime_functions[] = {
    {"run", l_run},
    {"stop", l_stop},
    {"exit", l_exit},
    {"on_shutdown", l_on_shutdown},
    {"on_reload", l_on_reload},
    {"pcall", l_pcall},
    {"install_signals", l_install_signals},
    {"budget", l_budget},
    {"errors", l_errors},
    {"pid", l_pid},
    {"now", l_now},
    {"time", l_time},
    {"cpu", l_cpu},
    {"trim", l_trim},
    {"version", l_version},
    {"revision", l_revision},
    {NULL, NULL},
};

int luaopen_nodelua_runtime(lua_State *L) {
  nl_runtime_get(L);
  luaL_newlib(L, runtime_functions);
  return 1;
}

void nl_runtime_preload(lua_State *L) {
  static const luaL_Reg modules[] = {
      {"nodelua.runtime", luaopen_nodelua_runtime},
      {"nodelua.timer", luaopen_nodelua_timer},
      {"nodelua.log", luaopen_nodelua_log},
      {"nodelua.config", luaopen_nodelua_config},
      {"nodelua.metrics", luaopen_nodelua_metrics},
      {"nodelua.http", luaopen_nodelua_http},
      {"nodelua.spool", luaopen_nodelua_spool},
      {"nodelua.json", luaopen_nodelua_json},
      {"nodelua.dnssd", luaopen_nodelua_dnssd},
      {"nodelua.dns", luaopen_nodelua_dns},
      {"nodelua.port", luaopen_nodelua_port},
      {"nodelua.control", luaopen_nodelua_control},
      {"nodelua.transfer", luaopen_nodelua_transfer},
      {"nodelua.hash", luaopen_nodelua_hash},
      {"nodelua.trust", luaopen_nodelua_trust},
      {"nodelua.update.native", luaopen_nodelua_update_native},
      {NULL, NULL},
  };
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (const luaL_Reg *m = modules; m->name != NULL; m++) {
    lua_pushcfunction(L, m->func);
    lua_setfield(L, -2, m->name);
  }
  lua_pop(L, 1);
}
