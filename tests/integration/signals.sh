#!/usr/bin/env bash
# SIGTERM and SIGINT: shutdown hooks run (pending work is flushed), timers
# stop, exit status 0. SIGHUP: policies reload; a broken one is refused and
# the last good one stays.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
mkdir policies
cat >policies/greeting.lua <<'LUA'
return { text = function() return "version one" end }
LUA
cat >agent.lua <<'LUA'
local policy = require("nodelua.policy")
local runtime = require("nodelua.runtime")
local timer = require("nodelua.timer")
local pending = {}
local last
timer.every(0.02, function()
  local text = policy.call("greeting", "text")
  pending[#pending + 1] = text
  if text ~= last then
    print("policy says " .. text)
    io.stdout:flush()
    last = text
  end
end)
runtime.on_shutdown(function()
  print(("flushed %d pending items"):format(#pending))
end)
print("ready")
io.stdout:flush()
LUA

for sig in TERM INT; do
  start_clean "out.$sig" "err.$sig" NODELUA_POLICY_DIR="$WORK/policies" "$NODELUA" run agent.lua
  pid=$STARTED_PID
  check "SIG$sig: agent ready" wait_for "out.$sig" "policy says version one" 5
  kill -"$sig" "$pid"
  wait "$pid"
  rc=$?
  check "SIG$sig: exit status 0" equals "$rc" 0
  check "SIG$sig: the shutdown hook flushed" grep -qE '^flushed [1-9][0-9]* pending items$' "out.$sig"
  check "SIG$sig: logged" contains "$(cat "err.$sig")" "SIG$sig: shutting down"
done

start_clean out.hup err.hup NODELUA_POLICY_DIR="$WORK/policies" "$NODELUA" run agent.lua
pid=$STARTED_PID
check "HUP: agent ready" wait_for out.hup "policy says version one" 5
cat >policies/greeting.lua <<'LUA'
return { text = function() return "version two" end }
LUA
kill -HUP "$pid"
check "HUP: the new policy is in force" wait_for out.hup "policy says version two" 5
printf 'return { text = function() return "broken" end\n' >policies/greeting.lua
kill -HUP "$pid"
check "HUP: the broken policy is refused" wait_for err.hup "refused" 5
check "HUP: with file:line" contains "$(cat err.hup)" "policies/greeting.lua:2:"
check "HUP: keeping the last good one" contains "$(cat err.hup)" "keeping the last good one from $WORK/policies/greeting.lua"
check "HUP: one line says why" equals "$(grep -c refused err.hup)" 1
sleep 0.1
kill -TERM "$pid"
wait "$pid"
check "HUP: still exits 0 on SIGTERM" equals "$?" 0
check "HUP: the broken policy never ran" lacks "$(cat out.hup)" "broken"

finish
