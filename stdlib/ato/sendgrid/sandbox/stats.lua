-- ato.sendgrid.sandbox.stats: the numbers a reputation watch reads.
--
--   GET /v3/stats                     start_date*, end_date, aggregated_by
--                                     (day|week|month), limit, offset
--   GET /v3/mailbox_providers/stats   the same + mailbox_providers (repeated,
--                                     at most 10; none: every provider)
--   GET /v3/categories/stats          the same + categories* (repeated, <= 10)
--
-- One store entry per UTC day holds the day's counters (model.lua's
-- buckets: global, per provider, per category); the scenario writes 30
-- days of history and accepted mail adds to today's.
local util = require "ato.sendgrid.sandbox.util"
local model = require "ato.sendgrid.sandbox.model"

local errors, json, array = util.errors, util.json, util.array

-- The longest range one query may ask for (SendGrid keeps stats for
-- years, but a query over decades is a mistake, and each day costs a read).
local MAX_DAYS = 3 * 366

local GLOBAL = {"blocks", "bounce_drops", "bounces", "clicks", "deferred", "delivered", "invalid_emails", "opens",
                "processed", "requests", "spam_report_drops", "spam_reports", "unique_clicks", "unique_opens",
                "unsubscribe_drops", "unsubscribes"}
local PROVIDER = {"blocks", "bounces", "clicks", "deferred", "delivered", "drops", "opens", "processed",
                  "requests", "spam_reports", "unique_clicks", "unique_opens"}

local function pick(fields, m)
  local out = {}
  for _, f in ipairs(fields) do out[f] = m and m[f] or 0 end
  return out
end

local function add_into(into, m)
  for k, v in pairs(m) do into[k] = (into[k] or 0) + v end
end

return function(route, Account)

  --- The counters of a UTC day ("YYYY-MM-DD"), created empty.
  function Account:stats_day(day)
    local t = self:get("stats/" .. day)
    if not t then
      t = model.new_day()
      self.cache[self.prefix .. "stats/" .. day] = t      -- concurrent sends share it
    end
    return t
  end

  function Account:save_stats_day(day, t)
    self:put("stats/" .. day, t)
  end

  --- Reputation (0..100) from the last 30 days, today included.
  function Account:reputation(now)
    local total = {}
    for ago = 0, 29 do
      local d = self:get("stats/" .. util.day(now - ago * 86400))
      if d then add_into(total, d.g) end
    end
    if not total.processed then return 100 end
    return model.reputation(total)
  end

  -- {---- the query

  -- The group a day falls in: itself, its week's Monday, its month's 1st
  -- (never before the range's start, as SendGrid labels them).
  local function group_of(t, by, start)
    local g = t
    if by == "week" then
      local wday = tonumber(os.date("!%w", t))            -- 0 = Sunday
      g = t - ((wday + 6) % 7) * 86400
    elseif by == "month" then
      g = t - (tonumber(os.date("!%d", t)) - 1) * 86400
    end
    return util.day(math.max(g, start))
  end

  -- The range and grouping of a stats query -> {dates, groups} or nil, response.
  local function range(req, now)
    local q = util.query(req)
    if not q.start_date then return nil, errors(400, "start_date is required", "start_date") end
    local from = util.parse_day(q.start_date)
    if not from then return nil, errors(400, "start_date must be a date, YYYY-MM-DD", "start_date") end
    local today = now - now % 86400
    local to = today
    if q.end_date then
      to = util.parse_day(q.end_date)
      if not to then return nil, errors(400, "end_date must be a date, YYYY-MM-DD", "end_date") end
      to = math.min(to, today)
    end
    if from > to then return nil, errors(400, "start_date must not be after end_date", "start_date") end
    if to - from > MAX_DAYS * 86400 then
      return nil, errors(400, ("a stats query spans at most %d days"):format(MAX_DAYS), "start_date")
    end
    local by = q.aggregated_by or "day"
    if by ~= "day" and by ~= "week" and by ~= "month" then
      return nil, errors(400, "aggregated_by must be day, week or month", "aggregated_by")
    end
    local groups, order = {}, {}
    for t = from, to, 86400 do
      local g = group_of(t, by, from)
      if not groups[g] then groups[g] = {} order[#order + 1] = g end
      table.insert(groups[g], util.day(t))
    end
    return {order = order, groups = groups}
  end

  -- Runs a stats query: entry(label, days) -> the stats list of one date.
  local function serve(a, req, entry)
    local rg, refusal = range(req, math.floor(require("ato").time()))
    if not rg then return refusal end
    local limit, offset = util.limit_offset(req, math.huge)
    if not limit then return offset end
    local out = {}
    for _, label in ipairs(rg.order) do
      local days = {}
      for _, d in ipairs(rg.groups[label]) do days[#days + 1] = a:get("stats/" .. d) or false end
      out[#out + 1] = {date = label, stats = array(entry(days))}
    end
    local page = {}
    for i = offset + 1, math.min(#out, offset + limit) do page[#page + 1] = out[i] end
    return json(200, array(page))
  end

  -- Sums bucket `name` of part ("p" or "c") over days (false = no data).
  local function sum(days, part, name)
    local m = {}
    for _, d in ipairs(days) do
      local b = d and (part and d[part][name] or d.g)
      if b then add_into(m, b) end
    end
    return m
  end

  -- }----

  route("GET", "/v3/stats", "stats.global.read", function(a, req)
    return serve(a, req, function(days) return {{metrics = pick(GLOBAL, sum(days))}} end)
  end)

  route("GET", "/v3/mailbox_providers/stats", "mailbox_providers.stats.read", function(a, req)
    local names = util.query_list(req, "mailbox_providers")
    if #names > 10 then return errors(400, "at most 10 mailbox_providers", "mailbox_providers") end
    if #names == 0 then names = model.PROVIDERS end
    return serve(a, req, function(days)
      local list = {}
      for _, name in ipairs(names) do
        list[#list + 1] = {type = "mailbox_provider", name = name, metrics = pick(PROVIDER, sum(days, "p", name))}
      end
      return list
    end)
  end)

  route("GET", "/v3/categories/stats", "categories.stats.read", function(a, req)
    local names = util.query_list(req, "categories")
    if #names == 0 then return errors(400, "categories is required", "categories") end
    if #names > 10 then return errors(400, "at most 10 categories", "categories") end
    return serve(a, req, function(days)
      local list = {}
      for _, name in ipairs(names) do
        list[#list + 1] = {type = "category", name = name, metrics = pick(GLOBAL, sum(days, "c", name))}
      end
      return list
    end)
  end)
end
