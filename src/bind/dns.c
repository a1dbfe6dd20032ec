/* nodelua.dns: host names to addresses, on libuv's thread pool, so that a
 * slow resolver (mDNS names through nss-mdns, a dead DNS server) never
 * blocks the loop.
 *
 *   local op, err, code = dns.getaddrinfo(host, fn)
 *        fn({"10.0.0.2", "fd00::2", ...}) or fn(nil, message); once
 *   op:cancel()  (the callback then never runs) */
#include "op.h"

#include <stdlib.h>
#include <string.h>

#define OP_KEY "nodelua.dns.op"

/* A request already on a worker cannot be cancelled: its callback runs with
 * the op gone, frees the request and does nothing. */
static void cancel_getaddrinfo(nl_op *o) {
  uv_getaddrinfo_t *req = o->handle;
  uv_cancel((uv_req_t *)req); /* its callback still runs, and frees */
  req->data = NULL;
}

static void on_getaddrinfo(uv_getaddrinfo_t *req, int status,
                           struct addrinfo *res) {
  nl_op *o = req->data;
  free(req);
  if (o == NULL) { /* closed while it ran */
    uv_freeaddrinfo(res);
    return;
  }
  o->handle = NULL;
  lua_State *L = o->rt->L;
  if (!nl_op_push_callback(o)) {
    uv_freeaddrinfo(res);
    return;
  }
  nl_op_release(o); /* one-shot: done before the callback runs */
  if (status != 0) {
    lua_pushnil(L);
    lua_pushstring(L, uv_strerror(status));
  } else {
    lua_newtable(L);
    lua_Integer n = 0;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
      char name[64] = "";
      if (ai->ai_family == AF_INET)
        uv_ip4_name((struct sockaddr_in *)ai->ai_addr, name, sizeof name);
      else if (ai->ai_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)ai->ai_addr, name, sizeof name);
      else
        continue;
      /* One entry per address, not per socket type. */
      bool dup = false;
      for (lua_Integer i = 1; i <= n && !dup; i++) {
        lua_rawgeti(L, -1, i);
        dup = strcmp(lua_tostring(L, -1), name) == 0;
        lua_pop(L, 1);
      }
      if (!dup) {
        lua_pushstring(L, name);
        lua_rawseti(L, -2, ++n);
      }
    }
    lua_pushnil(L);
  }
  uv_freeaddrinfo(res);
  nl_runtime_pcall(L, 2, 0, NL_CALL_BOUNDED, "getaddrinfo callback failed");
}

static int l_getaddrinfo(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  nl_op *o = nl_op_new(L, OP_KEY, 2, cancel_getaddrinfo);
  uv_getaddrinfo_t *req = calloc(1, sizeof *req);
  if (req == NULL)
    return luaL_error(L, "getaddrinfo: out of memory");
  req->data = o;
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  int rc = uv_getaddrinfo(nl_runtime_loop(o->rt), req, on_getaddrinfo, host,
                          NULL, &hints);
  if (rc != 0) {
    free(req);
    return nl_push_failure(L, rc, "getaddrinfo %s: %s", host, uv_strerror(rc));
  }
  o->handle = req;
  nl_op_hold(L, o, 2, -1);
  return 1;
}

static const luaL_Reg functions[] = {
    {"getaddrinfo", l_getaddrinfo},
    {NULL, NULL},
};

int luaopen_nodelua_dns(lua_State *L) {
  nl_runtime_get(L);
  nl_op_class(L, OP_KEY, NULL);
  luaL_newlib(L, functions);
  return 1;
}
