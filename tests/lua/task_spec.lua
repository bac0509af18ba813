-- The task runtime: spawn/join/cancel, sleep, timeout, gather, channels,
-- conditions, yielding across pcall/iterators/coroutines, and scale.
local ato = require "ato"
local support = require "support"

local function closer(log, name)
  return setmetatable({}, {__close = function(_, err)
    log[#log + 1] = name .. ":" .. (err and (err.kind or tostring(err)) or "ok")
  end})
end

describe("tasks", function()
  support.clean_after_each()

  it("spawn returns a handle whose join gives all results, holes included", function()
    local t = ato.spawn(function(a, b) return a + b, nil, "z" end, 2, 3)
    assert.equal("ready", t:status())
    local r = table.pack(t:join())
    assert.same({5, nil, "z", n = 3}, r)
    assert.equal("done", t:status())
    assert.same(r, table.pack(t:join()))   -- joining again gives the same
  end)

  it("runs the spawned function only when the spawner waits", function()
    local order = {}
    local t = ato.spawn(function() order[#order + 1] = "child" end)
    order[#order + 1] = "parent"
    t:join()
    assert.same({"parent", "child"}, order)
  end)

  it("reports status, id, age and a readable tostring", function()
    local t = ato.spawn(function() ato.sleep(0.05) end)
    ato.sleep(0.01)
    assert.equal("waiting", t:status())
    assert.is_true(t:id() > 0)
    assert.is_true(t:age() > 0)
    assert.matches("^ato.task %d+ %(waiting%)$", tostring(t))
    t:join()
    assert.matches("%(done%)$", tostring(t))
    assert.equal(ato.current(), ato.current())
    assert.equal("running", ato.current():status())
  end)

  it("join of a failed task returns nil and the error, with nothing reported", function()
    local t = ato.spawn(function() error("boom") end)
    local v, err = t:join()
    assert.is_nil(v)
    assert.matches("task_spec.lua:%d+: boom", err)
    assert.equal("failed", t:status())
    local e = {kind = "custom"}
    local v2, err2 = ato.spawn(function() error(e) end):join()
    assert.is_nil(v2)
    assert.equal(e, err2)
  end)

  it("join with a timeout returns nil, timeout and leaves the task running", function()
    local t = ato.spawn(function() ato.sleep(0.2) return "late" end)
    local v, err = t:join(0.01)
    assert.is_nil(v)
    assert.equal("timeout", err.kind)
    assert.equal("waiting", t:status())
    assert.equal("late", t:join())
  end)

  it("a task cannot join itself", function()
    local t
    t = ato.spawn(function() return pcall(t.join, t) end)
    local ok, err = t:join()
    assert.is_false(ok)
    assert.matches("cannot join itself", err)
  end)

  it("rejects bad arguments", function()
    assert.has_error(function() ato.spawn(42) end)
    assert.has_error(function() ato.sleep("soon") end)
    assert.has_error(function() ato.sleep(0 / 0) end)
    assert.has_error(function() ato.spawn(function() end):join(-1) end)
  end)
end)

describe("cancellation", function()
  support.clean_after_each()

  it("a cancelled sleep unwinds the task: __close runs, join gives cancelled", function()
    local log = {}
    local t = ato.spawn(function()
      local c <close> = closer(log, "c")
      ato.sleep(60)
      log[#log + 1] = "after sleep"
    end)
    ato.sleep(0.01)
    assert.is_true(t:cancel())
    local v, err = t:join()
    assert.is_nil(v)
    assert.equal("cancelled", err.kind)
    assert.equal("cancelled", t:status())
    assert.same({"c:cancelled"}, log)
    assert.is_false(t:cancel())            -- already over
  end)

  it("a task cancelled before it starts never runs", function()
    local ran = false
    local t = ato.spawn(function() ran = true end)
    t:cancel()
    local _, err = t:join()
    assert.equal("cancelled", err.kind)
    assert.is_false(ran)
  end)

  it("is level-triggered: pcall catches it once, the next wait raises again", function()
    local log = {}
    local t = ato.spawn(function()
      local ok, err = pcall(ato.sleep, 60)
      log[#log + 1] = tostring(ok) .. ":" .. err.kind
      ato.sleep(60)
      log[#log + 1] = "not reached"
    end)
    ato.sleep(0.01)
    t:cancel()
    assert.equal("cancelled", select(2, t:join()).kind)
    assert.same({"false:cancelled"}, log)
  end)

  it("cancels a task waiting in join, in a condition and in a channel", function()
    local blocker = ato.spawn(function() ato.sleep(60) end)
    local waits = {
      ato.spawn(function() blocker:join() end),
      ato.spawn(function() ato.cond():wait() end),
      ato.spawn(function() ato.channel():recv() end),
    }
    ato.sleep(0.01)
    for _, t in ipairs(waits) do t:cancel() end
    for _, t in ipairs(waits) do assert.equal("cancelled", select(2, t:join()).kind) end
    blocker:cancel()
    blocker:join()
  end)

  it("a handle in a <close> variable cancels its task at scope end", function()
    local t
    do
      local scoped <close> = ato.spawn(function() ato.sleep(60) end)
      t = scoped
      ato.sleep(0.01)
    end
    assert.equal("cancelled", select(2, t:join()).kind)
  end)

  it("a failing task does not disturb the others", function()
    local a = ato.spawn(function() ato.sleep(0.02) return "a" end)
    local b = ato.spawn(function() ato.sleep(0.01) error("b broke") end)
    local c = ato.spawn(function() ato.sleep(0.03) return "c" end)
    assert.matches("b broke", select(2, b:join()))
    assert.equal("a", a:join())
    assert.equal("c", c:join())
  end)

  it("a task that swallows its cancellation in a loop is ended, and the loop keeps running", function()
    local attempts = 0
    local t = ato.spawn(function()
      while true do attempts = attempts + 1; pcall(ato.sleep, 60) end
    end)
    local ticks = 0
    local other = ato.spawn(function() for _ = 1, 5 do ato.sleep(0.001); ticks = ticks + 1 end end)
    ato.sleep(0.005)
    t:cancel()
    local _, err = t:join()
    assert.equal("cancelled", err.kind)
    assert.is_true(attempts > 1 and attempts < 20, attempts .. " attempts")
    other:join()
    assert.equal(5, ticks)
    local y = ato.spawn(function() while true do coroutine.yield() end end)
    ato.sleep(0)
    y:cancel()
    assert.equal("cancelled", select(2, y:join()).kind)
  end)

  it("__close handlers of a failed task run as that task, and the first error stays", function()
    local seen
    local t = ato.spawn(function()
      local c <close> = setmetatable({}, {__close = function()
        seen = ato.current()
        error("close broke too")
      end})
      error("first")
    end)
    local _, err = t:join()
    assert.equal(t, seen)
    assert.matches("first", err)
  end)

  it("an error raised by __close while unwinding becomes the task's failure", function()
    local t = ato.spawn(function()
      local bad <close> = setmetatable({}, {__close = function() error("close broke") end})
      ato.sleep(60)
    end)
    ato.sleep(0.01)
    t:cancel()
    local _, err = t:join()
    assert.matches("close broke", tostring(err))
    assert.equal("failed", t:status())
  end)
end)

describe("time", function()
  support.clean_after_each()

  it("sleep waits at least the time asked, sub-millisecond values included", function()
    for _, s in ipairs({0.0005, 0.002, 0.02}) do
      local t0 = ato.now()
      ato.sleep(s)
      assert.is_true(ato.now() - t0 >= s, "slept less than " .. s)
    end
  end)

  it("sleep(0) lets the other ready tasks run first", function()
    local order = {}
    local t = ato.spawn(function() order[#order + 1] = "other" end)
    ato.sleep(0)
    order[#order + 1] = "me"
    t:join()
    assert.same({"other", "me"}, order)
  end)

  it("now is monotonic and time is the wall clock", function()
    local a = ato.now()
    ato.sleep(0.001)
    assert.is_true(ato.now() > a)
    assert.is_true(math.abs(ato.time() - os.time()) <= 1)
    assert.is_true(ato.time() % 1 ~= 0 or ato.time() % 1 ~= 0)   -- sub-second
  end)
end)

describe("ato.timeout", function()
  support.clean_after_each()

  it("returns the function's results when it finishes in time", function()
    assert.same({"x", 2, n = 2}, table.pack(ato.timeout(1, function(a) ato.sleep(0.001) return a, 2 end, "x")))
  end)

  it("cancels at the deadline, runs __close, returns nil, timeout", function()
    local log = {}
    local v, err = ato.timeout(0.02, function()
      local c <close> = closer(log, "inner")
      ato.sleep(60)
    end)
    assert.is_nil(v)
    assert.equal("timeout", err.kind)
    assert.equal(0.02, err.seconds)
    assert.same({"inner:cancelled"}, log)
  end)

  it("returns nil and the error when the function raises", function()
    local v, err = ato.timeout(1, function() error("bad") end)
    assert.is_nil(v)
    assert.matches("bad", err)
  end)

  it("nests: the inner deadline and the outer deadline each win in turn", function()
    local v, err = ato.timeout(5, function()
      return ato.timeout(0.01, function() ato.sleep(60) end)
    end)
    assert.is_nil(v)
    assert.equal("timeout", err.kind)
    assert.equal(0.01, err.seconds)
    local log = {}
    v, err = ato.timeout(0.02, function()
      local c <close> = closer(log, "outer-fn")
      return ato.timeout(5, function()
        local d <close> = closer(log, "inner-fn")
        ato.sleep(60)
      end)
    end)
    assert.is_nil(v)
    assert.equal(0.02, err.seconds)
    ato.sleep(0.01)                        -- the innermost task unwinds too
    table.sort(log)
    assert.same({"inner-fn:cancelled", "outer-fn:cancelled"}, log)
  end)

  it("cancelling the caller cancels the function's task", function()
    local log = {}
    local t = ato.spawn(function()
      return ato.timeout(60, function()
        local c <close> = closer(log, "fn")
        ato.sleep(60)
      end)
    end)
    ato.sleep(0.01)
    t:cancel()
    t:join()
    ato.sleep(0.01)
    assert.same({"fn:cancelled"}, log)
  end)
end)

describe("ato.gather", function()
  support.clean_after_each()

  it("runs concurrently and returns the first results in order", function()
    local running, peak = 0, 0
    local function job(v, d)
      return function()
        running = running + 1
        peak = math.max(peak, running)
        ato.sleep(d)
        running = running - 1
        return v
      end
    end
    local r = ato.gather{job("a", 0.03), job("b", 0.01), job("c", 0.02)}
    assert.same({"a", "b", "c", n = 3}, r)
    assert.equal(3, peak)
    assert.equal(ato.all, ato.gather)
  end)

  it("honours a concurrency limit", function()
    local running, peak, fns = 0, 0, {}
    for i = 1, 10 do
      fns[i] = function()
        running = running + 1
        peak = math.max(peak, running)
        ato.sleep(0.002)
        running = running - 1
        return i
      end
    end
    local r = ato.gather(fns, {limit = 3})
    assert.equal(3, peak)
    for i = 1, 10 do assert.equal(i, r[i]) end
  end)

  it("on the first error cancels the others and returns nil, err with the index", function()
    local log = {}
    local r, err = ato.gather{
      function() local c <close> = closer(log, "slow") ato.sleep(60) end,
      function() ato.sleep(0.01) error({kind = "broken"}) end,
    }
    assert.is_nil(r)
    assert.equal("broken", err.kind)
    assert.equal(2, err.index)
    assert.same({kind = "broken"}, err.cause)
    assert.same({"slow:cancelled"}, log)
  end)

  it("never modifies the error it reports, even a read-only one", function()
    local frozen = setmetatable({}, {__newindex = function() error("read-only") end,
                                     __tostring = function() error("no text") end})
    local r, err = ato.gather{function() error(frozen) end}
    assert.is_nil(r)
    assert.equal(frozen, err.cause)
    assert.equal(1, err.index)
    assert.equal("failed", err.kind)
  end)

  it("handles an empty list and rejects non-functions", function()
    assert.same({n = 0}, ato.gather{})
    assert.has_error(function() ato.gather{1} end)
    assert.has_error(function() ato.gather("x") end)
  end)
end)

describe("channels and conditions", function()
  support.clean_after_each()

  it("a buffered channel keeps order and blocks senders when full", function()
    local ch = ato.channel(2)
    local sent = 0
    local producer = ato.spawn(function()
      for i = 1, 5 do ch:send(i); sent = i end
      ch:close()
    end)
    ato.sleep(0.01)
    assert.equal(2, sent)                  -- the third send waits for room
    assert.equal(2, #ch)
    local got = {}
    for v in ch do got[#got + 1] = v end
    assert.same({1, 2, 3, 4, 5}, got)
    producer:join()
    assert.is_nil(ch:recv())               -- closed and empty
    local ok, err = ch:send(6)
    assert.is_nil(ok)
    assert.equal("closed", err.kind)
  end)

  it("an unbuffered channel is a rendezvous", function()
    local ch, log = ato.channel(), {}
    local t = ato.spawn(function()
      ch:send("x")
      log[#log + 1] = "sent"
    end)
    ato.sleep(0.01)
    assert.same({}, log)                   -- nobody has received yet
    log[#log + 1] = "recv " .. ch:recv()
    t:join()
    assert.same({"recv x", "sent"}, log)
  end)

  it("an unbuffered send that fails takes its value back", function()
    local ch = ato.channel()
    local ok, err = ch:send("timed out", 0.01)
    assert.is_nil(ok)
    assert.equal("channel send timed out after 0.01 s", err.message)
    local sender = ato.spawn(function() ch:send("cancelled") end)
    ato.sleep(0.005)
    sender:cancel()
    sender:join()
    assert.equal(0, #ch)
    local v, e = ch:recv(0.01)
    assert.is_nil(v)
    assert.equal("timeout", e.kind)
    local closer_t = ato.spawn(function() return ch:send("closed") end)
    ato.sleep(0.005)
    ch:close()
    local r, cerr = closer_t:join()
    assert.is_nil(r)
    assert.equal("closed", cerr.kind)
    assert.is_nil(ch:recv())
  end)

  it("send and recv time out", function()
    local ch = ato.channel(1)
    local v, err = ch:recv(0.01)
    assert.is_nil(v)
    assert.equal("timeout", err.kind)
    assert.is_true(ch:send(1))
    local ok, err2 = ch:send(2, 0.01)
    assert.is_nil(ok)
    assert.equal("timeout", err2.kind)
    assert.has_error(function() ch:send(nil) end)
    assert.has_error(function() ato.channel(-1) end)
  end)

  it("many producers and consumers lose nothing", function()
    local ch, total, tasks = ato.channel(8), 0, {}
    for p = 1, 10 do
      tasks[#tasks + 1] = ato.spawn(function()
        for i = 1, 100 do ch:send(p * 1000 + i) end
      end)
    end
    local consumers = {}
    for c = 1, 4 do
      consumers[c] = ato.spawn(function()
        local n = 0
        for v in ch do total = total + v; n = n + 1 end
        return n
      end)
    end
    for _, t in ipairs(tasks) do t:join() end
    ch:close()
    local received = 0
    for _, c in ipairs(consumers) do received = received + c:join() end
    assert.equal(1000, received)
    local expected = 0
    for p = 1, 10 do for i = 1, 100 do expected = expected + p * 1000 + i end end
    assert.equal(expected, total)
  end)

  it("a condition wakes one waiter with signal and all with broadcast", function()
    local c, woke = ato.cond(), 0
    local ts = {}
    for i = 1, 3 do ts[i] = ato.spawn(function() c:wait(); woke = woke + 1 end) end
    ato.sleep(0)
    assert.is_true(c:signal())
    ato.sleep(0)
    assert.equal(1, woke)
    assert.equal(2, c:broadcast())
    for _, t in ipairs(ts) do t:join() end
    assert.equal(3, woke)
    assert.is_false(c:signal())
    local ok, err = c:wait(0.001)
    assert.is_nil(ok)
    assert.equal("timeout", err.kind)
  end)
end)

describe("waiting in nested Lua code", function()
  support.clean_after_each()

  it("works inside pcall and xpcall", function()
    assert.same({true, "ok"}, {pcall(function() ato.sleep(0.001) return "ok" end)})
    -- (a message handler itself cannot wait: Lua calls it without yields)
    local ok, msg = xpcall(function() ato.sleep(0.001) error("e") end,
                           function(m) return "handled: " .. m end)
    assert.is_false(ok)
    assert.matches("handled: .*e$", msg)
  end)

  it("works inside iterators driven by for ... in", function()
    local function counter(n)
      local i = 0
      return function() i = i + 1; ato.sleep(0.0005); if i <= n then return i end end
    end
    local sum = 0
    for i in counter(5) do sum = sum + i end
    assert.equal(15, sum)
  end)

  it("works inside coroutine.wrap generators and nested coroutines", function()
    local gen = coroutine.wrap(function()
      for i = 1, 3 do ato.sleep(0.0005); coroutine.yield(i) end
    end)
    assert.same({1, 2, 3}, {gen(), gen(), gen()})
    local co = coroutine.create(function(a)
      local inner = coroutine.wrap(function() ato.sleep(0.0005) coroutine.yield("in") return "end" end)
      local b = coroutine.yield(a + 1, inner())
      ato.sleep(0.0005)
      return b * 2, inner()
    end)
    assert.same({true, 2, "in"}, {coroutine.resume(co, 1)})
    assert.same({true, 20, "end"}, {coroutine.resume(co, 10)})
    assert.equal("dead", coroutine.status(co))
  end)

  it("refuses to resume a task's coroutine or one parked by another task", function()
    local task_co
    local probe = ato.spawn(function() task_co = coroutine.running() ato.sleep(60) end)
    ato.sleep(0.005)
    local ok, err = pcall(coroutine.resume, task_co)
    assert.is_false(ok)
    assert.matches("task's coroutine", err)
    local parked = coroutine.create(function() ato.sleep(60) end)
    local owner = ato.spawn(function() coroutine.resume(parked) end)
    ato.sleep(0.005)
    assert.matches("waiting for an operation", select(2, pcall(coroutine.resume, parked)))
    assert.matches("waiting for an operation", select(2, pcall(coroutine.close, parked)))
    for _, x in ipairs({probe, owner}) do x:cancel(); x:join() end
  end)

  it("a plain coroutine.yield at a task's top level just reschedules it", function()
    local t = ato.spawn(function() coroutine.yield(); return "back" end)
    assert.equal("back", t:join())
  end)

  it("raises a clear error where waiting is impossible", function()
    local ok, err = pcall(table.sort, {3, 1, 2}, function(a, b) ato.sleep(0) return a < b end)
    assert.is_false(ok)
    assert.matches("ato.sleep cannot wait here %(a metamethod", err)
    ok, err = pcall(string.gsub, "ab", ".", function() ato.sleep(0) end)
    assert.is_false(ok)
    assert.matches("cannot wait here", err)
    local dir, cleanup = support.tmpdir()
    local f = assert(io.open(dir .. "/waits_at_load.lua", "w"))
    f:write("require('ato').sleep(0.001) return 1")
    f:close()
    local saved = package.path
    package.path = dir .. "/?.lua;" .. package.path
    ok, err = pcall(require, "waits_at_load")
    package.path = saved
    cleanup()
    assert.is_false(ok)
    assert.matches("cannot wait here", err)
    local probe
    setmetatable({}, {__gc = function() probe = select(2, pcall(ato.sleep, 0)) end})
    collectgarbage()
    assert.matches("cannot wait here", probe)
    -- outside any task: the runtime renders a failed task's error object
    local t = ato.spawn(function()
      error(setmetatable({}, {__tostring = function()
        probe = select(2, pcall(ato.sleep, 0))
        return "rendered"
      end}))
    end)
    t:join()
    assert.matches("ato.sleep must be called from a task", probe)
  end)
end)

describe("scale", function()
  support.clean_after_each()

  it("10,000 concurrent tasks all finish with the right results", function()
    local tasks = {}
    for i = 1, 10000 do
      tasks[i] = ato.spawn(function() ato.sleep((i % 7) / 1000) return i * 2 end)
    end
    local sum = 0
    for i = 1, 10000 do sum = sum + tasks[i]:join() end
    assert.equal(10000 * 10001, sum)
  end)

  it("100,000 spawned tasks leave no task and no heap growth behind", function()
    collectgarbage()
    local base = ato.stats()
    for _ = 1, 100 do
      local batch = {}
      for i = 1, 1000 do batch[i] = ato.spawn(function(x) if x % 2 == 0 then ato.sleep(0) end return x end, i) end
      for i = 1, 1000 do assert.equal(i, batch[i]:join()) end
    end
    collectgarbage()
    collectgarbage()
    local after = ato.stats()
    assert.equal(base.live, after.live)
    assert.equal(base.spawned + 100000, after.spawned)
    -- the pool keeps at most 1,024 coroutines (~1 KB each)
    assert.is_true(after.lua_kb - base.lua_kb < 2048, "heap grew by " .. (after.lua_kb - base.lua_kb) .. " KB")
  end)
end)

describe("error objects", function()
  it("have a kind, a message and a readable tostring", function()
    local e = ato.err("timeout", "took too long", {seconds = 3})
    assert.equal("timeout", e.kind)
    assert.equal("took too long", e.message)
    assert.equal(3, e.seconds)
    assert.equal("took too long", tostring(e))
    assert.equal("boom", tostring(ato.err("boom")))
  end)
end)
