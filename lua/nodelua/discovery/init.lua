--- Discovery: the peers of this node, found over mDNS/DNS-SD (Bonjour on
-- macOS, avahi-daemon on Linux) and from NODELUA_PEERS, kept alive by
-- probes on their transfer port, with every path to each ranked by the
-- discovery policy.
--
--   local discovery = require("nodelua.discovery")
--   local d = discovery.start({ advertise = true })   -- the agent does this
--   discovery.peers()      -- a copy: the live peers, best first
--   discovery.on_peer_up(function(peer) ... end)
--   discovery.on_peer_down(function(peer, why) ... end)
--
-- How it works: the agent registers _nodelua._tcp on TRANSFER_PORT with a
-- TXT record (id, name, version, protocol, capabilities, link kind) and
-- answers probes there with its hello: the same facts and every address it
-- has, with that interface's kind and speed. Browsing gives instances per
-- interface; each is resolved to a host name and port, the host name to an
-- address (getaddrinfo: nss-mdns on Linux, the system on macOS), and that
-- address is probed. A hello names the peer's other addresses, which are
-- probed too: every address that answers is a path, seen through the local
-- interface the OS used for it. A goodbye removes a peer at once; a peer
-- whose paths stop answering is removed after the policy's down_after.
--
-- The parts: identity (the node id), hello (what a node says of itself),
-- mdns (DNS-SD), paths (probing, paths and liveness), ranking (the policy's
-- score, best paths, the peers as callers see them). This file starts and
-- stops it all and calls the hooks.
local account = require("nodelua.account")
local config = require("nodelua.config")
local files = require("nodelua.files")
local hello = require("nodelua.discovery.hello")
local identity = require("nodelua.discovery.identity")
local log = require("nodelua.log")
local mdns = require("nodelua.discovery.mdns")
local paths = require("nodelua.discovery.paths")
local policy_mod = require("nodelua.policy")
local dnssd = require("nodelua.dnssd")
local shared_port = require("nodelua.port")
local ranking = require("nodelua.discovery.ranking")
local runtime = require("nodelua.runtime")
local timer = require("nodelua.timer")
local transfer = require("nodelua.transfer")

local M = {}

M.SERVICE_TYPE = mdns.SERVICE_TYPE
M.PROTOCOL_VERSION = hello.PROTOCOL_VERSION
M.CAPABILITIES = hello.CAPABILITIES
M.ID_PATTERN = identity.ID_PATTERN
M.node_id = identity.node_id
M.read_node_id = identity.read_node_id

local Discovery = {}
Discovery.__index = Discovery
for _, part in ipairs({ mdns, paths, ranking }) do
  for name, fn in pairs(part.methods) do
    assert(Discovery[name] == nil, name)
    Discovery[name] = fn
  end
end

local up_hooks, down_hooks = {}, {}

--- The transports this node's port serves, for its authenticated hello:
-- what every node serves (hello.CAPABILITIES); rdma too when this build has RDMA, TRANSFER_RDMA is not off,
-- and a device is usable (an active port with a GID on an interface a
-- peer path uses). Checked once, at start: it opens each device.
function M.capabilities(quiet)
  local caps = { table.unpack(hello.CAPABILITIES) }
  if config.get("TRANSFER_RDMA") == "off" then
    return caps
  end
  local rdma = transfer.rdma()
  if rdma.usable > 0 then
    caps[#caps + 1] = "rdma"
  end
  if not quiet then
    if rdma.usable > 0 then
      log.info("transfers: RDMA usable on %s", rdma.devices)
    else
      log.info("transfers: TCP streams only: %s", rdma.why)
    end
  end
  return caps
end

--- Starts discovery. opts: advertise (register this node; default true),
-- port (TRANSFER_PORT), name (NODE_NAME), id (default: from the state
-- directory), peers (NODELUA_PEERS), policies (a policy loader), quiet (no
-- log lines for peers coming and going: `nodelua list`).
function M.start(opts)
  opts = opts or {}
  local self = setmetatable({
    advertise = opts.advertise ~= false,
    mdns = opts.mdns,
    port = opts.port or config.get("TRANSFER_PORT"),
    name = opts.name or config.get("NODE_NAME"),
    id = opts.id,
    policies = opts.policies or policy_mod.default(),
    quiet = opts.quiet,
    services = {}, -- instance name -> {ifaces, resolver, host, port, txt, id}
    statics = {}, -- {host, port, addresses, lookup}
    nodes = {}, -- id -> node
    by_address = {}, -- "address port" -> path
    ifaces = {}, -- local interfaces by name, and by address in .addr
    timers = {},
    mdns_state = "off",
  }, Discovery)
  if not self.id then
    local id, err = identity.node_id(config.get("NODELUA_STATE_DIR"))
    if not id then
      return nil, ("cannot keep a node id in %s: %s"):format(config.get("NODELUA_STATE_DIR"), err)
    end
    self.id = id
  end
  -- With the cluster key, hellos are authenticated both ways: only a
  -- node that proves the key is taken as a peer, and only such a node
  -- gets this node's addresses. Without one (no key anywhere), peers are
  -- listed from their public hello, marked verified = false.
  -- opts.key: the cluster key, or false for none (default: the
  -- configured one, if any).
  local cluster_key = opts.key
  if cluster_key == nil then
    cluster_key = files.cluster_key()
  end
  self.probe_key = cluster_key and shared_port.probe_key(cluster_key) or nil
  local peers, err = paths.parse_peers(opts.peers or config.get("NODELUA_PEERS"))
  if not peers then
    return nil, "NODELUA_PEERS: " .. err
  end
  self:refresh_interfaces(true)
  if self.advertise then
    self.caps = M.capabilities(self.quiet)
    local server, why = shared_port.serve("", self.port)
    if not server then
      return nil, ("TRANSFER_PORT=%d: %s"):format(self.port, why)
    end
    self.server = server
    server:set_key(self.probe_key)
    server:on_asker(function(address, id, port)
      self:on_asker(address, id, port)
    end)
    self:publish_hello()
  end
  for _, p in ipairs(peers) do
    self:add_static(p.host, p.port)
  end
  if self.mdns == nil then
    self.mdns = config.get("NODELUA_MDNS")
  end
  if self.mdns then
    self:start_mdns()
  else
    if not self.quiet then
      log.info("discovery: mDNS is off (NODELUA_MDNS=false): static peers only")
    end
  end
  self:schedule()
  self.timers.interfaces = timer.every(paths.INTERFACES_SECONDS, function()
    account.run("discovery interfaces", self.refresh_interfaces, self)
  end)
  M.current = self
  return self
end

function Discovery:schedule()
  if self.timers.probe then
    self.timers.probe:cancel()
  end
  -- Out of range is logged by the loader, and the default used.
  self.probe_interval = self.policies:number("discovery", "probe_interval", 1, 0.1, 60)
  self.probe_timeout = self.policies:number("discovery", "probe_timeout", 1, 0.1, 60)
  self.down_after = self.policies:number("discovery", "down_after", 5, 0.5, 3600)
  self.timers.probe = timer.every(self.probe_interval, function()
    account.run("discovery probes", self.probe_round, self)
  end)
end

--- After the policies were reloaded (SIGHUP): new timings, new ranking.
function Discovery:reload()
  -- A score() that still fails after the reload is said again.
  self.score_error_logged = nil
  self:schedule()
  for _, node in pairs(self.nodes) do
    self:choose_best(node)
  end
end

function Discovery:stop()
  if M.current == self then
    M.current = nil
  end
  for _, t in pairs(self.timers) do
    t:cancel()
  end
  self:stop_mdns()
  for _, s in ipairs(self.statics) do
    if s.lookup then
      s.lookup:cancel()
    end
  end
  for _, path in pairs(self.by_address) do
    if path.inflight then
      path.inflight:cancel()
    end
  end
  if self.server then
    self.server:close()
    self.server = nil
  end
end

-- ---- this node's hello ----

function Discovery:hello()
  return hello.build(self.id, self.name, self.ifaces.list, function(path)
    return self:score(path)
  end, self.caps)
end

function Discovery:publish_hello()
  local h = self:hello()
  local full, public = hello.encode(h)
  if full ~= self.hello_text then
    self.hello_text = full
    self.server:set_hello(full, public)
  end
  if self.registration then
    local txt = hello.txt(h)
    local record = dnssd.txt_encode(txt)
    if record ~= self.txt_record then
      self.txt_record = record
      self.registration:update_txt(txt)
    end
  end
end

-- ---- hooks ----

function Discovery:emit_up(node)
  if not self.quiet then
    local b = node.best or {}
    log.info("discovery: peer up: %s (%s) at %s via %s (%s)", node.name, node.id:sub(1, 8), b.address or "?",
      b.ifname or "?", b.kind or "?")
  end
  local peer = self.public_peer(node)
  self.policies:call("discovery", "on_peer_up", peer)
  for _, fn in ipairs(up_hooks) do
    runtime.pcall(fn, peer)
  end
end

function Discovery:down(node, why)
  if not node.up then
    return
  end
  node.up = false
  if not self.quiet then
    log.info("discovery: peer down: %s (%s): %s", node.name, node.id:sub(1, 8), why)
  end
  local peer = self.public_peer(node)
  self.policies:call("discovery", "on_peer_down", peer, why)
  for _, fn in ipairs(down_hooks) do
    runtime.pcall(fn, peer, why)
  end
end

--- The peers of the discovery started in this process (empty if none).
function M.peers()
  return M.current and M.current:peers() or {}
end

function M.on_peer_up(fn)
  assert(type(fn) == "function", "on_peer_up takes a function")
  up_hooks[#up_hooks + 1] = fn
end

function M.on_peer_down(fn)
  assert(type(fn) == "function", "on_peer_down takes a function")
  down_hooks[#down_hooks + 1] = fn
end

M.Discovery = Discovery
return M
