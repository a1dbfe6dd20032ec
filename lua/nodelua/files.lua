--- Files between nodes, for the agent and `nodelua send`: the cluster key,
-- and the receiver on TRANSFER_PORT (the C side: nodelua.transfer).
local config = require("nodelua.config")
local log = require("nodelua.log")
local trust = require("nodelua.trust")

local M = {}

M.KEY_MIN = 16

--- The cluster key: NODELUA_CLUSTER_KEY, or the contents of
-- NODELUA_CLUSTER_KEY_FILE (surrounding white space dropped). Returns the
-- key, or nil and why there is none.
function M.cluster_key()
  local key = config.get("NODELUA_CLUSTER_KEY")
  if key ~= "" then
    return key
  end
  local path = config.get("NODELUA_CLUSTER_KEY_FILE")
  if path == "" then
    return nil, "no cluster key: set NODELUA_CLUSTER_KEY, or NODELUA_CLUSTER_KEY_FILE (mode 0600)"
  end
  -- Refused unless it is the agent's (or root's) and nobody else can read
  -- or write it.
  local text, err = trust.read(path, { secret = true, max = 64 * 1024 })
  if not text then
    return nil, ("NODELUA_CLUSTER_KEY_FILE: %s"):format(err)
  end
  key = text:match("^%s*(.-)%s*$")
  -- Never in a log line, like every secret from the configuration.
  log.add_secret(key)
  if #key < M.KEY_MIN then
    return nil, ("NODELUA_CLUSTER_KEY_FILE=%s holds %d bytes; a key is at least %d"):format(path, #key, M.KEY_MIN)
  end
  return key
end

--- Receives files on the discovery server's port (TRANSFER_PORT), or, with
-- no key, refuses them saying so (and logs that once).
function M.start_receiver(server, node_id)
  local key, why = M.cluster_key()
  if not key then
    log.warn("file transfer is off: %s", why)
    server:refuse_files("file transfer is off on this node: it has no cluster key")
    return false
  end
  local dir = config.get("TRANSFER_DIR")
  local ok, err = server:receive_files({
    key = key,
    dir = dir,
    node_id = node_id,
    max_bytes = config.get("TRANSFER_MAX_BYTES"),
    encrypted_only = config.get("TRANSFER_ENCRYPT"),
    partial_ttl = config.get("TRANSFER_PARTIAL_TTL") * 3600,
    rdma = config.get("TRANSFER_RDMA"),
  })
  if not ok then
    log.error("file transfer is off: TRANSFER_DIR refused: %s", err)
    server:refuse_files("file transfer is off on this node: its receive directory is unusable")
    return false
  end
  log.info("receiving files into %s on port %d (at most %d bytes each, %s)", dir, server:port(),
    config.get("TRANSFER_MAX_BYTES"),
    config.get("TRANSFER_ENCRYPT") and "encrypted only" or "encrypted or in clear, as the sender chooses")
  return true
end

return M
