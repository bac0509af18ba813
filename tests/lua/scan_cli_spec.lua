-- `ato scan`, run as a real subprocess on trees, standard input and git
-- repositories the tests build: formats (SARIF validated against the
-- SARIF 2.1.0 schema with node), exit statuses, baselines, verification
-- against a fake SendGrid on loopback, rule checks, and above all that no
-- output carries a secret unless --show-secrets asks for it.
--
-- Every key here is made up on the spot: format-valid, random, never real.
local ato = require "ato"
local cjson = require "cjson"
local http = require "ato.http"
local support = require "support"

local ROOT = os.getenv("PWD") or "."         -- the repository (tests run from it)
-- (no x: "xxxx" in a key reads as a placeholder, and the engine skips it)
local ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWYZabcdefghijklmnopqrstuvwyz0123456789_-"

local function random_chars(n)
  local t = {}
  for i = 1, n do
    local k = math.random(#ALPHABET)
    t[i] = ALPHABET:sub(k, k)
  end
  return table.concat(t)
end

--- A format-valid, random SendGrid key: "SG." 22 "." 43.
local function fake_key()
  while true do
    local key = "SG." .. random_chars(22) .. "." .. random_chars(43)
    if not key:find("(.)%1%1") then return key end        -- no runs that look made up
  end
end

local function write(path, text)
  assert(ato.fs.mkdir(path:match("^(.*)/[^/]*$"), "755", {parents = true}))
  assert(ato.fs.write(path, text))
  return path
end

local function lines_of(text)
  local list = {}
  for line in text:gmatch("[^\n]+") do list[#list + 1] = line end
  return list
end

local function escape(s) return (s:gsub("%p", "%%%0")) end

-- True if text shows key or a large part of it (its secret half).
local function shows(text, key)
  return text:find(key, 1, true) ~= nil or text:find(key:sub(-43), 1, true) ~= nil
end

describe("ato scan", function()
  support.clean_after_each()
  local dir, cleanup, cache

  -- Runs `ato scan ARGS...`; opts: stdin, env, cwd, timeout.
  local function scan(args, opts)
    opts = opts or {}
    local cmd = {"scan"}
    for _, a in ipairs(args) do cmd[#cmd + 1] = a end
    local env = {ATO_CACHE_DIR = cache, NO_COLOR = false}
    for k, v in pairs(opts.env or {}) do env[k] = v end
    return support.ato(cmd, {env = env, stdin = opts.stdin, cwd = opts.cwd,
                             timeout = opts.timeout or 120})
  end

  local function one_line(text)
    local _, n = text:gsub("\n", "")
    return n == 1
  end

  -- A tree with one key in sub/app.env (line 2, column 25), nothing else.
  local function leaky_tree(name, key)
    local root = dir .. "/" .. name
    write(root .. "/sub/app.env", "# settings\nexport SENDGRID_API_KEY=" .. key .. "\n")
    write(root .. "/README.md", "nothing to see\n")
    return root
  end

  setup(function()
    dir, cleanup = support.tmpdir()
    cache = dir .. "/cache"
  end)
  teardown(function() cleanup() end)

  describe("basics", function()
    it("--help documents every option and exits 0", function()
      local r = scan{"--help"}
      assert.equal(0, r.code)
      for _, opt in ipairs({"--git", "--all-objects", "--format", "--baseline",
          "--write-baseline", "--rules", "--no-builtin-rules", "--threads",
          "--show-secrets", "--max-file-size", "--binary", "--gitignore", "--verify",
          "--check-rules", "--list-rules", "--quiet", "Exit status"}) do
        assert.truthy(r.stdout:find(opt, 1, true), "help lacks " .. opt)
      end
      assert.equal("", r.stderr)
    end)

    it("exits 0 without findings, 1 with, and prints path:line:col: rule redacted", function()
      local clean = dir .. "/clean"
      write(clean .. "/a.txt", "hello\n")
      local r = scan{clean}
      assert.equal(0, r.code, r.stderr)
      assert.equal("", r.stdout)
      assert.matches("^ato scan: 1 file, 6 B in [%d.]+ s.*: 0 findings\n$", r.stderr)

      local key = fake_key()
      local tree = leaky_tree("basic", key)
      r = scan{tree}
      assert.equal(1, r.code, r.stderr)
      local fp = ato.redact.fingerprint(key)
      local path, line, col, rule, red = r.stdout:match("^(.-):(%d+):(%d+): (%S+) (%S+)\n$")
      assert.equal(tree .. "/sub/app.env", path)
      assert.equal("2", line)
      assert.equal("25", col)
      assert.matches("sendgrid", rule)
      assert.equal(key:sub(1, 7) .. "…[fp:" .. fp .. "]", red)
      assert.is_nil(r.stdout:find("\27", 1, true), "colour on a pipe")
      assert.matches("^ato scan: 2 files, .-: 1 finding\n$", r.stderr)
    end)

    it("scans several paths together and '.' by default", function()
      local k1, k2 = fake_key(), fake_key()
      local a, b = leaky_tree("multi-a", k1), leaky_tree("multi-b", k2)
      local r = scan{a, b .. "/sub/app.env", "--format", "jsonl"}
      assert.equal(1, r.code, r.stderr)
      local paths = {}
      for _, l in ipairs(lines_of(r.stdout)) do paths[#paths + 1] = cjson.decode(l).path end
      table.sort(paths)
      assert.same({a .. "/sub/app.env", b .. "/sub/app.env"}, paths)
      local here = scan({"--format", "jsonl"}, {cwd = a})
      assert.equal(1, here.code, here.stderr)
      assert.equal("./sub/app.env", cjson.decode(here.stdout).path)
    end)

    it("gives one line and exit 2 for bad usage and missing inputs", function()
      local tree = leaky_tree("usage", fake_key())
      local cases = {
        {{"--frobnicate"}, "unknown option '%-%-frobnicate'"},
        {{"--format", "xml", tree}, "%-%-format must be text, json, jsonl or sarif"},
        {{"--format"}, "%-%-format needs a value"},
        {{"--threads", "zero", tree}, "%-%-threads needs a number"},
        {{"--max-file-size", "big", tree}, "%-%-max%-file%-size needs a size"},
        {{"--git=yes", tree}, "%-%-git takes no value"},
        {{"--all-objects", tree}, "%-%-all%-objects needs %-%-git"},
        {{"--no-builtin-rules", tree}, "%-%-no%-builtin%-rules needs at least one %-%-rules FILE"},
        {{"--list-rules", tree}, "%-%-list%-rules takes no PATH"},
        {{"-", "-"}, "standard input %(%-%) can be scanned once"},
        {{dir .. "/no-such-dir"}, escape(dir) .. "/no%-such%-dir: no such file or directory"},
        {{"--rules", dir .. "/none.rules", tree}, "rule file " .. escape(dir) .. "/none%.rules: no such file"},
        {{"--git", tree}, "git repository " .. escape(tree) .. ": "},
      }
      for _, c in ipairs(cases) do
        local r = scan(c[1])
        local what = table.concat(c[1], " ")
        assert.equal(2, r.code, what .. ": " .. r.stderr)
        assert.matches("^ato scan: " .. c[2], r.stderr, nil, what)
        assert.is_true(one_line(r.stderr), what .. " printed more than one line: " .. r.stderr)
        assert.is_nil(r.stderr:find("traceback", 1, true), what)
      end
    end)

    it("reports files over --max-file-size as skipped, with the reason", function()
      local tree = dir .. "/sizes"
      write(tree .. "/small.txt", "key = " .. fake_key() .. "\n")
      write(tree .. "/large.txt", ("x"):rep(3000) .. "\nkey = " .. fake_key() .. "\n")
      local r = scan{tree, "--max-file-size", "2K"}
      assert.equal(1, r.code, r.stderr)
      assert.equal(1, #lines_of(r.stdout))
      assert.matches("small%.txt", r.stdout)
      assert.matches("1 skipped: " .. escape(tree) .. "/large%.txt %(too large: 3%d+ bytes %(limit 2048%)%)",
        r.stderr)
      local all = scan{tree, "--max-file-size", "1M"}
      assert.equal(2, #lines_of(all.stdout))
      assert.is_nil(all.stderr:find("skipped", 1, true))
    end)

    it("honours --gitignore, --binary and --threads", function()
      local tree = dir .. "/ignoring"
      assert(ato.fs.mkdir(tree))
      assert.equal(0, assert(ato.exec{"git", "-C", tree, "init", "-q"}).code)
      write(tree .. "/.gitignore", "ignored.txt\n")
      write(tree .. "/ignored.txt", "k = " .. fake_key() .. "\n")
      write(tree .. "/kept.txt", "k = " .. fake_key() .. "\n")
      write(tree .. "/blob.dat", "\0\1\2 k = " .. fake_key() .. "\n")
      local function paths(args)
        local r = scan(args)
        local list = {}
        for _, l in ipairs(lines_of(r.stdout)) do
          list[#list + 1] = cjson.decode(l).path:match("[^/]+$")
        end
        table.sort(list)
        return list, r
      end
      local list, r = paths{tree, "--format", "jsonl", "--threads", "1"}
      assert.same({"ignored.txt", "kept.txt"}, list)
      assert.matches("1 binary file not scanned", r.stderr)
      assert.same({"kept.txt"}, (paths{tree, "--format", "jsonl", "--gitignore"}))
      assert.same({"blob.dat", "kept.txt"},
        (paths{tree, "--format", "jsonl", "--gitignore", "--binary", "--threads", "3"}))
    end)

    it("reports a secret two rules match in the same place once, under the specific rule", function()
      local rules = write(dir .. "/overlap.rules", table.concat({
        "[test-generic-token]",
        "name = Token in an assignment",
        "provider = generic",
        "severity = medium",
        "pattern = \\btoken=(tk_[a-z0-9]{16})\\b",
        "example = token=tk_q9w8e7r6t5y4u3i2",
        "example = x token=tk_m3n5b7v9c2p4z6l8 y",
        "negative = token=abc",
        "negative = tk_q9w8e7r6t5y4u3i2",
        "",
        "[test-co-token]",
        "name = TestCo token",
        "provider = testco",
        "severity = high",
        "pattern = \\b(tk_[a-z0-9]{16})\\b",
        "example = tk_q9w8e7r6t5y4u3i2",
        "example = token=tk_m3n5b7v9c2p4z6l8",
        "negative = tk_short",
        "negative = xtk_q9w8e7r6t5y4u3i2",
        ""}, "\n"))
      local tree = dir .. "/overlap"
      write(tree .. "/a.env", "token=tk_q1w2e3r4t5y6u7i8\nplain tk_a1s2d3f4g5h6j7k8\n")
      write(tree .. "/b.env", "token=tk_z1x2c3v4b5n6m7l8\n")
      for _, format in ipairs({"jsonl", "json"}) do
        local r = scan{tree, "--no-builtin-rules", "--rules", rules, "--format", format}
        assert.equal(1, r.code, r.stderr)
        local list = {}
        if format == "json" then list = cjson.decode(r.stdout)
        else for _, l in ipairs(lines_of(r.stdout)) do list[#list + 1] = cjson.decode(l) end end
        table.sort(list, function(x, y) return x.path .. x.line < y.path .. y.line end)
        assert.equal(3, #list, r.stdout)
        for _, f in ipairs(list) do assert.equal("test-co-token", f.rule) end
        assert.matches(": 3 findings", r.stderr)
      end
    end)

    it("escapes control characters in text output and in errors", function()
      local tree = dir .. "/escapes"
      write(tree .. "/evil\27[2Jname.txt", "k = " .. fake_key() .. "\n")
      local r = scan{tree}
      assert.equal(1, r.code, r.stderr)
      assert.is_nil(r.stdout:find("\27", 1, true))
      assert.truthy(r.stdout:find("evil\\x1B[2Jname.txt:1:5: ", 1, true), r.stdout)
      local e = scan{dir .. "/missing\nsecond line"}
      assert.equal(2, e.code)
      assert.is_true(one_line(e.stderr), e.stderr)
      assert.truthy(e.stderr:find("missing\\nsecond line", 1, true))
    end)

    it("stops quietly when the reader of its output goes away", function()
      local tree = dir .. "/many"
      local key, body = fake_key(), {}
      for i = 1, 2000 do body[i] = "k" .. i .. " = " .. key end
      write(tree .. "/keys.txt", table.concat(body, "\n") .. "\n")
      local r = assert(ato.exec{"bash", "-c",
        ('"$ATO" scan "$1" 2>"$2" | head -c 10 >/dev/null; echo "${PIPESTATUS[0]}"'),
        "sh", tree, dir .. "/epipe.err",
        env = {ATO = support.ato_bin, ATO_CACHE_DIR = cache}, timeout = 120})
      assert.equal("1\n", r.stdout)
      assert.equal("", assert(ato.fs.read(dir .. "/epipe.err")))
    end)
  end)

  describe("formats", function()
    local key, tree
    setup(function()
      key = fake_key()
      tree = leaky_tree("formats", key)
    end)

    it("json: one array of finding objects with the documented fields", function()
      local r = scan{tree, "--format", "json"}
      assert.equal(1, r.code, r.stderr)
      local list = cjson.decode(r.stdout)
      assert.equal(1, #list)
      local f = list[1]
      assert.equal(tree .. "/sub/app.env", f.path)
      assert.equal(2, f.line)
      assert.equal(25, f.column)
      assert.equal("sendgrid", f.provider)
      assert.truthy(({critical = true, high = true})[f.severity])
      assert.equal("string", type(f.rule))
      assert.equal("string", type(f.name))
      assert.matches("^" .. ("%x"):rep(64) .. "$", f.fingerprint)
      assert.equal(ato.redact.fingerprint(key), f.fingerprint:sub(1, 8))
      assert.equal(ato.redact.value(key), f.redacted)
      assert.is_nil(f.secret)
      assert.is_nil(f.verified)
      local empty = scan{dir .. "/formats/README.md", "--format", "json"}
      assert.equal(0, empty.code)
      assert.same({}, cjson.decode(empty.stdout))
    end)

    it("jsonl: one finding object a line", function()
      local k2 = fake_key()
      write(tree .. "/second.cfg", "a\nb\nc\nSENDGRID=" .. k2 .. "\n")
      local r = scan{tree, "--format", "jsonl"}
      os.remove(tree .. "/second.cfg")
      assert.equal(1, r.code, r.stderr)
      local seen = {}
      for _, l in ipairs(lines_of(r.stdout)) do
        local f = cjson.decode(l)
        seen[f.fingerprint:sub(1, 8)] = f
      end
      assert.equal(2, seen[ato.redact.fingerprint(key)].line)
      assert.equal(4, seen[ato.redact.fingerprint(k2)].line)
      assert.equal(10, seen[ato.redact.fingerprint(k2)].column)
    end)

    it("sarif: valid SARIF 2.1.0 with rules, levels, relative uris and fingerprints", function()
      local r = scan{tree, "--format", "sarif"}
      assert.equal(1, r.code, r.stderr)
      local file = write(dir .. "/out.sarif", r.stdout)
      if not ato.fs.exists(ROOT .. "/tests/sarif/node_modules/ajv") then
        local npm = assert(ato.exec{"npm", "ci", "--prefix", ROOT .. "/tests/sarif",
          "--no-audit", "--no-fund", timeout = 300})
        assert.equal(0, npm.code, "npm ci failed: " .. npm.stderr)
      end
      local v = assert(ato.exec{"node", ROOT .. "/tests/sarif/validate.mjs", file, timeout = 60})
      assert.equal(0, v.code, v.stdout .. v.stderr)

      local log = cjson.decode(r.stdout)
      assert.equal("2.1.0", log.version)
      local run = log.runs[1]
      local driver = run.tool.driver
      assert.equal("ato", driver.name)
      assert.matches("^%d+%.%d+", driver.version)
      assert.matches("^https?://", driver.informationUri)
      local res = run.results[1]
      assert.equal(1, #run.results)
      local rule = driver.rules[res.ruleIndex + 1]
      assert.equal(res.ruleId, rule.id)
      assert.equal("string", type(rule.name))
      assert.equal("string", type(rule.shortDescription.text))
      assert.matches("^https?://", rule.helpUri)
      assert.truthy(rule.properties.severity)
      assert.equal("error", res.level)                     -- critical/high
      local loc = res.locations[1].physicalLocation
      assert.equal("sub/app.env", loc.artifactLocation.uri)
      assert.equal("%SRCROOT%", loc.artifactLocation.uriBaseId)
      assert.equal("file://" .. tree .. "/", run.originalUriBaseIds["%SRCROOT%"].uri)
      assert.equal(2, loc.region.startLine)
      assert.equal(25, loc.region.startColumn)
      assert.matches("^" .. ("%x"):rep(64) .. "$", res.partialFingerprints["secret/v1"])
      assert.matches(escape(ato.redact.value(key)), res.message.text)
    end)

    it("colours text only on a terminal, and not with NO_COLOR", function()
      -- script(1) runs the command under a pseudo-terminal
      local r = assert(ato.exec{"script", "-qec",
        ("%q scan %q"):format(support.ato_bin, tree), "/dev/null",
        stdin = "", timeout = 120, env = {ATO_CACHE_DIR = cache, NO_COLOR = false}})
      assert.truthy(r.stdout:find("\27[", 1, true), "no colour on a terminal: " .. r.stdout)
      assert.falsy(shows(r.stdout, key))
      local plain = assert(ato.exec{"script", "-qec",
        ("%q scan %q"):format(support.ato_bin, tree), "/dev/null",
        stdin = "", timeout = 120, env = {ATO_CACHE_DIR = cache, NO_COLOR = "1"}})
      assert.falsy(plain.stdout:find("\27[", 1, true), "colour despite NO_COLOR")
      assert.matches("sub/app%.env:2:25: ", plain.stdout)
    end)
  end)

  describe("secrets", function()
    it("appear in no output without --show-secrets: every format, summary, errors, progress", function()
      local key = fake_key()
      local tree = leaky_tree("secrets", key)
      write(tree .. "/big.txt", ("y"):rep(5000) .. key .. "\n")   -- skipped: its reason is printed
      local outputs = {}
      for _, f in ipairs({"text", "json", "jsonl", "sarif"}) do
        local r = scan{tree, "--format", f, "--max-file-size", "4K"}
        assert.equal(1, r.code, r.stderr)
        outputs[#outputs + 1] = {f .. " stdout", r.stdout}
        outputs[#outputs + 1] = {f .. " stderr", r.stderr}
        assert.truthy(r.stdout:find(ato.redact.fingerprint(key), 1, true), f .. " lacks the fingerprint")
      end
      -- stdin, git, baseline and errors
      local s = scan({"-", "--format", "jsonl"}, {stdin = "x = " .. key .. "\n"})
      outputs[#outputs + 1] = {"stdin", s.stdout .. s.stderr}
      local base = dir .. "/secrets.baseline"
      local b = scan{tree, "--write-baseline", base}
      outputs[#outputs + 1] = {"baseline file", assert(ato.fs.read(base))}
      outputs[#outputs + 1] = {"baseline run", b.stdout .. b.stderr}
      local e1 = scan{dir .. "/missing-" .. key}
      assert.equal(2, e1.code)
      outputs[#outputs + 1] = {"missing path error", e1.stderr}
      local bad = write(dir .. "/bad-" .. key:sub(4, 10) .. ".json", '{"version":1,"fingerprints":["' .. key .. '"]}')
      local e2 = scan{tree, "--baseline", bad}
      assert.equal(2, e2.code)
      outputs[#outputs + 1] = {"bad baseline error", e2.stderr}
      -- progress and colours on a terminal
      local tty = assert(ato.exec{"script", "-qec", ("%q scan %q"):format(support.ato_bin, tree),
        "/dev/null", stdin = "", timeout = 120, env = {ATO_CACHE_DIR = cache}})
      outputs[#outputs + 1] = {"terminal", tty.stdout}
      for _, o in ipairs(outputs) do
        assert.is_false(shows(o[2], key), o[1] .. " shows the key:\n" .. o[2])
      end
    end)

    it("are printed with --show-secrets, on stdout only", function()
      local key = fake_key()
      local tree = leaky_tree("shown", key)
      for _, f in ipairs({"text", "json", "jsonl", "sarif"}) do
        local r = scan{tree, "--format", f, "--show-secrets"}
        assert.equal(1, r.code, r.stderr)
        assert.truthy(r.stdout:find(key, 1, true), f .. " does not show the key")
        assert.is_false(shows(r.stderr, key), f .. " stderr shows the key")
      end
      local text = scan{tree, "--show-secrets"}.stdout
      assert.matches(":2:25: %S+ " .. escape(key) .. "\n$", text)
      local f = cjson.decode(scan{tree, "--show-secrets", "--format", "jsonl"}.stdout)
      assert.equal(key, f.secret)
      assert.equal(ato.redact.value(key), f.redacted)
    end)
  end)

  describe("standard input", function()
    it("finds a secret cut by a chunk boundary once, with its line and column", function()
      -- chunks of 100000 bytes: key A straddles the first boundary, key B
      -- sits inside the next overlap, key C straddles the third boundary
      -- at the start of a line
      local a, b, c = fake_key(), fake_key(), fake_key()
      local parts, len, lineno = {}, 0, 0
      local function add(s)
        parts[#parts + 1] = s
        len = len + #s
        local _, n = s:gsub("\n", "")
        lineno = lineno + n
      end
      local function fill_to(target)
        while len + 30 < target do add(("filler %08d abcdefghij\n"):format(len)) end
        add(("z"):rep(target - len - 1) .. "\n")
      end
      local expect = {}
      fill_to(99970)
      add("the key=")
      expect[a] = {line = lineno + 1, column = 9, offset = len}
      add(a .. " and more\n")                       -- 99978 .. 100047: across 100000
      fill_to(180000)
      add("b: ")
      expect[b] = {line = lineno + 1, column = 4, offset = len}
      add(b .. "\n")
      fill_to(299990)
      expect[c] = {line = lineno + 1, column = 1, offset = len}
      add(c .. "\n")                                -- 299990 .. 300059: across 300000
      fill_to(450000)
      local input = table.concat(parts)
      for _, chunk in ipairs({"100000", "4096", "8388608"}) do
        local r = scan({"-", "--format", "jsonl"}, {stdin = input, env = {ATO_SCAN_STDIN_CHUNK = chunk}})
        assert.equal(1, r.code, r.stderr)
        local got = lines_of(r.stdout)
        assert.equal(3, #got, "chunk " .. chunk .. ":\n" .. r.stdout)
        for _, l in ipairs(got) do
          local f = cjson.decode(l)
          local key = (f.fingerprint:sub(1, 8) == ato.redact.fingerprint(a) and a)
            or (f.fingerprint:sub(1, 8) == ato.redact.fingerprint(b) and b) or c
          assert.equal("(stdin)", f.path)
          assert.same(expect[key], {line = f.line, column = f.column, offset = f.offset},
            "chunk " .. chunk)
        end
        assert.matches("1 file, 450%.0 kB", r.stderr)
      end
    end)

    it("scans standard input next to paths, and nothing when it is empty", function()
      local key = fake_key()
      local tree = leaky_tree("with-stdin", fake_key())
      local r = scan({tree, "-", "--format", "jsonl"}, {stdin = "one\ntwo " .. key .. "\n"})
      assert.equal(1, r.code, r.stderr)
      local paths = {}
      for _, l in ipairs(lines_of(r.stdout)) do paths[#paths + 1] = cjson.decode(l).path end
      table.sort(paths)
      assert.same({"(stdin)", tree .. "/sub/app.env"}, paths)
      local empty = scan({"-"}, {stdin = ""})
      assert.equal(0, empty.code, empty.stderr)
      assert.matches("0 B", empty.stderr)
    end)
  end)

  describe("git history", function()
    local repo, key
    local GIT_ENV = {
      GIT_AUTHOR_NAME = "Alice Example", GIT_AUTHOR_EMAIL = "alice@example.com",
      GIT_COMMITTER_NAME = "Alice Example", GIT_COMMITTER_EMAIL = "alice@example.com",
      GIT_AUTHOR_DATE = "2024-03-01T10:00:00Z", GIT_COMMITTER_DATE = "2024-03-01T10:00:00Z",
      GIT_CONFIG_NOSYSTEM = "1", HOME = "/nonexistent",
    }
    local function git(...)
      local cmd = {"git", "-C", repo, ...}                  -- (... last: all of it)
      cmd.env = GIT_ENV
      local r = assert(ato.exec(cmd))
      assert.equal(0, r.code, table.concat({...}, " ") .. ": " .. r.stdout .. r.stderr)
      return r.stdout
    end

    setup(function()
      repo, key = dir .. "/repo", fake_key()
      assert(ato.fs.mkdir(repo))
      git("init", "-q")
      write(repo .. "/config.txt", "a=1\n")
      git("add", ".")
      git("commit", "-qm", "first")
      write(repo .. "/config.txt", "a=1\nSENDGRID=" .. key .. "\n")
      git("commit", "-qam", "oops")
      write(repo .. "/config.txt", "a=1\n")                   -- removed at HEAD
      git("commit", "-qam", "fix")
    end)

    it("finds a key removed at HEAD, with its commit, author and date", function()
      local leak = git("rev-list", "-n", "1", "HEAD~1"):gsub("%s+$", "")
      assert.equal(0, scan{repo}.code)                       -- the work tree is clean
      local r = scan{"--git", repo}
      assert.equal(1, r.code, r.stderr)
      assert.equal(("config.txt:2:10: %s %s (commit %s, Alice Example, 2024-03-01T10:00:00Z)\n")
        :format(r.stdout:match(": (%S+) "), ato.redact.value(key), leak:sub(1, 7)), r.stdout)
      assert.matches("blobs? in 3 commits", r.stderr)
      local f = cjson.decode(scan{"--git", repo, "--format", "jsonl"}.stdout)
      assert.equal(leak, f.commit)
      assert.equal("Alice Example", f.author)
      assert.equal("alice@example.com", f.email)
      assert.equal("2024-03-01T10:00:00Z", f.date)
      assert.equal(repo, f.repository)
      assert.equal("config.txt", f.path)
      local sarif = cjson.decode(scan{"--git", repo, "--format", "sarif"}.stdout)
      local res = sarif.runs[1].results[1]
      assert.equal("config.txt", res.locations[1].physicalLocation.artifactLocation.uri)
      assert.equal(leak, res.properties.commit)
    end)

    it("--all-objects also finds a blob no commit reaches", function()
      local orphan = fake_key()
      local r = assert(ato.exec{"git", "-C", repo, "hash-object", "-w", "--stdin",
        stdin = "orphan = " .. orphan .. "\n", env = GIT_ENV})
      local oid = r.stdout:gsub("%s+$", "")
      local reach = scan{"--git", repo, "--format", "jsonl"}
      assert.equal(1, #lines_of(reach.stdout))
      local all = scan{"--git", repo, "--all-objects", "--format", "jsonl"}
      assert.equal(1, all.code, all.stderr)
      local found
      for _, l in ipairs(lines_of(all.stdout)) do
        local f = cjson.decode(l)
        if f.path == "blob " .. oid then found = f end
      end
      assert.truthy(found, "the unreachable blob was not reported: " .. all.stdout)
      assert.equal(ato.redact.fingerprint(orphan), found.fingerprint:sub(1, 8))
      assert.is_nil(found.commit)
    end)
  end)

  describe("baseline", function()
    it("--write-baseline writes fingerprints (0600), --baseline suppresses them", function()
      local k1, k2 = fake_key(), fake_key()
      local tree = leaky_tree("base", k1)
      local file = dir .. "/baseline.json"
      local w = scan{tree, "--write-baseline", file}
      assert.equal(1, w.code, w.stderr)
      local st = assert(ato.fs.stat(file))
      assert.equal("0600", st.perms)
      local doc = cjson.decode((assert(ato.fs.read(file))))
      assert.equal(1, doc.version)
      assert.equal(1, #doc.fingerprints)
      assert.equal(ato.redact.fingerprint(k1), doc.fingerprints[1].fingerprint:sub(1, 8))
      assert.equal(tree .. "/sub/app.env", doc.fingerprints[1].path)
      assert.equal("string", type(doc.fingerprints[1].rule))

      local r = scan{tree, "--baseline", file}
      assert.equal(0, r.code, r.stderr)
      assert.equal("", r.stdout)
      assert.matches("0 findings, 1 suppressed by the baseline", r.stderr)
      write(tree .. "/new.txt", "key: " .. k2 .. "\n")      -- a new leak still counts
      local again = scan{tree, "--baseline", file, "--format", "jsonl"}
      assert.equal(1, again.code)
      assert.equal(ato.redact.fingerprint(k2), cjson.decode(again.stdout).fingerprint:sub(1, 8))
    end)

    it("a malformed baseline is an error naming the file", function()
      local tree = leaky_tree("badbase", fake_key())
      for i, text in ipairs({"not json", '{"version":2,"fingerprints":[]}',
                             '{"version":1,"fingerprints":[{"fingerprint":"abc"}]}'}) do
        local file = write(dir .. "/bad" .. i .. ".json", text)
        local r = scan{tree, "--baseline", file}
        assert.equal(2, r.code)
        assert.matches("^ato scan: baseline " .. escape(file) .. ": ", r.stderr)
        assert.is_true(one_line(r.stderr))
      end
      local r = scan{tree, "--baseline", dir .. "/absent.json"}
      assert.equal(2, r.code)
      assert.matches("absent%.json: no such file", r.stderr)
    end)
  end)

  describe("--verify", function()
    it("asks SendGrid's /v3/scopes once per key, at most 4 at a time", function()
      local live, dead, limited, odd = fake_key(), fake_key(), fake_key(), fake_key()
      local extra = {fake_key(), fake_key(), fake_key()}
      local requests, in_flight, peak, auth_ok = {}, 0, 0, true
      local srv = assert(http.serve{port = 0, handler = function(req)
        in_flight = in_flight + 1
        peak = math.max(peak, in_flight)
        local leave <close> = setmetatable({}, {__close = function() in_flight = in_flight - 1 end})
        local bearer = (req:header("authorization") or ""):match("^Bearer (.+)$")
        if req.path ~= "/v3/scopes" or req.method ~= "GET" or not bearer then auth_ok = false end
        requests[bearer or "?"] = (requests[bearer or "?"] or 0) + 1
        ato.sleep(0.1)
        if bearer == live then return {status = 200, json = {scopes = {"mail.send", "user.profile.read"}}} end
        if bearer == dead then return 401, {}, '{"errors":[{"message":"authorization required"}]}' end
        if bearer == limited then return 403, {}, '{"errors":[{"message":"access forbidden"}]}' end
        if bearer == odd then return 404, {}, "no" end
        return {status = 200, json = {scopes = {}}}
      end})
      local close <close> = setmetatable({}, {__close = function() srv:close() end})
      local _, port = srv:address()
      local tree = dir .. "/verify"
      local all = {live, dead, limited, odd, extra[1], extra[2], extra[3]}
      for i, k in ipairs(all) do
        write(("%s/k%d.txt"):format(tree, i), "key = " .. k .. "\nagain = " .. k .. "\n")
      end
      local r = scan({tree, "--verify", "--format", "jsonl"},
        {env = {ATO_SENDGRID_API_URL = ("http://127.0.0.1:%d"):format(port)}})
      assert.equal(1, r.code, r.stderr)
      local by = {}
      for _, l in ipairs(lines_of(r.stdout)) do
        local f = cjson.decode(l)
        by[f.fingerprint:sub(1, 8)] = by[f.fingerprint:sub(1, 8)] or {}
        table.insert(by[f.fingerprint:sub(1, 8)], f)
      end
      local function of(k)
        local list = by[ato.redact.fingerprint(k)]
        assert.equal(2, #list)
        return list[1]
      end
      assert.is_true(of(live).verified)
      assert.same({"mail.send", "user.profile.read"}, of(live).scopes)
      assert.is_false(of(dead).verified)
      assert.is_nil(of(dead).scopes)
      assert.is_true(of(limited).verified)
      assert.same({}, of(limited).scopes)
      assert.equal(cjson.null, of(odd).verified)
      assert.matches("HTTP 404", of(odd).verify_error)
      for _, k in ipairs(all) do
        assert.equal(1, requests[k], "each key is verified once")
      end
      assert.is_true(auth_ok, "GET /v3/scopes with a bearer token expected")
      assert.is_true(peak <= 4, "more than 4 verifications in flight: " .. peak)
      assert.is_true(peak >= 2, "verifications ran one at a time")
      assert.is_false(shows(r.stderr, live))
      -- text and json say it too
      local t = scan({tree .. "/k1.txt", "--verify"},
        {env = {ATO_SENDGRID_API_URL = ("http://127.0.0.1:%d"):format(port)}})
      assert.matches(" %[live, 2 scopes%]\n", t.stdout)
      local j = cjson.decode(scan({tree .. "/k2.txt", "--verify", "--format", "json"},
        {env = {ATO_SENDGRID_API_URL = ("http://127.0.0.1:%d"):format(port)}}).stdout)
      assert.is_false(j[1].verified)
    end)

    it("leaves verified unknown when the API cannot be reached", function()
      local tree = leaky_tree("unreachable", fake_key())
      -- a port nothing listens on: bind one, close it, use its number
      local srv = assert(http.serve{port = 0, handler = function() return 200 end})
      local _, port = srv:address()
      srv:close()
      local r = scan({tree, "--verify", "--format", "jsonl"},
        {env = {ATO_SENDGRID_API_URL = ("http://127.0.0.1:%d"):format(port)}})
      assert.equal(1, r.code, r.stderr)
      local f = cjson.decode(r.stdout)
      assert.equal(cjson.null, f.verified)
      assert.equal("string", type(f.verify_error))
    end)
  end)

  describe("rules", function()
    it("--list-rules lists id, provider, severity and name; as JSON too", function()
      local r = scan{"--list-rules"}
      assert.equal(0, r.code, r.stderr)
      assert.matches("^ID%s+PROVIDER%s+SEVERITY%s+NAME\n", r.stdout)
      local list = cjson.decode(scan{"--list-rules", "--format", "json"}.stdout)
      assert.is_true(#list >= 1)
      assert.equal(#list + 1, #lines_of(r.stdout))
      local sendgrid
      for _, rule in ipairs(list) do
        assert.equal("string", type(rule.id))
        assert.truthy(r.stdout:find(rule.id, 1, true))
        if rule.provider == "sendgrid" and rule.verify == "sendgrid" then sendgrid = rule end
      end
      assert.truthy(sendgrid, "no SendGrid rule with verify = sendgrid")
    end)

    it("--check-rules: built-in rules pass; a failing example is FILE:LINE: rule ID: problem, exit 1", function()
      local ok = scan{"--check-rules"}
      assert.equal(0, ok.code, ok.stdout .. ok.stderr)
      assert.matches("^%d+ rules? OK\n$", ok.stdout)
      local file = write(dir .. "/weak.rules", table.concat({
        "# a rule whose second example does not match",
        "[test-token]",
        "name = Test token",
        "provider = test",
        "severity = low",
        "pattern = \\b(tt_[a-z0-9]{12})\\b",
        "example = tok tt_q8w7e6r5t4y3 here",
        "example = tok tt_short here",
        "negative = nothing here",
        "negative = tt_",
        "reference = https://example.com/test-token",
        ""}, "\n"))
      local r = scan{"--check-rules", "--no-builtin-rules", "--rules", file}
      assert.equal(1, r.code, r.stderr)
      assert.matches("^" .. escape(file) .. ":2: rule test%-token: example 2 is not found\n$", r.stdout)
    end)

    it("a malformed --rules file is exit 2 and one line naming file:line", function()
      local file = write(dir .. "/broken.rules",
        "[broken-rule]\nname = Broken\nprovider = test\nthis line is not a key\n")
      local tree = leaky_tree("broken", fake_key())
      for _, args in ipairs({{tree, "--rules", file}, {"--check-rules", "--rules", file},
                             {"--list-rules", "--no-builtin-rules", "--rules", file}}) do
        local r = scan(args)
        assert.equal(2, r.code, r.stdout)
        assert.matches("^ato scan: " .. escape(file) .. ":%d+: ", r.stderr)
        assert.is_true(one_line(r.stderr), r.stderr)
      end
    end)
  end)

  describe("progress", function()
    it("shows one updating line on a terminal for a scan over a second, cleared before the summary", function()
      local key = fake_key()
      local input = dir .. "/slow.txt"
      local body = {}
      for i = 1, 60000 do body[i] = ("line %06d of filler text for the progress test"):format(i) end
      body[30000] = "key = " .. key
      write(input, table.concat(body, "\n") .. "\n")
      -- small chunks make standard input slow enough to take seconds
      local r = assert(ato.exec{"script", "-qec",
        ("%q scan - < %q"):format(support.ato_bin, input), "/dev/null", stdin = "",
        timeout = 180, env = {ATO_CACHE_DIR = cache, ATO_SCAN_STDIN_CHUNK = "400"}})
      assert.equal(1, r.code, r.stdout)
      assert.truthy(r.stdout:find("\r\27[Kscanning: 1 file", 1, true) or
                    r.stdout:find("\r\27[Kscanning: ", 1, true), "no progress line: " .. r.stdout:sub(1, 300))
      assert.matches("MB/s", r.stdout)
      assert.matches("\r\27%[Kato scan: 1 file", r.stdout)      -- cleared, then the summary
      assert.is_false(shows(r.stdout, key))
      local piped = scan({"-"}, {stdin = assert(ato.fs.read(input)), env = {ATO_SCAN_STDIN_CHUNK = "2000"}})
      assert.is_nil(piped.stderr:find("\r", 1, true), "progress on a pipe")
    end)
  end)
end)

-- The pieces, in process: argument parsing, sizes, the JSON encoder, SARIF
-- locations, baseline files.
describe("ato.scan.cli pieces", function()
  support.clean_after_each()
  local cli = require "ato.scan.cli"
  local report = require "ato.scan.report"
  local baseline = require "ato.scan.baseline"

  local function parse(...)
    return cli.parse(table.pack(...))
  end

  it("parses sizes with K, M, G, T suffixes and rejects the rest", function()
    assert.equal(1000, cli.parse_size("1000"))
    assert.equal(10 * 1024 * 1024, cli.parse_size("10M"))
    assert.equal(10 * 1024 * 1024, cli.parse_size("10MiB"))
    assert.equal(1024 ^ 3 // 1, cli.parse_size("1G"))
    assert.equal(1536, cli.parse_size("1.5k"))
    for _, bad in ipairs({"", "M", "-1", "0", "10X", "1e9", "ten"}) do
      assert.is_nil(cli.parse_size(bad), bad)
    end
  end)

  it("parses options in both spellings, repeatable --rules, and -- before paths", function()
    local o = parse("a", "--format=json", "--rules", "x.rules", "--rules=y.rules",
                    "--threads", "3", "--max-file-size=2K", "-q", "--", "--odd-name")
    assert.same({"a", "--odd-name"}, o.paths)
    assert.same({"x.rules", "y.rules"}, o.rules)
    assert.equal("json", o.format)
    assert.equal(3, o.threads)
    assert.equal(2048, o.max_file_size)
    assert.is_true(o.quiet)
    assert.is_true(parse("--check-rules", "--help").help)
    local ok, e = pcall(parse, "--git", "-")
    assert.is_false(ok)
    assert.matches("not standard input", tostring(e))
  end)

  it("encodes JSON with stable keys, unescaped slashes, arrays and valid UTF-8", function()
    assert.equal('{"a":1,"b":"x/y","c":[]}', report.json({b = "x/y", a = 1, c = report.array({})}))
    assert.equal('{"z":true,"a":null}',
      report.json(report.ordered({z = true, a = require("cjson").null}, {"z", "a"})))
    assert.equal('["\\\\/",2.5]', report.json({"\\/", 2.5}))
    local bad = report.json({"a\255b"})
    assert.equal('["a\u{FFFD}b"]', bad)
    assert.same({"a\u{FFFD}b"}, require("cjson").decode(bad))
    assert.equal('{\n  "k": [\n    1\n  ]\n}', report.json({k = {1}}, "  "))
  end)

  it("locates findings for SARIF: relative inside the root, file: URIs outside", function()
    assert.equal("a/b", report.normalize("./a//b/"))
    assert.equal("/x", report.normalize("/a/../x"))
    assert.equal("../x", report.normalize("../x"))
    assert.equal("a%20b/%25/%3Ac", report.uri_encode("a b/%/:c"))
    local locate = report.locator({{id = "%SRCROOT%", dir = "/w/proj", cwd = "/w"}})
    assert.same({uri = "src/k.env", uriBaseId = "%SRCROOT%"}, locate({path = "proj/src/k.env"}))
    assert.same({uri = "src/k.env", uriBaseId = "%SRCROOT%"}, locate({path = "/w/proj/src/k.env"}))
    assert.same({uri = "file:///w/other/k.env"}, locate({path = "other/k.env"}))
    assert.same({uri = "(stdin)"}, locate({path = "(stdin)", stdin = true}))
    local git = report.locator({{id = "R", dir = "/r", relative_paths = true}})
    assert.same({uri = "a/b.txt", uriBaseId = "R"}, git({path = "a/b.txt"}))
    assert.same({uri = "git-blob:abc123"}, git({path = "blob abc123"}))
  end)

  it("reads back the baselines it writes and names what is wrong with others", function()
    local fp = ("ab"):rep(32)
    local text = baseline.encode({{fingerprint = fp, rule = "r", path = "p"},
                                  {fingerprint = fp, rule = "r", path = "p"}})
    local set, n = baseline.parse(text, "b.json")
    assert.equal(1, n)
    assert.is_true(set[fp])
    for _, bad in ipairs({"[]", '{"version":1}', '{"version":1,"fingerprints":[{"fingerprint":"zz"}]}'}) do
      local none, err = baseline.parse(bad, "b.json")
      assert.is_nil(none)
      assert.matches("^baseline b%.json: ", err.message)
    end
  end)

  it("summarises what was scanned and skipped", function()
    local s = report.summary({files = 3, bytes = 2500, elapsed = 0.5, findings = 2, suppressed = 1,
      binary_skipped = 1, skipped = 5, skips = {{path = "a", reason = "too large"},
      {path = "b", reason = "cannot open: Permission denied"}}})
    assert.equal("ato scan: 3 files, 2.5 kB in 0.50 s (5.0 kB/s): 2 findings, 1 suppressed by the baseline;"
      .. " 1 binary file not scanned (--binary scans them); 5 skipped: a (too large),"
      .. " b (cannot open: Permission denied) and 3 more\n", s)
    assert.matches("^ato scan: 4 blobs in 2 commits, 0 B",
      report.summary({git = true, blobs = 4, commits = 2, files = 0}))
  end)
end)
