-- bench/sched_timers.lua [--quick]: 1,000,000 in-process timers
-- (ato.sched.after) next to Node.js setTimeout doing the same.
--
-- Both arm N timers with the same seeded delays (xorshift32 from 42, a
-- whole number of milliseconds in [0, 2000]), each callback measuring how
-- late it ran. Figures, each the median of RUNS runs: time to arm all,
-- time from the start until the last one fired, lateness of that last one
-- and the worst lateness (both sides arm for about a second before the
-- loop runs, so the timers due in that second run late by the rest of
-- it), how many fired before their due time (by the script's own clock)
-- and by how much at most, peak RSS (GNU time %M), RSS and heap per
-- armed timer.
--
--   bin/ato bench/sched_timers.lua [--quick]     the comparison (ratio first)
--   bin/ato bench/sched_timers.lua --worker N    one ato run, one JSON line
--   node bench/sched_timers.mjs N                one Node.js run
--
-- Prints a table and writes bench/out/sched_timers.json.
local ato = require "ato"

-- {====================================================== worker

if arg[1] == "--worker" then
  local sched = require "ato.sched"
  local n = tonumber(arg[2]) or 1000000
  local x, fired, max_late, early, earliest = 42, 0, 0, 0, 0
  local done = ato.cond()
  local result
  collectgarbage()
  local kb0 = collectgarbage("count")
  local t0 = ato.now()
  local now = ato.now
  for _ = 1, n do
    x = x ~ ((x << 13) & 0xffffffff)
    x = x ~ (x >> 17)
    x = x ~ ((x << 5) & 0xffffffff)
    local delay = (x % 2001) / 1000
    local due = now() + delay
    sched.after(delay, function()
      local t = now()
      local late = t - due
      if late > max_late then max_late = late end
      if late < 0 then
        early = early + 1
        if late < earliest then earliest = late end
      end
      fired = fired + 1
      if fired == n then
        result = {last_fired_s = t - t0, last_late_ms = late * 1000}
        done:signal()
      end
    end)
  end
  local armed = now() - t0
  local heap = (collectgarbage("count") - kb0) * 1024 / n
  if fired < n then done:wait() end
  local f = assert(io.open("/proc/self/status"))
  local hwm = tonumber(f:read("a"):match("VmHWM:%s*(%d+)"))
  f:close()
  print(('{"timers":%d,"arm_s":%.3f,"last_fired_s":%.3f,"last_late_ms":%.1f,'
    .. '"max_late_ms":%.1f,"early":%d,"max_early_ms":%.3f,"heap_bytes_per_timer":%.0f,'
    .. '"vmhwm_kb":%d}')
    :format(n, armed, result.last_fired_s, result.last_late_ms, max_late * 1000, early,
            -earliest * 1000, heap, hwm))
  return
end

-- }======================================================

-- {====================================================== comparison

local cjson = require "cjson"

local ATO = os.getenv("ATO_BIN") or "bin/ato"
local quick = arg[1] == "--quick"
local RUNS = quick and 1 or 5
local N = 1000000

local U = dofile "bench/util.lua"
local run, have, median = U.run, U.have, U.median

-- Runs argv n times under GNU time; returns the median peak RSS (KB) and
-- the median of each number in the JSON lines the runs printed.
local function measure(n, argv)
  local rss, fields = {}, {}
  for i = 1, n do
    local cmd = {"/usr/bin/time", "-f", "%M %e", timeout = 600}
    for _, a in ipairs(argv) do cmd[#cmd + 1] = a end
    local r = run(cmd)
    rss[i] = tonumber(r.stderr:match("(%d+) [%d.]+%s*$"))
    for k, v in pairs(r.stdout:find("%S") and cjson.decode(r.stdout) or {}) do
      fields[k] = fields[k] or {}
      fields[k][i] = v
    end
  end
  local out = {}
  for k, list in pairs(fields) do out[k] = median(list) end
  return median(rss), out
end

local results = {}

local function row(name, ours, peer, unit, note)
  results[#results + 1] = {name = name, ato = ours, peer = peer, unit = unit, note = note}
  local ratio = peer and peer > 0 and ours > 0 and ours / peer or nil
  print(("%8s %12.3f %12s  %-44s %s"):format(ratio and ("%.2fx"):format(ratio) or "-", ours,
    peer and ("%.3f"):format(peer) or "-", name .. " (" .. unit .. ")", note or ""))
end

run{"mkdir", "-p", "bench/out"}
local node = have("node")
local node_version = node and run{"node", "--version"}.stdout:gsub("%s+$", "") or nil
print(("%d in-process timers, delays 0-2 s (same seeded delays), median of %d run(s); peer: %s")
  :format(N, RUNS, node_version and ("Node.js " .. node_version .. " setTimeout") or "none"))
print(("%8s %12s %12s  %s"):format("ratio", "ato", "node", "metric"))

local base_ato = measure(RUNS, {ATO, "-e", ""})
local rss, ours = measure(RUNS, {ATO, "bench/sched_timers.lua", "--worker", tostring(N)})
local nrss, theirs, base_node = nil, {}, nil
if node then
  base_node = measure(RUNS, {"node", "-e", ""})
  nrss, theirs = measure(RUNS, {"node", "bench/sched_timers.mjs", tostring(N)})
end

row("arm all timers", ours.arm_s, theirs.arm_s, "s", "")
row("last timer fired, from the start", ours.last_fired_s, theirs.last_fired_s, "s",
    "the last is due at ~arm + 2 s")
row("lateness of the last timer", ours.last_late_ms, theirs.last_late_ms, "ms", "")
row("worst lateness", ours.max_late_ms, theirs.max_late_ms, "ms", "~ arm time: due while arming")
row("timers fired before their due time", ours.early, theirs.early, "count",
    "node rounds delays to whole ms")
row("earliest fire before due", ours.max_early_ms, theirs.max_early_ms, "ms", "")
row("peak RSS", rss / 1024, nrss and nrss / 1024, "MB", "GNU time %M")
row("RSS per armed timer", (rss - base_ato) * 1024 / N,
    nrss and (nrss - base_node) * 1024 / N, "B", "peak minus an empty run's")
row("heap per armed timer", ours.heap_bytes_per_timer, theirs.heap_bytes_per_timer, "B",
    "Lua heap vs V8 heapUsed, callback closures included")

local f = assert(io.open("bench/out/sched_timers.json", "w"))
f:write(cjson.encode({timers = N, runs = RUNS, node = node_version, rows = results,
                      ato = ours, peer = theirs}), "\n")
f:close()
print("(figures in bench/out/sched_timers.json)")

-- }======================================================
