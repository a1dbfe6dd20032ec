--- The schedule of `nodelua agent`: seconds between samples of each metrics
-- group, and between reports. The defaults are the predecessor's: CPU every
-- 2 s, network every 5 s, storage every 10 s, a report every 5 s
-- (REPORT_INTERVAL). Override this file in NODELUA_POLICY_DIR to change
-- them; SIGHUP applies the change to a running agent.
local config = require("nodelua.config")

return {
  intervals = function()
    return {
      cpu = 2,
      load = 2,
      memory = 2,
      network = 5,
      storage = 10,
      thermal = 10,
      self = 10,
      -- The system group (uptime) is read afresh for every report.
      report = config.get("REPORT_INTERVAL"),
    }
  end,
}
