/* nodelua.timer: after, every, cancel. A timer is a uv_timer_t owned by the
 * runtime; the Lua userdata only points at it, so the handle can outlive a
 * collected userdata until libuv has closed it. */
#include "runtime_internal.h"

#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>

static const char TIMER_KEY[] = "nodelua.timer";
#define MAX_SECONDS 1e9

struct nl_timer {
  uv_timer_t handle;
  nl_runtime *rt;
  int fn_ref;
  int self_ref; /* keeps the userdata alive while the timer is active */
  bool repeat;
  bool closed;
  nl_timer **slot; /* the userdata's pointer, cleared when we go */
  nl_timer *next, *prev;
};

static void unlink_timer(nl_timer *t) {
  if (t->prev)
    t->prev->next = t->next;
  else if (t->rt->timers == t)
    t->rt->timers = t->next;
  if (t->next)
    t->next->prev = t->prev;
  t->next = t->prev = NULL;
}

static void free_timer_cb(uv_handle_t *handle) { free(handle->data); }

/* Stops the timer and lets go of its Lua references. Safe to call twice. */
static void timer_close(nl_timer *t) {
  if (t->closed)
    return;
  t->closed = true;
  unlink_timer(t);
  if (t->slot != NULL)
    *t->slot = NULL;
  if (!t->rt->closing_state) {
    luaL_unref(t->rt->L, LUA_REGISTRYINDEX, t->fn_ref);
    luaL_unref(t->rt->L, LUA_REGISTRYINDEX, t->self_ref);
  }
  uv_timer_stop(&t->handle);
  uv_close((uv_handle_t *)&t->handle, free_timer_cb);
}

void nl_timer_close_all(nl_runtime *rt) {
  while (rt->timers != NULL)
    timer_close(rt->timers);
}

static void on_timer(uv_timer_t *handle) {
  nl_timer *t = handle->data;
  lua_State *L = t->rt->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->fn_ref);
  /* A one-shot timer is done before its callback runs, so the callback sees
   * it inactive and may schedule anew. */
  if (!t->repeat)
    timer_close(t);
  nl_runtime_pcall(L, 0, 0, NL_CALL_BOUNDED, "timer callback failed");
}

static uint64_t check_millis(lua_State *L, int arg, bool positive) {
  lua_Number seconds = luaL_checknumber(L, arg);
  luaL_argcheck(L, isfinite(seconds) && seconds >= 0 && seconds <= MAX_SECONDS,
                arg, "seconds from 0 to 1e9");
  uint64_t ms = (uint64_t)llround(seconds * 1000.0);
  if (positive) {
    luaL_argcheck(L, ms >= 1, arg, "an interval of at least 0.001 seconds");
  }
  return ms;
}

static int start_timer(lua_State *L, bool repeat) {
  nl_runtime *rt = nl_runtime_get(L);
  uint64_t ms = check_millis(L, 1, repeat);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (rt->shutting_down)
    return luaL_error(L, "timer: the runtime is shutting down");
  /* Created closed, then the resource is acquired. */
  nl_timer **slot = lua_newuserdatauv(L, sizeof *slot, 0);
  *slot = NULL;
  luaL_setmetatable(L, TIMER_KEY);
  nl_timer *t = calloc(1, sizeof *t);
  if (t == NULL)
    return luaL_error(L, "timer: out of memory");
  int rc = uv_timer_init(&rt->loop, &t->handle);
  if (rc != 0) {
    free(t);
    return luaL_error(L, "timer: %s", uv_strerror(rc));
  }
  t->handle.data = t;
  t->rt = rt;
  t->repeat = repeat;
  t->slot = slot;
  lua_pushvalue(L, 2);
  t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, -1);
  t->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  t->next = rt->timers;
  if (rt->timers)
    rt->timers->prev = t;
  rt->timers = t;
  *slot = t;
  /* libuv counts a timeout from the loop's cached "now", taken when it last
   * turned; Lua code that ran long since (a sample, a report) would have
   * the timer fire that much early, or at once. */
  uv_update_time(&rt->loop);
  uv_timer_start(&t->handle, on_timer, ms, repeat ? ms : 0);
  return 1;
}

static int l_after(lua_State *L) { return start_timer(L, false); }
static int l_every(lua_State *L) { return start_timer(L, true); }

static nl_timer **check_timer(lua_State *L, int arg) {
  return luaL_checkudata(L, arg, TIMER_KEY);
}

/* Returns true when the timer was active and is now cancelled. */
static int l_cancel(lua_State *L) {
  nl_timer **slot = check_timer(L, 1);
  bool active = *slot != NULL;
  if (active)
    timer_close(*slot);
  lua_pushboolean(L, active);
  return 1;
}

static int l_active(lua_State *L) {
  lua_pushboolean(L, *check_timer(L, 1) != NULL);
  return 1;
}

static int l_gc(lua_State *L) {
  nl_timer **slot = check_timer(L, 1);
  if (*slot != NULL)
    timer_close(*slot);
  return 0;
}

static int l_tostring(lua_State *L) {
  nl_timer **slot = check_timer(L, 1);
  if (*slot == NULL)
    lua_pushliteral(L, "timer (done)");
  else
    lua_pushfstring(L, "timer (%s, %p)", (*slot)->repeat ? "every" : "after",
                    (void *)*slot);
  return 1;
}

static const luaL_Reg timer_methods[] = {
    {"cancel", l_cancel},
    {"close", l_cancel},
    {"active", l_active},
    {NULL, NULL},
};

static const luaL_Reg timer_meta[] = {
    {"__gc", l_gc},    {"__close", l_gc}, {"__tostring", l_tostring},
    {"__index", NULL}, {NULL, NULL},
};

static const luaL_Reg timer_functions[] = {
    {"after", l_after},
    {"every", l_every},
    {"cancel", l_cancel},
    {NULL, NULL},
};

int luaopen_nodelua_timer(lua_State *L) {
  nl_runtime_get(L);
  if (luaL_newmetatable(L, TIMER_KEY)) {
    luaL_setfuncs(L, timer_meta, 0);
    luaL_newlib(L, timer_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_newlib(L, timer_functions);
  return 1;
}
