#!/usr/bin/env bash
# One call on the GPU machine: build the CUDA kernels, check them (a float64 CPU reference,
# compute-sanitizer, PyTorch references on the issue's shapes), profile one forward and backward
# with ncu, and time them against PyTorch's FlashAttention-2 and cuDNN backends. Logs and CSVs go
# to $OUT (default out/flash); the last lines printed are the table.
#   bench/device/flash.sh [--quick] [--no-ncu] [--fwd-only] [--no-torch]
#     --quick: no sanitizers, no profile; --no-ncu: no profile; --fwd-only: time forwards only;
#     --no-torch: no PyTorch checks and timings (the options' timings, flash_features, still run)
# Every GPU step runs under a timeout, so that a hung kernel costs minutes, not the whole call.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=${OUT:-out/flash}
mkdir -p "$OUT"
quick=0
ncu_on=1
torch_on=1
bench_args=()
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ncu_on=0 ;;
    --no-ncu) ncu_on=0 ;;
    --fwd-only) bench_args+=(--fwd-only) ;;
    --no-torch) torch_on=0 ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done
status=0
log="$OUT/run.log"

{
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw \
    --format=csv
  # The copy of the tree need not carry up-to-date git metadata: identify the kernels by content.
  echo "kernel sources sha256 $(cat src/kernels/cuda/* | sha256sum | cut -c1-16)"
} | tee "$log"

build=build/device-flash
start=$SECONDS
cmake -S bench/device -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >"$OUT/build.log" 2>&1 &&
  ninja -C "$build" -j16 >>"$OUT/build.log" 2>&1
rc=$?
echo "build: rc $rc in $((SECONDS - start)) s"
if [ $rc -ne 0 ]; then
  tail -50 "$OUT/build.log"
  exit 1
fi
# Registers, spills and shared memory of every kernel, and local-memory instructions in the SASS.
{
  echo "== resource usage"
  cuobjdump --dump-resource-usage "$build/libtilegrad_flash_capi.so" 2>&1 | grep -E "Function|REG"
  echo "== SASS: local memory (LDL/STL) and tensor-core (HMMA, HGMMA) instruction counts per kernel"
  cuobjdump --dump-sass "$build/libtilegrad_flash_capi.so" 2>/dev/null | awk '
    /arch = sm_/ { arch = $3 }
    /Function :/ { name = arch " " $3 }
    / LDL| STL/ { ldl[name]++ } / HMMA/ { hmma[name]++ } / LDSM/ { ldsm[name]++ }
    / HGMMA/ { hgmma[name]++ } /WARPGROUP.DEPBAR/ { depbar[name]++ }
    END { for (n in hmma) printf "%s HMMA %d LDSM %d LDL/STL %d\n", n, hmma[n], ldsm[n], ldl[n]
          for (n in hgmma) printf "%s HGMMA %d WARPGROUP.DEPBAR %d LDL/STL %d\n", n, hgmma[n],
            depbar[n], ldl[n] }'
} >>"$OUT/build.log" 2>&1

echo "== flash_test (float64 CPU reference)" | tee -a "$log"
timeout 300 "$build/tilegrad_flash_test" >>"$log" 2>&1
rc=$?
grep -E "FAIL|passed|skipped|rejected|dropped fraction|runs differing" "$log"
[ $rc -ne 0 ] && { status=1; echo "flash_test failed (rc $rc)"; grep -B6 FAIL "$log" | head -40; }
if [ $rc -eq 124 ]; then  # a hung kernel: the steps below would hang on it too
  echo "flash_test timed out; its last lines:"
  tail -8 "$log"
  exit 1
fi

if [ $quick -eq 0 ] && [ $rc -eq 0 ]; then
  # The first four: D = 256, a packed varlen batch, then D = 64 causal GQA and D = 128 with window
  # and dropout (flash_test's run order).
  echo "== compute-sanitizer memcheck and racecheck (first cases)" | tee -a "$log"
  start=$SECONDS
  timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 "$build/tilegrad_flash_test" 4 \
    >>"$log" 2>&1
  rc_mem=$?
  timeout 150 compute-sanitizer --tool racecheck --error-exitcode 9 \
    "$build/tilegrad_flash_test" 4 >>"$log" 2>&1
  rc_race=$?
  echo "memcheck rc $rc_mem, racecheck rc $rc_race ($((SECONDS - start)) s)"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$log" | sort | uniq -c | head -10
  [ $rc_mem -ne 0 ] || [ $rc_race -ne 0 ] && status=1
fi

if [ $ncu_on -eq 1 ]; then
  echo "== ncu: one forward and one backward, bf16 B=4 H=16 N=4096 D=128"
  start=$SECONDS
  timeout 200 ncu --clock-control none -k regex:'flash_(fwd|bwd)_sm(80|90)' -c 3 \
    --section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
    --section WarpStateStats --section SchedulerStats --section Occupancy --section LaunchStats \
    --section InstructionStats --print-details all \
    python3 bench/device/flash_bench.py --lib "$build/libtilegrad_flash_capi.so" --profile \
    >"$OUT/ncu.txt" 2>&1
  echo "ncu rc $? ($((SECONDS - start)) s)"
  # Stall reasons and shared-memory bank conflicts as raw metrics (a second pass, so that a metric
  # this ncu does not know cannot cost the sections above).
  stalls=""
  for r in barrier long_scoreboard short_scoreboard mio_throttle lg_throttle math_pipe_throttle \
    wait not_selected selected dispatch_stall no_instruction branch_resolving membar tex_throttle \
    drain misc sleeping imc_miss; do
    stalls="$stalls,smsp__average_warps_issue_stalled_${r}_per_issue_active.ratio"
  done
  timeout 120 ncu --clock-control none -k regex:'flash_(fwd|bwd)_sm(80|90)' -c 3 --metrics \
    "${stalls#,},l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared_op_ld.sum,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_lsu.avg.pct_of_peak_sustained_active" \
    python3 bench/device/flash_bench.py --lib "$build/libtilegrad_flash_capi.so" --profile \
    >>"$OUT/ncu.txt" 2>&1
  echo "ncu metrics rc $?"
fi

# The options against the defaults: deterministic backward, dropout, sliding window.
echo "== options: deterministic backward, dropout, sliding window (flash_features)"
timeout 240 "$build/tilegrad_flash_features" 2>&1 | tee "$OUT/features.log"
[ "${PIPESTATUS[0]}" -ne 0 ] && status=1

[ $torch_on -eq 0 ] && exit $status
echo "== PyTorch comparison"
PYTHONUNBUFFERED=1 timeout 480 python3 bench/device/flash_bench.py \
  --lib "$build/libtilegrad_flash_capi.so" --out "$OUT" "${bench_args[@]}" 2>&1 |
  tee "$OUT/bench.log" | grep -vE '^(check.* ok$|\{)'
rc=${PIPESTATUS[0]}
[ $rc -ne 0 ] && status=1
exit $status
