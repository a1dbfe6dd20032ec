#!/usr/bin/python3
"""`nodelua hash` against a reference written here from the definition in
docs/protocol.md (Python's hashlib), and --sha256 against hashlib's plain
SHA-256: files around the chunk boundaries, 1 to 8 workers, and the errors.

Usage: hash.py path/to/nodelua
"""
import hashlib
import os
import subprocess
import sys
import tempfile

import checks
import treehash
from checks import check

NODELUA = sys.argv[1]
CHUNK = 4 * 1024 * 1024


tree = treehash.tree_of_bytes


def run(*args, env=None):
    base = {"PATH": os.environ["PATH"], "HOME": tempfile.gettempdir(), "NODELUA_SERVICE_ENV_FILE": ""}
    base.update(env or {})
    return subprocess.run([NODELUA, "hash", *args], capture_output=True, text=True, env=base, timeout=120)


def main():
    work = tempfile.mkdtemp(prefix="nodelua-hash-")
    sizes = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17]
    paths = []
    for size in sizes:
        path = os.path.join(work, f"f{size}")
        with open(path, "wb") as f:
            f.write(os.urandom(size))
        paths.append(path)
    for threads in ("1", "2", "8"):
        out = run("--threads", threads, *paths)
        check(f"--threads {threads}: exit 0", out.returncode == 0, out.stderr)
        lines = out.stdout.splitlines()
        for path, line in zip(paths, lines):
            data = open(path, "rb").read()
            check(f"--threads {threads}: tree digest of {len(data)} bytes", line == f"{tree(data)}  {path}",
                  f"{line!r} != {tree(data)}")
        check(f"--threads {threads}: one line per file", len(lines) == len(paths))
    out = run("--sha256", *paths)
    expect = [f"{hashlib.sha256(open(p, 'rb').read()).hexdigest()}  {p}" for p in paths]
    check("--sha256 is sha256sum's digest", out.stdout.splitlines() == expect, out.stdout)
    out = run(paths[4], env={"TRANSFER_HASH_THREADS": "3"})
    check("TRANSFER_HASH_THREADS is taken", out.returncode == 0 and out.stdout.startswith(tree(open(paths[4], "rb").read())))

    out = run(os.path.join(work, "missing"), paths[1])
    check("a missing file: exit 1", out.returncode == 1)
    check("the others still hashed", out.stdout.strip().endswith(paths[1]))
    check("saying why", "missing: No such file or directory" in out.stderr, out.stderr)
    out = run(work)
    check("a directory: exit 1, not a regular file", out.returncode == 1 and "not a regular file" in out.stderr,
          out.stderr)
    check("no file: usage error", run().returncode == 2)
    out = run("--threads", "0", paths[0])
    check("--threads 0: usage error", out.returncode == 2 and "--threads takes 1 to 256" in out.stderr)
    out = run("--", "-odd-name")
    check("after --, a name that looks like a flag is a file", out.returncode == 1 and "-odd-name" in out.stderr)
    for p in paths:
        os.unlink(p)
    os.rmdir(work)
    checks.finish("hash")


if __name__ == "__main__":
    main()
