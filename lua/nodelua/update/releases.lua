--- Releases from the GitHub API (or one like it): every page of
-- GET /repos/{repo}/releases, drafts skipped, the first page asked with the
-- stored ETag (a 304 reuses the list stored with it), the rate limit
-- respected. Only tags "{channel}-{semver}" are releases of ours.
local json = require("nodelua.json")
local semver = require("nodelua.update.semver")

local cjson_ok, cjson = pcall(require, "cjson")

local M = {}

M.PAGE_MAX_BYTES = 8 * 1024 * 1024
M.PAGES_MAX = 50
M.CHANNELS = { stable = true, beta = true, nightly = true }

--- "stable-1.4.0" -> "stable", parsed version; nil when not ours.
function M.parse_tag(tag)
  if type(tag) ~= "string" then
    return nil
  end
  local channel, version = tag:match("^(%a+)%-(.+)$")
  if not channel or not M.CHANNELS[channel] then
    return nil
  end
  return channel, semver.parse(version)
end

--- The URL of the next page from a Link header, if it is on the API's own
-- origin (a Link elsewhere is not followed: the token goes with it).
function M.next_link(link, api_url)
  if type(link) ~= "string" then
    return nil
  end
  for part in link:gmatch("[^,]+") do
    local url, rel = part:match("<([^>]+)>%s*;%s*rel=\"?([%w]+)\"?")
    if url and rel == "next" then
      local origin = api_url:match("^(%a+://[^/]+)")
      if origin and url:sub(1, #origin + 1) == origin .. "/" then
        return url
      end
      return nil, ("the next page is on another host (%s): not followed"):format(url)
    end
  end
  return nil
end

--- The releases of one page (decoded JSON): our tags only, no drafts.
function M.from_page(list)
  local out = {}
  if type(list) ~= "table" then
    return nil, "the answer is not a list of releases"
  end
  for _, r in ipairs(list) do
    if type(r) == "table" and r.draft ~= true then
      local channel, version = M.parse_tag(r.tag_name)
      if channel and version then
        local assets = {}
        for _, a in ipairs(type(r.assets) == "table" and r.assets or {}) do
          if type(a) == "table" and type(a.name) == "string" and type(a.browser_download_url) == "string" then
            assets[a.name] = { url = a.browser_download_url, size = math.tointeger(a.size) }
          end
        end
        out[#out + 1] = { tag = r.tag_name, channel = channel, version = version.text, assets = assets }
      end
    end
  end
  return out
end

local read_file = require("nodelua.textfile").read

local function write_file(path, text)
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then
    return nil, err
  end
  f:write(text)
  f:close()
  return os.rename(tmp, path)
end

--- Lists the releases. opts: client (nodelua.http), api_url, repository,
-- token, cache (a file for the ETag and the list), user_agent. done(list)
-- or done(nil, why, retry_after_seconds).
function M.list(opts, done)
  if not cjson_ok then
    return done(nil, "lua-cjson is not installed")
  end
  local cached = opts.cache and read_file(opts.cache)
  local ok_cache, cache = pcall(cjson.decode, cached or "")
  if not ok_cache or type(cache) ~= "table" or type(cache.releases) ~= "table" then
    cache = nil
  end
  local headers = {
    Accept = "application/vnd.github+json",
    ["X-GitHub-Api-Version"] = "2022-11-28",
  }
  if opts.token and opts.token ~= "" then
    headers.Authorization = "Bearer " .. opts.token
  end
  local releases, pages = {}, 0
  local function page(url)
    pages = pages + 1
    local h = {}
    for k, v in pairs(headers) do
      h[k] = v
    end
    if pages == 1 and cache and cache.etag then
      h["If-None-Match"] = cache.etag
    end
    local started, err = opts.client:get(url, h, { max_bytes = M.PAGE_MAX_BYTES, timeout = opts.timeout or 60,
      low_speed = { 1024, 30 } }, function(r)
      local rh = r.headers or {}
      if r.status == 304 and pages == 1 and cache then
        return done(cache.releases)
      end
      if r.status == 403 or r.status == 429 then
        local wait = tonumber(r.retry_after or rh["retry-after"] or "")
        local reset = tonumber(rh["x-ratelimit-reset"] or "")
        if not wait and rh["x-ratelimit-remaining"] == "0" and reset then
          wait = math.max(1, reset - os.time())
        end
        return done(nil, ("the API refused (%d): rate limited"):format(r.status), wait or 60)
      end
      if r.status ~= 200 then
        return done(nil, r.error or ("the API answered %d for %s"):format(r.status, url))
      end
      local ok, decoded = pcall(cjson.decode, r.body or "")
      if not ok then
        return done(nil, "the API's answer is not JSON")
      end
      local found, why = M.from_page(decoded)
      if not found then
        return done(nil, why)
      end
      for _, rel in ipairs(found) do
        releases[#releases + 1] = rel
      end
      local next_url, refused = M.next_link(rh.link, opts.api_url)
      if refused then
        return done(nil, refused)
      end
      if next_url and pages < M.PAGES_MAX then
        return page(next_url)
      end
      if opts.cache and rh.etag then
        write_file(opts.cache, json.encode({ etag = rh.etag, releases = json.array(releases) }))
      end
      return done(releases)
    end)
    if not started then
      return done(nil, err)
    end
  end
  page(("%s/repos/%s/releases?per_page=100"):format(opts.api_url:gsub("/+$", ""), opts.repository))
end

return M
