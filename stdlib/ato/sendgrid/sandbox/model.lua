-- ato.sendgrid.sandbox.model: what happens to mail the sandbox accepts.
--
-- Each recipient has a mailbox provider (from the domain) and an
-- engagement tier (from the drill account's subscriber list; "unknown" for
-- addresses not on it). The tier and the account's reputation set the odds
-- of each outcome; the outcome becomes SendGrid events (processed, dropped,
-- deferred, delivered, bounce with type bounce or blocked, open, click,
-- spamreport, unsubscribe) and counts in the day's stats, by provider and
-- by category. The same odds, taken as expected values, write the 30 days
-- of history a scenario starts with, so the history and live sends agree.
--
-- The numbers are plausible, not measured: blocks grow as reputation
-- falls, cold and unknown addresses bounce and complain more. See
-- ../shared/reference/rewarm-and-exposure.md for the thresholds the
-- re-warm drills watch (bounce < 2 %, spam < 0.1 %).
local util = require "ato.sendgrid.sandbox.util"

local M = {}

M.PROVIDERS = {"Gmail", "Yahoo", "Outlook.com", "AOL", "iCloud", "Other"}

local DOMAIN_PROVIDER = {
  ["gmail.com"] = "Gmail", ["googlemail.com"] = "Gmail",
  ["yahoo.com"] = "Yahoo", ["ymail.com"] = "Yahoo", ["rocketmail.com"] = "Yahoo",
  ["outlook.com"] = "Outlook.com", ["hotmail.com"] = "Outlook.com", ["live.com"] = "Outlook.com",
  ["msn.com"] = "Outlook.com",
  ["aol.com"] = "AOL",
  ["icloud.com"] = "iCloud", ["me.com"] = "iCloud", ["mac.com"] = "iCloud",
}

--- The mailbox provider of an address, as SendGrid's stats name it.
function M.provider(email)
  local domain = tostring(email):match("@([^@]+)$")
  return DOMAIN_PROVIDER[domain and domain:lower() or ""] or "Other"
end

-- Engagement tiers, most engaged first: the order a re-warm sends in.
M.TIERS = {"active_30d", "active_90d", "active_180d", "lapsed", "never"}

-- Per-tier odds: invalid address, hard bounce, and given delivery: open,
-- click (given an open), spam report, unsubscribe. `block` is the block
-- curve: base + (100 - reputation) / 100 * slope at the big providers,
-- times `other` at the rest; deferrals are half the blocks.
M.DEFAULT = {
  active_30d  = {invalid = 0,     bounce = 0.002, open = 0.45, click = 0.25, spam = 0.0002, unsub = 0.001},
  active_90d  = {invalid = 0,     bounce = 0.005, open = 0.25, click = 0.15, spam = 0.0005, unsub = 0.002},
  active_180d = {invalid = 0,     bounce = 0.01,  open = 0.12, click = 0.10, spam = 0.001,  unsub = 0.004},
  lapsed      = {invalid = 0,     bounce = 0.04,  open = 0.04, click = 0.05, spam = 0.004,  unsub = 0.006},
  never       = {invalid = 0,     bounce = 0.06,  open = 0.01, click = 0.03, spam = 0.006,  unsub = 0.005},
  unknown     = {invalid = 0.01,  bounce = 0.08,  open = 0.03, click = 0.05, spam = 0.008,  unsub = 0.003},
  block       = {base = 0.002, slope = 0.15, other = 0.5},
}

--- model.configure(overrides) -> the default model with overrides laid
--- over it ({lapsed = {open = 0.02}, block = {slope = 0.3}}), or nil and
--- what is wrong with them (an unknown tier or field, a value outside 0..1
--- or a slope outside 0..10).
function M.configure(overrides)
  local cfg = {}
  for name, fields in pairs(M.DEFAULT) do
    cfg[name] = {}
    for k, v in pairs(fields) do cfg[name][k] = v end
  end
  if overrides == nil then return cfg end
  if type(overrides) ~= "table" then return nil, "the model must be an object" end
  for name, fields in pairs(overrides) do
    if not cfg[name] then return nil, ("unknown tier '%s' in the model"):format(tostring(name)) end
    if type(fields) ~= "table" then return nil, ("model.%s must be an object"):format(name) end
    for k, v in pairs(fields) do
      if cfg[name][k] == nil then return nil, ("unknown field model.%s.%s"):format(name, tostring(k)) end
      local max = k == "slope" and 10 or 1
      if type(v) ~= "number" or v < 0 or v > max then
        return nil, ("model.%s.%s must be a number from 0 to %d"):format(name, k, max)
      end
      cfg[name][k] = v
    end
  end
  return cfg
end

local DEFAULT_CFG = M.configure()

--- The odds for one recipient: the tier's, with blocks and deferrals
--- from the account's reputation (0..100) at the provider.
function M.odds(tier, provider, reputation, cfg)
  cfg = cfg or DEFAULT_CFG
  local o = cfg[tier] or cfg.unknown
  local b = cfg.block
  local block = math.min(1, (b.base + (100 - reputation) / 100 * b.slope) * (provider == "Other" and b.other or 1))
  return {invalid = o.invalid, bounce = o.bounce, block = block, deferred = block / 2,
          open = o.open, click = o.click, spam = o.spam, unsub = o.unsub}
end

--- Reputation (0..100) from a period's totals: bounces and spam reports
--- cost it, as a mailbox provider's filter would weigh them.
function M.reputation(t)
  local processed = math.max(1, t.processed or 0)
  local bounce = ((t.bounces or 0) + (t.blocks or 0)) / processed
  local spam = (t.spam_reports or 0) / math.max(1, t.delivered or 0)
  local rep = 100 - 200 * bounce - 5000 * spam
  return math.max(0, math.min(100, math.floor(rep * 10 + 0.5) / 10))
end

-- {====================================================== counters

-- Every bucket (the day, a provider, a category) counts these; each stats
-- endpoint shows its own subset.
M.METRICS = {"blocks", "bounce_drops", "bounces", "clicks", "deferred", "delivered", "drops", "invalid_emails",
             "opens", "processed", "requests", "spam_report_drops", "spam_reports", "unique_clicks",
             "unique_opens", "unsubscribe_drops", "unsubscribes"}

function M.zero()
  local m = {}
  for _, k in ipairs(M.METRICS) do m[k] = 0 end
  return m
end

-- Adds n to metric k of the day's global, provider and category buckets.
local function count(day, provider, categories, k, n)
  n = n or 1
  day.g[k] = day.g[k] + n
  local p = day.p[provider]
  if not p then p = M.zero() day.p[provider] = p end
  p[k] = p[k] + n
  for _, c in ipairs(categories) do
    local b = day.c[c]
    if not b then b = M.zero() day.c[c] = b end
    b[k] = b[k] + n
  end
end
M.count = count

function M.new_day()
  return {g = M.zero(), p = {}, c = {}}
end

-- }======================================================

-- {====================================================== one recipient

-- Why a suppressed address is dropped, and the metric it counts in.
local DROPS = {
  bounces = {"Bounced Address", "bounce_drops"},
  spam_reports = {"Spam Reporting Address", "spam_report_drops"},
  unsubscribes = {"Unsubscribed Address", "unsubscribe_drops"},
  invalid_emails = {"Invalid", "invalid_emails"},
}

local BOUNCE = {status = "5.1.1", reason = "550 5.1.1 The email account that you tried to reach does not exist."}
local BLOCK = {status = "5.7.1", reason = "550 5.7.1 Message rejected due to sender reputation. Please visit the "
  .. "provider's postmaster site."}

--- Delivers one recipient: r is the dice, rcpt {email, tier, provider},
--- msg {categories, suppressed(email) -> list name | nil, reputation,
--- model (configure()'s; nil: the default)}.
--- Calls emit(event, fields) for each event in order, count(k) for each
--- metric, and suppress(list, entry) for each suppression it adds.
function M.deliver(r, rcpt, msg, emit, add, suppress)
  local email, provider = rcpt.email, rcpt.provider
  add("requests")
  local list = msg.suppressed(email)
  if list and DROPS[list] then
    local why = DROPS[list]
    add(why[2])
    if why[2] ~= "invalid_emails" then add("drops") end
    emit("dropped", {reason = why[1], status = "5.0.0"})
    return "dropped"
  end
  local o = M.odds(rcpt.tier, provider, msg.reputation, msg.model)
  local dice = util.chance
  if dice(r) < o.invalid then
    add("invalid_emails")
    emit("dropped", {reason = "Invalid", status = "5.1.3"})
    suppress("invalid_emails", {email = email, reason = "Mail domain mentioned in email address is unknown"})
    return "invalid"
  end
  add("processed")
  emit("processed", {})
  if dice(r) < o.deferred then
    add("deferred")
    emit("deferred", {attempt = "1", response = "421 4.7.0 Try again later, closing connection."})
  end
  if dice(r) < o.bounce then
    add("bounces")
    emit("bounce", {type = "bounce", status = BOUNCE.status, reason = BOUNCE.reason})
    suppress("bounces", {email = email, status = BOUNCE.status, reason = BOUNCE.reason})
    return "bounce"
  end
  if dice(r) < o.block then
    add("blocks")
    emit("bounce", {type = "blocked", status = BLOCK.status, reason = BLOCK.reason})
    suppress("blocks", {email = email, status = BLOCK.status, reason = BLOCK.reason})
    return "block"
  end
  add("delivered")
  emit("delivered", {response = "250 2.0.0 OK"})
  M.engage(r, o, rcpt, emit, add, suppress)
  return "delivered"
end

-- Opens, clicks, spam reports and unsubscribes of a delivered message.
function M.engage(r, o, rcpt, emit, add, suppress)
  local dice = util.chance
  if dice(r) < o.open then
    local opens = 1 + r(3)
    add("unique_opens")
    add("opens", opens)
    for _ = 1, opens do emit("open", {useragent = "Mozilla/5.0", ip = "192.0.2." .. (1 + r(250))}) end
    if dice(r) < o.click then
      add("unique_clicks")
      add("clicks")
      emit("click", {url = "https://acme.example/account", useragent = "Mozilla/5.0", ip = "192.0.2." .. (1 + r(250))})
    end
  end
  if dice(r) < o.spam then
    add("spam_reports")
    emit("spamreport", {})
    suppress("spam_reports", {email = rcpt.email, ip = "192.0.2.10"})
  elseif dice(r) < o.unsub then
    add("unsubscribes")
    emit("unsubscribe", {})
    suppress("unsubscribes", {email = rcpt.email})
  end
end

-- }======================================================

-- {====================================================== expected values

--- Adds to `day` what `volume` messages of one tier to one provider would
--- do on average (history: no per-recipient dice), with the noise of r.
function M.expect(day, r, volume, tier, provider, reputation, categories, cfg)
  local o = M.odds(tier, provider, reputation, cfg)
  local function n(x) return math.floor(x * (0.9 + util.chance(r) * 0.2) + 0.5) end
  local function add(k, v) count(day, provider, categories, k, v) end
  local invalid = n(volume * o.invalid)
  local processed = volume - invalid
  local bounces = n(processed * o.bounce)
  local blocks = n(processed * o.block)
  local delivered = processed - bounces - blocks
  local unique_opens = n(delivered * o.open)
  local unique_clicks = n(unique_opens * o.click)
  add("requests", volume)
  add("invalid_emails", invalid)
  add("processed", processed)
  add("deferred", n(processed * o.deferred))
  add("bounces", bounces)
  add("blocks", blocks)
  add("delivered", delivered)
  add("unique_opens", unique_opens)
  add("opens", n(unique_opens * 2))
  add("unique_clicks", unique_clicks)
  add("clicks", n(unique_clicks * 1.2))
  local spam = n(delivered * o.spam)
  add("spam_reports", spam)
  add("unsubscribes", n(delivered * o.unsub))
  return {bounces = bounces, blocks = blocks, spam_reports = spam, invalid = invalid}
end

-- }======================================================

return M
