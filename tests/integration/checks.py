"""Shared by the Python integration tests: counted checks, waiting, and a
free port."""
import socket
import sys
import time

failures = 0
checks = 0


def check(what, ok, detail=""):
    global failures, checks
    checks += 1
    if not ok:
        failures += 1
        print(f"FAIL: {what} {detail}", file=sys.stderr, flush=True)


def wait_for(predicate, seconds, step=0.1):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


skipped = 0


def skip(what):
    """A case that cannot run here: said, and the test exits 77 (ctest:
    skipped) unless something failed."""
    global skipped
    skipped += 1
    print(f"SKIPPED: {what}", flush=True)


def finish(name):
    print(f"{name}: {checks} checks, {failures} failed, {skipped} cases skipped")
    sys.exit(1 if failures else 77 if skipped else 0)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
