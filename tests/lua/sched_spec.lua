-- ato.sched: in-process timers and cron, with the real clock on short
-- delays (order and counts, never exact timings) and with a fake clock
-- over 30 days (exact instants, DST included).
local ato = require "ato"
local sched = require "ato.sched"
local support = require "support"

local DAY = 86400

-- Waits (up to `limit` seconds) until pred() is true.
local function wait_for(pred, limit)
  local deadline = ato.now() + (limit or 5)
  while not pred() do
    if ato.now() > deadline then error("condition not met in time", 2) end
    ato.sleep(0.005)
  end
end

-- Epoch seconds of a UTC calendar time (os.time reads local time).
local function utc(y, m, d, h, mi)
  local days = 0
  for year = 1970, y - 1 do
    days = days + ((year % 4 == 0 and year % 100 ~= 0 or year % 400 == 0) and 366 or 365)
  end
  local mdays = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
  if y % 4 == 0 and y % 100 ~= 0 or y % 400 == 0 then mdays[2] = 29 end
  for i = 1, m - 1 do days = days + mdays[i] end
  days = days + d - 1
  return days * DAY + (h or 0) * 3600 + (mi or 0) * 60
end

describe("sched with the real clock", function()
  support.clean_after_each()

  it("after fires once each, in due order, and the dispatcher then ends", function()
    local order = {}
    local base = sched.pending()
    sched.after(0.03, function() order[#order + 1] = "c" end)
    sched.after(0.01, function() order[#order + 1] = "a" end)
    sched.after(0.02, function() order[#order + 1] = "b" end)
    assert.equal(base + 3, sched.pending())
    wait_for(function() return #order == 3 end)
    assert.same({"a", "b", "c"}, order)
    assert.equal(base, sched.pending())
    ato.sleep(0.01)
    assert.same({"a", "b", "c"}, order)
  end)

  it("never fires a timer before its due time", function()
    local early = 0
    local n = 0
    for i = 1, 50 do
      local due = ato.now() + i / 1000
      sched.after(i / 1000, function()
        if ato.now() < due then early = early + 1 end
        n = n + 1
      end)
    end
    wait_for(function() return n == 50 end)
    assert.equal(0, early)
  end)

  it("after(0) runs on the next loop turn, not before the arming task waits", function()
    local ran = false
    sched.after(0, function() ran = true end)
    assert.is_false(ran)
    for _ = 1, 5 do
      if ran then break end
      ato.sleep(0)
    end
    assert.is_true(ran)
  end)

  it("an earlier timer armed while the dispatcher sleeps wakes it early", function()
    local order = {}
    local long = sched.after(5, function() order[#order + 1] = "long" end)
    ato.sleep(0.01)                          -- the dispatcher now sleeps ~5 s
    local t0 = ato.now()
    sched.after(0.01, function() order[#order + 1] = "short" end)
    wait_for(function() return #order == 1 end, 2)
    assert.same({"short"}, order)
    assert.is_true(ato.now() - t0 < 2)
    assert.is_true(long:cancel())
  end)

  it("cancel before firing returns true and the callback never runs", function()
    local ran = false
    local base = sched.pending()
    local h = sched.after(0.02, function() ran = true end)
    assert.is_true(h:armed())
    assert.matches("^ato.sched.timer %(after, armed%)$", tostring(h))
    assert.is_true(h:cancel())
    assert.is_false(h:cancel())
    assert.is_false(h:armed())
    assert.equal(base, sched.pending())
    ato.sleep(0.04)
    assert.is_false(ran)
  end)

  it("cancel after firing returns false", function()
    local ran = false
    local h = sched.after(0.005, function() ran = true end)
    wait_for(function() return ran end)
    assert.is_false(h:cancel())
    assert.matches("%(after, done%)$", tostring(h))
  end)

  it("cancelling the last armed timer lets the dispatcher end at once", function()
    local h = sched.after(3600, function() end)
    ato.sleep(0.01)
    local before = #ato.tasks()
    assert.is_true(before >= 2)             -- this task and the dispatcher
    h:cancel()
    ato.sleep(0)
    ato.sleep(0)
    assert.equal(before - 1, #ato.tasks())
    -- and a new arm starts it again
    local ran = false
    sched.after(0.005, function() ran = true end)
    wait_for(function() return ran end)
  end)

  it("every fires at a fixed rate with its tick number until cancelled", function()
    local ticks = {}
    local h
    h = sched.every(0.01, function(k)
      ticks[#ticks + 1] = k
      if #ticks == 5 then h:cancel() end
    end)
    assert.matches("%(every, armed%)$", tostring(h))
    wait_for(function() return not h:armed() end)
    ato.sleep(0.03)
    assert.equal(5, #ticks)
    for i = 2, 5 do assert.is_true(ticks[i] > ticks[i - 1]) end
    assert.equal(5, h.runs)
    assert.equal(0.01, h.interval)
  end)

  it("every skips a tick that comes while its previous run is still going", function()
    local running, max_running, runs = 0, 0, 0
    local h = sched.every(0.01, function()
      running = running + 1
      if running > max_running then max_running = running end
      ato.sleep(0.035)
      running = running - 1
      runs = runs + 1
    end)
    wait_for(function() return runs >= 3 end)
    h:cancel()
    wait_for(function() return running == 0 end)
    assert.equal(1, max_running)
    assert.is_true(h.skipped >= 3, "skipped " .. h.skipped)
  end)

  it("a callback that waits does not hold up the others", function()
    local order = {}
    local c = ato.cond()
    sched.after(0.01, function() order[#order + 1] = "blocked"; c:wait(); order[#order + 1] = "released" end)
    sched.after(0.01, function() order[#order + 1] = "same ms" end)
    sched.after(0.02, function() order[#order + 1] = "later" end)
    wait_for(function() return #order == 3 end)
    assert.same({"blocked", "same ms", "later"}, order)
    c:signal()
    wait_for(function() return #order == 4 end)
    assert.equal("released", order[4])
  end)

  it("a callback that keeps yielding does not starve the next ones", function()
    local stop, others = false, 0
    sched.after(0, function() while not stop do ato.sleep(0) end end)
    sched.after(0.005, function() others = others + 1 end)
    sched.after(0.005, function() others = others + 1 end)
    wait_for(function() return others == 2 end, 2)
    stop = true
  end)

  it("100,000 timers are armed and all fire, none early, in due order", function()
    local n = 100000
    local fired, early, disorder, latest = 0, 0, 0, -1
    math.randomseed(7)
    local base = sched.pending()
    for _ = 1, n do
      local d = math.random(0, 200) / 1000
      local lo, hi = ato.now() + d, nil         -- sched's own due is in [lo, hi]
      sched.after(d, function()
        if ato.now() < lo then early = early + 1 end
        -- one due more than a millisecond before another fires first
        if hi < latest - 0.001 then disorder = disorder + 1 end
        if lo > latest then latest = lo end
        fired = fired + 1
      end)
      hi = ato.now() + d
    end
    assert.equal(base + n, sched.pending())
    wait_for(function() return fired == n end, 20)
    assert.equal(0, early)
    assert.equal(0, disorder)
    assert.equal(base, sched.pending())
  end)

  it("cron fires at whole seconds of the wall clock with the time it was due for", function()
    local seen = {}
    local h = sched.cron("* * * * * *", function(t)
      seen[#seen + 1] = {t = t, now = ato.time()}
    end, {tz = "UTC"})
    assert.equal("cron", h.kind)
    assert.equal("UTC", h.tz)
    assert.equal(math.type(h.due), "integer")
    wait_for(function() return #seen >= 2 end, 4)
    h:cancel()
    assert.equal(seen[1].t + 1, seen[2].t)
    for _, s in ipairs(seen) do assert.is_true(s.now >= s.t) end
  end)

  it("@reboot runs once on the next loop turn", function()
    local runs = 0
    local h = sched.cron("@reboot", function() runs = runs + 1 end)
    wait_for(function() return runs == 1 end)
    ato.sleep(0.01)
    assert.equal(1, runs)
    assert.is_false(h:armed())
  end)

  it("a cron expression with no time ahead is never armed", function()
    local base = sched.pending()
    local h = sched.cron("0 0 30 2 *", function() end, {tz = "UTC"})
    assert.is_false(h:armed())
    assert.equal(base, sched.pending())
  end)
end)

describe("sched processes", function()
  support.clean_after_each()

  it("a script whose timers all fired ends by itself with status 0", function()
    local t0 = ato.now()
    local r = support.ato({"-e", [[
      local sched = require "ato.sched"
      sched.after(0.05, function() print("fired") end)
      print("armed")]]}, {timeout = 10})
    assert.equal(0, r.code, r.stderr)
    assert.equal("armed\nfired\n", r.stdout)
    assert.is_true(ato.now() - t0 < 5)
  end)

  it("a script whose timers were all cancelled ends at once", function()
    local t0 = ato.now()
    local r = support.ato({"-e", [[
      local sched = require "ato.sched"
      local ato = require "ato"
      local h = sched.after(3600, function() print("never") end)
      local e = sched.every(60, function() print("never") end)
      ato.sleep(0.01)
      h:cancel()
      e:cancel()
      print("cancelled")]]}, {timeout = 10})
    assert.equal(0, r.code, r.stderr)
    assert.equal("cancelled\n", r.stdout)
    assert.is_true(ato.now() - t0 < 5)
  end)

  it("a failing callback is logged and stops neither the others nor the process", function()
    local r = support.ato({"--log-format", "json", "-e", [[
      local sched = require "ato.sched"
      sched.after(0.01, function() error("boom") end)
      sched.after(0.02, function() print("second") end)
      sched.after(0.015, function() error(require("ato").err("cancelled", "self-made")) end)
      local n, h = 0, nil
      h = sched.every(0.005, function(k)
        n = n + 1
        if n == 3 then h:cancel(); print("every ran " .. n) end
        error("tick " .. k)
      end)]]}, {timeout = 10})
    assert.equal(0, r.code, r.stderr)
    assert.matches("second\n", r.stdout)
    assert.matches("every ran 3\n", r.stdout)
    assert.matches("timer callback failed", r.stderr)
    assert.matches("boom", r.stderr)
    assert.matches("tick 3", r.stderr)
    assert.matches("self%-made", r.stderr)   -- a cancellation it raised itself
    local lines = 0
    for _ in r.stderr:gmatch("timer callback failed") do lines = lines + 1 end
    assert.equal(5, lines)
  end)

  it("a timer keeps a waiting main task alive: no false deadlock", function()
    local r = support.ato({"-e", [[
      local ato = require "ato"
      local sched = require "ato.sched"
      local c = ato.cond()
      sched.after(0.02, function() c:signal() end)
      c:wait()
      print("woken")]]}, {timeout = 10})
    assert.equal(0, r.code, r.stderr)
    assert.equal("woken\n", r.stdout)
  end)
end)

describe("sched misuse and sched.next", function()
  support.clean_after_each()

  local function f() end

  it("rejects bad delays and callbacks, naming the argument", function()
    for _, bad in ipairs({-1, 0 / 0, math.huge, "1", {}}) do
      assert.has_error(function() sched.after(bad, f) end)
    end
    assert.has_error(function() sched.every(0, f) end)
    assert.has_error(function() sched.every(-1, f) end)
    local ok, err = pcall(function() sched.after(-1, f) end)
    assert.is_false(ok)
    assert.matches("sched_spec.lua:%d+: bad argument #1 to 'after' %(finite seconds >= 0", err)
    ok, err = pcall(sched.after, 1, 42)
    assert.matches("bad argument #2 to 'after' %(function expected, got number%)", err)
    ok, err = pcall(sched.every, 1, nil)
    assert.matches("bad argument #2 to 'every'", err)
    assert.has_error(function() sched.cron(42, f) end)
    assert.has_error(function() sched.cron("* * * * *", "f") end)
    assert.has_error(function() sched.cron("* * * * *", f, "UTC") end)
    assert.has_error(function() sched.use_clock({}) end)
    assert.equal(0, sched.pending(sched.fake_clock(0)))
  end)

  it("a bad cron expression or zone raises with the field and the reason", function()
    local ok, err = pcall(sched.cron, "0 9 32 * *", f)
    assert.is_false(ok)
    assert.matches("field 3 %(day of month%)", err)
    assert.matches("32", err)
    assert.matches("out of range", err)
    ok, err = pcall(sched.cron, "0 9 * *", f)
    assert.is_false(ok)
    assert.matches("cron", err)
    ok, err = pcall(sched.cron, "0 9 * * *", f, {tz = "Mars/Olympus_Mons"})
    assert.is_false(ok)
    assert.matches("Mars/Olympus_Mons", err)
  end)

  it("next gives the next n fire times, or nil and the error", function()
    local from = utc(2024, 3, 29, 12)
    local list = sched.next("0 9 * * *", from, "Europe/London", 3)
    assert.same({utc(2024, 3, 30, 9), utc(2024, 3, 31, 8), utc(2024, 4, 1, 8)}, list)
    local none, err = sched.next("61 * * * *", from, "UTC")
    assert.is_nil(none)
    assert.matches("field 1 %(minute%)", tostring(err))
    local _, zerr = sched.next("* * * * *", from, "Nowhere/Atall")
    assert.matches("Nowhere/Atall", tostring(zerr))
    assert.same({}, sched.next("@reboot", from, "UTC", 2))
    -- from defaults to the clock in use: a fake clock moves it
    local fake = sched.fake_clock(utc(2030, 1, 1))
    local prev = sched.use_clock(fake)
    local ok, got = pcall(sched.next, "0 0 * * *", nil, "UTC")
    sched.use_clock(prev)
    assert.is_true(ok)
    assert.same({utc(2030, 1, 2)}, got)
  end)
end)

describe("sched with a fake clock", function()
  support.clean_after_each()
  local prev
  before_each(function() prev = sched.clock() end)
  after_each(function() sched.use_clock(prev) end)

  it("use_clock swaps the clock and gives back the previous one", function()
    local fake = sched.fake_clock(1000)
    local real = sched.use_clock(fake)
    assert.equal(prev, real)
    assert.equal(fake, sched.clock())
    assert.equal(1000, fake:now())
    assert.equal(1000, fake:mono())
    assert.matches("fake", tostring(fake))
    assert.equal(fake, sched.use_clock(real))
  end)

  it("after fires at its own instants, each seeing its due time as now", function()
    local fake = sched.fake_clock(1000)
    sched.use_clock(fake)
    local seen = {}
    sched.after(29 * DAY, function() seen[#seen + 1] = {"c", fake:now()} end)
    sched.after(10, function() seen[#seen + 1] = {"b", fake:now()} end)
    sched.after(0, function() seen[#seen + 1] = {"a", fake:now()} end)
    assert.equal(3, sched.pending())
    assert.equal(1, fake:advance(0))
    assert.same({{"a", 1000}}, seen)
    local t0 = ato.now()
    assert.equal(2, fake:advance(30 * DAY))
    assert.is_true(ato.now() - t0 < 1)
    assert.same({{"a", 1000}, {"b", 1010}, {"c", 1000 + 29 * DAY}}, seen)
    assert.equal(1000 + 30 * DAY, fake:now())
    assert.equal(0, sched.pending())
  end)

  it("every(3600) over 30 days fires 720 times at t0 + k*3600", function()
    local t0 = utc(2024, 3, 1)
    local fake = sched.fake_clock(t0)
    sched.use_clock(fake)
    local n, wrong = 0, 0
    local h = sched.every(3600, function(k)
      n = n + 1
      if k ~= n or fake:now() ~= t0 + k * 3600 then wrong = wrong + 1 end
    end)
    local started = ato.now()
    assert.equal(720, fake:advance(30 * DAY))
    assert.is_true(ato.now() - started < 1, "took " .. (ato.now() - started) .. " s")
    assert.equal(720, n)
    assert.equal(0, wrong)
    assert.equal(720, h.runs)
    assert.equal(0, h.skipped + h.missed)
    assert.equal(t0 + 721 * 3600, h.due)
    assert.is_true(h:cancel())
    assert.equal(0, fake:advance(DAY))
    assert.equal(720, n)
  end)

  it("a daily 09:00 Europe/London cron fires 30 times over 30 days across the DST change", function()
    local t0 = utc(2024, 3, 15)               -- BST starts Sunday 31 March 2024
    local fake = sched.fake_clock(t0)
    sched.use_clock(fake)
    local fires, not_now = {}, 0
    local h = sched.cron("0 9 * * *", function(t)
      fires[#fires + 1] = t
      if fake:now() ~= t then not_now = not_now + 1 end  -- its fire time is now
    end, {tz = "Europe/London"})
    assert.equal("0 9 * * *", h.expr)
    local started = ato.now()
    assert.equal(30, fake:advance(30 * DAY))
    assert.is_true(ato.now() - started < 1)
    local expected = {}
    for i = 0, 29 do
      local day = t0 + i * DAY
      local bst = day >= utc(2024, 3, 31)
      expected[#expected + 1] = day + 9 * 3600 - (bst and 3600 or 0)
    end
    assert.same(expected, fires)
    assert.equal(0, not_now)
    assert.equal(utc(2024, 4, 14, 8), h.due)
    h:cancel()
  end)

  it("a cron in New York crossing the autumn change fires once a day, never twice", function()
    local t0 = utc(2024, 10, 20)              -- EDT ends Sunday 3 November 2024
    local fake = sched.fake_clock(t0)
    sched.use_clock(fake)
    local fires = {}
    local h = sched.cron("30 1 * * *", function(t) fires[#fires + 1] = t end, {tz = "America/New_York"})
    fake:advance(30 * DAY)
    h:cancel()
    assert.equal(30, #fires)
    for i = 2, #fires do
      local gap = fires[i] - fires[i - 1]
      assert.is_true(gap == DAY or gap == DAY + 3600, "gap " .. gap)
    end
    -- 01:30 EDT = 05:30 UTC before, 01:30 EST = 06:30 UTC after
    assert.equal(utc(2024, 10, 20, 5, 30), fires[1])
    assert.equal(utc(2024, 11, 3, 5, 30), fires[15])
    assert.equal(utc(2024, 11, 4, 6, 30), fires[16])
  end)

  it("every skips ticks while its run is still going, then runs again", function()
    local fake = sched.fake_clock(0)
    sched.use_clock(fake)
    local c = ato.cond()
    local runs, running, max_running = 0, 0, 0
    local h = sched.every(10, function()
      runs = runs + 1
      running = running + 1
      max_running = math.max(max_running, running)
      if runs == 1 then c:wait() end         -- the first run waits for us
      running = running - 1
    end)
    fake:advance(35)                          -- ticks at 10 (runs), 20, 30
    assert.equal(1, runs)
    assert.equal(2, h.skipped)
    c:signal()
    ato.sleep(0)
    fake:advance(10)                          -- tick at 40 runs
    assert.equal(2, runs)
    assert.equal(1, max_running)
    assert.equal(2, h.skipped)
    h:cancel()
  end)

  it("a cron run still going at the next fire time skips it", function()
    local fake = sched.fake_clock(utc(2024, 1, 1))
    sched.use_clock(fake)
    local c = ato.cond()
    local runs = 0
    local h = sched.cron("*/5 * * * *", function()
      runs = runs + 1
      if runs == 1 then c:wait() end
    end, {tz = "UTC"})
    fake:advance(3600)
    assert.equal(1, runs)
    assert.equal(11, h.skipped)
    c:signal()
    ato.sleep(0)
    fake:advance(300)
    assert.equal(2, runs)
    h:cancel()
  end)

  it("lets each step's callbacks finish before the next step", function()
    local fake = sched.fake_clock(0)
    sched.use_clock(fake)
    local log = {}
    for i = 1, 3 do
      sched.after(i, function()
        for _ = 1, 10 do ato.sleep(0) end
        log[#log + 1] = i .. "@" .. fake:now()
      end)
    end
    fake:advance(5)
    assert.same({"1@1", "2@2", "3@3"}, log)
  end)

  it("timers stay on the clock they were armed on", function()
    local a, b = sched.fake_clock(0), sched.fake_clock(0)
    sched.use_clock(a)
    local fired = {}
    sched.after(5, function() fired[#fired + 1] = "a" end)
    sched.use_clock(b)
    sched.after(5, function() fired[#fired + 1] = "b" end)
    assert.equal(1, sched.pending(a))
    assert.equal(1, sched.pending(b))
    assert.equal(1, sched.pending())
    b:advance(10)
    assert.same({"b"}, fired)
    a:advance(10)
    assert.same({"b", "a"}, fired)
  end)

  it("set moves forward like advance, and backward without firing", function()
    local fake = sched.fake_clock(100)
    sched.use_clock(fake)
    local fired = 0
    sched.after(50, function() fired = fired + 1 end)
    assert.equal(0, fake:set(120))
    assert.equal(0, fake:set(10))
    assert.equal(10, fake:now())
    assert.equal(0, fake:set(149))
    assert.equal(1, fake:set(150))
    assert.equal(1, fired)
    assert.has_error(function() fake:advance(-1) end)
  end)

  it("callbacks may arm further timers, which fire within the same advance", function()
    local fake = sched.fake_clock(0)
    sched.use_clock(fake)
    local seen = {}
    local function chain(i)
      seen[#seen + 1] = fake:now()
      if i < 5 then sched.after(60, function() chain(i + 1) end) end
    end
    sched.after(60, function() chain(1) end)
    fake:advance(3600)
    assert.same({60, 120, 180, 240, 300}, seen)
  end)

  it("cancelled timers are dropped, the armed ones still fire", function()
    local fake = sched.fake_clock(0)
    sched.use_clock(fake)
    local handles, fired = {}, 0
    for i = 1, 30000 do
      handles[i] = sched.after(i % 3600 + 1, function() fired = fired + 1 end)
    end
    for i = 1, 30000 do
      if i % 6 ~= 0 then assert.is_true(handles[i]:cancel()) end
    end
    assert.equal(5000, sched.pending())
    assert.equal(5000, fake:advance(3600))
    assert.equal(5000, fired)
    assert.equal(0, sched.pending())
  end)
end)
