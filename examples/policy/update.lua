-- An update window: the shipped update policy, but releases are installed
-- only between 02:00 and 05:00 UTC, a quarter of the fleet first, and
-- version 2.3.1 never (a known regression on this cluster's hardware).
-- `nodelua update apply` by hand is not held to the window.
local base = require("nodelua.policy.update")

local M = setmetatable({}, { __index = base })

M.rollout_percent = 25
M.window = { from = 2, to = 5 } -- hours, UTC
M.never = { ["2.3.1"] = "a known regression here" }

function M.accept(release, ctx)
  if M.never[release.version] then
    return false, "pinned away: " .. M.never[release.version]
  end
  return base.accept(release, ctx)
end

function M.may_install(release, ctx)
  local hour = tonumber(os.date("!%H", ctx.now))
  if hour < M.window.from or hour >= M.window.to then
    return false, ("outside the window %02d:00-%02d:00 UTC"):format(M.window.from, M.window.to)
  end
  return base.may_install(release, ctx)
end

return M
