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
--- region = "global"|"eu", max_wait =, timeout =} -> client | nil, err
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
                          timeout = opts.timeout or 30, windows = {}, calls = 0, waited = 0, throttled = 0}, Client)
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

-- The endpoint a rate-limit window belongs to: method and path without ids.
local function endpoint(method, path)
  return method .. " " .. path:gsub("%?.*$", "")
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
  q.limit = q.limit or page_size
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
  return self:request("POST", "/v3/api_keys", {json = {name = name, scopes = scopes}})
end

function Client:rename_api_key(id, name)
  return self:request("PATCH", "/v3/api_keys/" .. id, {json = {name = name}})
end

function Client:set_api_key_scopes(id, name, scopes)
  return self:request("PUT", "/v3/api_keys/" .. id, {json = {name = name, scopes = scopes}})
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
  return self:request("POST", "/v3/subusers", {json = def})
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
  return self:request("POST", "/v3/teammates", {json = def})
end

function Client:update_teammate(username, scopes, is_admin)
  return self:request("PATCH", "/v3/teammates/" .. username, {json = {scopes = scopes, is_admin = is_admin}})
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
  local body, err = self:request("POST", "/v3/access_settings/whitelist", {json = {ips = list}})
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

--- for b in client:bounces{start_time =, end_time =} -> {created, email, reason, status}
function Client:bounces(query)
  return self:pages("/v3/suppression/bounces", query)
end

function Client:delete_bounce(email)
  return no_content(self:request("DELETE", "/v3/suppression/bounces/" .. email))
end

-- }======================================================

return M
