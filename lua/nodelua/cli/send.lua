--- `nodelua send <node-id|name|host:port> <path>`: sends one file to a peer,
-- authenticated with the cluster key, verified chunk by chunk and whole,
-- resumed if an earlier send of the same file was cut.
local cli = require("nodelua.cli.args")
local config = require("nodelua.config")
local discovery = require("nodelua.discovery")
local runtime = require("nodelua.runtime")
local files = require("nodelua.files")
local format = require("nodelua.format")
local timer = require("nodelua.timer")
local transfer = require("nodelua.transfer")

local M = {}

M.usage = [[
Usage: nodelua send [--wait SECONDS] [--streams N] [--force] [--encrypt] [--sha256] <node-id|name|host:port> <path>

Sends the file at <path> to a peer: by host:port, or by node id (or a
prefix of it) or name, found over mDNS and NODELUA_PEERS within --wait
seconds (default 3). Both nodes need the same cluster key
(NODELUA_CLUSTER_KEY or NODELUA_CLUSTER_KEY_FILE). The file appears on the
peer, in its TRANSFER_DIR, only once every chunk's SHA-256 and the tree
digest over them match (what `nodelua hash` prints); a send that was cut
resumes when the same file is sent again. A file of the same name
already there is kept, and the send fails with "exists", unless --force.
A peer named by id or name must prove it is that node; a host:port send
takes whichever node answers there (with the cluster key). Progress goes to standard
error; the last line, on standard output, gives size, time, throughput and
the tree digest. Exit status 1 on any failure, with one line saying why.

  --wait SECS   seconds to look for the peer, from 0.1 to 600
  --streams N   parallel data streams, 1 to 64, or auto (default
                TRANSFER_STREAMS: auto, 4 doubled up to 16 while the rate grows)
  --force       replace a file of the same name on the peer
  --encrypt     encrypt the data (TLS 1.3 keyed by the cluster key) even
                where TRANSFER_ENCRYPT=false; the default is that setting
                (true)
  --sha256      both sides also compute the plain SHA-256 (sha256sum's) while
                sending, and compare it; the last line prints it too
]]

local SPEC = {
  ["--wait"] = "value",
  ["--streams"] = "value",
  ["--encrypt"] = "flag",
  ["--force"] = "flag",
  ["--sha256"] = "flag",
}

local function check(given)
  local opts = {
    wait = 3,
    streams = config.get("TRANSFER_STREAMS"),
    encrypt = given.encrypt or config.get("TRANSFER_ENCRYPT"),
    force = given.force or false,
    sha256 = given.sha256 or false,
  }
  if given.wait then
    opts.wait = tonumber(given.wait)
    if not opts.wait or opts.wait < 0.1 or opts.wait > 600 then
      return nil, ("--wait takes seconds from 0.1 to 600, not '%s'"):format(given.wait)
    end
  end
  if given.streams == "auto" then
    opts.streams = 0 -- the core's auto
  elseif given.streams then
    local why
    opts.streams, why = cli.integer(given, "streams", 1, 64)
    if not opts.streams then
      return nil, why
    end
  end
  return opts
end

local function fail(message)
  io.stderr:write("nodelua send: ", message, "\n")
  return 1
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
    sha256 = opts.sha256,
    hash_threads = config.get("TRANSFER_HASH_THREADS"),
    rdma = config.get("TRANSFER_RDMA"),
  }, format.progress(size, chunk_size, tty))
  if tty then
    io.stderr:write("\n")
  end
  if not result then
    return fail(err)
  end
  io.stdout:write(format.sent_line(path, peer_label, result))
  io.stdout:flush()
  return 0
end

--- The REPL client's send (src/repl_client.c): the agent chose where to
-- (it knows the peers) and the client checked that the file is the one
-- its user typed. args: host, port, peer label, path, and the node id the
-- receiver must prove (absent for a host:port send). Returns the exit
-- status: 0 sent, 1 not.
function M.from_repl(args)
  local host, port, label, path, expect_id = args[1], math.tointeger(tonumber(args[2])), args[3], args[4], args[5]
  if not (host and port and label and path) then
    return fail("the REPL asked for a send without host, port, peer and path")
  end
  local opts = {
    streams = config.get("TRANSFER_STREAMS"),
    encrypt = config.get("TRANSFER_ENCRYPT"),
    force = false,
    sha256 = false,
  }
  return send(opts, host, port, path, label, expect_id)
end

function M.main(args)
  local flags, positional = cli.split(args, SPEC)
  local opts, status = cli.start("send", M.usage, flags, SPEC, check)
  if not opts then
    return status
  end
  if #positional ~= 2 then
    io.stderr:write("nodelua send: needs a peer and a file; see nodelua send --help\n")
    return 2
  end
  local target, path = positional[1], positional[2]
  local host, port = format.host_port(target)
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
    local found = format.matches(finder:peers(), target)
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
