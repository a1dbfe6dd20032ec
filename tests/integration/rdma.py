#!/usr/bin/env python3
"""RDMA transfers on a host with a usable RDMA device (Soft-RoCE in
.github/workflows/rdma.yml): a receiving agent and `nodelua send`, both in
clear (RDMA carries the bytes as they are), over the device's interface.

- a 1 GiB round trip with TRANSFER_RDMA=required: every chunk over RDMA,
  the tree digest checked against the Python reference;
- kill -9 of the sender mid-RDMA, then the same send again: it resumes and
  the file is whole;
- a queue pair forced into error mid-transfer: the rest goes over TCP
  streams, with one log line, and the file is whole.

Where nodelua's own detection finds no usable device (this machine, and the
CI machine of scripts/test.sh), it says SKIPPED and exits 77.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from checks import check, finish, skip, wait_for  # noqa: E402
import treehash  # noqa: E402

NODELUA = os.path.abspath(sys.argv[1])
CHUNK = 4 * 1024 * 1024
KEY = "the-cluster-key-of-this-rdma-test"
work = tempfile.mkdtemp(prefix="nodelua-rdma-")
recv_dir = os.path.join(work, "recv")
src_dir = os.path.join(work, "src")
os.makedirs(src_dir)


def env(**extra):
    e = {"PATH": os.environ["PATH"], "HOME": work, "NODELUA_SERVICE_ENV_FILE": "",
         "NODELUA_MDNS": "false", "METRICS_LISTEN": "", "MONITORING_API_URL": "http://127.0.0.1:9",
         "NODELUA_CLUSTER_KEY": KEY, "TRANSFER_ENCRYPT": "false"}
    e.update(extra)
    return e


def lua(script, *args, **extra):
    path = os.path.join(work, "script.lua")
    with open(path, "w") as f:
        f.write(script)
    return subprocess.run([NODELUA, "run", path, *args], cwd=work, env=env(**extra),
                          capture_output=True, text=True, timeout=600)


DETECT = """
local r = require("nodelua.transfer").rdma()
print(r.usable, r.devices, r.why)
"""


def device_address():
    """The usable device's interface and its IPv4 address, or None and why."""
    out = lua(DETECT).stdout.strip()
    usable, _, rest = out.partition("\t")
    if not usable.isdigit() or int(usable) == 0:
        return None, out or "nodelua run failed"
    m = re.search(r"\(([^)]+)\)", rest)
    ifname = m.group(1) if m else ""
    ip = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", ifname], capture_output=True,
                        text=True).stdout
    m = re.search(r"inet (\d+\.\d+\.\d+\.\d+)", ip)
    if not m:
        return None, f"{ifname} has no IPv4 address"
    return m.group(1), ifname


def make_file(name, size):
    path = os.path.join(src_dir, name)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, 64 * 1024 * 1024)
            f.write(os.urandom(n))
            left -= n
    return path


def free_port(address):
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def main():
    address, why = device_address()
    if address is None:
        skip(f"RDMA transfers: no usable RDMA device here ({why})")
        return
    port = free_port(address)
    log_path = os.path.join(work, "agent.log")
    logf = open(log_path, "a")
    agent = subprocess.Popen([NODELUA, "agent"], cwd=work, stdout=logf, stderr=logf, env=env(
        NODELUA_STATE_DIR=os.path.join(work, "state"), TRANSFER_PORT=str(port), TRANSFER_DIR=recv_dir))
    logf.close()

    def agent_log():
        with open(log_path) as f:
            return f.read()
    try:
        check("the agent says RDMA is usable", wait_for(lambda: "RDMA usable on" in agent_log(), 10),
              agent_log()[-2000:])
        target = f"{address}:{port}"

        # 1 GiB, every chunk over RDMA.
        big = make_file("big.bin", 1024 * 1024 * 1024)
        want = treehash.tree_of_file(big)
        sent = subprocess.run([NODELUA, "send", target, big], cwd=work, env=env(TRANSFER_RDMA="required"),
                              capture_output=True, text=True, timeout=600)
        check("1 GiB over RDMA: sent", sent.returncode == 0, sent.stderr)
        check("every chunk went over RDMA", "256 chunks over RDMA" in sent.stdout, sent.stdout)
        check("the tree digest is the reference's", want in sent.stdout, sent.stdout)
        check("the received file is whole",
              treehash.tree_of_file(os.path.join(recv_dir, "big.bin")) == want)

        # kill -9 of the sender mid-RDMA, then a resume.
        again = make_file("again.bin", 1024 * 1024 * 1024)
        want = treehash.tree_of_file(again)
        proc = subprocess.Popen([NODELUA, "send", target, again], cwd=work, env=env(TRANSFER_RDMA="required"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        partial = os.path.join(recv_dir, ".nodelua-partial")

        def some_arrived():
            try:
                return any(os.path.getsize(os.path.join(partial, n)) > 8 * CHUNK
                           for n in os.listdir(partial))
            except OSError:
                return False
        wait_for(some_arrived, 60, 0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        time.sleep(1)
        sent = subprocess.run([NODELUA, "send", target, again], cwd=work, env=env(TRANSFER_RDMA="required"),
                              capture_output=True, text=True, timeout=600)
        check("after kill -9: sent again", sent.returncode == 0, sent.stderr)
        check("it resumed", "resumed" in sent.stdout, sent.stdout)
        check("after kill -9: the file is whole",
              treehash.tree_of_file(os.path.join(recv_dir, "again.bin")) == want)

        # A queue pair in error mid-transfer: TCP takes the rest.
        mid = make_file("mid.bin", 256 * 1024 * 1024)
        want = treehash.tree_of_file(mid)
        r = lua("""
local transfer = require("nodelua.transfer")
local host, port, path, key = ...
local result, err = transfer.send_file({host = host, port = math.tointeger(tonumber(port)), path = path,
  key = key, rdma = "required", rdma_fail_after_chunks = 16})
if not result then print("failed", err) os.exit(1) end
print(result.chunks_rdma, result.chunks_sent, result.tree, result.rdma_note or "")
""", address, str(port), mid, KEY)
        fields = r.stdout.strip().split("\t")
        check("forced error: sent", r.returncode == 0 and len(fields) == 4, r.stdout + r.stderr)
        if len(fields) == 4:
            check("some chunks went over RDMA, not all", 16 <= int(fields[0]) < 64, fields)
            check("forced error: the tree digest", fields[2] == want, fields)
            check("it says why RDMA stopped", fields[3].startswith("RDMA stopped after"), fields)
        check("one log line says the rest went over TCP",
              r.stderr.count("RDMA stopped mid-transfer") == 1, r.stderr)
        check("forced error: the file is whole",
              treehash.tree_of_file(os.path.join(recv_dir, "mid.bin")) == want)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(30)


try:
    main()
finally:
    subprocess.run(["rm", "-rf", work])
finish("rdma.py")
