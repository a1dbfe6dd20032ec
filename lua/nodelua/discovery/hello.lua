--- The hello: what a node says of itself in answer to a probe (JSON) and,
-- in short, in its DNS-SD TXT record. Built here from this node's
-- interfaces; parsed and checked here when a peer's arrives, since every
-- byte of it comes from the network.
local identity = require("nodelua.discovery.identity")
local json = require("nodelua.json")
local runtime = require("nodelua.runtime")

local cjson_ok, cjson = pcall(require, "cjson")

local hello = {}

hello.PROTOCOL_VERSION = 2
hello.CAPABILITIES = { "tcp" }
hello.ADDRESSES_MAX = 32
local ADDRESSES_MAX = hello.ADDRESSES_MAX

--- The hello of this node: who it is and every address it has, with that
-- interface's kind and speed. ifaces: the network sample's list; score(path):
-- the discovery policy's score, which picks the link kind to advertise.
-- caps: the transports this node serves (default hello.CAPABILITIES; with
-- "rdma" where a device is usable, as discovery decides at start).
function hello.build(id, name, ifaces, score, caps)
  local addrs, best_kind, best_score = {}, "other", -math.huge
  for _, nif in ipairs(ifaces or {}) do
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
      local s = score({ kind = nif.kind, speed_mbps = nif.speed_mbps })
      if (#(nif.ipv4 or {}) > 0 or #(nif.ipv6 or {}) > 0) and s > best_score then
        best_kind, best_score = nif.kind, s
      end
    end
  end
  return {
    id = id,
    name = name,
    version = runtime.version(),
    proto = hello.PROTOCOL_VERSION,
    caps = caps or hello.CAPABILITIES,
    link = best_kind,
    addrs = addrs,
  }
end

--- The TXT record of a hello (what mDNS browsers see before probing).
function hello.txt(h)
  return {
    txtvers = "1",
    id = h.id,
    name = h.name,
    ver = h.version,
    proto = tostring(h.proto),
    -- Unauthenticated: what every node serves. "rdma" is said only in the
    -- hello a prober gets once it proved the cluster key.
    caps = table.concat(hello.CAPABILITIES, ","),
    link = h.link,
  }
end

--- The full hello as JSON (for probers that proved the cluster key), and the
-- public one: who this is, and nothing of where else it can be reached.
function hello.encode(h)
  return json.encode(h), json.encode({ id = h.id, name = h.name, version = h.version, proto = h.proto })
end

local function short_string(v, max)
  return type(v) == "string" and #v >= 1 and #v <= max and not v:find("%c")
end

--- Checks a hello (decoded JSON) and returns a clean copy, or nil and why.
function hello.check(h)
  if type(h) ~= "table" then
    return nil, "not an object"
  end
  if not (short_string(h.id, 64) and h.id:match(identity.ID_PATTERN)) then
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

--- Decodes and checks a peer's hello from a probe reply: a clean hello, or
-- nil and why.
function hello.decode(reply)
  if not cjson_ok then
    return nil, "lua-cjson is not installed"
  end
  local ok, decoded = pcall(cjson.decode, reply)
  if not ok then
    return nil, "the hello is not JSON"
  end
  return hello.check(decoded)
end

return hello
