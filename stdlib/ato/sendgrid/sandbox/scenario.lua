-- ato.sendgrid.sandbox.scenario: the drill accounts, built from a seed.
--
--   clean  a healthy account: three keys, two subusers, two teammates, our
--          office on the IP allow-list, the event webhook on our own host,
--          one authenticated domain and a verified sender, 30 days of
--          steady stats, suppressions, and a subscriber list
--   ato    the same account after a takeover (the compromise was 5 days
--          before the sandbox was created): two attacker full-access keys,
--          a rogue subuser, an unknown admin teammate, a pending invite, an
--          attacker allow-list entry with its access activity, the event
--          webhook pointed at an unknown URL, a look-alike authenticated
--          domain, and a spam/bounce/block spike in the stats since then
--
-- Also here: GET /sandbox/subscribers (not SendGrid's: a drill-only list of
-- subscribers with their engagement history, for re-warm plans), paged
-- like SendGrid's lists, with ?tier= to filter.
local ato = require "ato"
local util = require "ato.sendgrid.sandbox.util"
local model = require "ato.sendgrid.sandbox.model"

local chars, rng, json, page = util.chars, util.rng, util.json, util.page

local COMPROMISE_DAYS_AGO = 5

return function(route, Account, M)

  -- {---- subscribers

  local FIRST = {"Ana", "Ben", "Chen", "Dana", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo", "Kemal", "Lea",
                 "Mo", "Nia", "Omar", "Pia", "Quinn", "Raj", "Sara", "Tom", "Uma", "Vic", "Wen", "Yara", "Zoe"}
  -- where subscribers' addresses are, roughly as a consumer list splits
  local DOMAINS = {{"gmail.com", 45}, {"yahoo.com", 12}, {"hotmail.com", 9}, {"outlook.com", 9}, {"aol.com", 4},
                   {"icloud.com", 8}, {"fastmail.example", 5}, {"acme-customer.example", 8}}
  local TIER_SHARE = {{"active_30d", 30}, {"active_90d", 25}, {"active_180d", 15}, {"lapsed", 20}, {"never", 10}}
  -- days since the last open, by tier: [min, max]
  local LAST_OPEN = {active_30d = {0, 30}, active_90d = {31, 90}, active_180d = {91, 180}, lapsed = {181, 720}}

  local function pick(r, weighted)
    local total = 0
    for _, w in ipairs(weighted) do total = total + w[2] end
    local x = r(total)
    for _, w in ipairs(weighted) do
      if x < w[2] then return w[1] end
      x = x - w[2]
    end
  end

  local function subscriber(r, i, now)
    local tier, domain = pick(r, TIER_SHARE), pick(r, DOMAINS)
    local first = FIRST[r(#FIRST) + 1]
    local email = ("%s.%05d@%s"):format(first:lower(), i, domain)
    local span = LAST_OPEN[tier]
    local last_open = span and (now - (span[1] + r(span[2] - span[1] + 1)) * 86400 - r(86400)) or nil
    local opens = ({active_30d = 6 + r(20), active_90d = 2 + r(6), active_180d = 1 + r(2)})[tier] or 0
    return {email = email, first_name = first, tier = tier, provider = model.provider(email),
            subscribed_at = now - (200 + r(900)) * 86400, last_open_at = last_open,
            last_click_at = last_open and r(3) == 0 and last_open or nil,
            opens_90d = opens, clicks_90d = opens // 3}
  end

  function Account:seed_subscribers(r, n, now)
    local list = {}
    for i = 1, n do list[i] = subscriber(r, i, now) end
    self:put("subscribers", list)
  end

  --- The engagement tier of an address: its subscriber entry's, else "unknown".
  function Account:tier(email)
    local idx = self.index.tiers
    if not idx then
      idx = {}
      for _, s in ipairs(self:list("subscribers")) do idx[s.email] = s.tier end
      self.index.tiers = idx
    end
    return idx[email] or "unknown"
  end

  route("GET", "/sandbox/subscribers", nil, function(a, req)
    local items, headers = page(req, util.where(a:list("subscribers"), "tier", util.query(req).tier), 1000)
    if not items then return headers end
    return json(200, items, headers)
  end)

  -- }----

  -- {---- people and access

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
                                 email = "ops@" .. util.alnum(r, 8):lower() .. ".example", disabled = false}
      teammates[#teammates + 1] = {username = "support-" .. chars(r, 5):lower(), email = "it-desk@"
        .. util.alnum(r, 7):lower() .. ".example", first_name = "IT", last_name = "Desk", user_type = "admin",
        is_admin = true, scopes = M.FULL_ACCESS}
      pending[#pending + 1] = {email = "billing@" .. util.alnum(r, 7):lower() .. ".example", scopes = M.FULL_ACCESS,
                               is_admin = true, token = chars(r, 24), expiration_date = base + 6 * 86400}
      allow[#allow + 1] = {id = 2, ip = "203.0.113.77/32", created_at = base - 2 * 86400,
                           updated_at = base - 2 * 86400}
      activity[#activity + 1] = {allowed = true, auth_method = "api_key", first_at = base - 3 * 86400,
                                 ip = "203.0.113.77", last_at = base - 600, location = "unknown"}
    end
    self:put("subusers", subusers)
    self:put("teammates", teammates)
    self:put("pending", pending)
    self:put("allowlist", allow)
    self:put("activity", activity)
  end

  -- }----

  -- {---- stats history and suppressions

  -- Legitimate mail: receipts and password resets to engaged customers,
  -- a newsletter to the wider list.
  local LEGIT = {{"receipts", 0.5, {active_30d = 0.6, active_90d = 0.3, active_180d = 0.1}},
                 {"password-reset", 0.2, {active_30d = 0.7, active_90d = 0.2, active_180d = 0.1}},
                 {"newsletter", 0.3, {active_30d = 0.3, active_90d = 0.25, active_180d = 0.15, lapsed = 0.2,
                                      never = 0.1}}}
  local PROVIDER_SHARE = {Gmail = 0.45, Yahoo = 0.13, ["Outlook.com"] = 0.18, AOL = 0.04, iCloud = 0.08,
                          Other = 0.12}
  local HEALTHY = 97

  -- One day of history: legitimate volume, plus the attacker's blast to a
  -- bought list once the account is taken over.
  local function history_day(r, attacked, reputation, cfg)
    local day = model.new_day()
    local volume = 18000 + r(4000)
    for _, kind in ipairs(LEGIT) do
      for tier, share in pairs(kind[3]) do
        for _, p in ipairs(model.PROVIDERS) do
          model.expect(day, r, math.floor(volume * kind[2] * share * PROVIDER_SHARE[p]), tier, p, reputation,
                       {kind[1]}, cfg)
        end
      end
    end
    if attacked then
      local blast = 110000 + r(30000)
      for _, p in ipairs(model.PROVIDERS) do
        model.expect(day, r, math.floor(blast * PROVIDER_SHARE[p]), "unknown", p, reputation, {}, cfg)
      end
    end
    return day
  end

  function Account:seed_stats(scenario, r, today)
    local rep = HEALTHY
    for ago = 30, 1, -1 do
      local attacked = scenario == "ato" and ago <= COMPROMISE_DAYS_AGO
      if attacked then rep = math.max(40, rep - 9 - r(4)) end
      self:put("stats/" .. util.day(today - ago * 86400), history_day(r, attacked, rep, self.model))
    end
  end

  -- Suppression entries, spread over the last 30 days (older first).
  local function entries(r, n, now, make)
    local list = {}
    for i = 1, n do
      local e = make(i)
      e.created = now - 30 * 86400 + (i * 30 * 86400) // math.max(1, n) - r(600)
      list[i] = e
    end
    return list
  end

  function Account:seed_suppressions(scenario, r, now, volume)
    local spike = scenario == "ato" and 4 or 1
    local tld = function() return r(2) == 0 and "com" or "net" end
    self:put("supp/bounces", entries(r, volume.bounces or 1200, now, function(i)
      return {email = ("bounced%05d@example.%s"):format(i, tld()), status = "5.1.1",
              reason = "550 5.1.1 The email account that you tried to reach does not exist"}
    end))
    self:put("supp/blocks", entries(r, 80 * spike, now, function(i)
      return {email = ("blocked%04d@example.%s"):format(i, tld()), status = "5.7.1",
              reason = "550 5.7.1 Message rejected due to sender reputation"}
    end))
    self:put("supp/spam_reports", entries(r, 40 * spike, now, function(i)
      return {email = ("complainer%04d@example.%s"):format(i, tld()), ip = "192.0.2." .. (1 + r(250))}
    end))
    self:put("supp/invalid_emails", entries(r, 30, now, function(i)
      return {email = ("typo%04d@gmial.example"):format(i), reason = "Mail domain mentioned in email address is unknown"}
    end))
    self:put("supp/unsubscribes", entries(r, 150, now, function(i)
      return {email = ("optout%04d@example.%s"):format(i, tld())}
    end))
  end

  -- }----

  -- {---- webhooks, senders, profile

  local FLAGS = {"processed", "delivered", "deferred", "bounce", "dropped", "open", "click", "spam_report",
                 "unsubscribe", "group_unsubscribe", "group_resubscribe"}

  function M.webhook_record(id, url, name, at)
    at = math.floor(at)
    local w = {id = id, url = url, enabled = true, friendly_name = name,
               created_date = os.date("!%Y-%m-%dT%H:%M:%SZ", at), updated_date = os.date("!%Y-%m-%dT%H:%M:%SZ", at)}
    for _, f in ipairs(FLAGS) do w[f] = true end
    return w
  end
  M.WEBHOOK_FLAGS = FLAGS

  function Account:seed_settings(scenario, r, now)
    local hooks = {M.webhook_record(util.uuid(r), "https://hooks.acme.example/sendgrid/events", "acme events",
      now - 200 * 86400)}
    if scenario == "ato" then
      -- the attacker re-pointed our webhook: every event (recipients,
      -- opens, clicks) now goes to them
      hooks[1].url = "https://collect." .. util.alnum(r, 8):lower() .. ".example/sg"
      hooks[1].updated_date = os.date("!%Y-%m-%dT%H:%M:%SZ", now - 4 * 86400)
    end
    self:put("webhooks", hooks)
    local domains = {self:domain_record(1, "acme.example", "em", now - 400 * 86400, true)}
    if scenario == "ato" then
      domains[2] = self:domain_record(2, "acme-billing.example", "mail", now - 4 * 86400, true)
    end
    self:put("domains", domains)
    self:put("senders", {{id = 1, nickname = "Acme support", from_email = "support@acme.example",
      from_name = "Acme Support", reply_to = "support@acme.example", reply_to_name = "Acme Support",
      address = "1 Main St", address2 = "", state = "", city = "Springfield", zip = "00000", country = "US",
      verified = true, locked = false}})
    self:put("profile", {first_name = "Alex", last_name = "Owner", company = "Acme Example Ltd",
      address = "1 Main St", address2 = "", city = "Springfield", state = "", zip = "00000", country = "US",
      phone = "+1 555 0100", website = "https://acme.example"})
    self:put("email", "owner@acme.example")
  end

  -- }----

  --- Builds a scenario into an empty sandbox; returns the admin key.
  function Account:seed(scenario, seed, volume)
    local r = rng(seed)
    self.r = r
    local now = math.floor(ato.time())
    local today = now - now % 86400
    local admin_key = self:add_key("ato-drill-admin", M.FULL_ACCESS)
    self:add_key("production-mailer", {"mail.send"})
    self:add_key("stats-dashboard", {"stats.read", "stats.global.read", "categories.stats.read",
                                     "mailbox_providers.stats.read"})
    if scenario == "ato" then
      -- what an attacker leaves behind: two full-access keys
      self:add_key("api-key-backup", M.FULL_ACCESS)
      self:add_key("sendgrid-integration", M.FULL_ACCESS)
    end
    self:seed_people(scenario, r, now)
    self:seed_stats(scenario, r, today)
    self:seed_suppressions(scenario, r, now, volume)
    self:seed_settings(scenario, r, now)
    self:seed_subscribers(r, volume.subscribers or 5000, now)
    self:put("meta", {scenario = scenario, seed = seed, created = now, compromised_at = scenario == "ato"
                      and today - COMPROMISE_DAYS_AGO * 86400 or nil, sends = 0})
    return admin_key
  end
end
