-- bench/spawn.lua N [BATCH]: spawn+join throughput. Spawns N trivial tasks,
-- BATCH at a time (each batch spawned, then joined in order); prints JSON.
local ato = require "ato"

local n = tonumber(arg[1]) or 1000000
local batch = tonumber(arg[2]) or 1000
local function work(i) return i end

local t0 = ato.now()
local sum, handles = 0, {}
for base = 0, n - 1, batch do
  local m = math.min(batch, n - base)
  for i = 1, m do handles[i] = ato.spawn(work, base + i) end
  for i = 1, m do sum = sum + handles[i]:join() end
end
local wall = ato.now() - t0
assert(sum == n * (n + 1) / 2, "wrong sum")
print(('{"tasks":%d,"batch":%d,"wall_s":%.3f,"tasks_per_s":%.0f}'):format(n, batch, wall, n / wall))
