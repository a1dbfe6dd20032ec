/* nodelua.control: the agent's control socket for `nodelua repl`.
 *
 *   local ctl, err = control.serve(path, function(line)
 *     return text          -- answered OK
 *     -- or: return nil, message   -- answered ERR
 *   end)
 *   ctl:close()
 * The handler runs on the loop, bounded like every callback; an error in it
 * is answered ERR with its message. */
#include "runtime_internal.h"

#include "core/control.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#define CONTROL_KEY "nodelua.control"

typedef struct {
  nl_control *ctl;
  nl_runtime *rt;
  int fn_ref;
} control;

static char *copy_text(const char *s, size_t len) {
  char *out = malloc(len + 1);
  if (out != NULL) {
    memcpy(out, s, len);
    out[len] = '\0';
  }
  return out;
}

static bool handle(void *ud, const char *line, size_t len, char **reply,
                   size_t *reply_len) {
  control *c = ud;
  lua_State *L = c->rt->L;
  if (c->rt->closing_state || c->fn_ref == LUA_NOREF) {
    *reply = copy_text("the agent is stopping", 21);
    *reply_len = *reply ? 21 : 0;
    return false;
  }
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->fn_ref);
  lua_pushlstring(L, line, len);
  bool ok = false;
  const char *text = NULL;
  size_t text_len = 0;
  if (nl_runtime_pcall(L, 1, 2, NL_CALL_BOUNDED, "repl command failed") !=
      LUA_OK) {
    text = "the command failed; the agent's log has why";
    text_len = strlen(text);
  } else if (lua_type(L, -2) == LUA_TSTRING) {
    ok = true;
    text = lua_tolstring(L, -2, &text_len);
  } else {
    text = lua_tolstring(L, -1, &text_len);
    if (text == NULL) {
      text = "the command gave no answer";
      text_len = strlen(text);
    }
  }
  *reply = copy_text(text, text_len);
  *reply_len = *reply ? text_len : 0;
  lua_settop(L, top);
  return ok;
}

static int l_serve(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  nl_runtime *rt = nl_runtime_get(L);
  control *c = lua_newuserdatauv(L, sizeof *c, 0);
  memset(c, 0, sizeof *c);
  c->rt = rt;
  c->fn_ref = LUA_NOREF;
  luaL_setmetatable(L, CONTROL_KEY);
  char err[512];
  int rc = nl_control_start(nl_runtime_loop(rt), path, handle, c, &c->ctl, err,
                            sizeof err);
  if (rc != 0)
    return nl_push_failure(L, rc, "%s", err);
  lua_pushvalue(L, 2);
  c->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static int l_close(lua_State *L) {
  control *c = luaL_checkudata(L, 1, CONTROL_KEY);
  if (c->ctl != NULL) {
    nl_control_stop(c->ctl);
    c->ctl = NULL;
  }
  if (c->fn_ref != LUA_NOREF && !c->rt->closing_state)
    luaL_unref(L, LUA_REGISTRYINDEX, c->fn_ref);
  c->fn_ref = LUA_NOREF;
  return 0;
}

static const luaL_Reg methods[] = {{"close", l_close}, {NULL, NULL}};

static const luaL_Reg control_functions[] = {
    {"serve", l_serve},
    {NULL, NULL},
};

int luaopen_nodelua_control(lua_State *L) {
  nl_runtime_get(L);
  nl_new_class(L, CONTROL_KEY, methods, l_close);
  luaL_newlib(L, control_functions);
  return 1;
}
