-- ato.scan.baseline: findings accepted earlier, by fingerprint.
--
--   {"version":1,"fingerprints":[{"fingerprint":"<64 hex>","rule":"...","path":"..."}]}
--
-- `ato scan --write-baseline FILE` writes the fingerprints (hex SHA-256 of
-- each secret: never the secret) of the current findings; `--baseline
-- FILE` then suppresses every finding whose fingerprint is listed,
-- wherever it moved to. rule and path are there for the reader.

local ato = require "ato"
local cjson = require "cjson"
local report = require "ato.scan.report"

local type, ipairs, tostring = type, ipairs, tostring
local sort = table.sort

local M = {}

M.VERSION = 1

-- nil, err naming the file and what is wrong.
local function bad(path, fmt, ...)
  return nil, ato.err("baseline", ("baseline %s: " .. fmt):format(path, ...), {path = path})
end

--- baseline.parse(text, path) -> set {fingerprint = true}, count; or
--- nil, err (kind "baseline", the message names path)
function M.parse(text, path)
  local ok, doc = pcall(cjson.decode, text)
  if not ok then return bad(path, "not JSON (%s)", (tostring(doc):gsub("^.-: ", ""))) end
  if type(doc) ~= "table" then return bad(path, "expected a JSON object") end
  if doc.version ~= M.VERSION then
    return bad(path, "unsupported version %s (expected %d)", tostring(doc.version), M.VERSION)
  end
  local list = doc.fingerprints
  if type(list) ~= "table" then return bad(path, "'fingerprints' must be a list") end
  local set, n = {}, 0
  for i, e in ipairs(list) do
    local fp = type(e) == "table" and e.fingerprint
    if type(fp) ~= "string" or not fp:match("^%x+$") or #fp ~= 64 then
      return bad(path, "entry %d has no 64-hex-digit 'fingerprint'", i)
    end
    if not set[fp:lower()] then n = n + 1 end
    set[fp:lower()] = true
  end
  return set, n
end

--- baseline.load(path) -> set, count; or nil, err
function M.load(path)
  local text, err = ato.fs.read(path)
  if not text then
    return bad(path, "%s", (tostring(err.message or err):gsub("^%a+ .-: ", "")))
  end
  return M.parse(text, path)
end

--- baseline.encode(entries) -> the file's text. entries: list of
--- {fingerprint=, rule=, path=}; duplicates go, the rest is sorted.
function M.encode(entries)
  local seen, list = {}, {}
  for _, e in ipairs(entries) do
    local key = e.fingerprint .. "\0" .. (e.rule or "") .. "\0" .. (e.path or "")
    if not seen[key] then
      seen[key] = true
      list[#list + 1] = report.ordered({fingerprint = e.fingerprint, rule = e.rule,
        path = e.path and ato.redact.text(e.path) or nil}, {"fingerprint", "rule", "path"})
    end
  end
  sort(list, function(a, b)
    if a.fingerprint ~= b.fingerprint then return a.fingerprint < b.fingerprint end
    if (a.rule or "") ~= (b.rule or "") then return (a.rule or "") < (b.rule or "") end
    return (a.path or "") < (b.path or "")
  end)
  local lines = {}
  for i, e in ipairs(list) do lines[i] = "    " .. report.json(e) end
  local body = #lines > 0 and "[\n" .. table.concat(lines, ",\n") .. "\n  ]" or "[]"
  return ('{\n  "version": %d,\n  "fingerprints": %s\n}\n'):format(M.VERSION, body)
end

--- baseline.write(path, entries) -> true, or nil, err. Atomic (a
--- temporary file renamed over path), mode 0600.
function M.write(path, entries)
  local ok, err = ato.fs.write(path, M.encode(entries), "600")
  if not ok then
    return nil, ato.err("baseline", ("cannot write baseline %s: %s"):format(path,
      tostring(err.message or err)), {path = path})
  end
  return true
end

--- baseline.entry(f) -> what the baseline keeps of a finding
function M.entry(f)
  local path = f.path
  if f.repository then path = f.repository .. ":" .. path end
  return {fingerprint = f.fingerprint, rule = f.rule, path = path}
end

return M
