/* The loadable module: nothing but the luaopen_nodelua_* entry points of the
 * bindings, which the static library provides. Referencing them here keeps
 * the linker from dropping them. */
#include "runtime.h"

typedef int (*nl_lua_open)(lua_State *L);

__attribute__((used)) static const nl_lua_open nl_module_entries[] = {
    luaopen_nodelua_runtime,       luaopen_nodelua_timer,
    luaopen_nodelua_log,           luaopen_nodelua_config,
    luaopen_nodelua_metrics,       luaopen_nodelua_http,
    luaopen_nodelua_spool,         luaopen_nodelua_json,
    luaopen_nodelua_dnssd,         luaopen_nodelua_dns,
    luaopen_nodelua_port,          luaopen_nodelua_control,
    luaopen_nodelua_transfer,      luaopen_nodelua_trust,
    luaopen_nodelua_update_native, luaopen_nodelua_hash,
};
