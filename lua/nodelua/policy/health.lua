--- How a new version proves itself during its trial (UPDATE_HEALTH_TIMEOUT
-- seconds). Each check is called every 2 s until it says "pass" or "fail";
-- "wait" means not yet. All passing commits the version; one failing, or
-- the timeout, rolls it back. Override or extend this file like any policy.
--
-- ctx: {
--   status()    the agent's status (spool, delivery, mdns, ...)
--   healthz()   the last answer of GET /healthz on METRICS_LISTEN:
--               nil (none yet), or {status = 200, ...}; absent when the
--               endpoint is off
--   policies    the policy loader (to load each policy)
--   started     when this version started (monotonic seconds)
-- }

local M = {}

local function policies_load(ctx)
  for _, name in ipairs({ "schedule", "report", "discovery", "commands", "update" }) do
    local p, err = ctx.policies:get(name)
    if not p then
      return "fail", ("policy %s does not load: %s"):format(name, tostring(err))
    end
  end
  return "pass"
end

local function spool_writable(ctx)
  local st = ctx.status()
  if st.spool_errors and st.spool_errors > 0 then
    return "fail", "a report could not be written to the spool"
  end
  return st.reports > 0 and "pass" or "wait"
end

local function healthz(ctx)
  if not ctx.healthz then
    return "pass" -- the endpoint is off (METRICS_LISTEN empty)
  end
  local answer = ctx.healthz()
  if not answer then
    return "wait"
  end
  return answer.status == 200 and "pass" or "fail", ("/healthz answered %s"):format(tostring(answer.status))
end

-- A report delivered, or the API confirmed unreachable for reasons outside
-- the node: no answer at all (refused, timed out, no route), as opposed
-- to an answer that says our report is wrong.
local function report_delivered(ctx)
  local d = ctx.status().delivery
  if d.delivered and d.delivered > 0 then
    return "pass"
  end
  if d.dead_lettered and d.dead_lettered > 0 then
    return "fail", "the monitoring API refused a report of this version"
  end
  if d.unreachable and d.unreachable >= 2 then
    return "pass", "the monitoring API does not answer (not this version's doing)"
  end
  return "wait"
end

M.checks = {
  { name = "the configuration and policies load", check = policies_load },
  { name = "the spool is writable", check = spool_writable },
  { name = "/healthz answers", check = healthz },
  { name = "a report is delivered (or the API is unreachable)", check = report_delivered },
}

return M
