/* The Lua runtime: one libuv loop owning one lua_State. Every call from C
 * into Lua goes through nl_runtime_pcall: protected, with a traceback, and
 * (for callbacks) bounded by an instruction-count hook. */
#ifndef NODELUA_RUNTIME_H
#define NODELUA_RUNTIME_H

#include "core/config.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdbool.h>
#include <uv.h>

typedef struct nl_runtime nl_runtime;

/* Creates the runtime of L with cfg (taken over and freed with the state),
 * or from the process environment when cfg is NULL. Raises a Lua error when
 * that environment does not validate. */
nl_runtime *nl_runtime_open(lua_State *L, nl_config *cfg);
/* The runtime of L, created from the environment on first use: this is how
 * the loadable module (busted under stock lua5.4) gets one. */
nl_runtime *nl_runtime_get(lua_State *L);

uv_loop_t *nl_runtime_loop(nl_runtime *rt);
const nl_config *nl_runtime_config(nl_runtime *rt);

typedef enum {
  NL_CALL_UNBOUNDED = 0, /* a script's main chunk: the operator's program */
  NL_CALL_BOUNDED = 1,   /* callbacks and policy hooks */
} nl_call_bound;

/* Calls the function below nargs arguments on the stack. On success leaves
 * nresults results and returns LUA_OK. On error logs one line "what: message
 * | traceback", counts the error, leaves nothing and returns the status. */
int nl_runtime_pcall(lua_State *L, int nargs, int nresults, nl_call_bound bound,
                     const char *what);

/* SIGINT and SIGTERM shut down cleanly; SIGHUP runs the reload hooks. */
int nl_runtime_install_signals(nl_runtime *rt);

/* Runs the loop until nothing is left to do or shutdown ends it. */
int nl_runtime_run(nl_runtime *rt);

/* Runs the shutdown hooks (newest first), then closes every timer and the
 * signal handlers so that the loop ends. Idempotent. */
void nl_runtime_shutdown(nl_runtime *rt, int exit_code);
bool nl_runtime_exit_requested(nl_runtime *rt, int *exit_code);

int luaopen_nodelua_runtime(lua_State *L);
int luaopen_nodelua_timer(lua_State *L);
int luaopen_nodelua_log(lua_State *L);
int luaopen_nodelua_config(lua_State *L);
int luaopen_nodelua_metrics(lua_State *L);
int luaopen_nodelua_http(lua_State *L);
int luaopen_nodelua_spool(lua_State *L);
int luaopen_nodelua_json(lua_State *L);
int luaopen_nodelua_dnssd(lua_State *L);
int luaopen_nodelua_dns(lua_State *L);
int luaopen_nodelua_port(lua_State *L);
int luaopen_nodelua_control(lua_State *L);
int luaopen_nodelua_transfer(lua_State *L);
int luaopen_nodelua_hash(lua_State *L);
int luaopen_nodelua_trust(lua_State *L);
int luaopen_nodelua_update_native(lua_State *L);

/* The second tier of error (a failure of the world, not misuse): pushes nil,
 * the formatted message and an errno-like code, and returns 3 for the
 * binding to return, as io.open does. code is an errno (or a libuv error,
 * which is a negated errno on Unix): the code pushed is the positive errno,
 * so that Lua compares it with the same numbers everywhere. */
int nl_push_failure(lua_State *L, int code, const char *fmt, ...);

/* Makes the metatable key (once): methods as __index, and close as both
 * __gc and __close, so that a handle is let go of at scope end or
 * collection alike. Leaves the stack as it was. */
void nl_new_class(lua_State *L, const char *key, const luaL_Reg *methods,
                  lua_CFunction close);

/* TRANSFER_RDMA's text ("auto", "off", "required"; NULL: auto) as an
 * nl_rdma_mode; anything else raises a Lua error (bind/transfer.c). */
int nl_transfer_rdma_mode(lua_State *L, const char *mode);

/* Registers the bindings above in package.preload (for the executable). */
void nl_runtime_preload(lua_State *L);

#endif
