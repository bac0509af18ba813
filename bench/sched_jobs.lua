-- bench/sched_jobs.lua [--quick]: durable jobs (ato.jobs + ato daemon).
--
--   add       100,000 jobs added through the Lua API in one transaction
--             (the way a playbook schedules a batch), and the file's size
--   idle      the daemon's CPU while those 100,000 jobs wait (none due for
--             a year): user+system seconds from /proc over a measured
--             window, as a share of one CPU; target < 0.1 %
--   lag       100 jobs due in the same second: from the due time to the
--             start of each job's process (the job script's first line
--             reads the clock, so ato's own start-up is included), p50 and
--             p99 over the 100; target p99 < 50 ms. The daemon's own view
--             (due -> spawn) is printed next to it.
--
-- A fresh database under bench/out/sched/ each run; prints a table and
-- writes bench/out/sched_jobs.json.
local ato = require "ato"
local cjson = require "cjson"

local quick = arg[1] == "--quick"
local N = quick and 10000 or 100000
local IDLE_S = quick and 10 or 60
local ATO = os.getenv("ATO_BIN") or "bin/ato"
local OUT = "bench/out/sched"
math.randomseed(os.time())
local PORT = 20000 + math.random(0, 20000)

local U = dofile "bench/util.lua"
local run = U.run

local function percentile(list, p)
  local s = {}
  for i, v in ipairs(list) do s[i] = v end
  table.sort(s)
  local i = math.max(1, math.ceil(#s * p / 100))
  return s[i]
end

local function cpu_seconds(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return nil end
  local stat = f:read("a")
  f:close()
  -- fields after the command's closing parenthesis: utime is 14th, stime 15th overall
  local rest = stat:match("%) (.*)$")
  local fields = {}
  for x in rest:gmatch("%S+") do fields[#fields + 1] = x end
  local ticks = tonumber(run{"getconf", "CLK_TCK"}.stdout)
  return (tonumber(fields[12]) + tonumber(fields[13])) / ticks
end

run{"rm", "-rf", OUT}
run{"mkdir", "-p", OUT}
local db = OUT .. "/ato.db"
local job = OUT .. "/job.lua"
assert(ato.fs.write(job, [[
local t = require("ato").time()
local f = assert(io.open(os.getenv("LAGS"), "a"))
f:write(("%.6f %s\n"):format(t, os.getenv("ATO_SLOT")))
f:close()
]]))
local results = {n = N, quick = quick}

-- {====================================================== add
do
  local code = ([[
    local ato = require "ato"
    local store = assert(require("ato.store").open(%q))
    local jobs = require "ato.jobs"
    local t0 = ato.now()
    assert(store:tx(function(s)
      for i = 1, %d do
        assert(jobs.add({name = "j" .. i, cron = "0 0 1 1 *", script = %q}, {store = s}))
      end
      return true
    end))
    print(ato.now() - t0)
  ]]):format(db, N, job)
  local r = run{ATO, "-e", code, env = {ATO_DB = db}, timeout = 3600}
  results.add_s = tonumber(r.stdout)
  results.db_mb = assert(ato.fs.stat(db)).size / 1e6
  print(("add     %d jobs in one transaction: %.2f s (%.0f jobs/s), database %.1f MB")
    :format(N, results.add_s, N / results.add_s, results.db_mb))
end
-- }======================================================

-- {====================================================== idle and lag
do
  local lags = OUT .. "/lags"
  local d = ato.spawn(function()
    return ato.exec{"sh", "-c", 'echo $$ > "$1"; shift; exec "$@"', "sh", OUT .. "/daemon.pid", ATO,
                    "--log-level", "warn", "daemon", "--poll", "1", "--listen", "127.0.0.1:" .. PORT,
                    env = {ATO_DB = db, LAGS = lags}, timeout = 3600, stderr = "ignore"}
  end)
  local pid
  for _ = 1, 500 do
    pid = (ato.fs.read(OUT .. "/daemon.pid") or ""):match("%d+")
    if pid then break end
    ato.sleep(0.01)
  end
  ato.sleep(2)                                  -- start-up and the first looks at the table
  local c0, t0 = cpu_seconds(pid), ato.now()
  ato.sleep(IDLE_S)
  local c1, t1 = cpu_seconds(pid), ato.now()
  results.idle_cpu_pct = (c1 - c0) / (t1 - t0) * 100
  print(("idle    daemon with %d waiting jobs: %.3f s CPU in %.0f s = %.4f %% of one CPU (target < 0.1 %%)")
    :format(N, c1 - c0, t1 - t0, results.idle_cpu_pct))

  -- 100 jobs due at the same second, 3 s from now
  local due = math.floor(ato.time()) + 3
  local code = ([[
    local store = assert(require("ato.store").open(%q))
    local jobs = require "ato.jobs"
    assert(store:tx(function(s)
      for i = 1, 100 do assert(jobs.add({name = "due" .. i, at = %d, script = %q}, {store = s})) end
      return true
    end))
  ]]):format(db, due, job)
  run{ATO, "-e", code}
  for _ = 1, 200 do
    local s = ato.fs.read(lags) or ""
    local n = select(2, s:gsub("\n", ""))
    if n >= 100 then break end
    ato.sleep(0.1)
  end
  local metrics = assert(require("ato.http").get(("http://127.0.0.1:%d/metrics"):format(PORT))).body
  run{"kill", "-TERM", pid}
  d:join()
  local list = {}
  for line in io.lines(lags) do
    local t, slot = line:match("^(%S+) (%S+)$")
    list[#list + 1] = (tonumber(t) - tonumber(slot)) * 1000
  end
  local rows = cjson.decode(run{ATO, "jobs", "history", "due100", "--json", env = {ATO_DB = db}}.stdout)
  results.lag_ms = {n = #list, p50 = percentile(list, 50), p99 = percentile(list, 99), max = percentile(list, 100)}
  print(("lag     100 jobs due at one second: due -> the job script's first line: p50 %.1f ms, p99 %.1f ms, max %.1f ms (target p99 < 50 ms)")
    :format(results.lag_ms.p50, results.lag_ms.p99, results.lag_ms.max))
  local q50 = tonumber(metrics:match('ato_scheduler_lag_seconds{quantile="0.5"} (%S+)'))
  local q99 = tonumber(metrics:match('ato_scheduler_lag_seconds{quantile="0.99"} (%S+)'))
  local qmax = tonumber(metrics:match('\nato_scheduler_lag_max_seconds (%S+)'))
  results.spawn_lag_ms = {p50 = q50 * 1000, p99 = q99 * 1000, max = qmax * 1000}
  print(("        due -> spawn, the daemon's /metrics (0 when started early, see --prestart): p50 %.1f ms, p99 %.1f ms, max %.1f ms; last run %s")
    :format(results.spawn_lag_ms.p50, results.spawn_lag_ms.p99, results.spawn_lag_ms.max, rows[1] and rows[1].status or "?"))
end
-- }======================================================

local f = assert(io.open("bench/out/sched_jobs.json", "w"))
f:write(cjson.encode(results), "\n")
f:close()
