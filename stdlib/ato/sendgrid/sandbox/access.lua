-- ato.sendgrid.sandbox.access: who can get in. API keys and scopes,
-- subusers, teammates and invites, the IP allow-list and access activity.
local ato = require "ato"
local util = require "ato.sendgrid.sandbox.util"

local errors, json, query, body_of, has, page = util.errors, util.json, util.query, util.body_of, util.has, util.page
local chars, no_content = util.chars, util.no_content

return function(route, Account, M)
  -- keys and subusers belong to the parent: on-behalf-of is refused there
  local function parent_route(method, pattern, scope, fn)
    route(method, pattern, scope, fn, {behalf = false})
  end

  route("GET", "/v3/scopes", nil, function(a, _, key)
    return json(200, {scopes = key.scopes})
  end)

  local function key_view(rec, with_scopes)
    local v = {api_key_id = rec.api_key_id, name = rec.name}
    if with_scopes then v.scopes = rec.scopes end
    return v
  end

  local function all_keys(a) return a:keys() end

  parent_route("GET", "/v3/api_keys", "api_keys.read", function(a, req)
    local limit = tonumber(query(req).limit)
    local result = {}
    for _, rec in ipairs(all_keys(a)) do
      if limit and #result >= limit then break end
      result[#result + 1] = key_view(rec)
    end
    return json(200, {result = util.array(result)})
  end)


  local function valid_scopes(scopes)
    if scopes == nil then return true end
    if type(scopes) ~= "table" then return false end
    for _, s in ipairs(scopes) do if type(s) ~= "string" then return false end end
    return true
  end

  parent_route("POST", "/v3/api_keys", "api_keys.create", function(a, req, key)
    local b = body_of(req)
    if not b or type(b.name) ~= "string" or b.name == "" then return errors(400, "name is required", "name") end
    if not valid_scopes(b.scopes) then return errors(400, "scopes must be a list of strings", "scopes") end
    if #all_keys(a) >= 100 then return errors(403, "Cannot create more than 100 API keys") end
    -- omitting scopes creates a full-access key; a key cannot grant what it lacks
    local scopes = b.scopes or M.FULL_ACCESS
    for _, s in ipairs(scopes) do
      if not has(key.scopes, s) then return errors(403, "cannot grant scope " .. s, "scopes") end
    end
    local secret, rec = a:add_key(b.name, scopes)
    return json(201, {api_key = secret, api_key_id = rec.api_key_id, name = rec.name,
                      scopes = util.array(rec.scopes)})
  end)

  parent_route("GET", "/v3/api_keys/([^/]+)", "api_keys.read", function(a, _, _, id)
    local rec = a:get("keys/" .. id)
    if not rec then return errors(404, "unable to find API Key") end
    return json(200, {result = {key_view(rec, true)}})
  end)

  parent_route("PATCH", "/v3/api_keys/([^/]+)", "api_keys.update", function(a, req, _, id)
    local rec = a:get("keys/" .. id)
    if not rec then return errors(404, "unable to find API Key") end
    local b = body_of(req)
    if not b or type(b.name) ~= "string" or b.name == "" then return errors(400, "name is required", "name") end
    rec.name = b.name
    a:put("keys/" .. id, rec)
    return json(200, {api_key_id = id, name = rec.name})
  end)

  parent_route("PUT", "/v3/api_keys/([^/]+)", "api_keys.update", function(a, req, _, id)
    local rec = a:get("keys/" .. id)
    if not rec then return errors(404, "unable to find API Key") end
    local b = body_of(req)
    if not b or type(b.name) ~= "string" or b.name == "" then return errors(400, "name is required", "name") end
    if type(b.scopes) ~= "table" or #b.scopes == 0 or not valid_scopes(b.scopes) then
      return errors(400, "scopes must be a non-empty list of strings", "scopes")
    end
    rec.name, rec.scopes = b.name, b.scopes
    a:put("keys/" .. id, rec)
    return json(200, {api_key_id = id, name = rec.name, scopes = rec.scopes})
  end)

  parent_route("DELETE", "/v3/api_keys/([^/]+)", "api_keys.delete", function(a, _, _, id)
    local rec = a:get("keys/" .. id)
    if not rec then return errors(404, "unable to find API Key") end
    a:delete_key(id)
    return no_content()
  end)

  -- {---- subusers
  parent_route("GET", "/v3/subusers", "subusers.read", function(a, req)
    local items, headers = page(req, util.where(a:list("subusers"), "username", query(req).username), 500)
    if not items then return headers end
    return json(200, items, headers)
  end)

  parent_route("POST", "/v3/subusers", "subusers.create", function(a, req)
    local b = body_of(req)
    for _, f in ipairs{"username", "email", "password"} do
      if not b or type(b[f]) ~= "string" or b[f] == "" then return errors(400, f .. " is required", f) end
    end
    if type(b.ips) ~= "table" then return errors(400, "ips is required", "ips") end
    local list = a:list("subusers")
    for _, u in ipairs(list) do
      if u.username == b.username then return errors(400, "username exists", "username") end
    end
    local id = 1000 + #list + 1 + a.r(1000) * 10
    list[#list + 1] = {id = id, username = b.username, email = b.email, disabled = false}
    a:put("subusers", list)
    return json(200, {username = b.username, user_id = id, email = b.email, signup_session_token = chars(a.r, 20),
                      authorization_token = chars(a.r, 20), credit_allocation = {type = "unlimited"}})
  end)

  parent_route("PATCH", "/v3/subusers/([^/]+)", "subusers.update", function(a, req, _, name)
    local b = body_of(req)
    if not b or type(b.disabled) ~= "boolean" then return errors(400, "disabled must be true or false", "disabled") end
    local list, found = a:list("subusers"), false
    for _, u in ipairs(list) do if u.username == name then u.disabled, found = b.disabled, true end end
    if not found then return errors(404, "subuser not found") end
    a:put("subusers", list)
    return no_content()
  end)

  parent_route("DELETE", "/v3/subusers/([^/]+)", "subusers.delete", function(a, _, _, name)
    if not a:remove_from("subusers", function(u) return u.username == name end) then
      return errors(404, "subuser not found")
    end
    return no_content()
  end)

  -- {---- teammates (pending first: /pending is not a username)
  route("GET", "/v3/teammates/pending", "teammates.read", function(a)
    return json(200, {result = util.array(a:list("pending"))})
  end)

  route("DELETE", "/v3/teammates/pending/([^/]+)", "teammates.delete", function(a, _, _, token)
    if not a:remove_from("pending", function(p) return p.token == token end) then
      return errors(404, "invite not found")
    end
    return no_content()
  end)

  route("GET", "/v3/teammates", "teammates.read", function(a, req)
    local items, headers = page(req, a:list("teammates"), 500)
    if not items then return headers end
    for i, t in ipairs(items) do
      items[i] = {username = t.username, email = t.email, first_name = t.first_name, last_name = t.last_name,
                  user_type = t.user_type, is_admin = t.is_admin}
    end
    return json(200, {result = items}, headers)
  end)

  route("POST", "/v3/teammates", "teammates.create", function(a, req)
    local b = body_of(req)
    if not b or type(b.email) ~= "string" or not b.email:find("@", 1, true) then
      return errors(400, "email is required", "email")
    end
    if type(b.scopes) ~= "table" or type(b.is_admin) ~= "boolean" then
      return errors(400, "scopes and is_admin are required", "scopes")
    end
    local invite = {email = b.email, scopes = b.scopes, is_admin = b.is_admin, token = chars(a.r, 24),
                    expiration_date = math.floor(ato.time()) + 7 * 86400}
    local list = a:list("pending")
    list[#list + 1] = invite
    a:put("pending", list)
    return json(201, {token = invite.token, email = invite.email, scopes = invite.scopes, is_admin = invite.is_admin})
  end)

  route("PATCH", "/v3/teammates/([^/]+)", "teammates.update", function(a, req, _, username)
    local b = body_of(req)
    if not b or type(b.scopes) ~= "table" or type(b.is_admin) ~= "boolean" then
      return errors(400, "scopes and is_admin are required", "scopes")
    end
    local list, hit = a:list("teammates"), nil
    for _, t in ipairs(list) do if t.username == username then hit = t end end
    if not hit then return errors(404, "teammate not found") end
    hit.scopes, hit.is_admin = b.scopes, b.is_admin
    hit.user_type = b.is_admin and "admin" or "teammate"
    a:put("teammates", list)
    return json(200, hit)
  end)

  route("DELETE", "/v3/teammates/([^/]+)", "teammates.delete", function(a, _, _, username)
    if not a:remove_from("teammates", function(t) return t.username == username end) then
      return errors(404, "teammate not found")
    end
    return no_content()
  end)

  -- {---- IP access management
  route("GET", "/v3/access_settings/whitelist", "access_settings.whitelist.read", function(a)
    return json(200, {result = util.array(a:list("allowlist"))})
  end)

  route("POST", "/v3/access_settings/whitelist", "access_settings.whitelist.create", function(a, req)
    local b = body_of(req)
    if not b or type(b.ips) ~= "table" or #b.ips == 0 then return errors(400, "ips is required", "ips") end
    local list, added = a:list("allowlist"), {}
    local next_id = 1
    for _, e in ipairs(list) do if e.id >= next_id then next_id = e.id + 1 end end
    for _, x in ipairs(b.ips) do           -- all checked before the list changes
      if type(x) ~= "table" or type(x.ip) ~= "string" or not x.ip:match("^%d+%.%d+%.%d+%.%d+/?%d*$") then
        return errors(400, "each entry needs an IPv4 address or CIDR range in ip", "ips")
      end
    end
    for _, x in ipairs(b.ips) do
      local now = math.floor(ato.time())
      local e = {id = next_id, ip = x.ip:find("/", 1, true) and x.ip or (x.ip .. "/32"), created_at = now, updated_at = now}
      next_id = next_id + 1
      list[#list + 1], added[#added + 1] = e, e
    end
    a:put("allowlist", list)
    return json(201, {result = added})
  end)

  route("DELETE", "/v3/access_settings/whitelist/(%d+)", "access_settings.whitelist.delete", function(a, _, _, id)
    if not a:remove_from("allowlist", function(e) return e.id == tonumber(id) end) then
      return errors(404, "rule not found")
    end
    return no_content()
  end)

  route("GET", "/v3/access_settings/activity", "access_settings.activity.read", function(a, req)
    local list, out = a:list("activity"), {}
    local limit = tonumber(query(req).limit) or 20
    for i = #list, math.max(1, #list - limit + 1), -1 do out[#out + 1] = list[i] end   -- newest first
    return json(200, {result = util.array(out)})
  end)
end
