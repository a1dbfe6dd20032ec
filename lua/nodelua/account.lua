--- The agent's own account of where its CPU goes: each piece of work it
-- wants counted runs through account.run(name, fn, ...), which adds the
-- thread CPU time (user and kernel) the call took to that name. /healthz
-- shows the table (`cpu`); scripts/bench/agent.sh turns two readings into
-- milliseconds per minute. Two clock readings per call: about a
-- microsecond, against the tens to thousands each counted piece costs.
local runtime = require("nodelua.runtime")

local M = {}

local counters = {}
-- Work counted inside other counted work (a sample taken for a report)
-- is taken out of the outer one, so that the names add up.
local depth_inner = 0

local function finish(entry, started, inner_before, ...)
  local spent = runtime.cpu() - started
  local inner = depth_inner - inner_before
  entry.seconds = entry.seconds + spent - inner
  entry.count = entry.count + 1
  depth_inner = inner_before + spent
  return ...
end

--- Runs fn(...) and counts its CPU under name; returns what fn returns. A
-- call that raises goes uncounted (it is not caught here, so its traceback
-- stays whole).
function M.run(name, fn, ...)
  local entry = counters[name]
  if not entry then
    entry = { seconds = 0, count = 0 }
    counters[name] = entry
  end
  return finish(entry, runtime.cpu(), depth_inner, fn(...))
end

--- fn, counted under name whenever it is called.
function M.wrap(name, fn)
  return function(...)
    return M.run(name, fn, ...)
  end
end

--- A copy of the counters: { [name] = { seconds =, count = } }, plus
-- "main thread": all the CPU of the thread that runs Lua, counted or not.
function M.snapshot()
  local out = {}
  for name, entry in pairs(counters) do
    out[name] = { seconds = entry.seconds, count = entry.count }
  end
  out["main thread"] = { seconds = runtime.cpu(), count = 1 }
  return out
end

return M
