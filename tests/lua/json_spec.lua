-- ato.json: whole numbers back as integers, and lists that stay lists when
-- empty (lua-cjson 2.1.0 writes every empty table as {}).
local json = require "ato.json"
local support = require "support"

describe("ato.json", function()
  it("decodes whole numbers as integers and keeps fractions", function()
    local v = json.decode('{"a": 3, "b": [1, 2.5], "c": {"d": 1e3}}')
    assert.equal("integer", math.type(v.a))
    assert.equal("integer", math.type(v.b[1]))
    assert.equal(2.5, v.b[2])
    assert.equal(1000, v.c.d)
    assert.equal("integer", math.type(v.c.d))
  end)

  it("encodes a marked empty list as [] at any depth, and leaves the caller's value alone", function()
    local inner = json.array()
    local v = {list = json.array(), nested = {deep = {inner}}, obj = {}, n = 1}
    assert.same(json.decode('{"list": [], "nested": {"deep": [[]]}, "obj": {}, "n": 1}'),
                json.decode(json.encode(v)))
    assert.matches('"list":%[%]', json.encode(v))
    assert.matches('"obj":{}', json.encode(v))
    assert.equal(inner, v.nested.deep[1])               -- not replaced in place
    assert.equal("[]", json.encode(json.array()))
    assert.equal('[1,2]', json.encode(json.array{1, 2}))
    -- text that happens to hold the sentinel's words stays text
    assert.equal('["ato:empty-array"]', json.encode({"ato:empty-array"}))
  end)

  it("makes `ato jobs list --json` print [] when there are no jobs", function()
    local dir, cleanup = support.tmpdir()
    finally(cleanup)
    local r = support.ato({"--db", dir .. "/ato.db", "jobs", "list", "--json"})
    assert.equal(0, r.code, r.stderr)
    assert.equal("[]\n", r.stdout)
  end)
end)
