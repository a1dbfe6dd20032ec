#!/usr/bin/env bash
# A short agent run under valgrind: no leak, no invalid access, exit 0.
set -u
VALGRIND=$1
NODELUA=$2
work=$(mktemp -d /tmp/nodelua-vg.XXXXXX)
trap 'rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
(cd "$work" && exec env -i PATH="$PATH" HOME="$work" NODELUA_SERVICE_ENV_FILE= \
  NODELUA_STATE_DIR="$work/state" REPORT_INTERVAL=1 METRICS_LISTEN=127.0.0.1:$port \
  NODELUA_MDNS=false TRANSFER_PORT=0 \
  MONITORING_API_URL=http://127.0.0.1:9 \
  "$VALGRIND" --quiet --leak-check=full --show-leak-kinds=definite,indirect \
  --errors-for-leak-kinds=definite,indirect --error-exitcode=1 \
  "$NODELUA" agent) >"$work/out" 2>&1 &
pid=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/metrics" >/dev/null && break
  sleep 0.2
done
curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || { echo "no /healthz"; cat "$work/out"; kill -KILL $pid; exit 1; }
sleep 4
kill -TERM $pid
wait $pid
rc=$?
grep -E '==[0-9]+==' "$work/out"
echo "valgrind agent run: exit $rc, $(ls "$work/state/spool" | grep -c json) reports spooled"
[ $rc -eq 0 ] && grep -q 'stopped;' "$work/out"
