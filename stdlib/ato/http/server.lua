-- ato.http.server: an HTTP/1.1 server whose handlers are plain functions.
--
--   local server = require "ato.http.server"
--   local srv = assert(server.serve{port = 8080, handler = function(req)
--     if req.path == "/health" then return 200, nil, "ok\n" end
--     return {status = 200, json = {path = req.path, query = req.query}}
--   end})
--   ...
--   srv:close()          -- waits for in-flight requests (write_timeout at
--                        -- most), then -> true, drained
--
-- serve{host=, port=, handler=fn, max_header=, max_body=, idle_timeout=,
-- read_timeout=, write_timeout=, max_connections=, backlog=} -> server, or
-- nil, err. The server is the ato.httpd object itself (server:address(),
-- server:close([timeout]) -> true, drained), and the request is ato.httpd's
-- (req.method, req.path, req.headers, req.trailers, req:header(name)...):
-- see bindings/httpd.c for the limits, the timeouts and what gets which
-- status. close() without a timeout waits write_timeout (30 s by default)
-- at most, then aborts what is left (drained is then false);
-- close(math.huge) waits as long as it takes.
--
-- The handler runs in a task of its own for each request, so it may wait
-- (ato.sleep, ato.exec, HTTP calls). It returns one of
--   status, headers, body             headers: a list of {name, value}
--                                     pairs or a map name -> value(s)
--   {status=, headers=, body=}
--   {status=, headers=, json=value}   cjson-encoded, application/json
-- or answers by itself with req:respond(...) and returns nothing. Headers
-- are a list when the table has a [1], a map otherwise; a list with other
-- keys too is refused (500). A handler that raises, or returns no status,
-- or something respond refuses, gets a 500 with a short body and an error
-- in the log (ato.log: the traceback, with secrets redacted); the server
-- keeps serving. A cancelled handler's request gets a 500 (no log: the
-- task ends cancelled). The request is answered at the latest when the
-- handler's task ends: a handler that hands req to another task and
-- returns gets an immediate 500, and the other task's req:respond returns
-- nil, err (kind "closed"); a handler must wait for the answer itself.
-- req:respond returns nil, err of kind "timeout" when the client reads
-- nothing of the response for write_timeout (the connection is aborted).

local httpd = require "ato.httpd"

local type, pairs, tostring, error, rawget = type, pairs, tostring, error, rawget
local xpcall, pcall, traceback = xpcall, pcall, debug.traceback

local M = {}

local log           -- ato.log, loaded at the first error
local cjson         -- loaded at the first json response

local function logger()
  log = log or require "ato.log"
  return log
end

local ERROR_HEADERS = {{"Content-Type", "text/plain; charset=utf-8"}}

-- Headers are a list of pairs when the table has a [1] (raw, as
-- ato.httpd reads it), a map otherwise; returns the list's length, or nil.
local function list_length(headers)
  local n = 0
  while rawget(headers, n + 1) ~= nil do n = n + 1 end
  return n > 0 and n or nil
end

-- Is a header named `name` (lower case) among `headers` (list or map)?
local function has_header(headers, name)
  local n = list_length(headers)
  if n then
    for i = 1, n do
      local pair = rawget(headers, i)
      if type(pair) == "table" and type(pair[1]) == "string"
         and pair[1]:lower() == name then
        return true
      end
    end
    return false
  end
  for k in pairs(headers) do
    if type(k) == "string" and k:lower() == name then return true end
  end
  return false
end

-- headers plus Content-Type: application/json unless they have one;
-- never modifies the handler's table. Every key is copied, so that
-- respond still refuses a list mixed with other keys.
local function json_headers(headers)
  if headers == nil then return {{"Content-Type", "application/json"}} end
  if type(headers) ~= "table" or has_header(headers, "content-type") then
    return headers
  end
  local copy, n = {}, list_length(headers)
  for k, v in pairs(headers) do copy[k] = v end
  if n then
    copy[n + 1] = {"Content-Type", "application/json"}
  else
    copy["Content-Type"] = "application/json"
  end
  return copy
end

-- The error handler of xpcall: keeps the error value (a cancellation must
-- go on unwinding) and adds the traceback while the stack is there.
local function capture(e)
  local ok, text = pcall(tostring, e)
  return {value = e, trace = traceback(ok and text or "(error object)", 2)}
end

local function is_cancel(e)
  return type(e) == "table" and rawget(e, "kind") == "cancelled"
end

local function internal_error(req, msg, fields)
  fields = fields or {}
  fields.method, fields.path = req.method, req.path
  logger().error(msg, fields)
  if not req:responded() then
    req:respond(500, ERROR_HEADERS, "500 Internal Server Error\n")
  end
end

-- The handler's results as status, headers, body; or nil, a reason.
local function response_of(status, headers, body)
  if type(status) == "table" then
    local r = status
    status, headers, body = r.status, r.headers, r.body
    if r.json ~= nil then
      cjson = cjson or require "cjson"
      local ok, encoded = pcall(cjson.encode, r.json)
      if not ok then return nil, "cannot encode the json: " .. tostring(encoded) end
      body, headers = encoded, json_headers(headers)
    end
  end
  if status == nil then return nil, "handler returned no status" end
  if math.type(status) ~= "integer" then
    return nil, "handler returned a bad status: " .. tostring(status)
  end
  return status, headers, body
end

-- The function ato.httpd runs in each request's task. ato.httpd answers
-- 500 itself when the task ends (even cancelled) with req unanswered.
local function dispatcher(handler)
  return function(req)
    local res = table.pack(xpcall(handler, capture, req))
    if not res[1] then
      local e = res[2]
      if is_cancel(e.value) then error(e.value, 0) end
      return internal_error(req, "http handler failed",
                            {error = e.value, traceback = e.trace})
    end
    if req:responded() then return end    -- it answered by itself
    local status, headers, body = response_of(res[2], res[3], res[4])
    if status == nil then return internal_error(req, headers) end
    local ok, e = pcall(req.respond, req, status, headers, body)
    if not ok then
      if is_cancel(e) then error(e, 0) end
      return internal_error(req, "http handler's response refused",
                            {error = e})
    end
  end
end

--- serve{handler=fn, host=, port=, ...limits} -> server, or nil, err
function M.serve(opts)
  if type(opts) ~= "table" then
    error("bad argument #1 to 'serve' (table expected, got " .. type(opts) .. ")", 2)
  end
  local handler = opts.handler
  if type(handler) ~= "function" then
    error("bad argument #1 to 'serve' (option 'handler' must be a function)", 2)
  end
  local o = {}
  for k, v in pairs(opts) do
    if k == "dispatch" then
      error("bad argument #1 to 'serve' (unknown option 'dispatch')", 2)
    end
    if k ~= "handler" then o[k] = v end
  end
  o.dispatch = dispatcher(handler)
  return httpd.listen(o)
end

return M
