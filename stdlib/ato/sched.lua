-- ato.sched: in-process timers and cron schedules whose callbacks run as
-- tasks (DESIGN.md, "The async model"). Nothing here is durable: a timer
-- lives as long as the process (durable jobs are ato.jobs).
--
--   local sched = require "ato.sched"
--   local h = sched.after(5, function() ... end)       -- once, in 5 s
--   sched.every(60, function(k) ... end)                -- tick k = 1, 2, ...
--   sched.cron("0 9 * * *", function(t) ... end, {tz = "Europe/London"})
--   h:cancel()                                          -- true if still armed
--   sched.next("0 9 * * 1-5", os.time(), "UTC", 5)      -- the next 5 fire times
--   sched.pending()                                     -- armed timers
--
-- Callbacks. When a timer is due its callback runs in a task: `after`
-- with no argument, `every` with the tick number k (its k-th period since
-- it was armed, skipped ticks included), `cron` with the fire time it was
-- due for (epoch seconds). A callback may wait (sleep, exec, http...)
-- without holding up the others. A callback that raises is logged
-- (ato.log, level error, with its traceback) and that is all: the failure
-- is not "unobserved" (the process does not exit 1 for it), and the other
-- timers, the same `every`/`cron` included, go on. A cancelled callback
-- (Ctrl-C) ends its task as cancelled. Like Node's timers, an armed timer
-- keeps the process alive: a script ends when its main task has returned
-- and no timer is armed (cancel an `every`/`cron` to let it end).
--
-- Time. `after` and `every` measure delays on the monotonic clock
-- (ato.now(): immune to wall-clock steps); `cron` computes its fire times
-- on the wall clock (ato.time(), epoch seconds) through ato.cron, from the
-- clock's current time after each fire (never by adding 86400), so DST
-- and clock steps are followed. Due times resolve to the millisecond: a
-- timer never fires before its due time; timers due in the same
-- millisecond fire in the order they were armed. `after(0, fn)` runs on
-- the next loop turn.
--
-- Repeating timers run at a fixed rate and never overlap themselves:
-- `every(s)` is due at t0 + k*s (t0: when it was armed). A tick that
-- comes while the previous run of the same timer is still going is
-- skipped and counted in `h.skipped`; ticks that passed while the process
-- could not run (a blocked loop) are not replayed and are counted in
-- `h.missed`. `cron` follows the same skip rule (`h.skipped`); cron fire
-- times missed while the process could not run are not replayed.
-- `@reboot` runs once, on the next loop turn. `h:cancel()` disarms a
-- timer: no callback of a cancelled every/cron starts after it (a run in
-- progress is not interrupted); a one-shot that has fired cannot be
-- cancelled (false) and its callback runs.
--
-- Handle fields (read only): every: h.interval, h.runs (callbacks
-- started), h.skipped, h.missed, h.due (next tick, in ato.now() seconds);
-- cron: h.expr (normalised), h.tz, h.runs, h.skipped, h.due (next fire,
-- epoch seconds). h:armed() says whether it will fire again.
--
-- Cost. No task exists per armed timer: an armed `after` is one small
-- table (the handle) and one slot in a millisecond bucket; the buckets'
-- due times sit in a min-heap kept in a plain array. ONE dispatcher task
-- sleeps until the earliest due time (woken early when an earlier timer is
-- armed, or when a cancel leaves nothing armed), moves what is due to a
-- run queue (at most 1000 callbacks per loop turn) and ends when no timer
-- is armed, so a script whose timers all fired ends by itself; the next
-- arm starts it again. Runner tasks work through the run queue: a callback
-- that returns without waiting lets its runner go on with the next one (no
-- coroutine is created per fire), one that waits keeps its runner and the
-- next callbacks start in another, so no callback waits for another. So
-- ato.current() in a callback is its runner, which may run other callbacks
-- before and after it; do not cancel it from outside. While a cron timer
-- is armed the dispatcher reads the wall clock at least once a minute, so
-- a wall-clock step or a suspend is caught up. Cancelled timers are
-- dropped lazily (when their time comes, or once they outnumber the
-- armed ones).
--
-- Fake time, for tests: `sched.fake_clock(t0)` is a clock that moves only
-- when told: `clock:advance(seconds)` (from a task) steps to each due
-- time in turn, so every timer sees its own due time as now, fires what
-- is due and lets the callbacks run (until each has finished or waits on
-- something real) before the next step; `clock:set(t)` does the same up
-- to t (or, backwards, only sets the time). `sched.use_clock(c)` makes c
-- the clock new timers are armed on and returns the previous one;
-- `sched.clock()` is the clock in use. A timer stays on the clock it was
-- armed on: timers of a fake clock fire only when that clock advances,
-- with no dispatcher task. A fake clock's now() and mono() are the same
-- time, so 30 days of `every`/`cron` run in a fraction of a second.
--
-- Errors: misuse (a bad delay, a non-function callback, a bad cron
-- expression or zone in sched.cron) raises at the caller with the reason;
-- sched.next returns nil, err for a bad expression or zone (the message
-- names the field and the reason, from ato.cron).
local ato = require "ato"

local spawn, cond, sleep = ato.spawn, ato.cond, ato.sleep
local mono_time, wall_time = ato.now, ato.time
local type, error, tostring, rawget, setmetatable = type, error, tostring, rawget, setmetatable
local ceil, floor, huge = math.ceil, math.floor, math.huge
local traceback = debug.traceback

local M = {}

local BATCH = 1000          -- callbacks fired per loop turn, at most
local WALL_RECHECK = 60     -- s: longest sleep while a cron timer is armed
local COMPACT_MIN = 10000   -- cancelled entries tolerated before compacting
local SETTLE_MAX = 1000     -- fake clock: loop turns given to callbacks per step
local EPS = 1e-6            -- ms: float noise in due * 1000

local cron_mod               -- ato.cron, loaded on first use
local function cron_lib()
  if not cron_mod then cron_mod = require "ato.cron" end
  return cron_mod
end

local log_mod
local function log_error(msg, fields)
  if not log_mod then log_mod = require "ato.log" end
  log_mod.error(msg, fields)
end

-- {====================================================== argument checks

local function check_function(fn, n, what)
  if type(fn) ~= "function" then
    error(("bad argument #%d to '%s' (function expected, got %s)")
      :format(n, what, type(fn)), 3)
  end
end

local function check_delay(s, n, what, positive)
  if type(s) ~= "number" or s ~= s or s < 0 or s == huge or (positive and s == 0) then
    error(("bad argument #%d to '%s' (finite seconds %s 0 expected, got %s)")
      :format(n, what, positive and ">" or ">=", type(s) == "number" and tostring(s) or type(s)), 3)
  end
end

-- }======================================================

-- {====================================================== queues

-- A queue of timers: handles in millisecond buckets (b: key -> list, in
-- the order armed) and the buckets' keys (integral milliseconds, the due
-- time rounded up) in a binary min-heap (keys[1..n]).

local function new_queue() return {keys = {}, n = 0, b = {}} end

local function key_of(due) return ceil(due * 1000 - EPS) end

local function q_push(q, key, h)
  local list = q.b[key]
  if list then
    list[#list + 1] = h
    return
  end
  q.b[key] = {h}
  local keys = q.keys
  local i = q.n + 1
  q.n = i
  while i > 1 do
    local p = i // 2
    local pk = keys[p]
    if pk <= key then break end
    keys[i] = pk
    i = p
  end
  keys[i] = key
end

local function q_top(q)
  if q.n > 0 then return q.keys[1] end
  return nil
end

-- Removes the earliest bucket: its key and its list of handles.
local function q_pop(q)
  local keys, n = q.keys, q.n
  local top, last = keys[1], keys[n]
  keys[n] = nil
  n = n - 1
  q.n = n
  if n > 0 then
    local i = 1
    while true do
      local c = i + i
      if c > n then break end
      local ck = keys[c]
      if c < n then
        local rk = keys[c + 1]
        if rk < ck then c, ck = c + 1, rk end
      end
      if last <= ck then break end
      keys[i] = ck
      i = c
    end
    keys[i] = last
  end
  local list = q.b[top]
  q.b[top] = nil
  return top, list
end

-- Drops the cancelled handles (h[1] == false) of every bucket.
local function q_compact(q)
  local b, keys = {}, {}
  for key, list in pairs(q.b) do
    local kept, m = {}, 0
    for i = 1, #list do
      local h = list[i]
      if h[1] then m = m + 1; kept[m] = h end
    end
    if m > 0 then
      b[key] = kept
      keys[#keys + 1] = key
    end
  end
  table.sort(keys)                      -- a sorted array is a heap
  q.b, q.keys, q.n = b, keys, #keys
end

-- }======================================================

-- {====================================================== firing

-- Per clock: st = {clock, real, count (armed timers), stale (cancelled
-- handles still queued), mono (queue on clock:mono()), wall (queue on
-- clock:now(), cron), pend/pend_i (a due bucket being worked through),
-- the run queue (rq_h/rq_fn/rq_arg[rq_head..rq_tail]: fired callbacks
-- waiting for a runner), fresh (a runner spawned and not yet started),
-- active (fake clocks: runners inside a callback), mt (the handles'
-- metatable), and for the real clock task (the dispatcher), wake (its
-- condition), waiting, wake_at (mono deadline)}.

local function clear(st)
  st.mono, st.wall = new_queue(), new_queue()
  st.pend, st.pend_i, st.stale = nil, nil, 0
end

local function is_cancel(e)
  return type(e) == "table" and rawget(e, "kind") == "cancelled"
end

local function failed(h, e)
  local fields = {timer = rawget(h, "kind") or "after", error = tostring(e)}
  if rawget(h, "expr") then fields.expr = h.expr end
  log_error("sched: timer callback failed", fields)
end

local function queued(st) return st.rq_head <= st.rq_tail end

-- A runner task: runs fired callbacks from the run queue, one after the
-- other, until it is empty. A callback that waits keeps this task; the
-- next ones start in another runner (ensure_runner), so no callback waits
-- for another. On a fake clock, st.active holds the runners inside a
-- callback (for settle).
local function runner(st)
  st.fresh = nil                        -- started: no longer available
  local me = not st.real and ato.current() or nil
  local h                               -- the timer whose callback runs
  local guard <close> = setmetatable({}, {__close = function()
    if h and rawget(h, "kind") then h.running = false end
    if me then st.active[me] = nil end
  end})
  while true do
    local i = st.rq_head
    if i > st.rq_tail then break end
    local rh, rf, ra = st.rq_h, st.rq_fn, st.rq_arg
    local fn, arg = rf[i], ra[i]
    h = rh[i]
    rh[i], rf[i], ra[i] = nil, nil, nil
    if i == st.rq_tail then st.rq_head, st.rq_tail = 1, 0 else st.rq_head = i + 1 end
    local kind = rawget(h, "kind")
    local repeating = kind == "every" or kind == "cron"
    if repeating and not h[1] then
      h.running = false                 -- cancelled since this tick fired
    else
      if me then st.active[me] = true end
      local ok, e = xpcall(fn, traceback, arg)
      if me then st.active[me] = nil end
      if repeating then h.running = false end
      if not ok then
        if is_cancel(e) then
          -- this runner was cancelled (Ctrl-C), or the callback raised a
          -- cancellation of its own: a cancelled task's next wait raises
          local ok2, e2 = pcall(sleep, 0)
          if not ok2 and is_cancel(e2) then
            h = nil
            error(e2, 0)                -- this task ends as cancelled
          end
        end
        failed(h, e)
      end
    end
    h = nil
  end
end

-- Makes sure queued callbacks have a runner that has not started yet (a
-- started one that is not running is inside a callback, which may wait
-- or yield for long): st.fresh, else a new one.
local function ensure_runner(st)
  if not queued(st) then return end
  local fresh = st.fresh
  if fresh and fresh:status() == "ready" then return end
  st.fresh = spawn(runner, st)
end

local function run(st, h, fn, arg)
  local i = st.rq_tail + 1
  st.rq_tail = i
  st.rq_h[i], st.rq_fn[i], st.rq_arg[i] = h, fn, arg
end

local function disarm(st, h)
  h[1] = false
  st.count = st.count - 1
end

-- The next tick of an every timer after mono time `now`.
local function next_tick(st, h, now)
  local k = h.k + 1
  local due = h.t0 + k * h.interval
  if due <= now then                    -- late: pass over the missed ticks
    local k2 = floor((now - h.t0) / h.interval) + 1
    if h.t0 + k2 * h.interval <= now then k2 = k2 + 1 end
    h.missed = h.missed + (k2 - k)
    k, due = k2, h.t0 + k2 * h.interval
  end
  h.k, h.due = k, due
  q_push(st.mono, key_of(due), h)
end

-- The next fire time of a cron timer after wall time `now`.
local function next_cron(st, h, now)
  local from = h.due
  if from == nil or now > from then from = now end
  local list = cron_lib().next(h.cron, from, h.tz, 1)
  local t = list and list[1]
  if t == nil then
    disarm(st, h)
    h.due = nil
    return
  end
  h.due = t
  q_push(st.wall, key_of(t), h)
end

-- Fires one queued handle; returns 1 if its callback was queued to run.
local function fire_one(st, h, mono_now, wall_now)
  local fn = h[1]
  if not fn then
    st.stale = st.stale - 1
    return 0
  end
  local kind = rawget(h, "kind")
  if kind == nil or kind == "reboot" then
    disarm(st, h)
    run(st, h, fn)
    return 1
  end
  local fired = 0
  if h.running then
    h.skipped = h.skipped + 1
  else
    h.running = true
    h.runs = h.runs + 1
    run(st, h, fn, kind == "every" and h.k or h.due)
    fired = 1
  end
  if kind == "every" then next_tick(st, h, mono_now)
  else next_cron(st, h, wall_now) end
  return fired
end

-- Fires what is due, at most `budget` callbacks. Returns the number fired
-- and whether due timers may remain.
local function fire_due(st, budget)
  local fired = 0
  local clock = st.clock
  local mono_now, wall_now = clock:mono(), clock:now()
  local pend = st.pend
  if pend then
    local i = st.pend_i
    st.pend = nil
    while i <= #pend do
      if fired >= budget then
        st.pend, st.pend_i = pend, i
        return fired, true
      end
      fired = fired + fire_one(st, pend[i], mono_now, wall_now)
      i = i + 1
    end
  end
  local mono_ms, wall_ms = mono_now * 1000 + EPS, wall_now * 1000 + EPS
  while true do
    local mq, wq = st.mono, st.wall
    local km, kw = q_top(mq), q_top(wq)
    local q
    if km and km <= mono_ms and not (kw and kw <= wall_ms and kw < km) then q = mq
    elseif kw and kw <= wall_ms then q = wq
    else return fired, false end
    local _, list = q_pop(q)
    for i = 1, #list do
      if fired >= budget then
        st.pend, st.pend_i = list, i
        return fired, true
      end
      fired = fired + fire_one(st, list[i], mono_now, wall_now)
    end
  end
end

-- Seconds until the earliest queued time (nil: nothing queued).
local function next_wait(st)
  local clock = st.clock
  local wait
  local km, kw = q_top(st.mono), q_top(st.wall)
  if km then wait = km / 1000 - clock:mono() end
  if kw then
    local w = kw / 1000 - clock:now()
    if st.real and w > WALL_RECHECK then w = WALL_RECHECK end
    if wait == nil or w < wait then wait = w end
  end
  if wait and wait < 0 then wait = 0 end
  return wait
end

-- The real clock's dispatcher task: sleeps until the earliest due time,
-- fires, and ends when nothing is armed and every fired callback started.
local function dispatcher(st)
  local guard <close> = setmetatable({}, {__close = function()
    st.task, st.waiting = nil, false
  end})
  while st.count > 0 or queued(st) do
    local _, more = fire_due(st, BATCH)
    ensure_runner(st)
    if more or queued(st) then
      sleep(0)                          -- let the runners run
    elseif st.count == 0 then
      break
    else
      local wait = next_wait(st)
      if wait == nil then break end     -- cannot happen while count > 0
      st.waiting, st.wake_at = true, st.clock:mono() + wait
      st.wake:wait(wait)
      st.waiting = false
    end
  end
  if st.count == 0 then clear(st) end
end

-- Called after a handle was queued with its due time on `base` ("mono"
-- or "wall"): start the dispatcher, or wake it if this is earlier.
local function armed(st, due, base)
  st.count = st.count + 1
  if not st.real then return end
  if st.task == nil then
    st.task = spawn(dispatcher, st)
  elseif st.waiting then
    if base == "wall" then due = due - wall_time() + mono_time() end
    if due < st.wake_at then
      st.waiting = false
      st.wake:signal()
    end
  end
end

-- }======================================================

-- {====================================================== clocks and handles

local states = setmetatable({}, {__mode = "k"})   -- clock -> its state

local function handle_meta(st)
  local methods = {}
  --- h:cancel() -> true if it was still armed
  function methods.cancel(h)
    if not h[1] then return false end
    disarm(st, h)
    st.stale = st.stale + 1
    if st.count == 0 then
      clear(st)
      if st.waiting then               -- nothing armed: let the dispatcher end
        st.waiting = false
        st.wake:signal()
      end
    elseif st.stale > COMPACT_MIN and st.stale > st.count then
      q_compact(st.mono)
      q_compact(st.wall)
      if st.pend then
        local kept = {}
        for i = st.pend_i, #st.pend do
          local x = st.pend[i]
          if x[1] then kept[#kept + 1] = x end
        end
        st.pend, st.pend_i = kept, 1
      end
      st.stale = 0
    end
    return true
  end
  --- h:armed() -> will it fire again?
  function methods.armed(h) return h[1] ~= false end
  return {
    __index = methods,
    __name = "ato.sched.timer",
    __tostring = function(h)
      return ("ato.sched.timer (%s, %s)"):format(rawget(h, "kind") or "after",
        h[1] and "armed" or "done")
    end,
  }
end

local function new_state(clock, real)
  local st = {clock = clock, real = real, count = 0, stale = 0,
              mono = new_queue(), wall = new_queue(),
              rq_h = {}, rq_fn = {}, rq_arg = {}, rq_head = 1, rq_tail = 0}
  st.mt = handle_meta(st)
  if real then st.wake, st.waiting = cond(), false else st.active = {} end
  states[clock] = st
  return st
end

local real_clock = {}
function real_clock.now() return wall_time() end
function real_clock.mono() return mono_time() end
setmetatable(real_clock, {__name = "ato.sched.clock",
  __tostring = function() return "ato.sched.clock (real)" end})
new_state(real_clock, true)

local current, cur_st = real_clock, states[real_clock]

local Fake = {}
Fake.__index = Fake
Fake.__name = "ato.sched.clock"
function Fake:__tostring() return ("ato.sched.clock (fake, %.3f)"):format(self.t) end

function Fake:now() return self.t end
Fake.mono = Fake.now

-- Lets the callbacks fired at one step run: a few loop turns, then until
-- each has started and none is ready to go on (each has finished, or
-- waits on something real); at most SETTLE_MAX turns.
local function settle(st)
  for i = 1, SETTLE_MAX do
    ensure_runner(st)
    sleep(0)
    if i >= 2 and not queued(st) then
      local busy = false
      for task in pairs(st.active) do
        if task:status() == "ready" then busy = true; break end
      end
      if not busy then return end
    end
  end
end

--- clock:advance(seconds) -> number of callbacks run
-- Moves the fake clock forward, stopping at each due time in turn. Must be
-- called from a task: it lets the callbacks' tasks run.
function Fake:advance(seconds)
  if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 or seconds == huge then
    error(("bad argument #1 to 'advance' (finite seconds >= 0 expected, got %s)")
      :format(tostring(seconds)), 2)
  end
  local st = states[self]
  if st.advancing then error("clock:advance: already advancing (from a callback?)", 2) end
  st.advancing = true
  local done <close> = setmetatable({}, {__close = function() st.advancing = false end})
  local target, fired = self.t + seconds, 0
  while true do
    local key = q_top(st.mono)
    local kw = q_top(st.wall)
    if kw and (key == nil or kw < key) then key = kw end
    if st.pend == nil and (key == nil or key / 1000 > target + EPS / 1000) then break end
    if key and key / 1000 > self.t then
      local t = key / 1000
      self.t = math.tointeger(t) or t     -- whole seconds stay integers
    end
    repeat
      local n, more = fire_due(st, BATCH)
      fired = fired + n
      settle(st)
    until not more
  end
  if target > self.t then self.t = target end
  return fired
end

--- clock:set(t) -> number of callbacks run
-- Forward: as advance(t - now). Backward: only sets the time.
function Fake:set(t)
  if type(t) ~= "number" or t ~= t or t == huge or t == -huge then
    error(("bad argument #1 to 'set' (finite time expected, got %s)"):format(tostring(t)), 2)
  end
  if t >= self.t then return self:advance(t - self.t) end
  self.t = t
  return 0
end

--- sched.fake_clock([t0]) -> a clock at t0 (default: now, whole seconds)
function M.fake_clock(t0)
  if t0 == nil then t0 = floor(wall_time()) end
  if type(t0) ~= "number" or t0 ~= t0 or t0 == huge or t0 == -huge then
    error(("bad argument #1 to 'fake_clock' (finite time expected, got %s)")
      :format(tostring(t0)), 2)
  end
  local clock = setmetatable({t = t0}, Fake)
  new_state(clock, false)
  return clock
end

--- sched.clock() -> the clock new timers are armed on
function M.clock() return current end

--- sched.use_clock(clock) -> the previous clock
function M.use_clock(clock)
  if states[clock] == nil then
    error("bad argument #1 to 'use_clock' (a clock from sched.clock() or "
      .. "sched.fake_clock() expected)", 2)
  end
  local prev = current
  current, cur_st = clock, states[clock]
  return prev
end

--- sched.pending([clock]) -> number of armed timers on clock (default: in use)
function M.pending(clock)
  local st = states[clock or current]
  if st == nil then error("bad argument #1 to 'pending' (clock expected)", 2) end
  return st.count
end

-- }======================================================

-- {====================================================== timers

--- sched.after(seconds, fn) -> handle: fn() once, seconds from now
function M.after(seconds, fn)
  check_delay(seconds, 1, "after")
  check_function(fn, 2, "after")
  local st = cur_st
  local h = setmetatable({fn}, st.mt)
  local due = (st.real and mono_time() or st.clock.t) + seconds
  -- key_of rounds up to the next millisecond: a zero delay is due now
  q_push(st.mono, seconds == 0 and floor(due * 1000) or key_of(due), h)
  armed(st, due, "mono")
  return h
end

--- sched.every(seconds, fn) -> handle: fn(k) at t0 + k*seconds, k = 1, 2, ...
function M.every(seconds, fn)
  check_delay(seconds, 1, "every", true)
  check_function(fn, 2, "every")
  local st = cur_st
  local t0 = st.clock:mono()
  local h = setmetatable({fn, kind = "every", interval = seconds, t0 = t0, k = 1,
                          due = t0 + seconds, running = false, runs = 0,
                          skipped = 0, missed = 0}, st.mt)
  q_push(st.mono, key_of(h.due), h)
  armed(st, h.due, "mono")
  return h
end

--- sched.cron(expr, fn [, {tz = "UTC"|"local"|IANA name}]) -> handle
-- fn(t) at each fire time t (epoch seconds) of expr in zone tz (default
-- "local"); a bad expression or zone raises, naming what is wrong.
function M.cron(expr, fn, opts)
  local cron = cron_lib()
  if type(expr) ~= "string" and type(expr) ~= "userdata" then
    error(("bad argument #1 to 'cron' (cron expression expected, got %s)"):format(type(expr)), 2)
  end
  check_function(fn, 2, "cron")
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #3 to 'cron' (table expected, got %s)"):format(type(opts)), 2)
  end
  local tz = opts and opts.tz or "local"
  if type(tz) ~= "string" then
    error(("bad argument #3 to 'cron' (tz: string expected, got %s)"):format(type(tz)), 2)
  end
  local c, err = expr, nil
  if type(expr) == "string" then
    c, err = cron.parse(expr)
    if not c then error(tostring(err), 2) end
  end
  local ok, zerr = cron.zone(tz)
  if not ok then error(tostring(zerr), 2) end
  local st = cur_st
  local h = setmetatable({fn, kind = "cron", cron = c, expr = tostring(c), tz = tz,
                          running = false, runs = 0, skipped = 0}, st.mt)
  if c.reboot then                      -- once, on the next loop turn
    h.kind = "reboot"
    local due = st.clock:mono()
    q_push(st.mono, floor(due * 1000), h)
    armed(st, due, "mono")
    return h
  end
  local list = cron.next(c, st.clock:now(), tz, 1)
  local t = list and list[1]
  if t == nil then                      -- no fire time ahead: never armed
    h[1] = false
    return h
  end
  h.due = t
  q_push(st.wall, key_of(t), h)
  armed(st, t, "wall")
  return h
end

--- sched.next(expr, [from [, tz [, n]]]) -> {t1, ..., tn} | nil, err
-- The next n (default 1) fire times of expr strictly after from (epoch
-- seconds, default the clock in use's now), in zone tz (default "local").
function M.next(expr, from, tz, n)
  if from == nil then from = current:now() end
  return cron_lib().next(expr, from, tz, n)
end

-- }======================================================

return M
