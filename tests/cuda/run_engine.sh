#!/usr/bin/env bash
# Builds the whole engine with its CUDA backend on the GPU machine and runs, in one call:
#   1. the GPU kernel tests (tilegrad_cuda_kernel_tests: every kernels/cuda entry against the CPU's);
#   2. the engine's test suite with TILEGRAD_TEST_DEVICE=cuda (tensors created on the GPU), over the
#      device-generic suites (TG_DEVICE_FILTER, a GoogleTest filter);
#   3. a few training steps of `tilegrad train --device cuda`; a resumed run that must write the
#      uninterrupted run's checkpoint byte for byte (GEMM tuning on, its choices taken from the run
#      directory); and a run stopped by a real CUDA error (a trapping kernel), which must exit
#      cleanly with its last checkpoint intact and resume to the uninterrupted run's bits; and the
#      recorded step (CUDA graph) against an eager run of the same options, byte for byte.
# Usage: tests/cuda/run_engine.sh [--no-build] [--only kernels|suite|train]...
# Needs .devdeps/ carried (bench/device/engine_env.sh). Logs under $OUT (default out/engine).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=${OUT:-out/engine}
mkdir -p "$OUT"
build=build/device
do_build=1
only=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) do_build=0 ;;
    --only) only+=("$2"); shift ;;
    *) echo "unknown option $1"; exit 2 ;;
  esac
  shift
done
wants() { [ ${#only[@]} -eq 0 ] || [[ " ${only[*]} " == *" $1 "* ]]; }

source bench/device/engine_env.sh || exit 1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
if [ $do_build -eq 1 ]; then
  tg_build "$OUT/build.log" tilegrad tilegrad_tests tilegrad_cuda_kernel_tests || exit 1
fi

status=0
if wants kernels; then
  timeout 300 "$build/tilegrad_cuda_kernel_tests" >"$OUT/kernels.log" 2>&1
  rc=$?
  echo "kernel tests: rc $rc; $(grep -E '^\[  (PASSED|FAILED)  \]' "$OUT/kernels.log" | head -1)"
  grep -E '^\[  FAILED  \]' "$OUT/kernels.log" | head -40
  [ $rc -ne 0 ] && status=1
fi
if wants suite; then
  # One process per test suite, so that a crash costs one suite, not the rest of the run.
  # Suites about the host itself stay out: files and host batches (safetensors, checkpoints,
  # samplers: the trainer copies to and from the device around them), the CPU allocator and
  # kernels, and the CLI experiments that measure the CPU tracker. Standard (materialising)
  # attention has no CUDA kernel yet, so the suites comparing it with flash are left out too.
  host_only="Safetensors*:SafetensorsReference*:TrainingCheckpoint*:BatchSampler*:Tracker*"
  host_only+=":Memtrace*:MemtracePlot*:CpuAllocator*:VectorMath*:*Tokenizer*:Prepare*:TokenFile*"
  host_only+=":Utf8*:PlanChain*:PlanBlocks*:Plot*:MeasuredPeak*"
  host_only+=":Attention.*:AttentionCriterion.*:AttentionMemory.StandardExtraMemoryGrowsAsNSquared"
  filter=${TG_DEVICE_FILTER:-*-$host_only}
  : >"$OUT/suite.log"
  passed=0
  failed=0
  for suite in $("$build/tests/tilegrad_tests" --gtest_list_tests --gtest_filter="$filter" |
    grep -E '^[A-Za-z0-9_]+\.$' | tr -d '.'); do
    TILEGRAD_TEST_DEVICE=cuda OMP_NUM_THREADS=4 timeout 120 "$build/tests/tilegrad_tests" \
      --gtest_filter="$suite.*:-$host_only" >"$OUT/suite-$suite.log" 2>&1
    rc=$?
    cat "$OUT/suite-$suite.log" >>"$OUT/suite.log"
    if [ $rc -eq 0 ]; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1))
      echo "suite $suite: rc $rc; $(grep -c '^\[  FAILED  \].*ms)$' "$OUT/suite-$suite.log") failed"
      grep -E -A2 "Failure|^\[ RUN" "$OUT/suite-$suite.log" | grep -v "^--" | tail -6 | cut -c1-220
    fi
  done
  echo "suites on cuda: $passed passed, $failed failed"
  [ $failed -ne 0 ] && status=1
fi
if wants train; then
  "$build/tilegrad" prepare --tokenizer char --in data/tinyshakespeare.txt --out "$OUT/shk" \
    >"$OUT/prepare.log" 2>&1
  timeout 300 "$build/tilegrad" train --device cuda --preset shakespeare-char --data "$OUT/shk" \
    --out "$OUT/train" --steps 40 --batch 64 --eval-interval 20 --eval-iters 5 \
    --sample-tokens 100 >"$OUT/train.log" 2>&1
  rc=$?
  echo "train on cuda: rc $rc"
  tail -12 "$OUT/train.log"
  [ $rc -ne 0 ] && status=1
  # Bit-exact resume with GEMM tuning (on by default): a run resumed from step 2 of a finished run,
  # with that run's gemm_tuning.json, must write its step-4 checkpoint byte for byte; the resumed
  # process must then time no GEMM problem that the file names (TILEGRAD_GEMM_TUNE_LOG lines).
  r="$OUT/resume"
  rm -rf "$r" && mkdir -p "$r"
  run_bits=(--device cuda --dtype bf16 --preset shakespeare-char --batch 16 --block 128
    --dropout 0 --steps 4 --checkpoint-interval 2 --eval-interval 0 --eval-iters 1
    --sample-tokens 0 --data "$OUT/shk")
  TILEGRAD_GEMM_TUNE_LOG=1 timeout 300 "$build/tilegrad" train "${run_bits[@]}" --out "$r/a" \
    >"$r/a.log" 2>&1 || { echo "resume: the first run failed"; tail -3 "$r/a.log"; status=1; }
  cp -r "$r/a" "$r/b" && rm -rf "$r/b/checkpoints/step-00000004"
  TILEGRAD_GEMM_TUNE_LOG=1 timeout 300 "$build/tilegrad" train "${run_bits[@]}" --out "$r/b" \
    --resume >"$r/b.log" 2>&1 || { echo "resume: the resumed run failed"; tail -3 "$r/b.log"; status=1; }
  tuned_a=$(grep -c "^gemm tune" "$r/a.log")
  tuned_b=$(grep -c "^gemm tune" "$r/b.log")
  same=1
  for f in model.safetensors optimizer.safetensors; do
    cmp -s "$r/a/checkpoints/step-00000004/$f" "$r/b/checkpoints/step-00000004/$f" || same=0
  done
  echo "resume with GEMM tuning: problems timed $tuned_a (first run), $tuned_b (resumed);" \
    "step-4 checkpoints $([ $same -eq 1 ] && echo "equal byte for byte" || echo DIFFER)"
  { [ $same -eq 1 ] && [ "$tuned_a" -gt 0 ] && [ "$tuned_b" -eq 0 ]; } || status=1
  # A real CUDA error mid-run (a trapping kernel before step 3's forward, --fault-kind device): exit
  # status 2 and a message naming the step and the last checkpoint (step 2), which a new process
  # loads; --resume then finishes the run with the checkpoint of a run that never failed, byte for
  # byte (heuristic GEMMs, so that the two processes' algorithms agree without a tuning file).
  f="$OUT/fault"
  rm -rf "$f" && mkdir -p "$f"
  run_fault=("${run_bits[@]}" --no-gemm-tune)
  timeout 300 "$build/tilegrad" train "${run_fault[@]}" --out "$f/straight" >"$f/straight.log" 2>&1
  err=$(timeout 300 "$build/tilegrad" train "${run_fault[@]}" --out "$f/run" --fault-at-step 3 \
    --fault-kind device 2>&1 >/dev/null)
  rc=$?
  echo "CUDA error mid-run: rc $rc; $(tr '\n' ' ' <<<"$err" | cut -c1-400)"
  ok=1
  [ $rc -eq 2 ] || ok=0
  grep -q "step 3 of 4 failed" <<<"$err" && grep -q "step-00000002" <<<"$err" || ok=0
  timeout 120 "$build/tilegrad" sample --ckpt "$f/run/checkpoints/step-00000002" --tokens 8 \
    >"$f/sample.log" 2>&1 || { ok=0; echo "the last checkpoint does not load"; }
  timeout 300 "$build/tilegrad" train "${run_fault[@]}" --out "$f/run" --resume >"$f/resume.log" \
    2>&1 || { ok=0; echo "--resume failed"; tail -3 "$f/resume.log"; }
  for g in model.safetensors optimizer.safetensors; do
    cmp -s "$f/straight/checkpoints/step-00000004/$g" "$f/run/checkpoints/step-00000004/$g" || ok=0
  done
  echo "CUDA error mid-run: $([ $ok -eq 1 ] && echo "stopped cleanly; step 2 loads; resumed to the uninterrupted run's step-4 checkpoint byte for byte" || echo FAILED)"
  [ $ok -eq 1 ] || status=1
  # The recorded step (train/captured_step.h): the uninterrupted run above recorded its forward
  # and backward at step 2 and replayed them at steps 2-4; a run of the same options with every
  # step eager must write its step-4 checkpoint byte for byte.
  timeout 300 "$build/tilegrad" train "${run_fault[@]}" --out "$f/eager" --no-cuda-graph \
    >"$f/eager.log" 2>&1
  ok=1
  grep -q "CUDA graph: forward and backward recorded at step 2" "$f/straight.log" || ok=0
  [ "$(grep -c '"graph":true' "$f/straight/metrics.jsonl")" -eq 3 ] || ok=0
  grep -q '"graph":true' "$f/eager/metrics.jsonl" && ok=0
  for g in model.safetensors optimizer.safetensors; do
    cmp -s "$f/straight/checkpoints/step-00000004/$g" "$f/eager/checkpoints/step-00000004/$g" || ok=0
  done
  echo "CUDA graph: $(grep -h "CUDA graph" "$f/straight.log" | head -1);" \
    "$([ $ok -eq 1 ] && echo "replayed steps 2-4 equal the eager run's step-4 checkpoint byte for byte" || echo FAILED)"
  [ $ok -eq 1 ] || status=1
fi
exit $status
