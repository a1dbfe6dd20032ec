--- `nodelua hash [--sha256] [--threads N] FILE...`: each file's digest, as
-- sha256sum prints it (digest, two spaces, name): by default the tree
-- digest that transfers use (every 4 MiB chunk hashed in parallel, then the
-- SHA-256 over the chunks' digests; docs/protocol.md), with --sha256 the
-- plain SHA-256, the same as sha256sum's.
local cli = require("nodelua.cli.args")
local config = require("nodelua.config")
local hash = require("nodelua.hash")

local M = {}

M.usage = [[
Usage: nodelua hash [--sha256] [--threads N] FILE...

Prints each file's digest and name, as sha256sum does:

  (default)       the tree digest, which `nodelua send` prints and the
                  receiver checks: the SHA-256 of a label, the file's size,
                  the chunk size (4 MiB) and every chunk's SHA-256, the
                  chunks hashed in parallel on every core
  --sha256        the plain SHA-256 of the file (sha256sum's, one core)
  --threads N     workers for the tree digest, 1 to 256 (default
                  TRANSFER_HASH_THREADS, 0 there: the online CPUs)

docs/protocol.md defines the tree digest, and shows how to compute it by
hand from the chunks' sha256sum.

Exit status: 0 all hashed, 1 a file could not be read, 2 usage error.
]]

local SPEC = { ["--sha256"] = "flag", ["--threads"] = "value" }

local function check(given)
  local opts = { sha256 = given.sha256 or false, threads = config.get("TRANSFER_HASH_THREADS") }
  if given.threads then
    local why
    opts.threads, why = cli.integer(given, "threads", 1, 256)
    if not opts.threads then
      return nil, why
    end
  end
  return opts
end

function M.main(args)
  local flags, files = cli.split(args, SPEC)
  local opts, status = cli.start("hash", M.usage, flags, SPEC, check)
  if not opts then
    return status
  end
  if #files == 0 then
    io.stderr:write("nodelua hash: needs at least one file; see nodelua hash --help\n")
    return 2
  end
  local failed = false
  for _, path in ipairs(files) do
    local digest, err = hash.file(path, { sha256 = opts.sha256, threads = opts.threads })
    if digest then
      io.stdout:write(digest, "  ", path, "\n")
    else
      io.stderr:write("nodelua hash: ", err, "\n")
      failed = true
    end
  end
  io.stdout:flush()
  return failed and 1 or 0
end

return M
