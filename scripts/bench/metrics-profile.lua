--- Where a scrape's time goes: the collectors' own
-- node_scrape_collector_duration_seconds, averaged over many scrapes.
-- Usage: build/normal/nodelua run scripts/bench/metrics-profile.lua [SCRAPES]
local metrics = require("nodelua.metrics")
local rounds = tonumber((...)) or 300
local sum = {}
for _ = 1, 5 do
  metrics.scrape() -- warm-up: buffers grown, files kept open
end
for _ = 1, rounds do
  local text = metrics.scrape()
  for name, seconds in text:gmatch('node_scrape_collector_duration_seconds{collector="([^"]+)"} ([%d%.e%-]+)') do
    sum[name] = (sum[name] or 0) + tonumber(seconds)
  end
end
local names, total = {}, 0
for name, s in pairs(sum) do
  names[#names + 1] = name
  total = total + s
end
table.sort(names, function(a, b)
  return sum[a] > sum[b]
end)
print(("Wall time per scrape, by collector, over %d scrapes:"):format(rounds))
for _, name in ipairs(names) do
  print(("  %-14s %7.1f us"):format(name, sum[name] / rounds * 1e6))
end
print(("  %-14s %7.1f us"):format("total", total / rounds * 1e6))
