-- ato.scan on real-world clean text: the system's C headers and Perl
-- library. Provider-specific rules must report nothing there; the generic
-- and key-format rules (those of rules/generic.rules and rules/keys.rules:
-- providers generic, postgres, mysql, ..., pem, openssh, jwt, jwk, ...)
-- are counted and the count printed as a TAP comment. Never prints a
-- secret: a failure names the rule, the path and the line.
local ato = require "ato"
local scan = require "ato.scan"
local support = require "support"

-- The directories that exist here: /usr/include and /usr/share/perl*.
local function roots()
  local list = {}
  if ato.fs.exists("/usr/include") then list[#list + 1] = "/usr/include" end
  for _, e in ipairs(ato.fs.list("/usr/share") or {}) do
    if e.name:find("^perl") and e.type == "directory" then list[#list + 1] = "/usr/share/" .. e.name end
  end
  table.sort(list)
  return list
end

describe("ato.scan on clean text", function()
  support.clean_after_each()

  it("provider rules report nothing in the system headers and the Perl library", function()
    local paths = roots()
    if #paths == 0 then
      pending("neither /usr/include nor /usr/share/perl* exists here")
      return
    end
    -- generic: the providers named in generic.rules and keys.rules
    local generic_file = {["generic.rules"] = true, ["keys.rules"] = true}
    local generic_provider, generic_rule = {}, {}
    for _, r in ipairs(assert(scan.rules())) do
      local file = r.defined_at:match("([^/]+):%d+$")
      if generic_file[file] then generic_provider[r.provider] = true end
    end
    for _, r in ipairs(assert(scan.rules())) do
      if generic_provider[r.provider] then generic_rule[r.id] = true end
    end
    local t0 = ato.now()
    local findings, stats = assert(scan.tree(paths))
    local elapsed = ato.now() - t0
    local provider_hits, by_rule, generic = {}, {}, 0
    for _, f in ipairs(findings) do
      if generic_rule[f.rule] then
        generic = generic + 1
        by_rule[f.rule] = (by_rule[f.rule] or 0) + 1
      else
        provider_hits[#provider_hits + 1] = ("%s %s:%d"):format(f.rule, f.path, f.line)
      end
    end
    local counts = {}
    for id, n in pairs(by_rule) do counts[#counts + 1] = id .. "=" .. n end
    table.sort(counts)
    print(("# clean text: %s: %d files, %.1f MB (%d binary, %d skipped) in %.2f s"):format(
      table.concat(paths, " "), stats.files, stats.bytes / 1e6, stats.binary_skipped,
      stats.skipped, elapsed))
    print(("# clean text: %d generic-rule findings%s"):format(generic,
      #counts > 0 and " (" .. table.concat(counts, ", ") .. ")" or ""))
    assert.is_true(stats.files > 0)
    assert.is_true(#provider_hits == 0, #provider_hits .. " provider-rule findings:\n"
      .. table.concat(provider_hits, "\n", 1, math.min(#provider_hits, 50)))
  end)
end)
