--- The commands of `nodelua repl`, answered by the running agent. Each is
-- { summary = "one line for help", run = function(ctx, args) ... end }
-- where args are the words after the command and run returns the text to
-- print, or nil and a message (the repl then exits 1). ctx gives:
--   ctx.peers()   the live peer table (see nodelua.discovery)
--   ctx.status()  a table: version, uptime_seconds, spool, delivery, mdns
-- Override this file in NODELUA_POLICY_DIR to add or change commands; SIGHUP
-- applies the change.
local list = require("nodelua.cli.list")

local commands = {}

commands.list = {
  summary = "the live peer table: id, name, best address, link, version",
  run = function(ctx)
    local peers = ctx.peers()
    if #peers == 0 then
      return "no peers\n"
    end
    return list.format_table(peers)
  end,
}

commands.peers = {
  summary = "the live peer table as JSON, with every path of each peer",
  run = function(ctx)
    return list.format_json(ctx.peers())
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

return {
  commands = commands,
}
