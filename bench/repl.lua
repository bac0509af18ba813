-- bench/repl.lua [--quick]: `ato repl` through a pseudo-terminal
-- (bench/pty_prompt.c, forkpty) next to `lua5.4 -i`, in the same run:
-- start-up to the first prompt (target: within 1.5x of lua5.4), and the
-- round trip of a trivial line ("1", Enter, until the prompt is back):
-- evaluation overhead target under 1 ms. Medians of RUNS runs.
local ato = require "ato"
local cjson = require "cjson"

local quick = arg[1] == "--quick"
local RUNS = quick and 5 or 21
local LINES = quick and 50 or 200
local ATO = os.getenv("ATO_BIN") or "bin/ato"
local OUT = "bench/out"
local DRIVER = OUT .. "/pty_prompt"

local U = dofile "bench/util.lua"
local run, median = U.run, U.median

run{"mkdir", "-p", OUT}
run{"cc", "-O2", "-o", DRIVER, "bench/pty_prompt.c", "-lutil"}
local state = OUT .. "/repl-state"
run{"rm", "-rf", state}

local function measure(prompt, cmd)
  local starts, lines = {}, {}
  for i = 1, RUNS do
    local argv = {DRIVER, prompt, tostring(LINES), "--", env = {XDG_STATE_HOME = state, TERM = "xterm"}}
    for _, a in ipairs(cmd) do argv[#argv + 1] = a end
    local r = cjson.decode(run(argv).stdout)
    starts[i], lines[i] = r.startup_ms, r.line_ms
  end
  return median(starts), median(lines)
end

local a_start, a_line = measure("> ", {ATO, "repl"})
local l_start, l_line = measure("> ", {"lua5.4", "-i"})
print(("ato repl through a pty, median of %d runs, %d lines each; peer: lua5.4 -i"):format(RUNS, LINES))
print(("%8s %12s %12s  %s"):format("ratio", "ato", "lua5.4", "metric"))
print(("%7.2fx %12.2f %12.2f  start-up to the first prompt (ms); target within 1.5x"):format(a_start / l_start, a_start, l_start))
print(("%7.2fx %12.3f %12.3f  a trivial line, Enter to the next prompt (ms); target < 1 ms"):format(a_line / l_line, a_line, l_line))
local f = assert(io.open(OUT .. "/repl.json", "w"))
f:write(cjson.encode{runs = RUNS, lines = LINES, ato = {startup_ms = a_start, line_ms = a_line},
                     lua = {startup_ms = l_start, line_ms = l_line}}, "\n")
f:close()
