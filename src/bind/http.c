/* nodelua.http: an HTTP client on the loop, and the local endpoint.
 *
 *   local c = http.client{connect_timeout = 10, timeout = 30, ca_file = nil}
 *   c:post(url, {["X-API-Key"] = key}, body, function(response) ... end)
 *     response: {status = 200, body = "...", retry_after = "5"} or
 *               {status = 0, error = "Connection refused"}
 *   c:get(url, headers, {file = path, max_bytes = n, redirects = 5,
 *         timeout = seconds, low_speed = {bytes, seconds}}, fn)
 *     response also has headers (names lower-cased) and received (bytes)
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

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
  int fd; /* a GET into a file: closed when it is done; else -1 */
} pending;

/* The header lines of an answer as a table, names lower-cased (the last
 * of a repeated name wins). */
static void push_headers(lua_State *L, const char *text) {
  lua_newtable(L);
  while (*text) {
    size_t n = strcspn(text, "\r\n");
    const char *colon = memchr(text, ':', n);
    if (colon != NULL && colon > text) {
      char name[128];
      size_t nl = (size_t)(colon - text);
      if (nl < sizeof name) {
        for (size_t i = 0; i < nl; i++)
          name[i] = (char)tolower((unsigned char)text[i]);
        name[nl] = '\0';
        const char *v = colon + 1;
        size_t vl = n - nl - 1;
        while (vl > 0 && (*v == ' ' || *v == '\t'))
          v++, vl--;
        while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
          vl--;
        lua_pushlstring(L, v, vl);
        lua_setfield(L, -2, name);
      }
    }
    text += n;
    text += strspn(text, "\r\n");
  }
}

static void on_done(void *ud, const nl_http_response *r) {
  pending *p = ud;
  nl_runtime *rt = p->owner->rt;
  lua_State *L = rt->L;
  if (p->fd >= 0)
    close(p->fd);
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
  if (r->headers[0] != '\0') {
    push_headers(L, r->headers);
    lua_setfield(L, -2, "headers");
  }
  lua_pushinteger(L, (lua_Integer)r->received);
  lua_setfield(L, -2, "received");
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

/* The table at index as "Name: value" strings in headers (NULL-ended);
 * the strings stay on the stack, below what the caller pushes next. */
static void check_headers(lua_State *L, int index, const char *headers[]) {
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, index) != 0) {
    const char *name = lua_tostring(L, -2);
    const char *value = lua_tostring(L, -1);
    if (name == NULL || value == NULL || !header_safe(name) ||
        !header_safe(value) || strchr(name, ':') != NULL)
      luaL_error(L, "http: header names and values are strings without CR, "
                    "LF (and ':' in names)");
    if (n == HEADERS_MAX)
      luaL_error(L, "http: more than %d headers", HEADERS_MAX);
    headers[n++] = lua_pushfstring(L, "%s: %s", name, value);
    lua_insert(L, -3);
    lua_pop(L, 1);
  }
  headers[n] = NULL;
}

static pending *new_pending(lua_State *L, client *c, int fn_index, int fd) {
  pending *p = malloc(sizeof *p);
  if (p == NULL) {
    if (fd >= 0)
      close(fd);
    luaL_error(L, "http: out of memory");
  }
  p->owner = c;
  p->fd = fd;
  lua_pushvalue(L, fn_index);
  p->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return p;
}

static int l_post(lua_State *L) {
  client *c = check_client(L);
  const char *url = luaL_checkstring(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  size_t len;
  const char *body = luaL_checklstring(L, 4, &len);
  luaL_checktype(L, 5, LUA_TFUNCTION);
  const char *headers[HEADERS_MAX + 1];
  check_headers(L, 3, headers);
  pending *p = new_pending(L, c, 5, -1);
  int rc = nl_http_post(c->http, url, headers, body, len, on_done, p);
  if (rc != 0) {
    luaL_unref(L, LUA_REGISTRYINDEX, p->fn_ref);
    free(p);
    return nl_push_failure(L, rc, "%s", strerror(-rc));
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* c:get(url, headers, {file = , max_bytes = , redirects = , timeout = ,
 * low_speed = {bytes, seconds}}, fn): the body goes to a new file (created
 * 0600, never through a symlink, truncated) or comes in response.body. */
static int l_get(lua_State *L) {
  client *c = check_client(L);
  const char *url = luaL_checkstring(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_checktype(L, 4, LUA_TTABLE);
  luaL_checktype(L, 5, LUA_TFUNCTION);
  nl_http_get_options o = {.fd = -1};
  lua_getfield(L, 4, "max_bytes");
  lua_Integer max = luaL_optinteger(L, -1, 0);
  lua_getfield(L, 4, "redirects");
  lua_Integer redirects = luaL_optinteger(L, -1, 0);
  lua_getfield(L, 4, "timeout");
  lua_Number timeout = luaL_optnumber(L, -1, 0);
  lua_getfield(L, 4, "file");
  const char *file = luaL_optstring(L, -1, NULL);
  lua_getfield(L, 4, "low_speed");
  if (lua_istable(L, -1)) {
    lua_rawgeti(L, -1, 1);
    lua_rawgeti(L, -2, 2);
    o.low_speed_bytes = (long)luaL_checkinteger(L, -2);
    o.low_speed_seconds = (long)luaL_checkinteger(L, -1);
    lua_pop(L, 2);
  }
  lua_pop(L, 5);
  luaL_argcheck(L, max >= 0 && redirects >= 0 && redirects <= 20, 4,
                "max_bytes >= 0, redirects from 0 to 20");
  luaL_argcheck(L, timeout >= 0 && timeout <= 86400, 4,
                "timeout: seconds from 0 to 86400");
  o.max_bytes = (unsigned long long)max;
  o.max_redirects = (long)redirects;
  o.total_timeout_ms = (long)(timeout * 1000);
  const char *headers[HEADERS_MAX + 1];
  check_headers(L, 3, headers);
  if (file != NULL) {
    o.fd =
        open(file, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (o.fd < 0)
      return nl_push_failure(L, errno, "%s: %s", file, strerror(errno));
  }
  pending *p = new_pending(L, c, 5, o.fd);
  int rc = nl_http_get(c->http, url, headers, &o, on_done, p);
  if (rc != 0) {
    luaL_unref(L, LUA_REGISTRYINDEX, p->fn_ref);
    if (p->fd >= 0)
      close(p->fd);
    free(p);
    return nl_push_failure(L, rc, "%s", strerror(-rc));
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

/* The endpoint's userdata: the server, and the loop side of on-demand
 * rendering (an async handle the request thread signals). */
typedef struct {
  nl_endpoint *ep;
  nl_runtime *rt;
  uv_async_t *async;
  int renders_ref; /* path -> function that returns the body */
} endpoint;

static void async_closed(uv_handle_t *h) { free(h); }

static void wake_loop(void *ud) { uv_async_send(ud); }

/* On the loop: render every on-demand path that a request waits for. */
static void on_render_request(uv_async_t *async) {
  endpoint *e = async->data;
  if (e->ep == NULL || e->rt->closing_state)
    return;
  lua_State *L = e->rt->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, e->renders_ref);
  int renders = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, renders) != 0) {
    /* Stack: renders, path, render function. */
    const char *path = lua_tostring(L, -2);
    if (path != NULL && e->ep != NULL && nl_endpoint_wanted(e->ep, path)) {
      lua_pushvalue(L, -1);
      if (nl_runtime_pcall(L, 0, 1, NL_CALL_BOUNDED,
                           "endpoint render failed") == LUA_OK) {
        size_t len;
        const char *body = lua_tolstring(L, -1, &len);
        if (body != NULL && e->ep != NULL)
          nl_endpoint_publish(e->ep, path, body, len, NULL, 0);
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

static int l_serve(lua_State *L) {
  nl_runtime *rt = nl_runtime_get(L);
  const char *listen = luaL_checkstring(L, 1);
  endpoint *e = lua_newuserdatauv(L, sizeof *e, 0);
  memset(e, 0, sizeof *e);
  e->renders_ref = LUA_NOREF;
  luaL_setmetatable(L, ENDPOINT_KEY);
  char err[256];
  int rc = nl_endpoint_start(listen, &e->ep, err, sizeof err);
  if (rc != 0)
    return nl_push_failure(L, rc, "%s", err);
  e->rt = rt;
  lua_newtable(L);
  e->renders_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static endpoint *check_endpoint(lua_State *L) {
  endpoint *e = luaL_checkudata(L, 1, ENDPOINT_KEY);
  if (e->ep == NULL)
    luaL_error(L, "endpoint is closed");
  return e;
}

static int l_publish(lua_State *L) {
  endpoint *e = check_endpoint(L);
  const char *path = luaL_checkstring(L, 2);
  size_t len;
  const char *body = luaL_checklstring(L, 3, &len);
  const char *type = luaL_checkstring(L, 4);
  int live = lua_toboolean(L, 5);
  luaL_argcheck(L, path[0] == '/', 2, "a path starting with '/'");
  if (nl_endpoint_publish(e->ep, path, body, len, type, live) != 0)
    return luaL_error(L, "endpoint: cannot publish %s", path);
  return 0;
}

/* ep:on_demand(path, content_type, render [, live [, fresh]]): render() is
 * called on the loop when a request for path finds it out of date
 * (ep:invalidate), or for every request when fresh. */
static int l_on_demand(lua_State *L) {
  endpoint *e = check_endpoint(L);
  const char *path = luaL_checkstring(L, 2);
  const char *type = luaL_checkstring(L, 3);
  luaL_checktype(L, 4, LUA_TFUNCTION);
  luaL_argcheck(L, path[0] == '/', 2, "a path starting with '/'");
  if (e->async == NULL) {
    e->async = malloc(sizeof *e->async);
    if (e->async == NULL || uv_async_init(nl_runtime_loop(e->rt), e->async,
                                          on_render_request) != 0) {
      free(e->async);
      e->async = NULL;
      return luaL_error(L, "endpoint: cannot wake the loop");
    }
    e->async->data = e;
    /* It must not keep the loop alive on its own. */
    uv_unref((uv_handle_t *)e->async);
    nl_endpoint_set_wake(e->ep, wake_loop, e->async, 500);
  }
  if (nl_endpoint_on_demand(e->ep, path, type, lua_toboolean(L, 5),
                            lua_toboolean(L, 6)) != 0)
    return luaL_error(L, "endpoint: too many paths");
  lua_rawgeti(L, LUA_REGISTRYINDEX, e->renders_ref);
  lua_pushvalue(L, 4);
  lua_setfield(L, -2, path);
  return 0;
}

static int l_invalidate(lua_State *L) {
  endpoint *e = check_endpoint(L);
  nl_endpoint_invalidate(e->ep, luaL_checkstring(L, 2));
  return 0;
}

static int l_beat(lua_State *L) {
  endpoint *e = check_endpoint(L);
  double stale = luaL_optnumber(L, 2, 10);
  luaL_argcheck(L, stale > 0, 2, "seconds above 0");
  nl_endpoint_beat(e->ep, (long)(stale * 1000));
  return 0;
}

static int l_port(lua_State *L) {
  lua_pushinteger(L, nl_endpoint_port(check_endpoint(L)->ep));
  return 1;
}

static int l_requests(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)nl_endpoint_requests(check_endpoint(L)->ep));
  return 1;
}

static int l_endpoint_close(lua_State *L) {
  endpoint *e = luaL_checkudata(L, 1, ENDPOINT_KEY);
  if (e->ep != NULL) {
    /* The server's thread is joined first: nothing signals the async
     * handle once it closes. */
    nl_endpoint_stop(e->ep);
    e->ep = NULL;
  }
  if (e->async != NULL) {
    if (!uv_is_closing((uv_handle_t *)e->async))
      uv_close((uv_handle_t *)e->async, async_closed);
    e->async = NULL;
  }
  if (e->renders_ref != LUA_NOREF && e->rt != NULL && !e->rt->closing_state) {
    luaL_unref(L, LUA_REGISTRYINDEX, e->renders_ref);
    e->renders_ref = LUA_NOREF;
  }
  return 0;
}

static const luaL_Reg client_methods[] = {
    {"post", l_post},          {"get", l_get}, {"in_flight", l_in_flight},
    {"close", l_client_close}, {NULL, NULL},
};

static const luaL_Reg endpoint_methods[] = {
    {"publish", l_publish},
    {"on_demand", l_on_demand},
    {"invalidate", l_invalidate},
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

int luaopen_nodelua_http(lua_State *L) {
  nl_runtime_get(L);
  nl_new_class(L, CLIENT_KEY, client_methods, l_client_close);
  nl_new_class(L, ENDPOINT_KEY, endpoint_methods, l_endpoint_close);
  luaL_newlib(L, http_functions);
  return 1;
}
