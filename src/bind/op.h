/* An operation on the loop as a Lua userdata: it keeps its callback (and
 * itself) alive until it is closed, or, for a one-shot operation, until its
 * callback has run. Shared by nodelua.dnssd, nodelua.dns and nodelua.port;
 * each gives the C side's cancel function and its own class name. Not a
 * public header. */
#ifndef NODELUA_BIND_OP_H
#define NODELUA_BIND_OP_H

#include "runtime_internal.h"

#include <lauxlib.h>
#include <stdbool.h>

typedef struct nl_op nl_op;
/* Closes the C side of an op whose handle is set. */
typedef void (*nl_op_cancel_fn)(nl_op *o);

struct nl_op {
  nl_runtime *rt;
  int fn_ref, self_ref;
  bool closed;
  nl_op_cancel_fn cancel;
  void *handle; /* the C side, for cancel; NULL once it is gone */
};

/* Makes a closed op of class (a metatable made by nl_op_class) on the
 * stack; raises an error when the runtime is shutting down. */
nl_op *nl_op_new(lua_State *L, const char *class_name, int fn_index,
                 nl_op_cancel_fn cancel);
/* The resource is acquired: keeps the callback at fn_index and the
 * userdata at ud_index alive. */
void nl_op_hold(lua_State *L, nl_op *o, int fn_index, int ud_index);
/* Pushes the op's callback; false (nothing pushed) when it has none. */
bool nl_op_push_callback(nl_op *o);
/* Lets go of the Lua side (a one-shot op before its callback runs). */
void nl_op_release(nl_op *o);
/* Closes the C side (through cancel) and the Lua side. */
void nl_op_close(nl_op *o);

/* Registers class_name with close, cancel and active, plus extra methods
 * (may be NULL). The methods find the op with luaL_checkudata. */
void nl_op_class(lua_State *L, const char *class_name,
                 const luaL_Reg *extra_methods);

#endif
