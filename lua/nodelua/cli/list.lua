--- `nodelua list [--wait SECONDS] [--json]`: browses for peers over mDNS
-- (and probes NODELUA_PEERS) for a while, then prints what answered.
local cli = require("nodelua.cli.args")
local config = require("nodelua.config")
local discovery = require("nodelua.discovery")
local format = require("nodelua.format")
local runtime = require("nodelua.runtime")
local timer = require("nodelua.timer")

local M = {}

M.usage = [[
Usage: nodelua list [--wait SECONDS] [--json]

Browses for nodelua peers over mDNS (and probes NODELUA_PEERS) for SECONDS
(default 2), then prints every peer that answered its liveness probe: id,
name, best address, the link of that path and the agent version. This node
itself is not listed. Exit status 1 when mDNS could not be used.

  --wait SECS   seconds to browse, from 0.1 to 600
  --json        a JSON array of peers, with every path of each
]]

local function check(given)
  local opts = { json = given.json, wait = 2 }
  if given.wait then
    local n = tonumber(given.wait)
    if not n or n < 0.1 or n > 600 then
      return nil, ("--wait takes seconds from 0.1 to 600, not '%s'"):format(given.wait)
    end
    opts.wait = n
  end
  return opts
end

function M.main(args)
  local opts, status = cli.start("list", M.usage, args, { ["--json"] = "flag", ["--wait"] = "value" }, check)
  if not opts then
    return status
  end
  local finder, err = discovery.start({
    advertise = false,
    quiet = true,
    -- Without an id of its own, one that matches nobody.
    id = discovery.read_node_id(config.get("NODELUA_STATE_DIR")) or ("0"):rep(32),
  })
  if not finder then
    io.stderr:write("nodelua list: ", err, "\n")
    return 1
  end
  timer.after(opts.wait, function()
    local peers = finder:peers()
    local mdns_ok = finder.mdns_state ~= "failed"
    finder:stop()
    if opts.json then
      io.stdout:write(format.peers_json(peers))
    else
      io.stdout:write(format.peer_table(peers))
      if #peers == 0 then
        io.stderr:write(("nodelua list: no peer answered within %s s\n"):format(opts.wait))
      end
    end
    io.stdout:flush()
    runtime.exit(mdns_ok and 0 or 1)
  end)
  return 0
end

return M
