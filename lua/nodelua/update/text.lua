--- How self-update is shown: `nodelua update status` and `check`, as text
-- for people and as tables for JSON.
local M = {}

--- Text for `update status`.
function M.format_status(s)
  local lines = {
    ("running    %s"):format(s.running),
    ("current    %s"):format(s.current or "(the entry point's own)"),
    ("previous   %s"):format(s.previous or "-"),
    ("committed  %s"):format(s.committed or "-"),
    ("channel    %s (%s)"):format(s.channel, s.repository),
    ("self-update %s"):format(s.self_update),
  }
  if s.trial then
    lines[#lines + 1] = ("trial      %s, start %d, since %s%s"):format(s.trial.version, s.trial.starts,
      os.date("!%Y-%m-%dT%H:%M:%SZ", s.trial.since), s.trial_state and (" (" .. s.trial_state .. ")") or "")
  end
  for _, k in ipairs(s.skipped) do
    lines[#lines + 1] = ("skipped    %s: %s"):format(k.version, k.reason)
  end
  if s.last_check then
    lines[#lines + 1] = ("last check %s: %s"):format(os.date("!%Y-%m-%dT%H:%M:%SZ", s.last_check.time),
      s.last_check.outcome)
  end
  return table.concat(lines, "\n") .. "\n"
end

--- Text for `update check`.
function M.format_check(result)
  local lines = {}
  for _, c in ipairs(result.candidates) do
    lines[#lines + 1] = ("%-28s %s"):format(c.tag, c.accepted and "accepted" or ("refused: " .. c.why))
  end
  if #lines == 0 then
    lines[1] = "no release of ours"
  end
  lines[#lines + 1] = result.best and ("to install: %s"):format(result.best.tag) or "up to date"
  return table.concat(lines, "\n") .. "\n"
end

--- The JSON-able form of a check's result.
function M.check_table(result)
  local json = require("nodelua.json")
  local out = {}
  for _, c in ipairs(result.candidates) do
    out[#out + 1] = { tag = c.tag, channel = c.channel, version = c.version, accepted = c.accepted, why = c.why }
  end
  return { candidates = json.array(out), best = result.best and result.best.tag or nil }
end

return M
