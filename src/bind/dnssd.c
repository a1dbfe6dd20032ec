/* nodelua.dnssd: DNS-SD (Bonjour's dns_sd on macOS, Avahi's compatibility
 * library on Linux) on the loop. Every operation is a userdata that keeps
 * its callback until closed.
 *
 *   local op, err, code = dnssd.register{name = , type = "_nodelua._tcp",
 *                                        port = 7879, txt = {id = "..."}}, fn)
 *   op:update_txt{...}; op:close()
 *   dnssd.browse(type, fn)        fn{event = "added"|"removed"|"failed",
 *                                    name, type, domain, ifindex, ifname}
 *   dnssd.resolve(ifindex, name, type, domain, fn)
 *                                 fn{event = "resolved", host, port, txt,
 *                                    txt_damaged} (or "failed"), many times
 *   dnssd.txt_encode{k = v} -> bytes;  dnssd.txt_decode(bytes) -> table
 * A failed event carries `message`: what went wrong and how to fix it.
 * Failures to start return nil, a message and an errno-like code. */
#include "op.h"

#include "core/discovery/dnssd.h"
#include "core/discovery/txt.h"

#include <stdlib.h>
#include <string.h>

#define OP_KEY "nodelua.dnssd.op"

static void cancel_dnssd(nl_op *o) { nl_dnssd_close(o->handle); }

static void push_txt_table(lua_State *L, const unsigned char *txt, size_t len);

static void set_string(lua_State *L, const char *key, const char *value) {
  if (value != NULL) {
    lua_pushstring(L, value);
    lua_setfield(L, -2, key);
  }
}

static void on_dnssd_event(void *ud, const nl_dnssd_event *ev) {
  nl_op *o = ud;
  lua_State *L = o->rt->L;
  if (!nl_op_push_callback(o))
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
    return nl_push_failure(L, UV_EINVAL, "damaged TXT record (%d bytes)",
                           (int)len);
  return 1;
}

/* ---- dns_sd operations ---- */

static int finish_start(lua_State *L, nl_op *o, int rc, const char *err,
                        int fn_index) {
  if (rc != 0)
    return nl_push_failure(L, rc, "%s", err);
  nl_op_hold(L, o, fn_index, -1);
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
  nl_op *o = nl_op_new(L, OP_KEY, 2, cancel_dnssd);
  char err[256];
  int rc = nl_dnssd_register(nl_runtime_loop(o->rt), name, type, (uint16_t)port,
                             txt, txt_len, on_dnssd_event, o,
                             (nl_dnssd_op **)&o->handle, err, sizeof err);
  return finish_start(L, o, rc, err, 2);
}

static int l_browse(lua_State *L) {
  const char *type = luaL_checkstring(L, 1);
  nl_op *o = nl_op_new(L, OP_KEY, 2, cancel_dnssd);
  char err[256];
  int rc = nl_dnssd_browse(nl_runtime_loop(o->rt), type, on_dnssd_event, o,
                           (nl_dnssd_op **)&o->handle, err, sizeof err);
  return finish_start(L, o, rc, err, 2);
}

static int l_resolve(lua_State *L) {
  lua_Integer ifindex = luaL_checkinteger(L, 1);
  luaL_argcheck(L, ifindex >= 0 && ifindex <= UINT32_MAX, 1,
                "an interface index");
  const char *name = luaL_checkstring(L, 2);
  const char *type = luaL_checkstring(L, 3);
  const char *domain = luaL_checkstring(L, 4);
  nl_op *o = nl_op_new(L, OP_KEY, 5, cancel_dnssd);
  char err[256];
  int rc = nl_dnssd_resolve(nl_runtime_loop(o->rt), (uint32_t)ifindex, name,
                            type, domain, on_dnssd_event, o,
                            (nl_dnssd_op **)&o->handle, err, sizeof err);
  return finish_start(L, o, rc, err, 5);
}

static int l_update_txt(lua_State *L) {
  nl_op *o = luaL_checkudata(L, 1, OP_KEY);
  luaL_argcheck(L, !o->closed && o->handle != NULL, 1, "an open registration");
  unsigned char txt[NL_TXT_RECORD_MAX];
  size_t len = encode_txt(L, 2, txt, sizeof txt);
  int rc = nl_dnssd_update_txt(o->handle, txt, len);
  if (rc != 0)
    return nl_push_failure(L, rc, "%s", nl_dnssd_strerror(rc));
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg registration_methods[] = {
    {"update_txt", l_update_txt},
    {NULL, NULL},
};

static const luaL_Reg functions[] = {
    {"register", l_register},     {"browse", l_browse},
    {"resolve", l_resolve},       {"txt_encode", l_txt_encode},
    {"txt_decode", l_txt_decode}, {NULL, NULL},
};

int luaopen_nodelua_dnssd(lua_State *L) {
  nl_runtime_get(L);
  /* Avahi's compatibility layer prints a warning to stderr on first use
   * unless this is set; we use it on purpose. */
  setenv("AVAHI_COMPAT_NOWARN", "1", 0);
  nl_op_class(L, OP_KEY, registration_methods);
  luaL_newlib(L, functions);
  lua_pushinteger(L, NL_TXT_KEY_MAX);
  lua_setfield(L, -2, "TXT_KEY_MAX");
  return 1;
}
