-- ato.sendgrid.sandbox.webhooks: event webhook settings, and delivery.
--
--   GET  /v3/user/webhooks/event/settings/all     {max_allowed, webhooks}
--   POST /v3/user/webhooks/event/settings         201 the new webhook
--   GET|PATCH|DELETE /v3/user/webhooks/event/settings/{id}
--   POST /v3/user/webhooks/event/test             {url*} -> 204
--   GET  /sandbox/webhook_deliveries              (drill-only) what each
--                                                 webhook was sent
--
-- Events of accepted mail are POSTed, as SendGrid does, as a JSON array to
-- every enabled webhook whose flag for the event is on. Only loopback URLs
-- are contacted (the sandbox must never reach the internet, nor help an
-- attacker's collector): events for any other URL are counted as withheld.
-- A POST answered 5xx, or not answered, is retried twice (after 0.2 and
-- 1 s); then, or at once for any other non-2xx, its events count failed.
local ato = require "ato"
local log = require "ato.log"
local util = require "ato.sendgrid.sandbox.util"

local errors, json, body_of, array = util.errors, util.json, util.body_of, util.array

local MAX_WEBHOOKS = 5
local BATCH = 1000

-- The setting flag that lets an event through.
local FLAG = {processed = "processed", dropped = "dropped", deferred = "deferred", delivered = "delivered",
              bounce = "bounce", open = "open", click = "click", spamreport = "spam_report",
              unsubscribe = "unsubscribe", group_unsubscribe = "group_unsubscribe",
              group_resubscribe = "group_resubscribe"}

-- Loopback as curl will read the URL (userinfo and IPv6 brackets
-- included): "http://127.0.0.1:1@elsewhere/" is elsewhere.
local function loopback(url)
  return require("ato.http").is_loopback(url)
end

local function stamp(t) return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t)) end

return function(route, Account, M)

  -- {---- delivery

  local function post(url, events)
    for attempt = 1, 3 do
      -- no redirects: a loopback URL must not forward the events elsewhere
      local resp, err = require("ato.http").request{method = "POST", url = url, json = array(events), timeout = 10,
        follow_redirects = false, headers = {["User-Agent"] = "SendGrid Event API (ato sandbox)"}}
      if resp and resp.status < 300 then return true end
      -- a redirect or a client error will not change: only 5xx and
      -- transport errors are worth another try
      if attempt == 3 or (resp and resp.status < 500) then
        log.warn("sandbox: event webhook delivery failed", {url = url, status = resp and resp.status,
                 error = err and tostring(err)})
        return false
      end
      ato.sleep(attempt == 1 and 0.2 or 1)
    end
  end

  -- Sends one emitted list to every webhook that wants some of it.
  local function deliver_all(a, events)
    for _, hook in ipairs(a:list("webhooks")) do
      if hook.enabled then
        local wanted = {}
        for _, e in ipairs(events) do
          if hook[FLAG[e.event] or e.event] then wanted[#wanted + 1] = e end
        end
        local st = a.deliveries[hook.id] or {url = hook.url, posts = 0, events = 0, withheld = 0, failed = 0}
        a.deliveries[hook.id], st.url = st, hook.url
        if not loopback(hook.url) then
          st.withheld = st.withheld + #wanted
        else
          for i = 1, #wanted, BATCH do
            local chunk = table.move(wanted, i, math.min(#wanted, i + BATCH - 1), 1, {})
            if post(hook.url, chunk) then
              st.posts, st.events = st.posts + 1, st.events + #chunk
            else
              st.failed = st.failed + #chunk
            end
          end
        end
      end
    end
  end

  --- Queues events for the webhooks; one task delivers them in order.
  function Account:emit(events)
    local root = self.parent or self
    if #events == 0 then return end
    root.outbox = root.outbox or {}
    root.drained = root.drained or ato.cond()
    root.outbox[#root.outbox + 1] = events
    if root.sender then return end
    root.sender = root:background(function()
      -- whether it drains or is cancelled (the sandbox closing), flushers wake
      local _ <close> = setmetatable({}, {__close = function()
        root.sender = nil
        root.drained:broadcast()
      end})
      while #root.outbox > 0 do
        deliver_all(root, table.remove(root.outbox, 1))
      end
    end)
  end

  --- Waits until every queued event has been delivered (or given up on).
  function Account:flush_events()
    local root = self.parent or self
    while root.sender do root.drained:wait() end
  end

  route("GET", "/sandbox/webhook_deliveries", nil, function(a)
    local root = a.parent or a
    root:flush_events()
    return json(200, root.deliveries)
  end)

  -- }----

  -- {---- settings

  local function view(w)
    local v = {}
    for k, x in pairs(w) do v[k] = x end
    return v
  end

  local function find(a, id)
    for i, w in ipairs(a:list("webhooks")) do
      if w.id == id then return w, i end
    end
  end

  -- Applies a POST/PATCH body to a webhook: everything is checked before
  -- anything changes (w is the cached record). -> w | nil, response.
  local function apply(w, b)
    if type(b) ~= "table" or type(b.url) ~= "string" or not b.url:match("^https?://[^%s/]+") then
      return nil, errors(400, "url is required and must be an http(s) URL", "url")
    end
    for _, f in ipairs(M.WEBHOOK_FLAGS) do
      if b[f] ~= nil and type(b[f]) ~= "boolean" then return nil, errors(400, f .. " must be true or false", f) end
    end
    if b.enabled ~= nil and type(b.enabled) ~= "boolean" then
      return nil, errors(400, "enabled must be true or false", "enabled")
    end
    if b.friendly_name ~= nil and type(b.friendly_name) ~= "string" then
      return nil, errors(400, "friendly_name must be a string", "friendly_name")
    end
    w.url = b.url
    for _, f in ipairs(M.WEBHOOK_FLAGS) do
      if b[f] ~= nil then w[f] = b[f] end
    end
    if b.enabled ~= nil then w.enabled = b.enabled end
    if b.friendly_name ~= nil then w.friendly_name = b.friendly_name end
    w.updated_date = stamp(ato.time())
    return w
  end

  route("GET", "/v3/user/webhooks/event/settings/all", "user.webhooks.event.settings.read", function(a)
    local list = {}
    for i, w in ipairs(a:list("webhooks")) do list[i] = view(w) end
    return json(200, {max_allowed = MAX_WEBHOOKS, webhooks = array(list)})
  end)

  route("POST", "/v3/user/webhooks/event/settings", "user.webhooks.event.settings.update", function(a, req)
    local list = a:list("webhooks")
    if #list >= MAX_WEBHOOKS then return errors(400, "at most 5 event webhooks") end
    local w = M.webhook_record(util.uuid(a.r), "", "", ato.time())
    for _, f in ipairs(M.WEBHOOK_FLAGS) do w[f] = false end
    w.enabled = false
    local ok, bad = apply(w, body_of(req))
    if not ok then return bad end
    list[#list + 1] = w
    a:put("webhooks", list)
    return json(201, view(w))
  end)

  route("GET", "/v3/user/webhooks/event/settings/([^/]+)", "user.webhooks.event.settings.read", function(a, _, _, id)
    local w = find(a, id)
    if not w then return errors(404, "webhook not found") end
    return json(200, view(w))
  end)

  route("PATCH", "/v3/user/webhooks/event/settings/([^/]+)", "user.webhooks.event.settings.update",
    function(a, req, _, id)
      local list = a:list("webhooks")
      local w = find(a, id)
      if not w then return errors(404, "webhook not found") end
      local ok, bad = apply(w, body_of(req))
      if not ok then return bad end
      a:put("webhooks", list)
      return json(200, view(w))
    end)

  route("DELETE", "/v3/user/webhooks/event/settings/([^/]+)", "user.webhooks.event.settings.update",
    function(a, _, _, id)
      if not a:remove_from("webhooks", function(w) return w.id == id end) then
        return errors(404, "webhook not found")
      end
      return util.no_content()
    end)

  route("POST", "/v3/user/webhooks/event/test", "user.webhooks.event.test.create", function(a, req)
    local b = body_of(req)
    if type(b) ~= "table" or type(b.url) ~= "string" or not b.url:match("^https?://") then
      return errors(400, "url is required", "url")
    end
    if loopback(b.url) then
      post(b.url, {{email = "example@test.com", timestamp = math.floor(ato.time()), event = "processed",
                    sg_event_id = util.chars(a.r, 22), sg_message_id = "sandbox-test." .. util.hex(a.r, 8)}})
    end
    return util.no_content()
  end)

  -- }----
end
