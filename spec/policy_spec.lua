local policy = require("nodelua.policy")
local runtime = require("nodelua.runtime")
local support = require("support")

-- Shipped policies for these specs live in a temporary module tree on
-- package.path, under the prefix "specpolicy"; overrides in another folder.
local shipped_root = support.tmpdir()
assert(os.execute("mkdir -p '" .. shipped_root .. "/specpolicy'"))
package.path = shipped_root .. "/?.lua;" .. package.path

local function ship(name, source)
  support.write(shipped_root .. "/specpolicy/" .. name .. ".lua", source)
end

local function new_loader(dir)
  return policy.new({ dir = dir, prefix = "specpolicy" })
end

describe("nodelua.policy", function()
  local dir

  before_each(function()
    dir = support.tmpdir()
  end)

  after_each(function()
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("loads the shipped policy when there is no override", function()
    ship("greeting", "return { text = function() return 'shipped' end }")
    local loader = new_loader(dir)
    assert.equal("shipped", loader:call("greeting", "text"))
    assert.equal("shipped specpolicy.greeting", loader:origin("greeting"))
  end)

  it("overrides a shipped policy file by file", function()
    ship("greeting", "return { text = function() return 'shipped' end }")
    ship("farewell", "return { text = function() return 'shipped bye' end }")
    support.write(dir .. "/greeting.lua", "return { text = function() return 'override' end }")
    local loader = new_loader(dir)
    assert.equal("override", loader:call("greeting", "text"))
    assert.equal("shipped bye", loader:call("farewell", "text"))
    assert.equal(dir .. "/greeting.lua", loader:origin("greeting"))
  end)

  it("refuses a broken override at first load and uses the shipped one, saying why once", function()
    ship("greeting", "return { text = function() return 'shipped' end }")
    support.write(dir .. "/greeting.lua", "return { text = function() return 'x' end") -- syntax error
    local finish = support.capture_log()
    local loader = new_loader(dir)
    assert.equal("shipped", loader:call("greeting", "text"))
    local text = finish()
    assert.equal(1, support.count(text, "refused"))
    assert.matches("policy greeting: refused [^\n]*greeting%.lua: [^\n]*greeting%.lua:1:", text)
  end)

  it("keeps the last good policy when the new one is broken", function()
    ship("greeting", "return { text = function() return 'shipped' end }")
    local path = dir .. "/greeting.lua"
    support.write(path, "return { text = function() return 'good v1' end }")
    local loader = new_loader(dir)
    assert.equal("good v1", loader:call("greeting", "text"))
    local broken = {
      "return 42", -- not a table
      "error('policy exploded')", -- raises while loading
      "while true do end", -- runs away while loading
      "return {", -- does not parse
    }
    for _, source in ipairs(broken) do
      support.write(path, source)
      local finish = support.capture_log()
      loader:reload()
      local text = finish()
      assert.equal("good v1", loader:call("greeting", "text"))
      assert.equal(1, support.count(text, "\n"), text)
      assert.matches("refused [^\n]*keeping the last good one from " .. path:gsub("%p", "%%%0"), text)
    end
    support.write(path, "return { text = function() return 'good v2' end }")
    loader:reload()
    assert.equal("good v2", loader:call("greeting", "text"))
  end)

  it("falls back to the shipped policy when the override is removed", function()
    ship("greeting", "return { text = function() return 'shipped' end }")
    support.write(dir .. "/greeting.lua", "return { text = function() return 'override' end }")
    local loader = new_loader(dir)
    assert.equal("override", loader:call("greeting", "text"))
    os.remove(dir .. "/greeting.lua")
    loader:reload()
    assert.equal("shipped", loader:call("greeting", "text"))
  end)

  it("logs a failing hook and returns nil and the message", function()
    ship("faulty", "return { run = function() error('hook broke') end }")
    local finish = support.capture_log()
    local loader = new_loader(dir)
    local result, err = loader:call("faulty", "run")
    local text = finish()
    assert.is_nil(result)
    assert.matches("faulty%.lua:1: hook broke", err)
    assert.matches("policy faulty: hook run failed: [^\n]*faulty%.lua:1: hook broke", text)
    assert.is_nil((loader:call("faulty", "missing_hook")))
  end)

  it("says when there is no policy of that name, and refuses bad names", function()
    local loader = new_loader(dir)
    local p, err = loader:load("nonexistent")
    assert.is_nil(p)
    assert.matches("no shipped policy specpolicy.nonexistent", err)
    assert.has_error(function() loader:load("../etc/passwd") end)
    assert.has_error(function() loader:load("a.b") end)
  end)

  it("reloads on SIGHUP, and keeps the last good policy when the reload is broken", function()
    ship("greeting", "return { text = function() return 'shipped' end }")
    local path = dir .. "/greeting.lua"
    support.write(path, "return { text = function() return 'before hup' end }")
    local loader = new_loader(dir)
    runtime.on_reload(function() loader:reload() end)
    assert(runtime.install_signals())
    assert.equal("before hup", loader:call("greeting", "text"))

    support.write(path, "return { text = function() return 'after hup' end }")
    assert(os.execute("kill -HUP " .. runtime.pid()))
    assert.is_true(support.run_until(function()
      return loader:call("greeting", "text") == "after hup"
    end, 5))

    local finish, log_path = support.capture_log()
    support.write(path, "return nil + 1")
    assert(os.execute("kill -HUP " .. runtime.pid()))
    assert.is_true(support.run_until(function()
      return support.read(log_path):find("refused", 1, true) ~= nil
    end, 5))
    local text = finish()
    assert.matches("SIGHUP: reloading policies", text)
    assert.matches("refused [^\n]*greeting%.lua:1: attempt to perform arithmetic on a nil value", text)
    assert.equal("after hup", loader:call("greeting", "text"))
  end)

  it("refuses an override that others could have written, and keeps the last good one", function()
    ship("greeting", "return { text = function() return 'shipped' end }")
    local path = dir .. "/greeting.lua"
    support.write(path, "return { text = function() return 'mine' end }")
    assert(os.execute("chmod 644 '" .. path .. "'"))
    local loader = new_loader(dir)
    assert.equal("mine", loader:call("greeting", "text"))
    -- Now anyone may write it: whatever it says, it is not run.
    support.write(path, "return { text = function() return 'planted' end }")
    assert(os.execute("chmod 666 '" .. path .. "'"))
    local finish = support.capture_log()
    loader:reload()
    local text = finish()
    assert.equal("mine", loader:call("greeting", "text"))
    assert.equal(1, support.count(text, "policy greeting: refused"))
    assert.matches("greeting%.lua is writable by everyone %(mode 666%): refused; run chmod go%-w", text)
  end)

  it("refuses overrides in a folder others can write, using the shipped one", function()
    ship("greeting", "return { text = function() return 'shipped' end }")
    support.write(dir .. "/greeting.lua", "return { text = function() return 'planted' end }")
    assert(os.execute("chmod 644 '" .. dir .. "/greeting.lua' && chmod 777 '" .. dir .. "'"))
    local finish = support.capture_log()
    local loader = new_loader(dir)
    assert.equal("shipped", loader:call("greeting", "text"))
    assert.matches("the folder [^\n]* is writable by everyone", finish())
  end)

  it("refuses a symlink to a file others could have written", function()
    ship("greeting", "return { text = function() return 'shipped' end }")
    local elsewhere = support.tmpdir()
    support.write(elsewhere .. "/planted.lua", "return { text = function() return 'planted' end }")
    assert(os.execute("chmod 646 '" .. elsewhere .. "/planted.lua'"))
    assert(os.execute("ln -s '" .. elsewhere .. "/planted.lua' '" .. dir .. "/greeting.lua'"))
    local finish = support.capture_log()
    local loader = new_loader(dir)
    assert.equal("shipped", loader:call("greeting", "text"))
    assert.matches("writable by everyone", finish())
    os.execute("rm -rf '" .. elsewhere .. "'")
  end)
end)
