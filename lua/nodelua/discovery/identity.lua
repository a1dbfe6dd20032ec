--- Who this node is: its id (kept in the state directory), the DNS-SD
-- instance name made from it, and which OS it runs.
local log = require("nodelua.log")
local metrics = require("nodelua.metrics")

local identity = {}

local read_file = require("nodelua.textfile").read

local function random_hex(bytes)
  local f = assert(io.open("/dev/urandom", "rb"))
  local data = f:read(bytes)
  f:close()
  return (data:gsub(".", function(c)
    return ("%02x"):format(c:byte())
  end))
end

identity.ID_PATTERN = "^%x+$"

--- The node id: 32 hex digits kept in STATE_DIR/node-id, made on first use.
-- Returns the id, or nil and why when it can be neither read nor made.
function identity.node_id(state_dir)
  local path = state_dir .. "/node-id"
  local text = read_file(path)
  if text then
    local id = text:match("^%s*(%x+)%s*$")
    if id and #id == 32 then
      return id:lower()
    end
    log.warn("discovery: %s is damaged; making a new node id", path)
  end
  local id = random_hex(16)
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then
    return nil, err
  end
  f:write(id, "\n")
  f:close()
  local ok, why = os.rename(tmp, path)
  if not ok then
    os.remove(tmp)
    return nil, why
  end
  return id
end

--- The node id kept in STATE_DIR/node-id, only read (nil if there is none):
-- for commands that must not need a writable state directory.
function identity.read_node_id(state_dir)
  local text = read_file(state_dir .. "/node-id")
  local id = text and text:match("^%s*(%x+)%s*$")
  return id and #id == 32 and id:lower() or nil
end

-- The instance name: the friendly name with the start of the id, so that
-- two nodes of one name are two instances (and nobody gets renamed).
function identity.instance_name(name, id)
  local suffix = " (" .. id:sub(1, 8) .. ")"
  while #name + #suffix > 63 do
    local last = utf8.offset(name, -1) or #name
    name = name:sub(1, last - 1)
  end
  return name .. suffix
end

--- Whether this node runs macOS (for hints in messages).
function identity.is_macos()
  local ok, m = pcall(metrics.sample, "system")
  return ok and m.system and m.system.sysname == "Darwin" or false
end

return identity
