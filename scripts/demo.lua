-- scripts/demo.lua: a dry run of the ato runtime, without network.
--
-- It plays the first minutes of an incident on a throwaway project: the
-- scanner looks for leaked keys (redacted on output) while a process probe
-- runs, a check that hangs is cut off by a timeout, and the findings land
-- in a report written atomically with mode 0600.
-- Run: bin/ato scripts/demo.lua [--keep]
local ato = require "ato"
local log = require "ato.log"
local scan = require "ato.scan"
local cjson = require "cjson"

local fs = ato.fs
local keep = arg[1] == "--keep"

-- Fake but well-formed secrets: what a leak looks like to the scanner.
local function fake_sendgrid_key(seed)
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
  local function run(n)
    local out = {}
    for i = 1, n do
      local k = (seed * 7919 + i * 31) % #alphabet + 1
      out[i] = alphabet:sub(k, k)
    end
    return table.concat(out)
  end
  return "SG." .. run(22) .. "." .. run(43)
end

-- {====================================================== the project
local function build_project(root)
  local files = {
    ["README.md"] = "# shop\nSend mail through SendGrid.\n",
    ["src/mailer.js"] = "const sg = require('@sendgrid/mail');\nsg.setApiKey(process.env.SENDGRID_API_KEY);\n",
    [".env"] = "SENDGRID_API_KEY=" .. fake_sendgrid_key(7) .. "\nDB_PASSWORD=correct-horse-battery\n",
    ["config/old_settings.py"] = 'SENDGRID_KEY = "' .. fake_sendgrid_key(11) .. '"\n',
    ["docs/setup.md"] = "Put your key in SENDGRID_API_KEY (never in the code).\n",
  }
  for path, text in pairs(files) do
    local full = root .. "/" .. path
    assert(fs.mkdir(full:match("^(.*)/[^/]*$"), nil, {parents = true}))
    assert(fs.write(full, text))
  end
  return files
end
-- }======================================================

-- {====================================================== the checks
-- The scanner walks the tree on its own threads; findings stream in and a
-- pool of tasks turns each into a log line (a playbook would revoke here).
local function scan_tree(root, workers)
  local found = ato.channel(16)
  local findings = {}
  local pool = {}
  for w = 1, workers do
    pool[w] = ato.spawn(function()
      for f in found do
        findings[#findings + 1] = {path = f.path:sub(#root + 2), rule = f.rule,
                                   line = f.line, redacted = f.redacted}
      end
    end)
  end
  local _, stats = assert(scan.tree({root}, {on_finding = function(f) found:send(f) end}))
  found:close()
  for _, w in ipairs(pool) do
    local _, err = w:join()
    if err then error(err, 0) end
  end
  table.sort(findings, function(a, b) return a.path < b.path end)
  return {files = stats.files, findings = findings}
end

local function probe_host()
  local r, err = ato.exec{"uname", "-sr", timeout = 5}
  if not r then return {error = tostring(err)} end
  return {system = r.stdout:gsub("%s+$", ""), exit = r.code}
end

-- A check that would hang forever (a dead API, say): the timeout cuts it.
local function stuck_check()
  local v, err = ato.timeout(0.2, function()
    ato.exec{"sleep", "30"}
    return "unreachable"
  end)
  return {result = v, error = err and err.kind}
end
-- }======================================================

local root = assert(ato.exec{"mktemp", "-d", "/tmp/ato-demo.XXXXXX"}).stdout:gsub("%s+$", "")
local cleanup <close> = setmetatable({}, {__close = function()
  if not keep then fs.remove(root, {recursive = true}) end
end})

log.info("drill started", {workspace = root})
local planted = build_project(root)
local t0 = ato.now()
local results = assert(ato.gather{
  function() return scan_tree(root, 4) end,
  probe_host,
  stuck_check,
})
local scanned, host, stuck = results[1], results[2], results[3]

for _, f in ipairs(scanned.findings) do
  log.warn("leaked secret", {path = f.path, rule = f.rule, line = f.line, secret = f.redacted})
end
log.info("host probed", host)
log.info("stuck check stopped", {error = stuck.error})

local report = {
  workspace = root, files = scanned.files, findings = scanned.findings,
  host = host, stuck_check = stuck, elapsed_s = ato.now() - t0,
}
local path = root .. "/incident-report.json"
assert(fs.write(path, cjson.encode(report), "600"))
local st = assert(fs.stat(path))

local n = 0
for _ in pairs(planted) do n = n + 1 end
print(("scanned %d files in %.2f s: %d leaked secrets; report %s (mode %s)%s")
  :format(scanned.files, report.elapsed_s, #scanned.findings, path, st.perms,
          keep and "" or ", removed at exit"))
assert(scanned.files == n, "scanned " .. scanned.files .. " files, planted " .. n)
assert(#scanned.findings == 2, "expected the two planted SendGrid keys")
assert(stuck.error == "timeout", "the stuck check was not cut off")
