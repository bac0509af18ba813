-- bench/http.lua [--quick]: ato's HTTP client and server next to their
-- peers, all against the same local nginx (Debian's, one worker, no access
-- log) serving a 1 KB file, in one run:
--
--   client   20,000 GETs with 100 in flight: ato.http; wrk -t2 -c100 (the
--            ceiling); curl --parallel --parallel-max 100; Node.js fetch
--   server   wrk -t2 -c100 against an http.serve handler returning 1 KB,
--            next to the same wrk against nginx
--
-- Prints a table with ratios and writes bench/out/http.json.
package.path = "tests/?.lua;" .. package.path
local ato = require "ato"
local cjson = require "cjson"
local support = require "support"

local ATO = support.ato_bin
local quick = arg[1] == "--quick"
local N, C = quick and 5000 or 20000, 100
local WRK_SECONDS = quick and "2s" or "5s"
local RUNS = quick and 1 or 3

local U = dofile "bench/util.lua"
local run, have, median = U.run, U.have, U.median

-- Median of RUNS runs of argv under GNU time: rate from parse(stdout), RSS.
local function measure(argv, parse)
  local rates, rss = {}, {}
  for i = 1, RUNS do
    local cmd = {"/usr/bin/time", "-f", "%M %e"}
    for _, a in ipairs(argv) do cmd[#cmd + 1] = a end
    local r = run(cmd)
    local kb, secs = r.stderr:match("(%d+) ([%d.]+)%s*$")
    rates[i], rss[i] = parse(r.stdout, tonumber(secs)), tonumber(kb)
  end
  return median(rates), median(rss)
end

local function wrk(url)
  local rates = {}
  for i = 1, RUNS do
    local out = run{"wrk", "-t2", "-c" .. C, "-d" .. WRK_SECONDS, url}.stdout
    rates[i] = tonumber(out:match("Requests/sec:%s*([%d.]+)"))
  end
  return median(rates)
end

local rows = {}
local function row(name, value, unit, ratio_to, note)
  rows[#rows + 1] = {name = name, value = value, unit = unit, note = note}
  print(("%-44s %12.0f %-6s %8s  %s"):format(name, value, unit,
    ratio_to and ("%.2fx"):format(value / ratio_to) or "", note or ""))
end

local ngx = support.nginx{access_log = false}
local url = ngx.url("/1k.txt")
print(("%-44s %12s %-6s %8s"):format("HTTP, 1 KB from nginx (1 worker)", "value", "", "ratio"))

-- {====================================================== client
local ceiling = wrk(url)
row("client: wrk -t2 -c100 (ceiling)", ceiling, "req/s", ceiling, "")
local ato_rate, ato_rss = measure({ATO, "bench/http_client.lua", url, tostring(N), tostring(C)},
  function(out) return cjson.decode(out).req_per_s end)
row("client: ato.http, 100 in flight", ato_rate, "req/s", ceiling, "of wrk; target >= 0.70")
row("client: ato.http peak RSS", ato_rss / 1024, "MB")
do  -- libcurl itself, with nothing of ato around it
  local bin = "bench/out/curl_ceiling"
  run{"mkdir", "-p", "bench/out"}
  run{"sh", "-c", "cc -O2 -o " .. bin .. " bench/curl_ceiling.c $(pkg-config --cflags --libs libcurl libuv)"}
  local rate = measure({bin, url, tostring(N), tostring(C)},
    function(out) return cjson.decode(out).req_per_s end)
  row("client: bare libcurl multi_socket (C)", rate, "req/s", ceiling, "of wrk: libcurl's ceiling")
  row("client: ato.http / bare libcurl", ato_rate, "req/s", rate, "")
end
do
  local cfg = ngx.dir .. "/curl.cfg"
  local f = assert(io.open(cfg, "w"))
  for _ = 1, N do f:write('url = "', url, '"\noutput = "/dev/null"\n') end
  f:close()
  local rate, rss = measure({"curl", "-s", "--parallel", "--parallel-max", tostring(C), "-K", cfg},
    function(_, secs) return N / secs end)
  row("client: curl --parallel-max 100", rate, "req/s", ceiling, "of wrk")
  row("client: ato.http / curl", ato_rate, "req/s", rate, "")
  row("client: curl peak RSS", rss / 1024, "MB")
end
if have("node") then
  local rate, rss = measure({"node", "bench/fetch.mjs", url, tostring(N), tostring(C)},
    function(out) return cjson.decode(out).req_per_s end)
  row("client: node fetch, 100 in flight", rate, "req/s", ceiling, "of wrk")
  row("client: ato.http / node fetch", ato_rate, "req/s", rate, "target >= 2")
  row("client: node peak RSS", rss / 1024, "MB")
end
-- }======================================================

-- {====================================================== server
do
  local nginx_rate = wrk(url)
  row("server: wrk -> nginx, 1 worker", nginx_rate, "req/s", nginx_rate, "")
  local port_file = ngx.dir .. "/ato-server.port"
  local server = ato.spawn(function()
    return ato.exec{ATO, "bench/http_server.lua", port_file}
  end)
  local port
  for _ = 1, 300 do
    local f = io.open(port_file)
    if f then port = f:read("n") f:close() end
    if port then break end
    ato.sleep(0.01)
  end
  assert(port, "bench/http_server.lua did not start")
  local rate = wrk(("http://127.0.0.1:%d/"):format(port))
  row("server: wrk -> ato http.serve", rate, "req/s", nginx_rate, "of nginx; target >= 0.60")
  server:cancel()
  server:join()
end
-- }======================================================

ngx.stop()
run{"mkdir", "-p", "bench/out"}
local f = assert(io.open("bench/out/http.json", "w"))
f:write(cjson.encode(rows), "\n")
f:close()
print("(figures in bench/out/http.json)")
