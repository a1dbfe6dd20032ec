local metrics = require("nodelua.metrics")
local runtime = require("nodelua.runtime")
local timer = require("nodelua.timer")

describe("nodelua.metrics", function()
  it("samples every group the OS gives, as plain tables", function()
    local s = metrics.sample()
    for _, group in ipairs({ "cpu", "load", "memory", "network", "storage", "system", "self" }) do
      assert.is_table(s[group], group)
    end
    assert.is_true(math.type(s.memory.total) == "integer" and s.memory.total > 0)
    assert.is_true(s.memory.used <= s.memory.total)
    -- Each OS's own figures, and the other's absent rather than zero.
    if s.system.sysname == "Linux" then
      assert.is_nil(s.memory.wired)
      assert.is_number(s.memory.buffers)
    else
      assert.is_nil(s.memory.buffers)
      assert.is_number(s.memory.wired)
    end
    assert.is_true(#s.cpu.cores >= 1)
    assert.equal(#s.cpu.cores, s.cpu.logical_cores)
    assert.is_number(s.cpu.total.seconds.idle)
    assert.is_number(s.load.load1)
    assert.is_string(s.system.kernel)
    assert.is_boolean(s.system.apple_silicon)
    local loopbacks = 0
    for _, nif in ipairs(s.network) do
      if nif.kind == "loopback" then
        loopbacks = loopbacks + 1
      end
      assert.is_table(nif.counters)
      assert.is_true(math.type(nif.counters.rx_bytes) == "integer")
    end
    assert.equal(1, loopbacks)
    assert.is_true(#s.storage.filesystems >= 1)
  end)

  it("gives percentages and rates from the second sample on", function()
    local first = metrics.sample({ "cpu", "network" })
    local s
    -- CPU counters move in clock ticks: leave the loop time to tick.
    timer.after(0.15, function()
      s = metrics.sample({ "cpu", "network" })
    end)
    runtime.run()
    assert.is_table(s, "no second sample")
    assert.is_table(s.cpu.total.percent, "no CPU rates in the second sample")
    local sum = 0
    for _, v in pairs(s.cpu.total.percent) do
      sum = sum + v
    end
    assert.is_true(math.abs(sum - 100) <= 1, "CPU modes sum to " .. tostring(sum))
    assert.is_true(s.cpu.total.usage_percent >= 0 and s.cpu.total.usage_percent <= 100,
      "CPU usage " .. tostring(s.cpu.total.usage_percent))
    -- Other tests running beside this one add and remove interfaces (veth
    -- pairs, recreated under the same names): only one seen in both samples
    -- whose counters did not go back has a rate.
    local before = {}
    for _, nif in ipairs(first.network) do
      before[nif.name] = nif.counters
    end
    local compared = 0
    for _, nif in ipairs(s.network) do
      local was = before[nif.name]
      local kept = was
      for name, value in pairs(was or {}) do
        kept = kept and nif.counters[name] >= value
      end
      if kept then
        assert.is_table(nif.rates, "no rates for " .. nif.name)
        assert.is_true(nif.rates.rx_bytes >= 0, nif.name)
        compared = compared + 1
      end
    end
    assert.is_true(compared > 0, "no interface was in both samples")
  end)

  it("samples only the groups asked for", function()
    local s = metrics.sample("memory")
    assert.same({ "memory" }, (function()
      local keys = {}
      for k in pairs(s) do
        keys[#keys + 1] = k
      end
      return keys
    end)())
    s = metrics.sample({ "load", "system" })
    assert.is_table(s.load)
    assert.is_table(s.system)
    assert.is_nil(s.cpu)
  end)

  it("refuses an unknown group", function()
    assert.has_error(function() metrics.sample("gpu") end)
    assert.has_error(function() metrics.sample({ "cpu", "temperature" }) end)
    assert.has_error(function() metrics.sample(42) end)
  end)

  it("lets a policy change the excluded filesystem types", function()
    local defaults = metrics.excluded_fstypes()
    local root
    for _, fs in ipairs(metrics.sample("storage").storage.filesystems) do
      if fs.mount == "/" then
        root = fs
      end
    end
    assert.is_table(root)
    local more = { root.fstype }
    for _, t in ipairs(defaults) do
      more[#more + 1] = t
    end
    metrics.exclude_fstypes(more)
    for _, fs in ipairs(metrics.sample("storage").storage.filesystems) do
      assert.are_not.equal(root.fstype, fs.fstype)
    end
    metrics.exclude_fstypes(defaults)
    assert.same(defaults, metrics.excluded_fstypes())
    assert.has_error(function() metrics.exclude_fstypes({ {} }) end)
  end)

  it("renders the latest samples in the Prometheus format", function()
    metrics.sample({ "load", "memory" })
    local text = metrics.scrape()
    assert.matches("# TYPE node_load1 gauge\nnode_load1 [%d.]+\n", text)
    assert.matches("node_memory_MemTotal_bytes %d+\n", text)
  end)
end)
