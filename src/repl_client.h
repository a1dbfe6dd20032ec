/* `nodelua repl`: the client of the agent's control socket. */
#ifndef NODELUA_REPL_CLIENT_H
#define NODELUA_REPL_CLIENT_H

#include "core/config.h"

typedef struct {
  const nl_config *cfg;
  /* Sends a file as the agent asked: args are host, port, peer label,
   * path and (when nargs is 5) the node id the receiver must prove. It
   * prints progress and the result itself; returns 0 when sent. */
  int (*send)(void *ud, const char *const *args, int nargs);
  void *ud;
} nl_repl_client;

/* Runs the command in argv (argc > 0) or reads commands, on a terminal
 * with line editing. Returns the exit status. */
int nl_repl_main(const nl_repl_client *client, int argc, char **argv);

#endif
