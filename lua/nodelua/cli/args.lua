--- Command-line parsing shared by the commands: flags with or without a
-- value, as --flag VALUE or --flag=VALUE.
local M = {}

--- Parses args by spec ({["--json"] = "flag", ["--wait"] = "value"};
-- "-h" and "--help" are always flags). Returns a table of what was given
-- (true for flags, the string for values, keyed without the dashes), or nil
-- and a message for an unknown argument or a missing value.
function M.parse(args, spec)
  local given = {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local value = a:match("^%-%-[%w-]+=(.*)$")
    local flag = value and a:match("^(%-%-[%w-]+)=") or a
    local kind = spec[flag]
    if flag == "--help" or flag == "-h" then
      given.help = true
    elseif kind == "flag" and not value then
      given[flag:gsub("^%-+", "")] = true
    elseif kind == "value" then
      if not value then
        i = i + 1
        value = args[i]
        if value == nil then
          return nil, ("%s needs a value"):format(flag)
        end
      end
      given[flag:gsub("^%-+", "")] = value
    else
      return nil, ("unknown argument '%s'"):format(a)
    end
    i = i + 1
  end
  return given
end

--- Splits args into the flags (with the values of those spec says take
-- one) and the positional arguments; after "--" everything is positional
-- (a file named "-x"). Returns flags, positional.
function M.split(args, spec)
  local positional, flags = {}, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--" then
      table.move(args, i + 1, #args, #positional + 1, positional)
      break
    elseif a:sub(1, 1) == "-" and #a > 1 then
      flags[#flags + 1] = a
      if spec[a] == "value" and args[i + 1] then
        flags[#flags + 1] = args[i + 1]
        i = i + 1
      end
    else
      positional[#positional + 1] = a
    end
    i = i + 1
  end
  return flags, positional
end

--- A whole-number option given as --name: the number, or nil and the usage
-- message when it is not a whole number from min to max.
function M.integer(given, name, min, max)
  local v = math.tointeger(tonumber(given[name]))
  if not v or v < min or v > max then
    return nil, ("--%s takes %d to %d, not '%s'"):format(name, min, max, given[name])
  end
  return v
end

--- The start of every command's main: parses, answers --help, reports a
-- usage error. Returns the options, or nil and the exit status.
function M.start(name, usage, args, spec, check)
  local opts, err = M.parse(args, spec)
  if opts and not opts.help and check then
    opts, err = check(opts)
  end
  if not opts then
    io.stderr:write(("nodelua %s: %s; see nodelua %s --help\n"):format(name, err, name))
    return nil, 2
  end
  if opts.help then
    io.stdout:write(usage)
    return nil, 0
  end
  return opts
end

return M
