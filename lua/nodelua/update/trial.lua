--- A new version's trial: the health policy decides whether it stays.
local log = require("nodelua.log")
local runtime = require("nodelua.runtime")
local timer = require("nodelua.timer")
local update = require("nodelua.update.native")

local M = {}

M.CHECK_SECONDS = 2 -- how often the health checks are asked

--- The trial of the running version, if it is on one: the health policy's
-- checks every CHECK_SECONDS until all pass (commit) or one fails or time
-- runs out (roll back and restart). updater: the agent's (nodelua.update);
-- ctx: what the checks get (see policy/health.lua). Returns true when the
-- running version is on trial.
function M.run(self, ctx)
  local st = self:state()
  local trial = st.trial
  if not trial or os.getenv("NODELUA_LAUNCHED") ~= trial.version then
    return false
  end
  local running = runtime.version()
  if trial.version ~= running then
    self:rollback(("its binary says it is %s"):format(running))
    self:restart()
    return true
  end
  local deadline = runtime.now() + self.health_timeout
  log.info("update: %s is on trial (start %d): health checks for up to %d s", running, trial.starts,
    self.health_timeout)
  local passed = {}
  local function finish(ok, why)
    -- Only the trial's timer: the periodic check goes on after a commit.
    if self.timers.trial then
      self.timers.trial:cancel()
    end
    self.timers.trial = nil
    if ok then
      local done, err = update.commit(self.dir, running)
      if not done then
        log.error("update: cannot commit %s: %s", running, err)
        return
      end
      local pruned = update.prune(self.dir)
      log.info("update: %s passed its trial and is committed%s", running,
        #pruned > 0 and (" (removed " .. table.concat(pruned, ", ") .. ")") or "")
      self.trial_state = "committed"
      return
    end
    self.trial_state = "failed"
    self:rollback(why)
    self:restart()
  end
  self.trial_state = "running"
  self.timers.trial = timer.every(M.CHECK_SECONDS, function()
    local policy = self.policies:get("health")
    local checks = type(policy) == "table" and type(policy.checks) == "table" and policy.checks or {}
    local all = true
    for _, c in ipairs(checks) do
      if not passed[c.name] then
        local ok, verdict, why = runtime.pcall(c.check, ctx)
        if not ok then
          return finish(false, ("health check '%s' failed: %s"):format(c.name, tostring(verdict)))
        elseif verdict == "fail" then
          return finish(false, ("health check '%s' failed%s"):format(c.name, why and (": " .. why) or ""))
        elseif verdict == "pass" then
          passed[c.name] = true
          log.info("update: trial: %s%s", c.name, why and (" (" .. why .. ")") or "")
        else
          all = false
        end
      end
    end
    if all then
      return finish(true)
    end
    if runtime.now() >= deadline then
      local waiting = {}
      for _, c in ipairs(checks) do
        if not passed[c.name] then
          waiting[#waiting + 1] = c.name
        end
      end
      finish(false, ("the trial timed out after %d s waiting for: %s"):format(self.health_timeout,
        table.concat(waiting, "; ")))
    end
  end)
  return true
end

return M
