--- Paths to peers: every address a peer answers on is a path, probed on
-- the peer's port and kept alive (or let go) by the answers. Static peers
-- (NODELUA_PEERS), nodes, probes and their backoff, which local interface a
-- path leaves through, and when a peer is up or down. Methods of the
-- discovery object (mixed in by nodelua.discovery), and the address helpers
-- they need.
local account = require("nodelua.account")
local dns = require("nodelua.dns")
local hello_mod = require("nodelua.discovery.hello")
local log = require("nodelua.log")
local metrics = require("nodelua.metrics")
local shared_port = require("nodelua.port")
local runtime = require("nodelua.runtime")

local paths = {}
local Discovery = {}
paths.methods = Discovery

paths.INTERFACES_SECONDS = 5
local INTERFACES_SECONDS = paths.INTERFACES_SECONDS
local BACKOFF_MAX_SECONDS = 30
local FORGET_SECONDS = 3600

-- ---- addresses ----

--- An address as its bytes (4 for IPv4, 16 for IPv6), or nil.
function paths.address_bytes(a)
  a = a:gsub("%%.*$", "") -- a scope says nothing of the subnet
  local v4 = { a:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$") }
  if #v4 == 4 then
    for i, x in ipairs(v4) do
      v4[i] = tonumber(x)
      if v4[i] > 255 then
        return nil
      end
    end
    return v4
  end
  if not a:find(":") then
    return nil
  end
  local tail
  local head, dotted = a:match("^(.*:)(%d+%.%d+%.%d+%.%d+)$")
  if head then -- ::ffff:1.2.3.4
    tail = paths.address_bytes(dotted)
    if not tail then
      return nil
    end
    a = head .. "0:0"
  end
  local function groups_of(text)
    local out = {}
    if text == "" then
      return out
    end
    for g in (text .. ":"):gmatch("([^:]*):") do
      if not g:match("^%x%x?%x?%x?$") then
        return nil
      end
      out[#out + 1] = tonumber(g, 16)
    end
    return out
  end
  local groups
  local left, right = a:match("^(.-)::(.-)$")
  if left then
    local l, r = groups_of(left), groups_of(right)
    if not l or not r or #l + #r > 7 then
      return nil
    end
    groups = l
    for _ = 1, 8 - #l - #r do
      groups[#groups + 1] = 0
    end
    for _, g in ipairs(r) do
      groups[#groups + 1] = g
    end
  else
    groups = groups_of(a)
    if not groups or #groups ~= 8 then
      return nil
    end
  end
  local out = {}
  for _, g in ipairs(groups) do
    out[#out + 1] = g >> 8
    out[#out + 1] = g & 255
  end
  for i = 1, tail and 4 or 0 do
    out[12 + i] = tail[i]
  end
  return out
end

--- Whether addresses a and b share their first bits bits (one subnet).
function paths.same_subnet(a, b, bits)
  local x, y = paths.address_bytes(a), paths.address_bytes(b)
  if not x or not y or #x ~= #y or type(bits) ~= "number" then
    return false
  end
  for i = 1, #x do
    local take = math.min(8, math.max(0, bits - (i - 1) * 8))
    if take == 0 then
      break
    end
    local mask = (0xff << (8 - take)) & 0xff
    if x[i] & mask ~= y[i] & mask then
      return false
    end
  end
  return true
end

--- Splits NODELUA_PEERS into {host = , port = } entries.
function paths.parse_peers(text)
  local list = {}
  for item in (text or ""):gmatch("[^,%s]+") do
    local host, port = item:match("^%[(.+)%]:(%d+)$")
    if not host then
      host, port = item:match("^([^:]+):(%d+)$")
    end
    port = tonumber(port)
    if not host or not port or port < 1 or port > 65535 then
      return nil, ("'%s' is not host:port"):format(item)
    end
    list[#list + 1] = { host = host, port = math.tointeger(port) }
  end
  return list
end

-- ---- this node's interfaces ----

--- Reads this node's interfaces: sampled afresh when fresh is true (at
-- start, or for a local address not seen before), otherwise the agent's
-- latest network sample, which its schedule keeps current.
function Discovery:refresh_interfaces(fresh)
  local groups = fresh and metrics.sample("network") or metrics.latest("network")
  local sample = groups.network or {}
  local by_name, by_addr = {}, {}
  for _, nif in ipairs(sample) do
    by_name[nif.name] = nif
    for _, a in ipairs(nif.ipv4 or {}) do
      by_addr[a] = nif
    end
    for _, a in ipairs(nif.ipv6 or {}) do
      by_addr[a] = nif
    end
  end
  self.ifaces = { by_name = by_name, by_addr = by_addr, list = sample }
  -- A path whose local interface went down is down now, not at the next
  -- failed probe.
  for _, path in pairs(self.by_address) do
    local nif = path.ifname and by_name[path.ifname]
    if path.ok and nif and not nif.up then
      path.ok = false
      self:changed(self.nodes[path.node_id])
    end
  end
  if self.server then
    self:publish_hello()
  end
end

-- ---- static peers ----

function Discovery:add_static(host, port)
  local s = { host = host, port = port, addresses = {} }
  self.statics[#self.statics + 1] = s
  self:lookup_static(s)
end

function Discovery:lookup_static(s)
  if s.lookup then
    return
  end
  s.lookup = dns.getaddrinfo(s.host, function(addresses, err)
    s.lookup = nil
    if not addresses then
      if not s.warned then
        log.warn("discovery: static peer %s: %s", s.host, err)
        s.warned = true
      end
      return
    end
    s.warned = false
    s.addresses = addresses
    self:probe_static(s)
  end)
end

function Discovery:probe_static(s)
  for _, a in ipairs(s.addresses) do
    local key = a .. " " .. s.port
    local path = self.by_address[key]
    if not path then
      -- Not yet known as anybody's: a pending path, adopted by the node
      -- that answers.
      path = { address = a, port = s.port, from = "static", failures = 0, next_at = 0 }
      self.by_address[key] = path
    end
    self:probe_path(path)
  end
end

-- ---- nodes and paths ----

function Discovery:node(id)
  local node = self.nodes[id]
  if not node then
    node = { id = id, paths = {}, sources = {}, up = false }
    self.nodes[id] = node
  end
  return node
end

function Discovery:add_path(node, address, port, from)
  local key = address .. " " .. port
  local path = self.by_address[key]
  if path then
    if path.node_id ~= node.id then
      local old = path.node_id and self.nodes[path.node_id]
      if old then
        old.paths[key] = nil
        self:changed(old)
      end
      path.node_id = node.id
    end
  else
    path = { address = address, port = port, from = from, failures = 0, next_at = 0, node_id = node.id }
    self.by_address[key] = path
  end
  node.paths[key] = path
  return path
end

function Discovery:probe_node(node)
  for _, path in pairs(node.paths) do
    self:probe_path(path)
  end
end

-- A probe that introduced its sender: a node we may not know yet (its own
-- mDNS registration can be a second behind its first question). It is a
-- peer once it answers a probe of ours, like any other.
function Discovery:on_asker(address, id, port)
  if id == self.id then
    return
  end
  local node = self.nodes[id]
  if node and node.up then
    return
  end
  address = address:gsub("^::ffff:(%d+%.%d+%.%d+%.%d+)$", "%1")
  local path = self:add_path(self:node(id), address, port, "asker")
  if not path.inflight then
    path.next_at = 0
    self:probe_path(path)
  end
end

function Discovery:probe_round()
  local now = runtime.now()
  for _, path in pairs(self.by_address) do
    if not path.inflight and now >= path.next_at then
      self:probe_path(path)
    end
  end
  for _, s in ipairs(self.statics) do
    if #s.addresses == 0 then
      self:lookup_static(s)
    end
  end
  for id, node in pairs(self.nodes) do
    self:changed(node)
    -- A peer gone for FORGET_SECONDS that nothing advertises or names any
    -- more is forgotten, so that the table does not grow with every node
    -- that ever passed (its paths stop being probed).
    if not node.up and next(node.sources) == nil and now - (node.last_ok or 0) > FORGET_SECONDS then
      self:forget(id)
    end
  end
end

function Discovery:forget(id)
  local node = self.nodes[id]
  for key, path in pairs(node.paths) do
    if path.inflight then
      path.inflight:cancel()
    end
    if self.by_address[key] == path then
      self.by_address[key] = nil
    end
  end
  self.nodes[id] = nil
end

function Discovery:probe_path(path)
  if path.inflight then
    return
  end
  -- An agent introduces itself, so that the asked learns of it at once.
  local intro = self.server and { id = self.id, port = self:advertised_port() } or nil
  local op, err = shared_port.probe(path.address, path.port, self.probe_timeout, function(r)
    path.inflight = nil
    account.run("discovery probes", self.on_probe, self, path, r)
  end, intro, self.probe_key)
  if not op then
    -- Refused before anything was sent: no route (the link is down), or an
    -- address that cannot be. Either way the path does not answer.
    self:on_probe(path, { ok = false, error = err })
    return
  end
  path.inflight = op
end

function Discovery:on_probe(path, r)
  local now = runtime.now()
  local hello, why
  if r.ok and path.reply and r.reply == path.reply then
    -- A peer answers with the same hello until something about it changes:
    -- the bytes are decoded and checked once, not every second. (Whether
    -- this answer proved the key is checked below, on every probe.)
    hello = path.hello
  elseif r.ok then
    hello, why = hello_mod.decode(r.reply)
    path.reply, path.hello = hello and r.reply, hello
  else
    why = r.error
  end
  -- Holding the key, a hello that does not prove it is no peer's: a
  -- stranger could claim any node's id, and with it that node's traffic.
  if hello and self.probe_key and not r.verified then
    hello, why = nil, "its hello does not prove this cluster's key (another key, none, or not a node of ours)"
  end
  if not hello or hello.id == self.id then
    path.ok = false
    path.failures = path.failures + 1
    path.error = hello and "this node itself" or why
    -- Paths that never answered, and those of a peer already reported
    -- gone, are asked less and less often; a path of a live peer is asked
    -- every round, so that the peer is seen to go within down_after.
    local node = path.node_id and self.nodes[path.node_id]
    -- A path that answered before is asked at least every down_after
    -- seconds, so that a peer back from a pulled cable is seen soon.
    if not path.last_ok or hello or not (node and node.up) then
      local cap = path.last_ok and self.down_after or BACKOFF_MAX_SECONDS
      path.next_at = now + math.min(cap, self.probe_interval * 2 ^ math.min(path.failures, 5))
    end
    if hello and hello.id == self.id then
      path.next_at = math.huge
    end
    self:changed(path.node_id and self.nodes[path.node_id])
    return
  end
  local node = self:node(hello.id)
  local key = path.address .. " " .. path.port
  if path.node_id ~= hello.id then
    self:add_path(node, path.address, path.port, path.from)
  end
  node.paths[key] = path
  node.name, node.version, node.proto = hello.name, hello.version, hello.proto
  node.caps, node.link = hello.caps, hello.link
  node.verified = r.verified == true
  node.port = path.port
  if path.from == "static" then
    node.sources.static = true
  end
  path.ok, path.failures, path.error = true, 0, nil
  path.last_ok, path.next_at = now, 0
  path.rtt_ms = r.rtt_ms
  path.local_address = r.local_address
  self:locate(path)
  node.last_seen = runtime.time()
  node.last_ok = now
  -- Only a verified hello names other addresses to probe (a public one
  -- has none), and only those on a subnet of one of this node's own
  -- interfaces: a hello never sends probes to a routed address.
  for _, a in ipairs(node.verified and hello.addrs or {}) do
    local k = a.address .. " " .. path.port
    if not self.by_address[k] and not self:on_link(a.address) then
      goto next_address
    end
    local p = self.by_address[k] or self:add_path(node, a.address, path.port, "hello")
    p.remote_kind, p.remote_speed_mbps = a.kind, a.speed_mbps
    if p.node_id == node.id and not p.last_ok and not p.inflight and p.next_at <= now then
      self:probe_path(p)
    end
    ::next_address::
  end
  self:changed(node)
end

--- Whether address is on a subnet of one of this node's interfaces that
-- is up (directly reachable, not through a router).
function Discovery:on_link(address)
  for _, nif in ipairs(self.ifaces.list or {}) do
    if nif.up and nif.prefix then
      for mine, bits in pairs(nif.prefix) do
        if paths.same_subnet(mine, address, bits) then
          return true
        end
      end
    end
  end
  return false
end

-- The local end of a path: which interface the OS used, its kind, speed.
function Discovery:locate(path)
  local a = path.local_address
  if not a then
    return
  end
  a = a:gsub("^::ffff:", "")
  local nif = self.ifaces.by_addr and self.ifaces.by_addr[a]
  -- An address not seen before: sample afresh, at most every few seconds
  -- for the same one (the OS may never list it, e.g. a NAT64 source).
  self.unknown_local = self.unknown_local or {}
  if not nif and runtime.now() - (self.unknown_local[a] or -math.huge) >= INTERFACES_SECONDS then
    self.unknown_local[a] = runtime.now()
    self:refresh_interfaces(true)
    nif = self.ifaces.by_addr[a]
  end
  if nif then
    path.ifname, path.kind, path.speed_mbps = nif.name, nif.kind, nif.speed_mbps
  end
end

-- Re-reads a node's state: up or down, and its best path.
function Discovery:changed(node)
  if not node then
    return
  end
  local now = runtime.now()
  local alive = node.last_ok and now - node.last_ok <= self.down_after
  local any_ok = false
  for _, path in pairs(node.paths) do
    any_ok = any_ok or path.ok
  end
  if not node.up and any_ok and alive then
    node.up = true
    node.since = runtime.time()
    self:choose_best(node)
    self:emit_up(node)
  elseif node.up and not alive then
    self:down(node, "unreachable")
  elseif node.up then
    self:choose_best(node)
  end
end

-- A goodbye over mDNS: the peer is gone at once, unless it is also a static
-- peer, which stays until its probes fail.
function Discovery:goodbye(node, instance)
  node.sources[instance] = nil
  if node.sources.static then
    return
  end
  if next(node.sources) ~= nil then
    return -- still advertised under another instance
  end
  self:down(node, "goodbye")
  self:forget(node.id)
end

return paths
