/* nodelua.spool: the on-disk report queue.
 *
 *   local s = spool.open(dir, {max_bytes = ..., max_age = seconds})
 *   s:push(payload)                -- durable when it returns
 *   local data, seq = s:peek()     -- oldest, or nil when empty
 *   s:ack(seq); s:dead_letter(seq, status, reason)
 *   s:stats() -> {depth, bytes, dropped, dead_lettered, oldest_age}
 */
#include "runtime.h"

#include "core/spool.h"

#include <errno.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SPOOL_KEY "nodelua.spool"

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int l_open(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  lua_Number max_bytes = 0, max_age = 0;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "max_bytes");
    max_bytes = luaL_optnumber(L, -1, 0);
    lua_getfield(L, 2, "max_age");
    max_age = luaL_optnumber(L, -1, 0);
    lua_pop(L, 2);
  }
  luaL_argcheck(L, max_bytes >= 0 && max_age >= 0, 2, "bounds of 0 or more");
  nl_spool **slot = lua_newuserdatauv(L, sizeof *slot, 0);
  *slot = NULL;
  luaL_setmetatable(L, SPOOL_KEY);
  char err[512];
  int rc = nl_spool_open(dir, (uint64_t)max_bytes, (int64_t)(max_age * 1000),
                         slot, err, sizeof err);
  if (rc != 0)
    return nl_push_failure(L, rc, "%s", err);
  return 1;
}

static nl_spool *check(lua_State *L) {
  nl_spool **slot = luaL_checkudata(L, 1, SPOOL_KEY);
  if (*slot == NULL)
    luaL_error(L, "spool is closed");
  return *slot;
}

static int l_push(lua_State *L) {
  nl_spool *s = check(L);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  int64_t when = (int64_t)luaL_optnumber(L, 3, (lua_Number)now_ms());
  int rc = nl_spool_push(s, data, len, when);
  if (rc != 0)
    return nl_push_failure(L, rc, "spool push: %s", strerror(-rc));
  lua_pushboolean(L, 1);
  return 1;
}

static int l_peek(lua_State *L) {
  nl_spool *s = check(L);
  char *data;
  size_t len;
  uint64_t seq;
  int rc = nl_spool_peek(s, &data, &len, &seq);
  if (rc == -ENOENT) {
    lua_pushnil(L);
    return 1;
  }
  if (rc != 0)
    return nl_push_failure(L, rc, "spool read: %s", strerror(-rc));
  lua_pushlstring(L, data, len);
  free(data);
  lua_pushinteger(L, (lua_Integer)seq);
  return 2;
}

static int l_ack(lua_State *L) {
  nl_spool *s = check(L);
  int rc = nl_spool_ack(s, (uint64_t)luaL_checkinteger(L, 2));
  if (rc != 0)
    return nl_push_failure(L, rc, "spool ack: %s", strerror(-rc));
  lua_pushboolean(L, 1);
  return 1;
}

static int l_dead_letter(lua_State *L) {
  nl_spool *s = check(L);
  uint64_t seq = (uint64_t)luaL_checkinteger(L, 2);
  long status = (long)luaL_checkinteger(L, 3);
  const char *reason = luaL_optstring(L, 4, "");
  int rc = nl_spool_dead_letter(s, seq, status, reason);
  if (rc != 0)
    return nl_push_failure(L, rc, "spool dead letter: %s", strerror(-rc));
  lua_pushboolean(L, 1);
  return 1;
}

static int l_expire(lua_State *L) {
  nl_spool_expire(check(L), now_ms());
  return 0;
}

static int l_stats(lua_State *L) {
  nl_spool_stats st;
  nl_spool_stats_get(check(L), &st);
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, (lua_Integer)st.depth);
  lua_setfield(L, -2, "depth");
  lua_pushinteger(L, (lua_Integer)st.bytes);
  lua_setfield(L, -2, "bytes");
  lua_pushinteger(L, (lua_Integer)st.dropped);
  lua_setfield(L, -2, "dropped");
  lua_pushinteger(L, (lua_Integer)st.dead_lettered);
  lua_setfield(L, -2, "dead_lettered");
  if (st.oldest_ms >= 0) {
    lua_pushnumber(L, (lua_Number)(now_ms() - st.oldest_ms) / 1000.0);
    lua_setfield(L, -2, "oldest_age");
  }
  return 1;
}

static int l_dir(lua_State *L) {
  lua_pushstring(L, nl_spool_dir(check(L)));
  return 1;
}

static int l_close(lua_State *L) {
  nl_spool **slot = luaL_checkudata(L, 1, SPOOL_KEY);
  if (*slot != NULL) {
    nl_spool_close(*slot);
    *slot = NULL;
  }
  return 0;
}

static const luaL_Reg spool_methods[] = {
    {"push", l_push},     {"peek", l_peek},
    {"ack", l_ack},       {"dead_letter", l_dead_letter},
    {"expire", l_expire}, {"stats", l_stats},
    {"dir", l_dir},       {"close", l_close},
    {NULL, NULL},
};

static const luaL_Reg spool_functions[] = {
    {"open", l_open},
    {NULL, NULL},
};

int luaopen_nodelua_spool(lua_State *L) {
  nl_new_class(L, SPOOL_KEY, spool_methods, l_close);
  luaL_newlib(L, spool_functions);
  return 1;
}
