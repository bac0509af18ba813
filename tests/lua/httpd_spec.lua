-- ato.httpd and ato.http.server: real sockets on 127.0.0.1, driven by
-- clients outside ato (the curl CLI, and bash's /dev/tcp for raw bytes:
-- pipelining, malformed requests, slow clients, header floods).
local ato = require "ato"
local support = require "support"
local httpd = require "ato.httpd"
local server = require "ato.http.server"

local function url(port, path)
  return ("http://127.0.0.1:%d%s"):format(port, path or "/")
end

-- curl -s [args...] -> ato.exec's result (never raises on HTTP errors)
local function curl(...)
  local cmd = {"curl", "-s", "--max-time", "30", ...}
  cmd.timeout = 60
  return assert(ato.exec(cmd))
end

-- Runs a bash script with fd 3 connected to the server; stdin is `input`.
local function raw(port, script, input)
  return assert(ato.exec{
    "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/$PORT || exit 99\n" .. script,
    env = {PORT = tostring(port)}, stdin = input, timeout = 60})
end

-- Sends bytes on a fresh connection, then reads until the server closes it.
local function send(port, bytes)
  local r = raw(port, "cat >&3\ntimeout 20 cat <&3", bytes)
  assert.equal(0, r.code, "the server did not close the connection")
  return r.stdout
end

local function statuses(out)
  local list = {}
  for code in out:gmatch("HTTP/1%.1 (%d%d%d)") do list[#list + 1] = tonumber(code) end
  return list
end

-- Polls until check() is true (5 s at most).
local function wait_until(check)
  local deadline = ato.now() + 5
  while not check() do
    assert(ato.now() < deadline, "condition not reached in 5 s")
    ato.sleep(0.005)
  end
end

-- serve{...} whose server is closed after the test, whatever happens.
local function start(opts)
  local srv = assert(server.serve(opts))
  finally(function() srv:close(5) end)
  local _, port = srv:address()
  return srv, port
end

-- Runs fn with ato.log's output (io.stderr) captured; returns the text.
local function capture_log(fn)
  local saved, parts = io.stderr, {}
  io.stderr = {write = function(self, ...)
    for _, s in ipairs{...} do parts[#parts + 1] = tostring(s) end
    return self
  end}
  local ok, err = pcall(fn)
  io.stderr = saved
  if not ok then error(err, 0) end
  return table.concat(parts)
end

describe("ato.httpd", function()
  support.clean_after_each()

  describe("listen", function()
    it("binds 127.0.0.1 and a free port by default, told by address()", function()
      local srv = assert(httpd.listen{dispatch = function() end})
      local host, port = srv:address()
      assert.equal("127.0.0.1", host)
      assert.is_true(math.type(port) == "integer" and port > 0)
      assert.equal(("ato.httpd.server (127.0.0.1:%d)"):format(port), tostring(srv))
      assert.is_true(srv:close())
      assert.equal("ato.httpd.server (closed)", tostring(srv))
    end)

    it("returns nil, err naming the address when the port is busy", function()
      local first = assert(httpd.listen{dispatch = function() end})
      finally(function() first:close() end)
      local _, port = first:address()
      local srv, err = httpd.listen{port = port, dispatch = function() end}
      assert.is_nil(srv)
      assert.equal("io", err.kind)
      assert.equal("EADDRINUSE", err.code)
      assert.equal(("listen 127.0.0.1:%d: address already in use"):format(port),
                   tostring(err))
    end)

    it("raises on bad arguments", function()
      local f = function() end
      local function raises(pattern, opts)
        local ok, e = pcall(httpd.listen, opts)
        assert.is_false(ok, "no error for " .. pattern)
        assert.matches(pattern, tostring(e))
      end
      raises("table expected", nil)
      raises("option 'dispatch' must be a function", {})
      raises("unknown option 'prot'", {dispatch = f, prot = 80})
      raises("option 'port' must be an integer from 0 to 65535", {dispatch = f, port = 70000})
      raises("option 'port' must be an integer", {dispatch = f, port = "80"})
      raises("option 'port' must be an integer", {dispatch = f, port = 1.5})
      raises("must be an IPv4 or IPv6 address, not a name %(got 'localhost'%)",
             {dispatch = f, host = "localhost"})
      raises("option 'host' must be a string", {dispatch = f, host = 127})
      raises("option 'max_body' must be an integer", {dispatch = f, max_body = -1})
      raises("option 'max_header' must be an integer", {dispatch = f, max_header = 10})
      raises("option 'idle_timeout' must be a number of seconds > 0",
             {dispatch = f, idle_timeout = 0})
      raises("option 'read_timeout' must be a number of seconds > 0",
             {dispatch = f, read_timeout = 0 / 0})
      raises("option 'max_connections' must be an integer", {dispatch = f, max_connections = 0})
      assert.has_error(function() server.serve() end)
      assert.has_error(function() server.serve{} end,
                       "bad argument #1 to 'serve' (option 'handler' must be a function)")
      assert.has_error(function() server.serve{handler = f, dispatch = f} end)
    end)

    it("raises when a closed server is used, and close is idempotent", function()
      local srv = assert(httpd.listen{dispatch = function() end})
      assert.is_true(srv:close())
      assert.is_true(srv:close())
      assert.has_error(function() srv:address() end, "attempt to use a closed server")
    end)

    it("closes a server in a <close> variable without waiting", function()
      local port
      do
        local srv <close> = assert(httpd.listen{dispatch = function() end})
        port = select(2, srv:address())
      end
      assert.equal(7, curl(url(port)).code)   -- connection refused
    end)
  end)

  describe("requests and responses", function()
    it("round-trips a GET and a POST with headers and body", function()
      local seen = {}
      local _, port = start{handler = function(req)
        seen[#seen + 1] = req
        return 201, {{"X-Reply", "a"}, {"Content-Type", "text/plain"}},
               req.method .. " " .. req.body
      end}
      local r = curl("-D", "-", url(port, "/get"))
      assert.matches("^HTTP/1%.1 201 Created\r\n", r.stdout)
      assert.matches("\r\nX%-Reply: a\r\n", r.stdout)
      assert.matches("\r\nContent%-Length: 4\r\n", r.stdout)
      assert.matches("\r\nConnection: keep%-alive\r\n", r.stdout)
      assert.matches("\r\nDate: %a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT\r\n", r.stdout)
      assert.matches("\r\nServer: ato/%d+%.%d+%.%d+\r\n", r.stdout)
      assert.matches("\r\n\r\nGET $", r.stdout)
      r = curl("-D", "-", "-H", "X-Test: Hello World  ", "-H", "Content-Type: text/x-mine",
               "--data-binary", "payload", url(port, "/echo/a%20b?q=1&r"))
      assert.matches("\r\n\r\nPOST payload", r.stdout)
      assert.equal(2, #seen)
      local get, post = seen[1], seen[2]
      assert.equal("GET", get.method)
      assert.equal("/get", get.target)
      assert.equal("/get", get.path)
      assert.is_nil(get.query)
      assert.equal("", get.body)
      assert.equal("POST", post.method)
      assert.equal("/echo/a%20b?q=1&r", post.target)
      assert.equal("/echo/a%20b", post.path)
      assert.equal("q=1&r", post.query)
      assert.equal("payload", post.body)
      assert.equal("1.1", post.http_version)
      assert.is_true(post.keep_alive)
      assert.equal("127.0.0.1", post.remote)
      assert.is_true(post.remote_port > 0)
      assert.same({"Host", ("127.0.0.1:%d"):format(port)}, post.headers[1])
      assert.equal("Hello World", post:header("x-test"))   -- trailing blanks dropped
      assert.equal("Hello World", post:header("X-TEST"))
      assert.equal("text/x-mine", post:header("Content-Type"))
      assert.equal("7", post:header("content-length"))
      assert.is_nil(post:header("x-missing"))
      assert.same({}, post:header_all("x-missing"))
      assert.matches("^ato.httpd.request %(POST /echo", tostring(post))
    end)

    it("keeps repeated headers in both directions", function()
      local seen
      local _, port = start{handler = function(req)
        seen = req
        return 200, {["Set-Cookie"] = {"a=1", "b=2"}, ["X-One"] = 1}, "ok"
      end}
      local r = curl("-D", "-", "-H", "X-Multi: first", "-H", "x-multi: second",
                     url(port, "/"))
      assert.matches("\r\nSet%-Cookie: a=1\r\nSet%-Cookie: b=2\r\n", r.stdout)
      assert.matches("\r\nX%-One: 1\r\n", r.stdout)
      assert.equal("first", seen:header("X-MULTI"))
      assert.same({"first", "second"}, seen:header_all("x-multi"))
      local names = {}
      for _, h in ipairs(seen.headers) do names[#names + 1] = h[1] end
      assert.same({"Host", "User-Agent", "Accept", "X-Multi", "x-multi"}, names)
    end)

    it("answers HEAD with the length and no body", function()
      local _, port = start{handler = function() return 200, nil, "twelve bytes" end}
      local r = curl("-I", url(port, "/"))
      assert.matches("^HTTP/1%.1 200 OK\r\n", r.stdout)
      assert.matches("\r\nContent%-Length: 12\r\n", r.stdout)
      assert.not_matches("twelve", r.stdout)
    end)

    it("reuses a kept-alive connection for a second request", function()
      local ports = {}
      local _, port = start{handler = function(req)
        ports[#ports + 1] = req.remote_port
        return 200, nil, req.path
      end}
      local r = curl("-v", url(port, "/1"), url(port, "/2"))
      assert.equal("/1/2", r.stdout)
      assert.matches("Re%-using existing connection", r.stderr)
      assert.equal(2, #ports)
      assert.equal(ports[1], ports[2])
    end)

    it("answers pipelined requests one at a time, in order", function()
      local active, most = 0, 0
      local _, port = start{handler = function(req)
        active = active + 1
        most = math.max(most, active)
        if req.path == "/1" then ato.sleep(0.05) end  -- the slowest comes first
        active = active - 1
        return 200, nil, req.path
      end}
      local out = send(port, "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n" ..
                             "GET /2 HTTP/1.1\r\nHost: x\r\n\r\n" ..
                             "GET /3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      assert.same({200, 200, 200}, statuses(out))
      local bodies = {}
      for b in out:gmatch("\r\n\r\n(/%d)") do bodies[#bodies + 1] = b end
      assert.same({"/1", "/2", "/3"}, bodies)
      assert.equal(1, most)
      assert.matches("Connection: close\r\n.*\r\n\r\n/3$", out)
    end)

    it("sends 100 Continue before reading the body", function()
      local _, port = start{max_body = 10, handler = function(req)
        return 200, nil, "got " .. req.body
      end}
      local r = raw(port, [[
printf 'POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n' >&3
IFS= read -r -t 10 line <&3
echo "first: $line"
IFS= read -r -t 10 blank <&3
printf hello >&3
timeout 20 cat <&3]])
      assert.matches("^first: HTTP/1%.1 100 Continue\r\n", r.stdout)
      assert.matches("HTTP/1%.1 200 OK\r\n.*\r\n\r\ngot hello$", r.stdout)
      -- over max_body: 413 at once, no 100
      local out = send(port, "POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n" ..
                             "Content-Length: 11\r\n\r\n")
      assert.same({413}, statuses(out))
      -- and curl's own Expect handling
      r = curl("-v", "-H", "Expect: 100-continue", "--data-binary", "abc", url(port, "/c"))
      assert.equal("got abc", r.stdout)
      assert.matches("< HTTP/1%.1 100 Continue", r.stderr)
    end)

    it("runs a handler that waits before answering", function()
      local _, port = start{handler = function()
        ato.sleep(0.05)
        return 200, nil, "slept"
      end}
      assert.equal("slept", curl(url(port)).stdout)
    end)

    it("answers 500 when the handler raises, logs it, and keeps serving", function()
      local _, port = start{handler = function(req)
        if req.path == "/boom" then error("boom in handler") end
        return 200, nil, "fine"
      end}
      local r
      local text = capture_log(function() r = curl("-D", "-", url(port, "/boom")) end)
      assert.matches("^HTTP/1%.1 500 Internal Server Error\r\n", r.stdout)
      assert.matches("500 Internal Server Error\n$", r.stdout)
      assert.matches("http handler failed", text)
      assert.matches("boom in handler", text)
      assert.matches("stack traceback", text)
      assert.equal("fine", curl(url(port, "/next")).stdout)
    end)

    it("accepts tables, json, and logs a missing status", function()
      local _, port = start{handler = function(req)
        if req.path == "/table" then
          return {status = 202, headers = {["X-T"] = "yes"}, body = "tbl"}
        elseif req.path == "/json" then
          return {status = 200, json = {ok = true, list = {1, 2}}}
        elseif req.path == "/self" then
          req:respond(203, nil, "by itself")
        elseif req.path == "/bad" then
          return 200, {{"Bad Name", "x"}}, "never"
        end
        -- nothing: no status
      end}
      local r = curl("-D", "-", url(port, "/table"))
      assert.matches("^HTTP/1%.1 202 Accepted\r\n", r.stdout)
      assert.matches("\r\nX%-T: yes\r\n", r.stdout)
      assert.matches("\r\n\r\ntbl$", r.stdout)
      r = curl("-D", "-", url(port, "/json"))
      assert.matches("\r\nContent%-Type: application/json\r\n", r.stdout)
      local body = r.stdout:match("\r\n\r\n(.*)$")
      assert.same({ok = true, list = {1, 2}}, require("cjson").decode(body))
      r = curl("-D", "-", url(port, "/self"))
      assert.matches("^HTTP/1%.1 203 ", r.stdout)
      local text = capture_log(function()
        r = curl("-D", "-", url(port, "/nothing"))
      end)
      assert.matches("^HTTP/1%.1 500 ", r.stdout)
      assert.matches("handler returned no status", text)
      text = capture_log(function() r = curl("-D", "-", url(port, "/bad")) end)
      assert.matches("^HTTP/1%.1 500 ", r.stdout)
      assert.matches("bad header name 'Bad Name'", text)
    end)

    it("refuses bad responses from the raw API and a second respond", function()
      local errors, second
      local srv = assert(httpd.listen{dispatch = function(req)
        errors = {}
        local function try(...)
          local ok, e = pcall(req.respond, req, ...)
          errors[#errors + 1] = not ok and tostring(e) or "no error"
        end
        try(99)
        try("200")
        try(200, {{"X", "a\r\nInjected: 1"}})
        try(200, {{"Content-Length", "3"}})
        try(200, {["X"] = {"ok", {}}})
        try(204, nil, "body")
        assert(req:respond(200, {Connection = "close"}, "done"))
        local ok, e = pcall(req.respond, req, 200)
        second = not ok and tostring(e)
      end})
      finally(function() srv:close() end)
      local r = curl("-D", "-", url(select(2, srv:address())))
      assert.matches("\r\nConnection: close\r\n", r.stdout)
      assert.matches("\r\n\r\ndone$", r.stdout)
      assert.matches("status must be an integer from 200 to 599", errors[1])
      assert.matches("status must be an integer from 200 to 599", errors[2])
      assert.matches("contains a line break", errors[3])
      assert.matches("'Content%-Length' is set by respond itself", errors[4])
      assert.matches("must be a string or a number %(got table%)", errors[5])
      assert.matches("a 204 or 304 response has no body", errors[6])
      assert.matches("already answered", second)
    end)

    it("answers 500 for a request whose handle is collected unanswered", function()
      local srv = assert(httpd.listen{dispatch = function() end})
      finally(function() srv:close() end)
      local client = ato.spawn(curl, "-D", "-", url(select(2, srv:address())))
      while client:status() ~= "done" do
        collectgarbage()
        ato.sleep(0.01)
      end
      local r = client:join()
      assert.matches("^HTTP/1%.1 500 Internal Server Error\r\n", r.stdout)
      assert.matches("\r\nConnection: close\r\n", r.stdout)
    end)
  end)

  describe("limits", function()
    it("answers 431 to a request line and headers over max_header", function()
      local called = false
      local _, port = start{handler = function() called = true return 200 end}
      local out = send(port, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " ..
                             ("a"):rep(10000) .. "\r\n\r\n")
      assert.same({431}, statuses(out))
      assert.matches("^HTTP/1%.1 431 Request Header Fields Too Large\r\n", out)
      assert.matches("\r\nConnection: close\r\n", out)
      -- a flood of small headers counts too, and so does a long target
      local flood = {}
      for i = 1, 2000 do flood[#flood + 1] = ("X-%d: v\r\n"):format(i) end
      out = send(port, "GET / HTTP/1.1\r\n" .. table.concat(flood) .. "\r\n")
      assert.same({431}, statuses(out))
      out = send(port, "GET /" .. ("p"):rep(9000) .. " HTTP/1.1\r\nHost: x\r\n\r\n")
      assert.same({431}, statuses(out))
      assert.is_false(called)
    end)

    it("answers 413 to a Content-Length over max_body, without the body", function()
      local called = false
      local _, port = start{max_body = 100, handler = function() called = true return 200 end}
      local out = send(port, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
      assert.same({413}, statuses(out))
      assert.matches("^HTTP/1%.1 413 Payload Too Large\r\n", out)
      -- with the body sent anyway, the client still reads the 413
      local r = curl("-D", "-", "-H", "Expect:", "--data-binary", ("x"):rep(5000), url(port))
      assert.matches("^HTTP/1%.1 413 ", r.stdout)
      assert.is_false(called)
    end)

    it("answers 413 to a chunked body growing past max_body", function()
      local bodies = {}
      local _, port = start{max_body = 100, handler = function(req)
        bodies[#bodies + 1] = req.body
        return 200, nil, "ok"
      end}
      local chunk = ("40\r\n%s\r\n"):format(("c"):rep(64))
      local out = send(port, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n" ..
                             "Connection: close\r\n\r\n" .. chunk .. "0\r\n\r\n")
      assert.same({200}, statuses(out))                 -- 64 bytes: served
      assert.same({("c"):rep(64)}, bodies)
      out = send(port, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" ..
                       chunk .. chunk .. "0\r\n\r\n")
      assert.same({413}, statuses(out))                 -- 128 bytes: refused
      assert.equal(1, #bodies)
    end)

    it("answers 408 to a slow client after read_timeout", function()
      local _, port = start{read_timeout = 0.2, handler = function() return 200 end}
      local t0 = ato.now()
      local r = raw(port, [[
printf 'GET / HTTP/1.1\r\nHost: x\r\n' >&3
timeout 20 cat <&3]])
      local elapsed = ato.now() - t0
      assert.same({408}, statuses(r.stdout))
      assert.matches("^HTTP/1%.1 408 Request Timeout\r\n", r.stdout)
      assert.is_true(elapsed >= 0.15 and elapsed < 10, "elapsed " .. elapsed)
    end)

    it("answers 408 and closes a kept-alive connection idle past idle_timeout", function()
      local _, port = start{idle_timeout = 0.2, handler = function() return 200, nil, "hi" end}
      local t0 = ato.now()
      local r = raw(port, [[
printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' >&3
timeout 20 cat <&3]])
      local elapsed = ato.now() - t0
      assert.same({200, 408}, statuses(r.stdout))
      assert.is_true(elapsed >= 0.15 and elapsed < 10, "elapsed " .. elapsed)
    end)

    it("answers 400 to garbage and closes", function()
      local _, port = start{handler = function() return 200 end}
      local out = send(port, "THIS IS NOT HTTP\r\n\r\nGET / HTTP/1.1\r\n\r\n")
      assert.same({400}, statuses(out))
      assert.matches("\r\nConnection: close\r\n", out)
      out = send(port, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
      assert.same({400}, statuses(out))
    end)

    it("closes connections over max_connections at once", function()
      local _, port = start{max_connections = 1, handler = function() return 200, nil, "ok" end}
      local r = raw(port, [[
sleep 0.2
curl -s --max-time 10 -o /dev/null -w '%{http_code}' http://127.0.0.1:$PORT/; echo " rc=$?"
printf 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
timeout 20 cat <&3]])
      assert.matches("^000 rc=5[26]\n", r.stdout)    -- empty reply or reset
      assert.matches("HTTP/1%.1 200 OK", r.stdout)    -- the first one is served
    end)
  end)

  describe("load and shutdown", function()
    it("serves 1,000 concurrent clients", function()
      local N, arrived, inflight, peak, gate = 1000, 0, 0, 0, ato.cond()
      local _, port = start{backlog = 1024, handler = function(req)
        arrived = arrived + 1
        inflight = inflight + 1
        peak = math.max(peak, inflight)
        if arrived >= N then gate:broadcast() else gate:wait(30) end
        inflight = inflight - 1
        return 200, nil, req.path
      end}
      local dir, cleanup = support.tmpdir()
      finally(cleanup)
      -- curl caps --parallel-max at 300: four clients of 250 transfers
      local jobs = {}
      for j = 1, 4 do
        local path = ("%s/urls%d.cfg"):format(dir, j)
        local f = assert(io.open(path, "w"))
        for i = 1, N // 4 do
          f:write(('url = "%s"\noutput = "/dev/null"\n'):format(url(port, "/" .. ((j - 1) * 250 + i))))
        end
        f:close()
        jobs[j] = ato.spawn(curl, "--parallel", "--parallel-immediate", "--parallel-max", "250",
                            "-w", "%{http_code}\n", "--config", path)
      end
      local ok = 0
      for j = 1, 4 do
        local r = jobs[j]:join()
        for code in r.stdout:gmatch("%d+") do
          if code == "200" then ok = ok + 1 end
        end
      end
      assert.equal(N, ok)
      assert.equal(N, arrived)
      assert.equal(N, peak)
    end)

    it("close() lets an in-flight request finish, then refuses connections", function()
      local inside, finished = false, false
      local srv, port = start{handler = function()
        inside = true
        ato.sleep(0.3)
        finished = true
        return 200, nil, "slow done"
      end}
      local client = ato.spawn(curl, "-D", "-", url(port, "/slow"))
      wait_until(function() return inside end)
      assert.is_true(srv:close())
      assert.is_true(finished)
      local r = client:join()
      assert.matches("^HTTP/1%.1 200 OK\r\n", r.stdout)
      assert.matches("\r\nConnection: close\r\n", r.stdout)
      assert.matches("\r\n\r\nslow done$", r.stdout)
      assert.equal(7, curl(url(port, "/again")).code)   -- couldn't connect
      assert.is_true(srv:close())
    end)

    it("close(timeout) aborts what is left; a late respond gets 'closed'", function()
      local inside, release, outcome = false, ato.cond(), nil
      local srv = assert(httpd.listen{dispatch = function(req)
        inside = true
        release:wait(10)
        outcome = table.pack(req:respond(200, nil, "late"))
      end})
      finally(function() srv:close() end)
      local client = ato.spawn(curl, url(select(2, srv:address())))
      wait_until(function() return inside end)
      local t0 = ato.now()
      assert.is_true(srv:close(0.1))
      assert.is_true(ato.now() - t0 < 5)
      release:broadcast()
      wait_until(function() return outcome ~= nil end)
      assert.is_nil(outcome[1])
      assert.equal("closed", outcome[2].kind)
      local r = client:join()
      assert.is_true(r.code == 52 or r.code == 56, "curl exit " .. r.code)
    end)

    it("close() still serves a request being received", function()
      local srv, port = start{handler = function(req) return 200, nil, "served " .. req.path end}
      local client = ato.spawn(raw, port, [[
printf 'GET /partial HTTP/1.1\r\nHost: x\r\n' >&3
sleep 0.3
printf '\r\n' >&3
timeout 20 cat <&3]])
      ato.sleep(0.1)                 -- the request has started
      assert.is_true(srv:close())
      local r = client:join()
      assert.matches("^HTTP/1%.1 200 OK\r\n", r.stdout)
      assert.matches("\r\nConnection: close\r\n", r.stdout)
      assert.matches("\r\n\r\nserved /partial$", r.stdout)
    end)

    it("a respond cancelled while writing closes the connection", function()
      local task, outcome
      local big = ("x"):rep(32 * 1024 * 1024)   -- more than the socket buffers
      local srv = assert(httpd.listen{dispatch = function(req)
        task = ato.current()
        outcome = table.pack(pcall(req.respond, req, 200, nil, big))
      end})
      finally(function() srv:close() end)
      local client = ato.spawn(raw, select(2, srv:address()), [[
printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' >&3
sleep 0.5                              # not reading: the write blocks
timeout 20 cat <&3 | wc -c]])
      wait_until(function() return task ~= nil and task:status() == "waiting" end)
      task:cancel()
      wait_until(function() return outcome ~= nil end)
      assert.is_false(outcome[1])
      assert.equal("cancelled", outcome[2].kind)
      local r = client:join()
      local got = tonumber(r.stdout)
      assert.is_true(got > 0 and got < #big, "received " .. tostring(got))
    end)

    it("closes idle kept-alive connections at once", function()
      local srv, port = start{handler = function() return 200, nil, "x" end}
      local client = ato.spawn(raw, port, [[
printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' >&3
timeout 20 cat <&3]])
      ato.sleep(0.2)                 -- answered, and now idle
      local t0 = ato.now()
      assert.is_true(srv:close())
      assert.is_true(ato.now() - t0 < 5)
      local r = client:join()
      assert.same({200}, statuses(r.stdout))
    end)
  end)
end)
