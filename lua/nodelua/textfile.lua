--- Whole small files as strings: read(path) gives the contents, or nil
-- when the file cannot be opened (the caller says what that means).
local M = {}

function M.read(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local data = f:read("a")
  f:close()
  return data
end

return M
