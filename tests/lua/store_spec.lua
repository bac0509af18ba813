-- ato.store on real SQLite files: layout and modes, key/value, transactions
-- (rollback on error and on cancellation, savepoints), two processes
-- writing at once, a locked database, a truncated file, a file that is not
-- a database, a read-only directory, a schema newer than the binary, the
-- audit log's redaction, and that queries leave the loop running.
local ato = require "ato"
local store = require "ato.store"
local support = require "support"

local function mode_of(path)
  return assert(ato.fs.stat(path)).perms
end

local function sqlite(db, sql)
  local r = assert(ato.exec{"sqlite3", db, sql})
  assert(r.ok, r.stderr)
  return (r.stdout:gsub("%s+$", ""))
end

-- Runs a Lua chunk in a child bin/ato with env; returns the exec result.
local function child(code, env, timeout)
  return support.ato({"-e", code}, {env = env, timeout = timeout or 30})
end

describe("ato.store", function()
  support.clean_after_each()
  local dir, cleanup
  setup(function() dir, cleanup = support.tmpdir() end)
  teardown(function() cleanup() end)

  local n = 0
  local function fresh_path()
    n = n + 1
    return ("%s/db%d/state.db"):format(dir, n)
  end

  describe("files", function()
    it("creates missing directories 0700 and the file 0600, with WAL on", function()
      local path = dir .. "/deep/er/ato.db"
      local s <close> = assert(store.open(path))
      assert.equal("0700", mode_of(dir .. "/deep"))
      assert.equal("0700", mode_of(dir .. "/deep/er"))
      assert.equal("0600", mode_of(path))
      assert(s:put("k", 1))
      assert.equal("0600", mode_of(path .. "-wal"))
      assert.equal("wal", sqlite(path, "PRAGMA journal_mode"))
      assert.equal(tostring(store.SCHEMA_VERSION), sqlite(path, "PRAGMA user_version"))
      assert.equal(store.SCHEMA_VERSION, s:version())
    end)

    it("brings an existing file that others can read back to 0600", function()
      local path = fresh_path()
      assert(ato.fs.mkdir(path:match("^(.*)/"), "700", {parents = true}))
      sqlite(path, "CREATE TABLE other (x)")
      assert(ato.exec{"chmod", "644", path}.ok)
      local s <close> = assert(store.open(path))
      assert.equal("0600", mode_of(path))
      assert.equal("0", sqlite(path, "SELECT count(*) FROM other"))   -- left alone
    end)

    it("uses $ATO_DB, then $XDG_STATE_HOME/ato/ato.db, then ~/.local/state", function()
      local code = [[local s = require "ato.store"; print(s.default_path()); assert(s.put("k", 42))]]
      local r = child(code, {ATO_DB = dir .. "/env/a.db", HOME = dir .. "/home"})
      assert.equal(0, r.code, r.stderr)
      assert.equal(dir .. "/env/a.db\n", r.stdout)
      assert.equal("42", sqlite(dir .. "/env/a.db", "SELECT value FROM kv WHERE key = 'k'"))
      r = child(code, {XDG_STATE_HOME = dir .. "/xdg", HOME = dir .. "/home"})
      assert.equal(dir .. "/xdg/ato/ato.db\n", r.stdout)
      r = child(code, {HOME = dir .. "/home"})
      assert.equal(dir .. "/home/.local/state/ato/ato.db\n", r.stdout)
      r = support.ato({"--db", dir .. "/flag.db", "-e", code}, {env = {ATO_DB = dir .. "/env/a.db"}})
      assert.equal(dir .. "/flag.db\n", r.stdout)              -- --db wins over $ATO_DB
      assert.equal("0600", mode_of(dir .. "/home/.local/state/ato/ato.db"))
    end)
  end)

  describe("key/value", function()
    local s
    before_each(function() s = assert(store.open(fresh_path())) end)
    after_each(function() s:close() end)

    it("keeps JSON values: tables, integers, floats, booleans, strings with any bytes", function()
      local v = {day = 3, rate = 0.25, on = true, list = {"a", "b"}, nested = {deep = {x = -1}},
                 bytes = "a\0b\xff\n"}
      assert.is_true(s:put("plan/acme", v))
      local got = s:get("plan/acme")
      assert.same(v, got)
      assert.equal("integer", math.type(got.day))
      assert.equal("float", math.type(got.rate))
      assert.equal(7, (function() s:put("n", 7) return s:get("n") end)())
      assert.is_nil(s:get("missing"))
      assert.is_true(s:put("plan/acme", "replaced"))
      assert.equal("replaced", s:get("plan/acme"))
    end)

    it("lists by prefix in key order, % and _ being ordinary characters", function()
      for _, k in ipairs{"a/2", "a/1", "a/10", "a%", "a_x", "ab", "b/1", "\xff\xff", "\xff\xffz"} do
        assert(s:put(k, k))
      end
      local function keys(prefix)
        local out = {}
        for i, e in ipairs(assert(s:list(prefix))) do out[i] = e.key; assert.equal(e.key, e.value) end
        return out
      end
      assert.same({"a/1", "a/10", "a/2"}, keys("a/"))
      assert.same({"a%"}, keys("a%"))
      assert.same({"a_x"}, keys("a_"))
      assert.same({"\xff\xff", "\xff\xffz"}, keys("\xff\xff"))
      assert.equal(9, #keys())
    end)

    it("deletes, telling whether the key was there", function()
      assert(s:put("k", 1))
      assert.is_true(s:delete("k"))
      assert.is_false(s:delete("k"))
      assert.is_nil(s:get("k"))
    end)

    it("raises for misuse: bad keys, nil or unencodable values, a closed store", function()
      assert.has_error(function() s:put("", 1) end)
      assert.has_error(function() s:put(1, 1) end)
      assert.has_error(function() s:put("k", nil) end)
      assert.has_error(function() s:put("k", {f = print}) end)
      assert.has_error(function() s:put("k", 0 / 0) end)
      local t = {}
      t.self = t
      assert.has_error(function() s:put("k", t) end)
      assert.has_error(function() s.get("k") end)
      local other = assert(store.open(fresh_path()))
      other:close()
      other:close()                                  -- idempotent
      assert.has_error(function() other:get("k") end, "attempt to use a closed store")
    end)

    it("runs raw SQL with parameters and reports bad SQL as nil, err", function()
      local rows, info = assert(s:exec("INSERT INTO kv (key, value, updated_at) VALUES (?1, ?2, ?3)", "raw", "1", 0))
      assert.same({}, rows)
      assert.equal(1, info.changes)
      rows = assert(s:exec("SELECT key, value, NULL AS empty FROM kv WHERE key = ?1", "raw"))
      assert.same({{key = "raw", value = "1"}}, rows)
      local bad, err = s:exec("SELEC 1")
      assert.is_nil(bad)
      assert.equal("sql", err.kind)
      assert.matches("syntax error", err.message)
      bad, err = s:exec("SELECT ?1, ?2", 1)
      assert.is_nil(bad)
      assert.matches("takes 2 parameter", err.message)
      bad, err = s:exec("SELECT 1; SELECT 2")
      assert.matches("one statement at a time", err.message)
      assert.has_error(function() s:exec("SELECT ?1", {}) end)
    end)

    it("keeps the loop running while a long query runs in the thread pool", function()
      local ticks = 0
      local ticker = ato.spawn(function()
        while true do ato.sleep(0.005); ticks = ticks + 1 end
      end)
      local rows = assert(s:exec([[WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000)
                                   SELECT count(*) AS n FROM c]]))
      ticker:cancel()
      ticker:join()
      assert.equal(3000000, rows[1].n)
      assert.is_true(ticks >= 2, "the ticker ran " .. ticks .. " times during the query")
    end)
  end)

  describe("transactions", function()
    local s
    before_each(function() s = assert(store.open(fresh_path())) end)
    after_each(function() s:close() end)

    it("commits what fn did and returns its results", function()
      local a, b = s:tx(function(t, x) t:put("a", x); t:put("b", x + 1); return "done", x end, 1)
      assert.same({"done", 1}, {a, b})
      assert.same({1, 2}, {s:get("a"), s:get("b")})
    end)

    it("rolls back everything when fn raises, and raises again", function()
      assert(s:put("a", "before"))
      local ok, err = pcall(s.tx, s, function(t)
        t:put("a", "inside")
        t:put("c", "new")
        error("boom")
      end)
      assert.is_false(ok)
      assert.matches("boom", tostring(err))
      assert.equal("before", s:get("a"))
      assert.is_nil(s:get("c"))
      assert.is_false(s.db:in_transaction())
    end)

    it("nests as savepoints: a caught inner failure undoes only the inner part", function()
      s:tx(function(t)
        t:put("outer", 1)
        local ok = pcall(t.tx, t, function(u) u:put("inner", 1); error("inner fails") end)
        assert.is_false(ok)
        t:tx(function(u) u:put("inner2", 2) end)
      end)
      assert.equal(1, s:get("outer"))
      assert.is_nil(s:get("inner"))
      assert.equal(2, s:get("inner2"))
    end)

    it("rolls back when the task is cancelled inside the transaction", function()
      local entered = ato.cond()
      local worker = ato.spawn(function()
        s:tx(function(t)
          t:put("half", "written")
          entered:signal()
          ato.sleep(60)
          t:put("never", true)
        end)
      end)
      entered:wait()
      worker:cancel()
      local ok, err = worker:join()
      assert.is_nil(ok)
      assert.matches("cancel", tostring(err))
      assert.is_false(s.db:in_transaction())
      assert.is_nil(s:get("half"))
      assert.is_true(s:put("after", 1))              -- the store is usable
    end)

    it("keeps another task's statements out of a running transaction", function()
      local inside = ato.cond()
      local t1 = ato.spawn(function()
        pcall(s.tx, s, function(t)
          t:put("x", "from t1")
          inside:signal()
          ato.sleep(0.05)
          error("t1 gives up")
        end)
        return true
      end)
      inside:wait()
      local t2 = ato.spawn(function() return s:put("y", "from t2") end)
      assert(t1:join())
      assert(t2:join())
      assert.is_nil(s:get("x"))                      -- rolled back with t1
      assert.equal("from t2", s:get("y"))            -- not swept into t1's rollback
    end)
  end)

  describe("other processes and broken files", function()
    it("takes two processes writing at once: every write lands", function()
      local path = fresh_path()
      assert(store.open(path)):close()
      local code = [[
        local s = assert(require("ato.store").open(os.getenv("DB")))
        for i = 1, 100 do
          assert(s:tx(function(t) t:put(os.getenv("WHO") .. "/" .. i, i); return true end))
          assert(s:put(os.getenv("WHO") .. "/plain/" .. i, i))
        end
      ]]
      local a = ato.spawn(child, code, {DB = path, WHO = "a"}, 60)
      local b = ato.spawn(child, code, {DB = path, WHO = "b"}, 60)
      local ra, rb = a:join(), b:join()
      assert.equal(0, ra.code, ra.stderr)
      assert.equal(0, rb.code, rb.stderr)
      local s <close> = assert(store.open(path))
      assert.equal(200, #assert(s:list("a/")))
      assert.equal(200, #assert(s:list("b/")))
      assert.equal("ok", sqlite(path, "PRAGMA integrity_check"))
    end)

    it("reports a database locked past the busy timeout as busy, then works once it is free", function()
      local path = fresh_path()
      assert(store.open(path)):close()
      local holder = ato.spawn(child, [[
        local s = assert(require("ato.store").open(os.getenv("DB")))
        s:tx(function(t) t:put("held", 1); io.stdout:write("holding\n"); io.stdout:flush(); require("ato").sleep(1.5) end)
      ]], {DB = path})
      local s <close> = assert(store.open(path, {busy_ms = 100}))
      for _ = 1, 250 do                              -- until the holder has the write lock
        if not assert(ato.exec{"sqlite3", path, "BEGIN IMMEDIATE; ROLLBACK;"}).ok then break end
        ato.sleep(0.02)
      end
      local ok, err = s:put("mine", 1)
      assert.is_nil(ok)
      assert.equal("busy", err.kind)
      assert.matches("database is locked", err.message)
      assert.matches(path, err.message, 1, true)
      local r = holder:join()
      assert.equal(0, r.code, r.stderr)
      assert.is_true(s:put("mine", 1))
      assert.equal(1, s:get("held"))
    end)

    it("names a truncated database file as corrupt, without crashing", function()
      local path = fresh_path()
      local s = assert(store.open(path))
      s:tx(function(t) for i = 1, 3000 do t:put(("k%05d"):format(i), ("v"):rep(100)) end end)
      s:close()
      sqlite(path, "PRAGMA wal_checkpoint(TRUNCATE)")
      local size = assert(ato.fs.stat(path)).size
      assert.is_true(size > 100000)
      assert(ato.exec{"truncate", "-s", tostring(size // 2), path}.ok)
      local t, err = store.open(path)
      if t then                                      -- the header survived: the data does not
        local list
        list, err = t:list("k")
        t:close()
        assert.is_nil(list)
      end
      assert.equal("corrupt", err.kind)
      assert.matches(path, err.message, 1, true)
      assert.matches("malformed", err.message)
    end)

    it("refuses a file that is not a database, naming it", function()
      local path = fresh_path()
      assert(ato.fs.mkdir(path:match("^(.*)/"), "700", {parents = true}))
      assert(ato.fs.write(path, ("not a database\n"):rep(500)))
      local s, err = store.open(path)
      assert.is_nil(s)
      assert.equal("corrupt", err.kind)
      assert.equal("store: " .. path .. ": file is not a database (the file is damaged or not an ato"
        .. " database: move it away and restore a backup, or start over)", err.message)
    end)

    it("refuses a schema newer than it knows and leaves the file alone", function()
      local path = fresh_path()
      local s = assert(store.open(path))
      assert(s:put("k", 1))
      s:close()
      sqlite(path, "PRAGMA user_version = 99")
      local t, err = store.open(path)
      assert.is_nil(t)
      assert.equal("schema", err.kind)
      assert.matches("schema version 99 is newer than this ato knows %(" .. store.SCHEMA_VERSION .. "%)", err.message)
      assert.equal("99", sqlite(path, "PRAGMA user_version"))
      assert.equal("1", sqlite(path, "SELECT value FROM kv WHERE key = 'k'"))
    end)

    it("reports a read-only directory with one clear error", function()
      local ro = dir .. "/readonly"
      assert(ato.fs.mkdir(ro, "755"))
      assert(ato.exec{"chmod", "755", dir}.ok)       -- mktemp made it 0700
      assert(ato.exec{"chmod", "555", ro}.ok)
      local code = [[
        local s, err = require("ato.store").open(os.getenv("DB"))
        print(s == nil, err and err.kind, err and err.message)
      ]]
      -- root ignores directory modes: drop to nobody when root
      local cmd = {support.ato_bin, "-e", code, env = {DB = ro .. "/state.db"}, timeout = 30}
      if assert(ato.exec{"id", "-u"}).stdout == "0\n" then
        table.insert(cmd, 1, "--clear-groups")
        table.insert(cmd, 1, "--regid=nogroup")
        table.insert(cmd, 1, "--reuid=nobody")
        table.insert(cmd, 1, "setpriv")
      end
      local r = assert(ato.exec(cmd))
      assert.equal(0, r.code, r.stderr)
      assert.equal(("true\treadonly\tstore: %s/state.db: cannot create: Permission denied\n"):format(ro), r.stdout)
    end)
  end)

  describe("audit log", function()
    it("records actions with redacted details; the secret never reaches the file", function()
      local path = fresh_path()
      local s <close> = assert(store.open(path))
      local key = "SG." .. ("Ab3dE"):rep(4) .. "xy" .. "." .. ("Q9w8E7r6T5"):rep(4) .. "abc"
      local id = assert(s:audit{actor = "ops", action = "apikey.delete", target = "key " .. key,
                                details = {api_key = key, note = "leaked in " .. key, count = 2}})
      assert.equal("integer", math.type(id))
      assert(s:audit{action = "subuser.disable", target = "attacker1"})
      local log = assert(s:audit_log())
      assert.equal(2, #log)
      assert.equal("subuser.disable", log[1].action)
      local e = log[2]
      assert.same({"ops", "apikey.delete", 2}, {e.actor, e.action, e.details.count})
      assert.is_nil(e.target:find(key, 1, true))
      assert.is_nil(e.details.api_key:find(key, 1, true))
      assert.is_nil(e.details.note:find(key, 1, true))
      assert.matches("^leaked in SG%.", e.details.note)
      assert.equal(1, #assert(s:audit_log{action = "subuser.disable"}))
      s:close()
      sqlite(path, "PRAGMA wal_checkpoint(TRUNCATE)")
      local raw = assert(ato.fs.read(path))
      assert.is_nil(raw:find(key, 1, true), "the key is in the database file")
      assert.is_nil(raw:find(key:sub(4, 25), 1, true), "a part of the key is in the database file")
    end)

    it("raises for an entry without an action", function()
      local s <close> = assert(store.open(fresh_path()))
      assert.has_error(function() s:audit{target = "x"} end)
      assert.has_error(function() s:audit("x") end)
    end)
  end)
end)
