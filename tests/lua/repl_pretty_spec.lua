-- ato.repl.pretty: the console's printer. Layout, order, cuts, cycles,
-- metamethods that must not run, and secrets that must not show.
local ato = require "ato"
local redact = require "ato.redact"
local support = require "support"
local pretty = require "ato.repl.pretty"

local P = pretty.format
-- A SendGrid-format key: "SG." + 22 + "." + 43 characters of [A-Za-z0-9_-].
local KEY = "SG." .. ("Ab3_-"):rep(4) .. "xy" .. "." .. ("Zq9-_"):rep(8) .. "abc"

local function lines_of(s)
  local out = {}
  for line in (s .. "\n"):gmatch("(.-)\n") do out[#out + 1] = line end
  return out
end

-- A metatable whose every metamethod but __tostring/__name fails loudly.
local function trap_mt(extra)
  local mt = {}
  for _, name in ipairs{"__index", "__newindex", "__pairs", "__len", "__eq", "__lt", "__le",
                        "__concat", "__call", "__unm", "__add", "__close", "__mode_unused"} do
    mt[name] = function() error("metamethod " .. name .. " was called", 2) end
  end
  mt.__metatable = "locked"
  for k, v in pairs(extra or {}) do mt[k] = v end
  return mt
end

describe("ato.repl.pretty", function()
  support.clean_after_each()

  describe("scalars", function()
    it("prints nil, booleans and numbers as Lua does", function()
      assert.equal("2", P(1 + 1))
      assert.equal("nil", P(nil))
      assert.equal("true", P(true))
      assert.equal("false", P(false))
      assert.equal("1", P(1))
      assert.equal("1.0", P(1.0))
      assert.equal("-0.0", P(-0.0))
      assert.equal("0.1", P(0.1))
      assert.equal("1e+100", P(1e100))
      assert.equal("inf", P(math.huge))
      assert.equal("-inf", P(-math.huge))
      assert.equal(tostring(0 / 0), P(0 / 0))
      assert.equal(tostring(-(0 / 0)), P(-(0 / 0)))
      assert.equal("-9223372036854775808", P(math.mininteger))
      assert.equal(tostring(2 ^ 63), P(2 ^ 63))
    end)

    it("quotes strings, at the top level too", function()
      assert.equal('"x"', P("x"))
      assert.equal('""', P(""))
      assert.equal([["say \"hi\" \\o/"]], P('say "hi" \\o/'))
      assert.equal([["a\nb\tc\r\x00\x01\x1b[31m\x7f"]], P("a\nb\tc\r\0\1\27[31m\127"))
      assert.equal('"héllo wörld ✓ 日本"', P("héllo wörld ✓ 日本"))
      assert.equal([["bad \xff\xc3 utf8"]], P("bad \255\195 utf8"))
      assert.equal([["\u{202E}evil\u{200B}\u{9B}"]], P("\u{202E}evil\u{200B}\u{9B}"))
    end)

    it("gives string literals that read back as the same bytes", function()
      local bytes = {}
      for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
      local s = table.concat(bytes) .. "é✓\u{10FFFF}\u{2066}\u{FEFF}\xed\xa0\x80\xe0\x80"
      local text = P(s, {max_string = math.huge, redact = false})
      assert.is_nil(text:find("%c"))
      assert.truthy(utf8.len(text))
      for _, cp in utf8.codes(text) do assert.is_true((cp < 0x80 or cp > 0x9F) and cp ~= 0x202E and cp ~= 0x2066 and cp ~= 0xFEFF) end
      assert.equal(s, assert(load("return " .. text))())
    end)

    it("cuts long strings with a count of the bytes left out", function()
      local text = P(("x"):rep(1000))
      assert.equal('"' .. ("x"):rep(200) .. '"... (800 more bytes)', text)
      assert.equal('"abc"... (2 more bytes)', P("abcde", {max_string = 3}))
      assert.equal('"abcde"', P("abcde", {max_string = 5}))
      -- never inside a UTF-8 character: 5 bytes keep two "é" (4 bytes)
      assert.equal('"éé"... (1996 more bytes)', P(("é"):rep(1000), {max_string = 5}))
    end)

    it("formats results like the REPL prints them", function()
      assert.equal("2", pretty.values(1, 1 + 1))
      assert.equal('1\tnil\t"x"\tnil', pretty.values(4, 1, nil, "x", nil))
      assert.equal("", pretty.values(0))
      assert.equal("{1, 2}\ttrue", pretty.values(select("#", {1, 2}, true), {1, 2}, true))
      assert.has_error(function() pretty.values(nil, 1) end)
    end)

    it("rejects bad options", function()
      assert.has_error(function() P(1, "wide") end)
      assert.has_error(function() P(1, {width = -1}) end)
      assert.has_error(function() P(1, {depth = "deep"}) end)
    end)
  end)

  describe("tables", function()
    it("fit on one line when they can", function()
      assert.equal("{}", P({}))
      assert.equal("{1, 2, 3}", P({1, 2, 3}))
      assert.equal('{a = 1, b = "x"}', P({b = "x", a = 1}))
      assert.equal("{1, 2, n = 2}", P({1, 2, n = 2}))
      assert.equal("{{1, {}}, {x = {y = true}}}", P({{1, {}}, {x = {y = true}}}))
    end)

    it("put the array part first, then sorted keys of each type", function()
      local t = {10, 20, 30, [5] = "hole", [-1] = "neg", [1.5] = "half", [math.huge] = "inf",
                 name = "n", Zed = 1, ["a b"] = 2, ["end"] = 3, _x9 = 4, ["9a"] = 5, [""] = 6,
                 [true] = "t", [false] = "f"}
      assert.equal(table.concat({
        "{",
        "  10,",
        "  20,",
        "  30,",
        '  [-1] = "neg",',
        '  [1.5] = "half",',
        '  [5] = "hole",',
        '  [inf] = "inf",',
        '  [""] = 6,',
        '  ["9a"] = 5,',
        "  Zed = 1,",
        "  _x9 = 4,",
        '  ["a b"] = 2,',
        '  ["end"] = 3,',
        '  name = "n",',
        '  [false] = "f",',
        '  [true] = "t",',
        "}"}, "\n"), P(t))
    end)

    it("escapes keys like strings", function()
      assert.equal([[{["\x1b[2J"] = 2, ["a\nb"] = 1}]], P({["a\nb"] = 1, ["\27[2J"] = 2}))
    end)

    it("orders keys of other types by their text", function()
      local text = P({[{2}] = "b", [{1}] = "a", [print] = "f"})
      assert.equal('{[function: builtin] = "f", [{1}] = "a", [{2}] = "b"}', text)
    end)

    it("go to one entry per line, indented, when wider than width", function()
      local t = {alpha = {1, 2, 3}, beta = "a string of some length", gamma = {x = 1}}
      assert.equal('{alpha = {1, 2, 3}, beta = "a string of some length", gamma = {x = 1}}', P(t))
      assert.equal(table.concat({
        "{",
        "  alpha = {1, 2, 3},",
        '  beta = "a string of some length",',
        "  gamma = {x = 1},",
        "}"}, "\n"), P(t, {width = 40}))
      assert.equal(table.concat({
        "{",
        "  alpha = {",
        "    1,",
        "    2,",
        "    3,",
        "  },",
        '  beta = "a string of some length",',
        "  gamma = {",
        "    x = 1,",
        "  },",
        "}"}, "\n"), P(t, {width = 12}))
      for _, line in ipairs(lines_of(P(t, {width = 40}))) do assert.is_true(#line <= 40, line) end
      -- exactly at the width: one line; a column less: not
      local one = P({1, 2, 3})
      assert.equal(one, P({1, 2, 3}, {width = #one}))
      assert.equal("{\n  1,\n  2,\n  3,\n}", P({1, 2, 3}, {width = #one - 1}))
    end)

    it("cut tables deeper than depth, with a count", function()
      local deep = {a = {b = {c = {d = {e = {f = {g = {1, 2, 3}}}}}}}}
      -- the top table and 5 levels below it: 6 tables shown
      assert.equal("{a = {b = {c = {d = {e = {f = {... 1 entry}}}}}}}", P(deep))
      assert.equal("{a = {b = {c = {d = {e = {f = {g = {1, 2, 3}}}}}}}}", P(deep, {depth = 8}))
      assert.equal("{a = {b = {c = {d = {e = {f = {g = {... 3 entries}}}}}}}}", P(deep, {depth = 7}))
      assert.equal("{a = {b = {... 1 entry}}}", P(deep, {depth = 2}))
      assert.equal("{... 1 entry}", P(deep, {depth = 0}))
      assert.equal("{x = {}}", P({x = {}}, {depth = 1}))
    end)

    it("cut big tables with a count of the entries left out", function()
      local big = {}
      for i = 1, 10000 do big[i] = i end
      big.extra = true
      local t0 = ato.now()
      local text = P(big)
      assert.is_true(ato.now() - t0 < 0.5)
      local lines = lines_of(text)
      assert.equal(103, #lines)
      assert.equal("{", lines[1])
      assert.equal("  1,", lines[2])
      assert.equal("  100,", lines[101])
      assert.equal("  -- 9901 more", lines[102])
      assert.equal("}", lines[103])
      assert.equal("{\n  1,\n  2,\n  -- 3 more\n}", P({1, 2, 3, 4, 5}, {max_items = 2}))
      assert.equal("{\n  a = 1,\n  -- 1 more\n}", P({a = 1, b = 2}, {max_items = 1}))
      -- hash keys are sorted before the cut
      local h = {}
      for i = 1, 10000 do h[("k%05d"):format(i)] = i end
      lines = lines_of(P(h, {max_items = 3}))
      assert.same({"{", "  k00001 = 1,", "  k00002 = 2,", "  k00003 = 3,", "  -- 9997 more", "}"}, lines)
    end)
  end)

  describe("cycles and shared tables", function()
    it("label a table referring to itself", function()
      local t = {name = "loop"}
      t.self = t
      assert.equal('<1>{name = "loop", self = <ref 1>}', P(t))
      local list = {1}
      list[2] = list
      assert.equal("<1>{1, <ref 1>}", P(list))
    end)

    it("label mutual references", function()
      local a, b = {name = "a"}, {name = "b"}
      a.peer, b.peer = b, a
      assert.equal('<1>{name = "a", peer = {name = "b", peer = <ref 1>}}', P(a))
      assert.equal('{<1>{name = "a", peer = <2>{name = "b", peer = <ref 1>}}, <ref 2>}', P({a, b}))
    end)

    it("print a shared table once and refer to it after", function()
      local shared = {1, 2}
      assert.equal("{x = <1>{1, 2}, y = <ref 1>, z = {<ref 1>}}", P({x = shared, y = shared, z = {shared}}))
      -- a table cut by depth is not an occurrence: it shows in full later
      local s = {"s"}
      assert.equal('{a = {b = {... 1 entry}}, c = {"s"}}', P({a = {b = s}, c = s}, {depth = 2}))
      assert.equal('{a = <1>{"s"}, c = {d = <ref 1>}}', P({a = s, c = {d = s}}, {depth = 2}))
    end)

    it("stay small when the same table is shared many times over", function()
      local t = {1}
      for _ = 1, 30 do t = {t, t, t} end
      local text = P(t, {depth = 100})
      assert.is_true(#text < 10000)
    end)

    it("label in multi-line layout and keep output deterministic", function()
      local t = {items = {}}
      for i = 1, 5 do t.items[i] = {id = i, owner = t} end
      local text = P(t, {width = 30})
      assert.equal(text, P(t, {width = 30}))
      assert.is_nil(text:find("0x", 1, true))
      assert.equal("<1>{", lines_of(text)[1])
      assert.truthy(text:find("owner = <ref 1>", 1, true))
    end)
  end)

  describe("metamethods", function()
    it("never runs __index, __pairs, __len or others", function()
      local t = setmetatable({1, 2, x = "y"}, trap_mt())
      assert.equal('{1, 2, x = "y"}', P(t))
      local key = setmetatable({}, trap_mt())
      assert.equal("{[{}] = 1}", P({[key] = 1}))
      local nested = setmetatable({inner = setmetatable({}, trap_mt())}, trap_mt())
      rawset(rawget(nested, "inner"), "back", nested)
      assert.equal("<1>{inner = {back = <ref 1>}}", P(nested))
    end)

    it("shows the __tostring result of a table instead of its contents", function()
      local obj = setmetatable({secret_field = 1}, trap_mt{__tostring = function() return "Point(1, 2)" end})
      assert.equal("<Point(1, 2)>", P(obj))
      assert.equal("{p = <Point(1, 2)>}", P({p = obj}))
      local named = setmetatable({}, {__name = "my.type", __tostring = function() return "a\nb" end})
      assert.equal("<my.type: a\\nb>", P(named))
      local e = ato.err("timeout", "took too long")
      assert.equal("<ato.error: took too long>", P(e))
    end)

    it("survives a failing __tostring", function()
      local bad = setmetatable({}, trap_mt{__tostring = function() error("boom") end})
      assert.equal("<table: error in __tostring>", P(bad))
      local bad_type = setmetatable({}, {__tostring = function() return {} end})
      assert.equal("<table: error in __tostring>", P(bad_type))
      local named = setmetatable({}, {__name = "x.y", __tostring = function() error({}) end})
      assert.equal("{v = <x.y: error in __tostring>}", P({v = named}))
    end)
  end)

  describe("other types", function()
    it("shows tasks and other userdata by type", function()
      local task = ato.spawn(function() end)
      assert.equal("<" .. tostring(task) .. ">", P(task))
      assert.matches("^<ato%.task %d+ %(%a+%)>$", P(task))
      task:join()
      assert.matches("^<ato%.task %d+ %(done%)>$", P(task))
      assert.matches("^<FILE%*: file %(0x%x+%)>$", P(io.stdout))
      assert.equal("cjson.null", P(require("cjson").null))
    end)

    it("shows functions by where they are defined", function()
      assert.equal("function: builtin", P(print))
      local f = function() end
      local line = debug.getinfo(1, "l").currentline - 1
      assert.equal("function: " .. debug.getinfo(1, "S").short_src .. ":" .. line, P(f))
      assert.equal("function: chunk", P(load("return 1", "=chunk")))
      assert.equal("{f = function: builtin}", P({f = string.rep}))
    end)

    it("shows coroutines by status", function()
      local co = coroutine.create(function() coroutine.yield() end)
      assert.equal("thread: suspended", P(co))
      coroutine.resume(co)
      coroutine.resume(co)
      assert.equal("thread: dead", P(co))
      assert.equal("thread: running", P((coroutine.running())))
    end)
  end)

  describe("secrets", function()
    local value = {key = KEY, api_key = "hunter2", nested = {list = {KEY}, password = {"pw1", 4242}},
                   [KEY] = "as a key", note = "Authorization: Bearer " .. KEY}

    it("are redacted in values, keys and under secret-named keys", function()
      local text = P(value)
      assert.is_nil(text:find(KEY, 1, true))
      assert.is_nil(text:find(KEY:sub(12), 1, true))
      assert.is_nil(text:find("hunter2", 1, true))
      assert.is_nil(text:find("pw1", 1, true))
      assert.is_nil(text:find("4242", 1, true))
      local redacted_key = (redact.text(KEY))
      assert.is_nil(redacted_key:find(KEY, 1, true))
      assert.truthy(text:find('key = "' .. redacted_key .. '"', 1, true))
      assert.truthy(text:find('["' .. redacted_key .. '"] = "as a key"', 1, true))
      assert.truthy(text:find('api_key = "' .. redact.value("hunter2") .. '"', 1, true))
      assert.truthy(text:find(redact.fingerprint(KEY), 1, true))
      assert.truthy(text:find(redact.value("pw1"), 1, true))
      assert.truthy(text:find(redact.value("4242"), 1, true))
      assert.equal('"' .. redacted_key .. '"', P(KEY))
      assert.equal('"' .. redacted_key .. '"', pretty.values(1, KEY))
    end)

    it("are redacted before a string is cut", function()
      local text = P(("x"):rep(190) .. " " .. KEY)
      assert.is_nil(text:find(KEY:sub(1, 9), 1, true))
    end)

    it("are redacted in __tostring results and names", function()
      local obj = setmetatable({}, {__tostring = function() return "key " .. KEY end})
      assert.is_nil(P(obj):find(KEY, 1, true))
      local hidden = setmetatable({}, {__tostring = function() return "whatever" end})
      assert.is_nil(P({token = hidden}):find("whatever", 1, true))
      assert.is_nil(P(load("return 1", "=" .. KEY)):find(KEY, 1, true))
    end)

    it("show with redact = false", function()
      local text = P(value, {redact = false})
      assert.truthy(text:find('key = "' .. KEY .. '"', 1, true))
      assert.truthy(text:find('api_key = "hunter2"', 1, true))
      assert.truthy(text:find('["' .. KEY .. '"] = "as a key"', 1, true))
      assert.truthy(text:find('password = {"pw1", 4242}', 1, true))
    end)
  end)

  it("uses pretty.defaults when options are left out", function()
    local saved = pretty.defaults.width
    pretty.defaults.width = 5
    local ok, text = pcall(pretty.values, 1, {1, 2})
    pretty.defaults.width = saved
    assert.is_true(ok)
    assert.equal("{\n  1,\n  2,\n}", text)
  end)
end)
