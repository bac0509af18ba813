-- bench/sendgrid.lua [--quick]: the SendGrid client and the sandbox.
--
--   walk   10,000 bounce suppressions read through the sandbox (`ato
--          sandbox` in its own process): ato.sendgrid's pager, next to the
--          same walk by curl in a shell loop (one curl per page, as an
--          operator's script would do it); pages of 500 (SendGrid's
--          maximum) and of 100. Wall time and requests/s, median of 5.
--   send   the sandbox's mail-send acceptance rate: 20 requests of 1,000
--          recipients each (events, stats and suppressions included),
--          sent by ato.sendgrid's send() (which splits a 20,000-address
--          list), next to curl posting the same 20 bodies one by one.
--          Messages/s, median of 5.
--
-- The sandbox's rate limit is lifted (1,000,000 a minute) so that pacing
-- does not measure the window. Prints a table and writes
-- bench/out/sendgrid.json.
local ato = require "ato"
local cjson = require "cjson"
local sendgrid = require "ato.sendgrid"

local U = dofile "bench/util.lua"
local quick = arg[1] == "--quick"
local ROUNDS = quick and 3 or 5
local ENTRIES = 10000
local SEND_REQUESTS = quick and 10 or 20
local ATO = os.getenv("ATO_BIN") or "bin/ato"
local OUT = "bench/out/sendgrid"

local function start_sandbox()
  U.run{"rm", "-rf", OUT}
  U.run{"mkdir", "-p", OUT}
  math.randomseed(os.time())
  local port = 20000 + math.random(0, 20000)
  local env = OUT .. "/sandbox.env"
  local proc = ato.spawn(function()
    return ato.exec{ATO, "--log-level", "warn", "sandbox", "--listen", "127.0.0.1:" .. port, "--db", OUT .. "/ato.db",
                    "--env-file", env, "--bounces", tostring(ENTRIES), "--rate-limit", "1000000/60", timeout = 3600}
  end)
  local text
  for _ = 1, 500 do
    text = U.read(env)
    if text then break end
    ato.sleep(0.02)
  end
  assert(text, "the sandbox did not start")
  local base, key = text:match("SENDGRID_BASE_URL=(%S+)"), text:match("SENDGRID_API_KEY=(%S+)")
  assert(ato.fs.write(OUT .. "/auth.header", "Authorization: Bearer " .. key .. "\n", "600"))
  return base, key, env, function()
    U.run{"pkill", "-TERM", "-f", "sandbox --listen 127.0.0.1:" .. port}
    proc:join()
  end
end

-- {---- walk

local function ato_walk(base, key, page)
  local c = assert(sendgrid.client{api_key = key, base_url = base})
  local t0, n = ato.now(), 0
  for _ in c:bounces{limit = page} do n = n + 1 end
  assert(n == ENTRIES, "walked " .. n)
  return ato.now() - t0, c.calls
end

-- The operator's loop: a page per curl, until a short page.
-- The key goes in a header file (-H @file, 0600), not on curl's command
-- line where any local user could read it from ps.
local CURL_WALK = [[
. "$1"; page=$2; off=0; total=0
while :; do
  n=$(curl -sf -H "@$3" \
      "$SENDGRID_BASE_URL/v3/suppression/bounces?limit=$page&offset=$off" | grep -o '"email"' | wc -l)
  total=$((total + n)); off=$((off + page))
  [ "$n" -lt "$page" ] && break
done
echo $total
]]

local function curl_walk(env, page)
  local t0 = ato.now()
  local r = U.sh(CURL_WALK, env, tostring(page), OUT .. "/auth.header")
  assert(tonumber(r.stdout) == ENTRIES, "curl walked " .. r.stdout)
  return ato.now() - t0
end

-- }----

-- {---- send

local function recipients(round, n)
  local list = {}
  for i = 1, n do list[i] = ("r%d.%06d@example.org"):format(round, i) end
  return list
end

local MSG = {from = {email = "support@acme.example"}, subject = "bench",
             content = {{type = "text/plain", value = "hello"}}, categories = {"bench"}}

local function ato_send(base, key, round)
  local c = assert(sendgrid.client{api_key = key, base_url = base})
  local msg = {recipients = recipients(round, SEND_REQUESTS * 1000)}
  for k, v in pairs(MSG) do msg[k] = v end
  local t0 = ato.now()
  local sent = assert(c:send(msg))
  assert(sent.requests == SEND_REQUESTS)
  return ato.now() - t0
end

-- Bodies written beforehand, so that curl's loop only sends.
local function curl_bodies(round)
  local files = {}
  for i = 1, SEND_REQUESTS do
    local ps = {}
    for j = 1, 1000 do ps[j] = {to = {{email = ("c%d.%d.%04d@example.org"):format(round, i, j)}}} end
    local body = {personalizations = ps}
    for k, v in pairs(MSG) do body[k] = v end
    files[i] = ("%s/body%d.json"):format(OUT, i)
    U.write(files[i], cjson.encode(body))
  end
  return files
end

local CURL_SEND = [[
. "$1"; auth=$2; shift 2
for f in "$@"; do
  curl -sf -o /dev/null -H "@$auth" -H "Content-Type: application/json" \
    --data-binary "@$f" "$SENDGRID_BASE_URL/v3/mail/send" || exit 1
done
]]

local function curl_send(env, round)
  local files = curl_bodies(round)
  local t0 = ato.now()
  U.run{"sh", "-c", CURL_SEND, "sh", env, OUT .. "/auth.header", table.unpack(files)}
  return ato.now() - t0
end

-- }----

local function main()
  assert(U.have("curl"), "curl is needed (make deps installs it)")
  local base, key, env, stop = start_sandbox()
  local results = {entries = ENTRIES, rounds = ROUNDS, walk = {}, send = {}}
  print(("sendgrid: walk of %d bounces through `ato sandbox`, median of %d"):format(ENTRIES, ROUNDS))
  print(("  %-10s %12s %12s %12s %12s %8s"):format("page", "ato s", "ato req/s", "curl s", "curl req/s", "ratio"))
  for _, page in ipairs{500, 100} do
    local a, cu, calls = {}, {}, 0
    for _ = 1, ROUNDS do
      local t
      t, calls = ato_walk(base, key, page)
      a[#a + 1] = t
      cu[#cu + 1] = curl_walk(env, page)
    end
    local ma, mc = U.median(a), U.median(cu)
    results.walk[tostring(page)] = {ato_s = ma, curl_s = mc, requests = calls, ratio = mc / ma}
    print(("  %-10d %12.3f %12.0f %12.3f %12.0f %7.2fx"):format(page, ma, calls / ma, mc, calls / mc, mc / ma))
  end
  print(("sendgrid: mail send, %d requests of 1,000 recipients, median of %d"):format(SEND_REQUESTS, ROUNDS))
  local a, cu = {}, {}
  for round = 1, ROUNDS do
    a[#a + 1] = ato_send(base, key, round)
    cu[#cu + 1] = curl_send(env, round)
  end
  local ma, mc = U.median(a), U.median(cu)
  local msgs = SEND_REQUESTS * 1000
  results.send = {messages = msgs, ato_s = ma, curl_s = mc, ato_msgs_per_s = msgs / ma, curl_msgs_per_s = msgs / mc}
  print(("  ato.sendgrid send(): %.3f s = %.0f messages/s (%.1f requests/s)"):format(ma, msgs / ma, SEND_REQUESTS / ma))
  print(("  curl loop:           %.3f s = %.0f messages/s (%.1f requests/s); ato/curl %.2fx")
    :format(mc, msgs / mc, SEND_REQUESTS / mc, mc / ma))
  stop()
  U.write("bench/out/sendgrid.json", cjson.encode(results))
end

main()
