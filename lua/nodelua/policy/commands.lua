--- The commands of `nodelua repl`, answered by the running agent. Each is
-- { summary = "one line for help", run = function(ctx, args) ... end }
-- where args are the words after the command and run returns the text to
-- print, or nil and a message (the repl then exits 1). ctx gives:
--   ctx.peers()   the live peer table (see nodelua.discovery)
--   ctx.status()  a table: version, uptime_seconds, spool, delivery, mdns
--   ctx.metrics() the latest samples (see docs/metrics.md)
-- A command may also return require("nodelua.repl").action(...): the REPL
-- client then acts itself (send does: the file goes from the client's
-- process, with its progress on the client's terminal).
-- Override this file in NODELUA_POLICY_DIR to add or change commands; SIGHUP
-- applies the change.
local format = require("nodelua.format")
local repl = require("nodelua.repl")

local commands = {}

commands.list = {
  summary = "the live peer table: id, name, best address, link, version",
  run = function(ctx)
    local peers = ctx.peers()
    if #peers == 0 then
      return "no peers\n"
    end
    return format.peer_table(peers)
  end,
}

commands.peers = {
  summary = "the live peer table as JSON, with every path of each peer",
  run = function(ctx)
    return format.peers_json(ctx.peers())
  end,
}

commands.status = {
  summary = "the agent: version, uptime, spool, delivery, discovery",
  run = function(ctx)
    local s = ctx.status()
    local lines = {
      ("version   %s"):format(s.version),
      ("uptime    %d s"):format(s.uptime_seconds),
      ("node      %s (%s)"):format(s.name, s.id),
      ("spool     %d reports waiting, %d bytes, %d dropped"):format(s.spool.depth, s.spool.bytes, s.spool.dropped),
      ("delivery  %d delivered, %d failed attempts, %d dead-lettered"):format(s.delivery.delivered,
        s.delivery.failed_attempts, s.delivery.dead_lettered),
      ("mDNS      %s; %d peers; transfer port %d"):format(s.mdns, s.peers, s.transfer_port),
    }
    return table.concat(lines, "\n") .. "\n"
  end,
}

commands.send = {
  summary = "send PEER PATH: a file to a peer (id, id prefix, name or host:port)",
  run = function(ctx, args)
    if #args ~= 2 then
      return nil, "usage: send PEER PATH"
    end
    local target, path = args[1], args[2]
    local host, port = format.host_port(target)
    if host then
      return repl.action("send", host, port, target, path)
    end
    local p, why = format.resolve_peer(ctx.peers(), target)
    if not p then
      return nil, why
    end
    -- The id last: the client checks that the node that answers proves it.
    return repl.action("send", p.best.address, p.best.port, ("%s (%s)"):format(p.name, p.id:sub(1, 12)), path, p.id)
  end,
}

local function percent(x)
  return x and ("%.1f%%"):format(x) or "-"
end

commands.metrics = {
  summary = "this node now: CPU, load, memory, and each interface's traffic",
  run = function(ctx)
    local m = ctx.metrics()
    local lines = {}
    local cpu = m.cpu and m.cpu.total
    lines[#lines + 1] = ("cpu       %s busy"):format(percent(cpu and cpu.usage_percent))
    if m.load then
      lines[#lines + 1] = ("load      %.2f %.2f %.2f"):format(m.load.load1, m.load.load5, m.load.load15)
    end
    if m.memory and m.memory.total then
      lines[#lines + 1] = ("memory    %s of %s used"):format(format.human_bytes(m.memory.used or 0),
        format.human_bytes(m.memory.total))
    end
    for _, nif in ipairs(m.network or {}) do
      if nif.up and nif.kind ~= "loopback" then
        local r = nif.rates or {}
        lines[#lines + 1] = ("%-9s %s in, %s out per second"):format(nif.name, format.human_bytes(r.rx_bytes or 0),
          format.human_bytes(r.tx_bytes or 0))
      end
    end
    return table.concat(lines, "\n") .. "\n"
  end,
}

return {
  commands = commands,
}
