#!/usr/bin/env python3
"""The kernel's own cost of the /proc files a scrape reads: each file read
from offset 0 with pread, 2,000 times, kept open (as the agent keeps them),
CPU time per read. This is the part of a scrape that no exporter can save.

Usage: scripts/bench/proc-read.py
"""
import os
import time

FILES = ["/proc/net/netstat", "/proc/net/snmp", "/proc/net/snmp6", "/proc/vmstat",
         "/proc/meminfo", "/proc/diskstats", "/proc/net/udp", "/proc/net/udp6",
         "/proc/1/mounts", "/proc/stat", "/proc/self/stat"]
total = 0.0
for path in FILES:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        print(f"  {path:24s} {e.strerror}")
        continue
    start = time.process_time()
    for _ in range(2000):
        os.pread(fd, 1 << 16, 0)
    each = (time.process_time() - start) / 2000 * 1e6
    os.close(fd)
    total += each
    print(f"  {path:24s} {each:6.1f} us")
print(f"  {'total':24s} {total:6.1f} us")
