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

return M
