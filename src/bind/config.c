/* nodelua.config: read access to the validated configuration. get() gives a
 * value typed as the variable is (string, integer or boolean); all() gives
 * every value for display, with secrets replaced. */
#include "runtime.h"

#include "core/log.h"

#include <lauxlib.h>

static void push_value(lua_State *L, const nl_config *cfg, nl_config_id id) {
  const nl_config_var *var = nl_config_var_info(id);
  if (var->kind == NL_KIND_INTEGER)
    lua_pushinteger(L, (lua_Integer)nl_config_num(cfg, id));
  else if (var->kind == NL_KIND_BOOLEAN)
    lua_pushboolean(L, nl_config_num(cfg, id) != 0);
  else
    lua_pushstring(L, nl_config_str(cfg, id));
}

static int check_id(lua_State *L, int arg) {
  const char *name = luaL_checkstring(L, arg);
  int id = nl_config_find(name);
  if (id < 0)
    return luaL_argerror(L, arg,
                         lua_pushfstring(L, "unknown variable '%s'", name));
  return id;
}

static int l_get(lua_State *L) {
  const nl_config *cfg = nl_runtime_config(nl_runtime_get(L));
  push_value(L, cfg, (nl_config_id)check_id(L, 1));
  return 1;
}

static int l_source(lua_State *L) {
  const nl_config *cfg = nl_runtime_config(nl_runtime_get(L));
  lua_pushstring(L, cfg->source[check_id(L, 1)]);
  return 1;
}

static int l_all(lua_State *L) {
  const nl_config *cfg = nl_runtime_config(nl_runtime_get(L));
  lua_createtable(L, 0, NL_CFG_COUNT);
  for (int i = 0; i < NL_CFG_COUNT; i++) {
    const nl_config_var *var = nl_config_var_info((nl_config_id)i);
    if (var->secret)
      lua_pushliteral(L, NL_LOG_REDACTED);
    else
      push_value(L, cfg, (nl_config_id)i);
    lua_setfield(L, -2, var->name);
  }
  return 1;
}

static const luaL_Reg config_functions[] = {
    {"get", l_get},
    {"source", l_source},
    {"all", l_all},
    {NULL, NULL},
};

int luaopen_nodelua_config(lua_State *L) {
  nl_runtime_get(L);
  luaL_newlib(L, config_functions);
  return 1;
}
