local discovery = require("nodelua.discovery")
local hello_mod = require("nodelua.discovery.hello")
local identity = require("nodelua.discovery.identity")
local paths_mod = require("nodelua.discovery.paths")
local dnssd = require("nodelua.dnssd")
local format = require("nodelua.format")
local repl = require("nodelua.repl")
local shipped = require("nodelua.policy.discovery")
local support = require("support")

-- A policy loader with the shipped discovery policy, faster timings, and
-- hooks that record what they see.
local function policies(overrides)
  local events = {}
  local p = {}
  for k, v in pairs(shipped) do
    p[k] = v
  end
  p.probe_interval, p.probe_timeout, p.down_after = 0.1, 0.2, 0.6
  p.on_peer_up = function(peer)
    events[#events + 1] = "up " .. peer.name
  end
  p.on_peer_down = function(peer, why)
    events[#events + 1] = "down " .. peer.name .. " " .. why
  end
  for k, v in pairs(overrides or {}) do
    p[k] = v
  end
  return {
    get = function(_, name)
      return name == "discovery" and p or nil
    end,
    call = function(_, name, hook, ...)
      if name == "discovery" and p[hook] then
        return p[hook](...)
      end
    end,
    number = function(_, name, key, default, min, max)
      local v = name == "discovery" and p[key]
      return type(v) == "number" and v >= min and v <= max and v or default
    end,
    reload = function() end,
  }, events
end

local ID_A = ("a"):rep(32)
local ID_B = ("b"):rep(32)

describe("discovery: the transports this node advertises", function()
  it("says rdma only where a device is usable, and only to provers", function()
    local transfer = require("nodelua.transfer")
    local rdma = transfer.rdma()
    assert.is_boolean(rdma.built)
    local caps = discovery.capabilities(true)
    if rdma.usable > 0 then
      assert.same({ "tcp", "rdma" }, caps)
    else
      assert.same({ "tcp" }, caps)
      assert.matches("RDMA", rdma.why)
    end
    local h = hello_mod.build(ID_A, "node-a", {}, function()
      return 0
    end, { "tcp", "rdma" })
    assert.same({ "tcp", "rdma" }, h.caps)
    -- The TXT record is public: it says only what every node serves.
    assert.equal("tcp", hello_mod.txt(h).caps)
    assert.same({ "tcp" }, hello_mod.build(ID_A, "node-a", {}, function()
      return 0
    end).caps)
  end)
end)

describe("discovery: what peers say is checked", function()
  it("keeps a valid hello and cleans it", function()
    local h = assert(hello_mod.check({
      id = ID_A:upper(), name = "node-a", version = "1.2.3", proto = 1, caps = { "tcp", 5, "rdma" },
      link = "ethernet",
      addrs = { { address = "10.0.0.1", kind = "ethernet", speed_mbps = 1000 }, { address = "bad addr!" }, 7 },
    }))
    assert.equal(ID_A, h.id)
    assert.same({ "tcp", "rdma" }, h.caps)
    assert.equal(1, #h.addrs)
    assert.equal(1000, h.addrs[1].speed_mbps)
  end)

  it("refuses a hello without a usable id or name", function()
    assert.is_nil(hello_mod.check({ name = "x" }))
    assert.is_nil(hello_mod.check({ id = "not hex!", name = "x" }))
    assert.is_nil(hello_mod.check({ id = ID_A, name = ("n"):rep(64) }))
    assert.is_nil(hello_mod.check({ id = ID_A, name = "line\nbreak" }))
    assert.is_nil(hello_mod.check("a string"))
  end)

  it("parses NODELUA_PEERS and refuses what is not host:port", function()
    assert.same({ { host = "a.example", port = 1 }, { host = "::1", port = 7879 } },
      paths_mod.parse_peers("a.example:1, [::1]:7879"))
    assert.same({}, paths_mod.parse_peers(""))
    assert.is_nil(paths_mod.parse_peers("host"))
    assert.is_nil(paths_mod.parse_peers("host:0"))
    assert.is_nil(paths_mod.parse_peers("host:99999"))
  end)

  it("makes instance names unique by id and at most 63 bytes", function()
    assert.equal("node (aaaaaaaa)", identity.instance_name("node", ID_A))
    assert.not_equal(identity.instance_name("twin", ID_A), identity.instance_name("twin", ID_B))
    local long = identity.instance_name(("é"):rep(40), ID_A)
    assert.is_true(#long <= 63)
    assert.truthy(utf8.len(long)) -- not cut inside a character
  end)

  it("round-trips a TXT record through the C codec", function()
    local txt = { txtvers = "1", id = ID_A, name = "node", ver = "0.1.0", proto = "1", caps = "tcp", link = "ethernet" }
    assert.same(txt, dnssd.txt_decode(dnssd.txt_encode(txt)))
    assert.has_error(function()
      dnssd.txt_encode({ waytoolongkey = "x" })
    end)
    local damaged, err = dnssd.txt_decode("\5a=1")
    assert.is_nil(damaged)
    assert.matches("damaged", err)
  end)
end)

describe("discovery: the default ranking", function()
  local score = shipped.score
  it("puts Thunderbolt over Ethernet over Wi-Fi over the rest, whatever the speed", function()
    assert.is_true(score({ kind = "thunderbolt", speed_mbps = 10 }) > score({ kind = "ethernet", speed_mbps = 100000 }))
    assert.is_true(score({ kind = "ethernet", speed_mbps = 10 }) > score({ kind = "wifi", speed_mbps = 9000 }))
    assert.is_true(score({ kind = "wifi" }) > score({ kind = "virtual", speed_mbps = 40000 }))
  end)
  it("then the slower end's speed", function()
    assert.is_true(score({ kind = "ethernet", speed_mbps = 10000 }) > score({ kind = "ethernet", speed_mbps = 1000 }))
    assert.equal(score({ kind = "ethernet", speed_mbps = 1000 }),
      score({ kind = "ethernet", speed_mbps = 10000, remote_speed_mbps = 1000 }))
  end)
end)

describe("discovery: the peer table", function()
  local d, events

  before_each(function()
    local loader
    loader, events = policies()
    d = assert(discovery.start({ advertise = false, mdns = false, peers = "", id = ID_A, name = "me",
      policies = loader }))
  end)
  after_each(function()
    d:stop()
  end)

  -- A node as a hello would make it, with paths as probes would mark them.
  -- The addresses are loopback ones: probe_round really probes them.
  local function node(id, name, paths)
    local n = d:node(id)
    n.name, n.version, n.caps = name, "1.0", { "tcp" }
    for _, p in ipairs(paths) do
      local path = d:add_path(n, p.address, 7879, "mdns")
      path.ok, path.kind, path.speed_mbps, path.ifname = p.ok ~= false, p.kind, p.speed, p.ifname
      if path.ok then
        path.last_ok = require("nodelua.runtime").now()
        n.last_ok = path.last_ok
      end
    end
    n.sources["instance of " .. id] = true
    d:changed(n)
    return n
  end

  it("chooses the best path and re-chooses when it goes down", function()
    local n = node(ID_B, "b", {
      { address = "127.0.0.2", kind = "ethernet", speed = 10000, ifname = "en0" },
      { address = "127.9.0.2", kind = "thunderbolt", speed = 40000, ifname = "bridge0" },
      { address = "127.8.0.2", kind = "wifi", speed = 1200, ifname = "en1" },
    })
    assert.same({ "up b" }, events)
    local peers = d:peers()
    assert.equal(1, #peers)
    assert.equal("127.9.0.2", peers[1].best.address)
    assert.equal("thunderbolt", peers[1].best.kind)
    n.paths["127.9.0.2 7879"].ok = false
    d:changed(n)
    assert.equal("127.0.0.2", d:peers()[1].best.address)
    n.paths["127.0.0.2 7879"].ok = false
    d:changed(n)
    assert.equal("127.8.0.2", d:peers()[1].best.address)
    assert.equal(1, #d:peers()[1].paths) -- only paths that answer are shown
  end)

  it("probes a verified hello's addresses only when they are on a subnet of its own interfaces", function()
    d.ifaces.list = { { name = "lo", up = true, prefix = { ["127.0.0.1"] = 8 } } }
    local path = d:add_path(d:node(ID_B), "127.0.0.1", 7879, "static")
    local hello = ('{"id":"%s","name":"b","version":"1","proto":2,"addrs":[' ..
      '{"address":"127.0.0.77"},{"address":"203.0.113.9"}]}'):format(ID_B)
    d:on_probe(path, { ok = true, verified = true, reply = hello, rtt_ms = 1 })
    assert.truthy(d.by_address["127.0.0.77 7879"]) -- on lo's 127/8
    assert.is_nil(d.by_address["203.0.113.9 7879"]) -- routed: never probed
  end)

  it("keeps the path in use when another scores the same", function()
    local n = node(ID_B, "b", {
      { address = "127.0.0.9", kind = "ethernet", speed = 1000 },
      { address = "127.0.0.1", kind = "ethernet", speed = 1000 },
    })
    assert.equal("127.0.0.1", n.best.address)
    n.best = n.paths["127.0.0.9 7879"]
    d:changed(n)
    assert.equal("127.0.0.9", n.best.address)
  end)

  it("lists peers best first, as a copy", function()
    local ID_C = ("c"):rep(32)
    node(ID_B, "a-wifi", { { address = "127.0.0.2", kind = "wifi", speed = 1200 } })
    node(ID_C, "z-thunderbolt", { { address = "127.0.0.3", kind = "thunderbolt", speed = 40000 } })
    local peers = d:peers()
    -- By the best path's score, not by name.
    assert.same({ "z-thunderbolt", "a-wifi" }, { peers[1].name, peers[2].name })
    peers[1].name = "changed"
    table.remove(peers)
    assert.equal("z-thunderbolt", d:peers()[1].name)
    assert.equal(2, #d:peers())
  end)

  it("logs a failing score once, and again after a reload", function()
    local loader = policies({ score = function()
      error("score broke")
    end })
    d.policies = loader
    local stop = support.capture_log()
    node(ID_B, "b", { { address = "127.0.0.2", kind = "ethernet" }, { address = "127.0.0.5", kind = "wifi" } })
    d:score({ kind = "ethernet" })
    d:reload()
    d:score({ kind = "ethernet" })
    local text = stop()
    assert.equal(2, support.count(text, "score%(%) failed or gave no number"))
    assert.equal(1, #d:peers()) -- the peer is still there, its paths scored 0
  end)

  it("removes a peer at once on goodbye, with the down hook", function()
    local n = node(ID_B, "b", { { address = "127.0.0.2", kind = "ethernet" } })
    d:goodbye(n, "instance of " .. ID_B)
    assert.same({ "up b", "down b goodbye" }, events)
    assert.same({}, d:peers())
    assert.is_nil(d.nodes[ID_B])
  end)

  it("keeps a static peer after its mDNS goodbye", function()
    local n = node(ID_B, "b", { { address = "127.0.0.2", kind = "ethernet" } })
    n.sources.static = true
    d:goodbye(n, "instance of " .. ID_B)
    assert.equal(1, #d:peers())
  end)

  it("forgets a peer gone for an hour that nothing advertises", function()
    local n = node(ID_B, "b", { { address = "127.0.0.2", kind = "ethernet" } })
    local now = require("nodelua.runtime").now()
    n.paths["127.0.0.2 7879"].ok = false
    n.last_ok = now - 60
    d:changed(n)
    assert.same({ "up b", "down b unreachable" }, events)
    d:probe_round()
    assert.truthy(d.nodes[ID_B]) -- still advertised: kept, to come back
    n.sources = {}
    d:probe_round()
    assert.truthy(d.nodes[ID_B]) -- gone a minute only
    n.last_ok = now - 3601
    d:probe_round()
    assert.is_nil(d.nodes[ID_B])
    assert.is_nil(d.by_address["127.0.0.2 7879"])
  end)

  it("lists two nodes of one name, told apart by id", function()
    local id_c = ("c"):rep(32)
    node(ID_B, "twin", { { address = "127.0.0.2", kind = "ethernet" } })
    node(id_c, "twin", { { address = "127.0.0.3", kind = "ethernet" } })
    local peers = d:peers()
    assert.equal(2, #peers)
    assert.equal("twin", peers[1].name)
    assert.equal("twin", peers[2].name)
    assert.equal(ID_B, peers[1].id)
    assert.equal(id_c, peers[2].id)
    local table_text = format.peer_table(peers)
    assert.matches("bbbbbbbbbbbb%s+twin%s+127.0.0.2:7879%s+ethernet", table_text)
    assert.matches("cccccccccccc%s+twin%s+127.0.0.3:7879", table_text)
  end)

  it("formats links with their speed", function()
    assert.equal("thunderbolt 40 Gb/s", format.link_text({ kind = "thunderbolt", speed_mbps = 40000 }))
    assert.equal("ethernet 100 Mb/s",
      format.link_text({ kind = "ethernet", speed_mbps = 1000, remote_speed_mbps = 100 }))
    assert.equal("wifi", format.link_text({ kind = "wifi" }))
  end)
end)

describe("discovery: over loopback, with real probes", function()
  local KEY = "the-cluster-key-of-these-specs"

  it("finds a static peer, sees it go, and sees it come back", function()
    local loader, events = policies()
    local a = assert(discovery.start({ advertise = true, mdns = false, port = 0, peers = "", id = ID_A,
      name = "node-a", policies = loader, key = KEY }))
    local port = a:advertised_port()
    local b = assert(discovery.start({ advertise = false, mdns = false, id = ID_B, name = "node-b",
      peers = "127.0.0.1:" .. port, policies = loader, key = KEY }))
    finally(function()
      a:stop()
      b:stop()
    end)
    local ups = {}
    discovery.on_peer_up(function(peer)
      ups[#ups + 1] = peer.id
    end)
    assert.is_true(support.wait_for(function()
      return #b:peers() == 1
    end, 5))
    local peer = b:peers()[1]
    assert.equal(ID_A, peer.id)
    assert.equal("node-a", peer.name)
    assert.is_true(peer.verified) -- its hello proved the key
    assert.same({ "tcp" }, peer.caps)
    -- 127.0.0.1 answered; a's hello named its other addresses (this
    -- machine's), which answer too and may rank above loopback.
    local via_loopback = false
    for _, path in ipairs(peer.paths) do
      via_loopback = via_loopback or (path.address == "127.0.0.1" and path.kind == "loopback")
    end
    assert.is_true(via_loopback)
    assert.truthy(peer.best)
    assert.same({ ID_A }, ups)
    assert.same(b:peers(), discovery.peers()) -- the module's view is the last started

    -- a stops answering (its port closes): b reports it gone after down_after.
    a:stop()
    assert.is_true(support.wait_for(function()
      return #b:peers() == 0
    end, 5))
    assert.same({ "up node-a", "down node-a unreachable" }, events)

    -- and back, on the same port: b finds it again.
    a = assert(discovery.start({ advertise = true, mdns = false, port = port, peers = "", id = ID_A,
      name = "node-a", policies = loader, key = KEY }))
    assert.is_true(support.wait_for(function()
      return #b:peers() == 1
    end, 10))
  end)

  it("without a key anywhere, lists a peer from its public hello, unverified and with no other address", function()
    local loader = policies()
    local a = assert(discovery.start({ advertise = true, mdns = false, port = 0, peers = "", id = ID_A,
      name = "node-a", policies = loader, key = false }))
    local b = assert(discovery.start({ advertise = false, mdns = false, id = ID_B, name = "node-b",
      peers = "127.0.0.1:" .. a:advertised_port(), policies = loader, key = false }))
    finally(function()
      a:stop()
      b:stop()
    end)
    assert.is_true(support.wait_for(function()
      return #b:peers() == 1
    end, 5))
    local peer = b:peers()[1]
    assert.equal(ID_A, peer.id)
    assert.is_false(peer.verified)
    assert.same({}, peer.caps) -- the public hello says who, not what or where
    assert.equal(1, #peer.paths)
    assert.equal("127.0.0.1", peer.paths[1].address)
  end)

  it("holding a key, takes no peer whose hello does not prove it: another key, or none", function()
    local loader = policies()
    for _, theirs in ipairs({ "another-cluster-key-entirely", false }) do
      local a = assert(discovery.start({ advertise = true, mdns = false, port = 0, peers = "", id = ID_A,
        name = "impostor", policies = loader, key = theirs }))
      local b = assert(discovery.start({ advertise = true, mdns = false, port = 0, id = ID_B, name = "node-b",
        peers = "127.0.0.1:" .. a:advertised_port(), policies = loader, key = KEY }))
      -- b probes a (and introduces itself) several times over; a's hello
      -- proves no key b holds, and b's probes prove none a can check.
      -- (A node with no key lists what it finds, unverified: a may list b
      -- then; a node with another key lists nothing of b either.)
      local anyone = support.wait_for(function()
        return #b:peers() > 0 or (theirs and #a:peers() > 0)
      end, 2.5)
      a:stop()
      b:stop()
      assert.is_false(anyone)
    end
  end)

  it("learns of a peer from its introduction, with no other source", function()
    local loader = policies()
    local a = assert(discovery.start({ advertise = true, mdns = false, port = 0, peers = "", id = ID_A,
      name = "node-a", policies = loader, key = KEY }))
    -- b knows a (a static peer); a knows nothing of b but b's probes.
    local b = assert(discovery.start({ advertise = true, mdns = false, port = 0, id = ID_B, name = "node-b",
      peers = "127.0.0.1:" .. a:advertised_port(), policies = loader, key = KEY }))
    finally(function()
      a:stop()
      b:stop()
    end)
    assert.is_true(support.wait_for(function()
      return #a:peers() == 1 and #b:peers() == 1
    end, 5))
    assert.equal(ID_B, a:peers()[1].id)
    assert.equal("node-b", a:peers()[1].name)
  end)

  it("ignores itself", function()
    local loader = policies()
    local a = assert(discovery.start({ advertise = true, mdns = false, port = 0, peers = "", id = ID_A,
      name = "self", policies = loader }))
    local b = assert(discovery.start({ advertise = false, mdns = false, id = ID_A, name = "self too",
      peers = "127.0.0.1:" .. a:advertised_port(), policies = loader }))
    finally(function()
      a:stop()
      b:stop()
    end)
    local probed = false
    support.wait_for(function()
      for _, path in pairs(b.by_address) do
        probed = probed or path.error == "this node itself"
      end
      return probed
    end, 3)
    assert.is_true(probed)
    assert.same({}, b:peers())
  end)
end)

describe("repl", function()
  local loader = {
    get = function(_, name)
      return name == "commands" and require("nodelua.policy.commands") or nil
    end,
  }
  local ctx = {
    peers = function()
      return {}
    end,
    status = function()
      return { version = "0.1.0", uptime_seconds = 3, name = "n", id = ID_A,
        spool = { depth = 1, bytes = 10, dropped = 0 },
        delivery = { delivered = 2, failed_attempts = 0, dead_lettered = 0 },
        mdns = "on", peers = 0, transfer_port = 7879 }
    end,
  }
  it("answers the shipped commands and help", function()
    assert.equal("no peers\n", repl.answer(loader, ctx, "list"))
    assert.equal("[]\n", repl.answer(loader, ctx, " peers "))
    assert.matches("uptime    3 s", repl.answer(loader, ctx, "status"))
    local help = repl.answer(loader, ctx, "help")
    for _, name in ipairs({ "help", "list", "peers", "status", "quit" }) do
      assert.matches("\n?" .. name .. " ", help)
    end
  end)
  it("answers send with an action for the client, for a peer in the table", function()
    local with_peer = {
      peers = function()
        return { { id = ID_B, name = "bravo", best = { address = "127.0.0.1", port = 7001 } } }
      end,
    }
    -- The peer's id last: the client checks the node that answers proves it.
    assert.equal("\1send\t127.0.0.1\t7001\tbravo (bbbbbbbbbbbb)\t/data/x\t" .. ID_B .. "\n",
      repl.answer(loader, with_peer, "send bravo /data/x"))
    assert.equal("\1send\t10.0.0.9\t7879\t10.0.0.9:7879\t/x\n", repl.answer(loader, with_peer, "send 10.0.0.9:7879 /x"))
    local text, err = repl.answer(loader, with_peer, "send nobody /x")
    assert.is_nil(text)
    assert.matches("no peer 'nobody'", err)
    assert.matches("usage", select(2, repl.answer(loader, with_peer, "send bravo")))
  end)

  it("lists the words to complete: commands, peer names and ids", function()
    local with_peer = {
      peers = function()
        return { { id = ID_B, name = "bravo", best = { address = "127.0.0.1", port = 7001 } } }
      end,
    }
    local words = repl.answer(loader, with_peer, "__words")
    for _, w in ipairs({ "help", "list", "metrics", "peers", "quit", "send", "status", "bravo", "bbbbbbbbbbbb" }) do
      assert.matches("\n?" .. w .. "\n", words)
    end
  end)

  it("refuses unknown and empty commands", function()
    local text, err = repl.answer(loader, ctx, "frobnicate now")
    assert.is_nil(text)
    assert.equal("unknown command 'frobnicate'; try help", err)
    assert.is_nil((repl.answer(loader, ctx, "   ")))
  end)
end)

describe("discovery: subnets", function()
  it("reads addresses and compares their first bits", function()
    assert.same({ 10, 0, 0, 1 }, paths_mod.address_bytes("10.0.0.1"))
    assert.is_nil(paths_mod.address_bytes("10.0.0.256"))
    assert.equal(16, #paths_mod.address_bytes("fe80::1%eth0"))
    assert.same(paths_mod.address_bytes("2001:db8:0:0:0:0:0:1"), paths_mod.address_bytes("2001:db8::1"))
    assert.same(paths_mod.address_bytes("::ffff:0a00:0001"), paths_mod.address_bytes("::ffff:10.0.0.1"))
    assert.is_nil(paths_mod.address_bytes("2001:db8::1::2"))
    assert.is_nil(paths_mod.address_bytes("nothing"))
    assert.is_true(paths_mod.same_subnet("10.0.0.1", "10.0.0.200", 24))
    assert.is_false(paths_mod.same_subnet("10.0.0.1", "10.0.1.1", 24))
    assert.is_true(paths_mod.same_subnet("10.0.0.1", "10.0.1.1", 23))
    assert.is_true(paths_mod.same_subnet("169.254.3.4", "169.254.200.1", 16))
    assert.is_true(paths_mod.same_subnet("2001:db8:1::5", "2001:db8:1::99", 64))
    assert.is_false(paths_mod.same_subnet("2001:db8:1::5", "2001:db8:2::5", 64))
    assert.is_false(paths_mod.same_subnet("10.0.0.1", "2001:db8::1", 8))
  end)
end)
