local runtime = require("nodelua.runtime")
local timer = require("nodelua.timer")
local log = require("nodelua.log")
local config = require("nodelua.config")
local support = require("support")

describe("nodelua.runtime", function()
  it("logs an error in a callback with file:line and a traceback, and goes on", function()
    local finish = support.capture_log()
    local errors_before = runtime.errors()
    local after = false
    timer.after(0, function() error("boom in a timer") end)
    timer.after(0.01, function() after = true end)
    runtime.run()
    local text = finish()
    assert.is_true(after)
    assert.equal(errors_before + 1, runtime.errors())
    assert.matches("ERROR +lua: timer callback failed: [^\n]*runtime_spec%.lua:%d+: boom in a timer", text)
    assert.matches("stack traceback:", text)
  end)

  it("logs an error object that is not a string", function()
    local finish = support.capture_log()
    timer.after(0, function() error({ code = 7 }) end)
    runtime.run()
    assert.matches("error object is a table value", finish())
  end)

  it("stops a runaway callback with the instruction hook, and the loop goes on", function()
    local finish = support.capture_log()
    local after = false
    timer.after(0, function()
      while true do end
    end)
    timer.after(0.01, function() after = true end)
    runtime.run()
    local text = finish()
    assert.is_true(after)
    assert.matches("runtime_spec%.lua:%d+: stopped: ran past the budget of %d+ Lua instructions", text)
  end)

  it("stops a runaway callback even when it catches the error with pcall", function()
    local finish = support.capture_log()
    local loops = 0
    timer.after(0, function()
      while true do
        loops = loops + 1
        pcall(function()
          while true do end
        end)
      end
    end)
    runtime.run()
    local text = finish()
    assert.equal(1, loops)
    assert.matches("ran past the budget", text)
  end)

  it("gives each callback its own budget", function()
    local budget = runtime.budget()
    local done = 0
    -- A loop iteration costs two instructions, so each callback uses 60% of
    -- the budget: together they would not fit in one.
    local function busy()
      local n = 0
      for _ = 1, budget * 3 // 10 do
        n = n + 1
      end
      done = done + 1
    end
    timer.after(0, busy)
    timer.after(0, busy)
    runtime.run()
    assert.equal(2, done)
  end)

  it("returns results or the error and traceback from runtime.pcall", function()
    assert.same({ true, 1, "two" }, { runtime.pcall(function(a) return a, "two" end, 1) })
    local ok, message, traceback = runtime.pcall(function() error("nope") end)
    assert.is_false(ok)
    assert.matches("runtime_spec%.lua:%d+: nope$", message)
    assert.matches("^stack traceback:", traceback)
    local stopped, why = runtime.pcall(function() while true do end end)
    assert.is_false(stopped)
    assert.matches("budget", why)
  end)

  it("runs shutdown hooks newest first, then closes every timer", function()
    local order = {}
    local ticks = 0
    runtime.on_shutdown(function() order[#order + 1] = "first registered" end)
    runtime.on_shutdown(function()
      -- Hooks run while timers still work: pending work can be flushed.
      order[#order + 1] = "second registered"
    end)
    local ticker = timer.every(0.005, function() ticks = ticks + 1 end)
    timer.after(0.03, function() runtime.exit(3) end)
    runtime.run()
    assert.same({ "second registered", "first registered" }, order)
    assert.is_false(ticker:active())
    assert.is_true(ticks > 0)
  end)

  it("refuses to run the loop from inside a callback", function()
    local ok, err
    timer.after(0, function()
      ok, err = pcall(runtime.run)
    end)
    runtime.run()
    assert.is_false(ok)
    assert.matches("already running", err)
  end)
end)

describe("nodelua.log", function()
  it("formats messages, names the calling line and honours the level", function()
    local finish = support.capture_log()
    log.info("%d items in %s", 3, "queue")
    log.warn("plain message")
    log.trace("not shown at the default level")
    local text = finish()
    assert.matches("INFO +[^\n]*runtime_spec%.lua:%d+: 3 items in queue", text)
    assert.matches("WARN +[^\n]*runtime_spec%.lua:%d+: plain message", text)
    assert.not_matches("not shown", text)
    assert.equal("info", log.level())
    assert.is_true(log.enabled("error"))
    assert.is_false(log.enabled("debug"))
    assert.has_error(function() log.enabled("loud") end)
  end)

  it("never writes the API key", function()
    local finish = support.capture_log()
    log.info("key=%s", config.get("MONITORING_API_KEY"))
    local text = finish()
    assert.matches("key=%[REDACTED%]", text)
    assert.not_matches(config.get("MONITORING_API_KEY"), text, 1, true)
  end)

  it("returns nil and a message when the log file cannot be opened", function()
    local ok, err = log.set_file("/nonexistent-dir/log")
    assert.is_nil(ok)
    assert.matches("No such file", err)
  end)
end)

describe("nodelua.config", function()
  it("gives typed values and their source", function()
    assert.equal("string", type(config.get("MONITORING_API_URL")))
    assert.equal("integer", math.type(config.get("REPORT_INTERVAL")))
    assert.equal("boolean", type(config.get("NODELUA_MDNS")))
    assert.equal(config.get("NODELUA_LOG"), config.get("RUST_LOG"))
    assert.is_string(config.source("NODE_NAME"))
    assert.has_error(function() config.get("NO_SUCH_VARIABLE") end)
  end)

  it("hides secrets in all()", function()
    local all = config.all()
    assert.equal("[REDACTED]", all.MONITORING_API_KEY)
    assert.equal(config.get("NODELUA_LOG"), all.NODELUA_LOG)
  end)
end)
