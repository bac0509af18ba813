-- The `ato` command line, run as a real subprocess: commands, arguments,
-- exit statuses, bad input, signals, and secrets in what it prints.
local ato = require "ato"
local cjson = require "cjson"
local support = require "support"

local run = support.ato
local KEY = "SG." .. ("k"):rep(22) .. "." .. ("s"):rep(43)   -- format-valid, fake

local function write(path, text)
  assert(ato.fs.write(path, text))
  return path
end

describe("ato command line", function()
  support.clean_after_each()
  local dir, cleanup
  setup(function() dir, cleanup = support.tmpdir() end)
  teardown(function() cleanup() end)

  it("--help documents the commands and exits 0", function()
    local r = run{"--help"}
    assert.equal(0, r.code)
    for _, word in ipairs({"run FILE", "-e CODE", "version", "--log-format", "Exit status"}) do
      assert.truthy(r.stdout:find(word, 1, true), "help lacks " .. word)
    end
    assert.equal(r.stdout, run{"help"}.stdout)
  end)

  it("version lists ato and each library, also as JSON", function()
    local r = run{"version"}
    assert.equal(0, r.code)
    for _, lib in ipairs({"^ato %d", "\nLua 5%.4", "\nlibuv %d", "\nlibcurl %d", "\nlua%-cjson %d"}) do
      assert.matches(lib, r.stdout)
    end
    local v = cjson.decode(run{"version", "--json"}.stdout)
    assert.matches("^%d+%.%d+", v.ato)
    assert.matches("^5%.4", v.lua)
    assert.matches("^%d", v.libuv)
    assert.matches("^%d", v.libcurl)
  end)

  it("runs a file with arg and ... as lua5.4 does, with or without 'run'", function()
    local f = write(dir .. "/args.lua", "print(arg[0], arg[1], arg[2], #arg, select('#', ...), ...)")
    local expected = f .. "\ta\tb c\t2\t2\ta\tb c\n"
    assert.equal(expected, run{f, "a", "b c"}.stdout)
    assert.equal(expected, run{"run", f, "a", "b c"}.stdout)
    assert.equal("-e\tx\tnil\t1\t1\tx\n",
      run{"-e", "print(arg[0], arg[1], arg[2], #arg, select('#', ...), ...)", "x"}.stdout)
  end)

  it("runs a script from standard input", function()
    local r = run({"-", "p"}, {stdin = "print('from stdin', ...)"})
    assert.equal("from stdin\tp\n", r.stdout)
    assert.equal(0, r.code)
  end)

  it("exits 1 with file:line and a traceback on an uncaught error", function()
    local f = write(dir .. "/fail.lua", "local function f()\n  error('it broke')\nend\nf()\n")
    local r = run{f}
    assert.equal(1, r.code)
    assert.matches("^ato: " .. f:gsub("%p", "%%%0") .. ":2: it broke\n", r.stderr)
    assert.matches("stack traceback:", r.stderr)
    assert.matches("in local 'f'", r.stderr)
  end)

  it("gives one clear line and the documented status for bad input", function()
    local cases = {
      {{dir .. "/missing.lua"}, 2, "cannot open script '.-missing.lua': No such file or directory"},
      {{dir}, 2, "'.-' is a directory, not a script"},
      {{"--frobnicate"}, 2, "unknown option '%-%-frobnicate'"},
      {{"frobnicate"}, 2, "unknown command 'frobnicate'"},
      {{"run"}, 2, "run: missing script file"},
      {{"-e"}, 2, "%-e: missing code"},
      {{"--log-format", "xml", "-e", ""}, 2, "%-%-log%-format must be human, json or auto"},
      {{write(dir .. "/syntax.lua", "local x = = 1")}, 1, ".-/syntax.lua:1: unexpected symbol"},
    }
    for _, c in ipairs(cases) do
      local r = run(c[1])
      assert.equal(c[2], r.code, table.concat(c[1], " "))
      assert.matches("^ato: " .. c[3], r.stderr)
      local _, lines = r.stderr:gsub("\n", "")
      assert.equal(1, lines, "more than one line for " .. table.concat(c[1], " "))
    end
  end)

  it("ends at once when the main task fails while other work is pending", function()
    local code = [[
      local ato = require "ato"
      ato.spawn(function() ato.sleep(60) end)
      ato.spawn(function() ato.exec{"sleep", "60"} end)
      ato.sleep(0.05)
      error("main gave up")]]
    local t0 = ato.now()
    local r = run({"-e", code}, {timeout = 20})
    assert.equal(1, r.code)
    assert.matches("main gave up", r.stderr)
    assert.is_true(ato.now() - t0 < 15, "the process hung on its pending work")
  end)

  it("reports a task failure nobody joined and exits 1", function()
    local r = run{"-e", "local ato = require 'ato'; ato.spawn(function() error('lost') end); ato.sleep(0.01); print('main ok')"}
    assert.equal(1, r.code)
    assert.equal("main ok\n", r.stdout)
    assert.matches("^ato: task %d+ failed: .-lost", r.stderr)
  end)

  it("waits for spawned tasks after the main chunk returns", function()
    local r = run{"-e", "local ato = require 'ato'; ato.spawn(function() ato.sleep(0.02) print('late') end)"}
    assert.equal(0, r.code)
    assert.equal("late\n", r.stdout)
  end)

  it("detects a deadlock instead of hanging", function()
    local r = run{"-e", "require('ato').cond():wait()"}
    assert.equal(1, r.code)
    assert.matches("deadlock", r.stderr)
  end)

  it("says why when the main task is cancelled", function()
    local r = run{"-e", "local ato = require 'ato'; ato.current():cancel(); ato.sleep(1)"}
    assert.equal(1, r.code)
    assert.matches("^ato: main task cancelled: task cancelled", r.stderr)
  end)

  it("keeps running tasks right after the main task's handle is collected", function()
    local r = run{"-e", [[
      local ato = require "ato"
      ato.spawn(function()
        ato.sleep(0.01)
        for _ = 1, 200 do
          collectgarbage()
          local t = ato.spawn(function() ato.sleep(1) end)
          t:cancel()
          t:join()
        end
        print("supervisor finished")
      end)]]}
    assert.equal(0, r.code, r.stderr)
    assert.equal("supervisor finished\n", r.stdout)
  end)

  it("shuts down cleanly when a finalizer cancels a waiting task at exit", function()
    local r = run{"-e", [[
      local ato = require "ato"
      local t = ato.spawn(function() ato.sleep(100) end)
      setmetatable({}, {__gc = function() t:cancel() end})
      ato.sleep(0.01)
      os.exit(0)]]}
    assert.equal(0, r.code, r.stderr)
    assert.equal("", r.stderr)
  end)

  it("does not leave SIGPIPE ignored for os.execute and io.popen children", function()
    local r = run{"-e", [[
      local f = io.popen("grep SigIgn /proc/self/status")
      print(f:read("a")) f:close()]]}
    local mask = tonumber(r.stdout:match("SigIgn:%s*(%x+)"), 16)
    assert.equal(0, mask & (1 << 12), "SIGPIPE (13) is ignored in children")
  end)

  it("takes the word after -- as a script, and rejects extra or missing values", function()
    local f = write(dir .. "/-e", "print('a file named -e')")
    local r = assert(ato.exec{support.ato_bin, "--", "-e", cwd = dir})
    assert.equal("a file named -e\n", r.stdout)
    os.remove(f)
    assert.equal(2, run{"version", "--json", "extra"}.code)
    local missing = run{"--log-level"}
    assert.equal(2, missing.code)
    assert.matches("and it is missing", missing.stderr)
    local env = run({"-e", ""}, {env = {ATO_LOG_LEVEL = "loud"}})
    assert.equal(0, env.code)
    assert.matches("ignoring ATO_LOG_LEVEL='loud'", env.stderr)
  end)

  it("os.exit ends with its status", function()
    assert.equal(3, run{"-e", "os.exit(3)"}.code)
    assert.equal(0, run{"-e", "os.exit(true)"}.code)
    assert.equal(1, run{"-e", "os.exit(false)"}.code)
    assert.equal("x\n", run{"-e", "io.write('x\\n') os.exit(0)"}.stdout)
  end)

  it("finds its stdlib after make install", function()
    local prefix = dir .. "/prefix"
    -- (under `make test-asan` the sanitizer build's variables reach this
    -- make through MAKEFLAGS, so it installs the binary under test)
    local r = assert(ato.exec{"make", "-s", "install", "PREFIX=" .. prefix, timeout = 300})
    assert.equal(0, r.code, r.stderr)
    local out = assert(ato.exec{prefix .. "/bin/ato", "-e",
      "local ato = require 'ato'; require 'ato.log'; print(package.searchpath('ato', package.path))"})
    assert.equal(0, out.code, out.stderr)
    assert.equal(prefix .. "/bin/../share/ato/lua/ato/init.lua\n", out.stdout)
  end)
end)

describe("signals", function()
  support.clean_after_each()
  local dir, cleanup
  setup(function() dir, cleanup = support.tmpdir() end)
  teardown(function() cleanup() end)

  -- Starts ato on script in the background, waits until it wrote `ready`,
  -- sends the signals (with a pause between), returns status and stderr.
  local function interrupt(script, signals)
    local ready, log = dir .. "/ready", dir .. "/err"
    os.remove(ready)
    local sh = ([[%s %s %s 2>%s & p=$!
      n=0; while [ ! -e %s ] && [ $n -lt 500 ]; do sleep 0.01; n=$((n+1)); done
      for s in %s; do kill -$s $p; sleep 0.2; done
      wait $p; echo $?]]):format(support.ato_bin, script, ready, log, ready, signals)
    local r = assert(ato.exec{"sh", "-c", sh, timeout = 30})
    return tonumber(r.stdout:match("(%d+)%s*$")), assert(ato.fs.read(log))
  end

  it("SIGINT cancels the main task: __close runs, exit 130", function()
    local closed = dir .. "/closed"
    local script = write(dir .. "/sleepy.lua", ([[
      local ato = require "ato"
      local mark <close> = setmetatable({}, {__close = function(_, e)
        local f = io.open(%q, "w") f:write(e.kind) f:close() end})
      io.open(arg[1], "w"):close()
      ato.sleep(60)]]):format(closed))
    local status, err = interrupt(script, "INT")
    assert.equal(130, status)
    assert.equal("cancelled", assert(ato.fs.read(closed)))
    assert.matches("interrupted %(SIGINT%)", err)
  end)

  it("SIGINT stops a task that never waits", function()
    local script = write(dir .. "/spin.lua", "io.open(arg[1], 'w'):close() while true do end")
    assert.equal(130, (interrupt(script, "INT")))
  end)

  it("a second SIGINT exits at once with 130", function()
    local script = write(dir .. "/stubborn.lua", [[
      local ato = require "ato"
      local stuck <close> = setmetatable({}, {__close = function() while true do end end})
      io.open(arg[1], "w"):close()
      ato.sleep(60)]])
    assert.equal(130, (interrupt(script, "INT INT")))
  end)

  it("a single SIGINT stops a loop that swallows errors with pcall", function()
    local script = write(dir .. "/swallow.lua", [[
      io.open(arg[1], "w"):close()
      while true do pcall(function() for _ = 1, 1e7 do end end) end]])
    assert.equal(130, (interrupt(script, "INT")))
  end)

  it("SIGTERM cancels likewise, exit 143", function()
    local script = write(dir .. "/term.lua", "local ato = require 'ato' io.open(arg[1], 'w'):close() ato.sleep(60)")
    local status, err = interrupt(script, "TERM")
    assert.equal(143, status)
    assert.matches("terminated %(SIGTERM%)", err)
  end)
end)

describe("secrets in the runtime's own output", function()
  support.clean_after_each()

  it("are redacted in uncaught errors, task failures and syntax errors", function()
    local fp = ato.redact.fingerprint(KEY)
    local outputs = {
      run{"-e", ("error('leaked %s')"):format(KEY)}.stderr,
      run{"-e", ("require('ato').spawn(function() error('key=%s') end)"):format(KEY)}.stderr,
      run{"-e", ("'%s' = 1"):format(KEY)}.stderr,           -- syntax error quoting it
    }
    for i, text in ipairs(outputs) do
      assert.is_nil(text:find(KEY, 1, true), "output " .. i .. " shows the key")
      assert.is_nil(text:find(KEY:sub(4, 26), 1, true), "output " .. i .. " shows the key id")
      assert.truthy(text:find(fp, 1, true), "output " .. i .. " lacks the fingerprint")
    end
  end)
end)
