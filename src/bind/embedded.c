#include "embedded.h"

#include <lauxlib.h>
#include <string.h>

static int embedded_searcher(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  for (size_t i = 0; i < nl_embedded_lua_count; i++) {
    const nl_embedded_lua *f = &nl_embedded_lua_files[i];
    if (strcmp(f->module, name) != 0)
      continue;
    if (luaL_loadbufferx(L, (const char *)f->data, f->size, f->chunkname,
                         "t") != LUA_OK)
      return lua_error(L);
    lua_pushstring(L, f->chunkname + 1);
    return 2;
  }
  lua_pushfstring(L, "no embedded module '%s'", name);
  return 1;
}

void nl_embedded_install(lua_State *L) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
  for (lua_Integer i = n; i >= 2; i--) {
    lua_rawgeti(L, -1, i);
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushcfunction(L, embedded_searcher);
  lua_rawseti(L, -2, 2);
  lua_pop(L, 2);
}
