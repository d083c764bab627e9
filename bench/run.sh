#!/usr/bin/env bash
# Builds the release preset and runs the three benchmark programs (5 repetitions each, aggregates
# only), writing Google Benchmark JSON to build/bench/*.json, then prints the requirements table.
#
#   bench/run.sh                          build, run, summarise
#   bench/run.sh --benchmark_filter=Exp   extra arguments go to every benchmark program
#   TILEGRAD_BENCH_BIN=build/x/bench bench/run.sh
#                                         use already-built programs from that directory instead
#
# The thread count is OpenMP's default (all cores) unless OMP_NUM_THREADS says otherwise; each
# result reports the count it ran with. Run it on an otherwise idle machine: the comparisons are
# between numbers taken seconds apart, and other load skews multi-threaded results most.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

programs=(matmul elementwise autograd)
bin="${TILEGRAD_BENCH_BIN:-}"
if [[ -z "$bin" ]]; then
  cmake --preset release >/dev/null
  cmake --build --preset release --target "${programs[@]/#/bench_}"
  bin=build/release/bench
fi

out=build/bench
mkdir -p "$out"
for p in "${programs[@]}"; do
  echo "== bench_$p"
  "$bin/bench_$p" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
    --benchmark_out="$out/$p.json" --benchmark_out_format=json "$@"
done

python3 bench/summarize.py "$out"
