-- ato.scan.report: how `ato scan` shows findings — grep-like text, JSON,
-- JSON lines, SARIF 2.1.0 — plus the summary and progress lines.
--
-- Secrets: a finding's `secret` appears only when the caller passes
-- show_secrets = true; everything else prints `redacted` and the
-- (already redacted) `line_text`. Paths go through ato.redact.text as
-- well, so no output carries a known secret format. (Only paths: the
-- redactor also hides the word after "token:" and the like, which would
-- mangle whole messages.)
--
-- JSON is written by a small encoder of our own (cjson for the scalars)
-- so that keys come out in a stable order, "/" is not escaped and invalid
-- UTF-8 (a path, a binary line) cannot make the document invalid.

local ato = require "ato"
local cjson = require "cjson"

local type, pairs, ipairs, tostring, next = type, pairs, ipairs, tostring, next
local concat, sort = table.concat, table.sort
local fmt, rep = string.format, string.rep

local M = {}

local function redact_text(s)
  return (ato.redact.text(s))
end

local ESCAPES = {["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t"}

-- s safe for a terminal: control characters (an escape sequence in a file
-- name or a commit's author, the newlines of a PEM key) as \n, \xHH.
local function printable(s)
  return (s:gsub("%c", function(c) return ESCAPES[c] or fmt("\\x%02X", c:byte()) end))
end
M.printable = printable

-- {====================================================== JSON

local arrays = setmetatable({}, {__mode = "k"})   -- tables to encode as arrays
local orders = setmetatable({}, {__mode = "k"})   -- table -> list of first keys

--- report.array(t) -> t, marked to encode as a JSON array even when empty
function M.array(t)
  arrays[t] = true
  return t
end

--- report.ordered(t, keys) -> t; its keys listed in `keys` come first, in
--- that order (the rest follow sorted)
function M.ordered(t, keys)
  orders[t] = keys
  return t
end

-- s with every invalid UTF-8 byte replaced by U+FFFD.
local function valid_utf8(s)
  if utf8.len(s) then return s end
  local parts, i = {}, 1
  while true do
    local ok, bad = utf8.len(s, i)
    if ok then
      parts[#parts + 1] = s:sub(i)
      return concat(parts)
    end
    parts[#parts + 1] = s:sub(i, bad - 1) .. "\u{FFFD}"
    i = bad + 1
  end
end

-- cjson escapes "/" as "\/": legal, but paths read badly. The only "\"
-- followed by "/" in cjson's output is that escape (see the report).
local function encode_string(s)
  return (cjson.encode(valid_utf8(s)):gsub("\\/", "/"))
end

local function is_array(t)
  if arrays[t] then return true end
  if next(t) == nil then return false end
  local n = #t
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n then return false end
  end
  return true
end

-- The keys of object t in output order.
local function object_keys(t)
  local first, keys, listed = orders[t], {}, {}
  for _, k in ipairs(first or {}) do
    if t[k] ~= nil then keys[#keys + 1] = k; listed[k] = true end
  end
  local rest = {}
  for k in pairs(t) do
    if type(k) ~= "string" then error("JSON object keys must be strings", 0) end
    if not listed[k] then rest[#rest + 1] = k end
  end
  sort(rest)
  for _, k in ipairs(rest) do keys[#keys + 1] = k end
  return keys
end

local encode_value

local function encode_table(t, out, indent, depth)
  local nl, pad, inner, colon = "", "", "", ":"
  if indent then
    nl, pad, inner, colon = "\n", rep(indent, depth), rep(indent, depth + 1), ": "
  end
  if is_array(t) then
    if #t == 0 then out[#out + 1] = "[]" return end
    out[#out + 1] = "[" .. nl
    for i = 1, #t do
      out[#out + 1] = inner
      encode_value(t[i], out, indent, depth + 1)
      out[#out + 1] = (i < #t and "," or "") .. nl
    end
    out[#out + 1] = pad .. "]"
    return
  end
  local keys = object_keys(t)
  if #keys == 0 then out[#out + 1] = "{}" return end
  out[#out + 1] = "{" .. nl
  for i, k in ipairs(keys) do
    out[#out + 1] = inner .. encode_string(k) .. colon
    encode_value(t[k], out, indent, depth + 1)
    out[#out + 1] = (i < #keys and "," or "") .. nl
  end
  out[#out + 1] = pad .. "}"
end

function encode_value(v, out, indent, depth)
  local tv = type(v)
  if v == nil or v == cjson.null then out[#out + 1] = "null"
  elseif tv == "boolean" then out[#out + 1] = tostring(v)
  elseif tv == "number" then
    if math.type(v) == "integer" then out[#out + 1] = fmt("%d", v)
    elseif v ~= v or v == math.huge or v == -math.huge then out[#out + 1] = "null"
    else out[#out + 1] = fmt("%.17g", v) end
  elseif tv == "string" then out[#out + 1] = encode_string(v)
  elseif tv == "table" then encode_table(v, out, indent, depth)
  else error("cannot encode a " .. tv .. " as JSON", 0) end
end

--- report.json(value [, indent]) -> JSON text (compact, or pretty with
--- indent, e.g. "  ")
function M.json(value, indent)
  local out = {}
  encode_value(value, out, indent, 0)
  return concat(out)
end

-- }======================================================

-- {====================================================== findings

local FIELDS = {"rule", "name", "provider", "severity", "path", "line", "column",
  "offset", "fingerprint", "redacted", "line_text", "repository", "commit",
  "author", "email", "date", "verified", "scopes", "verify_error", "secret"}

--- report.finding_object(f [, show_secrets]) -> the table that JSON, JSON
--- lines (and SARIF's properties) print for a finding; `secret` only with
--- show_secrets. Verification fields appear when --verify ran on it.
function M.finding_object(f, show_secrets)
  local o = {
    rule = f.rule, name = f.name, provider = f.provider, severity = f.severity,
    path = redact_text(f.path), line = f.line, column = f.column, offset = f.offset,
    fingerprint = f.fingerprint, redacted = f.redacted, line_text = f.line_text,
    repository = f.repository, commit = f.commit, author = f.author,
    email = f.email, date = f.date,
  }
  if f.verify_ran then
    o.verified = f.verified == nil and cjson.null or f.verified
    o.scopes = f.scopes and M.array(f.scopes) or nil
    o.verify_error = f.verify_error
  end
  if show_secrets then o.secret = f.secret end
  return M.ordered(o, FIELDS)
end

--- report.jsonl_line(f, show_secrets) -> one line of JSON (with "\n")
function M.jsonl_line(f, show_secrets)
  return M.json(M.finding_object(f, show_secrets)) .. "\n"
end

--- report.json_array(findings, show_secrets) -> a JSON array, one finding
--- a line
function M.json_array(findings, show_secrets)
  if #findings == 0 then return "[]\n" end
  local lines = {}
  for i, f in ipairs(findings) do
    lines[i] = "  " .. M.json(M.finding_object(f, show_secrets))
  end
  return "[\n" .. concat(lines, ",\n") .. "\n]\n"
end

local COLORS = {
  path = "35", pos = "32", sep = "36", note = "2",
  critical = "1;31", high = "31", medium = "33", low = "34",
}

local function paint(on, color, s)
  if not on or not color then return s end
  return "\27[" .. color .. "m" .. s .. "\27[0m"
end

-- " [live, 3 scopes]" and the like, after --verify.
local function verify_note(f)
  if not f.verify_ran then return "" end
  if f.verified == true then
    if f.scopes == nil then return " [live]" end
    if #f.scopes == 0 then return " [live, scopes unreadable]" end
    return fmt(" [live, %d scope%s]", #f.scopes, #f.scopes == 1 and "" or "s")
  elseif f.verified == false then
    return " [not live]"
  end
  return " [unverified: " .. printable(redact_text(f.verify_error or "unknown")) .. "]"
end

--- report.text_line(f, {color=, show_secrets=, repositories=}) -> the
--- grep-like line `path:line:col: rule redacted` (plus, for git, the
--- commit, author and date; repositories > 1 names the repository too)
function M.text_line(f, opts)
  local c = opts.color
  local value = printable(opts.show_secrets and f.secret or f.redacted)
  local s = paint(c, COLORS.path, printable(redact_text(f.path))) .. paint(c, COLORS.sep, ":")
    .. paint(c, COLORS.pos, tostring(f.line)) .. paint(c, COLORS.sep, ":")
    .. paint(c, COLORS.pos, tostring(f.column)) .. paint(c, COLORS.sep, ":") .. " "
    .. paint(c, COLORS[f.severity], f.rule) .. " " .. value
  if f.commit then
    local where = {}
    if (opts.repositories or 1) > 1 and f.repository then
      where[#where + 1] = "repository " .. printable(redact_text(f.repository))
    end
    where[#where + 1] = "commit " .. f.commit:sub(1, 7)
    if f.author then where[#where + 1] = printable(f.author) end
    if f.date then where[#where + 1] = f.date end
    s = s .. " " .. paint(c, COLORS.note, "(" .. concat(where, ", ") .. ")")
  end
  return s .. verify_note(f) .. "\n"
end

-- }======================================================

-- {====================================================== SARIF

M.SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
M.INFORMATION_URI = "https://github.com/ato-project/ato"

local LEVELS = {critical = "error", high = "error", medium = "warning", low = "note"}
-- GitHub code scanning's numeric severity (0-10) for security results.
local SECURITY_SEVERITY = {critical = "9.5", high = "8.0", medium = "5.5", low = "3.0"}

--- report.uri_encode(path) -> path as a URI path: every byte outside the
--- unreserved set, the sub-delimiters, "@" and "/" percent-encoded (":"
--- too, so a relative reference never looks like a scheme)
function M.uri_encode(path)
  return (path:gsub("[^%w%-%._~!%$&'%(%)%*%+,;=@/]", function(ch)
    return fmt("%%%02X", ch:byte())
  end))
end

--- report.normalize(path) -> path without "." segments, repeated or
--- trailing slashes, and with ".." resolved lexically where possible
function M.normalize(path)
  local absolute = path:sub(1, 1) == "/"
  local parts = {}
  for seg in path:gmatch("[^/]+") do
    if seg == ".." and #parts > 0 and parts[#parts] ~= ".." then
      parts[#parts] = nil
    elseif seg == ".." and absolute then                 -- "/.." is "/"
    elseif seg ~= "." then
      parts[#parts + 1] = seg
    end
  end
  local s = concat(parts, "/")
  if absolute then return "/" .. s end
  return s == "" and "." or s
end

-- PascalCase identifier from a rule id: "sendgrid-api-key" -> "SendgridApiKey".
local function rule_name(id)
  return (id:gsub("[^%w]+(%w?)", function(c) return c:upper() end)
            :gsub("^%l", string.upper))
end

local function sarif_rule(r)
  local d = {
    id = r.id,
    name = rule_name(r.id),
    shortDescription = {text = r.name or r.id},
    fullDescription = {text = fmt("%s (%s): a leaked %s secret",
      r.name or r.id, r.id, r.provider or "unknown")},
    helpUri = r.references and r.references[1] or nil,
    defaultConfiguration = {level = LEVELS[r.severity] or "warning"},
    properties = {
      severity = r.severity, provider = r.provider,
      ["security-severity"] = SECURITY_SEVERITY[r.severity],
      tags = M.array({"security", "secret"}),
    },
  }
  return M.ordered(d, {"id", "name", "shortDescription", "fullDescription",
    "helpUri", "defaultConfiguration", "properties"})
end

--- report.locator(roots) -> function(f) returning the SARIF
--- artifactLocation of a finding. roots: list of {id=, dir=absolute
--- directory, cwd=absolute directory relative paths start from,
--- relative_paths=true when finding paths are already relative to dir
--- (git blobs)}; f.root_index picks the root (default 1). A path inside its
--- root becomes a relative uri with the root's uriBaseId; any other path
--- an absolute file: URI; standard input (f.stdin) its label, no base; an
--- unreachable git blob ("blob <hex>", --all-objects) git-blob:<hex>.
function M.locator(roots)
  return function(f)
    if f.stdin then return {uri = M.uri_encode(f.path)} end
    local root = roots[f.root_index or 1]
    if root.relative_paths then
      local blob = f.path:match("^blob (%x+)$")
      if blob then return {uri = "git-blob:" .. blob} end
      return {uri = M.uri_encode(M.normalize(f.path)), uriBaseId = root.id}
    end
    local path = f.path
    if path:sub(1, 1) ~= "/" then path = root.cwd .. "/" .. path end
    path = M.normalize(path)
    local dir = root.dir == "/" and "/" or root.dir .. "/"
    if path:sub(1, #dir) == dir and #path > #dir then
      return {uri = M.uri_encode(path:sub(#dir + 1)), uriBaseId = root.id}
    end
    return {uri = "file://" .. M.uri_encode(path)}
  end
end

local function sarif_result(f, rule_index, locate, show_secrets)
  local region = M.ordered({startLine = f.line, startColumn = f.column,
    snippet = f.line_text and {text = f.line_text} or nil},
    {"startLine", "startColumn", "snippet"})
  local loc = locate(f)
  loc.uri = redact_text(loc.uri)
  local props = M.finding_object(f, show_secrets)
  for _, k in ipairs({"rule", "name", "path", "line", "column", "fingerprint", "line_text"}) do
    props[k] = nil                                       -- said elsewhere in the result
  end
  local r = {
    ruleId = f.rule,
    ruleIndex = rule_index,
    level = LEVELS[f.severity] or "warning",
    message = {text = fmt("%s: %s", f.name or f.rule, f.redacted)},
    locations = M.array({{physicalLocation = M.ordered(
      {artifactLocation = M.ordered(loc, {"uri", "uriBaseId"}), region = region},
      {"artifactLocation", "region"})}}),
    partialFingerprints = {["secret/v1"] = f.fingerprint},
    properties = props,
  }
  return M.ordered(r, {"ruleId", "ruleIndex", "level", "message", "locations",
    "partialFingerprints", "properties"})
end

--- report.sarif(findings, ctx) -> a SARIF 2.1.0 log (JSON text). ctx:
--- rules (the engine's rule list), version, show_secrets, roots (see
--- locator), skips (list of {path, reason}: tool notifications).
function M.sarif(findings, ctx)
  local rules, index = {}, {}
  for i, r in ipairs(ctx.rules) do
    rules[i] = sarif_rule(r)
    index[r.id] = i - 1
  end
  local locate = M.locator(ctx.roots)
  local results = {}
  for i, f in ipairs(findings) do
    results[i] = sarif_result(f, index[f.rule], locate, ctx.show_secrets)
  end
  local notes = {}
  for i, s in ipairs(ctx.skips or {}) do
    notes[i] = {level = "warning",
      message = {text = fmt("skipped %s: %s", redact_text(s.path), s.reason)}}
  end
  local bases = {}
  for _, root in ipairs(ctx.roots) do
    local dir = root.dir == "/" and "/" or root.dir .. "/"
    bases[root.id] = {uri = "file://" .. M.uri_encode(redact_text(dir))}
  end
  local run = M.ordered({
    tool = {driver = M.ordered({
      name = "ato", version = ctx.version, semanticVersion = ctx.version,
      informationUri = M.INFORMATION_URI, rules = M.array(rules),
    }, {"name", "version", "semanticVersion", "informationUri", "rules"})},
    invocations = M.array({M.ordered({executionSuccessful = true,
      toolExecutionNotifications = #notes > 0 and notes or nil},
      {"executionSuccessful"})}),
    originalUriBaseIds = bases,
    results = M.array(results),
  }, {"tool", "invocations", "originalUriBaseIds", "results"})
  local log = M.ordered({["$schema"] = M.SARIF_SCHEMA, version = "2.1.0",
    runs = M.array({run})}, {"$schema", "version", "runs"})
  return M.json(log, "  ") .. "\n"
end

-- }======================================================

-- {====================================================== rules

--- report.rules_text(rules) -> aligned columns: id, provider, severity, name
function M.rules_text(rules)
  local w = {#"ID", #"PROVIDER", #"SEVERITY"}
  for _, r in ipairs(rules) do
    w[1] = math.max(w[1], #r.id)
    w[2] = math.max(w[2], #(r.provider or ""))
    w[3] = math.max(w[3], #(r.severity or ""))
  end
  local row = "%-" .. w[1] .. "s  %-" .. w[2] .. "s  %-" .. w[3] .. "s  %s\n"
  local out = {fmt(row, "ID", "PROVIDER", "SEVERITY", "NAME")}
  for _, r in ipairs(rules) do
    out[#out + 1] = fmt(row, r.id, r.provider or "", r.severity or "", r.name or "")
  end
  return concat(out)
end

--- report.rule_object(r) -> what --list-rules --format json prints of a rule
function M.rule_object(r)
  return M.ordered({id = r.id, name = r.name, provider = r.provider,
    severity = r.severity, verify = r.verify, keywords = r.keywords,
    references = M.array(r.references or {}), defined_at = r.defined_at},
    {"id", "name", "provider", "severity", "verify", "keywords", "references",
     "defined_at"})
end

-- }======================================================

-- {====================================================== summary, progress

local function plural(n, word, words)
  return fmt("%d %s", n, n == 1 and word or (words or word .. "s"))
end

--- report.size(bytes) -> "512 B", "3.4 kB", "12.0 MB", "1.2 GB" (decimal)
function M.size(bytes)
  if bytes < 1000 then return fmt("%d B", bytes) end
  local units = {"kB", "MB", "GB", "TB"}
  local v, i = bytes / 1000, 1
  while v >= 1000 and i < #units do v, i = v / 1000, i + 1 end
  return fmt("%.1f %s", v, units[i])
end

-- "12 files" or "30 blobs in 7 commits", whatever was scanned.
local function scanned(t)
  local parts = {}
  if t.git then
    parts[#parts + 1] = plural(t.blobs or 0, "blob") .. " in " .. plural(t.commits or 0, "commit")
  end
  if t.files and (t.files > 0 or not t.git) then parts[#parts + 1] = plural(t.files, "file") end
  return concat(parts, " and ")
end

--- report.summary(t) -> the line printed on stderr after a scan. t: files,
--- blobs, commits, git, bytes, elapsed, findings, suppressed,
--- binary_skipped, skipped (count), skips (list of {path, reason}).
function M.summary(t)
  local elapsed = t.elapsed or 0
  local s = fmt("ato scan: %s, %s in %.2f s", scanned(t), M.size(t.bytes or 0), elapsed)
  if elapsed > 0 and (t.bytes or 0) > 0 then
    s = s .. fmt(" (%s/s)", M.size(math.floor(t.bytes / elapsed)))
  end
  s = s .. ": " .. plural(t.findings or 0, "finding")
  if (t.suppressed or 0) > 0 then s = s .. fmt(", %d suppressed by the baseline", t.suppressed) end
  if (t.binary_skipped or 0) > 0 then
    s = s .. "; " .. plural(t.binary_skipped, "binary file") .. " not scanned (--binary scans them)"
  end
  local skipped = t.skipped or 0
  if skipped > 0 then
    local shown = {}
    for i = 1, math.min(3, #(t.skips or {})) do
      shown[i] = fmt("%s (%s)", printable(redact_text(t.skips[i].path)), printable(t.skips[i].reason))
    end
    s = s .. fmt("; %d skipped: %s", skipped, concat(shown, ", "))
    if skipped > #shown then s = s .. fmt(" and %d more", skipped - #shown) end
  end
  return s .. "\n"
end

--- report.progress_line(t) -> "scanning: 1204 files, 56.1 MB, 12.3 MB/s,
--- 2 findings" (t as for summary)
function M.progress_line(t)
  local rate = (t.elapsed or 0) > 0 and (t.bytes or 0) / t.elapsed or 0
  return fmt("scanning: %s, %.1f MB, %.1f MB/s, %s", scanned(t), (t.bytes or 0) / 1e6,
    rate / 1e6, plural(t.findings or 0, "finding"))
end

-- }======================================================

return M
