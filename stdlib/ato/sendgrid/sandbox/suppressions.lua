-- ato.sendgrid.sandbox.suppressions: the lists SendGrid keeps so that mail
-- to a bad address is dropped instead of sent.
--
--   GET|DELETE /v3/suppression/{bounces,blocks,spam_reports,invalid_emails}
--       GET: start_time, end_time (Unix seconds, inclusive), limit (<= 500),
--       offset; newest first, with Link headers. DELETE: {delete_all} or
--       {emails}, not both.
--   GET|DELETE /v3/suppression/{...}/{email}
--   GET /v3/suppression/unsubscribes          (the global unsubscribes)
--   POST /v3/asm/suppressions/global          {recipient_emails}
--   GET|DELETE /v3/asm/suppressions/global/{email}
--
-- Each list is kept oldest first (new entries append; see "Storage"
-- below); pages read it backwards. Mail send drops addresses on bounces, spam_reports,
-- invalid_emails and unsubscribes; blocks are a record, not a suppression.
local ato = require "ato"
local util = require "ato.sendgrid.sandbox.util"

local errors, json, body_of, array, no_content = util.errors, util.json, util.body_of, util.array, util.no_content

local KINDS = {"bounces", "blocks", "spam_reports", "invalid_emails", "unsubscribes"}
local SUPPRESSING = {bounces = true, spam_reports = true, invalid_emails = true, unsubscribes = true}

-- The fields each list shows (the spec's item schema).
local FIELDS = {
  bounces = {"created", "email", "reason", "status"},
  blocks = {"created", "email", "reason", "status"},
  spam_reports = {"created", "email", "ip"},
  invalid_emails = {"created", "email", "reason"},
  unsubscribes = {"created", "email"},
}

local function view(kind, e)
  local v = {}
  for _, f in ipairs(FIELDS[kind]) do v[f] = e[f] end
  v.created = v.created or 0
  return v
end

return function(route, Account)

  -- {---- the lists as the rest of the sandbox sees them

  -- Storage: "supp/<kind>" is the list as last compacted; each request
  -- that adds entries writes only those, as a segment under
  -- "supp+/<kind>/<seq>" (a 1,000-recipient send must not rewrite a
  -- 10,000-entry list). A delete compacts: the whole list, and no segments.
  local SEGMENTS_MAX = 64

  local function segment_prefix(a, kind)
    return a.prefix .. "supp+/" .. kind .. "/"
  end

  -- -> the list (cached, oldest first) and its state {segments =, seq =}
  local function load(a, kind)
    local st = a.index["list:" .. kind]
    if st then return st.list, st end
    local list = a:get("supp/" .. kind) or {}
    local segs = assert(a.store:list(segment_prefix(a, kind)))
    for _, seg in ipairs(segs) do table.move(seg.value, 1, #seg.value, #list + 1, list) end
    local last = segs[#segs]
    st = {list = list, segments = #segs, seq = last and tonumber(last.key:match("(%d+)$")) or 0}
    a.index["list:" .. kind] = st
    return list, st
  end

  function Account:suppressions(kind)
    return (load(self, kind))
  end

  -- Writes the whole list and drops the segments it holds, in one
  -- transaction: a crash leaves either the old list and its segments or
  -- the new list alone. Segments written meanwhile (an add while this
  -- waits for the write lock) have a higher sequence number and stay.
  local function compact(a, kind)
    local list, st = load(a, kind)
    local upto, prefix = st.seq, segment_prefix(a, kind)
    local snapshot = table.move(list, 1, #list, 1, {})
    a.cache[a.prefix .. "supp/" .. kind] = list
    a.store:tx(function(s)
      s:put(a.prefix .. "supp/" .. kind, snapshot)
      for _, seg in ipairs(assert(s:list(prefix))) do
        if tonumber(seg.key:match("(%d+)$")) <= upto then s:delete(seg.key) end
      end
      return true
    end)
    st.segments = st.seq - upto
  end

  -- email -> true for one list, built on first use, kept in step by add
  -- and remove below.
  local function index(a, kind)
    local idx = a.index[kind]
    if not idx then
      idx = {}
      for _, e in ipairs(a:suppressions(kind)) do idx[e.email:lower()] = true end
      a.index[kind] = idx
    end
    return idx
  end

  --- The suppression list that drops mail to `email`, or nil.
  function Account:suppressed(email)
    local e = email:lower()
    for _, kind in ipairs(KINDS) do
      if SUPPRESSING[kind] and index(self, kind)[e] then return kind end
    end
  end

  --- Appends entries (each {email, ...}; created is now unless given);
  --- an address already on the list is not added twice.
  function Account:add_suppressions(kind, list)
    local all, idx, now = self:suppressions(kind), index(self, kind), math.floor(ato.time())
    local added = 0
    for _, e in ipairs(list) do
      local k = e.email:lower()
      if not idx[k] then
        e.created = e.created or now
        all[#all + 1] = e
        idx[k] = true
        added = added + 1
      end
    end
    if added > 0 then
      local _, st = load(self, kind)
      st.seq, st.segments = st.seq + 1, st.segments + 1
      assert(self.store:put(("%s%012d"):format(segment_prefix(self, kind), st.seq),
                            table.move(all, #all - added + 1, #all, 1, {})))
      if st.segments > SEGMENTS_MAX then compact(self, kind) end
    end
    return added
  end

  --- Removes the entries whose address pred(email) accepts; -> how many.
  function Account:remove_suppressions(kind, pred)
    local list, st = load(self, kind)
    local kept, gone = {}, 0
    for _, e in ipairs(list) do
      if pred(e.email:lower()) then gone = gone + 1 else kept[#kept + 1] = e end
    end
    if gone > 0 then
      st.list = kept
      compact(self, kind)
      self.index[kind] = nil
    end
    return gone
  end

  -- }----

  -- {---- endpoints

  -- A list's page: newest first, filtered by start_time/end_time.
  local function list_page(a, req, kind)
    local q = util.query(req)
    local from, to = tonumber(q.start_time), tonumber(q.end_time)
    if (q.start_time and not from) or (q.end_time and not to) then
      return errors(400, "start_time and end_time are Unix timestamps", q.start_time and not from and "start_time"
                    or "end_time")
    end
    local all = a:suppressions(kind)
    local list = all
    if from or to then
      list = {}
      for _, e in ipairs(all) do
        if (not from or e.created >= from) and (not to or e.created <= to) then list[#list + 1] = e end
      end
    end
    local n = #list
    local items, headers = util.page(req, list, 500, function(i) return view(kind, list[n - i + 1]) end)
    if not items then return headers end
    return json(200, items, headers)
  end

  local function bulk_delete(a, req, kind)
    local b = body_of(req)
    if not b or (b.delete_all == nil and b.emails == nil) then
      return errors(400, "give delete_all or emails", "emails")
    end
    if b.delete_all ~= nil and b.emails ~= nil then
      return errors(400, "delete_all and emails cannot both be given", "delete_all")
    end
    if b.emails ~= nil and type(b.emails) ~= "table" then
      return errors(400, "emails must be a list of addresses", "emails")
    end
    if b.delete_all == true then
      a:remove_suppressions(kind, function() return true end)
    elseif type(b.emails) == "table" then
      local set = {}
      for _, e in ipairs(b.emails) do
        if type(e) ~= "string" then return errors(400, "emails must be a list of addresses", "emails") end
        set[e:lower()] = true
      end
      a:remove_suppressions(kind, function(e) return set[e] end)
    elseif b.delete_all ~= false then
      return errors(400, "delete_all must be true or false", "delete_all")
    end
    return no_content()
  end

  local function one(a, kind, email)
    email = email:lower()
    local out = {}
    for _, e in ipairs(a:suppressions(kind)) do
      if e.email:lower() == email then out[#out + 1] = view(kind, e) end
    end
    return out
  end

  for _, kind in ipairs{"bounces", "blocks", "spam_reports", "invalid_emails"} do
    local read, delete = "suppression." .. kind .. ".read", "suppression." .. kind .. ".delete"
    local path = "/v3/suppression/" .. kind
    route("GET", path, read, function(a, req) return list_page(a, req, kind) end)
    route("DELETE", path, delete, function(a, req) return bulk_delete(a, req, kind) end)
    route("GET", path .. "/([^/]+)", read, function(a, _, _, email)
      return json(200, array(one(a, kind, util.unescape(email))))
    end)
    route("DELETE", path .. "/([^/]+)", delete, function(a, _, _, email)
      email = util.unescape(email):lower()
      if a:remove_suppressions(kind, function(e) return e == email end) == 0 then
        return errors(404, "email not found")
      end
      return no_content()
    end)
  end

  route("GET", "/v3/suppression/unsubscribes", "suppression.unsubscribes.read", function(a, req)
    return list_page(a, req, "unsubscribes")
  end)

  route("POST", "/v3/asm/suppressions/global", "asm.suppressions.global.create", function(a, req)
    local b = body_of(req)
    if not b or type(b.recipient_emails) ~= "table" or #b.recipient_emails == 0 then
      return errors(400, "recipient_emails is required", "recipient_emails")
    end
    local list = {}
    for _, e in ipairs(b.recipient_emails) do
      if not util.valid_email(e) then return errors(400, "invalid email " .. tostring(e), "recipient_emails") end
      list[#list + 1] = {email = e}
    end
    a:add_suppressions("unsubscribes", list)
    return json(201, {recipient_emails = b.recipient_emails})
  end)

  route("GET", "/v3/asm/suppressions/global/([^/]+)", "asm.suppressions.global.read", function(a, _, _, email)
    email = util.unescape(email)
    -- not suppressed: 200 and an empty object, as the spec says
    if #one(a, "unsubscribes", email) == 0 then return json(200, {}) end
    return json(200, {recipient_email = email})
  end)

  route("DELETE", "/v3/asm/suppressions/global/([^/]+)", "asm.suppressions.global.delete", function(a, _, _, email)
    email = util.unescape(email):lower()
    if a:remove_suppressions("unsubscribes", function(e) return e == email end) == 0 then
      return errors(404, "email not found")
    end
    return no_content()
  end)

  -- }----
end
