--- Discovery: the peers of this node, found over mDNS/DNS-SD (Bonjour on
-- macOS, avahi-daemon on Linux) and from NODELUA_PEERS, kept alive by
-- probes on their transfer port, with every path to each ranked by the
-- discovery policy.
--
--   local discovery = require("nodelua.discovery")
--   local d = discovery.start({ advertise = true })   -- the agent does this
--   discovery.peers()      -- the live table: a list of peers, best first
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
local files = require("nodelua.files")
local config = require("nodelua.config")
local dnssd = require("nodelua.dnssd")
local json = require("nodelua.json")
local log = require("nodelua.log")
local metrics = require("nodelua.metrics")
local policy_mod = require("nodelua.policy")
local runtime = require("nodelua.runtime")
local timer = require("nodelua.timer")

local M = {}

M.SERVICE_TYPE = "_nodelua._tcp"
M.PROTOCOL_VERSION = 2
M.CAPABILITIES = { "tcp" }

local RETRY_MDNS_SECONDS = 30
local INTERFACES_SECONDS = 5
local ADDRESSES_MAX = 32
local BACKOFF_MAX_SECONDS = 30
local FORGET_SECONDS = 3600

local Discovery = {}
Discovery.__index = Discovery

-- ---- facts about this node ----

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local data = f:read("a")
  f:close()
  return data
end

local function random_hex(bytes)
  local f = assert(io.open("/dev/urandom", "rb"))
  local data = f:read(bytes)
  f:close()
  return (data:gsub(".", function(c)
    return ("%02x"):format(c:byte())
  end))
end

M.ID_PATTERN = "^%x+$"

--- The node id: 32 hex digits kept in STATE_DIR/node-id, made on first use.
-- Returns the id, or nil and why when it can be neither read nor made.
function M.node_id(state_dir)
  local path = state_dir .. "/node-id"
  local text = read_file(path)
  if text then
    local id = text:match("^%s*(%x+)%s*$")
    if id and #id == 32 then
      return id:lower()
    end
    log.warn("discovery: %s is damaged; making a new node id", path)
  end
  local id = random_hex(16)
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then
    return nil, err
  end
  f:write(id, "\n")
  f:close()
  local ok, why = os.rename(tmp, path)
  if not ok then
    os.remove(tmp)
    return nil, why
  end
  return id
end

--- The node id kept in STATE_DIR/node-id, only read (nil if there is none):
-- for commands that must not need a writable state directory.
function M.read_node_id(state_dir)
  local text = read_file(state_dir .. "/node-id")
  local id = text and text:match("^%s*(%x+)%s*$")
  return id and #id == 32 and id:lower() or nil
end

-- The instance name: the friendly name with the start of the id, so that
-- two nodes of one name are two instances (and nobody gets renamed).
local function instance_name(name, id)
  local suffix = " (" .. id:sub(1, 8) .. ")"
  while #name + #suffix > 63 do
    local last = utf8.offset(name, -1) or #name
    name = name:sub(1, last - 1)
  end
  return name .. suffix
end
M.instance_name = instance_name

function M.is_macos()
  local ok, m = pcall(metrics.sample, "system")
  return ok and m.system and m.system.sysname == "Darwin" or false
end

-- ---- validating what peers say ----

local function short_string(v, max)
  return type(v) == "string" and #v >= 1 and #v <= max and not v:find("%c")
end

--- An address as its bytes (4 for IPv4, 16 for IPv6), or nil.
function M.address_bytes(a)
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
    tail = M.address_bytes(dotted)
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
function M.same_subnet(a, b, bits)
  local x, y = M.address_bytes(a), M.address_bytes(b)
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

--- Checks a hello (decoded JSON) and returns a clean copy, or nil and why.
function M.check_hello(h)
  if type(h) ~= "table" then
    return nil, "not an object"
  end
  if not (short_string(h.id, 64) and h.id:match(M.ID_PATTERN)) then
    return nil, "no valid id"
  end
  if not short_string(h.name, 63) then
    return nil, "no valid name"
  end
  local clean = {
    id = h.id:lower(),
    name = h.name,
    version = short_string(h.version, 64) and h.version or "?",
    proto = math.tointeger(h.proto) or 0,
    caps = {},
    link = short_string(h.link, 16) and h.link or "other",
    addrs = {},
  }
  if type(h.caps) == "table" then
    for _, c in ipairs(h.caps) do
      if short_string(c, 16) and #clean.caps < 8 then
        clean.caps[#clean.caps + 1] = c
      end
    end
  end
  if type(h.addrs) == "table" then
    for _, a in ipairs(h.addrs) do
      if type(a) == "table" and short_string(a.address, 64) and a.address:match("^[%x:.%%%w]+$")
          and #clean.addrs < ADDRESSES_MAX then
        clean.addrs[#clean.addrs + 1] = {
          address = a.address,
          kind = short_string(a.kind, 16) and a.kind or nil,
          speed_mbps = math.tointeger(a.speed_mbps),
        }
      end
    end
  end
  return clean
end

--- Splits NODELUA_PEERS into {host = , port = } entries.
function M.parse_peers(text)
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

-- ---- the discovery object ----

local up_hooks, down_hooks = {}, {}

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
    local id, err = M.node_id(config.get("NODELUA_STATE_DIR"))
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
  self.probe_key = cluster_key and dnssd.probe_key(cluster_key) or nil
  local peers, err = M.parse_peers(opts.peers or config.get("NODELUA_PEERS"))
  if not peers then
    return nil, "NODELUA_PEERS: " .. err
  end
  self:refresh_interfaces(true)
  if self.advertise then
    local server, why = dnssd.serve_probes("", self.port)
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
  self.timers.interfaces = timer.every(INTERFACES_SECONDS, function()
    self:refresh_interfaces()
  end)
  M.current = self
  return self
end

function Discovery:setting(key, default, min, max)
  local p = self.policies:get("discovery")
  local v = p and p[key]
  if type(v) ~= "number" or v < min or v > max then
    return default
  end
  return v
end

function Discovery:schedule()
  if self.timers.probe then
    self.timers.probe:cancel()
  end
  self.probe_interval = self:setting("probe_interval", 1, 0.1, 60)
  self.probe_timeout = self:setting("probe_timeout", 1, 0.1, 60)
  self.down_after = self:setting("down_after", 5, 0.5, 3600)
  self.timers.probe = timer.every(self.probe_interval, function()
    self:probe_round()
  end)
end

--- After the policies were reloaded (SIGHUP): new timings, new ranking.
function Discovery:reload()
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

-- ---- this node's interfaces and hello ----

local function kind_score(self, kind, speed)
  local ok, score = pcall(self.score, self, { kind = kind, speed_mbps = speed })
  return ok and score or 0
end

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

function Discovery:hello()
  local addrs, best_kind, best_score = {}, "other", -math.huge
  for _, nif in ipairs(self.ifaces.list or {}) do
    if nif.up and nif.kind ~= "loopback" then
      local function add(a)
        if #addrs < ADDRESSES_MAX then
          addrs[#addrs + 1] = { address = a, ifname = nif.name, kind = nif.kind, speed_mbps = nif.speed_mbps }
        end
      end
      for _, a in ipairs(nif.ipv4 or {}) do
        add(a)
      end
      for _, a in ipairs(nif.ipv6 or {}) do
        if not a:lower():match("^fe[89ab]") then -- link-local needs a scope
          add(a)
        end
      end
      local s = kind_score(self, nif.kind, nif.speed_mbps)
      if (#(nif.ipv4 or {}) > 0 or #(nif.ipv6 or {}) > 0) and s > best_score then
        best_kind, best_score = nif.kind, s
      end
    end
  end
  return {
    id = self.id,
    name = self.name,
    version = runtime.version(),
    proto = M.PROTOCOL_VERSION,
    caps = M.CAPABILITIES,
    link = best_kind,
    addrs = addrs,
  }
end

function Discovery:txt()
  local h = self:hello()
  return {
    txtvers = "1",
    id = h.id,
    name = h.name,
    ver = h.version,
    proto = tostring(h.proto),
    caps = table.concat(h.caps, ","),
    link = h.link,
  }
end

function Discovery:publish_hello()
  local hello = self:hello()
  local text = json.encode(hello)
  if text ~= self.hello_text then
    self.hello_text = text
    -- The public hello, for probers that did not prove the key: who this
    -- is, and nothing of where else it can be reached.
    local public = json.encode({ id = hello.id, name = hello.name, version = hello.version, proto = hello.proto })
    self.server:set_hello(text, public)
  end
  if self.registration then
    local txt = dnssd.txt_encode(self:txt())
    if txt ~= self.txt_record then
      self.txt_record = txt
      self.registration:update_txt(self:txt())
    end
  end
end

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

-- ---- mDNS ----

function Discovery:mdns_failed(why)
  self:stop_mdns()
  if self.mdns_state ~= "failed" then
    log.warn("discovery: mDNS is off: %s. %s without it (static peers in NODELUA_PEERS still work) and tries "
      .. "again every %d s.", why, self.advertise and "The agent goes on" or "Listing goes on", RETRY_MDNS_SECONDS)
  end
  self.mdns_state = "failed"
  if self.timers.mdns_retry then
    self.timers.mdns_retry:cancel()
  end
  self.timers.mdns_retry = timer.after(RETRY_MDNS_SECONDS, function()
    self.timers.mdns_retry = nil
    self:start_mdns()
  end)
end

function Discovery:start_mdns()
  local browser, err = dnssd.browse(M.SERVICE_TYPE, function(ev)
    self:on_browse(ev)
  end)
  if not browser then
    self:mdns_failed(err)
    return
  end
  self.browser = browser
  if self.advertise then
    self.txt_record = dnssd.txt_encode(self:txt())
    local reg
    reg, err = dnssd.register({
      name = instance_name(self.name, self.id),
      type = M.SERVICE_TYPE,
      port = self:advertised_port(),
      txt = self:txt(),
    }, function(ev)
      if ev.event == "failed" then
        self:mdns_failed(ev.message)
      elseif ev.event == "registered" then
        log.info("discovery: advertising \"%s\" (%s) on port %d", ev.name, M.SERVICE_TYPE, self:advertised_port())
      end
    end)
    if not reg then
      self:mdns_failed(err)
      return
    end
    self.registration = reg
  end
  if self.mdns_state == "failed" then
    log.info("discovery: mDNS is on again")
  end
  self.mdns_state = "on"
end

function Discovery:advertised_port()
  return self.server and self.server:port() or self.port
end

function Discovery:stop_mdns()
  if self.registration then
    self.registration:close()
    self.registration = nil
  end
  if self.browser then
    self.browser:close()
    self.browser = nil
  end
  for _, svc in pairs(self.services) do
    if svc.resolver then
      svc.resolver:close()
    end
    if svc.lookup then
      svc.lookup:cancel()
    end
  end
  self.services = {}
end

function Discovery:on_browse(ev)
  if ev.event == "failed" then
    self:mdns_failed(ev.message)
    return
  end
  local svc = self.services[ev.name]
  if ev.event == "added" then
    if not svc then
      svc = { name = ev.name, type = ev.type, domain = ev.domain, ifaces = {} }
      self.services[ev.name] = svc
    end
    svc.ifaces[ev.ifindex or 0] = ev.ifname or true
    self:resolve(svc, ev.ifindex or 0)
  elseif ev.event == "removed" and svc then
    svc.ifaces[ev.ifindex or 0] = nil
    if next(svc.ifaces) == nil then
      self.services[ev.name] = nil
      if svc.resolver then
        svc.resolver:close()
      end
      if svc.lookup then
        svc.lookup:cancel()
      end
      local node = svc.id and self.nodes[svc.id]
      if node then
        self:goodbye(node, svc.name)
      end
    end
  end
end

function Discovery:resolve(svc, ifindex)
  if svc.resolver then
    return
  end
  local resolver, err = dnssd.resolve(ifindex, svc.name, svc.type, svc.domain, function(ev)
    if svc.resolver then
      svc.resolver:close()
      svc.resolver = nil
    end
    if ev.event ~= "resolved" then
      log.debug("discovery: resolving \"%s\" failed: %s", svc.name, ev.message or "?")
      return
    end
    self:on_resolved(svc, ev)
  end)
  if not resolver then
    log.debug("discovery: cannot resolve \"%s\": %s", svc.name, err)
    return
  end
  svc.resolver = resolver
end

function Discovery:on_resolved(svc, ev)
  local txt = ev.txt or {}
  if ev.txt_damaged or not (type(txt.id) == "string" and #txt.id <= 64 and txt.id:match(M.ID_PATTERN)) then
    log.debug("discovery: \"%s\" has no valid id in its TXT record; not a nodelua agent we can use", svc.name)
    return
  end
  svc.id = txt.id:lower()
  svc.port = ev.port
  if svc.id == self.id then
    return -- ourselves
  end
  local node = self:node(svc.id)
  node.sources[svc.name] = true
  node.name = node.name or txt.name
  node.version = node.version or txt.ver
  node.link = txt.link
  node.caps = node.caps or (txt.caps and self.split(txt.caps)) or {}
  node.port = ev.port
  if svc.lookup then
    return
  end
  local host = ev.host
  svc.lookup = dnssd.getaddrinfo(host, function(addresses, err)
    svc.lookup = nil
    if not addresses then
      log.warn("discovery: cannot find the address of %s (\"%s\"): %s%s", host, svc.name, err,
        host:match("%.local%.?$") and not M.is_macos()
        and "; on Linux, mDNS host names need nss-mdns (Debian package libnss-mdns: 'mdns4_minimal' "
        .. "in the hosts line of /etc/nsswitch.conf)" or "")
      return
    end
    for _, a in ipairs(addresses) do
      self:add_path(node, a, ev.port, "mdns")
    end
    self:probe_node(node)
  end)
end

function Discovery.split(text)
  local list = {}
  for item in text:gmatch("[^,]+") do
    list[#list + 1] = item
  end
  return list
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
  s.lookup = dnssd.getaddrinfo(s.host, function(addresses, err)
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
  local op, err = dnssd.probe(path.address, path.port, self.probe_timeout, function(r)
    path.inflight = nil
    self:on_probe(path, r)
  end, intro, self.probe_key)
  if not op then
    -- Refused before anything was sent: no route (the link is down), or an
    -- address that cannot be. Either way the path does not answer.
    self:on_probe(path, { ok = false, error = err })
    return
  end
  path.inflight = op
end

local cjson_ok, cjson = pcall(require, "cjson")

function Discovery:on_probe(path, r)
  local now = runtime.now()
  local hello, why
  if r.ok then
    if not cjson_ok then
      why = "lua-cjson is not installed"
    else
      local ok, decoded = pcall(cjson.decode, r.reply)
      if ok then
        hello, why = M.check_hello(decoded)
      else
        why = "the hello is not JSON"
      end
    end
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
        if M.same_subnet(mine, address, bits) then
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

-- ---- what callers see ----

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

--- The live peers, by name then id.
function Discovery:peers()
  local list = {}
  for _, node in pairs(self.nodes) do
    if node.up then
      list[#list + 1] = self.public_peer(node)
    end
  end
  table.sort(list, function(a, b)
    if a.name ~= b.name then
      return a.name < b.name
    end
    return a.id < b.id
  end)
  return list
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
