-- The shipped REPL commands, plus `df`: each filesystem's use, as the
-- latest storage sample has it.
--   nodelua repl df
local base = require("nodelua.policy.commands")
local format = require("nodelua.format")

-- A copy of the shipped table (help lists the commands with pairs(), which
-- does not follow a metatable), then one more.
local commands = {}
for name, command in pairs(base.commands) do
  commands[name] = command
end

commands.df = {
  summary = "each filesystem: used of total, and where it is mounted",
  run = function(ctx)
    local storage = ctx.metrics().storage
    if not storage or not storage.filesystems then
      return nil, "no storage sample yet; try again in a few seconds"
    end
    local lines = {}
    for _, fs in ipairs(storage.filesystems) do
      lines[#lines + 1] = ("%-24s %10s of %10s  %s"):format(fs.mount, format.human_bytes(fs.used or 0),
        format.human_bytes(fs.size or 0), fs.fstype or "")
    end
    return table.concat(lines, "\n") .. "\n"
  end,
}

return { commands = commands }
