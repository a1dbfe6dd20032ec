-- Run by run_timers.sh: timers in order, a failing callback that does not
-- stop the loop, arguments, and the exit status from the script.
local timer = require("nodelua.timer")

local function emit(text)
  io.write(text, "\n")
  io.flush()
end

emit("args " .. table.concat({ ... }, ","))
emit("arg0 " .. arg[0]:match("[^/]+$"))
timer.after(0.35, function() emit("third") end)
timer.after(0.01, function() emit("first") end)
local ticks = 0
local ticker
ticker = timer.every(0.1, function()
  ticks = ticks + 1
  emit("tick " .. ticks)
  if ticks == 2 then
    ticker:cancel()
  end
end)
timer.after(0.05, function() error("deliberate callback error") end)
timer.after(0.4, function() emit("last") end)
return tonumber(os.getenv("EXIT_WITH") or "0")
