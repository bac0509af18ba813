-- ato.sendgrid against the sandbox (ato.sendgrid.sandbox) on loopback, with
-- its state in a real SQLite file: keys and scopes, the API key methods,
-- an invalid key, a key without the scope, paging over 1,200 bounces, a
-- rate-limited walk that never draws a 429, a 429 waited out until its
-- reset, and `ato sandbox` as a command (env file, loopback only).
local ato = require "ato"
local store = require "ato.store"
local sendgrid = require "ato.sendgrid"
local sandbox = require "ato.sendgrid.sandbox"
local support = require "support"

describe("ato.sendgrid with the sandbox", function()
  support.clean_after_each()
  local dir, cleanup
  setup(function() dir, cleanup = support.tmpdir() end)
  teardown(function() cleanup() end)

  local n = 0
  -- A fresh sandbox (its own database); returns base url, admin key, stop().
  local function fresh(opts)
    n = n + 1
    local s = assert(store.open(("%s/sb%d/ato.db"):format(dir, n)))
    opts = opts or {}
    opts.store = s
    local server, base, admin = sandbox.start(opts)
    assert(server, base)
    return base, admin, function() server:close() s:close() end
  end

  it("builds a client from the caller, the environment or a 0600 key file, never showing the key", function()
    local base, admin, stop = fresh()
    finally(stop)
    local c = assert(sendgrid.client{api_key = admin, base_url = base})
    assert.is_nil(tostring(c):find(admin, 1, true))
    assert.matches("SG%.", tostring(c))
    local file = dir .. "/key"
    assert(ato.fs.write(file, admin .. "\n", "644"))
    local none, err = sendgrid.client{key_file = file, base_url = base}
    assert.is_nil(none)
    assert.matches("mode 0644: it must be 0600 or stricter", err.message)
    assert(ato.exec{"chmod", "600", file})
    local fromfile = assert(sendgrid.client{key_file = file, base_url = base})
    assert.same(assert(c:scopes()), assert(fromfile:scopes()))
    local r = support.ato({"-e", "local c = assert(require('ato.sendgrid').client()) print(#assert(c:scopes()))"},
                         {env = {SENDGRID_API_KEY = admin, SENDGRID_BASE_URL = base}})
    assert.equal(0, r.code, r.stderr)
    assert.equal(tostring(#sandbox.FULL_ACCESS) .. "\n", r.stdout)
    local nokey, e2 = sendgrid.client{api_key = "", base_url = base}
    assert.is_nil(nokey)
    assert.equal("no_key", e2.kind)
    -- the scenario comes from a public seed; its keys must not
    local _, admin2, stop2 = fresh()
    stop2()
    assert.are_not.equal(admin, admin2)
  end)

  it("lists, creates, reads, renames, rescopes and deletes API keys; a deleted key stops working", function()
    local base, admin, stop = fresh()
    finally(stop)
    local c = assert(sendgrid.client{api_key = admin, base_url = base})
    local names = {}
    for k in c:api_keys() do names[#names + 1] = k.name end
    assert.same({"ato-drill-admin", "production-mailer", "stats-dashboard"}, names)
    local made = assert(c:create_api_key("drill-limited", {"api_keys.read"}))
    assert.matches("^SG%.[%w_-]+%.[%w_-]+$", made.api_key)
    assert.same({"api_keys.read"}, made.scopes)
    assert.equal("drill-limited", assert(c:api_key(made.api_key_id)).name)
    assert.same({api_key_id = made.api_key_id, name = "renamed"}, assert(c:rename_api_key(made.api_key_id, "renamed")))
    assert(c:set_api_key_scopes(made.api_key_id, "renamed", {"api_keys.read", "stats.read"}))
    assert.same({"api_keys.read", "stats.read"}, assert(c:api_key(made.api_key_id)).scopes)
    local limited = assert(sendgrid.client{api_key = made.api_key, base_url = base})
    assert.same({"api_keys.read", "stats.read"}, assert(limited:scopes()))
    assert.is_true(c:delete_api_key(made.api_key_id))
    local gone, err = limited:scopes()
    assert.is_nil(gone)
    assert.equal(401, err.status)
    local missing, e404 = c:delete_api_key(made.api_key_id)
    assert.is_nil(missing)
    assert.same({404, "DELETE", "/v3/api_keys/" .. made.api_key_id}, {e404.status, e404.method, e404.path})
  end)

  it("reports an invalid key and a key without the scope as errors with the API's list, without the key", function()
    local base, admin, stop = fresh()
    finally(stop)
    local bad = "SG." .. ("x1Y2z3"):rep(3) .. "abcd" .. "." .. ("Qq9Ww8Ee7Rr6"):rep(3) .. "Tt5Yy4U"
    local c = assert(sendgrid.client{api_key = bad, base_url = base})
    local r, err = c:scopes()
    assert.is_nil(r)
    assert.same({"http", 401, "GET", "/v3/scopes"}, {err.kind, err.status, err.method, err.path})
    assert.matches("invalid, expired, or revoked", err.errors[1].message)
    -- every response carries the rate-limit headers, refusals too
    local seen = {}
    local traced = assert(sendgrid.client{api_key = bad, base_url = base, on_response = function(_, _, resp)
      seen[#seen + 1] = resp.headers["x-ratelimit-remaining"]
    end})
    traced:scopes()
    local known = assert(sendgrid.client{api_key = admin, base_url = base, on_response = function(_, _, resp)
      seen[#seen + 1] = resp.headers["x-ratelimit-remaining"]
    end})
    known:call("GET", "/v3/no/such/endpoint")
    assert.equal(2, #seen)
    assert.is_nil(tostring(err):find(bad, 1, true))
    local admin_c = assert(sendgrid.client{api_key = admin, base_url = base})
    local mailer = assert(admin_c:create_api_key("mailer-only", {"mail.send"}))
    local m = assert(sendgrid.client{api_key = mailer.api_key, base_url = base})
    local ok, e403 = pcall(function() for _ in m:api_keys() do end end)
    assert.is_false(ok)
    assert.equal(403, e403.status)
    -- a key cannot create a key with more than it has
    local lim = assert(sendgrid.client{api_key = assert(admin_c:create_api_key("k", {"api_keys.create"})).api_key,
                                       base_url = base})
    local none, e2 = lim:create_api_key("wider", {"mail.send"})
    assert.is_nil(none)
    assert.equal(403, e2.status)
  end)

  it("audits the ato scenario: rogue subuser, unknown teammate and invite, attacker IP, and removes them", function()
    local base, admin, stop = fresh{scenario = "ato", seed = 7}
    finally(stop)
    local c = assert(sendgrid.client{api_key = admin, base_url = base})
    local known_subusers = {["acme-marketing"] = true, ["acme-transactional"] = true}
    local rogue
    for u in c:subusers() do if not known_subusers[u.username] then rogue = u.username end end
    assert.matches("^mailer%-", rogue)
    assert.is_true(c:disable_subuser(rogue))
    assert.is_true(assert(c:subuser(rogue)).disabled)
    assert.is_true(c:delete_subuser(rogue))
    assert.is_nil(c:subuser(rogue))
    local _, e404 = c:delete_subuser(rogue)
    assert.equal(404, e404.status)
    local made = assert(c:create_subuser{username = "drill-sub", email = "d@acme.example", password = "x!A9x!A9x!A9",
                                         ips = {"198.51.100.10"}})
    assert.equal("drill-sub", made.username)
    assert.is_false(assert(c:subuser("drill-sub")).disabled)

    local unknown
    for t in c:teammates() do
      if t.username ~= "ops-lead" and t.username ~= "analyst" then unknown = t end
    end
    assert.matches("^support%-", unknown.username)
    assert.is_true(unknown.is_admin)
    local pending = assert(c:pending_teammates())
    assert.equal(1, #pending)
    assert.is_true(c:delete_invite(pending[1].token))
    assert.same({}, assert(c:pending_teammates()))
    assert(c:update_teammate(unknown.username, {"stats.read"}, false))
    assert.is_true(c:delete_teammate(unknown.username))
    local invited = assert(c:invite_teammate{email = "new@acme.example", scopes = {"stats.read"}, is_admin = false})
    assert.equal(24, #invited.token)

    -- the allow-list: our own address first, then the attacker's entry out
    local before = assert(c:ip_allowlist())
    assert.equal(2, #before)
    local mine = assert(c:allow_ips{"192.0.2.44"})
    assert.equal("192.0.2.44/32", mine[1].ip)
    local attacker
    for _, e in ipairs(assert(c:ip_allowlist())) do if e.ip == "203.0.113.77/32" then attacker = e end end
    assert.is_true(c:remove_allowed_ip(attacker.id))
    local ips = {}
    for _, e in ipairs(assert(c:ip_allowlist())) do ips[#ips + 1] = e.ip end
    assert.same({"198.51.100.10/32", "192.0.2.44/32"}, ips)
    local activity = assert(c:access_activity(10))
    assert.equal("203.0.113.77", activity[1].ip)          -- newest first
    local _, bad = c:allow_ips{"not-an-ip"}
    assert.equal(400, bad.status)

    -- a key without the teammates scope is refused
    local stats = assert(c:create_api_key("stats-only", {"stats.read"}))
    local limited = assert(sendgrid.client{api_key = stats.api_key, base_url = base})
    local none, e403 = limited:pending_teammates()
    assert.is_nil(none)
    assert.equal(403, e403.status)
  end)

  it("walks 1,200 bounces over pages, following the Link header", function()
    local base, admin, stop = fresh()
    finally(stop)
    local c = assert(sendgrid.client{api_key = admin, base_url = base})
    local seen, count = {}, 0
    for b in c:bounces() do
      assert.is_nil(seen[b.email], "a bounce twice")
      seen[b.email] = true
      count = count + 1
    end
    assert.equal(1200, count)
    assert.equal(3, c.calls)                   -- 500 + 500 + 200
    assert.is_true(c:delete_bounce("bounced00001@example.com") or c:delete_bounce("bounced00001@example.net"))
    count = 0
    for _ in c:bounces{limit = 100} do count = count + 1 end
    assert.equal(1199, count)
  end)

  it("paces a rate-limited walk so that it never draws a 429", function()
    local base, admin, stop = fresh{limit = 3, window = 1}
    finally(stop)
    local c = assert(sendgrid.client{api_key = admin, base_url = base})
    local count = 0
    for _ in c:bounces{limit = 150} do count = count + 1 end
    assert.equal(1200, count)
    assert.equal(8, c.calls)
    assert.equal(0, c.throttled, "a 429 was drawn")
    assert.is_true(c.waited > 0, "the walk never waited for a reset")
  end)

  it("waits out a 429 until X-RateLimit-Reset, then succeeds", function()
    local base, admin, stop = fresh{limit = 1, window = 1}
    finally(stop)
    local first = assert(sendgrid.client{api_key = admin, base_url = base})
    assert(first:scopes())
    local second = assert(sendgrid.client{api_key = admin, base_url = base})   -- knows no window
    local t0 = ato.time()
    assert(second:scopes())
    assert.equal(1, second.throttled)
    assert.is_true(second.waited > 0, "the 429 was not waited out")
    assert.is_true(ato.time() - t0 < 3, "waited too long")
  end)

  it("runs as `ato sandbox`: loopback only, base URL on stdout, env file 0600, survives a restart", function()
    local r = support.ato({"sandbox", "--listen", "0.0.0.0:8080"})
    assert.equal(2, r.code)
    assert.matches("binds loopback only", r.stderr)
    local db, envf = dir .. "/cli/ato.db", dir .. "/cli/sendgrid.env"
    assert(ato.fs.mkdir(dir .. "/cli", "700"))
    local port = 20000 + math.random(0, 20000)
    local child = ato.spawn(function()
      return ato.exec{support.ato_bin, "sandbox", "--listen", "127.0.0.1:" .. port, "--db", db,
                      "--env-file", envf, "--scenario", "ato", timeout = 60}
    end)
    local env
    for _ = 1, 300 do
      env = ato.fs.read(envf)
      if env then break end
      ato.sleep(0.02)
    end
    assert(env, "no env file")
    assert.equal("0600", assert(ato.fs.stat(envf)).perms)
    local base = env:match("SENDGRID_BASE_URL=(%S+)")
    local key = env:match("SENDGRID_API_KEY=(%S+)")
    assert.equal("http://127.0.0.1:" .. port, base)
    local c = assert(sendgrid.client{api_key = key, base_url = base})
    local names = {}
    for k in c:api_keys() do names[#names + 1] = k.name end
    assert.equal(5, #names)                    -- the ato scenario: two keys an attacker added
    assert(ato.exec{"pkill", "-TERM", "-f", "sandbox --listen 127.0.0.1:" .. port})
    local done = child:join()
    assert.equal(0, done.code, done.stderr)
    assert.equal(base .. "\n", done.stdout)
    assert.is_nil(done.stderr:find(key, 1, true))
    -- the account is in the database: the same key works after a restart
    -- (on a port the kernel picks), and the env file gets the new address
    -- with the key it had
    local again = ato.spawn(function()
      return ato.exec{support.ato_bin, "sandbox", "--listen", "127.0.0.1:0", "--db", db, "--env-file", envf,
                      timeout = 60}
    end)
    local env2
    for _ = 1, 300 do
      env2 = ato.fs.read(envf)
      if env2 ~= env then break end
      ato.sleep(0.02)
    end
    assert.are_not.equal(env, env2, "the env file was not rewritten after the restart")
    local base2 = env2:match("SENDGRID_BASE_URL=(%S+)")
    assert.matches("^http://127%.0%.0%.1:%d+$", base2)
    assert.equal(("SENDGRID_BASE_URL=%s\nSENDGRID_API_KEY=%s\n"):format(base2, key), env2)
    local c2 = assert(sendgrid.client{api_key = key, base_url = base2})
    assert(c2:scopes(), "the restarted sandbox does not know the key")
    assert(ato.exec{"pkill", "-TERM", "-f", "sandbox --listen 127.0.0.1:0 --db " .. db})
    assert.equal(0, again:join().code)
  end)
end)
