--- The commands of `nodelua repl`, answered by the running agent. Each is
-- { summary = "one line for help", run = function(ctx, args) ... end }
-- where args are the words after the command and run returns the text to
-- print, or nil and a message (the repl then exits 1). ctx gives:
--   ctx.peers()   the live peer table (see nodelua.discovery)
--   ctx.status()  a table: version, uptime_seconds, spool, delivery, mdns
--   ctx.metrics() the latest samples (see docs/metrics.md)
--   ctx.update()  the agent's updater (nodelua.update), for `update`
-- A command may also return require("nodelua.repl").action(...): the REPL
-- client then acts itself (send does: the file goes from the client's
-- process, with its progress on the client's terminal).
-- Override this file in NODELUA_POLICY_DIR to add or change commands; SIGHUP
-- applies the change.
local format = require("nodelua.format")
local json = require("nodelua.json")
local log = require("nodelua.log")
local repl = require("nodelua.repl")
local timer = require("nodelua.timer")

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
  summary = "the agent: version, uptime, spool, delivery, discovery (--json for machines)",
  run = function(ctx, args)
    local s = ctx.status()
    if args[1] == "--json" then
      return json.encode(s) .. "\n"
    end
    return format.status_text(s)
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

commands.metrics = {
  summary = "this node now: CPU, load, memory, filesystems, interfaces (--json for machines)",
  run = function(ctx, args)
    local m = ctx.metrics()
    if args[1] == "--json" then
      return json.encode(m) .. "\n"
    end
    return format.metrics_text(m)
  end,
}

local function has_flag(args, flag)
  for i, a in ipairs(args) do
    if a == flag then
      table.remove(args, i)
      return true
    end
  end
  return false
end

commands.update = {
  summary = "update status|check|apply [VERSION]|rollback: this node's self-update",
  run = function(ctx, args)
    local updater = ctx.update and ctx.update()
    if not updater then
      return nil, "self-update is not running in this agent"
    end
    local update_mod = require("nodelua.update")
    local as_json = has_flag(args, "--json")
    local sub = args[1] or "status"
    if sub == "status" then
      local st = updater:status()
      return as_json and (json.encode(st) .. "\n") or update_mod.format_status(st)
    elseif sub == "check" then
      -- The answer is the agent's last check; a new one starts now (the
      -- control socket answers at once, a check takes a round trip).
      local last = updater.last_result
      updater:check(function(result)
        updater.last_result = result
      end)
      if not last then
        return "checking now; ask again in a few seconds\n"
      end
      return as_json and (json.encode(update_mod.check_table(last)) .. "\n") or update_mod.format_check(last)
    elseif sub == "apply" then
      local version = args[2]
      updater:apply(version, false, function(c, why)
        if c then
          return updater:restart()
        end
        log.error("update apply: %s", why)
        updater.last_apply_error = why
      end)
      return ("applying %s: the agent verifies it, installs it and restarts into it; `nodelua update status` "
        .. "shows the outcome\n"):format(version or "the newest accepted release")
    elseif sub == "rollback" then
      local version, why = updater:rollback("rolled back by hand")
      if not version then
        return nil, why
      end
      timer.after(0.2, function()
        updater:restart()
      end)
      return ("rolled back %s; the agent restarts into %s\n"):format(version,
        updater:status().current or "the entry point's own version")
    end
    return nil, "usage: update status|check|apply [VERSION]|rollback [--json]"
  end,
}

return {
  commands = commands,
}
