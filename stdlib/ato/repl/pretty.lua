-- ato.repl.pretty: the console's printer for values.
--
--   local pretty = require "ato.repl.pretty"
--   pretty.format({1, 2, name = "x"})          --> {1, 2, name = "x"}
--   pretty.values(select("#", ...), ...)       --> formats joined by tabs
--
-- pretty.format(v [, opts]) -> string (no trailing newline). Options, each
-- defaulting to the field of the same name in pretty.defaults (which the
-- REPL may change, say width to the terminal's):
--   width = 80        a table fits on one line (`{1, 2, 3}`, `{a = 1}`) when
--                     the line stays within width columns, else one entry
--                     per line, indented by 2 spaces, each with a comma
--   depth = 6         tables nested deeper are cut: `{... 12 entries}`
--   max_items = 100   entries shown per table; the rest are counted on a
--                     last line `-- 1234 more` (a cut table is never on
--                     one line)
--   max_string = 200  bytes shown of a string; the rest are counted:
--                     `"abc"... (12345 more bytes)` (never inside a UTF-8
--                     character)
--   redact = true     secrets are redacted (see below)
-- pretty.values(n, ...) -> the n values formatted with the defaults and
-- joined by tabs, as lua5.4's REPL prints results; "" when n is 0.
--
-- What the text looks like:
--   - nil, booleans, numbers as Lua's tostring prints them (`1`, `1.0`,
--     `1e+100`, `inf`, `-nan`), computed without calling any metamethod.
--   - strings, at the top level too, always quoted: `"a \"b\"\n"`. \ and "
--     are escaped, control bytes as \n \t \r \a \b \f \v or \xNN (also
--     \x00), bytes that are not valid UTF-8 as \xNN, and valid UTF-8 as it
--     is except invisible or layout-changing characters (C1 controls,
--     zero-width, bidi controls, line/paragraph separators, BOM), as
--     \u{XXXX}. So the text is a valid Lua literal and cannot drive the
--     terminal. Unquoted text (a __tostring result, a chunk name) gets the
--     same escapes except for \ and ".
--   - tables: the array part (keys 1..n while there is no hole) first
--     without keys, then the other keys sorted: numbers ascending, strings
--     ascending (bytewise), false then true, then any other keys by their
--     formatted text (ties keep next()'s order). Identifier-like string
--     keys are bare (`name = `), other keys bracketed (`["a b"] = `,
--     `[1.5] = `, `[true] = `, `[{1, 2}] = `).
--   - a table met a second time, through a cycle or because it is shared,
--     is not printed again: its first occurrence gets a label `<1>{...}`
--     and every later one reads `<ref 1>`. Labels are numbered in the
--     order they appear in the text and never show addresses, so the
--     output is deterministic. A table cut by depth is not an occurrence
--     (it shows in full where it next appears within the depth).
--   - a table whose metatable has __tostring: `<result>`, the contents are
--     not shown (the type chose how it wants to be seen); with a __name
--     that the result does not start with, `<name: result>`. A failing
--     __tostring gives `<table: error in __tostring>` (`<name: ...>`).
--   - userdata: `<result of __tostring>` or `<__name>` or `<userdata>`
--     (a task: `<ato.task 2 (done)>`); light userdata:
--     `<light userdata 0x...>` (its value is that pointer), cjson.null as
--     `cjson.null`. Functions: `function: builtin` (C) or
--     `function: file.lua:12` (short_src, linedefined; a main chunk without
--     the line). Threads: `thread: suspended` (coroutine.status).
--
-- Only __tostring is ever called, under pcall (and __name read), with
-- rawget/next everywhere else: __index, __pairs, __len, __eq, __lt... of
-- the values printed never run. Formatting never raises on a value: if
-- something still goes wrong the result is `<error formatting table: ...>`.
--
-- Redaction follows ato.log's rules (DESIGN.md, secrets hygiene): every
-- string (values, keys, __tostring results, names, chunk names) goes through
-- redact.text, which replaces the secrets it recognises (SendGrid keys,
-- tokens, `password=...`) by their redacted form (prefix…[fp:fingerprint]).
-- Under a key for which redact.is_secret_name(key) holds (password, api_key,
-- authorization, ...), at any depth below it, strings and numbers are secret
-- whatever their text: shown through redact.value (`"…[fp:f52fbd32]"`;
-- numbers unquoted); an empty string stays `""`. __tostring results there
-- are redacted whole too; functions and threads show as usual (their text
-- never holds the value). Strings are redacted before being cut. With
-- redact = false everything is shown as it is.

local redact = require "ato.redact"

local type, next, rawget, rawequal, pcall, tostring, select =
      type, next, rawget, rawequal, pcall, tostring, select
local mtype, huge = math.type, math.huge
local getmetatable, getinfo, setuservalue = debug.getmetatable, debug.getinfo, debug.setuservalue
local costatus = coroutine.status
local fmt, concat, sort = string.format, table.concat, table.sort
local ulen, ucodepoint = utf8.len, utf8.codepoint

local M = {}

--- The options used when format's opts (or values) do not give them.
M.defaults = {width = 80, depth = 6, max_items = 100, max_string = 200, redact = true}

-- {====================================================== text

-- Lua's own number format (lobject.c tostringbuff), without tostring.
local function number_text(x)
  if mtype(x) == "integer" then return fmt("%d", x) end
  local s = fmt("%.14g", x)
  if s:find("^[-0-9]*$") then s = s .. ".0" end
  return s
end

local ESCAPES = {["\a"] = "\\a", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r",
                 ["\t"] = "\\t", ["\v"] = "\\v", ['"'] = '\\"', ["\\"] = "\\\\"}

local function escape_byte(c) return ESCAPES[c] or fmt("\\x%02x", c:byte()) end

-- Code points that are invisible or rearrange what the terminal shows.
local function invisible(cp)
  return cp <= 0x9F or (cp >= 0x200B and cp <= 0x200F) or (cp >= 0x2028 and cp <= 0x202E)
      or (cp >= 0x2060 and cp <= 0x2069) or cp == 0xFEFF
end

-- A run of bytes >= 0x80: valid UTF-8 characters kept, the rest escaped.
local function escape_high(run)
  local out, i, n = {}, 1, #run
  while i <= n do
    local b = run:byte(i)
    local len = (b >= 0xC2 and b <= 0xDF) and 2 or (b >= 0xE0 and b <= 0xEF) and 3
                or (b >= 0xF0 and b <= 0xF4) and 4 or 1
    local seq = run:sub(i, i + len - 1)
    if len > 1 and #seq == len and ulen(seq) == 1 then
      local cp = ucodepoint(seq)
      out[#out + 1] = invisible(cp) and fmt("\\u{%X}", cp) or seq
      i = i + len
    else
      out[#out + 1] = fmt("\\x%02x", b)
      i = i + 1
    end
  end
  return concat(out)
end

-- quoted: also escape \ and " (the body of a "..." literal).
local function escape(s, quoted)
  if not s:find(quoted and '[%c"\\\128-\255]' or "[%c\128-\255]") then return s end
  s = s:gsub(quoted and '[%c"\\]' or "%c", escape_byte)
  return (s:gsub("[\128-\255]+", escape_high))
end

local function is_continuation(b) return b ~= nil and b >= 0x80 and b <= 0xBF end

-- s cut to at most max bytes, not inside a UTF-8 character; and how many
-- bytes were left out.
local function cut(s, max)
  if #s <= max then return s, 0 end
  local k = max
  while k > 0 and k > max - 3 and is_continuation(s:byte(k + 1)) do k = k - 1 end
  if is_continuation(s:byte(k + 1)) then k = max end     -- not UTF-8 anyway
  return s:sub(1, k), #s - k
end

local function more_bytes(n) return n > 0 and fmt("... (%d more bytes)", n) or "" end

-- Display width of text this module produced (valid UTF-8).
local function width_of(s) return ulen(s) or #s end

local RESERVED = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or
            repeat return then true until while]]):gmatch("%a+") do RESERVED[w] = true end

local function is_identifier(s) return s:find("^[%a_][%w_]*$") and not RESERVED[s] end

-- }======================================================

-- {====================================================== building
--
-- A value becomes a node: a string (a leaf, final text), a table node
-- {entries = {{key = text|node, bare = bool, value = node}, ...}, more = n,
-- labelled = bool, label = n} or a reference {ref = table node}.

local P = {}
P.__index = P

function P:text(s) return self.redact and (redact.text(s)) or s end

-- A string value, quoted; secret: it is known to be a secret.
function P:string(s, secret)
  if self.redact then
    if secret then
      if s ~= "" then s = redact.value(s) end
    else
      s = redact.text(s)
    end
  end
  local body, more = cut(s, self.max_string)
  return '"' .. escape(body, true) .. '"' .. more_bytes(more)
end

-- Unquoted text (names, chunk names, __tostring results), redacted.
function P:bare(s, secret)
  if self.redact then
    if secret then s = redact.value(s) else s = redact.text(s) end
  end
  local body, more = cut(s, self.max_string)
  return escape(body, false) .. more_bytes(more)
end

local function meta_name(mt)
  local name = mt and rawget(mt, "__name")
  return type(name) == "string" and name or nil
end

-- The text of a table or userdata with a __tostring metamethod, or nil
-- when it has none.
function P:tostring_text(v, mt, kind, secret)
  if not mt or rawget(mt, "__tostring") == nil then return nil end
  local name = meta_name(mt)
  local shown = name and self:bare(name) or kind
  local ok, s = pcall(tostring, v)
  if not ok or type(s) ~= "string" then return "<" .. shown .. ": error in __tostring>" end
  if name and s:sub(1, #name) ~= name then
    return "<" .. shown .. ": " .. self:bare(s, secret) .. ">"
  end
  return "<" .. self:bare(s, secret) .. ">"
end

function P:function_text(f)
  local ok, info = pcall(getinfo, f, "S")
  if not ok or not info or info.what == "C" then return "function: builtin" end
  local src = self:bare(info.short_src or "?")
  if info.what == "main" then return "function: " .. src end
  return "function: " .. src .. ":" .. number_text(info.linedefined or 0)
end

function P:userdata_text(u, secret)
  -- debug.setuservalue(u, nil, 0) changes nothing; it only rejects light userdata
  if not pcall(setuservalue, u, nil, 0) then
    local cjson = package.loaded.cjson
    if type(cjson) == "table" and rawequal(rawget(cjson, "null"), u) then return "cjson.null" end
    return "<light userdata " .. fmt("%p", u) .. ">"
  end
  local mt = getmetatable(u)
  local text = self:tostring_text(u, mt, "userdata", secret)
  if text then return text end
  local name = meta_name(mt)
  return "<" .. (name and self:bare(name) or "userdata") .. ">"
end

local function count_entries(t)
  local n = 0
  for _ in next, t do n = n + 1 end
  return n
end

local KEY_RANK = {number = 1, string = 2, boolean = 3}

local function key_order(texts)
  return function(a, b)
    local ra, rb = KEY_RANK[type(a)] or 4, KEY_RANK[type(b)] or 4
    if ra ~= rb then return ra < rb end
    if ra <= 2 then return a < b end
    if ra == 3 then return b and not a end
    return texts[a] < texts[b]
  end
end

local build, number_labels, flat

-- The key k of an entry: text for keys that print as they are, a node for
-- tables (wrapped in brackets at layout).
function P:key(k, depth)
  local tk = type(k)
  if tk == "string" then
    local s = self:text(k)
    if is_identifier(s) then return s, true end
    return "[" .. self:string(s, false) .. "]"
  elseif tk == "number" then
    return "[" .. number_text(k) .. "]"
  elseif tk == "boolean" then
    return k and "[true]" or "[false]"
  end
  local node = build(self, k, depth, false)
  if type(node) == "string" then return "[" .. node .. "]" end
  return node
end

-- A short, stable text to sort keys of other types.
function P:sort_text(k)
  local tk = type(k)
  if tk == "table" then
    local text = self:tostring_text(k, getmetatable(k), "table", false)
    if text then return text end
    -- its one-line text from a builder of its own, so this has no effect on
    -- the labels of the real output
    local probe = setmetatable({width = huge, depth = 2, max_items = 10, max_string = 40,
                                redact = self.redact, seen = {}}, P)
    local node = build(probe, k, 1, false)
    if type(node) == "string" then return node end
    node.more = 0                       -- allow one line
    number_labels(node, {n = 0})
    return flat(node, huge) or "{}"
  elseif tk == "function" then
    return self:function_text(k)
  elseif tk == "userdata" then
    return "userdata " .. self:userdata_text(k, false)
  end
  return tk
end

function P:table(t, depth, secret)
  local n = 0
  while rawget(t, n + 1) ~= nil do n = n + 1 end
  local keys = {}
  for k in next, t do
    if not (mtype(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  local node = {entries = {}, more = 0}
  self.seen[t] = node
  local entries, max = node.entries, self.max_items
  for i = 1, n do
    if #entries >= max then break end
    entries[#entries + 1] = {value = build(self, rawget(t, i), depth + 1, secret)}
  end
  if #entries < max and #keys > 0 then
    local texts = {}
    for _, k in ipairs(keys) do
      local tk = type(k)
      if tk ~= "number" and tk ~= "string" and tk ~= "boolean" then texts[k] = self:sort_text(k) end
    end
    sort(keys, key_order(texts))
    for _, k in ipairs(keys) do
      if #entries >= max then break end
      local key, bare = self:key(k, depth + 1)
      local hidden = secret or (self.redact and type(k) == "string" and redact.is_secret_name(k))
      entries[#entries + 1] = {key = key, bare = bare, value = build(self, rawget(t, k), depth + 1, hidden)}
    end
  end
  node.more = n + #keys - #entries
  return node
end

function build(self, v, depth, secret)
  local t = type(v)
  if t == "string" then return self:string(v, secret) end
  if t == "number" then
    if secret and self.redact then return (redact.value(number_text(v))) end
    return number_text(v)
  end
  if t == "nil" then return "nil" end
  if t == "boolean" then return v and "true" or "false" end
  if t == "function" then return self:function_text(v) end
  if t == "thread" then
    local ok, status = pcall(costatus, v)
    return "thread: " .. (ok and status or "?")
  end
  if t == "userdata" then return self:userdata_text(v, secret) end
  -- a table
  local text = self:tostring_text(v, getmetatable(v), "table", secret)
  if text then return text end
  local seen = self.seen[v]
  if seen then
    seen.labelled = true
    return {ref = seen}
  end
  if depth > self.depth then
    local count = count_entries(v)
    if count == 0 then return "{}" end
    return fmt("{... %d %s}", count, count == 1 and "entry" or "entries")
  end
  return self:table(v, depth, secret)
end

-- }======================================================

-- {====================================================== layout

-- Labels numbered in the order the text shows them (definitions come
-- before their references in a depth-first walk).
function number_labels(node, state)
  if type(node) ~= "table" or node.ref then return end
  if node.labelled then
    state.n = state.n + 1
    node.label = state.n
  end
  for _, e in ipairs(node.entries) do
    if type(e.key) == "table" then number_labels(e.key, state) end
    number_labels(e.value, state)
  end
end

local function prefix(node) return node.label and "<" .. node.label .. ">" or "" end

-- The one-line text of an entry, or nil.
local function flat_entry(e, cap)
  local value = flat(e.value, cap)
  if not value then return nil end
  if e.key == nil then return value end
  if e.bare then return e.key .. " = " .. value end
  local key = type(e.key) == "string" and e.key or flat(e.key, cap)
  if not key then return nil end
  if type(e.key) == "table" then key = "[" .. key .. "]" end
  return key .. " = " .. value
end

-- The one-line text of a node, or nil when it has none within cap columns
-- (memoized: cap is the same for one layout).
function flat(node, cap)
  if type(node) == "string" then return node end
  if node.ref then return "<ref " .. (node.ref.label or "?") .. ">" end
  if node.flat ~= nil then return node.flat or nil end
  node.flat = false
  if node.more > 0 then return nil end
  local parts, used = {}, 2 + #prefix(node)
  for i, e in ipairs(node.entries) do
    local s = flat_entry(e, cap)
    if not s then return nil end
    used = used + width_of(s) + (i > 1 and 2 or 0)
    if used > cap then return nil end
    parts[i] = s
  end
  node.flat = prefix(node) .. "{" .. concat(parts, ", ") .. "}"
  return node.flat
end

-- The text of node whose first line starts at column col and is followed
-- by tail more columns (a comma); indent: the spaces of its lines.
local function render(node, cap, indent, col, tail)
  local one = flat(node, cap)
  if one and (type(node) == "string" or node.ref or (#node.entries == 0 and node.more == 0)
              or col + width_of(one) + tail <= cap) then
    return one
  end
  local inner = indent .. "  "
  local lines = {prefix(node) .. "{"}
  for _, e in ipairs(node.entries) do
    local key = ""
    if e.key ~= nil then
      if type(e.key) == "table" then
        key = "[" .. render(e.key, cap, inner, #inner + 1, 4) .. "] = "
      else
        key = e.key .. " = "
      end
    end
    local at = key:find("\n") and width_of(key:match("[^\n]*$")) or #inner + width_of(key)
    lines[#lines + 1] = inner .. key .. render(e.value, cap, inner, at, 1) .. ","
  end
  if node.more > 0 then lines[#lines + 1] = inner .. "-- " .. node.more .. " more" end
  lines[#lines + 1] = indent .. "}"
  return concat(lines, "\n")
end

-- }======================================================

local function option(opts, name, kind)
  local v = opts and opts[name]
  if v == nil then v = M.defaults[name] end
  if kind == "number" then
    if type(v) ~= "number" or v ~= v or v < 0 then
      error(("pretty: option '%s' must be a number >= 0, not %s"):format(name, tostring(v)), 4)
    end
    return v == huge and v or math.floor(v)
  end
  return v ~= false and v ~= nil
end

local function settings(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'format' (table expected, got " .. type(opts) .. ")", 3)
  end
  return setmetatable({
    width = option(opts, "width", "number"),
    depth = option(opts, "depth", "number"),
    max_items = option(opts, "max_items", "number"),
    max_string = option(opts, "max_string", "number"),
    redact = option(opts, "redact", "boolean"),
    seen = {},
  }, P)
end

local function format(self, v)
  local node = build(self, v, 1, false)
  if type(node) == "string" then return node end
  number_labels(node, {n = 0})
  return render(node, self.width, "", 0, 0)
end

--- pretty.format(v [, opts]) -> the text of v (see the top of this file)
function M.format(v, opts)
  local self = settings(opts)
  local ok, s = pcall(format, self, v)
  if ok then return s end
  local msg = type(s) == "string" and s or type(s)
  return "<error formatting " .. type(v) .. ": " .. escape((redact.text(msg)), false) .. ">"
end

--- pretty.values(n, ...) -> the n values formatted, joined by tabs
function M.values(n, ...)
  if mtype(n) ~= "integer" or n < 0 then
    error("bad argument #1 to 'values' (count of values expected, got " .. tostring(n) .. ")", 2)
  end
  local out = {}
  for i = 1, n do out[i] = M.format((select(i, ...))) end
  return concat(out, "\t")
end

return M
