/* nodelua.json.encode: JSON with exact integers. lua-cjson 2.1.0 writes
 * every number through a double with at most 14 significant digits, so a
 * byte counter above 10^14 would go out rounded and in exponent form; here a
 * Lua integer is written as an integer and a float with the fewest digits
 * that read back to the same double. A sequence becomes an array, any other
 * table an object; an empty table is an object unless json.array() marked
 * it. Decoding stays with lua-cjson (require "cjson"). */
#include "runtime.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEPTH_MAX 64
static const char ARRAY_MARK[] = "nodelua.json.array";
static const char BUFFER_KEY[] = "nodelua.json.buffer";

/* The output grows in a userdata whose finalizer frees it, so that an error
 * raised halfway leaks nothing. (luaL_Buffer wants the stack top to itself
 * between additions, which a walk over nested tables cannot give it.) */
typedef struct {
  char *data;
  size_t len, cap;
} json_buf;

static int buf_gc(lua_State *L) {
  json_buf *b = luaL_checkudata(L, 1, BUFFER_KEY);
  free(b->data);
  b->data = NULL;
  return 0;
}

static void add(lua_State *L, json_buf *b, const char *s, size_t n) {
  if (b->len + n > b->cap) {
    size_t next = b->cap ? b->cap : 1024;
    while (next < b->len + n)
      next *= 2;
    char *grown = realloc(b->data, next);
    if (grown == NULL)
      luaL_error(L, "json.encode: out of memory");
    b->data = grown;
    b->cap = next;
  }
  memcpy(b->data + b->len, s, n);
  b->len += n;
}

static void add_char(lua_State *L, json_buf *b, char c) { add(L, b, &c, 1); }

static void add_str(lua_State *L, json_buf *b, const char *s) {
  add(L, b, s, strlen(s));
}

static void put_string(lua_State *L, json_buf *b, const char *s, size_t len) {
  add_char(L, b, '"');
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[8];
    switch (c) {
    case '"':
      add_str(L, b, "\\\"");
      break;
    case '\\':
      add_str(L, b, "\\\\");
      break;
    case '\n':
      add_str(L, b, "\\n");
      break;
    case '\r':
      add_str(L, b, "\\r");
      break;
    case '\t':
      add_str(L, b, "\\t");
      break;
    default:
      if (c < 0x20 || c == 0x7f) {
        snprintf(esc, sizeof esc, "\\u%04x", c);
        add_str(L, b, esc);
      } else {
        add_char(L, b, (char)c);
      }
    }
  }
  add_char(L, b, '"');
}

static void put_number(lua_State *L, json_buf *b, int idx) {
  char num[40];
  if (lua_isinteger(L, idx)) {
    snprintf(num, sizeof num, LUA_INTEGER_FMT, lua_tointeger(L, idx));
  } else {
    double v = lua_tonumber(L, idx);
    if (!isfinite(v))
      luaL_error(L, "json.encode: %f cannot be written in JSON", v);
    /* The shortest of 15, 16, 17 digits that reads back exactly. */
    for (int digits = 15; digits <= 17; digits++) {
      snprintf(num, sizeof num, "%.*g", digits, v);
      if (strtod(num, NULL) == v)
        break;
    }
  }
  add_str(L, b, num);
}

/* The length of t if it is a sequence 1..n with nothing else, else -1. */
static lua_Integer sequence_length(lua_State *L, int idx) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
  lua_Integer count = 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 ||
        lua_tointeger(L, -1) > n) {
      lua_pop(L, 1);
      return -1;
    }
    count++;
  }
  return count == n ? n : -1;
}

static bool marked_array(lua_State *L, int idx) {
  if (!lua_getmetatable(L, idx))
    return false;
  luaL_getmetatable(L, ARRAY_MARK);
  bool marked = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return marked;
}

static void encode(lua_State *L, json_buf *b, int idx, int depth);

static void encode_table(lua_State *L, json_buf *b, int idx, int depth) {
  if (depth > DEPTH_MAX)
    luaL_error(L, "json.encode: nested deeper than %d (a cycle?)", DEPTH_MAX);
  luaL_checkstack(L, 4, "json.encode");
  lua_Integer n = sequence_length(L, idx);
  if (n > 0 || (n == 0 && marked_array(L, idx))) {
    add_char(L, b, '[');
    for (lua_Integer i = 1; i <= n; i++) {
      if (i > 1)
        add_char(L, b, ',');
      lua_rawgeti(L, idx, i);
      encode(L, b, lua_gettop(L), depth + 1);
      lua_pop(L, 1);
    }
    add_char(L, b, ']');
    return;
  }
  add_char(L, b, '{');
  bool first = true;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    int t = lua_type(L, -2);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
      luaL_error(L, "json.encode: a key of type %s", lua_typename(L, t));
    if (!first)
      add_char(L, b, ',');
    first = false;
    /* Converting a number key in place would confuse lua_next. */
    lua_pushvalue(L, -2);
    size_t klen;
    const char *key = lua_tolstring(L, -1, &klen);
    put_string(L, b, key, klen);
    lua_pop(L, 1);
    add_char(L, b, ':');
    encode(L, b, lua_gettop(L), depth + 1);
    lua_pop(L, 1);
  }
  add_char(L, b, '}');
}

/* Values are addressed by absolute stack index. */
static void encode(lua_State *L, json_buf *b, int idx, int depth) {
  size_t len;
  const char *s;
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    add_str(L, b, "null");
    break;
  case LUA_TBOOLEAN:
    add_str(L, b, lua_toboolean(L, idx) ? "true" : "false");
    break;
  case LUA_TNUMBER:
    put_number(L, b, idx);
    break;
  case LUA_TSTRING:
    s = lua_tolstring(L, idx, &len);
    put_string(L, b, s, len);
    break;
  case LUA_TTABLE:
    encode_table(L, b, idx, depth);
    break;
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) == NULL) { /* cjson.null */
      add_str(L, b, "null");
      break;
    }
    /* fall through */
  default:
    luaL_error(L, "json.encode: a value of type %s", luaL_typename(L, idx));
  }
}

static int l_encode(lua_State *L) {
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  json_buf *b = lua_newuserdatauv(L, sizeof *b, 0);
  memset(b, 0, sizeof *b);
  luaL_setmetatable(L, BUFFER_KEY);
  encode(L, b, 1, 0);
  lua_pushlstring(L, b->data ? b->data : "", b->len);
  free(b->data);
  b->data = NULL;
  return 1;
}

static int l_array(lua_State *L) {
  if (lua_isnoneornil(L, 1))
    lua_newtable(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  luaL_setmetatable(L, ARRAY_MARK);
  return 1;
}

static const luaL_Reg json_functions[] = {
    {"encode", l_encode},
    {"array", l_array},
    {NULL, NULL},
};

int luaopen_nodelua_json(lua_State *L) {
  luaL_newmetatable(L, ARRAY_MARK);
  lua_pop(L, 1);
  if (luaL_newmetatable(L, BUFFER_KEY)) {
    lua_pushcfunction(L, buf_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_newlib(L, json_functions);
  return 1;
}
