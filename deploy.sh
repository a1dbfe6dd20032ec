#!/usr/bin/env bash
# Runs nodelua in place, for development and trials.
#
#   ./deploy.sh [start] [--api-url URL] [--api-key KEY] [--node-name NAME]
#   ./deploy.sh stop | restart | status [--json] | logs
#
# start installs the dependencies, builds, makes ./.env if there is none
# (from the flags, or the environment without a terminal, or by asking on a
# terminal), and starts `nodelua agent` in the background with a pid file
# and a log file in ./.nodelua/. Without a monitoring API running, reports
# wait in the spool until there is one; /metrics answers at once. An agent
# that exits is started again after a second, as systemd and launchd do:
# the launcher in the binary counts the starts of a new version on trial
# and rolls back one that keeps failing (see README, "Self-update").
#
# Environment: NODELUA_DEPLOY_DIR (default: this folder) holds .env and
# .nodelua/; NODELUA_BIN skips the build and runs that binary.
set -euo pipefail

repo=$(cd "$(dirname "$0")" && pwd)
dir=${NODELUA_DEPLOY_DIR:-$repo}
run="$dir/.nodelua"
pidfile="$run/agent.pid"
superfile="$run/supervisor.pid"
stopfile="$run/stopping"
logfile="$run/agent.log"
envfile="$dir/.env"

say() { printf 'deploy: %s\n' "$*"; }
die() { printf 'deploy: %s\n' "$*" >&2; exit 1; }

running_pid() {
  [ -f "$pidfile" ] || return 1
  local pid
  pid=$(cat "$pidfile")
  # Ours only if that pid is still a nodelua agent.
  if kill -0 "$pid" 2>/dev/null && ps -p "$pid" -o args= 2>/dev/null | grep -q 'nodelua agent'; then
    echo "$pid"
    return 0
  fi
  return 1
}

env_value() { # env_value NAME: the value in .env, or the default
  local name=$1 default=$2 v
  v=$(sed -n "s/^\\(export \\)\\{0,1\\}$name=//p" "$envfile" 2>/dev/null | tail -1 | sed "s/^[\"']//; s/[\"']$//")
  echo "${v:-$default}"
}

quote() { # a double-quoted .env value
  local v=${1//\\/\\\\}
  v=${v//\"/\\\"}
  v=${v//\$/\\\$}
  printf '"%s"' "$v"
}

make_env() {
  local url=${opt_url:-${MONITORING_API_URL:-}} key=${opt_key:-${MONITORING_API_KEY:-}}
  local name=${opt_name:-${NODE_NAME:-}}
  if [ -t 0 ] && [ -t 1 ]; then
    say "no .env yet: a few questions (Enter keeps the default)"
    [ -n "$url" ] || { read -r -p "Monitoring API URL [http://localhost:3000]: " url; }
    if [ -z "$key" ]; then
      read -r -s -p "Monitoring API key [dev-api-key]: " key
      echo
    fi
    [ -n "$name" ] || { read -r -p "Node name [$(hostname)]: " name; }
  fi
  url=${url:-http://localhost:3000}
  key=${key:-dev-api-key}
  name=${name:-$(hostname)}
  umask 077
  {
    echo "# Made by deploy.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ); see README for every variable."
    echo "MONITORING_API_URL=$(quote "$url")"
    echo "MONITORING_API_KEY=$(quote "$key")"
    echo "NODE_NAME=$(quote "$name")"
    echo "NODELUA_STATE_DIR=$(quote "$run/state")"
    echo "METRICS_LISTEN=$(quote "${METRICS_LISTEN:-127.0.0.1:9101}")"
  } >"$envfile"
  say "wrote $envfile (mode 0600; the key is not shown)"
}

build() {
  if [ -n "${NODELUA_BIN:-}" ]; then
    bin=$NODELUA_BIN
    return
  fi
  "$repo/scripts/install-deps.sh"
  say "building"
  cmake -S "$repo" -B "$repo/build/release" -DCMAKE_BUILD_TYPE=Release >"$repo/build/release.configure.log" 2>&1 ||
    { cat "$repo/build/release.configure.log"; die "cmake failed"; }
  cmake --build "$repo/build/release" -j "$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)" >/dev/null ||
    die "build failed: run cmake --build build/release to see why"
  bin="$repo/build/release/nodelua"
}

start() {
  if pid=$(running_pid); then
    say "already running (pid $pid); ./deploy.sh restart to restart"
    return 0
  fi
  build
  mkdir -p "$run"
  [ -f "$envfile" ] || make_env
  say "starting $bin agent (log: $logfile)"
  rm -f "$stopfile" "$pidfile"
  # The supervisor: runs the agent, and again whenever it exits, until
  # stop. cwd is where .env is, so the agent reads it; stdin closed, no
  # terminal; deploy.sh's own variables are not the agent's.
  (
    trap 'rm -f "$superfile"' EXIT
    trap 'exit 0' TERM # stop stops the agent itself, and waits for it
    while [ ! -e "$stopfile" ]; do
      (cd "$dir" && exec env -u NODELUA_BIN -u NODELUA_DEPLOY_DIR "$bin" agent \
        </dev/null >>"$logfile" 2>&1) &
      echo $! >"$pidfile"
      rc=0
      wait $! || rc=$?
      [ -e "$stopfile" ] && break
      printf 'deploy: the agent exited (status %s); starting it again in 1 s\n' "$rc" >>"$logfile"
      sleep 1
    done
  ) </dev/null >/dev/null 2>&1 &
  echo $! >"$superfile"
  for _ in $(seq 50); do
    [ -s "$pidfile" ] && break
    sleep 0.1
  done
  local listen
  listen=$(env_value METRICS_LISTEN "${METRICS_LISTEN:-127.0.0.1:9101}")
  for _ in $(seq 50); do
    if ! running_pid >/dev/null; then
      touch "$stopfile"
      [ -f "$superfile" ] && kill -TERM "$(cat "$superfile")" 2>/dev/null
      tail -n 5 "$logfile" >&2
      rm -f "$pidfile" "$superfile"
      die "the agent did not start; the lines above say why"
    fi
    if [ -z "$listen" ] || curl -sf "http://$listen/healthz" >/dev/null 2>&1; then
      say "running (pid $(cat "$pidfile")); try: curl $listen/metrics"
      return 0
    fi
    sleep 0.2
  done
  say "started (pid $(cat "$pidfile")), but http://$listen/healthz does not answer yet; see $logfile"
}

stop() {
  local pid
  mkdir -p "$run"
  touch "$stopfile" # the supervisor starts nothing more
  if [ -f "$superfile" ]; then
    kill -TERM "$(cat "$superfile")" 2>/dev/null || true
    rm -f "$superfile"
  fi
  if ! pid=$(running_pid); then
    rm -f "$pidfile"
    say "not running"
    return 0
  fi
  kill -TERM "$pid"
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "still running after 10 s: sending SIGKILL to $pid"
    kill -KILL "$pid"
  fi
  rm -f "$pidfile"
  say "stopped"
}

status() {
  local pid
  if pid=$(running_pid); then
    say "running (pid $pid)"
    # The agent's own status, as text (--json: /healthz's JSON).
    local listen bin_path
    listen=$(env_value METRICS_LISTEN "${METRICS_LISTEN:-127.0.0.1:9101}")
    bin_path=${NODELUA_BIN:-$repo/build/release/nodelua}
    if [ "$json" = 1 ]; then
      [ -z "$listen" ] || curl -s "http://$listen/healthz" || true
    elif [ -x "$bin_path" ]; then
      (cd "$dir" && env -u NODELUA_BIN -u NODELUA_DEPLOY_DIR "$bin_path" repl status) || true
    fi
    return 0
  fi
  say "not running"
  return 3
}

logs() {
  [ -f "$logfile" ] || die "no log yet: $logfile"
  if [ -t 1 ]; then
    tail -n 100 -F "$logfile"
  else
    tail -n 100 "$logfile"
  fi
}

command=start
opt_url="" opt_key="" opt_name="" json=0
while [ $# -gt 0 ]; do
  case "$1" in
    start | stop | restart | status | logs) command=$1 ;;
    --api-url) opt_url=${2:?--api-url needs a value}; shift ;;
    --api-key) opt_key=${2:?--api-key needs a value}; shift ;;
    --node-name) opt_name=${2:?--node-name needs a value}; shift ;;
    --json) json=1 ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) printf 'deploy: unknown argument %s; see ./deploy.sh --help\n' "$1" >&2; exit 2 ;;
  esac
  shift
done

case "$command" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) status ;;
  logs) logs ;;
esac
