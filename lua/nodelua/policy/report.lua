--- What `nodelua agent` reports, and where: the SystemMetrics payload of the
-- central monitoring API (POST {MONITORING_API_URL}/api/v1/metrics), built
-- from the latest samples. Field names, nesting and units are the API's:
-- percent for load and usage, MHz for CPU speed, bytes for sizes, bytes per
-- second for rates, seconds for uptime, RFC 3339 for the timestamp. A figure
-- the OS did not give is left out, never sent as zero.
--
-- Override this file to rename, drop or add fields, or to build another
-- format for another receiver: payload() returns the report as a table,
-- build() the body, destination() the URL and headers. An override can
-- extend this one: require("nodelua.policy.report") inside it returns this
-- module (docs/policy.md; examples/policy/report.lua).
local config = require("nodelua.config")
local json = require("nodelua.json")

local M = {}

-- Every how many reports the static facts (CPU model, interfaces' MACs and
-- addresses) are sent again; the first report always has them.
M.full_info_every = 60

local function rfc3339(seconds)
  local whole = math.floor(seconds)
  return os.date("!%Y-%m-%dT%H:%M:%S", whole) .. string.format(".%03dZ", math.floor((seconds - whole) * 1000))
end

local function platform(sysname)
  if sysname == "Darwin" then
    return "darwin"
  end
  return sysname and sysname:lower()
end

local function cpu_load(times)
  if not times.percent then
    return nil
  end
  return {
    load = times.usage_percent,
    user = times.percent.user + (times.percent.nice or 0),
    system = times.percent.system,
  }
end

-- The CPU temperature only when a sensor says which one is the CPU's;
-- otherwise just the highest reading, and nothing when there is none.
local function temperature(thermal)
  if not thermal or #thermal.sensors == 0 then
    return nil
  end
  local t = { cores = json.array() }
  for _, s in ipairs(thermal.sensors) do
    t.max = math.max(t.max or s.celsius, s.celsius)
    local name = s.name:lower()
    if not t.main and (name:find("pkg") or name:find("package") or name:find("tctl")
      or name:find("tdie") or name:find("cpu")) then
      t.main = s.celsius
    end
    if s.name:find("Core %d+$") then
      t.cores[#t.cores + 1] = s.celsius
    end
  end
  return t
end

local function build_cpu(cpu, thermal, full)
  if not cpu then
    return {}
  end
  local out = {}
  if full then
    local current = json.array()
    for _, core in ipairs(cpu.cores) do
      if core.mhz then
        current[#current + 1] = core.mhz
      end
    end
    out.info = {
      manufacturer = cpu.vendor,
      brand = cpu.brand,
      cores = { physical = cpu.physical_cores, logical = cpu.logical_cores },
      speed = { base = cpu.base_mhz, max = cpu.max_mhz, current = current },
    }
  end
  local total = cpu_load(cpu.total)
  if total then
    local cores = json.array()
    for _, core in ipairs(cpu.cores) do
      local l = cpu_load(core)
      if l then
        l.number = core.cpu
        cores[#cores + 1] = l
      end
    end
    out.load = { current = total.load, user = total.user, system = total.system, cores = cores }
  end
  out.temperature = temperature(thermal)
  return out
end

local function build_network(network, full)
  if not network then
    return nil
  end
  local interfaces, stats = json.array(), json.array()
  for _, nif in ipairs(network) do
    if full then
      interfaces[#interfaces + 1] = {
        name = nif.name,
        type = nif.kind,
        mac = nif.mac,
        ipv4 = nif.ipv4 and nif.ipv4[1],
        ipv6 = nif.ipv6 and nif.ipv6[1],
        speed = nif.speed_mbps,
        status = nif.up and "up" or "down",
      }
    end
    local c, r = nif.counters, nif.rates or {}
    stats[#stats + 1] = {
      interface = nif.name,
      rx_sec = r.rx_bytes,
      tx_sec = r.tx_bytes,
      rx_bytes = c.rx_bytes,
      tx_bytes = c.tx_bytes,
      -- Errors are errors: the predecessor sent packet counts here.
      errors = (c.rx_errors or 0) + (c.tx_errors or 0),
    }
  end
  return { interfaces = full and interfaces or nil, stats = stats }
end

local function build_storage(storage)
  if not storage then
    return nil
  end
  local filesystems = json.array()
  for _, fs in ipairs(storage.filesystems) do
    filesystems[#filesystems + 1] = {
      fs = fs.device,
      type = fs.fstype,
      size = fs.size,
      used = fs.used,
      available = fs.available,
      mount = fs.mount,
    }
  end
  local io = { totalRead = 0, totalWrite = 0 }
  local have_rates = #storage.disks > 0
  local read_rate, write_rate = 0, 0
  for _, d in ipairs(storage.disks) do
    io.totalRead = io.totalRead + d.counters.read_bytes
    io.totalWrite = io.totalWrite + d.counters.write_bytes
    if d.rates then
      read_rate = read_rate + d.rates.read_bytes
      write_rate = write_rate + d.rates.write_bytes
    else
      have_rates = false
    end
  end
  if have_rates then
    io.readBytesPerSec, io.writeBytesPerSec = read_rate, write_rate
  end
  if #storage.disks == 0 then
    io = nil
  end
  return { filesystems = filesystems, io = io }
end

--- The report as a table, in the API's shape. latest holds the last sample
-- of each group (as nodelua.metrics.sample gives them); ctx.time is the
-- report's Unix time and ctx.full asks for the static facts too. An
-- override that adds or changes a field calls this and encodes the result
-- (docs/policy.md).
function M.payload(latest, ctx)
  local sys, load, mem = latest.system or {}, latest.load, latest.memory
  local payload = {
    timestamp = rfc3339(ctx.time),
    system = {
      hostname = config.get("NODE_NAME"),
      platform = platform(sys.sysname),
      release = sys.kernel,
      uptime = sys.uptime,
      loadavg = load and { load.load1, load.load5, load.load15 },
      isAppleSilicon = sys.apple_silicon,
      model = ctx.full and sys.model or nil,
    },
    cpu = build_cpu(latest.cpu, latest.thermal, ctx.full),
    memory = mem and {
      total = mem.total,
      used = mem.used,
      active = mem.active,
      available = mem.available,
      swap = { total = mem.swap_total, used = mem.swap_used },
    } or {},
    network = build_network(latest.network, ctx.full),
    storage = build_storage(latest.storage),
  }
  if ctx.full and sys.apple_silicon and latest.cpu then
    payload.appleSilicon = {
      chip = { model = latest.cpu.brand, cores = { cpu = latest.cpu.logical_cores } },
    }
  end
  return payload
end

--- The body of one report: payload() as JSON.
function M.build(latest, ctx)
  return json.encode(M.payload(latest, ctx))
end

--- Where reports go, read for every delivery (so SIGHUP can change it).
function M.destination()
  return {
    url = config.get("MONITORING_API_URL"):gsub("/+$", "") .. "/api/v1/metrics",
    headers = {
      ["X-API-Key"] = config.get("MONITORING_API_KEY"),
      ["Content-Type"] = "application/json",
    },
  }
end

return M
