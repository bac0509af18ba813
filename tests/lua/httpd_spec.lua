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

-- Runs a bash script with fd 3 connected to the server; stdin is `input`;
-- env adds variables to PORT.
local function raw(port, script, input, env)
  local vars = {PORT = tostring(port)}
  for k, v in pairs(env or {}) do vars[k] = v end
  return assert(ato.exec{
    "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/$PORT || exit 99\n" .. script,
    env = vars, stdin = input, timeout = 60})
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

-- A client script and the test hand over through files in a directory:
-- the script touches $DIR/name, the test creates it with signal(dir, name).
local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

local function signal(dir, name)
  assert(io.open(dir .. "/" .. name, "w")):close()
end

-- Waits until the client touched dir/name, then lets the loop poll once
-- more: the bytes it wrote before are in the socket, and get read then.
local function wait_for_client(dir, name)
  wait_until(function() return exists(dir .. "/" .. name) end)
  ato.sleep(0.01)
end

-- The response of out, split: a list of {status, head, body} (bodies
-- run to the next status line).
local function responses(out)
  local list, pos = {}, 1
  while true do
    local s, e, code = out:find("HTTP/1%.1 (%d%d%d)[^\r]*\r\n", pos)
    if not s then break end
    local hend = out:find("\r\n\r\n", e - 1, true) or #out
    local nexts = out:find("HTTP/1%.1 %d%d%d", hend, false) or #out + 1
    list[#list + 1] = {tonumber(code), out:sub(s, hend + 3), out:sub(hend + 4, nexts - 1)}
    pos = nexts
  end
  return list
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
      assert.same({true, true}, {srv:close()})
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
      raises("option 'write_timeout' must be a number of seconds > 0",
             {dispatch = f, write_timeout = -1})
      raises("option 'max_connections' must be an integer", {dispatch = f, max_connections = 0})
      assert.has_error(function() server.serve() end,
                       "bad argument #1 to 'serve' (table expected, got nil)")
      assert.has_error(function() server.serve{} end,
                       "bad argument #1 to 'serve' (option 'handler' must be a function)")
      assert.has_error(function() server.serve{handler = f, dispatch = f} end,
                       "bad argument #1 to 'serve' (unknown option 'dispatch')")
      -- a bad timeout raises, but the server is closed all the same
      local srv = assert(httpd.listen{dispatch = f})
      assert.has_error(function() srv:close(-1) end)
      assert.equal("ato.httpd.server (closed)", tostring(srv))
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

    it("answers HEAD with the length and no body, then the next request", function()
      local _, port = start{handler = function(req)
        return 200, {{"Date", "D"}, {"Server", "S"}}, "twelve bytes " .. req.method
      end}
      -- the GET is pipelined behind the HEAD: a body sent for the HEAD
      -- would show up as garbage before the GET's status line
      local out = send(port, "HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n" ..
                             "GET /g HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      assert.equal("HTTP/1.1 200 OK\r\nDate: D\r\nServer: S\r\nContent-Length: 17\r\n" ..
                   "Connection: keep-alive\r\n\r\n" ..
                   "HTTP/1.1 200 OK\r\nDate: D\r\nServer: S\r\nContent-Length: 16\r\n" ..
                   "Connection: close\r\n\r\ntwelve bytes GET", out)
    end)

    it("keeps an HTTP/1.0 connection alive only when asked", function()
      local seen = {}
      local _, port = start{handler = function(req)
        seen[#seen + 1] = {req.http_version, req.keep_alive}
        return 200, nil, req.path
      end}
      local out = send(port, "GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" ..
                             "GET /2 HTTP/1.0\r\n\r\n" ..
                             "GET /3 HTTP/1.0\r\n\r\n")   -- never read: /2 closes
      local list = responses(out)
      assert.equal(2, #list)
      assert.matches("\r\nConnection: keep%-alive\r\n", list[1][2])
      assert.equal("/1", list[1][3])
      assert.matches("\r\nConnection: close\r\n", list[2][2])
      assert.equal("/2", list[2][3])
      assert.same({{"1.0", true}, {"1.0", false}}, seen)
    end)

    it("serves the next request on the connection after 204, 205 and 304", function()
      local _, port = start{handler = function(req)
        if req.path == "/204" then return 204 end
        if req.path == "/205" then return 205 end
        if req.path == "/304" then return 304, {{"ETag", '"v1"'}} end
        return 200, nil, "after"
      end}
      local out = send(port, "GET /204 HTTP/1.1\r\nHost: x\r\n\r\n" ..
                             "GET /304 HTTP/1.1\r\nHost: x\r\n\r\n" ..
                             "GET /205 HTTP/1.1\r\nHost: x\r\n\r\n" ..
                             "GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      local list = responses(out)
      assert.same({204, 304, 205, 200}, {list[1][1], list[2][1], list[3][1], list[4][1]})
      assert.not_matches("Content%-Length", list[1][2])
      assert.not_matches("Content%-Length", list[2][2])
      assert.matches("\r\nETag: \"v1\"\r\n", list[2][2])
      assert.matches("\r\nContent%-Length: 0\r\n", list[3][2])
      assert.same({"", "", "", "after"}, {list[1][3], list[2][3], list[3][3], list[4][3]})
    end)

    it("answers a client that half-closed its side after sending", function()
      local _, port = start{handler = function(req)
        ato.sleep(0.05)            -- the client's EOF is there before the answer
        return 200, nil, "half " .. req.path
      end}
      local r = assert(ato.exec{"socat", "-t", "20", "-", "TCP:127.0.0.1:" .. port,
        stdin = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
        timeout = 60})
      assert.equal(0, r.code, r.stderr)
      assert.same({200, 200}, statuses(r.stdout))
      assert.matches("\r\n\r\nhalf /a.*\r\n\r\nhalf /b$", r.stdout)
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
      -- any other expectation: 417, and no 100
      out = send(port, "POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue, x-more\r\n" ..
                       "Content-Length: 5\r\n\r\nhello")
      assert.same({417}, statuses(out))
      assert.matches("^HTTP/1%.1 417 Expectation Failed\r\n", out)
      out = send(port, "GET /e HTTP/1.1\r\nHost: x\r\nExpect: something\r\n\r\n")
      assert.same({417}, statuses(out))
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
        try(205, nil, "body")
        try(200, {{"X-A", "1"}, ["X-B"] = "2"})
        try(200, {{"X-A", "1"}, [3] = {"X-C", "3"}})
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
      assert.matches("a 204, 205 or 304 response has no body", errors[6])
      assert.matches("a 204, 205 or 304 response has no body", errors[7])
      assert.matches("headers mix a list of pairs with other keys %(key X%-B%)", errors[8])
      assert.matches("headers mix a list of pairs with other keys %(key 3%)", errors[9])
      assert.matches("already answered", second)
    end)

    it("answers 500 at once when the dispatch function leaves the request unanswered", function()
      local late
      local srv = assert(httpd.listen{dispatch = function(req)
        if req.path == "/handoff" then      -- another task answers: too late
          ato.spawn(function()
            ato.sleep(0.05)
            late = table.pack(req:respond(200, nil, "late"))
          end)
        end
      end})
      finally(function() srv:close() end)
      local port = select(2, srv:address())
      collectgarbage("stop")        -- no finalizer may be what answers
      finally(function() collectgarbage("restart") end)
      for _, path in ipairs{"/plain", "/handoff"} do
        local t0 = ato.now()
        local r = curl("-D", "-", url(port, path))
        assert.is_true(ato.now() - t0 < 5, path)
        assert.matches("^HTTP/1%.1 500 Internal Server Error\r\n", r.stdout)
        assert.matches("\r\nConnection: close\r\n", r.stdout)
      end
      wait_until(function() return late ~= nil end)
      assert.is_nil(late[1])
      assert.equal("closed", late[2].kind)
    end)

    it("answers 500 at once for a cancelled handler, and serves the next connection", function()
      local _, port = start{handler = function(req)
        if req.path == "/cancel" then
          ato.current():cancel()
          ato.sleep(1)
        end
        return 200, nil, "next"
      end}
      collectgarbage("stop")
      finally(function() collectgarbage("restart") end)
      local t0 = ato.now()
      local r = curl("-D", "-", url(port, "/cancel"))
      assert.is_true(ato.now() - t0 < 0.9, "took " .. (ato.now() - t0))
      assert.matches("^HTTP/1%.1 500 Internal Server Error\r\n", r.stdout)
      assert.equal("next", curl(url(port, "/next")).stdout)
      -- the raw API too
      local srv = assert(httpd.listen{dispatch = function()
        ato.current():cancel()
        ato.sleep(1)
      end})
      finally(function() srv:close() end)
      t0 = ato.now()
      r = curl("-D", "-", url(select(2, srv:address())))
      assert.is_true(ato.now() - t0 < 0.9, "took " .. (ato.now() - t0))
      assert.matches("^HTTP/1%.1 500 ", r.stdout)
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
      -- a flood of small headers counts too
      local flood = {}
      for i = 1, 2000 do flood[#flood + 1] = ("X-%d: v\r\n"):format(i) end
      out = send(port, "GET / HTTP/1.1\r\n" .. table.concat(flood) .. "\r\n")
      assert.same({431}, statuses(out))
      assert.is_false(called)
    end)

    it("answers 414 to a request-target over max_header", function()
      local called = false
      local _, port = start{handler = function() called = true return 200 end}
      local out = send(port, "GET /" .. ("p"):rep(9000) .. " HTTP/1.1\r\nHost: x\r\n\r\n")
      assert.same({414}, statuses(out))
      assert.matches("^HTTP/1%.1 414 URI Too Long\r\n", out)
      -- arriving in pieces
      local r = raw(port, [[
printf 'GET /' >&3
for i in 1 2 3; do printf '%04000d' 0 >&3; sleep 0.05; done
timeout 20 cat <&3]])
      assert.same({414}, statuses(r.stdout))
      -- a target that fits, then headers that do not: 431
      out = send(port, "GET /" .. ("p"):rep(4000) .. " HTTP/1.1\r\nHost: x\r\nX: " ..
                       ("v"):rep(5000) .. "\r\n\r\n")
      assert.same({431}, statuses(out))
      assert.is_false(called)
    end)

    it("keeps chunked trailers apart from the headers, within max_header", function()
      local seen
      local _, port = start{max_header = 1024, handler = function(req)
        seen = req
        return 200, nil, "ok"
      end}
      local out = send(port, "POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n" ..
                             "Connection: close\r\n\r\n" ..
                             "5\r\nhello\r\n0\r\nX-Trailer: t\r\nX-Sum: abc\r\n\r\n")
      assert.same({200}, statuses(out))
      assert.equal("hello", seen.body)
      assert.same({{"X-Trailer", "t"}, {"X-Sum", "abc"}}, seen.trailers)
      assert.is_nil(seen:header("x-trailer"))
      assert.same({"Host", "Transfer-Encoding", "Connection"},
                  {seen.headers[1][1], seen.headers[2][1], seen.headers[3][1]})
      assert.equal(3, #seen.headers)
      out = send(port, "POST /n HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n" ..
                       "Connection: close\r\n\r\nhi")
      assert.same({200}, statuses(out))
      assert.is_nil(seen.trailers)
      -- the head and the trailers share max_header: each fits alone, not both
      local last = seen
      local half = ("h"):rep(600)
      out = send(port, "POST /big HTTP/1.1\r\nHost: x\r\nX-Head: " .. half .. "\r\n" ..
                       "Transfer-Encoding: chunked\r\n\r\n0\r\nX-Tail: " .. half .. "\r\n\r\n")
      assert.same({431}, statuses(out))
      assert.equal(last, seen)
      -- trailers obey the header rules too
      out = send(port, "POST /f HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" ..
                       "0\r\nX-T: a\r\n b\r\n\r\n")
      assert.same({400}, statuses(out))
    end)

    it("reserves 64 KiB at most for a body that has not arrived", function()
      local function vm_data()        -- malloc'ed address space, touched or not
        local f = assert(io.open("/proc/self/status"))
        local kb = f:read("a"):match("VmData:%s*(%d+) kB")
        f:close()
        return tonumber(kb) * 1024
      end
      local _, port = start{max_body = 64 * 1024 * 1024, handler = function() return 200 end}
      local dir, cleanup = support.tmpdir()
      finally(cleanup)
      local before = vm_data()
      -- eight connections announce 60 MB each, then send nothing
      local client = ato.spawn(raw, port, [[
for i in 1 2 3 4 5 6 7 8; do
  exec {fd}<>/dev/tcp/127.0.0.1/$PORT
  printf 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 60000000\r\n\r\n' >&$fd
done
touch "$DIR/sent"
while [ ! -e "$DIR/go" ]; do sleep 0.01; done]], nil, {DIR = dir})
      wait_for_client(dir, "sent")
      local grown, deadline = 0, ato.now() + 0.5
      repeat                          -- the server reads them in a few turns
        grown = math.max(grown, vm_data() - before)
        ato.sleep(0.02)
      until grown > 100e6 or ato.now() > deadline
      signal(dir, "go")
      client:join()
      assert.is_true(grown < 100e6, ("%.0f MB reserved"):format(grown / 1e6))
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

    it("counts read_timeout from the request's first byte, not its last", function()
      local _, port = start{read_timeout = 1, handler = function() return 200 end}
      local t0 = ato.now()
      -- a byte every 0.3 s for 12 s: a timer reset per byte never fires
      local r = raw(port, [[
( printf 'GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ' >&3
  for i in $(seq 40); do printf a >&3 || exit 0; sleep 0.3; done ) >/dev/null 2>&1 &
writer=$!
timeout 20 cat <&3
kill $writer 2>/dev/null]])
      local elapsed = ato.now() - t0
      assert.same({408}, statuses(r.stdout))
      assert.is_true(elapsed >= 0.9 and elapsed < 4, "elapsed " .. elapsed)
    end)

    it("closes a connection idle past idle_timeout without a response", function()
      local _, port = start{idle_timeout = 0.2, handler = function() return 200, nil, "hi" end}
      local t0 = ato.now()
      local r = raw(port, [[
printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' >&3
timeout 20 cat <&3]])
      local elapsed = ato.now() - t0
      assert.same({200}, statuses(r.stdout))   -- no 408 after it
      assert.matches("\r\n\r\nhi$", r.stdout)
      assert.is_true(elapsed >= 0.15 and elapsed < 10, "elapsed " .. elapsed)
      -- a connection that never sends a byte: closed quietly too
      r = raw(port, "timeout 20 cat <&3")
      assert.equal(0, r.code)
      assert.equal("", r.stdout)
    end)

    it("refuses requests a lenient parser would let through (smuggling)", function()
      local seen = {}
      local _, port = start{handler = function(req)
        seen[#seen + 1] = req.path
        return 200, nil, "ok"
      end}
      local function refused(bytes, status)
        local out = send(port, bytes)
        assert.same({status or 400}, statuses(out), bytes)
        assert.matches("\r\nConnection: close\r\n", out)
      end
      -- a blank in a header name: a proxy may read these as chunked, or 5
      refused("POST /te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n" ..
              "5\r\nhello\r\n0\r\n\r\n")
      refused("POST /cl HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello")
      refused("GET /tab HTTP/1.1\r\nHost: x\r\nX\tY: z\r\n\r\n")
      -- obs-fold, after a value and after an empty one, and before the first field
      refused("GET /fold HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n")
      refused("GET /fold HTTP/1.1\r\nHost: x\r\nX-A:\r\n\tb\r\n\r\n")
      refused("GET /fold HTTP/1.1\r\n Host: x\r\n\r\n")
      -- Host: none in HTTP/1.1, or two
      refused("GET /nohost HTTP/1.1\r\n\r\n")
      refused("GET /hosts HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n")
      refused("GET /hosts HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n")
      -- HTTP/0.9, answered at once (no header will come), and HTTP/2
      refused("GET /\r\n")
      refused("GET /x HTTP/2.0\r\nHost: x\r\n\r\n", 505)
      -- Content-Length with Transfer-Encoding, or twice
      refused("POST /clte HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n" ..
              "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
      refused("POST /clcl HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n" ..
              "Content-Length: 5\r\n\r\nhello")
      -- folds split over reads, right after the line end
      for _, parts in ipairs{{"X-A: a\r\n", " b\r\n\r\n"}, {"X-A:\r\n", "\tb\r\n\r\n"},
                             {"X-A: a\r", "\n b\r\n\r\n"}} do
        local r = raw(port, ([[
printf 'GET /split HTTP/1.1\r\nHost: x\r\n%s' >&3
sleep 0.1
printf '%s' >&3
timeout 20 cat <&3]]):format(parts[1], parts[2]))
        assert.same({400}, statuses(r.stdout), parts[1])
      end
      assert.same({}, seen)
      -- what is fine: HTTP/1.0 without Host, blanks inside values, empty
      -- values, and all of it trickled in a byte at a time
      local out = send(port, "GET /old HTTP/1.0\r\nX-A: a  b\r\n\r\n")
      assert.same({200}, statuses(out))
      local r = raw(port, [[
s='GET /slow HTTP/1.1\r\nHost: x\r\nX-A: a b\r\nX-E:\r\nX-F:  \r\nConnection: close\r\n\r\n'
s=$(printf "$s"; echo .); s=${s%.}
for ((i = 0; i < ${#s}; i++)); do printf '%s' "${s:i:1}" >&3; sleep 0.002; done
timeout 20 cat <&3]])
      assert.same({200}, statuses(r.stdout))
      assert.same({"/old", "/slow"}, seen)
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

    it("accepts a new connection once a slot is free again", function()
      local _, port = start{max_connections = 1, handler = function() return 200, nil, "ok" end}
      local r = raw(port, [[
printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' >&3
head -c 1 <&3 >/dev/null          # served: the slot is taken
curl -s --max-time 10 -o /dev/null -w '%{http_code}\n' http://127.0.0.1:$PORT/
exec 3<&-                         # frees it
for i in $(seq 50); do
  code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' http://127.0.0.1:$PORT/)
  [ "$code" = 200 ] && break
  sleep 0.05
done
echo "then $code"]])
      assert.matches("^000\n", r.stdout)              -- refused while taken
      assert.matches("\nthen 200\n$", r.stdout)
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
      assert.same({true, true}, {srv:close()})   -- drained
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
      assert.same({true, false}, {srv:close(0.1)})   -- not drained: aborted
      assert.is_true(ato.now() - t0 < 5)
      assert.same({true, false}, {srv:close()})
      release:broadcast()
      wait_until(function() return outcome ~= nil end)
      assert.is_nil(outcome[1])
      assert.equal("closed", outcome[2].kind)
      local r = client:join()
      assert.is_true(r.code == 52 or r.code == 56, "curl exit " .. r.code)
    end)

    it("close() still serves a request being received", function()
      local srv, port = start{handler = function(req) return 200, nil, "served " .. req.path end}
      local dir, cleanup = support.tmpdir()
      finally(cleanup)
      local client = ato.spawn(raw, port, [[
printf 'GET /partial HTTP/1.1\r\nHost: x\r\n' >&3
touch "$DIR/started"
while [ ! -e "$DIR/go" ]; do sleep 0.01; done
printf '\r\n' >&3
timeout 20 cat <&3]], nil, {DIR = dir})
      wait_for_client(dir, "started")  -- the request has started
      local closer = ato.spawn(function() return srv:close() end)
      wait_until(function() return closer:status() == "waiting" end)
      signal(dir, "go")
      assert.is_true(closer:join())
      local r = client:join()
      assert.matches("^HTTP/1%.1 200 OK\r\n", r.stdout)
      assert.matches("\r\nConnection: close\r\n", r.stdout)
      assert.matches("\r\n\r\nserved /partial$", r.stdout)
    end)

    it("lets two tasks wait in close() at once", function()
      local inside, release = false, ato.cond()
      local srv, port = start{handler = function()
        inside = true
        release:wait(10)
        return 200, nil, "done"
      end}
      local client = ato.spawn(curl, url(port))
      wait_until(function() return inside end)
      local a = ato.spawn(function() return srv:close() end)
      local b = ato.spawn(function() return srv:close(5) end)
      wait_until(function() return a:status() == "waiting" and b:status() == "waiting" end)
      release:broadcast()
      assert.same({true, true}, {a:join()})
      assert.same({true, true}, {b:join()})
      assert.equal("done", client:join().stdout)
      -- one of them gives up: both return, neither drained
      inside = false
      srv, port = start{handler = function()
        inside = true
        release:wait(10)
        return 200, nil, "never"
      end}
      client = ato.spawn(curl, url(port))
      wait_until(function() return inside end)
      a = ato.spawn(function() return srv:close(10) end)
      b = ato.spawn(function() return srv:close(0.05) end)
      assert.same({true, false}, {b:join()})
      assert.same({true, false}, {a:join()})
      release:broadcast()
      local code = client:join().code
      assert.is_true(code == 52 or code == 56, "curl exit " .. code)
    end)

    it("aborts a response the client does not read for write_timeout", function()
      local big = ("x"):rep(32 * 1024 * 1024)   -- more than the socket buffers
      local outcome, elapsed
      local srv = assert(httpd.listen{write_timeout = 0.5, dispatch = function(req)
        local t0 = ato.now()
        outcome = table.pack(req:respond(200, nil, big))
        elapsed = ato.now() - t0
      end})
      finally(function() srv:close() end)
      local client = ato.spawn(raw, select(2, srv:address()), [[
printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' >&3
sleep 3                                # reads nothing for 3 s
timeout 20 cat <&3 | wc -c]])
      wait_until(function() return outcome ~= nil end)
      assert.is_nil(outcome[1])
      assert.equal("timeout", outcome[2].kind)
      assert.matches("write_timeout", tostring(outcome[2]))
      assert.is_true(elapsed >= 0.45 and elapsed < 2.5, "elapsed " .. elapsed)
      local got = tonumber(client:join().stdout)
      assert.is_true(got > 0 and got < #big, "received " .. tostring(got))
    end)

    it("close() without a timeout waits write_timeout at most for a stuck client", function()
      local big = ("x"):rep(32 * 1024 * 1024)
      local writing, outcome = false, nil
      local srv = assert(httpd.listen{write_timeout = 0.5, dispatch = function(req)
        writing = true
        outcome = table.pack(req:respond(200, nil, big))
      end})
      finally(function() srv:close() end)
      local client = ato.spawn(raw, select(2, srv:address()), [[
printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' >&3
sleep 3
timeout 20 cat <&3 | wc -c]])
      wait_until(function() return writing end)
      local t0 = ato.now()
      assert.is_true(srv:close())
      assert.is_true(ato.now() - t0 < 2.5, "close took " .. (ato.now() - t0))
      wait_until(function() return outcome ~= nil end)
      assert.is_nil(outcome[1])
      assert.is_true(outcome[2].kind == "timeout" or outcome[2].kind == "closed")
      client:join()
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
      local answered = false
      local srv = assert(httpd.listen{dispatch = function(req)
        assert(req:respond(200, nil, "x"))  -- returns once written: idle now
        answered = true
      end})
      finally(function() srv:close() end)
      local client = ato.spawn(raw, select(2, srv:address()), [[
printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' >&3
timeout 20 cat <&3]])
      wait_until(function() return answered end)
      local t0 = ato.now()
      assert.same({true, true}, {srv:close()})
      assert.is_true(ato.now() - t0 < 5)
      local r = client:join()
      assert.same({200}, statuses(r.stdout))
    end)
  end)
end)
