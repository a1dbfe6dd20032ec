--- `nodelua agent`: the service. It samples on the schedule policy's
-- periods, builds a report with the report policy, writes it to the spool
-- (durably) and delivers the spool in order; it serves /metrics, /healthz
-- and the last payload on METRICS_LISTEN. SIGHUP reloads the policies and
-- the schedule; SIGINT and SIGTERM stop it cleanly.
local account = require("nodelua.account")
local config = require("nodelua.config")
local discovery = require("nodelua.discovery")
local http = require("nodelua.http")
local json = require("nodelua.json")
local log = require("nodelua.log")
local metrics = require("nodelua.metrics")
local policy = require("nodelua.policy")
local repl = require("nodelua.repl")
local runtime = require("nodelua.runtime")
local shared_port = require("nodelua.port")
local sender_mod = require("nodelua.sender")
local spool_mod = require("nodelua.spool")
local files = require("nodelua.files")
local timer = require("nodelua.timer")
local trust = require("nodelua.trust")
local update_mod = require("nodelua.update")

local M = {}

M.usage = [[
Usage: nodelua agent

Runs the node agent: samples this machine on the schedule policy's periods,
reports to MONITORING_API_URL every REPORT_INTERVAL seconds through an
on-disk spool in NODELUA_STATE_DIR (nothing is lost while the API is down),
and serves /metrics, /healthz and /api/v1/metrics/latest on METRICS_LISTEN.
It advertises this node over mDNS (_nodelua._tcp on TRANSFER_PORT), answers
peers' liveness probes there, and keeps the table of its peers.
SIGHUP reloads the policies; SIGINT and SIGTERM stop it.
]]

-- Seconds a shutdown waits for transfers being received to end.
local RECEIVERS_GRACE_SECONDS = 5
-- /metrics is read afresh at most this often (seconds): far below any
-- scrape interval, and a bound on what a client scraping in a loop costs.
local METRICS_RENDER_INTERVAL = 0.1
-- Seconds between returns of the C heap's free pages to the OS.
local TRIM_EVERY_SECONDS = 30

local GROUPS = { "cpu", "load", "memory", "network", "storage", "thermal", "self" }

local function check_intervals(t)
  if type(t) ~= "table" then
    return nil, "intervals() must return a table"
  end
  for _, key in ipairs({ "report", table.unpack(GROUPS) }) do
    local v = t[key]
    if v ~= nil and (type(v) ~= "number" or v < 0.1 or v > 86400) then
      return nil, ("%s must be seconds from 0.1 to 86400, not %s"):format(key, tostring(v))
    end
  end
  if not t.report then
    return nil, "report is missing"
  end
  return t
end

local function agent_families(spool_stats, sender_stats, peers, update_status)
  local lines = {}
  local function family(name, kind, help, value)
    lines[#lines + 1] = ("# HELP %s %s\n# TYPE %s %s\n%s %s\n"):format(name, help, name, kind, name,
      math.tointeger(value) or value)
  end
  family("nodelua_spool_reports", "gauge", "Reports waiting in the spool.", spool_stats.depth)
  family("nodelua_spool_bytes", "gauge", "Bytes of reports waiting in the spool.", spool_stats.bytes)
  family("nodelua_spool_dropped_total", "counter", "Reports dropped for the spool's bounds since start.",
    spool_stats.dropped)
  family("nodelua_reports_delivered_total", "counter", "Reports the monitoring API accepted since start.",
    sender_stats.delivered)
  family("nodelua_report_attempts_failed_total", "counter", "Delivery attempts that failed and will be retried.",
    sender_stats.failed_attempts)
  family("nodelua_reports_dead_lettered_total", "counter", "Reports the monitoring API refused for good.",
    sender_stats.dead_lettered)
  family("nodelua_peers", "gauge", "Peers that answer their liveness probes.", peers)
  -- As node_exporter's node_exporter_build_info: 1, the facts in labels.
  lines[#lines + 1] = ("# HELP nodelua_build_info The running nodelua: version and git revision.\n" ..
    "# TYPE nodelua_build_info gauge\nnodelua_build_info{version=\"%s\",revision=\"%s\"} 1\n")
    :format(runtime.version(), runtime.revision())
  local check = update_status.last_check
  family("nodelua_update_last_check_timestamp_seconds", "gauge",
    "When the last check for a release ended (0: none yet).", check and check.time or 0)
  family("nodelua_update_last_check_success", "gauge",
    "Whether the last check for a release got an answer (1) or failed (0).", check and (check.ok and 1 or 0) or 0)
  family("nodelua_update_on_trial", "gauge", "Whether the running version is on trial (1) or committed (0).",
    update_status.trial and 1 or 0)
  return table.concat(lines)
end

function M.main(args)
  if args[1] == "--help" or args[1] == "-h" then
    io.stdout:write(M.usage)
    return 0
  elseif args[1] then
    io.stderr:write(("nodelua agent: unknown argument '%s'; see nodelua agent --help\n"):format(args[1]))
    return 2
  end
  local started = runtime.now()
  local state_dir = config.get("NODELUA_STATE_DIR")
  -- What is open so far, closed in reverse if starting fails half-way (an
  -- open handle would keep the loop, and so the process, alive).
  local opened = {}
  local function give_up(fmt, ...)
    log.error(fmt, ...)
    for i = #opened, 1, -1 do
      opened[i]()
    end
    return 1
  end

  -- The state holds the spool, the node's id and the control socket:
  -- nobody else may own or write it.
  local own, refusal = trust.own_folder(state_dir, "NODELUA_STATE_DIR")
  if not own then
    return give_up("%s", refusal)
  end
  local spool, err = spool_mod.open(state_dir .. "/spool", {
    max_bytes = config.get("NODELUA_SPOOL_MAX_BYTES"),
    max_age = config.get("NODELUA_SPOOL_MAX_AGE") * 3600,
  })
  if not spool then
    return give_up("cannot open the spool: %s (NODELUA_STATE_DIR=%s)", err, state_dir)
  end
  opened[#opened + 1] = function()
    spool:close()
  end

  -- `nodelua repl` talks to us through the control socket; a second agent
  -- on the same state directory (and so the same spool) is refused here,
  -- before it touches anything.
  local status -- the agent's state, defined once all of it exists
  local updater -- self-update, made once the HTTP client exists
  local repl_server
  repl_server, err = repl.serve(state_dir .. "/control.sock", policy.default(), {
    peers = discovery.peers,
    status = function()
      return status()
    end,
    metrics = function()
      return metrics.latest()
    end,
    update = function()
      return updater
    end,
  })
  if not repl_server then
    return give_up("%s", err)
  end
  opened[#opened + 1] = function()
    repl_server:close()
  end


  local waiting = spool:stats().depth
  if waiting > 0 then
    log.info("%d reports from before wait in %s", waiting, spool:dir())
  end

  local timeout = config.get("NODELUA_HTTP_TIMEOUT")
  local client = http.client({
    timeout = timeout,
    connect_timeout = math.min(10, timeout),
    ca_file = config.get("MONITORING_API_CA_FILE") ~= "" and config.get("MONITORING_API_CA_FILE") or nil,
    user_agent = "nodelua/" .. runtime.version(),
  })
  opened[#opened + 1] = function()
    client:close()
  end

  local listen = config.get("METRICS_LISTEN")
  local endpoint
  if listen ~= "" then
    endpoint, err = http.serve(listen)
    if not endpoint then
      return give_up("METRICS_LISTEN=%s: %s", listen, err)
    end
    opened[#opened + 1] = function()
      endpoint:close()
    end
    log.info("serving /metrics, /healthz and /api/v1/metrics/latest on %s (port %d)", listen, endpoint:port())
  end

  -- Discovery: advertise on TRANSFER_PORT, answer probes there, and keep
  -- the peer table. It starts right after the local endpoint (whose fixed
  -- port must be taken before an ephemeral TRANSFER_PORT=0 could take
  -- it), since the mDNS daemon then probes for our name for most of a
  -- second before peers can see us. Without a daemon it logs how to start
  -- one and goes on with the static peers.
  local finder
  finder, err = discovery.start({ advertise = true, policies = policy.default() })
  if not finder then
    return give_up("discovery: %s", err)
  end
  opened[#opened + 1] = function()
    finder:stop()
  end
  -- Files arrive on the same port, authenticated with the cluster key.
  files.start_receiver(finder.server, finder.id)

  local policies = policy.default()
  for _, name in ipairs({ "schedule", "report" }) do
    local ok, why = policies:get(name)
    if not ok then
      return give_up("no %s policy: %s", name, why)
    end
  end


  local sender = sender_mod.new({
    spool = spool,
    node_id = finder.id,
    client = client,
    destination = function()
      local dest = policies:call("report", "destination")
      if type(dest) ~= "table" or type(dest.url) ~= "string" then
        log.error("the report policy's destination() gave no {url=, headers=}")
        return nil
      end
      dest.headers = dest.headers or {}
      return dest
    end,
  })

  -- Self-update has a client of its own: GitHub is trusted through the
  -- OS's CA store, whatever MONITORING_API_CA_FILE pins for the API.
  local update_client = http.client({ connect_timeout = 10, timeout = 600,
    user_agent = "nodelua/" .. runtime.version() })
  opened[#opened + 1] = function()
    update_client:close()
  end
  updater = update_mod.new({ policies = policies, client = update_client, node_id = finder.id, agent = true })

  local last_payload
  local reports = 0
  local spool_errors = 0

  -- /metrics is read from the machine when it is scraped, and only then, as
  -- node_exporter's is: every counter is as old as the scrape, whatever the
  -- sampling schedule, and nobody scraping costs nothing. Someone scraping
  -- in a loop costs at most one reading per METRICS_RENDER_INTERVAL: a
  -- request within it gets the last one.
  if endpoint then
    local rendered, rendered_at
    endpoint:on_demand("/metrics", "text/plain; version=0.0.4; charset=utf-8", function()
      local now = runtime.now()
      if not rendered or now - rendered_at >= METRICS_RENDER_INTERVAL then
        rendered = account.run("/metrics", function()
          return metrics.scrape() .. agent_families(spool:stats(), sender:stats(), #discovery.peers(),
            updater:status())
        end)
        rendered_at = now
      end
      return rendered
    end, false, true)
  end

  -- Samples go into the collector; tables are made at report time only.
  local sampling_label = {}
  for _, g in ipairs(GROUPS) do
    sampling_label[g] = "sampling " .. g
  end
  sampling_label.system = "sampling system"
  local function sample(groups)
    account.run(sampling_label[groups] or "sampling at start", metrics.update, groups)
  end

  local function report_now()
    sample("system")
    local every = policies:number("report", "full_info_every", 60, 1, 1e6, true)
    local body = account.run("report build", policies.call, policies, "report", "build", metrics.latest(), {
      time = runtime.time(),
      full = reports % every == 0,
      sequence = reports + 1,
    })
    if type(body) ~= "string" then
      return -- the policy's failure is already logged
    end
    reports = reports + 1
    local ok, why = account.run("spool write", spool.push, spool, body)
    if not ok then
      spool_errors = spool_errors + 1
      log.error("cannot spool a report: %s", why)
      return
    end
    last_payload = body
    if endpoint then
      endpoint:publish("/api/v1/metrics/latest", body, "application/json")
    end
    sender:kick()
  end
  local function report()
    account.run("report", report_now)
  end

  function status()
    return {
      status = "ok",
      version = runtime.version(),
      uptime_seconds = math.floor(runtime.now() - started),
      spool = spool:stats(),
      delivery = sender:stats(),
      reports = reports,
      spool_errors = spool_errors,
      have_payload = last_payload ~= nil,
      peers = #discovery.peers(),
      mdns = finder.mdns_state,
      transfer_port = finder:advertised_port(),
      id = finder.id,
      name = finder.name,
      cpu = account.snapshot(),
      lua_kib = collectgarbage("count"),
    }
  end

  -- /healthz is rendered on demand as well: a request that finds the loop
  -- unable to render it within half a second, or silent for 10 s, gets 503.
  if endpoint then
    endpoint:on_demand("/healthz", "application/json", function()
      return account.run("/healthz", function()
        return json.encode(status()) .. "\n"
      end)
    end, true)
  end

  local function health()
    if endpoint then
      endpoint:invalidate("/healthz")
      endpoint:beat(10)
    end
  end

  local timers = {}
  local first_report_done = false
  local report_interval
  local function start_report_timer()
    timers[#timers + 1] = timer.every(report_interval, report)
  end
  local function schedule()
    for _, t in ipairs(timers) do
      t:cancel()
    end
    timers = {}
    local intervals, why = check_intervals(policies:call("schedule", "intervals"))
    if not intervals then
      log.error("schedule policy: %s; keeping 2 s samples and a report every %d s", why,
        config.get("REPORT_INTERVAL"))
      intervals = { cpu = 2, load = 2, memory = 2, network = 5, storage = 10, thermal = 10, self = 10,
        report = config.get("REPORT_INTERVAL") }
    end
    -- One timer per period, not per group: the groups due together are
    -- sampled on one wake-up (at the defaults, cpu, load and memory).
    local by_period, periods = {}, {}
    for _, g in ipairs(GROUPS) do
      local period = intervals[g]
      if period then
        if not by_period[period] then
          by_period[period] = {}
          periods[#periods + 1] = period
        end
        table.insert(by_period[period], g)
      end
    end
    for _, period in ipairs(periods) do
      local due = by_period[period]
      timers[#timers + 1] = timer.every(period, function()
        for _, g in ipairs(due) do
          sample(g)
        end
      end)
    end
    report_interval = intervals.report
    -- Reports run on their period from the first one on (see below).
    if first_report_done then
      start_report_timer()
    end
    local ticks = 0
    timers[#timers + 1] = timer.every(1, function()
      account.run("health tick", function()
        spool:expire()
        health()
      end)
      -- Free memory scattered through the C heap (Lua's garbage between
      -- long-lived blocks) stays dirty until trimmed; the C allocator
      -- gives back only what is free at the heap's top on its own.
      ticks = ticks + 1
      if ticks % TRIM_EVERY_SECONDS == 0 then
        account.run("heap trim", runtime.trim)
      end
    end)
    log.info("schedule: report every %s s; cpu %s s, network %s s, storage %s s", intervals.report,
      intervals.cpu or "-", intervals.network or "-", intervals.storage or "-")
  end

  -- Everything at once, then a first report a second later (rates need two
  -- samples), which carries the full system information.
  sample({ "cpu", "load", "memory", "network", "storage", "system", "thermal", "self" })
  health()
  schedule()
  timer.after(1, function()
    sample({ "cpu", "network", "storage" })
    report()
    first_report_done = true
    start_report_timer()
  end)
  sender:kick()

  runtime.on_reload(schedule)
  runtime.on_reload(function()
    finder:reload()
  end)
  -- What stopping (a signal, or a restart into another version) closes.
  local stopped = false
  local function stop_all()
    if stopped then
      return
    end
    stopped = true
    updater:stop()
    update_client:close()
    repl_server:close()
    finder:stop() -- closes TRANSFER_PORT: no new transfer starts
    -- Transfers being received get a few seconds to end; one cut here
    -- resumes from its journal when sent again.
    local still = shared_port.wait_receivers(RECEIVERS_GRACE_SECONDS)
    if still > 0 then
      log.warn("%d file transfers were still being received at shutdown; each resumes when sent again", still)
    end
    sender:stop()
    client:close()
    if endpoint then
      endpoint:close()
    end
    local st = spool:stats()
    spool:close()
    log.info("stopped; %d reports wait in the spool for the next start (%d dropped for its bounds since start)",
      st.depth, st.dropped)
  end
  runtime.on_shutdown(stop_all)
  updater.before_exec = stop_all

  -- A version on trial proves itself with the health policy's checks;
  -- then the periodic check for releases (AUTO_UPDATE).
  local healthz_answer
  local function healthz()
    local host = listen:match("^%[(.*)%]:%d+$") or listen:match("^(.*):%d+$")
    if host == "0.0.0.0" or host == "" then
      host = "127.0.0.1"
    elseif host == "::" then
      host = "::1"
    end
    local url = ("http://%s:%d/healthz"):format(host:find(":") and ("[" .. host .. "]") or host, endpoint:port())
    update_client:get(url, {}, { max_bytes = 65536, timeout = 5 }, function(r)
      healthz_answer = r
    end)
    return healthz_answer
  end
  updater:run_trial({
    status = function()
      return status()
    end,
    healthz = endpoint and healthz or nil,
    policies = policies,
    started = started,
  })
  updater:start_periodic()
  log.info("agent %s started: reporting to %s as %s", runtime.version(), config.get("MONITORING_API_URL"),
    config.get("NODE_NAME"))
  return 0
end

return M
