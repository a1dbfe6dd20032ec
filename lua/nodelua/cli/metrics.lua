--- `nodelua metrics [--json|--prom] [--interval SECONDS] [--groups LIST]`:
-- text for people by default (nodelua.format.metrics_text), JSON or the
-- Prometheus text for machines.
-- Takes two samples --interval apart (on the loop, never sleeping) so that
-- rates and percentages are real, then prints one snapshot.
local cli = require("nodelua.cli.args")
local metrics = require("nodelua.metrics")
local runtime = require("nodelua.runtime")
local timer = require("nodelua.timer")

local M = {}

M.usage = [[
Usage: nodelua metrics [--json | --prom] [--interval SECONDS] [--groups LIST]

Prints one snapshot of this machine's metrics, from two samples taken
SECONDS apart (default 1) so that rates and percentages are real: by
default as text for people (CPU and load, memory, each filesystem, each
interface with its rates).

  --json            one JSON object; fields in docs/metrics.md
  --prom            the Prometheus text format, with node_exporter's names
  --interval SECS   seconds between the two samples, from 0.01 to 3600
  --groups LIST     comma-separated groups (default all):
                    cpu,load,memory,network,storage,system,thermal,self
]]

local function check(given)
  if given.json and given.prom then
    return nil, "choose one of --json and --prom"
  end
  local opts = { format = given.prom and "prom" or given.json and "json" or "text", interval = 1 }
  if given.interval then
    local n = tonumber(given.interval)
    if not n or n < 0.01 or n > 3600 then
      return nil, ("--interval takes seconds from 0.01 to 3600, not '%s'"):format(given.interval)
    end
    opts.interval = n
  end
  if given.groups then
    local known = {}
    for _, g in ipairs(metrics.groups()) do
      known[g] = true
    end
    opts.groups = {}
    for g in given.groups:gmatch("[^,]+") do
      if not known[g] then
        return nil, ("unknown group '%s'"):format(g)
      end
      opts.groups[#opts.groups + 1] = g
    end
    if #opts.groups == 0 then
      return nil, "--groups needs at least one group"
    end
  end
  return opts
end

local SPEC = { ["--json"] = "flag", ["--prom"] = "flag", ["--interval"] = "value", ["--groups"] = "value" }

function M.main(args)
  local opts, status = cli.start("metrics", M.usage, args, SPEC, check)
  if not opts then
    return status
  end
  metrics.sample(opts.groups)
  timer.after(opts.interval, function()
    local snapshot = metrics.sample(opts.groups)
    if opts.format == "prom" then
      io.stdout:write(metrics.scrape())
    elseif opts.format == "text" then
      io.stdout:write(require("nodelua.format").metrics_text(snapshot))
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
