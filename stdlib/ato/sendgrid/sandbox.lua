-- ato.sendgrid.sandbox: `ato sandbox`, a stateful local SendGrid account for
-- drills and tests, served by ato.http's server and kept in the state store
-- (ato.store), so it survives a restart. It follows the official OpenAPI
-- description (../shared/sendgrid-oai) for the endpoints it serves:
--
--   GET /v3/scopes                                  (any valid key)
--   GET|POST /v3/api_keys, GET|PATCH|PUT|DELETE /v3/api_keys/{id}
--   GET|POST /v3/subusers, PATCH|DELETE /v3/subusers/{name}
--   GET|POST /v3/teammates, PATCH|DELETE /v3/teammates/{username},
--   GET /v3/teammates/pending, DELETE /v3/teammates/pending/{token}
--   GET|POST /v3/access_settings/whitelist, DELETE .../whitelist/{id},
--   GET /v3/access_settings/activity
--   GET /v3/suppression/bounces, DELETE /v3/suppression/bounces/{email}
--
-- Authentication as SendGrid does it: `Authorization: Bearer <key>`; 401
-- for a missing or unknown key (a revoked key is unknown at once), 403
-- when the key lacks the endpoint's scope. Every response carries
-- X-RateLimit-Limit/Remaining/Reset (per key and endpoint, a fixed window);
-- past the budget: 429 {"errors":[{"field":null,"message":"too many requests"}]}.
-- Errors are SendGrid's shape: {"errors":[{"field":..., "message":...}]}.
--
-- Keys are stored as their SHA-256 only; a key's secret is shown once, by
-- POST /v3/api_keys, as SendGrid does. Scenario data comes from a seed.
local ato = require "ato"
local cjson = require "cjson"
local store_mod = require "ato.store"
local redact = require "ato.redact"
local log = require "ato.log"

local M = {}

local PREFIX = "sandbox/"

-- Scopes a full-access key holds (those the served endpoints need, and the
-- rest a playbook looks for in GET /v3/scopes).
M.FULL_ACCESS = {
  "api_keys.create", "api_keys.delete", "api_keys.read", "api_keys.update",
  "mail.send", "scheduled_sends.create", "scheduled_sends.read",
  "stats.global.read", "stats.read", "subusers.create", "subusers.delete", "subusers.read",
  "subusers.update", "suppression.bounces.delete", "suppression.bounces.read",
  "suppression.blocks.delete", "suppression.blocks.read", "teammates.create",
  "teammates.delete", "teammates.read", "teammates.update", "user.account.read",
  "user.webhooks.event.settings.read", "user.webhooks.event.settings.update",
  "access_settings.whitelist.create", "access_settings.whitelist.delete",
  "access_settings.whitelist.read", "access_settings.activity.read",
}

-- {====================================================== deterministic data

-- A small PRNG (xorshift32) so that a seed gives the same account anywhere.
local function rng(seed)
  local x = (seed % 0xffffffff) + 1
  return function(n)
    x = x ~ ((x << 13) & 0xffffffff)
    x = x ~ (x >> 17)
    x = x ~ ((x << 5) & 0xffffffff)
    return x % n
  end
end

local ALPHA = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

local function chars(r, n)
  local t = {}
  for i = 1, n do
    local k = r(#ALPHA) + 1
    t[i] = ALPHA:sub(k, k)
  end
  return table.concat(t)
end

--- A key in SendGrid's shape, SG.<22 id>.<43 secret>, and its id.
local function new_key(r)
  local id = chars(r, 22)
  return "SG." .. id .. "." .. chars(r, 43), id
end

local sha = redact.sha256

-- }======================================================

-- {====================================================== the account

local Account = {}
Account.__index = Account

function Account:get(k) return self.store:get(PREFIX .. k) end
function Account:put(k, v) return assert(self.store:put(PREFIX .. k, v)) end

--- Adds a key; returns the secret (shown once) and its record.
function Account:add_key(name, scopes, r)
  local key, id = new_key(r or self.r)
  local rec = {api_key_id = id, name = name, scopes = scopes}
  self.store:tx(function(s)
    s:put(PREFIX .. "keys/" .. id, rec)
    s:put(PREFIX .. "auth/" .. sha(key), id)
    return true
  end)
  return key, rec
end

-- Builds a scenario into an empty sandbox: "clean" or "ato".
function Account:seed(scenario, seed)
  local r = rng(seed)
  self.r = r
  local admin_key = self:add_key("ato-drill-admin", M.FULL_ACCESS, r)
  self:add_key("production-mailer", {"mail.send"}, r)
  self:add_key("stats-dashboard", {"stats.read", "stats.global.read"}, r)
  if scenario == "ato" then
    -- what an attacker leaves behind: two full-access keys
    self:add_key("api-key-backup", M.FULL_ACCESS, r)
    self:add_key("sendgrid-integration", M.FULL_ACCESS, r)
  end
  local bounces = {}
  local base = 1790000000
  for i = 1, 1200 do
    bounces[i] = {created = base - i * 3600, email = ("bounced%04d@example.%s"):format(i, r(2) == 0 and "com" or "net"),
                  reason = "550 5.1.1 The email account that you tried to reach does not exist",
                  status = "5.1.1"}
  end
  self:put("bounces", bounces)
  self:seed_people(scenario, r, base)
  self:put("meta", {scenario = scenario, seed = seed, created = ato.time(),
                    admin_key_id = admin_key:match("^SG%.([^.]+)")})
  return admin_key
end

-- Subusers, teammates, invites, the IP allow-list and access activity.
function Account:seed_people(scenario, r, base)
  local subusers = {
    {id = 1001, username = "acme-marketing", email = "marketing@acme.example", disabled = false},
    {id = 1002, username = "acme-transactional", email = "tx@acme.example", disabled = false},
  }
  local teammates = {
    {username = "ops-lead", email = "lead@acme.example", first_name = "Ops", last_name = "Lead",
     user_type = "admin", is_admin = true, scopes = M.FULL_ACCESS},
    {username = "analyst", email = "analyst@acme.example", first_name = "Data", last_name = "Analyst",
     user_type = "teammate", is_admin = false, scopes = {"stats.read"}},
  }
  local pending = {}
  local allow = {{id = 1, ip = "198.51.100.10/32", created_at = base - 90 * 86400, updated_at = base - 90 * 86400}}
  local activity = {
    {allowed = true, auth_method = "basic", first_at = base - 30 * 86400, ip = "198.51.100.10",
     last_at = base - 3600, location = "Amsterdam, NL"},
  }
  if scenario == "ato" then
    subusers[#subusers + 1] = {id = 1003, username = "mailer-" .. chars(r, 6):lower(),
                               email = "ops@" .. chars(r, 8):lower() .. ".example", disabled = false}
    teammates[#teammates + 1] = {username = "support-" .. chars(r, 5):lower(), email = "it-desk@" .. chars(r, 7):lower()
      .. ".example", first_name = "IT", last_name = "Desk", user_type = "admin", is_admin = true, scopes = M.FULL_ACCESS}
    pending[#pending + 1] = {email = "billing@" .. chars(r, 7):lower() .. ".example", scopes = M.FULL_ACCESS,
                             is_admin = true, token = chars(r, 24), expiration_date = base + 6 * 86400}
    allow[#allow + 1] = {id = 2, ip = "203.0.113.77/32", created_at = base - 2 * 86400, updated_at = base - 2 * 86400}
    activity[#activity + 1] = {allowed = true, auth_method = "api_key", first_at = base - 3 * 86400,
                               ip = "203.0.113.77", last_at = base - 600, location = "unknown"}
  end
  self:put("subusers", subusers)
  self:put("teammates", teammates)
  self:put("pending", pending)
  self:put("allowlist", allow)
  self:put("activity", activity)
end

-- }======================================================

-- {====================================================== HTTP helpers

local function errors(status, message, field)
  return {status = status, headers = {["Content-Type"] = "application/json"},
          body = cjson.encode{errors = {{field = field or cjson.null, message = message}}}}
end

local function json(status, value, headers)
  headers = headers or {}
  headers["Content-Type"] = "application/json"
  return {status = status, headers = headers, body = cjson.encode(value)}
end

-- The query string as a table (the server hands it over raw).
local function unescape(v)
  return (v:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function query(req)
  if req.args then return req.args end
  local t = {}
  for pair in (req.query or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    t[unescape(k)] = unescape(v)
  end
  req.args = t
  return t
end

local function bearer(req)
  local h = req:header("authorization")
  return h and h:match("^[Bb]earer%s+(%S+)$")
end

-- Fixed-window rate limits per key and endpoint (in memory: a restart
-- resets them, as a new window would).
function Account:rate(key_id, route)
  local now = ato.time()
  local k = key_id .. " " .. route
  local w = self.windows[k]
  if not w or now >= w.reset then
    w = {reset = math.floor(now) + self.window, used = 0}
    self.windows[k] = w
  end
  w.used = w.used + 1
  local remaining = self.limit - w.used
  return remaining >= 0, {["X-RateLimit-Limit"] = tostring(self.limit),
    ["X-RateLimit-Remaining"] = tostring(math.max(0, remaining)),
    ["X-RateLimit-Reset"] = tostring(w.reset)}
end

local function has(list, x)
  for _, v in ipairs(list or {}) do if v == x then return true end end
  return false
end

-- }======================================================

-- {====================================================== endpoints

local ROUTES = {}

local function route(method, pattern, scope, fn)
  ROUTES[#ROUTES + 1] = {method = method, pattern = "^" .. pattern .. "$", scope = scope, fn = fn,
                         name = method .. " " .. pattern}
end

route("GET", "/v3/scopes", nil, function(a, _, key)
  return json(200, {scopes = key.scopes})
end)

local function key_view(rec, with_scopes)
  local v = {api_key_id = rec.api_key_id, name = rec.name}
  if with_scopes then v.scopes = rec.scopes end
  return v
end

local function all_keys(a)
  local out = {}
  for _, e in ipairs(assert(a.store:list(PREFIX .. "keys/"))) do out[#out + 1] = e.value end
  table.sort(out, function(x, y) return x.name < y.name end)
  return out
end

route("GET", "/v3/api_keys", "api_keys.read", function(a, req)
  local limit = tonumber(query(req).limit)
  local result = {}
  for _, rec in ipairs(all_keys(a)) do
    if limit and #result >= limit then break end
    result[#result + 1] = key_view(rec)
  end
  return json(200, {result = setmetatable(result, cjson.array_mt)})
end)

local function body_of(req)
  local ok, v = pcall(cjson.decode, req.body or "")
  if not ok or type(v) ~= "table" then return nil end
  return v
end

local function valid_scopes(scopes)
  if scopes == nil then return true end
  if type(scopes) ~= "table" then return false end
  for _, s in ipairs(scopes) do if type(s) ~= "string" then return false end end
  return true
end

route("POST", "/v3/api_keys", "api_keys.create", function(a, req, key)
  local b = body_of(req)
  if not b or type(b.name) ~= "string" or b.name == "" then return errors(400, "name is required", "name") end
  if not valid_scopes(b.scopes) then return errors(400, "scopes must be a list of strings", "scopes") end
  if #all_keys(a) >= 100 then return errors(403, "Cannot create more than 100 API keys") end
  -- omitting scopes creates a full-access key; a key cannot grant what it lacks
  local scopes = b.scopes or M.FULL_ACCESS
  for _, s in ipairs(scopes) do
    if not has(key.scopes, s) then return errors(403, "cannot grant scope " .. s, "scopes") end
  end
  local secret, rec = a:add_key(b.name, scopes)
  return json(201, {api_key = secret, api_key_id = rec.api_key_id, name = rec.name,
                    scopes = setmetatable(rec.scopes, cjson.array_mt)})
end)

route("GET", "/v3/api_keys/([^/]+)", "api_keys.read", function(a, _, _, id)
  local rec = a:get("keys/" .. id)
  if not rec then return errors(404, "unable to find API Key") end
  return json(200, {result = {key_view(rec, true)}})
end)

route("PATCH", "/v3/api_keys/([^/]+)", "api_keys.update", function(a, req, _, id)
  local rec = a:get("keys/" .. id)
  if not rec then return errors(404, "unable to find API Key") end
  local b = body_of(req)
  if not b or type(b.name) ~= "string" or b.name == "" then return errors(400, "name is required", "name") end
  rec.name = b.name
  a:put("keys/" .. id, rec)
  return json(200, {api_key_id = id, name = rec.name})
end)

route("PUT", "/v3/api_keys/([^/]+)", "api_keys.update", function(a, req, _, id)
  local rec = a:get("keys/" .. id)
  if not rec then return errors(404, "unable to find API Key") end
  local b = body_of(req)
  if not b or type(b.name) ~= "string" or b.name == "" then return errors(400, "name is required", "name") end
  if type(b.scopes) ~= "table" or #b.scopes == 0 or not valid_scopes(b.scopes) then
    return errors(400, "scopes must be a non-empty list of strings", "scopes")
  end
  rec.name, rec.scopes = b.name, b.scopes
  a:put("keys/" .. id, rec)
  return json(200, {api_key_id = id, name = rec.name, scopes = rec.scopes})
end)

route("DELETE", "/v3/api_keys/([^/]+)", "api_keys.delete", function(a, _, _, id)
  local rec = a:get("keys/" .. id)
  if not rec then return errors(404, "unable to find API Key") end
  a.store:tx(function(s)
    s:delete(PREFIX .. "keys/" .. id)
    for _, e in ipairs(assert(s:list(PREFIX .. "auth/"))) do
      if e.value == id then s:delete(e.key) end
    end
    s:audit{actor = "sandbox", action = "sandbox.api_key.delete", target = id}
    return true
  end)
  return {status = 204, body = ""}
end)

-- Removes the first item of list `k` for which pred holds; true if one was.
function Account:remove_from(k, pred)
  local list, kept, found = self:get(k) or {}, {}, false
  for _, x in ipairs(list) do
    if not found and pred(x) then found = true else kept[#kept + 1] = x end
  end
  if found then self:put(k, kept) end
  return found
end

-- Page of a list by limit/offset, with a Link header as SendGrid sends it.
local function page(req, list, max)
  local limit = math.min(tonumber(query(req).limit) or max, max)
  local offset = tonumber(query(req).offset) or 0
  local out = {}
  for i = offset + 1, math.min(#list, offset + limit) do out[#out + 1] = list[i] end
  -- absolute URLs, as SendGrid sends them
  local base = ("http://%s%s?limit=%d&offset="):format(req:header("host") or "127.0.0.1", req.path, limit)
  local links = {('<%s%d>; rel="first"'):format(base, 0)}
  if offset + limit < #list then links[#links + 1] = ('<%s%d>; rel="next"'):format(base, offset + limit) end
  if offset > 0 then links[#links + 1] = ('<%s%d>; rel="prev"'):format(base, math.max(0, offset - limit)) end
  return setmetatable(out, cjson.array_mt), {Link = table.concat(links, ", ")}
end

-- {---- subusers
route("GET", "/v3/subusers", "subusers.read", function(a, req)
  local list, name = a:get("subusers") or {}, query(req).username
  if name then
    local only = {}
    for _, u in ipairs(list) do if u.username == name then only[1] = u end end
    list = only
  end
  local items, headers = page(req, list, 500)
  return json(200, items, headers)
end)

route("POST", "/v3/subusers", "subusers.create", function(a, req)
  local b = body_of(req)
  for _, f in ipairs{"username", "email", "password"} do
    if not b or type(b[f]) ~= "string" or b[f] == "" then return errors(400, f .. " is required", f) end
  end
  if type(b.ips) ~= "table" then return errors(400, "ips is required", "ips") end
  local list = a:get("subusers") or {}
  for _, u in ipairs(list) do
    if u.username == b.username then return errors(400, "username exists", "username") end
  end
  local id = 1000 + #list + 1 + a.r(1000) * 10
  list[#list + 1] = {id = id, username = b.username, email = b.email, disabled = false}
  a:put("subusers", list)
  return json(200, {username = b.username, user_id = id, email = b.email, signup_session_token = chars(a.r, 20),
                    authorization_token = chars(a.r, 20), credit_allocation = {type = "unlimited"}})
end)

route("PATCH", "/v3/subusers/([^/]+)", "subusers.update", function(a, req, _, name)
  local b = body_of(req)
  if not b or type(b.disabled) ~= "boolean" then return errors(400, "disabled must be true or false", "disabled") end
  local list, found = a:get("subusers") or {}, false
  for _, u in ipairs(list) do if u.username == name then u.disabled, found = b.disabled, true end end
  if not found then return errors(404, "subuser not found") end
  a:put("subusers", list)
  return {status = 204, body = ""}
end)

route("DELETE", "/v3/subusers/([^/]+)", "subusers.delete", function(a, _, _, name)
  if not a:remove_from("subusers", function(u) return u.username == name end) then
    return errors(404, "subuser not found")
  end
  return {status = 204, body = ""}
end)

-- {---- teammates (pending first: /pending is not a username)
route("GET", "/v3/teammates/pending", "teammates.read", function(a)
  return json(200, {result = setmetatable(a:get("pending") or {}, cjson.array_mt)})
end)

route("DELETE", "/v3/teammates/pending/([^/]+)", "teammates.delete", function(a, _, _, token)
  if not a:remove_from("pending", function(p) return p.token == token end) then
    return errors(404, "invite not found")
  end
  return {status = 204, body = ""}
end)

route("GET", "/v3/teammates", "teammates.read", function(a, req)
  local items, headers = page(req, a:get("teammates") or {}, 500)
  for i, t in ipairs(items) do
    items[i] = {username = t.username, email = t.email, first_name = t.first_name, last_name = t.last_name,
                user_type = t.user_type, is_admin = t.is_admin}
  end
  return json(200, {result = items}, headers)
end)

route("POST", "/v3/teammates", "teammates.create", function(a, req)
  local b = body_of(req)
  if not b or type(b.email) ~= "string" or not b.email:find("@", 1, true) then
    return errors(400, "email is required", "email")
  end
  if type(b.scopes) ~= "table" or type(b.is_admin) ~= "boolean" then
    return errors(400, "scopes and is_admin are required", "scopes")
  end
  local invite = {email = b.email, scopes = b.scopes, is_admin = b.is_admin, token = chars(a.r, 24),
                  expiration_date = math.floor(ato.time()) + 7 * 86400}
  local list = a:get("pending") or {}
  list[#list + 1] = invite
  a:put("pending", list)
  return json(201, {token = invite.token, email = invite.email, scopes = invite.scopes, is_admin = invite.is_admin})
end)

route("PATCH", "/v3/teammates/([^/]+)", "teammates.update", function(a, req, _, username)
  local b = body_of(req)
  if not b or type(b.scopes) ~= "table" or type(b.is_admin) ~= "boolean" then
    return errors(400, "scopes and is_admin are required", "scopes")
  end
  local list, hit = a:get("teammates") or {}, nil
  for _, t in ipairs(list) do if t.username == username then hit = t end end
  if not hit then return errors(404, "teammate not found") end
  hit.scopes, hit.is_admin = b.scopes, b.is_admin
  hit.user_type = b.is_admin and "admin" or "teammate"
  a:put("teammates", list)
  return json(200, hit)
end)

route("DELETE", "/v3/teammates/([^/]+)", "teammates.delete", function(a, _, _, username)
  if not a:remove_from("teammates", function(t) return t.username == username end) then
    return errors(404, "teammate not found")
  end
  return {status = 204, body = ""}
end)

-- {---- IP access management
route("GET", "/v3/access_settings/whitelist", "access_settings.whitelist.read", function(a)
  return json(200, {result = setmetatable(a:get("allowlist") or {}, cjson.array_mt)})
end)

route("POST", "/v3/access_settings/whitelist", "access_settings.whitelist.create", function(a, req)
  local b = body_of(req)
  if not b or type(b.ips) ~= "table" or #b.ips == 0 then return errors(400, "ips is required", "ips") end
  local list, added = a:get("allowlist") or {}, {}
  local next_id = 1
  for _, e in ipairs(list) do if e.id >= next_id then next_id = e.id + 1 end end
  for _, x in ipairs(b.ips) do
    if type(x) ~= "table" or type(x.ip) ~= "string" or not x.ip:match("^%d+%.%d+%.%d+%.%d+/?%d*$") then
      return errors(400, "each entry needs an IPv4 address or CIDR range in ip", "ips")
    end
    local now = math.floor(ato.time())
    local e = {id = next_id, ip = x.ip:find("/", 1, true) and x.ip or (x.ip .. "/32"), created_at = now, updated_at = now}
    next_id = next_id + 1
    list[#list + 1], added[#added + 1] = e, e
  end
  a:put("allowlist", list)
  return json(201, {result = added})
end)

route("DELETE", "/v3/access_settings/whitelist/(%d+)", "access_settings.whitelist.delete", function(a, _, _, id)
  if not a:remove_from("allowlist", function(e) return e.id == tonumber(id) end) then
    return errors(404, "rule not found")
  end
  return {status = 204, body = ""}
end)

route("GET", "/v3/access_settings/activity", "access_settings.activity.read", function(a, req)
  local list, out = a:get("activity") or {}, {}
  local limit = tonumber(query(req).limit) or 20
  for i = #list, math.max(1, #list - limit + 1), -1 do out[#out + 1] = list[i] end   -- newest first
  return json(200, {result = setmetatable(out, cjson.array_mt)})
end)

-- {---- suppressions
route("GET", "/v3/suppression/bounces", "suppression.bounces.read", function(a, req)
  local items, headers = page(req, a:get("bounces") or {}, 500)
  return json(200, items, headers)
end)

route("DELETE", "/v3/suppression/bounces/([^/]+)", "suppression.bounces.delete", function(a, _, _, email)
  local list, kept, found = a:get("bounces") or {}, {}, false
  for _, b in ipairs(list) do
    if b.email == email then found = true else kept[#kept + 1] = b end
  end
  if not found then return errors(404, "email not found") end
  a:put("bounces", kept)
  return {status = 204, body = ""}
end)

-- }======================================================

-- {====================================================== the server

function Account:handle(req)
  local token = bearer(req)
  local id = token and self:get("auth/" .. sha(token))
  local key = id and self:get("keys/" .. id)
  if not key then
    return errors(401, "The provided authorization grant is invalid, expired, or revoked")
  end
  for _, r in ipairs(ROUTES) do
    if req.method == r.method then
      local caps = {req.path:match(r.pattern)}
      if #caps > 0 or req.path:match(r.pattern) then
        local ok, headers = self:rate(key.api_key_id, r.name)
        local resp
        if not ok then
          resp = errors(429, "too many requests")
        elseif r.scope and not has(key.scopes, r.scope) then
          resp = errors(403, "access forbidden")
        else
          resp = r.fn(self, req, key, table.unpack(caps))
        end
        resp.headers = resp.headers or {}
        for k, v in pairs(headers) do resp.headers[k] = v end
        return resp
      end
    end
  end
  return errors(404, "not found")
end

--- sandbox.start{store =, host =, port =, scenario =, seed =, limit =, window =}
--- -> server, base_url, admin_key (nil when the account existed already)
function M.start(opts)
  local a = setmetatable({store = assert(opts.store), windows = {}, limit = opts.limit or 600,
                          window = opts.window or 60}, Account)
  local admin
  if not a:get("meta") then admin = a:seed(opts.scenario or "clean", opts.seed or 1) end
  -- what the API creates from now on (keys, tokens) must not be guessable
  -- from the scenario's seed
  local f = assert(io.open("/dev/urandom", "rb"))
  a.r = rng(string.unpack("<I4", f:read(4)))
  f:close()
  local server, err = require("ato.http").serve{host = opts.host or "127.0.0.1", port = opts.port or 0,
    handler = function(req) return a:handle(req) end}
  if not server then return nil, err end
  local host, port = server:address()
  return server, ("http://%s:%d"):format(host, port), admin, a
end

M.HELP = [[
Usage: ato sandbox [--listen 127.0.0.1:PORT] [--scenario clean|ato] [--seed N]
                   [--db PATH] [--env-file PATH] [--rate-limit N/SECONDS]

A local SendGrid account to drill on: the SendGrid v3 endpoints the client
uses, with SendGrid's authentication, scopes, errors and rate-limit headers,
its state in the state database (it survives a restart). On start it prints
its base URL; with --env-file it writes SENDGRID_BASE_URL and
SENDGRID_API_KEY (a full-access key of the drill account) there, mode 0600.
The key is created with the account: a restart on the same --db keeps the
account and writes no new key.
]]

function M.main(...)
  local args, opts = {...}, {}
  local i = 1
  while i <= #args do
    local a, v = args[i], args[i + 1]
    if a == "-h" or a == "--help" then io.stdout:write(M.HELP) return 0
    elseif a == "--listen" and v then opts.listen = v
    elseif a == "--scenario" and (v == "clean" or v == "ato") then opts.scenario = v
    elseif a == "--seed" and tonumber(v) then opts.seed = math.tointeger(tonumber(v))
    elseif a == "--db" and v then opts.db = v
    elseif a == "--env-file" and v then opts.env_file = v
    elseif a == "--rate-limit" and v and v:match("^%d+/%d+$") then
      opts.limit, opts.window = tonumber(v:match("^(%d+)")), tonumber(v:match("/(%d+)$"))
    else
      io.stderr:write(("ato sandbox: bad argument '%s' (see 'ato sandbox --help')\n"):format(a))
      return 2
    end
    i = i + 2
  end
  local host, port = "127.0.0.1", 0
  if opts.listen then
    host, port = opts.listen:match("^([^:]+):(%d+)$")
    if host ~= "127.0.0.1" and host ~= "localhost" then
      io.stderr:write(("ato sandbox: --listen %s: the sandbox binds loopback only (127.0.0.1:PORT)\n")
        :format(opts.listen))
      return 2
    end
    host, port = "127.0.0.1", tonumber(port)
  end
  local s, err = store_mod.open(opts.db)
  if not s then
    io.stderr:write("ato sandbox: ", tostring(err), "\n")
    return 2
  end
  local server, base, admin = M.start{store = s, host = host, port = port, scenario = opts.scenario,
                                      seed = opts.seed, limit = opts.limit, window = opts.window}
  if not server then
    io.stderr:write("ato sandbox: ", tostring(base), "\n")
    return 2
  end
  io.stdout:write(base, "\n")
  io.stdout:flush()
  if opts.env_file then
    if admin then
      assert(ato.fs.write(opts.env_file, ("SENDGRID_BASE_URL=%s\nSENDGRID_API_KEY=%s\n"):format(base, admin), "600"))
    else
      log.warn("sandbox: the account exists already; its key was written when it was created",
               {env_file = opts.env_file})
    end
  end
  local term, int = ato.trap("term"), ato.trap("int")
  local stop = ato.cond()
  ato.spawn(function() term:wait() stop:signal() end)
  ato.spawn(function() int:wait() stop:signal() end)
  stop:wait()
  server:close()
  s:close()
  return 0
end

-- }======================================================

return M
