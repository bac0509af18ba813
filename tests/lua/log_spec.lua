-- ato.log: JSON lines off a terminal, human lines on one, levels, and
-- secrets redacted on every path (message, fields, nested values).
local ato = require "ato"
local cjson = require "cjson"
local support = require "support"

local KEY = "SG." .. ("A"):rep(11) .. ("b"):rep(11) .. "." .. ("C1"):rep(21) .. "D"
local GH = "ghp_" .. ("x9"):rep(18)

-- Runs code in a fresh ato whose stderr is a pipe; returns the stderr lines.
local function log_lines(code, args, env)
  local argv = {}
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  argv[#argv + 1] = "-e"
  argv[#argv + 1] = "local log = require 'ato.log' " .. code
  local r = support.ato(argv, {env = env})
  assert.equal(0, r.code, r.stderr)
  local lines = {}
  for line in r.stderr:gmatch("[^\n]+") do lines[#lines + 1] = line end
  return lines, r.stderr
end

describe("ato.log", function()
  support.clean_after_each()

  it("writes one JSON object per line when stderr is not a terminal", function()
    local lines = log_lines([[log.info("key revoked", {key_id = "abc", count = 3, ok = true, list = {1, 2}})]])
    assert.equal(1, #lines)
    local obj = cjson.decode(lines[1])
    assert.equal("info", obj.level)
    assert.equal("key revoked", obj.msg)
    assert.equal("abc", obj.key_id)
    assert.equal(3, obj.count)
    assert.is_true(obj.ok)
    assert.same({1, 2}, obj.list)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", obj.time)
    assert.truthy(lines[1]:find('^{"time":"[^"]+","level":"info","msg":"key revoked"'))
  end)

  it("keeps the reserved names and renames colliding fields", function()
    local obj = cjson.decode(log_lines([[log.warn("m", {msg = "x", level = "y", time = 1})]])[1])
    assert.equal("m", obj.msg)
    assert.equal("warn", obj.level)
    assert.equal("x", obj.field_msg)
    assert.equal("y", obj.field_level)
    assert.equal(1, obj.field_time)
  end)

  it("writes human lines with --log-format human and ATO_LOG_FORMAT", function()
    local lines = log_lines([[log.error("disk full", {path = "/var/x y", n = 2})]], {"--log-format", "human"})
    assert.matches('^%d%d:%d%d:%d%d%.%d%d%d ERROR disk full n=2 path="/var/x y"$', lines[1])
    local env_lines = log_lines([[log.info("hi")]], nil, {ATO_LOG_FORMAT = "human"})
    assert.matches("^%d%d:%d%d:%d%d%.%d%d%d INFO  hi$", env_lines[1])
  end)

  it("writes human lines on a terminal", function()
    local code = "require('ato.log').info('on a tty', {n = 1})"
    local r = assert(ato.exec{"script", "-qec", ("%s -e %q"):format(support.ato_bin, code), "/dev/null",
                              env = {NO_COLOR = "1"}, timeout = 30})
    assert.equal(0, r.code)
    assert.matches("%d%d:%d%d:%d%d%.%d%d%d INFO  on a tty n=1", r.stdout)
  end)

  it("keeps one record on one line: control characters are escaped", function()
    local lines = log_lines([[log.info("two\nlines \27[31mred", {["k\nx"] = "v\nw"})]],
                            {"--log-format", "human"})
    assert.equal(1, #lines)
    assert.matches("two\\nlines \\x1b%[31mred", lines[1])
    assert.equal(1, #log_lines([[log.info("two\nlines")]]))
  end)

  it("filters by level: debug only when asked", function()
    local code = [[log.debug("d") log.info("i") log.warn("w") log.error("e")]]
    assert.equal(3, #log_lines(code))
    assert.equal(4, #log_lines(code, {"--log-level", "debug"}))
    assert.equal(1, #log_lines(code, {"--log-level", "error"}))
    assert.equal(2, #log_lines([[log.set_level("warn") ]] .. code))
    assert.equal(2, #log_lines(code, nil, {ATO_LOG_LEVEL = "warn"}))
  end)

  it("child loggers add their fields to every line", function()
    local lines = log_lines([[local l = log.child({playbook = "rotate"}) l.info("a", {step = 1}) l.child({run = 7}).info("b")]])
    local a, b = cjson.decode(lines[1]), cjson.decode(lines[2])
    assert.equal("rotate", a.playbook)
    assert.equal(1, a.step)
    assert.equal("rotate", b.playbook)
    assert.equal(7, b.run)
  end)

  it("survives values JSON cannot hold", function()
    local lines = log_lines([[
      local t = {} t.self = t
      log.info("odd", {f = print, co = coroutine.create(print), cyc = t, inf = math.huge, sparse = {[1] = 1, [100] = 2}})]])
    local obj = cjson.decode(lines[1])
    assert.matches("^function", obj.f)
    assert.matches("^thread", obj.co)
    assert.equal("[cycle]", obj.cyc.self)
  end)

  describe("never shows a secret", function()
    local fields = ([[{
      api_key = %q, password = "hunter2hunter2", token = 123456789,
      headers = {Authorization = "Bearer abcdefghijklmnop", ["x-api-key"] = %q},
      note = "found %s in .env", urls = {"https://ops:s3cr3tpass@db.example/x"},
      creds = {user = "u", secret = {nested = %q}}
    }]]):format(KEY, GH, KEY, GH)
    local secrets = {KEY, GH, "hunter2hunter2", "123456789", "abcdefghijklmnop", "s3cr3tpass"}

    for _, format in ipairs({"json", "human"}) do
      it("in " .. format .. " lines", function()
        local _, text = log_lines(("log.warn('leak of %s', %s)"):format(KEY, fields),
                                  {"--log-format", format})
        for _, s in ipairs(secrets) do
          assert.is_nil(text:find(s, 1, true), "shows a secret of length " .. #s)
        end
        assert.truthy(text:find(ato.redact.fingerprint(KEY), 1, true))
        assert.truthy(text:find(ato.redact.fingerprint(GH), 1, true))
        assert.truthy(text:find("SG.AAAA", 1, true))       -- a short prefix stays
      end)
    end

    it("in table keys, at any depth", function()
      local _, text = log_lines(("log.info('k', {[%q] = true, nested = {[%q] = 1}})"):format(KEY, GH),
                                {"--log-format", "human"})
      assert.is_nil(text:find(KEY, 1, true))
      assert.is_nil(text:find(GH, 1, true))
      local _, json = log_lines(("log.info('k', {[%q] = true})"):format(KEY))
      assert.is_nil(json:find(KEY, 1, true))
    end)

    it("in log.redacted copies", function()
      local log = require "ato.log"
      local copy = log.redacted({password = "p4ssw0rd!", list = {KEY}, plain = "hello"})
      assert.equal("hello", copy.plain)
      assert.is_nil(copy.password:find("p4ssw0rd!", 1, true))
      assert.is_nil(copy.list[1]:find(KEY, 1, true))
    end)
  end)
end)
