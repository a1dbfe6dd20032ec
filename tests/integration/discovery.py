#!/usr/bin/env python3
"""Discovery between separate hosts: network namespaces joined by veth pairs
(scripts/nethosts.sh), each with its own D-Bus and avahi-daemon limited to
its own veth interfaces. Nothing is sent on the machine's real interfaces.

    host 1 "alpha"  --+
    host 2 "twin"   --+-- switch (10.77.0.0/24)     host 1 <-> host 2 also
    host 3 "twin"   --+                              over nl1 (10.77.1.0/24),
    host 4 (no mDNS daemon) --+                      which reads 40000 Mb/s

Cases: two hosts and then a third find each other within 1 s of their start;
the faster of two links is chosen, the other when it goes down, the faster
again when it is back; two nodes of one name are both listed; an independent
mDNS client (python3-zeroconf, on the host without avahi) sees the service
and its TXT record; `nodelua list` and `nodelua repl list`; the agent without
a daemon says how to fix it, keeps running and finds a static peer; SIGTERM:
gone within 2 s; kill -9: gone within 10 s; cable pulled: gone within 10 s,
and back when the cable is.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from checks import check, finish, wait_for  # noqa: E402

NODELUA = os.path.abspath(sys.argv[1])
SOURCE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NETHOSTS = os.path.join(SOURCE, "scripts", "nethosts.sh")
TAG = f"d{os.getpid() % 100000}"
ROOT = tempfile.mkdtemp(prefix="nodelua-discovery-")
os.environ["NETHOSTS_DIR"] = ROOT  # the hosts' state lives with the test's

# The deadlines the discovery issue sets.
DISCOVER_WITHIN = 1.0
GOODBYE_WITHIN = 2.0
VANISHED_WITHIN = 10.0
measured = {}
notes = []

HOOK_POLICY = """
local base = require("nodelua.policy.discovery")
local policy = {}
for k, v in pairs(base) do policy[k] = v end
local function note(line)
  local f = assert(io.open(os.getenv("HOOK_FILE"), "a"))
  f:write(line, "\\n")
  f:close()
end
policy.on_peer_up = function(peer) note("up " .. peer.name .. " " .. peer.id) end
policy.on_peer_down = function(peer, why) note("down " .. peer.name .. " " .. peer.id .. " " .. why) end
return policy
"""


def nethosts(*args, check_rc=True):
    r = subprocess.run([NETHOSTS, *map(str, args)], capture_output=True, text=True, timeout=60)
    if check_rc and r.returncode != 0:
        raise RuntimeError(f"nethosts {' '.join(map(str, args))}: {r.stderr}")
    return r


def on_host(k, *cmd, timeout=30):
    return subprocess.run([NETHOSTS, "exec", TAG, str(k), *cmd], capture_output=True, text=True, timeout=timeout)


LINE = re.compile(r"^(\S+Z) \w+\s+\S+ discovery: peer (up|down): (.+) \(([0-9a-f]{8})\)(?::| at) ?(.*)$")


def log_time(stamp):
    from datetime import datetime, timezone
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


class Agent:
    def __init__(self, k, name, process_env=None, **env):
        self.k = k
        self.process_env = process_env or {}
        self.name = name
        self.dir = os.path.join(ROOT, "agents", f"h{k}")
        os.makedirs(self.dir, exist_ok=True)
        self.env_file = os.path.join(self.dir, "env")
        self.log = os.path.join(self.dir, "agent.log")
        settings = {
            "MONITORING_API_URL": "http://127.0.0.1:9/", "MONITORING_API_KEY": "k",
            "NODELUA_STATE_DIR": os.path.join(self.dir, "state"), "NODE_NAME": name,
            "NODELUA_LOG": "info", "NODELUA_SERVICE_ENV_FILE": "",
            # One cluster: hellos are authenticated, and carry addresses.
            "NODELUA_CLUSTER_KEY": "the-key-of-the-discovery-test",
        }
        settings.update(env)
        with open(self.env_file, "w") as f:
            for key, value in settings.items():
                f.write(f'{key}="{value}"\n')
        os.chmod(self.env_file, 0o600)  # it holds secrets: others may not read it
        self.proc = None
        self.started = None

    def start(self):
        logf = open(self.log, "a")
        self.started = time.time()
        # nethosts.sh execs all the way down: the pid is the agent's own.
        self.proc = subprocess.Popen([NETHOSTS, "exec", TAG, str(self.k), NODELUA, "--env-file", self.env_file,
                                      "agent"], stdout=logf, stderr=logf, stdin=subprocess.DEVNULL,
                                     env={"PATH": os.environ["PATH"], "NETHOSTS_DIR": ROOT, **self.process_env})
        logf.close()

    def stop(self, sig=signal.SIGTERM):
        if not self.proc:
            return None
        stopped = time.time()
        self.proc.send_signal(sig)
        rc = self.proc.wait(20)
        self.proc = None
        return stopped, rc

    def ready(self):
        """When the agent said it had started (after self.started), or None."""
        with open(self.log) as f:
            for line in f:
                m = re.match(r"^(\S+Z) INFO .* agent \S+ started: ", line)
                if m and log_time(m.group(1)) >= self.started - 0.01:
                    return log_time(m.group(1))
        return None

    def id(self):
        """The node id, once the agent has made it ("-" until then)."""
        try:
            with open(os.path.join(self.dir, "state", "node-id")) as f:
                return f.read().strip() or "-"
        except FileNotFoundError:
            return "-"

    def events(self):
        """(time, up|down, name, id8, rest) for each peer line of the log."""
        out = []
        with open(self.log) as f:
            for line in f:
                m = LINE.match(line.strip())
                if m:
                    out.append((log_time(m.group(1)), m.group(2), m.group(3), m.group(4), m.group(5)))
        return out

    def first(self, kind, other, after=0.0):
        for t, k, _, id8, rest in self.events():
            if k == kind and id8 == other.id()[:8] and t >= after:
                return t, rest
        return None

    def repl(self, *command):
        return on_host(self.k, NODELUA, "--env-file", self.env_file, "repl", *command)


def wait_event(agent, kind, other, after, seconds):
    wait_for(lambda: agent.first(kind, other, after) is not None, seconds)
    hit = agent.first(kind, other, after)
    return None if hit is None else hit[0] - after


def discovered(what, agents, newcomers):
    """Every agent sees every other within DISCOVER_WITHIN of the later of
    the two starts (a pair of agents that both ran before is not asked). An
    agent's start is its "agent ... started" line: the moment it asked the
    mDNS daemon to register it. (Avahi then probes for the name, as RFC 6762
    8.1 says, for 0.75 to 1 s: most of what is measured here.)"""
    for a in agents:
        for b in agents:
            if a is b or (a not in newcomers and b not in newcomers):
                continue
            wait_for(lambda: a.ready() and b.ready(), 5)
            start = max(a.ready() or a.started, b.ready() or b.started)
            delay = wait_event(a, "up", b, start, 5)
            spawn = max(a.started, b.started)
            measured[f"{what}: h{a.k} finds h{b.k}"] = delay
            hit = a.first("up", b, start)
            if hit:
                notes.append(f"{what}: h{a.k} finds h{b.k} {hit[0] - spawn:.3f} s after the process was spawned")
            check(f"{what}: h{a.k} finds h{b.k} within {DISCOVER_WITHIN} s",
                  delay is not None and delay <= DISCOVER_WITHIN, f"took {delay}")


def best_address(agent, other):
    r = agent.repl("peers")
    if r.returncode != 0:
        return None
    for p in json.loads(r.stdout):
        if p["id"] == other.id():
            return p["best"]
    return None


def main():
    if os.geteuid() != 0:
        print("SKIPPED: discovery needs root, for network namespaces (CI runs it as root)")
        sys.exit(77)
    agents = []
    try:
        nethosts("up", TAG, 4)
        nethosts("link", TAG, 1, 2, 1, 40000)
        for k in (1, 2, 3):
            nethosts("daemons", TAG, k)

        hooks = os.path.join(ROOT, "hooks.txt")
        policy_dir = os.path.join(ROOT, "policy")
        os.makedirs(policy_dir)
        with open(os.path.join(policy_dir, "discovery.lua"), "w") as f:
            f.write(HOOK_POLICY)
        # HOOK_FILE reaches alpha's policy through its environment.
        alpha = Agent(1, "alpha", process_env={"HOOK_FILE": hooks}, NODELUA_POLICY_DIR=policy_dir)
        twin2 = Agent(2, "twin")
        twin3 = Agent(3, "twin")
        lone = Agent(4, "lone", NODELUA_PEERS="10.77.0.1:7879")
        agents = [alpha, twin2, twin3, lone]

        # ---- two hosts, then a third ----
        alpha.start()
        twin2.start()
        discovered("two hosts", [alpha, twin2], [alpha, twin2])
        twin3.start()
        discovered("three hosts", [alpha, twin2, twin3], [twin3])

        # ---- the faster link ----
        best = best_address(alpha, twin2)
        check("alpha reaches h2 over the 40 Gb/s link", best is not None and best["address"] == "10.77.1.2"
              and best["ifname"] == "nl1" and best["speed_mbps"] == 40000, str(best))
        best = best_address(twin2, alpha)
        check("h2 reaches alpha over the 40 Gb/s link", best is not None and best["address"] == "10.77.1.1", str(best))
        r = alpha.repl("list")
        check("repl list: exit 0", r.returncode == 0, r.stderr)
        row = [line for line in r.stdout.splitlines() if line.startswith(twin2.id()[:12])]
        check("repl list: h2's row shows the fast link", row and re.search(r"twin\s+10\.77\.1\.2:7879\s+virtual 40 Gb/s\s+0\.", row[0]),
              r.stdout)

        down_at = time.time()
        subprocess.run(["ip", "-n", nethosts("ns", TAG, 1).stdout.strip(), "link", "set", "nl1", "down"], check=True)
        ok = wait_for(lambda: (best_address(alpha, twin2) or {}).get("address") == "10.77.0.2", 10, 0.2)
        measured["fast link down: alpha moves to the other"] = time.time() - down_at
        check("fast link down: alpha's best path to h2 is now 10.77.0.2", ok)
        ok = wait_for(lambda: (best_address(twin2, alpha) or {}).get("address") == "10.77.0.1", 10, 0.2)
        check("fast link down: h2's best path to alpha is now 10.77.0.1", ok)
        check("and h2 stays a peer all the while", alpha.first("down", twin2) is None)
        up_at = time.time()
        subprocess.run(["ip", "-n", nethosts("ns", TAG, 1).stdout.strip(), "link", "set", "nl1", "up"], check=True)
        ok = wait_for(lambda: (best_address(alpha, twin2) or {}).get("address") == "10.77.1.2", 15, 0.2)
        measured["fast link back: alpha returns to it"] = time.time() - up_at
        check("fast link back: alpha uses it again", ok)

        # ---- two nodes of one name ----
        r = alpha.repl("peers")
        peers = json.loads(r.stdout) if r.returncode == 0 else []
        twins = sorted(p["id"] for p in peers if p["name"] == "twin")
        check("two nodes named twin, both listed by id", twins == sorted([twin2.id(), twin3.id()]), r.stdout)

        # ---- nodelua list, one-shot ----
        r = on_host(3, NODELUA, "--env-file", twin3.env_file, "list")
        check("list: exit 0", r.returncode == 0, r.stderr)
        check("list: alpha and the other twin", alpha.id()[:12] in r.stdout and twin2.id()[:12] in r.stdout
              and twin3.id()[:12] not in r.stdout, r.stdout)
        check("list: the header", r.stdout.splitlines()[0].split() == ["ID", "NAME", "ADDRESS", "LINK", "VERSION"],
              r.stdout)
        r = on_host(1, NODELUA, "--env-file", alpha.env_file, "list", "--wait", "1.5", "--json")
        listed = json.loads(r.stdout) if r.returncode == 0 else []
        by_id = {p["id"]: p for p in listed}
        check("list --json: h2 with its best path over nl1",
              twin2.id() in by_id and by_id[twin2.id()]["best"]["address"] == "10.77.1.2", r.stdout)
        check("list --json: version and capabilities",
              all(p["version"] and p["caps"] == ["tcp"] for p in listed) and len(listed) == 2, r.stdout)
        check("list --json: each peer's hello proved the cluster key", all(p["verified"] is True for p in listed),
              r.stdout)

        # ---- valgrind over the whole discovery path: browse, resolve,
        # getaddrinfo, probes, and the teardown (normal build only) ----
        valgrind = os.environ.get("VALGRIND")
        if valgrind:
            r = on_host(3, valgrind, "--quiet", "--leak-check=full", "--show-leak-kinds=definite,indirect",
                        "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99", NODELUA, "--env-file",
                        twin3.env_file, "list", "--wait", "3", timeout=120)
            check("valgrind list: no error, no leak, exit 0", r.returncode == 0, r.stderr[-3000:])
            check("valgrind list: it found the peers", alpha.id()[:12] in r.stdout and twin2.id()[:12] in r.stdout,
                  r.stdout)

        # ---- an independent mDNS client: python3-zeroconf on the host with no avahi ----
        zc = on_host(4, "/usr/bin/python3", os.path.join(SOURCE, "tests", "integration", "zeroconf_browse.py"), "3",
                     timeout=30)
        check("zeroconf browse ran", zc.returncode == 0, zc.stderr)
        seen = json.loads(zc.stdout) if zc.returncode == 0 else []
        mine = [s for s in seen if s["txt"].get("id") == alpha.id()]
        check("zeroconf sees alpha's service", len(mine) == 1, zc.stdout)
        if mine:
            s = mine[0]
            check("zeroconf: port 7879", s["port"] == 7879, str(s))
            check("zeroconf: instance name is name (id8)", s["name"] == f"alpha ({alpha.id()[:8]})", str(s))
            txt = s["txt"]
            check("zeroconf: TXT keys", sorted(txt) == ["caps", "id", "link", "name", "proto", "txtvers", "ver"],
                  str(txt))
            check("zeroconf: TXT values", txt.get("name") == "alpha" and txt.get("proto") == "2"
                  and txt.get("caps") == "tcp" and txt.get("txtvers") == "1" and txt.get("link") == "virtual"
                  and re.match(r"^\d+\.\d+\.\d+", txt.get("ver", "")) is not None, str(txt))
            check("zeroconf: keys of 9 characters or fewer", all(len(k) <= 9 for k in txt), str(txt))
            check("zeroconf: the record is small", s["txt_bytes"] <= 400, str(s["txt_bytes"]))
            check("zeroconf: alpha's address", "10.77.0.1" in s["addresses"], str(s))
        check("zeroconf sees both twins", len([s for s in seen if s["txt"].get("name") == "twin"]) == 2, zc.stdout)

        # ---- no daemon ----
        lone.start()
        check("no daemon: the clear line", wait_for(lambda: "mDNS is off" in open(lone.log).read(), 5))
        text = open(lone.log).read()
        check("no daemon: it names avahi-daemon and how to start it",
              "avahi-daemon" in text and "systemctl enable --now avahi-daemon" in text, text[-2000:])
        check("no daemon: one line, not one per retry", text.count("mDNS is off") == 1)
        check("no daemon: it finds its static peer", wait_for(lambda: lone.first("up", alpha) is not None, 5))
        time.sleep(1)
        check("no daemon: the agent keeps running", lone.proc.poll() is None)
        r = lone.repl("status")
        check("no daemon: repl status says mDNS failed", r.returncode == 0 and "mDNS      failed" in r.stdout,
              r.stdout + r.stderr)

        # ---- SIGTERM: gone within 2 s ----
        stopped, rc = twin3.stop(signal.SIGTERM)
        check("SIGTERM: the agent exits 0", rc == 0, str(rc))
        for a in (alpha, twin2):
            delay = wait_event(a, "down", twin3, stopped, GOODBYE_WITHIN + 3)
            measured[f"SIGTERM: h{a.k} sees h3 go"] = delay
            check(f"SIGTERM: h{a.k} drops h3 within {GOODBYE_WITHIN} s", delay is not None and delay <= GOODBYE_WITHIN,
                  f"took {delay}")
            hit = a.first("down", twin3, stopped)
            check(f"SIGTERM: h{a.k} says goodbye", hit is not None and hit[1] == "goodbye", str(hit))

        # ---- kill -9: gone within 10 s ----
        twin3.start()
        check("h3 is back", wait_event(alpha, "up", twin3, twin3.started, 5) is not None)
        # Killed once its mDNS registration stands, so that the daemon has a
        # registration to withdraw (before that, the probes notice).
        check("h3 is advertised", wait_for(lambda: "advertising" in open(twin3.log).read().split("stopped")[-1], 5))
        time.sleep(0.5)
        stopped, _ = twin3.stop(signal.SIGKILL)
        for a in (alpha, twin2):
            delay = wait_event(a, "down", twin3, stopped, VANISHED_WITHIN + 3)
            measured[f"kill -9: h{a.k} sees h3 go"] = delay
            hit = a.first("down", twin3, stopped)
            notes.append(f"kill -9: h{a.k} says {hit[1] if hit else 'nothing'}")
            check(f"kill -9: h{a.k} drops h3 within {VANISHED_WITHIN} s", delay is not None and delay <= VANISHED_WITHIN,
                  f"took {delay}")

        # ---- cable pulled: no goodbye can arrive ----
        twin3.start()
        check("h3 is back again", wait_event(alpha, "up", twin3, twin3.started, 5) is not None)
        switch = f"nl{TAG}-sw"
        pulled = time.time()
        subprocess.run(["ip", "-n", switch, "link", "set", "port3", "down"], check=True)
        delay = wait_event(alpha, "down", twin3, pulled, VANISHED_WITHIN + 3)
        measured["cable pulled: alpha sees h3 go"] = delay
        check(f"cable pulled: alpha drops h3 within {VANISHED_WITHIN} s", delay is not None and delay <= VANISHED_WITHIN,
              f"took {delay}")
        hit = alpha.first("down", twin3, pulled)
        check("cable pulled: unreachable, not goodbye", hit is not None and hit[1] == "unreachable", str(hit))
        plugged = time.time()
        subprocess.run(["ip", "-n", switch, "link", "set", "port3", "up"], check=True)
        delay = wait_event(alpha, "up", twin3, plugged, 15)
        measured["cable back: alpha sees h3 again"] = delay
        check("cable back: h3 is a peer again", delay is not None)

        # ---- the policy hooks ran ----
        hooked = open(hooks).read().splitlines() if os.path.exists(hooks) else []
        check("on_peer_up hook saw h2", f"up twin {twin2.id()}" in hooked, str(hooked))
        check("on_peer_down hook saw h3 leave: goodbye", f"down twin {twin3.id()} goodbye" in hooked, str(hooked))
        check("on_peer_down hook saw h3 leave: unreachable", f"down twin {twin3.id()} unreachable" in hooked,
              str(hooked))

        for a in agents:
            if a.proc:
                _, rc = a.stop()
                check(f"h{a.k} stops cleanly", rc == 0, str(rc))
    finally:
        for a in agents:
            if a.proc:
                a.proc.kill()
                a.proc.wait(10)
        nethosts("down", TAG, check_rc=False)
        failed_logs = os.environ.get("KEEP_LOGS")
        if failed_logs:
            print(f"logs kept in {ROOT}")
        else:
            shutil.rmtree(ROOT, ignore_errors=True)
    for what, value in measured.items():
        print(f"  {what}: {'%.3f s' % value if value is not None else 'never'}")
    for note in notes:
        print(f"  {note}")
    finish("discovery")


if __name__ == "__main__":
    main()
