-- bench/http_client.lua URL N C: N GETs of URL with C in flight through
-- ato.http; prints one JSON line.
local ato = require "ato"
local http = require "ato.http"

local url, n, c = arg[1], tonumber(arg[2]) or 20000, tonumber(arg[3]) or 100
local started, done, bytes = 0, 0, 0
local t0 = ato.now()
local workers = {}
for w = 1, c do
  workers[w] = ato.spawn(function()
    while started < n do
      started = started + 1
      local r = assert(http.get(url))
      assert(r.status == 200, r.status)
      bytes, done = bytes + #r.body, done + 1
    end
  end)
end
for _, w in ipairs(workers) do
  local _, err = w:join()
  if err then error(err, 0) end
end
local wall = ato.now() - t0
print(('{"requests":%d,"in_flight":%d,"wall_s":%.3f,"req_per_s":%.0f,"bytes":%d}')
  :format(done, c, wall, done / wall, bytes))
