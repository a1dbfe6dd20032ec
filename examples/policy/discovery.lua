-- Discovery that prefers one subnet: a path into 10.1.0.0/16 (say, the
-- storage network) beats every other, whatever its kind; among such paths,
-- and among the rest, the shipped ranking decides. Timings and hooks are
-- the shipped policy's.
local base = require("nodelua.policy.discovery")

local M = setmetatable({}, { __index = base })

local PREFERRED = "^10%.1%.%d+%.%d+$"
local BONUS = 1e12 -- above anything the shipped score gives

function M.score(path)
  local score = base.score(path)
  if path.address and path.address:match(PREFERRED) then
    score = score + BONUS
  end
  return score
end

return M
