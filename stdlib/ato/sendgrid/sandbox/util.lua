-- ato.sendgrid.sandbox.util: what every part of the sandbox shares: the
-- seeded PRNG, SendGrid's response shapes, the query string, paging, dates.
local cjson = require "cjson"
local calendar = require "ato.calendar"
local json = require "ato.json"

local M = {}

-- {====================================================== deterministic data

--- A small PRNG (xorshift32) so that a seed gives the same account anywhere:
--- r(n) -> an integer in [0, n).
function M.rng(seed)
  local x = (seed % 0xffffffff) + 1
  return function(n)
    x = x ~ ((x << 13) & 0xffffffff)
    x = x ~ (x >> 17)
    x = x ~ ((x << 5) & 0xffffffff)
    return x % n
  end
end

--- r(0..1) as a float: the model's dice.
function M.chance(r)
  return r(1000000) / 1000000
end

local ALPHA = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

function M.chars(r, n)
  local t = {}
  for i = 1, n do
    local k = r(#ALPHA) + 1
    t[i] = ALPHA:sub(k, k)
  end
  return table.concat(t)
end

--- A 22-character event id (sg_event_id): two draws and a sequence
--- number, formatted at once (a character at a time cost a 1,000-recipient
--- send 20 ms).
local seq = 0
function M.event_id(r)
  seq = (seq + 1) & 0xffffff
  return ("%08x%06x%08x"):format(r(0xffffffff), seq, r(0xffffffff))
end

--- Letters and digits only (batch ids, message ids).
function M.alnum(r, n)
  local t = {}
  for i = 1, n do
    local k = r(62) + 1
    t[i] = ALPHA:sub(k, k)
  end
  return table.concat(t)
end

--- n characters of ALPHA from /dev/urandom (64 symbols: each byte maps
--- evenly). For keys: they must not follow from the scenario's seed (the
--- seed is public) nor from a key seen before (xorshift's state would).
function M.random_chars(n)
  local f = assert(io.open("/dev/urandom", "rb"))
  local bytes = f:read(n)
  f:close()
  return (bytes:gsub(".", function(b)
    local k = b:byte() % 64 + 1
    return ALPHA:sub(k, k)
  end))
end

--- An id in the shape of a version-4 UUID (webhook ids).
function M.uuid(r)
  return ("%s-%s-4%s-a%s-%s"):format(M.hex(r, 8), M.hex(r, 4), M.hex(r, 3), M.hex(r, 3), M.hex(r, 12))
end

--- A lower-case hex id of n digits (message ids, webhook ids).
function M.hex(r, n)
  local t = {}
  for i = 1, n do t[i] = ("%x"):format(r(16)) end
  return table.concat(t)
end

-- }======================================================

-- {====================================================== responses

M.array = json.array

--- SendGrid's error body. The spec types `field` as a string: it is left
--- out when no field is at fault (SendGrid's own 429 body says null; that
--- one keeps it, as the rate-limit docs show).
function M.errors(status, message, field)
  local e = {message = message, field = field}
  if status == 429 then e.field = cjson.null end
  return {status = status, headers = {["Content-Type"] = "application/json"},
          body = json.encode{errors = {e}}}
end

function M.json(status, value, headers)
  headers = headers or {}
  headers["Content-Type"] = "application/json"
  return {status = status, headers = headers, body = json.encode(value)}
end

function M.no_content() return {status = 204, body = ""} end

local function hex_char(h) return string.char(tonumber(h, 16)) end

local function unescape(v)
  return (v:gsub("+", " "):gsub("%%(%x%x)", hex_char))
end

--- A path segment's text (%XX decoded; a + stays a +, as in an address).
function M.unescape(v)
  return (v:gsub("%%(%x%x)", hex_char))
end

--- The query string as a table; a name given more than once (SendGrid's
--- arrays: ?categories=a&categories=b) collects into a list in req.multi.
function M.query(req)
  if req.args then return req.args end
  local t, multi = {}, {}
  for pair in (req.query or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    k, v = unescape(k), unescape(v)
    t[k] = v
    multi[k] = multi[k] or {}
    table.insert(multi[k], v)
  end
  req.args, req.multi = t, multi
  return t
end

--- All values of a repeated query parameter.
function M.query_list(req, name)
  M.query(req)
  return req.multi[name] or {}
end

--- The JSON body (whole numbers as integers: send_at must be one), or nil.
function M.body_of(req)
  local ok, v = pcall(json.decode, req.body or "")
  if not ok or type(v) ~= "table" then return nil end
  return v
end

function M.has(list, x)
  for _, v in ipairs(list or {}) do if v == x then return true end end
  return false
end

--- A non-negative integer query parameter, or the default; false when the
--- value is there but not such a number (the caller answers 400).
function M.count_param(req, name, default)
  local v = M.query(req)[name]
  if v == nil or v == "" then return default end
  local n = math.tointeger(tonumber(v))
  -- bounded: offset + limit must not wrap around, nor a loop run 2^63 times
  if not n or n < 0 or n > 0x7fffffff then return false end
  return n
end

--- The limit and offset of a list query -> limit, offset | nil, the 400.
function M.limit_offset(req, default_limit)
  local limit = M.count_param(req, "limit", default_limit)
  local offset = M.count_param(req, "offset", 0)
  if not limit or not offset then
    return nil, M.errors(400, "limit and offset must be whole numbers", "limit")
  end
  return limit, offset
end

--- The items of list whose `field` is `value` (all of them when value is nil).
function M.where(list, field, value)
  if value == nil then return list end
  local only = {}
  for _, x in ipairs(list) do if x[field] == value then only[#only + 1] = x end end
  return only
end

--- A page of `list` by limit/offset, with a Link header as SendGrid sends
--- it (absolute URLs). `at(i)` reads item i when the list is served in
--- another order (newest first). -> items, headers | nil, the 400 response
--- for a bad limit/offset.
function M.page(req, list, max, at)
  local limit, offset = M.limit_offset(req, max)
  if not limit then return nil, offset end
  limit = math.min(limit, max)
  local out = {}
  for i = offset + 1, math.min(#list, offset + limit) do out[#out + 1] = at and at(i) or list[i] end
  -- the links keep the request's other parameters (filters), in order
  local keep = {}
  for pair in (req.query or ""):gmatch("[^&]+") do
    local k = pair:match("^([^=]*)")
    if k ~= "limit" and k ~= "offset" then keep[#keep + 1] = pair end
  end
  keep[#keep + 1] = "limit=" .. limit
  local base = ("http://%s%s?%s&offset="):format(req:header("host") or "127.0.0.1", req.path,
                                                 table.concat(keep, "&"))
  local links = {('<%s%d>; rel="first"'):format(base, 0)}
  if offset + limit < #list then links[#links + 1] = ('<%s%d>; rel="next"'):format(base, offset + limit) end
  if offset > 0 then links[#links + 1] = ('<%s%d>; rel="prev"'):format(base, math.max(0, offset - limit)) end
  return M.array(out), {Link = table.concat(links, ", ")}
end

-- }======================================================

-- {====================================================== dates

--- "YYYY-MM-DD" of epoch seconds (UTC).
function M.day(t)
  return os.date("!%Y-%m-%d", math.floor(t))
end

--- Epoch seconds of a "YYYY-MM-DD" (UTC midnight), or nil if not one.
function M.parse_day(s)
  local y, m, d = tostring(s or ""):match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  if not y then return nil end
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  if m < 1 or m > 12 or d < 1 or d > 31 then return nil end
  local t = calendar.utc(y, m, d, 0, 0, 0)
  if M.day(t) ~= s then return nil end                  -- 2026-02-30
  return t
end

-- }======================================================

--- A loose e-mail check, as strict as SendGrid's "does not contain a valid
--- address": one @, something either side, a dot in the domain, no blanks.
function M.valid_email(s)
  return type(s) == "string" and #s <= 320 and s:match("^[^%s@,;<>]+@[^%s@,;<>]+%.[^%s@,;<>]+$") ~= nil
end

return M
