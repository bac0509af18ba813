-- Contract-test helper: Stoplight Prism (npm @stoplight/prism-cli, pinned in
-- tests/prism/package.json) as a validating proxy between ato.sendgrid and
-- a server that claims to be SendGrid (the sandbox), checked against the
-- official OpenAPI description.
--
--   local prism = require "prism.prism"           -- tests/ is on package.path
--   local p = prism.start(sandbox_base_url)       -- ~2-4 s: once per file
--   local c = sendgrid.client{api_key = key, base_url = p.url, on_response = p:observer()}
--   ... calls ...
--   assert(#p:violations() == 0, prism.format(p:violations()))
--   p:stop()
--
-- The spec: <repo root>/../shared/sendgrid-oai/oas_v3.json (CI clones the
-- repo beside shared/), or $ATO_SENDGRID_OAS. Missing spec or Prism: start()
-- raises with the reason; a contract test never skips.
--
-- How `prism proxy <spec> <upstream>` behaves (5.14.2; read in its source,
-- prism-core/dist/factory.js, prism-http/dist/forwarder/index.js,
-- prism-http-server/dist/server.js, and seen on the wire with the sandbox):
--  * Each request is routed against the spec. When an operation matches,
--    Prism checks the request (security, path/query/header parameters,
--    body), forwards it, then checks the upstream's response (status
--    declared? headers, content type and body against that status's schema).
--    Without --errors (how we run it) nothing is blocked or rewritten: the
--    request goes upstream even when invalid, and the upstream's response
--    comes back as it was, minus hop-by-hop headers. X-RateLimit-*, Link
--    and the rest pass through untouched.
--  * The findings come back in ONE response header, `sl-violations`: a JSON
--    array of {location = {"request"|"response", ...}, severity =, code =,
--    message =}; request and response findings share it (location[1] tells
--    them apart). Above ~8 KB the value is cut and prefixed "Too many
--    violations! " (no longer JSON): the observer records that as a
--    violation of its own. No violations: no header.
--  * Severities seen: "Error" for schema mismatches (code = the JSON-schema
--    keyword: type, required, format, ...), for a missing or empty-valued
--    Authorization (code 401, "Invalid security scheme used"; the key itself
--    is not checked, any non-empty value passes) and for a 204 body or
--    content type the spec does not expect; "Warning" for a path not in the
--    spec ("Selected route not found") and for a status the operation does
--    not declare ("Unable to match the returned status code with those
--    defined in the document: 204,401"). We count every severity: either
--    way the client or the sandbox left the spec.
--  * Paths not in the spec are forwarded as they are, with that warning and
--    no response check (there is no operation to check against).
--  * 204: fine when the spec declares it without content (DELETE
--    /v3/api_keys/{id}); several operations declare a JSON object under 204,
--    and then an empty 204 is two Errors (see KNOWN_DEFECTS).
--  * Prism drops the client's Host header, so the upstream sees its own
--    address: the absolute Link URLs the sandbox builds name the sandbox,
--    not Prism. ato.sendgrid follows only their path (on its own base URL),
--    so paged walks stay behind Prism.
--  * An upstream 501 makes Prism answer from the spec's examples; an
--    unreachable upstream is a 5xx problem+json from Prism, without
--    sl-violations. Prism fills in Accept and User-Agent when the client
--    sends none, and refuses a GET or HEAD with a body.
--  * It watches the spec file and reloads it on change. We run it at
--    -v warn (one log line per violation) into a temporary prism.log,
--    shown when it fails to start.
local ato = require "ato"
local cjson = require "cjson"
local http = require "ato.http"
local support = require "support"

local M = {}

-- {====================================================== known spec defects

-- Violations that are the spec's fault, not the client's or the sandbox's:
-- violations() leaves them out. An entry matches a violation when each of
-- its fields does (a field may be a list of alternatives; nil: anything):
-- method, path (a Lua pattern, anchored, on the path without its query),
-- status, location (a pattern on the dotted location, e.g.
-- "response.body.result"), message (a pattern). why: the defect and the
-- spec file that has it (under shared/sendgrid-oai/). Add an entry only for
-- a violation Prism reported, after checking the spec is at fault.
-- A 204 the spec gives a JSON object body: RFC 9110 (15.3.5) says a 204 has
-- no content, and the successor spec (twilio/sendgrid-oai @ dbe0e0d,
-- spec/json/tsg_*_v3.json) declares these 204s without content, as the
-- old spec does for DELETE /v3/api_keys/{id} and /v3/teammates/pending/{token}.
local function no_content(methods, path, file)
  return {method = methods, path = path, status = 204, location = {"^response$", "^response%.body$"},
          message = {'^The received media type "" does not match', "^Response body must be object"},
          why = ("spec/paths/%s declares `%s %s` 204 with an application/json object body; a 204 has "
            .. "no content (RFC 9110 15.3.5) and the successor spec declares none"):format(file,
            type(methods) == "table" and table.concat(methods, "|") or methods, path)}
end

M.KNOWN_DEFECTS = {
  no_content({"PATCH", "DELETE"}, "/v3/subusers/[^/]+", "settings/subusers_api.json"),
  no_content("DELETE", "/v3/teammates/[^/]+", "settings/teammate.json"),
  no_content("DELETE", "/v3/access_settings/whitelist/[^/]+", "security/ip_access_management.json"),
  no_content("DELETE", "/v3/suppression/bounces/[^/]+", "supression_management/bounces.json"),
  no_content("DELETE", "/v3/suppression/bounces", "supression_management/bounces.json"),
  no_content("DELETE", "/v3/suppression/blocks/?[^/]*", "supression_management/blocks.json"),
  no_content("DELETE", "/v3/suppression/spam_reports/?[^/]*", "supression_management/spam_reports.json"),
  no_content("DELETE", "/v3/suppression/invalid_emails/?[^/]*", "supression_management/invalid.json"),
  no_content("DELETE", "/v3/asm/suppressions/global/[^/]+", "supression_management/global_suppressions.json"),
  no_content("DELETE", "/v3/whitelabel/domains/%d+", "sender_verification/domain_authentication.json"),
  no_content("DELETE", "/v3/verified_senders/%d+", "sender_verification/sender_verification.json"),
  no_content("PATCH", "/v3/user/scheduled_sends/[^/]+", "cancel_scheduled_sends.json"),
  {method = "GET", path = "/v3/mailbox_providers/stats", location = "^request%.query%.mailbox_providers$",
   message = "must be string",
   why = "spec/paths/stats/stats.json types the mailbox_providers query parameter a string while its own "
     .. "description says to give up to 10 by repeating it (an array, explode form, as the stoplight "
     .. "section api-requests describes for every array parameter)"},
  {method = "DELETE", path = "/v3/suppression/bounces/[^/]+", location = "^request%.query$",
   message = "required property 'email_address'",
   why = "spec/paths/supression_management/bounces.json (suppression_bounces_{email}.delete) requires a "
     .. "query parameter email_address repeating the {email} the path already carries; the sibling "
     .. "DELETE /v3/suppression/blocks/{email} and spam_reports/{email} have none, and the successor "
     .. "spec (twilio/sendgrid-oai tsg_suppressions_v3.json, and sendgrid-go's DeleteSuppressionBounce) "
     .. "takes the path parameter only"},
  {status = 429, location = "^response$", message = "^Unable to match the returned status code",
   why = "SendGrid answers 429 on every endpoint once its rate limit is spent (oai_v3_stoplight.json's "
     .. "text section api-rate-limits, and the rate-limits page it cites), but oas_v3.json declares 429 "
     .. "for only a few operations (SSO, segments, e-mail activity), none of those the client calls"},
  -- mail send (seen through the proxy with curl and with ato.sendgrid's send)
  {method = "POST", path = "/v3/mail/send", location = "^request%.body%.custom_args$", message = "must be string",
   why = "spec/paths/mail_send/mail_send.json types the top-level custom_args `string` while its own "
     .. "description speaks of key/value pairs, the personalization-level custom_args it overrides is an "
     .. "object, and the API takes an object of strings (the stoplight file's mail-send error docs)"},
  {method = "POST", path = "/v3/mail/send", location = "^request%.body$",
   message = {"required property 'subject'", "required property 'content'"},
   why = "spec/paths/mail_send/mail_send.json requires top-level subject and content, but a subject per "
     .. "personalization, or a template_id, is a valid send; the successor spec (tsg_mail_v3.json) "
     .. "requires only personalizations and from. (This also hides a send with no subject at all.)"},
  -- Not entries: the teammates list's examples say `results` and the pending
  -- invites' `pending_id` where the schemas say `result` and `token`; Prism
  -- checks responses against schemas, not examples, so it never reports them.
}
-- }======================================================

-- {====================================================== locating things

-- This file's directory, absolute (package.path has tests/ relative to cwd).
local function here()
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  local dir = src:match("^(.*)/[^/]*$") or "."
  local r = assert(ato.exec{"realpath", "-e", dir})
  return (r.stdout:gsub("%s+$", ""))
end

local function realpath(path)
  local r = assert(ato.exec{"realpath", "-m", path})
  return (r.stdout:gsub("%s+$", ""))
end

--- prism.spec_path() -> the oas_v3.json to check against, or raises why not.
function M.spec_path()
  local path, from = os.getenv("ATO_SENDGRID_OAS"), "ATO_SENDGRID_OAS"
  if not path or path == "" then
    path, from = here() .. "/../../../shared/sendgrid-oai/oas_v3.json", "<repo root>/../shared"
  end
  path = realpath(path)              -- absolute: Prism runs in the spec's folder
  if not ato.fs.stat(path) then
    error(("SendGrid OpenAPI spec not found at %s (from %s): the contract tests need "
      .. "sendgrid/sendgrid-oai's oas_v3.json and its spec/ folder there, or ATO_SENDGRID_OAS "
      .. "set to its path"):format(path, from), 0)
  end
  return path
end

local function prism_bin()
  local bin = here() .. "/node_modules/.bin/prism"
  if not ato.fs.stat(bin) then
    error(("Prism is not installed (%s missing): run `npm ci --prefix tests/prism` "
      .. "(make test does it)"):format(bin), 0)
  end
  return bin
end

-- A port free right now (the kernel's pick); Prism binds it seconds later,
-- so start() retries when someone else took it meanwhile.
local function free_port()
  local s = assert(http.serve{host = "127.0.0.1", port = 0, handler = function() return {status = 204} end})
  local _, port = s:address()
  s:close()
  return port
end

-- }======================================================

-- {====================================================== the process

local Prism = {}
Prism.__index = Prism

local function read_log(path)
  local f = io.open(path)
  if not f then return "" end
  local text = f:read("a")
  f:close()
  return text
end

-- Prism's own answer: CORS headers on everything it serves (cors is on by
-- default), which the sandbox never sends. A bare connect would also
-- succeed on a stranger that took the port.
local function answers(url)
  local resp = http.request{url = url .. "/", timeout = 2, connect_timeout = 1}
  return resp and resp.headers["access-control-allow-origin"] ~= nil
end

-- A word for sh, quoted whatever it holds.
local function shq(s)
  return "'" .. (s:gsub("'", "'\\''")) .. "'"
end

-- Starts one Prism on port; returns the task once it answers, or nil and its log.
local function launch(bin, spec, upstream, port, log)
  local dir = spec:match("^(.*)/[^/]*$")
  -- sh only to send the output to a file (ato.exec captures it in memory)
  local cmd = ("exec %s proxy %s %s -h 127.0.0.1 -p %d -v warn > %s 2>&1")
    :format(shq(bin), shq(spec), shq(upstream), port, shq(log))
  -- cwd = the spec's folder: its $refs are relative (spec/paths/...)
  local task = ato.spawn(function() return ato.exec{"sh", "-c", cmd, cwd = dir} end)
  local url = "http://127.0.0.1:" .. port
  for _ = 1, 600 do                          -- 60 s or more: a loaded CI machine
    local st = task:status()
    if st ~= "waiting" and st ~= "ready" then break end
    if answers(url) then return task, url end
    ato.sleep(0.1)
  end
  task:cancel()
  task:join()
  return nil, read_log(log)
end

--- prism.start(upstream_url) -> a running Prism proxy: .url, .startup
--- (seconds it took), :observer(), :violations(), :all(), :clear(), :stop().
function M.start(upstream)
  local spec, bin = M.spec_path(), prism_bin()
  local dir, cleanup = support.tmpdir()
  local log = dir .. "/prism.log"
  local t0, task, url = ato.time(), nil, nil
  for _ = 1, 3 do
    task, url = launch(bin, spec, upstream, free_port(), log)
    if task then break end
    if not url:find("EADDRINUSE", 1, true) then break end
  end
  if not task then
    cleanup()
    error("Prism did not start: " .. (url ~= "" and url or "no output"), 0)
  end
  local p = setmetatable({url = url, task = support.keep(task), log = log, cleanup = cleanup,
                          startup = ato.time() - t0, seen = {}, spec = spec}, Prism)
  return p
end

--- p:stop(): stops Prism (SIGTERM to its process group, by ato.exec's
--- cancellation) and removes its log; again is a no-op.
function Prism:stop()
  if not self.task then return end
  local task = self.task
  self.task = nil
  task:cancel()
  task:join()
  self.cleanup()
end

-- }======================================================

-- {====================================================== violations

-- sl-violations as a list of entries (or one entry saying it was cut).
local function decode(value)
  local ok, list = pcall(cjson.decode, value)
  if ok and type(list) == "table" then return list end
  return {{location = {"sl-violations"}, severity = "Error", message = "sl-violations is not JSON (Prism cuts it "
    .. "above 8 KB: 'Too many violations!'): " .. value:sub(1, 300)}}
end

local function entry(method, path, status, v)
  local loc = {}
  for i, part in ipairs(type(v.location) == "table" and v.location or {}) do loc[i] = tostring(part) end
  return {method = method, path = path, status = status, location = table.concat(loc, "."),
          code = v.code ~= cjson.null and v.code or nil, message = tostring(v.message),
          severity = tostring(v.severity)}
end

--- p:observer() -> function(method, path, resp) for sendgrid.client's
--- on_response: records every violation Prism reports for the exchange.
function Prism:observer()
  return function(method, path, resp)
    local value = resp.headers["sl-violations"]
    if not value then return end
    for _, v in ipairs(decode(value)) do
      self.seen[#self.seen + 1] = entry(method, path, resp.status, v)
    end
  end
end

-- A matcher field: nil (anything), a value, or a list of alternatives;
-- test(alternative) says whether one matches.
local function any(field, test)
  if field == nil then return true end
  if type(field) ~= "table" then return test(field) end
  for _, f in ipairs(field) do
    if test(f) then return true end
  end
  return false
end

local function is_defect(d, v, path)
  return any(d.method, function(m) return m == v.method end)
     and any(d.path, function(p) return path:match("^" .. p .. "$") ~= nil end)
     and any(d.status, function(s) return s == v.status end)
     and any(d.location, function(l) return v.location:match(l) ~= nil end)
     and any(d.message, function(m) return v.message:match(m) ~= nil end)
end

local function known_defect(v)
  local path = v.path:gsub("%?.*$", "")
  for _, d in ipairs(M.KNOWN_DEFECTS) do
    if is_defect(d, v, path) then return d end
  end
end

--- p:clear(): forgets what was recorded (a test's own violations only)
function Prism:clear()
  self.seen = {}
end

--- p:all() -> every violation recorded, spec defects included
function Prism:all()
  return self.seen
end

--- p:violations() -> the recorded violations that are not known spec
--- defects: {method, path, status, location, code, message, severity}
function Prism:violations()
  local out = {}
  for _, v in ipairs(self.seen) do
    if not known_defect(v) then out[#out + 1] = v end
  end
  return out
end

--- prism.format(list) -> one line per violation, for a failure message
function M.format(list)
  local lines = {("%d contract violation(s):"):format(#list)}
  for _, v in ipairs(list) do
    lines[#lines + 1] = ("  %s %s -> %s  [%s] %s: %s%s"):format(v.method, v.path, tostring(v.status),
      v.severity, v.location, v.message, v.code and (" (" .. tostring(v.code) .. ")") or "")
  end
  return table.concat(lines, "\n")
end

-- }======================================================

return M
