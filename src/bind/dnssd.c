/* nodelua.dnssd: the discovery core for Lua. Every operation is a userdata
 * that keeps its callback until closed (or, for one-shot operations, until
 * the callback has run once).
 *
 *   local op, err = dnssd.register{name = , type = "_nodelua._tcp",
 *                                  port = 7879, txt = {id = "..."}}, fn)
 *   op:update_txt{...}; op:close()
 *   dnssd.browse(type, fn)        fn{event = "added"|"removed"|"failed",
 *                                    name, type, domain, ifindex, ifname}
 *   dnssd.resolve(ifindex, name, type, domain, fn)
 *                                 fn{event = "resolved", host, port, txt,
 *                                    txt_damaged} (or "failed"), many times
 *   dnssd.getaddrinfo(host, fn)   fn({"10.0.0.2", ...}) or fn(nil, err); once
 *   dnssd.probe(address, port, timeout_seconds, fn[, {id = , port = }[, key]])
 *                                 fn{ok, reply, error, local_address, rtt_ms,
 *                                    verified}; key from dnssd.probe_key;
 *                                 the table introduces this node
 *   dnssd.probe_key(cluster_key) -> the 32-byte key of probes and hellos
 *   local srv = dnssd.serve_probes(host, port); srv:set_hello(full, public);
 *   srv:set_key(probe_key or nil);
 *   srv:on_asker(function(address, id, port) end); srv:port(); srv:close()
 *   dnssd.txt_encode{k = v} -> bytes;  dnssd.txt_decode(bytes) -> table
 * A failed event carries `message`: what went wrong and how to fix it. */
#include "runtime_internal.h"

#include "core/discovery/dnssd.h"
#include "core/discovery/probe.h"
#include "core/discovery/txt.h"
#include "core/transfer/receiver.h"

#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define OP_KEY "nodelua.dnssd.op"
#define SERVER_KEY "nodelua.dnssd.probe_server"

typedef enum { OP_DNSSD, OP_GETADDRINFO, OP_PROBE } op_kind;

typedef struct op {
  op_kind kind;
  nl_runtime *rt;
  int fn_ref, self_ref;
  bool closed;
  union {
    nl_dnssd_op *dnssd;
    uv_getaddrinfo_t *gai;
    nl_probe *probe;
  } u;
} op;

/* Lets go of the Lua side of an op. The C side is closed by the caller. */
static void release_refs(op *o) {
  if (o->closed)
    return;
  o->closed = true;
  if (!o->rt->closing_state) {
    luaL_unref(o->rt->L, LUA_REGISTRYINDEX, o->fn_ref);
    luaL_unref(o->rt->L, LUA_REGISTRYINDEX, o->self_ref);
  }
  o->fn_ref = o->self_ref = LUA_NOREF;
}

static void op_close(op *o) {
  if (o->closed)
    return;
  switch (o->kind) {
  case OP_DNSSD:
    nl_dnssd_close(o->u.dnssd);
    o->u.dnssd = NULL;
    break;
  case OP_GETADDRINFO:
    /* A request already on a worker cannot be cancelled: its callback
     * runs with the op closed, frees the request and does nothing. */
    if (o->u.gai != NULL) {
      uv_cancel((uv_req_t *)o->u.gai); /* its callback still runs, and frees */
      o->u.gai->data = NULL;
      o->u.gai = NULL;
    }
    break;
  case OP_PROBE:
    nl_probe_cancel(o->u.probe);
    o->u.probe = NULL;
    break;
  }
  release_refs(o);
}

/* Pushes the op's callback, or returns false when it has none any more. */
static bool push_callback(op *o) {
  if (o->closed || o->rt->closing_state)
    return false;
  lua_rawgeti(o->rt->L, LUA_REGISTRYINDEX, o->fn_ref);
  return true;
}

static op *new_op(lua_State *L, op_kind kind, int fn_index) {
  luaL_checktype(L, fn_index, LUA_TFUNCTION);
  nl_runtime *rt = nl_runtime_get(L);
  if (rt->shutting_down)
    luaL_error(L, "dnssd: the runtime is shutting down");
  op *o = lua_newuserdatauv(L, sizeof *o, 0);
  memset(o, 0, sizeof *o);
  o->kind = kind;
  o->rt = rt;
  o->closed = true; /* until the resource is acquired */
  o->fn_ref = o->self_ref = LUA_NOREF;
  luaL_setmetatable(L, OP_KEY);
  return o;
}

/* The resource is acquired: keep the callback and the userdata alive. */
static void hold(lua_State *L, op *o, int fn_index, int ud_index) {
  lua_pushvalue(L, fn_index);
  o->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, ud_index);
  o->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  o->closed = false;
}

static void push_txt_table(lua_State *L, const unsigned char *txt, size_t len);

static void set_string(lua_State *L, const char *key, const char *value) {
  if (value != NULL) {
    lua_pushstring(L, value);
    lua_setfield(L, -2, key);
  }
}

static void on_dnssd_event(void *ud, const nl_dnssd_event *ev) {
  op *o = ud;
  lua_State *L = o->rt->L;
  if (!push_callback(o))
    return;
  static const char *const names[] = {"added", "removed", "resolved",
                                      "registered", "failed"};
  lua_createtable(L, 0, 10);
  set_string(L, "event", names[ev->kind]);
  set_string(L, "name", ev->name);
  set_string(L, "type", ev->type);
  set_string(L, "domain", ev->domain);
  set_string(L, "host", ev->host);
  if (ev->ifindex != 0) {
    lua_pushinteger(L, ev->ifindex);
    lua_setfield(L, -2, "ifindex");
    char ifname[64];
    size_t size = sizeof ifname;
    if (uv_if_indextoname(ev->ifindex, ifname, &size) == 0)
      set_string(L, "ifname", ifname);
  }
  if (ev->kind == NL_DNSSD_RESOLVED) {
    lua_pushinteger(L, ev->port);
    lua_setfield(L, -2, "port");
    push_txt_table(L, ev->txt, ev->txt_len);
    if (lua_isnil(L, -1)) {
      lua_pushboolean(L, 1);
      lua_setfield(L, -3, "txt_damaged");
    }
    lua_setfield(L, -2, "txt");
  }
  if (ev->kind == NL_DNSSD_FAILED) {
    lua_pushinteger(L, ev->error);
    lua_setfield(L, -2, "error");
    set_string(L, "message", ev->message);
  }
  nl_runtime_pcall(L, 1, 0, NL_CALL_BOUNDED, "dnssd callback failed");
}

/* ---- TXT ---- */

static void add_entry(void *ud, const nl_txt_entry *e) {
  lua_State *L = ud;
  if (e->value != NULL)
    lua_pushlstring(L, (const char *)e->value, e->value_len);
  else
    lua_pushboolean(L, 1);
  lua_setfield(L, -2, e->key);
}

/* Pushes the decoded table, or nil when the record is damaged. */
static void push_txt_table(lua_State *L, const unsigned char *txt, size_t len) {
  lua_newtable(L);
  if (txt != NULL && nl_txt_parse(txt, len, add_entry, L) < 0) {
    lua_pop(L, 1);
    lua_pushnil(L);
  }
}

/* Encodes the table at index into buf; raises a Lua error on a bad entry.
 * Keys are written in sorted order, so that equal tables give equal
 * records (and no needless TXT updates). */
static size_t encode_txt(lua_State *L, int index, unsigned char *buf,
                         size_t cap) {
  luaL_checktype(L, index, LUA_TTABLE);
  index = lua_absindex(L, index);
  lua_newtable(L);
  int keys = lua_gettop(L);
  lua_Integer n = 0;
  lua_pushnil(L);
  while (lua_next(L, index) != 0) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "txt: keys must be strings");
    lua_pushvalue(L, -1);
    lua_rawseti(L, keys, ++n);
  }
  /* table.sort would be a call into Lua; an insertion sort of a handful of
   * keys is enough. */
  for (lua_Integer i = 2; i <= n; i++) {
    for (lua_Integer j = i; j > 1; j--) {
      lua_rawgeti(L, keys, j - 1);
      lua_rawgeti(L, keys, j);
      if (strcmp(lua_tostring(L, -2), lua_tostring(L, -1)) <= 0) {
        lua_pop(L, 2);
        break;
      }
      lua_rawseti(L, keys, j - 1);
      lua_rawseti(L, keys, j);
    }
  }
  size_t len = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, keys, i);
    const char *key = lua_tostring(L, -1);
    lua_gettable(L, index);
    int rc;
    if (lua_type(L, -1) == LUA_TBOOLEAN) {
      rc = lua_toboolean(L, -1) ? nl_txt_append(buf, cap, &len, key, NULL, 0)
                                : 0;
    } else {
      size_t vlen;
      const char *value = lua_tolstring(L, -1, &vlen);
      if (value == NULL)
        luaL_error(L,
                   "txt: the value of '%s' must be a string, number or "
                   "boolean",
                   key);
      rc = nl_txt_append(buf, cap, &len, key, value, vlen);
    }
    if (rc != 0) {
      lua_rawgeti(L, keys, i);
      luaL_error(L,
                 "txt: '%s' does not fit: keys are 1 to %d printable "
                 "characters without '=', a key=value at most 255 bytes and "
                 "the record at most %d",
                 lua_tostring(L, -1), NL_TXT_KEY_MAX, NL_TXT_RECORD_MAX);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return len;
}

static int l_txt_encode(lua_State *L) {
  unsigned char buf[NL_TXT_RECORD_MAX];
  size_t len = encode_txt(L, 1, buf, sizeof buf);
  lua_pushlstring(L, (const char *)buf, len);
  return 1;
}

static int l_txt_decode(lua_State *L) {
  size_t len;
  const char *record = luaL_checklstring(L, 1, &len);
  push_txt_table(L, (const unsigned char *)record, len);
  if (lua_isnil(L, -1))
    return nl_push_failure(L, -1, "damaged TXT record (%d bytes)", (int)len);
  return 1;
}

/* ---- dns_sd operations ---- */

static int finish_start(lua_State *L, op *o, int rc, const char *err,
                        int fn_index) {
  if (rc != 0)
    return nl_push_failure(L, rc, "%s", err);
  hold(L, o, fn_index, -1);
  return 1;
}

static int l_register(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "name");
  lua_getfield(L, 1, "type");
  lua_getfield(L, 1, "port");
  const char *name = luaL_checkstring(L, -3);
  const char *type = luaL_checkstring(L, -2);
  lua_Integer port = luaL_checkinteger(L, -1);
  luaL_argcheck(L, port >= 1 && port <= 65535, 1, "port from 1 to 65535");
  luaL_argcheck(L, strlen(name) <= 63, 1, "a name of at most 63 bytes");
  lua_getfield(L, 1, "txt");
  unsigned char txt[NL_TXT_RECORD_MAX];
  size_t txt_len = lua_isnil(L, -1) ? 0 : encode_txt(L, -1, txt, sizeof txt);
  op *o = new_op(L, OP_DNSSD, 2);
  char err[256];
  int rc = nl_dnssd_register(nl_runtime_loop(o->rt), name, type, (uint16_t)port,
                             txt, txt_len, on_dnssd_event, o, &o->u.dnssd, err,
                             sizeof err);
  return finish_start(L, o, rc, err, 2);
}

static int l_browse(lua_State *L) {
  const char *type = luaL_checkstring(L, 1);
  op *o = new_op(L, OP_DNSSD, 2);
  char err[256];
  int rc = nl_dnssd_browse(nl_runtime_loop(o->rt), type, on_dnssd_event, o,
                           &o->u.dnssd, err, sizeof err);
  return finish_start(L, o, rc, err, 2);
}

static int l_resolve(lua_State *L) {
  lua_Integer ifindex = luaL_checkinteger(L, 1);
  luaL_argcheck(L, ifindex >= 0 && ifindex <= UINT32_MAX, 1,
                "an interface index");
  const char *name = luaL_checkstring(L, 2);
  const char *type = luaL_checkstring(L, 3);
  const char *domain = luaL_checkstring(L, 4);
  op *o = new_op(L, OP_DNSSD, 5);
  char err[256];
  int rc =
      nl_dnssd_resolve(nl_runtime_loop(o->rt), (uint32_t)ifindex, name, type,
                       domain, on_dnssd_event, o, &o->u.dnssd, err, sizeof err);
  return finish_start(L, o, rc, err, 5);
}

static op *check_op(lua_State *L) { return luaL_checkudata(L, 1, OP_KEY); }

static int l_update_txt(lua_State *L) {
  op *o = check_op(L);
  luaL_argcheck(L, o->kind == OP_DNSSD && !o->closed, 1,
                "an open registration");
  unsigned char txt[NL_TXT_RECORD_MAX];
  size_t len = encode_txt(L, 2, txt, sizeof txt);
  int rc = nl_dnssd_update_txt(o->u.dnssd, txt, len);
  if (rc != 0)
    return nl_push_failure(L, rc, "%s", nl_dnssd_strerror(rc));
  lua_pushboolean(L, 1);
  return 1;
}

/* ---- host names to addresses, on a worker thread ---- */

static void on_getaddrinfo(uv_getaddrinfo_t *req, int status,
                           struct addrinfo *res) {
  op *o = req->data;
  free(req);
  if (o == NULL) { /* closed while it ran */
    uv_freeaddrinfo(res);
    return;
  }
  o->u.gai = NULL;
  lua_State *L = o->rt->L;
  if (!push_callback(o)) {
    uv_freeaddrinfo(res);
    return;
  }
  release_refs(o); /* one-shot: done before the callback runs */
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
  op *o = new_op(L, OP_GETADDRINFO, 2);
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
  o->u.gai = req;
  hold(L, o, 2, -1);
  return 1;
}

/* ---- probes ---- */

static void on_probe(void *ud, const nl_probe_result *r) {
  op *o = ud;
  o->u.probe = NULL; /* it frees itself */
  lua_State *L = o->rt->L;
  if (!push_callback(o))
    return;
  release_refs(o);
  lua_createtable(L, 0, 5);
  lua_pushboolean(L, r->status == 0);
  lua_setfield(L, -2, "ok");
  if (r->reply != NULL) {
    lua_pushlstring(L, r->reply, r->reply_len);
    lua_setfield(L, -2, "reply");
  }
  if (r->status != 0) {
    lua_pushstring(L, uv_strerror(r->status));
    lua_setfield(L, -2, "error");
  }
  if (r->local_address[0] != '\0')
    set_string(L, "local_address", r->local_address);
  lua_pushnumber(L, r->rtt_ms);
  lua_setfield(L, -2, "rtt_ms");
  lua_pushboolean(L, r->verified);
  lua_setfield(L, -2, "verified");
  nl_runtime_pcall(L, 1, 0, NL_CALL_BOUNDED, "probe callback failed");
}

/* A probe key argument (from dnssd.probe_key), or NULL for none. */
static const uint8_t *probe_key_arg(lua_State *L, int arg) {
  if (lua_isnoneornil(L, arg))
    return NULL;
  size_t len;
  const char *key = luaL_checklstring(L, arg, &len);
  luaL_argcheck(L, len == NL_PROBE_KEY_SIZE, arg, "a key from probe_key()");
  return (const uint8_t *)key;
}

/* dnssd.probe_key(cluster_key): the key of probes and hellos (32 bytes),
 * derived from the cluster key. */
static int l_probe_key(lua_State *L) {
  size_t len;
  const char *cluster = luaL_checklstring(L, 1, &len);
  uint8_t key[NL_PROBE_KEY_SIZE];
  luaL_argcheck(L, nl_probe_key((const uint8_t *)cluster, len, key) == 0, 1,
                "a cluster key of 16 bytes or more");
  lua_pushlstring(L, (const char *)key, sizeof key);
  return 1;
}

static int l_probe(lua_State *L) {
  const char *address = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  lua_Number timeout = luaL_checknumber(L, 3);
  luaL_argcheck(L, port >= 1 && port <= 65535, 2, "port from 1 to 65535");
  luaL_argcheck(L, isfinite(timeout) && timeout > 0 && timeout <= 600, 3,
                "seconds from 0 to 600");
  const char *self_id = NULL;
  lua_Integer self_port = 0;
  if (!lua_isnoneornil(L, 5)) {
    luaL_checktype(L, 5, LUA_TTABLE);
    lua_getfield(L, 5, "id");
    lua_getfield(L, 5, "port");
    self_id = luaL_checkstring(L, -2);
    self_port = luaL_checkinteger(L, -1);
    lua_pop(L, 2); /* the id stays alive in the caller's table */
  }
  const uint8_t *key = probe_key_arg(L, 6);
  op *o = new_op(L, OP_PROBE, 4);
  int rc = nl_probe_start(nl_runtime_loop(o->rt), address, (int)port,
                          (unsigned)(timeout * 1000), self_id, (int)self_port,
                          key, on_probe, o, &o->u.probe);
  if (rc != 0)
    return nl_push_failure(L, rc, "probe %s: %s", address, uv_strerror(rc));
  hold(L, o, 4, -1);
  return 1;
}

/* ---- the probe responder ---- */

typedef struct {
  nl_probe_server *srv;
  nl_runtime *rt;
  int asker_ref; /* on_asker's function, or LUA_NOREF */
} server;

static server *check_server(lua_State *L) {
  return luaL_checkudata(L, 1, SERVER_KEY);
}

static server *check_open_server(lua_State *L) {
  server *s = check_server(L);
  luaL_argcheck(L, s->srv != NULL, 1, "an open probe server");
  return s;
}

static int l_serve_probes(lua_State *L) {
  const char *host = luaL_optstring(L, 1, "");
  lua_Integer port = luaL_checkinteger(L, 2);
  luaL_argcheck(L, port >= 0 && port <= 65535, 2, "port from 0 to 65535");
  nl_runtime *rt = nl_runtime_get(L);
  server *s = lua_newuserdatauv(L, sizeof *s, 0);
  s->srv = NULL;
  s->rt = rt;
  s->asker_ref = LUA_NOREF;
  luaL_setmetatable(L, SERVER_KEY);
  char err[256];
  int rc = nl_probe_server_start(nl_runtime_loop(rt), host, (int)port, &s->srv,
                                 err, sizeof err);
  if (rc != 0)
    return nl_push_failure(L, rc, "%s", err);
  return 1;
}

/* srv:set_hello(full, public): one line each; the full hello goes to
 * probers that proved the key, the public one to the rest. */
static int l_server_set_hello(lua_State *L) {
  server *s = check_open_server(L);
  size_t len, public_len;
  const char *text = luaL_checklstring(L, 2, &len);
  const char *public_hello = luaL_checklstring(L, 3, &public_len);
  luaL_argcheck(L, memchr(text, '\n', len) == NULL, 2, "one line");
  luaL_argcheck(L, memchr(public_hello, '\n', public_len) == NULL, 3,
                "one line");
  int rc =
      nl_probe_server_set_hello(s->srv, text, len, public_hello, public_len);
  if (rc != 0)
    return nl_push_failure(L, rc, "hello: %s", uv_strerror(rc));
  lua_pushboolean(L, 1);
  return 1;
}

/* srv:set_key(probe_key or nil): with a key, only probers that prove it
 * get the full hello and are taken as introductions. */
static int l_server_set_key(lua_State *L) {
  server *s = check_open_server(L);
  nl_probe_server_set_key(s->srv, probe_key_arg(L, 2));
  return 0;
}

static void on_asker(void *ud, const char *address, const char *id, int port) {
  server *s = ud;
  if (s->asker_ref == LUA_NOREF || s->rt->closing_state)
    return;
  lua_State *L = s->rt->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->asker_ref);
  lua_pushstring(L, address);
  lua_pushstring(L, id);
  lua_pushinteger(L, port);
  nl_runtime_pcall(L, 3, 0, NL_CALL_BOUNDED, "probe asker callback failed");
}

/* srv:on_asker(function(address, id, port) end): probes that introduce
 * their sender. */
static int l_server_on_asker(lua_State *L) {
  server *s = check_open_server(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  luaL_unref(L, LUA_REGISTRYINDEX, s->asker_ref);
  lua_pushvalue(L, 2);
  s->asker_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  nl_probe_server_on_asker(s->srv, on_asker, s);
  return 0;
}

/* srv:receive_files{key = , dir = , max_bytes = , node_id = ,
 * encrypted_only = false, partial_ttl = seconds}: framed and TLS
 * connections on this port become file transfers into dir, each on a
 * thread of its own. Returns true, or nil and why (a receive folder that
 * is refused says which and why). */
static int l_server_receive_files(lua_State *L) {
  server *s = check_open_server(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_getfield(L, 2, "key");
  lua_getfield(L, 2, "dir");
  lua_getfield(L, 2, "node_id");
  lua_getfield(L, 2, "max_bytes");
  size_t key_len;
  nl_transfer_config cfg = {0};
  cfg.key = (const uint8_t *)luaL_checklstring(L, -4, &key_len);
  cfg.key_len = key_len;
  const char *dir = luaL_checkstring(L, -3);
  cfg.node_id = luaL_checkstring(L, -2);
  lua_Integer max = luaL_checkinteger(L, -1);
  luaL_argcheck(L, max > 0, 2, "max_bytes above 0");
  luaL_argcheck(L, key_len >= 16, 2, "a key of 16 bytes or more");
  cfg.max_bytes = (uint64_t)max;
  lua_getfield(L, 2, "encrypted_only");
  cfg.encrypt = lua_toboolean(L, -1);
  lua_getfield(L, 2, "partial_ttl");
  lua_Integer ttl = luaL_optinteger(L, -1, 7 * 24 * 3600);
  luaL_argcheck(L, ttl > 0, 2, "partial_ttl above 0");
  char err[5000];
  /* The receiver lives as long as the process: its threads may outlive
   * this server. */
  nl_receiver *r = nl_receiver_new(&cfg, dir, (uint64_t)ttl, err, sizeof err);
  if (r == NULL)
    return nl_push_failure(L, -1, "%s", err);
  nl_probe_server_on_framed(s->srv, nl_receiver_accept, r, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* srv:refuse_files(why): framed connections get one ERROR frame saying why. */
static int l_server_refuse_files(lua_State *L) {
  server *s = check_open_server(L);
  nl_probe_server_on_framed(s->srv, NULL, NULL, luaL_checkstring(L, 2));
  return 0;
}

static int l_server_port(lua_State *L) {
  lua_pushinteger(L, nl_probe_server_port(check_open_server(L)->srv));
  return 1;
}

static int l_server_close(lua_State *L) {
  server *s = check_server(L);
  if (s->srv != NULL)
    nl_probe_server_close(s->srv);
  s->srv = NULL;
  if (s->asker_ref != LUA_NOREF && !s->rt->closing_state)
    luaL_unref(L, LUA_REGISTRYINDEX, s->asker_ref);
  s->asker_ref = LUA_NOREF;
  return 0;
}

/* ---- op methods ---- */

static int l_op_close(lua_State *L) {
  op *o = check_op(L);
  bool open = !o->closed;
  /* Also from __gc under lua_close: the loop is still there, and the C side
   * must let go of this userdata before Lua frees it. */
  op_close(o);
  lua_pushboolean(L, open);
  return 1;
}

static int l_op_active(lua_State *L) {
  lua_pushboolean(L, !check_op(L)->closed);
  return 1;
}

static const luaL_Reg op_methods[] = {
    {"close", l_op_close},
    {"cancel", l_op_close},
    {"active", l_op_active},
    {"update_txt", l_update_txt},
    {NULL, NULL},
};

static const luaL_Reg server_methods[] = {
    {"set_hello", l_server_set_hello},
    {"set_key", l_server_set_key},
    {"on_asker", l_server_on_asker},
    {"receive_files", l_server_receive_files},
    {"refuse_files", l_server_refuse_files},
    {"port", l_server_port},
    {"close", l_server_close},
    {NULL, NULL},
};

static const luaL_Reg functions[] = {
    {"register", l_register},
    {"browse", l_browse},
    {"resolve", l_resolve},
    {"getaddrinfo", l_getaddrinfo},
    {"probe", l_probe},
    {"probe_key", l_probe_key},
    {"serve_probes", l_serve_probes},
    {"txt_encode", l_txt_encode},
    {"txt_decode", l_txt_decode},
    {NULL, NULL},
};

int luaopen_nodelua_dnssd(lua_State *L) {
  nl_runtime_get(L);
  /* Avahi's compatibility layer prints a warning to stderr on first use
   * unless this is set; we use it on purpose. */
  setenv("AVAHI_COMPAT_NOWARN", "1", 0);
  nl_new_class(L, OP_KEY, op_methods, l_op_close);
  nl_new_class(L, SERVER_KEY, server_methods, l_server_close);
  luaL_newlib(L, functions);
  lua_pushinteger(L, NL_TXT_KEY_MAX);
  lua_setfield(L, -2, "TXT_KEY_MAX");
  return 1;
}
