-- ato.repl: `ato repl` (and bare `ato` on a terminal), the incident
-- console. The loop keeps running while the operator types: lines are read
-- through libedit's callback interface (ato.edit), and each chunk runs as a
-- task of its own, so `http.get(...)`, `ato.sleep(5)` or a scan just wait
-- for their result while timers, background tasks and servers go on.
--
--   - expressions print their values (`1+1` prints 2: `return <line>` is
--     tried first, as lua5.4 does); an incomplete chunk continues on the
--     next line (prompt ">> "); errors print their message and a short
--     traceback, and the console stays
--   - Ctrl-C while a line runs cancels its task (its __close handlers run);
--     Ctrl-C at the prompt drops the line; Ctrl-D or .exit leaves (asking
--     what to do with background tasks that still run)
--   - values print through ato.repl.pretty: sorted, indented, cycles as
--     references, long things cut, secrets redacted
--   - print() and log lines from background tasks appear above the prompt
--   - Tab completes globals, fields and methods, and module names in
--     require "ato.<Tab>"
--   - history in $XDG_STATE_HOME/ato/history (0600), shared by sessions;
--     a line holding a secret is not written to it
--   - .help .load FILE .tasks .cancel N .time .exit
--
-- Without a terminal on stdin, `ato repl` reads chunks from stdin without
-- prompts and evaluates each complete one (`echo 'print(1)' | ato repl`).
local ato = require "ato"
local redact = require "ato.redact"

-- Loaded on first use, after the first prompt is up (start-up time).
local pretty_mod
local function pretty()
  pretty_mod = pretty_mod or require "ato.repl.pretty"
  return pretty_mod
end

local M = {}

-- {====================================================== the environment

-- Modules an operator reaches for, as globals loaded on first use.
local LAZY = {
  ato = "ato", http = "ato.http", scan = "ato.scan", store = "ato.store", sched = "ato.sched",
  jobs = "ato.jobs", log = "ato.log", redact = "ato.redact", cron = "ato.cron", json = "cjson",
  fs = false, exec = false,
}

local function install_globals()
  local mt = getmetatable(_G) or {}
  local previous = mt.__index
  mt.__index = function(t, k)
    local name = LAZY[k]
    if name then
      local ok, mod = pcall(require, name)
      if ok then rawset(t, k, mod) return mod end
    elseif name == false then
      local v = ato[k]
      rawset(t, k, v)
      return v
    end
    if type(previous) == "function" then return previous(t, k) end
    if type(previous) == "table" then return previous[k] end
    return nil
  end
  setmetatable(_G, mt)
end

-- }======================================================

-- {====================================================== chunks

-- Compiles src: the function, or nil and "incomplete" / an error message.
local function compile(src, name)
  local f = load("return " .. src, name)
  if f then return f end
  local err
  f, err = load(src, name)
  if f then return f end
  if err:match("<eof>$") then return nil, "incomplete" end
  return nil, err
end

-- The traceback of an error, without the REPL's own frames.
local function short_traceback(tb)
  local out = {}
  for line in (tb or ""):gmatch("[^\n]+") do
    if line:find("ato/repl.lua", 1, true) or line:find("[C]: in function 'xpcall'", 1, true) then break end
    if not line:match("^stack traceback:") then out[#out + 1] = line end
  end
  return table.concat(out, "\n")
end

-- }======================================================

-- {====================================================== the session

local Session = {}
Session.__index = Session

local function new_session(io_write)
  return setmetatable({write = io_write, tasks = {}, timing = false, evaluating = nil}, Session)
end

-- Prints (redacted) text through the session's writer.
function Session:say(text)
  self.write((redact.text(text)) .. "\n")
end

-- Runs f as a task; returns when it finished or was cancelled (Ctrl-C).
function Session:run(f)
  local t0 = ato.now()
  local task = ato.spawn(function()
    return table.pack(xpcall(f, function(e)
      return {err = e, tb = debug.traceback("", 2)}
    end))
  end)
  self.evaluating = task
  local r, err = task:join()
  self.evaluating = nil
  local interrupted = self.interrupted
  self.interrupted = false
  local elapsed = ato.now() - t0
  local function cancelled(e) return type(e) == "table" and e.kind == "cancelled" end
  if not r or (not r[1] and interrupted and cancelled(r[2].err)) then
    -- the terminal echoed ^C on the line: start a new one
    self:say(interrupted and "\ncancelled (Ctrl-C)" or ("cancelled: " .. tostring(err)))
  elseif not r[1] then
    local e = r[2]
    local msg = type(e.err) == "table" and e.err.message or tostring(e.err)
    self:say(msg)
    local tb = short_traceback(e.tb)
    if tb ~= "" then self:say("stack traceback:\n" .. tb) end
  elseif r.n > 1 then
    self.write(pretty().values(r.n - 1, table.unpack(r, 2, r.n)) .. "\n")
  end
  if self.timing then self:say(("(%.3f ms)"):format(elapsed * 1000)) end
end

-- Dot commands; returns true when the session should end.
function Session:dot(line)
  local cmd, arg = line:match("^%.(%a+)%s*(.-)%s*$")
  if cmd == "exit" or cmd == "quit" then return true end
  if cmd == "help" then
    self.write([[
.help            this text
.load FILE       run a Lua file here (its globals stay)
.tasks           background tasks still running, with their age
.cancel N        cancel task N (see .tasks)
.time            toggle timing of each evaluation
.exit            leave (also Ctrl-D)
Ctrl-C cancels the running line, or drops the line being edited.
Globals ready to use: ato, http, scan, store, sched, jobs, log, redact, cron, json.
]])
  elseif cmd == "load" then
    if arg == "" then self:say(".load needs a file") return end
    local f, err = loadfile(arg)
    if not f then self:say(err) return end
    self:run(f)
  elseif cmd == "tasks" then
    local n = 0
    for _, t in ipairs(ato.tasks()) do
      if t ~= ato.current() and t ~= self.watcher then
        n = n + 1
        self.write(("%d  %s  %.1f s\n"):format(t:id(), t:status(), t:age()))
      end
    end
    if n == 0 then self.write("no background tasks\n") end
  elseif cmd == "cancel" then
    local id = tonumber(arg)
    for _, t in ipairs(ato.tasks()) do
      if t:id() == id and t ~= ato.current() and t ~= self.watcher then
        t:cancel()
        self.write(("cancelled task %d\n"):format(id))
        return
      end
    end
    self:say(("no task %s"):format(arg))
  elseif cmd == "time" then
    self.timing = not self.timing
    self.write(("timing %s\n"):format(self.timing and "on" or "off"))
  else
    self:say(("unknown command .%s (try .help)"):format(cmd or line))
  end
end

-- }======================================================

-- {====================================================== completion

local function sorted_names(t, prefix, methods)
  local out, seen = {}, {}
  local function add(k)
    if type(k) == "string" and k:match("^[%a_][%w_]*$") and k:sub(1, #prefix) == prefix and not seen[k] then
      seen[k] = true
      out[#out + 1] = k
    end
  end
  local depth = 0
  while type(t) == "table" and depth < 4 do
    for k, v in next, t do
      if not methods or type(v) == "function" then add(k) end
    end
    local mt = getmetatable(t)
    t = type(mt) == "table" and rawget(mt, "__index") or nil
    depth = depth + 1
  end
  table.sort(out)
  return out
end

local function module_names(prefix)
  local out = {}
  for _, name in ipairs{"ato", "ato.http", "ato.http.server", "ato.scan", "ato.store", "ato.sched",
                        "ato.jobs", "ato.daemon", "ato.log", "ato.redact", "ato.cron", "ato.exec",
                        "ato.fs", "ato.repl", "ato.repl.pretty"} do
    if name:sub(1, #prefix) == prefix then out[#out + 1] = name end
  end
  return out
end

-- word: the text being completed; before: the line up to it.
function M.complete(word, before)
  local quoted = before:match("require%s*%(?%s*[\"']$")
  if quoted then return module_names(word) end
  local path, sep, last = word:match("^(.-)([.:])([%w_]*)$")
  if not path then
    local names = sorted_names(_G, word)
    for k in pairs(LAZY) do
      if k:sub(1, #word) == word and rawget(_G, k) == nil then names[#names + 1] = k end
    end
    table.sort(names)
    return names
  end
  local v = _G
  for part in path:gmatch("[^.:]+") do
    if type(v) ~= "table" and type(v) ~= "userdata" then return {} end
    local ok, x = pcall(function() return v[part] end)
    if not ok then return {} end
    v = x
  end
  if type(v) == "userdata" then
    local mt = getmetatable(v)
    v = type(mt) == "table" and (rawget(mt, "__index") or mt) or nil
  end
  if type(v) ~= "table" then return {} end
  local out = {}
  for _, k in ipairs(sorted_names(v, last, sep == ":")) do out[#out + 1] = path .. sep .. k end
  return out
end

-- }======================================================

-- {====================================================== history

local function history_path()
  local state = os.getenv("XDG_STATE_HOME")
  if not state or state == "" then state = (os.getenv("HOME") or "/tmp") .. "/.local/state" end
  return state .. "/ato/history"
end

-- Entries are one line each: "\\" and newlines escaped.
local function escape(s) return (s:gsub("\\", "\\\\"):gsub("\n", "\\n")) end
local function unescape(s) return (s:gsub("\\(.)", {["\\"] = "\\", n = "\n"})) end

-- Creates the history file (0600, in a 0700 directory) if missing, then
-- loads it: once, so that remembering a line is a plain append.
local function load_history(edit, path)
  ato.fs.mkdir(path:match("^(.*)/"), "700", {parents = true})
  if not ato.fs.exists(path) then ato.fs.write(path, "", "600") end
  local f = io.open(path)
  if not f then return end
  for line in f:lines() do edit.add_history(unescape(line)) end
  f:close()
end

-- Appends one entry, unless it holds a secret.
local function remember(edit, path, entry)
  if entry:match("^%s*$") then return end
  local _, secrets = redact.text(entry)
  if secrets > 0 then return end
  edit.add_history(entry)
  local f = io.open(path, "a")         -- load_history made it, mode 0600
  if not f then return end
  f:write(escape(entry), "\n")
  f:close()
end

-- }======================================================

-- {====================================================== the two modes

-- No terminal: chunks from stdin, no prompts.
function M.batch()
  install_globals()
  local s = new_session(function(text) io.stdout:write(text) io.stdout:flush() end)
  local buf = ""
  local ok = true
  for line in io.lines() do
    buf = buf == "" and line or (buf .. "\n" .. line)
    local f, err = compile(buf, "=stdin")
    if f then
      s:run(f)
      buf = ""
    elseif err ~= "incomplete" then
      s:say(err)
      ok = false
      buf = ""
    end
  end
  if buf ~= "" then
    local _, err = load(buf, "=stdin")
    s:say(err or "incomplete chunk at end of input")
    ok = false
  end
  return ok and 0 or 1
end

local function ask(edit, question)
  local answer = edit.readline(question)
  return answer and answer:lower():match("^%s*(%a?)")
end

function M.interactive()
  -- The banner and a first prompt go out before libedit loads (its dlopen
  -- and terminal set-up are most of the start-up); libedit then draws its
  -- own prompt over this one, from the start of the line.
  io.stdout:write(("ato %s — Lua 5.4 on an event loop. .help for help, Ctrl-D to leave.\n> ")
    :format(ato.config().version))
  io.stdout:flush()
  local edit = require "ato.edit"
  io.stdout:write("\r")
  install_globals()
  local s = new_session(edit.write)
  local hist = history_path()
  -- print and log lines, wherever they come from, go above the prompt
  _G.print = function(...)
    local parts = table.pack(...)
    for i = 1, parts.n do parts[i] = tostring(parts[i]) end
    edit.write(table.concat(parts, "\t", 1, parts.n) .. "\n")
  end
  -- the rest of the set-up runs once the first prompt is on the screen
  local log
  ato.spawn(function()
    load_history(edit, hist)
    edit.set_completer(M.complete)
    log = require "ato.log"
    log.set_writer(edit.write)
    pretty()
  end)
  local int = ato.trap("int", {["repeat"] = true})   -- Ctrl-C is an everyday key here
  s.watcher = ato.spawn(function()
    while true do
      int:wait()
      if s.evaluating then
        s.interrupted = true
        s.evaluating:cancel()
      else
        edit.interrupt()
      end
    end
  end)
  local buf = ""
  while true do
    local line = edit.readline(buf == "" and "> " or ">> ")
    if line == nil then io.stdout:write("\n") break end
    if buf == "" and line:match("^%s*%.%a") then
      remember(edit, hist, line)
      if s:dot(line) then break end
    else
      buf = buf == "" and line or (buf .. "\n" .. line)
      local f, err = compile(buf, "=stdin")
      if f then
        remember(edit, hist, buf)
        buf = ""
        s:run(f)
      elseif err ~= "incomplete" then
        remember(edit, hist, buf)
        buf = ""
        s:say(err)
      end
    end
  end
  -- leaving: background tasks the operator started
  local others = {}
  for _, t in ipairs(ato.tasks()) do
    if t ~= ato.current() and t ~= s.watcher then others[#others + 1] = t end
  end
  if #others > 0 then
    local a = ask(edit, ("%d background task(s) still running: [w]ait for them or [c]ancel them? "):format(#others))
    if a ~= "w" then for _, t in ipairs(others) do t:cancel() end end
    for _, t in ipairs(others) do t:join() end
  end
  s.watcher:cancel()
  if log then log.set_writer(nil) end
  return 0
end

--- `ato repl`: returns the exit status.
function M.main(...)
  local a = ...
  if a == "-h" or a == "--help" then
    io.stdout:write("Usage: ato repl\n\nThe incident console (see README.md, \"ato repl\"). Without a terminal\n"
      .. "on stdin, evaluates the chunks read from stdin.\n")
    return 0
  elseif a ~= nil then
    io.stderr:write(("ato repl: unknown argument '%s'\n"):format(a))
    return 2
  end
  if not ato.isatty(0) then return M.batch() end
  return M.interactive()
end

-- }======================================================

return M
