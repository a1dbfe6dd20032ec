#!/usr/bin/env python3
"""Self-update end to end: agents on loopback under a supervisor that
restarts them when they exit (as systemd's Restart=always and deploy.sh
do), a fake GitHub API with an asset host (fake_github.py), releases made
by scripts/release.sh with real minisign keys, and the release binary a
build of this tree as version 99.0.0.

  - a healthy update, found on page 2 behind 35 nightlies, installed by the
    periodic check, committed after its trial, the pid kept (execve);
  - each attack refused with the binary untouched: unsigned, wrong key,
    tampered binary, tampered SHA256SUMS, downgrade, replay of an older
    signed release, mix-and-match, expired, endless body, slow body;
  - each bad version rolled back by itself: one that exits at once, one
    that hangs, one whose health check fails;
  - kill -9 at each apply step: the states it can leave, and a real kill
    during a download; each node then starts a working version;
  - `nodelua update rollback`.

Usage: update.py NODELUA NODELUA_NEXT"""
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, finish, free_port, wait_for  # noqa: E402
from fake_github import FakeGitHub  # noqa: E402

NODELUA, NEXT = sys.argv[1], sys.argv[2]
MINISIGN = os.environ.get("MINISIGN", "minisign")
SOURCE = os.environ.get("NODELUA_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
RELEASE_SH = os.path.join(SOURCE, "scripts", "release.sh")
WORK = tempfile.mkdtemp(prefix="nodelua-update-")
os.chmod(WORK, 0o700)
ASSET = "nodelua-linux-x86_64" if os.uname().machine in ("x86_64", "amd64") else "nodelua-linux-aarch64"
TOKEN = "test-github-token-0123456789"


def keypair(name):
    pub, sec = os.path.join(WORK, name + ".pub"), os.path.join(WORK, name + ".key")
    subprocess.run([MINISIGN, "-G", "-W", "-p", pub, "-s", sec], check=True, capture_output=True)
    return open(pub).read().splitlines()[1], sec


KEY, SECRET = keypair("release")
_, OTHER_SECRET = keypair("other")


def read(path):
    with open(path, "rb") as f:
        return f.read()


def release(tag, binary, secret=SECRET, days=90):
    """A release folder from scripts/release.sh, as {name: bytes}."""
    out = tempfile.mkdtemp(dir=WORK)
    subprocess.run(["bash", RELEASE_SH, "--tag", tag, "--key", secret, "--out", out,
                    "--expires-days", str(days), "%s=%s" % (ASSET, binary)], check=True, capture_output=True)
    return {name: read(os.path.join(out, name)) for name in os.listdir(out)}


def signed(tag, binary_bytes, comment, secret=SECRET):
    """A release signed by hand with the given trusted comment."""
    out = tempfile.mkdtemp(dir=WORK)
    with open(os.path.join(out, ASSET), "wb") as f:
        f.write(binary_bytes)
    sums = "%s  %s\n" % (hashlib.sha256(binary_bytes).hexdigest(), ASSET)
    with open(os.path.join(out, "SHA256SUMS"), "w") as f:
        f.write(sums)
    subprocess.run([MINISIGN, "-S", "-s", secret, "-m", os.path.join(out, "SHA256SUMS"), "-t", comment],
                   check=True, capture_output=True)
    return {name: read(os.path.join(out, name)) for name in os.listdir(out)}


def script(text):
    path = tempfile.mktemp(dir=WORK)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)
    return path


class Node:
    """An agent from a stable entry point ($WORK/name/bin/nodelua), under a
    supervisor that restarts it whenever it exits."""

    def __init__(self, name, fake, **extra):
        self.dir = os.path.join(WORK, name)
        os.makedirs(os.path.join(self.dir, "bin"), mode=0o700)
        self.entry = os.path.join(self.dir, "bin", "nodelua")
        shutil.copy(NODELUA, self.entry)
        self.entry_digest = hashlib.sha256(read(self.entry)).hexdigest()
        self.updates = os.path.join(self.dir, "state", "updates")
        self.port = free_port()
        self.log = os.path.join(self.dir, "agent.log")
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.dir,
            "NODELUA_STATE_DIR": os.path.join(self.dir, "state"),
            "NODELUA_SERVICE_ENV_FILE": "",
            "MONITORING_API_URL": "http://127.0.0.1:%d" % free_port(),  # nobody: unreachable
            "METRICS_LISTEN": "127.0.0.1:%d" % self.port,
            "TRANSFER_PORT": "0",
            "NODELUA_MDNS": "false",
            "REPORT_INTERVAL": "1",
            "UPDATE_API_URL": fake.api_url,
            "UPDATE_REPOSITORY": fake.repository,
            "UPDATE_PUBLIC_KEY": KEY,
            "UPDATE_GITHUB_TOKEN": TOKEN,
            "UPDATE_HEALTH_TIMEOUT": "10",
            "UPDATE_CHECK_INTERVAL": "1",
            "AUTO_UPDATE": "false",
        }
        self.env.update(extra)
        self.stopping = False
        self.pids = []
        self.exits = []
        self.thread = None
        self.proc = None

    def start(self):
        self.stopping = False
        self.thread = threading.Thread(target=self._supervise, daemon=True)
        self.thread.start()
        return wait_for(lambda: self.version() is not None, 30)

    def _supervise(self):
        with open(self.log, "ab") as log:
            while not self.stopping:
                self.proc = subprocess.Popen([self.entry, "agent"], env=self.env, stdout=log, stderr=log,
                                             cwd=self.dir)
                self.pids.append(self.proc.pid)
                code = self.proc.wait()
                if self.stopping:
                    break
                self.exits.append(code)
                time.sleep(0.3)

    def stop(self):
        self.stopping = True
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.thread:
            self.thread.join(20)

    def metrics(self):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.port, timeout=2) as r:
                return r.read().decode()
        except OSError:
            return ""

    def version(self):
        for line in self.metrics().splitlines():
            if line.startswith("nodelua_build_info{"):
                return line.split('version="')[1].split('"')[0]
        return None

    def run(self, *args, timeout=120):
        return subprocess.run([self.entry, *args], env=self.env, capture_output=True, text=True, timeout=timeout,
                              cwd=self.dir)

    def log_text(self):
        return read(self.log).decode(errors="replace") if os.path.exists(self.log) else ""

    def untouched(self):
        return hashlib.sha256(read(self.entry)).hexdigest() == self.entry_digest

    def current(self):
        link = os.path.join(self.updates, "current")
        return os.readlink(link) if os.path.islink(link) else None


fake = FakeGitHub()
nodes = []
try:
    good = release("stable-99.0.0", NEXT)

    # ---- 1. the healthy update, by the periodic check, from page 2 ----
    for i in range(35):
        fake.add("nightly-100.0.%d" % i, {"SHA256SUMS": b"x"})
    fake.add("stable-101.0.0", good, draft=True)  # drafts are skipped
    fake.releases.append({"tag": "stable-99.0.0", "draft": False, "assets": good})  # oldest: page 2
    a = Node("a", fake, AUTO_UPDATE="true")
    nodes.append(a)
    check("the agent starts at 0.1.0", a.start() and a.version() == "0.1.0", a.version())
    first_pid = a.pids[0]
    check("it finds stable-99.0.0 on page 2, installs it, passes its trial: build_info says 99.0.0",
          wait_for(lambda: a.version() == "99.0.0", 120), a.log_text()[-3000:])
    check("page 2 was asked", any("page=2" in r[1] for r in fake.seen("api", "/repos/")))
    check("committed after its trial",
          wait_for(lambda: "committed  99.0.0" in a.run("update", "status").stdout, 60), a.log_text()[-2000:])
    check("the pid stayed (execve, no restart by the supervisor)",
          a.proc.pid == first_pid and a.exits == [], "%s %s" % (a.pids, a.exits))
    check("the entry point's binary is untouched", a.untouched())
    api_auth = [r for r in fake.seen("api", "/repos/") if r[2].get("Authorization") == "Bearer " + TOKEN]
    check("the token goes to the API", len(api_auth) > 0)
    check("the token never goes to the asset host",
          all("Authorization" not in r[2] for r in fake.seen("assets")), str(fake.seen("assets")[:1]))
    status = a.run("update", "status", "--json")
    check("update status --json through the agent", status.returncode == 0 and '"committed":"99.0.0"' in
          status.stdout, status.stdout + status.stderr)
    gauges = [line for line in a.metrics().splitlines() if line.startswith("nodelua_update_")]
    check("/metrics has the update gauges", "nodelua_update_on_trial 0" in gauges and
          "nodelua_update_last_check_success 1" in gauges, str(gauges))

    # The periodic check goes on after the commit (UPDATE_CHECK_INTERVAL=1:
    # every 60 to 66 s).
    asked = len(fake.seen("api", "/repos/"))
    check("the periodic check goes on after the commit",
          wait_for(lambda: len(fake.seen("api", "/repos/")) > asked, 90), a.log_text()[-1500:])

    # ---- 5. update rollback, by hand, through the agent ----
    rb = a.run("update", "rollback")
    check("update rollback answers", rb.returncode == 0 and "rolled back 99.0.0" in rb.stdout,
          rb.stdout + rb.stderr)
    check("the agent is back at 0.1.0", wait_for(lambda: a.version() == "0.1.0", 30), a.log_text()[-2000:])
    st = a.run("update", "status").stdout
    check("99.0.0 is skipped, rolled back by hand", "skipped    99.0.0: rolled back by hand" in st, st)
    # Not again: the periodic check refuses it from now on.
    chk = a.run("update", "check")
    a.stop()

    # ---- 2. attacks: refused, the binary untouched ----
    b = Node("b", fake)
    nodes.append(b)

    def attack(what, assets, tag, expect, **env):
        fake.clear()
        fake.add(tag, assets)
        saved = dict(b.env)
        b.env.update(env)
        r = b.run("update", "apply", tag.split("-", 1)[1], timeout=200)
        b.env = saved
        check("%s: refused" % what, r.returncode == 1 and expect in r.stderr, r.stdout + r.stderr)
        check("%s: nothing installed" % what, b.current() is None and b.untouched())

    no_sig = dict(good)
    del no_sig["SHA256SUMS.minisig"]
    attack("unsigned", no_sig, "stable-99.0.0", "no SHA256SUMS and SHA256SUMS.minisig")
    attack("wrong key", release("stable-99.0.0", NEXT, secret=OTHER_SECRET), "stable-99.0.0",
           "signature: signed with another key")
    tampered = dict(good)
    tampered[ASSET] = good[ASSET][:-1] + bytes([good[ASSET][-1] ^ 1])
    attack("tampered binary", tampered, "stable-99.0.0", "SHA-256")
    tampered_sums = dict(good)
    tampered_sums["SHA256SUMS"] = good["SHA256SUMS"].replace(b"  ", b" *", 1)
    attack("tampered SHA256SUMS", tampered_sums, "stable-99.0.0", "the signature does not verify")
    attack("downgrade", signed("stable-0.0.9", read(NEXT), "tag=stable-0.0.9 expires=%d" % (time.time() + 9999)),
           "stable-0.0.9", "not newer than the running 0.1.0")
    mixed = signed("stable-99.0.1", read(NEXT), "tag=stable-99.0.1 expires=%d" % (time.time() + 9999))
    mixed["SHA256SUMS"], mixed["SHA256SUMS.minisig"] = good["SHA256SUMS"], good["SHA256SUMS.minisig"]
    attack("mix-and-match (another release's signature)", mixed, "stable-99.0.1",
           "tag: the signature is for stable-99.0.0, not stable-99.0.1")
    attack("expired", signed("stable-99.0.0", read(NEXT), "tag=stable-99.0.0 expires=%d" % (time.time() - 60)),
           "stable-99.0.0", "expiry: the signature expired")
    endless = dict(good)
    endless[ASSET] = ("endless",)
    attack("endless body", endless, "stable-99.0.0", "larger than 1048576 bytes", UPDATE_MAX_BYTES="1048576")
    slow = dict(good)
    slow[ASSET] = ("slow", good[ASSET][:200])
    attack("slow body", slow, "stable-99.0.0", "download of " + ASSET)
    # Replay: an older release, properly signed, on a node that committed a
    # newer one.
    os.makedirs(b.updates, mode=0o700, exist_ok=True)
    with open(os.path.join(b.updates, "committed"), "w") as f:
        f.write("0.5.0\n")
    attack("replay of an older signed release", signed("stable-0.0.5", read(NEXT),
           "tag=stable-0.0.5 expires=%d" % (time.time() + 9999)), "stable-0.0.5",
           "not newer than the running 0.1.0")
    attack("replay below the committed version", signed("stable-0.4.0", read(NEXT),
           "tag=stable-0.4.0 expires=%d" % (time.time() + 9999)), "stable-0.4.0",
           "older than 0.5.0, committed on this node")
    chk = b.run("update", "check")
    check("update check says why each is refused", chk.returncode == 0 and
          "stable-0.4.0" in chk.stdout and "refused: older than 0.5.0" in chk.stdout, chk.stdout + chk.stderr)
    os.remove(os.path.join(b.updates, "committed"))

    # ---- 3. bad versions roll back by themselves ----
    c = Node("c", fake)
    nodes.append(c)
    check("node c starts", c.start())

    def bad_version(what, tag, binary, reason, seconds):
        fake.clear()
        fake.add(tag, release(tag, binary))
        r = c.run("update", "apply")
        check("%s: apply starts" % what, r.returncode == 0 and "applying" in r.stdout, r.stdout + r.stderr)
        back = wait_for(lambda: tag.split("-", 1)[1] in c.run("update", "status").stdout and
                        "skipped    %s" % tag.split("-", 1)[1] in c.run("update", "status").stdout, seconds)
        check("%s: rolled back and skipped" % what, back, c.log_text()[-2500:])
        st = c.run("update", "status").stdout
        check("%s: the reason is recorded" % what, reason in st, st)
        check("%s: the agent runs 0.1.0 again" % what, wait_for(lambda: c.version() == "0.1.0", 30))

    bad_version("a version that exits at once", "stable-99.0.1", script("#!/bin/sh\nexit 3\n"),
                "did not start: no trial passed in 3 starts", 60)
    bad_version("a version that hangs", "stable-99.0.2", script("#!/bin/sh\nexec sleep 1000\n"),
                "did not start: no trial passed in 3 starts", 120)
    c.stop()
    policy_dir = os.path.join(WORK, "failing-health")
    os.makedirs(policy_dir, mode=0o755)
    with open(os.path.join(policy_dir, "health.lua"), "w") as f:
        f.write('local base = require("nodelua.policy.health")\n'
                'local runtime = require("nodelua.runtime")\n'
                'local checks = {}\nfor i, c in ipairs(base.checks) do checks[i] = c end\n'
                'checks[#checks + 1] = { name = "the test says no", check = function()\n'
                '  if runtime.version() == "99.0.0" then return "fail", "by design" end\n'
                '  return "pass"\nend }\nreturn { checks = checks }\n')
    c.env["NODELUA_POLICY_DIR"] = policy_dir
    check("node c starts with a health policy that fails 99.0.0", c.start())
    bad_version("a failing health check", "stable-99.0.0", NEXT,
                "health check 'the test says no' failed: by design", 60)
    c.stop()

    # ---- 4. kill -9 at each step of an apply ----
    def from_state(what, prepare, expect_version, then=None):
        d = Node("kill-" + what.replace(" ", "-"), fake)
        nodes.append(d)
        os.makedirs(os.path.join(d.updates, "versions", "99.0.0"), mode=0o700)
        os.chmod(d.updates, 0o700)
        for p in (os.path.join(d.dir, "state"),):
            os.chmod(p, 0o700)
        shutil.copy(NEXT, os.path.join(d.updates, "versions", "99.0.0", "nodelua"))
        prepare(d)
        ok = d.start() and wait_for(lambda: d.version() == expect_version, 60)
        check("killed %s: it starts %s" % (what, expect_version), ok, "%s\n%s" % (d.version(), d.log_text()[-2000:]))
        if then:
            then(d)
        d.stop()
        return d

    def trial(d, starts):
        with open(os.path.join(d.updates, "trial"), "w") as f:
            f.write("version=99.0.0\nprevious=\nstarts=%d\nsince=%d\n" % (starts, time.time()))

    def switched(d):
        os.symlink("versions/99.0.0", os.path.join(d.updates, "current"))

    def partial_download(d):
        with open(os.path.join(d.updates, "staging.part"), "wb") as f:
            f.write(b"\x7fELF half a binary")
        shutil.rmtree(os.path.join(d.updates, "versions"))

    from_state("during the download", partial_download, "0.1.0")
    from_state("after staging", lambda d: None, "0.1.0")
    d = from_state("between the trial and the switch", lambda d: trial(d, 0), "0.1.0")
    check("a trial never switched to is dropped", not os.path.exists(os.path.join(d.updates, "trial")))
    from_state("after the switch, before the exec", lambda d: (trial(d, 0), switched(d)), "99.0.0",
               then=lambda d: check("...and then its trial passes", wait_for(
                   lambda: "committed  99.0.0" in d.run("update", "status").stdout, 30), d.log_text()[-1500:]))
    from_state("during the trial", lambda d: (trial(d, 2), switched(d)), "99.0.0")

    # A real kill -9 of `nodelua update apply` in the middle of a download.
    fake.clear()
    slow = dict(good)
    slow[ASSET] = ("slow", good[ASSET][:100])
    fake.add("stable-99.0.0", slow)
    e = Node("kill-real", fake)
    nodes.append(e)
    p = subprocess.Popen([e.entry, "update", "apply"], env=e.env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, cwd=e.dir)
    wait_for(lambda: os.path.exists(os.path.join(e.updates, "staging.part")), 30)
    time.sleep(1)
    p.kill()
    p.wait()
    check("a real kill -9 mid-download leaves nothing installed", e.current() is None and e.untouched())
    check("...and the node starts 0.1.0", e.start() and e.version() == "0.1.0", e.log_text()[-1500:])
    e.stop()
finally:
    for n in nodes:
        n.stop()
    fake.close()
    shutil.rmtree(WORK, ignore_errors=True)
finish("update.py")
