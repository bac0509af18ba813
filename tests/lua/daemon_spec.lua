-- `ato jobs` and `ato daemon` as an operator runs them: real processes, a
-- real SQLite file, real signals. Schedules run on a fake clock
-- (ATO_FAKE_CLOCK=START:SPEED:ANCHOR, shared by every process of a test),
-- so 30 days take seconds. Covered: the CLI, a daily cron across a DST
-- change, kill -9 of the daemon mid-run (the run is recorded interrupted,
-- its orphaned process stopped, and retried once), two daemons on one
-- database (every occurrence exactly once), missed-run policies after
-- downtime, retries with backoff, overlap skip, SIGTERM's grace, and the
-- /healthz and /metrics endpoints.
local ato = require "ato"
local cjson = require "cjson"
local support = require "support"

local LONDON_MAR20 = 1773993600            -- 2026-03-20T08:00:00Z

describe("ato jobs and ato daemon", function()
  support.clean_after_each()
  local dir, cleanup
  setup(function() dir, cleanup = support.tmpdir() end)
  teardown(function() cleanup() end)

  local n = 0
  -- A fresh database and environment for one test.
  local function world(clock)
    n = n + 1
    local w = {db = ("%s/w%d/ato.db"):format(dir, n), dir = ("%s/w%d"):format(dir, n)}
    assert(ato.fs.mkdir(w.dir, "700", {parents = true}))
    w.env = {ATO_DB = w.db, ATO_FAKE_CLOCK = clock or false, ATO_LOG_FORMAT = "json"}
    function w.ato(args, timeout)
      return support.ato(args, {env = w.env, timeout = timeout or 30})
    end
    function w.script(name, code)
      local path = w.dir .. "/" .. name
      assert(ato.fs.write(path, code))
      return path
    end
    -- starts a daemon; returns {task =, pid = function, stop = function(sig)}
    function w.daemon(args)
      local d = {pidfile = ("%s/daemon%d.pid"):format(w.dir, math.random(1e9))}
      local cmd = {"sh", "-c", 'echo $$ > "$1"; shift; exec "$@"', "sh", d.pidfile, support.ato_bin, "daemon",
                   env = w.env, timeout = 120}
      for _, a in ipairs(args or {}) do cmd[#cmd + 1] = a end
      d.task = ato.spawn(function() return assert(ato.exec(cmd)) end)
      function d.pid()
        for _ = 1, 200 do
          local s = ato.fs.read(d.pidfile)
          if s and s:match("%d+") then return s:match("%d+") end
          ato.sleep(0.01)
        end
        error("the daemon did not start")
      end
      function d.stop(sig)
        assert(assert(ato.exec{"kill", "-" .. (sig or "TERM"), d.pid()}).ok)
        return d.task:join()
      end
      return d
    end
    function w.history(name)
      local r = w.ato({"jobs", "history", name, "--limit", "1000", "--json"})
      assert(r.code == 0, r.stderr)
      local runs = cjson.decode(r.stdout)
      table.sort(runs, function(a, b) return a.id < b.id end)
      return runs
    end
    function w.wait_until(what, pred, seconds)
      local deadline = ato.now() + (seconds or 20)
      while ato.now() < deadline do
        local v = pred()
        if v then return v end
        ato.sleep(0.05)
      end
      error("timed out waiting for " .. what)
    end
    return w
  end

  local function fake_clock(start, speed)
    return ("%d:%s:%.6f"):format(start, tostring(speed), ato.time())
  end

  describe("the CLI", function()
    it("adds, lists, shows, pauses, resumes, queues, removes; errors are clear", function()
      local w = world()
      local job = w.script("job.lua", "print('hi')")
      local r = w.ato({"jobs", "add", "nightly", "--cron", "30 2 * * *", "--tz", "Europe/London",
                       "--attempts", "3", "--timeout", "10m", "--", job, "a b"})
      assert.equal(0, r.code, r.stderr)
      assert.matches("^added nightly: cron 30 2 %* %* %* %(Europe/London%), next run 20", r.stdout)
      r = w.ato({"jobs", "add", "nightly", "--every", "1h", "--", job})
      assert.equal(1, r.code)
      assert.matches("exists", r.stderr)
      r = w.ato({"jobs", "add", "bad", "--cron", "0 25 * * *", "--", job})
      assert.equal(2, r.code)
      assert.equal('ato jobs: add: cron: field 2 (hour) "25": out of range 0-23\n', r.stderr)
      r = w.ato({"jobs", "add", "bad", "--every", "soon", "--", job})
      assert.equal(2, r.code)
      assert.matches("bad duration 'soon'", r.stderr)
      r = w.ato({"jobs", "add", "bad", "--every", "1h", "--", w.dir .. "/missing.lua"})
      assert.equal(1, r.code)
      assert.matches("no script at", r.stderr)
      r = w.ato({"jobs", "add", "bad", "--every", "1h", job})
      assert.equal(2, r.code)
      assert.matches("after %-%-", r.stderr)
      assert.equal(0, w.ato({"jobs", "add", "hourly", "--every", "1h", "--", job}).code)
      local list = cjson.decode(w.ato({"jobs", "list", "--json"}).stdout)
      assert.same({"hourly", "nightly"}, {list[1].name, list[2].name})
      assert.same({"a b"}, list[2].args)
      assert.equal(3, list[2].options.attempts)
      assert.equal(600, list[2].options.timeout)
      assert.equal(0, w.ato({"jobs", "pause", "hourly"}).code)
      local shown = cjson.decode(w.ato({"jobs", "show", "hourly", "--json"}).stdout)
      assert.is_true(shown.paused)
      assert.matches("paused", w.ato({"jobs", "list"}).stdout)
      assert.equal(0, w.ato({"jobs", "resume", "hourly"}).code)
      r = w.ato({"jobs", "run", "hourly"})
      assert.equal(0, r.code, r.stderr)
      assert.matches("^queued run %d+ of hourly", r.stdout)
      assert.equal("queued", w.history("hourly")[1].status)
      assert.equal(0, w.ato({"jobs", "rm", "hourly"}).code)
      r = w.ato({"jobs", "rm", "hourly"})
      assert.equal(1, r.code)
      assert.equal("ato jobs: no job 'hourly'\n", r.stderr)
      assert.equal(2, w.ato({"jobs", "frobnicate"}).code)
      assert.matches("Usage: ato %[%-%-db PATH%] jobs", w.ato({"jobs", "--help"}).stdout)
      assert.matches("Usage: ato daemon %[%-%-db PATH%]", w.ato({"daemon", "--help"}).stdout)
      assert.equal(2, w.ato({"daemon", "--listen", "0.0.0.0:1"}).code)
      -- `ato daemon --db PATH` (as well as `ato --db PATH daemon`): a missing
      -- directory is created, a file that is not a database is refused
      assert(ato.fs.write(w.dir .. "/junk.db", ("junk\n"):rep(400)))
      local r2 = w.ato({"daemon", "--db", w.dir .. "/junk.db"})
      assert.equal(2, r2.code)
      assert.matches("junk.db: file is not a database", r2.stderr, 1, true)
    end)
  end)

  describe("the daemon", function()
    it("runs a daily 09:00 Europe/London job 30 times over 30 days, across the DST change", function()
      -- 10 fake days per real second, from 2026-03-20 08:00 UTC (DST starts on 29 March)
      local w = world(fake_clock(LONDON_MAR20, 864000))
      local job = w.script("job.lua", [[
        local f = assert(io.open(os.getenv("OUT"), "a"))
        f:write(os.getenv("ATO_SLOT"), "\n")
        f:close()
      ]])
      w.env.OUT = w.dir .. "/slots"
      assert.equal(0, w.ato({"jobs", "add", "daily", "--cron", "0 9 * * *", "--tz", "Europe/London", "--", job}).code)
      local d = w.daemon{"--poll", "0.05"}
      w.wait_until("30 runs", function()
        local ok = 0
        for _, r in ipairs(w.history("daily")) do if r.status == "ok" then ok = ok + 1 end end
        return ok >= 30
      end)
      local r = d.stop("TERM")
      assert.equal(0, r.code, r.stderr)
      local runs = w.history("daily")
      local DST = 1774746000                 -- 2026-03-29T01:00Z: London moves to UTC+1
      assert.is_true(runs[1].slot < DST, "the first run is before the change")
      for i = 1, 30 do
        local run = runs[i]
        assert.equal("ok", run.status)
        assert.equal(1, run.attempt)
        -- 09:00 in London: 09:00 UTC before the change, 08:00 UTC after
        assert.equal(run.slot < DST and 9 * 3600 or 8 * 3600, run.slot % 86400, "run " .. i)
        if i > 1 then
          local gap = run.slot - runs[i - 1].slot
          assert.equal(runs[i - 1].slot < DST and run.slot >= DST and 82800 or 86400, gap, "run " .. i)
        end
      end
      local lines = 0
      for _ in assert(ato.fs.read(w.env.OUT)):gmatch("\n") do lines = lines + 1 end
      assert.equal(#runs, lines)
    end)

    it("records a run interrupted when its daemon is killed (-9), stops the orphan, and retries it once", function()
      local w = world()
      local job = w.script("job.lua", [[
        local ato = require "ato"
        local f = assert(io.open(os.getenv("OUT"), "a"))
        f:write(("start %s %s\n"):format(os.getenv("ATO_ATTEMPT"), ato.time())); f:flush()
        ato.sleep(tonumber(os.getenv("NAP")))
        f:write(("end %s %s\n"):format(os.getenv("ATO_ATTEMPT"), ato.time())); f:close()
      ]])
      w.env.OUT, w.env.NAP = w.dir .. "/marks", "1.5"
      assert.equal(0, w.ato({"jobs", "add", "once", "--at", "+0s", "--", job}).code)
      local d1 = w.daemon{"--lease", "2"}
      w.wait_until("the first attempt to start", function()
        return (ato.fs.read(w.env.OUT) or ""):find("start 1", 1, true)
      end)
      local killed = d1.stop("KILL")
      assert.equal(9, killed.signal)
      local runs = w.history("once")
      assert.same({"running"}, {runs[1].status})
      local d2 = w.daemon{"--lease", "2"}
      w.wait_until("the retry to finish", function()
        local h = w.history("once")
        return #h == 2 and h[2].status == "ok"
      end)
      d2.stop("TERM")
      runs = w.history("once")
      assert.equal(2, #runs)
      assert.same({"interrupted", 1}, {runs[1].status, runs[1].attempt})
      assert.matches("stopped during the run", runs[1].error)
      assert.same({"ok", 2}, {runs[2].status, runs[2].attempt})
      -- the first attempt's process was stopped before the retry started:
      -- it never ended, and nothing ran twice at once
      local marks = assert(ato.fs.read(w.env.OUT))
      local lines = {}
      for l in marks:gmatch("[^\n]+") do lines[#lines + 1] = l:match("^(%a+ %d)") end
      assert.same({"start 1", "start 2", "end 2"}, lines)
    end)

    it("two daemons on one database run every occurrence of a 1-second job exactly once", function()
      -- one fake minute in six real seconds; --overlap queue, so that a run
      -- slowed down by a loaded machine delays the next instead of skipping it
      local w = world(fake_clock(1790000000, 10))
      local job = w.script("job.lua", [[
        local f = assert(io.open(os.getenv("OUT"), "a"))
        f:write(os.getenv("ATO_SLOT"), " ", os.getenv("ATO_RUN_ID"), "\n")
        f:close()
      ]])
      w.env.OUT = w.dir .. "/slots"
      assert.equal(0, w.ato({"jobs", "add", "tick", "--every", "1s", "--overlap", "queue", "--", job}).code)
      local a, b = w.daemon{"--poll", "0.2"}, w.daemon{"--poll", "0.2"}
      ato.sleep(6.2)
      assert.equal(0, a.stop("TERM").code)
      assert.equal(0, b.stop("TERM").code)
      local runs = w.history("tick")
      table.sort(runs, function(x, y) return x.slot < y.slot end)
      assert.is_true(#runs >= 55, #runs .. " occurrences in a fake minute")
      local owners, ran, lines, done = {}, 0, 0, {}
      for i, r in ipairs(runs) do
        -- every occurrence recorded once, none missed; the ones still
        -- waiting at the stop are queued for the next start, not lost
        if i > 1 then assert.equal(1, r.slot - runs[i - 1].slot, "slot " .. r.slot) end
        assert.is_true(r.status == "ok" or r.status == "queued", r.status .. " run " .. r.id)
        if r.status == "ok" then
          ran = ran + 1
          owners[r.owner] = true
          done[#done + 1] = r
        end
      end
      -- never two at once: in the order they ran, each started after the
      -- previous one ended, and in slot order (queued ones go first)
      table.sort(done, function(x, y) return x.started_at < y.started_at end)
      for i = 2, #done do
        assert.is_true(done[i].started_at >= done[i - 1].ended_at, "two at once at " .. done[i].slot)
        assert.is_true(done[i].slot > done[i - 1].slot, "out of order at " .. done[i].slot)
      end
      local n_owners = 0
      for _ in pairs(owners) do n_owners = n_owners + 1 end
      print(("# two daemons: %d occurrences (%d run), claimed by %d daemon(s)"):format(#runs, ran, n_owners))
      for _ in assert(ato.fs.read(w.env.OUT)):gmatch("\n") do lines = lines + 1 end
      assert.equal(ran, lines)                         -- each ran exactly once
      assert.is_true(ran >= 50, ran .. " runs")
    end)

    it("after downtime runs missed occurrences per policy: none, one, all (capped)", function()
      local start = 1790000000
      local w = world(fake_clock(start, 1))
      local job = w.script("job.lua", "")
      for _, p in ipairs{{"none"}, {"one"}, {"all", "3"}, {"all", "10"}} do
        local args = {"jobs", "add", "m-" .. p[1] .. (p[2] or ""), "--every", "1h", "--missed", p[1]}
        if p[2] then args[#args + 1] = "--missed-cap"; args[#args + 1] = p[2] end
        args[#args + 1] = "--"
        args[#args + 1] = job
        assert.equal(0, w.ato(args).code)
      end
      -- the daemon comes up 5.5 hours later: 5 occurrences were missed
      w.env.ATO_FAKE_CLOCK = fake_clock(start + 5.5 * 3600, 1)
      local d = w.daemon{"--poll", "0.1"}
      w.wait_until("the catch-up", function()
        local h = w.history("m-all10")
        local ok = 0
        for _, r in ipairs(h) do if r.status == "ok" then ok = ok + 1 end end
        return ok == 5
      end)
      ato.sleep(0.3)
      d.stop("TERM")
      local function count(name)
        local c = 0
        for _, r in ipairs(w.history(name)) do if r.status == "ok" then c = c + 1 end end
        return c
      end
      assert.same({0, 1, 3, 5}, {count("m-none"), count("m-one"), count("m-all3"), count("m-all10")})
      -- each job's next occurrence is in the future: nothing is owed
      for _, j in ipairs(cjson.decode(w.ato({"jobs", "list", "--json"}).stdout)) do
        assert.is_true(j.next_due > start + 5.5 * 3600, j.name)
      end
    end)

    it("retries a failing run with backoff up to its attempts, and skips overlapping occurrences", function()
      local w = world(fake_clock(1790000000, 20))
      w.env.KEY = "SG." .. ("aB3dE"):rep(4) .. "x1" .. "." .. ("Qw9Er8Ty7U"):rep(4) .. "zz9"
      local fails = w.script("fails.lua", "io.stderr:write('no luck with ' .. os.getenv('KEY') .. '\\n') os.exit(3)")
      local slow = w.script("slow.lua", "require('ato').sleep(0.3)")    -- 6 fake seconds
      assert.equal(0, w.ato({"jobs", "add", "flaky", "--at", "+1s", "--attempts", "3", "--backoff", "2s",
                             "--", fails}).code)
      assert.equal(0, w.ato({"jobs", "add", "slow", "--every", "2s", "--", slow}).code)
      local d = w.daemon{"--poll", "0.05"}
      w.wait_until("three failed attempts", function()
        local h = w.history("flaky")
        return #h == 3 and h[3].status == "failed"
      end)
      ato.sleep(0.3)
      d.stop("TERM")
      local h = w.history("flaky")
      assert.equal(3, #h)
      for i, r in ipairs(h) do
        assert.same({"failed", i, 3}, {r.status, r.attempt, r.exit_code})
        assert.matches("no luck", r.output)
      end
      assert.is_true(h[2].started_at - h[1].ended_at >= 2 - 0.5, "first backoff")
      -- a key the job prints is redacted in the run record
      assert.is_nil(w.ato({"jobs", "history", "flaky", "--json"}).stdout:find(w.env.KEY, 1, true))
      assert.matches("SG%.", h[1].output)
      assert.is_true(h[3].started_at - h[2].ended_at >= 4 - 0.5, "second backoff doubles")
      local skipped, ok = 0, 0
      for _, r in ipairs(w.history("slow")) do
        if r.status == "skipped" then skipped = skipped + 1 end
        if r.status == "ok" then ok = ok + 1 end
      end
      assert.is_true(skipped >= 1 and ok >= 1, ("slow: %d ok, %d skipped"):format(ok, skipped))
    end)

    it("on SIGTERM lets a running job finish within the grace period; past it, stops it and queues it again", function()
      local w = world()
      local job = w.script("job.lua", "require('ato').sleep(tonumber(os.getenv('NAP')))")
      w.env.NAP = "0.5"
      assert.equal(0, w.ato({"jobs", "add", "short", "--at", "+0s", "--", job}).code)
      local d = w.daemon{"--grace", "5"}
      w.wait_until("the run to start", function() local h = w.history("short") return h[1] and h[1].status == "running" end)
      local r = d.stop("TERM")
      assert.equal(0, r.code, r.stderr)
      assert.equal("ok", w.history("short")[1].status)
      w.env.NAP = "30"
      assert.equal(0, w.ato({"jobs", "add", "long", "--at", "+0s", "--", job}).code)
      d = w.daemon{"--grace", "0.3"}
      w.wait_until("the run to start", function() local h = w.history("long") return h[1] and h[1].status == "running" end)
      local t0 = ato.now()
      r = d.stop("TERM")
      assert.equal(0, r.code, r.stderr)
      assert.is_true(ato.now() - t0 < 5, "the shutdown took " .. (ato.now() - t0) .. " s")
      local h = w.history("long")
      assert.same({"interrupted", "queued"}, {h[1].status, h[2].status})
      assert.matches("SIGTERM", h[1].error)
    end)

    it("starts a process early (--prestart) and its script runs at the due time, never before", function()
      local w = world()
      local job = w.script("job.lua", [[
        local t = require("ato").time()
        local f = assert(io.open(os.getenv("OUT"), "a"))
        f:write(("%.6f %s\n"):format(t, os.getenv("ATO_SLOT")))
        f:close()
      ]])
      w.env.OUT = w.dir .. "/times"
      for i = 1, 20 do
        assert.equal(0, w.ato({"jobs", "add", "burst" .. i, "--at", "+2s", "--", job}).code)
      end
      local d = w.daemon{"--prestart", "1.5", "--poll", "0.1"}
      w.wait_until("20 runs", function()
        local s = ato.fs.read(w.env.OUT) or ""
        return select(2, s:gsub("\n", "")) >= 20
      end)
      d.stop("TERM")
      for line in io.lines(w.env.OUT) do
        local t, slot = line:match("^(%S+) (%S+)$")
        local late = tonumber(t) - tonumber(slot)
        assert.is_true(late >= 0, "a script started " .. -late .. " s before its due time")
        assert.is_true(late < 1, "a script started " .. late .. " s late")
      end
    end)

    it("serves /healthz and /metrics on loopback", function()
      local w = world()
      local job = w.script("job.lua", "")
      assert.equal(0, w.ato({"jobs", "add", "m", "--every", "1h", "--", job}).code)
      assert.equal(0, w.ato({"jobs", "run", "m"}).code)
      local port = 20000 + math.random(0, 20000)
      local d = w.daemon{"--listen", "127.0.0.1:" .. port}
      local http = require "ato.http"
      local health = w.wait_until("the server", function()
        local resp = http.get(("http://127.0.0.1:%d/healthz"):format(port))
        return resp and resp.status == 200 and resp
      end)
      assert.equal("ok\n", health.body)
      w.wait_until("the run", function() local h = w.history("m") return h[1] and h[1].status == "ok" end)
      local m = assert(http.get(("http://127.0.0.1:%d/metrics"):format(port)))
      d.stop("TERM")
      assert.equal(200, m.status)
      assert.matches('ato_jobs{state="active"} 1', m.body, 1, true)
      assert.matches('ato_runs{status="ok"} 1', m.body, 1, true)
      assert.matches('ato_run_duration_seconds_count{job="m"} 1', m.body, 1, true)
      assert.matches('ato_job_last_success_timestamp_seconds{job="m"} %d', m.body)
      assert.matches("ato_scheduler_lag_seconds_count 1", m.body, 1, true)
      assert.matches("# TYPE ato_scheduler_lag_seconds summary", m.body, 1, true)
    end)
  end)
end)
