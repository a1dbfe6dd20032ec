/* RDMA in a build without it (NODELUA_RDMA=OFF, or rdma-core's headers
 * missing at build time with AUTO): the answers of rdma.h, and nothing of
 * RDMA linked. */
#include "rdma.h"

#include <stdio.h>
#include <string.h>

bool nl_rdma_built(void) { return false; }

int nl_rdma_detect(nl_rdma_caps *out) {
  memset(out, 0, sizeof *out);
  snprintf(out->why, sizeof out->why,
           "this build has no RDMA (built with NODELUA_RDMA=OFF, or without "
           "rdma-core's headers)");
  return 0;
}
