-- bench/scan_patterns.lua: the rules as data for the scan benchmark.
--
--   local P = dofile "bench/scan_patterns.lua"
--   local rules = P.load("rules")          -- every rule of rules/*.rules
--   P.secrets(rules)                        -- each example's secret(s)
--   local sets = P.rg_sets(rules, dir)      -- ripgrep pattern files
--
-- The parser reads the documented format (rules/README.md): [id] sections,
-- `key = value` lines, examples decoded from \n \t \r \\ \xHH. What an
-- example's secret is comes from ato itself (scan.text on the example
-- alone, the finding of that rule: --check-rules already requires every
-- example to be found), and is cross-checked by P.rg_sets, which runs each
-- pattern with PCRE2 (rg -P) on each example alone.
local ato = require "ato"
local cjson = require "cjson"

local M = {}

--- Decodes the escapes of example values (\n \t \r \\ \xHH) in one
--- left-to-right pass, so "\\n" is a backslash and an n.
local function decode(s)
  local out, i = {}, 1
  while i <= #s do
    local c = s:sub(i, i)
    if c == "\\" then
      local d = s:sub(i + 1, i + 1)
      if d == "n" then out[#out + 1] = "\n"; i = i + 2
      elseif d == "t" then out[#out + 1] = "\t"; i = i + 2
      elseif d == "r" then out[#out + 1] = "\r"; i = i + 2
      elseif d == "\\" then out[#out + 1] = "\\"; i = i + 2
      elseif d == "x" then
        out[#out + 1] = string.char(tonumber(s:sub(i + 2, i + 3), 16)); i = i + 4
      else error("bad escape in example: " .. s) end
    else
      local j = s:find("\\", i, true) or #s + 1
      out[#out + 1] = s:sub(i, j - 1)
      i = j
    end
  end
  return table.concat(out)
end
M.decode = decode

--- Rules of every *.rules file in dir, in file then definition order:
--- {id, provider, pattern, prefilter, examples = {...}, defined_at}.
function M.load(dir)
  local files = {}
  for _, e in ipairs(assert(ato.fs.list(dir))) do
    if e.name:find("%.rules$") then files[#files + 1] = dir .. "/" .. e.name end
  end
  table.sort(files)
  local rules, cur = {}, nil
  for _, file in ipairs(files) do
    local n = 0
    for line in io.lines(file) do
      n = n + 1
      line = line:gsub("\r$", "")
      local id = line:match("^%s*%[([a-z0-9-]+)%]%s*$")
      if id then
        cur = {id = id, examples = {}, defined_at = file .. ":" .. n}
        rules[#rules + 1] = cur
      elseif cur and not line:match("^%s*#") then
        local k, v = line:match("^%s*([a-z_]+)%s*=%s*(.-)%s*$")
        if k == "example" then cur.examples[#cur.examples + 1] = decode(v)
        elseif k == "pattern" or k == "provider" or k == "prefilter" or k == "window" then
          cur[k] = v
        end
      end
    end
  end
  return rules
end

--- A short key of every rule id and example (changes when any does).
function M.examples_key(rules)
  local parts = {}
  for _, r in ipairs(rules) do
    parts[#parts + 1] = r.id
    for _, ex in ipairs(r.examples) do parts[#parts + 1] = ex end
  end
  return require("ato.redact").fingerprint(table.concat(parts, "\0"))
end

--- Fills rule.examples_info[i] = {text, secrets = {{offset (0-based in
--- the example), secret, fingerprint, rule}}} from ato's own scan of each
--- example alone. An example where the rule finds nothing keeps an empty
--- list (and is reported by the caller).
function M.secrets(rules)
  local scan = require "ato.scan"
  local eng = assert(scan.engine())
  for _, r in ipairs(rules) do
    r.examples_info = {}
    for i, ex in ipairs(r.examples) do
      local found = assert(scan.text(ex, {engine = eng}))
      local mine = {}
      for _, f in ipairs(found) do
        if f.rule == r.id then
          mine[#mine + 1] = {offset = f.offset, secret = f.secret, fingerprint = f.fingerprint, rule = f.rule}
        end
      end
      r.examples_info[i] = {text = ex, secrets = mine}
    end
  end
end

-- {====================================================== ripgrep

-- Byte spans [s, e) of every rg --json match in out, by path.
function M.rg_spans(out, spans)
  spans = spans or {}
  for line in out:gmatch("[^\n]+") do
    if line:find('"type":"match"', 1, true) then
      local m = cjson.decode(line).data
      local path = m.path.text
      if path then
        local list = spans[path]
        if not list then list = {}; spans[path] = list end
        for _, sm in ipairs(m.submatches) do
          list[#list + 1] = {m.absolute_offset + sm.start, m.absolute_offset + sm["end"]}
        end
      end
    end
  end
  return spans
end

--- True when some span of list covers [off, off + len).
function M.covered(list, off, len)
  if not list then return false end
  for _, s in ipairs(list) do
    if s[1] <= off and s[2] >= off + len then return true end
  end
  return false
end

-- The flag sets tried, in order: ripgrep's own engine line by line (the
-- brief's `rg --no-unicode -f`), its own engine across lines (-U), PCRE2
-- (-P) line by line, PCRE2 across lines.
M.MODES = {
  {name = "rust", flags = {}},
  {name = "rust-U", flags = {"-U"}},
  {name = "pcre2", flags = {"-P"}},
  {name = "pcre2-U", flags = {"-P", "-U"}},
}

--- Writes each rule's examples to dir/<id>/<i>.txt and puts each rule
--- into the first mode of M.MODES in which rg accepts its pattern and
--- matches every example's secret (each secret inside one match, judged
--- from rg --json byte offsets; --encoding none, so that rg neither strips
--- a UTF-8 byte order mark nor shifts offsets). Returns {sets = {mode name -> {rules}},
--- dropped = {{id, why}}, oracle = {checked, agreed}} and writes the pattern
--- files dir/<mode>.rgx (one pattern a line, as rg -f reads them).
function M.rg_sets(rules, dir)
  ato.exec{"rm", "-rf", dir}
  assert(ato.fs.mkdir(dir, nil, {parents = true}))
  local sets, dropped = {}, {}
  for _, m in ipairs(M.MODES) do sets[m.name] = {} end
  local oracle = {checked = 0, agreed = 0, disagree = {}}
  for _, r in ipairs(rules) do
    local rdir = dir .. "/" .. r.id
    assert(ato.fs.mkdir(rdir))
    for i, info in ipairs(r.examples_info) do
      assert(ato.fs.write(("%s/%d.txt"):format(rdir, i), info.text))
    end
    local chosen, why = nil, {}
    for _, m in ipairs(M.MODES) do
      local argv = {"rg", "--no-unicode", "--encoding", "none", "--json", "-j1"}
      for _, f in ipairs(m.flags) do argv[#argv + 1] = f end
      for _, a in ipairs{"-e", r.pattern, rdir} do argv[#argv + 1] = a end
      local res = assert(ato.exec(argv))
      if res.code == 2 then
        why[#why + 1] = m.name .. ": " .. (res.stderr:match("error:[^\n]*") or res.stderr:match("[^\n]+") or "rejected")
      else
        local spans = M.rg_spans(res.stdout)
        local all = true
        for i, info in ipairs(r.examples_info) do
          local list = spans[("%s/%d.txt"):format(rdir, i)]
          for _, s in ipairs(info.secrets) do
            if not M.covered(list, s.offset, #s.secret) then all = false end
          end
        end
        if all then chosen = m.name break end
        why[#why + 1] = m.name .. ": misses an example"
      end
    end
    if chosen then
      r.rg_mode = chosen
      table.insert(sets[chosen], r)
    else
      dropped[#dropped + 1] = {id = r.id, why = table.concat(why, "; ")}
    end
    -- Oracle: PCRE2 (the engine the rules are written for) on each example alone.
    local res = assert(ato.exec{"rg", "--no-unicode", "--encoding", "none", "--json", "-j1", "-P", "-U", "-e", r.pattern, rdir})
    local spans = M.rg_spans(res.stdout)
    for i, info in ipairs(r.examples_info) do
      for _, s in ipairs(info.secrets) do
        oracle.checked = oracle.checked + 1
        if M.covered(spans[("%s/%d.txt"):format(rdir, i)], s.offset, #s.secret) then
          oracle.agreed = oracle.agreed + 1
        else
          oracle.disagree[#oracle.disagree + 1] = r.id .. " example " .. i
        end
      end
    end
  end
  for _, m in ipairs(M.MODES) do
    local lines = {}
    for _, r in ipairs(sets[m.name]) do lines[#lines + 1] = r.pattern end
    assert(ato.fs.write(dir .. "/" .. m.name .. ".rgx", table.concat(lines, "\n") .. (#lines > 0 and "\n" or "")))
  end
  return {sets = sets, dropped = dropped, oracle = oracle}
end

-- }======================================================

return M
