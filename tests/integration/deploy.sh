#!/usr/bin/env bash
# deploy.sh: makes .env without a terminal, starts the agent with a pid and
# a log file, /metrics answers with no monitoring API running, and
# stop/status/logs manage it.
source "$(dirname "$0")/lib.sh"
dir=$WORK/deploy
mkdir -p "$dir"
port=$((20000 + RANDOM % 20000))
key=deploy-key-$RANDOM$RANDOM
deploy() { env NODELUA_MDNS=false TRANSFER_PORT=0 NODELUA_DEPLOY_DIR="$dir" NODELUA_BIN="$NODELUA" "$SOURCE_DIR/deploy.sh" "$@" </dev/null; }
cleanup_deploy() { deploy stop >/dev/null 2>&1; }
trap 'cleanup_deploy; cleanup' EXIT

out=$(METRICS_LISTEN=127.0.0.1:$port MONITORING_API_KEY=$key deploy --node-name "deploy test" 2>&1)
check "deploy starts the agent" contains "$out" "running (pid"
check "and says nothing of the key" lacks "$out" "$key"
check ".env is made from flags and the environment" contains "$(cat "$dir/.env")" 'NODE_NAME="deploy test"'
check ".env has the key" contains "$(cat "$dir/.env")" "MONITORING_API_KEY=\"$key\""
check ".env is mode 0600" equals "$(stat -c %a "$dir/.env" 2>/dev/null || stat -f %Lp "$dir/.env")" 600
pid=$(cat "$dir/.nodelua/agent.pid")
STARTED_PIDS+=("$pid")
metrics=$(curl -sf "http://127.0.0.1:$port/metrics")
check "/metrics answers with no monitoring API running" contains "$metrics" "node_cpu_seconds_total"
check "status: running" contains "$(deploy status)" "running (pid $pid)"
check "status: the agent's status, as text" contains "$(deploy status)" "spool     "
check "status --json: for machines" contains "$(deploy status --json)" '"spool":{'

check "a second start leaves it be" contains "$(deploy)" "already running (pid $pid)"
sleep 6
check "reports wait in the spool" test "$(ls "$dir/.nodelua/state/spool" | grep -c json)" -ge 1
check "the log file has the agent's lines" contains "$(deploy logs)" "agent 0.1.0 started"
check "the log has no key" lacks "$(cat "$dir/.nodelua/agent.log")" "$key"
check "and no warning about deploy.sh's variables" lacks "$(cat "$dir/.nodelua/agent.log")" "unknown variable"
# An agent that dies is started again, as a service manager would: the
# launcher counts the starts of a version on trial.
kill -KILL "$pid"
restarted() { [ -s "$dir/.nodelua/agent.pid" ] && [ "$(cat "$dir/.nodelua/agent.pid")" != "$pid" ] &&
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; }
for _ in $(seq 50); do restarted && break; sleep 0.2; done
check "a killed agent is started again" restarted
check "the log says so" contains "$(cat "$dir/.nodelua/agent.log")" "the agent exited (status 137); starting it again"
pid=$(cat "$dir/.nodelua/agent.pid")
STARTED_PIDS+=("$pid")
check "stop" contains "$(deploy stop)" "stopped"
check "the agent is gone" test ! -e "/proc/$pid"
sleep 1.5
check "and stays gone (the supervisor stopped too)" test ! -s "$dir/.nodelua/agent.pid"
deploy status >/dev/null
check "status after stop exits 3" equals "$?" 3

# An existing .env is used as it is; a bad one stops the start with why.
sed -i 's/^NODE_NAME=.*/NODE_NAME="kept name"/' "$dir/.env"
deploy >/dev/null 2>&1
check "the existing .env is used" wait_for "$dir/.nodelua/agent.log" "as kept name" 5
deploy stop >/dev/null
echo 'REPORT_INTERVAL=soon' >>"$dir/.env"
out=$(deploy 2>&1)
check "a bad .env: deploy fails" equals "$?" 1
check "saying why" contains "$out" 'REPORT_INTERVAL="soon"'
finish
