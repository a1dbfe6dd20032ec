--- Ranking: the discovery policy's score() of each path, the best path of
-- each peer, and the peers as callers see them (copies), best first.
-- Methods of the discovery object (mixed in by nodelua.discovery).
local log = require("nodelua.log")
local runtime = require("nodelua.runtime")

local ranking = {}
local Discovery = {}
ranking.methods = Discovery

function Discovery:score(path)
  local fn = self.policies:get("discovery")
  fn = fn and fn.score
  if type(fn) ~= "function" then
    return 0
  end
  local ok, score = runtime.pcall(fn, path)
  if not ok or type(score) ~= "number" then
    if not self.score_error_logged then
      self.score_error_logged = true
      log.error("discovery policy: score() failed or gave no number: %s", tostring(score))
    end
    return 0
  end
  return score
end

function Discovery:choose_best(node)
  local best, best_score
  for _, path in pairs(node.paths) do
    if path.ok then
      local s = self:score(self.public_path(path))
      -- Ties: the path in use stays; otherwise the lower address, so that
      -- the choice does not depend on table order.
      local better = not best or s > best_score
        or (s == best_score and best ~= node.best and (path == node.best or path.address < best.address))
      if better then
        best, best_score = path, s
      end
    end
  end
  if best ~= node.best then
    local before = node.best
    node.best = best
    if best and before and node.up and not self.quiet then
      log.info("discovery: %s (%s): best path now %s via %s (%s%s), was %s", node.name, node.id:sub(1, 8),
        best.address, best.ifname or "?", best.kind or "?",
        best.speed_mbps and (", " .. best.speed_mbps .. " Mb/s") or "", before.address)
    end
  end
end

function Discovery.public_path(path)
  return {
    address = path.address,
    port = path.port,
    ifname = path.ifname,
    kind = path.kind,
    speed_mbps = path.speed_mbps,
    remote_kind = path.remote_kind,
    remote_speed_mbps = path.remote_speed_mbps,
    rtt_ms = path.rtt_ms,
    up = path.ok == true,
  }
end

function Discovery.public_peer(node)
  local paths = {}
  for _, path in pairs(node.paths) do
    if path.ok then
      paths[#paths + 1] = Discovery.public_path(path)
    end
  end
  table.sort(paths, function(a, b)
    return a.address < b.address
  end)
  local caps = {}
  for i, c in ipairs(node.caps or {}) do
    caps[i] = c
  end
  return {
    id = node.id,
    name = node.name or "?",
    version = node.version or "?",
    proto = node.proto,
    caps = caps,
    link = node.link,
    -- true: its hello proved the cluster key; false: listed from its
    -- public hello (no key here or there): not proved to be who it says.
    verified = node.verified == true,
    best = node.best and Discovery.public_path(node.best) or nil,
    paths = paths,
    last_seen = node.last_seen,
    up_since = node.since,
  }
end

--- The live peers, best first: by the score of each one's best path (the
-- discovery policy's score()), then by name and id. A copy, made at each
-- call: changing it changes nothing, and it does not follow later changes.
function Discovery:peers()
  local list, score = {}, {}
  for _, node in pairs(self.nodes) do
    if node.up then
      local peer = self.public_peer(node)
      list[#list + 1] = peer
      score[peer] = peer.best and self:score(peer.best) or -math.huge
    end
  end
  table.sort(list, function(a, b)
    if score[a] ~= score[b] then
      return score[a] > score[b]
    end
    if a.name ~= b.name then
      return a.name < b.name
    end
    return a.id < b.id
  end)
  return list
end

return ranking
