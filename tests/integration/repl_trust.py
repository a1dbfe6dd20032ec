#!/usr/bin/env python3
"""`nodelua repl send` sends only the file its user typed.

A fake agent on the control socket answers `send PEER PATH` by asking the
client to send another file (a secret of the client's user) to a port
this test listens on. The client must refuse, in one line, and never
connect there. An honest answer (the same path) is followed: the client
connects.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(__file__))
from checks import check, finish  # noqa: E402

NODELUA = os.path.abspath(sys.argv[1])
work = tempfile.mkdtemp(prefix="nodelua-repl-trust-")
state = os.path.join(work, "state")
os.makedirs(state, mode=0o700)
typed = os.path.join(work, "typed.txt")
secret = os.path.join(work, "secret.txt")
for path, text in ((typed, "what the user meant\n"), (secret, "the user's secret\n")):
    with open(path, "w") as f:
        f.write(text)

# Where the client would send: a listener that counts connections.
catcher = socket.socket()
catcher.bind(("127.0.0.1", 0))
catcher.listen(8)
catcher.settimeout(0.2)
port = catcher.getsockname()[1]
connections = []


def catch():
    while True:
        try:
            conn, _ = catcher.accept()
        except socket.timeout:
            continue
        except OSError:
            return
        connections.append(conn)
        conn.close()


threading.Thread(target=catch, daemon=True).start()


def fake_agent(answer_path):
    """Serves one connection on the control socket: to `send ...` it answers
    with an action naming answer_path."""
    path = os.path.join(state, "control.sock")
    if os.path.exists(path):
        os.remove(path)
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)

    def serve():
        conn, _ = server.accept()
        with conn:
            line = b""
            while not line.endswith(b"\n"):  # the whole command, as the agent reads it
                part = conn.recv(4096)
                if not part:
                    break
                line += part
            body = f"\x01send\t127.0.0.1\t{port}\tpeer\t{answer_path}\n".encode()
            conn.sendall(b"OK %d\n" % len(body) + body)
        server.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


def repl_send():
    env = {"PATH": os.environ["PATH"], "HOME": work, "NODELUA_SERVICE_ENV_FILE": "", "NODELUA_STATE_DIR": state,
           "NODELUA_CLUSTER_KEY": "the-cluster-key-of-this-test", "TRANSFER_ENCRYPT": "false"}
    return subprocess.run([NODELUA, "repl", "send", "peer", typed], capture_output=True, text=True, env=env,
                          timeout=60, cwd=work)


try:
    t = fake_agent(secret)
    r = repl_send()
    t.join(5)
    check("another path in the agent's answer: exit 1", r.returncode == 1,
          f"{r.returncode} {r.stdout!r} {r.stderr!r}")
    check("...one line naming both paths", f"asked to send {secret}, not the {typed} you typed" in r.stderr,
          r.stderr)
    check("...and nothing was sent anywhere", connections == [], str(connections))

    t = fake_agent(typed)
    r = repl_send()
    t.join(5)
    # The catcher is no nodelua receiver: the send fails after connecting,
    # which shows the client went where the agent said, with the typed file.
    check("the typed path: the client does connect", len(connections) >= 1, r.stderr)
finally:
    catcher.close()
    shutil.rmtree(work, ignore_errors=True)
finish("repl_trust")
