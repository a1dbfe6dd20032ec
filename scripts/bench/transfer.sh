#!/usr/bin/env bash
# One file over loopback, in one run: nodelua (an agent receiving,
# `nodelua send`: authenticated, verified chunk by chunk and whole, fsync'd
# before it is published), in clear (TRANSFER_ENCRYPT=false) and encrypted
# (the default); plain nc (nothing
# checked, nothing synced), and nc followed by a sync of its file; and an
# rsync daemon. Prints each time and the ratios.
#
#   scripts/bench/transfer.sh [MIB]      (default 1024)
#   BENCH_DIR=/dev/shm scripts/bench/transfer.sh   (files in tmpfs: the
#                                                   disk out of the race)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/bench/transfer-common.sh
mib=${1:-1024}
nodelua=${NODELUA:-build/normal/nodelua}
[ -x "$nodelua" ] || { echo "no $nodelua: build first, or set NODELUA" >&2; exit 2; }
command -v nc >/dev/null && command -v rsync >/dev/null ||
  { echo "nc and rsync are needed: scripts/install-deps.sh" >&2; exit 2; }

work=$(mktemp -d "${BENCH_DIR:-/tmp}/nodelua-bench-transfer.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "making a ${mib} MiB file of random bytes..."
head -c "$((mib * 1024 * 1024))" /dev/urandom >"$work/file"
want=$(sha256sum "$work/file" | cut -d' ' -f1)
mkdir -p "$work/nodelua" "$work/nc" "$work/rsync"
sync

# nodelua: an agent receiving, and send.
p=$(port)
(cd "$work" && exec env -i PATH="$PATH" HOME="$work" NODELUA_SERVICE_ENV_FILE= NODELUA_MDNS=false \
  METRICS_LISTEN= MONITORING_API_URL=http://127.0.0.1:9 NODELUA_STATE_DIR="$work/state" \
  NODELUA_CLUSTER_KEY=bench-cluster-key-0123 TRANSFER_PORT="$p" TRANSFER_DIR="$work/nodelua" TRANSFER_ENCRYPT=false \
  "$OLDPWD/$nodelua" agent 2>"$work/agent.log") &
pids+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.05; done
t0=$(now)
env -i PATH="$PATH" HOME="$work" NODELUA_SERVICE_ENV_FILE= NODELUA_MDNS=false \
  NODELUA_STATE_DIR="$work/sender" NODELUA_CLUSTER_KEY=bench-cluster-key-0123 TRANSFER_ENCRYPT=false \
  "$nodelua" send "127.0.0.1:$p" "$work/file" >"$work/send.out" 2>/dev/null
t1=$(now)
nodelua_s=$(elapsed "$t0" "$t1")
[ "$(sha256sum "$work/nodelua/file" | cut -d' ' -f1)" = "$want" ] || { echo "nodelua: wrong file" >&2; exit 1; }
rm -f "$work/nodelua/file"
sync
t0=$(now)
env -i PATH="$PATH" HOME="$work" NODELUA_SERVICE_ENV_FILE= NODELUA_MDNS=false \
  NODELUA_STATE_DIR="$work/sender" NODELUA_CLUSTER_KEY=bench-cluster-key-0123 \
  "$nodelua" send "127.0.0.1:$p" "$work/file" >"$work/send.out" 2>/dev/null
t1=$(now)
encrypted_s=$(elapsed "$t0" "$t1")
[ "$(sha256sum "$work/nodelua/file" | cut -d' ' -f1)" = "$want" ] || { echo "nodelua (encrypted): wrong file" >&2; exit 1; }

# nc: a listener writing the bytes to a file, and a sender.
p=$(port)
nc -l 127.0.0.1 "$p" >"$work/nc/file" &
listener=$!
pids+=($listener)
sleep 0.2
t0=$(now)
nc -N 127.0.0.1 "$p" <"$work/file"
wait "$listener"
t1=$(now)
nc_s=$(elapsed "$t0" "$t1")
sync -f "$work/nc/file" 2>/dev/null || sync
t2=$(now)
nc_sync_s=$(elapsed "$t0" "$t2")
[ "$(sha256sum "$work/nc/file" | cut -d' ' -f1)" = "$want" ] || { echo "nc: wrong file" >&2; exit 1; }

# An rsync daemon and a client.
p=$(port)
write_rsyncd_conf "$work/rsyncd.conf" "$work/rsync"
rsync --daemon --no-detach --address=127.0.0.1 --port="$p" --config="$work/rsyncd.conf" &
pids+=($!)
sleep 0.3
t0=$(now)
rsync "$work/file" "rsync://127.0.0.1:$p/bench/"
t1=$(now)
rsync_s=$(elapsed "$t0" "$t1")
[ "$(sha256sum "$work/rsync/file" | cut -d' ' -f1)" = "$want" ] || { echo "rsync: wrong file" >&2; exit 1; }

python3 - "$mib" "$nodelua_s" "$nc_s" "$rsync_s" "$nc_sync_s" "$encrypted_s" <<'PY'
import sys
mib, n, c, r, cs, e = int(sys.argv[1]), *map(float, sys.argv[2:])
print(f"{mib} MiB over loopback, one run:")
print(f"  nodelua send, in clear (verified)  {n:7.2f} s  {mib / n:8.1f} MiB/s")
print(f"  nodelua send, encrypted (default)  {e:7.2f} s  {mib / e:8.1f} MiB/s")
print(f"  nc (nothing checked or synced)     {c:7.2f} s  {mib / c:8.1f} MiB/s")
print(f"  nc, then sync of the file          {cs:7.2f} s  {mib / cs:8.1f} MiB/s")
print(f"  rsync daemon                       {r:7.2f} s  {mib / r:8.1f} MiB/s")
print(f"  nodelua / nc: {n / c:.2f}x the time   nodelua / (nc, then sync): {n / cs:.2f}x")
print(f"  rsync / nodelua: {r / n:.2f}x the time   encrypted / in clear: {e / n:.2f}x")
PY
