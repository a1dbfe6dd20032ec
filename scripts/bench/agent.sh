#!/usr/bin/env bash
# Footprint of the agent beside node_exporter, in one run on this machine.
# Both run on a test "host" (scripts/nethosts.sh: a network namespace with
# its own D-Bus and avahi-daemon), so discovery is on without a packet on
# the machine's own interfaces; a second agent on a second such host is the
# peer it finds and probes.
#   - nodelua agent at its defaults, with a cluster key, reporting to a
#     local receiver (tests/receiver) and scraped every 5 s;
#   - prometheus-node-exporter at its defaults, scraped every 5 s.
# Prints each one's RSS, private dirty memory (Private_Dirty of
# /proc/PID/smaps_rollup) and CPU time per minute (/proc/PID/schedstat),
# the ratios against the goals, and the agent's own account of its CPU
# (the "cpu" table of /healthz).
# Needs root, iproute2, dbus and avahi-daemon (scripts/install-deps.sh).
# Usage: scripts/bench/agent.sh [SECONDS]   (default 60)
#        STRACE=FILE scripts/bench/agent.sh   also counts the agent's system
#        calls into FILE (strace -c; the CPU figures are then not its own)
#        PEER=0 scripts/bench/agent.sh       without the peer agent
#        CALLGRIND=FILE scripts/bench/agent.sh
#                                           runs the agent under callgrind,
#                                           counting the measured period only
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-60}
nodelua=${NODELUA:-build/normal/nodelua}
nodelua=$(cd "$(dirname "$nodelua")" && pwd)/$(basename "$nodelua")
exporter=$(command -v prometheus-node-exporter || command -v node_exporter ||
  echo "$PWD/.deps/usr/bin/prometheus-node-exporter")
[ -x "$nodelua" ] || { echo "build first: cmake -S . -B build/normal && cmake --build build/normal" >&2; exit 1; }
[ -x "$exporter" ] || { echo "node_exporter not found: run scripts/install-deps.sh" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "agent.sh makes network namespaces: run it as root" >&2; exit 1; }
command -v avahi-daemon >/dev/null || { echo "avahi-daemon not found: run scripts/install-deps.sh" >&2; exit 1; }

CLUSTER_KEY=bench-cluster-key-0123456789
port() { echo $((20000 + RANDOM % 20000)); }

# ---- inside host 1: the agent under test, node_exporter, the scrapes ----
if [ "${1:-}" = "--inside" ]; then
  seconds=$2 work=$3
  pids=()
  trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
  receiver_port=$(port) agent_port=$(port) exporter_port=$(port)
  /usr/bin/python3 tests/receiver/receiver.py --port "$receiver_port" --key bench-key >/dev/null 2>&1 &
  pids+=($!)
  mkdir -p "$work/h1"
  (cd "$work/h1" && exec env -i ${AGENT_ENV:-} PATH="$PATH" HOME="$work/h1" NODELUA_SERVICE_ENV_FILE= \
    NODELUA_STATE_DIR="$work/h1/state" NODELUA_CLUSTER_KEY="$CLUSTER_KEY" NODE_NAME=bench-agent \
    MONITORING_API_URL="http://127.0.0.1:$receiver_port" MONITORING_API_KEY=bench-key \
    METRICS_LISTEN="127.0.0.1:$agent_port" ${CALLGRIND:+valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=$CALLGRIND} "$nodelua" agent 2>"$work/h1/agent.log") &
  agent=$!
  pids+=($agent)
  "$exporter" --web.listen-address="127.0.0.1:$exporter_port" >/dev/null 2>&1 &
  exporter_pid=$!
  pids+=($exporter_pid)
  for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$agent_port/healthz" >/dev/null &&
      curl -sf "http://127.0.0.1:$exporter_port/metrics" >/dev/null && break
    sleep 0.2
  done

  # Nanoseconds on CPU, over every thread of the process (Go works on many).
  cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{ s += $1 } END { print s }'; }
  # Clock ticks in user and kernel mode (fields 14 and 15 of stat).
  ticks() { sed 's/.*) //' /proc/"$1"/stat | awk '{ print $12, $13 }'; }
  kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/${3:-smaps_rollup}"; }

  # Warm up one scrape cycle, then measure.
  sleep 5
  healthz() { curl -sf "http://127.0.0.1:$agent_port/healthz"; }
  healthz >"$work/healthz0"
  a0=$(cpu_ns "$agent") e0=$(cpu_ns "$exporter_pid")
  threads() { for t in /proc/"$agent"/task/*; do echo "${t##*/} $(cat "$t/comm") $(cut -d' ' -f1 "$t/schedstat")"; done; }
  threads >"$work/threads0"
  read -r au0 as0 < <(ticks "$agent")
  tracer=""
  [ -z "${CALLGRIND:-}" ] || callgrind_control -i on "$agent" >/dev/null
  if [ -n "${STRACE:-}" ]; then # the agent's system calls, counted (slows it)
    strace -c -f -p "$agent" -o "$STRACE" &
    tracer=$!
  fi
  scrapes=0
  end=$((SECONDS + seconds))
  while [ $SECONDS -lt $end ]; do
    curl -sf "http://127.0.0.1:$agent_port/metrics" >/dev/null
    curl -sf "http://127.0.0.1:$exporter_port/metrics" >/dev/null
    scrapes=$((scrapes + 1))
    sleep 5
  done
  a1=$(cpu_ns "$agent") e1=$(cpu_ns "$exporter_pid")
  threads >"$work/threads1"
  read -r au1 as1 < <(ticks "$agent")
  if [ -n "$tracer" ]; then kill -INT "$tracer"; wait "$tracer" || true; fi
  [ -z "${CALLGRIND:-}" ] || callgrind_control -d "$agent" >/dev/null
  healthz >"$work/healthz1"

  # Private dirty by mapping, for README's account of each MiB.
  awk '/^[0-9a-f]+-[0-9a-f]+ / { name = ($6 == "" ? "[anonymous]" : $6); sub(/.*\//, "", name) }
       $1 == "Private_Dirty:" { pd[name] += $2 }
       END { for (n in pd) if (pd[n] > 0) print pd[n], n }' "/proc/$agent/smaps" | sort -rn >"$work/smaps"
  a_rss=$(kib "$agent" VmRSS status) e_rss=$(kib "$exporter_pid" VmRSS status)
  a_pd=$(kib "$agent" Private_Dirty) e_pd=$(kib "$exporter_pid" Private_Dirty)
  a_cpu=$(awk -v a="$a0" -v b="$a1" -v s="$seconds" 'BEGIN { printf "%.1f", (b - a) / 1e6 * 60 / s }')
  e_cpu=$(awk -v a="$e0" -v b="$e1" -v s="$seconds" 'BEGIN { printf "%.1f", (b - a) / 1e6 * 60 / s }')
  hz=$(getconf CLK_TCK)

  /usr/bin/python3 - "$work/healthz0" "$work/healthz1" "$seconds" "$scrapes" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
seconds, scrapes = float(sys.argv[3]), int(sys.argv[4])
print(f"{seconds:.0f} s, {scrapes} scrapes of each; the agent delivered "
      f"{b['delivery']['delivered'] - a['delivery']['delivered']} reports and sees {b['peers']} peer(s), "
      f"mDNS {b['mdns']}")
PY
  printf '%-16s %10s %16s %16s\n' "" "RSS" "private dirty" "CPU per minute"
  printf '%-16s %7.1f MiB %12.2f MiB %13s ms\n' "nodelua agent" "$(echo "$a_rss / 1024" | bc -l)" \
    "$(echo "$a_pd / 1024" | bc -l)" "$a_cpu"
  printf '%-16s %7.1f MiB %12.2f MiB %13s ms\n' "node_exporter" "$(echo "$e_rss / 1024" | bc -l)" \
    "$(echo "$e_pd / 1024" | bc -l)" "$e_cpu"
  awk -v ar="$a_rss" -v er="$e_rss" -v ap="$a_pd" -v ep="$e_pd" -v ac="$a_cpu" -v ec="$e_cpu" 'BEGIN {
    ok = "met"; no = "NOT met"
    printf "%-16s %9.0f%% %15.0f%% %14s\n", "ratio", 100 * ar / er, 100 * ap / ep, (ac > 0 ? sprintf("1/%.1f", ec / ac) : "-")
    printf "goals: RSS <= 60%% of node_exporter: %s; private dirty <= 1.5 MiB: %s; CPU <= 1/10: %s\n",
      (ar <= 0.6 * er ? ok : no), (ap <= 1.5 * 1024 ? ok : no), (ac * 10 <= ec ? ok : no)
  }'
  printf 'agent CPU by mode: user %d ms, kernel %d ms per minute (clock ticks of %d ms)\n' \
    $(((au1 - au0) * 1000 * 60 / hz / seconds)) $(((as1 - as0) * 1000 * 60 / hz / seconds)) $((1000 / hz))
  awk '{ total += $1 } NR <= 6 { top = top sprintf("%s %d KiB, ", $2, $1); shown += $1 }
       END { printf "agent private dirty by mapping: %sthe other %d mappings %d KiB\n", top, NR - 6, total - shown }' \
    "$work/smaps"
  awk -v s="$seconds" 'NR == FNR { t0[$1] = $3; next }
    { printf "  thread %-14s %8.1f ms per minute\n", $2, ($3 - t0[$1]) / 1e6 * 60 / s }' \
    "$work/threads0" "$work/threads1"
  /usr/bin/python3 - "$work/healthz0" "$work/healthz1" "$seconds" <<'PY'
import json, sys
a, b = (json.load(open(p)).get("cpu") for p in sys.argv[1:3])
if not a or not b:
    sys.exit(0)
print(f"agent Lua heap: {json.load(open(sys.argv[2])).get('lua_kib', 0):.0f} KiB")
seconds = float(sys.argv[3])
print("the agent's own account (its cpu counters, per minute):")
main = b.pop("main thread")["seconds"] - a.pop("main thread")["seconds"]
counted = sum(b[k]["seconds"] - a.get(k, {"seconds": 0})["seconds"] for k in b)
print(f"  {'main thread, in all':<22} {main * 1000 * 60 / seconds:8.2f} ms")
print(f"  {'main thread, uncounted':<22} {(main - counted) * 1000 * 60 / seconds:8.2f} ms  "
      "(the event loop, mDNS, probe I/O, answers to probes, timers' own cost)")
for name in sorted(b, key=lambda k: -(b[k]["seconds"] - a.get(k, {"seconds": 0})["seconds"])):
    d = b[name]["seconds"] - a.get(name, {"seconds": 0})["seconds"]
    n = b[name]["count"] - a.get(name, {"count": 0})["count"]
    print(f"  {name:<22} {d * 1000 * 60 / seconds:8.2f} ms  ({n * 60 / seconds:.0f} runs, "
          f"{d * 1e6 / max(n, 1):.0f} us each)")
PY
  exit 0
fi

# ---- outside: the two hosts and the peer ----
work=$(mktemp -d /tmp/nodelua-bench.XXXXXX)
chmod 755 "$work"
export NETHOSTS_DIR=$work/hosts
tag=bn$((RANDOM % 100000))
peer=""
finish() {
  [ -z "$peer" ] || kill "$peer" 2>/dev/null || true
  [ -z "$peer" ] || wait "$peer" 2>/dev/null || true
  scripts/nethosts.sh down "$tag" || true
  rm -rf "$work"
}
trap finish EXIT
scripts/nethosts.sh up "$tag" 2
scripts/nethosts.sh daemons "$tag" 1
scripts/nethosts.sh daemons "$tag" 2
if [ "${PEER:-1}" = 1 ]; then
  mkdir -p "$work/h2"
  env -i PATH="$PATH" HOME="$work/h2" NETHOSTS_DIR="$NETHOSTS_DIR" NODELUA_SERVICE_ENV_FILE= \
    NODELUA_STATE_DIR="$work/h2/state" NODELUA_CLUSTER_KEY="$CLUSTER_KEY" NODE_NAME=bench-peer \
    MONITORING_API_URL="http://127.0.0.1:9" MONITORING_API_KEY=bench-key METRICS_LISTEN= \
    scripts/nethosts.sh exec "$tag" 2 "$nodelua" agent 2>"$work/h2/agent.log" &
  peer=$!
fi
scripts/nethosts.sh exec "$tag" 1 "$0" --inside "$seconds" "$work"
