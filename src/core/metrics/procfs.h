/* Parsers of the text in Linux's /proc files: bytes in, values out, no I/O,
 * so that tests and the fuzz target (tests/fuzz/fuzz_procfs.c) can feed
 * them anything. Mount points in particular are names that any user with a
 * FUSE mount chooses. Every input is a NUL-terminated string. */
#ifndef NODELUA_PROCFS_H
#define NODELUA_PROCFS_H

#include "metrics.h"

/* The line after line in a NUL-terminated text, or NULL at the end. */
const char *nl_procfs_next_line(const char *line);

/* The cpu lines of /proc/stat: cb(ud, -1, ticks) for the total line, then
 * cb(ud, N, ticks) for each cpuN line. ticks has NL_PROCFS_CPU_TICKS
 * entries: the NL_CPU_MODE_COUNT modes, then guest and guest_nice (0 where
 * the kernel has no such column).
 * Returns the number of cpuN lines, or -1 when there is no total line. */
#define NL_PROCFS_CPU_TICKS (NL_CPU_MODE_COUNT + 2)
typedef int (*nl_procfs_cpu_cb)(void *ud, int index,
                                const unsigned long long *ticks);
int nl_procfs_stat_cpu(const char *buf, nl_procfs_cpu_cb cb, void *ud);

/* The btime line of /proc/stat. Returns 0 or -1. */
int nl_procfs_stat_btime(const char *buf, double *btime);

/* /proc/meminfo into mem (bytes; NL_ABSENT for what is missing), with used
 * and swap_used derived. Returns 0, or -1 without MemTotal and MemFree. */
int nl_procfs_meminfo(const char *buf, nl_memory_sample *mem);

/* /proc/loadavg. Returns 0 or -1. */
int nl_procfs_loadavg(const char *buf, nl_load_sample *load);

/* The "cpu MHz" of each processor in /proc/cpuinfo. */
typedef void (*nl_procfs_mhz_cb)(void *ud, int processor, double mhz);
void nl_procfs_cpuinfo_mhz(const char *buf, nl_procfs_mhz_cb cb, void *ud);

/* /proc/self/mounts, split in place (buf is modified): one call per line
 * with its four first fields, octal escapes (\040) decoded. A negative
 * return from cb stops and is returned. */
typedef struct {
  const char *device, *mount, *fstype, *options;
} nl_mount_entry;
typedef int (*nl_procfs_mount_cb)(void *ud, const nl_mount_entry *entry);
int nl_procfs_mounts(char *buf, nl_procfs_mount_cb cb, void *ud);

/* /proc/diskstats: one call per line with the device name and counters.
 * fields[] holds every counter after the name, in the kernel's order
 * (reads, reads merged, sectors read, ms reading, writes, ... flushes, ms
 * flushing); field_count says how many the kernel gave (11, 15 or 17). */
#define NL_DISKSTAT_FIELDS 17
typedef struct {
  char name[32];
  unsigned major, minor;
  unsigned long long reads, read_sectors, writes, write_sectors, io_ms;
  unsigned long long fields[NL_DISKSTAT_FIELDS];
  int field_count;
} nl_diskstat;
typedef int (*nl_procfs_disk_cb)(void *ud, const nl_diskstat *disk);
int nl_procfs_diskstats(const char *buf, nl_procfs_disk_cb cb, void *ud);

/* ---- the parsers of the node_exporter-compatible families (procfs_node.c) */

/* Lines of "Name: value [kB]" (/proc/meminfo) or "name value ..."
 * (/proc/vmstat, /proc/net/snmp6, /proc/stat): cb(ud, name, value, kb) for
 * each line whose first value is a number; kb tells a "kB" unit. Names
 * longer than 63 bytes are skipped. */
typedef void (*nl_procfs_kv_cb)(void *ud, const char *name, double value,
                                bool kb);
void nl_procfs_keyvalues(const char *buf, nl_procfs_kv_cb cb, void *ud);

/* cb(ud, group, field, value): the two-line tables of /proc/net/netstat and
 * /proc/net/snmp ("Tcp: ActiveOpens ..." then "Tcp: 1 ..."), and the lines
 * of /proc/net/sockstat ("TCP: inuse 4 orphan 0 ..."). */
typedef void (*nl_procfs_pair_cb)(void *ud, const char *group,
                                  const char *field, double value);
void nl_procfs_header_pairs(const char *buf, nl_procfs_pair_cb cb, void *ud);
void nl_procfs_sockstat(const char *buf, nl_procfs_pair_cb cb, void *ud);

/* /proc/net/dev: cb(ud, name, counters) for each interface, with the 16
 * counters in the file's order (receive bytes, packets, errs, drop, fifo,
 * frame, compressed, multicast, then transmit bytes, packets, errs, drop,
 * fifo, colls, carrier, compressed). A negative return from cb stops. */
#define NL_NETDEV_FIELDS 16
typedef int (*nl_procfs_netdev_cb)(void *ud, const char *name,
                                   const unsigned long long *counters);
int nl_procfs_netdev(const char *buf, nl_procfs_netdev_cb cb, void *ud);

/* /proc/pressure/{cpu,io,memory,irq}: the total= of the "some" and "full"
 * lines, in microseconds; NAN for a line that is not there. Returns 0, or
 * -1 when neither is. */
int nl_procfs_pressure(const char *buf, double *some_us, double *full_us);

/* /proc/net/softnet_stat: one line per CPU in hexadecimal; cb(ud, cpu, v)
 * with v = processed, dropped, time squeezed, received RPS, flow limit
 * count (the last two 0 on kernels without those columns). */
#define NL_SOFTNET_FIELDS 5
typedef int (*nl_procfs_softnet_cb)(void *ud, int cpu,
                                    const unsigned long long *v);
int nl_procfs_softnet(const char *buf, nl_procfs_softnet_cb cb, void *ud);

/* /proc/net/arp: cb(ud, device) for each entry. */
typedef int (*nl_procfs_name_cb)(void *ud, const char *name);
int nl_procfs_arp(const char *buf, nl_procfs_name_cb cb, void *ud);

/* /proc/net/udp or udp6: the sums of the tx_queue and rx_queue columns, in
 * bytes. Returns 0, or -1 without a header line. */
int nl_procfs_udp_queues(const char *buf, double *tx, double *rx);

/* /proc/schedstat: cb(ud, cpu, running ns, waiting ns, timeslices) for
 * each cpuN line. */
typedef int (*nl_procfs_schedstat_cb)(void *ud, int cpu, double running_ns,
                                      double waiting_ns, double timeslices);
int nl_procfs_schedstat(const char *buf, nl_procfs_schedstat_cb cb, void *ud);

/* /proc/PID/stat: the state letter and the number of threads, found after
 * the last ')' (the command name may hold anything). Returns 0 or -1. */
int nl_procfs_pid_stat(const char *buf, char *state, long *threads);

#endif
