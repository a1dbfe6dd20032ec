#!/usr/bin/env bash
# One file over loopback, in one run: nodelua encrypted (the default) and
# in clear, nc, nc then sync, and an rsync daemon, with the wall time and
# the CPU seconds of sender + receiver of each, and the ratios against the
# goals (scripts/bench/transfer.py says how each is counted). Where a
# usable RDMA device exists, also nodelua over RDMA on it against
# ib_write_bw (perftest) on the same device, the ceiling; elsewhere it
# prints that the RDMA part was skipped, and why.
#
#   scripts/bench/transfer.sh [MIB]      (default 1024)
#   BENCH_DIR=/dev/shm scripts/bench/transfer.sh   (files in tmpfs: the
#                                                   disk out of the race)
set -euo pipefail
cd "$(dirname "$0")/../.."
mib=${1:-1024}
nodelua=${NODELUA:-build/normal/nodelua}
[ -x "$nodelua" ] || { echo "no $nodelua: build first, or set NODELUA" >&2; exit 2; }
command -v nc >/dev/null && command -v rsync >/dev/null ||
  { echo "nc and rsync are needed: scripts/install-deps.sh" >&2; exit 2; }
work=$(mktemp -d "${BENCH_DIR:-/tmp}/nodelua-bench-transfer.XXXXXX")
trap 'rm -rf "$work"' EXIT
python3 scripts/bench/transfer.py "$nodelua" "$mib" "$work"
