#!/usr/bin/env python3
"""File transfer between a receiving agent and `nodelua send`, over loopback.

Round trips of 0 B, 1 B, chunk-1, chunk, chunk+1 and a 1 GiB sparse file;
the hash printed by both sides; a wrong key and a receiver without a key
(refused, nothing written); a name that is not one safe component; a disk
too small (refused up front, nothing published); kill -9 of the sender, and
of the receiver, at random moments, 20 times each, every time followed by
a resume to the right hash; garbage and malformed frames to the port (the
connection is dropped, the agent goes on).
"""
import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from checks import check, finish, free_port, skip, wait_for  # noqa: E402
import treehash  # noqa: E402

NODELUA = os.path.abspath(sys.argv[1])
CHUNK = 4 * 1024 * 1024
KEY = "the-cluster-key-of-this-test"
work = tempfile.mkdtemp(prefix="nodelua-transfer-")
recv_dir = os.path.join(work, "recv")
src_dir = os.path.join(work, "src")
os.makedirs(src_dir)


PORT = free_port()


def env(**extra):
    e = {"PATH": os.environ["PATH"], "HOME": work, "NODELUA_SERVICE_ENV_FILE": "",
         "NODELUA_MDNS": "false", "METRICS_LISTEN": "", "MONITORING_API_URL": "http://127.0.0.1:9",
         "NODELUA_CLUSTER_KEY": KEY}
    e.update(extra)
    return e


class Receiver:
    def __init__(self, **extra):
        self.extra = extra
        self.proc = None
        self.log = os.path.join(work, "agent.log")

    def start(self):
        logf = open(self.log, "a")
        self.proc = subprocess.Popen([NODELUA, "agent"], cwd=work, stdout=logf, stderr=logf, env=env(
            NODELUA_STATE_DIR=os.path.join(work, "agent-state"), TRANSFER_PORT=str(PORT),
            TRANSFER_DIR=self.extra.get("dir", recv_dir), **{k: v for k, v in self.extra.items() if k != "dir"}))
        logf.close()
        import socket
        ok = wait_for(lambda: can_connect(socket), 10, 0.05)
        check("the agent listens", ok)

    def stop(self, sig=signal.SIGTERM):
        if self.proc:
            self.proc.send_signal(sig)
            rc = self.proc.wait(20)
            self.proc = None
            return rc
        return None

    def text(self):
        with open(self.log) as f:
            return f.read()

    def warnings(self):
        """The agent's last warnings, to show beside a failed check."""
        return "\n".join(line for line in self.text().splitlines()[-40:] if " WARN " in line)


def can_connect(socket):
    try:
        socket.create_connection(("127.0.0.1", PORT), timeout=0.2).close()
        return True
    except OSError:
        return False


def send(path, *args, **extra):
    return subprocess.run([NODELUA, "send", *args, f"127.0.0.1:{PORT}", path], capture_output=True, text=True,
                          env=env(NODELUA_STATE_DIR=os.path.join(work, "sender-state"), **extra), timeout=600)


def capture_proxy(target_port):
    """A TCP proxy on loopback that keeps every byte sent towards target_port.
    Returns (list of chunks seen, its port, a function that stops it)."""
    import socket
    import threading
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    seen, threads = [], []

    def pump(src, dst, keep):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if keep:
                    seen.append(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def accept():
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", target_port))
            for args in ((client, upstream, True), (upstream, client, False)):
                t = threading.Thread(target=pump, args=args, daemon=True)
                t.start()
                threads.append(t)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()

    def stop():
        listener.close()
        for t in threads:
            t.join(10)

    return seen, listener.getsockname()[1], stop


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def make(name, size, sparse=False):
    path = os.path.join(src_dir, name)
    with open(path, "wb") as f:
        if sparse:
            f.truncate(size)
            for at in (0, size // 3, size - 4096):  # some data among the holes
                f.seek(at)
                f.write(os.urandom(4096))
        else:
            f.write(os.urandom(size))
    return path


def partial_files():
    d = os.path.join(recv_dir, ".nodelua-partial")
    return os.listdir(d) if os.path.isdir(d) else []


def main():
    # Takes transfers encrypted or in clear, as each sender chooses: the
    # wire capture below needs both.
    agent = Receiver(TRANSFER_ENCRYPT="false")
    agent.start()
    try:
        # ---- round trips ----
        for size in (0, 1, CHUNK - 1, CHUNK, CHUNK + 1):
            path = make(f"f{size}", size)
            r = send(path)
            check(f"{size} B: exit 0", r.returncode == 0, r.stderr)
            got = os.path.join(recv_dir, f"f{size}")
            digest, tree = sha256(path), treehash.tree_of_file(path)
            check(f"{size} B: arrived whole", os.path.exists(got) and sha256(got) == digest)
            check(f"{size} B: the sender prints the tree digest", f"tree {tree}" in r.stdout, r.stdout)
            check(f"{size} B: so does the receiver", wait_for(lambda: f"tree {tree}" in agent.text(), 5))
            check(f"{size} B: no plain SHA-256 unless asked", "sha256" not in r.stdout, r.stdout)
        # --streams: auto or a count; anything else is refused before a byte goes.
        path = make("auto-streams", 3 * CHUNK + 1)
        r = send(path, "--streams", "auto")
        check("--streams auto: exit 0", r.returncode == 0, r.stderr)
        check("--streams auto: arrived whole", sha256(os.path.join(recv_dir, "auto-streams")) == sha256(path))
        r = send(path, "--streams", "lots")
        check("--streams lots: refused, exit 2 or 1", r.returncode != 0 and "streams" in r.stderr, r.stderr)
        # --sha256: both sides hash the whole file too, and print it.
        path = make("with-sha256", CHUNK + 5)
        r = send(path, "--sha256")
        digest, tree = sha256(path), treehash.tree_of_file(path)
        check("--sha256: exit 0", r.returncode == 0, r.stderr)
        check("--sha256: the sender prints both digests", f"tree {tree}, sha256 {digest}" in r.stdout, r.stdout)
        check("--sha256: so does the receiver", wait_for(lambda: f"tree {tree}, sha256 {digest}" in agent.text(), 5))
        big = make("sparse-1GiB", 1 << 30, sparse=True)
        started = time.time()
        r = send(big)
        check("1 GiB sparse: exit 0", r.returncode == 0, r.stderr)
        check("1 GiB sparse: arrived whole", sha256(os.path.join(recv_dir, "sparse-1GiB")) == sha256(big))
        print(f"  1 GiB sparse over loopback: {time.time() - started:.2f} s in all")
        last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
        check("the last line gives size, time, throughput and the tree digest",
              re.match(r"^sent .* 1\.0 GiB in [\d.]+ s \([\d.]+ \w+/s\), tree [0-9a-f]{64}$", last) is not None, last)
        check("received files are 0600 in a 0700 directory",
              os.stat(recv_dir).st_mode & 0o777 == 0o700 and
              os.stat(os.path.join(recv_dir, "f1")).st_mode & 0o777 == 0o600)

        # ---- a default send is encrypted: a capture of the wire ----
        wire = make("wire-file", 2 * CHUNK)
        with open(wire, "rb") as f:
            f.seek(CHUNK + 4096)
            sample = f.read(256)
        for setting, readable in (("true", False), ("false", True)):
            seen, proxy_port, stop = capture_proxy(PORT)
            extra = {} if setting == "true" else {"TRANSFER_ENCRYPT": "false"}
            r = subprocess.run([NODELUA, "send", "--force", f"127.0.0.1:{proxy_port}", wire], capture_output=True,
                               text=True, env=env(NODELUA_STATE_DIR=os.path.join(work, "sender-state"), **extra),
                               timeout=120)
            stop()
            what = "default (encrypted)" if setting == "true" else "TRANSFER_ENCRYPT=false"
            check(f"wire capture, {what}: the send worked", r.returncode == 0, r.stderr)
            check(f"wire capture, {what}: the file's bytes {'are' if readable else 'are not'} on the wire",
                  (sample in b"".join(seen)) == readable and sum(map(len, seen)) > 2 * CHUNK)

        # ---- a file of the same name: kept unless --force ----
        kept = make("kept-file", 1000)
        with open(os.path.join(recv_dir, "kept-file"), "wb") as f:
            f.write(b"already here")
        r = send(kept)
        check("an existing file: exit 1, 'exists', and how to replace it",
              r.returncode == 1 and "exists" in r.stderr and "--force" in r.stderr, r.stderr)
        with open(os.path.join(recv_dir, "kept-file"), "rb") as f:
            check("an existing file: left as it was", f.read() == b"already here")
        r = send(kept, "--force")
        check("--force replaces it", r.returncode == 0 and
              sha256(os.path.join(recv_dir, "kept-file")) == sha256(kept), r.stderr)

        # ---- the encrypted mode, through the agent's port ----
        secret_data = make("tls-file", 3 * CHUNK + 11)
        r = send(secret_data, "--encrypt")
        check("--encrypt: exit 0 and the right file", r.returncode == 0 and
              sha256(os.path.join(recv_dir, "tls-file")) == sha256(secret_data), r.stderr)
        r = send(secret_data, NODELUA_CLUSTER_KEY="another-key-altogether", TRANSFER_ENCRYPT="true")
        check("TRANSFER_ENCRYPT=true with another key: exit 1, one line naming the key",
              r.returncode == 1 and "cluster's key" in r.stderr and len(r.stderr.strip().splitlines()) == 1,
              r.stderr)
        check("the agent says why it refused", wait_for(lambda: "refused an encrypted connection" in agent.text(), 5))
        agent.stop()
        strict = Receiver(TRANSFER_ENCRYPT="true")
        strict.start()
        clear = make("clear-file", CHUNK)
        r = send(clear, TRANSFER_ENCRYPT="false")
        check("an encrypted-only agent refuses a send in clear, saying how to fix it",
              r.returncode == 1 and "TRANSFER_ENCRYPT=true" in r.stderr, r.stderr)
        check("...and nothing of it lands", not os.path.exists(os.path.join(recv_dir, "clear-file")))
        r = send(clear)
        check("...but takes it encrypted (the default)", r.returncode == 0 and
              sha256(os.path.join(recv_dir, "clear-file")) == sha256(clear), r.stderr)
        strict.stop()
        agent.start()

        # ---- valgrind over a send: threads, OpenSSL, the frames (normal build) ----
        valgrind = os.environ.get("VALGRIND")
        if valgrind:
            small = make("under-valgrind", 3 * CHUNK + 5)
            r = subprocess.run([valgrind, "--quiet", "--leak-check=full", "--show-leak-kinds=definite,indirect",
                                "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99", NODELUA, "send",
                                f"127.0.0.1:{PORT}", small], capture_output=True, text=True, timeout=300,
                               env=env(NODELUA_STATE_DIR=os.path.join(work, "sender-state")))
            check("valgrind send: no error, no leak, exit 0", r.returncode == 0, r.stderr[-3000:])
            check("valgrind send: the file arrived",
                  sha256(os.path.join(recv_dir, "under-valgrind")) == sha256(small))

        # ---- refusals ----
        before = sorted(os.listdir(recv_dir))
        secret = make("secret", 3 * CHUNK)
        r = send(secret, NODELUA_CLUSTER_KEY="another-key-altogether")
        check("wrong key: exit 1", r.returncode == 1, r.stderr)
        said = [line for line in r.stderr.splitlines() if line.startswith("nodelua send:")]
        check("wrong key: one clear line", len(said) == 1 and "key" in said[0], r.stderr)
        check("wrong key: nothing written", sorted(os.listdir(recv_dir)) == before)
        r = send(secret, NODELUA_CLUSTER_KEY="")
        check("no key at the sender: exit 1 and why", r.returncode == 1 and "no cluster key" in r.stderr, r.stderr)
        bad = os.path.join(src_dir, "bad\x07name")
        with open(bad, "wb") as f:
            f.write(b"x")
        r = send(bad)
        check("a name with a control character: refused", r.returncode == 1 and "control character" in r.stderr,
              r.stderr)

        # ---- kill -9 of the sender, 20 times, then a resume ----
        victim = make("victim", 160 * 1024 * 1024)
        digest = sha256(victim)

        def send_again(what):
            """Sends the victim again: it must arrive right. Whether it resumed.
            --force: the killed send may have been published after all."""
            r = send(victim, "--force")
            ok = r.returncode == 0 and sha256(os.path.join(recv_dir, "victim")) == digest
            check(f"{what}: the next send gives the right file", ok, r.stderr + agent.warnings())
            os.remove(os.path.join(recv_dir, "victim"))
            return "resumed" in r.stdout

        resumed_any = False
        for i in range(20):
            p = subprocess.Popen([NODELUA, "send", "--streams", "2", f"127.0.0.1:{PORT}", victim],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=env(NODELUA_STATE_DIR=os.path.join(work, "sender-state")))
            time.sleep(random.uniform(0.02, 0.3))  # the send takes about 0.3 s here
            p.kill()
            p.wait()
            resumed_any = send_again(f"sender killed ({i + 1})") or resumed_any
        check("sender killed: some sends resumed rather than started over", resumed_any)

        # ---- kill -9 of the receiver, 20 times ----
        resumed_any = False
        for i in range(20):
            p = subprocess.Popen([NODELUA, "send", f"127.0.0.1:{PORT}", victim], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True,
                                 env=env(NODELUA_STATE_DIR=os.path.join(work, "sender-state")))
            time.sleep(random.uniform(0.02, 0.3))
            agent.stop(signal.SIGKILL)
            out, err = p.communicate(timeout=120)
            if p.returncode == 0:
                os.remove(os.path.join(recv_dir, "victim"))  # it won the race: try again
            else:
                said = [line for line in err.splitlines() if line.startswith("nodelua send:")]
                check(f"receiver killed ({i + 1}): the sender says so in one line",
                      p.returncode == 1 and len(said) == 1, err)
            # A kill just after the publishing rename, before DONE reached the
            # sender, leaves the whole file there and the sender failed: that
            # is right. What must never be there is a file that is not whole.
            got = os.path.join(recv_dir, "victim")
            check(f"receiver killed ({i + 1}): nothing half-written is published",
                  not os.path.exists(got) or sha256(got) == digest)
            if os.path.exists(got):
                os.remove(got)
            agent.start()
            resumed_any = send_again(f"receiver killed ({i + 1})") or resumed_any
        check("receiver killed: some sends resumed", resumed_any)
        check("no partial file is left once all are done", partial_files() == [], str(partial_files()))

        # ---- garbage to the port ----
        import socket
        for payload in (os.urandom(5000), b"NL\x01\x10\xff\xff\xff\xff" + os.urandom(100),
                        b"NL\x01\x01\x00\x00\x00\x05hello", b"NL\x02" + b"\x00" * 20):
            try:
                s = socket.create_connection(("127.0.0.1", PORT), timeout=2)
                s.sendall(payload)
                s.settimeout(2)
                try:
                    s.recv(100)
                except OSError:
                    pass
                s.close()
            except OSError:
                pass
        time.sleep(0.3)
        check("garbage: the agent goes on", agent.proc.poll() is None)
        small = make("after-garbage", 12345)
        r = send(small)
        check("garbage: a send still works after it", r.returncode == 0, r.stderr)
        agent.stop()

        # ---- a receiver with no key ----
        nokey = Receiver(NODELUA_CLUSTER_KEY="")
        nokey.start()
        r = send(small)
        check("receiver without a key: refused, saying so", r.returncode == 1 and "file transfer is off" in r.stderr,
              r.stderr)
        check("receiver without a key: it said so once in its log", nokey.text().count("file transfer is off") == 1)
        nokey.stop()

        # ---- a receive folder another user could reach: refused ----
        target = os.path.join(work, "symlink-target")
        os.mkdir(target, 0o700)
        for label, prepare in (("a symlink", lambda d: os.symlink(target, d)),
                               ("world-writable", lambda d: (os.mkdir(d), os.chmod(d, 0o777)))):
            hijacked = os.path.join(work, "hijacked-" + label.replace(" ", "-"))
            prepare(hijacked)
            bad = Receiver(dir=hijacked)
            bad.start()
            r = send(small)
            refusal = [line for line in bad.text().splitlines() if "TRANSFER_DIR refused" in line]
            check(f"TRANSFER_DIR {label}: one line in the log naming the folder",
                  len(refusal) == 1 and hijacked in refusal[0], bad.text()[-2000:])
            check(f"TRANSFER_DIR {label}: senders are refused, nothing written",
                  r.returncode == 1 and "file transfer is off" in r.stderr and os.listdir(hijacked) == [], r.stderr)
            bad.stop()
            os.remove(bad.log)

        # ---- a disk too small (a 16 MiB tmpfs) ----
        tiny = os.path.join(work, "tiny")
        os.makedirs(tiny)
        # mode=0700: a tmpfs is made 1777, a folder the agent refuses.
        if os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs",
                                                 tiny]).returncode == 0:
            try:
                full = Receiver(dir=tiny)
                full.start()
                r = send(make("too-big", 32 * 1024 * 1024))
                check("disk too small: exit 1, not enough space", r.returncode == 1 and "not enough space" in r.stderr,
                      r.stderr)
                check("disk too small: nothing published", not os.path.exists(os.path.join(tiny, "too-big")))
                # Two files that each fit, sent at once: the second is refused
                # up front (the first's claim on the space counts), or, if
                # the first is already written, the disk fills; either way
                # the one that fails says so, and nothing half-written is
                # published.
                first, second = make("half-a", 10 * 1024 * 1024), make("half-b", 10 * 1024 * 1024)
                envs = env(NODELUA_STATE_DIR=os.path.join(work, "sender-state"))
                procs = [subprocess.Popen([NODELUA, "send", f"127.0.0.1:{PORT}", p], stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True, env=envs) for p in (first, second)]
                results = [(p.wait(120), p.stdout.read(), p.stderr.read()) for p in procs]
                failed = [r for r in results if r[0] != 0]
                check("disk fills mid-write: a send fails", len(failed) >= 1, str(results))
                check("disk fills mid-write: each failure says why in one line",
                      all(r[2].count("\n") == 1 and ("No space left" in r[2] or "not enough space" in r[2])
                          for r in failed), str(failed))
                for name, src in (("half-a", first), ("half-b", second)):
                    got = os.path.join(tiny, name)
                    check(f"disk fills mid-write: {name} is whole or absent",
                          not os.path.exists(got) or sha256(got) == sha256(src))
                # The receiver gave back the space of what failed: all that
                # is used is the files that were published.
                published = sum(os.path.getsize(os.path.join(tiny, n)) for n in ("half-a", "half-b")
                                if os.path.exists(os.path.join(tiny, n)))
                free = lambda: os.statvfs(tiny).f_bavail * os.statvfs(tiny).f_frsize  # noqa: E731
                check("disk fills mid-write: the failed file's space is given back",
                      wait_for(lambda: free() >= 16 * 1024 * 1024 - published - 1024 * 1024, 5),
                      f"{free()} free, {published} published")
                full.stop()
            finally:
                subprocess.run(["umount", tiny])
        else:
            skip("the full-disk case (needs root, for a tmpfs mount)")
    finally:
        agent.stop(signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)
    finish("transfer")


if __name__ == "__main__":
    main()
