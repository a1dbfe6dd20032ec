--- Policies: Lua modules that return a table of hooks.
--
-- The shipped defaults are the modules `nodelua.policy.NAME` (embedded in the
-- binary). A file NAME.lua in the override directory (NODELUA_POLICY_DIR)
-- replaces the shipped NAME as a whole. A policy that fails to load is
-- refused with one log line, and the last good one stays in force; SIGHUP
-- reloads every policy that was loaded. An override is code that runs as
-- the agent: it is refused when it, or the folder that holds it (through a
-- symlink: its target's), is owned by another user than the agent's or
-- root, or writable by group or others.
local runtime = require("nodelua.runtime")
local trust = require("nodelua.trust")
local log = require("nodelua.log")
local config = require("nodelua.config")

local M = {}

local Loader = {}
Loader.__index = Loader

local function check_name(name)
  if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") then
    error(("policy name must be letters, digits and '_', got %q"):format(tostring(name)), 3)
  end
end

local function file_exists(path)
  local f = io.open(path, "r")
  if f then
    f:close()
    return true
  end
  return false
end

-- Finds the shipped module through package.searchers (the embedded searcher
-- in the binary, package.path under stock Lua), skipping package.preload.
local function find_shipped(modname)
  local reasons = {}
  for i, searcher in ipairs(package.searchers) do
    if i > 1 then
      local loader, extra = searcher(modname)
      if type(loader) == "function" then
        return loader, extra
      elseif type(loader) == "string" then
        reasons[#reasons + 1] = loader
      end
    end
  end
  return nil, ("no shipped policy %s:%s"):format(modname, table.concat(reasons))
end

-- Runs a policy chunk, bounded like a callback, and checks what it returns.
local function evaluate(chunk, ...)
  local ok, result, traceback = runtime.pcall(chunk, ...)
  if not ok then
    return nil, result, traceback
  end
  if type(result) ~= "table" then
    return nil, ("returned %s, not a table of hooks"):format(type(result))
  end
  return result
end

--- A loader over one override directory and one module prefix.
-- opts.dir: the override directory (default NODELUA_POLICY_DIR; "" for none)
-- opts.prefix: the shipped modules' prefix (default "nodelua.policy")
function M.new(opts)
  opts = opts or {}
  local self = setmetatable({
    dir = opts.dir or config.get("NODELUA_POLICY_DIR"),
    prefix = opts.prefix or "nodelua.policy",
    loaded = {},
    order = {},
  }, Loader)
  return self
end

function Loader:override_path(name)
  if self.dir == nil or self.dir == "" then
    return nil
  end
  local path = self.dir:gsub("/+$", "") .. "/" .. name .. ".lua"
  if file_exists(path) then
    return path
  end
  return nil
end

function Loader:load_shipped(name)
  local modname = self.prefix .. "." .. name
  local loader, extra = find_shipped(modname)
  if not loader then
    return nil, extra
  end
  local policy, err = evaluate(loader, modname, extra)
  if not policy then
    return nil, ("shipped %s: %s"):format(modname, err)
  end
  return policy, "shipped " .. modname
end

function Loader:remember(name, policy, origin)
  if not self.loaded[name] then
    self.order[#self.order + 1] = name
  end
  self.loaded[name] = { policy = policy, origin = origin }
  log.debug("policy %s: loaded from %s", name, origin)
  return policy
end

--- Loads (or reloads) the policy NAME. Returns the policy in force, or nil
-- and a message when there is none at all.
function Loader:load(name)
  check_name(name)
  local previous = self.loaded[name]
  local path = self:override_path(name)
  if path then
    local text, err = trust.read(path)
    local chunk, policy
    if text then
      chunk, err = load(text, "@" .. path, "t")
    end
    if chunk then
      policy, err = evaluate(chunk, name, path)
    end
    if policy then
      return self:remember(name, policy, path)
    end
    if previous then
      log.error("policy %s: refused %s: %s; keeping the last good one from %s", name, path, err, previous.origin)
      return previous.policy
    end
    local shipped, origin = self:load_shipped(name)
    if shipped then
      log.error("policy %s: refused %s: %s; using the %s", name, path, err, origin)
      return self:remember(name, shipped, origin)
    end
    log.error("policy %s: refused %s: %s; and %s", name, path, err, origin)
    return nil, err
  end
  local policy, origin = self:load_shipped(name)
  if policy then
    return self:remember(name, policy, origin)
  end
  if previous then
    log.error("policy %s: refused: %s; keeping the last good one from %s", name, origin, previous.origin)
    return previous.policy
  end
  return nil, origin
end

--- The policy in force for NAME, loading it on first use.
function Loader:get(name)
  local entry = self.loaded[name]
  if entry then
    return entry.policy
  end
  return self:load(name)
end

--- Where the policy in force for NAME came from (a path or "shipped ...").
function Loader:origin(name)
  local entry = self.loaded[name]
  return entry and entry.origin
end

--- Calls hook HOOK of policy NAME, protected and bounded. Returns the hook's
-- results; nil and a message when the hook failed or does not exist.
function Loader:call(name, hook, ...)
  local policy, err = self:get(name)
  if not policy then
    return nil, err
  end
  local fn = policy[hook]
  if type(fn) ~= "function" then
    return nil, ("policy %s has no hook %s"):format(name, hook)
  end
  local results = table.pack(runtime.pcall(fn, ...))
  if not results[1] then
    log.error("policy %s: hook %s failed: %s | %s", name, hook, results[2], results[3])
    return nil, results[2]
  end
  return table.unpack(results, 2, results.n)
end

--- The number that policy NAME sets as field KEY, if it is one from min to
-- max (a whole one when integer is true); default when the policy does not
-- set it. A value of another type or out of range is never clamped
-- silently: it is logged, once per loaded version of the policy (so again
-- after a reload), and default is used.
function Loader:number(name, key, default, min, max, integer)
  local policy = self:get(name)
  local v = type(policy) == "table" and policy[key] or nil
  if v == nil then
    return default
  end
  if type(v) == "number" and v >= min and v <= max and (not integer or math.tointeger(v)) then
    return integer and math.tointeger(v) or v
  end
  local entry = self.loaded[name]
  if entry then
    entry.warned = entry.warned or {}
    if entry.warned[key] then
      return default
    end
    entry.warned[key] = true
  end
  log.error("policy %s: %s = %s is not a %s from %s to %s; using %s", name, key, tostring(v),
    integer and "whole number" or "number", min, max, default)
  return default
end

--- Reloads every policy loaded so far, in the order they were first loaded.
function Loader:reload()
  for _, name in ipairs(self.order) do
    self:load(name)
  end
end

local default_loader

--- The loader of the running agent: NODELUA_POLICY_DIR over the shipped
-- policies, reloaded on SIGHUP.
function M.default()
  if not default_loader then
    default_loader = M.new()
    runtime.on_reload(function()
      default_loader:reload()
    end)
  end
  return default_loader
end

function M.load(name)
  return M.default():load(name)
end

function M.get(name)
  return M.default():get(name)
end

function M.call(name, hook, ...)
  return M.default():call(name, hook, ...)
end

function M.reload()
  return M.default():reload()
end

return M
