-- ato.http's client against real servers: Debian's nginx (plain and TLS
-- with HTTP/2, a certificate the test makes) and socat playing broken or
-- stateful servers. Transport failures each give their documented kind.
local ato = require "ato"
local http = require "ato.http"
local cjson = require "cjson"
local support = require "support"

local KEY = "SG." .. ("q"):rep(22) .. "." .. ("w"):rep(43)

-- Shell code printing a raw HTTP response (double quotes: $variables of
-- the script expand in headers).
local function raw(status, headers, body)
  local lines = {"HTTP/1.1 " .. status}
  for _, h in ipairs(headers or {}) do lines[#lines + 1] = h end
  lines[#lines + 1] = "Content-Length: " .. #(body or "")
  lines[#lines + 1] = "Connection: close"
  return ('printf "%s\\r\\n\\r\\n%s"'):format(table.concat(lines, "\\r\\n"), body or "")
end

local function no_transfers_left()
  local s = http.stats()
  assert.equal(0, s.transfers, "transfers left in the multi handle")
end

describe("ato.http client", function()
  support.clean_after_each()
  after_each(no_transfers_left)

  local ngx
  setup(function() ngx = support.nginx{tls = true} end)
  teardown(function() ngx.stop() end)

  describe("against nginx", function()
    it("GETs a file, with status, headers, body, url and elapsed", function()
      local r = assert(http.get(ngx.url("/1k.txt")))
      assert.equal(200, r.status)
      assert.is_true(r.ok)
      assert.equal("OK", r.reason)
      assert.equal(1024, #r.body)
      assert.equal("1024", r.headers["content-length"])
      assert.equal("1024", r.headers["Content-Length"])
      assert.equal("1024", r.headers:get("CONTENT-LENGTH"))
      assert.equal(ngx.url("/1k.txt"), r.url)
      assert.is_true(r.elapsed >= 0)
      assert.equal("1.1", r.http_version)
      assert.equal("127.0.0.1", r.ip)
    end)

    it("a status is not an error", function()
      local r, err = http.get(ngx.url("/missing"))
      assert.is_nil(err)
      assert.equal(404, r.status)
      assert.is_false(r.ok)
    end)

    it("keeps repeated headers and their order", function()
      local r = assert(http.get(ngx.url("/repeat")))
      assert.same({"a", "b"}, r.headers:all("x-rep"))
      assert.equal("a", r.headers["X-Rep"])
      local names = {}
      for name in pairs(r.headers) do names[#names + 1] = name:lower() end
      assert.truthy(table.concat(names, ","):find("x%-rep,x%-rep"))
    end)

    it("decodes JSON and sends JSON, query strings and its User-Agent", function()
      local r = assert(http.get(ngx.url("/data.json"), {query = {q = "a b&c", list = {1, 2}}}))
      assert.same({name = "ato", list = {1, 2, 3}, nested = {ok = true}}, r:json())
      local bad, err = assert(http.get(ngx.url("/1k.txt"))):json()
      assert.is_nil(bad)
      assert.equal("json", err.kind)
      assert.equal(200, assert(http.post(ngx.url("/sink"), {json = {x = 1, s = "é"}})).status)
      local get_line = ngx.wait_log("GET /data%.json")
      assert.matches('"list=1&list=2&q=a%%20b%%26c"', get_line)
      assert.matches('"ato/%d+%.%d+%.%d+"', get_line)
      local body = ngx.wait_log("^POST", "body")
      assert.truthy(body:find('POST application/json {', 1, true), body)
      assert.truthy(body:find('\\x22x\\x22:1', 1, true), body)
    end)

    it("POSTs bodies of 100 KB and 10 MB, and downloads 10 MB", function()
      for _, size in ipairs({100 * 1024, 10 * 1024 * 1024}) do
        local r = assert(http.post(ngx.url("/upload"), {body = ("z"):rep(size)}))
        assert.equal(200, r.status)
        local line = ngx.wait_log("POST /upload 200 " .. (size // 1000))
        local length = tonumber(line:match("^%d+ POST /upload 200 (%d+)"))
        assert.is_true(length > size, "nginx saw " .. tostring(length) .. " bytes")
      end
      local big = assert(http.get(ngx.url("/10m.bin")))
      assert.equal(10 * 1024 * 1024, #big.body)
      assert.equal(assert(ato.fs.read(ngx.dir .. "/html/10m.bin")), big.body)
      local r100 = assert(http.get(ngx.url("/100k.txt")))
      assert.equal(100 * 1024, #r100.body)
    end)

    it("other methods: HEAD, PUT, PATCH, DELETE", function()
      assert.equal("", assert(http.head(ngx.url("/1k.txt"))).body)
      for _, m in ipairs({"put", "patch", "delete"}) do
        http[m](ngx.url("/ping"), {body = "x"})
      end
      ngx.wait_log("DELETE /ping")
      local methods = {}
      for _, line in ipairs(ngx.log()) do methods[#methods + 1] = line:match("^%d+ (%u+) ") end
      local seen = table.concat(methods, " ")
      for _, m in ipairs({"HEAD", "PUT", "PATCH", "DELETE"}) do
        assert.truthy(seen:find(m), m .. " never reached nginx")
      end
    end)

    it("follows redirects unless told not to, and stops a redirect loop", function()
      local r = assert(http.get(ngx.url("/redirect")))
      assert.equal(200, r.status)
      assert.equal(ngx.url("/1k.txt"), r.url)
      assert.equal(1, r.redirects)
      local raw302 = assert(http.get(ngx.url("/redirect"), {follow_redirects = false}))
      assert.equal(302, raw302.status)
      assert.matches("/1k%.txt$", raw302.headers.location)
      local v, err = http.get(ngx.url("/loop"), {max_redirects = 3})
      assert.is_nil(v)
      assert.equal("protocol", err.kind)
    end)

    it("reuses one connection for sequential requests", function()
      local before = #ngx.log()
      for i = 1, 20 do assert(http.get(ngx.url("/ping"), {query = {seq = i}})) end
      local _, log = ngx.wait_log('"seq=20"')
      local conns = {}
      for i = before + 1, #log do conns[log[i]:match("^(%d+)")] = true end
      local n = 0
      for _ in pairs(conns) do n = n + 1 end
      assert.equal(1, n)
    end)

    it("runs requests concurrently on few connections", function()
      -- 200 requests, 10 in flight: nginx's log tells how many connections
      -- served them. Against a fast loopback server libcurl may finish each
      -- transfer on the idle connection before it starts the next (one
      -- socket_action runs handles one after another), so every request
      -- can correctly go over one connection; /paced/ delays replies by a
      -- fraction of a millisecond, which makes the 10 overlap for sure.
      local before = #ngx.log()
      local fns = {}
      for i = 1, 200 do fns[i] = function() return assert(http.get(ngx.url("/paced/1k.txt"))).status end end
      local r = assert(ato.gather(fns, {limit = 10}))
      for i = 1, 200 do assert.equal(200, r[i]) end
      local log = ngx.log()
      for _ = 1, 500 do                  -- nginx logs after responding: wait for all
        if #log >= before + 200 then break end
        ato.sleep(0.01)
        log = ngx.log()
      end
      assert.is_true(#log >= before + 200, "nginx logged " .. (#log - before) .. " of 200 requests")
      local conns, n = {}, 0
      for i = before + 1, #log do
        local c = log[i]:match("^(%d+)")
        if not conns[c] then n = n + 1 end
        conns[c] = true
      end
      -- curl may open a few extra while others finish; never one per request
      assert.is_true(n >= 2 and n <= 20, n .. " connections for 10 in flight")
    end)

    it("streams a body to a file with body_file", function()
      local dir, cleanup = support.tmpdir()
      local r = assert(http.get(ngx.url("/10m.bin"), {body_file = dir .. "/out.bin"}))
      assert.equal(200, r.status)
      assert.equal("", r.body)
      assert.equal(assert(ato.fs.read(ngx.dir .. "/html/10m.bin")), assert(ato.fs.read(dir .. "/out.bin")))
      assert.equal("0600", assert(ato.fs.stat(dir .. "/out.bin")).perms)
      cleanup()
    end)

    it("stops a body over max_body: too_large", function()
      local v, err = http.get(ngx.url("/100k.txt"), {max_body = 10 * 1024})
      assert.is_nil(v)
      assert.equal("too_large", err.kind)
      local v2, err2 = http.get(ngx.url("/slow/100k.txt"), {max_body = 10 * 1024})
      assert.is_nil(v2)
      assert.equal("too_large", err2.kind)
    end)

    it("speaks HTTP/2 over TLS with the test CA, and refuses an unknown CA", function()
      local r = assert(http.get(ngx.tls_url("/1k.txt"), {ca_file = ngx.ca_file}))
      assert.equal(200, r.status)
      assert.equal("2", r.http_version)
      assert.equal(1024, #r.body)
      local v, err = http.get(ngx.tls_url("/1k.txt"))
      assert.is_nil(v)
      assert.equal("tls", err.kind)
      assert.has_error(function() http.get("https://example.com/", {verify = false}) end)
    end)

    it("cancelling a task mid-transfer releases the transfer at once", function()
      local t = ato.spawn(function() return http.get(ngx.url("/slow/10m.bin")) end)
      ato.sleep(0.2)
      assert.equal(1, http.stats().transfers)
      t:cancel()
      local v, err = t:join()
      assert.is_nil(v)
      assert.equal("cancelled", err.kind)
      assert.equal(0, http.stats().transfers)
      local tv, terr = ato.timeout(0.1, http.get, ngx.url("/slow/10m.bin"))
      assert.is_nil(tv)
      assert.equal("timeout", terr.kind)
      assert.equal(0, http.stats().transfers)
    end)

    it("times out a transfer that takes too long: timeout", function()
      local v, err = http.get(ngx.url("/slow/10m.bin"), {timeout = 0.2})
      assert.is_nil(v)
      assert.equal("timeout", err.kind)
    end)

    it("uses a proxy from the environment", function()
      local code = ([[
        local r = assert(require("ato.http").get("http://198.51.100.7/ping"))
        print(r.status, r.body)]])
      local r = support.ato({"-e", code}, {env = {http_proxy = ngx.url("")}})
      assert.equal(0, r.code, r.stderr)
      assert.equal("200\tpong\n", r.stdout)
    end)
  end)

  describe("limits", function()
    after_each(function() http.limit("127.0.0.1", nil) end)

    it("caps the requests in flight per host", function()
      http.limit("127.0.0.1", {concurrency = 2})
      local peak = 0
      local fns = {}
      for i = 1, 8 do
        fns[i] = function()
          return http.get(ngx.url("/slow/100k.txt"))
        end
      end
      local watcher = ato.spawn(function()
        while true do
          peak = math.max(peak, http.stats().transfers)
          ato.sleep(0.005)
        end
      end)
      assert(ato.gather(fns))
      watcher:cancel()
      watcher:join()
      assert.equal(2, peak)
    end)

    it("a cancelled request gives its slot back", function()
      http.limit("127.0.0.1", {concurrency = 1})
      local t = ato.spawn(function() return http.get(ngx.url("/slow/10m.bin")) end)
      ato.sleep(0.1)
      t:cancel()
      t:join()
      local r, err = ato.timeout(5, http.get, ngx.url("/ping"))
      assert.is_nil(err)
      assert.equal(200, r.status)
    end)

    it("matches host:port with the default port made explicit", function()
      http.limit("localhost:" .. ngx.tls_port, {concurrency = 1})
      local t = ato.spawn(function() return http.get(ngx.tls_url("/slow/100k.txt"), {ca_file = ngx.ca_file}) end)
      ato.sleep(0.05)
      local r = ato.timeout(0.3, http.get, ngx.tls_url("/ping"), {ca_file = ngx.ca_file})
      assert.is_nil(r)                   -- queued behind the slow one
      t:join()
      http.limit("localhost:" .. ngx.tls_port, nil)
    end)

    it("paces requests with a token bucket", function()
      http.limit("127.0.0.1:" .. ngx.port, {rate = 20, burst = 1})
      local t0 = ato.now()
      for _ = 1, 6 do assert(http.get(ngx.url("/ping"))) end
      assert.is_true(ato.now() - t0 >= 0.24, "6 requests at 20/s took " .. (ato.now() - t0))
      http.limit("127.0.0.1:" .. ngx.port, nil)
    end)

    it("rejects bad limits", function()
      assert.has_error(function() http.limit("h", {concurrency = 0}) end)
      assert.has_error(function() http.limit("h", {rate = -1}) end)
      assert.has_error(function() http.limit(nil, {}) end)
    end)
  end)

  describe("faults, each with its kind", function()
    it("refused port: connect", function()
      local v, err = http.get("http://127.0.0.1:1/")
      assert.is_nil(v)
      assert.equal("connect", err.kind)
      assert.matches("127%.0%.0%.1:1", err.message)
    end)

    it("unknown host: dns", function()
      local v, err = http.get("http://host.that-does-not-exist.invalid/", {connect_timeout = 5})
      assert.is_nil(v)
      assert.equal("dns", err.kind)
    end)

    it("invalid URL: invalid", function()
      for _, url in ipairs({"ftp://x/", "not a url", "http:///nohost", "file:///etc/passwd"}) do
        local v, err = http.get(url)
        assert.is_nil(v, url)
        assert.equal("invalid", err.kind, url)
      end
      assert.has_error(function() http.get(42) end)
      assert.has_error(function() http.request{url = "http://x/", headers = {["Bad Name"] = "v"}} end)
      assert.has_error(function() http.request{url = "http://x/", headers = {X = "a\r\nInjected: 1"}} end)
    end)

    it("server closes mid-body: protocol", function()
      local port, stop = support.fake_server(
        "printf 'HTTP/1.1 200 OK\\r\\nContent-Length: 100000\\r\\n\\r\\nonly a little'")
      finally(stop)
      local v, err = http.get(("http://127.0.0.1:%d/"):format(port))
      assert.is_nil(v)
      assert.equal("protocol", err.kind)
    end)

    it("server never answers: timeout", function()
      local port, stop = support.fake_server("sleep 30")
      finally(stop)
      local v, err = http.get(("http://127.0.0.1:%d/"):format(port), {timeout = 0.3})
      assert.is_nil(v)
      assert.equal("timeout", err.kind)
    end)

    -- n counts the connections in the script's own directory
    local COUNT = [[n=$(cat "$(dirname "$0")/n" 2>/dev/null || echo 0); echo $((n+1)) > "$(dirname "$0")/n"]]

    it("503 then 200 with retries; without retries the 503 is returned", function()
      local script = ([[%s
        if [ $n -lt 2 ]; then %s; else %s; fi]]):format(COUNT,
        raw("503 Service Unavailable", nil, "busy"), raw("200 OK", nil, "fine"))
      local port, stop = support.fake_server(script)
      finally(stop)
      local url = ("http://127.0.0.1:%d/"):format(port)
      local first = assert(http.get(url))
      assert.equal(503, first.status)
      local r = assert(http.get(url, {retries = 3}))
      assert.equal(200, r.status)
      assert.equal("fine", r.body)
      assert.equal(2, r.attempts)
    end)

    it("does not retry a POST unless retry_post is set", function()
      local port, stop = support.fake_server(raw("503 Service Unavailable"))
      finally(stop)
      local url = ("http://127.0.0.1:%d/"):format(port)
      assert.equal(1, assert(http.post(url, {body = "x", retries = 2})).attempts)
      local r = assert(http.post(url, {body = "x", retries = 2, retry_post = true}))
      assert.equal(3, r.attempts)
    end)

    it("429 with Retry-After: 1 waits a second before retrying", function()
      local script = ([[%s
        if [ $n -eq 0 ]; then %s; else %s; fi]]):format(COUNT,
        raw("429 Too Many Requests", {"Retry-After: 1"}), raw("200 OK", nil, "ok"))
      local port, stop = support.fake_server(script)
      finally(stop)
      local t0 = ato.now()
      local r = assert(http.get(("http://127.0.0.1:%d/"):format(port), {retries = 1}))
      local waited = ato.now() - t0
      assert.equal(200, r.status)
      assert.is_true(waited >= 1, "retried after " .. waited .. " s")
    end)

    it("429 with X-RateLimit-Reset waits until the reset", function()
      local script = ([[%s
        reset=$(( $(date +%%s) + 2 ))
        if [ $n -eq 0 ]; then echo $reset > "$(dirname "$0")/reset"; %s; else %s; fi]]):format(COUNT,
        raw("429 Too Many Requests", {"X-RateLimit-Remaining: 0", "X-RateLimit-Reset: $reset"}),
        raw("200 OK", nil, "ok"))
      local port, stop, dir = support.fake_server(script)
      finally(stop)
      local r = assert(http.get(("http://127.0.0.1:%d/"):format(port), {retries = 1}))
      local done_at = ato.time()
      local reset = tonumber(assert(ato.fs.read(dir .. "/reset")))
      assert.equal(200, r.status)
      assert.is_true(done_at >= reset - 0.05, "retried before the reset")
    end)

    it("gives up when the server asks for a wait longer than max_retry_delay", function()
      local port, stop = support.fake_server(raw("429 Too Many Requests", {"Retry-After: 3600"}))
      finally(stop)
      local r = assert(http.get(("http://127.0.0.1:%d/"):format(port), {retries = 3, max_retry_delay = 5}))
      assert.equal(429, r.status)
      assert.equal(1, r.attempts)
    end)

    it("retries an empty reply on an idempotent request", function()
      local script = ([[%s
        if [ $n -eq 0 ]; then exit 0; else %s; fi]]):format(COUNT, raw("200 OK", nil, "ok"))
      local port, stop = support.fake_server(script)
      finally(stop)
      local r = assert(http.get(("http://127.0.0.1:%d/"):format(port), {retries = 1}))
      assert.equal(200, r.status)
      assert.equal(2, r.attempts)
    end)

    it("honours Retry-After given as a date", function()
      local script = ([[%s
        when=$(date -u -d @$(( $(date +%%s) + 1 )) '+%%a, %%d %%b %%Y %%H:%%M:%%S GMT')
        if [ $n -eq 0 ]; then %s; else %s; fi]]):format(COUNT,
        raw("503 Service Unavailable", {"Retry-After: $when"}), raw("200 OK", nil, "ok"))
      local port, stop = support.fake_server(script)
      finally(stop)
      local r = assert(http.get(("http://127.0.0.1:%d/"):format(port), {retries = 1}))
      assert.equal(200, r.status)
      assert.equal(2, r.attempts)
    end)

    it("parses HTTP dates", function()
      assert.equal(784111777, http.parse_date("Sun, 06 Nov 1994 08:49:37 GMT"))
      assert.is_nil(http.parse_date("yesterday"))
    end)
  end)

  describe("requests on the wire", function()
    local function captured(dir)
      return assert(ato.fs.read(dir .. "/requests.txt"))
    end

    it("keeps the order of repeated headers and sends Content-Length: 0 for an empty POST", function()
      local port, stop, dir = support.fake_server(raw("200 OK", nil, "ok"))
      finally(stop)
      local url = ("http://127.0.0.1:%d/p"):format(port)
      assert(http.get(url, {headers = {{"X-Forwarded-For", "9.9.9.9"}, {"X-Forwarded-For", "1.1.1.1"},
                                       {"User-Agent", false}, {"X-Empty", ""}}}))
      assert(http.post(url))
      local text = captured(dir)
      local get, post = text:match("^(GET .-)(POST .*)$")
      assert.truthy(get:find("X-Forwarded-For: 9.9.9.9\nX-Forwarded-For: 1.1.1.1", 1, true), get)
      assert.is_nil(get:find("User-Agent", 1, true))
      assert.truthy(get:find("X-Empty:", 1, true))
      assert.truthy(post:find("Content-Length: 0", 1, true), post)
      assert.has_error(function() http.get(url, {headers = {{"X-Missing"}}}) end)
    end)

    it("a 303 after a POST is followed with a GET; PUT does not follow", function()
      assert.equal(200, assert(http.post(ngx.url("/see-other"), {body = "x"})).status)
      ngx.wait_log("GET /ping")
      assert.equal(302, assert(http.put(ngx.url("/redirect"), {body = "x"})).status)
    end)

    it("verify = false does not follow redirects", function()
      assert.equal(302, assert(http.get(ngx.url("/redirect"), {verify = false})).status)
    end)

    it("drops the fragment and keeps the query before it", function()
      assert(http.get(ngx.url("/ping#frag"), {query = {a = 1}}))
      assert.matches('"a=1"', ngx.wait_log('GET /ping 200 %d+ "a=1"'))
    end)

    it("a failed body_file download leaves the old file and no temporary", function()
      local dir, cleanup = support.tmpdir()
      finally(cleanup)
      local path = dir .. "/precious"
      assert(ato.fs.write(path, "precious"))
      local v, err = http.get("http://127.0.0.1:1/", {body_file = path})
      assert.is_nil(v)
      assert.equal("connect", err.kind)
      assert.equal("precious", assert(ato.fs.read(path)))
      assert.equal(1, #assert(ato.fs.list(dir)))
      local _, err2 = http.get(ngx.url("/1k.txt"), {body_file = dir .. "/missing/out"})
      assert.equal("not_found", err2.kind)
    end)

    it("accepts math.huge as no limit", function()
      local r = assert(http.get(ngx.url("/100k.txt"), {max_body = math.huge, timeout = math.huge}))
      assert.equal(100 * 1024, #r.body)
    end)

    it("survives the module being required again", function()
      package.loaded["ato.httpc"] = nil
      require "ato.httpc"
      collectgarbage()
      collectgarbage()
      assert.equal(200, assert(http.get(ngx.url("/ping"))).status)
    end)
  end)

  describe("secrets", function()
    it("are redacted from the URL in error messages", function()
      local url = ("http://ops:hunter2hunter2@127.0.0.1:1/v3/x?api_key=%s"):format(KEY)
      local v, err = http.get(url)
      assert.is_nil(v)
      assert.is_nil(err.message:find("hunter2hunter2", 1, true))
      assert.is_nil(err.message:find(KEY, 1, true))
      assert.truthy(err.message:find(ato.redact.fingerprint(KEY), 1, true))
      local bad = select(2, http.get(("gopher://x/?key=%s"):format(KEY)))
      assert.is_nil(bad.message:find(KEY, 1, true))
      local r = assert(http.get(ngx.url("/1k.txt"):gsub("//", "//ops:hunter2hunter2@", 1), {query = {api_key = KEY}}))
      local shown = tostring(r) .. select(2, r:json()).message
      assert.is_nil(shown:find("hunter2hunter2", 1, true))
      assert.is_nil(shown:find(KEY, 1, true))
    end)
  end)
end)
