-- ato.sendgrid.sandbox.mail: mail send, batch ids and scheduled sends.
--
--   POST /v3/mail/send                      202 + X-Message-Id; 200 and
--                                           nothing sent in sandbox_mode
--   POST /v3/mail/batch, GET /v3/mail/batch/{batch_id}
--   POST|GET /v3/user/scheduled_sends, GET|PATCH|DELETE .../{batch_id}
--
-- The body is checked as SendGrid documents it (400 with the field at
-- fault; 403 when the from address is neither on an authenticated domain
-- nor a verified sender; 413 over 30 MB). An accepted message is recorded
-- and each recipient goes through model.lua: events for the webhooks,
-- counts in today's stats, new suppressions. A send_at in the future
-- queues the message (kept in the store: a restart keeps the queue); a
-- paused batch waits, a cancelled one is dropped when due.
local ato = require "ato"
local util = require "ato.sendgrid.sandbox.util"
local model = require "ato.sendgrid.sandbox.model"

local errors, json, body_of, array, valid_email = util.errors, util.json, util.body_of, util.array, util.valid_email

local MAX_RECIPIENTS = 1000
local MAX_SCHEDULE = 72 * 3600

-- {====================================================== validation

local function fail(field, message, status)
  return errors(status or 400, message, field)
end

local function check_address(x, field, what)
  if type(x) ~= "table" or not valid_email(x.email) then
    return fail(field .. ".email", ("The %s email does not contain a valid address."):format(what))
  end
  if x.name ~= nil and (type(x.name) ~= "string" or x.name:find("[;,]")) then
    return fail(field .. ".name", "The name must be a string without ';' or ','.")
  end
end

local function check_custom_args(v, field)
  if v == nil then return end
  if type(v) ~= "table" or #v > 0 then return fail(field, "custom_args must be an object of string values.") end
  if next(v) == nil then return fail(field, "custom_args must not be empty when present.") end
  for k, x in pairs(v) do
    if type(x) ~= "string" then return fail(field .. "." .. tostring(k), "custom_args values must be strings.") end
  end
end

-- One personalization: its recipients (to, cc, bcc), unique within it.
local function check_personalization(p, i, seen_total)
  local at = ("personalizations.%d"):format(i - 1)
  if type(p) ~= "table" or type(p.to) ~= "table" or #p.to == 0 then
    return nil, fail(at .. ".to", "The to array is required for all personalization objects, and must have at "
      .. "least one email object with a valid email address.")
  end
  local seen, n = {}, 0
  for _, kind in ipairs{"to", "cc", "bcc"} do
    if p[kind] ~= nil and type(p[kind]) ~= "table" then return nil, fail(at .. "." .. kind, kind .. " must be a list") end
    for j, x in ipairs(p[kind] or {}) do
      local bad = check_address(x, ("%s.%s.%d"):format(at, kind, j - 1), "recipient")
      if bad then return nil, bad end
      local k = x.email:lower()
      if seen[k] then
        return nil, fail(at, "Each email address in the personalization block should be unique between to, cc, "
          .. "and bcc. We found the first duplicate instance of [" .. x.email .. "] in the " .. kind .. " field.")
      end
      seen[k], n = true, n + 1
    end
  end
  if seen_total + n > MAX_RECIPIENTS then
    return nil, fail("personalizations", "The total number of recipients must be no more than 1000.")
  end
  return n, check_custom_args(p.custom_args, at .. ".custom_args")
end

local function check_content(b)
  if b.template_id ~= nil then
    if type(b.template_id) ~= "string" or b.template_id == "" then
      return fail("template_id", "The template_id must be a non-empty string.")
    end
    if b.content == nil then return end
  end
  if type(b.content) ~= "table" or #b.content == 0 then
    return fail("content", "Unless a valid template_id is provided, the content parameter is required. There "
      .. "must be at least one defined content block.")
  end
  for i, c in ipairs(b.content) do
    if type(c) ~= "table" or type(c.type) ~= "string" or c.type == "" then
      return fail(("content.%d.type"):format(i - 1), "The content type must be a string at least one character in length.")
    end
    if type(c.value) ~= "string" or c.value == "" then
      return fail(("content.%d.value"):format(i - 1), "The content value must be a string at least one character "
        .. "in length.")
    end
    if c.type == "text/plain" and i > 1 then
      return fail(("content.%d.type"):format(i - 1), "If present, text/plain and text/html may only be provided in "
        .. "this order.")
    end
  end
end

local function check_subject(b)
  if b.template_id ~= nil or (type(b.subject) == "string" and b.subject ~= "") then return end
  for _, p in ipairs(b.personalizations) do
    if type(p.subject) ~= "string" or p.subject == "" then
      return fail("subject", "The subject is required. You can get around this requirement if you use a template "
        .. "with a subject defined or if every personalization has a subject defined.")
    end
  end
end

local function check_categories(v)
  if v == nil then return end
  if type(v) ~= "table" then return fail("categories", "categories must be a list of strings.") end
  if #v > 10 then return fail("categories", "Too many categories on this message. The maximum number of categories "
    .. "is 10.") end
  for i, c in ipairs(v) do
    if type(c) ~= "string" or #c > 255 then
      return fail(("categories.%d"):format(i - 1), "A category must be a string of at most 255 characters.")
    end
  end
end

local function check_send_at(v, field, now)
  if v == nil then return end
  if math.type(v) ~= "integer" then return fail(field, "send_at must be a Unix timestamp (whole seconds).") end
  if v > now + MAX_SCHEDULE then
    return fail(field, "The send_at parameter must be no more than 72 hours in the future.")
  end
end

-- The whole body -> the number of recipients, or nil and the response.
local function validate(a, b, now)
  if type(b.personalizations) ~= "table" or #b.personalizations == 0 then
    return nil, fail("personalizations", "The personalizations field is required and must have at least one "
      .. "personalization.")
  end
  if #b.personalizations > MAX_RECIPIENTS then
    return nil, fail("personalizations", "The personalizations field can have at most 1000 items.")
  end
  local total = 0
  for i, p in ipairs(b.personalizations) do
    local n, bad = check_personalization(p, i, total)
    if bad then return nil, bad end
    bad = check_send_at(p.send_at, ("personalizations.%d.send_at"):format(i - 1), now)
    if bad then return nil, bad end
    total = total + n
  end
  if type(b.from) ~= "table" then
    return nil, fail("from", "The from object must be provided for every email send. It is an object that requires "
      .. "the email parameter, but may also contain a name parameter.")
  end
  local bad = check_address(b.from, "from", "from")
    or (b.reply_to ~= nil and check_address(b.reply_to, "reply_to", "reply_to"))
    or check_subject(b) or check_content(b) or check_categories(b.categories)
    or check_custom_args(b.custom_args, "custom_args") or check_send_at(b.send_at, "send_at", now)
  if bad then return nil, bad end
  if b.batch_id ~= nil and (type(b.batch_id) ~= "string" or not a:get("batches/" .. b.batch_id)) then
    return nil, fail("batch_id", "The batch id is not valid.")
  end
  if not a:sender_ok(b.from.email) then
    return nil, fail("from", "The from address does not match a verified Sender Identity. Mail cannot be sent "
      .. "until this error is resolved.", 403)
  end
  return total
end

-- }======================================================

-- {====================================================== delivery

-- Which suppression lists a message's mail_settings bypass.
local function bypassed(b)
  local ms = type(b.mail_settings) == "table" and b.mail_settings or {}
  local function on(k) return type(ms[k]) == "table" and ms[k].enable == true end
  if on("bypass_list_management") then
    return {bounces = true, spam_reports = true, unsubscribes = true, invalid_emails = true}
  end
  return {bounces = on("bypass_bounce_management"), spam_reports = on("bypass_spam_management"),
          unsubscribes = on("bypass_unsubscribe_management")}
end

-- The event fields every event of one recipient shares.
local function event_base(msg, p, email, n)
  local e = {}
  for k, v in pairs(msg.custom_args) do e[k] = v end
  for k, v in pairs(type(p.custom_args) == "table" and p.custom_args or {}) do e[k] = v end
  e.email = email
  e["smtp-id"] = "<" .. msg.id .. "@sandbox.ato>"
  e.sg_message_id = msg.id .. ".sandbox." .. n
  if #msg.categories == 1 then e.category = msg.categories[1]
  elseif #msg.categories > 1 then e.category = array(msg.categories) end
  if msg.asm_group_id then e.asm_group_id = msg.asm_group_id end
  return e
end

--- Delivers personalizations (indices `which` of body b) now: events,
--- stats, suppressions. -> counts by outcome.
local function deliver(a, msg, b, which)
  local now = math.floor(ato.time())
  local dayname = util.day(now)
  local day = a:stats_day(dayname)
  local skip = bypassed(b)
  local ctx = {categories = msg.categories, reputation = a:reputation(now), model = a.model,
               suppressed = function(email)
                 local kind = a:suppressed(email)
                 if kind and not skip[kind] then return kind end
               end}
  local events, adds, outcome, n = {}, {}, {}, 0
  local function suppress(kind, entry)
    adds[kind] = adds[kind] or {}
    table.insert(adds[kind], entry)
  end
  for _, i in ipairs(which) do
    local p = b.personalizations[i]
    for _, kind in ipairs{"to", "cc", "bcc"} do
      for _, x in ipairs(p[kind] or {}) do
        n = n + 1
        local provider = model.provider(x.email)
        local base = event_base(msg, p, x.email, n)
        local function emit(name, fields)
          local e = {event = name, timestamp = now, sg_event_id = util.event_id(a.r)}
          for k, v in pairs(base) do e[k] = v end
          for k, v in pairs(fields) do e[k] = v end
          events[#events + 1] = e
        end
        local function add(k, v) model.count(day, provider, msg.categories, k, v) end
        local res = model.deliver(a.dice, {email = x.email, provider = provider, tier = a:tier(x.email)}, ctx,
                                  emit, add, suppress)
        outcome[res] = (outcome[res] or 0) + 1
        -- a 1,000-recipient request must not hold the loop for long
        if n % 200 == 0 then ato.sleep(0) end
      end
    end
  end
  a:save_stats_day(dayname, day)
  for kind, list in pairs(adds) do a:add_suppressions(kind, list) end
  a:emit(events)
  return outcome
end

-- }======================================================

return function(route, Account)
  -- {---- the queue of scheduled messages

  local function batch_status(a, id)
    for _, s in ipairs(a:list("scheduled")) do
      if s.batch_id == id then return s.status end
    end
  end

  -- One pass over the queue: delivers or drops what is due. Delivery
  -- yields, and a send may queue more meanwhile: what was handled is taken
  -- out of the queue as it is then (not replaced by a copy made before),
  -- and the next due time is that of what is left. -> the next due time
  -- (nil: nothing waits on the clock; paused batches wait for a resume),
  -- and how many wait.
  local function run_queue(a)
    local now, handled = ato.time(), {}
    for _, item in ipairs(a:list("queue")) do
      local status = item.batch_id and batch_status(a, item.batch_id)
      if item.at <= now and status == "cancel" then
        handled[item] = "cancelled"
      elseif item.at <= now and status ~= "pause" then
        handled[item] = "sent"
      end
    end
    for item, what in pairs(handled) do
      if what == "sent" then deliver(a, item.msg, a:get("messages/" .. item.id .. "/body"), item.which) end
      a:note_message(item.id, what)
    end
    local kept, next_at, waiting = {}, nil, {}
    for _, item in ipairs(a:list("queue")) do
      if not handled[item] then
        kept[#kept + 1], waiting[item.id] = item, true
        local paused = item.batch_id and batch_status(a, item.batch_id) == "pause"
        if not paused then next_at = math.min(next_at or math.huge, item.at) end
      end
    end
    if next(handled) then
      a:put("queue", kept)
      for item in pairs(handled) do            -- a body goes with its last queued part
        if not waiting[item.id] then a:del("messages/" .. item.id .. "/body") end
      end
    end
    return next_at, #kept
  end

  function Account:note_message(id, status)
    local m = self:get("messages/" .. id)
    if m then
      m.status = status
      self:put("messages/" .. id, m)
    end
  end

  --- Starts the queue's task when something waits in it (on start, and
  --- whenever a message is queued or a batch is paused or resumed). A
  --- signal while the task is busy delivering is not lost: `dirty` makes
  --- it look again before it waits.
  function Account:resume_scheduled()
    local root = self.parent or self
    root.dirty = true
    if root.scheduler then root.wake:signal() return end
    if #root:list("queue") == 0 then return end
    root.wake = root.wake or ato.cond()
    root.scheduler = root:background(function()
      while true do
        root.dirty = false
        local next_at, left = run_queue(root)
        if left == 0 then break end
        if not root.dirty then
          root.wake:wait(next_at and math.max(0.01, next_at - ato.time()) or nil)
        end
      end
      root.scheduler = nil
    end)
  end

  -- }----

  -- {---- mail send

  route("POST", "/v3/mail/send", "mail.send", function(a, req)
    if #(req.body or "") > 30 * 1024 * 1024 then
      return fail(nil, "The JSON payload you have included in your request is too large. Please limit your "
        .. "request to 30MB.", 413)
    end
    local b = body_of(req)
    if not b then return fail(nil, "The request body is not valid JSON.") end
    local now = math.floor(ato.time())
    local recipients, bad = validate(a, b, now)
    if not recipients then return bad end
    local ms = type(b.mail_settings) == "table" and b.mail_settings or {}
    if type(ms.sandbox_mode) == "table" and ms.sandbox_mode.enable == true then
      return {status = 200, body = ""}         -- checked, not sent (SendGrid's answer)
    end
    local msg = {id = util.alnum(a.r, 22), categories = b.categories or {},
                 custom_args = type(b.custom_args) == "table" and b.custom_args or {},
                 asm_group_id = type(b.asm) == "table" and b.asm.group_id or nil}
    local meta = a:get("meta")
    meta.sends = (meta.sends or 0) + 1
    a:put("meta", meta)
    -- personalizations grouped by when they go: now, or their send_at
    local now_list, later = {}, {}
    for i, p in ipairs(b.personalizations) do
      local at = p.send_at or b.send_at
      if at and at > now then
        later[at] = later[at] or {}
        table.insert(later[at], i)
      else
        now_list[#now_list + 1] = i
      end
    end
    a:put("messages/" .. msg.id, {id = msg.id, created = now, from = b.from.email, subject = b.subject,
      categories = array(msg.categories), recipients = recipients, batch_id = b.batch_id,
      send_at = b.send_at, status = next(later) and "scheduled" or "sent"})
    if next(later) then
      -- the body once; each queued part names its personalizations
      a:put("messages/" .. msg.id .. "/body", b)
      local queue = a:list("queue")
      for at, which in pairs(later) do
        queue[#queue + 1] = {id = msg.id, at = at, batch_id = b.batch_id, which = which, msg = msg}
      end
      a:put("queue", queue)
      a:resume_scheduled()
    end
    if #now_list > 0 then deliver(a, msg, b, now_list) end
    return {status = 202, headers = {["X-Message-Id"] = msg.id}, body = ""}
  end, {behalf = false})

  -- }----

  -- {---- batches and scheduled sends

  route("POST", "/v3/mail/batch", "mail.batch.create", function(a)
    local id = util.alnum(a.r, 32)
    a:put("batches/" .. id, {created = math.floor(ato.time())})
    return json(201, {batch_id = id})
  end)

  route("GET", "/v3/mail/batch/([^/]+)", "mail.batch.read", function(a, _, _, id)
    if not a:get("batches/" .. id) then return fail("batch_id", "invalid batch id") end
    return json(200, {batch_id = id})
  end)

  local function status_of(b)
    if type(b) ~= "table" or (b.status ~= "pause" and b.status ~= "cancel") then return nil end
    return b.status
  end

  route("POST", "/v3/user/scheduled_sends", "user.scheduled_sends.create", function(a, req)
    local b = body_of(req)
    local status = status_of(b)
    if not status then return fail("status", "status must be pause or cancel") end
    if type(b.batch_id) ~= "string" or not a:get("batches/" .. b.batch_id) then
      return fail("batch_id", "invalid batch id")
    end
    local list = a:list("scheduled")
    for _, s in ipairs(list) do
      if s.batch_id == b.batch_id then return fail("batch_id", "this batch already has a status: PATCH it") end
    end
    list[#list + 1] = {batch_id = b.batch_id, status = status}
    a:put("scheduled", list)
    return json(201, {batch_id = b.batch_id, status = status})
  end)

  route("GET", "/v3/user/scheduled_sends", "user.scheduled_sends.read", function(a)
    return json(200, array(a:list("scheduled")))
  end)

  route("GET", "/v3/user/scheduled_sends/([^/]+)", "user.scheduled_sends.read", function(a, _, _, id)
    local status = batch_status(a, id)
    if not status then return errors(404, "no scheduled send status for batch " .. id) end
    return json(200, array{{batch_id = id, status = status}})
  end)

  route("PATCH", "/v3/user/scheduled_sends/([^/]+)", "user.scheduled_sends.update", function(a, req, _, id)
    local status = status_of(body_of(req))
    if not status then return fail("status", "status must be pause or cancel") end
    local list, hit = a:list("scheduled"), false
    for _, s in ipairs(list) do if s.batch_id == id then s.status, hit = status, true end end
    if not hit then return errors(404, "no scheduled send status for batch " .. id) end
    a:put("scheduled", list)
    a:resume_scheduled()
    return util.no_content()
  end)

  route("DELETE", "/v3/user/scheduled_sends/([^/]+)", "user.scheduled_sends.delete", function(a, _, _, id)
    if not a:remove_from("scheduled", function(s) return s.batch_id == id end) then
      return errors(404, "no scheduled send status for batch " .. id)
    end
    a:resume_scheduled()          -- a paused batch that is due goes now
    return util.no_content()
  end)

  -- }----
end
