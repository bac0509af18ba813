-- ato.scan.cli: the `ato scan` command. runtime/main.c runs
-- `os.exit(require('ato.scan.cli').main(...))` as the main task with the
-- arguments after "scan"; main returns the exit status: 0 no findings,
-- 1 findings (or rule problems with --check-rules), 2 an error — one line
-- on stderr, "ato scan: ...".
--
-- The scanning itself is ato.scan's (threads in C); this module parses
-- the arguments, feeds the sources (trees, git repositories, standard
-- input in bounded chunks), filters by baseline, verifies, and prints
-- through ato.scan.report. Secrets are printed only with --show-secrets.

local ato = require "ato"
local scan = require "ato.scan"
local report = require "ato.scan.report"
local baseline = require "ato.scan.baseline"
local verify = require "ato.scan.verify"

local type, ipairs, pairs, select, tostring, tonumber, setmetatable, getmetatable =
  type, ipairs, pairs, select, tostring, tonumber, setmetatable, getmetatable
local fmt, find, concat, sort = string.format, string.find, table.concat, table.sort

local M = {}

M.HELP = [[
Usage: ato scan [PATH|-]... [OPTIONS]

Finds leaked secrets (API keys, tokens, private keys) in files and
directories, in standard input (-), or in the whole history of git
repositories (--git). Without PATH, scans the current directory.

Sources:
  PATH...                 files and directories, scanned together
  -                       standard input, read in chunks (any size)
  --git                   each PATH is a git repository: every blob reachable
                          from any ref, each scanned once, findings carry the
                          commit, author and date that introduced them
  --all-objects           with --git: unreachable blobs too
  --max-file-size N       skip (and report) files and blobs larger than N
                          bytes; suffixes K, M, G, T (powers of 1024), default 64M
  --binary                scan files with a NUL byte in their first 8 KiB too
  --gitignore             honour .gitignore files in scanned trees
  --threads N             scanning threads (default: one per CPU)

Rules:
  --rules FILE            add the rules in FILE (repeatable)
  --no-builtin-rules      use only the --rules files
  --check-rules           check every rule's examples and negatives; prints
                          FILE:LINE: rule ID: problem, exit 1 if any
  --list-rules            list the rules (id, provider, severity, name);
                          --format json or jsonl for machines

Output:
  --format FORMAT         text (default): path:line:col: rule redacted-secret,
                          one line a finding, as found; json: one array;
                          jsonl: one JSON object a line, as found;
                          sarif: SARIF 2.1.0 for code-scanning tools
  --show-secrets          print the secrets themselves (never done otherwise:
                          findings show a prefix and a fingerprint, the first
                          8 hex digits of the secret's SHA-256)
  --quiet, -q             no summary and no progress line on stderr
  --baseline FILE         hide findings whose fingerprint FILE lists
  --write-baseline FILE   write the fingerprints of every finding of this
                          scan to FILE (JSON, mode 0600), for --baseline
  --verify                ask the provider whether each secret is live (for
                          rules with a verifier, e.g. SendGrid: GET
                          /v3/scopes; $ATO_SENDGRID_API_URL overrides the
                          API's base URL); adds verified and scopes
  --help, -h              this text

JSON fields: rule, name, provider, severity, path, line, column, offset,
fingerprint (hex SHA-256 of the secret), redacted, line_text (redacted);
with --git repository, commit, author, email, date; with --verify
verified (true, false, null: unknown; absent when the rule has no
verifier), scopes, verify_error; with --show-secrets secret.

A secret that several rules match at one place is reported once, under
the most specific rule. A line containing "ato:allow" is never reported.
The text format marks verified findings [live, N scopes], [not live] or
[unverified: why].

The summary (files, bytes, time, findings, files skipped and why) and,
on a terminal, a progress line go to stderr. NO_COLOR turns colours off.

Exit status: 0 no findings, 1 findings, 2 error (bad arguments, a missing
path, an unreadable or malformed rule or baseline file).
]]

-- {====================================================== errors

-- An expected failure: printed as one line, exit status 2.
local Failure = {__tostring = function(e) return e.message end}

local function fail(message, ...)
  if select("#", ...) > 0 then message = message:format(...) end
  error(setmetatable({message = message}, Failure), 0)
end

-- Output could not be written (stdout closed, disk full).
local OutputError = {__tostring = function(e) return e.message end}

local function is_cancel(e)
  return type(e) == "table" and e.kind == "cancelled"
end

-- An error object's message.
local function message_of(err)
  return tostring(err and (err.message or err) or "unknown error")
end

-- An ato.fs error's reason: "stat x: no such file or directory" -> "no
-- such file or directory".
local function reason_of(err)
  return (message_of(err):gsub("^%a+ .-: ", ""))
end

-- }======================================================

-- {====================================================== arguments

local FLAGS = {
  ["--git"] = "git", ["--all-objects"] = "all_objects", ["--binary"] = "binary",
  ["--gitignore"] = "gitignore", ["--no-builtin-rules"] = "no_builtin",
  ["--show-secrets"] = "show_secrets", ["--verify"] = "verify",
  ["--check-rules"] = "check_rules", ["--list-rules"] = "list_rules",
  ["--quiet"] = "quiet", ["-q"] = "quiet", ["--help"] = "help", ["-h"] = "help",
}

local VALUED = {
  ["--format"] = "format", ["--baseline"] = "baseline",
  ["--write-baseline"] = "write_baseline", ["--rules"] = "rules",
  ["--threads"] = "threads", ["--max-file-size"] = "max_file_size",
}

local FORMATS = {text = true, json = true, jsonl = true, sarif = true}

local UNITS = {[""] = 1, k = 1024, m = 1024 ^ 2, g = 1024 ^ 3, t = 1024 ^ 4}

--- cli.parse_size("10M") -> 10485760, or nil. Bytes, or a number with a
--- suffix K, M, G or T (KiB, MiB, ...; "MB", "MiB" are read the same).
function M.parse_size(s)
  local num, unit = s:match("^(%d+%.?%d*)%s*([kKmMgGtT]?)i?[bB]?$")
  if not num then return nil end
  local bytes = math.floor(tonumber(num) * UNITS[unit:lower()])
  if bytes < 1 or bytes >= 2 ^ 62 then return nil end
  return bytes
end

local function check_value(o, key, value, name)
  if key == "format" then
    if not FORMATS[value] then fail("%s must be text, json, jsonl or sarif, not '%s'", name, value) end
  elseif key == "threads" then
    local n = value:match("^%d+$") and tonumber(value)
    if not n or n < 1 or n > 1024 then fail("%s needs a number of threads from 1 to 1024, not '%s'", name, value) end
    value = n
  elseif key == "max_file_size" then
    value = M.parse_size(value) or fail("%s needs a size such as 1000000, 512K, 10M or 1G, not '%s'", name, value)
  end
  if key == "rules" then
    o.rules[#o.rules + 1] = value
  else
    o[key] = value
  end
end

-- Options that only make sense together.
local function check_combinations(o)
  if o.check_rules and o.list_rules then fail("--check-rules and --list-rules do not go together") end
  if (o.check_rules or o.list_rules) and #o.paths > 0 then
    fail("%s takes no PATH", o.check_rules and "--check-rules" or "--list-rules")
  end
  if o.list_rules and o.format == "sarif" then fail("--list-rules prints text, json or jsonl") end
  if o.all_objects and not o.git then fail("--all-objects needs --git") end
  local stdin = 0
  for _, p in ipairs(o.paths) do if p == "-" then stdin = stdin + 1 end end
  if stdin > 1 then fail("standard input (-) can be scanned once") end
  if stdin > 0 and o.git then fail("--git scans repositories, not standard input (-)") end
  if o.no_builtin and #o.rules == 0 then fail("--no-builtin-rules needs at least one --rules FILE") end
end

--- cli.parse(args) -> options (raises a Failure on bad usage). args: a
--- list of strings (the words after "scan").
function M.parse(args)
  local o = {paths = {}, rules = {}, format = "text"}
  local i, n = 1, args.n or #args
  while i <= n do
    local a = args[i]
    local name, inline = a:match("^(%-%-[^=]+)=(.*)$")
    name = name or a
    if a == "--" then
      for k = i + 1, n do o.paths[#o.paths + 1] = args[k] end
      break
    elseif FLAGS[name] and not inline then
      o[FLAGS[name]] = true
    elseif VALUED[name] then
      local value = inline
      if value == nil then
        i = i + 1
        value = args[i]
        if value == nil then fail("%s needs a value", name) end
      end
      check_value(o, VALUED[name], value, name)
    elseif FLAGS[name] then
      fail("%s takes no value", name)
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      fail("unknown option '%s' (see ato scan --help)", a)
    else
      o.paths[#o.paths + 1] = a
    end
    i = i + 1
  end
  if o.help then return o end
  check_combinations(o)
  return o
end

-- }======================================================

-- {====================================================== output

-- Writes s to stdout and flushes; raises an OutputError if that fails.
local function out(s)
  local ok, err, code = io.stdout:write(s)
  if ok then ok, err, code = io.stdout:flush() end
  if not ok then
    error(setmetatable({message = "cannot write output: " .. tostring(err), errno = code},
      OutputError), 0)
  end
end

local function warn(s)
  io.stderr:write(s)
end

-- The progress line: on a terminal only, from one second into the scan,
-- redrawn at most twice a second; clear() before other stderr output.
local Progress = {}
Progress.__index = Progress

local function new_progress(enabled)
  return setmetatable({enabled = enabled, t0 = ato.now(), last = 0, shown = false}, Progress)
end

function Progress:update(totals)
  if not self.enabled then return end
  local now = ato.now()
  if now - self.t0 < 1 or now - self.last < 0.5 then return end
  self.last, self.shown = now, true
  warn("\r\27[K" .. report.progress_line(totals):sub(1, 79))
end

function Progress:clear()
  if self.shown then
    warn("\r\27[K")
    self.shown = false
  end
end

Progress.__close = Progress.clear

-- }======================================================

-- {====================================================== the scan context

-- Everything one run of `ato scan` accumulates: totals for the summary,
-- the baseline, the findings (streamed or collected), the progress line.
local Run = {}
Run.__index = Run

local STATS = {"files", "blobs", "commits", "bytes", "binary_skipped", "skipped"}

local function new_run(o)
  local streaming = o.format == "text" or o.format == "jsonl"
  local r = setmetatable({
    o = o, streaming = streaming, collected = {}, entries = o.write_baseline and {} or nil,
    held = {},
    totals = {files = 0, blobs = 0, commits = 0, bytes = 0, binary_skipped = 0,
              skipped = 0, skips = {}, findings = 0, suppressed = 0, git = o.git},
    started = ato.now(),
    color = o.format == "text" and ato.isatty(1) and (os.getenv("NO_COLOR") or "") == "",
    repositories = o.git and #o.paths or 0,
  }, Run)
  r.progress = new_progress(not o.quiet and ato.isatty(2))
  return r
end

-- Totals so far plus a running job's stats (for the progress line).
function Run:current(stats)
  local t = {}
  for k, v in pairs(self.totals) do t[k] = v end
  for _, k in ipairs(STATS) do t[k] = t[k] + (stats and stats[k] or 0) end
  t.elapsed = ato.now() - self.started
  return t
end

-- A finished job's stats into the totals.
function Run:add_stats(stats)
  local t = self.totals
  for _, k in ipairs(STATS) do t[k] = t[k] + (stats[k] or 0) end
  for _, s in ipairs(stats.skips or {}) do t.skips[#t.skips + 1] = s end
end

-- Prints one finding now (text, jsonl).
function Run:emit(f)
  self.progress:clear()
  if self.o.format == "jsonl" then
    out(report.jsonl_line(f, self.o.show_secrets))
  else
    out(report.text_line(f, {color = self.color, show_secrets = self.o.show_secrets,
      repositories = self.repositories}))
  end
end

-- A kept finding: recorded for --write-baseline, dropped if the baseline
-- lists it, then streamed (verified first with --verify) or collected.
function Run:keep(f)
  if self.entries then self.entries[#self.entries + 1] = baseline.entry(f) end
  if self.baseline and self.baseline[f.fingerprint] then
    self.totals.suppressed = self.totals.suppressed + 1
    return
  end
  self.totals.findings = self.totals.findings + 1
  if not self.streaming then
    self.collected[#self.collected + 1] = f
  elseif self.push then
    self.push(f)
  else
    self:emit(f)
  end
end

local SEVERITY_RANK = {critical = 4, high = 3, medium = 2, low = 1}

-- True if finding a names its secret better than b: a provider's own rule
-- before a generic one, then the higher severity.
local function more_specific(a, b)
  local ga, gb = a.provider == "generic", b.provider == "generic"
  if ga ~= gb then return gb end
  return (SEVERITY_RANK[a.severity] or 0) > (SEVERITY_RANK[b.severity] or 0)
end

-- Hands the findings held back for one file or blob on to keep().
function Run:flush()
  local held = self.held
  self.held, self.held_key = {}, nil
  for _, f in ipairs(held) do self:keep(f) end
end

--[[
Every finding a source produces comes here. Rules may overlap: a provider
rule and a generic one both match SENDGRID_API_KEY=SG.... with the same
span. One occurrence of a secret (same place, same secret) is reported
once, under its most specific rule. The engine hands over all findings of
one file or blob together (in one batch, consecutively), so they are held
until another file's finding arrives, the batch ends (flush on progress)
or the scan ends.
]]
function Run:accept(f)
  local key = (f.repository or "") .. "\0" .. f.path .. "\0" .. (f.commit or "")
  if key ~= self.held_key then
    self:flush()
    self.held_key = key
  end
  for i, g in ipairs(self.held) do
    if g.offset == f.offset and g.fingerprint == f.fingerprint then
      if more_specific(f, g) then self.held[i] = f end
      return
    end
  end
  self.held[#self.held + 1] = f
end

-- Options for an ato.scan job, with this run's callbacks.
function Run:job_opts(extra)
  local o = self.o
  local opts = {
    engine = self.engine, threads = o.threads, max_file_size = o.max_file_size,
    binary = o.binary, gitignore = o.gitignore,
    on_progress = function(stats)
      self:flush()                                      -- a batch ended
      self.progress:update(self:current(stats))
    end,
  }
  for k, v in pairs(extra or {}) do opts[k] = v end
  local tag = opts.tag
  opts.tag = nil
  opts.on_finding = function(f)
    if tag then tag(f) end
    self:accept(f)
  end
  return opts
end

-- }======================================================

-- {====================================================== sources

M.STDIN_CHUNK = 8 * 1024 * 1024       -- bytes read from stdin at a time
M.STDIN_OVERLAP = 64 * 1024           -- bytes each chunk shares with the next
M.STDIN_LABEL = "(stdin)"

local function stdin_chunk_size()
  local v = tonumber(os.getenv("ATO_SCAN_STDIN_CHUNK") or "")
  if v and v >= 1 then return math.floor(v) end
  return M.STDIN_CHUNK
end

-- The number of newlines in s[1, j] and the position of the last one.
-- string.find hops from line to line (fast for text); input with very
-- short lines is counted by gsub instead, whose cost is per byte.
local function newlines(s, j)
  local n, last, pos, budget = 0, nil, 1, j // 32 + 16
  while n < budget do
    local i = find(s, "\n", pos, true)
    if not i or i > j then return n, last end
    n, last, pos = n + 1, i, i + 1
  end
  local rest = s:sub(pos, j)
  local _, more = rest:gsub("\n", "")
  if more > 0 then last = pos - 1 + rest:match("^.*()\n") end
  return n + more, last
end

--[[
Standard input, in bounded memory: read `size` bytes at a time and scan
each chunk together with the last OVERLAP bytes before it (reading the
next chunk while the scanner's thread works on this one). The window
[base, base + #buf) moves on; each absolute offset belongs to exactly one
window (a finding is reported by the window that owns its first byte), so
a secret in an overlap is reported once, and a secret cut by a chunk
boundary is found whole by the next window. Ownership changes hands half
an overlap before a window's end: each owned finding has at least 32 KiB
of context on both sides (a secret is far shorter). Line numbers come from
a running count of newlines before the window; a finding on the window's
first line gets its column from where that line really starts.
]]
-- The next `size` bytes of standard input, nil at its end.
local function read_stdin(size)
  local data, err = io.stdin:read(size)
  if data == nil and err then fail("standard input: %s", err) end
  return data
end

local function scan_stdin(run)
  local size, keep = stdin_chunk_size(), M.STDIN_OVERLAP // 2
  local base, lines_before, line_start, owned_to = 0, 0, 0, 0
  local tail, scanned = "", 0
  local chunk = read_stdin(size)
  while chunk do
    local buf = tail .. chunk
    -- the scanner's thread works on buf while the loop thread reads on
    local job <close> = ato.spawn(scan.text, buf, {path = M.STDIN_LABEL, engine = run.engine})
    ato.sleep(0)                                        -- (it starts its job)
    local following = read_stdin(size)
    local findings, stats = job:join()
    if not findings then fail("standard input: %s", message_of(stats)) end
    local window_end = base + #buf
    local owns_to = following and math.max(owned_to, window_end - keep) or window_end
    for _, f in ipairs(findings) do
      local at = base + f.offset
      if at >= owned_to and at < owns_to then
        if f.line == 1 then f.column = f.column + (base - line_start) end
        f.line, f.offset, f.stdin = lines_before + f.line, at, true
        run:accept(f)
      end
    end
    run:flush()
    owned_to, scanned = owns_to, scanned + #chunk
    tail = #buf > M.STDIN_OVERLAP and buf:sub(-M.STDIN_OVERLAP) or buf
    local consumed = #buf - #tail                     -- bytes leaving the window
    if consumed > 0 then
      local n, last = newlines(buf, consumed)
      lines_before = lines_before + n
      if last then line_start = base + last end
      base = base + consumed
    end
    run.progress:update(run:current({files = 1, bytes = scanned}))
    chunk = following
  end
  run:add_stats({files = 1, bytes = scanned})
end

-- Every PATH but "-" must exist: a typo is an error, not an empty scan.
local function check_paths(paths)
  for _, p in ipairs(paths) do
    if p ~= "-" then
      local st, err = ato.fs.stat(p)
      if not st then fail("%s: %s", p, reason_of(err)) end
    end
  end
end

local function scan_trees(run, paths)
  local findings, stats = scan.tree(paths, run:job_opts())
  run:flush()
  if not findings then fail("%s", message_of(stats)) end
  run:add_stats(stats)
end

local function scan_repository(run, repo, index)
  local findings, stats = scan.git(repo, run:job_opts({
    all_objects = run.o.all_objects,
    tag = function(f) f.repository, f.root_index = repo, index end,
  }))
  run:flush()
  if not findings then
    local msg = message_of(stats)
    if msg:sub(1, #repo + 2) == repo .. ": " then msg = msg:sub(#repo + 3) end
    fail("git repository %s: %s", repo, msg)
  end
  run:add_stats(stats)
end

-- }======================================================

-- {====================================================== SARIF roots

-- The current directory (absolute, symbolic links resolved).
local function cwd()
  local r = ato.exec{"pwd", "-P"}
  if r and r.ok then return (r.stdout:gsub("\n$", "")) end
  return os.getenv("PWD") or "/"
end

local function absolute(path, dir)
  if path:sub(1, 1) ~= "/" then path = dir .. "/" .. path end
  return report.normalize(path)
end

-- The uriBaseIds for SARIF: the one directory scanned, else the current
-- directory; one per repository with --git; stdin has none.
local function sarif_roots(o, paths)
  local here = cwd()
  if o.git then
    local roots = {}
    for i, repo in ipairs(paths) do
      roots[i] = {id = #paths == 1 and "%SRCROOT%" or "REPO" .. i,
        dir = absolute(repo, here), relative_paths = true}
    end
    return roots
  end
  local dir = here
  if #paths == 1 then
    local st = ato.fs.stat(paths[1])
    if st and st.type == "directory" then dir = absolute(paths[1], here) end
  end
  return {{id = "%SRCROOT%", dir = dir, cwd = here}}
end

-- }======================================================

-- {====================================================== commands

local function build_engine(o)
  for _, f in ipairs(o.rules) do
    local st, err = ato.fs.stat(f)
    if not st then fail("rule file %s: %s", f, reason_of(err)) end
    if st.type == "directory" then fail("rule file %s: is a directory", f) end
  end
  local eng, err = scan.engine{rules = o.rules, builtin = not o.no_builtin}
  if not eng then fail("%s", message_of(err)) end
  return eng
end

local function list_rules(o)
  local rules = build_engine(o):rules()
  if o.format == "json" then
    local list = {}
    for i, r in ipairs(rules) do list[i] = report.rule_object(r) end
    out(report.json(report.array(list), "  ") .. "\n")
  elseif o.format == "jsonl" then
    for _, r in ipairs(rules) do out(report.json(report.rule_object(r)) .. "\n") end
  else
    out(report.rules_text(rules))
  end
  return 0
end

local function check_rules(o)
  local eng = build_engine(o)
  local problems, err = scan.check{engine = eng}
  if not problems then fail("%s", message_of(err)) end
  local lines = {}
  for i, p in ipairs(problems) do
    lines[i] = fmt("%s: rule %s: %s\n", p.defined_at, p.rule, p.problem)
  end
  if #lines > 0 then
    out(concat(lines))
    return 1
  end
  local n = #eng:rules()
  out(fmt("%d rule%s OK\n", n, n == 1 and "" or "s"))
  return 0
end

local function by_place(a, b)
  if (a.repository or "") ~= (b.repository or "") then return (a.repository or "") < (b.repository or "") end
  if a.path ~= b.path then return a.path < b.path end
  if a.line ~= b.line then return a.line < b.line end
  if a.column ~= b.column then return a.column < b.column end
  return a.rule < b.rule
end

-- The collected findings (json, sarif), verified with --verify.
local function print_collected(run)
  local o, findings = run.o, run.collected
  sort(findings, by_place)
  if run.verifier then run.verifier:all(findings) end
  run.progress:clear()
  if o.format == "json" then
    out(report.json_array(findings, o.show_secrets))
  else
    out(report.sarif(findings, {
      rules = run.engine:rules(), version = ato.config().version,
      show_secrets = o.show_secrets, roots = sarif_roots(o, run.tree_paths),
      skips = run.totals.skips,
    }))
  end
end

-- The baseline to filter by, and where --write-baseline will write:
-- checked before the scan, so a typo does not cost a long scan.
local function prepare_baselines(run, o)
  if o.baseline then
    local set, err = baseline.load(o.baseline)
    if not set then fail("%s", err.message) end
    run.baseline = set
  end
  if o.write_baseline then
    local parent = o.write_baseline:match("^(.*)/[^/]*$") or "."
    local st = ato.fs.stat(parent == "" and "/" or parent)
    if not st or st.type ~= "directory" then
      fail("cannot write baseline %s: no directory %s", o.write_baseline, parent)
    end
  end
end

-- Trees (or repositories with --git), then standard input.
local function scan_sources(run, paths)
  local trees = {}
  for _, p in ipairs(paths) do
    if p == "-" then run.has_stdin = true else trees[#trees + 1] = p end
  end
  run.tree_paths = trees
  if run.o.git then
    for i, repo in ipairs(trees) do scan_repository(run, repo, i) end
  elseif #trees > 0 then
    scan_trees(run, trees)
  end
  if run.has_stdin then scan_stdin(run) end
  if run.finish then run.finish() end
end

local function scan_command(o)
  local paths = #o.paths > 0 and o.paths or {"."}
  check_paths(paths)
  local run = new_run(o)
  local progress <close> = run.progress
  prepare_baselines(run, o)
  run.engine = build_engine(o)
  local pool
  if o.verify then
    run.verifier = verify.new()
    if run.streaming then
      run.push, run.finish, pool = run.verifier:stream(function(f) run:emit(f) end)
    end
  end
  local _pool <close> = pool                  -- cancelled if we leave early
  run.started = ato.now()
  scan_sources(run, paths)
  if o.write_baseline then
    local ok, err = baseline.write(o.write_baseline, run.entries)
    if not ok then fail("%s", err.message) end
  end
  if not run.streaming then print_collected(run) end
  progress:clear()
  if not o.quiet then warn(report.summary(run:current())) end
  return run.totals.findings > 0 and 1 or 0
end

-- }======================================================

-- {====================================================== main

--- cli.run(args) -> exit status; raises on failure (see main)
function M.run(args)
  local o = M.parse(args)
  if o.help then
    out(M.HELP)
    return 0
  end
  if o.list_rules then return list_rules(o) end
  if o.check_rules then return check_rules(o) end
  return scan_command(o)
end

-- Keeps expected failures as they are; gives a bug its traceback.
local function handler(e)
  local mt = getmetatable(e)
  if mt == Failure or mt == OutputError or is_cancel(e) then return e end
  return debug.traceback(tostring(e), 2)
end

--- cli.main(...) -> exit status: 0 no findings, 1 findings, 2 error.
--- Errors are one line on stderr; a cancellation (Ctrl-C) propagates to
--- the runtime (exit 130); an internal error shows its traceback.
function M.main(...)
  local ok, res = xpcall(M.run, handler, table.pack(...))
  if ok then return res end
  if is_cancel(res) then error(res, 0) end
  local mt = getmetatable(res)
  if mt == OutputError and res.errno == 32 then return 1 end   -- EPIPE: the reader left
  local text
  if mt == Failure or mt == OutputError then
    text = report.printable(res.message)                 -- one line, whatever a path holds
  else
    text = "internal error: " .. tostring(res)           -- with its traceback
  end
  warn("ato scan: " .. ato.redact.text(text) .. "\n")
  return 2
end

-- }======================================================

return M
