#!/usr/bin/env bash
# Does the agent grow? Runs it with every metrics group sampled every 10 ms
# (a report every second, to the test receiver) and prints its RSS and
# private dirty memory after 1,000 and after 10,000 samples of each group.
# Usage: scripts/bench/growth.sh [SAMPLES]   (default 10000)
set -euo pipefail
cd "$(dirname "$0")/../.."
samples=${1:-10000}
nodelua=${NODELUA:-build/normal/nodelua}
nodelua=$(cd "$(dirname "$nodelua")" && pwd)/$(basename "$nodelua")
work=$(mktemp -d /tmp/nodelua-growth.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
mkdir "$work/policies"
cat >"$work/policies/schedule.lua" <<'LUA'
return { intervals = function()
  return { cpu = 0.01, load = 0.01, memory = 0.01, network = 0.01, storage = 0.01,
           thermal = 0.01, self = 0.01, report = 1 }
end }
LUA
rport=$((20000 + RANDOM % 20000)) aport=$((20000 + RANDOM % 20000))
/usr/bin/python3 tests/receiver/receiver.py --port "$rport" --key growth-key >/dev/null 2>&1 &
pids+=($!)
(cd "$work" && exec env -i PATH="$PATH" HOME="$work" NODELUA_SERVICE_ENV_FILE= NODELUA_STATE_DIR="$work/state" \
  NODELUA_POLICY_DIR="$work/policies" MONITORING_API_URL="http://127.0.0.1:$rport" MONITORING_API_KEY=growth-key \
  METRICS_LISTEN="127.0.0.1:$aport" "$nodelua" agent 2>"$work/agent.log") &
agent=$!
pids+=($agent)
kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$agent/$1"; }
measure() { # after N seconds at 100 samples per second
  sleep "$1"
  curl -sf "http://127.0.0.1:$aport/metrics" >/dev/null
  echo "$(kib status VmRSS) $(kib smaps_rollup Private_Dirty) $(kib status RssAnon) $(kib status RssFile)"
}
# Five readings, 2,000 samples of each group apart.
step=$((samples / 5))
line='after %6d samples of each group: RSS %6d KiB (anonymous %5d, file %5d), private dirty %5d KiB\n'
first_rss="" first_pd=""
for i in 1 2 3 4 5; do
  read -r rss pd anon file < <(measure $((step / 100)))
  printf "$line" $((i * step)) "$rss" "$anon" "$file" "$pd"
  [ -n "$first_rss" ] || { first_rss=$rss; first_pd=$pd; }
done
printf 'from the first reading to the last: RSS %+d KiB, private dirty %+d KiB\n' $((rss - first_rss)) \
  $((pd - first_pd))
