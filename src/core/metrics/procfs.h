/* Parsers of the text in Linux's /proc files: bytes in, values out, no I/O,
 * so that tests and the fuzz target (tests/fuzz/fuzz_procfs.c) can feed
 * them anything. Mount points in particular are names that any user with a
 * FUSE mount chooses. Every input is a NUL-terminated string. */
#ifndef NODELUA_PROCFS_H
#define NODELUA_PROCFS_H

#include "metrics.h"

/* The cpu lines of /proc/stat: cb(ud, -1, ticks) for the total line, then
 * cb(ud, N, ticks) for each cpuN line. ticks has NL_CPU_MODE_COUNT entries.
 * Returns the number of cpuN lines, or -1 when there is no total line. */
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

/* /proc/diskstats: one call per line with the device name and counters. */
typedef struct {
  char name[32];
  unsigned long long reads, read_sectors, writes, write_sectors, io_ms;
} nl_diskstat;
typedef int (*nl_procfs_disk_cb)(void *ud, const nl_diskstat *disk);
int nl_procfs_diskstats(const char *buf, nl_procfs_disk_cb cb, void *ud);

#endif
