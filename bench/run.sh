#!/bin/sh
# bench/run.sh [--quick]: every benchmark, each next to its peer in the same
# run. Figures are ratios first: the machines are shared and noisy.
set -eu
cd "$(dirname "$0")/.."
ato=${ATO_BIN:-bin/ato}
"$ato" bench/runtime.lua "$@"
echo
"$ato" bench/http.lua "$@"
echo
"$ato" bench/scan.lua "$@"
echo
"$ato" bench/sched_timers.lua "$@"
echo
"$ato" bench/sched_jobs.lua "$@"
echo
"$ato" bench/sendgrid.lua "$@"
