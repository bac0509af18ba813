-- bench/util.lua: the helpers every benchmark script uses (loaded with
-- dofile "bench/util.lua"; the scripts run from the repository's root).
local ato = require "ato"

local M = {}

--- Runs argv (ato.exec); raises when it cannot start or exits non-zero.
function M.run(argv)
  local r, err = ato.exec(argv)
  if not r then error(("%s: %s"):format(argv[1], err)) end
  if not r.ok then
    error(("%s failed (%s): %s%s"):format(table.concat(argv, " "), r.code or r.signal, r.stderr,
      r.stdout ~= "" and ("\n" .. r.stdout) or ""))
  end
  return r
end

--- Runs a shell script with arguments ($1...).
function M.sh(script, ...)
  return M.run{"sh", "-c", script, "sh", ...}
end

--- Is cmd on the PATH?
function M.have(cmd)
  local r = ato.exec{"sh", "-c", "command -v " .. cmd}
  return r and r.ok
end

--- The median of a list of numbers (nil for none); the list is not changed.
function M.median(list)
  local s = {}
  for i, v in ipairs(list) do s[i] = v end
  table.sort(s)
  local n = #s
  if n == 0 then return nil end
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end

--- A whole file, or nil.
function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function M.write(path, data)
  local f = assert(io.open(path, "wb"))
  assert(f:write(data))
  assert(f:close())
end

return M
