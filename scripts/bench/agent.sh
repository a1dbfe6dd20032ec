#!/usr/bin/env bash
# Footprint of the agent beside node_exporter, in one run on this machine:
#   - nodelua agent at its default schedule, reporting to a local receiver
#     (tests/receiver) and scraped every 5 s;
#   - prometheus-node-exporter, scraped every 5 s.
# Prints each one's RSS, private dirty memory (Private_Dirty of
# /proc/PID/smaps_rollup) and CPU time per minute (/proc/PID/schedstat),
# and the ratios.
# Usage: scripts/bench/agent.sh [SECONDS]   (default 120)
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-120}
nodelua=${NODELUA:-build/normal/nodelua}
nodelua=$(cd "$(dirname "$nodelua")" && pwd)/$(basename "$nodelua")
exporter=$(command -v prometheus-node-exporter || command -v node_exporter ||
  echo "$PWD/.deps/usr/bin/prometheus-node-exporter")
[ -x "$nodelua" ] || { echo "build first: cmake -S . -B build/normal && cmake --build build/normal" >&2; exit 1; }
[ -x "$exporter" ] || { echo "node_exporter not found: run scripts/install-deps.sh" >&2; exit 1; }

work=$(mktemp -d /tmp/nodelua-bench.XXXXXX)
pids=()
finish() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap finish EXIT
port() { echo $((20000 + RANDOM % 20000)); }
receiver_port=$(port) agent_port=$(port) exporter_port=$(port)

/usr/bin/python3 tests/receiver/receiver.py --port "$receiver_port" --key bench-key >/dev/null 2>&1 &
pids+=($!)
(cd "$work" && exec env -i PATH="$PATH" HOME="$work" NODELUA_SERVICE_ENV_FILE= NODELUA_STATE_DIR="$work/state" \
  MONITORING_API_URL="http://127.0.0.1:$receiver_port" MONITORING_API_KEY=bench-key \
  METRICS_LISTEN="127.0.0.1:$agent_port" NODELUA_MDNS=false TRANSFER_PORT=0 "$nodelua" agent 2>"$work/agent.log") &
agent=$!
pids+=($agent)
"$exporter" --web.listen-address="127.0.0.1:$exporter_port" >/dev/null 2>&1 &
exporter_pid=$!
pids+=($exporter_pid)
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$agent_port/healthz" >/dev/null &&
    curl -sf "http://127.0.0.1:$exporter_port/metrics" >/dev/null && break
  sleep 0.2
done

# Nanoseconds on CPU, over every thread of the process (Go works on many).
cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{ s += $1 } END { print s }'; }
kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/${3:-smaps_rollup}"; }

# Warm up one scrape cycle, then measure.
sleep 5
a0=$(cpu_ns "$agent") e0=$(cpu_ns "$exporter_pid")
scrapes=0
end=$((SECONDS + seconds))
while [ $SECONDS -lt $end ]; do
  curl -sf "http://127.0.0.1:$agent_port/metrics" >/dev/null
  curl -sf "http://127.0.0.1:$exporter_port/metrics" >/dev/null
  scrapes=$((scrapes + 1))
  sleep 5
done
a1=$(cpu_ns "$agent") e1=$(cpu_ns "$exporter_pid")
delivered=$(curl -sf "http://127.0.0.1:$agent_port/healthz" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["delivery"]["delivered"])')

a_rss=$(kib "$agent" VmRSS status) e_rss=$(kib "$exporter_pid" VmRSS status)
a_pd=$(kib "$agent" Private_Dirty) e_pd=$(kib "$exporter_pid" Private_Dirty)
a_cpu=$(awk -v a="$a0" -v b="$a1" -v s="$seconds" 'BEGIN { printf "%.1f", (b - a) / 1e6 * 60 / s }')
e_cpu=$(awk -v a="$e0" -v b="$e1" -v s="$seconds" 'BEGIN { printf "%.1f", (b - a) / 1e6 * 60 / s }')

printf '%s s, %d scrapes of each; the agent delivered %s reports\n' "$seconds" "$scrapes" "$delivered"
printf '%-16s %10s %16s %16s\n' "" "RSS" "private dirty" "CPU per minute"
printf '%-16s %7.1f MiB %12.2f MiB %13s ms\n' "nodelua agent" "$(echo "$a_rss / 1024" | bc -l)" \
  "$(echo "$a_pd / 1024" | bc -l)" "$a_cpu"
printf '%-16s %7.1f MiB %12.2f MiB %13s ms\n' "node_exporter" "$(echo "$e_rss / 1024" | bc -l)" \
  "$(echo "$e_pd / 1024" | bc -l)" "$e_cpu"
awk -v ar="$a_rss" -v er="$e_rss" -v ap="$a_pd" -v ep="$e_pd" -v ac="$a_cpu" -v ec="$e_cpu" 'BEGIN {
  printf "%-16s %9.0f%% %15.0f%% %14s\n", "ratio", 100 * ar / er, 100 * ap / ep, (ac > 0 ? sprintf("1/%.0f", ec / ac) : "-")
}'
