-- A policy for examples/heartbeat.lua: the script asks, the policy decides.
-- Edit it and send SIGHUP to a running script to see the change.
return {
  -- Seconds between beats.
  interval = function()
    return 0.05
  end,
  -- What one beat says.
  message = function(n, total)
    return ("beat %d of %d"):format(n, total)
  end,
}
