/* The metrics core on this machine: groups present, rates only where they
 * are real, counters going backwards give no rate, and a steady-state
 * sample allocates nothing (malloc is interposed and counted). */
#include "core/metrics/metrics.h"
#include "core/metrics/metrics_internal.h"

#include "check.h"

#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "alloc_count.h"

static void test_groups_present(nl_metrics *m) {
  CHECK(nl_metrics_sample(m, NL_METRICS_ALL) == 0);
  const nl_metrics_snapshot *s = nl_metrics_get(m);
  unsigned required = NL_METRICS_CPU | NL_METRICS_LOAD | NL_METRICS_MEMORY |
                      NL_METRICS_NETWORK | NL_METRICS_STORAGE |
                      NL_METRICS_SYSTEM | NL_METRICS_SELF;
  CHECK((s->present & required) == required);
  CHECK(s->cpu.core_count == (size_t)sysconf(_SC_NPROCESSORS_ONLN));
  CHECK(s->cpu.logical_cores == (int)s->cpu.core_count);
  CHECK(s->memory.total != NL_ABSENT && s->memory.total > 0);
  CHECK(s->memory.used <= s->memory.total);
#ifdef __linux__
  CHECK(s->memory.wired == NL_ABSENT); /* a macOS figure: absent here */
#else
  CHECK(s->memory.buffers == NL_ABSENT); /* a Linux figure */
#endif
  bool have_lo = false;
  for (size_t i = 0; i < s->network.count; i++)
    have_lo = have_lo || (s->network.ifs[i].kind == NL_LINK_LOOPBACK &&
                          s->network.ifs[i].up);
  CHECK(have_lo);
  CHECK(s->storage.fs_count > 0);
  for (size_t i = 0; i < s->storage.fs_count; i++) {
    CHECK(!nl_metrics_fstype_excluded(m, s->storage.fs[i].fstype));
    CHECK(s->storage.fs[i].used <= s->storage.fs[i].size);
  }
  CHECK(s->system.boot_time > 1e9);
  CHECK(s->system.uptime > 0);
  CHECK(s->self.rss_bytes > 0 && s->self.rss_bytes != NL_ABSENT);
  /* Thermal: present only with a real sensor, never invented. */
  if (s->present & NL_METRICS_THERMAL)
    CHECK(s->thermal.count > 0);
  else
    CHECK(access("/sys/class/thermal/thermal_zone0/temp", F_OK) != 0);
}

static void test_rates(void) {
  nl_metrics *m = nl_metrics_open();
  CHECK(m != NULL);
  CHECK(nl_metrics_sample(m, NL_METRICS_CPU | NL_METRICS_NETWORK |
                                 NL_METRICS_STORAGE) == 0);
  const nl_metrics_snapshot *s = nl_metrics_get(m);
  /* The first sample reports no rate rather than a wrong one. */
  CHECK(!s->cpu.has_rate);
  CHECK(isnan(s->cpu.total.usage_percent));
  for (size_t i = 0; i < s->network.count; i++)
    CHECK(isnan(s->network.ifs[i].rates[NL_NET_RX_BYTES]));
  usleep(100000);
  CHECK(nl_metrics_sample(m, NL_METRICS_CPU | NL_METRICS_NETWORK) == 0);
  CHECK(s->cpu.has_rate);
  CHECK(s->cpu.total.usage_percent >= 0 && s->cpu.total.usage_percent <= 100);
  for (size_t i = 0; i < s->cpu.core_count; i++) {
    double sum = 0;
    for (int mode = 0; mode < NL_CPU_MODE_COUNT; mode++)
      sum += isnan(s->cpu.cores[i].percent[mode])
                 ? 0
                 : s->cpu.cores[i].percent[mode];
    /* A core whose counters did not move in 0.1 s has no rate. */
    if (!isnan(s->cpu.cores[i].usage_percent))
      CHECK(fabs(sum - 100) < 1);
  }
  for (size_t i = 0; i < s->network.count; i++)
    CHECK(s->network.ifs[i].rates[NL_NET_RX_BYTES] >= 0);

  /* A counter that went backwards (a reset, an interface that came back)
   * gives no rate for that interval, not a negative or huge one. */
  for (size_t i = 0; i < m->prev_if_count; i++)
    m->prev_ifs[i].counters[NL_NET_RX_BYTES] = UINT64_MAX - 1;
  for (size_t i = 0; i < m->prev_core_count; i++)
    m->prev_cores[i].seconds[NL_CPU_IDLE] = 1e12;
  m->prev_total.seconds[NL_CPU_USER] = 1e12;
  usleep(20000);
  CHECK(nl_metrics_sample(m, NL_METRICS_CPU | NL_METRICS_NETWORK) == 0);
  CHECK(!s->cpu.has_rate);
  for (size_t i = 0; i < s->cpu.core_count; i++)
    CHECK(isnan(s->cpu.cores[i].usage_percent));
  for (size_t i = 0; i < s->network.count; i++) {
    CHECK(isnan(s->network.ifs[i].rates[NL_NET_RX_BYTES]));
    CHECK(!isnan(s->network.ifs[i].rates[NL_NET_TX_BYTES]));
  }
  /* The kernel's idle and iowait estimates step back a little at times:
   * still a rate, that mode's time held where it was, never decreasing. */
  double raised_iowait[256];
  size_t raised = m->prev_core_count < 256 ? m->prev_core_count : 256;
  for (size_t i = 0; i < raised; i++)
    raised_iowait[i] = m->prev_cores[i].seconds[NL_CPU_IOWAIT] += 0.5;
  double held = m->prev_total.seconds[NL_CPU_IOWAIT] += 1.0;
  usleep(20000);
  CHECK(nl_metrics_sample(m, NL_METRICS_CPU) == 0);
  CHECK(s->cpu.has_rate);
  CHECK(s->cpu.total.seconds[NL_CPU_IOWAIT] == held);
  CHECK(s->cpu.total.percent[NL_CPU_IOWAIT] == 0);
  CHECK(m->prev_total.seconds[NL_CPU_IOWAIT] == held);
  /* The cores come in the same order while none goes offline. */
  CHECK(s->cpu.core_count >= raised);
  for (size_t i = 0; i < raised; i++)
    CHECK(s->cpu.cores[i].seconds[NL_CPU_IOWAIT] >= raised_iowait[i]);
  /* And the next interval has rates again. */
  usleep(20000);
  CHECK(nl_metrics_sample(m, NL_METRICS_NETWORK) == 0);
  for (size_t i = 0; i < s->network.count; i++)
    CHECK(!isnan(s->network.ifs[i].rates[NL_NET_RX_BYTES]));
  nl_metrics_close(m);
}

static void test_exclusion(void) {
  nl_metrics *m = nl_metrics_open();
  const char *none[] = {"no-such-type"};
  CHECK(nl_metrics_set_excluded_fstypes(m, none, 1) == 0);
  CHECK(nl_metrics_sample(m, NL_METRICS_STORAGE) == 0);
  size_t with_pseudo = nl_metrics_get(m)->storage.fs_count;
  const char *const *types;
  CHECK(nl_metrics_excluded_fstypes(m, &types) == 1);
  nl_metrics_close(m);
  m = nl_metrics_open();
  CHECK(nl_metrics_sample(m, NL_METRICS_STORAGE) == 0);
  size_t real = nl_metrics_get(m)->storage.fs_count;
  CHECK(nl_metrics_excluded_fstypes(m, &types) > 10);
  /* This machine has tmpfs and cgroup mounts: the default list drops them,
   * (/proc, /sys and /dev mount points are dropped either way). */
  CHECK(with_pseudo >= real);
  nl_metrics_close(m);
}

static void test_no_steady_state_allocation(nl_metrics *m) {
#ifdef COUNTING_ALLOCATIONS
  nl_buf prom = {0};
  for (int i = 0; i < 3; i++) { /* warm-up: arrays grow to this machine */
    CHECK(nl_metrics_sample(m, NL_METRICS_ALL) == 0);
    CHECK(nl_metrics_format_prom(nl_metrics_get(m), 0, &prom) == 0);
  }
  long before = allocations;
  for (int i = 0; i < 50; i++) {
    CHECK(nl_metrics_sample(m, NL_METRICS_ALL) == 0);
    CHECK(nl_metrics_format_prom(nl_metrics_get(m), 0, &prom) == 0);
  }
  long during = allocations - before;
  printf("allocations in 50 steady-state samples: %ld\n", during);
  CHECK(during == 0);
  /* A scrape (every group and every node_exporter collector) too. */
  for (int i = 0; i < 3; i++)
    CHECK(nl_metrics_scrape(m, &prom) == 0);
  before = allocations;
  for (int i = 0; i < 20; i++)
    CHECK(nl_metrics_scrape(m, &prom) == 0);
  during = allocations - before;
  printf("allocations in 20 steady-state scrapes: %ld\n", during);
  CHECK(during == 0);
  /* The counter counts: a fresh collector allocates. */
  before = allocations;
  nl_metrics *fresh = nl_metrics_open();
  CHECK(allocations > before);
  nl_metrics_close(fresh);
  nl_buf_free(&prom);
#else
  (void)m;
  check_skip("allocation count (a sanitizer or non-glibc build)");
#endif
}

#ifdef __linux__
#include "fixture.h"

/* Sensors and link kinds this machine may not have, from a fixture tree
 * laid out as the kernel lays out sysfs. */
static void test_sysfs_fixtures(void) {
  snprintf(fixture, sizeof fixture, "/tmp/nodelua-sysfs-XXXXXX");
  CHECK(mkdtemp(fixture) != NULL);
  put("class/thermal/thermal_zone0/type", "x86_pkg_temp\n");
  put("class/thermal/thermal_zone0/temp", "45500\n");
  put("class/thermal/thermal_zone1/type", "acpitz\n");
  put("class/thermal/thermal_zone1/temp", "27800\n");
  put("class/hwmon/hwmon0/name", "coretemp\n");
  put("class/hwmon/hwmon0/temp1_input", "51000\n");
  put("class/hwmon/hwmon0/temp1_label", "Package id 0\n");
  put("class/hwmon/hwmon0/temp2_input", "49000\n");

  nl_metrics *m = nl_metrics_open();
  nl_host_paths paths = {.sys = fixture};
  CHECK(nl_metrics_set_host_paths(m, &paths) == 0);
  CHECK(nl_metrics_sample(m, NL_METRICS_THERMAL) == 0);
  const nl_metrics_snapshot *s = nl_metrics_get(m);
  CHECK(s->present & NL_METRICS_THERMAL);
  CHECK(s->thermal.count == 4);
  if (s->thermal.count == 4) {
    CHECK_STR(s->thermal.sensors[0].name, "x86_pkg_temp");
    CHECK(s->thermal.sensors[0].celsius == 45.5);
    CHECK_STR(s->thermal.sensors[0].source, "thermal_zone");
    CHECK_STR(s->thermal.sensors[2].name, "coretemp/Package id 0");
    CHECK(s->thermal.sensors[2].celsius == 51.0);
    CHECK_STR(s->thermal.sensors[3].name, "coretemp/temp2");
  }
  nl_buf prom = {0};
  CHECK(nl_metrics_format_prom(s, 0, &prom) == 0);
  CHECK_CONTAINS(prom.data,
                 "node_thermal_zone_temp{type=\"x86_pkg_temp\",zone=\"0\"} "
                 "45.5\n");
  CHECK_CONTAINS(prom.data, "node_hwmon_temp_celsius{chip=\"coretemp\","
                            "sensor=\"Package id 0\"} 51\n");
  nl_buf_free(&prom);

  /* A sensor that goes away is skipped; with none left the group is
   * absent, not zero. */
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s/class/thermal' '%s/class/hwmon'",
           fixture, fixture);
  CHECK(system(cmd) == 0);
  CHECK(nl_metrics_sample(m, NL_METRICS_THERMAL) == 0);
  CHECK(!(s->present & NL_METRICS_THERMAL));

  put("class/net/wlan0/wireless/.keep", "");
  put("class/ieee80211/phy0/index", "0\n");
  link_to("class/net/wlp2s0/phy80211", "../../ieee80211/phy0");
  put("class/net/br0/bridge/.keep", "");
  link_to("class/net/thunderbolt0/device/driver",
          "../../../../bus/thunderbolt/drivers/thunderbolt-net");
  link_to("class/net/eth0/device/driver", "../../../../bus/pci/drivers/e1000e");
  link_to("class/net/ib0/device/driver", "../../../../bus/pci/drivers/mlx5");
  put("class/net/veth0/.keep", "");
  CHECK(nl_metrics_linux_link_kind(fixture, "wlan0", 1) == NL_LINK_WIFI);
  CHECK(nl_metrics_linux_link_kind(fixture, "wlp2s0", 1) == NL_LINK_WIFI);
  CHECK(nl_metrics_linux_link_kind(fixture, "br0", 1) == NL_LINK_BRIDGE);
  CHECK(nl_metrics_linux_link_kind(fixture, "thunderbolt0", 1) ==
        NL_LINK_THUNDERBOLT);
  CHECK(nl_metrics_linux_link_kind(fixture, "eth0", 1) == NL_LINK_ETHERNET);
  CHECK(nl_metrics_linux_link_kind(fixture, "ib0", 32) == NL_LINK_OTHER);
  CHECK(nl_metrics_linux_link_kind(fixture, "veth0", 1) == NL_LINK_VIRTUAL);
  CHECK(nl_metrics_linux_link_kind(fixture, "lo", 772) == NL_LINK_LOOPBACK);
  nl_metrics_close(m);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", fixture);
  CHECK(system(cmd) == 0);
}
#endif

int main(void) {
  nl_metrics *m = nl_metrics_open();
  CHECK(m != NULL);
  if (m == NULL)
    return check_report("test_metrics");
  test_groups_present(m);
  test_rates();
  test_exclusion();
  test_no_steady_state_allocation(m);
#ifdef __linux__
  test_sysfs_fixtures();
#endif
  nl_metrics_close(m);
  return check_report("test_metrics");
}
