#!/usr/bin/python3
"""nodelua agent against a real, schema-validating receiver (tests/receiver):
normal flow, an outage, a crash during an outage, error answers, a slow
receiver, a full spool, and the local endpoint under bad clients. Everything
runs on loopback; every process started here is ended by its pid.

Usage: agent_reporting.py path/to/nodelua [scenario ...]
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import checks
from checks import check, free_port, wait_for

NODELUA = os.path.abspath(sys.argv[1])
ONLY = set(sys.argv[2:])
SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROMTOOL = os.environ.get("PROMTOOL", "promtool")
KEY = "test-key-" + os.urandom(6).hex()


def get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class Receiver:
    def __init__(self, work):
        self.port = free_port()
        self.record = os.path.join(work, "received.jsonl")
        self.proc = None
        self.tls = []

    def start(self):
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(SOURCE, "tests/receiver/receiver.py"), "--port", str(self.port),
             "--key", KEY, "--schema", os.path.join(SOURCE, "tests/schema/system-metrics.schema.json"),
             "--record", self.record] + self.tls, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.proc.stdout.readline()  # "listening"

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
            self.proc = None

    def control(self, mode):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/_control", data=json.dumps(mode).encode(),
                                     method="POST")
        urllib.request.urlopen(req, timeout=5).read()

    def records(self):
        if not os.path.exists(self.record):
            return []
        with open(self.record) as f:
            return [json.loads(line) for line in f if line.strip()]

    def accepted(self):
        """Payloads answered 200: valid, right key, not forced."""
        return [r for r in self.records() if not r["errors"] and r["key_ok"] and not r["forced"]]


class Agent:
    def __init__(self, work, receiver_port, **env):
        self.work = work
        self.state = os.path.join(work, "state")
        self.port = free_port()
        self.log = os.path.join(work, "agent.log")
        self.env = {
            "PATH": os.environ["PATH"], "HOME": work, "NODELUA_SERVICE_ENV_FILE": "",
            "NODELUA_STATE_DIR": self.state, "MONITORING_API_URL": f"http://127.0.0.1:{receiver_port}",
            "MONITORING_API_KEY": KEY, "REPORT_INTERVAL": "1", "METRICS_LISTEN": f"127.0.0.1:{self.port}",
            "NODELUA_LOG": "debug", "NODELUA_MDNS": "false", "TRANSFER_PORT": "0",
        }
        self.env.update(env)
        self.proc = None

    def start(self):
        logf = open(self.log, "a")
        self.proc = subprocess.Popen([NODELUA, "agent"], env=self.env, cwd=self.work, stdout=logf, stderr=logf)
        check("agent serves /healthz", wait_for(lambda: self.health() is not None, 10))

    def health(self):
        try:
            status, body = get(f"http://127.0.0.1:{self.port}/healthz", timeout=2)
            return json.loads(body) if status == 200 else None
        except OSError:
            return None

    def stop(self, sig=signal.SIGTERM):
        if self.proc:
            self.proc.send_signal(sig)
            rc = self.proc.wait(20)
            self.proc = None
            return rc
        return None

    def log_text(self):
        with open(self.log) as f:
            return f.read()


def timestamps(records):
    return [r["payload"]["timestamp"] for r in records]


def parse_ts(ts):
    from datetime import datetime
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def assert_in_order_once(what, records):
    ts = timestamps(records)
    check(f"{what}: every report once", len(ts) == len(set(ts)), f"{len(ts) - len(set(ts))} duplicates")
    check(f"{what}: in order", ts == sorted(ts))
    return [parse_ts(t) for t in ts]


def missing_between(records, start, end):
    """The spool sequence numbers (from each report's Idempotency-Key) that
    are missing among the reports stamped between start and end, and how
    many there were: none lost, whatever the timing of the machine."""
    seqs = sorted(int(r["headers"]["idempotency-key"].rsplit("-", 1)[1]) for r in records
                  if start <= parse_ts(r["payload"]["timestamp"]) <= end)
    missing = [n for a, b in zip(seqs, seqs[1:]) for n in range(a + 1, b)]
    return missing, len(seqs)


def running_pair(work, receiver, reports=1, **env):
    """The receiver up, an agent started, and its first reports taken."""
    receiver.start()
    agent = Agent(work, receiver.port, **env)
    agent.start()
    wait_for(lambda: len(receiver.accepted()) >= reports, 10)
    return agent


def scenario(fn):
    name = fn.__name__
    if ONLY and name not in ONLY:
        return
    work = tempfile.mkdtemp(prefix=f"nodelua-{name}-")
    receiver = Receiver(work)
    agent = None
    try:
        print(f"-- {name}", flush=True)
        agent = fn(work, receiver)
    finally:
        for p in (getattr(agent, "proc", None), receiver.proc):
            if p and p.poll() is None:
                p.kill()
                p.wait()
        if checks.failures == 0:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"   (kept {work})", flush=True)


@scenario
def normal_flow(work, receiver):
    receiver.start()
    agent = Agent(work, receiver.port)
    agent.start()
    check("reports arrive", wait_for(lambda: len(receiver.accepted()) >= 4, 15))
    records = receiver.records()
    check("every payload valid against the schema", all(not r["errors"] for r in records),
          str([r["errors"] for r in records if r["errors"]][:2]))
    check("every request has the key", all(r["headers"].get("x-api-key") == KEY for r in records))
    check("and the JSON content type", all(r["headers"].get("content-type") == "application/json" for r in records))
    keys = [r["headers"].get("idempotency-key", "") for r in records]
    node_id = open(os.path.join(agent.state, "node-id")).read().strip()
    check("each report has an Idempotency-Key: the node's id and a sequence number, each once",
          all(re.fullmatch(re.escape(node_id) + r"-\d+", k) for k in keys) and len(set(keys)) == len(keys),
          str(keys[:3]))
    first = records[0]["payload"]
    check("the first report carries the full system information",
          "info" in first["cpu"] and "interfaces" in first["network"] and first["system"].get("release"))
    check("CPU load from the first report on", "load" in first["cpu"])
    check("errors are errors, not packets", all("errors" in s for s in first["network"]["stats"]))
    assert_in_order_once("normal", records)
    ports = [r["client_port"] for r in records]
    check("the connection is kept alive and reused", len(set(ports)) < len(ports) / 2, str(ports))
    status, latest = get(f"http://127.0.0.1:{agent.port}/api/v1/metrics/latest")
    check("/api/v1/metrics/latest is the last payload", status == 200 and "timestamp" in json.loads(latest))
    status, text = get(f"http://127.0.0.1:{agent.port}/metrics")
    check("/metrics answers", status == 200 and "node_cpu_seconds_total" in text and "nodelua_spool_reports" in text)
    # Read when scraped: the clock on /metrics is the scrape's, and a second
    # scrape within 100 ms gets the same reading (a loop of requests costs
    # at most ten readings a second).
    def clock(body):
        line = next(li for li in body.splitlines() if li.startswith("node_time_seconds "))
        return float(line.split()[1])
    before = time.time()
    first_text = get(f"http://127.0.0.1:{agent.port}/metrics")[1]
    again = get(f"http://127.0.0.1:{agent.port}/metrics")[1]
    after = time.time()
    check("/metrics is read when scraped", before - 0.05 <= clock(first_text) <= after + 0.05,
          f"{clock(first_text)} not in [{before}, {after}]")
    check("a scrape within 100 ms gets the same reading",
          after - before > 0.09 or clock(again) == clock(first_text))
    time.sleep(0.2)
    later = get(f"http://127.0.0.1:{agent.port}/metrics")[1]
    check("a later scrape reads again", clock(later) > clock(first_text))
    lint = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True)
    # node_exporter's own names, which dashboards need as they are: the
    # camelCase field names of /proc/meminfo and /proc/net/*, and entropy in
    # bits.
    own = re.compile(r"^node_(memory|netstat|sockstat|vmstat)_\S+ metric names should be written in "
                     r"'snake_case' not 'camelCase'$|^node_entropy_\w+_bits use base unit \"bytes\" instead of \"bits\"$")
    unexpected = [line for line in (lint.stdout + lint.stderr).splitlines()
                  if line and not own.match(line)]
    check("/metrics passes promtool (but node_exporter's own camelCase names)",
          lint.returncode in (0, 3) and not unexpected, str(unexpected[:3]))
    health = agent.health()
    check("/healthz has the spool's depth", health and health["spool"]["depth"] == 0 and health["status"] == "ok")
    check("SIGTERM exits 0", agent.stop() == 0)
    check("no line of the log has the key", KEY not in agent.log_text())
    return agent


@scenario
def outage(work, receiver):
    agent = running_pair(work, receiver, 2)
    receiver.stop()
    down = time.time()
    time.sleep(30)
    check("reports wait in the spool during the outage", (agent.health() or {}).get("spool", {}).get("depth", 0) >= 25)
    receiver.start()
    up = time.time()
    check("the spool drains once the API is back",
          wait_for(lambda: (agent.health() or {}).get("spool", {}).get("depth") == 0, 60))
    assert_in_order_once("outage", receiver.accepted())
    missing, count = missing_between(receiver.accepted(), down - 2, up + 2)
    check("no report of the outage is missing (consecutive sequence numbers)", not missing and count >= 25,
          f"{count} reports, missing {missing[:5]}")
    check("the receiver never saw an invalid payload", all(not r["errors"] for r in receiver.records()))
    agent.stop()
    return agent


@scenario
def crash_during_outage(work, receiver):
    agent = running_pair(work, receiver, 2)
    receiver.stop()
    down = time.time()
    time.sleep(6)
    spooled = len([f for f in os.listdir(os.path.join(agent.state, "spool")) if f.endswith(".json")])
    killed = time.time()
    agent.stop(signal.SIGKILL)
    check("reports were spooled before the crash", spooled >= 5, str(spooled))
    agent.start()
    receiver.start()
    check("after a restart the spool drains",
          wait_for(lambda: (agent.health() or {}).get("spool", {}).get("depth") == 0, 30))
    assert_in_order_once("crash", receiver.accepted())
    missing, count = missing_between(receiver.accepted(), down - 1, killed - 1)
    check("every report spooled before the kill -9 arrived (consecutive sequence numbers)",
          not missing and count >= 4, f"{count} reports, missing {missing[:5]}")
    agent.stop()
    return agent


@scenario
def error_answers(work, receiver):
    agent = running_pair(work, receiver, 1)
    receiver.control({"status": 500, "body": "database is down"})
    time.sleep(3)
    receiver.control({})
    check("500 is retried until it is taken",
          wait_for(lambda: (agent.health() or {}).get("spool", {}).get("depth") == 0, 20))
    forced = [r["payload"]["timestamp"] for r in receiver.records() if r["forced"] == 500]
    accepted = set(timestamps(receiver.accepted()))
    check("the reports answered 500 arrived later", forced and all(t in accepted for t in forced))
    assert_in_order_once("500", receiver.accepted())
    receiver.control({"status": 400, "body": "field x is wrong"})
    time.sleep(2.5)
    receiver.control({})
    dead = os.path.join(agent.state, "spool", "dead-letter.jsonl")
    check("400 goes to the dead letter", os.path.exists(dead))
    if os.path.exists(dead):
        lines = [json.loads(line) for line in open(dead)]
        check("with the status, the server's message and the payload",
              lines and lines[0]["status"] == 400 and lines[0]["reason"] == "field x is wrong"
              and "timestamp" in lines[0]["payload"])
    check("the 400 is logged once per report with the server's message",
          "HTTP 400: field x is wrong" in agent.log_text())
    check("and delivery goes on", wait_for(lambda: (agent.health() or {}).get("spool", {}).get("depth") == 0, 10))
    agent.stop()
    # A wrong key: 401, a clear error, and no key in the log.
    shutil.rmtree(agent.state)
    wrong = "wrong-key-" + os.urandom(6).hex()
    agent = Agent(work, receiver.port, MONITORING_API_KEY=wrong)
    agent.log = os.path.join(work, "agent401.log")
    agent.start()
    check("401 is reported", wait_for(lambda: "HTTP 401" in agent.log_text(), 10))
    text = agent.log_text()
    check("clearly", "HTTP 401: Invalid API key; check MONITORING_API_KEY" in text)
    check("with no key in the log", wrong not in text and KEY not in text)
    agent.stop()
    return agent


@scenario
def tls(work, receiver):
    cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    receiver.tls = ["--tls", cert, key]
    receiver.start()
    url = f"https://127.0.0.1:{receiver.port}"
    agent = Agent(work, receiver.port, MONITORING_API_URL=url)
    agent.start()
    check("a certificate outside the OS's CA store is refused",
          wait_for(lambda: "certificate" in agent.log_text(), 10))
    check("and nothing is delivered", not receiver.records())
    agent.stop()
    agent = Agent(work, receiver.port, MONITORING_API_URL=url, MONITORING_API_CA_FILE=cert)
    agent.start()
    check("with MONITORING_API_CA_FILE the private CA is trusted",
          wait_for(lambda: (agent.health() or {}).get("spool", {}).get("depth") == 0 and receiver.accepted(), 15))
    agent.stop()
    return agent


@scenario
def retry_after(work, receiver):
    agent = running_pair(work, receiver, 1)
    receiver.control({"status": 503, "retry_after": "4"})
    wait_for(lambda: any(r["forced"] == 503 for r in receiver.records()), 5)
    first_503 = max(r["time"] for r in receiver.records() if r["forced"] == 503)
    time.sleep(1.5)
    n = len([r for r in receiver.records() if r["forced"] == 503])
    check("Retry-After is honoured: no new attempt before it", n == 1, f"{n} attempts")
    receiver.control({})
    wait_for(lambda: any(r["time"] > first_503 and not r["forced"] for r in receiver.records()), 10)
    nxt = min(r["time"] for r in receiver.records() if r["time"] > first_503)
    check("the next attempt comes after 4 s", nxt - first_503 >= 3.9, f"{nxt - first_503:.2f} s")
    agent.stop()
    return agent


@scenario
def slow_receiver(work, receiver):
    receiver.start()
    agent = Agent(work, receiver.port)
    agent.start()
    receiver.control({"delay": 4})
    time.sleep(2)
    worst = 0
    for _ in range(20):
        t = time.time()
        status, _ = get(f"http://127.0.0.1:{agent.port}/healthz")
        worst = max(worst, time.time() - t)
        check("healthz answers while the receiver is slow", status == 200)
        time.sleep(0.1)
    check("within 100 ms", worst < 0.1, f"worst {worst * 1000:.0f} ms")
    # The loop itself stays responsive: it keeps beating and sampling.
    h1 = agent.health()
    time.sleep(2.2)
    h2 = agent.health()
    check("the loop goes on", h1 and h2 and h2["uptime_seconds"] > h1["uptime_seconds"])
    receiver.control({})
    agent.stop()
    return agent


@scenario
def full_spool(work, receiver):
    policies = os.path.join(work, "policies")
    os.makedirs(policies)
    with open(os.path.join(policies, "schedule.lua"), "w") as f:
        f.write("return { intervals = function() return { cpu = 2, network = 2, storage = 10, report = 0.1 } end }\n")
    agent = Agent(work, receiver.port, NODELUA_SPOOL_MAX_BYTES="65536", NODELUA_POLICY_DIR=policies)
    agent.start()  # the receiver is not up: everything spools
    check("the spool fills and drops", wait_for(lambda: agent.health()["spool"]["dropped"] >= 20, 30))
    h = agent.health()
    check("within its bound", h["spool"]["bytes"] <= 65536, str(h["spool"]))
    spool_dir = os.path.join(agent.state, "spool")
    agent.stop()
    import re
    stopped = re.findall(r"stopped; (\d+) reports wait .*\((\d+) dropped", agent.log_text())
    check("the agent says what it kept and dropped", len(stopped) == 1)
    kept, dropped = (int(x) for x in stopped[0]) if stopped else (0, 0)
    files = sorted(f for f in os.listdir(spool_dir) if f.endswith(".json"))
    seqs = [int(f.split("-")[0]) for f in files]
    built = seqs[-1]  # a fresh spool numbers reports from 1, none delivered
    check("the drop counter is right: built = kept + dropped", built == len(files) + dropped == kept + dropped,
          f"built {built}, kept {len(files)}/{kept}, dropped {dropped}")
    check("the oldest were dropped, the newest kept", seqs == list(range(dropped + 1, built + 1)))
    receiver.start()
    agent.start()
    check("the kept reports drain", wait_for(lambda: agent.health()["spool"]["depth"] == 0, 60))
    agent.stop()
    assert_in_order_once("full spool", receiver.accepted())
    check("what was kept arrived", len(receiver.accepted()) >= len(files))
    return agent


@scenario
def endpoint_bad_clients(work, receiver):
    receiver.start()
    agent = Agent(work, receiver.port)
    agent.start()
    port = agent.port
    garbage = [b"\x00\xff\xfe garbage\r\n\r\n", b"GET /metrics HTTP/9.9\r\n\r\n", b"BREW / HTTP/1.1\r\n\r\n",
               b"GET " + b"A" * 100000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
               b"GET /metrics HTTP/1.1\r\n" + b"X-Long: " + b"b" * 70000 + b"\r\n\r\n",
               b"POST /metrics HTTP/1.1\r\nContent-Length: 999999999\r\n\r\nabc",
               os.urandom(4096)]
    for g in garbage:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            try:
                s.sendall(g)
                answer = s.recv(200)
            except OSError:
                answer = b""
            # A refusal (4xx, or 505 for an unknown HTTP version) or a
            # closed connection; never a 200, never a crash.
            check(f"garbage {g[:20]!r}: refused or closed",
                  answer == b"" or answer[:10] in (b"HTTP/1.1 4", b"HTTP/1.0 4")
                  or answer.startswith(b"HTTP/1.1 505"), repr(answer[:40]))
    # Slow clients that never finish their headers do not take the server.
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(20)]
    for s in idle:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    status, _ = get(f"http://127.0.0.1:{port}/healthz")
    check("healthz still answers with 20 half-open clients", status == 200)
    for s in idle:
        s.close()
    status, _ = get(f"http://127.0.0.1:{port}/nothing")
    check("unknown path is 404", status == 404)
    check("the agent is alive", agent.proc.poll() is None)
    check("and still reports", wait_for(lambda: len(receiver.accepted()) >= 3, 10))
    agent.stop()
    return agent


checks.finish("agent_reporting")
