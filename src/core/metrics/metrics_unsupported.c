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

const char *const nl_metrics_os_default_excluded[] = {"devfs"};
const size_t nl_metrics_os_default_excluded_count = 1;

bool nl_metrics_os_mount_excluded(const char *mount) {
  (void)mount;
  return false;
}

const unsigned nl_metrics_os_prom_skip = 0;

void nl_metrics_os_paths_changed(nl_metrics *m) { (void)m; }

int nl_metrics_os_export(nl_metrics *m, nl_buf *out) {
  (void)m;
  return out->failed ? -ENOMEM : 0;
}
