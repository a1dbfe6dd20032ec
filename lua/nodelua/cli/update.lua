--- `nodelua update check|apply [VERSION]|rollback|status [--json]`, when no
-- agent answers on the control socket (src/main.c asks the agent first):
-- the same updater, in this process. apply installs and begins the trial;
-- the launcher starts the new version with the next `nodelua agent`.
local config = require("nodelua.config")
local discovery = require("nodelua.discovery")
local http = require("nodelua.http")
local json = require("nodelua.json")
local policy = require("nodelua.policy")
local runtime = require("nodelua.runtime")
local update_mod = require("nodelua.update")

local M = {}

M.usage = [[
Usage: nodelua update status|check|apply [VERSION]|rollback [--json]

  status     the running, current and previous versions, the trial, the
             skipped versions and the last check
  check      the releases of UPDATE_REPOSITORY and why each is accepted or
             refused
  apply      verify and install the newest accepted release (or VERSION),
             on trial: the agent starts it, and keeps it only if it passes
             its health checks within UPDATE_HEALTH_TIMEOUT
  rollback   back to the previous version, recording this one as skipped

With a running agent (its control socket), the agent does it; otherwise
this command does. They work whatever AUTO_UPDATE says. Exit status 0
done, 1 failed (with one line saying why), 2 usage.
]]

local function fail(why)
  io.stderr:write("nodelua update: ", tostring(why), "\n")
  return 1
end

function M.main(args)
  local as_json = false
  local words = {}
  for _, a in ipairs(args) do
    if a == "--json" then
      as_json = true
    elseif a == "--help" or a == "-h" then
      io.stdout:write(M.usage)
      return 0
    else
      words[#words + 1] = a
    end
  end
  local sub = words[1]
  local known = { status = 1, check = 1, apply = 2, rollback = 1 }
  if not sub or not known[sub] or #words > known[sub] then
    io.stderr:write("nodelua update: ", sub and ("unknown '" .. table.concat(words, " ") .. "'")
      or "needs a subcommand", "; see nodelua update --help\n")
    return 2
  end
  local client = http.client({ connect_timeout = 10, timeout = 600, user_agent = "nodelua/" .. runtime.version() })
  local updater = update_mod.new({ policies = policy.default(), client = client,
    node_id = discovery.read_node_id(config.get("NODELUA_STATE_DIR")) or "" })
  local function finish(code)
    client:close()
    runtime.exit(code)
    return 0
  end
  if sub == "status" then
    local st = updater:status()
    io.stdout:write(as_json and (json.encode(st) .. "\n") or update_mod.format_status(st))
    return finish(0)
  elseif sub == "rollback" then
    local version, why = updater:rollback("rolled back by hand")
    if not version then
      return finish(fail(why))
    end
    io.stdout:write(("rolled back %s; the next `nodelua agent` runs %s\n"):format(version,
      updater:status().current or "the entry point's own version"))
    return finish(0)
  elseif sub == "check" then
    updater:check(function(result, why)
      if not result then
        return finish(fail(why))
      end
      io.stdout:write(as_json and (json.encode(update_mod.check_table(result)) .. "\n")
        or update_mod.format_check(result))
      finish(0)
    end)
    return 0
  end
  updater:apply(words[2], false, function(c, why)
    if not c then
      return finish(fail(why))
    end
    io.stdout:write(("installed %s on trial; the next `nodelua agent` starts it and keeps it if it passes its " ..
      "health checks\n"):format(c.tag))
    finish(0)
  end)
  return 0
end

return M
