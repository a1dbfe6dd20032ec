/* An OS without a metrics file: every group says "unsupported" (absent);
 * no figure is invented. */
#include "metrics_internal.h"

#include <errno.h>

int nl_metrics_os_open(nl_metrics *m) {
  (void)m;
  return 0;
}

void nl_metrics_os_close(nl_metrics *m) { (void)m; }

int nl_metrics_os_sample(nl_metrics *m, unsigned group) {
  (void)m;
  (void)group;
  return -ENOTSUP;
}
