--- Self-update: signed releases from GitHub, chosen by the update policy,
-- verified (minisign signature, tag, expiry, version, SHA-256), installed
-- side by side in UPDATE_DIR, started by execve through the launcher, and
-- kept only if the health policy passes within UPDATE_HEALTH_TIMEOUT.
--
-- The threat model is TUF's. A release is refused, with one log line naming
-- the check, and the installed binary is left untouched, when:
--   - the signature is not the configured key's (arbitrary software);
--   - its trusted comment names another tag (mix-and-match);
--   - it has expired (freeze);
--   - its version is not newer than the running one, or older than one
--     committed here (rollback);
--   - the binary's SHA-256 is not SHA256SUMS's;
--   - a body is longer than allowed (endless data) or too slow (slow
--     retrieval).
local config = require("nodelua.config")
local log = require("nodelua.log")
local metrics = require("nodelua.metrics")
local releases = require("nodelua.update.releases")
local runtime = require("nodelua.runtime")
local semver = require("nodelua.update.semver")
local timer = require("nodelua.timer")
local trust = require("nodelua.trust")
local update = require("nodelua.update.native")

local M = {}

local Updater = {}
Updater.__index = Updater

M.SUMS_MAX_BYTES = 1024 * 1024
M.SIG_MAX_BYTES = 64 * 1024
M.DOWNLOAD_SECONDS = 600 -- the total deadline of one binary's download

--- The minisign public key from UPDATE_PUBLIC_KEY or UPDATE_PUBLIC_KEY_FILE,
-- or nil and why self-update is off.
function M.public_key()
  local key = config.get("UPDATE_PUBLIC_KEY")
  if key ~= "" then
    return key
  end
  local path = config.get("UPDATE_PUBLIC_KEY_FILE")
  if path == "" then
    return nil, "no UPDATE_PUBLIC_KEY or UPDATE_PUBLIC_KEY_FILE: releases cannot be verified"
  end
  -- Whoever could write the key file could choose what this node installs.
  local text, err = trust.read(path, { max = 4096 })
  if not text then
    return nil, err
  end
  return text
end

local OS_NAMES = { Linux = "linux", Darwin = "darwin" }
local ARCH_ALIASES = {
  x86_64 = { "x86_64", "amd64" },
  amd64 = { "x86_64", "amd64" },
  aarch64 = { "aarch64", "arm64" },
  arm64 = { "aarch64", "arm64" },
}

--- The asset names this machine can run: nodelua-{os}-{arch}, the arch by
-- its name and its alias.
function M.asset_names()
  local system = metrics.sample("system").system or {}
  local os_name = OS_NAMES[system.sysname or ""]
  local arches = ARCH_ALIASES[system.arch or ""]
  if not os_name or not arches then
    return {}
  end
  local names = {}
  for _, arch in ipairs(arches) do
    names[#names + 1] = ("nodelua-%s-%s"):format(os_name, arch)
  end
  return names
end

--- opts: policies (a loader), client (nodelua.http), node_id, agent (true in
-- the agent: it execs into what it installs).
function M.new(opts)
  local self = setmetatable({
    policies = opts.policies,
    client = opts.client,
    node_id = opts.node_id or "",
    agent = opts.agent,
    dir = config.get("UPDATE_DIR"),
    channel = config.get("UPDATE_CHANNEL"),
    api_url = config.get("UPDATE_API_URL"),
    repository = config.get("UPDATE_REPOSITORY"),
    token = config.get("UPDATE_GITHUB_TOKEN"),
    max_bytes = config.get("UPDATE_MAX_BYTES"),
    health_timeout = config.get("UPDATE_HEALTH_TIMEOUT"),
    timers = {},
  }, Updater)
  self.key, self.key_error = M.public_key()
  self.last_check = self:read_last_check()
  return self
end

function Updater:ctx()
  return { channel = self.channel, node_id = self.node_id, running = runtime.version(), now = os.time() }
end

function Updater:state()
  local st, err = update.state(self.dir)
  return st or {}, err
end

local function read_json(path)
  local ok, cjson = pcall(require, "cjson")
  local f = ok and io.open(path, "rb")
  if not f then
    return nil
  end
  local text = f:read("a")
  f:close()
  local decoded_ok, value = pcall(cjson.decode, text)
  return decoded_ok and value or nil
end

function Updater:read_last_check()
  return read_json(self.dir .. "/last-check.json")
end

function Updater:record_check(outcome, ok)
  self.last_check = { time = os.time(), ok = ok, outcome = outcome }
  -- Kept in UPDATE_DIR (made if missing, ours), for the next version and
  -- for `nodelua update status` without an agent.
  if not update.prepare(self.dir) then
    return
  end
  local json = require("nodelua.json")
  local f = io.open(self.dir .. "/last-check.json.tmp", "wb")
  if f then
    f:write(json.encode(self.last_check))
    f:close()
    os.rename(self.dir .. "/last-check.json.tmp", self.dir .. "/last-check.json")
  end
end

--- Every release of ours, newest first, each with accepted and why.
function Updater:evaluate(list)
  local st = self:state()
  local running = semver.parse(runtime.version())
  local committed = st.committed ~= "" and st.committed and semver.parse(st.committed)
  local skipped = {}
  for _, s in ipairs(st.skipped or {}) do
    skipped[s.version] = s.reason
  end
  local policy = self.policies:get("update")
  local names = M.asset_names()
  local ctx = self:ctx()
  ctx.policy = policy
  local out = {}
  for _, rel in ipairs(list) do
    local v = semver.parse(rel.version)
    local c = { tag = rel.tag, channel = rel.channel, version = rel.version, parsed = v, assets = rel.assets }
    local ok, why = true, nil
    if policy and type(policy.accept) == "function" then
      local pok, accepted, reason = runtime.pcall(policy.accept, { tag = rel.tag, channel = rel.channel,
        version = rel.version }, ctx)
      if not pok then
        ok, why = false, "the update policy's accept() failed: " .. tostring(accepted)
      elseif not accepted then
        ok, why = false, reason or "refused by the update policy"
      end
    end
    if ok and running and semver.compare(v, running) <= 0 then
      ok, why = false, ("not newer than the running %s"):format(running.text)
    end
    if ok and committed and semver.compare(v, committed) < 0 then
      ok, why = false, ("older than %s, committed on this node"):format(committed.text)
    end
    if ok and skipped[rel.version] then
      ok, why = false, "skipped: " .. skipped[rel.version]
    end
    if ok then
      for _, name in ipairs(names) do
        if rel.assets[name] then
          c.asset = name
          break
        end
      end
      if not c.asset then
        ok, why = false, ("no binary for this machine (%s)"):format(names[1] or "an unknown OS or CPU")
      elseif not rel.assets.SHA256SUMS or not rel.assets["SHA256SUMS.minisig"] then
        ok, why = false, "no SHA256SUMS and SHA256SUMS.minisig"
      end
    end
    c.accepted, c.why = ok, why
    out[#out + 1] = c
  end
  table.sort(out, function(a, b)
    return semver.compare(a.parsed, b.parsed) > 0
  end)
  return out
end

--- Asks the API and evaluates: done({candidates =, best =}) or done(nil, why).
function Updater:check(done)
  releases.list({ client = self.client, api_url = self.api_url, repository = self.repository, token = self.token,
    -- One cache per repository and API: an ETag means nothing elsewhere.
    cache = ("%s/releases-%s.json"):format(self.dir, (self.api_url .. "/" .. self.repository):gsub("[^%w.-]", "_")) },
    function(list, err, retry_after)
    if not list then
      self:record_check(err, false)
      return done(nil, err, retry_after)
    end
    local candidates = self:evaluate(list)
    local best
    for _, c in ipairs(candidates) do
      if c.accepted then
        best = c
        break
      end
    end
    self:record_check(best and ("%s is available"):format(best.tag) or "up to date", true)
    done({ candidates = candidates, best = best })
  end)
end

local function refuse(release, check, why)
  local text = ("refused %s: %s: %s"):format(release.tag, check, why)
  log.error("update: %s; the installed binary is untouched", text)
  return text
end

--- The trusted comment's fields: "tag=stable-1.4.0 expires=1767225600".
function M.comment_fields(comment)
  local fields = {}
  for key, value in comment:gmatch("(%w+)=(%S+)") do
    fields[key] = value
  end
  return fields
end

--- Downloads, verifies and stages release c, then begins its trial.
-- done(true) or done(nil, why). Nothing is switched unless all checks pass.
function Updater:install(c, done)
  if not self.key then
    return done(nil, "self-update is off: " .. tostring(self.key_error))
  end
  local got = {}
  local function fetch_small(name, max, next_step)
    local asset = c.assets[name]
    self.client:get(asset.url, { Accept = "application/octet-stream" }, { max_bytes = max, redirects = 5,
      timeout = 60, low_speed = { 256, 30 } }, function(r)
      if r.status ~= 200 then
        return done(nil, refuse(c, "download of " .. name, r.error or ("HTTP " .. r.status)))
      end
      got[name] = r.body
      next_step()
    end)
  end
  local function verified_binary()
    local part = self.dir .. "/staging.part"
    local ok, err = self.client:get(c.assets[c.asset].url, { Accept = "application/octet-stream" },
      { file = part, max_bytes = self.max_bytes, redirects = 5, timeout = M.DOWNLOAD_SECONDS,
        low_speed = { 1024, 30 } }, function(r)
        if r.status ~= 200 then
          os.remove(part)
          return done(nil, refuse(c, "download of " .. c.asset, r.error or ("HTTP " .. r.status)))
        end
        local digest, derr = update.sha256_file(part)
        if digest ~= c.expected_sha256 then
          os.remove(part)
          return done(nil, refuse(c, "SHA-256", derr or ("%s is not what SHA256SUMS lists"):format(c.asset)))
        end
        local staged, serr = update.stage(self.dir, c.version, part)
        if not staged then
          os.remove(part)
          return done(nil, refuse(c, "staging", serr))
        end
        local began, berr = update.begin_trial(self.dir, c.version)
        if not began then
          return done(nil, refuse(c, "switching", berr))
        end
        log.info("update: %s verified and installed in %s; on trial for up to %d s", c.tag, self.dir,
          self.health_timeout)
        done(true)
      end)
    if not ok then
      return done(nil, refuse(c, "download", err))
    end
  end
  local function verify()
    local comment, err = update.verify(self.key, got["SHA256SUMS.minisig"], got.SHA256SUMS)
    if not comment then
      return done(nil, refuse(c, "signature", err))
    end
    local fields = M.comment_fields(comment)
    if fields.tag ~= c.tag then
      return done(nil, refuse(c, "tag", ("the signature is for %s, not %s"):format(tostring(fields.tag), c.tag)))
    end
    local expires = math.tointeger(tonumber(fields.expires or ""))
    if not expires then
      return done(nil, refuse(c, "expiry", "the trusted comment has no expires="))
    elseif expires <= os.time() then
      return done(nil, refuse(c, "expiry", ("the signature expired at %s"):format(os.date("!%Y-%m-%dT%H:%M:%SZ",
        expires))))
    end
    local digest, serr = update.sha256sums_find(got.SHA256SUMS, c.asset)
    if not digest then
      return done(nil, refuse(c, "SHA256SUMS", serr))
    end
    c.expected_sha256 = digest
    -- The binary is downloaded into the folder: it must be ours first.
    local ready, derr = update.prepare(self.dir)
    if not ready then
      return done(nil, refuse(c, "UPDATE_DIR", derr))
    end
    verified_binary()
  end
  fetch_small("SHA256SUMS", M.SUMS_MAX_BYTES, function()
    fetch_small("SHA256SUMS.minisig", M.SIG_MAX_BYTES, verify)
  end)
end

--- Checks and installs: the best candidate, or version. automatic: the
-- policy's may_install (window, rollout) applies; by hand it does not.
-- done(c) when one was installed (on trial), done(nil, why) otherwise.
function Updater:apply(version, automatic, done)
  -- One apply at a time: the periodic one and one by hand would share the
  -- staging file.
  if self.applying then
    return done(nil, "an update is already being applied")
  end
  self.applying = true
  local finish = done
  done = function(...)
    self.applying = false
    return finish(...)
  end
  self:check(function(result, err)
    if not result then
      return done(nil, err)
    end
    local c = result.best
    if version then
      c = nil
      for _, cand in ipairs(result.candidates) do
        if cand.version == version then
          c = cand
        end
      end
      if not c then
        return done(nil, ("no release %s of ours in %s"):format(version, self.repository))
      elseif not c.accepted then
        return done(nil, ("%s is refused: %s"):format(c.tag, c.why))
      end
    end
    if not c then
      return done(nil, "up to date")
    end
    if automatic then
      local policy = self.policies:get("update")
      if policy and type(policy.may_install) == "function" then
        local ctx = self:ctx()
        ctx.policy = policy
        local ok, may, why = runtime.pcall(policy.may_install, { tag = c.tag, channel = c.channel,
          version = c.version }, ctx)
        if not ok or not may then
          return done(nil, ("%s waits: %s"):format(c.tag, ok and (why or "not now, says the update policy")
            or tostring(may)))
        end
      end
    end
    self:install(c, function(installed, why)
      if not installed then
        return done(nil, why)
      end
      done(c)
    end)
  end)
end

--- In the agent: restart into what the launcher chooses now.
function Updater:restart()
  log.info("update: restarting through %s", os.getenv("NODELUA_ENTRY") or "this binary")
  if self.before_exec then
    self.before_exec()
  end
  local _, err = update.exec_entry()
  -- Still here: everything is closed already, so this process can serve
  -- nothing more. Exit, and let the supervisor start the entry point.
  log.error("update: %s; exiting for the service manager to start it again", err)
  runtime.exit(1)
end

--- Rolls back (by hand, or a failed trial): done(version rolled back) or
-- done(nil, why).
function Updater:rollback(reason)
  local version, err = update.roll_back(self.dir, reason)
  if not version then
    return nil, err
  end
  log.warn("update: rolled back %s: %s", version, reason)
  return version
end

--- The trial of the running version, if it is on one (update/trial.lua):
-- true when there is one. ctx: what the health checks get.
function Updater:run_trial(ctx)
  return require("nodelua.update.trial").run(self, ctx)
end

--- The periodic check of the agent (AUTO_UPDATE): every
-- UPDATE_CHECK_INTERVAL minutes plus up to a tenth at random.
function Updater:start_periodic()
  if not config.get("AUTO_UPDATE") then
    log.info("update: AUTO_UPDATE is false: no periodic check (nodelua update still works)")
    return
  end
  if not self.key then
    log.info("update: self-update is off: %s", self.key_error)
    return
  end
  local minutes = config.get("UPDATE_CHECK_INTERVAL")
  local function schedule(delay)
    self.timers.periodic = timer.after(delay, function()
      if self.trial_state == "running" then
        return schedule(60)
      end
      self:apply(nil, true, function(c, why, retry_after)
        if c then
          return self:restart()
        end
        log.debug("update: %s", why)
        schedule(math.max(retry_after or 0, minutes * 60 * (1 + math.random() / 10)))
      end)
    end)
  end
  -- The first check soon after start, not at once and not all together: a
  -- fleet restarted together spreads its first checks over up to a minute
  -- (a tenth of the interval when that is shorter).
  schedule(5 + math.random() * math.min(60, minutes * 6))
end

function Updater:stop()
  for _, t in pairs(self.timers) do
    t:cancel()
  end
  self.timers = {}
end

--- What `update status` shows.
function Updater:status()
  local st, err = self:state()
  return {
    running = runtime.version(),
    current = st.current ~= "" and st.current or nil,
    previous = st.previous ~= "" and st.previous or nil,
    committed = st.committed ~= "" and st.committed or nil,
    trial = st.trial,
    trial_state = self.trial_state,
    skipped = st.skipped or {},
    last_check = self.last_check,
    channel = self.channel,
    repository = self.repository,
    self_update = self.key and (config.get("AUTO_UPDATE") and "on" or "manual") or ("off: " ..
      tostring(self.key_error)),
    error = err,
  }
end

-- How an update is shown (update/text.lua), here for the commands.
local text = require("nodelua.update.text")
M.format_status = text.format_status
M.format_check = text.format_check
M.check_table = text.check_table

return M
