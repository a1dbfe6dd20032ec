--- `nodelua metrics [--json|--prom] [--interval SECONDS] [--groups LIST]`
-- Takes two samples --interval apart (on the loop, never sleeping) so that
-- rates and percentages are real, then prints one snapshot.
local metrics = require("nodelua.metrics")
local runtime = require("nodelua.runtime")
local timer = require("nodelua.timer")

local M = {}

M.usage = [[
Usage: nodelua metrics [--json | --prom] [--interval SECONDS] [--groups LIST]

Prints one snapshot of this machine's metrics, from two samples taken
SECONDS apart (default 1) so that rates and percentages are real.

  --json            one JSON object (the default); fields in docs/metrics.md
  --prom            the Prometheus text format, with node_exporter's names
  --interval SECS   seconds between the two samples, from 0.01 to 3600
  --groups LIST     comma-separated groups (default all):
                    cpu,load,memory,network,storage,system,thermal,self
]]

local function usage_error(message)
  io.stderr:write("nodelua metrics: ", message, "; see nodelua metrics --help\n")
  return 2
end

local function parse(args)
  local opts = { format = "json", interval = 1, groups = nil }
  local i = 1
  while i <= #args do
    local a = args[i]
    local value = a:match("^%-%-[%w-]+=(.*)$")
    local flag = value and a:match("^(%-%-[%w-]+)=") or a
    local function take()
      if value then
        return value
      end
      i = i + 1
      return args[i]
    end
    if flag == "--help" or flag == "-h" then
      opts.help = true
    elseif flag == "--json" then
      opts.format = "json"
    elseif flag == "--prom" then
      opts.format = "prom"
    elseif flag == "--interval" then
      local v = take()
      local n = tonumber(v or "")
      if not n or n < 0.01 or n > 3600 then
        return nil, ("--interval takes seconds from 0.01 to 3600, not '%s'"):format(tostring(v))
      end
      opts.interval = n
    elseif flag == "--groups" then
      local v = take() or ""
      local known = {}
      for _, g in ipairs(metrics.groups()) do
        known[g] = true
      end
      opts.groups = {}
      for g in v:gmatch("[^,]+") do
        if not known[g] then
          return nil, ("unknown group '%s'"):format(g)
        end
        opts.groups[#opts.groups + 1] = g
      end
      if #opts.groups == 0 then
        return nil, "--groups needs at least one group"
      end
    else
      return nil, ("unknown argument '%s'"):format(a)
    end
    i = i + 1
  end
  return opts
end

function M.main(args)
  local opts, err = parse(args)
  if not opts then
    return usage_error(err)
  end
  if opts.help then
    io.stdout:write(M.usage)
    return 0
  end
  metrics.sample(opts.groups)
  timer.after(opts.interval, function()
    local snapshot = metrics.sample(opts.groups)
    if opts.format == "prom" then
      io.stdout:write(metrics.prometheus())
    else
      local cjson = require("cjson")
      snapshot.timestamp = os.date("!%Y-%m-%dT%H:%M:%SZ")
      io.stdout:write(cjson.encode(snapshot), "\n")
    end
    io.stdout:flush()
    runtime.exit(0)
  end)
  return 0
end

return M
