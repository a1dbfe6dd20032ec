/* nodelua.log: log.info(fmt, ...) and friends. With more than one argument
 * the message is string.format(fmt, ...); the component is the calling
 * chunk's file:line, so an operator can find the policy line that spoke. */
#include "runtime.h"

#include "core/log.h"

#include <errno.h>
#include <lauxlib.h>
#include <string.h>

static int log_at(lua_State *L, nl_log_level level) {
  if (!nl_log_enabled(level))
    return 0;
  int nargs = lua_gettop(L);
  const char *message;
  if (nargs > 1) {
    lua_getglobal(L, "string");
    lua_getfield(L, -1, "format");
    lua_remove(L, -2);
    lua_insert(L, 1);
    lua_call(L, nargs, 1);
    message = lua_tostring(L, -1);
  } else {
    message = luaL_tolstring(L, 1, NULL);
  }
  char where[160] = "lua";
  lua_Debug ar;
  if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) &&
      ar.currentline > 0)
    snprintf(where, sizeof where, "%s:%d", ar.short_src, ar.currentline);
  nl_log_write(level, where, "%s", message ? message : "");
  return 0;
}

static int l_error(lua_State *L) { return log_at(L, NL_LOG_ERROR); }
static int l_warn(lua_State *L) { return log_at(L, NL_LOG_WARN); }
static int l_info(lua_State *L) { return log_at(L, NL_LOG_INFO); }
static int l_debug(lua_State *L) { return log_at(L, NL_LOG_DEBUG); }
static int l_trace(lua_State *L) { return log_at(L, NL_LOG_TRACE); }

static int l_level(lua_State *L) {
  lua_pushstring(L, nl_log_level_name(nl_log_get_level()));
  return 1;
}

static int l_enabled(lua_State *L) {
  nl_log_level level;
  if (nl_log_level_parse(luaL_checkstring(L, 1), &level) != 0)
    return luaL_argerror(L, 1, "one of error, warn, info, debug, trace");
  lua_pushboolean(L, nl_log_enabled(level));
  return 1;
}

/* log.set_file(path) sends further lines to a file; log.set_file() back to
 * stderr. A failure of the world returns nil, message, code. */
static int l_set_file(lua_State *L) {
  const char *path = luaL_optstring(L, 1, NULL);
  int rc = nl_log_set_file(path);
  if (rc != 0)
    return nl_push_failure(L, rc, "%s: %s", path, strerror(-rc));
  lua_pushboolean(L, 1);
  return 1;
}

/* log.add_secret(value): value is written as the redaction mark in every
 * line from now on (a secret read from a file: the cluster key). Values
 * shorter than NL_LOG_MIN_SECRET are not taken: they would blank common
 * words. */
static int l_add_secret(lua_State *L) {
  int rc = nl_log_add_secret(luaL_checkstring(L, 1));
  if (rc != 0)
    return nl_push_failure(L, rc, "cannot keep the secret: %s", strerror(-rc));
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg log_functions[] = {
    {"add_secret", l_add_secret},
    {"error", l_error},
    {"warn", l_warn},
    {"info", l_info},
    {"debug", l_debug},
    {"trace", l_trace},
    {"level", l_level},
    {"enabled", l_enabled},
    {"set_file", l_set_file},
    {NULL, NULL},
};

int luaopen_nodelua_log(lua_State *L) {
  nl_runtime_get(L);
  luaL_newlib(L, log_functions);
  return 1;
}
