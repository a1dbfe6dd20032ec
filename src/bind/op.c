#include "op.h"

#include <string.h>

void nl_op_release(nl_op *o) {
  if (o->closed)
    return;
  o->closed = true;
  if (!o->rt->closing_state) {
    luaL_unref(o->rt->L, LUA_REGISTRYINDEX, o->fn_ref);
    luaL_unref(o->rt->L, LUA_REGISTRYINDEX, o->self_ref);
  }
  o->fn_ref = o->self_ref = LUA_NOREF;
}

void nl_op_close(nl_op *o) {
  if (o->closed)
    return;
  if (o->handle != NULL && o->cancel != NULL)
    o->cancel(o);
  o->handle = NULL;
  nl_op_release(o);
}

bool nl_op_push_callback(nl_op *o) {
  if (o->closed || o->rt->closing_state)
    return false;
  lua_rawgeti(o->rt->L, LUA_REGISTRYINDEX, o->fn_ref);
  return true;
}

nl_op *nl_op_new(lua_State *L, const char *class_name, int fn_index,
                 nl_op_cancel_fn cancel) {
  luaL_checktype(L, fn_index, LUA_TFUNCTION);
  nl_runtime *rt = nl_runtime_get(L);
  if (rt->shutting_down)
    luaL_error(L, "the runtime is shutting down");
  nl_op *o = lua_newuserdatauv(L, sizeof *o, 0);
  memset(o, 0, sizeof *o);
  o->rt = rt;
  o->cancel = cancel;
  o->closed = true; /* until the resource is acquired */
  o->fn_ref = o->self_ref = LUA_NOREF;
  luaL_setmetatable(L, class_name);
  return o;
}

void nl_op_hold(lua_State *L, nl_op *o, int fn_index, int ud_index) {
  ud_index = lua_absindex(L, ud_index);
  lua_pushvalue(L, fn_index);
  o->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, ud_index);
  o->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  o->closed = false;
}

/* The methods take the class name as their upvalue. */
static nl_op *check_op(lua_State *L) {
  return luaL_checkudata(L, 1, lua_tostring(L, lua_upvalueindex(1)));
}

static int l_close(lua_State *L) {
  nl_op *o = check_op(L);
  bool open = !o->closed;
  /* Also from __gc under lua_close: the loop is still there, and the C side
   * must let go of this userdata before Lua frees it. */
  nl_op_close(o);
  lua_pushboolean(L, open);
  return 1;
}

static int l_active(lua_State *L) {
  lua_pushboolean(L, !check_op(L)->closed);
  return 1;
}

static const luaL_Reg op_methods[] = {
    {"close", l_close},
    {"cancel", l_close},
    {"active", l_active},
    {NULL, NULL},
};

void nl_op_class(lua_State *L, const char *class_name,
                 const luaL_Reg *extra_methods) {
  if (luaL_newmetatable(L, class_name)) {
    lua_newtable(L);
    lua_pushstring(L, class_name);
    luaL_setfuncs(L, op_methods, 1);
    if (extra_methods != NULL)
      luaL_setfuncs(L, extra_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushstring(L, class_name);
    lua_pushcclosure(L, l_close, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__gc");
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
}
