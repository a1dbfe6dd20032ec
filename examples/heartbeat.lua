-- A script that runs a policy with timers:
--   NODELUA_POLICY_DIR=examples/policy nodelua run examples/heartbeat.lua [COUNT]
-- Prints COUNT beats (default 5) at the policy's interval, then exits 0.
local policy = require("nodelua.policy")
local runtime = require("nodelua.runtime")
local timer = require("nodelua.timer")

local total = math.tointeger(tonumber((...) or "5"))
if not total or total < 1 then
  error("COUNT must be a whole number of at least 1")
end
if not policy.load("heartbeat") then
  error("no heartbeat policy: run with NODELUA_POLICY_DIR=examples/policy")
end

local beats = 0
runtime.on_shutdown(function()
  print(("stopped after %d beats"):format(beats))
end)
timer.every(policy.call("heartbeat", "interval"), function()
  beats = beats + 1
  print(policy.call("heartbeat", "message", beats, total))
  if beats >= total then
    runtime.exit(0)
  end
end)
