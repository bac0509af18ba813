-- ato.cron: the Lua API (parse, next, matches, zone, expression objects),
-- each class of bad expression with its message, the named DST and
-- divergence fixtures of tests/cron/fixtures.lua, and the comparison with
-- an independent implementation, cron-parser (npm, pinned in
-- tests/cron/package-lock.json, run by tests/cron/oracle.mjs).
--
-- The oracle comparison. A seeded generator (lists, ranges, steps, names,
-- seconds fields, macros) plus hand-picked expressions give >= 300
-- expressions; each is asked for its next N times after every start
-- instant of STARTS (UTC; just before the 2025/2026 DST changes of
-- America/New_York, Europe/London and Australia/Lord_Howe, whose DST is
-- 30 minutes; a summer control). cronie's semantics win where the two
-- differ, so these cases are excluded from the comparison, by reason,
-- and covered by named fixtures instead:
--   day-rule  cronie ANDs the day fields when either STARTS with '*'
--             (src/entry.c DOM_STAR/DOW_STAR); cron-parser when either is
--             exactly '*' or '?' (CronField.isWildcard). Excluded when the
--             two definitions disagree on the expression's text.
--   gap       the zone jumps forward inside the case's window (after
--             `from`, up to the later last time of the two answers) and a
--             skipped wall-clock time matches the expression: cronie runs
--             fixed-time jobs once at the jump and never replays wildcard
--             jobs (src/cron.c wakeupKind medium); cron-parser shifts
--             whole-hour gaps into the landing hour and ignores 30-minute
--             ones.
--   fold      the zone goes back inside the window (or a day before
--             `from`), a repeated wall-clock time matches, and the job is
--             a wildcard one (minute or hour starts with '*') whose hour
--             field is not '*': cronie runs it in both passes (wakeupKind
--             negative), cron-parser only in the first (its repeated-hour
--             skip, CronExpression#matchHour, is off when all 24 hours
--             are set). Fixed-time jobs in folds are compared: both run
--             them once, in the first pass.
-- "Matches a skipped/repeated wall-clock time" is decided with ato.cron in
-- UTC on the naive local interval widened to whole hours (cron-parser
-- handles DST an hour at a time, so the rest of a half-skipped Lord Howe
-- hour moves too), a path the UTC cases check against the oracle; the
-- zone changes come from the oracle side (luxon, Node's own ICU time zone
-- data), not from ato's reader. cron-parser cannot step across Lord
-- Howe's 30-minute fold at all (it returns nothing, or times before the
-- start, after its 10000-step loop limit, a second per case), so the Lord
-- Howe windows end before the April 2026 fold (the oracle's endDate; ato's
-- list is cut at the same instant) and its folds are fixtures only.
-- The generator never builds
-- what cron-parser refuses but cronie takes (repeated list values, 0 and 7
-- together, impossible dates such as 30 Feb, day-of-week ranges ending at
-- 0, @midnight, @reboot): those are fixtures too. A TAP comment reports
-- how many cases were compared and excluded per reason.
local ato = require "ato"
local cjson = require "cjson"
local cron = require "ato.cron"

local ROOT = os.getenv("PWD") or "."         -- the repository (tests run from it)
local FIXTURES = dofile(ROOT .. "/tests/cron/fixtures.lua")
local SEED = 0x0C7013                         -- the generated expressions follow from it
local N = 5                                   -- next times per case

-- {====================================================== helpers

local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * ((m + 9) % 12) + 2) // 5 + d - 1
  return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
end

--- "2025-11-02T05:30:00Z" -> epoch seconds
local function epoch(s)
  local y, mo, d, h, mi, sec = s:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)Z$")
  assert(y, "bad time " .. s)
  return days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400 +
         tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec)
end

local function iso(t) return os.date("!%Y-%m-%dT%H:%M:%SZ", t) end

local function isos(list)
  local out = {}
  for i, t in ipairs(list) do out[i] = iso(t) end
  return "{" .. table.concat(out, ", ") .. "}"
end

local function same(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

local function first(list, n)
  local out = {}
  for i = 1, math.min(#list, n or 20) do out[i] = list[i] end
  if #list > #out then out[#out + 1] = ("... and %d more"):format(#list - #out) end
  return table.concat(out, "\n")
end

local oracle_ready = false

--- Runs tests/cron/oracle.mjs on a request table; returns the answer.
local function oracle(request)
  if not oracle_ready and not ato.fs.exists(ROOT .. "/tests/cron/node_modules/cron-parser") then
    local npm = assert(ato.exec{"npm", "ci", "--prefix", ROOT .. "/tests/cron",
      "--no-audit", "--no-fund", timeout = 300})
    assert.equal(0, npm.code, "npm ci failed: " .. npm.stderr)
  end
  oracle_ready = true
  local r = assert(ato.exec{"node", ROOT .. "/tests/cron/oracle.mjs",
                            stdin = cjson.encode(request), timeout = 120})
  assert.equal(0, r.code, r.stderr)
  return cjson.decode(r.stdout)
end

-- }======================================================

describe("ato.cron", function()
  -- {====================================================== API
  describe("parse", function()
    it("returns an expression object with its normalised text and flags", function()
      local c = assert(cron.parse("  0   9 * *\tMON-Fri "))
      assert.equal("0 9 * * mon-fri", tostring(c))
      assert.is_false(c.reboot)
      assert.is_false(c.seconds)
      assert.is_false(c.wildcard)
      assert.is_true(cron.parse("*/5 * * * *").wildcard)
      assert.is_true(cron.parse("0 * * * *").wildcard)
      assert.is_true(cron.parse("@hourly").wildcard)
      assert.is_false(cron.parse("@daily").wildcard)
      assert.is_true(cron.parse("@reboot").reboot)
      assert.matches("^ato%.cron%.expr", tostring(getmetatable(c).__name))
      assert.is_nil(c.nonexistent)
    end)

    it("takes a seconds field when asked, refuses it when told, detects 6 fields", function()
      assert.is_true(assert(cron.parse("*/10 * * * * *")).seconds)
      assert.is_true(assert(cron.parse("0 0 12 * * *", {seconds = true})).seconds)
      assert.is_false(assert(cron.parse("0 12 * * *", {seconds = false})).seconds)
      local c, err = cron.parse("0 12 * * *", {seconds = true})
      assert.is_nil(c)
      assert.equal("cron: expected 6 fields (second minute hour day-of-month month day-of-week), got 5",
                   tostring(err))
      c, err = cron.parse("0 0 12 * * *", {seconds = false})
      assert.is_nil(c)
      assert.matches("expected 5 fields", tostring(err))
      assert.is_truthy(cron.parse("@weekly", {seconds = true}))
    end)

    it("rejects each class of bad expression with one line naming the field and reason", function()
      local cases = {
        {"0 0 32 * *", 'cron: field 3 (day of month) "32": out of range 1-31'},
        {"60 * * * *", 'cron: field 1 (minute) "60": out of range 0-59'},
        {"0 24 * * *", 'cron: field 2 (hour) "24": out of range 0-23'},
        {"0 0 * 13 *", 'cron: field 4 (month) "13": out of range 1-12'},
        {"0 0 * * 8", 'cron: field 5 (day of week) "8": out of range 0-7'},
        {"0 0 1-40 * *", 'cron: field 3 (day of month) "1-40": 40 out of range 1-31'},
        {"10-5 * * * *", 'cron: field 1 (minute) "10-5": reversed range'},
        {"*/0 * * * *", 'cron: field 1 (minute) "*/0": step 0'},
        {"*/ * * * *", 'cron: field 1 (minute) "*/": missing step after "/"'},
        {"1,,2 * * * *", 'cron: field 1 (minute) "1,,2": empty list item'},
        {"1- * * * *", 'cron: field 1 (minute) "1-": missing number'},
        {"0 0 * foo *", 'cron: field 4 (month) "foo": unknown name "foo" (expected jan-dec)'},
        {"0 0 * * funday", 'cron: field 5 (day of week) "funday": unknown name "funday" (expected sun-sat)'},
        {"0 0 mon * *", 'cron: field 3 (day of month) "mon": not a number'},
        {"5x * * * *", 'cron: field 1 (minute) "5x": unexpected "x"'},
        {"0 0 ? * *", 'cron: field 3 (day of month) "?": unexpected "?"'},
        {"0 0 L * *", 'cron: field 3 (day of month) "L": not a number'},
        {"0 0 * * 1#2", 'cron: field 5 (day of week) "1#2": unexpected "#2"'},
        {"* * * *", "cron: expected 5 fields (minute hour day-of-month month day-of-week) or 6 (second first), got 4"},
        {"* * * * * * *", "cron: expected 5 fields (minute hour day-of-month month day-of-week) or 6 (second first), got 7"},
        {"", "cron: empty expression"},
        {"@sometimes", "cron: unknown macro \"@sometimes\" (expected @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @reboot)"},
        {"@daily now", 'cron: unexpected "now" after @daily'},
        {"0 0 \0 * *", "cron: expression contains a NUL byte"},
        {("1,"):rep(600) .. "1 * * * *", "cron: expression longer than 1023 bytes"},
      }
      for _, case in ipairs(cases) do
        local c, err = cron.parse(case[1])
        assert.is_nil(c, case[1])
        assert.equal("invalid", err.kind)
        assert.equal(case[2], tostring(err))
        assert.is_nil(tostring(err):find("\n"))
        local list, err2 = cron.next(case[1], 0, "UTC", 1)   -- next() reports the same
        assert.is_nil(list)
        assert.equal(case[2], tostring(err2))
      end
    end)

    it("raises on misuse", function()
      assert.has_error(function() cron.parse() end)
      assert.has_error(function() cron.parse({}) end)
      assert.has_error(function() cron.parse("* * * * *", "seconds") end)
      assert.has_error(function() cron.parse("* * * * *", {seconds = "yes"}) end)
    end)
  end)

  describe("next", function()
    local t0 = epoch("2025-01-01T00:00:00Z")

    it("gives integer UTC epoch seconds strictly after from, for strings and objects", function()
      local list = assert(cron.next("*/15 * * * *", t0, "UTC", 3))
      assert.same({t0 + 900, t0 + 1800, t0 + 2700}, list)
      for _, t in ipairs(list) do assert.equal("integer", math.type(t)) end
      local c = assert(cron.parse("*/15 * * * *"))
      assert.same(list, c:next(t0, "UTC", 3))
      assert.same(list, cron.next(c, t0, "UTC", 3))
      assert.same({t0 + 900}, c:next(t0, "UTC"))                  -- n defaults to 1
      assert.same({}, c:next(t0, "UTC", 0))
      assert.same({t0 + 900}, c:next(t0 + 0.5, "UTC", 1))         -- fractions floor
      assert.same({t0 + 900}, c:next(t0 - 0.5 + 900, "UTC", 1))
      assert.same({0}, cron.next("* * * * *", -0.5, "UTC", 1))    -- floor, not truncation
      assert.equal(10000, #c:next(t0, "UTC", 10000))
    end)

    it("defaults from to now and tz to local", function()
      local now = os.time()
      local list = assert(cron.next("* * * * *"))
      assert.is_true(list[1] > now - 1 and list[1] <= now + 61 and list[1] % 60 == 0)
      local loc = assert(cron.next("0 12 * * *", t0, nil, 2))
      assert.same(loc, cron.next("0 12 * * *", t0, "local", 2))
    end)

    it("has no times for @reboot and for dates that never come", function()
      assert.same({}, cron.next("@reboot", t0, "UTC", 5))
      assert.same({}, cron.parse("@reboot"):next(t0, "UTC", 5))
      assert.same({}, cron.next("0 0 30 2 *", t0, "America/New_York", 5))
      assert.same({}, cron.next("0 0 31 4 *", t0, "UTC", 5))
    end)

    it("finds leap days, also across 2100", function()
      assert.same({epoch("2028-02-29T00:00:00Z"), epoch("2032-02-29T00:00:00Z")},
                  cron.next("0 0 29 2 *", t0, "UTC", 2))
      assert.same({epoch("2104-02-29T00:00:00Z")},
                  cron.next("0 0 29 2 *", epoch("2096-03-01T00:00:00Z"), "UTC", 1))
    end)

    it("returns nil, err for unknown and invalid zones", function()
      local list, err = cron.next("* * * * *", t0, "Mars/Base", 1)
      assert.is_nil(list)
      assert.equal("not_found", err.kind)
      assert.equal('unknown time zone "Mars/Base"', tostring(err))
      list, err = cron.next("* * * * *", t0, "../../etc/passwd", 1)
      assert.is_nil(list)
      assert.equal("invalid", err.kind)
      assert.equal('invalid time zone name "../../etc/passwd"', tostring(err))
      list, err = cron.next("* * * * *", t0, "a\0b", 1)
      assert.is_nil(list)
      assert.equal("invalid", err.kind)
    end)

    it("raises on misuse", function()
      assert.has_error(function() cron.next("* * * * *", "soon", "UTC", 1) end)
      assert.has_error(function() cron.next("* * * * *", 0 / 0, "UTC", 1) end)
      assert.has_error(function() cron.next("* * * * *", math.huge, "UTC", 1) end)
      assert.has_error(function() cron.next("* * * * *", 2 ^ 60, "UTC", 1) end)
      assert.has_error(function() cron.next("* * * * *", t0, {}, 1) end)
      assert.has_error(function() cron.next("* * * * *", t0, "UTC", -1) end)
      assert.has_error(function() cron.next("* * * * *", t0, "UTC", 100001) end)
      assert.has_error(function() cron.next("* * * * *", t0, "UTC", 1.5) end)
      assert.has_error(function() cron.next(42, t0, "UTC", 1) end)
      assert.has_error(function() cron.next(nil, t0, "UTC", 1) end)
    end)
  end)

  describe("matches", function()
    it("is true exactly at fire times, DST rule included", function()
      local c = assert(cron.parse("30 1 * * *"))
      local first_pass, second_pass = epoch("2025-11-02T05:30:00Z"), epoch("2025-11-02T06:30:00Z")
      assert.is_true(c:matches(first_pass, "America/New_York"))
      assert.is_false(c:matches(second_pass, "America/New_York"))  -- repeated 01:30
      assert.is_true(cron.matches("*/30 1 * * *", second_pass, "America/New_York"))
      assert.is_true(cron.matches("30 2 * * *", epoch("2026-03-08T07:00:00Z"), "America/New_York"))
      assert.is_true(c:matches(first_pass + 0.9, "America/New_York"))
      assert.is_false(c:matches(first_pass + 1, "America/New_York"))
      assert.is_false(cron.matches("@reboot", first_pass, "UTC"))
      local ok, err = cron.matches("0 0 0 * *", 0, "UTC")
      assert.is_nil(ok)
      assert.matches("day of month", tostring(err))
      assert.is_nil((cron.matches("* * * * *", 0, "Nowhere/Land")))
      assert.has_error(function() cron.matches("* * * * *") end)
    end)
  end)

  describe("zone", function()
    it("validates UTC, local and IANA names", function()
      assert.is_true(cron.zone("UTC"))
      assert.is_true(cron.zone("local"))
      assert.is_true(cron.zone("Australia/Lord_Howe"))
      assert.is_true(cron.zone("Australia/Lord_Howe"))             -- cached
      for _, bad in ipairs({"", "/etc/passwd", "../x", "America/../Europe/London", "a b"}) do
        local ok, err = cron.zone(bad)
        assert.is_nil(ok, bad)
        assert.equal("invalid", err.kind)
      end
      local ok, err = cron.zone("America")                        -- a directory
      assert.is_nil(ok)
      assert.equal('unknown time zone "America"', tostring(err))
      ok, err = cron.zone("zone.tab")
      assert.is_nil(ok)
      assert.equal('time zone "zone.tab": invalid TZif data (not a TZif file)', tostring(err))
      assert.has_error(function() cron.zone() end)
    end)
  end)
  -- }======================================================

  -- {====================================================== fixtures
  describe("fixtures (tests/cron/fixtures.lua)", function()
    it("give the times written out, and document real differences from cron-parser", function()
      local request, failures = {cases = {}}, {}
      for _, f in ipairs(FIXTURES) do
        request.cases[#request.cases + 1] = {expr = f.expr, from = epoch(f.from), tz = f.tz,
                                             n = math.max(#f.want, 2)}
      end
      local answer = oracle(request)
      for i, f in ipairs(FIXTURES) do
        local want = {}
        for k, s in ipairs(f.want) do want[k] = epoch(s) end
        local got, err = cron.next(f.expr, epoch(f.from), f.tz, #f.want > 0 and #f.want or 3)
        if not got then
          failures[#failures + 1] = ("%s: %s"):format(f.name, tostring(err))
        elseif not same(got, want) then
          failures[#failures + 1] = ("%s: got %s"):format(f.name, isos(got))
        end
        local o = answer.cases[i]
        local otimes = o.times or {}
        while #otimes > #want do table.remove(otimes) end
        if f.oracle == "refuses" and not o.error then
          failures[#failures + 1] = ("%s: cron-parser accepts it now: %s"):format(f.name, isos(otimes))
        elseif f.oracle == "agrees" and (o.error or not same(otimes, want)) then
          failures[#failures + 1] = ("%s: cron-parser gives %s"):format(f.name, o.error or isos(otimes))
        elseif f.oracle == "differs" and (o.error or same(otimes, want)) then
          failures[#failures + 1] = ("%s: cron-parser no longer differs (%s)"):format(f.name,
                                                                                  o.error or isos(otimes))
        end
      end
      assert(#failures == 0, first(failures))
      print(("# cron fixtures: %d named cases checked"):format(#FIXTURES))
    end)
  end)
  -- }======================================================

  -- {====================================================== the oracle
  describe("against cron-parser", function()
    -- {================================================= generator
    local seed = SEED
    local function rand(n)                       -- LCG, deterministic from SEED
      seed = (seed * 1103515245 + 12345) % 2147483648
      return (seed >> 8) % n
    end

    local MONTHS = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
    local DAYS = {[0] = "sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"}
    local MAXDAYS = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
    local FIELDS = {
      second = {lo = 0, hi = 59, star = 60},
      minute = {lo = 0, hi = 59, star = 25},
      hour = {lo = 0, hi = 23, star = 30, dst = true},
      dom = {lo = 1, hi = 31, star = 55},
      month = {lo = 1, hi = 12, star = 65, names = function(v) return MONTHS[v] end},
      dow = {lo = 0, hi = 7, star = 55, names = function(v) return DAYS[v] end},
    }

    local function show(f, v)
      if f.names and rand(3) == 0 and not (f == FIELDS.dow and v == 7) then  -- "sun" is 0
        local s = f.names(v)
        return rand(2) == 0 and s or s:upper()
      end
      return tostring(v)
    end

    -- One list item: its text and its values (7 counted as 0 for day of week).
    local function item(f)
      local a = f.lo + rand(f.hi - f.lo + 1)
      if f.dst and rand(3) == 0 then a = rand(4) end        -- hours 0-3: around DST changes
      local b = a + rand(math.min(f.hi - a, 12) + 1)
      local step = 2 + rand(math.max(1, math.min(f.hi - f.lo, 15)))
      local kind, text, lo, hi, by = rand(10)
      if kind <= 3 then text, lo, hi, by = show(f, a), a, a, 1
      elseif kind <= 5 then text, lo, hi, by = show(f, a) .. "-" .. show(f, b), a, b, 1
      elseif kind <= 7 then text, lo, hi, by = show(f, a) .. "-" .. show(f, b) .. "/" .. step, a, b, step
      elseif kind == 8 then text, lo, hi, by = "*/" .. step, f.lo, f.hi, step
      else text, lo, hi, by = a .. "/" .. step, a, f.hi, step
      end
      local values = {}
      for v = lo, hi, by do values[#values + 1] = (f == FIELDS.dow and v == 7) and 0 or v end
      return text, values
    end

    -- A field: "*" or a list of 1-3 items with no value twice (cron-parser
    -- refuses repeats); returns its text and a value set.
    local function field(f)
      if rand(100) < f.star then return "*", nil end
      local parts, seen = {}, {}
      for _ = 1, 1 + rand(3) // 2 + rand(2) do
        local text, values = item(f)
        local clash = false
        for _, v in ipairs(values) do if seen[v] then clash = true end end
        if not clash then
          for _, v in ipairs(values) do seen[v] = true end
          parts[#parts + 1] = text
        end
      end
      if #parts == 0 then return "*", nil end
      if parts[1]:sub(1, 1) == "*" and #parts > 1 then  -- "*/n" first: a star in cronie
        parts[1], parts[#parts] = parts[#parts], parts[1]
      end
      return table.concat(parts, ","), seen
    end

    -- Could the day fields never match (cron-parser refuses such dates)?
    local function impossible(dom, month, dowtext)
      if not dom or dowtext ~= "*" then return false end
      local mindom = 32
      for v in pairs(dom) do mindom = math.min(mindom, v) end
      for m = 1, 12 do
        if (not month or month[m]) and MAXDAYS[m] >= mindom then return false end
      end
      return true
    end

    local MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@hourly"}

    local function generate(count)
      local list = {}
      while #list < count do
        if rand(100) < 4 then
          list[#list + 1] = MACROS[1 + rand(#MACROS)]
        else
          local sec = rand(100) < 15 and field(FIELDS.second) or nil
          local min = field(FIELDS.minute)
          local hour = field(FIELDS.hour)
          local domt, dom = field(FIELDS.dom)
          local mont, mon = field(FIELDS.month)
          local dowt = field(FIELDS.dow)
          if not impossible(dom, mon, dowt) then
            local parts = {min, hour, domt, mont, dowt}
            if sec then table.insert(parts, 1, sec) end
            list[#list + 1] = table.concat(parts, " ")
          end
        end
      end
      return list
    end

    local HAND = {
      "* * * * *", "*/5 * * * *", "0 * * * *", "0 0 * * *", "0 9 * * 1-5", "0 9 * * mon-fri",
      "30 4 1,15 * 5", "0 0 1 * *", "0 0 1 1 *", "15 14 1 * *", "0 22 * * 1-5",
      "23 0-20/2 * * *", "5 4 * * sun", "0 0,12 1 */2 *", "0 4 8-14 * *", "0 0 1,15 * 3",
      "0 2 * * *", "30 1 * * *", "30 2 * * *", "0 1-3 * * *", "*/15 1-2 * * *", "0 */6 * * *",
      "59 23 * * *", "0 0 29 2 *", "0 0 28-31 * *", "0 8-17 * * mon-fri", "*/10 * * * * *",
      "0 30 2 * * *", "15,45 1,2 * * *", "0 0 * * 0", "0 0 * * 7", "0 12 * jan,jul *",
      "0 0 1-7 * 1", "0 0 13 * 5", "0 3 * * *", "45 2 * * 0", "*/20 2 * * *", "0 0 31 * *",
      "1 1 1 1 1", "0 0 * * 6,0", "10 * * * * *", "*/30 * 1 * *", "0 */2 * * *", "5/15 * * * *",
      "0 12 */3 * *", "0 12 * */3 *", "0 0 * * 1/2", "@weekly", "@monthly", "@hourly", "@yearly",
    }

    -- Start instants (UTC), with the zone each is used in.
    local STARTS = {
      {"UTC", "2025-01-01T00:00:00Z"}, {"UTC", "2025-06-15T12:34:56Z"},
      {"UTC", "2024-02-28T23:59:30Z"}, {"UTC", "2025-12-31T23:59:59Z"},
      {"America/New_York", "2026-03-08T05:50:00Z"},    -- 00:50 EST, the gap at 07:00Z
      {"America/New_York", "2025-11-02T04:30:00Z"},    -- 00:30 EDT, the fold at 06:00Z
      {"America/New_York", "2025-07-04T16:00:00Z"},    -- a summer control
      {"Europe/London", "2025-03-30T00:15:00Z"},       -- the gap at 01:00Z
      {"Europe/London", "2025-10-26T00:10:00Z"},       -- the fold at 01:00Z
      -- the 30-minute gap at 15:30Z; windows end before the April fold (see above)
      {"Australia/Lord_Howe", "2025-10-04T15:00:00Z", "2026-04-04T00:00:00Z"},
    }
    -- }=================================================

    -- {================================================= comparison
    local exprs, cases, mine, theirs, changes

    local function starts_with_star(s) return s:sub(1, 1) == "*" end

    local function fields_of(expr)
      local f = {}
      for w in expr:gmatch("%S+") do f[#f + 1] = w end
      return f
    end

    -- The hour field's text ("*" for @hourly, "0" for the other macros).
    local function hour_field(expr)
      if expr == "@hourly" then return "*" end
      if expr:sub(1, 1) == "@" then return "0" end
      local f = fields_of(expr)
      return f[#f - 3]
    end

    -- cronie's and cron-parser's day rules disagree on this text?
    local function day_rule_differs(expr)
      if expr:sub(1, 1) == "@" then return false end
      local f = fields_of(expr)
      local dom, dow = f[#f - 2], f[#f]
      local cronie_and = starts_with_star(dom) or starts_with_star(dow)
      local parser_and = dom == "*" or dom == "?" or dow == "*" or dow == "?"
      return cronie_and ~= parser_and
    end

    -- Does some wall-clock time in the naive local interval [lo, hi),
    -- widened to whole hours, match?
    local function slot_in(expr, lo, hi)
      lo, hi = lo - lo % 3600, hi + (3600 - hi % 3600) % 3600
      local t = assert(cron.next(expr, lo - 1, "UTC", 1))[1]
      return t ~= nil and t < hi
    end

    --- Why the case is left out of the comparison, or nil.
    local function exclusion(case, a, o)
      if day_rule_differs(case.expr) then return "day-rule" end
      local last = case.from
      for _, t in ipairs(a) do last = math.max(last, t) end
      for _, t in ipairs(o.times or {}) do last = math.max(last, t) end
      for _, ch in ipairs(changes[case.tz] or {}) do
        if ch.after > ch.before and ch.at > case.from and ch.at <= last and
           slot_in(case.expr, ch.at + ch.before, ch.at + ch.after) then
          return "gap"
        end
        if ch.after < ch.before and ch.at > case.from - 86400 and ch.at <= last and
           cron.parse(case.expr).wildcard and hour_field(case.expr) ~= "*" and
           slot_in(case.expr, ch.at + ch.after, ch.at + ch.before) then
          return "fold"
        end
      end
      return nil
    end

    --- Compares answers to the oracle's: counts and failure lines.
    local function compare(answers)
      local stats = {compared = 0, times = 0, excluded = {["day-rule"] = 0, gap = 0, fold = 0},
                     differ = {["day-rule"] = 0, gap = 0, fold = 0}}
      local failures = {}
      for i, case in ipairs(cases) do
        local a, o = answers[i], theirs.cases[i]
        local why = exclusion(case, a, o)
        if why then
          stats.excluded[why] = stats.excluded[why] + 1
          if o.error or not same(a, o.times) then stats.differ[why] = stats.differ[why] + 1 end
        elseif o.error then
          failures[#failures + 1] = ("%q in %s after %s: cron-parser refuses it: %s"):format(
            case.expr, case.tz, iso(case.from), o.error)
        elseif not same(a, o.times) then
          failures[#failures + 1] = ("%q in %s after %s: ato %s, cron-parser %s"):format(
            case.expr, case.tz, iso(case.from), isos(a), isos(o.times))
        else
          stats.compared = stats.compared + 1
          stats.times = stats.times + #a
        end
      end
      return stats, failures
    end

    setup(function()
      exprs = {}
      for _, e in ipairs(HAND) do exprs[#exprs + 1] = e end
      for _, e in ipairs(generate(300)) do exprs[#exprs + 1] = e end
      cases, mine = {}, {}
      local request = {cases = {}}
      local span = {}
      for _, e in ipairs(exprs) do
        for _, s in ipairs(STARTS) do
          local case = {expr = e, tz = s[1], from = epoch(s[2]), n = N,
                        to = s[3] and epoch(s[3]) or nil}
          local got, err = cron.next(e, case.from, case.tz, N)
          assert(got, ("%q: %s"):format(e, tostring(err)))
          while case.to and #got > 0 and got[#got] > case.to do table.remove(got) end
          cases[#cases + 1], mine[#cases + 1] = case, got
          request.cases[#request.cases + 1] = case
          local sp = span[case.tz] or {from = case.from, to = case.from}
          sp.from = math.min(sp.from, case.from)
          for _, t in ipairs(got) do sp.to = math.max(sp.to, t) end
          span[case.tz] = sp
        end
      end
      theirs = oracle(request)
      -- the zone changes over every window: up to the later of both answers
      for i, case in ipairs(cases) do
        for _, t in ipairs(theirs.cases[i].times or {}) do
          span[case.tz].to = math.max(span[case.tz].to, t)
        end
      end
      local zreq, names = {zones = {}}, {}
      for tz, sp in pairs(span) do
        if tz ~= "UTC" then
          names[#names + 1] = tz
          zreq.zones[#zreq.zones + 1] = {tz = tz, from = sp.from - 2 * 86400, to = sp.to + 86400}
        end
      end
      local zans = oracle(zreq)
      changes = {}
      for i, tz in ipairs(names) do changes[tz] = zans.zones[i] end
    end)

    it("agrees on every case outside the documented divergences", function()
      assert.is_true(#exprs >= 300)
      local stats, failures = compare(mine)
      local ex, d = stats.excluded, stats.differ
      print(("# cron oracle: %d expressions x %d start instants = %d cases; compared %d cases " ..
             "(%d times); excluded day-rule %d, gap %d, fold %d (of which really differ: %d, %d, %d)")
            :format(#exprs, #STARTS, #cases, stats.compared, stats.times, ex["day-rule"], ex.gap,
                    ex.fold, d["day-rule"], d.gap, d.fold))
      assert(#failures == 0, #failures .. " disagreements:\n" .. first(failures))
      assert.is_true(stats.compared >= 0.8 * #cases)
      -- the DST windows are really exercised: compared cases in each zone
      local per_zone = {}
      for i, case in ipairs(cases) do
        if not exclusion(case, mine[i], theirs.cases[i]) then
          per_zone[case.tz] = (per_zone[case.tz] or 0) + 1
        end
      end
      print(("# cron oracle: compared per zone: UTC %d, America/New_York %d, Europe/London %d, " ..
             "Australia/Lord_Howe %d"):format(per_zone.UTC or 0, per_zone["America/New_York"] or 0,
             per_zone["Europe/London"] or 0, per_zone["Australia/Lord_Howe"] or 0))
      for _, tz in ipairs({"UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe"}) do
        assert.is_true((per_zone[tz] or 0) >= 250, tz)
      end
      for _, tz in ipairs({"America/New_York", "Europe/London", "Australia/Lord_Howe"}) do
        assert.is_true(#changes[tz] >= (tz == "Australia/Lord_Howe" and 1 or 2),
                       tz .. " has DST changes in the windows")
      end
    end)

    it("can fail: wrong answers are caught", function()
      -- New York cases answered in UTC, and every answer a minute late
      local wrong_zone, late = {}, {}
      for i, case in ipairs(cases) do
        wrong_zone[i] = case.tz == "America/New_York" and cron.next(case.expr, case.from, "UTC", N)
                        or mine[i]
        late[i] = {}
        for k, t in ipairs(mine[i]) do late[i][k] = t + 60 end
      end
      local _, f1 = compare(wrong_zone)
      local _, f2 = compare(late)
      assert.is_true(#f1 > 100, #f1 .. " failures for the wrong zone")
      assert.is_true(#f2 > 0.8 * #cases, #f2 .. " failures for late answers")
    end)
    -- }=================================================
  end)
  -- }======================================================
end)
