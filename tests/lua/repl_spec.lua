-- `ato repl` through a real pseudo-terminal: tmux (Debian) runs the
-- console in a detached session; the test types with send-keys and reads
-- the screen with capture-pane. Covered: expression printing, a multi-line
-- function, completing a field, Ctrl-C cancelling ato.sleep(60) with the
-- console still usable, a background timer printing while a line is being
-- edited, history kept across sessions without the secret line, a
-- SendGrid-format key printed redacted, Ctrl-D leaving with status 0; and
-- the non-terminal mode (`echo ... | ato repl`).
local ato = require "ato"
local support = require "support"

local KEY = "SG." .. ("Zx8Cv7Bn6M"):rep(2) .. "q1" .. "." .. ("Lk5Jh4Gf3D"):rep(4) .. "s2a"

describe("ato repl", function()
  support.clean_after_each()
  local dir, cleanup
  setup(function() dir, cleanup = support.tmpdir() end)
  teardown(function() cleanup() end)

  local n = 0
  -- A console in a fresh tmux server; returns an object to drive it.
  local function console(env_extra, command)
    n = n + 1
    -- a socket name of its own: the test directory's name is unique
    local c = {sock = ("ato-repl-%s-%d"):format(dir:match("([^/.]+)$"), n), state = dir .. "/state"}
    local env = {"XDG_STATE_HOME=" .. c.state, "HOME=" .. dir, "TERM=xterm", "NO_COLOR=1"}
    for k, v in pairs(env_extra or {}) do env[#env + 1] = k .. "=" .. v end
    local cmd = ("env %s %s %s; echo EXIT=$?; sleep 30"):format(table.concat(env, " "), support.ato_bin,
                                                                command or "repl")
    local function tmux(...)
      return assert(ato.exec{"tmux", "-L", c.sock, "-f", "/dev/null", ...})
    end
    local started = tmux("new-session", "-d", "-s", "t", "-x", "150", "-y", "50", cmd)
    assert(started.ok, started.stderr)
    function c.keys(...) assert(tmux("send-keys", "-t", "t", ...).ok) end
    function c.type(text) assert(tmux("send-keys", "-t", "t", "-l", text).ok) end
    function c.screen() return tmux("capture-pane", "-p", "-J", "-S", "-500", "-t", "t").stdout end
    -- Waits until the screen shows text (plain), returns the screen.
    function c.wait(text, seconds)
      local deadline = ato.now() + (seconds or 10)
      local s
      repeat
        s = c.screen()
        if s:find(text, 1, true) then return s end
        ato.sleep(0.02)
      until ato.now() > deadline
      error(("the console never showed %q; screen:\n%s"):format(text, s))
    end
    -- Counts the occurrences of text on the screen.
    function c.count(text)
      local s, k, i = c.screen(), 0, 1
      while true do
        local a, b = s:find(text, i, true)
        if not a then return k end
        k, i = k + 1, b + 1
      end
    end
    function c.close() tmux("kill-server") end
    c.wait("> ")
    return c
  end

  it("prints expressions, takes a multi-line function, and completes a field", function()
    local c = console()
    finally(c.close)
    c.type("1+1") c.keys("Enter")
    local s = c.wait("\n2\n")
    assert.matches("> 1%+1\n2\n", s)
    c.type("function twice(x)") c.keys("Enter")
    c.wait(">> ")
    c.type("  return x * 2") c.keys("Enter")
    c.type("end") c.keys("Enter")
    c.type("twice(21)") c.keys("Enter")
    c.wait("\n42\n")
    c.type("string.up") c.keys("Tab")
    c.wait("string.upper")
    c.type("('abc')") c.keys("Enter")
    c.wait('"ABC"')
    c.type("error('boom')") c.keys("Enter")
    c.wait("stdin:1: boom")
    c.type("3*3") c.keys("Enter")
    c.wait("\n9\n")
  end)

  it("cancels a running line with Ctrl-C within a second and stays usable", function()
    local c = console()
    finally(c.close)
    c.type("do local guard <close> = setmetatable({}, {__close = function() closed = 'yes' end}) ato.sleep(60) end")
    c.keys("Enter")
    ato.sleep(0.3)
    local t0 = ato.now()
    c.keys("C-c")
    c.wait("cancelled (Ctrl-C)", 5)
    assert.is_true(ato.now() - t0 < 1, ("Ctrl-C took %.2f s"):format(ato.now() - t0))
    c.type("closed") c.keys("Enter")             -- the line's __close handler ran
    c.wait('\n"yes"\n')
    c.type("40+2") c.keys("Enter")
    c.wait("\n42\n")
    -- Ctrl-C at the prompt drops the line being edited
    c.type("this is not lua") c.keys("C-c")
    c.wait("^C")
    c.type("1") c.keys("Enter")
    c.wait("\n1\n")
    assert.is_nil(c.screen():find("syntax error", 1, true))
  end)

  it("shows a background task's output above the line being edited", function()
    local c = console()
    finally(c.close)
    c.type("ato.spawn(function() ato.sleep(0.4) print('tick from the background') end)") c.keys("Enter")
    c.wait("ato.task")                   -- the spawn's value
    c.type("20")                         -- typing, not entered
    c.wait("\ntick from the background\n")   -- on a line of its own, not the typed one
    c.type("+3") c.keys("Enter")
    c.wait("\n23\n")
  end)

  it("keeps history across sessions, without the line holding a secret", function()
    local c = console()
    finally(c.close)
    c.type("remembered = 40") c.keys("Enter")
    c.type(("leaked = %q"):format(KEY)) c.keys("Enter")
    c.type("1") c.keys("Enter")
    c.wait("\n1\n")
    c.keys("C-d")
    c.wait("EXIT=0")
    c.close()
    local path = dir .. "/state/ato/history"
    local text = assert(ato.fs.read(path))
    assert.matches("remembered = 40", text, 1, true)
    assert.is_nil(text:find(KEY, 1, true))
    assert.is_nil(text:find("leaked", 1, true))
    assert.equal("0600", assert(ato.fs.stat(path)).perms)
    local c2 = console()
    finally(c2.close)
    c2.keys("Up")                        -- "1"
    c2.keys("Up")                        -- "remembered = 40" (the secret line was never kept)
    c2.wait("> remembered = 40")
    c2.keys("Enter")
    c2.type("remembered + 2") c2.keys("Enter")
    c2.wait("\n42\n")
  end)

  it("prints a table holding a SendGrid key redacted", function()
    local c = console()
    finally(c.close)
    c.type(("t = {api_key = %q, note = 'sent with ' .. %q, n = 1}"):format(KEY, KEY)) c.keys("Enter")
    c.type("t") c.keys("Enter")
    local s = c.wait('note = "sent with')       -- the printed value (the typed line has single quotes)
    -- the typed line echoes the key (the operator typed it); nothing printed after does
    local after = s:sub((s:find("> t\n", 1, true)))
    assert.is_nil(after:find(KEY, 1, true), after)
    assert.is_nil(after:find(KEY:sub(4, 24), 1, true), after)
    assert.matches("SG%.", after)
  end)

  it("is what bare `ato` opens on a terminal", function()
    local c = console({}, "")
    finally(c.close)
    c.type("2^10") c.keys("Enter")
    c.wait("\n1024.0\n")
  end)

  it("has dot commands: .load, .tasks, .cancel, .time, .help", function()
    local c = console()
    finally(c.close)
    local file = dir .. "/defs.lua"
    assert(ato.fs.write(file, "function from_file() return 'loaded' end\n"))
    c.type(".load " .. file) c.keys("Enter")
    c.type("from_file()") c.keys("Enter")
    c.wait('"loaded"')
    c.type("bg = ato.spawn(function() ato.sleep(60) end)") c.keys("Enter")
    c.type(".tasks") c.keys("Enter")
    local s = c.wait("waiting")
    local id = s:match("\n(%d+)  waiting")
    assert(id, s)
    c.type(".cancel " .. id) c.keys("Enter")
    c.wait("cancelled task " .. id)
    c.type("bg:status()") c.keys("Enter")
    c.wait('"cancelled"')
    c.type(".time") c.keys("Enter")
    c.wait("timing on")
    c.type("1") c.keys("Enter")
    c.wait(" ms)")
    c.type(".help") c.keys("Enter")
    c.wait(".cancel N")
    c.type(".nope") c.keys("Enter")
    c.wait("unknown command .nope")
  end)

  it("asks at Ctrl-D what to do with background tasks still running", function()
    local c = console()
    finally(c.close)
    c.type("ato.spawn(function() ato.sleep(0.3) print('finished in the background') end)") c.keys("Enter")
    c.keys("C-d")
    c.wait("[w]ait for them or [c]ancel them?")
    c.type("w") c.keys("Enter")
    c.wait("\nfinished in the background\n")
    c.wait("EXIT=0")
    local c2 = console()
    finally(c2.close)
    c2.type("ato.spawn(function() ato.sleep(60) end)") c2.keys("Enter")
    c2.keys("C-d")
    c2.wait("[c]ancel them?")
    local t0 = ato.now()
    c2.type("c") c2.keys("Enter")
    c2.wait("EXIT=0")
    assert.is_true(ato.now() - t0 < 5)
  end)

  it("leaves on Ctrl-D with status 0", function()
    local c = console()
    finally(c.close)
    c.type("x = 1") c.keys("Enter")
    c.keys("C-d")
    c.wait("EXIT=0")
  end)

  it("evaluates chunks from stdin without prompts when stdin is not a terminal", function()
    local r = support.ato({"repl"}, {stdin = "print(1)\n1+1\nlocal t = {}\nfunction g()\n  return 'multi'\nend\ng()\n"})
    assert.equal(0, r.code, r.stderr)
    assert.equal('1\n2\n"multi"\n', r.stdout)
    r = support.ato({"repl"}, {stdin = "x = = 1\n"})
    assert.equal(1, r.code)
    assert.matches("unexpected symbol", r.stdout)
  end)
end)
