/* `nodelua repl`: the client of the agent's control socket. */
#ifndef NODELUA_REPL_CLIENT_H
#define NODELUA_REPL_CLIENT_H

#include "core/config.h"

/* Runs the command in argv (argc > 0) or reads commands, on a terminal
 * with line editing. Returns the exit status. */
int nl_repl_main(const nl_config *cfg, int argc, char **argv);

#endif
