local account = require("nodelua.account")
local runtime = require("nodelua.runtime")

-- Burns CPU for about `seconds` of this thread's time.
local function spin(seconds)
  local until_cpu = runtime.cpu() + seconds
  local x = 0
  while runtime.cpu() < until_cpu do
    x = x + 1
  end
  return x
end

describe("nodelua.account", function()
  it("counts calls and the thread CPU they took, and passes results through", function()
    local a, b = account.run("spec plain", function(x, y)
      spin(0.02)
      return x + y, "two"
    end, 1, 2)
    assert.equal(3, a)
    assert.equal("two", b)
    local entry = account.snapshot()["spec plain"]
    assert.equal(1, entry.count)
    assert.is_true(entry.seconds >= 0.02 and entry.seconds < 1, tostring(entry.seconds))
  end)

  it("takes counted inner work out of the outer, so that names add up", function()
    account.run("spec outer", function()
      spin(0.01)
      account.run("spec inner", spin, 0.03)
    end)
    local snap = account.snapshot()
    assert.is_true(snap["spec inner"].seconds >= 0.03, tostring(snap["spec inner"].seconds))
    -- Without the subtraction the outer would hold the inner's 30 ms too.
    assert.is_true(snap["spec outer"].seconds >= 0.01 and snap["spec outer"].seconds < 0.025,
      tostring(snap["spec outer"].seconds))
  end)

  it("lets errors through with their message, and counts on afterwards", function()
    local wrapped = account.wrap("spec wrapped", function(fail)
      if fail then
        error("it failed", 0)
      end
      return "ok"
    end)
    local ok, err = pcall(wrapped, true)
    assert.is_false(ok)
    assert.equal("it failed", err)
    assert.equal("ok", wrapped(false))
    assert.equal(1, account.snapshot()["spec wrapped"].count)
  end)

  it("reports the whole thread's CPU as the main thread", function()
    local before = account.snapshot()["main thread"].seconds
    spin(0.01)
    assert.is_true(account.snapshot()["main thread"].seconds - before >= 0.01)
  end)
end)
