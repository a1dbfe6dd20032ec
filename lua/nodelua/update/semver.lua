--- Semantic versions (semver.org 2.0.0): parsing and precedence, for the
-- versions in release tags and the running version.
local M = {}

local function numeric(s)
  return s:match("^%d+$") and (s == "0" or not s:match("^0")) and tonumber(s) or nil
end

--- "1.4.0-rc.1+build.5" -> {major, minor, patch, pre = {"rc", 1}, text},
-- or nil and why.
function M.parse(text)
  if type(text) ~= "string" or #text > 64 then
    return nil, "not a version"
  end
  local core, pre, build = text:match("^([%d.]+)%-?([0-9A-Za-z.-]*)%+?([0-9A-Za-z.-]*)$")
  if not core then
    return nil, ("'%s' is not a semantic version"):format(text)
  end
  local a, b, c = core:match("^(%d+)%.(%d+)%.(%d+)$")
  local major, minor, patch = a and numeric(a), b and numeric(b), c and numeric(c)
  if not (major and minor and patch) then
    return nil, ("'%s' is not a semantic version"):format(text)
  end
  local v = { major = major, minor = minor, patch = patch, pre = {}, build = build, text = text }
  if pre ~= "" then
    if text:sub(#core + 1, #core + 1) ~= "-" then
      return nil, ("'%s' is not a semantic version"):format(text)
    end
    for id in (pre .. "."):gmatch("([^.]*)%.") do
      if id == "" then
        return nil, ("'%s' has an empty pre-release part"):format(text)
      end
      if id:match("^%d+$") then
        local n = numeric(id)
        if not n then
          return nil, ("'%s' has a leading zero"):format(text)
        end
        v.pre[#v.pre + 1] = n
      else
        v.pre[#v.pre + 1] = id
      end
    end
  end
  return v
end

--- -1, 0 or 1: a before, equal to, or after b in precedence (build
-- metadata is ignored).
function M.compare(a, b)
  for _, k in ipairs({ "major", "minor", "patch" }) do
    if a[k] ~= b[k] then
      return a[k] < b[k] and -1 or 1
    end
  end
  -- A pre-release comes before its release.
  if #a.pre == 0 or #b.pre == 0 then
    return #a.pre == #b.pre and 0 or (#a.pre == 0 and 1 or -1)
  end
  for i = 1, math.max(#a.pre, #b.pre) do
    local x, y = a.pre[i], b.pre[i]
    if x == nil then
      return -1
    elseif y == nil then
      return 1
    elseif x ~= y then
      local nx, ny = type(x) == "number", type(y) == "number"
      if nx and ny then
        return x < y and -1 or 1
      elseif nx ~= ny then
        return nx and -1 or 1 -- numeric identifiers come first
      end
      return x < y and -1 or 1
    end
  end
  return 0
end

--- compare() on texts; nil when either is not a version.
function M.compare_text(a, b)
  local x, y = M.parse(a), M.parse(b)
  if not x or not y then
    return nil
  end
  return M.compare(x, y)
end

return M
