-- A report policy that extends the shipped one: the same report, plus the
-- site this node stands in (from NODE_SITE in the environment, or "lab").
-- Everything else (destination, full_info_every) is the shipped policy's.
local base = require("nodelua.policy.report")
local json = require("nodelua.json")

local M = setmetatable({}, { __index = base })

local site = os.getenv("NODE_SITE") or "lab"

function M.build(latest, ctx)
  local payload = base.payload(latest, ctx)
  payload.site = site
  return json.encode(payload)
end

return M
