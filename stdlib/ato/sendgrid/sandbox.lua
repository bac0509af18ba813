-- ato.sendgrid.sandbox: `ato sandbox`, a stateful local SendGrid account for
-- drills and tests, served by ato.http's server and kept in the state store
-- (ato.store), so it survives a restart. It follows the official OpenAPI
-- description (../shared/sendgrid-oai) for the endpoints it serves, which
-- its parts register (each file lists its endpoints):
--
--   sandbox/access.lua        API keys, scopes, subusers, teammates, the IP
--                             allow-list and access activity
--   sandbox/suppressions.lua  bounces, blocks, spam reports, invalid
--                             e-mails, global unsubscribes
--   sandbox/stats.lua         global, mailbox-provider and category stats
--   sandbox/mail.lua          mail send, batch ids, scheduled sends
--   sandbox/webhooks.lua      event webhook settings, and the delivery of
--                             events to the configured URLs
--   sandbox/senders.lua       domain authentication, verified senders, the
--                             user's profile, account and e-mail
--   sandbox/scenario.lua      the scenarios (clean, ato) and the drill-only
--                             GET /sandbox/subscribers (webhooks.lua and
--                             senders.lua add /sandbox/webhook_deliveries
--                             and /sandbox/verification_tokens)
--   sandbox/model.lua         what happens to accepted mail
--
-- Authentication as SendGrid does it: `Authorization: Bearer <key>`; 401
-- for a missing or unknown key (a revoked key is unknown at once), 403
-- when the key lacks the endpoint's scope. `on-behalf-of: <subuser>` gives
-- the subuser's view of the account data (suppressions, stats, webhooks,
-- senders, profile, scheduled sends); it is refused on mail send (as
-- SendGrid documents) and on keys and subusers (a simplification: the
-- sandbox's keys all belong to the parent). Every response carries
-- X-RateLimit-Limit/Remaining/Reset (per key and endpoint, a fixed window);
-- past the budget: 429 {"errors":[{"field":null,"message":"too many requests"}]}.
--
-- Keys are stored as their SHA-256 only; a key's secret is shown once, by
-- POST /v3/api_keys, as SendGrid does. Scenario data comes from a seed.
local ato = require "ato"
local store_mod = require "ato.store"
local redact = require "ato.redact"
local log = require "ato.log"
local util = require "ato.sendgrid.sandbox.util"

local M = {}

local PREFIX = "sandbox/"
M.PREFIX = PREFIX

-- Scopes a full-access key holds: those the served endpoints need, and the
-- rest of the families a playbook looks for in GET /v3/scopes.
M.FULL_ACCESS = {
  "access_settings.activity.read", "access_settings.whitelist.create", "access_settings.whitelist.delete",
  "access_settings.whitelist.read", "access_settings.whitelist.update",
  "alerts.create", "alerts.delete", "alerts.read", "alerts.update",
  "api_keys.create", "api_keys.delete", "api_keys.read", "api_keys.update",
  "asm.suppressions.global.create", "asm.suppressions.global.delete", "asm.suppressions.global.read",
  "categories.stats.read", "categories.stats.sums.read",
  "mail.batch.create", "mail.batch.read", "mail.send", "mailbox_providers.stats.read",
  "stats.global.read", "stats.read",
  "subusers.create", "subusers.delete", "subusers.read", "subusers.update",
  "suppression.blocks.delete", "suppression.blocks.read", "suppression.bounces.delete", "suppression.bounces.read",
  "suppression.invalid_emails.delete", "suppression.invalid_emails.read",
  "suppression.spam_reports.delete", "suppression.spam_reports.read", "suppression.unsubscribes.read",
  "teammates.create", "teammates.delete", "teammates.read", "teammates.update",
  "user.account.read", "user.email.read", "user.profile.read", "user.profile.update",
  "user.scheduled_sends.create", "user.scheduled_sends.delete", "user.scheduled_sends.read",
  "user.scheduled_sends.update",
  "user.webhooks.event.settings.read", "user.webhooks.event.settings.update", "user.webhooks.event.test.create",
  "verified_senders.create", "verified_senders.delete", "verified_senders.read", "verified_senders.update",
  "whitelabel.create", "whitelabel.delete", "whitelabel.read", "whitelabel.update",
}

local sha = redact.sha256
local errors, has = util.errors, util.has

-- {====================================================== the account

-- An account is a namespace of the store ("sandbox/" for the parent,
-- "sandbox/sub/<name>/" for a subuser seen through on-behalf-of) with a
-- read cache in front: the sandbox is the only writer of its keys, and
-- paging a 10,000-entry list must not decode it from SQLite per page.
local Account = {}
Account.__index = Account
M.Account = Account

-- The value under a full store key, through the cache (false: known absent).
local function cached(self, full)
  local v = self.cache[full]
  if v == nil then
    v = self.store:get(full)
    if v == nil then v = false end
    self.cache[full] = v
  end
  return v or nil
end

function Account:get(k)
  return cached(self, self.prefix .. k)
end

--- The list under k, created empty (and cached) when there is none, so
--- that two requests adding to a new list add to the same table.
function Account:list(k)
  local v = self:get(k)
  if not v then
    v = {}
    self.cache[self.prefix .. k] = v
  end
  return v
end

-- The cache takes the new value before the write: the write yields (the
-- store runs queries in the thread pool), and a request that runs
-- meanwhile must see it, not the old value it would then write back.
-- Writes to one connection go in order, so the file ends as the cache.
function Account:put(k, v)
  local full = self.prefix .. k
  self.cache[full] = v
  assert(self.store:put(full, v))
end

function Account:del(k)
  local full = self.prefix .. k
  self.cache[full] = false
  assert(self.store:delete(full))
end

-- Removes the first item of list `k` for which pred holds; true if one was.
function Account:remove_from(k, pred)
  local list, kept, found = self:list(k), {}, false
  for _, x in ipairs(list) do
    if not found and pred(x) then found = true else kept[#kept + 1] = x end
  end
  if found then self:put(k, kept) end
  return found
end

--- The subuser `name`'s view (on-behalf-of): its own namespace, the same
--- store, cache, dice and webhook queue.
function Account:sub(name)
  local subs = self.subs
  if not subs[name] then
    subs[name] = setmetatable({prefix = PREFIX .. "sub/" .. name .. "/", subuser = name, parent = self,
                               index = {}}, {__index = self})
  end
  return subs[name]
end

-- Keys belong to the parent account, whichever view asks. Their ids and
-- secrets come from /dev/urandom, even in a seeded scenario.
function Account:add_key(name, scopes)
  local id = util.random_chars(22)
  local key = "SG." .. id .. "." .. util.random_chars(43)
  local rec = {api_key_id = id, name = name, scopes = scopes}
  self.store:tx(function(s)
    s:put(PREFIX .. "keys/" .. id, rec)
    s:put(PREFIX .. "auth/" .. sha(key), id)
    return true
  end)
  self.cache[PREFIX .. "keys/" .. id] = rec
  return key, rec
end

function Account:keys()
  local out = {}
  for _, e in ipairs(assert(self.store:list(PREFIX .. "keys/"))) do out[#out + 1] = e.value end
  table.sort(out, function(x, y) return x.name < y.name end)
  return out
end

function Account:key_of(token)
  local id = cached(self, PREFIX .. "auth/" .. sha(token))
  return id and cached(self, PREFIX .. "keys/" .. id)
end

--- Revokes a key: its record and its hash go in one transaction.
function Account:delete_key(id)
  local gone = {}
  self.store:tx(function(s)
    s:delete(PREFIX .. "keys/" .. id)
    for _, e in ipairs(assert(s:list(PREFIX .. "auth/"))) do
      if e.value == id then s:delete(e.key) gone[#gone + 1] = e.key end
    end
    s:audit{actor = "sandbox", action = "sandbox.api_key.delete", target = id}
    return true
  end)
  self.cache[PREFIX .. "keys/" .. id] = false
  for _, k in ipairs(gone) do self.cache[k] = false end
end

--- Runs fn in a background task the sandbox owns (closed with it).
function Account:background(fn)
  local tasks = self.tasks
  local t
  t = ato.spawn(function()
    local ok, err = pcall(fn)
    tasks[t] = nil
    if not ok and not (type(err) == "table" and err.kind == "cancelled") then
      log.error("sandbox: background work failed", {error = tostring(err)})
    end
  end)
  tasks[t] = true
  return t
end

-- }======================================================

-- {====================================================== routes

local ROUTES = {}

-- flags.behalf = false: on-behalf-of is refused (mail send, keys, subusers).
local function route(method, pattern, scope, fn, flags)
  ROUTES[#ROUTES + 1] = {method = method, pattern = "^" .. pattern .. "$", scope = scope, fn = fn,
                         name = method .. " " .. pattern, flags = flags or {}}
end

for _, part in ipairs{"access", "suppressions", "stats", "mail", "webhooks", "senders", "scenario"} do
  require("ato.sendgrid.sandbox." .. part)(route, Account, M)
end

local function bearer(req)
  local h = req:header("authorization")
  return h and h:match("^[Bb]earer%s+(%S+)$")
end

-- Fixed-window rate limits per key and endpoint (in memory: a restart
-- resets them, as a new window would).
function Account:rate(key_id, name)
  local now = ato.time()
  local k = key_id .. " " .. name
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

-- The account an on-behalf-of request acts on, or nil and the refusal.
function Account:behalf(req, r)
  local name = req:header("on-behalf-of")
  if not name then return self end
  if r.flags.behalf == false then
    return nil, errors(400, "the on-behalf-of header is not supported on this endpoint", "on-behalf-of")
  end
  for _, u in ipairs(self:list("subusers")) do
    if u.username == name then
      if u.disabled then return nil, errors(403, "subuser " .. name .. " is disabled", "on-behalf-of") end
      return self:sub(name)
    end
  end
  return nil, errors(403, "no subuser named " .. name, "on-behalf-of")
end

local function with_headers(resp, headers)
  resp.headers = resp.headers or {}
  for k, v in pairs(headers) do resp.headers[k] = v end
  return resp
end

function Account:dispatch(req, key, r, caps)
  local limited, headers = self:rate(key.api_key_id, r.name)
  local resp
  if not limited then
    resp = errors(429, "too many requests")
  elseif r.scope and not has(key.scopes, r.scope) then
    resp = errors(403, "access forbidden")
  else
    local acct, refusal = self:behalf(req, r)
    resp = refusal or r.fn(acct, req, key, table.unpack(caps))
  end
  return with_headers(resp, headers)
end

-- A refusal before any route runs (no key, no such path) still carries
-- the X-RateLimit-* headers, as every SendGrid response does: counted in
-- a window of its own (per key, or one for all unauthenticated calls).
function Account:refuse(resp, window_key)
  local _, headers = self:rate(window_key, "refused")
  return with_headers(resp, headers)
end

function Account:handle(req)
  local token = bearer(req)
  local key = token and self:key_of(token)
  if not key then
    return self:refuse(errors(401, "The provided authorization grant is invalid, expired, or revoked"),
                       "unauthenticated")
  end
  for _, r in ipairs(ROUTES) do
    if req.method == r.method then
      local caps = {req.path:match(r.pattern)}
      if #caps > 0 or req.path:match(r.pattern) then return self:dispatch(req, key, r, caps) end
    end
  end
  return self:refuse(errors(404, "not found"), key.api_key_id)
end

-- }======================================================

-- {====================================================== the server

local Sandbox = {}
Sandbox.__index = Sandbox

function Sandbox:address() return self.server:address() end

--- sandbox:close() stops serving and the background work (scheduled sends,
--- webhook deliveries); idempotent.
function Sandbox:close()
  if self.closed then return true end
  self.closed = true
  self.server:close()
  for t in pairs(self.account.tasks) do t:cancel() end
  for t in pairs(self.account.tasks) do t:join() end
  return true
end

local function urandom_seed()
  local f = assert(io.open("/dev/urandom", "rb"))
  local seed = string.unpack("<I4", f:read(4))
  f:close()
  return seed
end

--- sandbox.start{store =, host =, port =, scenario =, seed =, limit =,
--- window =, volume = {bounces =, subscribers =}, model = {...}}
--- model: overrides of the delivery model's odds (model.lua's DEFAULT),
--- kept with the account.
--- -> sandbox, base_url, admin_key (nil when the account existed already), account
function M.start(opts)
  local a = setmetatable({store = assert(opts.store), prefix = PREFIX, cache = {}, subs = {}, index = {},
                          windows = {}, tasks = {}, deliveries = {}, limit = opts.limit or 600, window = opts.window or 60},
                         Account)
  -- the delivery model: given now (kept for restarts), or as kept
  local model, merr = require("ato.sendgrid.sandbox.model").configure(opts.model or a:get("model"))
  if not model then return nil, ato.err("model", merr) end
  if opts.model ~= nil then a:put("model", opts.model) end
  a.model = model
  local admin
  if not a:get("meta") then admin = a:seed(opts.scenario or "clean", opts.seed or 1, opts.volume or {}) end
  local meta = a:get("meta")
  -- the delivery dice follow the scenario's seed (a drill replays the same
  -- way); what the API creates from now on (keys, tokens) must not be
  -- guessable from it
  a.dice = util.rng(meta.seed * 7919 + (meta.sends or 0))
  a.r = util.rng(urandom_seed())
  local server, err = require("ato.http").serve{host = opts.host or "127.0.0.1", port = opts.port or 0,
    max_body = 31 * 1024 * 1024, handler = function(req) return a:handle(req) end}
  if not server then return nil, err end
  local sb = setmetatable({server = server, account = a}, Sandbox)
  local host, port = server:address()
  a.base_url = ("http://%s:%d"):format(host, port)
  a:resume_scheduled()
  return sb, a.base_url, admin, a
end

-- }======================================================

-- {====================================================== the command

M.HELP = [[
Usage: ato sandbox [--listen 127.0.0.1:PORT] [--scenario clean|ato] [--seed N]
                   [--db PATH] [--env-file PATH] [--rate-limit N/SECONDS]
                   [--bounces N] [--subscribers N] [--model FILE.json]

A local SendGrid account to drill on: the SendGrid v3 endpoints the client
uses, with SendGrid's authentication, scopes, errors and rate-limit headers,
its state in the state database (it survives a restart). Accepted mail
turns into delivery events (by mailbox provider and by how engaged each
recipient is) that feed the stats and are POSTed to the event webhooks
(loopback URLs only: others are counted, never contacted).

  --scenario clean   a healthy account (the default)
  --scenario ato     a taken-over one: attacker keys, a rogue subuser, an
                     unknown admin teammate and a pending invite, an
                     attacker allow-list entry, the event webhook pointed
                     at an unknown URL, a look-alike authenticated domain,
                     and a spam/bounce/block spike in the last 5 of the
                     30 days of stats
  --seed N           the scenario's data comes from this seed (default 1)
  --bounces N        bounce suppressions in the scenario (default 1200)
  --subscribers N    subscribers with engagement history (default 5000)
  --rate-limit N/S   N requests per S seconds per key and endpoint
                     (default 600/60)
  --model FILE.json  the delivery model's odds, over the defaults: per
                     engagement tier (active_30d, active_90d, active_180d,
                     lapsed, never, unknown) the chance of invalid, bounce,
                     open, click (of openers), spam, unsub; and the block
                     curve {"block": {"base":, "slope":, "other":}}, e.g.
                     {"lapsed": {"spam": 0.02}}; kept with the account

Drill-only endpoints (not SendGrid's; any valid key):
  GET /sandbox/subscribers           the subscriber list with engagement
                                     history (?tier=, paged): re-warm drills
  GET /sandbox/webhook_deliveries    what each event webhook was sent,
                                     withheld (not loopback) or failed
  GET /sandbox/verification_tokens   the tokens sender-verification
                                     e-mails would carry

On start it prints its base URL; with --env-file it writes
SENDGRID_BASE_URL and SENDGRID_API_KEY (a full-access key of the drill
account) there, mode 0600. A restart on the same --db keeps the account; it
rewrites the env file's base URL when the key there still works.
]]

-- Argument parsing: -> opts | nil, message.
local function parse_args(args)
  local opts, i = {volume = {}}, 1
  while i <= #args do
    local a, v = args[i], args[i + 1]
    local n = math.tointeger(tonumber(v or ""))
    if a == "-h" or a == "--help" then return {help = true}
    elseif a == "--listen" and v then opts.listen = v
    elseif a == "--scenario" and (v == "clean" or v == "ato") then opts.scenario = v
    elseif a == "--seed" and n then opts.seed = n
    elseif a == "--db" and v then opts.db = v
    elseif a == "--env-file" and v then opts.env_file = v
    elseif a == "--bounces" and n and n >= 0 then opts.volume.bounces = n
    elseif a == "--subscribers" and n and n >= 0 then opts.volume.subscribers = n
    elseif a == "--model" and v then opts.model_file = v
    elseif a == "--rate-limit" and v and v:match("^%d+/%d+$") then
      opts.limit, opts.window = tonumber(v:match("^(%d+)")), tonumber(v:match("/(%d+)$"))
    else
      return nil, ("bad argument '%s' (see 'ato sandbox --help')"):format(a)
    end
    i = i + 2
  end
  return opts
end

-- The env file: a new account's key; after a restart, the key already in
-- the file when it still authenticates (only the base URL changes).
local function write_env(a, path, base, admin)
  if not admin then
    local old = ato.fs.read(path)
    admin = old and old:match("SENDGRID_API_KEY=(%S+)")
    if not admin or not a:key_of(admin) then
      log.warn("sandbox: the account exists already and its key is not in the env file; "
               .. "create one with POST /v3/api_keys", {env_file = path})
      return
    end
  end
  assert(ato.fs.write(path, ("SENDGRID_BASE_URL=%s\nSENDGRID_API_KEY=%s\n"):format(base, admin), "600"))
end

local function fail(msg)
  io.stderr:write("ato sandbox: ", tostring(msg), "\n")
  return 2
end

function M.main(...)
  local opts, err = parse_args({...})
  if not opts then return fail(err) end
  if opts.help then io.stdout:write(M.HELP) return 0 end
  local host, port = "127.0.0.1", 0
  if opts.listen then
    host, port = opts.listen:match("^([^:]+):(%d+)$")
    if host ~= "127.0.0.1" and host ~= "localhost" then
      return fail(("--listen %s: the sandbox binds loopback only (127.0.0.1:PORT)"):format(opts.listen))
    end
    host, port = "127.0.0.1", tonumber(port)
  end
  if opts.model_file then
    local text, rerr = ato.fs.read(opts.model_file)
    if not text then return fail(("--model %s: %s"):format(opts.model_file, tostring(rerr))) end
    local ok, m = pcall(require("ato.json").decode, text)
    if not ok then return fail(("--model %s: not JSON"):format(opts.model_file)) end
    local _, merr = require("ato.sendgrid.sandbox.model").configure(m)
    if merr then return fail(("--model %s: %s"):format(opts.model_file, merr)) end
    opts.model = m
  end
  local s, serr = store_mod.open(opts.db)
  if not s then return fail(serr) end
  local sb, base, admin, account = M.start{store = s, host = host, port = port, scenario = opts.scenario,
                                           seed = opts.seed, limit = opts.limit, window = opts.window,
                                           volume = opts.volume, model = opts.model}
  if not sb then return fail(base) end
  io.stdout:write(base, "\n")
  io.stdout:flush()
  if opts.env_file then write_env(account, opts.env_file, base, admin) end
  local term, int = ato.trap("term"), ato.trap("int")
  local stop = ato.cond()
  ato.spawn(function() term:wait() stop:signal() end)
  ato.spawn(function() int:wait() stop:signal() end)
  stop:wait()
  sb:close()
  s:close()
  return 0
end

-- }======================================================

return M
