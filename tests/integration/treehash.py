"""The tree digest of docs/protocol.md ("The tree digest"), written here
from its definition with Python's hashlib: the reference that `nodelua
hash` and `nodelua send` are checked against."""
import hashlib
import struct

CHUNK = 4 * 1024 * 1024


def tree_of_bytes(data, chunk=CHUNK):
    digests = b"".join(hashlib.sha256(data[i:i + chunk]).digest() for i in range(0, len(data), chunk))
    return hashlib.sha256(b"nodelua-tree-v1\0" + struct.pack(">QI", len(data), chunk) + digests).hexdigest()


def tree_of_file(path, chunk=CHUNK):
    digests, size = [], 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digests.append(hashlib.sha256(block).digest())
            size += len(block)
    return hashlib.sha256(b"nodelua-tree-v1\0" + struct.pack(">QI", size, chunk) + b"".join(digests)).hexdigest()
