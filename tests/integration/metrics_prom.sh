#!/usr/bin/env bash
# nodelua metrics --prom: promtool accepts it, node_exporter's names and
# labels are there, values agree with the kernel, and --json is JSON.
source "$(dirname "$0")/lib.sh"
PROMTOOL=${PROMTOOL:?set PROMTOOL to promtool}
cd "$WORK"

clean_env "$NODELUA" metrics --prom --interval 0.2 >prom.txt 2>err.txt
check "metrics --prom exits 0" equals "$?" 0
"$PROMTOOL" check metrics <prom.txt >lint.txt 2>&1
rc=$?
# promtool exits 1 on a parse error and 3 on lint findings. node_exporter's
# own memory names (node_memory_MemTotal_bytes, ...) are camelCase, which
# promtool lints; dashboards need them as they are, so those findings, and
# only those, are accepted.
check "promtool parses the output (exit 0 or 3, got $rc)" test "$rc" = 0 -o "$rc" = 3
# The same holds for node_exporter's netstat and sockstat names (field names
# of /proc/net/*) and its entropy figures in bits.
unexpected=$(grep -vE "^node_(memory|netstat|sockstat|vmstat)_[A-Za-z0-9_]+ metric names should be written in 'snake_case' not 'camelCase'$" lint.txt |
  grep -vxE 'node_entropy_(available|pool_size)_bits use base unit "bytes" instead of "bits"')
check "promtool finds nothing but node_exporter's own names" equals "$unexpected" ""

prom=$(cat prom.txt)
memory_families="node_memory_MemTotal_bytes node_memory_MemAvailable_bytes"
[ "$(uname -s)" = Darwin ] && memory_families="node_memory_total_bytes node_memory_wired_bytes"
for family in node_cpu_seconds_total node_load1 node_load5 node_load15 $memory_families \
  node_network_receive_bytes_total node_network_transmit_bytes_total \
  node_filesystem_size_bytes node_filesystem_avail_bytes node_boot_time_seconds \
  node_uname_info process_resident_memory_bytes; do
  check "$family has HELP" contains "$prom" "# HELP $family "
  check "$family has TYPE" contains "$prom" "# TYPE $family "
done
check "cpu and mode labels" grep -qE '^node_cpu_seconds_total\{cpu="0",mode="idle"\} [0-9.e+]+$' prom.txt
check "device label on network" grep -qE '^node_network_receive_bytes_total\{device="lo0?"\} [0-9]+$' prom.txt
check "device, fstype and mountpoint on filesystems" \
  grep -qE '^node_filesystem_size_bytes\{device="[^"]+",fstype="[^"]+",mountpoint="/"\} [0-9]+$' prom.txt
check "counters are typed counter" contains "$prom" "# TYPE node_network_receive_bytes_total counter"
check "uname sysname" grep -qE "^node_uname_info\\{.*sysname=\"$(uname -s)\".*\\} 1$" prom.txt
if [ "$(uname -s)" = Linux ]; then
  kib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
  check "MemTotal agrees with /proc/meminfo" grep -qx "node_memory_MemTotal_bytes $((kib * 1024))" prom.txt
  btime=$(awk '/^btime/ {print $2}' /proc/stat)
  check "boot time agrees with /proc/stat" grep -qx "node_boot_time_seconds $btime" prom.txt
  # Figures that do not move, each against the kernel's own file.
  hugepage=$(awk '/^Hugepagesize:/ {print $2 * 1024}' /proc/meminfo)
  check "Hugepagesize agrees with /proc/meminfo" grep -qx "node_memory_Hugepagesize_bytes $hugepage" prom.txt
  check "every /proc/meminfo field is there" \
    equals "$(grep -c '^node_memory_' prom.txt)" "$(grep -c '' /proc/meminfo)"
  check "filefd maximum agrees with /proc/sys/fs/file-nr" \
    grep -qx "node_filefd_maximum $(awk '{print $3}' /proc/sys/fs/file-nr)" prom.txt
  check "entropy pool size agrees with /proc" \
    grep -qx "node_entropy_pool_size_bits $(cat /proc/sys/kernel/random/poolsize)" prom.txt
  if [ -r /proc/sys/net/netfilter/nf_conntrack_max ]; then
    check "conntrack limit agrees with /proc" \
      grep -qx "node_nf_conntrack_entries_limit $(cat /proc/sys/net/netfilter/nf_conntrack_max)" prom.txt
  fi
  for dev in $(ls /sys/class/net); do
    check "mtu of $dev agrees with sysfs" \
      grep -qx "node_network_mtu_bytes{device=\"$dev\"} $(cat /sys/class/net/$dev/mtu)" prom.txt
    check "ifindex of $dev agrees with sysfs" \
      grep -qx "node_network_iface_id{device=\"$dev\"} $(cat /sys/class/net/$dev/ifindex)" prom.txt
  done
  check "node_disk_* only for devices of /proc/diskstats" \
    test -z "$(grep -o '^node_disk_reads_completed_total{device="[^"]*"' prom.txt | cut -d'"' -f2 |
      while read -r d; do awk -v d="$d" '$3 == d {f=1} END {if (!f) print d}' /proc/diskstats; done)"
else
  check "MemTotal agrees with hw.memsize" \
    grep -qx "node_memory_total_bytes $(sysctl -n hw.memsize)" prom.txt
fi
if [ "$(uname -s)" = Linux ]; then
  # node_exporter's defaults: tcpstat and processes only when asked for.
  check "no tcpstat by default" lacks "$prom" "node_tcp_connection_states"
  check "no processes by default" lacks "$prom" "node_processes_pids"
  clean_env METRICS_COLLECTOR_TCPSTAT=1 METRICS_COLLECTOR_PROCESSES=1 "$NODELUA" metrics --prom >extra.txt
  listening=$(ss -Htln | wc -l)
  check "tcpstat counts the listening sockets ss counts" \
    grep -qx "node_tcp_connection_states{state=\"listen\"} $listening" extra.txt
  threads_max=$(cat /proc/sys/kernel/threads-max)
  check "processes: the thread limit of /proc" grep -qx "node_processes_max_threads $threads_max" extra.txt
  check "processes: a count of PIDs" grep -qE '^node_processes_pids [1-9][0-9]*$' extra.txt
  check "lo is up only if its operstate is up (it is unknown)" \
    grep -qx 'node_network_up{device="lo"} 0' prom.txt
fi
if [ "$(uname -s)" = Linux ]; then
  # The settings reach the collectors: a tree laid out as the host's, as a
  # container sees it under /host.
  mkdir -p host/proc host/etc host/run
  cp /proc/stat /proc/loadavg host/proc/
  printf 'MemTotal:        1234 kB\nMemFree:          234 kB\n' >host/proc/meminfo
  printf 'NAME="Host OS"\nID=hostos\nVERSION_ID=7\n' >host/etc/os-release
  clean_env HOST_PROC="$WORK/host/proc" HOST_ROOT="$WORK/host" HOST_RUN="$WORK/host/run" \
    "$NODELUA" metrics --prom >host.txt 2>err.txt
  check "HOST_PROC, HOST_ROOT: metrics --prom exits 0" equals "$?" 0
  check "HOST_PROC: MemTotal is the tree's" grep -qx "node_memory_MemTotal_bytes 1263616" host.txt
  check "HOST_ROOT: os-release is the tree's" grep -qE '^node_os_info\{.*id="hostos".*name="Host OS".*\} 1$' host.txt
  clean_env HOST_PROC="$WORK/no-such-dir" "$NODELUA" metrics --prom >/dev/null 2>err.txt
  check "a HOST_PROC that is not a directory is a configuration error" equals "$?" 2
  check "naming the setting" contains "$(cat err.txt)" "HOST_PROC"
fi
check "no invented temperature" lacks "$(grep -v '^#' prom.txt)" "temp"$'\x20'"0"

clean_env "$NODELUA" metrics --json --interval 0.1 --groups memory,load >json.txt
check "metrics --json exits 0" equals "$?" 0
check "--json is one JSON object with the groups asked for" \
  /usr/bin/python3 -c 'import json,sys; d=json.load(open("json.txt")); sys.exit(0 if set(d) == {"memory","load","timestamp"} else 1)'

# Without a flag: text for people, as df, free and ip -s link would show.
text=$(clean_env "$NODELUA" metrics --interval 0.2)
check "metrics: text by default" contains "$text" "cpu       "
check "metrics text: memory" contains "$text" "memory    "
check "metrics text: the root filesystem" contains "$text" "disk      /  "
check "metrics text: not JSON" lacks "$text" '{"'
clean_env "$NODELUA" metrics --groups nope >/dev/null 2>err.txt
check "an unknown group is a usage error" equals "$?" 2
check "naming the group" contains "$(cat err.txt)" "unknown group 'nope'"
clean_env "$NODELUA" metrics --interval -1 >/dev/null 2>&1
check "a bad interval is a usage error" equals "$?" 2

finish
