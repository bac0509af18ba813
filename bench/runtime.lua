-- bench/runtime.lua [--quick]: the task runtime next to its peers.
--
--   start-up        `ato -e ''` vs `lua5.4 -e ''`: wall (hyperfine) and peak RSS
--   100k sleepers   100,000 tasks sleeping a random 0-1 s vs Node's setTimeout
--   spawn+join      1,000,000 trivial tasks vs bare coroutine create+resume
--
-- Prints a table and writes bench/out/runtime.json. Run: make bench.
local ato = require "ato"
local cjson = require "cjson"

local ATO = os.getenv("ATO_BIN") or "bin/ato"
local quick = arg[1] == "--quick"
local RUNS = quick and 3 or 7

local U = dofile "bench/util.lua"
local run, have, median = U.run, U.have, U.median

-- Runs argv n times under GNU time; returns median peak RSS (KB), median
-- wall (s) and the last run's stdout.
local function measure(n, argv)
  local rss, wall, out = {}, {}, nil
  for i = 1, n do
    local cmd = {"/usr/bin/time", "-f", "%M %e"}
    for _, a in ipairs(argv) do cmd[#cmd + 1] = a end
    local r = run(cmd)
    local kb, secs = r.stderr:match("(%d+) ([%d.]+)%s*$")
    rss[i], wall[i], out = tonumber(kb), tonumber(secs), r.stdout
  end
  return median(rss), median(wall), out
end

local results, base_rss_kb = {}, nil

local function row(name, ours, peer, unit, note)
  results[#results + 1] = {name = name, ato = ours, peer = peer, unit = unit, note = note}
  local ratio = peer and peer ~= 0 and ours / peer or nil
  print(("%-38s %12.3f %12s %8s  %s"):format(name .. " (" .. unit .. ")", ours,
    peer and ("%.3f"):format(peer) or "-", ratio and ("%.2fx"):format(ratio) or "-", note or ""))
end

print(("%-38s %12s %12s %8s"):format("benchmark", "ato", "peer", "ratio"))

-- {====================================================== start-up
do
  local json = "bench/out/startup.json"
  run{"mkdir", "-p", "bench/out"}
  run{"hyperfine", "-N", "--warmup", "10", "--runs", quick and "30" or "200",
      "--export-json", json, ATO .. " -e ''", "lua5.4 -e ''"}
  local f = assert(io.open(json))
  local data = cjson.decode(f:read("a"))
  f:close()
  local ours, lua = median(data.results[1].times), median(data.results[2].times)
  row("start-up wall, median", ours * 1000, lua * 1000, "ms", "peer: lua5.4 -e ''")
  local rss_ato = measure(RUNS * 3, {ATO, "-e", ""})
  local rss_lua = measure(RUNS * 3, {"lua5.4", "-e", ""})
  row("start-up peak RSS, median", rss_ato / 1024, rss_lua / 1024, "MB", "peer: lua5.4")
  base_rss_kb = rss_ato
end
-- }======================================================

-- {====================================================== sleepers
do
  local n = 100000
  local rss, wall, out = measure(RUNS, {ATO, "bench/sleepers.lua", tostring(n)})
  local ours = cjson.decode(out)
  local per_task = (rss - base_rss_kb) * 1024 / n
  if have("node") then
    local nrss, nwall, nout = measure(RUNS, {"node", "bench/timers.js", tostring(n)})
    local node = cjson.decode(nout)
    row("100k sleepers wall, median", wall, nwall, "s", "peer: node setTimeout")
    row("100k sleepers max lateness, last run", ours.max_late_ms, node.max_late_ms, "ms", "")
    row("100k sleepers peak RSS, median", rss / 1024, nrss / 1024, "MB", "")
  else
    row("100k sleepers wall, median", wall, nil, "s", "node not installed")
  end
  row("bytes per sleeping task (RSS)", per_task, nil, "B", "target < 2048")
  row("bytes per sleeping task (Lua heap)", ours.lua_bytes_per_task, nil, "B", "")
  row("100k sleepers: wall - longest delay", wall - 1.0, nil, "s", "target < 1.2")
end
-- }======================================================

-- {====================================================== spawn+join
do
  local n = quick and 200000 or 1000000
  local ours, floor = {}, {}
  for i = 1, RUNS do
    ours[i] = cjson.decode(run{ATO, "bench/spawn.lua", tostring(n)}.stdout).tasks_per_s
    floor[i] = cjson.decode(run{"lua5.4", "bench/spawn_coroutine.lua", tostring(n)}.stdout).tasks_per_s
  end
  row("spawn+join throughput, median", median(ours) / 1e6, median(floor) / 1e6, "M tasks/s",
      "peer: lua5.4 coroutine create+resume")
end
-- }======================================================

local f = assert(io.open("bench/out/runtime.json", "w"))
f:write(cjson.encode({rows = results, base_rss_kb = base_rss_kb}), "\n")
f:close()
print("(figures in bench/out/runtime.json)")
