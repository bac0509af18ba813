-- bench/scan.lua [--quick]: the secret scanner (`ato scan`) next to its
-- peers and to the machine's reading limit, in one run, on the same data:
--
--   data      bench/scan_corpus.lua: >= 1 GiB of system text with every rule
--             example planted once (336 secrets), a 100 MB hard-linked
--             subset, a git history of 3,000 commits with secrets added and
--             removed again. Built once, reused while its stamp matches.
--   ceiling   bench/readall.c (cc -O2): walk + open/fstat/read/close of every
--             file, 1 thread and all threads
--   ato       bin/ato scan --format jsonl CORPUS, --threads 1 and default
--   ripgrep   rg --no-ignore --no-unicode -E none -f PATTERNS, -j1 and default;
--             PATTERNS: every rule's pattern, grouped by what rg needs to
--             match each rule's examples (bench/scan_patterns.lua): its own
--             engine line by line (the main set), -U, -P, -P -U. --no-ignore:
--             the corpus lies inside this repository, whose .gitignore says
--             node_modules/, and ato (like rg --no-ignore) reads every file;
--             -E none: no BOM sniffing, so match offsets are file offsets
--   secretlint  13.0.6 + preset-recommend 13.0.6 (npm, bench/out/node_modules)
--             on the subset
--   git       ato scan --git REPO vs git log -p --all | ato scan -
--
-- Wall times are hyperfine medians (whole process, start-up included, warm
-- page cache: --prepare reads the data set again before every run, since
-- this VM pages out idle page cache after ~60 s; each footnote gives the
-- storage reads seen during its runs); peak RSS is GNU time's %M (median);
-- MB = 10^6 bytes; "all threads" = the CPUs nproc reports. Recall
-- is judged per planted secret: ato by (file, fingerprint) in its JSON
-- lines; rg by an rg --json match whose byte span covers the secret;
-- secretlint by a message in the file on the secret's lines; git by
-- fingerprint. Prints a table with ratios and the targets, then where each
-- figure came from; writes bench/out/scan.json (raw hyperfine JSON and
-- outputs in bench/out/scan-results/).
local ato = require "ato"
local cjson = require "cjson"
local P = dofile "bench/scan_patterns.lua"
local C = dofile "bench/scan_corpus.lua"

local ATO = os.getenv("ATO_BIN") or "bin/ato"
local quick = arg[1] == "--quick"
local OUT = "bench/out"
local RES = OUT .. "/scan-results"
local sfx = quick and "-quick" or ""
local CFG = {
  corpus = OUT .. "/corpus" .. sfx,
  subset = OUT .. (quick and "/subset20-quick" or "/subset100"),
  manifest = OUT .. "/corpus" .. sfx .. ".manifest.jsonl",
  bytes = quick and 200000000 or (1 << 30),
  subset_bytes = quick and 20000000 or 100000000,
  seed = 20251127,
}
local HIST = {
  repo = OUT .. "/history" .. sfx .. ".git",
  manifest = OUT .. "/history" .. sfx .. ".manifest.jsonl",
  commits = quick and 500 or 3000,
  secrets = quick and 30 or 100,
  seed = 20251128,
  corpus = CFG.corpus,
}
local FAST = quick and 3 or 7           -- hyperfine runs, commands of a few seconds
local RUNS = quick and 2 or 5           -- hyperfine runs, rg's main set (~10 s a run)
local SLOW = quick and 1 or 3           -- hyperfine runs, slow commands
local RSS_RUNS = quick and 1 or 3
local SECRETLINT = "13.0.6"

-- {====================================================== helpers

local U = dofile "bench/util.lua"
local run, sh, have, median, read = U.run, U.sh, U.have, U.median, U.read

local function log(...)
  io.stderr:write(string.format(...), "\n")
end

local sources = {}                       -- footnotes: where each figure came from
local function source(text)
  sources[#sources + 1] = text
  return #sources
end

-- KB read from storage so far (/proc/vmstat pgpgin).
local function pgpgin()
  return tonumber((read("/proc/vmstat") or ""):match("\npgpgin (%d+)")) or 0
end

-- hyperfine over cmds (strings); shell = true runs them through sh (pipes,
-- cd, redirects), else -N. prepare (a command) runs before every run: it
-- reads the data set again, because this VM's DAMON pages out page-cache
-- pages left idle for ~60 s, so a slow peer would otherwise read part of the
-- corpus from disk. The storage reads during the call are reported (they
-- should be ~0). Returns one {median, min, max, n, cmd, src} per command;
-- the raw JSON goes to RES/<id>.json.
local function hyperfine(id, cmds, runs, shell, warmup, prepare)
  warmup = warmup or 1
  local json = RES .. "/" .. id .. ".json"
  local argv = {"hyperfine", "-i", "--style", "none", "--warmup", tostring(warmup), "--runs", tostring(runs),
                "--export-json", json}
  if not shell then argv[#argv + 1] = "-N" end
  if prepare then argv[#argv + 1] = "--prepare"; argv[#argv + 1] = prepare end
  for _, c in ipairs(cmds) do argv[#argv + 1] = c end
  log("  hyperfine %s: %s", id, table.concat(cmds, " | "))
  local in0 = pgpgin()
  run(argv)
  local disk_mb = (pgpgin() - in0) / 1024
  local data = cjson.decode(read(json))
  local out = {}
  for i, r in ipairs(data.results) do
    local m = median(r.times)
    out[i] = {median = m, min = math.min(table.unpack(r.times)), max = math.max(table.unpack(r.times)),
              n = #r.times, cmd = cmds[i], user = r.user, system = r.system, disk_mb = disk_mb}
    out[i].src = source(("hyperfine %s--warmup %d --runs %d%s: `%s`: median %.3f s (min %.3f, max %.3f; user %.2f s, sys %.2f s); storage reads during the call %.0f MB [%s]")
      :format(shell and "" or "-N ", warmup, runs, prepare and (" --prepare '" .. prepare .. "'") or "", cmds[i], m,
        out[i].min, out[i].max, r.user, r.system, disk_mb, json))
  end
  return out
end

-- Peak RSS (KB, median of n runs) of argv under GNU time; stdout discarded.
local function rss(argv, n, cwd)
  local kbs, walls = {}, {}
  for i = 1, n do
    local cmd = {"/usr/bin/time", "-f", "%M %e", stdout = "ignore", cwd = cwd}
    for _, a in ipairs(argv) do cmd[#cmd + 1] = a end
    local r = assert(ato.exec(cmd))
    local kb, secs = r.stderr:match("(%d+) ([%d.]+)%s*$")
    assert(kb, "GNU time printed nothing: " .. r.stderr)
    kbs[i], walls[i] = tonumber(kb), tonumber(secs)
  end
  local kb = median(kbs)
  return kb, source(("/usr/bin/time -f %%M (%d run%s%s): `%s`: peak RSS median %.1f MB (min %.1f, max %.1f)")
    :format(n, n > 1 and "s" or "", cwd and ", in " .. cwd or "", table.concat(argv, " "), kb / 1024,
      math.min(table.unpack(kbs)) / 1024, math.max(table.unpack(kbs)) / 1024))
end

local function abs(p) return C.abs(p) end

-- }======================================================

-- {====================================================== table

local rows = {}
local function fmt_num(v)
  if v == nil then return "-" end
  if math.type(v) == "integer" then return tostring(v) end
  if math.abs(v) >= 100 then return ("%.0f"):format(v) end
  if math.abs(v) >= 10 then return ("%.1f"):format(v) end
  return ("%.2f"):format(v)
end

-- row{label, value, unit, ratio = number or nil, of = "what the ratio is to",
--     target = "text", met = bool or nil, src = {n, ...}}
local function row(r)
  rows[#rows + 1] = r
  local status = r.met == nil and "" or (r.met and "MET" or "MISSED")
  local srcs = {}
  for _, n in ipairs(r.src or {}) do srcs[#srcs + 1] = "[" .. n .. "]" end
  print(("%-50s %10s %-6s %8s %-30s %-6s %s"):format(r.label, fmt_num(r.value), r.unit or "",
    r.ratio and ("%.2fx"):format(r.ratio) or "", (r.of and ("of " .. r.of) or "") ..
    (r.target and ((r.of and "; " or "") .. "target " .. r.target) or ""), status, table.concat(srcs)))
end

local function section(title)
  rows[#rows + 1] = {section = title}
  print(("\n%s"):format(title))
end

-- }======================================================

run{"mkdir", "-p", RES}
for _, tool in ipairs{"rg", "hyperfine", "git", "cc"} do
  assert(have(tool), tool .. " is needed (make deps installs it)")
end
assert(ato.fs.exists("/usr/bin/time"), "/usr/bin/time (GNU time) is needed")
local NPROC = tonumber(run{"nproc"}.stdout)
local t_start = ato.now()

-- What is measured: the commit and the build (another session may rebuild
-- or commit while this runs; the end of the run checks).
local function build_id()
  local head = (ato.exec{"git", "describe", "--always", "--dirty"} or {}).stdout or "?"
  local parts = {(head:gsub("%s+$", ""))}
  for _, f in ipairs{ATO, "lib/ato/scanner.so"} do
    local st = ato.fs.stat(f)
    parts[#parts + 1] = st and ("%s@%.0f"):format(f, st.mtime) or f .. "@?"
  end
  return table.concat(parts, " ")
end
local BUILD = build_id()

-- {====================================================== data
log("scan bench%s: preparing data (rules, corpus, history) ...", quick and " (quick)" or "")
local rules = P.load("rules")
P.secrets(rules)
local examples, no_secret = 0, {}
for _, r in ipairs(rules) do
  for i, info in ipairs(r.examples_info) do
    examples = examples + 1
    if #info.secrets == 0 then no_secret[#no_secret + 1] = r.id .. " example " .. i end
  end
end
local rg = P.rg_sets(rules, OUT .. "/scan-rg")
CFG.rules, HIST.rules = rules, rules
CFG.examples_key = P.examples_key(rules)
HIST.examples_key = CFG.examples_key
local stamp = C.corpus(CFG, function(...) log(...) end)
local hstamp = C.history(HIST, function(...) log(...) end)
local BYTES, SUB_BYTES = stamp.bytes, stamp.subset_bytes
local function mbps(secs, bytes) return (bytes or BYTES) / secs / 1e6 end

local planted = {}
for line in io.lines(CFG.manifest) do planted[#planted + 1] = cjson.decode(line) end
local hplanted = {}
for line in io.lines(HIST.manifest) do hplanted[#hplanted + 1] = cjson.decode(line) end
local providers = {}
for _, p in ipairs(planted) do providers[p.provider] = true end
local nprov = 0
for _ in pairs(providers) do nprov = nprov + 1 end

local READALL = OUT .. "/readall"
run{"cc", "-O2", "-pthread", "-o", READALL, "bench/readall.c"}
local function touch(dir) return READALL .. " -t " .. NPROC .. " " .. dir end
-- }======================================================

local results = {quick = quick, nproc = NPROC, corpus = stamp, history = hstamp}
do
  local cpu = (read("/proc/cpuinfo") or ""):match("model name%s*:%s*([^\n]+)") or "?"
  local kernel = run{"uname", "-r"}.stdout:gsub("%s+$", "")
  local rgv = run{"rg", "--version"}.stdout:match("^[^\n]+")
  local hfv = run{"hyperfine", "--version"}.stdout:gsub("%s+$", "")
  local gitv = run{"git", "--version"}.stdout:gsub("%s+$", "")
  local head = BUILD:match("^%S+")
  results.machine = {cpu = cpu, nproc = NPROC, kernel = kernel, rg = rgv, hyperfine = hfv, git = gitv}
  results.commit = head
  print(("scan benchmark%s of ato %s — %s, %d CPUs, kernel %s; %s, %s, %s"):format(quick and " (--quick)" or "",
    head, cpu, NPROC, kernel, rgv, hfv, gitv))
  print(("corpus %s: %d files (%d distinct sources), %.1f MB; %d secrets planted (%d rules, %d providers, every rule example once) in %d files")
    :format(CFG.corpus, stamp.files, stamp.unique_files, BYTES / 1e6, #planted, #rules, nprov, stamp.planted_files))
  print(("subset %s: %d files, %.1f MB, %d planted; history %s: %d commits, %d secrets added then removed")
    :format(CFG.subset, stamp.subset_files, SUB_BYTES / 1e6, stamp.subset_planted, HIST.repo,
      hstamp.real_commits, hstamp.planted))
  print(("%-50s %10s %-6s %8s %-30s %-6s %s"):format("figure", "value", "unit", "ratio", "ratio of / target", "", "source"))
end

-- {====================================================== ceiling
section("Reading ceiling (bench/readall.c: walk, open, fstat, read whole file, close)")
local ceil = hyperfine("readall", {READALL .. " -t 1 " .. CFG.corpus, READALL .. " -t " .. NPROC .. " " .. CFG.corpus},
  FAST, false, 1, touch(CFG.corpus))
do
  local check = cjson.decode(run{READALL, "-t", "1", CFG.corpus}.stdout)
  assert(check.files == stamp.files and check.bytes == BYTES,
    ("readall saw %d files / %d bytes, the stamp says %d / %d"):format(check.files, check.bytes, stamp.files, BYTES))
end
local ceil1, ceilN = mbps(ceil[1].median), mbps(ceil[2].median)
row{label = "readall, 1 thread", value = ceil1, unit = "MB/s", src = {ceil[1].src}}
row{label = ("readall, %d threads"):format(NPROC), value = ceilN, unit = "MB/s", src = {ceil[2].src}}
results.ceiling = {t1 = ceil[1], tN = ceil[2], mbps1 = ceil1, mbpsN = ceilN}
-- }======================================================

-- {====================================================== ato
section("ato scan on the corpus")
local function ato_findings(out, prefix)
  local set, n = {}, 0
  for line in out:gmatch("[^\n]+") do
    local f = cjson.decode(line)
    n = n + 1
    local path = f.path
    if prefix and path:sub(1, #prefix) == prefix then path = path:sub(#prefix + 1) end
    set[path .. "\0" .. f.fingerprint] = true
    set[f.fingerprint] = true
  end
  return set, n
end

local function recall_by(rows_, pred)
  local hit, missed = 0, {}
  for _, p in ipairs(rows_) do
    if pred(p) then hit = hit + 1 else missed[#missed + 1] = p.rule .. " (" .. (p.file or p.path) .. ")" end
  end
  return hit, missed
end

local ato_cmd1 = ATO .. " scan --threads 1 --format jsonl " .. CFG.corpus
local ato_cmdN = ATO .. " scan --format jsonl " .. CFG.corpus
local at = hyperfine("ato", {ato_cmd1, ato_cmdN}, FAST, false, 1, touch(CFG.corpus))
local ato1, atoN = mbps(at[1].median), mbps(at[2].median)
local ato_rec = {}
for i, threads in ipairs{"1", false} do
  local argv = {ATO, "scan", "--format", "jsonl", CFG.corpus}
  if threads then table.insert(argv, 3, "--threads"); table.insert(argv, 4, threads) end
  local r = assert(ato.exec(argv))
  assert(r.code == 0 or r.code == 1, "ato scan failed: " .. r.stderr)
  local f = io.open(RES .. ("/ato_%s.jsonl"):format(threads and "t1" or "tN"), "wb")
  f:write(r.stdout)
  f:close()
  local set, n = ato_findings(r.stdout, CFG.corpus .. "/")
  local hit, missed = recall_by(planted, function(p) return set[p.file .. "\0" .. p.fingerprint] end)
  local files = tonumber((r.stderr:match("ato scan: (%d+) files") or "0"))
  ato_rec[i] = {findings = n, found = hit, missed = missed, files = files, summary = r.stderr:match("ato scan:[^\n]*")}
end
local rss1, rss1_src = rss({ATO, "scan", "--threads", "1", "--format", "jsonl", CFG.corpus}, RSS_RUNS)
local rssN, rssN_src = rss({ATO, "scan", "--format", "jsonl", CFG.corpus}, RSS_RUNS)
row{label = "ato, 1 thread", value = ato1, unit = "MB/s", ratio = ato1 / ceil1, of = "readall 1T", src = {at[1].src}}
row{label = ("ato, all threads (%d)"):format(NPROC), value = atoN, unit = "MB/s", ratio = atoN / ceilN,
    of = "readall " .. NPROC .. "T", target = ">= 0.50x", met = atoN / ceilN >= 0.5, src = {at[2].src, ceil[2].src}}
row{label = "ato recall, 1 thread", value = ato_rec[1].found / #planted * 100, unit = "%",
    of = ("%d/%d planted"):format(ato_rec[1].found, #planted), target = "100%", met = ato_rec[1].found == #planted,
    src = {source("one run of `" .. ato_cmd1 .. "`, findings matched to the manifest by (file, fingerprint): " .. RES .. "/ato_t1.jsonl")}}
row{label = "ato recall, all threads", value = ato_rec[2].found / #planted * 100, unit = "%",
    of = ("%d/%d planted"):format(ato_rec[2].found, #planted), target = "100%", met = ato_rec[2].found == #planted,
    src = {source("one run of `" .. ato_cmdN .. "`: " .. RES .. "/ato_tN.jsonl")}}
row{label = "ato findings (planted + background)", value = ato_rec[2].findings, unit = "",
    of = ("%d planted; %s"):format(#planted, ato_rec[2].summary or ""), src = {#sources}}
row{label = "ato peak RSS, 1 thread", value = rss1 / 1024, unit = "MB", target = "< 200 MB", met = rss1 / 1024 < 200, src = {rss1_src}}
row{label = "ato peak RSS, all threads", value = rssN / 1024, unit = "MB", target = "< 200 MB", met = rssN / 1024 < 200, src = {rssN_src}}
assert(ato_rec[2].files == stamp.files, ("ato scanned %d files, the corpus has %d"):format(ato_rec[2].files, stamp.files))
results.ato = {runs = at, mbps1 = ato1, mbpsN = atoN, recall = ato_rec, rss_kb_t1 = rss1, rss_kb_tN = rssN}
-- }======================================================

-- {====================================================== ripgrep
section("ripgrep 13 (--no-unicode) with the rules' patterns")
local rg_spans, rg_res = {}, {}
do
  local nfiles = select(2, run{"rg", "--no-ignore", "--files", CFG.corpus, max_output = 1 << 30}.stdout:gsub("\n", ""))
  assert(nfiles == stamp.files, ("rg sees %d files, the corpus has %d"):format(nfiles, stamp.files))
end
local total1, totalN = 0, 0
for _, mode in ipairs(P.MODES) do
  local set = rg.sets[mode.name]
  if #set > 0 then
    local file = OUT .. "/scan-rg/" .. mode.name .. ".rgx"
    local flags = table.concat(mode.flags, " ")
    local base = "rg --no-ignore --no-unicode -E none " .. (flags ~= "" and flags .. " " or "")
    local cmds = {base .. "-j1 -c -f " .. file .. " " .. CFG.corpus, base .. "-c -f " .. file .. " " .. CFG.corpus}
    local main = mode.name == "rust"
    local t = hyperfine("rg_" .. mode.name, cmds, main and RUNS or SLOW, false, main and 1 or 0, touch(CFG.corpus))
    local json = RES .. "/rg_" .. mode.name .. ".matches.jsonl"
    local rcmd = base .. "--json -f " .. file .. " " .. CFG.corpus
    sh(rcmd .. ' > "$1"; test $? -le 1', json)
    local spans = {}
    for line in io.lines(json) do
      if line:find('"type":"match"', 1, true) then P.rg_spans(line, spans) end
    end
    local nmatch = 0
    for path, list in pairs(spans) do
      local rel = path:sub(#CFG.corpus + 2)
      rg_spans[rel] = rg_spans[rel] or {}
      for _, s in ipairs(list) do table.insert(rg_spans[rel], s); nmatch = nmatch + 1 end
    end
    local ids = {}
    for _, r in ipairs(set) do ids[r.id] = true end
    local mine = {}
    for _, p in ipairs(planted) do if ids[p.rule] then mine[#mine + 1] = p end end
    local hit = recall_by(mine, function(p) return P.covered(spans[CFG.corpus .. "/" .. p.file], p.offset, p.length) end)
    rg_res[mode.name] = {rules = #set, runs = t, mbps1 = mbps(t[1].median), mbpsN = mbps(t[2].median),
                         planted = #mine, found = hit, matches = nmatch}
    total1, totalN = total1 + t[1].median, totalN + t[2].median
    local rsrc = source(("one run of `%s`: matches whose byte span covers a planted secret of these rules [%s]"):format(rcmd, json))
    local label = mode.name == "rust" and "rg main set (own engine, line mode)" or ("rg %s set"):format(flags)
    row{label = ("%s, %d rules, -j1"):format(label, #set), value = mbps(t[1].median), unit = "MB/s", src = {t[1].src}}
    row{label = ("%s, %d rules, default threads"):format(label, #set), value = mbps(t[2].median), unit = "MB/s", src = {t[2].src}}
    row{label = ("%s: recall on its rules' secrets"):format(label), value = hit / math.max(1, #mine) * 100, unit = "%",
        of = ("%d/%d; %d matches"):format(hit, #mine, nmatch), src = {rsrc}}
  end
end
local rg_main = rg_res.rust
local all_hit = recall_by(planted, function(p) return P.covered(rg_spans[p.file], p.offset, p.length) end)
local rg_rss, rg_rss_src = rss({"rg", "--no-ignore", "--no-unicode", "-E", "none", "-j1", "-c", "-f", OUT .. "/scan-rg/rust.rgx", CFG.corpus}, RSS_RUNS)
local nsets, set_desc = 0, {}
for _, m in ipairs(P.MODES) do
  if #rg.sets[m.name] > 0 then nsets = nsets + 1; set_desc[#set_desc + 1] = ("%s %d"):format(m.name, #rg.sets[m.name]) end
end
row{label = ("rg, all %d sets one after another, -j1"):format(nsets), value = mbps(total1), unit = "MB/s",
    of = table.concat(set_desc, ", ") .. (#rg.dropped > 0 and ("; %d dropped"):format(#rg.dropped) or "; none dropped")}
row{label = ("rg, all %d sets, default threads"):format(nsets), value = mbps(totalN), unit = "MB/s"}
row{label = "rg recall, all sets together", value = all_hit / #planted * 100, unit = "%",
    of = ("%d/%d planted"):format(all_hit, #planted)}
row{label = "rg main set -j1 peak RSS", value = rg_rss / 1024, unit = "MB", src = {rg_rss_src}}
row{label = "ato 1 thread / rg main set -j1", value = ato1, unit = "MB/s", ratio = ato1 / rg_main.mbps1,
    of = "rg -j1", target = ">= 3x", met = ato1 / rg_main.mbps1 >= 3, src = {at[1].src, rg_main.runs[1].src}}
row{label = "ato 1 thread / all rg sets -j1", value = ato1, unit = "MB/s", ratio = ato1 / mbps(total1),
    of = "rg -j1, every rule"}
row{label = "ato all threads / rg main set, default threads", value = atoN, unit = "MB/s", ratio = atoN / rg_main.mbpsN,
    of = "rg"}
results.rg = {sets = rg_res, dropped = rg.dropped, oracle = rg.oracle, all_found = all_hit,
              total_s_j1 = total1, total_s_default = totalN, rss_kb = rg_rss}
-- }======================================================

-- {====================================================== few big files (diagnostic)
section("Diagnostic: the same bytes in 16 MB files (per-file cost out of the picture)")
do
  local dir = OUT .. "/corpus" .. sfx .. "-parts"
  local key = ("%d %s\n"):format(BYTES, CFG.examples_key)
  if read(dir .. ".stamp") ~= key then
    run{"rm", "-rf", dir, dir .. ".stamp"}
    run{"mkdir", "-p", dir}
    sh([[find "$1" -type f -print0 | sort -z | xargs -0 cat | split -C 16M -d -a 3 --additional-suffix=.txt - "$2/part-"]],
       CFG.corpus, dir)
    local f = assert(io.open(dir .. ".stamp", "w"))
    f:write(key)
    f:close()
  end
  local nparts = #assert(ato.fs.list(dir))
  local t = hyperfine("parts", {
    READALL .. " -t 1 " .. dir,
    READALL .. " -t " .. NPROC .. " " .. dir,
    ATO .. " scan --threads 1 --format jsonl " .. dir,
    ATO .. " scan --format jsonl " .. dir,
  }, FAST, false, 1, touch(dir))
  local tr = hyperfine("parts_rg", {"rg --no-ignore --no-unicode -E none -j1 -c -f " .. OUT .. "/scan-rg/rust.rgx " .. dir},
    SLOW, false, 0, touch(dir))
  local what = ("%d files"):format(nparts)
  row{label = ("readall, %s, 1 thread"):format(what), value = mbps(t[1].median), unit = "MB/s",
      ratio = mbps(t[1].median) / ceil1, of = "readall 1T on the tree", src = {t[1].src}}
  row{label = ("readall, %s, %d threads"):format(what, NPROC), value = mbps(t[2].median), unit = "MB/s",
      ratio = mbps(t[2].median) / ceilN, of = "readall on the tree", src = {t[2].src}}
  row{label = ("ato, %s, 1 thread"):format(what), value = mbps(t[3].median), unit = "MB/s",
      ratio = mbps(t[3].median) / ato1, of = "ato 1T on the tree", src = {t[3].src}}
  row{label = ("ato, %s, all threads"):format(what), value = mbps(t[4].median), unit = "MB/s",
      ratio = mbps(t[4].median) / atoN, of = "ato on the tree", src = {t[4].src}}
  row{label = ("rg main set -j1, %s"):format(what), value = mbps(tr[1].median), unit = "MB/s",
      ratio = mbps(tr[1].median) / rg_main.mbps1, of = "rg -j1 on the tree", src = {tr[1].src}}
  results.parts = {files = nparts, runs = t, rg = tr}
end
-- }======================================================

-- {====================================================== secretlint
section(("secretlint %s on the %.0f MB subset"):format(SECRETLINT, SUB_BYTES / 1e6))
do
  local sub_planted = {}
  for _, p in ipairs(planted) do if p.in_subset then sub_planted[#sub_planted + 1] = p end end
  local t_ato = hyperfine("ato_subset", {ATO .. " scan --threads 1 --format jsonl " .. CFG.subset,
                                         ATO .. " scan --format jsonl " .. CFG.subset}, FAST, false, 1, touch(CFG.subset))
  local r = assert(ato.exec{ATO, "scan", "--format", "jsonl", CFG.subset})
  local set = ato_findings(r.stdout, CFG.subset .. "/")
  local ato_hit = recall_by(sub_planted, function(p) return set[p.file .. "\0" .. p.fingerprint] end)
  local bin = OUT .. "/node_modules/secretlint/bin/secretlint.js"
  local pkg = read(OUT .. "/node_modules/secretlint/package.json")
  local ver = pkg and pkg:match('"version"%s*:%s*"([^"]+)"')
  if ver ~= SECRETLINT and have("npm") then
    log("  installing secretlint@%s into %s/node_modules ...", SECRETLINT, OUT)
    run{"npm", "install", "--prefix", OUT, "--no-audit", "--no-fund", "--loglevel=error",
        "secretlint@" .. SECRETLINT, "@secretlint/secretlint-rule-preset-recommend@" .. SECRETLINT}
    pkg = read(OUT .. "/node_modules/secretlint/package.json")
    ver = pkg and pkg:match('"version"%s*:%s*"([^"]+)"')
  end
  row{label = "ato, 1 thread, subset", value = mbps(t_ato[1].median, SUB_BYTES), unit = "MB/s", src = {t_ato[1].src}}
  row{label = "ato, all threads, subset", value = mbps(t_ato[2].median, SUB_BYTES), unit = "MB/s", src = {t_ato[2].src}}
  row{label = "ato recall, subset", value = ato_hit / math.max(1, #sub_planted) * 100, unit = "%",
      of = ("%d/%d planted in the subset"):format(ato_hit, #sub_planted)}
  if ver == SECRETLINT and have("node") then
    local rc = OUT .. "/secretlintrc.json"
    local f = assert(io.open(rc, "w"))
    f:write('{ "rules": [ { "id": "@secretlint/secretlint-rule-preset-recommend" } ] }\n')
    f:close()
    local cmd = ("cd %s && node %s --secretlintrc %s --format unix --no-color '**/*'"):format(
      CFG.subset, abs(bin), abs(rc))
    local t = hyperfine("secretlint", {cmd}, SLOW, true, 1, touch(CFG.subset))
    local json = abs(RES .. "/secretlint.json")
    local rr = assert(ato.exec{"node", abs(bin), "--secretlintrc", abs(rc), "--format", "json", "--no-color",
                               "--output", json, "**/*", cwd = CFG.subset, max_output = 1 << 30})
    assert(rr.code == 0 or rr.code == 1, "secretlint failed: " .. rr.stderr)
    local by_file, nmsg, seen, nseen = {}, 0, {}, 0
    for _, fr in ipairs(cjson.decode(read(json))) do
      local rel = fr.filePath:sub(#abs(CFG.subset) + 2)
      seen[rel], nseen = true, nseen + 1
      for _, m in ipairs(fr.messages) do
        by_file[rel] = by_file[rel] or {}
        table.insert(by_file[rel], {m.loc.start.line, m.loc["end"].line})
        nmsg = nmsg + 1
      end
    end
    local hit, missed = recall_by(sub_planted, function(p)
      for _, m in ipairs(by_file[p.file] or {}) do
        if m[1] <= p.end_line and m[2] >= p.line then return true end
      end
      return false
    end)
    local srss, srss_src = rss({"node", abs(bin), "--secretlintrc", abs(rc), "--format", "unix", "--no-color", "**/*"},
                               RSS_RUNS == 1 and 1 or 2, CFG.subset)
    local sl = mbps(t[1].median, SUB_BYTES)
    local rsrc = source(("one run with --format json --output %s; a planted secret counts when a message in its file starts or ends on its lines"):format(json))
    row{label = "secretlint, subset", value = sl, unit = "MB/s", src = {t[1].src}}
    row{label = "ato all threads / secretlint", value = mbps(t_ato[2].median, SUB_BYTES), unit = "MB/s",
        ratio = mbps(t_ato[2].median, SUB_BYTES) / sl, of = "secretlint"}
    local in_seen = 0
    for _, p in ipairs(sub_planted) do if seen[p.file] then in_seen = in_seen + 1 end end
    row{label = "secretlint recall, subset", value = hit / math.max(1, #sub_planted) * 100, unit = "%",
        of = ("%d/%d planted (%d in the %d files it read); %d messages"):format(hit, #sub_planted, in_seen, nseen, nmsg),
        src = {rsrc}}
    row{label = "secretlint peak RSS", value = srss / 1024, unit = "MB", src = {srss_src}}
    results.secretlint = {version = ver, runs = t, mbps = sl, found = hit, planted = #sub_planted, messages = nmsg,
                          files_read = nseen, planted_in_files_read = in_seen,
                          missed = missed, rss_kb = srss}
  else
    row{label = "secretlint", value = nil, unit = "", of = "not run: node/npm or the package is missing"}
  end
  results.subset = {ato = t_ato, ato_found = ato_hit, planted = #sub_planted}
end
-- }======================================================

-- {====================================================== git history
section(("git history: %d commits, %d secrets added and later removed"):format(hstamp.real_commits, hstamp.planted))
do
  local repo = HIST.repo
  local git_cmd = ATO .. " scan --git --format jsonl " .. repo
  local pipe_cmd = "git -C " .. repo .. " log -p --all --no-color --no-ext-diff | " .. ATO .. " scan --format jsonl -"
  local log_cmd = "git -C " .. repo .. " log -p --all --no-color --no-ext-diff > /dev/null"
  local t = hyperfine("git", {git_cmd, pipe_cmd, log_cmd}, FAST, true, 1, touch(repo))
  local rec = {}
  for i, cmd in ipairs{git_cmd, pipe_cmd} do
    local r = assert(ato.exec{"sh", "-c", cmd, max_output = 1 << 30})
    assert(r.code == 0 or r.code == 1, cmd .. " failed: " .. r.stderr)
    local out = RES .. (i == 1 and "/git_ato.jsonl" or "/git_logp.jsonl")
    local f = io.open(out, "wb")
    f:write(r.stdout)
    f:close()
    local set, n = ato_findings(r.stdout)
    local hit, missed = recall_by(hplanted, function(p) return set[p.fingerprint] end)
    rec[i] = {found = hit, findings = n, missed = missed, summary = r.stderr:match("ato scan:[^\n]*"), out = out}
  end
  local logp_bytes = tonumber(sh("git -C \"$1\" log -p --all --no-color --no-ext-diff | wc -c", repo).stdout)
  local grss, grss_src = rss({ATO, "scan", "--git", "--format", "jsonl", repo}, RSS_RUNS)
  row{label = "ato scan --git", value = t[1].median, unit = "s", of = rec[1].summary, src = {t[1].src}}
  row{label = "git log -p --all | ato scan -", value = t[2].median, unit = "s",
      of = ("%.1f MB of patches"):format(logp_bytes / 1e6), src = {t[2].src}}
  row{label = "  of which git log -p --all alone", value = t[3].median, unit = "s", src = {t[3].src}}
  row{label = "ato --git speed-up over log -p | scan -", value = t[2].median / t[1].median, unit = "x",
      ratio = t[2].median / t[1].median, of = "pipe time / --git time", target = ">= 2x", met = t[2].median / t[1].median >= 2}
  row{label = "ato --git recall", value = rec[1].found / #hplanted * 100, unit = "%",
      of = ("%d/%d; %d findings"):format(rec[1].found, #hplanted, rec[1].findings), target = "100%",
      met = rec[1].found == #hplanted, src = {source("one run of `" .. git_cmd .. "`, matched by fingerprint: " .. rec[1].out)}}
  row{label = "log -p | ato scan - recall", value = rec[2].found / #hplanted * 100, unit = "%",
      of = ("%d/%d; %d findings"):format(rec[2].found, #hplanted, rec[2].findings),
      src = {source("one run of `" .. pipe_cmd .. "`, matched by fingerprint: " .. rec[2].out)}}
  row{label = "ato --git peak RSS", value = grss / 1024, unit = "MB", src = {grss_src}}
  results.git = {runs = t, recall = rec, logp_bytes = logp_bytes, rss_kb = grss}
end
-- }======================================================

print("\nWhere the figures come from:")
for i, s in ipairs(sources) do print(("[%d] %s"):format(i, s)) end
print(("\nNotes: ato's recall is judged on the secret each example yields alone (scan.text), confirmed for %d/%d by PCRE2 (rg -P) on the example alone%s."):format(
  rg.oracle.agreed, rg.oracle.checked, #no_secret > 0 and ("; examples without a secret: " .. table.concat(no_secret, ", ")) or ""))
if #rg.dropped > 0 then
  for _, d in ipairs(rg.dropped) do print(("rg dropped %s: %s"):format(d.id, d.why)) end
else
  print(("rg: no rule dropped; %s (a rule goes to the first set in which rg finds all its examples)."):format(table.concat(set_desc, ", ")))
end
for _, k in ipairs{1, 2} do
  if #ato_rec[k].missed > 0 then print(("ato %s missed: %s"):format(k == 1 and "1T" or "all-T", table.concat(ato_rec[k].missed, ", "))) end
end
if #results.git.recall[1].missed > 0 then print("ato --git missed: " .. table.concat(results.git.recall[1].missed, ", ")) end
if #results.git.recall[2].missed > 0 then print("log -p | ato scan - missed: " .. table.concat(results.git.recall[2].missed, ", ")) end
if results.secretlint and #results.secretlint.missed > 0 then
  print("secretlint missed: " .. table.concat(results.secretlint.missed, ", "))
end

local build_end = build_id()
results.build, results.build_end = BUILD, build_end
if build_end ~= BUILD then
  print(("WARNING: the commit or the build changed during the run (%s -> %s): figures mix two builds")
    :format(BUILD, build_end))
end
results.rows = rows
results.sources = sources
results.elapsed_s = ato.now() - t_start
local f = assert(io.open(OUT .. "/scan.json", "w"))
f:write(cjson.encode(results), "\n")
f:close()
print(("(figures in %s/scan.json; raw data in %s; %.0f s)"):format(OUT, RES, ato.now() - t_start))
