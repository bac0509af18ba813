#!/bin/sh
# bench/run.sh: every benchmark, each next to its peer in the same run.
# Figures are ratios first: the machines are shared and noisy.
set -eu
cd "$(dirname "$0")/.."
exec "${ATO_BIN:-bin/ato}" bench/runtime.lua "$@"
