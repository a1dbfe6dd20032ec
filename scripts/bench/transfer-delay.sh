#!/usr/bin/env bash
# What more streams buy on a path with latency: one file from one network
# namespace to another over a veth pair whose receiving end holds every
# packet 10 ms (one way), with nodelua at 1, 2, 4, 8 and 16 streams and
# auto (TRANSFER_STREAMS' default), plain nc and an rsync daemon, in one
# run. Prints each time and the ratios, auto's against the best fixed
# count.
#
#   scripts/bench/transfer-delay.sh [MIB] [DELAY_MS]   (default 512, 10)
#
# The delay is netem's job, but this machine's kernel has no sch_netem, so
# scripts/bench/netdelay.c does it from an iptables NFQUEUE rule inside the
# receiving namespace. Root only; the namespaces, the veth pair and every
# process are the bench's own and are removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/bench/transfer-common.sh
mib=${1:-512}
delay=${2:-10}
nodelua=$(realpath "${NODELUA:-build/normal/nodelua}")
[ -x "$nodelua" ] || { echo "no $nodelua: build first, or set NODELUA" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "root is needed: network namespaces" >&2; exit 2; }
for c in nc rsync iptables-legacy cc pkg-config; do
  command -v "$c" >/dev/null || { echo "$c is needed: scripts/install-deps.sh" >&2; exit 2; }
done
pkg-config --exists libnetfilter_queue || { echo "libnetfilter-queue-dev is needed: scripts/install-deps.sh" >&2; exit 2; }

work=$(mktemp -d "${BENCH_DIR:-/tmp}/nodelua-bench-delay.XXXXXX")
tag=$$
sender=nlds$tag receiver=nldr$tag
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$sender" 2>/dev/null || true
  ip netns del "$receiver" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
in_sender() { ip netns exec "$sender" "$@"; }
in_receiver() { ip netns exec "$receiver" "$@"; }

cc -O2 -o "$work/netdelay" scripts/bench/netdelay.c $(pkg-config --cflags --libs libnetfilter_queue)
ip netns add "$sender"
ip netns add "$receiver"
ip link add "nlds$tag" netns "$sender" type veth peer name "nldr$tag" netns "$receiver"
ip -n "$sender" addr add 10.78.0.1/24 dev "nlds$tag"
ip -n "$receiver" addr add 10.78.0.2/24 dev "nldr$tag"
for ns in "$sender" "$receiver"; do ip -n "$ns" link set lo up; done
ip -n "$sender" link set "nlds$tag" up
ip -n "$receiver" link set "nldr$tag" up
in_receiver iptables-legacy -A INPUT -i "nldr$tag" -j NFQUEUE --queue-num 0
# Background processes start through ip itself, so that $! is theirs
# (ip netns exec execs the command).
ip netns exec "$receiver" "$work/netdelay" "$delay" 2>"$work/netdelay.log" &
pids+=($!)
sleep 0.3
# The round trip as TCP sees it, from a connection across the pair.
ip netns exec "$receiver" python3 -c '
import socket
l = socket.socket(); l.bind(("10.78.0.2", 5999)); l.listen(1)
l.settimeout(10); c, _ = l.accept(); c.recv(1); c.close()' &
probe=$!
pids+=($probe)
sleep 0.3
rtt=$(in_sender python3 -c '
import socket, struct
s = socket.create_connection(("10.78.0.2", 5999), timeout=10); s.send(b"x")
info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
print("%.1f" % (struct.unpack("I", info[68:72])[0] / 1000))')
wait "$probe" || true
echo "round trip over the pair: $rtt ms (TCP_INFO)"

echo "making a ${mib} MiB file of random bytes..."
head -c "$((mib * 1024 * 1024))" /dev/urandom >"$work/file"
want=$(sha256sum "$work/file" | cut -d' ' -f1)
mkdir -p "$work/nodelua" "$work/nc" "$work/rsync"

ip netns exec "$receiver" env -i PATH="$PATH" HOME="$work" NODELUA_SERVICE_ENV_FILE= NODELUA_MDNS=false \
  METRICS_LISTEN= MONITORING_API_URL=http://127.0.0.1:9 NODELUA_STATE_DIR="$work/state" \
  NODELUA_CLUSTER_KEY=bench-cluster-key-0123 TRANSFER_PORT=7879 TRANSFER_DIR="$work/nodelua" TRANSFER_ENCRYPT=false \
  "$nodelua" agent 2>"$work/agent.log" &
pids+=($!)
for _ in $(seq 100); do in_sender bash -c '(exec 3<>/dev/tcp/10.78.0.2/7879)' 2>/dev/null && break; sleep 0.05; done
results=()
for streams in 1 2 4 8 16 auto; do
  rm -f "$work/nodelua/file"
  sync
  t0=$(now)
  in_sender env -i PATH="$PATH" HOME="$work" NODELUA_SERVICE_ENV_FILE= NODELUA_MDNS=false \
    NODELUA_STATE_DIR="$work/sender" NODELUA_CLUSTER_KEY=bench-cluster-key-0123 TRANSFER_ENCRYPT=false \
    "$nodelua" send --streams "$streams" 10.78.0.2:7879 "$work/file" >/dev/null 2>&1
  t1=$(now)
  [ "$(sha256sum "$work/nodelua/file" | cut -d' ' -f1)" = "$want" ] || { echo "nodelua: wrong file" >&2; exit 1; }
  results+=("$(elapsed "$t0" "$t1")")
done

ip netns exec "$receiver" nc -l 10.78.0.2 5001 >"$work/nc/file" &
listener=$!
pids+=($listener)
sleep 0.2
t0=$(now)
in_sender nc -N 10.78.0.2 5001 <"$work/file"
wait "$listener"
t1=$(now)
nc_s=$(elapsed "$t0" "$t1")
[ "$(sha256sum "$work/nc/file" | cut -d' ' -f1)" = "$want" ] || { echo "nc: wrong file" >&2; exit 1; }

write_rsyncd_conf "$work/rsyncd.conf" "$work/rsync"
ip netns exec "$receiver" rsync --daemon --no-detach --address=10.78.0.2 --port=5873 --config="$work/rsyncd.conf" &
pids+=($!)
sleep 0.3
t0=$(now)
in_sender rsync "$work/file" "rsync://10.78.0.2:5873/bench/"
t1=$(now)
rsync_s=$(elapsed "$t0" "$t1")
[ "$(sha256sum "$work/rsync/file" | cut -d' ' -f1)" = "$want" ] || { echo "rsync: wrong file" >&2; exit 1; }
! grep -q dropped "$work/netdelay.log" || echo "note: the delay queue overflowed; packets went through undelayed" >&2

python3 - "$mib" "$delay" "$nc_s" "$rsync_s" "${results[@]}" <<'PY'
import sys
mib, delay = int(sys.argv[1]), int(sys.argv[2])
nc, rsync, *streams = map(float, sys.argv[3:])
print(f"{mib} MiB over a veth pair with {delay} ms one way, one run:")
for n, s in zip((1, 2, 4, 8, 16, "auto"), streams):
    label = f"nodelua send --streams {n}"
    print(f"  {label:34} {s:7.2f} s  {mib / s:8.1f} MiB/s  {streams[0] / s:4.2f}x streams=1's rate")
print(f"  {'nc (nothing checked or synced)':34} {nc:7.2f} s  {mib / nc:8.1f} MiB/s")
print(f"  {'rsync daemon':34} {rsync:7.2f} s  {mib / rsync:8.1f} MiB/s")
fixed, auto = streams[:-1], streams[-1]
best = min(fixed)
print(f"  auto / the best fixed count: {auto / best:.2f}x the time (goal: at most 1.10x)")
print(f"  best nodelua / nc: {best / nc:.2f}x the time   rsync / best nodelua: {rsync / best:.2f}x the time")
PY
