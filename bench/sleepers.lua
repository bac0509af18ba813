-- bench/sleepers.lua N: N tasks, each sleeping a random 0-1 s; prints one
-- JSON line: wall time, the last wake's lateness, Lua heap bytes per task.
local ato = require "ato"

local n = tonumber(arg[1]) or 100000
local t0 = ato.now()
local fired, max_late = 0, 0
local kb_before = collectgarbage("count")

local function sleeper(delay)
  local due = ato.now() + delay
  ato.sleep(delay)
  local late = ato.now() - due
  if late > max_late then max_late = late end
  fired = fired + 1
end

math.randomseed(42)
for _ = 1, n do ato.spawn(sleeper, math.random(0, 1000) / 1000) end
local armed = ato.now() - t0
ato.sleep(0)                                    -- every sleeper is now waiting
local per_task = (collectgarbage("count") - kb_before) * 1024 / n
while fired < n do ato.sleep(0.01) end
print(('{"tasks":%d,"armed_s":%.3f,"wall_s":%.3f,"max_late_ms":%.1f,"lua_bytes_per_task":%.0f}')
  :format(n, armed, ato.now() - t0, max_late * 1000, per_task))
