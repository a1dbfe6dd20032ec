# Helpers for the integration tests: sourced, not run.
set -u
NODELUA=${1:?usage: $0 path/to/nodelua}
NODELUA=$(cd "$(dirname "$NODELUA")" && pwd)/$(basename "$NODELUA")
SOURCE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=$(mktemp -d /tmp/nodelua-it.XXXXXX)
STARTED_PIDS=()
failures=0
checks=0

cleanup() {
  # End only what this test started, by pid.
  for pid in "${STARTED_PIDS[@]}"; do
    kill -KILL "$pid" 2>/dev/null
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  failures=$((failures + 1))
  echo "FAIL: $*" >&2
}

check() { # check DESCRIPTION COMMAND...
  local what=$1
  shift
  checks=$((checks + 1))
  if ! "$@"; then
    fail "$what"
  fi
}

contains() { # contains TEXT FRAGMENT
  case "$1" in *"$2"*) return 0 ;; esac
  echo "  expected to find: $2" >&2
  echo "  in: $1" >&2
  return 1
}

lacks() { # lacks TEXT FRAGMENT
  case "$1" in *"$2"*)
    echo "  did not expect: $2" >&2
    echo "  in: $1" >&2
    return 1
    ;;
  esac
  return 0
}

equals() { # equals ACTUAL EXPECTED
  [ "$1" = "$2" ] && return 0
  echo "  expected: $2" >&2
  echo "  actual:   $1" >&2
  return 1
}

# wait_for FILE FRAGMENT SECONDS: polls until FILE contains FRAGMENT.
wait_for() {
  local deadline=$((SECONDS + $3))
  while [ $SECONDS -le $deadline ]; do
    grep -qF -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "  timed out waiting for '$2' in $1:" >&2
  sed 's/^/    /' "$1" >&2
  return 1
}

# A clean environment: no ./.env, no service file, nothing of the caller's.
clean_env() {
  env -i PATH="$PATH" HOME="$WORK" NODELUA_SERVICE_ENV_FILE= NODELUA_MDNS=false TRANSFER_PORT=0 "$@"
}

# start_clean OUT ERR COMMAND...: starts COMMAND in the background with a
# clean environment; its pid (the command's own, thanks to exec) is in
# STARTED_PID and in STARTED_PIDS for cleanup.
start_clean() {
  local out=$1 err=$2
  shift 2
  (exec env -i PATH="$PATH" HOME="$WORK" NODELUA_SERVICE_ENV_FILE= NODELUA_MDNS=false TRANSFER_PORT=0 "$@" >"$out" 2>"$err") &
  STARTED_PID=$!
  STARTED_PIDS+=("$STARTED_PID")
}

skipped=0
# skip WHAT: a case that cannot run here; the test then exits 77 (ctest:
# skipped) unless something failed.
skip() {
  skipped=$((skipped + 1))
  echo "SKIPPED: $1"
}

finish() {
  echo "$(basename "$0"): $checks checks, $failures failed, $skipped cases skipped"
  [ "$failures" -eq 0 ] || return 1
  [ "$skipped" -eq 0 ] || exit 77
}
