-- scan_corpus: builds the test corpora of scan_spec.lua from a fixed seed.
--
--   local corpus = require "scan_corpus"
--   local rules = corpus.plan(corpus.load_rules())  -- built-in rules, examples, plans
--   local gen = corpus.new(seed)                     -- deterministic generator
--   local records, nfiles, nbytes = gen:build_recall(dir, rules)
--   local near, controls = gen:build_near_misses(dir, rules)
--
-- Every secret here is made up: the first example of each rule (rules/*.rules,
-- themselves random) gives its shape, and the generator draws fresh
-- characters of the same classes, keeping the literal parts of the rule's
-- pattern (prefixes such as "SG." or "ghp_"), recomputing GitHub/npm
-- checksums, and checking with the engine that the rule still takes the new
-- value in the example's own context. Secrets never leave this module
-- except in files under the test's temporary directories and in the
-- `planted` records, which the spec compares by fingerprint.
local ato = require "ato"
local scan = require "ato.scan"

local M = {}

-- {====================================================== rule files

local ESCAPES = {n = "\n", t = "\t", r = "\r", ["\\"] = "\\"}

--- Decodes the escapes of an example/negative value (\n \t \r \\ \xHH).
function M.decode(v)
  local out, i = {}, 1
  while true do
    local j = v:find("\\", i, true)
    if not j then
      out[#out + 1] = v:sub(i)
      return table.concat(out)
    end
    out[#out + 1] = v:sub(i, j - 1)
    local e = v:sub(j + 1, j + 1)
    if e == "x" then
      out[#out + 1] = string.char((assert(tonumber(v:sub(j + 2, j + 3), 16), "bad \\x escape")))
      i = j + 4
    else
      out[#out + 1] = assert(ESCAPES[e], "bad escape \\" .. e)
      i = j + 2
    end
  end
end

--- The built-in rule files parsed again, in Lua, for their examples and
--- negatives (the engine's rule tables carry neither): a list in file
--- order of {id, provider, pattern, validator, examples, negatives, file,
--- line}, merged with scan.rules() (name, severity, entropy...).
function M.load_rules()
  local by_id, list = {}, {}
  for _, r in ipairs(assert(scan.rules())) do by_id[r.id] = r end
  for _, file in ipairs(scan.builtin_rule_files()) do
    local cur, n = nil, 0
    for raw in io.lines(file) do
      n = n + 1
      local line = raw:gsub("^%s+", ""):gsub("[ \t\r]+$", "")
      local id = line:match("^%[([a-z0-9-]+)%]$")
      if id then
        cur = {id = id, examples = {}, negatives = {}, file = file, line = n}
        for k, v in pairs(assert(by_id[id], "rule not in the engine: " .. id)) do cur[k] = v end
        list[#list + 1] = cur
      elseif cur and line ~= "" and line:sub(1, 1) ~= "#" then
        local key, value = line:match("^([a-z_]+)%s*=%s*(.*)$")
        if key == "example" then cur.examples[#cur.examples + 1] = M.decode(value)
        elseif key == "negative" then cur.negatives[#cur.negatives + 1] = M.decode(value) end
      end
    end
  end
  return list
end

-- }======================================================

-- {====================================================== hashes

local function rrot(x, n) return ((x >> n) | (x << (32 - n))) & 0xffffffff end

local K256 = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

--- Hex SHA-256 of s (pure Lua; checked against sha256sum by the spec).
function M.sha256(s)
  local h = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
             0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}
  local msg = s .. "\128" .. ("\0"):rep((55 - #s) % 64) .. string.pack(">I8", #s * 8)
  local w = {}
  for chunk = 1, #msg, 64 do
    for i = 1, 16 do w[i] = string.unpack(">I4", msg, chunk + (i - 1) * 4) end
    for i = 17, 64 do
      local a, b = w[i - 15], w[i - 2]
      local s0 = rrot(a, 7) ~ rrot(a, 18) ~ (a >> 3)
      local s1 = rrot(b, 17) ~ rrot(b, 19) ~ (b >> 10)
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) & 0xffffffff
    end
    local a, b, c, d, e, f, g, hh = h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]
    for i = 1, 64 do
      local S1 = rrot(e, 6) ~ rrot(e, 11) ~ rrot(e, 25)
      local ch = (e & f) ~ (~e & g)
      local t1 = (hh + S1 + ch + K256[i] + w[i]) & 0xffffffff
      local S0 = rrot(a, 2) ~ rrot(a, 13) ~ rrot(a, 22)
      local maj = (a & b) ~ (a & c) ~ (b & c)
      local t2 = (S0 + maj) & 0xffffffff
      hh, g, f, e, d, c, b, a = g, f, e, (d + t1) & 0xffffffff, c, b, a, (t1 + t2) & 0xffffffff
    end
    h[1] = (h[1] + a) & 0xffffffff; h[2] = (h[2] + b) & 0xffffffff
    h[3] = (h[3] + c) & 0xffffffff; h[4] = (h[4] + d) & 0xffffffff
    h[5] = (h[5] + e) & 0xffffffff; h[6] = (h[6] + f) & 0xffffffff
    h[7] = (h[7] + g) & 0xffffffff; h[8] = (h[8] + hh) & 0xffffffff
  end
  return ("%08x%08x%08x%08x%08x%08x%08x%08x"):format(table.unpack(h))
end

local CRC_TABLE = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do c = (c & 1) ~= 0 and (0xedb88320 ~ (c >> 1)) or (c >> 1) end
  CRC_TABLE[i] = c
end

--- CRC-32 (zlib/IEEE) of s.
function M.crc32(s)
  local c = 0xffffffff
  for i = 1, #s do c = CRC_TABLE[(c ~ s:byte(i)) & 0xff] ~ (c >> 8) end
  return c ~ 0xffffffff
end

local BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

--- A GitHub/npm style token: prefix (4 chars) .. 30 chars .. base62 CRC32.
function M.with_checksum(prefix, body30)
  local n, digits = M.crc32(body30), {}
  for i = 6, 1, -1 do
    local d = n % 62
    digits[i] = BASE62:sub(d + 1, d + 1)
    n = n // 62
  end
  return prefix .. body30 .. table.concat(digits)
end

-- }======================================================

-- {====================================================== random

local Gen = {}
Gen.__index = Gen

--- A deterministic generator (splitmix64): independent of math.random,
--- which busted reseeds.
function M.new(seed)
  return setmetatable({state = seed}, Gen)
end

function Gen:next()
  self.state = self.state + 0x9e3779b97f4a7c15
  local z = self.state
  z = (z ~ (z >> 30)) * 0xbf58476d1ce4e5b9
  z = (z ~ (z >> 27)) * 0x94d049bb133111eb
  return z ~ (z >> 31)
end

--- An integer in [1, n].
function Gen:int(n)
  return (self:next() >> 1) % n + 1
end

function Gen:pick(s)                  -- a character of string s, or an item of list s
  if type(s) == "string" then
    local k = self:int(#s)
    return s:sub(k, k)
  end
  return s[self:int(#s)]
end

function Gen:chars(n, alphabet)
  local t = {}
  for i = 1, n do t[i] = self:pick(alphabet) end
  return table.concat(t)
end

-- }======================================================

-- {====================================================== secrets

local function replace_plain(s, old, new)
  local out, i = {}, 1
  while true do
    local a, b = s:find(old, i, true)
    if not a then break end
    out[#out + 1] = s:sub(i, a - 1)
    out[#out + 1] = new
    i = b + 1
  end
  out[#out + 1] = s:sub(i)
  return table.concat(out)
end
M.replace_plain = replace_plain

--- The finding of rule id in text whose secret is `secret` (or the first
--- finding of the rule when secret is nil), or nil.
function M.find_rule(text, id, secret, opts)
  local findings = assert(scan.text(text, opts))
  for _, f in ipairs(findings) do
    if f.rule == id and (secret == nil or f.secret == secret) then return f end
  end
end

-- Character classes a fresh secret keeps, position by position: digits
-- 2-7 stay 2-7 (base32), hex letters stay hex letters, case stays.
local CLASSES = {"0189", "234567", "abcdef", "ghijklmnopqrstuvwxyz", "ABCDEF", "GHIJKLMNOPQRSTUVWXYZ"}
local CLASS_OF = {}
for _, class in ipairs(CLASSES) do
  for c in class:gmatch(".") do CLASS_OF[c] = class end
end

-- Positions of secret that belong to a literal of the pattern (runs of 3
-- or more characters found in the pattern with its escapes removed, such
-- as "SG.", "ghp_", "-----BEGIN ", "AGFwaWtleQBTRy"): kept as they are.
local function literal_mask(secret, pattern)
  local lit, mask = pattern:gsub("\\(.)", "%1"), {}
  for i = 1, #secret - 2 do
    local j = i + 2
    while j <= #secret and lit:find(secret:sub(i, j), 1, true) do j = j + 1 end
    for k = i, j - 1 do if j - 1 >= i + 2 then mask[k] = true end end
  end
  for i = 2, #secret do                   -- escapes: \n stays \n
    if secret:sub(i - 1, i - 1) == "\\" then mask[i] = true end
  end
  return mask
end

-- One mutation of base: every free alphanumeric character is redrawn from
-- its class with probability 3/4.
local function mutate(gen, base, mask)
  local out = {}
  for i = 1, #base do
    local c = base:sub(i, i)
    local class = CLASS_OF[c]
    if class and not mask[i] and gen:int(4) > 1 then c = gen:pick(class) end
    out[i] = c
  end
  return table.concat(out)
end

--- A fresh secret of rule r's shape, which the engine reports under r in
--- the context of r's first example; errors after 200 failed draws.
function Gen:fresh_secret(r)
  local plan = r.plan
  for _ = 1, 200 do
    local s = mutate(self, plan.secret, plan.mask)
    if r.validator == "github_crc32" or r.validator == "npm_crc32" then
      s = M.with_checksum(s:sub(1, 4), s:sub(5, 34))
    end
    if s ~= plan.secret then
      local text = replace_plain(plan.example, plan.secret, s)
      if M.find_rule(text, r.id, s) then return s end
    end
  end
  error("no fresh secret of the shape of rule " .. r.id)
end

-- }======================================================

-- {====================================================== plans

-- How each rule's secret is planted. class:
--   standalone  the pattern starts at the secret (a prefix or a shape):
--               any context works;
--   embedded    the context is part of the value (a URL with a password,
--               "Authorization: Bearer ...", "...;AccountKey=..."): the
--               value carries it anywhere;
--   bound       the context is the key name (TWILIO_AUTH_TOKEN=...): the
--               name and an assignment (=, :, =>, :=) carry it;
--   generic     the generic-secret-* family: the rule that reports the
--               secret depends on the syntax of the file (see SYNTAX_RULE);
--   block       a multi-line block (PEM, OpenSSH, PGP, PuTTY);
--   json        a JSON structure (JWK, GCP service account key file).
-- name/prefix/suffix come from the first example written as an
-- assignment, unless OVERRIDES says otherwise.
local OVERRIDES = {
  ["generic-secret-code"] = {name = "apiKey"},
  ["generic-secret-html-table"] = {name = "DB_PASSWORD"},
  ["generic-authorization-basic"] = {name = "AUTH_HEADER", prefix = "Authorization: Basic "},
  ["generic-authorization-bearer"] = {name = "AUTH_HEADER", prefix = "Authorization: Bearer "},
  ["generic-url-credentials"] = {name = "GIT_REMOTE", prefix = "https://deploy-bot:",
                                 suffix = "@git.internal.test/ops/infra.git"},
  ["sendgrid-smtp-auth-plain"] = {name = "SMTP_TRACE", prefix = "AUTH PLAIN "},
}

local BLOCKS = {["pem-private-key"] = true, ["pem-pkcs8-private-key"] = true,
  ["pem-pkcs8-encrypted-private-key"] = true, ["openssh-private-key"] = true,
  ["pgp-private-key-block"] = true, ["putty-private-key"] = true}
local JSON_RULES = {["gcp-service-account-private-key"] = true, ["jwk-private-key"] = true,
  ["jwk-private-key-sorted"] = true}

local function parse_assignment(pre)
  local name, q, rest = pre:match("^%s*export%s+([%a_][%w_]*)=([\"']?)(.*)$")
  if name then return name, q, rest, true end
  name, q, rest = pre:match("^%s*([%a_][%w_]*)=([\"']?)(.*)$")
  if name then return name, q, rest, true end
  for _, op in ipairs({":=", "=>", ":", "="}) do
    name, q, rest = pre:match("^%s*[\"']?([%a_][%w_.%-]*)[\"']?%s*" .. op:gsub("%p", "%%%0") .. "%s*([\"']?)(.*)$")
    if name then return name, q, rest, false end
  end
end

local function plan_of(r)
  local plan = {}
  local ex1 = r.examples[1]
  local f = assert(M.find_rule(ex1, r.id), "first example of " .. r.id .. " not found")
  plan.secret, plan.example = f.secret, ex1
  plan.mask = literal_mask(f.secret, r.pattern)
  local p = r.pattern
  if BLOCKS[r.id] then plan.class = "block"
  elseif JSON_RULES[r.id] then plan.class = "json"
  elseif r.id:find("^generic%-secret%-") then plan.class = "generic"
  elseif p:find("^\\b%(") or p:find("^%(%?:%^|%[%^[^%]]*%]%)%([^?]") or p:find("^%([^?]") then
    plan.class = "standalone"
  end
  -- name, prefix and suffix: the first example written as NAME=..., else
  -- the first written as an assignment
  local best, best_score = nil, 0
  for _, ex in ipairs(r.examples) do
    local h = M.find_rule(ex, r.id)
    if h and not h.secret:find("\n") then
      local pre = ex:sub(1, h.offset):match("[^\n]*$")
      local suf = ex:sub(h.offset + #h.secret + 1):match("^[^\n]*")
      local name, q, rest, envish = parse_assignment(pre)
      if name then
        local suffix = q ~= "" and suf:match("^[^\"']*") or suf:match("^[^%s\"']*")
        local score = envish and 3 or name:find("^[%a_][%w_]*$") and 2 or 1
        if score > best_score then
          best, best_score = {name = name, prefix = rest, suffix = suffix}, score
        end
      end
    end
  end
  for k, v in pairs(OVERRIDES[r.id] or {}) do best = best or {}; best[k] = v end
  if plan.class ~= "block" and plan.class ~= "json" then
    assert(best and best.name, "no assignment among the examples of " .. r.id)
    plan.name, plan.prefix, plan.suffix = best.name, best.prefix or "", best.suffix or ""
    if not plan.class then plan.class = plan.prefix ~= "" and "embedded" or "bound" end
  end
  return plan
end

--- Adds r.plan to each rule (see above).
function M.plan(rules)
  for _, r in ipairs(rules) do r.plan = plan_of(r) end
  return rules
end

-- }======================================================

-- {====================================================== files

-- A file under construction: text pieces, and where secrets were planted.
local Builder = {}
Builder.__index = Builder

local function new_builder(gen, path)
  return setmetatable({gen = gen, path = path, parts = {}, len = 0, recs = {}}, Builder)
end

function Builder:add(s)
  if self.crlf then s = s:gsub("\n", "\r\n") end
  self.parts[#self.parts + 1] = s
  self.len = self.len + #s
end

--- Adds before .. text .. after, where text holds a secret at [spos,
--- spos + slen): records it (rec gets offset and secret).
function Builder:plant(before, text, spos, slen, after, rec)
  if self.crlf then                        -- single-line items only
    assert(not text:find("\n"), "a multi-line item in a CRLF file")
    before, after = before:gsub("\n", "\r\n"), after:gsub("\n", "\r\n")
    self.parts[#self.parts + 1] = before .. text .. after
    rec.offset = self.len + #before + spos - 1
    rec.secret = text:sub(spos, spos + slen - 1)
    rec.path = self.path
    self.recs[#self.recs + 1] = rec
    self.len = self.len + #before + #text + #after
    return
  end
  rec.offset = self.len + #before + spos - 1
  rec.secret = text:sub(spos, spos + slen - 1)
  rec.path = self.path
  self.recs[#self.recs + 1] = rec
  self:add(before .. text .. after)
end

function Builder:filler(lines, max)
  for _ = 1, self.gen:int((max or 3) + 1) - 1 do self:add(self.gen:pick(lines) .. "\n") end
end

--- Writes the file; fills in line and column of every record.
function Builder:finish()
  local text = table.concat(self.parts)
  local f = assert(io.open(self.path, "wb"))
  f:write(text)
  f:close()
  table.sort(self.recs, function(a, b) return a.offset < b.offset end)
  local line, line_start, pos = 1, 0, 1       -- line_start: 0-based offset
  for _, rec in ipairs(self.recs) do
    while true do
      local nl = text:find("\n", pos, true)
      if not nl or nl - 1 >= rec.offset then break end
      line, line_start, pos = line + 1, nl, nl + 1
    end
    rec.line, rec.column = line, rec.offset - line_start + 1
  end
  return self.recs, #text
end

-- The generic rule that reports a NAME/value pair in each syntax.
local SYNTAX_RULE = {env = "generic-secret-env", properties = "generic-secret-properties",
  yaml = "generic-secret-yaml", json = "generic-secret-json", code = "generic-secret-code",
  html = "generic-secret-html-table"}
M.SYNTAX_RULE = SYNTAX_RULE

local function quoted(gen, v, choices)
  local q = gen:pick(choices)
  if q == "" and v:find("[%s#$&;()*!`<>|\\{}'\"]") then q = '"' end
  return q
end

-- Filler lines of each kind: plain configuration and code that no rule
-- should report.
local FILL = {
  env = {"APP_NAME=Shop", "APP_ENV=production", "APP_DEBUG=false", "APP_URL=https://shop.example.org",
    "LOG_CHANNEL=stack", "DB_CONNECTION=mysql", "DB_HOST=127.0.0.1", "DB_PORT=3306",
    "DB_DATABASE=shop", "DB_USERNAME=shop", "CACHE_DRIVER=redis", "QUEUE_CONNECTION=sync",
    "SESSION_LIFETIME=120", "MAIL_MAILER=smtp", "MAIL_HOST=smtp.sendgrid.net", "MAIL_PORT=587",
    "MAIL_USERNAME=apikey", "MAIL_ENCRYPTION=tls", "# third-party services", ""},
  yaml = {"  region: eu-west-1", "  replicas: 3", "  image: registry.example.org/shop/api:1.4.2",
    "  # rotated by ops", "  timeout_seconds: 30", "  enabled: true", "  log_level: info"},
  json = {'    "region": "eu-west-1",', '    "retries": 3,', '    "enabled": true,',
    '    "endpoint": "https://api.example.org/v2",', '    "tags": ["prod", "eu"],'},
  js = {"// services used by the checkout", "const retries = 3;", "import fetch from 'node-fetch';",
    "export const region = 'eu-west-1';", "function sleep(ms) { return new Promise(r => setTimeout(r, ms)); }", ""},
  python = {"# Settings for the worker", "DEBUG = False", "ALLOWED_HOSTS = ['shop.example.org']",
    "import os", "TIME_ZONE = 'UTC'", "USE_TZ = True", ""},
  php = {"        // mail and payments", "        'region' => 'eu-west-1',", "        'timeout' => 30,",
    "        'debug' => false,", ""},
  properties = {"server.port = 8080", "spring.application.name = shop", "# database",
    "logging.level.root = INFO", "spring.jpa.open-in-view = false", ""},
  ini = {"region = eu-west-1", "timeout = 30", "; mail", "[payments]", "enabled = true", ""},
  dockerfile = {"RUN apt-get update && apt-get install -y --no-install-recommends curl", "WORKDIR /app",
    "COPY . /app", "EXPOSE 8080", "# runtime settings", "ENV NODE_ENV=production"},
  shell = {"set -euo pipefail", "echo \"deploying $APP\"", "cd /srv/app", "# settings",
    "systemctl restart app.service", ""},
}

local function line_value(item)          -- the value of a single-line item
  return item.prefix .. item.secret .. item.suffix, #item.prefix + 1
end

-- Single-line forms: each kind of file writes a NAME/value pair in one or
-- more forms; a form has a syntax (which generic rule reports the pair)
-- and a renderer (builder, item).
local FORMS = {}

local function form(name, syntax, render) FORMS[name] = {name = name, syntax = syntax, render = render} end

form("env", "env", function(b, item)
  local v, sp = line_value(item)
  local q = quoted(b.gen, v, {"", '"', "'"})
  b:plant(item.name .. "=" .. q, v, sp, #item.secret, q .. "\n", item.rec)
end)

form("shell-export", "env", function(b, item)
  local v, sp = line_value(item)
  local q = quoted(b.gen, v, {'"', "'"})
  b:plant("export " .. item.name .. "=" .. q, v, sp, #item.secret, q .. "\n", item.rec)
end)

form("dockerfile-env", "env", function(b, item)
  local v, sp = line_value(item)
  local q = quoted(b.gen, v, {"", '"'})
  b:plant("ENV " .. item.name .. "=" .. q, v, sp, #item.secret, q .. "\n", item.rec)
end)

form("yaml", "yaml", function(b, item)
  local v, sp = line_value(item)
  local q = quoted(b.gen, v, {"", '"', "'"})
  if q == "" and (v:find(": ", 1, true) or v:find("^[%[{&*!|>'\"%%@`]")) then q = '"' end
  b:plant("  " .. item.name .. ": " .. q, v, sp, #item.secret, q .. "\n", item.rec)
end)

form("json", "json", function(b, item)
  local v, sp = line_value(item)
  b:plant('    "' .. item.name .. '": "', v, sp, #item.secret, '",\n', item.rec)
end)

form("js-const", "code", function(b, item)
  local v, sp = line_value(item)
  b:plant("const " .. item.name .. " = '", v, sp, #item.secret, "';\n", item.rec)
end)

form("js-property", "yaml", function(b, item)   -- "  name: value" starting a line
  local v, sp = line_value(item)
  b:plant("config.services = {\n  " .. item.name .. ": \"", v, sp, #item.secret, "\",\n};\n", item.rec)
end)

form("python-assign", "code", function(b, item)
  local v, sp = line_value(item)
  local q = b.gen:pick({'"', "'"})
  b:plant(item.name .. " = " .. q, v, sp, #item.secret, q .. "\n", item.rec)
end)

form("python-dict", "json", function(b, item)
  local v, sp = line_value(item)
  b:plant("CONFIG = {\n    \"" .. item.name .. "\": \"", v, sp, #item.secret, "\",\n}\n", item.rec)
end)

form("php-array", "code", function(b, item)
  local v, sp = line_value(item)
  b:plant("        '" .. item.name .. "' => '", v, sp, #item.secret, "',\n", item.rec)
end)

form("properties", "properties", function(b, item)
  local v, sp = line_value(item)
  b:plant(item.name .. " = ", v, sp, #item.secret, "\n", item.rec)
end)

-- a piece of the one long line of minified code
form("minified", "json", function(b, item)
  local v, sp = line_value(item)
  b:plant(';var ' .. b.gen:chars(2, "abcdefghijk") .. '={"' .. item.name .. '":"', v, sp,
    #item.secret, '"}', item.rec)
end)

form("log", "json", function(b, item)
  local v, sp = line_value(item)
  b:plant(("[2024-05-%02d 10:%02d:%02d] production.ERROR: Request to the provider failed "
    .. '{"exception":"[object] (GuzzleHttp\\\\Exception\\\\ClientException(code: 401))","config":{"')
    :format(b.gen:int(28), b.gen:int(60) - 1, b.gen:int(60) - 1) .. item.name .. '":"',
    v, sp, #item.secret, '"}}\n', item.rec)
end)

form("whoops", "html", function(b, item)     -- Whoops' environment table (sf-dump)
  local v, sp = line_value(item)
  b:plant(("<tr>\n  <td>%s</td>\n  <td><pre class=sf-dump id=sf-dump-%d data-indent-pad=\"  \">"
    .. "\"<span class=sf-dump-str title=\"%d characters\">"):format(item.name, b.gen:int(99999), #v),
    v, sp, #item.secret, "</span>\"\n</pre></td>\n</tr>\n", item.rec)
end)

form("phpinfo", "html", function(b, item)
  local v, sp = line_value(item)
  b:plant(("<tr><td class=\"e\">$_SERVER['%s']</td><td class=\"v\">"):format(item.name),
    v, sp, #item.secret, " </td></tr>\n", item.rec)
end)

M.FORMS = FORMS

--- The text of one NAME/value line in a form, for rule r with secret s.
function M.render(form_name, r, s)
  local b = new_builder(nil, "")
  b.gen = M.new(1)
  FORMS[form_name].render(b, {name = r.plan.name, prefix = r.plan.prefix, suffix = r.plan.suffix,
                              secret = s, rec = {}})
  return table.concat(b.parts)
end

-- Multi-line blocks (PEM, OpenSSH, PGP, PuTTY): (builder, item) where
-- item.secret is the block.
local BLOCK = {}

function BLOCK.env(b, item)
  b:plant('PRIVATE_KEY="', item.secret, 1, #item.secret, '"\n', item.rec)
end

function BLOCK.shell(b, item)
  b:plant("cat > /etc/ssl/private/app.key <<'EOF'\n", item.secret, 1, #item.secret, "\nEOF\n", item.rec)
end

function BLOCK.python(b, item)
  b:plant('PRIVATE_KEY = """\n', item.secret, 1, #item.secret, '\n"""\n', item.rec)
end

function BLOCK.js(b, item)
  b:plant("const privateKey = `", item.secret, 1, #item.secret, "`;\n", item.rec)
end

function BLOCK.php(b, item)
  b:plant("$key = <<<EOT\n", item.secret, 1, #item.secret, "\nEOT;\n", item.rec)
end

function BLOCK.html(b, item)
  b:plant("<h3>key.pem</h3>\n<pre class=\"file\">", item.secret, 1, #item.secret, "</pre>\n", item.rec)
end

function BLOCK.yaml(b, item)               -- a literal block scalar, indented
  local text = "    " .. item.secret:gsub("\n", "\n    ")
  b:plant("  private_key: |\n", text, 5, #text - 4, "\n", item.rec)
end

-- JSON structures (JWK objects, a service account's "private_key"):
-- item.value is the JSON text, item.spos where the secret starts in it.
local JSONV = {}

function JSONV.json(b, item)
  b:plant('    "' .. item.name .. '": ', item.value, item.spos, #item.secret, ",\n", item.rec)
end

function JSONV.minified(b, item)
  b:plant(";var " .. b.gen:chars(2, "lmnopq") .. "={\"" .. item.name .. "\":", item.value,
    item.spos, #item.secret, "}", item.rec)
end

function JSONV.log(b, item)
  b:plant('[2024-05-02 08:00:00] production.DEBUG: loaded credentials {"' .. item.name .. '":',
    item.value, item.spos, #item.secret, "}\n", item.rec)
end

function JSONV.python(b, item)
  b:plant("CREDENTIALS = {\n    \"" .. item.name .. "\": ", item.value, item.spos, #item.secret,
    ",\n}\n", item.rec)
end

function JSONV.js(b, item)
  b:plant("const credentials = {\n  \"" .. item.name .. "\": ", item.value, item.spos,
    #item.secret, ",\n};\n", item.rec)
end

-- }======================================================

-- {====================================================== the recall corpus

local WHOOPS_HEAD = [[
<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>Whoops! There was an error.</title></head>
<body>
<div class="Whoops container">
<div class="details">
<h2 class="details-heading">Environment &amp; details:</h2>
<div class="data-table-container" id="data-tables">
<div class="data-table" id="sg-environment-variables">
<label>Environment Variables</label>
<table class="data-table">
<thead><tr><td class="data-table-k">Key</td><td class="data-table-v">Value</td></tr></thead>
]]
local WHOOPS_TAIL = "</table>\n</div>\n</div>\n</div>\n</div>\n</body>\n</html>\n"

local MINI = {"function(e,t){return e&&t}", "var n=r(12),o=r(34);", "e.exports=function(e){return null==e?\"\":String(e)};",
  "if(!a)throw new Error(\"bad value\");", "for(var i=0;i<e.length;i++)t.push(e[i]);",
  "Object.defineProperty(t,\"__esModule\",{value:!0});", "return void 0===e?t:e;", "n.d(t,{a:function(){return u}});",
  "var s=Array.isArray,c=Object.keys;", "e.prototype.render=function(){return this.props.children};"}

local function minified_filler(gen, n)
  local t, len = {}, 0
  while len < n do
    local s = gen:pick(MINI):gsub("%f[%w]([etnroaisu])%f[^%w]", function(c)
      return c .. gen:chars(gen:int(2) - 1, "xyzw")
    end)
    t[#t + 1] = s
    len = len + #s
  end
  return table.concat(t)
end

local LOG_LINES = {"production.INFO: GET /api/orders 200 12ms", "production.INFO: POST /api/cart 201 48ms",
  "production.WARNING: Slow query on orders (812 ms)", "production.INFO: Job App\\Jobs\\SendReceipt done",
  "production.DEBUG: cache miss products.index"}

local function log_filler(gen, n)
  local t, len = {}, 0
  while len < n do
    local s = ("[2024-05-%02d %02d:%02d:%02d] %s\n"):format(gen:int(28), gen:int(24) - 1,
      gen:int(60) - 1, gen:int(60) - 1, gen:pick(LOG_LINES))
    t[#t + 1] = s
    len = len + #s
  end
  return table.concat(t)
end

-- Files of the recall corpus, one per kind (each mixes every provider).
local KINDS = {
  {kind = "env", path = ".env", fill = FILL.env, forms = {"env"}},
  {kind = "yaml", path = "config/secrets.yml", fill = FILL.yaml, head = "production:\n", forms = {"yaml"}},
  {kind = "json", path = "config/credentials.json", fill = FILL.json, forms = {"json"}, head = '{\n  "services": {\n',
   tail = '    "version": 3\n  }\n}\n'},
  {kind = "js", path = "src/config.js", fill = FILL.js, forms = {"js-const", "js-property"}},
  {kind = "python", path = "app/settings.py", fill = FILL.python, forms = {"python-assign", "python-dict"}},
  {kind = "php", path = "config/services.php", fill = FILL.php, forms = {"php-array"}, head = "<?php\n\nreturn [\n", tail = "];\n"},
  {kind = "properties", path = "src/main/resources/application.properties", fill = FILL.properties,
   forms = {"properties"}},
  {kind = "ini", path = "config/app.ini", fill = FILL.ini, forms = {"properties"}, crlf = true,
   head = "\xEF\xBB\xBF; saved on Windows: UTF-8 with a BOM, CRLF line ends\n[services]\n"},
  {kind = "dockerfile", path = "Dockerfile", fill = FILL.dockerfile, forms = {"dockerfile-env"}, head = "FROM node:20-slim\n"},
  {kind = "shell", path = "scripts/deploy.sh", fill = FILL.shell, forms = {"shell-export"}, head = "#!/bin/sh\n"},
  {kind = "html", path = "storage/framework/whoops.html", forms = {"whoops", "phpinfo"}, head = WHOOPS_HEAD, tail = WHOOPS_TAIL},
  {kind = "minified", path = "public/js/app.min.js", forms = {"minified"}},
  {kind = "log", path = "storage/logs/laravel.log", forms = {"log"}},
}
M.KINDS = KINDS

-- Every rule of class standalone, embedded, bound or generic is planted in
-- any form of each kind of file (bound rules not in HTML tables, see
-- mode_of). No form is left out: the Laravel APP_KEY and Django SECRET_KEY
-- rules, which once missed quoted keys (JSON, Python dicts, PHP arrays,
-- minified code, logs) and `APP_KEY: base64:...`, take every form now, and
-- scan_spec.lua also checks those forms one by one.

-- How rule r is planted in kind k: "block", "json", or a form, or nil.
local function mode_of(gen, r, k)
  local class = r.plan.class
  if class == "block" then
    if not BLOCK[k.kind] then return nil end
    if k.kind == "yaml" and (r.id == "putty-private-key" or r.id == "pgp-private-key-block") then
      return nil                           -- their header lines must start a line
    end
    return "block"
  elseif class == "json" then
    return JSONV[k.kind] and "json" or nil
  elseif class == "bound" and k.kind == "html" then
    return nil                             -- the table gives no `name =` context
  end
  local forms = k.forms or {}
  return #forms > 0 and FORMS[gen:pick(forms)] or nil
end

-- The item planted for rule r: a fresh secret in r's value.
local function item_of(gen, r, kind)
  local plan, secret = r.plan, gen:fresh_secret(r)
  local item = {secret = secret, name = plan.name, prefix = plan.prefix, suffix = plan.suffix,
                rec = {rule = r.id, source = r.id, kind = kind}}
  if plan.class == "json" then
    if r.id == "gcp-service-account-private-key" then
      item.name, item.value, item.spos = "private_key", '"' .. secret .. '"', 2
    else
      local text = replace_plain(plan.example:gsub("\n%s*", " "), plan.secret, secret)
      item.name, item.value = "signing_key", text
      item.spos = assert(text:find(secret, 1, true))
    end
  end
  return item
end

local BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWYZabcdefghijklmnopqrstuvwyz0123456789+/"  -- no x: xxxx

--- Builds the recall corpus under dir: every rule planted in every kind of
--- file that its pattern takes, each time with a fresh secret. Returns the
--- records {rule (expected), source (the rule planted), kind, path, line,
--- column, offset, fingerprint} and the number of files and bytes.
function Gen:build_recall(dir, rules)
  local records, nfiles, nbytes = {}, 0, 0
  local function finish(b)
    local recs, size = b:finish()
    for _, rec in ipairs(recs) do
      rec.fingerprint = M.sha256(rec.secret)
      rec.length = #rec.secret
      rec.secret = nil                     -- the spec compares fingerprints only
      records[#records + 1] = rec
    end
    nfiles, nbytes = nfiles + 1, nbytes + size
  end
  for _, k in ipairs(KINDS) do
    local path = dir .. "/" .. k.path
    assert(os.execute("mkdir -p '" .. path:match("^(.*)/") .. "'"))
    local b = new_builder(self, path)
    b.crlf = k.crlf
    if k.kind == "minified" then b:add("/*! shop-frontend v2.3.1 | MIT */\n" .. minified_filler(self, 100000)) end
    b:add(k.head or "")
    for _, r in ipairs(rules) do
      local mode = mode_of(self, r, k)
      if mode then
        local item = item_of(self, r, k.kind)
        if k.fill then b:filler(k.fill) end
        if k.kind == "minified" then b:add(minified_filler(self, 6000 + self:int(6000)))
        elseif k.kind == "log" then b:add(log_filler(self, 6000 + self:int(6000))) end
        if mode == "block" then BLOCK[k.kind](b, item)
        elseif mode == "json" then JSONV[k.kind](b, item)
        else
          item.rec.form = mode.name
          mode.render(b, item)
          if r.plan.class == "generic" then item.rec.rule = assert(SYNTAX_RULE[mode.syntax]) end
        end
      end
    end
    if k.kind == "minified" then b:add(minified_filler(self, 100000) .. "\n//# sourceMappingURL=app.min.js.map\n") end
    if k.kind == "log" then b:add(log_filler(self, 100000)) end
    b:add(k.tail or "")
    finish(b)
  end
  -- key files: each block alone, as written by its tool
  assert(os.execute("mkdir -p '" .. dir .. "/keys'"))
  for _, r in ipairs(rules) do
    if r.plan.class == "block" then
      local b = new_builder(self, dir .. "/keys/" .. r.id .. ".key")
      local item = item_of(self, r, "keyfile")
      b:plant("", item.secret, 1, #item.secret, "\n", item.rec)
      finish(b)
    end
  end
  -- large keys, near the 8192-byte window of the PEM rules: RSA 4096 and
  -- 8192 bits (about 3.2 and 6.4 KB of PEM), one in a YAML block scalar
  for _, big in ipairs({{"pem-private-key", "RSA PRIVATE KEY", 3180, "rsa4096.key"},
                        {"pem-pkcs8-private-key", "PRIVATE KEY", 6300, "pkcs8-8192.yml"}}) do
    local lines = {"-----BEGIN " .. big[2] .. "-----"}
    for _ = 1, big[3] // 64 do lines[#lines + 1] = self:chars(64, BASE64) end
    lines[#lines + 1] = self:chars(big[3] % 64, BASE64) .. "=="
    lines[#lines + 1] = "-----END " .. big[2] .. "-----"
    local block = table.concat(lines, "\n")
    local b = new_builder(self, dir .. "/keys/" .. big[4])
    local rec = {rule = big[1], source = big[1], kind = "keyfile"}
    if big[4]:find("%.yml$") then
      BLOCK.yaml(b, {secret = block, rec = rec})
    else
      b:plant("", block, 1, #block, "\n", rec)
    end
    finish(b)
  end
  return records, nfiles, nbytes
end

-- }======================================================

-- {====================================================== near misses

-- The capture group of a pattern: its text, whether it matches a fixed
-- number of characters, and the characters its classes allow.
local function capture_group(pattern)
  local i, n, depth, start = 1, #pattern, 0, nil
  local in_class = false
  while i <= n do
    local c = pattern:sub(i, i)
    if c == "\\" then i = i + 1
    elseif in_class then if c == "]" then in_class = false end
    elseif c == "[" then
      in_class = true
      if pattern:sub(i + 1, i + 1) == "]" then i = i + 1 end
    elseif c == "(" then
      depth = depth + 1
      if not start and pattern:sub(i + 1, i + 1) ~= "?" then start, depth = i, 1 end
    elseif c == ")" and start then
      depth = depth - 1
      if depth == 0 then return pattern:sub(start + 1, i - 1) end
    end
    i = i + 1
  end
end

local SHORTHAND = {w = "A-Za-z0-9_", d = "0-9", s = " \t\r\n"}

local function class_chars(body, set)
  local i = 1
  while i <= #body do
    local c = body:sub(i, i)
    if c == "\\" then
      local e = body:sub(i + 1, i + 1)
      if SHORTHAND[e] then class_chars(SHORTHAND[e], set) else set[e] = true end
      i = i + 2
    elseif body:sub(i + 1, i + 1) == "-" and i + 2 <= #body then
      for b = c:byte(), body:byte(i + 2) do set[string.char(b)] = true end
      i = i + 3
    else
      set[c] = true
      i = i + 1
    end
  end
end

--- What the capture group of a rule takes: {fixed = bool, chars = set}.
function M.group_info(pattern)
  local g = assert(capture_group(pattern), "no capture group")
  local info = {text = g, chars = {}, fixed = true}
  if g:find("[^\\][%*%+%?]") or g:find("{%d+,") or g:find("%[%^") then info.fixed = false end
  for body in g:gmatch("%[([^%]]+)%]") do class_chars(body, info.chars) end
  return info
end

-- The literal prefix of a secret (its leading characters that the pattern
-- spells out), "" if none.
local function literal_prefix(plan)
  local k = 0
  while plan.mask[k + 1] do k = k + 1 end
  return plan.secret:sub(1, k)
end

-- Positions of the secret's characters that a fresh draw may change.
local function free_positions(plan)
  local t = {}
  for i = 1, #plan.secret do
    if not plan.mask[i] and CLASS_OF[plan.secret:sub(i, i)] then t[#t + 1] = i end
  end
  return t
end

--- The near misses of rule r (non-generic, single-line classes): a list of
--- {what, value} where value replaces the secret (prefix and suffix of the
--- plan stay), made from a fresh secret s.
local function value_misses(gen, r, s)
  local plan, out = r.plan, {}
  local info = M.group_info(r.pattern)
  local free = {}
  for i = 1, #s do
    if not plan.mask[i] and CLASS_OF[s:sub(i, i)] then free[#free + 1] = i end
  end
  local mid = free[(#free + 1) // 2]
  if info.fixed and mid then
    out[#out + 1] = {"one character short", s:sub(1, mid - 1) .. s:sub(mid + 1)}
    for _, bad in ipairs({"~", "!", "%", "*", "^"}) do
      if not info.chars[bad] then
        out[#out + 1] = {"one character outside the charset", s:sub(1, mid - 1) .. bad .. s:sub(mid + 1)}
        break
      end
    end
  end
  for k = #free - 6, 1, -1 do                -- the last 7 free characters in a row say EXAMPLE
    if free[k + 6] == free[k] + 6 then
      out[#out + 1] = {"EXAMPLE in the secret", s:sub(1, free[k] - 1) .. "EXAMPLE" .. s:sub(free[k] + 7)}
      break
    end
  end
  local x = s:gsub("()(.)", function(i, c)
    if not plan.mask[i] and CLASS_OF[c] then return "x" end
  end)
  out[#out + 1] = {"xxxx placeholder", x}
  out[#out + 1] = {"your-api-key", "your-api-key"}
  local prefix = literal_prefix(plan)
  if prefix ~= "" and prefix ~= s then out[#out + 1] = {"the prefix alone", prefix} end
  return out
end

-- Near misses of the generic-secret-* values, in their own syntax.
local function generic_misses(gen, s)
  local nodigit = s:gsub("%d", function() return gen:pick("QWRTYPqwrtyp") end)
  return {
    {"too short (11 characters)", s:sub(1, 11)},
    {"no digit", nodigit},
    {"EXAMPLE", "EXAMPLE" .. s:sub(8)},
    {"xxxx placeholder", ("x"):rep(#s - 1) .. "1"},
    {"your-api-key", "your-api-key-" .. s:sub(1, 6)},
    {"changeme", "changeme" .. s:sub(1, 8)},
    {"${VAR}", "${MAIL_PASSWORD}"},
    {"{{ var }}", "{{ mail_password }}"},
    {"a dotted reference", "process.env.MAIL_PASSWORD"},
    {"a snake-case name", "mail_password_file_2"},
    {"an ascending run", "Q7" .. "12345678" .. s:sub(1, 6)},
    {"one character repeated", "a1" .. ("a"):rep(20)},
    {"empty", ""},
  }
end

local GENERIC_FORM = {["generic-secret-env"] = "env", ["generic-secret-properties"] = "properties",
  ["generic-secret-yaml"] = "yaml", ["generic-secret-json"] = "json",
  ["generic-secret-code"] = "js-const", ["generic-secret-html-table"] = "whoops"}

--- Builds the near-miss trees: dir/negatives/<rule>.txt holds the rule's
--- negatives (from its rule file), dir/generated/<rule>.txt near misses
--- made from a fresh secret (one character short or outside the charset
--- for fixed-length secrets, EXAMPLE and xxxx placeholders, your-api-key,
--- the prefix alone, ${VAR}, an empty value, process.env.X; for the
--- generic rules: too short, no digit, placeholders, references, names,
--- runs). Generated lines give no context a generic rule takes (standalone
--- secrets sit in VALUE=... ./bin/notify). Returns the records of both:
--- {rule, what, path, line} (what: "negative N" or the kind of near miss),
--- and the controls: {rule, text} where text is the same line with a real
--- secret, which rule must report.
function Gen:build_near_misses(dir, rules)
  local records, controls = {}, {}
  assert(os.execute("mkdir -p '" .. dir .. "/negatives' '" .. dir .. "/generated'"))
  local function add(b, text, rule, what)
    local line = 1
    for _ in table.concat(b.parts):gmatch("\n") do line = line + 1 end
    records[#records + 1] = {rule = rule, what = what, path = b.path, line = line}
    b:add(text)
  end
  for _, r in ipairs(rules) do
    local plan = r.plan
    local nb = new_builder(self, dir .. "/negatives/" .. r.id .. ".txt")
    for i, neg in ipairs(r.negatives) do add(nb, neg .. "\n\n", r.id, "negative " .. i) end
    nb:finish()

    local b = new_builder(self, dir .. "/generated/" .. r.id .. ".txt")
    local s = self:fresh_secret(r)
    local function line(value, form_name)
      local item = {name = plan.name, prefix = plan.prefix, suffix = plan.suffix, secret = value, rec = {}}
      if plan.class == "standalone" then       -- no context needed: none that a generic rule takes
        item.name, item.prefix, item.suffix = "VALUE", "", ""
      end
      local cb = new_builder(self, "")
      if form_name then
        FORMS[form_name].render(cb, item)
      else                                     -- a variable set for one command
        cb:add(item.name .. "=" .. item.prefix .. value .. item.suffix .. " ./bin/notify --dry-run\n")
      end
      return table.concat(cb.parts)
    end
    if plan.class == "generic" then
      local form_name = GENERIC_FORM[r.id]
      controls[#controls + 1] = {rule = r.id, text = line(s, form_name)}
      for _, m in ipairs(generic_misses(self, s)) do add(b, line(m[2], form_name), r.id, m[1]) end
    elseif plan.class ~= "block" and plan.class ~= "json" then
      controls[#controls + 1] = {rule = r.id, text = line(s)}
      for _, m in ipairs(value_misses(self, r, s)) do add(b, line(m[2]), r.id, m[1]) end
      add(b, plan.name .. "=${" .. plan.name .. "} ./bin/notify\n", r.id, "${VAR}")
      add(b, plan.name .. "= ./bin/notify\n", r.id, "an empty value")
      add(b, "const " .. plan.name .. " = process.env." .. plan.name .. ";\n", r.id, "process.env.X")
    else                                       -- blocks and JSON: cut, emptied, elided
      local text = replace_plain(plan.example, plan.secret, s)
      controls[#controls + 1] = {rule = r.id, text = text}
      local head = s:match("^[^\n]*") or s
      if plan.class == "block" then
        add(b, head .. "\n\n", r.id, "the header alone")
        add(b, s:gsub("\n[^\n]*$", "") .. "\n\n", r.id, "no end line")
        add(b, head .. "\n...\n" .. s:match("[^\n]*$") .. "\n\n", r.id, "the body elided")
      else
        add(b, replace_plain(plan.example, plan.secret, "...") .. "\n", r.id, "the secret elided")
        add(b, replace_plain(plan.example, plan.secret, s:sub(1, 20)) .. "\n", r.id, "a cut secret")
      end
    end
    b:finish()
  end
  return records, controls
end

-- }======================================================

return M
