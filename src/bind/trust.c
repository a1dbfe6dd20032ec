/* nodelua.trust: reading files that are code or secrets only when no
 * other user could have written them (core/trust.h).
 *
 *   local text, err = trust.read(path [, {secret = true, max = bytes}])
 *
 * Returns the contents, or nil, one line saying why (naming the file and
 * how to fix it) and an errno-like code (ENOENT for a missing file).
 *
 *   local ok, err = trust.own_folder(path, what) */
#include "runtime.h"

#include "core/trust.h"

#include <errno.h>
#include <lauxlib.h>
#include <stdlib.h>

static int l_read(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  unsigned flags = 0;
  lua_Integer max = 1024 * 1024;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "secret");
    if (lua_toboolean(L, -1))
      flags |= NL_TRUST_SECRET;
    lua_getfield(L, 2, "max");
    max = luaL_optinteger(L, -1, max);
    luaL_argcheck(L, max > 0, 2, "max above 0");
    lua_pop(L, 2);
  }
  char err[1024];
  size_t len = 0;
  char *text =
      nl_trust_read(path, flags, (size_t)max, &len, NULL, err, sizeof err);
  if (text == NULL)
    return nl_push_failure(L, errno, "%s", err);
  lua_pushlstring(L, text, len);
  free(text);
  return 1;
}

/* trust.own_folder(path, what): makes path if missing (0700), and returns
 * true, or nil and why when it is not this agent's own folder (another
 * owner, or writable by others). */
static int l_own_folder(lua_State *L) {
  char err[1024];
  if (nl_trust_own_folder(luaL_checkstring(L, 1), luaL_checkstring(L, 2), err,
                          sizeof err) != 0)
    return nl_push_failure(L, EPERM, "%s", err);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg trust_functions[] = {
    {"read", l_read},
    {"own_folder", l_own_folder},
    {NULL, NULL},
};

int luaopen_nodelua_trust(lua_State *L) {
  luaL_newlib(L, trust_functions);
  return 1;
}
