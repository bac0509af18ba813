-- ato.trap: a script takes over SIGTERM/SIGINT/SIGHUP (the daemon's
-- graceful shutdown and reload). Real signals to real child processes.
local ato = require "ato"
local support = require "support"

describe("ato.trap", function()
  support.clean_after_each()
  local dir, cleanup
  setup(function() dir, cleanup = support.tmpdir() end)
  teardown(function() cleanup() end)

  -- Runs code in a child; calls steps(pid, wait_for) while it runs, where
  -- wait_for(text) waits until the child printed text. Returns the child's
  -- exec result and its output.
  local function with_child(code, steps)
    local out = dir .. "/out"
    ato.fs.remove(out)
    local child = ato.spawn(function()
      return assert(ato.exec{"sh", "-c", 'echo $$ > "$3.pid"; exec "$1" -e "$2" > "$3" 2>&1', "sh",
                             support.ato_bin, code, out, timeout = 30})
    end)
    local function wait_for(text)
      for _ = 1, 500 do
        local s = ato.fs.read(out)
        if s and s:find(text, 1, true) then return s end
        ato.sleep(0.01)
      end
      error("the child never printed " .. text .. ": " .. tostring(ato.fs.read(out)))
    end
    wait_for("ready")
    steps(child, wait_for)
    local r = child:join()
    return r, assert(ato.fs.read(out))
  end

  local function signal(child, sig)
    -- the shell wrote its pid, then exec'ed ato: the pid is ato's
    local pid = assert(ato.fs.read(dir .. "/out.pid")):match("%d+")
    assert(assert(ato.exec{"kill", "-" .. sig, pid}).ok)
    return child
  end

  it("turns SIGTERM into a wake-up, so shutdown can finish its work", function()
    local r, out = with_child([[
      local ato = require "ato"
      local term = ato.trap("term")
      print("ready"); io.stdout:flush()
      assert(term:wait())
      ato.sleep(0.1)                       -- still allowed to wait
      print("graceful")
    ]], function(child) signal(child, "TERM") end)
    assert.equal(0, r.code, out)
    assert.matches("graceful", out)
  end)

  it("wakes on every SIGHUP and never exits for it", function()
    local r, out = with_child([[
      local ato = require "ato"
      local hup, term = ato.trap("hup"), ato.trap("term")
      local n = 0
      ato.spawn(function() while true do assert(hup:wait()); n = n + 1; print("hup " .. n); io.stdout:flush() end end)
      print("ready"); io.stdout:flush()
      assert(term:wait())
      print("hups " .. n)
      os.exit(0)
    ]], function(child, wait_for)
      signal(child, "HUP"); wait_for("hup 1")
      signal(child, "HUP"); wait_for("hup 2")
      signal(child, "TERM")
    end)
    assert.equal(0, r.code, out)
    assert.matches("hups 2", out)
  end)

  it("a second SIGTERM ends the process at once, status 143", function()
    local r, out = with_child([[
      local ato = require "ato"
      local term = ato.trap("term")
      print("ready"); io.stdout:flush()
      assert(term:wait())
      print("stuck in shutdown"); io.stdout:flush()
      ato.sleep(60)
    ]], function(child, wait_for)
      signal(child, "TERM"); wait_for("stuck in shutdown")
      signal(child, "TERM")
    end)
    assert.equal(143, r.code, out)
  end)

  it("keeps a script that only waits for a signal alive, and times out when asked", function()
    local r, out = with_child([[
      local ato = require "ato"
      local int = ato.trap("int")
      local ok, err = int:wait(0.05)
      assert(ok == nil and err.kind == "timeout", tostring(err))
      print("ready"); io.stdout:flush()
      assert(int:wait())                   -- nothing else alive: no deadlock report
      print("got INT")
    ]], function(child) ato.sleep(0.2); signal(child, "INT") end)
    assert.equal(0, r.code, out)
    assert.matches("got INT", out)
    assert.is_nil(out:find("deadlock", 1, true))
  end)

  it("rejects an unknown signal name", function()
    assert.has_error(function() ato.trap("kill") end)
  end)
end)
