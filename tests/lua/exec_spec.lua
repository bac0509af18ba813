-- ato.exec: real processes, run from ato's main task.
local ato = require "ato"
local support = require "support"
local exec = require "ato.exec"

-- Is pid a live process? A zombie counts as gone: a killed grandchild is
-- reparented to init, which in a container may never reap it.
local function alive(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return false end
  local stat = f:read("a") or ""
  f:close()
  local state = stat:match("%) (%a)")
  return state ~= nil and state ~= "Z" and state ~= "X"
end

-- Is there any /proc entry for pid (our own children must be reaped)?
local function exists(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if f then f:close() end
  return f ~= nil
end

-- Polls check(pid) until it is false; true if that happened within 5 s.
local function gone(pid, check)
  local deadline = ato.now() + 5
  while (check or alive)(pid) do
    if ato.now() > deadline then return false end
    ato.sleep(0.02)
  end
  return true
end

-- Reads a pid a child wrote to a file, waiting up to 5 s for it.
local function read_pid(path)
  local deadline = ato.now() + 5
  repeat
    local f = io.open(path)
    if f then
      local pid = tonumber(f:read("a"))
      f:close()
      if pid then return pid end
    end
    ato.sleep(0.01)
  until ato.now() > deadline
  error("no pid in " .. path)
end

-- Does the file exist?
local function present(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

-- Calls exec{...} with t and checks that it raises a message matching pattern.
local function raises(pattern, t)
  local ok, e = pcall(exec, t)
  assert.is_false(ok, "exec did not raise for " .. pattern)
  assert.matches(pattern, tostring(e))
end

describe("ato.exec", function()
  support.clean_after_each()

  describe("results", function()
    it("is the module itself and ato.exec", function()
      assert.equal("function", type(exec))
      assert.equal(exec, ato.exec)
    end)

    it("runs a program with arguments, numbers converted", function()
      local r = assert(exec{"echo", "hello", "world", 42, 2.5})
      assert.equal("hello world 42 2.5\n", r.stdout)
      assert.equal("", r.stderr)
      assert.equal(0, r.code)
      assert.is_nil(r.signal)
      assert.is_true(r.ok)
      assert.is_true(math.type(r.pid) == "integer" and r.pid > 0)
      assert.equal("float", math.type(r.elapsed))
      assert.is_true(r.elapsed >= 0 and r.elapsed < 30)
    end)

    it("returns exit codes, a non-zero one is not an error", function()
      local r = assert(exec{"sh", "-c", "exit 0"})
      assert.equal(0, r.code)
      assert.is_true(r.ok)
      r = assert(exec{"sh", "-c", "exit 3"})
      assert.equal(3, r.code)
      assert.is_false(r.ok)
    end)

    it("reports a child killed by a signal", function()
      local r = assert(exec{"sh", "-c", "kill -TERM $$"})
      assert.equal(15, r.signal)
      assert.is_nil(r.code)
      assert.is_false(r.ok)
    end)

    it("captures stdout and stderr separately", function()
      local r = assert(exec{"sh", "-c", "echo out; echo err >&2; echo out2"})
      assert.equal("out\nout2\n", r.stdout)
      assert.equal("err\n", r.stderr)
    end)

    it("captures 5 MB of output", function()
      local r = assert(exec{"sh", "-c", "yes abcdefghi | head -c 5000000"})
      assert.equal(5000000, #r.stdout)
      assert.is_true(r.stdout == ("abcdefghi\n"):rep(500000))
      assert.is_true(r.ok)
    end)
  end)

  describe("stdin", function()
    it("round-trips 1 MB through cat", function()
      local data = ("0123456789abcdef"):rep(65536)
      local r = assert(exec{"cat", stdin = data})
      assert.equal(#data, #r.stdout)
      assert.is_true(r.stdout == data)
    end)

    it("survives a child that does not read its input", function()
      local data = ("x"):rep(1 << 20)
      for _ = 1, 3 do
        local r = assert(exec{"true", stdin = data})
        assert.equal(0, r.code)
      end
      local r = assert(exec{"sh", "-c", "head -c 10; exit 4", stdin = data})
      assert.equal("xxxxxxxxxx", r.stdout)
      assert.equal(4, r.code)
    end)

    it("is an empty pipe for an empty string", function()
      local r = assert(exec{"cat", stdin = ""})
      assert.equal("", r.stdout)
    end)

    it("is /dev/null when absent", function()
      local r = assert(exec{"readlink", "/proc/self/fd/0"})
      assert.equal("/dev/null\n", r.stdout)
      assert.equal("", assert(exec{"cat"}).stdout)
    end)
  end)

  describe("environment", function()
    it("merges env over ato's environment", function()
      local path = assert(os.getenv("PATH"))
      local r = assert(exec{"sh", "-c", 'printf "%s|%s|%s|%s" "$A1" "$A2" "$A3" "$PATH"',
        env = {A1 = "one", A2 = 2, "A3=three=3"}})
      assert.equal("one|2|three=3|" .. path, r.stdout)
    end)

    it("removes a variable set to false", function()
      assert(os.getenv("PATH"))
      local r = assert(exec{"env", env = {PATH = false, ATO_KEPT = "yes"}})
      assert.is_nil(("\n" .. r.stdout):find("\nPATH="))
      assert.is_truthy(("\n" .. r.stdout):find("\nATO_KEPT=yes\n"))
    end)

    it("starts from an empty environment with clear_env", function()
      local r = assert(exec{"env", env = {ATO_ONLY = "1"}, clear_env = true})
      assert.equal("ATO_ONLY=1\n", r.stdout)
      r = assert(exec{"env", clear_env = true})
      assert.equal("", r.stdout)
    end)
  end)

  describe("output to a file", function()
    it("appends stdout and stderr to files created 0600, in order", function()
      local dir, cleanup = support.tmpdir()
      finally(cleanup)
      local log = dir .. "/run.log"
      assert(ato.fs.write(log, "before\n"))
      local r = assert(exec{"sh", "-c", "echo out; echo err >&2; echo out2", stdout = {append = log},
                            stderr = {append = log}})
      assert.equal(0, r.code)
      assert.equal("", r.stdout)
      assert.equal("before\nout\nerr\nout2\n", assert(ato.fs.read(log)))
      local fresh = dir .. "/fresh.log"
      assert(exec{"echo", "hi", stdout = {append = fresh}})
      assert.equal("0600", assert(ato.fs.stat(fresh)).perms)
      assert.equal("hi\n", assert(ato.fs.read(fresh)))
    end)

    it("returns an error naming a file it cannot open, and raises for a bad option", function()
      local r, err = exec{"true", stderr = {append = "/nonexistent/ato-dir/x.log"}}
      assert.is_nil(r)
      assert.equal("not_found", err.kind)
      assert.equal("exec true: stderr file /nonexistent/ato-dir/x.log: No such file or directory", err.message)
      assert.has_error(function() exec{"true", stdout = {}} end)
      assert.has_error(function() exec{"true", stdout = {append = 1}} end)
    end)
  end)

  describe("cwd", function()
    it("runs in the given directory", function()
      assert.equal("/\n", assert(exec{"pwd", cwd = "/"}).stdout)
      local dir, cleanup = support.tmpdir()
      finally(cleanup)
      assert(exec{"sh", "-c", "echo hi > here.txt", cwd = dir})
      local f = assert(io.open(dir .. "/here.txt"))
      assert.equal("hi\n", f:read("a"))
      f:close()
    end)

    it("returns not_found naming a missing directory", function()
      local r, err = exec{"pwd", cwd = "/nonexistent/ato-exec-dir"}
      assert.is_nil(r)
      assert.equal("not_found", err.kind)
      assert.matches("/nonexistent/ato-exec-dir", err.message, 1, true)
      assert.matches("^exec pwd: ", tostring(err))
    end)
  end)

  describe("spawn errors", function()
    it("returns not_found for a missing program", function()
      local r, err = exec{"ato-no-such-program", "x"}
      assert.is_nil(r)
      assert.equal("not_found", err.kind)
      assert.equal("exec ato-no-such-program: no such file or directory",
                   err.message)
      assert.equal("ENOENT", err.code)
    end)

    it("returns permission for a file that is not executable", function()
      local dir, cleanup = support.tmpdir()
      finally(cleanup)
      assert(exec{"sh", "-c", "echo 'echo hi' > f; chmod 644 f", cwd = dir})
      local r, err = exec{dir .. "/f"}
      assert.is_nil(r)
      assert.equal("permission", err.kind)
      assert.matches("/f: permission denied", err.message, 1, true)
    end)
  end)

  -- Timeouts leave the child a second to write its pid file first.
  describe("timeout", function()
    it("kills the child and returns timeout", function()
      local dir, cleanup = support.tmpdir()
      finally(cleanup)
      local t0 = ato.now()
      local r, err = exec{"sh", "-c", "echo $$ > pid; exec sleep 10",
                          cwd = dir, timeout = 1}
      assert.is_true(ato.now() - t0 < 5, "returned within 5 s")
      assert.is_nil(r)
      assert.equal("timeout", err.kind)
      assert.equal("exec sh: timed out after 1 s", err.message)
      local pid = read_pid(dir .. "/pid")
      assert.equal(pid, err.pid)
      assert.is_true(gone(pid, exists), "the child was killed and reaped")
    end)

    it("kills a grandchild in the child's process group", function()
      local dir, cleanup = support.tmpdir()
      finally(cleanup)
      local t0 = ato.now()
      local r, err = exec{"sh", "-c", "sleep 10 & echo $! > pid; wait",
                          cwd = dir, timeout = 1}
      assert.is_true(ato.now() - t0 < 5, "returned within 5 s")
      assert.is_nil(r)
      assert.equal("timeout", err.kind)
      local pid = read_pid(dir .. "/pid")
      assert.is_true(gone(pid), "the grandchild was killed")
      assert.is_true(gone(err.pid, exists), "the child was killed and reaped")
    end)

    it("SIGKILLs what is left of the group after the child exited", function()
      local dir, cleanup = support.tmpdir()
      finally(cleanup)
      -- sh dies of the SIGTERM, its background child ignores it
      local r, err = exec{"sh", "-c",
        "(trap '' TERM; : > trapped; exec sleep 30) & echo $! > pid; wait",
        cwd = dir, timeout = 1}
      assert.is_nil(r)
      assert.equal("timeout", err.kind)
      local pid = read_pid(dir .. "/pid")
      assert.is_true(present(dir .. "/trapped"), "SIGTERM was ignored in time")
      assert.is_true(gone(err.pid, exists), "the child was killed and reaped")
      assert.is_true(gone(pid), "the grandchild was killed")
    end)

    it("does not fire when the child finishes in time", function()
      local r = assert(exec{"echo", "quick", timeout = 10})
      assert.equal("quick\n", r.stdout)
    end)
  end)

  describe("cancellation", function()
    it("SIGKILLs a child that ignores SIGTERM a second later", function()
      local dir, cleanup = support.tmpdir()
      finally(cleanup)
      local task = ato.spawn(function()
        return exec{"sh", "-c", "trap '' TERM; echo $$ > pid; exec sleep 30",
                    cwd = dir}
      end)
      local pid = read_pid(dir .. "/pid")
      local t0 = ato.now()
      task:cancel()
      local _, err = task:join()
      assert.equal("cancelled", err.kind)
      ato.sleep(0.3)
      assert.is_true(alive(pid), "SIGTERM was ignored")
      assert.is_true(gone(pid, exists), "then SIGKILL came, and the reap")
      assert.is_true(ato.now() - t0 >= 0.9, "a second after SIGTERM")
    end)

    it("resumes the task at once and kills the child", function()
      local dir, cleanup = support.tmpdir()
      finally(cleanup)
      local task = ato.spawn(function()
        return exec{"sh", "-c", "echo $$ > pid; exec sleep 10", cwd = dir}
      end)
      local pid = read_pid(dir .. "/pid")
      local t0 = ato.now()
      task:cancel()
      local r, err = task:join()
      assert.is_true(ato.now() - t0 < 5, "join returned within 5 s")
      assert.is_nil(r)
      assert.equal("cancelled", err.kind)
      assert.is_true(gone(pid, exists), "the child was killed and reaped")
    end)

    it("kills the child when os.exit ends ato during an exec", function()
      local dir, cleanup = support.tmpdir()
      finally(cleanup)
      local t0 = ato.now()
      local r = support.ato({"-e", [[
        local ato, dir = require "ato", ...
        ato.spawn(function()
          ato.exec{"sh", "-c", "echo $$ > pid; exec sleep 10", cwd = dir}
        end)
        while not io.open(dir .. "/pid") do ato.sleep(0.01) end
        ato.sleep(0.05)
        os.exit(0)
      ]], dir})
      assert.is_true(ato.now() - t0 < 10, "ato exited within 10 s")
      assert.equal("", r.stderr)
      assert.equal(0, r.code)
      assert.is_true(gone(read_pid(dir .. "/pid")), "the child was killed")
    end)

    it("a forced exit (a second SIGINT) kills the children's groups", function()
      local dir, cleanup = support.tmpdir()
      finally(cleanup)
      -- The child ignores SIGTERM, and ato is stuck in a __close handler
      -- after the first SIGINT: only the forced exit can kill the child.
      local script = dir .. "/stuck.lua"
      local f = assert(io.open(script, "w"))
      f:write[[
        local ato, dir = require "ato", arg[1]
        local stuck <close> = setmetatable({}, {__close = function()
          while true do end
        end})
        ato.spawn(function()
          ato.exec{"sh", "-c", "trap '' TERM; echo $$ > pid; exec sleep 30",
                   cwd = dir}
        end)
        local function exists(p)
          local f = io.open(p)
          if f then f:close() end
          return f ~= nil
        end
        while not exists(dir .. "/pid") do ato.sleep(0.01) end
        io.open(dir .. "/ready", "w"):close()
        ato.sleep(60)
      ]]
      f:close()
      local r = assert(exec{"sh", "-c", ([[%s %s %s 2>%s/err & p=$!
        n=0; while [ ! -e %s/ready ] && [ $n -lt 500 ]; do sleep 0.01; n=$((n+1)); done
        kill -INT $p; sleep 0.2; kill -INT $p
        wait $p; echo $?]]):format(support.ato_bin, script, dir, dir, dir),
        timeout = 30})
      assert.equal("130", r.stdout:match("(%d+)%s*$"))
      assert.is_true(gone(read_pid(dir .. "/pid")), "the child was killed")
    end)
  end)

  describe("max_output", function()
    it("returns too_large for stdout", function()
      local r, err = exec{"head", "-c", "100000", "/dev/zero", max_output = 1000}
      assert.is_nil(r)
      assert.equal("too_large", err.kind)
      assert.equal("stdout", err.stream)
      assert.equal(1000, err.limit)
      assert.matches("^exec head: stdout exceeded max_output", err.message)
    end)

    it("returns too_large for stderr", function()
      local r, err = exec{"sh", "-c", "head -c 100000 /dev/zero >&2",
                          max_output = 10}
      assert.is_nil(r)
      assert.equal("too_large", err.kind)
      assert.equal("stderr", err.stream)
    end)

    it("kills a child that would never stop", function()
      local t0 = ato.now()
      local r, err = exec{"yes", max_output = 1 << 20}
      assert.is_true(ato.now() - t0 < 5, "returned within 5 s")
      assert.is_nil(r)
      assert.equal("too_large", err.kind)
      assert.is_false(exists(err.pid))
    end)

    it("accepts output of exactly max_output bytes", function()
      local r = assert(exec{"printf", "hello", max_output = 5})
      assert.equal("hello", r.stdout)
      assert.is_nil(exec{"printf", "hello!", max_output = 5})
    end)
  end)

  describe("concurrency", function()
    it("runs 20 execs in tasks at the same time", function()
      local dir, cleanup = support.tmpdir()
      finally(cleanup)
      local tasks = {}
      -- Each child waits until all 20 have started: one after the other,
      -- the first would time out. No clock involved.
      for i = 1, 20 do
        tasks[i] = ato.spawn(function()
          return exec{"sh", "-c", [[: > "started.$0"
            while set -- started.*; [ $# -lt 20 ]; do sleep 0.02; done
            echo "$0"; echo "e$0" >&2]], i, cwd = dir, timeout = 30}
        end)
      end
      for i = 1, 20 do
        local r = assert(tasks[i]:join())
        assert.equal(i .. "\n", r.stdout)
        assert.equal("e" .. i .. "\n", r.stderr)
      end
    end)
  end)

  describe("stdout and stderr modes", function()
    it("inherits ato's own stdout and stderr, in order", function()
      local r = support.ato({"-e", [[
        local exec = require "ato.exec"
        io.write("before\n")
        local r = exec{"sh", "-c", "echo out; echo err >&2", stdout = "inherit", stderr = "inherit"}
        assert(r.stdout == "" and r.stderr == "" and r.ok)
        io.write("after\n")
      ]]})
      assert.equal("before\nout\nafter\n", r.stdout)
      assert.equal("err\n", r.stderr)
      assert.equal(0, r.code)
    end)

    it("ignores output: the child writes to /dev/null", function()
      local r = assert(exec{"sh", "-c", "echo out; exec 3>&1; readlink /proc/self/fd/3 >&2",
                            stdout = "ignore"})
      assert.equal("", r.stdout)
      assert.equal("/dev/null\n", r.stderr)
      r = assert(exec{"sh", "-c", "echo err >&2; echo out", stderr = "ignore"})
      assert.equal("out\n", r.stdout)
      assert.equal("", r.stderr)
    end)
  end)

  describe("misuse", function()
    it("raises where it cannot wait", function()
      local ok, e = pcall(table.sort, {3, 1, 2}, function(a, b)
        exec{"true"}
        return a < b
      end)
      assert.is_false(ok)
      e = tostring(e)
      assert.matches("cannot wait here", e)
    end)

    it("raises on bad arguments", function()
      assert.has_error(function() exec() end)
      assert.has_error(function() exec("echo") end)
      raises("command expected", {})
      raises("command expected", {42})
      raises("command expected", {cwd = "/"})
      raises("argument 2 must be a string or a number %(got table%)", {"echo", {}})
      raises("argument 2 must be a string or a number %(got boolean%)", {"echo", true})
      raises("argument 2 must be a string or a number %(got nil%)", {"echo", nil, "x"})
      raises("list without holes", {"echo", [3] = "x"})
      raises("list without holes", {"echo", [1.5] = "x"})
      raises("NUL", {"echo", "a\0b"})
      raises("NUL", {"ec\0ho"})
      raises("unknown option 'tiemout'", {"echo", tiemout = 1})
      raises("option 'cwd' must be a string", {"echo", cwd = 1})
      raises("NUL", {"echo", cwd = "/\0"})
      raises("option 'stdin' must be a string", {"echo", stdin = 5})
      raises("option 'timeout' must be a number of seconds", {"echo", timeout = "1"})
      raises("option 'timeout' must be a number of seconds", {"echo", timeout = -1})
      raises("option 'timeout' must be a number of seconds", {"echo", timeout = 0/0})
      raises("option 'stdout' must be \"capture\", \"inherit\", \"ignore\" or {append = PATH}",
             {"echo", stdout = "bogus"})
      raises("option 'stderr' must be", {"echo", stderr = true})
      raises("option 'max_output' must be an integer", {"echo", max_output = -1})
      raises("option 'max_output' must be an integer", {"echo", max_output = 1.5})
      raises("option 'max_output' must be an integer", {"echo", max_output = "10"})
      raises("option 'clear_env' must be a boolean", {"echo", clear_env = "yes"})
      raises("option 'env' must be a table", {"echo", env = "A=1"})
      raises("bad environment variable name 'A=B'", {"echo", env = {["A=B"] = "x"}})
      raises("bad environment variable name ''", {"echo", env = {[""] = "x"}})
      raises("env value of A must be a string, a number or false",
             {"echo", env = {A = true}})
      raises("env value of A must be", {"echo", env = {A = {}}})
      raises("NUL", {"echo", env = {A = "x\0y"}})
      raises("not NAME=value", {"echo", env = {"JUSTNAME"}})
      raises("bad environment variable name", {"echo", env = {"=x"}})
    end)

    it("passes binary stdin, NUL bytes included", function()
      local data = "a\0b\255\0"
      assert.equal(data, assert(exec{"cat", stdin = data}).stdout)
    end)
  end)
end)
