-- ato: the task runtime as scripts see it (`local ato = require "ato"`).
--
-- The primitives come from C (`ato.core`: spawn, sleep, yield, now, time,
-- cond, err, current, tasks, stats, config); this module adds what is
-- simplest in Lua on top of them: timeout, gather/all and channels. The
-- other modules load on first use: ato.fs, ato.exec, ato.log, ato.redact.

local core = require "ato.core"

local spawn, cond, err = core.spawn, core.cond, core.err
local select, type, error, setmetatable = select, type, error, setmetatable
local pack, unpack = table.pack, table.unpack

local M = {}
for name, fn in pairs(core) do M[name] = fn end

local function check_function(fn, n, what)
  if type(fn) ~= "function" then
    error(("bad argument #%d to '%s' (function expected, got %s)")
      :format(n, what, type(fn)), 3)
  end
end

local function check_seconds(s, n, what)
  if type(s) ~= "number" or s ~= s or s < 0 then
    error(("bad argument #%d to '%s' (seconds >= 0 expected, got %s)")
      :format(n, what, tostring(s)), 3)
  end
end

-- {====================================================== timeout

--- ato.timeout(seconds, fn, ...) -> fn's results, or nil, err
-- Runs fn in a task of its own. At the deadline the task is cancelled, its
-- __close handlers run, and timeout returns nil, {kind="timeout"}. If fn
-- raises, returns nil and its error. If the caller is cancelled, so is fn.
function M.timeout(seconds, fn, ...)
  check_seconds(seconds, 1, "timeout")
  check_function(fn, 2, "timeout")
  local task <close> = spawn(fn, ...)   -- cancelled if we unwind early
  local res = pack(task:join(seconds))
  local st = task:status()
  if st == "done" or st == "failed" or st == "cancelled" then
    return unpack(res, 1, res.n)
  end
  task:cancel()
  task:join()                           -- let it unwind before we return
  return nil, err("timeout", ("timed out after %g s"):format(seconds),
                  {seconds = seconds})
end

-- }======================================================

-- {====================================================== gather

-- The error gather returns: the function's error wrapped, not modified
-- (it may be shared or read-only), keeping its kind and message.
local function indexed_failure(value, i)
  local kind, message = "failed", nil
  if type(value) == "table" then
    if type(rawget(value, "kind")) == "string" then kind = rawget(value, "kind") end
    message = rawget(value, "message")
  end
  if type(message) ~= "string" then
    local ok, text = pcall(tostring, value)
    message = ok and text or "(error object)"
  end
  return err(kind, message, {index = i, cause = value})
end

--- ato.gather(fns [, {limit=n}]) -> {r1, r2, ..., n=#fns}, or nil, err
-- Runs every function of the list concurrently (at most `limit` at once)
-- and returns their first results in the list's order. If one raises, the
-- others are cancelled and gather returns nil and an error with the same
-- kind and message, err.index naming the function and err.cause the
-- original error value.
function M.gather(fns, opts)
  if type(fns) ~= "table" then
    error("bad argument #1 to 'gather' (list of functions expected)", 2)
  end
  local n = #fns
  for i = 1, n do check_function(fns[i], 1, "gather") end
  local limit = opts and opts.limit or math.max(n, 1)
  if type(limit) ~= "number" or limit < 1 then
    error("bad argument #2 to 'gather' (limit must be >= 1)", 2)
  end
  local results, failure, next_index, running = {n = n}, nil, 1, 0
  local done = cond()
  local workers = {}

  local function worker()
    local finished <close> = setmetatable({}, {__close = function()
      running = running - 1              -- whatever happened to this worker
      done:signal()
    end})
    while not failure and next_index <= n do
      local i = next_index
      next_index = i + 1
      local ok, value = pcall(fns[i])
      if ok then
        results[i] = value
      elseif not failure then
        failure = indexed_failure(value, i)
      end
    end
  end

  local scope <close> = setmetatable({}, {__close = function()
    for _, w in ipairs(workers) do w:cancel() end
  end})
  for w = 1, math.min(limit, n) do
    running = running + 1
    workers[w] = spawn(worker)
  end
  while running > 0 do
    done:wait()
    if failure then
      for _, w in ipairs(workers) do w:cancel() end
      for _, w in ipairs(workers) do w:join() end
      return nil, failure
    end
  end
  return results
end

M.all = M.gather

-- }======================================================

-- {====================================================== channels

local Channel = {}
Channel.__index = Channel
Channel.__name = "ato.channel"

--- ato.channel([capacity]) -> a channel
-- capacity 0 (the default) makes send wait until a receiver took the value.
function M.channel(capacity)
  capacity = capacity or 0
  if type(capacity) ~= "number" or capacity < 0 or capacity % 1 ~= 0 then
    error("bad argument #1 to 'channel' (capacity must be an integer >= 0)", 2)
  end
  return setmetatable({
    capacity = capacity, items = {}, head = 1, tail = 0,
    sent = 0, taken = 0, closed = false,
    readable = cond(), writable = cond(),
  }, Channel)
end

local function count(ch) return ch.tail - ch.head + 1 end

local function closed_error() return err("closed", "channel is closed") end

-- Waits on c until the deadline (nil: none); true, or nil and a timeout
-- error naming the operation and the caller's own timeout.
local function wait_until(c, deadline, what, timeout)
  if c:wait(deadline and math.max(0, deadline - M.now())) then return true end
  return nil, err("timeout", ("channel %s timed out after %g s"):format(what, timeout),
                  {seconds = timeout})
end

--- ch:send(value [, timeout]) -> true, or nil, err (kind "closed"/"timeout")
-- On an unbuffered channel a send that fails (timeout, close, cancellation)
-- takes its value back: no receiver gets a value whose send failed.
function Channel:send(value, timeout)
  if value == nil then error("bad argument #1 to 'send' (value expected, got nil)", 2) end
  local deadline = timeout and M.now() + timeout
  while not self.closed and count(self) >= math.max(self.capacity, 1) do
    local ok, e = wait_until(self.writable, deadline, "send", timeout)
    if not ok then return nil, e end
  end
  if self.closed then return nil, closed_error() end
  self.tail = self.tail + 1
  self.items[self.tail] = value
  self.sent = self.sent + 1
  self.readable:signal()
  if self.capacity > 0 then return true end
  local ticket = self.sent
  local withdraw <close> = setmetatable({}, {__close = function()
    if self.taken < ticket then          -- still ours: the only item queued
      self.items[self.tail] = nil
      self.tail, self.sent = self.tail - 1, self.sent - 1
      self.writable:broadcast()
    end
  end})
  while self.taken < ticket do
    if self.closed then return nil, closed_error() end
    local ok, e = wait_until(self.writable, deadline, "send", timeout)
    if not ok then return nil, e end
  end
  return true
end

--- ch:recv([timeout]) -> value, or nil when closed and empty, or nil, err
function Channel:recv(timeout)
  local deadline = timeout and M.now() + timeout
  while count(self) == 0 do
    if self.closed then return nil end
    local ok, e = wait_until(self.readable, deadline, "recv", timeout)
    if not ok then return nil, e end
  end
  local value = self.items[self.head]
  self.items[self.head] = nil
  self.head = self.head + 1
  self.taken = self.taken + 1
  self.writable:broadcast()
  return value
end

Channel.receive = Channel.recv

--- ch:close(): no more sends; receivers drain what is left, then get nil
function Channel:close()
  if self.closed then return false end
  self.closed = true
  self.readable:broadcast()
  self.writable:broadcast()
  return true
end

function Channel:__len() return count(self) end

-- `for v in ch do ... end` receives until the channel is closed and empty
function Channel:__call() return self:recv() end

function Channel:__tostring()
  return ("ato.channel (%d/%d%s)"):format(count(self), self.capacity,
    self.closed and ", closed" or "")
end

-- }======================================================

-- Submodules load on first use, so `require "ato"` stays cheap.
local lazy = {fs = "ato.fs", exec = "ato.exec", log = "ato.log", redact = "ato.redact"}

return setmetatable(M, {__index = function(t, k)
  local name = lazy[k]
  if name == nil then return nil end
  local mod = require(name)
  rawset(t, k, mod)
  return mod
end})
