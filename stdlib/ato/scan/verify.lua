-- ato.scan.verify: is a leaked secret still live? One function per
-- verifier, found by the name a rule gives in its `verify` field.
--
--   local verify = require "ato.scan.verify"
--   local v = verify.new()                 -- a cache: each secret checked once
--   v:all(findings)                        -- at most 4 checks in flight
--   print(findings[1].verified, findings[1].scopes, findings[1].verify_error)
--
-- A verifier is fn(secret, finding) -> {verified = true|false|nil,
-- scopes = list|nil, error = message|nil}: true live, false refused (revoked
-- or never valid), nil unknown (error says why). It must never put the
-- secret in a message, a log line or an error: use finding.fingerprint.

local ato = require "ato"

local type, ipairs, pcall, tostring, setmetatable = type, ipairs, pcall, tostring, setmetatable

local M = {}

M.LIMIT = 4                             -- checks in flight at once

--- The registry: verifier name -> function(secret, finding) -> result.
M.verifiers = {}

--- verify.register(name, fn): adds or replaces a verifier
function M.register(name, fn)
  if type(name) ~= "string" or name == "" then error("bad argument #1 to 'register' (name expected)", 2) end
  if type(fn) ~= "function" then error("bad argument #2 to 'register' (function expected)", 2) end
  M.verifiers[name] = fn
end

-- {====================================================== sendgrid

M.SENDGRID_API_URL = "https://api.sendgrid.com"

-- The scopes list of a /v3/scopes body, or nil.
local function scope_list(resp)
  local body = resp:json()
  if type(body) ~= "table" or type(body.scopes) ~= "table" then return nil end
  local list = {}
  for _, s in ipairs(body.scopes) do
    if type(s) == "string" then list[#list + 1] = s end
  end
  return list
end

--- SendGrid: GET {base}/v3/scopes with the key as a bearer token. 200:
--- live, with its scopes; 401: not live; 403: live, but the key may not
--- read its scopes; anything else: unknown. Base URL from
--- $ATO_SENDGRID_API_URL (tests point it at a local server).
function M.verifiers.sendgrid(secret)
  local http = require "ato.http"                         -- libcurl only when verifying
  local base = os.getenv("ATO_SENDGRID_API_URL")
  if not base or base == "" then base = M.SENDGRID_API_URL end
  local url = base:gsub("/+$", "") .. "/v3/scopes"
  local resp, err = http.get(url, {
    headers = {Authorization = "Bearer " .. secret, Accept = "application/json"},
    timeout = 20, connect_timeout = 10, retries = 2, max_retry_delay = 10,
  })
  if not resp then return {error = tostring(err)} end    -- names the URL, not the key
  if resp.status == 200 then
    local scopes = scope_list(resp)
    if not scopes then
      return {verified = true, error = "HTTP 200 without a list of scopes"}
    end
    return {verified = true, scopes = scopes}
  elseif resp.status == 401 then
    return {verified = false}
  elseif resp.status == 403 then
    return {verified = true, scopes = {}}
  end
  return {error = ("HTTP %d from %s"):format(resp.status, url)}
end

-- }======================================================

-- {====================================================== the cache

local Verifier = {}
Verifier.__index = Verifier

--- verify.new([{limit = 4, verifiers = registry}]) -> a verifier: a
--- cache by fingerprint, so each distinct secret is checked once
function M.new(opts)
  opts = opts or {}
  return setmetatable({
    limit = opts.limit or M.LIMIT,
    registry = opts.verifiers or M.verifiers,
    cache = {},                         -- verifier name .. fingerprint -> entry
    checks = 0,                         -- verifier calls made
  }, Verifier)
end

local function is_cancel(e)
  return type(e) == "table" and e.kind == "cancelled"
end

-- Runs the verifier of f, turning a raised error into a result.
function Verifier:run(f)
  local fn = self.registry[f.verify]
  if not fn then return {error = ("no verifier named '%s'"):format(f.verify)} end
  self.checks = self.checks + 1
  local ok, result = pcall(fn, f.secret, f)
  if not ok then
    if is_cancel(result) then error(result, 0) end
    return {error = "verifier failed: " .. ato.redact.text(tostring(result))}
  end
  if type(result) ~= "table" then return {error = "verifier returned no result"} end
  return result
end

--- v:result(f) -> f's result: from the cache, or by running (or waiting
--- for) the one check of its secret
function Verifier:result(f)
  local key = f.verify .. "\0" .. f.fingerprint
  local entry = self.cache[key]
  if entry then
    while not entry.done do entry.cond:wait() end
    return entry.result
  end
  entry = {done = false, cond = ato.cond()}
  self.cache[key] = entry
  local settle <close> = setmetatable({}, {__close = function()
    if not entry.done then                                -- cancelled: waiters give up too
      entry.done, entry.result = true, {error = "verification cancelled"}
    end
    entry.cond:broadcast()
  end})
  entry.result = self:run(f)
  entry.done = true
  return entry.result
end

--- verify.apply(f, result): sets f.verified, f.scopes, f.verify_error
--- (and f.verify_ran, so reports show them)
function M.apply(f, result)
  f.verify_ran = true
  f.verified = result.verified
  f.scopes = result.scopes
  f.verify_error = result.error
end

--- v:check(f) -> f, verified (once per secret) when its rule has a verifier
function Verifier:check(f)
  if f.verify then M.apply(f, self:result(f)) end
  return f
end

--- v:all(findings) -> findings, every one with a verifier checked; each
--- distinct secret once, at most `limit` checks in flight (ato.gather)
function Verifier:all(findings)
  local firsts, fns, seen = {}, {}, {}
  for _, f in ipairs(findings) do
    if f.verify then
      local key = f.verify .. "\0" .. f.fingerprint
      if not seen[key] then
        seen[key] = true
        firsts[#firsts + 1] = f
        fns[#fns + 1] = function() return self:result(f) end
      end
    end
  end
  if #fns > 0 then
    local _, err = ato.gather(fns, {limit = self.limit})
    if err then error(err.cause or err, 0) end            -- a bug: run() catches the rest
  end
  for _, f in ipairs(findings) do self:check(f) end        -- all cached now
  return findings
end

--- v:stream(emit) -> push, finish, pool. push(f) hands a finding over:
--- one without a verifier goes to emit at once, the others once checked
--- (at most `limit` checks in flight, in completion order). finish()
--- waits for the rest. An error raised by emit stops the stream: push and
--- finish raise it. pool is the workers' task: hold it in a <close>
--- variable so that an early exit cancels it.
function Verifier:stream(emit)
  local queue = ato.channel(self.limit * 16)
  local failure
  local function worker()
    for f in queue do
      if not failure then
        local ok, e = pcall(function() emit(self:check(f)) end)
        if not ok then
          if is_cancel(e) then error(e, 0) end
          failure = e
        end
      end
    end
  end
  local workers = {}
  for i = 1, self.limit do workers[i] = worker end
  local pool = ato.spawn(ato.gather, workers)
  local function push(f)
    if failure then error(failure, 0) end
    if not f.verify then return emit(f) end
    queue:send(f)
  end
  local function finish()
    queue:close()
    local results, err = pool:join()
    if not results and err then error(err, 0) end
    if failure then error(failure, 0) end
  end
  return push, finish, pool
end

-- }======================================================

return M
