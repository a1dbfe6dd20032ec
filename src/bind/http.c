/* nodelua.http: an HTTP client on the loop, and the local endpoint.
 *
 *   local c = http.client{connect_timeout = 10, timeout = 30, ca_file = nil}
 *   c:post(url, {["X-API-Key"] = key}, body, function(response) ... end)
 *     response: {status = 200, body = "...", retry_after = "5"} or
 *               {status = 0, error = "Connection refused"}
 *   c:close()
 *
 *   local ep = http.serve("127.0.0.1:9101")      -- nil, message on failure
 *   ep:publish("/metrics", text, "text/plain; version=0.0.4")
 *   ep:publish("/healthz", json, "application/json", true)  -- live route
 *   ep:beat(stale_after_seconds)
 *   ep:close()
 */
#include "runtime_internal.h"

#include "core/http/client.h"
#include "core/http/server.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#define CLIENT_KEY "nodelua.http.client"
#define ENDPOINT_KEY "nodelua.http.endpoint"
#define HEADERS_MAX 32

typedef struct {
  nl_http *http;
  nl_runtime *rt;
  bool closed;
} client;

typedef struct {
  client *owner;
  int fn_ref;
} pending;

static void on_done(void *ud, const nl_http_response *r) {
  pending *p = ud;
  nl_runtime *rt = p->owner->rt;
  lua_State *L = rt->L;
  if (p->owner->closed || rt->closing_state) {
    /* Closed by its owner or by lua_close: no Lua runs for it now. */
    if (!rt->closing_state)
      luaL_unref(L, LUA_REGISTRYINDEX, p->fn_ref);
    free(p);
    return;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->fn_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, p->fn_ref);
  free(p);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, r->status);
  lua_setfield(L, -2, "status");
  if (r->error[0] != '\0') {
    lua_pushstring(L, r->error);
    lua_setfield(L, -2, "error");
  } else {
    lua_pushlstring(L, r->body, r->body_len);
    lua_setfield(L, -2, "body");
  }
  if (r->retry_after[0] != '\0') {
    lua_pushstring(L, r->retry_after);
    lua_setfield(L, -2, "retry_after");
  }
  nl_runtime_pcall(L, 1, 0, NL_CALL_BOUNDED, "http callback failed");
}

static long opt_millis(lua_State *L, int table, const char *key, double dflt) {
  lua_getfield(L, table, key);
  double seconds = luaL_optnumber(L, -1, dflt);
  lua_pop(L, 1);
  if (!(seconds > 0 && seconds <= 3600))
    luaL_error(L, "http.client: %s must be seconds from 0 to 3600", key);
  return (long)(seconds * 1000);
}

static int l_client(lua_State *L) {
  nl_runtime *rt = nl_runtime_get(L);
  if (lua_isnoneornil(L, 1))
    lua_newtable(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  nl_http_options o = {0};
  o.connect_timeout_ms = opt_millis(L, 1, "connect_timeout", 10);
  o.total_timeout_ms = opt_millis(L, 1, "timeout", 30);
  lua_getfield(L, 1, "ca_file");
  o.ca_file = luaL_optstring(L, -1, NULL);
  lua_getfield(L, 1, "user_agent");
  o.user_agent = luaL_optstring(L, -1, NULL);
  client *c = lua_newuserdatauv(L, sizeof *c, 0);
  memset(c, 0, sizeof *c);
  c->closed = true; /* created closed, then the resource is acquired */
  luaL_setmetatable(L, CLIENT_KEY);
  c->http = nl_http_new(nl_runtime_loop(rt), &o);
  if (c->http == NULL)
    return luaL_error(L, "http.client: cannot create the client");
  c->rt = rt;
  c->closed = false;
  return 1;
}

static client *check_client(lua_State *L) {
  client *c = luaL_checkudata(L, 1, CLIENT_KEY);
  if (c->closed)
    luaL_error(L, "http client is closed");
  return c;
}

static bool header_safe(const char *s) {
  for (; *s; s++) {
    if (*s == '\r' || *s == '\n')
      return false;
  }
  return true;
}

static int l_post(lua_State *L) {
  client *c = check_client(L);
  const char *url = luaL_checkstring(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  size_t len;
  const char *body = luaL_checklstring(L, 4, &len);
  luaL_checktype(L, 5, LUA_TFUNCTION);
  const char *headers[HEADERS_MAX + 1];
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, 3) != 0) {
    const char *name = lua_tostring(L, -2);
    const char *value = lua_tostring(L, -1);
    if (name == NULL || value == NULL || !header_safe(name) ||
        !header_safe(value) || strchr(name, ':') != NULL)
      return luaL_error(L, "http post: header names and values are strings "
                           "without CR, LF (and ':' in names)");
    if (n == HEADERS_MAX)
      return luaL_error(L, "http post: more than %d headers", HEADERS_MAX);
    /* "Name: value" strings live on the stack until the post is made. */
    headers[n++] = lua_pushfstring(L, "%s: %s", name, value);
    lua_insert(L, -3);
    lua_pop(L, 1);
  }
  headers[n] = NULL;
  pending *p = malloc(sizeof *p);
  if (p == NULL)
    return luaL_error(L, "http post: out of memory");
  p->owner = c;
  lua_pushvalue(L, 5);
  p->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  int rc = nl_http_post(c->http, url, headers, body, len, on_done, p);
  if (rc != 0) {
    luaL_unref(L, LUA_REGISTRYINDEX, p->fn_ref);
    free(p);
    lua_pushnil(L);
    lua_pushstring(L, strerror(-rc));
    lua_pushinteger(L, rc);
    return 3;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_in_flight(lua_State *L) {
  client *c = luaL_checkudata(L, 1, CLIENT_KEY);
  lua_pushinteger(L, c->closed ? 0 : (lua_Integer)nl_http_in_flight(c->http));
  return 1;
}

static int l_client_close(lua_State *L) {
  client *c = luaL_checkudata(L, 1, CLIENT_KEY);
  if (!c->closed) {
    c->closed = true;
    nl_http_close(c->http);
    c->http = NULL;
  }
  return 0;
}

static int l_serve(lua_State *L) {
  nl_runtime_get(L);
  const char *listen = luaL_checkstring(L, 1);
  nl_endpoint **slot = lua_newuserdatauv(L, sizeof *slot, 0);
  *slot = NULL;
  luaL_setmetatable(L, ENDPOINT_KEY);
  char err[256];
  int rc = nl_endpoint_start(listen, slot, err, sizeof err);
  if (rc != 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    lua_pushinteger(L, rc);
    return 3;
  }
  return 1;
}

static nl_endpoint *check_endpoint(lua_State *L) {
  nl_endpoint **slot = luaL_checkudata(L, 1, ENDPOINT_KEY);
  if (*slot == NULL)
    luaL_error(L, "endpoint is closed");
  return *slot;
}

static int l_publish(lua_State *L) {
  nl_endpoint *ep = check_endpoint(L);
  const char *path = luaL_checkstring(L, 2);
  size_t len;
  const char *body = luaL_checklstring(L, 3, &len);
  const char *type = luaL_checkstring(L, 4);
  int live = lua_toboolean(L, 5);
  luaL_argcheck(L, path[0] == '/', 2, "a path starting with '/'");
  if (nl_endpoint_publish(ep, path, body, len, type, live) != 0)
    return luaL_error(L, "endpoint: cannot publish %s", path);
  return 0;
}

static int l_beat(lua_State *L) {
  nl_endpoint *ep = check_endpoint(L);
  double stale = luaL_optnumber(L, 2, 10);
  luaL_argcheck(L, stale > 0, 2, "seconds above 0");
  nl_endpoint_beat(ep, (long)(stale * 1000));
  return 0;
}

static int l_port(lua_State *L) {
  lua_pushinteger(L, nl_endpoint_port(check_endpoint(L)));
  return 1;
}

static int l_requests(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)nl_endpoint_requests(check_endpoint(L)));
  return 1;
}

static int l_endpoint_close(lua_State *L) {
  nl_endpoint **slot = luaL_checkudata(L, 1, ENDPOINT_KEY);
  if (*slot != NULL) {
    nl_endpoint_stop(*slot);
    *slot = NULL;
  }
  return 0;
}

static const luaL_Reg client_methods[] = {
    {"post", l_post},
    {"in_flight", l_in_flight},
    {"close", l_client_close},
    {NULL, NULL},
};

static const luaL_Reg endpoint_methods[] = {
    {"publish", l_publish},
    {"beat", l_beat},
    {"port", l_port},
    {"requests", l_requests},
    {"close", l_endpoint_close},
    {NULL, NULL},
};

static const luaL_Reg http_functions[] = {
    {"client", l_client},
    {"serve", l_serve},
    {NULL, NULL},
};

static void new_class(lua_State *L, const char *key, const luaL_Reg *methods,
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

int luaopen_nodelua_http(lua_State *L) {
  nl_runtime_get(L);
  new_class(L, CLIENT_KEY, client_methods, l_client_close);
  new_class(L, ENDPOINT_KEY, endpoint_methods, l_endpoint_close);
  luaL_newlib(L, http_functions);
  return 1;
}
