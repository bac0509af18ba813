-- bench/scan_corpus.lua: builds the data of the scan benchmark (bench/scan.lua
-- loads it with dofile; it can also run alone: bin/ato bench/scan_corpus.lua
-- [--quick]). Everything is rebuilt only when its stamp is missing or was
-- written for another configuration.
--
--   corpus    real text copied from the system: /usr/include, /usr/share/doc
--             (and its *.gz, decompressed), /usr/share/man (decompressed),
--             /usr/share/perl*, /usr/lib/python3*, /usr/lib/*/perl*,
--             /usr/lib/node_modules, /usr/src, then ~/.pyenv, until the
--             target size; if the sources run out, further copies (r01, ...)
--             of the first files. Kept: regular files, no hidden path
--             component, plain ASCII names, 1 byte to 8 MiB, no NUL byte
--             anywhere, no UTF-16 byte order mark. Layout:
--             corpus/r00/<tag>/<path under the source root>.
--   planted   every example line of every rule (rules/*.rules, escapes
--             decoded), each inserted as whole line(s) at a random line of a
--             different random corpus file. The manifest (JSON lines) records
--             file, line, byte offset, rule and the secret's fingerprint
--             (SHA-256, as ato prints it) and the (fake) secret itself.
--   subset    random corpus files (hard links, same relative paths) up to the
--             subset size, for the slow peers; manifest rows say in_subset.
--   history   a bare git repository built with git fast-import: each commit
--             adds, edits or deletes a few files whose text comes from
--             corpus files (docs and headers); some commits insert a rule
--             example into a file and a later commit takes it out again.
local ato = require "ato"
local cjson = require "cjson"

local M = {}
local VERSION = 3                -- bump when the layout or the method changes

local U = dofile "bench/util.lua"
local run, sh, read, write = U.run, U.sh, U.read, U.write

local function read_json(path)
  local s = read(path)
  local ok, v = pcall(cjson.decode, s or "")
  return ok and v or nil
end

local made_dirs = {}
local function mkdirs(dir)
  if made_dirs[dir] then return end
  assert(ato.fs.mkdir(dir, nil, {parents = true}))
  made_dirs[dir] = true
end

local function dirname(p) return p:match("^(.*)/[^/]*$") or "." end

-- Sorted regular files under root (find does not follow symlinks).
local function find_files(root)
  local out = run{"find", root, "-type", "f", "-print0", max_output = 1 << 30}.stdout
  local list = {}
  for p in out:gmatch("([^%z]+)%z") do list[#list + 1] = p end
  table.sort(list)
  return list
end

local function ok_name(rel)
  return rel:match("^[%w%._%-%+/@,=~]+$") and not rel:find("^%.") and not rel:find("/%.")
end

local MAX_FILE = 8 << 20

local function is_text(s)
  return #s > 0 and #s <= MAX_FILE and not s:find("\0", 1, true)
     and not s:find("^\xFF\xFE") and not s:find("^\xFE\xFF")
end

-- The source trees, in order: {tag, root} (gz trees decompressed into stage).
local function sources(stage)
  local dirs = sh([[for d in /usr/include /usr/share/doc /usr/share/perl* /usr/lib/python3* \
      /usr/lib/*/perl /usr/lib/*/perl5 /usr/lib/*/perl-base /usr/lib/node_modules /usr/src "$HOME/.pyenv"; do
    [ -d "$d" ] && [ ! -L "$d" ] && echo "$d"; done; true]]).stdout
  local list, pyenv = {}, (os.getenv("HOME") or "/nonexistent") .. "/.pyenv"
  for d in dirs:gmatch("[^\n]+") do
    local tag = d == pyenv and "pyenv" or d:gsub("^/", ""):gsub("[/.%-]", "_")
    list[#list + 1] = {tag = tag, root = d}
    if d == "/usr/share/doc" then
      list[#list + 1] = {tag = "usr_share_doc_gz", root = stage .. "/usr_share_doc", gz = d}
      list[#list + 1] = {tag = "usr_share_man_gz", root = stage .. "/usr_share_man", gz = "/usr/share/man"}
    end
  end
  return list
end

-- Decompresses every *.gz under from into to (same relative paths, .gz cut).
local function gunzip_tree(from, to)
  run{"rm", "-rf", to}
  mkdirs(to)
  sh([[cd "$1" && find . -type d -print0 | (cd "$2" && xargs -0 -r mkdir -p) &&
       find . -type f -name '*.gz' -print0 | xargs -0 -r sh -c '
         for f; do gzip -dc -- "$f" > "$0/${f%.gz}" 2>/dev/null || rm -f "$0/${f%.gz}"; done' "$2"]],
     from, M.abs(to))
end

local cwd
--- path made absolute (relative paths are taken from the current directory).
function M.abs(path)
  if path:sub(1, 1) == "/" then return path end
  cwd = cwd or run{"pwd"}.stdout:gsub("\n$", "")
  return cwd .. "/" .. path
end

local function shuffle(t)
  for i = #t, 2, -1 do
    local j = math.random(i)
    t[i], t[j] = t[j], t[i]
  end
  return t
end

--- Builds (or reuses) the corpus. cfg: corpus, subset, manifest, bytes,
--- subset_bytes, seed, rules (from scan_patterns, with examples_info),
--- examples_key (rebuilt when the rules' examples change).
--- Returns the stamp: {files, bytes, planted, subset_files, subset_bytes,
--- subset_planted, sources = {{tag, files, bytes}}, ...}.
function M.corpus(cfg, log)
  log = log or print
  local stamp_path = cfg.corpus .. ".stamp"
  local want = {version = VERSION, bytes = cfg.bytes, subset_bytes = cfg.subset_bytes, seed = cfg.seed,
                examples = cfg.examples_key}
  local stamp = read_json(stamp_path)
  if stamp and stamp.version == want.version and stamp.bytes_target == want.bytes
     and stamp.subset_target == want.subset_bytes and stamp.seed == want.seed
     and stamp.examples == want.examples then
    log(("corpus: reusing %s (%d files, %d bytes; stamp %s)"):format(cfg.corpus, stamp.files, stamp.bytes, stamp_path))
    return stamp
  end
  local t0 = ato.now()
  log(("corpus: building %s (%d bytes target) ..."):format(cfg.corpus, cfg.bytes))
  run{"rm", "-rf", cfg.corpus, cfg.subset, stamp_path, cfg.manifest}
  math.randomseed(cfg.seed)
  local stage = cfg.corpus .. ".stage"
  local copied, total, per_source = {}, 0, {}
  for _, src in ipairs(sources(stage)) do
    if total >= cfg.bytes then break end
    if src.gz then gunzip_tree(src.gz, src.root) end
    local n0, b0 = #copied, total
    local prefix = #src.root + 2
    for _, p in ipairs(find_files(src.root)) do
      if total >= cfg.bytes then break end
      local rel = p:sub(prefix)
      if ok_name(rel) and not (src.gz == nil and p:find("%.gz$")) then
        local s = read(p)
        if s and is_text(s) then
          local dst = ("r00/%s/%s"):format(src.tag, rel)
          mkdirs(cfg.corpus .. "/" .. dirname(dst))
          write(cfg.corpus .. "/" .. dst, s)
          copied[#copied + 1] = {rel = dst, size = #s}
          total = total + #s
        end
      end
    end
    per_source[#per_source + 1] = {tag = src.tag, root = src.gz or src.root, files = #copied - n0, bytes = total - b0}
    log(("  %-28s %7d files %6.1f MB"):format(src.tag, #copied - n0, (total - b0) / 1e6))
    if src.gz then run{"rm", "-rf", src.root} end
  end
  run{"rm", "-rf", stage}
  local unique = #copied
  local round = 0
  while total < cfg.bytes do       -- the sources ran out: copies of the first files
    round = round + 1
    for i = 1, unique do
      if total >= cfg.bytes then break end
      local c = copied[i]
      local dst = ("r%02d/%s"):format(round, c.rel:sub(5))
      mkdirs(cfg.corpus .. "/" .. dirname(dst))
      write(cfg.corpus .. "/" .. dst, read(cfg.corpus .. "/" .. c.rel))
      copied[#copied + 1] = {rel = dst, size = c.size}
      total = total + c.size
    end
    log(("  copy r%02d of the first files: %d files in all, %.1f MB"):format(round, #copied, total / 1e6))
  end

  -- {------------------------------------------------ plant
  local order = {}
  for i = 1, #copied do order[i] = i end
  shuffle(order)
  local rows, next_file = {}, 1
  for _, r in ipairs(cfg.rules) do
    for ei, info in ipairs(r.examples_info) do
      if #info.secrets > 0 then
        local c = copied[order[next_file]]
        next_file = next_file + 1
        local path = cfg.corpus .. "/" .. c.rel
        local s = read(path)
        -- insert before a random line start (past the last newline too)
        local k = math.random(select(2, s:gsub("\n", "")) + 1)
        local pos, line = 1, 1
        while line < k do
          pos, line = s:find("\n", pos, true) + 1, line + 1
        end
        s = s:sub(1, pos - 1) .. info.text .. "\n" .. s:sub(pos)
        write(path, s)
        c.size = #s
        for _, sec in ipairs(info.secrets) do
          local off = pos - 1 + sec.offset
          assert(s:sub(off + 1, off + #sec.secret) == sec.secret, "planting went wrong")
          local first = line + select(2, info.text:sub(1, sec.offset):gsub("\n", ""))
          rows[#rows + 1] = {
            file = c.rel, rule = r.id, provider = r.provider, example = ei,
            fingerprint = sec.fingerprint, secret = sec.secret, offset = off, length = #sec.secret,
            line = first, end_line = first + select(2, sec.secret:gsub("\n", "")),
            multiline = info.text:find("\n", 1, true) ~= nil,
          }
        end
      end
    end
  end
  total = 0
  for _, c in ipairs(copied) do total = total + c.size end
  -- }------------------------------------------------

  -- {------------------------------------------------ subset (hard links)
  local sub, sub_bytes, in_sub = {}, 0, {}
  for _, i in ipairs(shuffle(order)) do
    if sub_bytes >= cfg.subset_bytes then break end
    local c = copied[i]
    sub[#sub + 1] = c.rel
    sub_bytes = sub_bytes + c.size
    in_sub[c.rel] = true
  end
  table.sort(sub)
  mkdirs(cfg.subset)
  local list = cfg.subset .. ".files0"
  write(list, table.concat(sub, "\0") .. "\0")
  sh([[cd "$1" && xargs -0 cp --parents -l -t "$2" < "$3"]], cfg.corpus, M.abs(cfg.subset), M.abs(list))
  local sub_planted = 0
  for _, row in ipairs(rows) do
    row.in_subset = in_sub[row.file] or false
    if row.in_subset then sub_planted = sub_planted + 1 end
  end
  -- }------------------------------------------------

  local lines = {}
  for i, row in ipairs(rows) do lines[i] = cjson.encode(row) end
  write(cfg.manifest, table.concat(lines, "\n") .. "\n")
  stamp = {version = VERSION, bytes_target = cfg.bytes, subset_target = cfg.subset_bytes, seed = cfg.seed,
           examples = want.examples, files = #copied, unique_files = unique, bytes = total,
           planted = #rows, planted_files = next_file - 1, subset_files = #sub, subset_bytes = sub_bytes,
           subset_planted = sub_planted, sources = per_source, manifest = cfg.manifest,
           built_in_s = ato.now() - t0, built_at = os.date("!%Y-%m-%dT%H:%M:%SZ")}
  write(stamp_path, cjson.encode(stamp) .. "\n")
  log(("corpus: %d files, %d bytes, %d secrets planted in %d files; subset %d files, %d bytes, %d planted (%.0f s)")
    :format(#copied, total, #rows, next_file - 1, #sub, sub_bytes, sub_planted, ato.now() - t0))
  return stamp
end

-- {====================================================== history

local function split_lines(s)
  local t = {}
  for l in s:gmatch("[^\n]*\n?") do if l ~= "" then t[#t + 1] = l end end
  return t
end

local AUTHORS = {
  {"Ada Lovelace", "ada@example.org"}, {"Grace Hopper", "grace@example.org"},
  {"Ken Thompson", "ken@example.org"}, {"Barbara Liskov", "barbara@example.org"},
  {"Dennis Ritchie", "dmr@example.org"}, {"Frances Allen", "fran@example.org"},
}

--- Builds (or reuses) the history repository. cfg: repo, manifest, commits,
--- secrets, seed, corpus (the built corpus dir, for the text pool), rules.
function M.history(cfg, log)
  log = log or print
  local stamp_path = cfg.repo .. ".stamp"
  local stamp = read_json(stamp_path)
  if stamp and stamp.version == VERSION and stamp.commits == cfg.commits and stamp.seed == cfg.seed
     and stamp.secrets == cfg.secrets and stamp.examples == cfg.examples_key then
    log(("history: reusing %s (%d commits, %d secrets; stamp %s)"):format(cfg.repo, stamp.commits,
      stamp.planted, stamp_path))
    return stamp
  end
  local t0 = ato.now()
  log(("history: building %s (%d commits) ..."):format(cfg.repo, cfg.commits))
  run{"rm", "-rf", cfg.repo, stamp_path, cfg.manifest}
  math.randomseed(cfg.seed)
  -- text pool: the docs and headers of the corpus, up to 64 KiB each
  local pool = {}
  for _, tag in ipairs{"usr_share_doc", "usr_share_doc_gz", "usr_include"} do
    local dir = cfg.corpus .. "/r00/" .. tag
    if ato.fs.exists(dir) then
      for _, p in ipairs(find_files(dir)) do
        local st = ato.fs.stat(p)
        if st and st.size <= 65536 then
          local rel = p:sub(#dir + 2)
          pool[#pool + 1] = {path = p, repo_path = (tag == "usr_include" and "include/" or "doc/") .. rel}
        end
      end
    end
  end
  assert(#pool > 100, "history: no text pool under " .. cfg.corpus)
  -- the examples to plant: distinct, at random
  local examples = {}
  for _, r in ipairs(cfg.rules) do
    for ei, info in ipairs(r.examples_info) do
      if #info.secrets > 0 then examples[#examples + 1] = {rule = r, index = ei, info = info} end
    end
  end
  shuffle(examples)
  local nsec = math.min(cfg.secrets, #examples)
  local plant_at, remove_at = {}, {}
  for i = 1, nsec do
    local c = math.random(2, math.floor(cfg.commits * 0.9))
    plant_at[c] = plant_at[c] or {}
    table.insert(plant_at[c], examples[i])
  end

  local files, paths, locked = {}, {}, {}   -- path -> content; list of paths; path -> true
  local function add_path(p, content)
    if files[p] == nil then paths[#paths + 1] = p end
    files[p] = content
  end
  local function del_path(p)
    files[p] = nil
    for i, q in ipairs(paths) do if q == p then table.remove(paths, i) break end end
  end
  local function random_unlocked()
    for _ = 1, 50 do
      local p = paths[math.random(#paths)]
      if not locked[p] then return p end
    end
  end
  local function pool_lines(n)
    local lines = split_lines(read(pool[math.random(#pool)].path))
    if #lines == 0 then return {} end
    local a = math.random(#lines)
    local out = {}
    for i = a, math.min(#lines, a + n - 1) do out[#out + 1] = lines[i] end
    if #out > 0 and not out[#out]:find("\n$") then out[#out] = out[#out] .. "\n" end
    return out
  end

  local stream_path = cfg.repo .. ".fi"
  local out = assert(io.open(stream_path, "wb"))
  local rows, ts = {}, 1700000000
  local stats = {adds = 0, edits = 0, deletes = 0, blob_bytes = 0}
  for c = 1, cfg.commits do
    local changed, deleted, msg = {}, {}, {}
    local nops = math.random(1, 4)
    for _ = 1, nops do
      local x = math.random()
      if #paths < 30 or x < 0.30 then
        local src = pool[math.random(#pool)]
        if files[src.repo_path] == nil then
          add_path(src.repo_path, read(src.path))
          changed[src.repo_path] = true
          stats.adds = stats.adds + 1
          msg[#msg + 1] = "add " .. src.repo_path
        end
      elseif x < 0.95 then
        local p = random_unlocked()
        if p then
          local lines = split_lines(files[p])
          local a = math.random(#lines + 1)
          local drop = math.random(0, math.min(8, #lines - a + 1))
          for _ = 1, drop do table.remove(lines, a) end
          for i, l in ipairs(pool_lines(math.random(1, 12))) do table.insert(lines, a + i - 1, l) end
          if #lines > 0 and not lines[#lines]:find("\n$") then lines[#lines] = lines[#lines] .. "\n" end
          files[p] = table.concat(lines)
          changed[p] = true
          stats.edits = stats.edits + 1
          msg[#msg + 1] = "update " .. p
        end
      elseif #paths > 50 then
        local p = random_unlocked()
        if p then
          del_path(p)
          changed[p] = nil
          deleted[#deleted + 1] = p
          stats.deletes = stats.deletes + 1
          msg[#msg + 1] = "remove " .. p
        end
      end
    end
    for _, ex in ipairs(plant_at[c] or {}) do
      local p = assert(random_unlocked(), "history: no file to plant into")
      local lines = split_lines(files[p])
      local k = math.random(#lines + 1)
      if #lines > 0 and not lines[#lines]:find("\n$") then lines[#lines] = lines[#lines] .. "\n" end
      table.insert(lines, k, ex.info.text .. "\n")
      files[p] = table.concat(lines)
      changed[p] = true
      locked[p] = true
      local gone = math.min(cfg.commits, c + math.random(1, 100))
      remove_at[gone] = remove_at[gone] or {}
      table.insert(remove_at[gone], {path = p, text = ex.info.text .. "\n"})
      msg[#msg + 1] = "configure " .. p
      for _, sec in ipairs(ex.info.secrets) do
        rows[#rows + 1] = {rule = ex.rule.id, provider = ex.rule.provider, example = ex.index, path = p,
                           commit = c, removed = gone, fingerprint = sec.fingerprint, secret = sec.secret,
                           multiline = ex.info.text:find("\n", 1, true) ~= nil}
      end
    end
    for _, rm in ipairs(remove_at[c] or {}) do
      local s = files[rm.path]
      local a, b = s:find(rm.text, 1, true)
      if a then files[rm.path] = s:sub(1, a - 1) .. s:sub(b + 1) end
      changed[rm.path] = true
      locked[rm.path] = nil
      msg[#msg + 1] = "drop credentials from " .. rm.path
    end
    if next(changed) or #deleted > 0 then
      local who = AUTHORS[math.random(#AUTHORS)]
      ts = ts + math.random(60, 7200)
      local m = table.concat(msg, "; ") .. "\n"
      out:write("commit refs/heads/main\n",
        ("author %s <%s> %d +0000\ncommitter %s <%s> %d +0000\n"):format(who[1], who[2], ts, who[1], who[2], ts),
        ("data %d\n"):format(#m), m)
      for _, p in ipairs(deleted) do out:write("D ", p, "\n") end
      local list = {}
      for p in pairs(changed) do list[#list + 1] = p end
      table.sort(list)
      for _, p in ipairs(list) do
        local s = files[p]
        out:write("M 100644 inline ", p, "\n", ("data %d\n"):format(#s), s, "\n")
        stats.blob_bytes = stats.blob_bytes + #s
      end
      out:write("\n")
    end
  end
  out:close()
  run{"git", "init", "-q", "--bare", "-b", "main", cfg.repo}
  sh([[git -C "$1" fast-import --quiet < "$2"]], cfg.repo, stream_path)
  run{"git", "-C", cfg.repo, "repack", "-a", "-d", "-f", "-q"}
  run{"git", "-C", cfg.repo, "prune-packed"}
  run{"rm", "-f", stream_path}
  local ncommits = tonumber(run{"git", "-C", cfg.repo, "rev-list", "--all", "--count"}.stdout)
  local pack = run{"du", "-sb", cfg.repo}.stdout:match("^(%d+)")
  local lines = {}
  for i, row in ipairs(rows) do lines[i] = cjson.encode(row) end
  write(cfg.manifest, table.concat(lines, "\n") .. "\n")
  stamp = {version = VERSION, commits = cfg.commits, seed = cfg.seed, secrets = cfg.secrets,
           examples = cfg.examples_key,
           real_commits = ncommits, planted = #rows, files_at_head = #paths, repo_bytes = tonumber(pack),
           adds = stats.adds, edits = stats.edits, deletes = stats.deletes,
           blob_bytes_written = stats.blob_bytes, built_in_s = ato.now() - t0}
  write(stamp_path, cjson.encode(stamp) .. "\n")
  log(("history: %d commits, %d files at HEAD, %d secrets planted and removed, repo %.1f MB (%.0f s)")
    :format(ncommits, #paths, #rows, tonumber(pack) / 1e6, ato.now() - t0))
  return stamp
end

-- }======================================================

return M
