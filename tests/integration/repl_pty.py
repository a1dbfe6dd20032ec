#!/usr/bin/env python3
"""`nodelua repl` driven through a pseudo-terminal, as a person would:
tab completion of a command, `list`, then `send` to a peer completed by its
name, with the progress bar, the last line's SHA-256 matching the file that
arrived, `metrics`, the history (up arrow), and `quit`. Two agents on
loopback, mDNS off, each other's static peer."""
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

import pexpect

sys.path.insert(0, os.path.dirname(__file__))
from checks import check, finish, free_port, wait_for  # noqa: E402
import treehash  # noqa: E402

NODELUA = os.path.abspath(sys.argv[1])
work = tempfile.mkdtemp(prefix="nodelua-repl-")


def env_file(name, port, peer_port):
    path = os.path.join(work, f"{name}.env")
    with open(path, "w") as f:
        f.write(f"NODE_NAME={name}\nTRANSFER_PORT={port}\nNODELUA_PEERS=127.0.0.1:{peer_port}\n"
                f"NODELUA_STATE_DIR={work}/{name}-state\nTRANSFER_DIR={work}/{name}-files\n"
                "NODELUA_MDNS=false\nMETRICS_LISTEN=\nMONITORING_API_URL=http://127.0.0.1:9\n"
                "NODELUA_CLUSTER_KEY=key-of-the-repl-test-cluster\n")
    os.chmod(path, 0o600)  # it holds a secret: refused if others can read it
    return path


def main():
    pa, pb = free_port(), free_port()
    ea, eb = env_file("alpha", pa, pb), env_file("bravo", pb, pa)
    base_env = {"PATH": os.environ["PATH"], "HOME": work, "NODELUA_SERVICE_ENV_FILE": "", "TERM": "xterm"}
    agents = []
    try:
        for e in (ea, eb):
            log = open(os.path.join(work, os.path.basename(e) + ".log"), "w")
            agents.append(subprocess.Popen([NODELUA, "--env-file", e, "agent"], stdout=log, stderr=log, env=base_env,
                                           cwd=work))
        check("the agents see each other", wait_for(lambda: "peer up: bravo" in open(ea + ".log").read(), 10))
        data = os.path.join(work, "payload.bin")
        with open(data, "wb") as f:
            f.write(os.urandom(24 * 1024 * 1024 + 123))
        digest = hashlib.sha256(open(data, "rb").read()).hexdigest()

        c = pexpect.spawn(NODELUA, ["--env-file", ea, "repl"], encoding="utf-8", timeout=30, env=base_env, cwd=work,
                          dimensions=(40, 160))
        c.expect("nodelua> ")
        c.send("li\t")  # completes to "list "
        c.expect("st ")
        c.send("\r")
        c.expect(r"ID\s+NAME\s+ADDRESS\s+LINK\s+VERSION")
        c.expect("bravo")
        c.expect("nodelua> ")
        check("tab completed list, and list shows the peer", True)
        c.send("send bra\t")  # completes the peer's name
        c.expect("vo ")
        c.send(data + "\r")
        c.expect(r"tree ([0-9a-f]{64})")
        shown = c.match.group(1)
        progress = c.before
        check("send: a progress bar with percent, rate and ETA",
              re.search(r"\[#+ *\] +\d+%\s+[\d.]+ \w+/s\s+ETA \d+s", progress) is not None, repr(progress[-300:]))
        check("send: the last line's tree digest is the file's", shown == treehash.tree_of_file(data), shown)
        arrived = os.path.join(work, "bravo-files", "payload.bin")
        check("send: the file arrived whole",
              os.path.exists(arrived) and hashlib.sha256(open(arrived, "rb").read()).hexdigest() == digest)
        c.expect("nodelua> ")
        c.send("metrics\r")
        c.expect(r"cpu\s+\S+ busy")
        c.expect("nodelua> ")
        c.send("\x1b[A")  # up arrow: the last command again
        c.expect("metrics")
        c.send("\x15")  # clear the line
        c.send("nonsense\r")
        c.expect("unknown command 'nonsense'")
        c.expect("nodelua> ")
        c.send("quit\r")
        c.expect(pexpect.EOF)
        c.close()
        check("quit: exit 0", c.exitstatus == 0, str(c.exitstatus))
        history = os.path.join(work, ".nodelua_history")
        check("the history is kept", os.path.exists(history) and "metrics" in open(history).read())
    finally:
        for a in agents:
            a.send_signal(signal.SIGTERM)
            a.wait(20)
        shutil.rmtree(work, ignore_errors=True)
    finish("repl_pty")


if __name__ == "__main__":
    main()
