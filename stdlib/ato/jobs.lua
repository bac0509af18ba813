-- ato.jobs: durable jobs in the state store (ato.store), run by
-- `ato daemon` (ato.daemon). A job is a script with arguments and a
-- schedule; the daemon starts each due occurrence as a child `ato run`
-- process and records it in the runs table.
--
--   local jobs = require "ato.jobs"
--   jobs.add{name = "rewarm-acme", cron = "0 9 * * *", tz = "Europe/London",
--            script = "scripts/rewarm.lua", args = {"acme"}, timeout = 3600,
--            attempts = 3, backoff = 300}
--   jobs.add{name = "watch", every = "1h", script = "scripts/watch.lua"}
--   jobs.add{name = "follow-up", at = "+2d", script = "scripts/check.lua"}
--   for _, j in ipairs(jobs.list()) do print(j.name, j.next_due) end
--
-- Schedules: cron (5 fields, or 6 with seconds; ato.cron's semantics,
-- which are cronie's) with an optional tz (UTC, local or an IANA name);
-- every (a duration: 90, "90s", "5m", "2h", "1d", "1h30m"), counted from
-- when the job was added; at (once: "+DURATION", epoch seconds, or ISO 8601
-- "2026-12-01T09:00:00Z" / "...+01:00"; without an offset, in tz).
--
-- Options: overlap ("skip": an occurrence due while the previous run still
-- runs is recorded skipped; "queue": it waits and runs after), missed
-- (after downtime: "none" skips what was missed, "one" (default) runs it
-- once, "all" runs each missed occurrence up to missed_cap, default 10),
-- timeout (a duration: the run's process group is stopped after it),
-- attempts (runs of one occurrence, default 1) with backoff (first retry
-- delay, doubling; default 60 s), env_file (KEY=VALUE lines given to the
-- job's environment; for secrets: never logged).
--
-- Every function returns nil, err for expected failures (kinds: invalid,
-- not_found, exists, and the store's); misuse raises.
local ato = require "ato"
local cjson = require "cjson"
local calendar = require "ato.calendar"
local store_mod = require "ato.store"

local M = {}

local json = cjson.new()
json.encode_number_precision(14)    -- the most lua-cjson keeps: hence the whole seconds below

-- {====================================================== time and the clock

--- The clock: wall-clock epoch seconds, and how fast it runs against
--- real time (speed). ATO_FAKE_CLOCK="START[:SPEED[:ANCHOR]]" makes it
--- read START at the real epoch time ANCHOR (default: when the process
--- started) and run SPEED times faster (default 1), so a test can run a
--- 30-day schedule in seconds; processes given the same value (two
--- daemons, the jobs they start) share one fake time.
local function make_clock()
  local spec = os.getenv("ATO_FAKE_CLOCK")
  if spec and spec ~= "" then
    local fields = {}
    for f in (spec .. ":"):gmatch("([^:]*):") do fields[#fields + 1] = f end
    local start, speed, anchor = tonumber(fields[1]), tonumber(fields[2] or "1"), tonumber(fields[3] or "")
    if not start or not speed or speed <= 0 or #fields > 3 or (fields[3] and not anchor) then
      error(("ATO_FAKE_CLOCK='%s': expected START[:SPEED[:ANCHOR]] (epoch seconds, factor, epoch seconds)")
        :format(spec), 0)
    end
    anchor = anchor or ato.time()
    return {now = function() return start + (ato.time() - anchor) * speed end, speed = speed, fake = true}
  end
  return {now = function() return ato.time() end, speed = 1}
end
M.clock = make_clock()

local UNITS = {s = 1, m = 60, h = 3600, d = 86400, w = 604800}

--- Seconds in a duration: a number, "90", "90s", "5m", "1h30m", "2d";
--- zero only when allow_zero (an `at` of "+0s" means now).
function M.duration(v, allow_zero)
  if type(v) == "number" then
    if (v > 0 or (allow_zero and v == 0)) and v < math.huge then return v end
    return nil, ato.err("invalid", "duration must be a positive number of seconds")
  end
  if type(v) ~= "string" then return nil, ato.err("invalid", "duration expected") end
  local plain = tonumber(v)
  if plain then return M.duration(plain, allow_zero) end
  local total, rest = 0, v
  while rest ~= "" do
    local n, unit, tail = rest:match("^(%d+%.?%d*)([smhdw])(.*)$")
    if not n then
      return nil, ato.err("invalid", ("bad duration '%s' (like 90, 90s, 5m, 1h30m, 2d)"):format(v))
    end
    total, rest = total + tonumber(n) * UNITS[unit], tail
  end
  if total < 0 or (total == 0 and not allow_zero) then
    return nil, ato.err("invalid", ("bad duration '%s': must be positive"):format(v))
  end
  return total
end

local function cron()
  return require "ato.cron"
end

--- Epoch seconds of an `at` time (see the top), or nil, err.
function M.parse_time(v, tz, now)
  now = now or M.clock.now()
  if type(v) == "number" then return v end
  if type(v) ~= "string" then return nil, ato.err("invalid", "time expected") end
  if v:sub(1, 1) == "+" then
    local d, err = M.duration(v:sub(2), true)
    if not d then return nil, err end
    return now + d
  end
  if tonumber(v) then return tonumber(v) end
  local y, mo, d, h, mi, rest = v:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[T ](%d%d):(%d%d)(.*)$")
  if not y then
    return nil, ato.err("invalid", ("bad time '%s' (+DURATION, epoch seconds, or 2026-12-01T09:00[:00][Z|+01:00])"):format(v))
  end
  local sec, zone = rest:match("^:(%d%d)(.*)$")
  if not sec then sec, zone = "0", rest end
  y, mo, d, h, mi, sec = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(sec)
  if mo < 1 or mo > 12 or d < 1 or d > 31 or h > 23 or mi > 59 or sec > 59 then
    return nil, ato.err("invalid", ("bad time '%s': a field is out of range"):format(v))
  end
  local base = calendar.utc(y, mo, d, h, mi, sec)
  if zone == "Z" then return base end
  local sign, oh, om = zone:match("^([+-])(%d%d):?(%d%d)$")
  if sign then
    local off = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "+" and 1 or -1)
    return base - off
  end
  if zone ~= "" then return nil, ato.err("invalid", ("bad time zone suffix in '%s'"):format(v)) end
  -- a wall-clock time in tz: the cron engine maps it (gaps and folds too)
  local expr = ("%d %d %d %d %d *"):format(sec, mi, h, d, mo)
  local list, err = cron().next(expr, base - 3 * 86400, tz or "local", 1)
  if not list then return nil, ato.err("invalid", tostring(err)) end
  if not list[1] or list[1] > base + 3 * 86400 then
    return nil, ato.err("invalid", ("time '%s' does not exist in %s"):format(v, tz or "local"))
  end
  return list[1]
end

-- }======================================================

-- {====================================================== definitions

local OVERLAP = {skip = true, queue = true}
local MISSED = {none = true, one = true, all = true}

local function invalid(fmt, ...)
  return nil, ato.err("invalid", fmt:format(...))
end

-- The schedule part of a definition: {kind =, expr/seconds/time =, tz =}.
local function schedule_of(def, now)
  local n = (def.cron and 1 or 0) + (def.every and 1 or 0) + (def.at and 1 or 0)
  if n ~= 1 then return invalid("give exactly one of cron, every, at") end
  if def.tz ~= nil then
    if type(def.tz) ~= "string" then return invalid("tz must be a string") end
    local ok, err = cron().zone(def.tz)
    if not ok then return nil, ato.err("invalid", tostring(err)) end
  end
  if def.cron then
    if type(def.cron) ~= "string" then return invalid("cron must be a string") end
    local c, err = cron().parse(def.cron)
    if not c then return nil, ato.err("invalid", tostring(err)) end
    return {kind = "cron", expr = def.cron, tz = def.tz or "UTC"}
  elseif def.every then
    local s, err = M.duration(def.every)
    if not s then return nil, err end
    -- whole seconds: the schedule goes through JSON, and exact integers keep
    -- every occurrence's time identical however it is computed
    return {kind = "every", seconds = s, anchor = math.floor(now)}
  end
  local t, err = M.parse_time(def.at, def.tz, now)
  if not t then return nil, err end
  return {kind = "at", time = math.floor(t)}
end

local function options_of(def)
  local o = {overlap = def.overlap or "skip", missed = def.missed or "one",
             missed_cap = def.missed_cap or 10, attempts = def.attempts or 1}
  if not OVERLAP[o.overlap] then return invalid("overlap must be skip or queue, not %s", tostring(o.overlap)) end
  if not MISSED[o.missed] then return invalid("missed must be none, one or all, not %s", tostring(o.missed)) end
  if math.type(o.missed_cap) ~= "integer" or o.missed_cap < 1 then return invalid("missed_cap must be an integer >= 1") end
  if math.type(o.attempts) ~= "integer" or o.attempts < 1 then return invalid("attempts must be an integer >= 1") end
  local err
  if def.timeout ~= nil then
    o.timeout, err = M.duration(def.timeout)
    if not o.timeout then return nil, err end
  end
  o.backoff, err = M.duration(def.backoff or 60)
  if not o.backoff then return nil, err end
  if def.env_file ~= nil then
    if type(def.env_file) ~= "string" or def.env_file == "" then return invalid("env_file must be a path") end
    o.env_file = def.env_file
  end
  return o
end

local function command_of(def)
  if type(def.script) ~= "string" or def.script == "" then return invalid("script (a path) is required") end
  local args = def.args or {}
  if type(args) ~= "table" then return invalid("args must be a list of strings") end
  for i, a in ipairs(args) do
    if type(a) ~= "string" and type(a) ~= "number" then return invalid("args[%d] must be a string", i) end
    args[i] = tostring(a)
  end
  local script = def.script
  if script:sub(1, 1) ~= "/" then                -- the daemon may run elsewhere
    script = (os.getenv("PWD") or ".") .. "/" .. script
  end
  return {script = script, args = args}
end

--- The first due time of schedule strictly after `after`, or nil.
function M.next_due(sched, after)
  if sched.kind == "cron" then
    local list = cron().next(sched.expr, after, sched.tz, 1)
    return list and list[1] or nil
  elseif sched.kind == "every" then
    local k = math.floor((after - sched.anchor) / sched.seconds) + 1
    if k < 1 then k = 1 end
    -- (anchor + k*s) - anchor may round below k*s: step past `after` for sure
    while sched.anchor + k * sched.seconds <= after do k = k + 1 end
    return sched.anchor + k * sched.seconds
  end
  return sched.time > after and sched.time or nil
end

-- }======================================================

-- {====================================================== storage

local function open_store(opts)
  if opts and opts.store then return opts.store end
  return store_mod.default()
end

local function decode_job(row)
  local j = {name = row.name, schedule = json.decode(row.schedule), paused = row.paused == 1,
             next_due = row.next_due, last_slot = row.last_slot, created_at = row.created_at,
             updated_at = row.updated_at}
  local c, o = json.decode(row.command), json.decode(row.options)
  j.script, j.args, j.options = c.script, c.args, o
  return j
end
M.decode_row = decode_job             -- for the daemon, which reads rows in bulk

--- jobs.add(def [, {store =, replace = true}]) -> job | nil, err
function M.add(def, opts)
  if type(def) ~= "table" then error("bad argument #1 to 'add' (table expected)", 2) end
  if type(def.name) ~= "string" or not def.name:match("^[%w][%w._-]*$") or #def.name > 128 then
    return invalid("name must be letters, digits, '.', '_' or '-' (got %s)", tostring(def.name))
  end
  local s, err = open_store(opts)
  if not s then return nil, err end
  local now = M.clock.now()
  local sched, o, c
  sched, err = schedule_of(def, now)
  if not sched then return nil, err end
  o, err = options_of(def)
  if not o then return nil, err end
  c, err = command_of(def)
  if not c then return nil, err end
  local first = M.next_due(sched, now - (sched.kind == "at" and 1 or 0))
  local replace = (opts and opts.replace) or def.replace
  local verb = replace and "INSERT OR REPLACE" or "INSERT"
  local rows
  rows, err = s:exec(verb .. " INTO jobs (name, schedule, command, options, paused, next_due, last_slot,"
    .. " created_at, updated_at) VALUES (?1, ?2, ?3, ?4, 0, ?5, NULL, ?6, ?6)",
    def.name, json.encode(sched), json.encode(c), json.encode(o), first, now)
  if not rows then
    if err.kind == "constraint" then
      return nil, ato.err("exists", ("job '%s' exists (remove it first, or replace = true)"):format(def.name))
    end
    return nil, err
  end
  s:audit{action = "job.add", target = def.name, actor = os.getenv("USER"),
          details = {schedule = sched, script = c.script}}
  -- what was just written, without reading it back (adding is a batch's hot path)
  return {name = def.name, schedule = sched, script = c.script, args = c.args, options = o, paused = false,
          next_due = first, created_at = now, updated_at = now}
end

--- jobs.get(name) -> job | nil (nil, err on a store failure)
function M.get(name, opts)
  local s, err = open_store(opts)
  if not s then return nil, err end
  local rows
  rows, err = s:exec("SELECT * FROM jobs WHERE name = ?1", name)
  if not rows then return nil, err end
  return rows[1] and decode_job(rows[1]) or nil
end

--- jobs.list() -> jobs by name, each with its last run (status, ended_at)
function M.list(opts)
  local s, err = open_store(opts)
  if not s then return nil, err end
  local rows
  rows, err = s:exec([[SELECT j.*, r.status AS last_status, r.ended_at AS last_ended
    FROM jobs j LEFT JOIN runs r ON r.id = (SELECT max(id) FROM runs WHERE job = j.name AND status NOT IN ('queued'))
    ORDER BY j.name]])
  if not rows then return nil, err end
  for i, r in ipairs(rows) do
    local j = decode_job(r)
    j.last_status, j.last_ended = r.last_status, r.last_ended
    rows[i] = j
  end
  return rows
end

local function update(name, opts, sql, action, ...)
  local s, err = open_store(opts)
  if not s then return nil, err end
  local rows, info = s:exec(sql, name, ...)
  if not rows then return nil, info end
  if info.changes == 0 then return nil, ato.err("not_found", ("no job '%s'"):format(name)) end
  s:audit{action = action, target = name, actor = os.getenv("USER")}
  return true
end

function M.remove(name, opts)
  return update(name, opts, "DELETE FROM jobs WHERE name = ?1", "job.remove")
end

function M.pause(name, opts)
  return update(name, opts, "UPDATE jobs SET paused = 1, updated_at = ?2 WHERE name = ?1", "job.pause",
                M.clock.now())
end

--- Resuming does not replay what was due while paused: the next
--- occurrence is computed from now.
function M.resume(name, opts)
  local j, err = M.get(name, opts)
  if not j then return nil, err or ato.err("not_found", ("no job '%s'"):format(name)) end
  local now = M.clock.now()
  return update(name, opts, "UPDATE jobs SET paused = 0, next_due = ?2, updated_at = ?3 WHERE name = ?1",
                "job.resume", M.next_due(j.schedule, now - (j.schedule.kind == "at" and 1 or 0)) or j.next_due, now)
end

--- jobs.run(name) -> run id: an extra run, now, queued for the daemon.
function M.run(name, opts)
  local s, err = open_store(opts)
  if not s then return nil, err end
  local j
  j, err = M.get(name, opts)
  if not j then return nil, err or ato.err("not_found", ("no job '%s'"):format(name)) end
  local now = M.clock.now()
  local rows, info = s:exec("INSERT INTO runs (job, slot, attempt, status, due) VALUES (?1, ?2, 1, 'queued', ?2)",
                            name, now)
  if not rows then return nil, info end
  s:audit{action = "job.run", target = name, actor = os.getenv("USER")}
  return info.last_id
end

--- jobs.history(name [, limit]) -> runs, newest first
function M.history(name, limit, opts)
  local s, err = open_store(opts)
  if not s then return nil, err end
  return s:exec("SELECT id, job, slot, attempt, status, due, owner, claimed_at, started_at, ended_at,"
    .. " exit_code, signal, output, error FROM runs WHERE job = ?1 ORDER BY id DESC LIMIT ?2", name, limit or 20)
end

-- }======================================================

return M
