-- ato.sendgrid: the SendGrid v3 API client every playbook talks through
-- (ato.http underneath; the official OpenAPI description in
-- ../shared/sendgrid-oai is the reference).
--
--   local sendgrid = require "ato.sendgrid"
--   local sg = assert(sendgrid.client())           -- SENDGRID_API_KEY, SENDGRID_BASE_URL
--   print(table.concat(assert(sg:scopes()), " "))
--   for key in sg:api_keys() do print(key.api_key_id, key.name) end
--   for b in sg:bounces{limit = 500} do ... end     -- follows the API's paging
--
-- The key comes from the caller (api_key =), SENDGRID_API_KEY, or a key
-- file (key_file =, or SENDGRID_API_KEY_FILE) that must be mode 0600 or
-- stricter. It never appears in errors, logs or tostring(client).
--
-- Rate limits: the client reads X-RateLimit-Remaining/Reset per endpoint
-- and, when an endpoint's budget is spent, waits for its reset before the
-- next call instead of drawing a 429; a 429 all the same is waited out (up
-- to max_wait, 120 s by default) and retried (3 times at most).
--
-- Failures come back as nil, err with err.kind "http" (an HTTP error:
-- err.status, err.errors (the API's list), err.method, err.path), or the
-- transport's kinds (connect, timeout, ...); misuse raises.
local ato = require "ato"
local cjson = require "cjson"
local http = require "ato.http"
local json = require "ato.json"
local redact = require "ato.redact"


local M = {}

-- A copy of a caller's list, marked so that an empty one goes out as []
-- (lua-cjson writes every empty table as {}); nil stays nil.
local function list_of(t)
  if t == nil then return nil end
  local out = json.array()
  for i, v in ipairs(t) do out[i] = v end
  return out
end

local BASE = {global = "https://api.sendgrid.com", eu = "https://api.eu.sendgrid.com"}

local Client = {}
Client.__index = Client

-- {====================================================== construction

local function read_key_file(path)
  local st, err = ato.fs.stat(path)
  if not st then return nil, ato.err("key_file", ("key file %s: %s"):format(path, tostring(err))) end
  if st.perms and tonumber(st.perms, 8) & tonumber("077", 8) ~= 0 then
    return nil, ato.err("key_file", ("key file %s is mode %s: it must be 0600 or stricter (chmod 600 %s)")
      :format(path, st.perms, path))
  end
  local text = assert(ato.fs.read(path))
  local key = text:match("^%s*(%S+)%s*$")
  if not key then return nil, ato.err("key_file", ("key file %s holds no key"):format(path)) end
  return key
end

--- sendgrid.client{api_key =, key_file =, base_url =, on_behalf_of =,
--- region = "global"|"eu", max_wait =, timeout =, on_response =} -> client | nil, err
--- on_response(method, path, resp) sees every HTTP response (tracing, and
--- the contract tests read Prism's sl-violations header there).
function M.client(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("bad argument #1 to 'client' (table expected)", 2) end
  local key, err = opts.api_key or os.getenv("SENDGRID_API_KEY"), nil
  local file = opts.key_file or os.getenv("SENDGRID_API_KEY_FILE")
  if (not key or key == "") and file then key, err = read_key_file(file) end
  if not key or key == "" then
    return nil, err or ato.err("no_key", "no SendGrid API key: give api_key, set SENDGRID_API_KEY, or a key file")
  end
  local region = opts.region or "global"
  if not BASE[region] then error("bad region '" .. tostring(region) .. "' (global or eu)", 2) end
  local base = opts.base_url or os.getenv("SENDGRID_BASE_URL") or BASE[region]
  base = base:gsub("/+$", "")
  local c = setmetatable({base = base, on_behalf_of = opts.on_behalf_of, max_wait = opts.max_wait or 120,
                          timeout = opts.timeout or 30, windows = {}, calls = 0, waited = 0, throttled = 0,
                          on_response = opts.on_response}, Client)
  -- the key lives in a closure, not a field: pretty-printing or dumping the
  -- client cannot show it
  c.auth = function() return "Bearer " .. key end
  c.key_label = redact.value(key)
  return c
end

function Client:__tostring()
  return ("sendgrid client (%s, key %s%s)"):format(self.base, self.key_label,
    self.on_behalf_of and (", on behalf of " .. self.on_behalf_of) or "")
end

-- }======================================================

-- {====================================================== requests

-- The endpoint a rate-limit window belongs to: method and path, without
-- the query and with ids and addresses as {id} (SendGrid counts per
-- endpoint: a loop deleting 1,000 addresses is one window, and the table
-- of windows stays small).
local function endpoint(method, path)
  path = path:gsub("%?.*$", "")
  path = path:gsub("/([^/]+)", function(seg)
    if seg:find("@", 1, true) or seg:find("%%40") or seg:match("^%d+$") or #seg >= 16 then return "/{id}" end
  end)
  return method .. " " .. path
end

local function api_error(resp, method, path)
  local ok, body = pcall(cjson.decode, resp.body or "")
  local list = ok and type(body) == "table" and body.errors or {}
  local first = list[1] and list[1].message or resp.reason or ""
  local e = ato.err("http", ("%s %s: %d %s"):format(method, path, resp.status, first),
                    {status = resp.status, errors = list, method = method, path = path})
  return e
end

-- Waits until a spent endpoint's window resets (pacing, not a 429).
function Client:pace(ep)
  local w = self.windows[ep]
  if w and w.remaining and w.remaining <= 0 and w.reset then
    local dt = w.reset - ato.time()
    if dt > 0 then
      if dt > self.max_wait then return nil end
      self.waited = self.waited + dt
      ato.sleep(dt + 0.05)
    end
    w.remaining = nil
  end
  return true
end

function Client:note_limits(ep, resp)
  local rem = tonumber(resp.headers["x-ratelimit-remaining"])
  local reset = tonumber(resp.headers["x-ratelimit-reset"])
  if rem or reset then self.windows[ep] = {remaining = rem, reset = reset} end
end

--- client:request(method, path [, {query =, json =, headers =}]) -> body, resp | nil, err
--- path starts with /v3/; body is the decoded JSON (or "" for no content).
function Client:request(method, path, opts)
  opts = opts or {}
  local ep = endpoint(method, path)
  local headers = {Authorization = self.auth(), Accept = "application/json"}
  if self.on_behalf_of then headers["on-behalf-of"] = self.on_behalf_of end
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  for attempt = 1, 4 do
    self:pace(ep)
    self.calls = self.calls + 1
    local resp, err = http.request{method = method, url = self.base .. path, query = opts.query,
                                   headers = headers, json = opts.json, timeout = self.timeout}
    if not resp then return nil, err end
    if self.on_response then self.on_response(method, path, resp) end
    self:note_limits(ep, resp)
    if resp.status == 429 and attempt < 4 then
      self.throttled = self.throttled + 1
      local reset = tonumber(resp.headers["x-ratelimit-reset"])
      local dt = reset and (reset - ato.time()) or (2 ^ attempt)
      if dt > self.max_wait then return nil, api_error(resp, method, path) end
      self.waited = self.waited + math.max(0, dt)
      ato.sleep(math.max(0, dt) + 0.05)
    elseif resp.status >= 400 then
      return nil, api_error(resp, method, path)
    else
      if resp.body == nil or resp.body == "" then return "", resp end
      local ok, body = pcall(json.decode, resp.body)
      if not ok then return nil, ato.err("protocol", ("%s %s: the body is not JSON"):format(method, path)) end
      return body, resp
    end
  end
end

--- client:call(method, path [, opts]) -> the decoded body | nil, err: a
--- request whose caller wants the answer only (the methods below).
function Client:call(method, path, opts)
  local body, err = self:request(method, path, opts)
  if body == nil then return nil, err end
  return body
end

-- }======================================================

-- {====================================================== paging

-- The next page's path and query from a Link header (rel="next").
local function next_link(resp)
  local link = resp.headers["link"]
  if not link then return nil end
  for part in link:gmatch("[^,]+") do
    local url = part:match('<([^>]+)>%s*;%s*rel="?next"?')
    if url then return url:match("^https?://[^/]+(/.*)$") or url end
  end
end

--- An iterator over a limit/offset list: follows Link rel="next" when the
--- API sends it, else steps the offset until a short page. The items are
--- `extract(body)` (default: the body itself, a JSON array). Errors raise
--- inside the loop: wrap it in pcall where a failure is expected.
function Client:pages(path, query, extract, page_size)
  page_size = page_size or 500
  query = query or {}
  local q = {}
  for k, v in pairs(query) do q[k] = v end
  -- SendGrid's pages hold 500 at most: asking more would make a full page
  -- look short, and end the walk early where no Link header says otherwise
  q.limit = math.min(q.limit or page_size, 500)
  q.offset = q.offset or 0
  local items, i, next_path, done = {}, 0, nil, false
  local function fetch()
    local body, resp
    if next_path then
      body, resp = self:request("GET", next_path)
    else
      body, resp = self:request("GET", path, {query = q})
    end
    if not body then error(resp, 0) end
    items = extract and extract(body) or body
    i = 0
    next_path = next_link(resp)
    if resp.headers["link"] then
      -- the API pages with Link headers: no rel="next" is the last page
      if not next_path then done = true end
    else
      q.offset = q.offset + q.limit
      if #items < q.limit then done = true end
    end
    if #items == 0 then done = true end
  end
  return function()
    i = i + 1
    if items[i] == nil then
      if done then return nil end
      fetch()
      i = 1
      if items[1] == nil then return nil end
    end
    return items[i]
  end
end

-- }======================================================

-- {====================================================== API keys and scopes

--- client:scopes() -> the calling key's scopes | nil, err
function Client:scopes()
  local body, err = self:request("GET", "/v3/scopes")
  if not body then return nil, err end
  return body.scopes
end

--- for key in client:api_keys() -> {api_key_id, name} (the API has one page)
function Client:api_keys()
  local body, err = self:request("GET", "/v3/api_keys")
  if not body then error(err, 0) end
  local i = 0
  return function()
    i = i + 1
    return body.result[i]
  end
end

function Client:api_key(id)
  local body, err = self:request("GET", "/v3/api_keys/" .. id)
  if not body then return nil, err end
  return body.result and body.result[1]
end

--- client:create_api_key(name [, scopes]) -> {api_key, api_key_id, name, scopes}
--- (no scopes: full access). The secret (api_key) is returned only here.
function Client:create_api_key(name, scopes)
  return self:call("POST", "/v3/api_keys", {json = {name = name, scopes = list_of(scopes)}})
end

function Client:rename_api_key(id, name)
  return self:call("PATCH", "/v3/api_keys/" .. id, {json = {name = name}})
end

function Client:set_api_key_scopes(id, name, scopes)
  return self:call("PUT", "/v3/api_keys/" .. id, {json = {name = name, scopes = list_of(scopes)}})
end

--- client:delete_api_key(id) -> true | nil, err (revokes the key)
function Client:delete_api_key(id)
  local body, err = self:request("DELETE", "/v3/api_keys/" .. id)
  if not body then return nil, err end
  return true
end

-- }======================================================

-- {====================================================== subusers

--- for u in client:subusers{username =} -> {id, username, email, disabled}
function Client:subusers(query)
  return self:pages("/v3/subusers", query)
end

--- client:subuser(name) -> the subuser | nil (nil, err on failure)
function Client:subuser(name)
  local ok, found = pcall(function()
    for u in self:subusers{username = name} do
      if u.username == name then return u end
    end
  end)
  if not ok then return nil, found end
  return found
end

--- client:create_subuser{username =, email =, password =, ips = {...}}
function Client:create_subuser(def)
  return self:call("POST", "/v3/subusers", {json = def})
end

local function no_content(body, err)
  if not body then return nil, err end
  return true
end

function Client:disable_subuser(name)
  return no_content(self:request("PATCH", "/v3/subusers/" .. name, {json = {disabled = true}}))
end

function Client:enable_subuser(name)
  return no_content(self:request("PATCH", "/v3/subusers/" .. name, {json = {disabled = false}}))
end

function Client:delete_subuser(name)
  return no_content(self:request("DELETE", "/v3/subusers/" .. name))
end

-- }======================================================

-- {====================================================== teammates

-- The spec's examples say `results` where its schema says `result`: take both.
local function result_list(body)
  return body.result or body.results or {}
end

--- for t in client:teammates() -> {username, email, user_type, is_admin, ...}
function Client:teammates()
  return self:pages("/v3/teammates", nil, result_list)
end

--- client:pending_teammates() -> {{email, scopes, is_admin, token, expiration_date}, ...}
function Client:pending_teammates()
  local body, err = self:request("GET", "/v3/teammates/pending")
  if not body then return nil, err end
  local list = result_list(body)
  for _, p in ipairs(list) do p.token = p.token or p.pending_id end
  return list
end

--- client:invite_teammate{email =, scopes = {...}, is_admin =} -> {token, ...}
function Client:invite_teammate(def)
  local body = {}
  for k, v in pairs(def) do body[k] = v end
  body.scopes = list_of(def.scopes)
  return self:call("POST", "/v3/teammates", {json = body})
end

function Client:update_teammate(username, scopes, is_admin)
  return self:call("PATCH", "/v3/teammates/" .. username, {json = {scopes = list_of(scopes), is_admin = is_admin}})
end

function Client:delete_teammate(username)
  return no_content(self:request("DELETE", "/v3/teammates/" .. username))
end

function Client:delete_invite(token)
  return no_content(self:request("DELETE", "/v3/teammates/pending/" .. token))
end

-- }======================================================

-- {====================================================== IP access management

--- client:ip_allowlist() -> {{id, ip, created_at, updated_at}, ...}
function Client:ip_allowlist()
  local body, err = self:request("GET", "/v3/access_settings/whitelist")
  if not body then return nil, err end
  return result_list(body)
end

--- client:allow_ips{"1.2.3.4", "10.0.0.0/8"} -> the entries added.
--- Add the playbook host's own IP BEFORE removing any entry: an
--- allow-list without it locks every user (UI and API) out.
function Client:allow_ips(ips)
  local list = {}
  for i, ip in ipairs(ips) do list[i] = {ip = ip} end
  local body, err = self:request("POST", "/v3/access_settings/whitelist", {json = {ips = json.array(list)}})
  if not body then return nil, err end
  return result_list(body)
end

function Client:remove_allowed_ip(id)
  return no_content(self:request("DELETE", "/v3/access_settings/whitelist/" .. id))
end

--- client:access_activity([limit]) -> recent access attempts, newest first
function Client:access_activity(limit)
  local body, err = self:request("GET", "/v3/access_settings/activity", {query = {limit = limit}})
  if not body then return nil, err end
  return result_list(body)
end

-- }======================================================

-- {====================================================== suppressions

-- The lists and their paths; unsubscribes (global) are deleted one by one
-- under /v3/asm/suppressions/global.
local SUPPRESSIONS = {bounces = true, blocks = true, spam_reports = true, invalid_emails = true, unsubscribes = true}

local function suppression_kind(kind)
  if not SUPPRESSIONS[kind] then
    error("bad suppression list '" .. tostring(kind) .. "' (bounces, blocks, spam_reports, invalid_emails, "
          .. "unsubscribes)", 3)
  end
  return kind
end

local function escape_email(email)
  return (tostring(email):gsub("[^%w%.@_%-+]", function(c) return ("%%%02X"):format(c:byte()) end))
end

--- for e in client:suppressions(kind [, {start_time =, end_time =, limit =}])
--- -> {created, email, ...}, newest first. kind: bounces, blocks,
--- spam_reports, invalid_emails, unsubscribes.
function Client:suppressions(kind, query)
  return self:pages("/v3/suppression/" .. suppression_kind(kind), query)
end

function Client:bounces(query) return self:suppressions("bounces", query) end
function Client:blocks(query) return self:suppressions("blocks", query) end
function Client:spam_reports(query) return self:suppressions("spam_reports", query) end
function Client:invalid_emails(query) return self:suppressions("invalid_emails", query) end
function Client:unsubscribes(query) return self:suppressions("unsubscribes", query) end

--- client:suppression(kind, email) -> the entries for email ({} if none) | nil, err
function Client:suppression(kind, email)
  if suppression_kind(kind) == "unsubscribes" then
    -- SendGrid answers 200 {} for an address that is not suppressed
    local body, err = self:request("GET", "/v3/asm/suppressions/global/" .. escape_email(email))
    if not body then return nil, err end
    if type(body) ~= "table" or body.recipient_email == nil then return {} end
    return {{email = body.recipient_email}}
  end
  return self:call("GET", "/v3/suppression/" .. kind .. "/" .. escape_email(email))
end

--- client:delete_suppression(kind, email) -> true | nil, err. Recovery
--- rule: do not bulk-delete bounces, blocks or spam reports after an
--- attack; they protect the re-warm. Export them instead.
function Client:delete_suppression(kind, email)
  if suppression_kind(kind) == "unsubscribes" then
    return no_content(self:request("DELETE", "/v3/asm/suppressions/global/" .. escape_email(email)))
  end
  return no_content(self:request("DELETE", "/v3/suppression/" .. kind .. "/" .. escape_email(email)))
end

function Client:delete_bounce(email) return self:delete_suppression("bounces", email) end

--- client:delete_suppressions(kind, emails) -> true | nil, err; emails is a
--- list, or the string "all" (delete_all).
function Client:delete_suppressions(kind, emails)
  if suppression_kind(kind) == "unsubscribes" then error("unsubscribes are deleted one by one", 2) end
  local body = emails == "all" and {delete_all = true} or {emails = list_of(emails)}
  return no_content(self:request("DELETE", "/v3/suppression/" .. kind, {json = body}))
end

--- client:unsubscribe(emails) -> the addresses added to the global unsubscribes
function Client:unsubscribe(emails)
  local body, err = self:request("POST", "/v3/asm/suppressions/global", {json = {recipient_emails = list_of(emails)}})
  if not body then return nil, err end
  return body.recipient_emails
end

-- }======================================================

-- {====================================================== stats

local function stats_query(q, list_name, list)
  if type(q) ~= "table" or type(q.start_date) ~= "string" then
    error("stats need {start_date = \"YYYY-MM-DD\", ...}", 3)
  end
  local out = {start_date = q.start_date, end_date = q.end_date, aggregated_by = q.aggregated_by}
  if list_name then out[list_name] = list end
  return out
end

-- Stats lists are small (a row per date): one request, no paging.
function Client:stats_list(path, query)
  local body, err = self:request("GET", path, {query = query})
  if not body then return nil, err end
  return body
end

--- client:stats{start_date =, end_date =, aggregated_by = "day"|"week"|"month"}
--- -> {{date =, stats = {{metrics = {requests, delivered, bounces, ...}}}}, ...}
function Client:stats(q)
  return self:stats_list("/v3/stats", stats_query(q))
end

--- client:mailbox_provider_stats{start_date =, ..., mailbox_providers = {"Gmail", ...}}
--- -> the same, stats per provider ({type = "mailbox_provider", name =, metrics =})
function Client:mailbox_provider_stats(q)
  return self:stats_list("/v3/mailbox_providers/stats", stats_query(q, "mailbox_providers", q.mailbox_providers))
end

--- client:category_stats{start_date =, ..., categories = {"receipts", ...}}
function Client:category_stats(q)
  if type(q) == "table" and (type(q.categories) ~= "table" or #q.categories == 0) then
    error("category_stats needs categories = {...}", 2)
  end
  return self:stats_list("/v3/categories/stats", stats_query(q, "categories", q.categories))
end

--- sendgrid.totals(rows) -> the metrics summed over a stats answer, and
--- per name ({[name] = metrics}) where rows have names (providers,
--- categories). Rates are the caller's: bounces / processed and so on.
function M.totals(rows)
  local all, by = {}, {}
  for _, row in ipairs(rows) do
    for _, s in ipairs(row.stats) do
      local into = all
      if s.name then
        by[s.name] = by[s.name] or {}
        into = by[s.name]
      end
      for k, v in pairs(s.metrics) do into[k] = (into[k] or 0) + v end
    end
  end
  return all, by
end

-- }======================================================

-- {====================================================== mail send

--- client:create_batch() -> batch_id | nil, err
function Client:create_batch()
  local body, err = self:request("POST", "/v3/mail/batch")
  if not body then return nil, err end
  return body.batch_id
end

function Client:batch(id)
  local body, err = self:request("GET", "/v3/mail/batch/" .. id)
  if not body then return nil, err end
  return body.batch_id
end

local MAX_PERSONALIZATIONS = 1000

-- The personalizations of a message: msg.personalizations as given, or
-- one per address of msg.recipients (so recipients do not see each other).
local function personalizations_of(msg)
  if msg.recipients then
    local list = {}
    for i, r in ipairs(msg.recipients) do
      list[i] = {to = {type(r) == "table" and r or {email = r}}}
    end
    return list
  end
  return msg.personalizations or {}
end

local function recipient_count(p)
  return #(p.to or {}) + #(p.cc or {}) + #(p.bcc or {})
end

-- Splits personalizations into requests of at most 1,000 personalizations
-- and 1,000 recipients (SendGrid's two limits).
local function split(list)
  local chunks, cur, n = {}, {}, 0
  for _, p in ipairs(list) do
    local k = recipient_count(p)
    if #cur > 0 and (#cur >= MAX_PERSONALIZATIONS or n + k > MAX_PERSONALIZATIONS) then
      chunks[#chunks + 1], cur, n = cur, {}, 0
    end
    cur[#cur + 1], n = p, n + k
  end
  if #cur > 0 then chunks[#chunks + 1] = cur end
  return chunks
end

--- client:send(msg) -> {message_ids = {...}, requests =, recipients =,
--- personalizations =} | nil, err
--- msg is a mail/send body (personalizations, from, reply_to, subject,
--- content or template_id, categories, custom_args, send_at, batch_id,
--- asm, mail_settings = {sandbox_mode = {enable = true}}, ...), or with
--- `recipients = {"a@x", {email =, name =}, ...}` in place of
--- personalizations. Large lists go out as several requests; on a
--- failure err.sent holds what was accepted before it (message_ids,
--- requests, recipients, personalizations: the first ones of the list,
--- in order), so a caller can resume from there instead of resending.
function Client:send(msg)
  if type(msg) ~= "table" then error("bad argument #1 to 'send' (table expected)", 2) end
  local body = {}
  for k, v in pairs(msg) do
    if k ~= "recipients" and k ~= "personalizations" then body[k] = v end
  end
  local sent = {message_ids = {}, requests = 0, recipients = 0, personalizations = 0}
  local chunks = split(personalizations_of(msg))
  if #chunks == 0 then chunks = {{}} end          -- let the API say what is missing
  for _, chunk in ipairs(chunks) do
    body.personalizations = json.array(chunk)
    local ok, err_or_resp = self:request("POST", "/v3/mail/send", {json = body})
    if not ok then
      err_or_resp.sent = sent
      return nil, err_or_resp
    end
    sent.requests = sent.requests + 1
    sent.personalizations = sent.personalizations + #chunk
    for _, p in ipairs(chunk) do sent.recipients = sent.recipients + recipient_count(p) end
    local id = err_or_resp.headers["x-message-id"]
    if id then sent.message_ids[#sent.message_ids + 1] = id end
  end
  return sent
end

--- client:scheduled_sends() -> {{batch_id, status}, ...} (paused or cancelled batches)
function Client:scheduled_sends()
  return self:call("GET", "/v3/user/scheduled_sends")
end

--- client:scheduled_send(batch_id) -> "pause" | "cancel" | nil (none), or nil, err
function Client:scheduled_send(id)
  local body, err = self:request("GET", "/v3/user/scheduled_sends/" .. id)
  if not body then
    if err.status == 404 then return nil end
    return nil, err
  end
  return body[1] and body[1].status
end

-- Sets a batch's status: POST the first time, PATCH after.
function Client:set_batch_status(id, status)
  local body, err = self:request("POST", "/v3/user/scheduled_sends", {json = {batch_id = id, status = status}})
  if body then return true end
  if err.status ~= 400 then return nil, err end
  return no_content(self:request("PATCH", "/v3/user/scheduled_sends/" .. id, {json = {status = status}}))
end

--- client:pause_batch(id), client:cancel_batch(id) -> true | nil, err
function Client:pause_batch(id) return self:set_batch_status(id, "pause") end
function Client:cancel_batch(id) return self:set_batch_status(id, "cancel") end

--- client:resume_batch(id) -> true | nil, err (removes the pause)
function Client:resume_batch(id)
  return no_content(self:request("DELETE", "/v3/user/scheduled_sends/" .. id))
end

-- }======================================================

-- {====================================================== event webhooks

--- client:event_webhooks() -> {{id, url, enabled, <event flags>...}, ...}
--- An ATO check: any URL you do not own receives your recipients' data.
function Client:event_webhooks()
  local body, err = self:request("GET", "/v3/user/webhooks/event/settings/all")
  if not body then return nil, err end
  return body.webhooks or {}, body.max_allowed
end

function Client:event_webhook(id)
  return self:call("GET", "/v3/user/webhooks/event/settings/" .. id)
end

--- client:create_event_webhook{url =, enabled =, friendly_name =, delivered = true, ...}
function Client:create_event_webhook(def)
  return self:call("POST", "/v3/user/webhooks/event/settings", {json = def})
end

--- client:update_event_webhook(id, def) (def.url is required by the API)
function Client:update_event_webhook(id, def)
  return self:call("PATCH", "/v3/user/webhooks/event/settings/" .. id, {json = def})
end

function Client:delete_event_webhook(id)
  return no_content(self:request("DELETE", "/v3/user/webhooks/event/settings/" .. id))
end

--- client:test_event_webhook(url) -> true | nil, err (SendGrid posts a test event)
function Client:test_event_webhook(url)
  return no_content(self:request("POST", "/v3/user/webhooks/event/test", {json = {url = url}}))
end

-- }======================================================

-- {====================================================== senders and the user

--- for d in client:domains{domain =} -> authenticated domains {id, domain, valid, dns, ...}
function Client:domains(query)
  return self:pages("/v3/whitelabel/domains", query)
end

function Client:domain(id)
  return self:call("GET", "/v3/whitelabel/domains/" .. id)
end

--- client:create_domain{domain =, subdomain =, ...} -> the domain and its DNS records
function Client:create_domain(def)
  return self:call("POST", "/v3/whitelabel/domains", {json = def})
end

--- client:update_domain(id, {default =, custom_spf =}) -> the domain
function Client:update_domain(id, def)
  local body, err = self:request("PATCH", "/v3/whitelabel/domains/" .. id, {json = def})
  if not body then return nil, err end
  return body[1] or body          -- the spec answers a list of one; take an object too
end

function Client:delete_domain(id)
  return no_content(self:request("DELETE", "/v3/whitelabel/domains/" .. id))
end

function Client:validate_domain(id)
  return self:call("POST", "/v3/whitelabel/domains/" .. id .. "/validate")
end

--- for s in client:verified_senders() -> {id, nickname, from_email, verified, ...}
--- (the API pages with limit and lastSeenID)
function Client:verified_senders(page_size)
  page_size = page_size or 100
  local items, i, last, done = {}, 0, nil, false
  return function()
    i = i + 1
    if items[i] == nil and not done then
      local body, err = self:request("GET", "/v3/verified_senders", {query = {limit = page_size, lastSeenID = last}})
      if not body then error(err, 0) end
      items, i = body.results or {}, 1
      done = #items < page_size
      if items[#items] then last = items[#items].id end
    end
    return items[i]
  end
end

function Client:create_verified_sender(def)
  return self:call("POST", "/v3/verified_senders", {json = def})
end

--- client:verify_sender(token) -> true | nil, err: follows the link of
--- SendGrid's verification e-mail (the token is its last path segment)
function Client:verify_sender(token)
  return no_content(self:request("GET", "/v3/verified_senders/verify/" .. token))
end

function Client:delete_verified_sender(id)
  return no_content(self:request("DELETE", "/v3/verified_senders/" .. id))
end

--- client:profile() -> {first_name, last_name, company, ...}
function Client:profile() return self:call("GET", "/v3/user/profile") end
function Client:update_profile(fields) return self:call("PATCH", "/v3/user/profile", {json = fields}) end

--- client:account() -> {type, reputation}
function Client:account() return self:call("GET", "/v3/user/account") end

--- client:account_email() -> the account's e-mail address (check it was not changed)
function Client:account_email()
  local body, err = self:request("GET", "/v3/user/email")
  if not body then return nil, err end
  return body.email
end

-- }======================================================

return M
