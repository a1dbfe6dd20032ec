--- Delivers the spool to the monitoring API, oldest report first, one at a
-- time, so that reports arrive in order and each once.
--
-- 2xx: delivered, removed from the spool. No answer, 408, 429, 5xx or a
-- redirect (not followed): kept, and tried again after an exponential
-- backoff with jitter, or after the server's Retry-After on 429 and 503.
-- Any other 4xx: the server will never take this report; one log line with
-- its message, and the report moves to the dead-letter file.
local account = require("nodelua.account")
local log = require("nodelua.log")
local timer = require("nodelua.timer")
local runtime = require("nodelua.runtime")

local M = {}
local Sender = {}
Sender.__index = Sender

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8, Sep = 9, Oct = 10,
  Nov = 11, Dec = 12 }

--- Seconds to wait from a Retry-After value: delay-seconds, or an HTTP date
-- ("Wed, 21 Oct 2015 07:28:00 GMT"). nil when it is neither.
function M.retry_after_seconds(value, now)
  if not value then
    return nil
  end
  local seconds = value:match("^%s*(%d+)%s*$")
  if seconds then
    return tonumber(seconds)
  end
  local d, mon, y, h, mi, s = value:match("^%a+, (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if not d or not MONTHS[mon] then
    return nil
  end
  -- os.time reads its table as local time; the offset of this machine's
  -- zone at that moment turns it back into UTC.
  local t = { year = tonumber(y), month = MONTHS[mon], day = tonumber(d), hour = tonumber(h), min = tonumber(mi),
    sec = tonumber(s), isdst = false }
  local as_local = os.time(t)
  local utc_of_local = os.time(os.date("!*t", as_local))
  local when = as_local + (as_local - utc_of_local)
  return math.max(0, when - (now or os.time()))
end

--- Exponential backoff with jitter: the n-th consecutive failure waits
-- between half and all of min(max, base * 2^(n-1)) seconds.
function M.backoff(failures, base, max, random)
  local ceiling = math.min(max, base * 2 ^ (failures - 1))
  return ceiling * (0.5 + 0.5 * (random or math.random)())
end

-- The server's message, for the one log line: {"message": ...} of the API's
-- Error schema when it is that, the start of the body otherwise.
local function server_message(body)
  if not body or body == "" then
    return "(no message)"
  end
  local ok, cjson = pcall(require, "cjson")
  if ok then
    local parsed_ok, parsed = pcall(cjson.decode, body)
    if parsed_ok and type(parsed) == "table" and type(parsed.message) == "string" then
      return parsed.message
    end
  end
  return body:sub(1, 200)
end

local function retryable(status)
  return status == 0 or status == 408 or status == 429 or status >= 500 or (status >= 300 and status < 400)
end

--- opts: spool, client (nodelua.http client), destination() -> {url, headers},
-- node_id (for each report's Idempotency-Key: node id, "-", the spool's
-- sequence number, which never repeats), backoff_base, backoff_max
-- (seconds), retry_after_max (seconds).
function M.new(opts)
  return setmetatable({
    spool = opts.spool,
    node_id = opts.node_id,
    client = opts.client,
    destination = opts.destination,
    backoff_base = opts.backoff_base or 1,
    backoff_max = opts.backoff_max or 300,
    retry_after_max = opts.retry_after_max or 3600,
    busy = false,
    stopped = false,
    failures = 0,
    delivered = 0,
    failed_attempts = 0,
    dead_lettered = 0,
    last_error = nil,
    last_success = nil,
    retry_at = nil,
  }, Sender)
end

--- Starts a delivery if none is under way or waiting.
function Sender:kick()
  if self.busy or self.stopped then
    return
  end
  local data, seq = self.spool:peek()
  if not data then
    if seq then -- peek's second result is the error when it failed
      -- The report stays first in line (a full fd table, a permission, an
      -- I/O error pass): try again later, not only at the next report.
      self.busy = true
      self:retry_later(M.backoff(self.failures + 1, self.backoff_base, self.backoff_max),
        ("cannot read the spool: %s"):format(seq))
    end
    return
  end
  local dest = self.destination()
  if not dest then
    return
  end
  -- The same report always carries the same key, so that the API can drop
  -- the copy that a crash between its answer and our ack sends again.
  if self.node_id then
    dest.headers["Idempotency-Key"] = ("%s-%d"):format(self.node_id, seq)
  end
  self.busy = true
  local ok, err = self.client:post(dest.url, dest.headers, data, function(response)
    self:on_answer(seq, response)
  end)
  if not ok then
    self.busy = false
    log.error("cannot start a report request: %s", err)
  end
end

function Sender:retry_later(delay, why)
  self.failures = self.failures + 1
  self.failed_attempts = self.failed_attempts + 1
  self.retry_at = runtime.now() + delay
  -- One warning when delivery starts failing or the reason changes; the
  -- attempts in between are debug lines, so an outage does not flood.
  if why ~= self.last_error then
    log.warn("report not delivered: %s; %d waiting, retrying in %.1f s", why, self.spool:stats().depth, delay)
  else
    log.debug("report not delivered: %s; attempt %d, retrying in %.1f s", why, self.failures, delay)
  end
  self.last_error = why
  self.wait = timer.after(delay, function()
    self.wait = nil
    self.busy = false
    self.retry_at = nil
    self:kick()
  end)
end

function Sender:on_answer(seq, response)
  if self.stopped then
    return
  end
  local status = response.status
  if status >= 200 and status < 300 then
    local acked, ack_err = self.spool:ack(seq)
    if not acked then
      -- Delivered, but still in the spool: it goes again, with the same
      -- Idempotency-Key, once the spool can let it go.
      self:retry_later(M.backoff(self.failures + 1, self.backoff_base, self.backoff_max),
        ("delivered, but cannot remove it from the spool (%s); it will be sent again with the same " ..
        "Idempotency-Key"):format(ack_err))
      return
    end
    self.delivered = self.delivered + 1
    self.last_success = runtime.time()
    if self.failures > 0 then
      log.info("monitoring API reachable again after %d failed attempts", self.failures)
    end
    self.failures = 0
    self.last_error = nil
    self.busy = false
    -- Drain the backlog from a fresh callback rather than recursing.
    timer.after(0, function() self:kick() end)
    return
  end
  if retryable(status) then
    local why
    if status == 0 then
      self.unreachable = (self.unreachable or 0) + 1
      why = response.error or "no answer"
    elseif status >= 300 and status < 400 then
      why = ("HTTP %d: redirects are not followed; point MONITORING_API_URL at the final address"):format(status)
    else
      why = ("HTTP %d: %s"):format(status, server_message(response.body))
    end
    local delay = M.backoff(self.failures + 1, self.backoff_base, self.backoff_max)
    if status == 429 or status == 503 then
      local asked = M.retry_after_seconds(response.retry_after)
      if asked then
        delay = math.min(asked, self.retry_after_max)
      end
    end
    self:retry_later(delay, why)
    return
  end
  local message = server_message(response.body)
  local hint = status == 401 and "; check MONITORING_API_KEY" or ""
  local ok, err = self.spool:dead_letter(seq, status, message)
  if not ok then
    -- It stays first in line: try again later rather than in a tight loop.
    self:retry_later(M.backoff(self.failures + 1, self.backoff_base, self.backoff_max),
      ("HTTP %d: %s%s, and the report could not be moved aside: %s"):format(status, message, hint, err))
    return
  end
  self.dead_lettered = self.dead_lettered + 1
  log.error("monitoring API refused a report with HTTP %d: %s%s; it is in %s/dead-letter.jsonl", status, message,
    hint, self.spool:dir())
  self.last_error = ("HTTP %d: %s"):format(status, message)
  self.busy = false
  timer.after(0, function() self:kick() end)
end

function Sender:stop()
  self.stopped = true
  if self.wait then
    self.wait:cancel()
    self.wait = nil
  end
end

function Sender:stats()
  return {
    delivered = self.delivered,
    failed_attempts = self.failed_attempts,
    dead_lettered = self.dead_lettered,
    consecutive_failures = self.failures,
    unreachable = self.unreachable or 0, -- attempts with no answer at all
    last_error = self.last_error,
    last_success = self.last_success,
    retry_in = self.retry_at and math.max(0, self.retry_at - runtime.now()) or nil,
  }
end

-- Reading the spool, starting requests and taking answers, counted as
-- delivery in the agent's account of its CPU.
Sender.kick = account.wrap("delivery", Sender.kick)
Sender.on_answer = account.wrap("delivery", Sender.on_answer)

return M
