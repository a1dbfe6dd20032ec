/* A scrape through the host paths (HOST_PROC, HOST_SYS, HOST_ROOT,
 * HOST_RUN) pointed at a fixture tree laid out as the kernel lays out
 * /proc and /sys: every node_exporter family reports the tree's facts, in
 * node_exporter's names, labels and units, including what this machine
 * lacks (hwmon, cpufreq, PSI irq, schedstat). On a machine other than
 * Linux, the test says SKIPPED. */
#include "core/metrics/metrics.h"
#include "core/metrics/promtext.h"

#include "check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#ifdef __linux__
#include "fixture.h"

static void make_proc(void) {
  put("proc/stat", "cpu  100 0 50 1000 10 0 5 0 7 3\n"
                   "cpu0 100 0 50 1000 10 0 5 0 7 3\n"
                   "intr 12345 0 0 7\n"
                   "ctxt 6789\n"
                   "btime 1700000000\n"
                   "processes 4242\n"
                   "procs_running 3\n"
                   "procs_blocked 1\n");
  put("proc/meminfo", "MemTotal:       16384000 kB\n"
                      "MemFree:         8192000 kB\n"
                      "MemAvailable:   12000000 kB\n"
                      "Buffers:          100000 kB\n"
                      "Cached:          2000000 kB\n"
                      "Active(anon):     300000 kB\n"
                      "HugePages_Total:       0\n"
                      "Hugepagesize:       2048 kB\n");
  put("proc/loadavg", "0.50 0.40 0.30 1/100 4242\n");
  put("proc/uptime", "100.00 50.00\n");
  put("proc/cpuinfo", "processor\t: 0\nvendor_id\t: FixtureCPU\n");
  put("proc/vmstat", "nr_free_pages 100\npgpgin 11\npgfault 22\n"
                     "pgmajfault 3\noom_kill 1\nnr_dirty 5\n");
  put("proc/1/mounts", "/dev/sda1 / ext4 rw,relatime 0 0\n"
                       "/dev/sdb1 /data xfs ro,noatime 0 0\n"
                       "proc /proc proc rw 0 0\n"
                       "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n"
                       "/dev/sdc1 /missing ext4 rw 0 0\n");
  put("proc/diskstats",
      "   8       0 sda 100 2 800 50 200 3 1600 70 0 90 120 10 1 80 5 7 9\n"
      "   8       1 sda1 1 0 8 0 0 0 0 0 0 0 0\n"
      "   7       0 loop0 1 0 8 0 0 0 0 0 0 0 0\n"
      " 259       0 nvme0n1 5 0 40 1 6 0 48 2 0 3 3\n"
      " 259       1 nvme0n1p1 1 0 8 0 0 0 0 0 0 0 0\n");
  put("proc/pressure/cpu", "some avg10=0.00 avg60=0.00 avg300=0.00 "
                           "total=1500000\n");
  put("proc/pressure/io", "some avg10=0.00 avg60=0.00 avg300=0.00 "
                          "total=2000000\n"
                          "full avg10=0.00 avg60=0.00 avg300=0.00 "
                          "total=1000000\n");
  put("proc/pressure/irq", "full avg10=0.00 avg60=0.00 avg300=0.00 "
                           "total=2500000\n");
  put("proc/net/netstat", "TcpExt: SyncookiesSent ListenDrops TCPTimeouts "
                          "TCPOFOQueue\n"
                          "TcpExt: 1 2 3 4\n"
                          "IpExt: InOctets OutOctets InNoRoutes\n"
                          "IpExt: 10 20 30\n");
  put("proc/net/snmp", "Tcp: RtoAlgorithm ActiveOpens CurrEstab InErrs\n"
                       "Tcp: 1 5 6 7\n"
                       "Udp: InDatagrams NoPorts\n"
                       "Udp: 8 9\n");
  put("proc/net/snmp6", "Ip6InOctets                     100\n"
                        "Udp6InDatagrams                 4\n"
                        "Icmp6InMsgs                     2\n"
                        "Ip6OutNoRoutes                  1\n");
  put("proc/net/sockstat", "sockets: used 14\n"
                           "TCP: inuse 4 orphan 0 tw 1 alloc 5 mem 3\n");
  put("proc/net/sockstat6", "TCP6: inuse 2\n");
  put("proc/net/softnet_stat", "0000000a 00000001 00000002 00000000 00000000 "
                               "00000000 00000000 00000000 00000000 "
                               "00000003 00000004\n");
  put("proc/net/arp",
      "IP address       HW type     Flags       HW address            Mask  "
      "   Device\n"
      "10.0.0.1         0x1         0x2         aa:bb:cc:dd:ee:ff     *     "
      "   eth0\n"
      "10.0.0.2         0x1         0x2         aa:bb:cc:dd:ee:fe     *     "
      "   eth0\n");
  put("proc/net/udp",
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when "
      "retrnsmt   uid  timeout inode\n"
      "   0: 00000000:0044 00000000:0000 07 00000010:00000020 00:00000000 "
      "00000000     0        0 1 2 0000000000000000 0\n");
  put("proc/sys/fs/file-nr", "512\t0\t1048576\n");
  put("proc/sys/kernel/random/entropy_avail", "256\n");
  put("proc/sys/kernel/random/poolsize", "4096\n");
  put("proc/sys/net/netfilter/nf_conntrack_count", "7\n");
  put("proc/sys/net/netfilter/nf_conntrack_max", "65536\n");
  put("proc/sys/kernel/domainname", "fixture.example\n");
  put("proc/sys/kernel/threads-max", "1000\n");
  put("proc/sys/kernel/pid_max", "32768\n");
  put("proc/schedstat", "version 15\ntimestamp 1\n"
                        "cpu0 0 0 0 0 0 0 2000000000 3000000000 40\n"
                        "domain0 3 1 2 3\n");
  put("proc/1/stat", "1 (init) S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 "
                     "0 100\n");
  /* A command name with a space and a ')' in it. */
  put("proc/42/stat", "42 (a b) c) R 1 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 "
                      "20 0 3 0 100\n");
}

static void make_sys(void) {
  put("sys/class/hwmon/hwmon0/name", "coretemp\n");
  put("sys/class/hwmon/hwmon0/temp1_input", "51000\n");
  put("sys/class/hwmon/hwmon0/temp1_label", "Package id 0\n");
  put("sys/class/hwmon/hwmon0/temp1_max", "80000\n");
  put("sys/class/hwmon/hwmon0/temp1_crit", "100000\n");
  put("sys/class/hwmon/hwmon0/temp1_crit_alarm", "0\n");
  put("sys/class/hwmon/hwmon0/fan1_input", "1200\n");
  put("sys/class/hwmon/hwmon0/fan1_min", "300\n");
  put("sys/class/hwmon/hwmon0/in0_input", "1100\n");
  mkdirs("sys/devices/platform/coretemp.0");
  link_to("sys/class/hwmon/hwmon0/device",
          "../../../devices/platform/coretemp.0");
  put("sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", "2400000\n");
  put("sys/devices/system/cpu/cpu0/cpufreq/scaling_min_freq", "800000\n");
  put("sys/devices/system/cpu/cpu0/cpufreq/scaling_max_freq", "3600000\n");
  put("sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", "3600000\n");
  put("sys/devices/system/cpu/cpu0/topology/core_id", "0\n");
  put("sys/devices/system/clocksource/clocksource0/available_clocksource",
      "tsc hpet\n");
  put("sys/devices/system/clocksource/clocksource0/current_clocksource",
      "tsc\n");
  mkdirs("sys/block/sda");
}

static void make_root_and_run(void) {
  put("root/etc/os-release", "NAME=\"Fixture Linux\"\nID=fixture\n"
                             "VERSION_ID=\"1.2\"\n"
                             "PRETTY_NAME=\"Fixture Linux 1.2\"\n"
                             "VERSION_CODENAME=test\n");
  mkdirs("root/data");
  put("run/udev/data/b8:0", "S:disk/by-id/fixture\nE:ID_MODEL=FixtureDisk\n"
                            "E:ID_SERIAL_SHORT=SN123\n"
                            "E:ID_PATH=pci-0000:00:1f.2-ata-1\n"
                            "E:ID_WWN=0x5000\nE:ID_REVISION=1.0\n");
}

static void test_fixture_tree(void) {
  snprintf(fixture, sizeof fixture, "/tmp/nodelua-hostfs-XXXXXX");
  CHECK(mkdtemp(fixture) != NULL);
  make_proc();
  make_sys();
  make_root_and_run();
  char proc[128], sys[128], root[128], run[128];
  snprintf(proc, sizeof proc, "%s/proc", fixture);
  snprintf(sys, sizeof sys, "%s/sys", fixture);
  snprintf(root, sizeof root, "%s/root/", fixture); /* a trailing slash */
  snprintf(run, sizeof run, "%s/run", fixture);
  nl_metrics *m = nl_metrics_open();
  CHECK(m != NULL);
  nl_host_paths relative = {.proc = "proc"};
  CHECK(nl_metrics_set_host_paths(m, &relative) == -EINVAL);
  nl_host_paths paths = {proc, sys, root, run};
  CHECK(nl_metrics_set_host_paths(m, &paths) == 0);
  nl_metrics_enable_collectors(m, NL_COLLECT_PROCESSES);
  nl_buf out = {0};
  CHECK(nl_metrics_scrape(m, &out) == 0);
  const char *t = out.data ? out.data : "";

  /* stat, with the guest columns */
  CHECK_CONTAINS(t, "\nnode_cpu_seconds_total{cpu=\"0\",mode=\"user\"} 1\n");
  CHECK_CONTAINS(t, "node_cpu_guest_seconds_total{cpu=\"0\",mode=\"user\"} "
                    "0.07\n");
  CHECK_CONTAINS(t, "\nnode_context_switches_total 6789\n");
  CHECK_CONTAINS(t, "\nnode_intr_total 12345\n");
  CHECK_CONTAINS(t, "\nnode_forks_total 4242\n");
  CHECK_CONTAINS(t, "\nnode_procs_running 3\n");
  CHECK_CONTAINS(t, "\nnode_procs_blocked 1\n");
  CHECK_CONTAINS(t, "\nnode_boot_time_seconds 1700000000\n");
  CHECK_CONTAINS(t, "\nnode_load1 0.5\n");
  /* meminfo: every field, kB in bytes, the rest as it is */
  CHECK_CONTAINS(t, "\nnode_memory_MemTotal_bytes 16777216000\n");
  CHECK_CONTAINS(t, "\nnode_memory_Active_anon_bytes 307200000\n");
  CHECK_CONTAINS(t, "\nnode_memory_HugePages_Total 0\n");
  CHECK_CONTAINS(t, "\nnode_memory_Hugepagesize_bytes 2097152\n");
  /* vmstat: node_exporter's default fields only */
  CHECK_CONTAINS(t, "\nnode_vmstat_pgfault 22\n");
  CHECK_CONTAINS(t, "\nnode_vmstat_oom_kill 1\n");
  CHECK(strstr(t, "node_vmstat_nr_dirty") == NULL);
  /* filesystems: the host's mount points, measured under HOST_ROOT */
  struct statvfs sv;
  char expect[256];
  CHECK(statvfs(root, &sv) == 0);
  snprintf(expect, sizeof expect,
           "node_filesystem_size_bytes{device=\"/dev/sda1\",fstype=\"ext4\","
           "mountpoint=\"/\"} %llu\n",
           (unsigned long long)sv.f_blocks * sv.f_frsize);
  CHECK_CONTAINS(t, expect);
  CHECK_CONTAINS(t, "node_filesystem_readonly{device=\"/dev/sdb1\",fstype="
                    "\"xfs\",mountpoint=\"/data\"} 1\n");
  CHECK_CONTAINS(t, "node_filesystem_device_error{device=\"/dev/sdc1\","
                    "fstype=\"ext4\",mountpoint=\"/missing\"} 1\n");
  CHECK(strstr(t, "node_filesystem_size_bytes{device=\"/dev/sdc1\"") == NULL);
  CHECK(strstr(t, "mountpoint=\"/proc\"") == NULL);
  CHECK(strstr(t, "cgroup2") == NULL);
  /* diskstats: every field; partitions and loop devices left out */
  CHECK_CONTAINS(t, "node_disk_read_bytes_total{device=\"sda\"} 409600\n");
  CHECK_CONTAINS(t, "node_disk_io_time_weighted_seconds_total{device=\"sda\"}"
                    " 0.12\n");
  CHECK_CONTAINS(t, "node_disk_discarded_sectors_total{device=\"sda\"} 80\n");
  CHECK_CONTAINS(t, "node_disk_flush_requests_total{device=\"sda\"} 7\n");
  CHECK_CONTAINS(t, "node_disk_flush_requests_time_seconds_total{device="
                    "\"sda\"} 0.009\n");
  CHECK_CONTAINS(t, "node_disk_reads_completed_total{device=\"nvme0n1\"} 5\n");
  CHECK(strstr(t, "node_disk_flush_requests_total{device=\"nvme0n1\"}") ==
        NULL);
  CHECK(strstr(t, "device=\"sda1\"") == NULL);
  CHECK(strstr(t, "device=\"loop0\"") == NULL);
  CHECK(strstr(t, "device=\"nvme0n1p1\"") == NULL);
  CHECK_CONTAINS(t, "node_disk_info{device=\"sda\",major=\"8\",minor=\"0\","
                    "model=\"FixtureDisk\",path=\"pci-0000:00:1f.2-ata-1\","
                    "revision=\"1.0\",serial=\"SN123\",wwn=\"0x5000\"} 1\n");
  /* pressure, irq included */
  CHECK_CONTAINS(t, "\nnode_pressure_cpu_waiting_seconds_total 1.5\n");
  CHECK_CONTAINS(t, "\nnode_pressure_io_stalled_seconds_total 1\n");
  CHECK_CONTAINS(t, "\nnode_pressure_irq_stalled_seconds_total 2.5\n");
  /* netstat with node_exporter's default filter */
  CHECK_CONTAINS(t, "\nnode_netstat_TcpExt_ListenDrops 2\n");
  CHECK_CONTAINS(t, "\nnode_netstat_TcpExt_SyncookiesSent 1\n");
  CHECK_CONTAINS(t, "\nnode_netstat_IpExt_InOctets 10\n");
  CHECK_CONTAINS(t, "\nnode_netstat_Tcp_CurrEstab 6\n");
  CHECK_CONTAINS(t, "\nnode_netstat_Tcp_InErrs 7\n");
  CHECK_CONTAINS(t, "\nnode_netstat_Udp_NoPorts 9\n");
  CHECK_CONTAINS(t, "\nnode_netstat_Ip6_InOctets 100\n");
  CHECK_CONTAINS(t, "\nnode_netstat_Icmp6_InMsgs 2\n");
  CHECK(strstr(t, "TCPOFOQueue") == NULL);
  CHECK(strstr(t, "InNoRoutes") == NULL);
  CHECK(strstr(t, "RtoAlgorithm") == NULL);
  CHECK(strstr(t, "OutNoRoutes") == NULL);
  /* sockstat, with memory in bytes too */
  CHECK_CONTAINS(t, "\nnode_sockstat_sockets_used 14\n");
  CHECK_CONTAINS(t, "\nnode_sockstat_TCP_tw 1\n");
  snprintf(expect, sizeof expect, "\nnode_sockstat_TCP_mem_bytes %ld\n",
           3 * sysconf(_SC_PAGESIZE));
  CHECK_CONTAINS(t, expect);
  CHECK_CONTAINS(t, "\nnode_sockstat_TCP6_inuse 2\n");
  /* softnet, arp, udp queues, filefd, entropy, conntrack, schedstat */
  CHECK_CONTAINS(t, "node_softnet_processed_total{cpu=\"0\"} 10\n");
  CHECK_CONTAINS(t, "node_softnet_received_rps_total{cpu=\"0\"} 3\n");
  CHECK_CONTAINS(t, "node_softnet_flow_limit_count_total{cpu=\"0\"} 4\n");
  CHECK_CONTAINS(t, "node_arp_entries{device=\"eth0\"} 2\n");
  CHECK_CONTAINS(t, "node_udp_queues{ip=\"v4\",queue=\"tx\"} 16\n");
  CHECK_CONTAINS(t, "node_udp_queues{ip=\"v4\",queue=\"rx\"} 32\n");
  CHECK(strstr(t, "ip=\"v6\"") == NULL); /* no udp6 in the tree */
  CHECK_CONTAINS(t, "\nnode_filefd_allocated 512\n");
  CHECK_CONTAINS(t, "\nnode_filefd_maximum 1048576\n");
  CHECK_CONTAINS(t, "\nnode_entropy_pool_size_bits 4096\n");
  CHECK_CONTAINS(t, "\nnode_nf_conntrack_entries 7\n");
  CHECK_CONTAINS(t, "\nnode_nf_conntrack_entries_limit 65536\n");
  CHECK_CONTAINS(t, "node_schedstat_running_seconds_total{cpu=\"0\"} 2\n");
  CHECK_CONTAINS(t, "node_schedstat_waiting_seconds_total{cpu=\"0\"} 3\n");
  CHECK_CONTAINS(t, "node_schedstat_timeslices_total{cpu=\"0\"} 40\n");
  /* processes, when asked for */
  CHECK_CONTAINS(t, "\nnode_processes_pids 2\n");
  CHECK_CONTAINS(t, "\nnode_processes_threads 4\n");
  CHECK_CONTAINS(t, "node_processes_state{state=\"R\"} 1\n");
  CHECK_CONTAINS(t, "node_processes_state{state=\"S\"} 1\n");
  CHECK_CONTAINS(t, "\nnode_processes_max_threads 1000\n");
  CHECK_CONTAINS(t, "\nnode_processes_max_processes 32768\n");
  /* hwmon, named as node_exporter names chips and sensors */
  CHECK_CONTAINS(t, "node_hwmon_chip_names{chip=\"platform_coretemp_0\","
                    "chip_name=\"coretemp\"} 1\n");
  CHECK_CONTAINS(t, "node_hwmon_temp_celsius{chip=\"platform_coretemp_0\","
                    "sensor=\"temp1\"} 51\n");
  CHECK_CONTAINS(t, "node_hwmon_temp_max_celsius{chip=\"platform_coretemp_0\","
                    "sensor=\"temp1\"} 80\n");
  CHECK_CONTAINS(t, "node_hwmon_temp_crit_alarm_celsius{chip=\"platform_"
                    "coretemp_0\",sensor=\"temp1\"} 0\n");
  CHECK_CONTAINS(t, "node_hwmon_sensor_label{chip=\"platform_coretemp_0\","
                    "label=\"Package id 0\",sensor=\"temp1\"} 1\n");
  CHECK_CONTAINS(t, "node_hwmon_fan_rpm{chip=\"platform_coretemp_0\","
                    "sensor=\"fan1\"} 1200\n");
  CHECK_CONTAINS(t, "node_hwmon_fan_min_rpm{chip=\"platform_coretemp_0\","
                    "sensor=\"fan1\"} 300\n");
  CHECK_CONTAINS(t, "node_hwmon_in_volts{chip=\"platform_coretemp_0\","
                    "sensor=\"in0\"} 1.1\n");
  /* cpufreq */
  CHECK_CONTAINS(t, "node_cpu_scaling_frequency_hertz{cpu=\"0\"} "
                    "2400000000\n");
  CHECK_CONTAINS(t, "node_cpu_scaling_frequency_min_hertz{cpu=\"0\"} "
                    "800000000\n");
  CHECK_CONTAINS(t, "node_cpu_frequency_max_hertz{cpu=\"0\"} 3600000000\n");
  CHECK(strstr(t, "nodelua_cpu_frequency_hertz") == NULL);
  /* time, os-release, uname */
  CHECK_CONTAINS(t, "node_time_clocksource_available_info{clocksource="
                    "\"hpet\",device=\"0\"} 1\n");
  CHECK_CONTAINS(t, "node_time_clocksource_current_info{clocksource=\"tsc\","
                    "device=\"0\"} 1\n");
  CHECK_CONTAINS(t, "id=\"fixture\"");
  CHECK_CONTAINS(t, "pretty_name=\"Fixture Linux 1.2\"");
  CHECK_CONTAINS(t, "version_codename=\"test\",version_id=\"1.2\"} 1\n");
  CHECK_CONTAINS(t, "node_uname_info{domainname=\"fixture.example\"");
  /* every collector ran and said so */
  CHECK_CONTAINS(t, "node_scrape_collector_success{collector=\"hwmon\"} 1\n");
  CHECK_CONTAINS(t, "node_scrape_collector_success{collector=\"schedstat\"} "
                    "1\n");
  CHECK_CONTAINS(t, "\nnode_textfile_scrape_error 0\n");

  /* A tree without the files: the families are absent, never zero, and
   * the collectors say they failed. */
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s/proc/pressure' '%s/proc/schedstat'",
           fixture, fixture);
  CHECK(system(cmd) == 0);
  CHECK(nl_metrics_scrape(m, &out) == 0);
  t = out.data ? out.data : "";
  CHECK(strstr(t, "node_pressure_") == NULL);
  CHECK(strstr(t, "node_schedstat_") == NULL);
  CHECK_CONTAINS(t, "node_scrape_collector_success{collector=\"pressure\"} "
                    "0\n");
  nl_buf_free(&out);
  nl_metrics_close(m);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", fixture);
  CHECK(system(cmd) == 0);
}

static int textfile_check(const char *text) {
  return nl_textfile_check(text, strlen(text));
}

static void test_textfile(void) {
  snprintf(fixture, sizeof fixture, "/tmp/nodelua-textfile-XXXXXX");
  CHECK(mkdtemp(fixture) != NULL);
  CHECK(textfile_check("# HELP a b\n# TYPE a gauge\na{x=\"1\"} 2\n") == 0);
  CHECK(textfile_check("a 1 1700000000\n") == 1); /* a timestamp */
  CHECK(textfile_check("a{x=\"1} 2\n") == 1);
  CHECK(textfile_check("ok 1\n9bad 1\n") == 2);
  put("good.prom", "# TYPE job_ok gauge\njob_ok{job=\"backup\"} 1\n");
  put("bad.prom", "job_ok{job=\"x\" 1\n");
  put("ignored.txt", "not a prom file\n");
  put("target.prom.real", "stolen_secret 1\n");
  link_to("link.prom", "target.prom.real");
  /* A file any local user could have written. */
  put("open.prom", "planted_by_anyone 1\n");
  char open_path[128];
  snprintf(open_path, sizeof open_path, "%s/open.prom", fixture);
  CHECK(chmod(open_path, 0666) == 0);
  nl_metrics *m = nl_metrics_open();
  CHECK(nl_metrics_set_textfile_dir(m, "relative") == -EINVAL);
  CHECK(nl_metrics_set_textfile_dir(m, fixture) == 0);
  nl_buf out = {0};
  CHECK(nl_metrics_scrape(m, &out) == 0);
  const char *t = out.data ? out.data : "";
  CHECK_CONTAINS(t, "\njob_ok{job=\"backup\"} 1\n");
  CHECK_CONTAINS(t, "node_textfile_mtime_seconds{file=\"good.prom\"}");
  CHECK(strstr(t, "job=\"x\"") == NULL);
  CHECK(strstr(t, "not a prom file") == NULL);
  CHECK(strstr(t, "stolen_secret") == NULL); /* a symlink is not followed */
  CHECK(strstr(t, "planted_by_anyone") == NULL);
  CHECK_CONTAINS(t, "\nnode_textfile_scrape_error 1\n");
  /* A directory anyone may write into is not read at all. */
  char cmd[320];
  snprintf(cmd, sizeof cmd,
           "rm -f '%s/bad.prom' '%s/link.prom' '%s/open.prom' && chmod "
           "0777 '%s'",
           fixture, fixture, fixture, fixture);
  CHECK(system(cmd) == 0);
  CHECK(nl_metrics_scrape(m, &out) == 0);
  t = out.data ? out.data : "";
  CHECK(strstr(t, "job_ok") == NULL);
  CHECK_CONTAINS(t, "\nnode_textfile_scrape_error 1\n");
  snprintf(cmd, sizeof cmd, "chmod 0755 '%s'", fixture);
  CHECK(system(cmd) == 0);
  CHECK(nl_metrics_scrape(m, &out) == 0);
  CHECK_CONTAINS(out.data, "\nnode_textfile_scrape_error 0\n");
  nl_buf_free(&out);
  nl_metrics_close(m);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", fixture);
  CHECK(system(cmd) == 0);
}
#endif

/* Every value written reads back as the same double: the decimal fast path
 * (ticks, milliseconds, microseconds), whole numbers, and the rest. */
static void test_values_round_trip(void) {
  nl_buf out = {0};
  int bad = 0;
  unsigned seed = 12345;
  for (int i = 0; i < 200000; i++) {
    seed = seed * 1103515245u + 12345u;
    double whole = (double)(seed % 4000000000u) * (i % 7 + 1);
    double scales[] = {1, 10, 100, 1000, 1e6, 3, 7.5};
    double v = whole / scales[i % 7];
    if (i % 11 == 0)
      v = -v;
    nl_buf_reset(&out);
    nl_prom_double(&out, "x", NULL, v);
    double back = strtod(out.data + 2, NULL);
    if (back != v && bad++ < 5)
      printf("round trip: %.17g written as %s", v, out.data);
  }
  CHECK(bad == 0);
  nl_buf_free(&out);
}

int main(void) {
  test_values_round_trip();
#ifdef __linux__
  test_fixture_tree();
  test_textfile();
#else
  check_skip("the host-path fixture tree is Linux's layout");
#endif
  return check_report("test_export");
}
