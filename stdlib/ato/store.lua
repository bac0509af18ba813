-- ato.store: the state store (DESIGN.md, "State"): playbook key/value
-- state, transactions and the audit log, in one SQLite file (WAL, mode
-- 0600) shared with the scheduler's jobs and runs. The SQLite work runs in
-- the thread pool (ato.storedb); only the calling task waits.
--
--   local store = require "ato.store"
--   store.put("rewarm/acme/day", 3)                 -- the default database
--   local day = store.get("rewarm/acme/day")
--   store.tx(function(s) s:put("a", 1); s:put("b", 2) end)   -- all or nothing
--   store.audit{action = "apikey.delete", target = "key id", details = {...}}
--   local db = store.open("/path/to/other.db")      -- an explicit file
--
-- The default file is $ATO_DB (`ato --db PATH` sets it), else
-- $XDG_STATE_HOME/ato/ato.db, else ~/.local/state/ato/ato.db.
--
-- Values are anything JSON can hold (tables, strings, numbers, booleans);
-- keys are non-empty strings. Expected failures (a locked or corrupt
-- database, a read-only directory) return nil, err with err.kind one of
-- busy, corrupt, readonly, full, open, schema, io; misuse raises.
local ato = require "ato"
local cjson = require "cjson"
local storedb = require "ato.storedb"
local log = require "ato.log"

local M = {SCHEMA_VERSION = storedb.SCHEMA_VERSION}

local Store = {}
Store.__index = Store

-- {====================================================== encoding

local json = cjson.new()
json.encode_sparse_array(true)
json.encode_invalid_numbers(false)

-- JSON text of v; misuse (a function, a cycle, NaN) raises at the caller.
local function encode(v, level)
  if v == nil then error("bad value (nil): use delete to remove a key", level + 1) end
  local ok, text = pcall(json.encode, v)
  if not ok then error("value cannot be stored: " .. tostring(text):gsub("^.-: ", ""), level + 1) end
  return text
end

local decode = require("ato.json").decode   -- whole numbers come back as integers

local function check_key(key, level)
  if type(key) ~= "string" or key == "" then
    error("bad key (non-empty string expected, got " .. type(key) .. ")", level + 1)
  end
end

-- }======================================================

-- {====================================================== the connection lock

-- One task at a time uses a connection: a transaction's statements must
-- not interleave with another task's. The lock is re-entrant for the task
-- holding it, so calls inside store.tx(fn) go straight through.
local function lock(self)
  local me = ato.current()
  if self.owner == me then
    self.depth = self.depth + 1
    return
  end
  while self.owner ~= nil do self.free:wait() end
  self.owner, self.depth = me, 1
end

local function unlock(self)
  self.depth = self.depth - 1
  if self.depth == 0 then
    self.owner = nil
    self.free:signal()
  end
end

-- Runs fn(...) holding the lock; the lock is released however fn ends.
local function locked(self, fn, ...)
  if not self.db then error("attempt to use a closed store", 3) end
  lock(self)
  local release <close> = setmetatable({}, {__close = function() unlock(self) end})
  return fn(...)
end

-- }======================================================

-- {====================================================== opening

--- The default database path (not created).
function M.default_path()
  local env = os.getenv("ATO_DB")
  if env and env ~= "" then return env end
  local state = os.getenv("XDG_STATE_HOME")
  if not state or state == "" then
    local home = os.getenv("HOME")
    if not home or home == "" then return nil, ato.err("open", "no ATO_DB, XDG_STATE_HOME or HOME to put the database in") end
    state = home .. "/.local/state"
  end
  return state .. "/ato/ato.db"
end

--- store.open([path [, {busy_ms =, readonly =}]]) -> store | nil, err
function M.open(path, opts)
  if path ~= nil and type(path) ~= "string" then error("bad argument #1 to 'open' (string expected)", 2) end
  if opts ~= nil and type(opts) ~= "table" then error("bad argument #2 to 'open' (table expected)", 2) end
  if path == nil then
    local p, err = M.default_path()
    if not p then return nil, err end
    path = p
  end
  local db, err = storedb.open(path, opts)
  if not db then return nil, err end
  return setmetatable({db = db, path = path, free = ato.cond(), depth = 0}, Store)
end

local default                           -- the default store, opened on first use

--- The default store, opened on first use; nil, err if it cannot be.
function M.default()
  if default and default.db then return default end
  local s, err = M.open()
  if not s then return nil, err end
  default = s
  return s
end

function Store:close()
  if self.db then
    local db = self.db
    self.db = nil
    db:close()
  end
end
Store.__close = Store.close
Store.__gc = Store.close

function Store:__tostring()
  return ("ato.store (%s%s)"):format(self.path, self.db and "" or ", closed")
end

--- The schema version of the open file.
function Store:version() return self.db:version() end

-- }======================================================

-- {====================================================== raw SQL

--- store:exec(sql, ...) -> rows, info | nil, err: one statement, for the
--- scheduler and for playbooks that need more than key/value.
function Store:exec(sql, ...)
  if type(sql) ~= "string" then error("bad argument #1 to 'exec' (string expected)", 2) end
  if not self.db then error("attempt to use a closed store", 2) end
  return locked(self, self.db.exec, self.db, sql, ...)
end

-- }======================================================

-- {====================================================== key/value

function Store:get(key)
  check_key(key, 2)
  local rows, err = self:exec("SELECT value FROM kv WHERE key = ?1", key)
  if not rows then return nil, err end
  if rows[1] == nil then return nil end
  return decode(rows[1].value)
end

--- store:put(key, value) -> true | nil, err
function Store:put(key, value)
  check_key(key, 2)
  local text = encode(value, 2)
  local rows, err = self:exec(
    "INSERT INTO kv (key, value, updated_at) VALUES (?1, ?2, ?3)"
    .. " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    key, text, ato.time())
  if not rows then return nil, err end
  return true
end

--- store:delete(key) -> true if it existed, false if not | nil, err
function Store:delete(key)
  check_key(key, 2)
  local rows, info = self:exec("DELETE FROM kv WHERE key = ?1", key)
  if not rows then return nil, info end
  return info.changes > 0
end

-- The smallest string greater than every string starting with prefix, or
-- nil when there is none (a prefix of only \xff bytes).
local function prefix_end(prefix)
  local s = prefix
  while #s > 0 do
    local last = s:byte(-1)
    if last < 255 then return s:sub(1, -2) .. string.char(last + 1) end
    s = s:sub(1, -2)
  end
  return nil
end

--- store:list([prefix]) -> {{key =, value =}, ...} in key order | nil, err
function Store:list(prefix)
  if prefix ~= nil and type(prefix) ~= "string" then
    error("bad argument #1 to 'list' (string expected)", 2)
  end
  prefix = prefix or ""
  local hi = prefix_end(prefix)
  -- a range, not LIKE: keys may hold % and _, and the range uses the index
  local rows, err
  if hi then
    rows, err = self:exec("SELECT key, value FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key", prefix, hi)
  else
    rows, err = self:exec("SELECT key, value FROM kv WHERE key >= ?1 ORDER BY key", prefix)
  end
  if not rows then return nil, err end
  for i, r in ipairs(rows) do rows[i] = {key = r.key, value = decode(r.value)} end
  return rows
end

-- }======================================================

-- {====================================================== transactions

--- store:tx(fn, ...) -> fn's results | nil, err
--- Runs fn(store, ...) in one transaction: committed when fn returns,
--- rolled back when it raises (the error is raised again), when it is
--- cancelled, or when the commit fails (nil, err). Nested calls are
--- savepoints: an inner failure that the outer fn catches undoes only the
--- inner part. BEGIN IMMEDIATE takes the write lock at once, so two
--- processes' transactions queue instead of failing half-way.
function Store:tx(fn, ...)
  if type(fn) ~= "function" then error("bad argument #1 to 'tx' (function expected)", 2) end
  return locked(self, function(...)
    local depth = self.txdepth or 0
    local name = "ato_sp" .. depth
    local ok, err = self.db:script(depth == 0 and "BEGIN IMMEDIATE" or ("SAVEPOINT " .. name))
    if not ok then return nil, err end
    self.txdepth = depth + 1
    local done = false
    -- Leaving by an error raised below (a cancelled task's waits raise):
    -- the outermost level rolls back without yielding, since a cancelled
    -- task cannot wait; inner levels leave it to the outermost.
    local guard <close> = setmetatable({}, {__close = function()
      self.txdepth = depth
      if not done and depth == 0 and self.db then self.db:abort() end
    end})
    local results = table.pack(pcall(fn, self, ...))
    if not results[1] then
      if depth == 0 then
        self.db:abort()
      else
        self.db:script("ROLLBACK TO " .. name)
        self.db:script("RELEASE " .. name)
      end
      done = true
      error(results[2], 0)
    end
    local cok, cerr = self.db:script(depth == 0 and "COMMIT" or ("RELEASE " .. name))
    if not cok then
      if depth == 0 then self.db:abort() end
      done = true
      return nil, cerr
    end
    done = true
    return table.unpack(results, 2, results.n)
  end, ...)
end

-- }======================================================

-- {====================================================== audit

local function opt_string(t, k, required)
  local v = t[k]
  if v == nil and not required then return nil end
  if type(v) ~= "string" or v == "" then
    error(("bad field '%s' (non-empty string expected)"):format(k), 3)
  end
  return v
end

--- store:audit{action =, target =, actor =, details =} -> id | nil, err
--- Records a mutating action. details are redacted (ato.log's rules:
--- secret-named fields and secret-looking text) before they are stored.
function Store:audit(entry)
  if type(entry) ~= "table" then error("bad argument #1 to 'audit' (table expected)", 2) end
  local action = opt_string(entry, "action", true)
  local target = opt_string(entry, "target")
  local actor = entry.actor ~= nil and opt_string(entry, "actor") or (os.getenv("USER") or "ato")
  local details = entry.details ~= nil and encode(log.redacted(entry.details), 2) or nil
  local rows, info = self:exec("INSERT INTO audit (at, actor, action, target, details) VALUES (?1, ?2, ?3, ?4, ?5)",
    ato.time(), actor, action, target and log.redacted(target) or nil, details)
  if not rows then return nil, info end
  return info.last_id
end

--- store:audit_log{since =, action =, limit =} -> entries, newest first
function Store:audit_log(q)
  q = q or {}
  local rows, err = self:exec(
    "SELECT id, at, actor, action, target, details FROM audit"
    .. " WHERE at >= ?1 AND (?2 IS NULL OR action = ?2) ORDER BY id DESC LIMIT ?3",
    q.since or 0, q.action, q.limit or 100)
  if not rows then return nil, err end
  for _, r in ipairs(rows) do
    if r.details then r.details = decode(r.details) end
  end
  return rows
end

-- }======================================================

-- Every method but close raises on a closed store, at the caller's line.
for _, name in ipairs{"get", "put", "delete", "list", "tx", "audit", "audit_log", "exec", "version"} do
  local method = Store[name]
  Store[name] = function(self, ...)
    if type(self) ~= "table" or getmetatable(self) ~= Store then
      error(("bad self to '%s' (use store:%s(...))"):format(name, name), 2)
    end
    if not self.db then error("attempt to use a closed store", 2) end
    return method(self, ...)
  end
end

-- Module-level shortcuts on the default store.
for _, name in ipairs{"get", "put", "delete", "list", "tx", "audit", "audit_log", "exec"} do
  M[name] = function(...)
    local s, err = M.default()
    if not s then return nil, err end
    return s[name](s, ...)
  end
end

return M
