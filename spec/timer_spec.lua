local timer = require("nodelua.timer")
local runtime = require("nodelua.runtime")

describe("nodelua.timer", function()
  it("fires one-shot timers in order of their deadlines", function()
    local order = {}
    timer.after(0.03, function() order[#order + 1] = "c" end)
    timer.after(0.01, function() order[#order + 1] = "a" end)
    timer.after(0.02, function() order[#order + 1] = "b" end)
    timer.after(0, function() order[#order + 1] = "now" end)
    runtime.run()
    assert.same({ "now", "a", "b", "c" }, order)
  end)

  it("fires timers with the same deadline in the order they were made", function()
    local order = {}
    for i = 1, 5 do
      timer.after(0.005, function() order[#order + 1] = i end)
    end
    runtime.run()
    assert.same({ 1, 2, 3, 4, 5 }, order)
  end)

  it("repeats an every timer until it is cancelled", function()
    local count = 0
    local t
    t = timer.every(0.002, function()
      count = count + 1
      if count == 3 then
        assert.is_true(t:cancel())
      end
    end)
    assert.is_true(t:active())
    runtime.run()
    assert.equal(3, count)
    assert.is_false(t:active())
  end)

  it("never fires a cancelled timer, and cancel reports whether it was active", function()
    local fired = false
    local t = timer.after(0.005, function() fired = true end)
    assert.is_true(timer.cancel(t))
    assert.is_false(timer.cancel(t))
    assert.is_false(t:active())
    runtime.run()
    assert.is_false(fired)
  end)

  it("lets one callback cancel another timer before it fires", function()
    local fired = {}
    local later = timer.after(0.02, function() fired[#fired + 1] = "later" end)
    timer.after(0.005, function()
      fired[#fired + 1] = "first"
      later:cancel()
    end)
    runtime.run()
    assert.same({ "first" }, fired)
  end)

  it("marks a one-shot timer inactive once it has fired, and lets it schedule anew", function()
    local seen_active, runs = nil, 0
    local t
    t = timer.after(0, function()
      seen_active = t:active()
      runs = runs + 1
      if runs < 2 then
        t = timer.after(0, debug.getinfo(1, "f").func)
      end
    end)
    runtime.run()
    assert.is_false(seen_active)
    assert.equal(2, runs)
  end)

  it("keeps a timer alive when its handle is dropped and collected", function()
    local fired = false
    timer.after(0.005, function() fired = true end)
    collectgarbage()
    collectgarbage()
    runtime.run()
    assert.is_true(fired)
  end)

  it("cancels a timer held in a to-be-closed variable at the end of its scope", function()
    local fired = false
    do
      local t <close> = timer.after(0.005, function() fired = true end)
      assert.is_true(t:active())
    end
    runtime.run()
    assert.is_false(fired)
  end)

  it("refuses bad arguments with an error", function()
    local noop = function() end
    assert.has_error(function() timer.after(-1, noop) end)
    assert.has_error(function() timer.after(0 / 0, noop) end)
    assert.has_error(function() timer.after(math.huge, noop) end)
    assert.has_error(function() timer.every(0, noop) end)
    assert.has_error(function() timer.after("soon", noop) end)
    assert.has_error(function() timer.after(1, nil) end)
    assert.has_error(function() timer.cancel({}) end)
  end)

  it("counts a delay from when the timer is made, however long since the loop last turned", function()
    runtime.run()
    -- Work in a callback or between runs that takes longer than the delay,
    -- without the loop turning (runtime.now would refresh its clock).
    local busy_until = os.clock() + 0.2
    while os.clock() < busy_until do end
    local made = runtime.time()
    local fired
    timer.after(0.1, function() fired = runtime.time() end)
    runtime.run()
    assert.is_true(fired - made >= 0.099, ("fired after %.3f s"):format(fired - made))
  end)
end)
