-- The worked examples of docs/policy.md (examples/policy/), each loaded
-- through the real policy loader as the agent loads an override, and the
-- rule that policies use no internals.
local cjson = require("cjson")
local metrics = require("nodelua.metrics")
local policy = require("nodelua.policy")
local repl = require("nodelua.repl")
local support = require("support")

local SOURCE = os.getenv("NODELUA_SOURCE_DIR") or "."
local EXAMPLES = SOURCE .. "/examples/policy"

local function loader()
  return policy.new({ dir = EXAMPLES })
end

describe("examples/policy", function()
  it("report.lua: the shipped report, plus a field", function()
    local l = loader()
    local report = assert(l:get("report"))
    assert.equal(EXAMPLES .. "/report.lua", l:origin("report"))
    local latest = metrics.sample()
    local body = report.build(latest, { time = 1700000000, full = true, sequence = 1 })
    local payload = cjson.decode(body)
    assert.equal(os.getenv("NODE_SITE") or "lab", payload.site)
    -- Everything else is the shipped policy's, unchanged.
    local shipped = cjson.decode(require("nodelua.policy.report").build(latest,
      { time = 1700000000, full = true, sequence = 1 }))
    payload.site = nil
    assert.same(shipped.system, payload.system)
    assert.same(shipped.timestamp, payload.timestamp)
    assert.equal(60, report.full_info_every)
    assert.matches("/api/v1/metrics$", report.destination().url)
  end)

  it("schedule.lua: a laptop's schedule, five times slower, no temperatures", function()
    local intervals = assert(loader():call("schedule", "intervals"))
    local shipped = require("nodelua.policy.schedule").intervals()
    assert.equal(shipped.cpu * 5, intervals.cpu)
    assert.equal(shipped.report * 5, intervals.report)
    assert.is_nil(intervals.thermal)
  end)

  it("discovery.lua: a path into the preferred subnet wins, whatever its kind", function()
    local d = assert(loader():get("discovery"))
    local wifi_preferred = { address = "10.1.4.2", kind = "wifi", speed_mbps = 300 }
    local thunderbolt = { address = "192.168.7.2", kind = "thunderbolt", speed_mbps = 40000 }
    assert.is_true(d.score(wifi_preferred) > d.score(thunderbolt))
    -- Outside the subnet, the shipped ranking: Thunderbolt over Wi-Fi.
    assert.is_true(d.score(thunderbolt) > d.score({ address = "192.168.7.3", kind = "wifi" }))
    assert.equal(1, d.probe_interval) -- the shipped timings
  end)

  it("update.lua: a window, a staged rollout and a pinned-away version", function()
    local u = assert(loader():get("update"))
    local release = { tag = "stable-2.4.0", channel = "stable", version = "2.4.0" }
    local at = function(hour)
      return os.time({ year = 2026, month = 12, day = 3, hour = hour, min = 30, isdst = false }) -
        (os.time() - os.time(os.date("!*t")))
    end
    local ok, why = u.may_install(release, { channel = "stable", node_id = "x", now = at(12), policy = u })
    assert.is_false(ok)
    assert.matches("outside the window", why)
    -- In the window, the rollout decides: some nodes now, the rest later.
    local now, seen = 0, {}
    for i = 1, 200 do
      local may = u.may_install(release, { channel = "stable", node_id = "node" .. i, now = at(3), policy = u })
      seen[may] = true
      now = now + (may and 1 or 0)
    end
    assert.is_true(seen[true] and seen[false])
    assert.is_true(now > 20 and now < 80, tostring(now))
    assert.is_false((u.accept({ tag = "stable-2.3.1", channel = "stable", version = "2.3.1" }, { channel = "stable" })))
    assert.is_true((u.accept(release, { channel = "stable" })))
    assert.is_false((u.accept({ tag = "beta-2.5.0-rc.1", channel = "beta", version = "2.5.0-rc.1" },
      { channel = "stable" })))
  end)

  it("commands.lua: the shipped commands and df", function()
    local l = loader()
    local ctx = {
      peers = function()
        return {}
      end,
      metrics = function()
        return metrics.sample("storage")
      end,
    }
    local text = assert(repl.answer(l, ctx, "df"))
    assert.matches("/", text)
    local help = assert(repl.answer(l, ctx, "help"))
    for _, name in ipairs({ "df", "list", "peers", "send", "status", "metrics", "update" }) do
      assert.matches("\n?" .. name .. " ", help)
    end
    assert.equal("no peers\n", repl.answer(l, ctx, "list"))
  end)
end)

describe("policies use no internals", function()
  it("no shipped policy or example requires nodelua.cli or another internal", function()
    local internal = { "nodelua%.cli", "nodelua%.transfer", "nodelua%.spool", "nodelua%.http", "nodelua%.port",
      "nodelua%.dnssd", "nodelua%.dns\"", "nodelua%.discovery", "nodelua%.control" }
    local files = {}
    for _, dir in ipairs({ SOURCE .. "/lua/nodelua/policy", EXAMPLES }) do
      local p = assert(io.popen("ls '" .. dir .. "'/*.lua"))
      for path in p:lines() do
        files[#files + 1] = path
      end
      p:close()
    end
    assert.is_true(#files >= 11)
    for _, path in ipairs(files) do
      local text = support.read(path)
      for _, pattern in ipairs(internal) do
        for module in text:gmatch("require%(%s*[\"']([^\"']+)") do
          assert.is_nil(("\"" .. module .. "\""):match("\"" .. pattern), path .. " requires " .. module)
        end
      end
    end
  end)
end)

describe("policy values out of range", function()
  it("are logged, the default used, and logged again after a reload", function()
    local dir = support.tmpdir()
    support.write(dir .. "/discovery.lua", "return { probe_interval = 500, down_after = 'soon' }")
    local l = policy.new({ dir = dir })
    local stop = support.capture_log()
    assert.equal(1, l:number("discovery", "probe_interval", 1, 0.1, 60))
    assert.equal(1, l:number("discovery", "probe_interval", 1, 0.1, 60)) -- said once
    assert.equal(5, l:number("discovery", "down_after", 5, 0.5, 3600))
    l:reload()
    assert.equal(1, l:number("discovery", "probe_interval", 1, 0.1, 60))
    local text = stop()
    assert.equal(2, support.count(text, "probe_interval = 500 is not a number from 0.1 to 60; using 1"))
    assert.equal(1, support.count(text, "down_after = soon is not a number"))
    -- Whole numbers where they must be.
    support.write(dir .. "/report.lua", "return { full_info_every = 2.5 }")
    stop = support.capture_log()
    assert.equal(60, l:number("report", "full_info_every", 60, 1, 1e6, true))
    assert.matches("full_info_every = 2.5 is not a whole number", stop())
    os.execute("rm -rf '" .. dir .. "'")
  end)
end)
