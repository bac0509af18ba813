-- Shared test helpers, in the spirit of luv's harness: each test must leave
-- no task, deadline or unobserved failure behind, and the GC runs between
-- tests to shake out anchoring bugs.
local ato = require "ato"
local busted = require "busted"   -- before_each/after_each live in its api

local M = {}

M.ato_bin = os.getenv("ATO_BIN") or "bin/ato"
if M.ato_bin:sub(1, 1) ~= "/" then           -- usable from any cwd
  M.ato_bin = (os.getenv("PWD") or ".") .. "/" .. M.ato_bin
end

-- Tasks that outlive single tests on purpose (a server for a whole file).
local kept = setmetatable({}, {__mode = "k"})

--- Exempts task from the leftover check (stop it in a teardown).
function M.keep(task)
  kept[task] = true
  return task
end

local function leftovers()
  local list, me = {}, ato.current()
  for _, t in ipairs(ato.tasks()) do
    if t ~= me and not kept[t] then list[#list + 1] = tostring(t) end
  end
  return list
end

--- Installs an after_each that fails a test leaving work behind.
function M.clean_after_each()
  local base
  busted.before_each(function() base = ato.stats().unobserved_failures end)
  busted.after_each(function()
    for _ = 1, 3 do ato.sleep(0) end        -- let finishing tasks finish
    collectgarbage()
    collectgarbage()
    local left, s = leftovers(), ato.stats()
    for _, t in ipairs(ato.tasks()) do
      if t ~= ato.current() and not kept[t] then t:cancel() end
    end
    ato.sleep(0)
    assert(#left == 0, "tasks left running: " .. table.concat(left, ", "))
    local kept_deadlines = 0
    for t in pairs(kept) do if t:status() == "waiting" then kept_deadlines = kept_deadlines + 1 end end
    assert(s.deadlines <= kept_deadlines, s.deadlines .. " deadline(s) left armed")
    assert(s.unobserved_failures == base, "a task failed and nobody joined it")
  end)
end

--- Runs bin/ato with args (a list) and options for ato.exec; returns the result.
function M.ato(args, opts)
  local cmd = {M.ato_bin}
  for _, a in ipairs(args) do cmd[#cmd + 1] = a end
  for k, v in pairs(opts or {}) do cmd[k] = v end
  if cmd.timeout == nil then cmd.timeout = 30 end
  return assert(ato.exec(cmd))
end

--- A fresh temporary directory, removed by the returned cleanup function.
function M.tmpdir()
  local r = assert(ato.exec{"mktemp", "-d", "/tmp/ato-test.XXXXXX"})
  local dir = r.stdout:gsub("%s+$", "")
  return dir, function() ato.exec{"rm", "-rf", dir} end
end

-- {====================================================== nginx

local NGINX_CONF = [[
worker_processes 1;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 4096; }
http {
  log_format conn '$connection $request_method $uri $status $request_length "$args" "$http_user_agent"';
  log_format body '$request_method $content_type $request_body';
  access_log %s;
  client_body_temp_path %s/tmp;
  proxy_temp_path %s/tmp;
  fastcgi_temp_path %s/tmp;
  uwsgi_temp_path %s/tmp;
  scgi_temp_path %s/tmp;
  keepalive_requests 100000;
  client_max_body_size 32m;
  client_body_buffer_size 32m;
  default_type application/octet-stream;
  # /paced/: requests closer than 0.5 ms are delayed, so no reply can land
  # while curl is still starting the next transfer (see http_spec)
  limit_req_zone $binary_remote_addr zone=paced:1m rate=2000r/s;
  server {
    listen 127.0.0.1:%d;
    %s
    root %s/html;
    location = /ping { return 200 "pong"; }
    location = /redirect { return 302 /1k.txt; }
    location = /see-other { return 303 /ping; }
    location = /loop { return 302 /loop; }
    location = /repeat { add_header X-Rep a; add_header X-Rep b; return 200 "r"; }
    location = /sink { access_log %s/body.log body; proxy_pass http://127.0.0.1:%d/ping; }
    location = /upload { proxy_pass http://127.0.0.1:%d/ping; }
    location /slow/ { limit_rate 64k; alias %s/html/; }
    location /paced/ { limit_req zone=paced burst=100000; alias %s/html/; }
  }
}
]]

-- TLS part of the server block, when a certificate is given.
local TLS_LISTEN = [[
    listen 127.0.0.1:%d ssl http2;
    ssl_certificate %s;
    ssl_certificate_key %s;
]]

local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

--- A fresh CA and a server certificate for localhost/127.0.0.1 in dir:
--- returns ca_file, cert_file, key_file.
function M.test_certificate(dir)
  local script = ([[
    set -e; cd %s
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout ca.key -out ca.crt -days 2 -subj /CN=ato-test-ca 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout srv.key -out srv.csr -subj /CN=localhost 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > ext.cnf
    openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -out srv.crt -days 2 -extfile ext.cnf 2>/dev/null]]):format(dir)
  local r = assert(ato.exec{"sh", "-c", script})
  assert(r.ok, "openssl failed: " .. r.stderr)
  return dir .. "/ca.crt", dir .. "/srv.crt", dir .. "/srv.key"
end

local next_port = 20000 + (os.time() * 7919) % 20000

local function pick_port()
  next_port = next_port + 1
  if next_port > 60000 then next_port = 20001 end
  return next_port
end

--- Starts a real nginx (Debian's) on free loopback ports with the test
--- config above; files under html/ are 1k.txt, 100k.txt, 10m.bin and
--- data.json. opts: tls (a TLS+HTTP/2 listener too), access_log (false:
--- none, for benchmarks). Returns an object: port, tls_port, dir,
--- url(path), tls_url(path), log() (access log lines), stop().
function M.nginx(opts)
  opts = opts or {}
  local dir, cleanup = M.tmpdir()
  assert(assert(ato.exec{"mkdir", "-p", dir .. "/html", dir .. "/tmp"}).ok)
  -- nginx's workers run as nobody when the tests run as root
  assert(assert(ato.exec{"chmod", "a+rwx", dir, dir .. "/html", dir .. "/tmp"}).ok)
  local blocks = {["1k.txt"] = 1024, ["100k.txt"] = 100 * 1024}
  for name, size in pairs(blocks) do
    write_file(dir .. "/html/" .. name, ("0123456789abcdef"):rep(size // 16))
  end
  assert(assert(ato.exec{"sh", "-c", "head -c 10485760 /dev/urandom > " .. dir .. "/html/10m.bin"}).ok)
  write_file(dir .. "/html/data.json", '{"name":"ato","list":[1,2,3],"nested":{"ok":true}}')
  local server = {dir = dir}
  if opts.tls then
    server.ca_file, server.cert, server.key = M.test_certificate(dir)
  end
  for _ = 1, 20 do
    server.port, server.tls_port = pick_port(), pick_port()
    local tls = opts.tls and TLS_LISTEN:format(server.tls_port, server.cert, server.key) or ""
    local access = opts.access_log == false and "off" or dir .. "/access.log conn"
    write_file(dir .. "/nginx.conf", NGINX_CONF:format(dir, dir, access, dir, dir, dir, dir, dir,
      server.port, tls, dir, dir, server.port, server.port, dir, dir))
    local task = ato.spawn(function()
      return ato.exec{"nginx", "-p", dir, "-c", dir .. "/nginx.conf", "-g", "daemon off;"}
    end)
    for _ = 1, 200 do                        -- up to 2 s to accept connections
      if task:status() ~= "waiting" and task:status() ~= "ready" then break end
      local r = ato.exec{"bash", "-c", ("exec 3<>/dev/tcp/127.0.0.1/%d"):format(server.port)}
      if r and r.ok then
        server.task = M.keep(task)
        break
      end
      ato.sleep(0.01)
    end
    if server.task then break end
    task:cancel()
    task:join()
  end
  assert(server.task, "nginx did not start: " .. (io.open(dir .. "/error.log") or {read = function() return "" end}):read("a"))
  function server.url(path) return ("http://127.0.0.1:%d%s"):format(server.port, path) end
  function server.tls_url(path) return ("https://localhost:%d%s"):format(server.tls_port, path) end
  function server.log(name)
    local f = io.open(dir .. "/" .. (name or "access") .. ".log")
    local lines = {}
    if f then
      for line in f:lines() do lines[#lines + 1] = line end
      f:close()
    end
    return lines
  end
  --- waits (up to 2 s) for a log line matching pattern: nginx writes a
  --- request's line after sending its response
  function server.wait_log(pattern, name)
    for _ = 1, 200 do
      local lines = server.log(name)
      for i = #lines, 1, -1 do
        if lines[i]:find(pattern) then return lines[i], lines end
      end
      ato.sleep(0.01)
    end
    error("no log line matches " .. pattern)
  end
  function server.stop()
    server.task:cancel()                     -- exec kills nginx's process group
    server.task:join()
    cleanup()
  end
  return server
end

-- }======================================================

-- Reads one request (head, and a Content-Length body) from stdin, so the
-- reply goes out only after it: closing a socket with unread input would
-- reset the connection before the client reads the reply.
local READ_REQUEST = [[
len=0 got=
req="$(dirname "$0")/requests.txt"
while IFS= read -r line; do
  line=${line%"$(printf '\r')"}
  [ -z "$line" ] && break
  printf '%s\n' "$line" >> "$req"
  got=1
  case "$line" in [Cc]ontent-[Ll]ength:*) len=${line#*:}; len=${len# } ;; esac
done
[ -z "$got" ] && exit 0      # a probe that connected and left
[ "$len" -gt 0 ] && head -c "$len" > /dev/null
]]

--- Runs socat as a fake server on a free port until the returned stop();
--- for each connection, reads the request (its head is appended to
--- <dir>/requests.txt), then runs the shell code `reply`, whose output is
--- the raw response. Returns port, stop, dir.
function M.fake_server(reply)
  local dir, cleanup = M.tmpdir()
  local script = dir .. "/reply.sh"
  local f = assert(io.open(script, "w"))
  f:write(READ_REQUEST, reply, "\n")
  f:close()
  for _ = 1, 20 do
    local port = pick_port()
    local task = ato.spawn(function()
      return ato.exec{"socat", ("TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork"):format(port),
                      "SYSTEM:sh " .. script}
    end)
    for _ = 1, 200 do
      if task:status() == "done" then break end
      local r = ato.exec{"bash", "-c", ("exec 3<>/dev/tcp/127.0.0.1/%d"):format(port)}
      if r and r.ok then
        return port, function() task:cancel() task:join() cleanup() end, dir
      end
      ato.sleep(0.01)
    end
    task:cancel()
    task:join()
  end
  cleanup()
  error("socat did not start")
end

return M
