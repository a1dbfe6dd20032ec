--- How `nodelua agent` chooses among the paths to a peer, how often it asks
-- whether a peer is still there, and what happens when peers come and go.
-- Override this file in NODELUA_POLICY_DIR to change any of it; SIGHUP
-- applies the change.
--
-- A path is one address of a peer as this node reaches it:
--   { address = "10.0.0.7", ifname = "en5", kind = "thunderbolt",
--     speed_mbps = 40000, rtt_ms = 0.4, remote_kind = "thunderbolt",
--     remote_speed_mbps = 40000 }
-- kind and speed_mbps are this node's interface, as the OS reports it (speed
-- is absent when the OS does not say); remote_* are the peer's end.

local KIND_ORDER = { thunderbolt = 3, ethernet = 2, wifi = 1 }

local function weakest(a, b)
  if a == nil then
    return b
  elseif b == nil then
    return a
  end
  return math.min(a, b)
end

return {
  -- Seconds between liveness probes of a peer's paths, how long one may
  -- take, and how long a peer may go unanswered before it is reported gone.
  -- A peer that says goodbye over mDNS is gone at once.
  probe_interval = 1,
  probe_timeout = 1,
  down_after = 5,

  --- A number: the higher, the better the path. Thunderbolt over Ethernet
  -- over Wi-Fi over anything else; then the slower end's speed. Among
  -- paths of equal score the one in use stays, so that round-trip noise
  -- never makes the choice flap.
  score = function(path)
    local kind = KIND_ORDER[path.kind] or 0
    local speed = weakest(path.speed_mbps, path.remote_speed_mbps) or 0
    return kind * 1e8 + math.min(speed, 1e8 - 1)
  end,

  --- Called when a peer appears (it answered a probe) and when it goes
  -- ("goodbye" over mDNS, or "unreachable" after down_after seconds).
  on_peer_up = function(peer) -- luacheck: no unused args
  end,
  on_peer_down = function(peer, why) -- luacheck: no unused args
  end,
}
