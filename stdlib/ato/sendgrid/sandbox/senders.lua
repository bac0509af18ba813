-- ato.sendgrid.sandbox.senders: who the account may send as, and who owns it.
--
--   GET|POST /v3/whitelabel/domains               (limit, offset, domain)
--   GET|PATCH|DELETE /v3/whitelabel/domains/{id}, POST .../{id}/validate
--   GET|POST /v3/verified_senders, DELETE /v3/verified_senders/{id},
--   GET /v3/verified_senders/verify/{token}     (the link SendGrid e-mails)
--   GET /sandbox/verification_tokens            (drill-only: the tokens
--                                               those e-mails would carry)
--   GET|PATCH /v3/user/profile, GET /v3/user/account, GET /v3/user/email
--
-- Mail send accepts a from address on a valid authenticated domain, or a
-- verified sender's address. The sandbox cannot look up DNS: validating a
-- domain marks it valid (a drill's domains are made up).
local ato = require "ato"
local util = require "ato.sendgrid.sandbox.util"

local errors, json, body_of, array = util.errors, util.json, util.body_of, util.array

local PROFILE = {"first_name", "last_name", "company", "address", "address2", "city", "state", "zip", "country",
                 "phone", "website"}

return function(route, Account)

  -- {---- authenticated domains

  function Account:domain_record(id, domain, sub, at, valid)
    local host = sub .. "." .. domain
    local function rec(type_, h, data) return {valid = valid, type = type_, host = h, data = data} end
    return {id = id, user_id = 7001, subdomain = sub, domain = domain, username = "acme", ips = array{},
            custom_spf = false, default = id == 1, legacy = false, automatic_security = true, valid = valid,
            dns = {mail_cname = rec("cname", host, "u7001.wl.sendgrid.net"),
                   dkim1 = rec("cname", "s1._domainkey." .. domain, "s1.domainkey.u7001.wl.sendgrid.net"),
                   dkim2 = rec("cname", "s2._domainkey." .. domain, "s2.domainkey.u7001.wl.sendgrid.net")},
            last_validation_attempt_at = math.floor(at)}
  end

  --- May mail go out from this address? (authenticated domain or verified sender)
  function Account:sender_ok(email)
    local e = email:lower()
    local domain = e:match("@(.+)$")
    for _, d in ipairs(self:list("domains")) do
      if d.valid and (domain == d.domain or domain:sub(-#d.domain - 1) == "." .. d.domain) then return true end
    end
    for _, s in ipairs(self:list("senders")) do
      if s.verified and s.from_email:lower() == e then return true end
    end
    return false
  end

  -- A domain as the API shows it (ips stays a JSON array when empty: the
  -- store gives back a plain table).
  local function domain_view(d)
    local v = {}
    for k, x in pairs(d) do v[k] = x end
    v.ips = array(d.ips or {})
    return v
  end

  local function find_domain(a, id)
    for _, d in ipairs(a:list("domains")) do
      if d.id == tonumber(id) then return d end
    end
  end

  route("GET", "/v3/whitelabel/domains", "whitelabel.read", function(a, req)
    local items, headers = util.page(req, util.where(a:list("domains"), "domain", util.query(req).domain), 500)
    if not items then return headers end
    for i, d in ipairs(items) do items[i] = domain_view(d) end
    return json(200, items, headers)
  end)

  route("POST", "/v3/whitelabel/domains", "whitelabel.create", function(a, req)
    local b = body_of(req)
    if not b or type(b.domain) ~= "string" or not b.domain:match("^[%w%-]+%.[%w%.%-]+$") then
      return errors(400, "domain is required and must be a domain name", "domain")
    end
    local list, id = a:list("domains"), 1
    for _, d in ipairs(list) do
      if d.domain == b.domain then return errors(400, "this domain is already authenticated", "domain") end
      id = math.max(id, d.id + 1)
    end
    local d = a:domain_record(id, b.domain, type(b.subdomain) == "string" and b.subdomain or "em", ato.time(), false)
    if b.custom_spf ~= nil then d.custom_spf = b.custom_spf == true end
    if b.default ~= nil then d.default = b.default == true end
    list[#list + 1] = d
    a:put("domains", list)
    return json(201, domain_view(d))
  end)

  route("GET", "/v3/whitelabel/domains/(%d+)", "whitelabel.read", function(a, _, _, id)
    local d = find_domain(a, id)
    if not d then return errors(404, "authenticated domain not found") end
    return json(200, domain_view(d))
  end)

  route("PATCH", "/v3/whitelabel/domains/(%d+)", "whitelabel.update", function(a, req, _, id)
    local d = find_domain(a, id)
    if not d then return errors(404, "authenticated domain not found") end
    local b = body_of(req) or {}
    if b.default ~= nil then d.default = b.default == true end
    if b.custom_spf ~= nil then d.custom_spf = b.custom_spf == true end
    a:put("domains", a:get("domains"))
    return json(200, array{domain_view(d)})           -- the spec's shape: a list of one
  end)

  route("DELETE", "/v3/whitelabel/domains/(%d+)", "whitelabel.delete", function(a, _, _, id)
    if not a:remove_from("domains", function(d) return d.id == tonumber(id) end) then
      return errors(404, "authenticated domain not found")
    end
    return util.no_content()
  end)

  route("POST", "/v3/whitelabel/domains/(%d+)/validate", "whitelabel.update", function(a, _, _, id)
    local d = find_domain(a, id)
    if not d then return errors(404, "authenticated domain not found") end
    d.valid, d.last_validation_attempt_at = true, math.floor(ato.time())
    for _, r in pairs(d.dns) do r.valid = true end
    a:put("domains", a:get("domains"))
    return json(200, {id = d.id, valid = true, validation_results = {mail_cname = {valid = true},
      dkim1 = {valid = true}, dkim2 = {valid = true}, spf = {valid = true}}})
  end)

  -- }----

  -- {---- verified senders

  -- A sender as the API shows it (its verification token is not shown).
  local function sender_view(s)
    local v = {}
    for k, x in pairs(s) do if k ~= "token" then v[k] = x end end
    return v
  end

  route("GET", "/v3/verified_senders", "verified_senders.read", function(a, req)
    local q = util.query(req)
    local limit = util.count_param(req, "limit", 100)
    local after = tonumber(q.lastSeenID) or 0
    if not limit then return errors(400, "limit must be a whole number", "limit") end
    local out = {}
    for _, s in ipairs(a:list("senders")) do
      if s.id > after and #out < limit then out[#out + 1] = sender_view(s) end
    end
    return json(200, {results = array(out)})
  end)

  route("POST", "/v3/verified_senders", "verified_senders.create", function(a, req)
    local b = body_of(req)
    for _, f in ipairs{"nickname", "from_email", "reply_to"} do
      if not b or type(b[f]) ~= "string" or b[f] == "" then return errors(400, f .. " is required", f) end
    end
    if not util.valid_email(b.from_email) then return errors(400, "from_email is not a valid address", "from_email") end
    local list, id = a:list("senders"), 1
    for _, s in ipairs(list) do id = math.max(id, s.id + 1) end
    local s = {id = id, verified = false, locked = false, token = util.alnum(a.r, 32)}
    for _, f in ipairs{"nickname", "from_email", "from_name", "reply_to", "reply_to_name", "address", "address2",
                       "state", "city", "zip", "country"} do
      s[f] = type(b[f]) == "string" and b[f] or ""
    end
    list[#list + 1] = s
    a:put("senders", list)
    return json(201, sender_view(s))
  end)

  route("GET", "/v3/verified_senders/verify/([%w]+)", "verified_senders.update", function(a, _, _, token)
    for _, s in ipairs(a:list("senders")) do
      if s.token == token then
        s.verified, s.token = true, nil
        a:put("senders", a:list("senders"))
        return util.no_content()
      end
    end
    return errors(404, "verification token not found")
  end)

  route("GET", "/sandbox/verification_tokens", nil, function(a)
    local out = {}
    for _, s in ipairs(a:list("senders")) do
      if s.token then out[#out + 1] = {id = s.id, from_email = s.from_email, token = s.token} end
    end
    return json(200, array(out))
  end)

  route("DELETE", "/v3/verified_senders/(%d+)", "verified_senders.delete", function(a, _, _, id)
    if not a:remove_from("senders", function(s) return s.id == tonumber(id) end) then
      return errors(404, "verified sender not found")
    end
    return util.no_content()
  end)

  -- }----

  -- {---- the user

  local function profile(a)
    local p = a:get("profile") or {}
    local out = {}
    for _, f in ipairs(PROFILE) do out[f] = p[f] or "" end
    return out
  end

  route("GET", "/v3/user/profile", "user.profile.read", function(a)
    return json(200, profile(a))
  end)

  route("PATCH", "/v3/user/profile", "user.profile.update", function(a, req)
    local b = body_of(req)
    if not b then return errors(400, "the body must be a JSON object") end
    local p = profile(a)
    for _, f in ipairs(PROFILE) do
      if b[f] ~= nil then
        if type(b[f]) ~= "string" then return errors(400, f .. " must be a string", f) end
        p[f] = b[f]
      end
    end
    a:put("profile", p)
    return json(200, p)
  end)

  route("GET", "/v3/user/account", "user.account.read", function(a)
    return json(200, {type = "paid", reputation = a:reputation(math.floor(ato.time()))})
  end)

  route("GET", "/v3/user/email", "user.email.read", function(a)
    return json(200, {email = a:get("email") or ((a.subuser or "owner") .. "@acme.example")})
  end)

  -- }----
end
