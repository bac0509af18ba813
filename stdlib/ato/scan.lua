-- ato.scan: find leaked secrets in text, files, trees and git history.
--
--   local scan = require "ato.scan"
--   local findings, stats = scan.tree({"."}, {threads = 4})
--   for _, f in ipairs(findings) do print(f.path, f.line, f.rule, f.redacted) end
--   scan.text(resp.body, {path = url})      -- an HTTP response, say
--   scan.git("repo", {on_finding = function(f) ... end})
--
-- The work runs on the scanner's own threads (ato.scanner, C: vectorscan
-- finds candidates, PCRE2 confirms, validators decide); the calling task
-- waits, others run. Each finding: rule, name, provider, severity, path,
-- line, column, offset, secret, fingerprint (hex SHA-256 of the secret),
-- redacted, line_text (redacted), verify (verifier name or nil) and for git
-- commit, author, email, date, time. Never print `secret` unless the user
-- asked: use `redacted`.

local ato = require "ato"
local scanner = require "ato.scanner"

local type, ipairs, pairs, tostring, error = type, ipairs, pairs, tostring, error
local sort = table.sort

local M = {}

-- {====================================================== engines

--- The directory of the compiled-database cache: $ATO_CACHE_DIR, else
--- $XDG_CACHE_HOME/ato, else ~/.cache/ato (nil without a home).
function M.cache_dir()
  local dir = os.getenv("ATO_CACHE_DIR")
  if dir and dir ~= "" then return dir end
  local xdg = os.getenv("XDG_CACHE_HOME")
  if xdg and xdg ~= "" then return xdg .. "/ato" end
  local home = os.getenv("HOME")
  return home and home ~= "" and home .. "/.cache/ato" or nil
end

--- The built-in rule files (rules/*.rules next to the binary), sorted.
function M.builtin_rule_files()
  local dir = scanner.rules_dir()
  local files = {}
  if not dir then return files end
  local entries = ato.fs.list(dir) or {}
  for _, e in ipairs(entries) do
    if e.name:find("%.rules$") then files[#files + 1] = dir .. "/" .. e.name end
  end
  sort(files)
  return files
end

local engines = {}                      -- rule file list -> engine, per process

--- scan.engine([{rules = {file, ...}, builtin = true}]) -> engine, or nil, err
--- (err.kind "rules": the message names file, line and problem). Engines
--- are built once per process per rule set (compiling takes seconds;
--- the compiled database is also cached on disk).
function M.engine(opts)
  opts = opts or {}
  local files = {}
  if opts.builtin ~= false then files = M.builtin_rule_files() end
  for _, f in ipairs(opts.rules or {}) do
    if type(f) ~= "string" then error("rules must be a list of file paths", 2) end
    files[#files + 1] = f
  end
  if #files == 0 then return nil, ato.err("rules", "no rule files (built-in rules not found)") end
  local key = table.concat(files, "\0")
  local cached = engines[key]
  if cached then return cached end
  local eng, err = scanner.engine{files = files, cache_dir = M.cache_dir()}
  if not eng then return nil, err end
  engines[key] = eng
  return eng
end

local function engine_of(opts)
  if opts and opts.engine then return opts.engine end
  return M.engine(opts and {rules = opts.rules, builtin = opts.builtin})
end

--- scan.rules([opts]) -> list of rule tables (id, name, provider, ...)
function M.rules(opts)
  local eng, err = engine_of(opts)
  if not eng then return nil, err end
  return eng:rules()
end

--- scan.check([opts]) -> problems ({rule=, problem=, defined_at=}, empty
--- when every example is found and no negative is), or nil, err
function M.check(opts)
  local eng, err = engine_of(opts)
  if not eng then return nil, err end
  return eng:check()
end

-- }======================================================

-- {====================================================== jobs

local function by_place(a, b)
  if a.path ~= b.path then return a.path < b.path end
  if a.offset ~= b.offset then return a.offset < b.offset end
  return a.rule < b.rule
end

-- Runs a job to its end. opts.on_finding(f) streams findings (then the
-- returned list is empty); opts.on_progress(stats) is called about once a
-- second while the job runs.
local function run(kind, sources, opts, text)
  opts = opts or {}
  local eng, err = engine_of(opts)
  if not eng then return nil, err end
  local job <close>, jerr = scanner.job(eng, kind, sources, opts, text)
  if not job then return nil, jerr end
  local on_finding, on_progress = opts.on_finding, opts.on_progress
  local findings, skips = {}, {}
  while true do
    local batch, stats, done, new_skips, fatal = job:next(on_progress and 1 or nil)
    for _, f in ipairs(batch) do
      if on_finding then on_finding(f) else findings[#findings + 1] = f end
    end
    for _, s in ipairs(new_skips) do skips[#skips + 1] = s end
    if on_progress and not done then on_progress(stats) end
    if done then
      if fatal then return nil, ato.err(kind == "git" and "git" or "scan", fatal) end
      stats.skips = skips
      if not on_finding then sort(findings, by_place) end
      return findings, stats
    end
  end
end

local function check_opts(opts, n)
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #%d (table of options expected)"):format(n), 3)
  end
end

--- scan.text(str [, opts]) -> findings, stats (opts.path labels the text)
function M.text(str, opts)
  if type(str) ~= "string" then error("bad argument #1 to 'text' (string expected)", 2) end
  check_opts(opts, 2)
  return run("text", opts and opts.path or "(text)", opts, str)
end

--- scan.file(path [, opts]) -> findings, stats
function M.file(path, opts)
  if type(path) ~= "string" then error("bad argument #1 to 'file' (path expected)", 2) end
  check_opts(opts, 2)
  return run("files", {path}, opts)
end

--- scan.tree(paths [, opts]) -> findings, stats. paths: a path or a list;
--- opts: threads, max_file_size, binary, gitignore, follow_links,
--- no_validators, on_finding, on_progress, rules, engine.
function M.tree(paths, opts)
  if type(paths) == "string" then paths = {paths} end
  if type(paths) ~= "table" then error("bad argument #1 to 'tree' (path or list expected)", 2) end
  check_opts(opts, 2)
  return run("files", paths, opts)
end

--- scan.git(repo [, opts]) -> findings, stats: every blob reachable from
--- any ref (opts.all_objects: every blob in the object database), scanned
--- once, each finding with the first commit and path of its blob.
function M.git(repo, opts)
  if type(repo) ~= "string" then error("bad argument #1 to 'git' (repository path expected)", 2) end
  check_opts(opts, 2)
  return run("git", repo, opts)
end

-- }======================================================

return M
