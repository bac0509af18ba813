-- ato.scan end to end, in process: recall on a generated corpus (every
-- rule, in every kind of file its pattern takes, with fresh secrets),
-- near misses, git history, and the Lua API (streaming, progress, skips,
-- binary files, .gitignore, ato:allow, validators, cancellation, errors).
-- The CLI (`ato scan`) has its own spec, scan_cli_spec.lua.
--
-- Secrets are never printed: assertions compare fingerprints, counts,
-- rule ids, paths and lines (tests/lua/scan_corpus.lua makes them).
local ato = require "ato"
local scan = require "ato.scan"
local support = require "support"
-- the corpus generator sits next to this file
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local corpus = require "scan_corpus"

local SEED = 0x5EED2024                       -- the whole corpus follows from it

local function write(path, data)
  assert(ato.fs.mkdir(path:match("^(.*)/[^/]*$"), "755", {parents = true}))
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  return path
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

local function sorted_keys(t)
  local list = {}
  for k in pairs(t) do list[#list + 1] = k end
  table.sort(list)
  return list
end

-- At most n lines of a list, for failure messages.
local function first(list, n)
  local out = {}
  for i = 1, math.min(#list, n or 25) do out[i] = list[i] end
  if #list > #out then out[#out + 1] = ("... and %d more"):format(#list - #out) end
  return table.concat(out, "\n")
end

-- One line per finding, everything but the secret (two scans compare equal).
local function serialize(findings)
  local lines = {}
  for i, f in ipairs(findings) do
    lines[i] = table.concat({f.path, f.line, f.column, f.offset, f.rule, f.fingerprint,
                             f.redacted, f.line_text, f.commit or ""}, "\0")
  end
  table.sort(lines)
  return lines
end

-- Where findings are, never what: for failure messages.
local function where(findings)
  local t = {}
  for _, f in ipairs(findings) do t[#t + 1] = ("%s %s:%d:%d"):format(f.rule, f.path, f.line, f.column) end
  return table.concat(t, "\n")
end

-- No finding (busted would print the finding tables, secrets included).
local function assert_none(findings, what)
  assert(type(findings) == "table", "no findings list")
  assert.is_true(#findings == 0, (what and what .. ": " or "") .. "unexpected findings:\n" .. where(findings))
end

local function rules_of(findings)
  local list = {}
  for _, f in ipairs(findings) do list[#list + 1] = f.rule end
  table.sort(list)
  return list
end

describe("ato.scan", function()
  support.clean_after_each()
  local dir, cleanup, rules, by_id, gen

  setup(function()
    dir, cleanup = support.tmpdir()
    rules = corpus.plan(corpus.load_rules())
    by_id = {}
    for _, r in ipairs(rules) do by_id[r.id] = r end
    gen = corpus.new(SEED + 1)                -- for the small tests' keys
  end)
  teardown(function() cleanup() end)

  local function key(id) return gen:fresh_secret(by_id[id]) end

  it("tests the test kit: SHA-256 against sha256sum, CRC-32, rule files", function()
    for _, s in ipairs({"", "abc", ("x"):rep(55), ("y"):rep(56), ("z"):rep(64), ("\0\255"):rep(700)}) do
      local r = assert(ato.exec{"sha256sum", stdin = s})
      assert.equal(r.stdout:match("^%x+"), corpus.sha256(s))
    end
    assert.equal(0xcbf43926, corpus.crc32("123456789"))
    assert.equal("a b\\n\n\t\0", corpus.decode("a\\x20b\\\\n\\n\\t\\x00"))
    assert.equal(140, #rules)
    for _, r in ipairs(rules) do                -- the examples as this kit decodes them
      assert.is_true(#r.examples >= 2 and #r.negatives >= 2, r.id)
      assert.truthy(r.plan.class, r.id)
      for i, ex in ipairs(r.examples) do
        assert.truthy(corpus.find_rule(ex, r.id), r.id .. " example " .. i)
      end
    end
    -- a fresh GitHub token passes the engine's checksum; one changed character does not
    local t = key("github-pat")
    assert.truthy(corpus.find_rule("GITHUB_TOKEN=" .. t, "github-pat"))
    local bad = t:sub(1, 10) .. (t:sub(11, 11) == "a" and "b" or "a") .. t:sub(12)
    assert.is_nil((corpus.find_rule("GITHUB_TOKEN=" .. bad, "github-pat")))
  end)

  -- {====================================================== recall

  describe("recall corpus", function()
    local root, records, nfiles, nbytes, provider

    setup(function()
      root = dir .. "/corpus"
      records, nfiles, nbytes = corpus.new(SEED):build_recall(root, rules)
      provider = {}
      for _, r in ipairs(rules) do provider[r.id] = r.provider end
    end)

    it("holds every rule, long lines, files over 1 MB, mixed providers", function()
      local per_rule, per_file, long_line = {}, {}, 0
      for _, rec in ipairs(records) do
        per_rule[rec.source] = (per_rule[rec.source] or 0) + 1
        per_file[rec.path] = per_file[rec.path] or {}
        per_file[rec.path][rec.source] = true
        if rec.kind == "minified" then
          assert.equal(2, rec.line)
          if rec.column > 100000 then long_line = long_line + 1 end
        end
      end
      local missing = {}
      for _, r in ipairs(rules) do if not per_rule[r.id] then missing[#missing + 1] = r.id end end
      assert.same({}, missing)
      for _, r in ipairs(rules) do
        if r.plan.class ~= "block" and r.plan.class ~= "json" then
          assert.is_true(per_rule[r.id] >= 6, r.id .. " is planted in few kinds of files")
        end
      end
      assert.is_true(long_line >= 100, "secrets in the middle of the minified line")
      for _, rel in ipairs({"public/js/app.min.js", "storage/logs/laravel.log"}) do
        local st = assert(ato.fs.stat(root .. "/" .. rel))
        assert.is_true(st.size > 1000000, rel .. " is not over 1 MB")
        assert.is_true(count(per_file[root .. "/" .. rel]) >= 100, rel .. " mixes few providers")
      end
      local bundle = assert(io.open(root .. "/public/js/app.min.js")):read("a")
      assert.is_true(#bundle:match("\n([^\n]*)") > 1000000)
      print(("# recall corpus: %d secrets of %d rules in %d files, %.1f MB"):format(
        #records, count(per_rule), nfiles, nbytes / 1e6))
    end)

    it("finds every planted secret: rule, line, column, offset and SHA-256 fingerprint", function()
      local t0 = ato.now()
      local findings, stats = assert(scan.tree(root, {threads = 4}))
      local elapsed = ato.now() - t0
      assert.equal(nfiles, stats.files)
      assert.equal(nbytes, stats.bytes)
      assert.equal(#findings, stats.findings)
      assert.same({}, stats.skips)
      local at = {}                              -- path@offset -> findings there
      for _, f in ipairs(findings) do
        local k = f.path .. "@" .. f.offset
        at[k] = at[k] or {}
        table.insert(at[k], f)
      end
      local missed, planted_at = {}, {}
      for _, rec in ipairs(records) do
        local k = rec.path .. "@" .. rec.offset
        planted_at[k] = rec
        local hit
        for _, f in ipairs(at[k] or {}) do
          if f.rule == rec.rule then hit = f end
        end
        local where = ("%s (planted as %s in %s) %s:%d:%d"):format(rec.rule, rec.source,
          rec.form or rec.kind, rec.path:sub(#root + 2), rec.line, rec.column)
        if not hit then
          missed[#missed + 1] = where .. " not found"
        elseif hit.line ~= rec.line or hit.column ~= rec.column then
          missed[#missed + 1] = where .. (" found at %d:%d"):format(hit.line, hit.column)
        elseif hit.fingerprint ~= rec.fingerprint then
          missed[#missed + 1] = where .. " found with another fingerprint (a cut secret?)"
        end
      end
      assert.is_true(#missed == 0, #missed .. " of " .. #records .. " planted secrets missed:\n" .. first(missed))
      -- anything else is a generic rule on the same span as a planted secret
      -- (README: a provider key in an assignment is reported by both), or
      -- the PEM-in-a-JSON-string rule on a service account's private_key
      local unexpected, echoes = {}, 0
      for _, f in ipairs(findings) do
        local rec = planted_at[f.path .. "@" .. f.offset]
        local ok = rec and (rec.rule == f.rule or provider[f.rule] == "generic"
          or (rec.rule == "gcp-service-account-private-key" and f.rule == "pem-private-key-escaped"))
        if not ok then
          unexpected[#unexpected + 1] = ("%s %s:%d:%d"):format(f.rule, f.path:sub(#root + 2), f.line, f.column)
        elseif rec.rule ~= f.rule then
          echoes = echoes + 1
        end
      end
      assert.is_true(#unexpected == 0, "unexpected findings:\n" .. first(unexpected))
      -- every finding is consistent: fingerprint, redacted forms, rule fields
      for _, f in ipairs(findings) do
        local r = by_id[f.rule]
        assert.equal(corpus.sha256(f.secret), f.fingerprint)
        assert.equal(ato.redact.fingerprint(f.secret), f.fingerprint:sub(1, 8))
        assert.is_nil(f.redacted:find(f.secret, 1, true), f.rule .. ": redacted shows the secret")
        assert.is_nil(f.line_text:find(f.secret, 1, true), f.rule .. ": line_text shows the secret")
        assert.is_true(#f.line_text <= 2000, f.rule .. ": line_text of " .. #f.line_text .. " bytes")
        assert.same({r.name, r.provider, r.severity, r.verify},
                     {f.name, f.provider, f.severity, f.verify})
        assert.is_nil(f.commit)
      end
      print(("# recall: %d/%d planted secrets found (+%d generic findings on the same spans) in %.3f s"):format(
        #records, #records, echoes, elapsed))
    end)

    it("gives identical findings with 1 and 4 threads", function()
      local one = assert(scan.tree(root, {threads = 1}))
      local four = assert(scan.tree(root, {threads = 4}))
      assert.is_true(#one > #records)
      assert.equal(#one, #four)
      local a, b = serialize(one), serialize(four)
      for i = 1, #a do
        if a[i] ~= b[i] then error("threads 1 and 4 differ at finding " .. i) end
      end
      -- and the facade sorts them the same way: path, offset, rule
      for i = 1, #one do
        assert.equal(one[i].path .. one[i].offset .. one[i].rule, four[i].path .. four[i].offset .. four[i].rule)
      end
    end)

    it("streams findings with on_finding (the returned list is then empty)", function()
      local got = {}
      local findings, stats = assert(scan.tree(root, {on_finding = function(f) got[#got + 1] = f end}))
      assert_none(findings, "on_finding")
      local all = assert(scan.tree(root))
      assert.equal(#all, #got)
      assert.equal(#all, stats.findings)
      local a, b = serialize(all), serialize(got)
      for i = 1, #a do
        if a[i] ~= b[i] then error("streamed finding " .. i .. " differs") end
      end
    end)

    -- forms these rules once missed (the corpus left them out then): each
    -- one on its own, with a fresh secret, must be found
    local FORMER_GAPS = {
      ["django-secret-key"] = {"json", "python-dict", "php-array", "minified", "log"},
      ["laravel-app-key"] = {"yaml", "json", "js-property", "python-dict", "php-array", "minified", "log"},
    }
    for _, id in ipairs(sorted_keys(FORMER_GAPS)) do
      local forms = FORMER_GAPS[id]
      it("finds " .. id .. " in " .. table.concat(forms, ", "), function()
        local r, missed = by_id[id], {}
        for _, form in ipairs(forms) do
          local secret = gen:fresh_secret(r)
          if not corpus.find_rule(corpus.render(form, r, secret), id, secret) then
            missed[#missed + 1] = form
          end
        end
        assert.is_true(#missed == 0, id .. " misses " .. table.concat(missed, ", "))
      end)
    end
  end)

  -- }======================================================

  -- {====================================================== near misses

  describe("near misses", function()
    local root, records, controls, provider
    -- negatives of one rule that another rule rightly reports
    local CROSS = {
      ["aws-ses-smtp-password/negative 3"] = "aws-secret-access-key",      -- aws_secret_access_key = ...
      ["azure-ad-client-secret/negative 4"] = "google-oauth-client-secret", -- GOCSPX-...
      ["brevo-api-key/negative 2"] = "brevo-smtp-key",                      -- xsmtpsib-...
      ["brevo-smtp-key/negative 2"] = "brevo-api-key",                      -- xkeysib-...
      ["gcp-service-account-private-key/negative 4"] = "pem-pkcs8-private-key", -- raw newlines
      ["generic-authorization-bearer/negative 6"] = "jwt-token",           -- Bearer eyJ...
      ["gitlab-pat/negative 4"] = "gitlab-deploy-token",                    -- gldt-...
      ["postmark-account-token/negative 2"] = "postmark-server-token",
      ["postmark-server-token/negative 3"] = "postmark-account-token",
      ["smtp-url-password/negative 4"] = "postgres-url-password",
      ["square-access-token/negative 2"] = "facebook-access-token",         -- EAAG...
    }
    -- generated near misses that a generic rule rightly reports: a Sentry
    -- DSN whose secret is one character short (or has a '~') is still a
    -- URL with a password
    local GENERATED = {
      ["sentry-dsn-secret/one character short"] = "generic-url-credentials",
      ["sentry-dsn-secret/one character outside the charset"] = "generic-url-credentials",
    }

    setup(function()
      root = dir .. "/near"
      records, controls = corpus.new(SEED + 2):build_near_misses(root, rules)
      provider = {}
      for _, r in ipairs(rules) do provider[r.id] = r.provider end
    end)

    -- The record (near miss) holding a finding: the last one starting at or
    -- before its line in its file.
    local function record_of(f)
      local best
      for _, rec in ipairs(records) do
        if rec.path == f.path and rec.line <= f.line and (not best or rec.line > best.line) then best = rec end
      end
      return assert(best, "a finding outside every near miss: " .. f.path .. ":" .. f.line)
    end

    it("the controls (the same lines with a real secret) are found", function()
      assert.equal(140, #controls)
      local missed = {}
      for _, c in ipairs(controls) do
        if not corpus.find_rule(c.text, c.rule) then missed[#missed + 1] = c.rule end
      end
      assert.same({}, missed)
    end)

    it("generated near misses: no finding but the explained ones", function()
      local findings = assert(scan.tree(root .. "/generated"))
      local n = 0
      for _, rec in ipairs(records) do if not rec.what:find("^negative") then n = n + 1 end end
      local got = {}
      for _, f in ipairs(findings) do
        local rec = record_of(f)
        got[#got + 1] = ("%s/%s -> %s"):format(rec.rule, rec.what, f.rule)
      end
      table.sort(got)
      local want = {}
      for k, v in pairs(GENERATED) do want[#want + 1] = k .. " -> " .. v end
      table.sort(want)
      assert.same(want, got)
      print(("# near misses: %d generated lines, %d findings (explained)"):format(n, #findings))
    end)

    it("negatives: never the rule's own; other rules only as listed, or generic", function()
      local findings = assert(scan.tree(root .. "/negatives"))
      local own, cross, generic = {}, {}, 0
      for _, f in ipairs(findings) do
        local rec = record_of(f)
        local k = rec.rule .. "/" .. rec.what
        if f.rule == rec.rule then
          own[#own + 1] = ("%s reports its %s (%s:%d)"):format(f.rule, rec.what, f.path:sub(#root + 2), f.line)
        elseif provider[f.rule] == "generic" then
          generic = generic + 1
        else
          cross[k] = f.rule
        end
      end
      assert.is_true(#own == 0, first(own))
      assert.same(CROSS, cross)
      local n = 0
      for _, rec in ipairs(records) do if rec.what:find("^negative") then n = n + 1 end end
      -- the rules' negatives are mostly NAME=value lines whose value is too
      -- short or long, or of the wrong alphabet, for the provider: a generic
      -- rule (generic-secret-env, ...) still takes many of them, by design
      print(("# negatives: %d, %d reported by generic rules, %d by another provider's rule"):format(
        n, generic, count(cross)))
    end)
  end)

  -- }======================================================

  -- {====================================================== git

  describe("git history", function()
    local T0 = 1704067200                     -- 2024-01-01T00:00:00Z
    local BASE_ENV = {
      GIT_AUTHOR_NAME = "Alice Example", GIT_AUTHOR_EMAIL = "alice@example.com",
      GIT_COMMITTER_NAME = "Bob Committer", GIT_COMMITTER_EMAIL = "bob@example.com",
      GIT_CONFIG_NOSYSTEM = "1", GIT_CONFIG_GLOBAL = "/dev/null", HOME = "/nonexistent",
    }

    -- A repository in dir/name; repo.git(...) runs git in it (raises on
    -- failure, returns stdout trimmed); repo.commit(msg, k) commits
    -- everything at time T0 + k hours.
    local function new_repo(name)
      local repo = {path = dir .. "/git/" .. name}
      assert(ato.fs.mkdir(repo.path, "755", {parents = true}))
      function repo.git(...)
        local cmd = {"git", "-C", repo.path, ...}
        cmd.env = repo.env or BASE_ENV
        local r = assert(ato.exec(cmd))
        assert(r.code == 0, "git " .. table.concat({...}, " ") .. ": " .. r.stderr)
        return (r.stdout:gsub("%s+$", ""))
      end
      function repo.write(rel, text) return write(repo.path .. "/" .. rel, text) end
      function repo.commit(msg, k)
        local env = {}
        for a, b in pairs(BASE_ENV) do env[a] = b end
        env.GIT_AUTHOR_DATE = ("@%d +0000"):format(T0 + k * 3600)
        env.GIT_COMMITTER_DATE = env.GIT_AUTHOR_DATE
        repo.env = env
        repo.git("add", "-A")
        repo.git("commit", "-q", "--allow-empty", "-m", msg)
        repo.env = nil
        return repo.git("rev-parse", "HEAD")
      end
      repo.git("init", "-q", "-b", "main")
      return repo
    end

    local function of_rule(findings, id)
      local list = {}
      for _, f in ipairs(findings) do if f.rule == id then list[#list + 1] = f end end
      return list
    end

    it("finds a key added in commit 2 and removed in commit 4 once, with commit 2's id, author and date", function()
      local repo, k = new_repo("removed"), key("sendgrid-api-key")
      repo.write("README.md", "shop\n")
      repo.commit("first", 1)
      repo.write("config/mail.env", "MAIL_HOST=smtp.sendgrid.net\nSENDGRID=" .. k .. "\n")
      local c2 = repo.commit("add mail settings", 2)
      repo.write("README.md", "shop, now with mail\n")
      repo.commit("docs", 3)
      repo.write("config/mail.env", "MAIL_HOST=smtp.sendgrid.net\n")
      repo.commit("remove the key", 4)
      assert_none(assert(scan.tree(repo.path)), "work tree")   -- the work tree is clean
      local findings, stats = assert(scan.git(repo.path))
      assert.equal(1, #findings)
      local f = findings[1]
      assert.equal("sendgrid-api-key", f.rule)
      assert.equal(corpus.sha256(k), f.fingerprint)
      assert.equal(c2, f.commit)
      assert.equal("config/mail.env", f.path)
      assert.same({2, 10}, {f.line, f.column})
      assert.equal("Alice Example", f.author)
      assert.equal("alice@example.com", f.email)
      assert.equal(T0 + 2 * 3600, f.time)
      assert.equal("2024-01-01T02:00:00Z", f.date)
      assert.equal(4, stats.commits)
      assert.equal(1, stats.findings)
    end)

    it("finds a key that only a side branch holds", function()
      local repo, k = new_repo("side"), key("stripe-live-secret-key")
      repo.write("a.txt", "one\n")
      repo.commit("first", 1)
      repo.git("checkout", "-q", "-b", "feature/payments")
      repo.write("pay.py", "import stripe\nstripe.api_key = '" .. k .. "'\n")
      local side = repo.commit("try stripe", 2)
      repo.git("checkout", "-q", "main")
      repo.write("b.txt", "two\n")
      repo.commit("second", 3)
      local findings = of_rule(assert(scan.git(repo.path)), "stripe-live-secret-key")
      assert.equal(1, #findings)
      assert.equal(side, findings[1].commit)
      assert.equal("pay.py", findings[1].path)
      assert.equal(corpus.sha256(k), findings[1].fingerprint)
    end)

    it("finds a key reachable only through an annotated tag on a commit on no branch", function()
      local repo, k = new_repo("tagged"), key("github-pat")
      repo.write("a.txt", "one\n")
      repo.commit("first", 1)
      repo.git("checkout", "-q", "--detach")
      repo.write("release/token.env", "GH=" .. k .. "\n")
      local tagged = repo.commit("release with a token", 2)
      repo.git("tag", "-a", "v1.0.0", "-m", "release 1.0.0")
      repo.git("checkout", "-q", "main")
      assert.equal("", repo.git("branch", "--contains", tagged))   -- on no branch
      assert.equal(tagged, repo.git("rev-parse", "v1.0.0^{commit}"))
      local findings = assert(scan.git(repo.path))
      assert.same({"github-pat"}, rules_of(findings))
      assert.equal(tagged, findings[1].commit)
      assert.equal("release/token.env", findings[1].path)
      -- without the tag, the commit is unreachable
      repo.git("tag", "-d", "v1.0.0")
      assert_none(assert(scan.git(repo.path)), "without the tag")
    end)

    it("finds a blob no ref reaches only with all_objects, as `blob <id>` without a commit", function()
      local repo, k = new_repo("dangling"), key("openai-api-key")
      repo.write("a.txt", "one\n")
      repo.commit("first", 1)
      local loose = write(dir .. "/git/loose.txt", "OPENAI=" .. k .. "\n")
      local oid = repo.git("hash-object", "-w", loose)
      assert_none(assert(scan.git(repo.path)), "without all_objects")
      local findings = assert(scan.git(repo.path, {all_objects = true}))
      assert.same({"openai-api-key"}, rules_of(findings))
      local f = findings[1]
      assert.equal("blob " .. oid, f.path)
      assert.is_nil(f.commit)
      assert.is_nil(f.author)
      assert.equal(corpus.sha256(k), f.fingerprint)
      assert.same({1, 8}, {f.line, f.column})
    end)

    it("reports a blob held by 50 commits under two paths once, with the first commit and path", function()
      local repo, k = new_repo("fifty"), key("sendgrid-api-key")
      local content = "# mail\nSENDGRID=" .. k .. "\n"
      repo.write("config/app.env", content)
      repo.write("backup/app.env", content)
      local c1 = repo.commit("first", 1)
      local script = [[
        for i in $(seq 2 50); do
          echo "build $i" > counter.txt
          t=$((T0 + i * 3600))
          GIT_AUTHOR_DATE="@$t +0000" GIT_COMMITTER_DATE="@$t +0000" git add counter.txt
          GIT_AUTHOR_DATE="@$t +0000" GIT_COMMITTER_DATE="@$t +0000" git commit -qm "build $i"
        done]]
      local env = {T0 = tostring(T0)}
      for a, b in pairs(BASE_ENV) do env[a] = b end
      local r = assert(ato.exec{"sh", "-c", script, cwd = repo.path, env = env, timeout = 60})
      assert.equal(0, r.code, r.stderr)
      assert.equal("50", repo.git("rev-list", "--count", "HEAD"))
      -- git's own view: the blob, and the first path holding it in c1's tree
      local blob = repo.git("rev-parse", c1 .. ":config/app.env")
      assert.equal(blob, repo.git("rev-parse", c1 .. ":backup/app.env"))
      local first_path
      for line in repo.git("ls-tree", "-r", c1):gmatch("[^\n]+") do
        local oid, path = line:match("^%d+ blob (%x+)\t(.*)$")
        if oid == blob and not first_path then first_path = path end
      end
      local findings, stats = assert(scan.git(repo.path, {threads = 4}))
      assert.same({"sendgrid-api-key"}, rules_of(findings))
      assert.equal(c1, findings[1].commit)
      assert.equal(first_path, findings[1].path)
      assert.equal(T0 + 3600, findings[1].time)
      assert.equal(50, stats.commits)
      assert.equal(1, stats.findings)
      -- the same with one thread
      local one = assert(scan.git(repo.path, {threads = 1}))
      assert.same(serialize(findings), serialize(one))
    end)

    it("fails with kind \"git\" on a directory that is not a repository", function()
      local plain = dir .. "/git/not-a-repo"
      assert(ato.fs.mkdir(plain, "755", {parents = true}))
      local none, err = scan.git(plain)
      assert.is_nil(none)
      assert.equal("git", err.kind)
      assert.truthy(err.message:find(plain, 1, true), err.message)
      none, err = scan.git(dir .. "/git/missing")
      assert.is_nil(none)
      assert.equal("git", err.kind)
    end)
  end)

  -- }======================================================

  -- {====================================================== the Lua API

  describe("Lua API", function()
    local api
    setup(function()
      api = dir .. "/api"
      assert(ato.fs.mkdir(api, "755", {parents = true}))
    end)

    it("scan.text labels findings with opts.path, and scan.file with the file's path", function()
      local k = key("sendgrid-api-key")
      local text = "line one\n  sg: " .. k .. "\n"
      local f = assert(scan.text(text, {path = "https://shop.example.org/.env"}))
      assert.equal(1, #f)
      assert.equal("https://shop.example.org/.env", f[1].path)
      assert.same({2, 7, 15}, {f[1].line, f[1].column, f[1].offset})
      local unlabelled, stats = assert(scan.text(text))
      assert.equal("(text)", unlabelled[1].path)
      assert.equal(#text, stats.bytes)
      -- at offset 0, without a newline at the end
      local bare = assert(scan.text(k))
      assert.same({1, 1, 0}, {bare[1].line, bare[1].column, bare[1].offset})
      local file = write(api .. "/mail.yml", text)
      local ff, fstats = assert(scan.file(file))
      assert.equal(file, ff[1].path)
      assert.same({2, 7}, {ff[1].line, ff[1].column})
      assert.equal(1, fstats.files)
      assert.equal(f[1].fingerprint, ff[1].fingerprint)
    end)

    -- A job nobody waits on must neither hold the process open nor be
    -- freed twice when lua_close collects its userdata after shutdown.
    it("a scan job left open does not hold the process at exit, whether the script ends or fails", function()
      local start = [[
        local scanner = require "ato.scanner"
        local scan = require "ato.scan"
        JOB = scanner.job(assert(scan.engine()), "files", {"/usr/include", "/usr/share"}, {threads = 2})
      ]]
      local cases = {
        {"ends", "", 0},
        {"fails", "error('boom')", 1},
        {"fails in a task later", "local ato = require 'ato' ato.spawn(function() ato.sleep(0.05) error('late') end)", 1},
        {"exits", "os.exit(3)", 3},
      }
      for _, c in ipairs(cases) do
        local r = assert(ato.exec{support.ato_bin, "-e", start .. c[2], timeout = 60})
        assert.is_nil(r.signal, c[1] .. ": " .. r.stderr)
        assert.equal(c[3], r.code, c[1] .. ": " .. r.stderr)
        assert.is_nil(r.stderr:find("AddressSanitizer", 1, true), c[1] .. ": " .. r.stderr)
        assert.is_nil(r.stderr:find("still open", 1, true), c[1] .. ": " .. r.stderr)
      end
    end)

    it("counts lines and columns in bytes, in CRLF files and after UTF-8", function()
      local k = key("github-pat")
      local f = assert(scan.text("\xEF\xBB\xBF[gh]\r\nnote = \xC3\xA9t\xC3\xA9\r\ntoken \xE2\x86\x92 " .. k .. "\r\n"))
      assert.same({{"github-pat", 3, 11}}, {{f[1].rule, f[1].line, f[1].column}})
    end)

    it("gives the same findings wherever the text sits in memory", function()
      -- two lines of terraform-cloud-api-token's negatives: the second is a
      -- TOKEN= assignment that generic-secret-env takes (PCRE2 confirms it);
      -- a comment line of k bytes in front moves the text through every
      -- alignment mod 64 of the scanned buffer
      local text = "TF_TOKEN_app_terraform_io=dKjmXq6rlhhv63.atlasv1.VXDUoUovGs1e09MhTaBOKgc2EwENC6_iHf9ppoCjukg7aFi5EecpOOLnu9P\n\n"
        .. "TF_TOKEN_app_terraform_io=kB7xs5aGMujXh0.atlasv2.yTr53_Nz2ZcnhV4Ij-wdYfYSjLqz_loeraGAK49mtOgJTa0BQoCuTCRnE5EKQ9UwNwJ\n"
      local missed = {}
      for k = 0, 63 do
        local f = assert(scan.text(("#"):rep(k) .. "\n" .. text))
        if #f ~= 1 or f[1].rule ~= "generic-secret-env" or f[1].line ~= 4 then missed[#missed + 1] = k end
      end
      assert.is_true(#missed == 0, ("generic-secret-env missed after a comment of k bytes, k = %s (%d of 64)")
        :format(table.concat(missed, " "), #missed))
    end)

    it("calls on_progress while a slow scan runs, with the job's statistics", function()
      -- dense candidates for the generic rules (no digit in the values):
      -- PCRE2 works hard, a few MB take seconds with one thread
      local slow = api .. "/slow"
      local chunk = ('api_token = "' .. ("aB"):rep(100) .. '" '):rep(5000)
      for i = 1, 8 do write(("%s/part%d.txt"):format(slow, i), chunk) end
      local calls = {}
      local t0 = ato.now()
      local findings, stats = assert(scan.tree(slow, {threads = 1, on_progress = function(s)
        calls[#calls + 1] = s
      end}))
      local elapsed = ato.now() - t0
      assert_none(findings, "slow tree")
      assert.equal(8, stats.files)
      assert.equal(8 * #chunk, stats.bytes)
      if elapsed > 1.5 then
        assert.is_true(#calls >= 1, ("no progress call in a %.1f s scan"):format(elapsed))
      end
      local last_files = 0
      for _, s in ipairs(calls) do
        for _, field in ipairs({"files", "bytes", "blobs", "commits", "binary_skipped", "skipped",
                                "findings", "elapsed"}) do
          assert.equal("number", type(s[field]), field)
        end
        assert.is_true(s.files >= last_files and s.files <= 8)
        assert.is_true(s.bytes <= stats.bytes)
        last_files = s.files
      end
      print(("# progress: %d call(s) in a %.2f s scan"):format(#calls, elapsed))
    end)

    it("a task cancelled while it scans a large tree ends promptly", function()
      local slow = api .. "/slow-large"
      local chunk = ('api_token = "' .. ("aB"):rep(100) .. '" '):rep(2500)
      for i = 1, 60 do write(("%s/d%d/part.txt"):format(slow, i), chunk) end
      local started = false
      local task = ato.spawn(function()
        started = true
        return scan.tree(slow, {threads = 2})
      end)
      ato.sleep(0.1)
      assert.is_true(started)
      assert.equal("waiting", task:status())
      local t0 = ato.now()
      assert.is_true(task:cancel())
      local res, err = task:join(5)
      local took = ato.now() - t0
      assert.is_nil(res)
      assert.equal("cancelled", err.kind)
      assert.equal("cancelled", task:status())
      assert.is_true(took < 0.5, ("cancellation took %.2f s"):format(took))
      -- the engine serves the next scan at once
      local k = key("sendgrid-api-key")
      assert.same({"sendgrid-api-key"}, rules_of(assert(scan.text("SG " .. k))))
    end)

    it("reports files over max_file_size in stats.skips, with the reason", function()
      local tree = api .. "/sizes"
      write(tree .. "/small.env", "SENDGRID=" .. key("sendgrid-api-key") .. "\n")
      local big = write(tree .. "/big.env", ("#"):rep(3000) .. "\nSENDGRID=" .. key("sendgrid-api-key") .. "\n")
      local st = assert(ato.fs.stat(big))
      local findings, stats = assert(scan.tree(tree, {max_file_size = 2048}))
      assert.equal(1, #findings)
      assert.matches("small%.env$", findings[1].path)
      assert.equal(1, stats.files)
      assert.equal(1, stats.skipped)
      assert.same({{path = big, reason = ("too large: %d bytes (limit 2048)"):format(st.size)}}, stats.skips)
      local all, s2 = assert(scan.tree(tree, {max_file_size = st.size}))
      assert.equal(2, #all)
      assert.same({}, s2.skips)
    end)

    it("skips binary files (a NUL in the first 8 KiB) and counts them, unless binary = true", function()
      local tree = api .. "/binary"
      local k1, k2, k3 = key("sendgrid-api-key"), key("sendgrid-api-key"), key("sendgrid-api-key")
      write(tree .. "/image.png", "\x89PNG\r\n\x1a\n\0\0\0\rIHDR" .. "\nSENDGRID=" .. k1 .. "\n")
      write(tree .. "/late-nul.txt", ("x"):rep(9000) .. "\0\nSENDGRID=" .. k2 .. "\n")
      write(tree .. "/text.txt", "SENDGRID=" .. k3 .. "\n")
      local findings, stats = assert(scan.tree(tree))
      assert.equal(1, stats.binary_skipped)
      assert.equal(2, stats.files)
      local fps = {}
      for _, f in ipairs(findings) do fps[f.fingerprint] = f.path:match("[^/]+$") end
      assert.same({[corpus.sha256(k2)] = "late-nul.txt", [corpus.sha256(k3)] = "text.txt"}, fps)
      local all, s2 = assert(scan.tree(tree, {binary = true}))
      assert.equal(3, #all)
      assert.equal(0, s2.binary_skipped)
      assert.equal(3, s2.files)
    end)

    describe("gitignore = true", function()
      local repo, keys
      setup(function()
        repo = api .. "/ignoring"
        keys = {}
        local function leak(rel)
          keys[rel] = key("sendgrid-api-key")
          write(repo .. "/" .. rel, "SENDGRID=" .. keys[rel] .. "\n")
        end
        assert(ato.fs.mkdir(repo, "755", {parents = true}))
        assert.equal(0, assert(ato.exec{"git", "-C", repo, "init", "-q"}).code)
        write(repo .. "/.gitignore", "*.log\nbuild/\n!keep.log\n")
        write(repo .. "/sub/.gitignore", "local.env\n")
        for _, rel in ipairs({"app.env", "debug.log", "keep.log", "build/out.env",
                              "sub/local.env", "sub/shared.env"}) do leak(rel) end
      end)

      local function found(path, opts)
        local list = {}
        for _, f in ipairs(assert(scan.tree(path, opts))) do
          list[#list + 1] = f.path:sub(#repo + 2)
        end
        table.sort(list)
        return list
      end

      it("skips what git ignores (nested .gitignore and negations too), from the root or below", function()
        assert.same({"app.env", "build/out.env", "debug.log", "keep.log", "sub/local.env", "sub/shared.env"},
                    found(repo))
        assert.same({"app.env", "keep.log", "sub/shared.env"}, found(repo, {gitignore = true}))
        assert.same({"sub/shared.env"}, found(repo .. "/sub", {gitignore = true}))
        -- outside a work tree nothing is ignored
        local plain = api .. "/no-repo"
        write(plain .. "/.gitignore", "*.env\n")
        write(plain .. "/a.env", "SENDGRID=" .. key("sendgrid-api-key") .. "\n")
        assert.equal(1, #assert(scan.tree(plain, {gitignore = true})))
      end)

      it("still scans a tracked file that .gitignore matches (git does not ignore tracked files)", function()
        -- the classic leak: .env committed, then added to .gitignore
        local env = {GIT_AUTHOR_NAME = "a", GIT_AUTHOR_EMAIL = "a@example.com", GIT_COMMITTER_NAME = "a",
                     GIT_COMMITTER_EMAIL = "a@example.com", GIT_CONFIG_NOSYSTEM = "1", HOME = "/nonexistent"}
        local tracked = api .. "/tracked"
        assert(ato.fs.mkdir(tracked, "755", {parents = true}))
        local k = key("sendgrid-api-key")
        write(tracked .. "/.env", "SENDGRID=" .. k .. "\n")
        for _, args in ipairs({{"init", "-q"}, {"add", ".env"}, {"commit", "-qm", "env"}}) do
          local cmd = {"git", "-C", tracked, env = env}
          for _, a in ipairs(args) do cmd[#cmd + 1] = a end
          local r = assert(ato.exec(cmd))
          assert.equal(0, r.code, r.stderr)
        end
        write(tracked .. "/.gitignore", ".env\n")
        local check = assert(ato.exec{"git", "-C", tracked, "check-ignore", "-q", ".env", env = env})
        assert.equal(1, check.code)                -- git: not ignored (it is tracked)
        local findings = assert(scan.tree(tracked, {gitignore = true}))
        assert.equal(1, #findings, "the committed .env was skipped as ignored")
      end)
    end)

    it("follows symbolic links only with follow_links, and survives a loop", function()
      local tree, outside = api .. "/links", api .. "/outside"
      write(outside .. "/secret.env", "SENDGRID=" .. key("sendgrid-api-key") .. "\n")
      write(tree .. "/plain.txt", "nothing\n")
      assert(ato.fs.mkdir(tree .. "/loop", "755", {parents = true}))
      assert.equal(0, assert(ato.exec{"ln", "-s", outside, tree .. "/linked"}).code)
      assert.equal(0, assert(ato.exec{"ln", "-s", "..", tree .. "/loop/up"}).code)
      assert_none(assert(scan.tree(tree)), "links not followed")
      local findings, stats = assert(scan.tree(tree, {follow_links = true}))
      assert.equal(1, #findings)
      assert.equal(tree .. "/linked/secret.env", findings[1].path)
      assert.equal(2, stats.files)
    end)

    it("ato:allow on a line suppresses the findings whose secret touches it", function()
      local k = {}
      for i = 1, 4 do k[i] = key("sendgrid-api-key") end
      local text = table.concat({
        "SENDGRID=" .. k[1] .. "  # ato:allow (test fixture)",
        '{"a": "' .. k[2] .. '", "b": "' .. k[3] .. '"} // ato:allow',
        "# ato:allow applies to its own line only",
        "SENDGRID=" .. k[4],
      }, "\n") .. "\n"
      local f = assert(scan.text(text))
      assert.equal(1, #f)
      assert.equal(corpus.sha256(k[4]), f[1].fingerprint)
      -- a multi-line secret: ato:allow on any line it spans
      local pgp = by_id["pgp-private-key-block"]
      local block = gen:fresh_secret(pgp)
      local allowed = block:gsub("\n", "\nComment: ato:allow\n", 1)
      assert.truthy(corpus.find_rule(block, pgp.id))
      assert_none(assert(scan.text(allowed)), "ato:allow in a header")
      assert_none(assert(scan.text(block .. "  # ato:allow\n")), "ato:allow on the last line")
      assert.truthy(corpus.find_rule("ato:allow\n" .. block, pgp.id))
    end)

    it("no_validators reports placeholders and bad checksums; ato:allow still suppresses", function()
      local placeholder = "SENDGRID=SG." .. ("x"):rep(22) .. "." .. ("x"):rep(43) .. "\n"
      local t = key("github-pat")
      local badsum = "GH=" .. t:sub(1, -2) .. (t:sub(-1) == "A" and "B" or "A") .. "\n"
      local lowent = "MAIL_PASSWORD=a1aaaaaaaaaaaaaaaaaa\n"
      for _, c in ipairs({{placeholder, "sendgrid-api-key"}, {badsum, "github-pat"},
                          {lowent, "generic-secret-env"}}) do
        assert_none(assert(scan.text(c[1])), c[2])
        assert.same({c[2]}, rules_of(assert(scan.text(c[1], {no_validators = true}))), c[2])
        assert_none(assert(scan.text((c[1]:gsub("\n", " # ato:allow\n")), {no_validators = true})), c[2])
      end
    end)

    it("reports a missing path in stats.skips next to the findings of the others", function()
      local tree = api .. "/present"
      write(tree .. "/a.env", "SENDGRID=" .. key("sendgrid-api-key") .. "\n")
      local missing = api .. "/absent"
      local findings, stats = assert(scan.tree({tree, missing}))
      assert.equal(1, #findings)
      assert.same({{path = missing, reason = "cannot open: No such file or directory"}}, stats.skips)
      assert.equal(1, stats.skipped)
      local none, s2 = assert(scan.file(missing .. "/x.env"))
      assert_none(none, "missing file")
      assert.equal(1, #s2.skips)
      assert.matches("^cannot open: ", s2.skips[1].reason)
    end)

    it("rule files: a syntax error is nil, err kind \"rules\" naming file:line; custom engines work", function()
      local bad = write(api .. "/bad.rules", table.concat({
        "# a broken rule", "[broken-rule]", "name = Broken", "provider = test",
        "this line is not a key", ""}, "\n"))
      local eng, err = scan.engine{rules = {bad}, builtin = false}
      assert.is_nil(eng)
      assert.equal("rules", err.kind)
      assert.matches("^" .. bad:gsub("%p", "%%%0") .. ":5: ", err.message)
      local uncompiled = write(api .. "/regex.rules", table.concat({
        "[bad-regex]", "name = Bad regex", "provider = test", "severity = low",
        "pattern = (tk_[a-z]{8}", "example = tk_abcdefgh", "example = x tk_bcdefghi",
        "negative = tk_", "negative = nothing", ""}, "\n"))
      eng, err = scan.engine{rules = {uncompiled}, builtin = false}
      assert.is_nil(eng)
      assert.equal("rules", err.kind)
      assert.truthy(err.message:find("bad-regex", 1, true), err.message)
      assert.truthy(err.message:find(uncompiled .. ":1", 1, true), err.message)
      eng, err = scan.engine{builtin = false}
      assert.is_nil(eng)
      assert.equal("rules", err.kind)
      -- a good custom rule file, alone and next to the built-in rules
      local good = write(api .. "/good.rules", table.concat({
        "[acme-token]", "name = ACME token", "provider = acme", "severity = high",
        "pattern = \\b(acme_[a-z0-9]{16})\\b", "example = ACME=acme_q8w7e6r5t4y3u2i1",
        "example = x acme_m3n5b7v9c2p4z6l8 y", "negative = acme_short", "negative = xacme_q8w7e6r5t4y3u2i1", ""}, "\n"))
      local custom = assert(scan.engine{rules = {good}, builtin = false})
      assert.same({}, assert(scan.check{engine = custom}))
      assert.equal(1, #assert(scan.rules{engine = custom}))
      local text = "ACME=acme_z1x2c3v4b5n6m7l8\nSENDGRID=" .. key("sendgrid-api-key") .. "\n"
      assert.same({"acme-token"}, rules_of(assert(scan.text(text, {engine = custom}))))
      assert.same({"acme-token", "sendgrid-api-key"}, rules_of(assert(scan.text(text, {rules = {good}}))))
      assert.equal(141, #assert(scan.rules{rules = {good}}))
    end)

    it("rejects bad arguments with an error", function()
      assert.has_error(function() scan.text(42) end)
      assert.has_error(function() scan.text("x", "opts") end)
      assert.has_error(function() scan.tree(nil) end)
      assert.has_error(function() scan.git({}) end)
      assert.has_error(function() scan.engine{rules = {42}} end)
    end)
  end)

  -- }======================================================

  -- {====================================================== former gaps

  -- Lines people leak that no rule reported once: each must be found now,
  -- with its secret, by a rule of the expected kind ("generic": any rule
  -- of provider generic).
  describe("lines the rules once missed", function()
    local function fresh(id) return function() return gen:fresh_secret(by_id[id]) end end
    local generic_value = fresh("generic-secret-env")
    local CASES = {
      {"a Dockerfile `ARG NAME=value`", function(v) return "ARG MAIL_PASSWORD=" .. v .. "\n" end,
       generic_value, "generic"},
      {"a Dockerfile `ENV NAME value` (no '=')", function(v) return "ENV MAIL_PASSWORD " .. v .. "\n" end,
       generic_value, "generic"},
      {"a .env whose first line follows a UTF-8 BOM", function(v) return "\xEF\xBB\xBFMAIL_PASSWORD=" .. v .. "\n" end,
       generic_value, "generic"},
      {"a YAML file whose first line follows a UTF-8 BOM",
       function(v) return "\xEF\xBB\xBFmail_password: " .. v .. "\nmail_host: smtp.internal.test\n" end,
       generic_value, "generic"},
      {"PHP `'Authorization' => 'Bearer ...'`",
       function(v) return "$headers = ['Authorization' => 'Bearer " .. v .. "'];\n" end,
       fresh("generic-authorization-bearer"), "generic-authorization-bearer"},
      {"PHP `'Authorization' => 'Basic ...'`",
       function(v) return "$headers = ['Authorization' => 'Basic " .. v .. "'];\n" end,
       fresh("generic-authorization-basic"), "generic-authorization-basic"},
      {"an Azure SAS URL in HTML, `&amp;sig=`",
       function(v) return '<a href="https://acmeprod.blob.core.windows.net/b/db.tar.gz?sv=2022-11-02&amp;sr=b&amp;sig='
         .. v .. '">backup</a>\n' end,
       fresh("azure-sas-token"), "azure-sas-token"},
      {"PHP `define('TWILIO_AUTH_TOKEN', '...')`",
       function(v) return "define('TWILIO_AUTH_TOKEN', '" .. v .. "');\n" end,
       fresh("twilio-auth-token"), "twilio-auth-token"},
      {"Python `os.environ.get('OKTA_API_TOKEN', '...')`",
       function(v) return "OKTA_TOKEN = os.environ.get('OKTA_API_TOKEN', '" .. v .. "')\n" end,
       fresh("okta-api-token"), "okta-api-token"},
      {"docker-compose `APP_KEY: base64:...`",
       function(v) return "services:\n  app:\n    environment:\n      APP_KEY: " .. v .. "\n" end,
       fresh("laravel-app-key"), "laravel-app-key"},
      {"PHP `env('APP_KEY', 'base64:...')`",
       function(v) return "    'key' => env('APP_KEY', '" .. v .. "'),\n" end,
       fresh("laravel-app-key"), "laravel-app-key"},
      {"Python `os.environ.get('DJANGO_SECRET_KEY', '...')`",
       function(v) return "SECRET_KEY = os.environ.get('DJANGO_SECRET_KEY', '" .. v .. "')\n" end,
       fresh("django-secret-key"), "django-secret-key"},
    }
    for _, c in ipairs(CASES) do
      it("finds " .. c[1], function()
        local secret = c[3]()
        local fp = corpus.sha256(secret)
        local found = false
        for _, f in ipairs(assert(scan.text(c[2](secret)))) do
          local ok = c[4] == "generic" and by_id[f.rule].provider == "generic" or f.rule == c[4]
          if ok and f.fingerprint == fp then found = true end
        end
        assert.is_true(found, "no rule reports " .. c[1])
      end)
    end
  end)

  -- }======================================================
end)
