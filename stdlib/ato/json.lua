-- ato.json: JSON decoding that gives whole numbers back as integers.
-- lua-cjson reads every number as a float, so a stored 3 came back as 3.0
-- and an id 2 made the path ".../2.0"; decode() undoes that.
local cjson = require "cjson"

local M = {}

local function integers(v)
  if type(v) == "number" then return math.tointeger(v) or v end
  if type(v) == "table" then
    for k, x in pairs(v) do
      if type(x) == "number" or type(x) == "table" then v[k] = integers(x) end
    end
  end
  return v
end

--- json.decode(text) -> value (raises on bad JSON, as cjson.decode does)
function M.decode(text)
  return integers(cjson.decode(text))
end

-- {====================================================== encoding

-- lua-cjson 2.1.0 (Debian 12) has no array_mt: an empty table always
-- encodes as {}. A list that may be empty is marked with json.array(t);
-- encode() writes it as [] by swapping it for a sentinel string cjson
-- writes verbatim (NULs as \u0000, so no real text can look like it) and
-- replacing that in the output. Only the tables on the way to a marked
-- empty list are copied; the caller's value is never changed.
local ARRAY = {__name = "ato.json.array"}
M.array_mt = ARRAY
local EMPTY = "\0ato:empty-array\0"
local EMPTY_JSON = '"\\u0000ato:empty%-array\\u0000"'

--- json.array(t) -> t, marked as a list (encodes as [] when empty)
function M.array(t)
  return setmetatable(t or {}, ARRAY)
end

-- -> v, or a copy with marked empty lists swapped for EMPTY; changed?
local function swap_empty(v, depth)
  if getmetatable(v) == ARRAY and next(v) == nil then return EMPTY, true end
  if depth > 100 then return v, false end         -- cjson refuses deeper anyway
  local copy
  for k, x in pairs(v) do
    if type(x) == "table" then
      local y, changed = swap_empty(x, depth + 1)
      if changed then
        if not copy then
          copy = {}
          for k2, x2 in pairs(v) do copy[k2] = x2 end
        end
        copy[k] = y
      end
    end
  end
  if copy then return copy, true end
  return v, false
end

--- json.encode(value) -> text (cjson's, with marked empty lists as [])
function M.encode(v)
  if type(v) ~= "table" then return cjson.encode(v) end
  local swapped, changed = swap_empty(v, 0)
  local text = cjson.encode(swapped)
  if changed then text = text:gsub(EMPTY_JSON, "[]") end
  return text
end

-- }======================================================

return M
