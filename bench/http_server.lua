-- bench/http_server.lua PORT_FILE: serves 1 KB on a free loopback port
-- with http.serve and writes the port to PORT_FILE; runs until killed.
local ato = require "ato"
local http = require "ato.http"

local body = ("0123456789abcdef"):rep(64)
local headers = {["Content-Type"] = "text/plain"}
local server = assert(http.serve{port = 0, handler = function()
  return 200, headers, body
end})
local _, port = server:address()
assert(ato.fs.write(arg[1], tostring(port)))
ato.sleep(math.huge)
