#!/usr/bin/env bash
# Does the agent grow? Runs it with every metrics group sampled every 10 ms
# (a report every second, to the test receiver, and a scrape every step),
# and after a warm-up prints the range of its private dirty memory and RSS
# in each of five steps of SAMPLES / 5 samples of each group.
# Usage: scripts/bench/growth.sh [SAMPLES [WARMUP]]   (default 10000 12000)
set -euo pipefail
cd "$(dirname "$0")/../.."
samples=${1:-10000}
warmup=${2:-12000}
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
  NODELUA_POLICY_DIR="$work/policies" NODELUA_MDNS=false TRANSFER_PORT=0 MONITORING_API_URL="http://127.0.0.1:$rport" MONITORING_API_KEY=growth-key \
  METRICS_LISTEN="127.0.0.1:$aport" "$nodelua" agent 2>"$work/agent.log") &
agent=$!
pids+=($agent)
kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$agent/$1"; }
# One step: N seconds at 100 samples per second, reading the agent's memory
# every second. The Lua heap rises and falls with each garbage collection
# cycle and the C heap's free pages go back every 30 s, so one reading says
# little: the step's lowest and highest do. Prints: lowest and highest
# private dirty, lowest and highest RSS, and the Lua heap at the end.
measure() {
  local lo_pd=999999999 hi_pd=0 lo_rss=999999999 hi_rss=0 pd rss
  for _ in $(seq "$1"); do
    sleep 1
    pd=$(kib smaps_rollup Private_Dirty) rss=$(kib status VmRSS)
    [ "$pd" -lt "$lo_pd" ] && lo_pd=$pd
    [ "$pd" -gt "$hi_pd" ] && hi_pd=$pd
    [ "$rss" -lt "$lo_rss" ] && lo_rss=$rss
    [ "$rss" -gt "$hi_rss" ] && hi_rss=$rss
  done
  curl -sf "http://127.0.0.1:$aport/metrics" >/dev/null
  lua=$(curl -sf "http://127.0.0.1:$aport/healthz" | /usr/bin/python3 -c 'import json,sys; print(round(json.load(sys.stdin)["lua_kib"]))')
  echo "$lo_pd $hi_pd $lo_rss $hi_rss $lua"
}
# The warm-up: the Lua heap's cycle and the allocator settle in about two
# minutes at this rate (measured: flat from 12,000 samples on).
read -r lo_pd hi_pd lo_rss hi_rss lua < <(measure $((warmup / 100)))
printf "warm-up, %6d samples of each group: private dirty %5d to %5d KiB, RSS %6d to %6d KiB, Lua heap %d KiB\n" \
  "$warmup" "$lo_pd" "$hi_pd" "$lo_rss" "$hi_rss" "$lua"
# Then five steps of SAMPLES / 5.
step=$((samples / 5))
line='then %6d samples of each group: private dirty %5d to %5d KiB, RSS %6d to %6d KiB, Lua heap %d KiB\n'
all_lo=999999999 all_hi=0 early_hi=0 late_hi=0
for i in 1 2 3 4 5; do
  read -r lo_pd hi_pd lo_rss hi_rss lua < <(measure $((step / 100)))
  printf "$line" $((i * step)) "$lo_pd" "$hi_pd" "$lo_rss" "$hi_rss" "$lua"
  [ "$lo_pd" -lt "$all_lo" ] && all_lo=$lo_pd
  [ "$hi_pd" -gt "$all_hi" ] && all_hi=$hi_pd
  if [ "$i" -le 2 ] && [ "$hi_pd" -gt "$early_hi" ]; then early_hi=$hi_pd; fi
  if [ "$i" -ge 4 ] && [ "$hi_pd" -gt "$late_hi" ]; then late_hi=$hi_pd; fi
done
printf 'after the warm-up: private dirty between %d and %d KiB; highest in the first two steps %d KiB, in the last two %d KiB (%+d)\n' \
  "$all_lo" "$all_hi" "$early_hi" "$late_hi" $((late_hi - early_hi))
