-- Shared test helpers, in the spirit of luv's harness: each test must leave
-- no task, deadline or unobserved failure behind, and the GC runs between
-- tests to shake out anchoring bugs.
local ato = require "ato"
local busted = require "busted"   -- before_each/after_each live in its api

local M = {}

M.ato_bin = os.getenv("ATO_BIN") or "bin/ato"
if M.ato_bin:sub(1, 1) ~= "/" then           -- usable from any cwd
  M.ato_bin = (os.getenv("PWD") or ".") .. "/" .. M.ato_bin
end

local function leftovers()
  local list, me = {}, ato.current()
  for _, t in ipairs(ato.tasks()) do
    if t ~= me then list[#list + 1] = tostring(t) end
  end
  return list
end

--- Installs an after_each that fails a test leaving work behind.
function M.clean_after_each()
  local base
  busted.before_each(function() base = ato.stats().unobserved_failures end)
  busted.after_each(function()
    for _ = 1, 3 do ato.sleep(0) end        -- let finishing tasks finish
    collectgarbage()
    collectgarbage()
    local left, s = leftovers(), ato.stats()
    for _, t in ipairs(ato.tasks()) do
      if t ~= ato.current() then t:cancel() end
    end
    ato.sleep(0)
    assert(#left == 0, "tasks left running: " .. table.concat(left, ", "))
    assert(s.deadlines == 0, s.deadlines .. " deadline(s) left armed")
    assert(s.unobserved_failures == base, "a task failed and nobody joined it")
  end)
end

--- Runs bin/ato with args (a list) and options for ato.exec; returns the result.
function M.ato(args, opts)
  local cmd = {M.ato_bin}
  for _, a in ipairs(args) do cmd[#cmd + 1] = a end
  for k, v in pairs(opts or {}) do cmd[k] = v end
  if cmd.timeout == nil then cmd.timeout = 30 end
  return assert(ato.exec(cmd))
end

--- A fresh temporary directory, removed by the returned cleanup function.
function M.tmpdir()
  local r = assert(ato.exec{"mktemp", "-d", "/tmp/ato-test.XXXXXX"})
  local dir = r.stdout:gsub("%s+$", "")
  return dir, function() ato.exec{"rm", "-rf", dir} end
end

return M
