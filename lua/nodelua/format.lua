--- How nodelua shows things to people, in one place: sizes and rates, the
-- progress bar of a send, the peer table, and which peer a word names.
-- The commands (`nodelua list`, `nodelua send`) and the REPL's commands
-- policy both use it, so that the terminal and the REPL say the same thing
-- the same way. A policy may require it.
local json = require("nodelua.json")

local M = {}

--- 1536 -> "1.5 KiB"; bytes below 1 KiB as "512 B".
function M.human_bytes(n)
  local units = { "B", "KiB", "MiB", "GiB", "TiB" }
  local i = 1
  while n >= 1024 and i < #units do
    n = n / 1024
    i = i + 1
  end
  return i == 1 and ("%d B"):format(math.floor(n)) or ("%.1f %s"):format(n, units[i])
end

--- Bytes per second over seconds, or 0 before any time has passed.
function M.rate(bytes, seconds)
  return seconds > 0 and bytes / seconds or 0
end

--- host:port or [v6]:port as host and port, or nil.
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

--- The one peer that target names, or nil and why (none, or several).
function M.resolve_peer(peers, target)
  local found = M.matches(peers, target)
  if #found == 1 then
    return found[1]
  elseif #found == 0 then
    return nil, ("no peer '%s' (by id, id prefix or name; see list)"):format(target)
  end
  local ids = {}
  for _, p in ipairs(found) do
    ids[#ids + 1] = p.id:sub(1, 12)
  end
  return nil, ("'%s' names %d peers (%s): give an id"):format(target, #found, table.concat(ids, ", "))
end

--- A function that draws a send's progress on standard error: a bar in
-- place on a terminal, otherwise a line a second. chunk_size: what a chunk
-- found already there counts for.
function M.progress(size, chunk_size, on_tty)
  local last_line = -1
  return function(so_far)
    local done = math.min(size, so_far.chunks_skipped * chunk_size + so_far.bytes_sent)
    local pct = size > 0 and done * 100 / size or 100
    local rate = M.rate(so_far.bytes_sent, so_far.seconds)
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

--- The line a finished send prints: size, time, rate, the tree digest (and
-- the plain SHA-256 when asked), and what was resumed or sent again.
function M.sent_line(path, peer_label, result)
  local notes = {}
  if result.chunks_skipped > 0 then
    notes[#notes + 1] = ("resumed: %d of %d chunks were there already"):format(result.chunks_skipped, result.chunks)
  end
  if result.chunks_resent > 0 then
    notes[#notes + 1] = ("%d chunks sent again after a failed check"):format(result.chunks_resent)
  end
  if (result.chunks_rdma or 0) > 0 then
    notes[#notes + 1] = ("%d chunks over RDMA"):format(result.chunks_rdma)
  end
  return ("sent %s to %s: %s in %.2f s (%s/s), tree %s%s%s\n"):format(path, peer_label,
    M.human_bytes(result.size), result.seconds, M.human_bytes(M.rate(result.bytes_sent, result.seconds)),
    result.tree, result.sha256 and (", sha256 " .. result.sha256) or "",
    #notes > 0 and (" (" .. table.concat(notes, "; ") .. ")") or "")
end

--- "ethernet 10 Gb/s", "wifi", ...: a path's link, at the slower end's
-- speed.
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

--- The peer table (`nodelua list`, the REPL's `list`).
function M.peer_table(peers)
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

local function percent(x)
  return x and ("%.1f%%"):format(x) or "-"
end

--- A snapshot of this machine for people (`nodelua metrics`, the REPL's
-- `metrics`), as df, free and ip -s link would show it: CPU and load,
-- memory, each filesystem, each interface that is up with its rates.
-- m: metrics.sample() or metrics.latest().
function M.metrics_text(m)
  local lines = {}
  local cpu = m.cpu and m.cpu.total
  if cpu then
    local modes = {}
    for _, mode in ipairs({ "user", "system", "iowait", "steal" }) do
      local p = cpu.percent and cpu.percent[mode]
      if p and p >= 0.05 then
        modes[#modes + 1] = ("%s %s"):format(mode, percent(p))
      end
    end
    lines[#lines + 1] = ("cpu       %s busy%s%s"):format(percent(cpu.usage_percent),
      #modes > 0 and (" (" .. table.concat(modes, ", ") .. ")") or "",
      m.cpu.logical_cores and (", %d cores"):format(m.cpu.logical_cores) or "")
  end
  if m.load then
    lines[#lines + 1] = ("load      %.2f %.2f %.2f"):format(m.load.load1, m.load.load5, m.load.load15)
  end
  local mem = m.memory
  if mem and mem.total then
    lines[#lines + 1] = ("memory    %s of %s used, %s available%s"):format(M.human_bytes(mem.used or 0),
      M.human_bytes(mem.total), M.human_bytes(mem.available or 0),
      (mem.swap_total or 0) > 0 and ("; swap %s of %s"):format(M.human_bytes(mem.swap_used or 0),
        M.human_bytes(mem.swap_total)) or "")
  end
  for _, fs in ipairs(m.storage and m.storage.filesystems or {}) do
    local share = fs.size and fs.size > 0 and fs.used and (" (%d%%)"):format(math.floor(fs.used * 100 / fs.size + 0.5))
      or ""
    lines[#lines + 1] = ("disk      %-20s %10s of %10s%s  %s %s%s"):format(fs.mount, M.human_bytes(fs.used or 0),
      M.human_bytes(fs.size or 0), share, fs.fstype or "?", fs.device or "", fs.readonly and " (read-only)" or "")
  end
  for _, nif in ipairs(m.network or {}) do
    if nif.up and nif.kind ~= "loopback" then
      local r = nif.rates or {}
      lines[#lines + 1] = ("net       %-12s %9s/s in, %9s/s out  %s"):format(nif.name, M.human_bytes(r.rx_bytes or 0),
        M.human_bytes(r.tx_bytes or 0), M.link_text(nif))
    end
  end
  return table.concat(lines, "\n") .. "\n"
end

--- The agent's status for people (`nodelua repl status`, `deploy.sh
-- status`).
function M.status_text(s)
  local d = s.delivery or {}
  local lines = {
    ("version   %s"):format(s.version),
    ("uptime    %d s"):format(s.uptime_seconds),
    ("node      %s (%s)"):format(s.name, s.id),
    ("spool     %d reports waiting, %s, %d dropped"):format(s.spool.depth, M.human_bytes(s.spool.bytes),
      s.spool.dropped),
    ("delivery  %d delivered, %d failed attempts, %d dead-lettered%s"):format(d.delivered or 0,
      d.failed_attempts or 0, d.dead_lettered or 0, d.last_error and ("; last error: " .. d.last_error) or ""),
    ("mDNS      %s; %d peers; transfer port %d"):format(s.mdns, s.peers, s.transfer_port),
  }
  return table.concat(lines, "\n") .. "\n"
end

--- The peers as a JSON array, every path of each (`list --json`, `peers`).
function M.peers_json(peers)
  for _, p in ipairs(peers) do
    p.caps = json.array(p.caps)
    p.paths = json.array(p.paths)
  end
  return json.encode(json.array(peers)) .. "\n"
end

return M
