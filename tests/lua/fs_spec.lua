-- ato.fs: files and directories through libuv's thread pool. Real files in
-- real temporary directories; facts are checked against coreutils (stat,
-- ln, mkfifo) run through io.popen, independent of the code under test.
local ato = require "ato"
local fs = require "ato.fs"
local support = require "support"

-- {====================================================== helpers

local function q(s)
  return "'" .. s:gsub("'", [['\'']]) .. "'"
end

-- Runs a shell command; returns its output without the final newline.
local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok, how, code = p:close()
  assert(ok, ("command failed (%s %s): %s\n%s"):format(how, code, cmd, out))
  return (out:gsub("\n$", ""))
end

-- Child ato processes may run in another directory.
local ato_bin = sh("realpath " .. q(support.ato_bin))

local function umask()
  return tonumber(sh("umask"), 8)
end

local function names(dir)
  local list = assert(fs.list(dir))
  local out = {}
  for i, e in ipairs(list) do out[i] = e.name end
  return out
end

-- Every `path type` the walk yields, relative to root, as one string each.
local function walk_all(root, opts)
  local out = {}
  for path, kind, err in fs.walk(root, opts) do
    if path ~= root then assert.are.equal(root .. "/", path:sub(1, #root + 1)) end
    out[#out + 1] = path:sub(#root + 2) .. " " .. kind
    if kind == "error" then out[#out] = out[#out] .. " " .. err.kind end
  end
  return out
end

-- Calls fn inside a table.sort comparator, where nothing can yield.
local function in_comparator(fn)
  local ok, err = pcall(table.sort, {2, 1}, function(a, b)
    fn()
    return a < b
  end)
  assert.is_false(ok)
  err = tostring(err)
  assert.matches("cannot wait here", err)
end

-- A real FIFO, made by mkfifo(1).
local function mkfifo(path)
  assert.is_true(assert(ato.exec{"mkfifo", path}).ok)
end

-- }======================================================

describe("ato.fs", function()
  support.clean_after_each()

  local dir  -- a fresh directory per test

  before_each(function()
    dir = sh("mktemp -d /tmp/ato-fs-test.XXXXXX")
  end)

  after_each(function()
    os.execute("rm -rf " .. q(dir))
  end)

  it("is reachable as require 'ato.fs' and as ato.fs", function()
    assert.are.equal(fs, ato.fs)
  end)

  describe("read and write", function()
    it("round-trips text", function()
      local p = dir .. "/a.txt"
      assert.is_true(fs.write(p, "hello, world\n"))
      assert.are.equal("hello, world\n", fs.read(p))
      assert.are.equal("hello, world\n", sh("cat " .. q(p)) .. "\n")
    end)

    it("round-trips binary data with NUL bytes", function()
      local bytes = {}
      for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
      local data = table.concat(bytes):rep(17) .. "\0\0end\0"
      local p = dir .. "/bin"
      assert.is_true(fs.write(p, data))
      local back = fs.read(p)
      assert.are.equal(#data, #back)
      assert.is_true(back == data)
      assert.are.equal(tostring(#data), sh("stat -c %s " .. q(p)))
    end)

    it("round-trips a 10 MB file", function()
      local chunk = {}
      for i = 1, 1000 do chunk[i] = string.format("%07d\n", i) end
      local data = table.concat(chunk):rep(1250)  -- 8,000 * 1,250 bytes
      assert.are.equal(10000000, #data)
      local p = dir .. "/big"
      assert.is_true(fs.write(p, data))
      assert.are.equal("10000000", sh("stat -c %s " .. q(p)))
      assert.is_true(fs.read(p) == data)
    end)

    it("writes and reads an empty file", function()
      local p = dir .. "/empty"
      assert.is_true(fs.write(p, ""))
      assert.are.equal("", fs.read(p))
      assert.are.equal("", fs.read(p, {max = 0}))
    end)

    it("replaces the whole content of an existing file", function()
      local p = dir .. "/f"
      assert.is_true(fs.write(p, string.rep("long old content ", 100)))
      assert.is_true(fs.write(p, "new"))
      assert.are.equal("new", fs.read(p))
    end)

    it("applies an explicit mode exactly, not masked by umask", function()
      local p = dir .. "/m"
      for _, case in ipairs{
        {"600", 384}, {"0640", 416}, {"0o755", 493}, {"0O700", 448},
        {384, 384}, {511, 511}, {"777", 511}, {"4755", 2541}, {0, 0},
      } do
        assert.is_true(fs.write(p, "x", case[1]))
        local st = assert(fs.stat(p))
        assert.are.equal(case[2], st.mode)
        assert.are.equal(string.format("%04o", case[2]), st.perms)
        assert.are.equal(string.format("%o", case[2]), sh("stat -c %a " .. q(p)))
      end
    end)

    it("keeps the existing file's mode when none is given", function()
      local p = dir .. "/keep"
      assert.is_true(fs.write(p, "one", "640"))
      assert.is_true(fs.write(p, "two"))
      assert.are.equal("640", sh("stat -c %a " .. q(p)))
      os.execute("chmod 604 " .. q(p))      -- changed behind our back
      assert.is_true(fs.write(p, "three"))
      assert.are.equal("604", sh("stat -c %a " .. q(p)))
      assert.are.equal("three", fs.read(p))
    end)

    it("creates a new file with 0666 & ~umask when no mode is given", function()
      local p = dir .. "/new"
      assert.is_true(fs.write(p, "x"))
      assert.are.equal(string.format("%o", 438 & ~umask()),
                       sh("stat -c %a " .. q(p)))
    end)

    it("leaves no temp file behind after success", function()
      for i = 1, 5 do assert.is_true(fs.write(dir .. "/t", "v" .. i)) end
      assert.is_true(fs.write(dir .. "/u", "x", "600"))
      assert.are.same({"t", "u"}, names(dir))
    end)

    it("works with a relative path (temp file in the current directory)", function()
      local old = sh("pwd")
      -- a child ato, so that the test runner's own cwd does not change
      local out = sh(("cd %s && %s -e %s"):format(q(dir), q(ato_bin), q[[
        local fs = require "ato.fs"
        assert(fs.write("rel.txt", "relative"))
        print(fs.read("rel.txt"))
      ]]))
      assert.are.equal("relative", out)
      assert.are.same({"rel.txt"}, names(dir))
      assert.are.equal(old, sh("pwd"))
    end)

    it("removes the temp file and keeps the old file when writing fails", function()
      local p = dir .. "/journal"
      assert.is_true(fs.write(p, "old content"))
      -- A child ato with a 1 KiB file size limit (SIGXFSZ ignored): writing
      -- 64 KiB into the temp file fails with EFBIG after it was created.
      local out = sh(("trap '' XFSZ; ulimit -f 2; %s -e %s %s"):format(
        q(ato_bin), q[[
          local fs = require "ato.fs"
          local ok, err = fs.write(arg[1], string.rep("x", 65536))
          print(ok, err.kind, err.code, err.path == arg[1], err.message)
        ]], q(p)))
      assert.matches("^nil\tio\tEFBIG\ttrue\twrite ", out)
      assert.are.equal("old content", fs.read(p))
      assert.are.same({"journal"}, names(dir))
    end)

    it("fails with not_found when the directory is missing", function()
      local p = dir .. "/missing/f.txt"
      local ok, err = fs.write(p, "x")
      assert.is_nil(ok)
      assert.are.equal("not_found", err.kind)
      assert.are.equal("ENOENT", err.code)
      assert.are.equal(p, err.path)
      assert.are.equal("open " .. p .. ": no such file or directory", err.message)
      assert.are.equal(err.message, tostring(err))
      assert.are.same({}, names(dir))
    end)

    it("fails with is_directory when the target is a directory", function()
      local _, err = fs.write(dir, "x")
      assert.are.equal("is_directory", err.kind)
      _, err = fs.write(dir .. "/nothing/", "x")
      assert.are.equal("is_directory", err.kind)
      assert.are.same({}, names(dir))
    end)

    it("refuses to replace a FIFO, a device or a link to one", function()
      local fifo, tofifo, tonull = dir .. "/fifo", dir .. "/tofifo", dir .. "/tonull"
      mkfifo(fifo)
      sh(("ln -s fifo %s && ln -s /dev/null %s"):format(q(tofifo), q(tonull)))
      for _, p in ipairs{fifo, tofifo, tonull} do
        local ok, err = fs.write(p, "x")
        assert.is_nil(ok)
        assert.are.equal("invalid", err.kind)
        assert.are.equal(p, err.path)
        assert.are.equal("write " .. p .. ": not a regular file (fs.append "
                         .. "writes to devices and FIFOs)", err.message)
      end
      assert.are.equal("fifo", fs.lstat(fifo).type)
      assert.are.equal("link", fs.lstat(tofifo).type)
      assert.are.equal("link", fs.lstat(tonull).type)
      assert.are.equal("char", fs.stat(tonull).type)
      assert.are.same({"fifo", "tofifo", "tonull"}, names(dir))
    end)

    it("writes a name of 250 bytes, as append does", function()
      local p = dir .. "/" .. ("n"):rep(250)
      assert.is_true(fs.write(p, "long"))
      assert.is_true(fs.write(p, "longer", "600"))
      assert.are.equal("longer", fs.read(p))
      assert.is_true(fs.append(p, "!"))
      assert.are.equal("longer!", fs.read(p))
      assert.are.same({("n"):rep(250)}, names(dir))
    end)

    it("replaces a symlink at the path instead of writing through it", function()
      assert.is_true(fs.write(dir .. "/target", "target", "640"))
      sh(("ln -s target %s"):format(q(dir .. "/link")))
      assert.is_true(fs.write(dir .. "/link", "mine"))
      assert.are.equal("file", fs.lstat(dir .. "/link").type)
      assert.are.equal("640", sh("stat -c %a " .. q(dir .. "/link")))
      assert.are.equal("target", fs.read(dir .. "/target"))
    end)

    it("reports a missing file as not_found", function()
      local p = dir .. "/nope"
      local s, err = fs.read(p)
      assert.is_nil(s)
      assert.are.equal("not_found", err.kind)
      assert.are.equal("ENOENT", err.code)
      assert.are.equal(p, err.path)
      assert.are.equal("open " .. p .. ": no such file or directory", err.message)
    end)

    it("reports reading a directory as is_directory", function()
      local s, err = fs.read(dir)
      assert.is_nil(s)
      assert.are.equal("is_directory", err.kind)
      assert.are.equal("EISDIR", err.code)
      assert.are.equal(dir, err.path)
    end)

    it("reports not_directory for a path through a file", function()
      assert.is_true(fs.write(dir .. "/f", "x"))
      local _, err = fs.read(dir .. "/f/g")
      assert.are.equal("not_directory", err.kind)
    end)

    it("enforces max with too_large", function()
      local p = dir .. "/ten"
      assert.is_true(fs.write(p, "0123456789"))
      assert.are.equal("0123456789", fs.read(p, {max = 10}))
      local s, err = fs.read(p, {max = 9})
      assert.is_nil(s)
      assert.are.equal("too_large", err.kind)
      assert.are.equal(p, err.path)
      assert.are.equal(9, err.limit)
      assert.matches("limit of 9 bytes", err.message, 1, true)
      _, err = fs.read(p, {max = 0})
      assert.are.equal("too_large", err.kind)
    end)

    it("enforces max on files whose size stat does not know", function()
      local status = fs.read("/proc/self/status")
      assert.matches("Name:", status, 1, true)
      local _, err = fs.read("/proc/self/status", {max = 10})
      assert.are.equal("too_large", err.kind)
      assert.matches("Name:", fs.read("/proc/self/status", {max = 1 << 20}), 1, true)
    end)
  end)

  describe("append", function()
    it("creates the file and appends without truncating", function()
      local p = dir .. "/log"
      assert.is_true(fs.append(p, "one\n"))
      assert.is_true(fs.append(p, "two\0\n"))
      assert.is_true(fs.append(p, ""))
      assert.are.equal("one\ntwo\0\n", fs.read(p))
      assert.are.equal(string.format("%o", 438 & ~umask()),
                       sh("stat -c %a " .. q(p)))
    end)

    it("keeps the records of concurrent appenders whole", function()
      local p = dir .. "/journal"
      local tasks = {}
      for i = 1, 8 do
        tasks[i] = ato.spawn(function()
          for j = 1, 25 do
            local rec = ("task %d record %02d %s\n"):format(i, j, ("x"):rep(200))
            assert(fs.append(p, rec))
          end
        end)
      end
      for _, t in ipairs(tasks) do assert.is_nil(select(2, t:join())) end
      local seen, n = {}, 0
      for line in fs.read(p):gmatch("[^\n]+") do
        assert.matches("^task %d record %d%d x+$", line)
        assert.are.equal(200, #line:match("x+$"))
        assert.is_nil(seen[line])
        seen[line], n = true, n + 1
      end
      assert.are.equal(200, n)
    end)

    it("fails with not_found when the directory is missing", function()
      local _, err = fs.append(dir .. "/no/log", "x")
      assert.are.equal("not_found", err.kind)
      assert.are.equal(dir .. "/no/log", err.path)
    end)

    it("fails with is_directory on a directory", function()
      local _, err = fs.append(dir, "x")
      assert.are.equal("is_directory", err.kind)
    end)
  end)

  describe("stat and lstat", function()
    local FORMAT = "%F|%s|%a|%u|%g|%i|%d|%h|%.9Y|%.9X|%.9Z"

    local function check_against_coreutils(p, st, lstat)
      local cmd = ("stat %s -c %s %s"):format(lstat and "" or "-L", q(FORMAT), q(p))
      local f = {}
      for field in (sh(cmd) .. "|"):gmatch("([^|]*)|") do f[#f + 1] = field end
      local types = {["regular file"] = "file", ["regular empty file"] = "file",
                     directory = "directory", ["symbolic link"] = "link",
                     fifo = "fifo", socket = "socket",
                     ["character special file"] = "char",
                     ["block special file"] = "block"}
      assert.are.equal(types[f[1]], st.type)
      assert.are.equal(tonumber(f[2]), st.size)
      assert.are.equal(tonumber(f[3], 8), st.mode)
      assert.are.equal(string.format("%04o", tonumber(f[3], 8)), st.perms)
      assert.are.equal(tonumber(f[4]), st.uid)
      assert.are.equal(tonumber(f[5]), st.gid)
      assert.are.equal(tonumber(f[6]), st.ino)
      assert.are.equal(tonumber(f[7]), st.dev)
      assert.are.equal(tonumber(f[8]), st.nlink)
      assert.is_true(math.abs(tonumber(f[9]) - st.mtime) < 1e-5)
      assert.is_true(math.abs(tonumber(f[10]) - st.atime) < 1e-5)
      assert.is_true(math.abs(tonumber(f[11]) - st.ctime) < 1e-5)
      assert.are.equal("float", math.type(st.mtime))
    end

    it("reports every field as stat(1) does", function()
      local p = dir .. "/f"
      assert.is_true(fs.write(p, "12345", "0640"))
      sh("touch -d '2001-02-03 04:05:06.789' " .. q(p))
      sh("ln " .. q(p) .. " " .. q(dir .. "/hard"))
      local st = assert(fs.stat(p))
      check_against_coreutils(p, st)
      assert.are.equal(5, st.size)
      assert.are.equal(2, st.nlink)
      assert.are.equal("0640", st.perms)
      check_against_coreutils(dir, assert(fs.stat(dir)))
      check_against_coreutils("/dev/null", assert(fs.stat("/dev/null")))
    end)

    it("tells every kind of file apart", function()
      sh(("mkfifo %s && ln -s f %s && ln -s nowhere %s"):format(
        q(dir .. "/fifo"), q(dir .. "/link"), q(dir .. "/dangling")))
      assert.is_true(fs.write(dir .. "/f", "x"))
      assert.are.equal("fifo", fs.stat(dir .. "/fifo").type)
      assert.are.equal("char", fs.stat("/dev/null").type)
      assert.are.equal("directory", fs.stat(dir).type)
      assert.are.equal("file", fs.stat(dir .. "/link").type)
      local lst = assert(fs.lstat(dir .. "/link"))
      assert.are.equal("link", lst.type)
      assert.are.equal(1, lst.size)          -- the length of "f"
      check_against_coreutils(dir .. "/link", lst, true)
      assert.are.equal("link", fs.lstat(dir .. "/dangling").type)
      local st, err = fs.stat(dir .. "/dangling")
      assert.is_nil(st)
      assert.are.equal("not_found", err.kind)
    end)

    it("reports a missing path as not_found", function()
      local p = dir .. "/nope"
      local st, err = fs.stat(p)
      assert.is_nil(st)
      assert.are.equal("not_found", err.kind)
      assert.are.equal("stat " .. p .. ": no such file or directory", err.message)
      st, err = fs.lstat(p)
      assert.is_nil(st)
      assert.are.equal("lstat " .. p .. ": no such file or directory", err.message)
    end)
  end)

  describe("exists", function()
    it("is true for files and directories, false for anything missing", function()
      assert.is_true(fs.write(dir .. "/f", "x"))
      sh(("ln -s nowhere %s"):format(q(dir .. "/dangling")))
      assert.is_true(fs.exists(dir .. "/f"))
      assert.is_true(fs.exists(dir))
      assert.is_false(fs.exists(dir .. "/nope"))
      assert.is_false(fs.exists(dir .. "/f/below"))
      assert.is_false(fs.exists(dir .. "/dangling"))  -- follows links
      assert.is_false(fs.exists(""))
    end)
  end)

  describe("list", function()
    it("lists entries sorted bytewise with their types, without . and ..", function()
      for _, n in ipairs{"b", "a", "B", "_x", "a.txt", "Z", "a b", "\xc3\xa9"} do
        assert.is_true(fs.write(dir .. "/" .. n, n))
      end
      assert.is_true(fs.mkdir(dir .. "/sub"))
      sh(("ln -s sub %s && mkfifo %s"):format(q(dir .. "/ln"), q(dir .. "/pipe")))
      local list = assert(fs.list(dir))
      local got = {}
      for i, e in ipairs(list) do got[i] = e.name .. ":" .. e.type end
      assert.are.same({"B:file", "Z:file", "_x:file", "a:file", "a b:file",
                       "a.txt:file", "b:file", "ln:link", "pipe:fifo",
                       "sub:directory", "\xc3\xa9:file"}, got)
    end)

    it("lists an empty directory as an empty table", function()
      assert.are.same({}, fs.list(dir))
    end)

    it("fails with not_found or not_directory", function()
      local l, err = fs.list(dir .. "/nope")
      assert.is_nil(l)
      assert.are.equal("not_found", err.kind)
      assert.are.equal(dir .. "/nope", err.path)
      assert.is_true(fs.write(dir .. "/f", "x"))
      l, err = fs.list(dir .. "/f")
      assert.is_nil(l)
      assert.are.equal("not_directory", err.kind)
    end)
  end)

  describe("walk", function()
    -- root/{a/{deep/y.txt, x.txt}, b.txt, empty/, link -> a, z.txt}
    local function build_tree(root)
      assert.is_true(fs.mkdir(root .. "/a/deep", {parents = true}))
      assert.is_true(fs.mkdir(root .. "/empty"))
      assert.is_true(fs.write(root .. "/a/x.txt", "x"))
      assert.is_true(fs.write(root .. "/a/deep/y.txt", "y"))
      assert.is_true(fs.write(root .. "/b.txt", "b"))
      assert.is_true(fs.write(root .. "/z.txt", "z"))
      sh(("ln -s a %s"):format(q(root .. "/link")))
    end

    it("walks depth-first in name order, without entering symlinks", function()
      build_tree(dir)
      assert.are.same({
        "a directory", "a/deep directory", "a/deep/y.txt file",
        "a/x.txt file", "b.txt file", "empty directory", "link link",
        "z.txt file",
      }, walk_all(dir))
    end)

    it("enters symlinked directories with follow_links", function()
      build_tree(dir)
      assert.are.same({
        "a directory", "a/deep directory", "a/deep/y.txt file",
        "a/x.txt file", "b.txt file", "empty directory",
        "link directory", "link/deep directory", "link/deep/y.txt file",
        "link/x.txt file", "z.txt file",
      }, walk_all(dir, {follow_links = true}))
    end)

    it("does not loop on a symlink cycle with follow_links", function()
      assert.is_true(fs.mkdir(dir .. "/a"))
      assert.is_true(fs.write(dir .. "/a/f", "f"))
      sh(("ln -s .. %s && ln -s nowhere %s"):format(q(dir .. "/a/up"),
                                                   q(dir .. "/a/zz")))
      assert.are.same({"a directory", "a/f file", "a/up link", "a/zz link"},
                      walk_all(dir, {follow_links = true}))
    end)

    it("stops at max_depth", function()
      build_tree(dir)
      assert.are.same({"a directory", "b.txt file", "empty directory",
                       "link link", "z.txt file"},
                      walk_all(dir, {max_depth = 1}))
      assert.are.same({"a directory", "a/deep directory", "a/x.txt file",
                       "b.txt file", "empty directory", "link link",
                       "z.txt file"},
                      walk_all(dir, {max_depth = 2}))
      assert.are.same({}, walk_all(dir, {max_depth = 0}))
    end)

    it("joins paths under a root given with a trailing slash", function()
      assert.is_true(fs.write(dir .. "/f", "x"))
      local got = {}
      for path in fs.walk(dir .. "/") do got[#got + 1] = path end
      assert.are.same({dir .. "/f"}, got)
    end)

    it("walks 1,000 files in order", function()
      sh(("cd %s && mkdir sub && seq -f 'f%%04g' 1 1000 | xargs touch && "
          .. "seq -f 'sub/g%%04g' 1 1000 | xargs touch"):format(q(dir)))
      local got = walk_all(dir)
      assert.are.equal(2001, #got)
      for i = 1, 1000 do
        assert.are.equal(string.format("f%04d file", i), got[i])
        assert.are.equal(string.format("sub/g%04d file", i), got[1001 + i])
      end
      assert.are.equal("sub directory", got[1001])
    end)

    it("reports a missing root as one error and ends", function()
      local got, errs = {}, {}
      for path, kind, err in fs.walk(dir .. "/nope") do
        got[#got + 1] = path .. " " .. kind
        errs[#errs + 1] = err
      end
      assert.are.same({dir .. "/nope error"}, got)
      assert.are.equal("not_found", errs[1].kind)
      assert.are.equal(dir .. "/nope", errs[1].path)
    end)

    it("reports a root that is a file as an error", function()
      assert.is_true(fs.write(dir .. "/f", "x"))
      assert.are.same({" error not_directory"}, walk_all(dir .. "/f"))
    end)

    it("yields an error for a directory it cannot list and goes on", function()
      build_tree(dir)
      local got = {}
      for path, kind, err in fs.walk(dir) do
        local rel = path:sub(#dir + 2)
        got[#got + 1] = rel .. " " .. kind .. (err and " " .. err.kind or "")
        -- gone between being found and being listed
        if rel == "a" and kind == "directory" then
          assert(fs.remove(path, {recursive = true}))
        end
      end
      assert.are.same({"a directory", "a error not_found", "b.txt file",
                       "empty directory", "link link", "z.txt file"}, got)
    end)

    it("does not follow a directory replaced by a symlink after listing", function()
      assert.is_true(fs.mkdir(dir .. "/d"))
      assert.is_true(fs.mkdir(dir .. "/elsewhere"))
      assert.is_true(fs.write(dir .. "/elsewhere/secret", "x"))
      local got = {}
      for path, kind, err in fs.walk(dir) do
        local rel = path:sub(#dir + 2)
        got[#got + 1] = rel .. " " .. kind .. (err and " " .. err.code or "")
        if rel == "d" and kind == "directory" then
          sh(("rmdir %s && ln -s elsewhere %s"):format(q(path), q(path)))
        end
      end
      assert.are.same({"d directory", "d error ENOTDIR", "elsewhere directory",
                       "elsewhere/secret file"}, got)
    end)

    it("can stop early (break) and be abandoned", function()
      build_tree(dir)
      for _ = 1, 3 do
        for _, kind in fs.walk(dir) do
          if kind == "directory" then break end
        end
      end
      local iter, state = fs.walk(dir)
      assert.are.equal(dir .. "/a", iter(state))
      iter, state = nil, nil  -- collected with one level open
      collectgarbage()
    end)

    it("refuses a step while another task waits in the same walk", function()
      build_tree(dir)
      local iter, state = fs.walk(dir)
      local t = ato.spawn(iter, state)
      ato.yield()                             -- t parks listing the root
      assert.are.equal("waiting", t:status())
      local ok, err = pcall(iter, state)
      assert.is_false(ok)
      assert.matches("already waiting in another task", err)
      assert.are.same({dir .. "/a", "directory"}, {t:join()})
      assert.are.equal(dir .. "/a/deep", iter(state))
    end)

    it("fails a step waiting in one task when another closes the walk", function()
      build_tree(dir)
      local iter, state = fs.walk(dir)
      local a = ato.spawn(iter, state)
      ato.yield()                             -- a parks listing the root
      assert.are.equal("waiting", a:status())
      local b = ato.spawn(function()          -- as a `for` loop that breaks
        local _ <close> = state
      end)
      b:join()
      local path, err = a:join(5)             -- not stranded
      if a:status() == "waiting" then a:cancel() end
      assert.is_nil(path)
      assert.matches("the walk was closed while this task waited", tostring(err))
      assert.are.equal("failed", a:status())
      assert.is_nil(iter(state))              -- and stays closed
    end)

    it("works inside a coroutine.wrap generator", function()
      build_tree(dir)
      local gen = coroutine.wrap(function()
        for path, kind in fs.walk(dir) do coroutine.yield(path, kind) end
      end)
      local n = 0
      while gen() do n = n + 1 end
      assert.are.equal(8, n)
    end)
  end)

  describe("mkdir", function()
    it("creates a directory, fails if it exists", function()
      local p = dir .. "/d"
      assert.is_true(fs.mkdir(p))
      assert.are.equal("directory", fs.stat(p).type)
      assert.are.equal(string.format("%o", 511 & ~umask()), sh("stat -c %a " .. q(p)))
      local ok, err = fs.mkdir(p)
      assert.is_nil(ok)
      assert.are.equal("exists", err.kind)
      assert.are.equal("EEXIST", err.code)
    end)

    it("fails with not_found when the parent is missing", function()
      local _, err = fs.mkdir(dir .. "/x/y")
      assert.are.equal("not_found", err.kind)
      assert.is_false(fs.exists(dir .. "/x"))
    end)

    it("creates parents, and an existing directory is fine with parents", function()
      local p = dir .. "/a/b//c/d/"
      assert.is_true(fs.mkdir(p, {parents = true}))
      assert.are.equal("directory", fs.stat(dir .. "/a/b/c/d").type)
      assert.is_true(fs.mkdir(p, {parents = true}))
      assert.is_true(fs.mkdir(dir, {parents = true}))
      assert.is_true(fs.mkdir(dir .. "/rel", nil, {parents = true}))
    end)

    it("applies an explicit mode exactly", function()
      assert.is_true(fs.mkdir(dir .. "/m", "0777"))
      assert.are.equal("777", sh("stat -c %a " .. q(dir .. "/m")))
      assert.is_true(fs.mkdir(dir .. "/p/q", 448, {parents = true}))
      assert.are.equal("700", sh("stat -c %a " .. q(dir .. "/p/q")))
      -- modes the owner could not open the directory with
      assert.is_true(fs.mkdir(dir .. "/none", 0))
      assert.are.equal("0", sh("stat -c %a " .. q(dir .. "/none")))
      assert.is_true(fs.mkdir(dir .. "/wx", "0300"))
      assert.are.equal("300", sh("stat -c %a " .. q(dir .. "/wx")))
    end)

    it("fails when a component is a file", function()
      assert.is_true(fs.write(dir .. "/f", "x"))
      local _, err = fs.mkdir(dir .. "/f/g/h", {parents = true})
      assert.are.equal("not_directory", err.kind)
      _, err = fs.mkdir(dir .. "/f", {parents = true})
      assert.are.equal("exists", err.kind)
    end)
  end)

  describe("remove", function()
    it("removes a file, a symlink and an empty directory", function()
      assert.is_true(fs.write(dir .. "/f", "x"))
      assert.is_true(fs.mkdir(dir .. "/d"))
      sh(("ln -s d %s"):format(q(dir .. "/l")))
      assert.is_true(fs.remove(dir .. "/l"))
      assert.are.equal("directory", fs.stat(dir .. "/d").type)
      assert.is_true(fs.remove(dir .. "/f"))
      assert.is_true(fs.remove(dir .. "/d"))
      assert.are.same({}, names(dir))
    end)

    it("refuses a non-empty directory without recursive", function()
      assert.is_true(fs.mkdir(dir .. "/d"))
      assert.is_true(fs.write(dir .. "/d/f", "x"))
      local ok, err = fs.remove(dir .. "/d")
      assert.is_nil(ok)
      assert.are.equal("ENOTEMPTY", err.code)
      assert.is_true(fs.exists(dir .. "/d/f"))
    end)

    it("removes a whole tree with recursive, never following symlinks", function()
      assert.is_true(fs.mkdir(dir .. "/keep"))
      assert.is_true(fs.write(dir .. "/keep/precious", "x"))
      assert.is_true(fs.mkdir(dir .. "/t/a/b/c", {parents = true}))
      for i = 1, 50 do assert.is_true(fs.append(dir .. "/t/a/f" .. i, "x")) end
      assert.is_true(fs.write(dir .. "/t/a/b/c/deep", "x"))
      sh(("ln -s ../keep %s && ln -s ../../keep/precious %s && mkfifo %s"):format(
        q(dir .. "/t/dirlink"), q(dir .. "/t/a/filelink"), q(dir .. "/t/a/b/fifo")))
      assert.is_true(fs.remove(dir .. "/t", {recursive = true}))
      assert.are.same({"keep"}, names(dir))
      assert.are.equal("x", fs.read(dir .. "/keep/precious"))
      -- a file and a symlink to a directory go with recursive too
      sh(("ln -s keep %s"):format(q(dir .. "/lk")))
      assert.is_true(fs.remove(dir .. "/lk", {recursive = true}))
      assert.is_true(fs.remove(dir .. "/keep/precious", {recursive = true}))
      assert.are.same({"keep"}, names(dir))
      assert.are.same({}, names(dir .. "/keep"))
    end)

    it("does not follow a symlink named with a trailing slash", function()
      assert.is_true(fs.mkdir(dir .. "/keep"))
      assert.is_true(fs.write(dir .. "/keep/precious", "x"))
      assert.is_true(fs.write(dir .. "/f", "x"))
      sh(("ln -s keep %s"):format(q(dir .. "/lk")))
      for _, recursive in ipairs{true, false} do
        for _, name in ipairs{"lk/", "lk//", "f/"} do
          local ok, err = fs.remove(dir .. "/" .. name, {recursive = recursive})
          assert.is_nil(ok)
          assert.are.equal("not_directory", err.kind)
        end
      end
      assert.are.equal("x", fs.read(dir .. "/keep/precious"))
      assert.are.equal("link", fs.lstat(dir .. "/lk").type)
      -- a real directory may have one
      assert.is_true(fs.mkdir(dir .. "/d/e", {parents = true}))
      assert.is_true(fs.remove(dir .. "/d/e/"))
      assert.is_true(fs.remove(dir .. "/d//", {recursive = true}))
      assert.are.same({"f", "keep", "lk"}, names(dir))
    end)

    it("refuses the root directory and a last component . or ..", function()
      assert.is_true(fs.mkdir(dir .. "/sub/inner", {parents = true}))
      assert.is_true(fs.write(dir .. "/sub/f", "x"))
      local function refused(p, recursive, what)
        local ok, err = fs.remove(p, {recursive = recursive})
        assert.is_nil(ok, p)
        assert.are.equal("invalid", err.kind)
        assert.are.equal(p, err.path)
        assert.are.equal(("remove %s: refusing to remove %s"):format(p, what),
                         err.message)
      end
      for _, recursive in ipairs{true, false} do
        for _, name in ipairs{"/sub/.", "/sub/./", "/sub/..", "/sub/inner/..//",
                              "/sub/inner/../."} do
          refused(dir .. name, recursive, "a path ending in . or ..")
        end
      end
      -- the root: rm -r / and its spellings (only without recursive for
      -- those a build without the check would take for a directory)
      refused("/", true, "the root directory")
      refused("//", true, "the root directory")
      for _, p in ipairs{"/", "//", "///"} do refused(p, false, "the root directory") end
      for _, p in ipairs{"/.", "/./", "/..", "/../", ".", "..", "./"} do
        refused(p, false, "a path ending in . or ..")
      end
      assert.are.same({"f", "inner"}, names(dir .. "/sub"))
      -- "." or ".." elsewhere in the path is fine
      assert.is_true(fs.remove(dir .. "/sub/./inner/../f"))
      assert.is_true(fs.remove(dir .. "/./sub/", {recursive = true}))
      assert.are.same({}, names(dir))
    end)

    it("reports a missing path as not_found", function()
      local ok, err = fs.remove(dir .. "/nope")
      assert.is_nil(ok)
      assert.are.equal("not_found", err.kind)
      assert.are.equal("remove " .. dir .. "/nope: no such file or directory",
                       err.message)
      _, err = fs.remove(dir .. "/nope", {recursive = true})
      assert.are.equal("not_found", err.kind)
    end)
  end)

  describe("rename", function()
    it("renames files and directories, replacing a file target", function()
      assert.is_true(fs.write(dir .. "/a", "A"))
      assert.is_true(fs.write(dir .. "/b", "B"))
      assert.is_true(fs.rename(dir .. "/a", dir .. "/b"))
      assert.are.same({"b"}, names(dir))
      assert.are.equal("A", fs.read(dir .. "/b"))
      assert.is_true(fs.mkdir(dir .. "/d"))
      assert.is_true(fs.rename(dir .. "/d", dir .. "/e"))
      assert.is_true(fs.rename(dir .. "/b", dir .. "/e/b"))
      assert.are.same({"e"}, names(dir))
      assert.are.same({"b"}, names(dir .. "/e"))
    end)

    it("reports both paths when it fails", function()
      local from, to = dir .. "/nope", dir .. "/x"
      local ok, err = fs.rename(from, to)
      assert.is_nil(ok)
      assert.are.equal("not_found", err.kind)
      assert.are.equal("ENOENT", err.code)
      assert.are.equal(from, err.path)
      assert.are.equal(to, err.to)
      assert.are.equal(("rename %s -> %s: no such file or directory"):format(from, to),
                       err.message)
    end)
  end)

  describe("misuse", function()
    it("raises on bad arguments", function()
      local p = dir .. "/f"
      local function raises(pattern, fn, ...)
        local ok, err = pcall(fn, ...)
        assert.is_false(ok)
        assert.matches(pattern, tostring(err))
      end
      raises("bad argument #1 to 'ato.fs.read'", fs.read)
      raises("bad argument #1", fs.read, {})
      raises("NUL byte", fs.read, "a\0b")
      raises("NUL byte", fs.rename, p, "x\0")
      raises("'max' must be an integer >= 0", fs.read, p, {max = -1})
      raises("'max' must be an integer >= 0", fs.read, p, {max = "x"})
      raises("'max' must be an integer >= 0 %(got string%)", fs.read, p, {max = "10"})
      raises("'max' must be an integer >= 0", fs.read, p, {max = 1.5})
      raises("bad argument #2", fs.read, p, 5)
      raises("bad argument #2 to 'ato.fs.write'", fs.write, p)
      raises("octal digits", fs.write, p, "x", "9")
      raises("octal digits", fs.write, p, "x", "rw-")
      raises("no octal digits", fs.write, p, "x", "0o")
      raises("out of range", fs.write, p, "x", 4096)
      raises("out of range", fs.write, p, "x", "17777")
      raises("out of range", fs.write, p, "x", -1)
      raises("integer or octal string", fs.write, p, "x", true)
      raises("number has no integer representation", fs.write, p, "x", 1.5)
      raises("bad argument #2 to 'ato.fs.append'", fs.append, p)
      raises("'parents' must be a boolean", fs.mkdir, p, {parents = "yes"})
      raises("octal digits", fs.mkdir, p, "abc")
      raises("'recursive' must be a boolean", fs.remove, p, {recursive = 1})
      raises("'max_depth' must be an integer >= 0", fs.walk, p, {max_depth = -1})
      raises("'max_depth' must be an integer >= 0", fs.walk, p, {max_depth = "2"})
      raises("'follow_links' must be a boolean", fs.walk, p, {follow_links = 1})
      raises("bad argument #2 to 'ato.fs.rename'", fs.rename, p)
      assert.are.same({}, names(dir))
    end)

    it("raises where it cannot wait", function()
      local p = dir .. "/f"
      assert.is_true(fs.write(p, "x"))
      in_comparator(function() fs.read(p) end)
      in_comparator(function() fs.write(p, "y") end)
      in_comparator(function() fs.append(p, "y") end)
      in_comparator(function() fs.stat(p) end)
      in_comparator(function() fs.lstat(p) end)
      in_comparator(function() fs.exists(p) end)
      in_comparator(function() fs.list(dir) end)
      in_comparator(function() fs.walk(dir) end)
      in_comparator(function() fs.mkdir(dir .. "/d") end)
      in_comparator(function() fs.remove(p) end)
      in_comparator(function() fs.rename(p, dir .. "/g") end)
      local iter, state = fs.walk(dir)
      in_comparator(function() iter(state) end)
      assert.are.equal(dir .. "/f", iter(state))  -- still usable afterwards
      assert.is_nil(iter(state))
      assert.are.equal("x", fs.read(p))
      assert.are.same({"f"}, names(dir))
    end)
  end)

  describe("tasks", function()
    it("run fs work concurrently and correctly", function()
      local tasks = {}
      for i = 1, 12 do
        tasks[i] = ato.spawn(function()
          local sub = dir .. "/t" .. i
          assert(fs.mkdir(sub .. "/x/y", {parents = true}))
          local data = ("%d:"):format(i):rep(10000 * i)
          assert(fs.write(sub .. "/x/y/data", data, "600"))
          assert(fs.append(sub .. "/log", "start\n"))
          assert(fs.read(sub .. "/x/y/data") == data)
          assert(fs.rename(sub .. "/x/y/data", sub .. "/data"))
          local st = assert(fs.stat(sub .. "/data"))
          assert(st.size == #data and st.perms == "0600")
          local n = 0
          for _ in fs.walk(sub) do n = n + 1 end
          assert(fs.remove(sub .. "/x", {recursive = true}))
          return n, #assert(fs.list(sub)), fs.exists(sub .. "/x")
        end)
      end
      for i, t in ipairs(tasks) do
        local walked, listed, x = t:join()
        assert.are.equal(4, walked, "task " .. i)  -- data, log, x, x/y
        assert.are.equal(2, listed)
        assert.is_false(x)
      end
      assert.are.equal(12, #names(dir))
    end)

    it("cancelling a task blocked in fs.read returns cancelled at once", function()
      -- A FIFO without a writer: the read blocks in open() until one comes,
      -- so the task ends only if cancel does not wait for the native call.
      local fifo = dir .. "/fifo"
      mkfifo(fifo)
      finally(function()  -- a writer frees the pool thread (or times out)
        ato.exec{"sh", "-c", ": > " .. q(fifo), timeout = 2}
      end)
      local t = ato.spawn(fs.read, fifo)
      ato.yield()
      assert.are.equal("waiting", t:status())
      assert.is_true(t:cancel())
      local s, err = t:join(5)
      assert.is_nil(s)
      assert.are.equal("cancelled", err.kind)
      assert.are.equal("cancelled", t:status())
    end)

    it("cancelled reads do not disturb a new one", function()
      local p = dir .. "/huge"
      assert.is_true(fs.write(p, ("0123456789abcdef"):rep(4 << 20)))  -- 64 MiB
      for _ = 1, 3 do
        local t = ato.spawn(fs.read, p)
        ato.yield()                           -- t starts and parks in fs.read
        assert.are.equal("waiting", t:status())
        assert.is_true(t:cancel())
        local s, err = t:join()
        assert.is_nil(s)
        assert.are.equal("cancelled", err.kind)
        assert.are.equal("cancelled", t:status())
      end
      -- the background reads do not disturb a new one
      assert.are.equal(64 << 20, #fs.read(p))
    end)

    it("a cancelled task unwinds from fs.read through __close", function()
      local p = dir .. "/huge"
      assert.is_true(fs.write(p, ("x"):rep(32 << 20)))
      local closed = false
      local t = ato.spawn(function()
        local _ <close> = setmetatable({}, {__close = function() closed = true end})
        fs.read(p)
        error("not reached")
      end)
      ato.yield()
      t:cancel()
      local _, err = t:join()
      assert.are.equal("cancelled", err.kind)
      assert.is_true(closed)
    end)

    it("a cancelled walk frees its state", function()
      sh(("cd %s && seq -f 'f%%04g' 1 200 | xargs mkdir"):format(q(dir)))
      local t = ato.spawn(function()
        local n = 0
        for _ in fs.walk(dir) do n = n + 1 end
        return n
      end)
      ato.yield()
      t:cancel()
      local _, err = t:join()
      assert.are.equal("cancelled", err.kind)
    end)

    it("a write cancelled at once leaves the old file and no temp", function()
      -- In a child ato: its exit waits for the thread pool, so afterwards
      -- the cancelled work item has certainly finished. 128 MiB take far
      -- longer to write than the cancel takes to come: the write must stop
      -- between chunks (or never start) and remove its temp file.
      local p = dir .. "/target"
      local out = sh(("%s -e %s %s"):format(q(ato_bin), q[[
        local ato = require "ato"
        local fs = ato.fs
        assert(fs.write(arg[1], "old"))
        local t = ato.spawn(fs.write, arg[1], ("x"):rep(128 << 20))
        ato.yield()
        assert(t:status() == "waiting")
        t:cancel()
        local ok, err = t:join()
        print(ok, err.kind)
      ]], q(p)))
      assert.are.equal("nil\tcancelled", out)
      assert.are.same({"target"}, names(dir))
      assert.are.equal("old", fs.read(p))
    end)
  end)
end)
