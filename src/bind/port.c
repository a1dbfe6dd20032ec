/* nodelua.port: the shared TRANSFER_PORT (core/port.h) and the liveness
 * probes spoken on it. One listener answers probes with this node's hello
 * and hands file transfers to the receiver.
 *
 *   local srv, err, code = port.serve(host, port)
 *   srv:set_hello(full, public); srv:set_key(probe_key or nil)
 *   srv:on_asker(function(address, id, port) end)
 *   srv:receive_files{key = , dir = , max_bytes = , node_id = ,
 *                     encrypted_only = , partial_ttl = , rdma = }
 *                     -> true or nil, err
 *   srv:refuse_files(why); srv:port(); srv:close()
 *   port.probe(address, port, timeout_seconds, fn[, {id = , port = }[, key]])
 *        fn{ok, reply, error, local_address, rtt_ms, verified}: once; the
 *        table introduces this node; key from port.probe_key
 *   port.probe_key(cluster_key) -> the 32-byte key of probes and hellos
 *   port.wait_receivers(seconds) -> receiving threads still running
 * Failures return nil, a message and an errno-like code. */
#include "op.h"

#include "core/discovery/probe.h"
#include "core/port.h"
#include "core/transfer/receiver.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define OP_KEY "nodelua.port.probe"
#define SERVER_KEY "nodelua.port.server"

static void cancel_probe(nl_op *o) { nl_probe_cancel(o->handle); }

static void set_string(lua_State *L, const char *key, const char *value) {
  if (value != NULL) {
    lua_pushstring(L, value);
    lua_setfield(L, -2, key);
  }
}

static void on_probe(void *ud, const nl_probe_result *r) {
  nl_op *o = ud;
  o->handle = NULL; /* it frees itself */
  lua_State *L = o->rt->L;
  if (!nl_op_push_callback(o))
    return;
  nl_op_release(o);
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

/* A probe key argument (from port.probe_key), or NULL for none. */
static const uint8_t *probe_key_arg(lua_State *L, int arg) {
  if (lua_isnoneornil(L, arg))
    return NULL;
  size_t len;
  const char *key = luaL_checklstring(L, arg, &len);
  luaL_argcheck(L, len == NL_PROBE_KEY_SIZE, arg, "a key from probe_key()");
  return (const uint8_t *)key;
}

/* port.probe_key(cluster_key): the key of probes and hellos (32 bytes),
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
  nl_op *o = nl_op_new(L, OP_KEY, 4, cancel_probe);
  int rc = nl_probe_start(nl_runtime_loop(o->rt), address, (int)port,
                          (unsigned)(timeout * 1000), self_id, (int)self_port,
                          key, on_probe, o, (nl_probe **)&o->handle);
  if (rc != 0)
    return nl_push_failure(L, rc, "probe %s: %s", address, uv_strerror(rc));
  nl_op_hold(L, o, 4, -1);
  return 1;
}

/* ---- the listener ---- */
typedef struct {
  nl_port *port;                 /* NULL once closed */
  nl_probe_responder *responder; /* answers the probe lines */
  nl_runtime *rt;
  int asker_ref; /* on_asker's function, or LUA_NOREF */
} server;

static server *check_server(lua_State *L) {
  return luaL_checkudata(L, 1, SERVER_KEY);
}

static server *check_open_server(lua_State *L) {
  server *s = check_server(L);
  luaL_argcheck(L, s->port != NULL, 1, "an open port");
  return s;
}

/* port.serve(host, port): listens; probes are answered once a hello is
 * set, file transfers refused until receive_files. */
static int l_serve(lua_State *L) {
  const char *host = luaL_optstring(L, 1, "");
  lua_Integer number = luaL_checkinteger(L, 2);
  luaL_argcheck(L, number >= 0 && number <= 65535, 2, "port from 0 to 65535");
  nl_runtime *rt = nl_runtime_get(L);
  server *s = lua_newuserdatauv(L, sizeof *s, 0);
  s->port = NULL;
  s->rt = rt;
  s->asker_ref = LUA_NOREF;
  s->responder = nl_probe_responder_new();
  luaL_setmetatable(L, SERVER_KEY);
  if (s->responder == NULL)
    return nl_push_failure(L, UV_ENOMEM, "out of memory");
  char err[256];
  int rc = nl_port_start(nl_runtime_loop(rt), host, (int)number, &s->port, err,
                         sizeof err);
  if (rc != 0)
    return nl_push_failure(L, rc, "%s", err);
  nl_port_on_line(s->port, nl_probe_responder_answer, s->responder);
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
  int rc = nl_probe_responder_set_hello(s->responder, text, len, public_hello,
                                        public_len);
  if (rc != 0)
    return nl_push_failure(L, rc, "hello: %s", uv_strerror(rc));
  lua_pushboolean(L, 1);
  return 1;
}

/* srv:set_key(probe_key or nil): with a key, only probers that prove it
 * get the full hello and are taken as introductions. */
static int l_server_set_key(lua_State *L) {
  server *s = check_open_server(L);
  nl_probe_responder_set_key(s->responder, probe_key_arg(L, 2));
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
  nl_probe_responder_on_asker(s->responder, on_asker, s);
  return 0;
}

/* srv:receive_files{key = , dir = , max_bytes = , node_id = ,
 * encrypted_only = false, partial_ttl = seconds, rdma = "auto"}: framed
 * and TLS connections on this port become file transfers into dir, each
 * on a thread of its own. Returns true, or nil and why (a receive folder that
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
  lua_getfield(L, 2, "rdma");
  cfg.rdma = nl_transfer_rdma_mode(L, luaL_optstring(L, -1, NULL));
  char err[5000];
  errno = 0;
  /* The receiver lives as long as the process: its threads may outlive
   * this server. */
  nl_receiver *r = nl_receiver_new(&cfg, dir, (uint64_t)ttl, err, sizeof err);
  if (r == NULL)
    return nl_push_failure(L, errno ? -errno : UV_EINVAL, "%s", err);
  nl_port_on_framed(s->port, nl_receiver_accept, r, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* srv:refuse_files(why): framed connections get one ERROR frame saying why. */
static int l_server_refuse_files(lua_State *L) {
  server *s = check_open_server(L);
  nl_port_on_framed(s->port, NULL, NULL, luaL_checkstring(L, 2));
  return 0;
}

static int l_server_port(lua_State *L) {
  lua_pushinteger(L, nl_port_number(check_open_server(L)->port));
  return 1;
}

static int l_server_close(lua_State *L) {
  server *s = check_server(L);
  /* The port first: it hands the responder no more lines. */
  nl_port_close(s->port);
  s->port = NULL;
  nl_probe_responder_free(s->responder);
  s->responder = NULL;
  if (s->asker_ref != LUA_NOREF && !s->rt->closing_state)
    luaL_unref(L, LUA_REGISTRYINDEX, s->asker_ref);
  s->asker_ref = LUA_NOREF;
  return 0;
}

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

/* port.wait_receivers(seconds): after the port is closed, waits (bounded)
 * for the file receiver's threads to end; returns how many still run. */
static int l_wait_receivers(lua_State *L) {
  lua_Number seconds = luaL_checknumber(L, 1);
  luaL_argcheck(L, isfinite(seconds) && seconds >= 0 && seconds <= 600, 1,
                "seconds from 0 to 600");
  lua_pushinteger(L, nl_receivers_wait_idle((int)(seconds * 1000)));
  return 1;
}

static const luaL_Reg functions[] = {
    {"serve", l_serve}, {"wait_receivers", l_wait_receivers},
    {"probe", l_probe}, {"probe_key", l_probe_key},
    {NULL, NULL},
};

int luaopen_nodelua_port(lua_State *L) {
  nl_runtime_get(L);
  nl_op_class(L, OP_KEY, NULL);
  nl_new_class(L, SERVER_KEY, server_methods, l_server_close);
  luaL_newlib(L, functions);
  return 1;
}
