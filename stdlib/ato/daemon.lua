-- ato.daemon: `ato daemon`, which runs the durable jobs of ato.jobs.
--
-- Each due occurrence is first CLAIMED: in one IMMEDIATE transaction the
-- daemon re-reads the job, inserts the run (job, slot, attempt) -- unique,
-- so a second daemon on the same database cannot claim it again -- with a
-- lease (owner, lease_until), and moves the job's next_due on. Only then is
-- the run started, as a child `ato run SCRIPT ARGS...` in its own process
-- group (a crash or a leak in a job cannot take the daemon down), its
-- output appended to RUNS_DIR/<run id>.log and its last 64 KiB kept in the
-- run record. The daemon renews its leases while runs go on. A run whose
-- lease expired, or whose daemon on this host is gone, is STALE: it is
-- marked interrupted (its orphaned process group, if still alive on this
-- host, is stopped first, so a job never runs twice at once) and retried.
--
-- Policies (ato.jobs): overlap skip|queue, missed none|one|all (with a
-- cap), timeout, attempts with exponential backoff. An interrupted run is
-- retried even with attempts = 1 (the interruption was not the job's
-- doing), up to 3 interruptions.
--
-- Signals: SIGTERM or SIGINT stop claiming, wait up to the grace period
-- for running jobs, then stop them (recorded interrupted, and queued to
-- run again on the next start); a second signal exits at once. SIGHUP, like
-- any change made with `ato jobs`, is picked up without a restart (the
-- database is read again at least every poll interval).
--
-- --listen 127.0.0.1:PORT serves /healthz and /metrics (Prometheus text).
local ato = require "ato"
local cjson = require "cjson"
local log = require "ato.log"
local redact = require "ato.redact"
local jobs = require "ato.jobs"
local store_mod = require "ato.store"

local M = {}

local OUTPUT_TAIL = 64 * 1024
local MAX_INTERRUPTIONS = 3
local OPEN = "('claimed', 'running')"

-- {====================================================== helpers

local function hostname()
  local f = io.open("/proc/sys/kernel/hostname")
  local h = f and f:read("l") or "localhost"
  if f then f:close() end
  return h
end

-- This process's pid (the parent of a child shell is us).
local function self_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("l"):match("^(%d+)")
  f:close()
  return tonumber(pid)
end

local function pid_alive(pid)
  return pid and ato.fs.exists("/proc/" .. pid) or false
end

-- The last `n` bytes of a file, or "".
local function tail(path, n)
  local f = io.open(path, "rb")
  if not f then return "" end
  local size = f:seek("end")
  f:seek("set", size > n and size - n or 0)
  local s = f:read("a") or ""
  f:close()
  return s
end

-- KEY=VALUE lines (blank lines and # comments skipped, optional quotes).
local function read_env_file(path)
  local f, err = io.open(path)
  if not f then return nil, ato.err("not_found", "env_file: " .. tostring(err)) end
  local env, n = {}, 0
  for line in f:lines() do
    n = n + 1
    if not line:match("^%s*$") and not line:match("^%s*#") then
      local k, v = line:match("^%s*export%s+([%w_]+)=(.*)$")
      if not k then k, v = line:match("^%s*([%w_]+)=(.*)$") end
      if not k then
        f:close()
        return nil, ato.err("invalid", ("env_file %s:%d: expected KEY=VALUE"):format(path, n))
      end
      v = v:match('^"(.*)"$') or v:match("^'(.*)'$") or v
      env[k] = v
    end
  end
  f:close()
  return env
end

-- }======================================================

-- {====================================================== the daemon object

local Daemon = {}
Daemon.__index = Daemon

local function new_daemon(opts)
  local d = setmetatable({}, Daemon)
  d.store = assert(opts.store)
  d.clock = jobs.clock
  d.lease = opts.lease or 30
  d.grace = opts.grace or 30
  d.poll = opts.poll or 1
  d.prestart = opts.prestart or 1
  d.max_running = opts.max_running or 256
  d.host = hostname()
  d.pid = self_pid()
  d.id = ("%s:%d:%x"):format(d.host, d.pid, math.random(0, 0xffffff))
  d.runs_dir = opts.runs_dir
  d.exe = opts.exe or ato.config().exe
  d.running = {}                        -- run id -> {task =, job =, run =}
  d.nrunning = 0
  d.wake = ato.cond()
  d.stopping = false
  d.lag = {max = 0, sum = 0, n = 0, recent = {}}
  d.started = ato.time()
  return d
end

-- Waits up to `secs` real seconds, or until something wakes the loop.
-- (The daemon's own periods, poll, lease and grace, are real seconds;
-- schedules are in the clock's time, which a test may speed up.)
function Daemon:sleep(secs)
  if secs <= 0 then ato.sleep(0) return end
  self.wake:wait(secs)
end

function Daemon:now() return self.clock.now() end

-- A transaction that retries once on a locked database (another daemon's
-- claim is short): errors are logged, the loop goes on.
function Daemon:tx(what, fn)
  for attempt = 1, 2 do
    local ok, a, b = pcall(self.store.tx, self.store, fn)
    if ok and a ~= nil then return a, b end
    local err = ok and b or a
    if attempt == 2 or not (type(err) == "table" and err.kind == "busy") then
      log.error("daemon: " .. what .. " failed", {error = tostring(err)})
      return nil, err
    end
  end
end

-- A lease in the clock's time (lease_until is compared with clock times).
function Daemon:lease_span() return self.lease * self.clock.speed end

-- Raises a store error inside a transaction (rolled back by tx).
local function must(rows, err)
  if not rows then error(err, 0) end
  return rows, err
end

-- }======================================================

-- {====================================================== claiming

-- The occurrences of job row j due at `now`, after the missed policy:
-- a list of slots to run, and how many were skipped.
local function due_slots(j, sched, opts, now, late_after)
  local slots, slot = {}, j.next_due
  while slot and slot <= now and #slots <= opts.missed_cap do
    slots[#slots + 1] = slot
    slot = jobs.next_due(sched, slot)
  end
  local total = #slots
  if slot and slot <= now then total = total + 1 end    -- more beyond the cap
  local missed = total > 1 or (now - slots[1]) > late_after
  if not missed or opts.missed == "one" then
    return {slots[#slots]}, total - 1
  elseif opts.missed == "none" then
    return {}, total
  end
  local keep = {}
  for i = math.max(1, #slots - opts.missed_cap + 1), #slots do keep[#keep + 1] = slots[i] end
  return keep, total - #keep
end

function Daemon:open_runs(job)
  local rows = must(self.store:exec("SELECT count(*) AS n FROM runs WHERE job = ?1 AND status IN " .. OPEN, job))
  return rows[1].n
end

-- One runs row for insert_runs: {job, slot, attempt, status, due, error}.
local RUN_COLUMNS = "(job, slot, attempt, status, due, owner, lease_until, claimed_at, started_at, ended_at, error)"

-- Inserts runs in a few multi-row statements (a claim of 100 due jobs is
-- a handful of round trips to the thread pool, not hundreds): rows whose
-- (job, slot, attempt) exists already are left out.
function Daemon:insert_runs(s, list, now)
  local CHUNK = 200                     -- 11 parameters a row, well under SQLite's limit
  for first = 1, #list, CHUNK do
    local values, params, np = {}, {}, 0     -- params holds nils: count them apart
    for i = first, math.min(#list, first + CHUNK - 1) do
      local r = list[i]
      local running = r.status == "running"
      values[#values + 1] = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
      local p = {r.job, r.slot, r.attempt or 1, r.status, r.due or r.slot,
                 running and self.id or nil, running and now + self:lease_span() or nil,
                 running and now or nil, running and math.max(now, r.slot) or nil,
                 r.status == "skipped" and now or nil, r.error}
      for k = 1, 11 do params[np + k] = p[k] end
      np = np + 11
    end
    must(s:exec("INSERT OR IGNORE INTO runs " .. RUN_COLUMNS .. " VALUES " .. table.concat(values, ", "),
                table.unpack(params, 1, np)))
  end
end

-- Claims what the due jobs owe now, in one IMMEDIATE transaction (a second
-- daemon's claim waits for it, then finds next_due moved on); returns the
-- runs to start now, {id, job, slot, attempt, due, def}, already recorded
-- running under this daemon's lease.
--
-- Prestart: a job falling due within --prestart seconds is claimed and
-- started now, its process told to wait for the due time (ATO_NOT_BEFORE,
-- see runtime/main.c), so that a burst of 100 jobs due in one second does
-- not start the last one 100 process spawns late. Not for a job whose
-- previous run still runs: its overlap policy is applied when it is due.
function Daemon:claim_due(now)
  local horizon = now + self.prestart * self.clock.speed
  local peek = self.store:exec("SELECT 1 FROM jobs WHERE paused = 0 AND next_due IS NOT NULL"
    .. " AND next_due <= ?1 LIMIT 1", horizon)
  if not peek or #peek == 0 then return {} end
  return self:tx("claiming due jobs", function(s)
    -- the clock again: BEGIN IMMEDIATE may have waited for another daemon
    now = self:now()
    horizon = now + self.prestart * self.clock.speed
    -- open: runs going on; waiting: runs queued before this occurrence,
    -- which go first (a new occurrence queues behind them)
    local rows = must(s:exec("SELECT j.*, (SELECT count(*) FROM runs r WHERE r.job = j.name AND r.status IN "
      .. OPEN .. ") AS open, (SELECT count(*) FROM runs r WHERE r.job = j.name AND r.status = 'queued') AS waiting"
      .. " FROM jobs j WHERE j.paused = 0 AND j.next_due IS NOT NULL AND j.next_due <= ?1"
      .. " ORDER BY j.next_due LIMIT 500", horizon))
    local inserts, nexts, lasts, names, defs = {}, {}, {}, {}, {}
    for _, row in ipairs(rows) do
      local early = row.next_due > now
      if early and (row.open > 0 or row.waiting > 0) then goto next_row end
      local job = jobs.decode_row(row)
      local opts = job.options
      -- late: more than a minute (or two polls) past due, in real time
      local slots, skipped = {row.next_due}, 0
      if not early then
        slots, skipped = due_slots(row, job.schedule, opts, now, math.max(60, 2 * self.poll) * self.clock.speed)
      end
      local busy = row.open > 0
      for i, slot in ipairs(slots) do
        -- catch-up runs (missed = all), and occurrences behind queued runs,
        -- wait their turn whatever the overlap policy
        local catch_up = i > 1 or row.waiting > 0
        if busy and not catch_up and opts.overlap == "skip" then
          inserts[#inserts + 1] = {job = job.name, slot = slot, status = "skipped",
                                   error = "the previous run was still running"}
        elseif busy or catch_up then
          inserts[#inserts + 1] = {job = job.name, slot = slot, status = "queued"}
        else
          inserts[#inserts + 1] = {job = job.name, slot = slot, status = "running"}
          busy = true
        end
      end
      if skipped > 0 then
        log.warn("daemon: missed occurrences not run", {job = job.name, skipped = skipped, policy = opts.missed})
      end
      local last = slots[#slots] or row.next_due
      names[#names + 1] = job.name
      nexts[job.name] = jobs.next_due(job.schedule, math.max(now, last)) or cjson.null
      lasts[job.name] = last
      defs[job.name] = job
      ::next_row::
    end
    if #names == 0 then return {} end
    self:insert_runs(s, inserts, now)
    -- names are [%w._-]: safe inside a quoted JSON path
    must(s:exec("UPDATE jobs SET next_due = json_extract(?1, '$.\"' || name || '\"'),"
      .. " last_slot = json_extract(?2, '$.\"' || name || '\"') WHERE name IN (SELECT value FROM json_each(?3))",
      cjson.encode(nexts), cjson.encode(lasts), cjson.encode(names)))
    local started = must(s:exec("SELECT id, job, slot, attempt, due FROM runs WHERE owner = ?1"
      .. " AND status = 'running' AND claimed_at = ?2 ORDER BY id", self.id, now))
    for _, r in ipairs(started) do r.def = defs[r.job] end
    return started
  end) or {}
end

-- Claims queued runs (retries, `ato jobs run`, queued occurrences) of jobs
-- with no open run: at most one per job.
function Daemon:claim_queued(now)
  local cand = self.store:exec("SELECT id, job FROM runs WHERE status = 'queued' AND due <= ?1"
    .. " ORDER BY due, id LIMIT 500", now)
  if not cand or #cand == 0 then return {} end
  return self:tx("claiming queued runs", function(s)
    now = self:now()                  -- BEGIN IMMEDIATE may have waited
    local claimed, taken = {}, {}
    for _, c in ipairs(cand) do
      if not taken[c.job] and self:open_runs(c.job) == 0 then
        local _, info = must(s:exec("UPDATE runs SET status = 'running', owner = ?2, lease_until = ?3,"
          .. " claimed_at = ?4, started_at = ?4 WHERE id = ?1 AND status = 'queued'",
          c.id, self.id, now + self:lease_span(), now))
        if info.changes > 0 then
          local r = must(s:exec("SELECT id, job, slot, attempt, due FROM runs WHERE id = ?1", c.id))[1]
          claimed[#claimed + 1] = r
          taken[c.job] = true
        end
      end
    end
    return claimed
  end) or {}
end

-- }======================================================

-- {====================================================== running

function Daemon:finish(run, status, fields)
  local now = self:now()
  local ok, err = self.store:exec("UPDATE runs SET status = ?2, ended_at = ?3, exit_code = ?4, signal = ?5,"
    .. " output = ?6, error = ?7, lease_until = NULL WHERE id = ?1",
    run.id, status, now, fields.code, fields.signal, fields.output, fields.error)
  if not ok then log.error("daemon: cannot record the end of a run", {run = run.id, error = tostring(err)}) end
end

-- Queues the next attempt after a failure, per the job's policy.
function Daemon:retry(run, job, interrupted)
  local opts = job and job.options or {attempts = 1, backoff = 60}
  local now = self:now()
  local due
  if interrupted then
    local rows = self.store:exec("SELECT count(*) AS n FROM runs WHERE job = ?1 AND slot = ?2 AND status = 'interrupted'",
                                 run.job, run.slot)
    if not rows or rows[1].n > MAX_INTERRUPTIONS then return end
    due = now
  else
    if run.attempt >= opts.attempts then return end
    due = now + opts.backoff * 2 ^ (run.attempt - 1)
  end
  local ok, err = self.store:exec("INSERT OR IGNORE INTO runs (job, slot, attempt, status, due)"
    .. " VALUES (?1, ?2, ?3, 'queued', ?4)", run.job, run.slot, run.attempt + 1, due)
  if not ok then log.error("daemon: cannot queue a retry", {run = run.id, error = tostring(err)}) end
end

-- Runs one claimed run to its end (a task of its own).
function Daemon:execute(run)
  local job = run.def or jobs.get(run.job, {store = self.store})
  if not job then
    self:finish(run, "failed", {error = "the job was removed"})
    return
  end
  local logf = ("%s/%d.log"):format(self.runs_dir, run.id)
  local env = {ATO_JOB = job.name, ATO_RUN_ID = tostring(run.id), ATO_SLOT = ("%.3f"):format(run.slot),
               ATO_ATTEMPT = tostring(run.attempt), ATO_DB = self.store.path}
  if job.options.env_file then
    local extra, err = read_env_file(job.options.env_file)
    if not extra then
      self:finish(run, "failed", {error = tostring(err)})
      return
    end
    for k, v in pairs(extra) do env[k] = v end
  end
  local wait = ((run.due or run.slot) - self:now()) / self.clock.speed
  if wait > 0 then env.ATO_NOT_BEFORE = ("%.6f"):format(ato.time() + wait) end
  local lag = self:record_lag(run)
  log.info("daemon: run started", {job = job.name, run = run.id, attempt = run.attempt, lag = lag})
  local timeout = job.options.timeout and job.options.timeout / self.clock.speed   -- clock -> real
  -- ato.exec gives the child a process group of its own; stop_orphan finds
  -- it again by the ATO_RUN_ID in its environment
  local argv = {self.exe, "run", job.script, env = env, stdout = {append = logf}, stderr = {append = logf},
                timeout = timeout}
  for _, a in ipairs(job.args) do argv[#argv + 1] = a end
  local r, err = ato.exec(argv)
  -- the record is shown by `ato jobs history`: secrets in it are redacted
  -- (the log file itself is the job's own, mode 0600)
  local output = (redact.text(tail(logf, OUTPUT_TAIL)))
  local status, fields = "ok", {output = output}
  if not r then
    status = err.kind == "timeout" and "timeout" or "failed"
    fields.error = tostring(err)
  else
    fields.code, fields.signal = r.code, r.signal
    if not r.ok then
      status = "failed"
      fields.error = r.signal and ("killed by signal " .. tostring(r.signal)) or ("exit status " .. tostring(r.code))
    end
  end
  self:finish(run, status, fields)
  log[status == "ok" and "info" or "warn"]("daemon: run ended",
    {job = job.name, run = run.id, status = status, code = fields.code, error = fields.error})
  if status ~= "ok" then self:retry(run, job, false) end
end

-- Scheduling lag: from the run's due time to its process's spawn (the
-- clock's seconds; the last 1,000 are kept for the /metrics quantiles).
function Daemon:record_lag(run)
  local lag = math.max(0, self:now() - (run.due or run.slot))   -- prestarted: on time
  local l = self.lag
  l.n, l.sum = l.n + 1, l.sum + lag
  if lag > l.max then l.max = lag end
  l.recent[(l.n - 1) % 1000 + 1] = lag
  return lag
end

function Daemon:lag_quantile(q)
  local s = {}
  for i, v in ipairs(self.lag.recent) do s[i] = v end
  if #s == 0 then return 0 end
  table.sort(s)
  return s[math.max(1, math.ceil(#s * q))]
end

function Daemon:start(run)
  local entry = {run = run}
  self.running[run.id] = entry
  self.nrunning = self.nrunning + 1
  entry.task = ato.spawn(function()
    local done <close> = setmetatable({}, {__close = function()
      self.running[run.id] = nil
      self.nrunning = self.nrunning - 1
      self.wake:signal()
    end})
    local ok, err = pcall(self.execute, self, run)
    if not ok then
      if self.stopping then error(err, 0) end          -- cancelled by the shutdown
      log.error("daemon: run crashed the runner", {run = run.id, error = tostring(err)})
      self:finish(run, "failed", {error = tostring(err)})
    end
  end)
end

-- }======================================================

-- {====================================================== leases and stale runs

function Daemon:renew()
  local ok, err = self.store:exec("UPDATE runs SET lease_until = ?2 WHERE owner = ?1 AND status IN " .. OPEN,
                                  self.id, self:now() + self:lease_span())
  if not ok then log.error("daemon: cannot renew leases", {error = tostring(err)}) end
end

-- Is the run's owner dead? Known at once for a daemon on this host.
function Daemon:owner_dead(owner, now, lease_until)
  if owner == self.id then return false end
  local host, pid = (owner or ""):match("^(.*):(%d+):%x+$")
  if host == self.host then
    pid = tonumber(pid)
    if not pid_alive(pid) then return true end
    -- a pid reused by another process: trust the lease
  end
  return lease_until ~= nil and lease_until < now
end

-- Stops an orphaned run's process group on this host: the process whose
-- environment names the run (jobs run as the daemon's user, whose
-- processes' environments it can read).
function Daemon:stop_orphan(run)
  local tag = "\0ATO_RUN_ID=" .. run.id .. "\0"
  local pids = {}
  for _, e in ipairs(ato.fs.list("/proc") or {}) do
    local pid = e.name:match("^%d+$")
    if pid and ("\0" .. tail("/proc/" .. pid .. "/environ", 1 << 20)):find(tag, 1, true) then
      pids[#pids + 1] = pid
    end
  end
  for _, pid in ipairs(pids) do
    log.warn("daemon: stopping the orphaned processes of an interrupted run", {run = run.id, pid = pid})
    ato.exec{"kill", "-TERM", "--", "-" .. pid}
    ato.exec{"kill", "-TERM", pid}
  end
  for _ = 1, 20 do
    local alive = false
    for _, pid in ipairs(pids) do alive = alive or pid_alive(pid) end
    if not alive then return end
    ato.sleep(0.05)
  end
  for _, pid in ipairs(pids) do
    ato.exec{"kill", "-KILL", "--", "-" .. pid}
    ato.exec{"kill", "-KILL", pid}
  end
end

function Daemon:recover()
  local now = self:now()
  local rows = self.store:exec("SELECT id, job, slot, attempt, owner, lease_until FROM runs WHERE status IN " .. OPEN)
  for _, r in ipairs(rows or {}) do
    if self:owner_dead(r.owner, now, r.lease_until) then
      self:stop_orphan(r)
      local _, info = self.store:exec("UPDATE runs SET status = 'interrupted', ended_at = ?2,"
        .. " error = ?3, lease_until = NULL WHERE id = ?1 AND status IN " .. OPEN, r.id, now,
        ("its daemon (%s) stopped during the run"):format(r.owner))
      if info and info.changes > 0 then
        log.warn("daemon: run interrupted by its daemon's end; retrying", {run = r.id, job = r.job, owner = r.owner})
        self:retry(r, jobs.get(r.job, {store = self.store}), true)
      end
    end
  end
end

-- }======================================================

-- {====================================================== the loop

-- Real seconds until the loop has something to do (at most a poll).
function Daemon:next_wakeup(now)
  local a = self.store:exec("SELECT min(next_due) AS t FROM jobs WHERE paused = 0 AND next_due IS NOT NULL")
  local b = self.store:exec("SELECT min(due) AS t FROM runs WHERE status = 'queued' AND due > ?1", now)
  local t = self.poll
  for _, rows in ipairs{a or {}, b or {}} do
    if rows[1] and rows[1].t then
      local dt = (rows[1].t - now) / self.clock.speed - self.prestart
      if dt < t then t = dt end
    end
  end
  return t
end

function Daemon:tick()
  local now = self:now()
  if self.nrunning < self.max_running then
    for _, r in ipairs(self:claim_due(now)) do self:start(r) end
    for _, r in ipairs(self:claim_queued(now)) do self:start(r) end
  end
  if ato.now() >= (self.next_renew or 0) then
    self:renew()
    self:recover()
    self.next_renew = ato.now() + self.lease / 3
  end
  local wake = math.min(self:next_wakeup(self:now()), self.next_renew - ato.now())
  self:sleep(wake)
end

-- SIGTERM/SIGINT: stop claiming, let running jobs finish within the
-- grace period, then stop them; they are recorded interrupted and queued
-- again for the next start.
function Daemon:shutdown(why)
  log.info("daemon: stopping", {reason = why, running = self.nrunning, grace = self.grace})
  local deadline = ato.now() + self.grace
  while self.nrunning > 0 and ato.now() < deadline do
    self.wake:wait(math.max(0.01, deadline - ato.now()))
  end
  local left = {}
  for id, e in pairs(self.running) do left[#left + 1] = {id = id, e = e} end
  for _, l in ipairs(left) do l.e.task:cancel() end
  for _, l in ipairs(left) do
    l.e.task:join()
    local r = l.e.run
    self.store:exec("UPDATE runs SET status = 'interrupted', ended_at = ?2, error = ?3, lease_until = NULL"
      .. " WHERE id = ?1", r.id, self:now(), "stopped by the daemon's shutdown (" .. why .. ")")
    self:retry(r, jobs.get(r.job, {store = self.store}), true)
    log.warn("daemon: run stopped by the shutdown", {run = r.id, job = r.job})
  end
end

-- }======================================================

-- {====================================================== metrics

local function esc(v) return (tostring(v):gsub('[\\"\n]', {["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n"})) end

function Daemon:metrics()
  local s, out = self.store, {}
  local function add(line) out[#out + 1] = line end
  local jobs_rows = s:exec("SELECT paused, count(*) AS n FROM jobs GROUP BY paused") or {}
  add("# HELP ato_jobs Durable jobs in the store, by state.")
  add("# TYPE ato_jobs gauge")
  local by = {active = 0, paused = 0}
  for _, r in ipairs(jobs_rows) do by[r.paused == 1 and "paused" or "active"] = r.n end
  add(('ato_jobs{state="active"} %d'):format(by.active))
  add(('ato_jobs{state="paused"} %d'):format(by.paused))
  add("# HELP ato_runs Runs recorded in the store, by status.")
  add("# TYPE ato_runs gauge")
  for _, r in ipairs(s:exec("SELECT status, count(*) AS n FROM runs GROUP BY status ORDER BY status") or {}) do
    add(('ato_runs{status="%s"} %d'):format(esc(r.status), r.n))
  end
  add("# HELP ato_run_duration_seconds Durations of finished runs, by job.")
  add("# TYPE ato_run_duration_seconds summary")
  for _, r in ipairs(s:exec("SELECT job, sum(ended_at - started_at) AS total, count(*) AS n FROM runs"
    .. " WHERE started_at IS NOT NULL AND ended_at IS NOT NULL GROUP BY job ORDER BY job") or {}) do
    add(('ato_run_duration_seconds_sum{job="%s"} %.6f'):format(esc(r.job), r.total))
    add(('ato_run_duration_seconds_count{job="%s"} %d'):format(esc(r.job), r.n))
  end
  add("# HELP ato_job_last_success_timestamp_seconds When each job last ended ok.")
  add("# TYPE ato_job_last_success_timestamp_seconds gauge")
  for _, r in ipairs(s:exec("SELECT job, max(ended_at) AS t FROM runs WHERE status = 'ok' GROUP BY job ORDER BY job") or {}) do
    add(('ato_job_last_success_timestamp_seconds{job="%s"} %.3f'):format(esc(r.job), r.t))
  end
  add("# HELP ato_scheduler_lag_seconds From a run's due time to its process's start (last 1,000 runs for the quantiles).")
  add("# TYPE ato_scheduler_lag_seconds summary")
  add(('ato_scheduler_lag_seconds{quantile="0.5"} %.6f'):format(self:lag_quantile(0.5)))
  add(('ato_scheduler_lag_seconds{quantile="0.99"} %.6f'):format(self:lag_quantile(0.99)))
  add(("ato_scheduler_lag_seconds_sum %.6f"):format(self.lag.sum))
  add(("ato_scheduler_lag_seconds_count %d"):format(self.lag.n))
  add("# HELP ato_scheduler_lag_max_seconds The largest lag seen since the daemon started.")
  add("# TYPE ato_scheduler_lag_max_seconds gauge")
  add(("ato_scheduler_lag_max_seconds %.6f"):format(self.lag.max))
  add("# HELP ato_daemon_running_runs Runs this daemon is running now.")
  add("# TYPE ato_daemon_running_runs gauge")
  add(("ato_daemon_running_runs %d"):format(self.nrunning))
  add("# HELP ato_daemon_start_time_seconds When this daemon started.")
  add("# TYPE ato_daemon_start_time_seconds gauge")
  add(("ato_daemon_start_time_seconds %.3f"):format(self.started))
  return table.concat(out, "\n") .. "\n"
end

function Daemon:serve(listen)
  local host, port = listen:match("^([%d.]+):(%d+)$")
  if not host then return nil, ato.err("invalid", ("--listen %s: expected 127.0.0.1:PORT"):format(listen)) end
  if host ~= "127.0.0.1" then
    return nil, ato.err("invalid", ("--listen %s: only loopback (127.0.0.1) is served"):format(listen))
  end
  local http = require "ato.http"
  return http.serve{host = host, port = tonumber(port), handler = function(req)
    if req.path == "/healthz" then
      return {status = 200, headers = {["content-type"] = "text/plain"}, body = self.stopping and "stopping\n" or "ok\n"}
    elseif req.path == "/metrics" then
      return {status = 200, headers = {["content-type"] = "text/plain; version=0.0.4"}, body = self:metrics()}
    end
    return {status = 404, body = "not found\n"}
  end}
end

-- }======================================================

-- {====================================================== entry points

--- daemon.run{store =, runs_dir =, lease =, grace =, poll =, listen =}
--- Runs until SIGTERM/SIGINT (or opts.stop, a cond, for tests).
function M.run(opts)
  local d = new_daemon(opts)
  assert(ato.fs.mkdir(d.runs_dir, "700", {parents = true}) or ato.fs.exists(d.runs_dir))
  local server
  if opts.listen then
    local err
    server, err = d:serve(opts.listen)
    if not server then return nil, err end
  end
  local term, int, hup = ato.trap("term"), ato.trap("int"), ato.trap("hup")
  local why
  local watchers = {}
  for name, t in pairs{SIGTERM = term, SIGINT = int} do
    watchers[#watchers + 1] = ato.spawn(function()
      t:wait()
      why = why or name
      d.stopping = true
      d.wake:broadcast()
    end)
  end
  watchers[#watchers + 1] = ato.spawn(function()
    while true do
      hup:wait()
      log.info("daemon: SIGHUP: reading the job table again")
      d.wake:broadcast()
    end
  end)
  log.info("daemon: started", {id = d.id, db = d.store.path, listen = opts.listen, lease = d.lease})
  d:recover()
  while not d.stopping do d:tick() end
  d:shutdown(why or "stop")
  for _, w in ipairs(watchers) do w:cancel() end
  if server then server:close() end
  log.info("daemon: stopped", {id = d.id})
  return true
end

M.HELP = [[
Usage: ato daemon [--db PATH] [--listen 127.0.0.1:PORT] [OPTIONS]

Runs the durable jobs (`ato jobs`) of the state database: each due
occurrence is claimed in a transaction (two daemons on one database never
run the same one), then run as a child `ato run SCRIPT ARGS...` whose
output goes to RUNS_DIR/<run id>.log (the last 64 KiB are kept with the
run: `ato jobs history NAME`). Stops on SIGTERM or SIGINT after letting
running jobs finish (--grace); SIGHUP re-reads the job table (changes are
also picked up within --poll seconds).

Options:
  --db PATH                 the state database (default $ATO_DB, see ato --help)
  --listen 127.0.0.1:PORT   serve /healthz and /metrics (Prometheus text)
  --grace SECONDS           how long a shutdown waits for running jobs (30)
  --lease SECONDS           how long a claim holds without renewal (30); a run
                            whose daemon died is retried once it expires (at
                            once when that daemon ran on this host)
  --poll SECONDS            longest sleep between two looks at the table (1)
  --prestart SECONDS        start a job's process this much before it is due;
                            it waits, then runs its script on time (1; 0: off)
  --max-running N           runs at once (256)
  --runs-dir DIR            run logs (default: runs/ next to the database)
  -h, --help                this text

Environment: ATO_DB (or --db before `daemon`), ATO_FAKE_CLOCK (tests).
]]

local function number_opt(args, i, name)
  local v = tonumber(args[i + 1])
  if not v or v <= 0 then error({usage = ("%s needs a positive number"):format(name)}) end
  return v
end

--- `ato daemon ...`: returns the exit status.
function M.main(...)
  local args = {...}
  local opts = {}
  local ok, perr = pcall(function()
    local i = 1
    while i <= #args do
      local a = args[i]
      if a == "-h" or a == "--help" then opts.help = true
      elseif a == "--listen" then opts.listen = args[i + 1]; i = i + 1
        if not opts.listen then error({usage = "--listen needs 127.0.0.1:PORT"}) end
      elseif a == "--grace" then opts.grace = number_opt(args, i, a); i = i + 1
      elseif a == "--lease" then opts.lease = number_opt(args, i, a); i = i + 1
      elseif a == "--poll" then opts.poll = number_opt(args, i, a); i = i + 1
      elseif a == "--prestart" then
        opts.prestart = tonumber(args[i + 1])
        if not opts.prestart or opts.prestart < 0 then error({usage = "--prestart needs seconds >= 0"}) end
        i = i + 1
      elseif a == "--max-running" then opts.max_running = math.floor(number_opt(args, i, a)); i = i + 1
      elseif a == "--db" then opts.db = args[i + 1]; i = i + 1
        if not opts.db or opts.db == "" then error({usage = "--db needs a file path"}) end
      elseif a == "--runs-dir" then opts.runs_dir = args[i + 1]; i = i + 1
        if not opts.runs_dir then error({usage = "--runs-dir needs a directory"}) end
      else error({usage = ("unknown argument '%s'"):format(a)}) end
      i = i + 1
    end
  end)
  if not ok then
    if type(perr) == "table" and perr.usage then
      io.stderr:write("ato daemon: ", perr.usage, " (see 'ato daemon --help')\n")
      return 2
    end
    error(perr, 0)
  end
  if opts.help then io.stdout:write(M.HELP) return 0 end
  -- (the jobs it starts get the path as ATO_DB: see Daemon:execute)
  local s, err = store_mod.open(opts.db)
  if not s then
    io.stderr:write("ato daemon: ", tostring(err), "\n")
    return 2
  end
  opts.store = s
  opts.runs_dir = opts.runs_dir or (s.path:match("^(.*)/[^/]*$") or ".") .. "/runs"
  local r
  r, err = M.run(opts)
  s:close()
  if not r then
    io.stderr:write("ato daemon: ", tostring(err), "\n")
    return 2
  end
  return 0
end

-- }======================================================

return M
