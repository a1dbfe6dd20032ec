#!/usr/bin/env bash
# nodelua run: a script with timers, its output, its exit status; and the
# example policy that uses timers.
source "$(dirname "$0")/lib.sh"
cd "$WORK"

out=$(clean_env EXIT_WITH=7 "$NODELUA" run "$SOURCE_DIR/tests/integration/timers.lua" a b 2>"$WORK/err")
rc=$?
check "script exit status is what it returned" equals "$rc" 7
check "timers fire in order, the cancelled ticker stops, the loop survives an error" \
  equals "$out" "$(printf 'args a,b\narg0 timers.lua\nfirst\ntick 1\ntick 2\nthird\nlast')"
err=$(cat "$WORK/err")
check "the callback error is logged with file:line" \
  contains "$err" "ERROR lua: timer callback failed: $SOURCE_DIR/tests/integration/timers.lua:23: deliberate callback error"

clean_env "$NODELUA" run "$SOURCE_DIR/tests/integration/timers.lua" >/dev/null 2>&1
check "a script that returns nothing exits 0" equals "$?" 0

printf 'local t = require("nodelua.timer")\nt.after(10, function() end)\nt.after(0, function() require("nodelua.runtime").exit(5) end)\n' >exit.lua
clean_env "$NODELUA" run exit.lua
check "runtime.exit ends the loop at once with its status" equals "$?" 5

printf 'local x = nil\nreturn x.field\n' >broken.lua
err=$(clean_env "$NODELUA" run broken.lua 2>&1)
check "a failing main chunk exits 1" equals "$?" 1
check "and logs file:line" contains "$err" "broken.lua:2: attempt to index a nil value"

err=$(clean_env "$NODELUA" run missing.lua 2>&1)
check "a missing script exits 1" equals "$?" 1
check "and says so" contains "$err" "cannot load script: cannot open missing.lua"

err=$(clean_env "$NODELUA" run 2>&1)
check "run without a script is a usage error" equals "$?" 2
check "with one line" equals "$(printf '%s\n' "$err" | wc -l)" 1

out=$(clean_env NODELUA_POLICY_DIR="$SOURCE_DIR/examples/policy" \
  "$NODELUA" run "$SOURCE_DIR/examples/heartbeat.lua" 3 2>"$WORK/err")
check "the example policy with timers runs and exits 0" equals "$?" 0
check "its beats come from the policy" \
  equals "$out" "$(printf 'beat 1 of 3\nbeat 2 of 3\nbeat 3 of 3\nstopped after 3 beats')"

out=$(clean_env "$NODELUA" run "$SOURCE_DIR/examples/heartbeat.lua" 2>&1)
check "without its policy directory the example fails" equals "$?" 1
check "and says how to fix it" contains "$out" "NODELUA_POLICY_DIR=examples/policy"

finish
