-- ato.log: structured logging to stderr.
--
--   local log = require "ato.log"
--   log.info("revoked key", {key_id = id, scopes = 3})
--
-- Human form on a terminal ("21:03:04.123 INFO  revoked key key_id=... "),
-- JSON lines otherwise or with `--log-format json` (one object per line:
-- time, level, msg, then the fields). Secrets never reach the output: a
-- field whose name says it holds one (password, api_key, authorization...)
-- is replaced by its redacted form, and every string is scanned for known
-- secret formats (SendGrid keys, tokens, private keys...), see ato.redact.

local core = require "ato.core"
local redact = require "ato.redact"
local cjson = require "cjson"

local type, tostring, pairs, next = type, tostring, pairs, next
local concat, sort = table.concat, table.sort
local getmetatable = getmetatable

local LEVELS = {debug = 10, info = 20, warn = 30, error = 40}
local MAX_DEPTH = 8

local M = {}

local config = core.config()
local threshold = LEVELS[config.log_level] or LEVELS.info
local format = config.log_format
if format == "auto" then format = core.isatty(2) and "human" or "json" end
local color = format == "human" and core.isatty(2) and not os.getenv("NO_COLOR")

--- log.set_level("debug"|"info"|"warn"|"error")
function M.set_level(level)
  threshold = LEVELS[level] or error("unknown log level '" .. tostring(level) .. "'", 2)
end

--- log.set_format("human"|"json")
function M.set_format(fmt)
  if fmt ~= "human" and fmt ~= "json" then
    error("log format must be 'human' or 'json', not '" .. tostring(fmt) .. "'", 2)
  end
  format = fmt
end

function M.enabled(level) return (LEVELS[level] or 0) >= threshold end

-- {====================================================== redaction

local sanitize

-- Every leaf under a secret-named key is a secret, whatever its own name.
local function secret_leaf(v)
  local t = type(v)
  if t == "string" then return redact.value(v) end
  if t == "number" then return redact.value(tostring(v)) end
  if t == "boolean" or t == "nil" then return v end
  return "[redacted]"
end

local function protected_tostring(v)
  local ok, s = pcall(tostring, v)
  return ok and type(s) == "string" and s or "(" .. type(v) .. ")"
end

-- Keys are printed too: a secret used as a key is redacted like a value.
local function safe_key(k)
  if math.type(k) == "integer" then return k end
  return (redact.text(type(k) == "string" and k or protected_tostring(k)))
end

local function sanitize_table(v, depth, seen, secret)
  if seen[v] then return "[cycle]" end
  if depth > MAX_DEPTH then return "[too deep]" end
  seen[v] = true
  local out = {}
  for k, x in pairs(v) do
    local key = safe_key(k)
    local hidden = secret or (type(k) == "string" and redact.is_secret_name(k))
    if hidden and type(x) ~= "table" then out[key] = secret_leaf(x)
    else out[key] = sanitize(x, depth + 1, seen, hidden) end
  end
  seen[v] = nil
  return out
end

-- A copy of v that is safe to print and to encode as JSON.
function sanitize(v, depth, seen, secret)
  local t = type(v)
  if t == "string" then return secret and redact.value(v) or (redact.text(v)) end
  if t == "number" or t == "boolean" or t == "nil" then return v end
  if t == "table" then
    local mt = getmetatable(v)
    if mt and mt.__tostring and not (mt.__name == "ato.error") then
      return sanitize(protected_tostring(v), depth, seen, secret)
    end
    return sanitize_table(v, depth or 0, seen or {}, secret)
  end
  return (redact.text(protected_tostring(v)))   -- function, userdata, thread
end

--- log.redacted(value) -> a copy with every secret redacted (also for REPLs)
function M.redacted(v) return sanitize(v, 0, {}, false) end

-- }======================================================

-- {====================================================== formatting

local function by_text(a, b) return tostring(a) < tostring(b) end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  sort(keys, by_text)                   -- integer and string keys mix
  return keys
end

local function iso_time(now)
  local secs = math.floor(now)
  return os.date("!%Y-%m-%dT%H:%M:%S", secs) .. (".%03dZ"):format((now - secs) * 1000 // 1)
end

local json_safe = cjson.new()
json_safe.encode_sparse_array(true)
json_safe.encode_invalid_numbers("null")

local function encode(v)
  local ok, s = pcall(json_safe.encode, v)
  return ok and s or json_safe.encode(tostring(v))
end

local RESERVED = {time = true, level = true, msg = true}

local function json_line(level, now, msg, fields)
  local parts = {'{"time":', encode(iso_time(now)), ',"level":', encode(level),
                 ',"msg":', encode(msg)}
  for _, k in ipairs(sorted_keys(fields)) do
    local name = RESERVED[k] and "field_" .. k or tostring(k)
    parts[#parts + 1] = "," .. encode(name) .. ":" .. encode(fields[k])
  end
  parts[#parts + 1] = "}"
  return concat(parts)
end

-- One log record is one line: control characters (newlines, terminal
-- escapes) in the message or keys could forge or hide lines.
local function escape_controls(s)
  return (s:gsub("%c", function(c)
    return c == "\n" and "\\n" or c == "\t" and "\\t" or ("\\x%02x"):format(c:byte())
  end))
end

local function human_value(v)
  if type(v) == "table" then return encode(v) end
  local s = tostring(v)
  if s == "" or s:find('[%s"=%c]') then return (("%q"):format(s):gsub("\\\n", "\\n")) end
  return s
end

local COLORS = {debug = "\27[2m", info = "\27[36m", warn = "\27[33m", error = "\27[31m"}

local function human_line(level, now, msg, fields)
  local secs = math.floor(now)
  local stamp = os.date("%H:%M:%S", secs) .. (".%03d"):format((now - secs) * 1000 // 1)
  local tag = ("%-5s"):format(level:upper())
  if color then tag = COLORS[level] .. tag .. "\27[0m" end
  local parts = {stamp, tag, escape_controls(msg)}
  for _, k in ipairs(sorted_keys(fields)) do
    parts[#parts + 1] = escape_controls(tostring(k)) .. "=" .. human_value(fields[k])
  end
  return concat(parts, " ")
end

-- }======================================================

local writer                          -- nil: stderr (see set_writer)

local function emit(level, msg, fields, bound)
  if LEVELS[level] < threshold then return end
  local merged = {}
  if bound then for k, v in pairs(bound) do merged[k] = v end end
  if type(fields) == "table" then for k, v in pairs(fields) do merged[k] = v end
  elseif fields ~= nil then merged.value = fields end
  local safe = next(merged) and sanitize(merged, 0, {}, false) or merged
  local text = sanitize(type(msg) == "string" and msg or tostring(msg), 0, {}, false)
  local now = core.time()
  local line = format == "json" and json_line(level, now, text, safe)
                                 or human_line(level, now, text, safe)
  if writer then writer(line .. "\n") else io.stderr:write(line, "\n") end
end

--- log.set_writer(fn | nil): where lines go instead of stderr (the REPL
--- shows them above the line being edited); nil restores stderr.
function M.set_writer(fn)
  if fn ~= nil and type(fn) ~= "function" then error("bad argument #1 to 'set_writer' (function expected)", 2) end
  writer = fn
end

local function make(bound)
  local logger = {}
  for level in pairs(LEVELS) do
    logger[level] = function(msg, fields) emit(level, msg, fields, bound) end
  end
  --- logger.child(fields) -> a logger adding these fields to every line
  function logger.child(fields)
    local merged = {}
    if bound then for k, v in pairs(bound) do merged[k] = v end end
    for k, v in pairs(fields or {}) do merged[k] = v end
    return make(merged)
  end
  return logger
end

local root = make(nil)
for k, v in pairs(root) do M[k] = v end

return M
