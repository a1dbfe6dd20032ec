/* Shared between the binding files of the runtime; not a public header. */
#ifndef NODELUA_RUNTIME_INTERNAL_H
#define NODELUA_RUNTIME_INTERNAL_H

#include "runtime.h"

typedef struct nl_timer nl_timer;

struct nl_runtime {
  uv_loop_t loop;
  lua_State *L;
  nl_config *config;
  int budget;      /* instructions per bounded call */
  int bound_depth; /* > 0 while a bounded call runs */
  bool running;
  bool shutting_down;
  bool exit_requested;
  bool closing_state; /* lua_close is finalising everything */
  int exit_code;
  bool signals_installed;
  uv_signal_t sig_int, sig_term, sig_hup;
  int shutdown_hooks; /* registry ref of an array of functions */
  int reload_hooks;
  unsigned long error_count;
  nl_timer *timers; /* every open timer, for shutdown */
};

/* Closes every open timer (timer.c). */
void nl_timer_close_all(nl_runtime *rt);

#endif
