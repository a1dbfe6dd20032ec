#!/usr/bin/env bash
# CPU cost of one full metrics collection: nodelua against node_exporter, in
# the same run, on this machine.
#   nodelua:       metrics.scrape(): what one scrape of /metrics costs (every
#                  group sampled afresh and every default collector),
#                  timed by the process's own CPU clock (getrusage)
#   node_exporter: one scrape of its default collectors over loopback,
#                  timed by its process's CPU ticks in /proc/PID/stat
# Usage: scripts/bench/metrics.sh [ROUNDS]   (default 200)
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-200}
nodelua=${NODELUA:-build/normal/nodelua}
exporter=$(command -v prometheus-node-exporter || command -v node_exporter ||
  echo .deps/usr/bin/prometheus-node-exporter)
[ -x "$nodelua" ] || { echo "build first: cmake -S . -B build/normal && cmake --build build/normal" >&2; exit 1; }
[ -x "$exporter" ] || { echo "node_exporter not found: run scripts/install-deps.sh" >&2; exit 1; }

# nodelua, with a few warm-up rounds so arrays have grown to this machine.
cat >/tmp/nodelua-bench-$$.lua <<'LUA'
local metrics = require("nodelua.metrics")
local rounds = tonumber((...))
for _ = 1, 5 do
  metrics.scrape()
end
local before = metrics.sample("self").self.cpu_seconds
for _ = 1, rounds do
  metrics.scrape()
end
local after = metrics.sample("self").self.cpu_seconds
print(string.format("%.4f", (after - before) * 1000 / rounds))
LUA
nodelua_ms=$(NODELUA_SERVICE_ENV_FILE= "$nodelua" run /tmp/nodelua-bench-$$.lua "$rounds")
rm -f /tmp/nodelua-bench-$$.lua

# node_exporter on a free loopback port; ended by its pid.
port=$((20000 + RANDOM % 20000))
"$exporter" --web.listen-address=127.0.0.1:$port >/tmp/node-exporter-bench-$$.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f /tmp/node-exporter-bench-$$.log' EXIT
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$port/metrics" >/dev/null && break
  sleep 0.1
done
for _ in 1 2 3 4 5; do curl -sf "http://127.0.0.1:$port/metrics" >/dev/null; done
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
before=$(ticks)
for _ in $(seq "$rounds"); do curl -sf "http://127.0.0.1:$port/metrics" >/dev/null; done
after=$(ticks)
exporter_ms=$(awk -v a="$after" -v b="$before" -v hz="$hz" -v n="$rounds" \
  'BEGIN { printf "%.4f", (a - b) * 1000 / hz / n }')

printf 'CPU per full collection, %d rounds:\n' "$rounds"
printf '  nodelua        %8.3f ms\n' "$nodelua_ms"
printf '  node_exporter  %8.3f ms  (%s)\n' "$exporter_ms" "$("$exporter" --version 2>&1 | head -1)"
awk -v a="$nodelua_ms" -v b="$exporter_ms" \
  'BEGIN { if (b > 0) printf "  ratio          nodelua = 1/%.0f of node_exporter\n", b / a }'
