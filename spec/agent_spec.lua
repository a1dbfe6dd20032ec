local json = require("nodelua.json")
local sender = require("nodelua.sender")
local report = require("nodelua.policy.report")
local schedule = require("nodelua.policy.schedule")
local metrics = require("nodelua.metrics")
local cjson = require("cjson")
local runtime = require("nodelua.runtime")
local timer = require("nodelua.timer")

describe("nodelua.json", function()
  it("writes integers exactly, past what a double holds", function()
    assert.equal("[9007199254740993,123456789012345678]", json.encode({ 9007199254740993, 123456789012345678 }))
    assert.equal("0.1", json.encode(0.1))
    assert.equal("1.5", json.encode(1.5))
    assert.equal(2 ^ 0.5, cjson.decode(json.encode(2 ^ 0.5)))
  end)

  it("tells arrays from objects, and empty arrays when marked", function()
    assert.equal("[1,2]", json.encode({ 1, 2 }))
    assert.equal('{"1":1,"3":3}', json.encode({ [1] = 1, [3] = 3 }))
    assert.equal("{}", json.encode({}))
    assert.equal("[]", json.encode(json.array()))
  end)

  it("escapes strings", function()
    assert.equal('"a\\"b\\\\c\\n\\u0001"', json.encode('a"b\\c\n\1'))
  end)

  it("refuses what JSON cannot hold", function()
    assert.has_error(function() json.encode({ x = 0 / 0 }) end)
    assert.has_error(function() json.encode({ f = print }) end)
    local t = {}
    t.self = t
    assert.has_error(function() json.encode(t) end)
  end)
end)

describe("nodelua.sender", function()
  it("backs off exponentially with jitter, up to the ceiling", function()
    for n = 1, 12 do
      local ceiling = math.min(300, 2 ^ (n - 1))
      assert.equal(ceiling * 0.5, sender.backoff(n, 1, 300, function() return 0 end))
      assert.equal(ceiling, sender.backoff(n, 1, 300, function() return 1 end))
    end
  end)

  it("reads Retry-After as seconds or as an HTTP date", function()
    assert.equal(120, sender.retry_after_seconds("120"))
    assert.equal(5, sender.retry_after_seconds(" 5 "))
    -- 2015-10-21 07:27:00 UTC, as a number: not recomputed with the code's
    -- own formula, which would agree with itself whatever it got wrong.
    local utc_now = 1445412420
    assert.equal(60, sender.retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", utc_now))
    assert.equal(0, sender.retry_after_seconds("Wed, 21 Oct 2015 07:26:00 GMT", utc_now))
    -- The same in a zone far from UTC (a POSIX TZ rule: no zone files
    -- needed), where treating the date as local time would be 5.5 hours off.
    local lua = os.getenv("NODELUA_LUA") or "lua5.4"
    local p = assert(io.popen(("TZ=XST-05:30 %s -e %q"):format(lua,
      'print(require("nodelua.sender").retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", 1445412420))')))
    local out = p:read("a")
    p:close()
    assert.equal("60", out:match("^%s*(.-)%s*$"))
    assert.is_nil(sender.retry_after_seconds("soon"))
    assert.is_nil(sender.retry_after_seconds(nil))
  end)
end)

describe("the shipped policies", function()
  it("schedule the predecessor's periods", function()
    local i = schedule.intervals()
    assert.equal(2, i.cpu)
    assert.equal(5, i.network)
    assert.equal(10, i.storage)
    assert.equal(5, i.report) -- REPORT_INTERVAL's default
  end)

  -- Two samples with time between them, so that rates exist.
  local function latest()
    metrics.sample()
    local s
    timer.after(0.15, function() s = metrics.sample() end)
    runtime.run()
    return s
  end

  it("build the API's payload, with the full information when asked", function()
    local s = latest()
    local full = cjson.decode(report.build(s, { time = 1795885151.46, full = true }))
    assert.equal("2026-11-28T16:59:11.460Z", full.timestamp)
    assert.equal(s.memory.total, full.memory.total)
    assert.equal(s.cpu.logical_cores, full.cpu.info.cores.logical)
    assert.equal(s.system.uptime, full.system.uptime)
    assert.is_table(full.network.interfaces)
    assert.equal(#s.network, #full.network.stats)
    for i, stat in ipairs(full.network.stats) do
      local c = s.network[i].counters
      assert.equal(c.rx_errors + c.tx_errors, stat.errors)
      assert.equal(c.rx_bytes, stat.rx_bytes)
    end
    local light = cjson.decode(report.build(s, { time = 1795885151, full = false }))
    assert.is_nil(light.cpu.info)
    assert.is_nil(light.network.interfaces)
    assert.is_number(light.cpu.load.current)
  end)

  it("leave out what was not measured, never sending zero for it", function()
    local s = latest()
    s.storage = nil
    s.cpu.total.percent, s.cpu.total.usage_percent = nil, nil
    for _, core in ipairs(s.cpu.cores) do
      core.percent, core.usage_percent = nil, nil
    end
    s.thermal = nil -- no sensor sampled
    local p = cjson.decode(report.build(s, { time = 0, full = false }))
    assert.is_nil(p.storage)
    assert.is_nil(p.cpu.load)
    assert.is_nil(p.cpu.temperature)
  end)

  it("report the CPU's temperature from its sensors, whatever this machine has", function()
    local s = latest()
    s.thermal = { sensors = {
      { name = "acpitz temp1", celsius = 40.0 },
      { name = "coretemp Package id 0", celsius = 55.0 },
      { name = "coretemp Core 0", celsius = 51.0 },
      { name = "coretemp Core 1", celsius = 57.5 },
    } }
    local t = cjson.decode(report.build(s, { time = 0, full = false })).cpu.temperature
    assert.equal(55.0, t.main) -- the package sensor, not the hottest
    assert.equal(57.5, t.max)
    assert.same({ 51.0, 57.5 }, t.cores)
    s.thermal = { sensors = { { name = "acpitz temp1", celsius = 40.0 } } }
    t = cjson.decode(report.build(s, { time = 0, full = false })).cpu.temperature
    assert.equal(40.0, t.max) -- no CPU sensor named: the highest reading only
  end)

  it("send reports to /api/v1/metrics with the key and JSON", function()
    local d = report.destination()
    assert.matches("/api/v1/metrics$", d.url)
    assert.equal("application/json", d.headers["Content-Type"])
    assert.is_string(d.headers["X-API-Key"])
  end)
end)
