#!/usr/bin/python3
"""Accuracy of `nodelua metrics --json` against independent readings of the
same machine: psutil (Debian's python3-psutil) and the kernel's files.

Usage: metrics_accuracy.py path/to/nodelua
"""
import glob
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import threading
import time

import psutil

import checks
from checks import check

NODELUA = sys.argv[1]


def snapshot(*args):
    env = dict(os.environ, NODELUA_SERVICE_ENV_FILE="")
    out = subprocess.run([NODELUA, "metrics", "--json", *args], env=env,
                         capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def test_static_figures():
    s = snapshot("--interval", "0.2")
    vm = psutil.virtual_memory()
    check("memory total matches exactly", s["memory"]["total"] == vm.total,
          f'{s["memory"]["total"]} != {vm.total}')
    check("logical CPU count matches exactly",
          s["cpu"]["logical_cores"] == psutil.cpu_count(logical=True)
          and len(s["cpu"]["cores"]) == psutil.cpu_count(logical=True))
    check("boot time within 1 s",
          abs(s["system"]["boot_time"] - psutil.boot_time()) <= 1,
          f'{s["system"]["boot_time"]} vs {psutil.boot_time()}')
    check("uptime agrees with boot time",
          abs(time.time() - s["system"]["boot_time"] - s["system"]["uptime"]) < 5)
    check("swap total matches", s["memory"]["swap_total"] == psutil.swap_memory().total)

    ours = {fs["mount"]: fs for fs in s["storage"]["filesystems"]}
    partitions = psutil.disk_partitions(all=False)
    check("psutil sees at least one filesystem", len(partitions) > 0)
    for part in partitions:
        fs = ours.get(part.mountpoint)
        check(f"filesystem {part.mountpoint} is reported", fs is not None,
              f"ours: {sorted(ours)}")
        if fs is None:
            continue
        usage = psutil.disk_usage(part.mountpoint)
        check(f"{part.mountpoint} size within 0.1%",
              abs(fs["size"] - usage.total) <= usage.total * 0.001,
              f'{fs["size"]} vs {usage.total}')
        check(f"{part.mountpoint} used within 0.1% of size",
              abs(fs["used"] - usage.used) <= usage.total * 0.001)
        check(f"{part.mountpoint} type and device", fs["fstype"] == part.fstype
              and fs["device"] == part.device)
        st = os.statvfs(part.mountpoint)
        check(f"{part.mountpoint} inodes", fs["inodes_total"] == st.f_files)
    for mount in ours:
        check(f"{mount} is not a pseudo filesystem",
              not mount.startswith(("/proc", "/sys", "/dev")))

    stats = psutil.net_if_stats()
    addrs = psutil.net_if_addrs()
    names = {nif["name"] for nif in s["network"]}
    check("same interfaces as psutil", names == set(stats), f"{names} vs {set(stats)}")
    for nif in s["network"]:
        name = nif["name"]
        if name not in stats:
            continue
        check(f"{name} up", nif["up"] == stats[name].isup)
        check(f"{name} mtu", nif.get("mtu") == stats[name].mtu)
        v4 = sorted(a.address for a in addrs.get(name, []) if a.family == socket.AF_INET)
        check(f"{name} IPv4 addresses", sorted(nif.get("ipv4", [])) == v4,
              f'{nif.get("ipv4")} vs {v4}')
        v6 = sorted(a.address.split("%")[0] for a in addrs.get(name, [])
                    if a.family == socket.AF_INET6)
        check(f"{name} IPv6 addresses", sorted(nif.get("ipv6", [])) == v6,
              f'{nif.get("ipv6")} vs {v6}')
        macs = [a.address for a in addrs.get(name, []) if a.family == psutil.AF_LINK]
        mac = macs[0] if macs and macs[0] != "00:00:00:00:00:00" else None
        check(f"{name} MAC", nif.get("mac") == mac, f'{nif.get("mac")} vs {mac}')
    lo = [nif for nif in s["network"] if nif["name"] == "lo"]
    check("lo is a loopback link", lo and lo[0]["kind"] == "loopback")

    disks = psutil.disk_io_counters(perdisk=True)
    for d in s["storage"]["disks"]:
        check(f"disk {d['name']} known to psutil", d["name"] in disks)
        if d["name"] in disks:
            # Ours was read first: psutil's later reading can only be larger.
            check(f"disk {d['name']} read bytes not ahead of psutil",
                  d["counters"]["read_bytes"] <= disks[d["name"]].read_bytes)

    cpu = s["cpu"]
    for core in [cpu["total"]] + cpu["cores"]:
        pct = core.get("percent")
        check("every core has percentages after two samples", pct is not None)
        if pct is None:
            continue
        check("usage in [0, 100]", 0 <= core["usage_percent"] <= 100)
        check("modes in [0, 100]", all(0 <= v <= 100 for v in pct.values()))
        check("modes sum to 100 +- 1", abs(sum(pct.values()) - 100) <= 1,
              f"{sum(pct.values())}")
    check("our own RSS is reported", s["self"]["rss_bytes"] > 0)
    # Thermal is there exactly when the kernel has a readable sensor.
    sensors = glob.glob("/sys/class/thermal/thermal_zone*/temp") + \
        glob.glob("/sys/class/hwmon/hwmon*/temp*_input")
    check("thermal present exactly when a sensor exists",
          ("thermal" in s) == bool(sensors), f"sensors: {sensors}")


def test_loopback_traffic():
    size = 32 * 1024 * 1024
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    received = [0]

    def sink():
        conn, _ = server.accept()
        while True:
            data = conn.recv(1 << 20)
            if not data:
                break
            received[0] += len(data)
        conn.close()

    before = snapshot("--interval", "0.05", "--groups", "network")
    t = threading.Thread(target=sink)
    t.start()
    client = socket.create_connection(server.getsockname())
    chunk = b"x" * (1 << 20)
    for _ in range(size // len(chunk)):
        client.sendall(chunk)
    client.close()
    t.join()
    server.close()
    after = snapshot("--interval", "0.05", "--groups", "network")
    lo_before = next(n for n in before["network"] if n["name"] == "lo")
    lo_after = next(n for n in after["network"] if n["name"] == "lo")
    for counter in ("rx_bytes", "tx_bytes"):
        rise = lo_after["counters"][counter] - lo_before["counters"][counter]
        check(f"lo {counter} rose by at least the {size} bytes sent",
              rise >= size, f"rose by {rise}")
    check("traffic was really sent", received[0] == size)


def spin(seconds):
    end = time.time() + seconds
    while time.time() < end:
        pass


def test_busy_core():
    target = max(os.sched_getaffinity(0))
    proc = multiprocessing.Process(target=lambda: (os.sched_setaffinity(0, {target}), spin(4)))
    proc.start()
    time.sleep(0.5)
    s = snapshot("--interval", "1", "--groups", "cpu")
    proc.join()
    core = next(c for c in s["cpu"]["cores"] if c["cpu"] == target)
    check(f"a core kept busy for a second reads above 80% (cpu {target})",
          core["usage_percent"] > 80, f'{core["usage_percent"]:.1f}%')


test_static_figures()
test_loopback_traffic()
test_busy_core()
checks.finish("metrics_accuracy")
