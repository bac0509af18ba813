-- Contract tests: ato.sendgrid and the sandbox against SendGrid's official
-- OpenAPI description (../shared/sendgrid-oai/oas_v3.json, or
-- $ATO_SENDGRID_OAS). Prism sits between them as a validating proxy and
-- reports, per exchange, what in the request (the client's fault) or the
-- response (the sandbox's) the spec does not allow; known spec defects are
-- listed, with the evidence, in tests/prism/prism.lua. No spec: the file fails.
local store = require "ato.store"
local sendgrid = require "ato.sendgrid"
local sandbox = require "ato.sendgrid.sandbox"
local support = require "support"
local prism = require "prism.prism"

describe("ato.sendgrid and the sandbox against the OpenAPI spec", function()
  support.clean_after_each()
  local dir, cleanup, db, server, proxy, admin, account, direct_url
  -- One sandbox and one Prism for the file: Prism takes seconds to start.
  setup(function()
    dir, cleanup = support.tmpdir()
    db = assert(store.open(dir .. "/ato.db"))
    local base
    server, base, admin, account = sandbox.start{store = db, scenario = "ato", seed = 7}
    assert(server, base)
    direct_url = base
    proxy = prism.start(base)
  end)
  teardown(function()
    if proxy then proxy:stop() end
    if server then server:close() end
    if db then db:close() end
    if cleanup then cleanup() end
  end)

  before_each(function() proxy:clear() end)

  local function client()
    return assert(sendgrid.client{api_key = admin, base_url = proxy.url, on_response = proxy:observer()})
  end

  -- Fails with every violation recorded so far, one a line.
  local function assert_clean()
    local list = proxy:violations()
    assert(#list == 0, prism.format(list))
  end

  it("API keys and scopes", function()
    local c = client()
    assert(c:scopes())
    local n = 0
    for _ in c:api_keys() do n = n + 1 end
    assert.is_true(n > 0)
    local made = assert(c:create_api_key("contract-key", {"api_keys.read"}))
    assert(c:api_key(made.api_key_id))
    assert(c:rename_api_key(made.api_key_id, "contract-renamed"))
    assert(c:set_api_key_scopes(made.api_key_id, "contract-renamed", {"api_keys.read", "stats.read"}))
    assert.is_true(c:delete_api_key(made.api_key_id))
    assert_clean()
  end)

  it("subusers", function()
    local c = client()
    local names = {}
    for u in c:subusers() do names[#names + 1] = u.username end
    assert.is_true(#names > 0)
    assert(c:create_subuser{username = "contract-sub", email = "c@acme.example", password = "x!A9x!A9x!A9",
                            ips = {"198.51.100.10"}})
    assert(c:subuser("contract-sub"))
    assert.is_true(c:disable_subuser("contract-sub"))
    assert.is_true(c:enable_subuser("contract-sub"))
    assert.is_true(c:delete_subuser("contract-sub"))
    assert_clean()
  end)

  it("teammates and pending invites", function()
    local c = client()
    local other
    for t in c:teammates() do
      if t.username ~= "ops-lead" and t.username ~= "analyst" then other = t.username end
    end
    assert(other, "the ato scenario has a third teammate")
    local pending = assert(c:pending_teammates())
    assert.is_true(#pending > 0)
    local invited = assert(c:invite_teammate{email = "contract@acme.example", scopes = {"stats.read"},
                                             is_admin = false})
    assert(c:update_teammate(other, {"stats.read"}, false))
    assert.is_true(c:delete_teammate(other))
    assert.is_true(c:delete_invite(invited.token))
    assert_clean()
  end)

  it("the IP allow-list and access activity", function()
    local c = client()
    assert(c:ip_allowlist())
    local added = assert(c:allow_ips{"192.0.2.44"})
    assert.is_true(c:remove_allowed_ip(added[1].id))
    assert(c:access_activity(10))
    assert_clean()
  end)

  it("bounces: a paged walk and a delete", function()
    local c = client()
    local first, n = nil, 0
    for b in c:bounces() do
      first = first or b.email
      n = n + 1
    end
    assert.is_true(n > 500, "the walk did not page")
    assert.is_true(c:delete_bounce(first))
    assert_clean()
  end)

  it("every suppression list: walk, read one, delete one, bulk delete; global unsubscribes", function()
    local c = client()
    for _, kind in ipairs{"blocks", "spam_reports", "invalid_emails", "unsubscribes"} do
      local first
      for e in c:suppressions(kind, {limit = 50}) do first = first or e.email end
      assert(first, kind .. " is empty")
      assert(c:suppression(kind, first))
      assert.is_true(c:delete_suppression(kind, first))
    end
    local two = {}
    for e in c:blocks{limit = 2} do two[#two + 1] = e.email end
    assert.is_true(c:delete_suppressions("blocks", {two[1], two[2]}))
    assert.is_true(c:delete_suppressions("invalid_emails", "all"))
    assert(c:unsubscribe{"contract@acme.example"})
    assert_clean()
  end)

  it("stats: global, by mailbox provider, by category", function()
    local c = client()
    local from = os.date("!%Y-%m-%d", os.time() - 30 * 86400)
    assert(c:stats{start_date = from})
    assert(c:stats{start_date = from, aggregated_by = "week"})
    assert(c:mailbox_provider_stats{start_date = from, mailbox_providers = {"Gmail", "Yahoo"}})
    assert(c:category_stats{start_date = from, categories = {"receipts"}, aggregated_by = "month"})
    assert_clean()
  end)

  it("mail send, batches and scheduled sends", function()
    local c = client()
    local msg = {from = {email = "support@acme.example", name = "Acme"}, subject = "Receipt",
                 content = {{type = "text/plain", value = "Thanks"}}, categories = {"contract"},
                 custom_args = {playbook = "contract"}, recipients = {"a@example.org", "b@example.org"}}
    assert(c:send(msg))
    assert(c:send{from = msg.from, template_id = "d-0123456789abcdef",
                  personalizations = {{to = {{email = "c@example.org"}}, subject = "Hi",
                                       custom_args = {step = "2"}}}})
    local batch = assert(c:create_batch())
    assert(c:batch(batch))
    assert(c:send{from = msg.from, subject = "Later", content = msg.content, batch_id = batch,
                  send_at = os.time() + 3600, recipients = {"d@example.org"}})
    assert.is_true(c:pause_batch(batch))
    assert.is_true(c:cancel_batch(batch))            -- the second time: PATCH
    assert(c:scheduled_sends())
    assert.equal("cancel", c:scheduled_send(batch))
    assert.is_true(c:resume_batch(batch))
    -- the queued message waits an hour in the sandbox's scheduler: it
    -- belongs to the file's sandbox, stopped in teardown
    for t in pairs(account.tasks) do support.keep(t) end
    assert_clean()
  end)

  it("event webhooks", function()
    local c = client()
    local hooks = assert(c:event_webhooks())
    assert(c:event_webhook(hooks[1].id))
    local made = assert(c:create_event_webhook{url = "https://hooks.acme.example/contract", enabled = true,
                                               delivered = true, bounce = true, friendly_name = "contract"})
    assert(c:update_event_webhook(made.id, {url = "https://hooks.acme.example/contract2", open = true}))
    assert.is_true(c:delete_event_webhook(made.id))
    assert.is_true(c:test_event_webhook("https://hooks.acme.example/test"))
    assert_clean()
  end)

  it("domains, verified senders and the user", function()
    local c = client()
    for _ in c:domains() do end
    local d = assert(c:create_domain{domain = "contract.example", subdomain = "em"})
    assert(c:domain(d.id))
    assert(c:update_domain(d.id, {custom_spf = true}))
    assert(c:validate_domain(d.id))
    assert.is_true(c:delete_domain(d.id))
    for _ in c:verified_senders() do end
    local s = assert(c:create_verified_sender{nickname = "contract", from_email = "contract@acme.example",
                                              reply_to = "contract@acme.example"})
    -- the verification e-mail's token, read from the sandbox itself (a
    -- drill-only path, not SendGrid's)
    local direct = assert(sendgrid.client{api_key = admin, base_url = direct_url})
    local tokens = assert(direct:call("GET", "/sandbox/verification_tokens"))
    assert.is_true(c:verify_sender(tokens[#tokens].token))
    assert.is_true(c:delete_verified_sender(s.id))
    assert(c:profile())
    assert(c:update_profile{company = "Contract Ltd"})
    assert(c:account())
    assert(c:account_email())
    assert_clean()
  end)

  it("errors: bad mail, an unverified sender, an unknown key, a missing scope, a missing id", function()
    local c = client()
    local one = {{to = {{email = "x@example.org"}}}}
    -- a mistake the schema allows and SendGrid refuses: one address twice
    local _, e400 = c:send{personalizations = {{to = {{email = "x@example.org"}}, cc = {{email = "x@example.org"}}}},
                           from = {email = "support@acme.example"}, subject = "s",
                           content = {{type = "text/plain", value = "x"}}}
    assert.equal(400, e400.status)
    local _, e403 = c:send{personalizations = one, from = {email = "ceo@elsewhere.example"}, subject = "s",
                           content = {{type = "text/plain", value = "x"}}}
    assert.equal(403, e403.status)
    local stranger = assert(sendgrid.client{api_key = "SG.unknownunknownunknown.unknownunknownunknownunknownunknownunknown1",
                                            base_url = proxy.url, on_response = proxy:observer()})
    local _, e401 = stranger:scopes()
    assert.equal(401, e401.status)
    local made = assert(c:create_api_key("contract-no-scopes", {}))      -- an empty list goes out as []
    local scoped = assert(sendgrid.client{api_key = made.api_key, base_url = proxy.url, on_response = proxy:observer()})
    local ok, e403b = pcall(function() for _ in scoped:api_keys() do end end)
    assert.is_false(ok)
    assert.equal(403, e403b.status)
    assert.is_true(c:delete_api_key(made.api_key_id))
    local _, e404 = c:delete_api_key(made.api_key_id)
    assert.equal(404, e404.status)
    assert_clean()
  end)

  it("a 429 with its rate-limit headers, waited out by the client", function()
    local db2 = assert(store.open(dir .. "/limited.db"))
    local sb2, base2, admin2 = sandbox.start{store = db2, limit = 1, window = 1}
    local p2 = prism.start(base2)
    finally(function() p2:stop() sb2:close() db2:close() end)
    local first = assert(sendgrid.client{api_key = admin2, base_url = p2.url, on_response = p2:observer()})
    assert(first:scopes())
    local second = assert(sendgrid.client{api_key = admin2, base_url = p2.url, on_response = p2:observer()})
    assert(second:scopes())
    assert.equal(1, second.throttled)
    local list = p2:violations()
    assert(#list == 0, prism.format(list))
  end)
end)
