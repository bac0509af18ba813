-- scripts/demo.lua: a dry run of the ato runtime, without network.
--
-- It plays the first minutes of an incident on a throwaway project: the
-- scanner looks for leaked keys (redacted on output) while a process probe
-- runs, the SendGrid account is audited (a taken-over drill account served
-- by `ato sandbox` on loopback), a check that hangs is cut off by a
-- timeout, and the findings land in a report written with mode 0600.
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

-- The account audit a playbook starts with, against the sandbox's "ato"
-- scenario: what is there that we did not put there?
local OURS = {keys = {["ato-drill-admin"] = true, ["production-mailer"] = true, ["stats-dashboard"] = true},
              subusers = {["acme-marketing"] = true, ["acme-transactional"] = true},
              teammates = {["ops-lead"] = true, analyst = true}, ips = {["198.51.100.10/32"] = true},
              webhook_host = "hooks.acme.example", domains = {["acme.example"] = true}}

local function audit_sendgrid(root)
  local store = assert(require("ato.store").open(root .. "/state/ato.db"))
  local sb, base, admin = assert(require("ato.sendgrid.sandbox").start{store = store, scenario = "ato", seed = 7})
  local sg = assert(require("ato.sendgrid").client{api_key = admin, base_url = base})
  local found = {}
  local function flag(kind, what) found[#found + 1] = {kind = kind, what = what} end
  for k in sg:api_keys() do if not OURS.keys[k.name] then flag("api key", k.name) end end
  for u in sg:subusers() do if not OURS.subusers[u.username] then flag("subuser", u.username) end end
  for t in sg:teammates() do if not OURS.teammates[t.username] then flag("teammate", t.username) end end
  for _, p in ipairs(assert(sg:pending_teammates())) do flag("pending invite", p.email) end
  for _, e in ipairs(assert(sg:ip_allowlist())) do if not OURS.ips[e.ip] then flag("allowed ip", e.ip) end end
  for _, w in ipairs((assert(sg:event_webhooks()))) do
    if w.url:match("^https?://([^/]+)") ~= OURS.webhook_host then flag("event webhook", w.url) end
  end
  for d in sg:domains() do if not OURS.domains[d.domain] then flag("sending domain", d.domain) end end
  local rows = assert(sg:stats{start_date = os.date("!%Y-%m-%d", os.time() - 7 * 86400)})
  local m = require("ato.sendgrid").totals(rows)
  local reputation = assert(sg:account()).reputation
  sb:close()
  store:close()
  return {findings = found, reputation = reputation, week = {requests = m.requests,
          bounce_rate = m.bounces / m.processed, spam_rate = m.spam_reports / m.delivered}}
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
-- the project the scanner walks, and (outside it) the sandbox's state
local project = root .. "/project"
local planted = build_project(project)
local t0 = ato.now()
local results = assert(ato.gather{
  function() return scan_tree(project, 4) end,
  probe_host,
  stuck_check,
  function() return audit_sendgrid(root) end,
})
local scanned, host, stuck, account = results[1], results[2], results[3], results[4]

for _, f in ipairs(scanned.findings) do
  log.warn("leaked secret", {path = f.path, rule = f.rule, line = f.line, secret = f.redacted})
end
log.info("host probed", host)
log.info("stuck check stopped", {error = stuck.error})
for _, f in ipairs(account.findings) do log.warn("not ours in the SendGrid account", f) end
log.info("SendGrid account, last 7 days", {reputation = account.reputation, requests = account.week.requests,
         bounce_rate = ("%.1f %%"):format(account.week.bounce_rate * 100),
         spam_rate = ("%.2f %%"):format(account.week.spam_rate * 100)})

local report = {
  workspace = root, files = scanned.files, findings = scanned.findings,
  host = host, stuck_check = stuck, sendgrid = account, elapsed_s = ato.now() - t0,
}
local path = root .. "/incident-report.json"
assert(fs.write(path, cjson.encode(report), "600"))
local st = assert(fs.stat(path))

local n = 0
for _ in pairs(planted) do n = n + 1 end
print(("scanned %d files in %.2f s: %d leaked secrets; %d things in the SendGrid account that are not "
  .. "ours; report %s (mode %s)%s"):format(scanned.files, report.elapsed_s, #scanned.findings,
  #account.findings, path, st.perms, keep and "" or ", removed at exit"))
assert(scanned.files == n, "scanned " .. scanned.files .. " files, planted " .. n)
assert(#scanned.findings == 2, "expected the two planted SendGrid keys")
assert(stuck.error == "timeout", "the stuck check was not cut off")
-- two keys, a subuser, a teammate, an invite, an ip, the webhook, a domain
assert(#account.findings == 8, "expected the 8 attacker changes of the ato scenario")
