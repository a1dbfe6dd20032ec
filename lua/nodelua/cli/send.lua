--- `nodelua send <node-id|name|host:port> <path>`: sends one file to a peer,
-- authenticated with the cluster key, verified chunk by chunk and whole,
-- resumed if an earlier send of the same file was cut.
local cli = require("nodelua.cli.args")
local config = require("nodelua.config")
local discovery = require("nodelua.discovery")
local runtime = require("nodelua.runtime")
local files = require("nodelua.files")
local timer = require("nodelua.timer")
local transfer = require("nodelua.transfer")

local M = {}

M.usage = [[
Usage: nodelua send [--wait SECONDS] [--streams N] [--force] [--encrypt] <node-id|name|host:port> <path>

Sends the file at <path> to a peer: by host:port, or by node id (or a
prefix of it) or name, found over mDNS and NODELUA_PEERS within --wait
seconds (default 3). Both nodes need the same cluster key
(NODELUA_CLUSTER_KEY or NODELUA_CLUSTER_KEY_FILE). The file appears on the
peer, in its TRANSFER_DIR, only once its SHA-256 matches; a send that was
cut resumes when the same file is sent again. A file of the same name
already there is kept, and the send fails with "exists", unless --force.
A peer named by id or name must prove it is that node; a host:port send
takes whichever node answers there (with the cluster key). Progress goes to standard
error; the last line, on standard output, gives size, time, throughput and
SHA-256. Exit status 1 on any failure, with one line saying why.

  --wait SECS   seconds to look for the peer, from 0.1 to 600
  --streams N   parallel data streams, 1 to 64 (default TRANSFER_STREAMS)
  --force       replace a file of the same name on the peer
  --encrypt     encrypt the data (TLS 1.3 keyed by the cluster key) even
                where TRANSFER_ENCRYPT=false; the default is that setting
                (true)
]]

local SPEC = { ["--wait"] = "value", ["--streams"] = "value", ["--encrypt"] = "flag", ["--force"] = "flag" }

local function check(given)
  local opts = {
    wait = 3,
    streams = config.get("TRANSFER_STREAMS"),
    encrypt = given.encrypt or config.get("TRANSFER_ENCRYPT"),
    force = given.force or false,
  }
  if given.wait then
    opts.wait = tonumber(given.wait)
    if not opts.wait or opts.wait < 0.1 or opts.wait > 600 then
      return nil, ("--wait takes seconds from 0.1 to 600, not '%s'"):format(given.wait)
    end
  end
  if given.streams then
    opts.streams = math.tointeger(tonumber(given.streams))
    if not opts.streams or opts.streams < 1 or opts.streams > 64 then
      return nil, ("--streams takes 1 to 64, not '%s'"):format(given.streams)
    end
  end
  return opts
end

local function fail(message)
  io.stderr:write("nodelua send: ", message, "\n")
  return 1
end

--- host:port or [v6]:port, or nil.
function M.host_port(target)
  local host, port = target:match("^%[(.+)%]:(%d+)$")
  if not host then
    host, port = target:match("^([^:]+):(%d+)$")
  end
  port = math.tointeger(tonumber(port))
  if host and port and port >= 1 and port <= 65535 then
    return host, port
  end
  return nil
end

--- The peers that target names: an id prefix (4 hex digits or more) or a
-- name, exactly.
function M.matches(peers, target)
  local found = {}
  local lower = target:lower()
  for _, p in ipairs(peers) do
    if p.name == target or (#lower >= 4 and lower:match("^%x+$") and p.id:sub(1, #lower) == lower) then
      found[#found + 1] = p
    end
  end
  return found
end

function M.human_bytes(n)
  local units = { "B", "KiB", "MiB", "GiB", "TiB" }
  local i = 1
  while n >= 1024 and i < #units do
    n = n / 1024
    i = i + 1
  end
  return i == 1 and ("%d B"):format(math.floor(n)) or ("%.1f %s"):format(n, units[i])
end

local function progress_printer(size, chunk_size, on_tty)
  local last_line = -1
  return function(so_far)
    local done = math.min(size, so_far.chunks_skipped * chunk_size + so_far.bytes_sent)
    local pct = size > 0 and done * 100 / size or 100
    local rate = so_far.seconds > 0 and so_far.bytes_sent / so_far.seconds or 0
    local eta = rate > 0 and (size - done) / rate or 0
    local text = ("%3d%%  %9s/s  ETA %ds"):format(math.floor(pct), M.human_bytes(rate), math.ceil(eta))
    if on_tty then
      local width = 30
      local fill = math.floor(pct * width / 100)
      io.stderr:write(("\r[%s%s] %s"):format(("#"):rep(fill), (" "):rep(width - fill), text))
    elseif math.floor(so_far.seconds) > last_line then
      last_line = math.floor(so_far.seconds)
      io.stderr:write(text, "\n")
    end
    io.stderr:flush()
  end
end

--- Sends path to host:port. expect_id, when given, is the node id the
-- receiver must prove it has (a send by id or name); nil for host:port.
local function send(opts, host, port, path, peer_label, expect_id)
  local key, why = files.cluster_key()
  if not key then
    return fail(why)
  end
  local f = io.open(path, "rb")
  if not f then
    return fail(("%s: cannot open it"):format(path))
  end
  local size = f:seek("end")
  f:close()
  local chunk_size = 4 * 1024 * 1024
  local tty = transfer.isatty(2)
  local result, err = transfer.send_file({
    host = host,
    port = port,
    path = path,
    key = key,
    -- Without an id of its own, the core makes a random one for this send.
    node_id = discovery.read_node_id(config.get("NODELUA_STATE_DIR")),
    expect_id = expect_id,
    replace = opts.force,
    streams = opts.streams,
    chunk_size = chunk_size,
    encrypt = opts.encrypt,
  }, progress_printer(size, chunk_size, tty))
  if tty then
    io.stderr:write("\n")
  end
  if not result then
    return fail(err)
  end
  local rate = result.seconds > 0 and result.bytes_sent / result.seconds or 0
  local notes = {}
  if result.chunks_skipped > 0 then
    notes[#notes + 1] = ("resumed: %d of %d chunks were there already"):format(result.chunks_skipped, result.chunks)
  end
  if result.chunks_resent > 0 then
    notes[#notes + 1] = ("%d chunks sent again after a failed check"):format(result.chunks_resent)
  end
  io.stdout:write(("sent %s to %s: %s in %.2f s (%s/s), sha256 %s%s\n"):format(path, peer_label,
    M.human_bytes(result.size), result.seconds, M.human_bytes(rate), result.sha256,
    #notes > 0 and (" (" .. table.concat(notes, "; ") .. ")") or ""))
  return 0
end

function M.main(args)
  -- Flags (and the values of those that take one) apart from the two
  -- positional arguments.
  local positional, flags = {}, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a:sub(1, 1) == "-" and #a > 1 then
      flags[#flags + 1] = a
      if SPEC[a] == "value" and args[i + 1] then
        flags[#flags + 1] = args[i + 1]
        i = i + 1
      end
    else
      positional[#positional + 1] = a
    end
    i = i + 1
  end
  local opts, status = cli.start("send", M.usage, flags, SPEC, check)
  if not opts then
    return status
  end
  if #positional ~= 2 then
    io.stderr:write("nodelua send: needs a peer and a file; see nodelua send --help\n")
    return 2
  end
  local target, path = positional[1], positional[2]
  local host, port = M.host_port(target)
  if host then
    runtime.exit(send(opts, host, port, path, target))
    return 0
  end
  local finder, err = discovery.start({ advertise = false, quiet = true,
    id = discovery.read_node_id(config.get("NODELUA_STATE_DIR")) or ("0"):rep(32) })
  if not finder then
    return fail(err)
  end
  local waited = 0
  local poll
  poll = timer.every(0.1, function()
    waited = waited + 0.1
    local found = M.matches(finder:peers(), target)
    if #found == 1 or waited >= opts.wait then
      poll:cancel()
      finder:stop()
      if #found == 0 then
        runtime.exit(fail(("no peer '%s' answered within %s s (by id, id prefix or name; see nodelua list)")
          :format(target, opts.wait)))
      elseif #found > 1 then
        local ids = {}
        for _, p in ipairs(found) do
          ids[#ids + 1] = p.id:sub(1, 12)
        end
        runtime.exit(fail(("'%s' names %d peers (%s): give an id"):format(target, #found, table.concat(ids, ", "))))
      else
        local best = found[1].best
        runtime.exit(send(opts, best.address, best.port, path,
          ("%s (%s) at %s"):format(found[1].name, found[1].id:sub(1, 12), best.address), found[1].id))
      end
    end
  end)
  return 0
end

return M
