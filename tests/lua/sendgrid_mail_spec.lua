-- ato.sendgrid against the sandbox, part two: suppressions, stats, mail
-- send (validation, splitting, delivery events to a real webhook receiver
-- on loopback), batches and scheduled sends, sender authentication, the
-- user's profile, on-behalf-of and the subscriber list. Each sandbox keeps
-- its state in a real SQLite file.
local ato = require "ato"
local cjson = require "cjson"
local http = require "ato.http"
local store = require "ato.store"
local sendgrid = require "ato.sendgrid"
local sandbox = require "ato.sendgrid.sandbox"
local support = require "support"

local DAY = 86400

local function day(t) return os.date("!%Y-%m-%d", math.floor(t)) end

describe("ato.sendgrid mail, stats and settings with the sandbox", function()
  support.clean_after_each()
  local dir, cleanup
  setup(function() dir, cleanup = support.tmpdir() end)
  teardown(function() cleanup() end)

  local n = 0
  -- A fresh sandbox: -> client (full access), sandbox, account, stop().
  local function fresh(opts)
    n = n + 1
    local s = assert(store.open(("%s/sb%d/ato.db"):format(dir, n)))
    opts = opts or {}
    opts.store = s
    local sb, base, admin, account = sandbox.start(opts)
    assert(sb, base)
    local c = assert(sendgrid.client{api_key = admin, base_url = base})
    return c, sb, account, function() sb:close() s:close() end, admin
  end

  -- A webhook receiver on loopback: -> url, events (a list that fills), stop().
  local function receiver()
    local events = {}
    local srv = assert(http.serve{host = "127.0.0.1", port = 0, handler = function(req)
      for _, e in ipairs(cjson.decode(req.body)) do events[#events + 1] = e end
      return 200, nil, ""
    end})
    local host, port = srv:address()
    return ("http://%s:%d/events"):format(host, port), events, function() srv:close() end
  end

  local function account_of(sb) return sb.account end

  local function count(list, pred)
    local k = 0
    for _, x in ipairs(list) do if pred(x) then k = k + 1 end end
    return k
  end

  local function today_totals(c)
    local rows = assert(c:stats{start_date = day(ato.time())})
    return rows[1].stats[1].metrics
  end

  local MAIL = {from = {email = "support@acme.example", name = "Acme"}, subject = "Your receipt",
                content = {{type = "text/plain", value = "Thanks"}, {type = "text/html", value = "<p>Thanks</p>"}}}

  local function mail(extra)
    local m = {}
    for k, v in pairs(MAIL) do m[k] = v end
    for k, v in pairs(extra) do m[k] = v end
    return m
  end

  describe("suppressions", function()
    it("walks, reads and deletes each list; bulk deletes; global unsubscribes", function()
      local c, _, _, stop = fresh{volume = {bounces = 40}}
      finally(stop)
      local sizes = {}
      for _, kind in ipairs{"bounces", "blocks", "spam_reports", "invalid_emails", "unsubscribes"} do
        local k, last = 0, math.huge
        for e in c:suppressions(kind, {limit = 25}) do
          assert.is_true(e.created <= last, kind .. " not newest first")
          last, k = e.created, k + 1
          assert.matches("@", e.email)
        end
        sizes[kind] = k
      end
      assert.same({bounces = 40, blocks = 80, spam_reports = 40, invalid_emails = 30, unsubscribes = 150}, sizes)
      local first = c:blocks()()
      local got = assert(c:suppression("blocks", first.email))
      assert.same({first}, got)
      assert.is_true(c:delete_suppression("blocks", first.email))
      assert.same({}, assert(c:suppression("blocks", first.email)))
      local _, e404 = c:delete_suppression("blocks", first.email)
      assert.equal(404, e404.status)
      -- by list of addresses, then all of one list
      local two = {}
      for e in c:spam_reports{limit = 2} do two[#two + 1] = e.email if #two == 2 then break end end
      assert.is_true(c:delete_suppressions("spam_reports", two))
      local left = 0
      for _ in c:spam_reports() do left = left + 1 end
      assert.equal(38, left)
      assert.is_true(c:delete_suppressions("invalid_emails", "all"))
      assert.is_nil(c:invalid_emails()())
      -- a time window
      local now = ato.time()
      local from, expected = math.floor(now - 15 * DAY), 0
      for e in c:bounces() do if e.created >= from then expected = expected + 1 end end
      assert.is_true(expected > 10 and expected < 40, "the window holds " .. expected)
      local recent, before = 0, c.calls
      for e in c:bounces{start_time = from, end_time = math.floor(now), limit = 5} do
        assert.is_true(e.created >= from, "an entry before start_time on a later page")
        recent = recent + 1
      end
      assert.equal(expected, recent)
      assert.is_true(c.calls - before > 2, "the filtered walk did not page")
      -- global unsubscribes
      assert.same({"drill@acme.example"}, assert(c:unsubscribe{"drill@acme.example"}))
      assert.same({{email = "drill@acme.example"}}, assert(c:suppression("unsubscribes", "drill@acme.example")))
      assert.is_true(c:delete_suppression("unsubscribes", "drill@acme.example"))
      assert.same({}, assert(c:suppression("unsubscribes", "drill@acme.example")))
      assert.has_error(function() c:suppressions("spam") end)
    end)
  end)

  it("paces per-address deletes as one endpoint, drawing no 429", function()
    local c, _, _, stop = fresh{limit = 3, window = 1, volume = {bounces = 10}}
    finally(stop)
    local emails = {}
    for e in c:bounces() do emails[#emails + 1] = e.email end
    for i = 1, 7 do assert.is_true(c:delete_suppression("bounces", emails[i])) end
    assert.equal(0, c.throttled, "a 429 was drawn")
    assert.is_true(c.waited > 0, "the deletes never waited for a reset")
    local n = 0
    for _ in pairs(c.windows) do n = n + 1 end
    assert.equal(2, n)                       -- GET bounces, DELETE bounces/{id}
  end)

  describe("stats", function()
    it("show the ato scenario's spam, bounce and block spike after the compromise, by provider and category",
      function()
        local c, _, account, stop = fresh{scenario = "ato", seed = 3}
        finally(stop)
        local now = ato.time()
        local rows = assert(c:stats{start_date = day(now - 30 * DAY), end_date = day(now - DAY)})
        assert.equal(30, #rows)
        local function rates(from, to)
          local t = {requests = 0, processed = 0, bounces = 0, blocks = 0, spam_reports = 0, delivered = 0}
          for i = from, to do
            for k in pairs(t) do t[k] = t[k] + rows[i].stats[1].metrics[k] end
          end
          return t.bounces / t.processed, t.blocks / t.processed, t.spam_reports / t.delivered, t.requests / (to - from + 1)
        end
        local b0, k0, s0, v0 = rates(1, 25)
        local b1, k1, s1, v1 = rates(26, 30)
        assert.is_true(b0 < 0.02 and s0 < 0.001, ("healthy before: bounce %.4f spam %.5f"):format(b0, s0))
        assert.is_true(b1 > 3 * b0 and k1 > 3 * k0 and s1 > 10 * s0 and v1 > 4 * v0,
                       ("no spike: bounce %.4f->%.4f block %.4f->%.4f spam %.5f->%.5f"):format(b0, b1, k0, k1, s0, s1))
        local meta = account:get("meta")
        assert.equal(day(meta.compromised_at), rows[26].date)
        -- providers and categories add up to the day
        local last = rows[30]
        local prov = assert(c:mailbox_provider_stats{start_date = last.date, end_date = last.date})
        local _, by = sendgrid.totals(prov)
        local sum = 0
        for _, m in pairs(by) do sum = sum + m.requests end
        assert.equal(last.stats[1].metrics.requests, sum)
        assert.is_true(by.Gmail.requests > by.Yahoo.requests)
        local two = assert(c:mailbox_provider_stats{start_date = last.date, mailbox_providers = {"Gmail", "Yahoo"}})
        assert.equal(2, #two[1].stats)
        local cats = assert(c:category_stats{start_date = day(now - 30 * DAY), categories = {"receipts", "newsletter"}})
        local _, bycat = sendgrid.totals(cats)
        assert.is_true(bycat.receipts.delivered > 0 and bycat.newsletter.delivered > 0)
        -- week and month groups hold the same totals as the days
        local all = sendgrid.totals(rows)
        local weeks = assert(c:stats{start_date = day(now - 30 * DAY), end_date = day(now - DAY), aggregated_by = "week"})
        assert.is_true(#weeks >= 5 and #weeks <= 6)
        assert.same(all, (sendgrid.totals(weeks)))
        local months = assert(c:stats{start_date = day(now - 30 * DAY), end_date = day(now - DAY), aggregated_by = "month"})
        assert.same(all, (sendgrid.totals(months)))
        -- reputation shows the damage; a clean account's does not
        local rep = assert(c:account()).reputation
        local clean, _, _, stop2 = fresh{scenario = "clean", seed = 3}
        finally(stop2)
        local clean_rep = assert(clean:account()).reputation
        assert.is_true(rep < 80 and clean_rep > 90, ("reputation %s vs clean %s"):format(rep, clean_rep))
      end)

    it("refuse a query without start_date or with a bad aggregation, with the API's error", function()
      local c, _, _, stop = fresh()
      finally(stop)
      local none, err = c:stats_list("/v3/stats", {})
      assert.is_nil(none)
      assert.same({400, "start_date"}, {err.status, err.errors[1].field})
      local _, e2 = c:stats{start_date = day(ato.time()), aggregated_by = "year"}
      assert.same({400, "aggregated_by"}, {e2.status, e2.errors[1].field})
      local _, e3 = c:stats{start_date = "2026-02-30"}
      assert.equal(400, e3.status)
      local _, e4 = c:stats{start_date = "1970-01-01"}                   -- over 3 years
      assert.same({400, "start_date"}, {e4.status, e4.errors[1].field})
      -- limits and offsets: bounded (a huge one once hung the sandbox), checked
      local huge = "9223372036854775807"
      for _, path in ipairs{"/v3/suppression/bounces", "/v3/stats"} do
        local _, e5 = c:call("GET", path, {query = {start_date = day(ato.time()), offset = huge, limit = huge}})
        assert.same({400, "limit"}, {e5.status, e5.errors[1].field})
        local _, e6 = c:call("GET", path, {query = {start_date = day(ato.time()), limit = "abc"}})
        assert.equal(400, e6.status)
      end
      assert.same({}, assert(c:call("GET", "/v3/suppression/bounces", {query = {offset = 2147483647}})))
      assert.has_error(function() c:stats{} end)
    end)
  end)

  describe("mail send", function()
    it("splits 10,000 recipients into 10 requests, every one accepted with an X-Message-Id", function()
      local c, _, _, stop = fresh()
      finally(stop)
      local rcpts = {}
      for i = 1, 10000 do rcpts[i] = ("reader%05d@example.org"):format(i) end
      local before = c.calls
      local sent = assert(c:send(mail{recipients = rcpts, categories = {"drill"}}))
      assert.equal(10, sent.requests)
      assert.equal(10, c.calls - before)
      assert.equal(10000, sent.recipients)
      assert.equal(10, #sent.message_ids)
      local seen = {}
      for _, id in ipairs(sent.message_ids) do
        assert.is_nil(seen[id])
        seen[id] = true
      end
      local m = today_totals(c)
      assert.equal(10000, m.requests)
      assert.equal(m.requests, m.processed + m.invalid_emails + m.bounce_drops + m.spam_report_drops
                   + m.unsubscribe_drops)
      assert.equal(m.processed, m.delivered + m.bounces + m.blocks)
      -- several recipients per personalization count toward the same limit
      local ps = {}
      for i = 1, 600 do
        ps[i] = {to = {{email = ("a%d@example.org"):format(i)}}, cc = {{email = ("b%d@example.org"):format(i)}}}
      end
      local two = assert(c:send(mail{personalizations = ps}))
      assert.equal(2, two.requests)
      assert.equal(1200, two.recipients)
      -- the boundary, and a failure part-way that says where to resume
      local list = {}
      for i = 1, 1000 do list[i] = ("edge%04d@example.org"):format(i) end
      assert.equal(1, assert(c:send(mail{recipients = list})).requests)
      list[1001] = "edge1001@example.org"
      assert.equal(2, assert(c:send(mail{recipients = list})).requests)
      list[1001] = "not an address"
      local none, err = c:send(mail{recipients = list})
      assert.is_nil(none)
      assert.equal(400, err.status)
      assert.same({1, 1000, 1000}, {err.sent.requests, err.sent.personalizations, err.sent.recipients})
      assert.equal(1, #err.sent.message_ids)
    end)

    it("counts every recipient of concurrent sends, and queues concurrent scheduled ones", function()
      local c, _, account, stop = fresh()
      finally(stop)
      local tasks = {}
      for k = 1, 5 do
        tasks[k] = ato.spawn(function()
          local list = {}
          for i = 1, 300 do list[i] = ("c%d.%03d@example.org"):format(k, i) end
          return assert(c:send(mail{recipients = list}))
        end)
        tasks[5 + k] = ato.spawn(function()
          return assert(c:send(mail{recipients = {("later%d@example.org"):format(k)},
                                    send_at = math.floor(ato.time()) + 3600}))
        end)
      end
      for _, t in ipairs(tasks) do assert(t:join()) end
      assert.equal(1500, today_totals(c).requests)
      assert.equal(5, #account:get("queue"))
    end)

    it("refuses the documented mistakes with 400 and the field, and an unverified from with 403", function()
      local c, _, _, stop = fresh()
      finally(stop)
      local function refused(msg, status, field)
        local ok, err = c:send(msg)
        assert.is_nil(ok)
        assert.equal(status, err.status, cjson.encode(err.errors))
        assert.equal(field, err.errors[1].field)
        assert.equal(0, err.sent.requests)
        return err
      end
      local one = {{to = {{email = "x@example.org"}}}}
      refused(mail{personalizations = {}}, 400, "personalizations")
      refused(mail{personalizations = {{to = {{email = "not-an-address"}}}}}, 400, "personalizations.0.to.0.email")
      refused(mail{personalizations = {{to = {{email = "x@example.org"}}, cc = {{email = "X@example.org"}}}}}, 400,
              "personalizations.0")
      refused({personalizations = one, subject = "s", content = MAIL.content}, 400, "from")
      refused(mail{personalizations = one, subject = cjson.null}, 400, "subject")
      refused(mail{personalizations = one, content = {{type = "text/html", value = "<p>"}, {type = "text/plain",
              value = "x"}}}, 400, "content.1.type")
      refused(mail{personalizations = one, content = {}}, 400, "content")
      refused(mail{personalizations = one, categories = {"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"}},
              400, "categories")
      refused(mail{personalizations = one, send_at = math.floor(ato.time()) + 73 * 3600}, 400, "send_at")
      refused(mail{personalizations = one, batch_id = "nope"}, 400, "batch_id")
      refused(mail{personalizations = one, custom_args = {day = 3}}, 400, "custom_args.day")
      refused(mail{personalizations = one, from = {email = "ceo@elsewhere.example"}}, 403, "from")
      -- per-personalization subjects and a template without content are valid
      assert(c:send(mail{personalizations = {{to = {{email = "x@example.org"}}, subject = "s"}}, subject = cjson.null}))
      assert(c:send{personalizations = one, from = MAIL.from, template_id = "d-0123456789abcdef"})
      -- sandbox mode checks and sends nothing
      local before = today_totals(c).requests
      local dry = assert(c:send(mail{personalizations = one, mail_settings = {sandbox_mode = {enable = true}}}))
      assert.same({}, dry.message_ids)
      assert.equal(before, today_totals(c).requests)
      -- on-behalf-of is not for mail send
      local behalf = assert(sendgrid.client{api_key = c.auth():match("Bearer (.*)"), base_url = c.base,
                                            on_behalf_of = "acme-marketing"})
      local _, e = behalf:send(mail{personalizations = one})
      assert.same({400, "on-behalf-of"}, {e.status, e.errors[1].field})
    end)

    it("posts the delivery events to the event webhook in SendGrid's format, as its flags select", function()
      local c, _, account, stop = fresh()
      finally(stop)
      local url, events, stop_rx = receiver()
      finally(stop_rx)
      local hooks = assert(c:event_webhooks())
      assert.equal(1, #hooks)
      assert(c:update_event_webhook(hooks[1].id, {url = url, enabled = true, open = false}))
      local subscribers = {}
      for s in c:pages("/sandbox/subscribers", {tier = "active_30d"}) do
        subscribers[#subscribers + 1] = s.email
        if #subscribers == 300 then break end
      end
      local bounced = c:bounces()().email
      subscribers[#subscribers + 1] = bounced
      local sent = assert(c:send(mail{recipients = subscribers, categories = {"rewarm"},
                                      custom_args = {playbook = "rewarm", day = "1"}}))
      account:flush_events()
      local processed = count(events, function(e) return e.event == "processed" end)
      local delivered = count(events, function(e) return e.event == "delivered" end)
      assert.equal(300, processed)
      assert.is_true(delivered > 250, "delivered " .. delivered)
      assert.equal(0, count(events, function(e) return e.event == "open" end))     -- flag off
      assert.is_true(count(events, function(e) return e.event == "click" end) > 0)
      local drop
      for _, e in ipairs(events) do if e.email == bounced then drop = e end end
      assert.same({"dropped", "Bounced Address"}, {drop.event, drop.reason})
      local e = events[1]
      assert.equal("rewarm", e.category)
      assert.same({"rewarm", "1"}, {e.playbook, e.day})
      assert.equal(sent.message_ids[1], e.sg_message_id:match("^([^.]+)%."))
      assert.equal("number", type(e.timestamp))
      assert.equal(22, #e.sg_event_id)
      -- the stats agree with the events
      local m = today_totals(c)
      assert.equal(delivered, m.delivered)
      assert.equal(1, m.bounce_drops)
      local _, bycat = sendgrid.totals(assert(c:category_stats{start_date = day(ato.time()), categories = {"rewarm"}}))
      assert.equal(delivered, bycat.rewarm.delivered)
      -- the test event
      assert.is_true(c:test_event_webhook(url))
      assert.equal("processed", events[#events].event)
    end)

    it("leaves a webhook as it was after a refused update, and never posts past loopback", function()
      local c, _, account, stop = fresh()
      finally(stop)
      local hook = assert(c:event_webhooks())[1]
      local _, bad = c:update_event_webhook(hook.id, {url = "http://127.0.0.1:9/x", delivered = "yes"})
      assert.same({400, "delivered"}, {bad.status, bad.errors[1].field})
      assert.equal(hook.url, assert(c:event_webhook(hook.id)).url)
      -- an address on 127.0.0.2 stands for the outside world
      local outside = {}
      local far = assert(http.serve{host = "127.0.0.2", port = 0, handler = function(req)
        outside[#outside + 1] = req.path
        return 200, nil, ""
      end})
      finally(function() far:close() end)
      local _, far_port = far:address()
      local bounce = assert(http.serve{host = "127.0.0.1", port = 0, handler = function()
        return 307, {Location = ("http://127.0.0.2:%d/redirected"):format(far_port)}, ""
      end})
      finally(function() bounce:close() end)
      local _, bounce_port = bounce:address()
      for _, url in ipairs{("http://127.0.0.1:9@127.0.0.2:%d/userinfo"):format(far_port),
                           ("http://127.0.0.1:%d/redirect"):format(bounce_port)} do
        assert(c:update_event_webhook(hook.id, {url = url, enabled = true}))
        assert(c:send(mail{recipients = {"x@example.org"}}))
        account:flush_events()
        assert.is_true(c:test_event_webhook(url))
      end
      assert.same({}, outside)
      local st = assert(c:call("GET", "/sandbox/webhook_deliveries"))[hook.id]
      assert.is_true(st.withheld > 0 and st.failed > 0, ("withheld %d failed %d"):format(st.withheld, st.failed))
      -- the allow-list: a bad entry refuses the whole request
      local before = #assert(c:ip_allowlist())
      local _, e400 = c:allow_ips{"192.0.2.1", "not-an-ip"}
      assert.equal(400, e400.status)
      assert.equal(before, #assert(c:ip_allowlist()))
    end)

    it("withholds events from a webhook URL that is not on loopback (the ato scenario's collector)", function()
      local c, _, account, stop = fresh{scenario = "ato"}
      finally(stop)
      local hooks = assert(c:event_webhooks())
      assert.matches("^https://collect%.", hooks[1].url)
      assert(c:send(mail{recipients = {"a@example.org", "b@example.org"}}))
      account:flush_events()
      local body = assert(c:call("GET", "/sandbox/webhook_deliveries"))
      local st = body[hooks[1].id]
      assert.equal(0, st.posts)
      assert.is_true(st.withheld >= 2)
      -- the playbook's fix: delete the attacker's webhook
      assert.is_true(c:delete_event_webhook(hooks[1].id))
      assert.same({}, (assert(c:event_webhooks())))
      local made = assert(c:create_event_webhook{url = "https://hooks.acme.example/sg", enabled = true,
                                                 delivered = true, bounce = true})
      assert.is_true(made.delivered and not made.open)
      assert.equal(made.url, assert(c:event_webhook(made.id)).url)
    end)

    it("holds a scheduled send until send_at, keeps a paused batch, drops a cancelled one", function()
      local c, _, account, stop = fresh()
      finally(stop)
      local url, events, stop_rx = receiver()
      finally(stop_rx)
      local hook = assert(c:event_webhooks())[1]
      assert(c:update_event_webhook(hook.id, {url = url}))
      local at = math.floor(ato.time()) + 3
      local paused, cancelled = assert(c:create_batch()), assert(c:create_batch())
      assert.equal(paused, assert(c:batch(paused)))
      assert(c:send(mail{recipients = {"p@example.org"}, batch_id = paused, send_at = at}))
      assert(c:send(mail{recipients = {"c@example.org"}, batch_id = cancelled, send_at = at}))
      assert(c:send(mail{recipients = {"s@example.org"}, send_at = at}))
      assert.equal(0, today_totals(c).requests)
      assert.is_true(c:pause_batch(paused))
      assert.is_true(c:cancel_batch(cancelled))
      assert.equal("pause", c:scheduled_send(paused))
      local listed = assert(c:scheduled_sends())
      assert.equal(2, #listed)
      while ato.time() < at + 0.5 do ato.sleep(0.1) end
      account:flush_events()
      local to = {}
      for _, e in ipairs(events) do to[e.email] = true end
      assert.same({["s@example.org"] = true}, to)
      -- resuming the paused batch sends it at once; the cancelled one is gone
      assert.is_true(c:resume_batch(paused))
      assert.is_nil(c:scheduled_send(paused))
      -- (the scheduler writes the queue after the delivery's events go out)
      for _ = 1, 100 do
        account:flush_events()
        if count(events, function(e) return e.email == "p@example.org" end) > 0
           and #account:get("queue") == 0 then break end
        ato.sleep(0.02)
      end
      assert.is_true(count(events, function(e) return e.email == "p@example.org" end) > 0)
      assert.equal(0, count(events, function(e) return e.email == "c@example.org" end))
      assert.equal(2, today_totals(c).requests)
      assert.same({}, account:get("queue"))
    end)

    it("sends a message queued while the scheduler is busy delivering another", function()
      local c, _, account, stop = fresh()
      finally(stop)
      local at = math.floor(ato.time()) + 1
      assert(c:send(mail{recipients = {"first@example.org"}, send_at = at}))
      -- the moment the scheduler starts delivering the first, queue a second
      local queued_meanwhile
      local reputation = account.reputation
      account.reputation = function(self, now)
        if not queued_meanwhile then
          queued_meanwhile = assert(c:send(mail{recipients = {"second@example.org"}, send_at = at + 1}))
        end
        return reputation(self, now)
      end
      for _ = 1, 400 do
        if today_totals(c).requests == 2 and #account:get("queue") == 0 then break end
        ato.sleep(0.01)
      end
      assert.truthy(queued_meanwhile, "the scheduler never delivered the first")
      assert.equal(2, today_totals(c).requests)
      assert.same({}, account:get("queue"))
    end)

    it("keeps a scheduled message across a restart", function()
      local s = assert(store.open(dir .. "/restart/ato.db"))
      finally(function() s:close() end)
      local sb, base, admin = assert(sandbox.start{store = s})
      local c = assert(sendgrid.client{api_key = admin, base_url = base})
      local at = math.floor(ato.time()) + 2
      assert(c:send(mail{recipients = {"later@example.org"}, send_at = at}))
      assert.equal(1, #account_of(sb):get("queue"))
      assert.equal(0, today_totals(c).requests)
      sb:close()
      while ato.time() < at + 0.2 do ato.sleep(0.1) end
      local sb2, base2 = assert(sandbox.start{store = s})
      finally(function() sb2:close() end)
      local c2 = assert(sendgrid.client{api_key = admin, base_url = base2})
      for _ = 1, 100 do
        if today_totals(c2).requests == 1 then break end
        ato.sleep(0.02)
      end
      assert.equal(1, today_totals(c2).requests)
    end)

    it("engaged subscribers open more and complain less than cold ones (the model the re-warm drills use)",
      function()
        local c, _, _, stop = fresh{volume = {subscribers = 6000}}
        finally(stop)
        local by_tier = {}
        for s in c:pages("/sandbox/subscribers", nil) do
          by_tier[s.tier] = by_tier[s.tier] or {}
          table.insert(by_tier[s.tier], s.email)
        end
        local total = 0
        for _, list in pairs(by_tier) do total = total + #list end
        assert.equal(6000, total)
        local never = 0
        for sub in c:pages("/sandbox/subscribers", {tier = "never", limit = 100}) do
          assert.equal("never", sub.tier)
          never = never + 1
        end
        assert.equal(#by_tier.never, never)
        local function opens(tier)
          local list = table.move(by_tier[tier], 1, 500, 1, {})
          assert(c:send(mail{recipients = list, categories = {tier}}))
          local _, by = sendgrid.totals(assert(c:category_stats{start_date = day(ato.time()), categories = {tier}}))
          return by[tier].unique_opens / by[tier].delivered, by[tier].bounces
        end
        local hot, hot_bounces = opens("active_30d")
        local cold, cold_bounces = opens("never")
        assert.is_true(hot > 3 * cold, ("open rate %.3f vs %.3f"):format(hot, cold))
        assert.is_true(hot_bounces < cold_bounces)
      end)
    it("follows a configured model, kept across a restart; a bad model is refused", function()
      local s = assert(store.open(dir .. "/model/ato.db"))
      finally(function() s:close() end)
      local model = {unknown = {invalid = 0, bounce = 0}, block = {base = 1, slope = 0, other = 1}}
      local sb, base, admin = assert(sandbox.start{store = s, model = model})
      local c = assert(sendgrid.client{api_key = admin, base_url = base})
      local list = {}
      for i = 1, 50 do list[i] = ("stranger%02d@example.org"):format(i) end
      assert(c:send(mail{recipients = list}))
      local m = today_totals(c)
      assert.same({50, 50, 0}, {m.processed, m.blocks, m.delivered})
      sb:close()
      local sb2, base2 = assert(sandbox.start{store = s})            -- no model given: the kept one
      finally(function() sb2:close() end)
      local c2 = assert(sendgrid.client{api_key = admin, base_url = base2})
      assert(c2:send(mail{recipients = {"one-more@example.org"}}))
      assert.equal(51, today_totals(c2).blocks)
      local none, err = sandbox.start{store = s, model = {lapsed = {open = 2}}}
      assert.is_nil(none)
      assert.matches("model.lapsed.open must be a number from 0 to 1", err.message)
      local bad = dir .. "/model/bad.json"
      assert(ato.fs.write(bad, '{"warm": {"open": 0.5}}'))
      local r = support.ato({"sandbox", "--db", dir .. "/model/other.db", "--model", bad})
      assert.equal(2, r.code)
      assert.matches("unknown tier 'warm'", r.stderr)
    end)
  end)

  describe("senders and the user", function()
    it("authenticates a domain, then mail from it is accepted; verified senders; ato's look-alike domain", function()
      local c, _, _, stop = fresh{scenario = "ato"}
      finally(stop)
      local names = {}
      for d in c:domains() do names[#names + 1] = d.domain end
      assert.same({"acme.example", "acme-billing.example"}, names)
      local one = {{to = {{email = "x@example.org"}}}}
      local _, e403 = c:send(mail{personalizations = one, from = {email = "news@acme-news.example"}})
      assert.equal(403, e403.status)
      local d = assert(c:create_domain{domain = "acme-news.example", subdomain = "em"})
      assert.is_false(d.valid)
      assert.equal("em.acme-news.example", d.dns.mail_cname.host)
      assert.is_true(assert(c:validate_domain(d.id)).valid)
      assert.is_true(assert(c:domain(d.id)).valid)
      assert(c:send(mail{personalizations = one, from = {email = "news@acme-news.example"}}))
      assert(c:update_domain(d.id, {custom_spf = true}))
      assert.is_true(assert(c:domain(d.id)).custom_spf)
      local attacker
      for x in c:domains{domain = "acme-billing.example"} do attacker = x end
      assert.is_true(c:delete_domain(attacker.id))
      local _, gone = c:domain(attacker.id)
      assert.equal(404, gone.status)
      -- verified senders
      local made = assert(c:create_verified_sender{nickname = "ops", from_email = "ops@other.example",
                                                   reply_to = "ops@other.example"})
      assert.is_false(made.verified)
      local froms = {}
      for s in c:verified_senders(1) do froms[#froms + 1] = s.from_email end
      assert.same({"support@acme.example", "ops@other.example"}, froms)
      assert.is_nil(made.token)                          -- only in the (drill) e-mail
      local _, unverified = c:send(mail{personalizations = one, from = {email = "ops@other.example"}})
      assert.equal(403, unverified.status)
      local tokens = assert(c:call("GET", "/sandbox/verification_tokens"))
      assert.equal("ops@other.example", tokens[1].from_email)
      assert.is_true(c:verify_sender(tokens[1].token))
      assert(c:send(mail{personalizations = one, from = {email = "ops@other.example"}}))
      local _, e404 = c:verify_sender(tokens[1].token)
      assert.equal(404, e404.status)
      assert.is_true(c:delete_verified_sender(made.id))
      local _, e400 = c:create_verified_sender{nickname = "x"}
      assert.equal(400, e400.status)
    end)

    it("reads and updates the profile, the account e-mail and reputation; on-behalf-of sees the subuser", function()
      local c, _, _, stop, admin = fresh()
      finally(stop)
      assert.equal("Acme Example Ltd", assert(c:profile()).company)
      assert.equal("Ops Team", assert(c:update_profile{company = "Ops Team"}).company)
      assert.equal("Ops Team", assert(c:profile()).company)
      local _, bad = c:update_profile{company = 7}
      assert.equal(400, bad.status)
      assert.equal("owner@acme.example", c:account_email())
      local acct = assert(c:account())
      assert.equal("paid", acct.type)
      -- the subuser's view: its own (empty) lists and settings
      local sub = assert(sendgrid.client{api_key = admin, base_url = c.base, on_behalf_of = "acme-marketing"})
      assert.is_nil(sub:bounces()())
      assert.same({}, (assert(sub:event_webhooks())))
      assert.equal("acme-marketing@acme.example", sub:account_email())
      assert(sub:update_profile{company = "Marketing"})
      assert.equal("Ops Team", assert(c:profile()).company)
      local ghost = assert(sendgrid.client{api_key = admin, base_url = c.base, on_behalf_of = "nobody"})
      local _, e403 = ghost:profile()
      assert.same({403, "on-behalf-of"}, {e403.status, e403.errors[1].field})
      assert(c:disable_subuser("acme-marketing"))
      local _, e2 = sub:profile()
      assert.equal(403, e2.status)
      local _, e3 = sub:create_api_key("x")
      assert.equal(400, e3.status)                       -- keys are the parent's
    end)

    it("picks the EU base URL by region, and SENDGRID_BASE_URL over both", function()
      local eu = assert(sendgrid.client{api_key = "SG.x.y", region = "eu"})
      assert.equal("https://api.eu.sendgrid.com", eu.base)
      assert.has_error(function() sendgrid.client{api_key = "SG.x.y", region = "mars"} end)
      local r = support.ato({"-e", "print(require('ato.sendgrid').client{api_key = 'SG.x.y', region = 'eu'}.base)"},
                            {env = {SENDGRID_BASE_URL = "http://127.0.0.1:9/"}})
      assert.equal("http://127.0.0.1:9\n", r.stdout)
    end)
  end)
end)
