-- ato.jobs.cli: the `ato jobs` command (runtime/main.c runs
-- `os.exit(require('ato.jobs.cli').main(...))`). Exit 0 success, 1 a
-- failure (no such job, a store error), 2 a usage error. --json prints
-- machine-readable output for list, show and history.
local ato = require "ato"
local cjson = require "cjson"
local json = require "ato.json"
local jobs = require "ato.jobs"

local M = {}

M.HELP = [[
Usage: ato [--db PATH] jobs COMMAND [ARGS...]

Durable scheduled jobs, kept in the state database and run by `ato daemon`.

Commands:
  add NAME (--cron EXPR | --every DURATION | --at TIME) [OPTIONS] -- SCRIPT [ARGS...]
  list [--json]            every job: schedule, next run, last result
  show NAME [--json]       one job in full
  rm NAME                  remove it (its run history stays)
  pause NAME | resume NAME stop and restart scheduling (resume does not
                           replay what fell due while paused)
  run NAME                 queue an extra run now (the daemon starts it)
  history NAME [--limit N] [--json]
                           its runs, newest first

Schedules:
  --cron EXPR       five fields (or six, seconds first), names, ranges, steps,
                    @hourly/@daily/@weekly/@monthly/@yearly; cronie's rules
  --every DURATION  90, 90s, 5m, 1h30m, 2d (counted from now)
  --at TIME         once: +DURATION, epoch seconds, 2026-12-01T09:00:00Z,
                    2026-12-01T09:00+01:00, or 2026-12-01 09:00 in --tz
  --tz ZONE         UTC (default for --cron), local, or an IANA name

Options:
  --overlap skip|queue     an occurrence due while the last run still runs is
                           skipped (default) or runs after it
  --missed none|one|all    after downtime: skip what was missed, run it once
                           (default), or run each occurrence (--missed-cap N, 10)
  --timeout DURATION       stop the run's processes after this long
  --attempts N             runs of a failing occurrence (default 1)
  --backoff DURATION       delay before the first retry, doubling (default 60s)
  --env-file PATH          KEY=VALUE lines for the job's environment
  --replace                replace a job of that name
]]

local function fail(msg, code)
  io.stderr:write("ato jobs: ", msg, "\n")
  return code or 1
end

local function usage(msg)
  return fail(msg .. " (see 'ato jobs --help')", 2)
end

local function iso(t)
  if not t then return "-" end
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t))
end

local function describe_schedule(s)
  if s.kind == "cron" then return ("cron %s (%s)"):format(s.expr, s.tz) end
  if s.kind == "every" then return ("every %gs"):format(s.seconds) end
  return "at " .. iso(s.time)
end

local function print_json(v)
  io.stdout:write(json.encode(v), "\n")
end

-- {====================================================== add

local VALUE_OPTS = {["--cron"] = "cron", ["--every"] = "every", ["--at"] = "at", ["--tz"] = "tz",
  ["--overlap"] = "overlap", ["--missed"] = "missed", ["--missed-cap"] = "missed_cap",
  ["--timeout"] = "timeout", ["--attempts"] = "attempts", ["--backoff"] = "backoff",
  ["--env-file"] = "env_file"}

local function cmd_add(args)
  local def, opts, i = {name = args[1]}, {}, 2
  if not def.name or def.name:sub(1, 1) == "-" then return usage("add: a job NAME comes first") end
  while i <= #args do
    local a = args[i]
    if a == "--" then
      def.script = args[i + 1]
      def.args = table.move(args, i + 2, #args, 1, {})
      break
    elseif a == "--replace" then opts.replace = true
    elseif VALUE_OPTS[a] then
      local v = args[i + 1]
      if v == nil then return usage(("add: %s needs a value"):format(a)) end
      if a == "--missed-cap" or a == "--attempts" then
        v = math.tointeger(tonumber(v))
        if not v then return usage(("add: %s needs an integer"):format(a)) end
      end
      def[VALUE_OPTS[a]] = v
      i = i + 1
    else
      return usage(("add: unknown argument '%s' (the script goes after --)"):format(a))
    end
    i = i + 1
  end
  if not def.script then return usage("add: give the script after --: ato jobs add NAME --every 1h -- script.lua") end
  local ok, err = pcall(function() return ato.fs.exists(def.script) end)
  if ok and not err then return fail(("add: no script at %s"):format(def.script)) end
  local job
  job, err = jobs.add(def, opts)
  if not job then return fail("add: " .. tostring(err), err.kind == "invalid" and 2 or 1) end
  io.stdout:write(("added %s: %s, next run %s\n"):format(job.name, describe_schedule(job.schedule), iso(job.next_due)))
  return 0
end

-- }======================================================

local function one_arg(args, what)
  if #args ~= 1 then return nil end
  return args[1]
end

local function flags(args)
  local rest, f = {}, {}
  local i = 1
  while i <= #args do
    if args[i] == "--json" then f.json = true
    elseif args[i] == "--limit" then f.limit = math.tointeger(tonumber(args[i + 1] or "")); i = i + 1
      if not f.limit then return nil, "--limit needs an integer" end
    else rest[#rest + 1] = args[i] end
    i = i + 1
  end
  return rest, f
end

local function cmd_list(args)
  local rest, f = flags(args)
  if not rest or #rest > 0 then return usage("list: takes only --json") end
  local list, err = jobs.list()
  if not list then return fail(tostring(err)) end
  if f.json then print_json(json.array(list)) return 0 end
  if #list == 0 then io.stdout:write("no jobs\n") return 0 end
  io.stdout:write(("%-24s %-34s %-21s %s\n"):format("NAME", "SCHEDULE", "NEXT", "LAST"))
  for _, j in ipairs(list) do
    io.stdout:write(("%-24s %-34s %-21s %s\n"):format(j.name, describe_schedule(j.schedule),
      j.paused and "paused" or iso(j.next_due), j.last_status or "-"))
  end
  return 0
end

local function cmd_show(args)
  local rest, f = flags(args)
  local name = rest and one_arg(rest)
  if not name then return usage("show: one job NAME") end
  local j, err = jobs.get(name)
  if not j then return fail(err and tostring(err) or ("no job '%s'"):format(name)) end
  if f.json then print_json(j) return 0 end
  io.stdout:write(("name      %s\nschedule  %s\nscript    %s %s\nnext      %s\npaused    %s\noptions   %s\n"):format(
    j.name, describe_schedule(j.schedule), j.script, table.concat(j.args, " "),
    iso(j.next_due), tostring(j.paused), cjson.encode(j.options)))
  return 0
end

local function cmd_simple(fn, verb)
  return function(args)
    if #args ~= 1 then return usage(verb .. ": one job NAME") end
    local ok, err = fn(args[1])
    if not ok then return fail(tostring(err)) end
    io.stdout:write(("%s %s\n"):format(verb, args[1]))
    return 0
  end
end

local function cmd_run(args)
  if #args ~= 1 then return usage("run: one job NAME") end
  local id, err = jobs.run(args[1])
  if not id then return fail(tostring(err)) end
  io.stdout:write(("queued run %d of %s (the daemon starts it)\n"):format(id, args[1]))
  return 0
end

local function cmd_history(args)
  local rest, f = flags(args)
  local name = rest and one_arg(rest)
  if not name then return usage("history: one job NAME [--limit N] [--json]") end
  local runs, err = jobs.history(name, f.limit or 20)
  if not runs then return fail(tostring(err)) end
  if f.json then print_json(json.array(runs)) return 0 end
  io.stdout:write(("%-6s %-21s %-3s %-12s %-21s %s\n"):format("RUN", "SLOT", "TRY", "STATUS", "ENDED", "DETAIL"))
  for _, r in ipairs(runs) do
    io.stdout:write(("%-6d %-21s %-3d %-12s %-21s %s\n"):format(r.id, iso(r.slot), r.attempt, r.status,
      iso(r.ended_at), r.error or (r.exit_code and ("exit " .. r.exit_code)) or ""))
  end
  return 0
end

local COMMANDS = {
  add = cmd_add, list = cmd_list, show = cmd_show, run = cmd_run, history = cmd_history,
  rm = cmd_simple(jobs.remove, "removed"), remove = cmd_simple(jobs.remove, "removed"),
  pause = cmd_simple(jobs.pause, "paused"), resume = cmd_simple(jobs.resume, "resumed"),
}

function M.main(...)
  local args = {...}
  local cmd = table.remove(args, 1)
  if cmd == nil or cmd == "-h" or cmd == "--help" or cmd == "help" then
    io.stdout:write(M.HELP)
    return cmd == nil and 2 or 0
  end
  local fn = COMMANDS[cmd]
  if not fn then return usage(("unknown command '%s'"):format(cmd)) end
  return fn(args)
end

return M
