--- The agent's side of `nodelua repl`: a control socket in the state
-- directory whose command lines are answered by the commands policy's
-- commands (lua/nodelua/policy/commands.lua), plus `help`.
local control = require("nodelua.control")
local log = require("nodelua.log")

local M = {}

--- Splits a command line into words (no quoting: commands take plain
-- words, such as ids and names).
function M.words(line)
  local words = {}
  for w in line:gmatch("%S+") do
    words[#words + 1] = w
  end
  return words
end

local function commands_of(policies)
  local p = policies:get("commands")
  return type(p) == "table" and type(p.commands) == "table" and p.commands or {}
end

local function help(commands)
  local names = {}
  for name, cmd in pairs(commands) do
    if type(cmd) == "table" and type(cmd.run) == "function" then
      names[#names + 1] = name
    end
  end
  names[#names + 1] = "help"
  table.sort(names)
  local lines = {}
  for _, name in ipairs(names) do
    local summary = name == "help" and "this list" or tostring(commands[name].summary or "")
    lines[#lines + 1] = ("%-10s %s"):format(name, summary)
  end
  lines[#lines + 1] = "quit       leave (interactive use)"
  return table.concat(lines, "\n") .. "\n"
end

-- The client's question for tab completion (not a command one types).
M.WORDS = "__words"

--- Words the REPL completes: the commands, and the peers' names and ids.
function M.completion_words(commands, ctx)
  local words = { "help", "quit" }
  for name, cmd in pairs(commands) do
    if type(cmd) == "table" and type(cmd.run) == "function" then
      words[#words + 1] = name
    end
  end
  for _, p in ipairs(ctx.peers and ctx.peers() or {}) do
    if not p.name:find("%s") then
      words[#words + 1] = p.name
    end
    words[#words + 1] = p.id:sub(1, 12)
  end
  table.sort(words)
  return table.concat(words, "\n") .. "\n"
end

--- What a command returns to have the REPL client act (e.g. send a file
-- from the client's own process, where its terminal shows the progress):
-- a line the client reads, not text to print.
function M.action(name, ...)
  local fields = { name, ... }
  for i, f in ipairs(fields) do
    fields[i] = tostring(f):gsub("[\t\n]", " ")
  end
  return "\1" .. table.concat(fields, "\t") .. "\n"
end

--- Answers one line: text, or nil and a message.
function M.answer(policies, ctx, line)
  local words = M.words(line)
  local name = table.remove(words, 1)
  if not name then
    return nil, "an empty command; try help"
  end
  local commands = commands_of(policies)
  if name == "help" then
    return help(commands)
  end
  if name == M.WORDS then
    return M.completion_words(commands, ctx)
  end
  local cmd = commands[name]
  if type(cmd) ~= "table" or type(cmd.run) ~= "function" then
    return nil, ("unknown command '%s'; try help"):format(name)
  end
  local text, err = cmd.run(ctx, words)
  if type(text) ~= "string" then
    return nil, err and tostring(err) or ("%s gave no answer"):format(name)
  end
  return text
end

--- Serves the control socket at path. Returns the server, or nil and why.
function M.serve(path, policies, ctx)
  local server, err = control.serve(path, function(line)
    return M.answer(policies, ctx, line)
  end)
  if server then
    log.debug("repl: control socket %s", path)
  end
  return server, err
end

return M
