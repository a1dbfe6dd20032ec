#!/usr/bin/python3
"""Node Exporter Full, fed by nodelua: a real Prometheus scrapes nodelua's
agent and node_exporter side by side on this machine, every second, while
the machine does some work (a CPU spinner, a disk writer, loopback
traffic). Then:

- coverage: each series selector the dashboard queries
  (tests/fixtures/dashboard/node-exporter-full.selectors) that
  node_exporter gives here, nodelua gives too;
- values: the dashboard's own queries at the same instant, over both jobs,
  agree: CPU busy and each mode, memory, filesystem space, disk and network
  rates.

node_exporter runs with upstream's default exclusions (Debian's package
changes two: it hides lo and every mount under /run, /mnt and /media).

Usage: dashboard.py NODELUA NODE_EXPORTER PROMETHEUS
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import checks
from checks import check, free_port, wait_for

NODELUA, EXPORTER, PROMETHEUS = sys.argv[1:4]
HERE = os.path.dirname(os.path.abspath(__file__))
SELECTORS = os.path.join(HERE, "..", "fixtures", "dashboard", "node-exporter-full.selectors")
UPSTREAM_MOUNTS = "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
RATE = "[20s]"


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def query(prom_port, expr, at):
    url = f"http://127.0.0.1:{prom_port}/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": at})
    answer = json.loads(get(url))
    if answer.get("status") != "success":
        raise RuntimeError(f"{expr}: {answer}")
    return answer["data"]["result"]


def scalar(prom_port, expr, at):
    result = query(prom_port, expr, at)
    return float(result[0]["value"][1]) if result else None


class Load:
    """Steady work, so that rates are not all zero: one CPU spinning part of
    the time, a file written and synced, bytes over loopback."""

    def __init__(self, work):
        self.stop = threading.Event()
        self.work = work
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self.spin, self.write, self.talk)]

    def start(self):
        for t in self.threads:
            t.start()

    def spin(self):
        while not self.stop.is_set():
            end = time.monotonic() + 0.05
            while time.monotonic() < end:
                pass
            time.sleep(0.05)

    def write(self):
        block = os.urandom(1 << 20)
        path = os.path.join(self.work, "load.bin")
        while not self.stop.is_set():
            with open(path, "wb") as f:
                for _ in range(4):
                    f.write(block)
                f.flush()
                os.fsync(f.fileno())
            time.sleep(0.2)

    def talk(self):
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
        chunk = b"x" * (256 << 10)
        while not self.stop.is_set():
            client.sendall(chunk)
            left = len(chunk)
            while left > 0:
                left -= len(peer.recv(left))
            time.sleep(0.05)
        for s in (client, peer, server):
            s.close()


def start(argv, log, env=None):
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)


def main():
    work = tempfile.mkdtemp(prefix="nodelua-dashboard-")
    procs = []
    load = Load(work)
    try:
        agent_port, exporter_port, prom_port, api_port = (free_port() for _ in range(4))
        log = open(os.path.join(work, "log.txt"), "w")
        env = {"PATH": os.environ["PATH"], "HOME": work, "NODELUA_SERVICE_ENV_FILE": "",
               "NODELUA_STATE_DIR": os.path.join(work, "state"),
               "MONITORING_API_URL": f"http://127.0.0.1:{api_port}", "MONITORING_API_KEY": "k" * 32,
               "METRICS_LISTEN": f"127.0.0.1:{agent_port}", "NODELUA_MDNS": "false", "TRANSFER_PORT": "0"}
        procs.append(start([NODELUA, "agent"], log, env))
        procs.append(start([EXPORTER, f"--web.listen-address=127.0.0.1:{exporter_port}",
                            f"--collector.filesystem.mount-points-exclude={UPSTREAM_MOUNTS}",
                            "--collector.netdev.device-exclude=",
                            f"--collector.textfile.directory={work}"], log))
        with open(os.path.join(work, "prometheus.yml"), "w") as f:
            f.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: nodelua
    static_configs: [{{targets: ['127.0.0.1:{agent_port}']}}]
  - job_name: node_exporter
    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]
""")
        procs.append(start([PROMETHEUS, f"--config.file={work}/prometheus.yml",
                            f"--storage.tsdb.path={work}/tsdb", f"--web.listen-address=127.0.0.1:{prom_port}"],
                           log))

        def both_up():
            try:
                return len([r for r in query(prom_port, "up == 1", time.time())]) == 2
            except Exception:
                return False
        check("Prometheus scrapes both targets", wait_for(both_up, 60))
        load.start()
        time.sleep(30)
        at = time.time() - 2

        # Coverage: what node_exporter gives, nodelua gives.
        missing, given = [], 0
        for line in open(SELECTORS):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, matchers = line.split("{", 1)
            matchers = matchers.rstrip("}")
            sep = "," if matchers else ""
            theirs = query(prom_port, f'count({name}{{job="node_exporter"{sep}{matchers}}})', at)
            if not theirs:
                continue
            given += 1
            ours = query(prom_port, f'count({name}{{job="nodelua"{sep}{matchers}}})', at)
            if not ours:
                missing.append(line)
        print(f"  node_exporter gives {given} of the dashboard's selectors here; nodelua misses {len(missing)}")
        check(f"node_exporter gives {given} of the dashboard's selectors here", given > 150)
        check("nodelua gives every selector node_exporter gives", not missing, str(missing[:10]))

        # Values: the dashboard's queries, at the same instant, over both jobs.
        def compare(what, expr, tolerance, relative=False):
            a = scalar(prom_port, expr.replace("JOB", "node_exporter"), at)
            b = scalar(prom_port, expr.replace("JOB", "nodelua"), at)
            ok = a is not None and b is not None and (
                abs(a - b) <= tolerance * (max(abs(a), abs(b)) if relative else 1))
            print(f"  {what}: node_exporter {a}, nodelua {b}", flush=True)
            check(f"{what}: node_exporter {a}, nodelua {b}", ok)

        busy = (f'100 * (1 - avg(rate(node_cpu_seconds_total{{mode="idle",job="JOB"}}{RATE})))')
        compare("CPU busy (%)", busy, 3)
        for mode in ("user", "system", "iowait", "softirq"):
            compare(f"CPU {mode} (%)",
                    f'100 * sum(rate(node_cpu_seconds_total{{mode="{mode}",job="JOB"}}{RATE})) / '
                    f'count(node_cpu_seconds_total{{mode="idle",job="JOB"}})', 3)
        compare("RAM total", 'node_memory_MemTotal_bytes{job="JOB"}', 0)
        compare("RAM used (%)", '100 * (1 - node_memory_MemAvailable_bytes{job="JOB"} / '
                'node_memory_MemTotal_bytes{job="JOB"})', 1)
        compare("root filesystem size", 'node_filesystem_size_bytes{job="JOB",mountpoint="/",fstype!="rootfs"}', 0)
        compare("root filesystem used (%)",
                '100 - 100 * node_filesystem_avail_bytes{job="JOB",mountpoint="/",fstype!="rootfs"} / '
                'node_filesystem_size_bytes{job="JOB",mountpoint="/",fstype!="rootfs"}', 0.5)
        disk = 'device=~"[a-z]+|nvme[0-9]+n[0-9]+|mmcblk[0-9]+"'
        compare("disk written (bytes/s)", f'sum(rate(node_disk_written_bytes_total{{job="JOB",{disk}}}{RATE}))',
                0.25, relative=True)
        compare("disk write IOPS", f'sum(rate(node_disk_writes_completed_total{{job="JOB",{disk}}}{RATE}))',
                0.25, relative=True)
        compare("disk I/O time (s/s)", f'sum(rate(node_disk_io_time_seconds_total{{job="JOB",{disk}}}{RATE}))',
                0.25, relative=True)
        compare("lo received (bytes/s)", f'rate(node_network_receive_bytes_total{{job="JOB",device="lo"}}{RATE})',
                0.2, relative=True)
        compare("lo sent (packets/s)", f'rate(node_network_transmit_packets_total{{job="JOB",device="lo"}}{RATE})',
                0.2, relative=True)
        compare("context switches (/s)", f'rate(node_context_switches_total{{job="JOB"}}{RATE})', 0.3, relative=True)
        compare("load 1m", 'node_load1{job="JOB"}', 0.5)
    finally:
        load.stop.set()
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if checks.failures == 0:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"   (kept {work})")
    return checks.finish("dashboard")


if __name__ == "__main__":
    sys.exit(main())
