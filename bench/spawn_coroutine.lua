-- bench/spawn_coroutine.lua N: the plain-Lua floor for bench/spawn.lua —
-- create and run N coroutines to completion with lua5.4, no scheduler.
local n = tonumber(arg[1]) or 1000000
local function work(i) return i end
local clock = os.clock
local t0, sum = clock(), 0
for i = 1, n do
  local co = coroutine.create(work)
  local _, v = coroutine.resume(co, i)
  sum = sum + v
end
local cpu = clock() - t0
assert(sum == n * (n + 1) / 2, "wrong sum")
print(('{"tasks":%d,"cpu_s":%.3f,"tasks_per_s":%.0f}'):format(n, cpu, n / cpu))
