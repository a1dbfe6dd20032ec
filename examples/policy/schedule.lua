-- A laptop's schedule: the shipped intervals, five times longer, and no
-- temperatures. A node on battery wakes less often; the dashboards still
-- get every group but thermal.
local base = require("nodelua.policy.schedule")

local STRETCH = 5

return {
  intervals = function()
    local t = {}
    for group, seconds in pairs(base.intervals()) do
      t[group] = seconds * STRETCH
    end
    t.thermal = nil
    return t
  end,
}
