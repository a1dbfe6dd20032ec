--- `nodelua list [--wait SECONDS] [--json]`: browses for peers over mDNS
-- (and probes NODELUA_PEERS) for a while, then prints what answered.
local cli = require("nodelua.cli.args")
local config = require("nodelua.config")
local discovery = require("nodelua.discovery")
local json = require("nodelua.json")
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

--- "ethernet 10 Gb/s", "wifi", ...
function M.link_text(path)
  if not path then
    return "-"
  end
  local kind = path.kind or "?"
  local speed = path.speed_mbps
  if path.remote_speed_mbps and (not speed or path.remote_speed_mbps < speed) then
    speed = path.remote_speed_mbps
  end
  if not speed then
    return kind
  elseif speed >= 1000 and speed % 1000 == 0 then
    return ("%s %d Gb/s"):format(kind, speed // 1000)
  end
  return ("%s %d Mb/s"):format(kind, speed)
end

--- The table `list` prints (also the REPL's `list`).
function M.format_table(peers)
  local rows = { { "ID", "NAME", "ADDRESS", "LINK", "VERSION" } }
  for _, p in ipairs(peers) do
    local best = p.best
    local address = best and (best.address:find(":") and ("[%s]:%d"):format(best.address, best.port)
      or ("%s:%d"):format(best.address, best.port)) or "-"
    rows[#rows + 1] = { p.id:sub(1, 12), p.name, address, M.link_text(best), p.version }
  end
  local widths = {}
  for _, row in ipairs(rows) do
    for c, cell in ipairs(row) do
      widths[c] = math.max(widths[c] or 0, utf8.len(cell) or #cell)
    end
  end
  local out = {}
  for _, row in ipairs(rows) do
    local cells = {}
    for c, cell in ipairs(row) do
      local pad = c < #row and (" "):rep(widths[c] - (utf8.len(cell) or #cell) + 2) or ""
      cells[#cells + 1] = cell .. pad
    end
    out[#out + 1] = table.concat(cells)
  end
  return table.concat(out, "\n") .. "\n"
end

function M.format_json(peers)
  for _, p in ipairs(peers) do
    p.caps = json.array(p.caps)
    p.paths = json.array(p.paths)
  end
  return json.encode(json.array(peers)) .. "\n"
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
      io.stdout:write(M.format_json(peers))
    else
      io.stdout:write(M.format_table(peers))
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
