-- ato.http: the HTTP client playbooks use (and http.serve, the server).
--
--   local http = require "ato.http"
--   local resp, err = http.get("https://api.sendgrid.com/v3/scopes",
--                              {headers = {Authorization = "Bearer " .. key}})
--   if not resp then error(err) end          -- transport failure: err.kind
--   if resp.status == 200 then local body = resp:json() end
--
-- Transfers run on libcurl's multi interface inside the runtime's loop
-- (ato.httpc, C): only the calling task waits. This module builds the
-- request, retries, applies per-host limits and wraps the response.

local ato = require "ato"
local calendar = require "ato.calendar"
local httpc = require "ato.httpc"
local cjson = require "cjson"
local json = require "ato.json"

local type, pairs, ipairs, tostring, tonumber, error = type, pairs, ipairs, tostring, tonumber, error
local setmetatable, getmetatable, rawget, rawset = setmetatable, getmetatable, rawget, rawset
local redact = require "ato.redact"
local concat, sort = table.concat, table.sort
local floor, min, max, random = math.floor, math.min, math.max, math.random

local M = {}

M.version = httpc.version
M.stats = httpc.stats

local DEFAULTS = {
  timeout = 60,              -- whole transfer, seconds (0: none)
  connect_timeout = 10,
  max_body = 64 * 1024 * 1024,
  max_redirects = 10,
  max_retry_delay = 60,      -- longest wait between attempts we accept
  retry_base = 0.25,         -- backoff: base * 2^attempt, full jitter
  retry_cap = 30,
}

-- Misuse raises; request() re-raises it at its caller's line.
local MISUSE = {}
local function misuse(fmt, ...)
  error(setmetatable({message = fmt:format(...)}, MISUSE), 0)
end

-- {====================================================== headers

-- Header lists keep the order and repeats of the wire; lookup by name is
-- case-insensitive: h["content-type"], h:get(name), h:all(name).
local ENTRIES, INDEX = {}, {}       -- private keys: no header name collides
local Headers = {}
local methods = {}

local function new_headers(entries)
  local index = {}
  for i, e in ipairs(entries) do
    local k = e[1]:lower()
    local slot = index[k]
    if slot then slot[#slot + 1] = i else index[k] = {i} end
  end
  return setmetatable({[ENTRIES] = entries, [INDEX] = index}, Headers)
end

--- h:get(name) -> the first value, or nil
function methods:get(name)
  local slot = self[INDEX][tostring(name):lower()]
  return slot and self[ENTRIES][slot[1]][2]
end

--- h:all(name) -> list of every value (repeated headers), possibly empty
function methods:all(name)
  local out, slot = {}, self[INDEX][tostring(name):lower()]
  for i, at in ipairs(slot or {}) do out[i] = self[ENTRIES][at][2] end
  return out
end

--- h:list() -> {{name, value}, ...} in wire order (a copy)
function methods:list()
  local out = {}
  for i, e in ipairs(self[ENTRIES]) do out[i] = {e[1], e[2]} end
  return out
end

Headers.__index = function(self, k)
  return methods[k] or methods.get(self, k)
end

-- pairs(h) walks name, value in wire order (repeats included)
Headers.__pairs = function(self)
  local i, entries = 0, self[ENTRIES]
  return function()
    i = i + 1
    local e = entries[i]
    if e then return e[1], e[2] end
  end, self, nil
end

Headers.__len = function(self) return #self[ENTRIES] end
Headers.__name = "ato.http.headers"

-- "HTTP/1.1 200 OK\nName: value\n..." -> reason, headers
local function parse_head(head)
  local reason, entries = nil, {}
  for line in head:gmatch("[^\n]+") do
    if reason == nil and line:find("^HTTP/") then
      reason = line:match("^HTTP/[%d.]+ %d+ ?(.*)$") or ""
    else
      local name, value = line:match("^([^:%s]+):%s*(.-)%s*$")
      if name then entries[#entries + 1] = {name, value} end
    end
  end
  return reason or "", new_headers(entries)
end

-- }======================================================

-- {====================================================== responses

local Response = {}
Response.__name = "ato.http.response"

-- headers and reason are parsed from the raw head on first use: most
-- callers read only status and body.
function Response.__index(self, k)
  if k == "headers" or k == "reason" then
    local reason, headers = parse_head(rawget(self, "head") or "")
    rawset(self, "reason", reason)
    rawset(self, "headers", headers)
    return rawget(self, k)
  end
  return Response[k]
end

--- resp:json() -> the decoded body, or nil, err (kind "json")
function Response:json()
  local ok, value = pcall(cjson.decode, self.body)
  if ok then return value end
  return nil, ato.err("json", ("%s: body is not JSON: %s"):format(redact.text(self.url), value))
end

function Response:__tostring()
  return ("ato.http.response %d %s (%d bytes)"):format(self.status, (redact.text(self.url)), #self.body)
end

-- The table from ato.httpc becomes the response (status, head, body, url,
-- ip, elapsed, redirects, http_version) with ok added.
local function wrap_response(raw)
  raw.ok = raw.status >= 200 and raw.status < 300
  return setmetatable(raw, Response)
end

-- }======================================================

-- {====================================================== building requests

local function url_encode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end
M.url_encode = url_encode

-- {a = 1, b = {"x", "y"}} -> "a=1&b=x&b=y" (keys sorted: stable URLs)
local function encode_query(q)
  local keys, parts = {}, {}
  for k in pairs(q) do keys[#keys + 1] = tostring(k) end
  sort(keys)
  for _, k in ipairs(keys) do
    local v = q[k]
    if v == nil then v = q[tonumber(k)] end
    if type(v) == "table" then
      for _, x in ipairs(v) do parts[#parts + 1] = url_encode(k) .. "=" .. url_encode(x) end
    elseif v ~= false then
      parts[#parts + 1] = url_encode(k) .. (v == true and "" or "=" .. url_encode(v))
    end
  end
  return concat(parts, "&")
end
M.encode_query = encode_query

-- "https://user:pw@Host/x" -> "host", "host:443" (the port made explicit,
-- IPv6 in brackets); nil when the URL is not http(s). Cached: playbooks hit
-- the same few URLs over and over.
local host_cache, host_cache_size = {}, 0

local function url_host(url)
  local hit = host_cache[url]
  if hit then return hit[1], hit[2] end
  local scheme, authority = url:match("^([hH][tT][tT][pP][sS]?)://([^/?#]*)")
  if not authority then return nil end
  authority = authority:gsub("^.*@", ""):lower()
  local host, port = authority:match("^%[(.-)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:]*):?(%d*)$") end
  if not host then return nil end
  if port == "" then port = scheme:lower() == "https" and "443" or "80" end
  local key = (host:find(":", 1, true) and "[" .. host .. "]" or host) .. ":" .. port
  if host_cache_size >= 4096 then host_cache, host_cache_size = {}, 0 end
  host_cache[url], host_cache_size = {host, key}, host_cache_size + 1
  return host, key
end

local LOOPBACK = {["127.0.0.1"] = true, ["localhost"] = true, ["::1"] = true}

--- http.is_loopback(url) -> true when the URL's host (userinfo stripped,
--- IPv6 brackets handled, as curl reads it) is 127.0.0.1, localhost or ::1
function M.is_loopback(url)
  local host = url_host(tostring(url))
  return host ~= nil and LOOPBACK[host] == true
end

-- headers as {Name = "v"}, {Name = {"a", "b"}} or {{"Name", "v"}, ...}
local NO_HEADERS = setmetatable({}, {__newindex = function() error("internal: shared table") end})

-- One header line for curl: "Name: value"; "Name;" sends an empty value;
-- false gives "Name:", which removes a header curl would add itself.
local function header_line(name, value)
  if type(name) ~= "string" or not name:find("^[!#$%%&'*+.^_`|~%w-]+$") then
    misuse("bad header name %s", tostring(name))
  end
  if value == false then return name .. ":" end
  if type(value) == "number" then value = tostring(value) end
  if type(value) ~= "string" then misuse("header %s: value must be a string", name) end
  if value:find("[\r\n%z]") then misuse("header %s: value holds a line break or NUL", name) end
  if value == "" then return name .. ";" end
  return name .. ": " .. value
end

-- headers as {Name = "v"}, {Name = {"a", "b"}} or {{"Name", "v"}, ...}: a
-- list keeps its order; a map goes out sorted by name (stable requests),
-- each name's values in their order.
local function header_lines(h)
  if h == nil then return {}, NO_HEADERS end
  if type(h) ~= "table" then misuse("headers must be a table") end
  local lines, seen = {}, {}
  if h[1] ~= nil then
    for i, pair in ipairs(h) do
      if type(pair) ~= "table" or pair[2] == nil then misuse("headers[%d] must be a {name, value} pair", i) end
      lines[#lines + 1] = header_line(pair[1], pair[2])
      seen[tostring(pair[1]):lower()] = true
    end
    return lines, seen
  end
  local names = {}
  for k in pairs(h) do names[#names + 1] = k end
  for _, k in ipairs(names) do if type(k) ~= "string" then misuse("bad header name %s", tostring(k)) end end
  sort(names)
  for _, k in ipairs(names) do
    local v = h[k]
    if type(v) == "table" then
      for _, x in ipairs(v) do lines[#lines + 1] = header_line(k, x) end
    else
      lines[#lines + 1] = header_line(k, v)
    end
    seen[k:lower()] = true
  end
  return lines, seen
end

-- A number >= minimum; math.huge means "no limit" where that makes sense.
local function opt_number(opts, key, minimum)
  local v = opts[key]
  if v == nil then return DEFAULTS[key] end  -- the common case: cheap
  if type(v) ~= "number" or v ~= v or v < minimum then
    misuse("option '%s' must be a number >= %d", key, minimum)
  end
  return v
end

local function opt_string(opts, key)
  local v = opts[key]
  if v ~= nil and type(v) ~= "string" then misuse("option '%s' must be a string", key) end
  return v
end

-- Validates opts (misuse raises) and returns the transfer options for C,
-- or nil, err for a URL that is not http(s) (an expected failure: URLs
-- often come from data).
local function build(opts)
  if type(opts) ~= "table" then misuse("http.request expects a table of options") end
  local url = opts.url
  if type(url) ~= "string" then misuse("option 'url' must be a string") end
  local method = opts.method or ((opts.body or opts.json ~= nil) and "POST" or "GET")
  if type(method) ~= "string" or not method:find("^%a+$") then misuse("bad method %s", tostring(method)) end
  method = method:upper()
  url = url:gsub("#.*$", "")             -- fragments never go on the wire
  if opts.query ~= nil then
    if type(opts.query) ~= "table" then misuse("option 'query' must be a table") end
    local q = encode_query(opts.query)
    if q ~= "" then url = url .. (url:find("?", 1, true) and "&" or "?") .. q end
  end
  local host, authority = url_host(url)
  if not host or host == "" then
    return nil, ato.err("invalid", ("invalid URL (http or https expected): %s")
      :format(redact.text(url)))
  end
  local lines, seen = header_lines(opts.headers)
  local body = opts.body
  if body ~= nil and opts.json ~= nil then misuse("give 'body' or 'json', not both") end
  if opts.json ~= nil then
    body = json.encode(opts.json)           -- json.array() lists stay [] when empty
    if not seen["content-type"] then lines[#lines + 1] = "Content-Type: application/json" end
  elseif body ~= nil and type(body) ~= "string" then
    misuse("option 'body' must be a string")
  end
  if opts.verify == false and not LOOPBACK[host] then
    misuse("verify = false is only allowed for loopback hosts, not %s", host)
  end
  -- (with verify = false, redirects are not followed: the next host could
  -- be anything)
  return {
    method = method, url = url, headers = lines, body = body,
    timeout = opt_number(opts, "timeout", 0),
    connect_timeout = opt_number(opts, "connect_timeout", 0),
    max_body = opt_number(opts, "max_body", 0),
    max_redirects = opt_number(opts, "max_redirects", 0),
    follow_redirects = opts.follow_redirects ~= false,
    body_file = opt_string(opts, "body_file"), ca_file = opt_string(opts, "ca_file"),
    verify = opts.verify ~= false,
  }, host, authority
end

-- }======================================================

-- {====================================================== per-host limits

local limits = {}                       -- "host" or "host:port" -> limiter

local Limiter = {}
Limiter.__index = Limiter

-- Waits for a free slot and a token; returns a <close> value releasing it.
function Limiter:acquire()
  while self.concurrency and self.inflight >= self.concurrency do
    self.slots:wait()
  end
  self.inflight = self.inflight + 1
  local release = setmetatable({}, {__close = function()
    self.inflight = self.inflight - 1
    self.slots:signal()
  end})
  if self.rate then
    local ok, e = pcall(function()
      while true do
        local now = ato.now()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1 then self.tokens = self.tokens - 1 return end
        ato.sleep((1 - self.tokens) / self.rate)
      end
    end)
    if not ok then
      getmetatable(release).__close()   -- cancelled while waiting for a token
      error(e, 0)
    end
  end
  return release
end

--- http.limit(host, {concurrency=, rate=, burst=}) caps requests to host
-- (a name, or "name:port"): at most `concurrency` in flight and `rate` per
-- second, with bursts up to `burst` (default: rate, at least 1). Retries
-- count too. http.limit(host, nil) removes the limit.
function M.limit(host, opts)
  if type(host) ~= "string" or host == "" then misuse("bad argument #1 to 'limit' (host expected)") end
  host = host:lower():gsub("^%[(.-)%]$", "%1")   -- "[::1]" alone is a host
  if opts == nil then limits[host] = nil return end
  if type(opts) ~= "table" then misuse("bad argument #2 to 'limit' (table expected)") end
  local c, r = opts.concurrency, opts.rate
  if c ~= nil and (math.type(c) ~= "integer" or c < 1) then misuse("concurrency must be an integer >= 1") end
  if r ~= nil and (type(r) ~= "number" or r <= 0) then misuse("rate must be a number > 0") end
  local burst = opts.burst or (r and max(1, r))
  if burst ~= nil and (type(burst) ~= "number" or burst < 1) then misuse("burst must be a number >= 1") end
  limits[host] = setmetatable({
    concurrency = c, inflight = 0, slots = ato.cond(),
    rate = r, burst = burst, tokens = burst or 0, stamp = ato.now(),
  }, Limiter)
end

-- }======================================================

-- {====================================================== retries

local IDEMPOTENT = {GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true, TRACE = true}

local MONTHS = {Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6,
                Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12}

--- http.parse_date("Sun, 06 Nov 1994 08:49:37 GMT") -> epoch seconds, or nil
function M.parse_date(s)
  local d, mon, y, H, Mi, S = tostring(s):match("^%a+, (%d%d?) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if not d or not MONTHS[mon] then return nil end
  d, y, H, Mi, S = tonumber(d), tonumber(y), tonumber(H), tonumber(Mi), tonumber(S)
  if d < 1 or d > 31 or H > 23 or Mi > 59 or S > 60 then return nil end
  return calendar.utc(y, MONTHS[mon], d, H, Mi, S)
end

-- What the server asks us to wait: Retry-After (seconds or a date), or
-- SendGrid's X-RateLimit-Reset (epoch seconds). nil when it says nothing.
local function server_delay(resp)
  local ra = resp.headers:get("retry-after")
  if ra then
    local secs = tonumber(ra)
    if secs then return max(0, secs) end
    local at = M.parse_date(ra)
    if at then return max(0, at - ato.time()) end
  end
  local reset = tonumber(resp.headers:get("x-ratelimit-reset") or "")
  if reset and resp.status == 429 then return max(0, reset - ato.time()) end
  return nil
end

-- Transport failures worth another try besides connect and timeout: an
-- empty reply, a reset while sending or receiving, a truncated body, an
-- HTTP/2 stream error (curl codes 52, 55, 56, 18, 16, 92) — typically a
-- kept-alive connection the server had just closed.
local TRANSIENT = {[52] = true, [55] = true, [56] = true, [18] = true, [16] = true, [92] = true}

local function retryable(method, retry_post, resp, err)
  if not (IDEMPOTENT[method] or retry_post) then return false end
  if err then
    return err.kind == "connect" or err.kind == "timeout" or TRANSIENT[err.curl_code] == true
  end
  return resp.status == 429 or (resp.status >= 500 and resp.status <= 599)
end

-- Full jitter (AWS architecture blog): uniform in [0, min(cap, base*2^n)].
local function backoff(attempt, base, cap)
  return random() * min(cap, base * 2 ^ (attempt - 1))
end

-- }======================================================

-- "host:port" first (ports made explicit, IPv6 in brackets), then "host".
local function limiter_for(host, authority)
  return limits[authority] or limits[host]
end

local function attempts_done(resp, err, attempt)
  if resp then resp.attempts = attempt elseif err then err.attempts = attempt end
  return resp, err
end

local function perform(opts)
  local req, host, authority = build(opts)
  if not req then return nil, host end
  local retries = opts.retries or 0
  if math.type(retries) ~= "integer" or retries < 0 then misuse("option 'retries' must be an integer >= 0") end
  local max_delay = opt_number(opts, "max_retry_delay", 0)
  local attempt = 0
  while true do
    attempt = attempt + 1
    local raw, err
    do
      local limiter = limiter_for(host, authority)
      local slot <close> = limiter and limiter:acquire()
      raw, err = httpc.request(req)
    end
    local resp = raw and wrap_response(raw)
    if attempt > retries or not retryable(req.method, opts.retry_post, resp, err) then
      return attempts_done(resp, err, attempt)
    end
    -- the server's wait is honoured in full or not at all; our own backoff
    -- is capped
    local asked = resp and server_delay(resp)
    if asked and asked > max_delay then return attempts_done(resp, err, attempt) end
    local delay = min(backoff(attempt, DEFAULTS.retry_base, DEFAULTS.retry_cap), max_delay)
    ato.sleep(max(asked or 0, delay))
  end
end

local THIS_FILE = debug.getinfo(1, "S").source

-- The stack level of the first function outside this module: where misuse
-- is reported (tail calls make a fixed level unreliable).
local function caller_level()
  local level = 3
  while true do
    local info = debug.getinfo(level, "S")
    if info == nil or (info.source ~= THIS_FILE and info.what ~= "C") then return level - 1 end
    level = level + 1
  end
end

-- Runs perform, turning misuse into an error at the caller's line.
local function request_at(opts)
  local results = table.pack(pcall(perform, opts))
  if results[1] then return table.unpack(results, 2, results.n) end
  local e = results[2]
  if getmetatable(e) == MISUSE then error(e.message, caller_level()) end
  error(e, 0)                           -- cancellation and other errors as they are
end

--- http.request(opts) -> response, or nil, err
-- opts: url, method, query, headers, body | json, timeout, connect_timeout,
-- retries, retry_post, max_retry_delay, follow_redirects, max_redirects,
-- max_body, body_file, ca_file, verify (false only for loopback hosts).
function M.request(opts)
  return request_at(opts)
end

-- Shortcuts: http.get(url [, opts]), http.post(url [, opts]), ...
local function shortcut(method)
  return function(url, opts)
    local o = {url = url, method = method}
    if opts ~= nil then
      if type(opts) ~= "table" then error("bad argument #2 (table of options expected)", 2) end
      for k, v in pairs(opts) do if k ~= "url" and k ~= "method" then o[k] = v end end
    end
    return request_at(o)
  end
end

M.get, M.head, M.post = shortcut("GET"), shortcut("HEAD"), shortcut("POST")
M.put, M.patch, M.delete = shortcut("PUT"), shortcut("PATCH"), shortcut("DELETE")

--- http.serve{host=, port=, handler=, ...} -> server (see ato.http.server)
function M.serve(opts)
  return require("ato.http.server").serve(opts)
end

return M
