--- mDNS/DNS-SD: this node's registration of _nodelua._tcp, the browsing
-- for others, and resolving what is found to addresses that become paths.
-- Methods of the discovery object (mixed in by nodelua.discovery).
local dnssd = require("nodelua.dnssd")
local dns = require("nodelua.dns")
local hello = require("nodelua.discovery.hello")
local identity = require("nodelua.discovery.identity")
local log = require("nodelua.log")
local timer = require("nodelua.timer")

local mdns = {}
local Discovery = {}
mdns.methods = Discovery

mdns.SERVICE_TYPE = "_nodelua._tcp"
local RETRY_MDNS_SECONDS = 30

-- Stops what a browsed service has in flight: its resolver, its lookup.
local function stop_service(svc)
  if svc.resolver then
    svc.resolver:close()
  end
  if svc.lookup then
    svc.lookup:cancel()
  end
end

local function split(text)
  local list = {}
  for item in text:gmatch("[^,]+") do
    list[#list + 1] = item
  end
  return list
end

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
  local browser, err = dnssd.browse(mdns.SERVICE_TYPE, function(ev)
    self:on_browse(ev)
  end)
  if not browser then
    self:mdns_failed(err)
    return
  end
  self.browser = browser
  if self.advertise then
    self.txt_record = dnssd.txt_encode(hello.txt(self:hello()))
    local reg
    reg, err = dnssd.register({
      name = identity.instance_name(self.name, self.id),
      type = mdns.SERVICE_TYPE,
      port = self:advertised_port(),
      txt = hello.txt(self:hello()),
    }, function(ev)
      if ev.event == "failed" then
        self:mdns_failed(ev.message)
      elseif ev.event == "registered" then
        log.info("discovery: advertising \"%s\" (%s) on port %d", ev.name, mdns.SERVICE_TYPE, self:advertised_port())
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
    stop_service(svc)
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
      stop_service(svc)
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
  if ev.txt_damaged or not (type(txt.id) == "string" and #txt.id <= 64 and txt.id:match(identity.ID_PATTERN)) then
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
  node.caps = node.caps or (txt.caps and split(txt.caps)) or {}
  node.port = ev.port
  if svc.lookup then
    return
  end
  local host = ev.host
  svc.lookup = dns.getaddrinfo(host, function(addresses, err)
    svc.lookup = nil
    if not addresses then
      log.warn("discovery: cannot find the address of %s (\"%s\"): %s%s", host, svc.name, err,
        host:match("%.local%.?$") and not identity.is_macos()
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

return mdns
