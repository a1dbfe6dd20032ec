/* The Lua side of nodelua, compiled into the binary so that the executable
 * is one self-contained file (an update swaps one file, never a tree). */
#ifndef NODELUA_EMBEDDED_H
#define NODELUA_EMBEDDED_H

#include <lua.h>
#include <stddef.h>

typedef struct {
  const char *module;    /* "nodelua.policy" */
  const char *chunkname; /* "@lua/nodelua/policy.lua", for file:line */
  const unsigned char *data;
  size_t size;
} nl_embedded_lua;

extern const nl_embedded_lua nl_embedded_lua_files[];
extern const size_t nl_embedded_lua_count;

/* Puts the embedded modules in package.searchers right after the preload
 * searcher, so the binary's own Lua wins over anything on package.path. */
void nl_embedded_install(lua_State *L);

#endif
