-- Helpers shared by the specs.
local log = require("nodelua.log")
local runtime = require("nodelua.runtime")
local timer = require("nodelua.timer")

local M = {}

function M.read(path)
  local f = assert(io.open(path, "r"))
  local text = f:read("a")
  f:close()
  return text
end

--- Sends log lines to a temporary file until the returned function is
-- called; that function restores stderr and returns what was logged. The
-- file's path is the second result, to look at it before the end.
function M.capture_log()
  local path = os.tmpname()
  assert(log.set_file(path))
  return function()
    assert(log.set_file())
    local text = M.read(path)
    os.remove(path)
    return text
  end, path
end

--- Runs the loop until predicate() is true (checked every 10 ms) or
-- `seconds` have passed. Returns whether the predicate came true.
function M.run_until(predicate, seconds)
  local done = false
  local poll, deadline
  poll = timer.every(0.01, function()
    if predicate() then
      done = true
      poll:cancel()
      deadline:cancel()
    end
  end)
  deadline = timer.after(seconds, function()
    poll:cancel()
  end)
  runtime.run()
  return done
end

--- Like run_until, for a loop that never runs dry (an agent's repeating
-- timers): stops the loop as soon as predicate() is true or the time is up.
function M.wait_for(predicate, seconds)
  local done = false
  local poll, deadline
  poll = timer.every(0.01, function()
    if predicate() then
      done = true
      poll:cancel()
      deadline:cancel()
      runtime.stop()
    end
  end)
  deadline = timer.after(seconds, function()
    poll:cancel()
    runtime.stop()
  end)
  runtime.run()
  return done
end

function M.write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

function M.tmpdir()
  local path = os.tmpname()
  os.remove(path)
  assert(os.execute("mkdir -p '" .. path .. "'"))
  return path
end

function M.count(text, pattern)
  local n = 0
  for _ in text:gmatch(pattern) do
    n = n + 1
  end
  return n
end

return M
