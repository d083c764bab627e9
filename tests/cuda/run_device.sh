#!/usr/bin/env bash
# Builds the CUDA tests on the GPU machine and runs them, in one call:
#   tests/cuda/run_device.sh [target...]
# Targets default to every CUDA test (tilegrad_cuda_memory_test tilegrad_flash_test); naming some
# builds only those, which saves compiling the attention kernels when they are not under test.
# Logs go to $OUT (default out/cuda-tests); each test runs under a timeout so a hang costs minutes.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=${OUT:-out/cuda-tests}
mkdir -p "$OUT"
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(tilegrad_cuda_memory_test tilegrad_flash_test)
build=build/device-cuda-tests

nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv
start=$SECONDS
if ! { cmake -S tests/cuda/standalone -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release &&
  ninja -C "$build" -j"$(nproc)" "${targets[@]}"; } >"$OUT/build.log" 2>&1; then
  tail -40 "$OUT/build.log"
  echo "build failed"
  exit 1
fi
echo "build: $((SECONDS - start)) s"

status=0
for t in "${targets[@]}"; do
  echo "== $t"
  timeout 300 "$build/$t" 2>&1 | tee "$OUT/$t.log"
  rc=${PIPESTATUS[0]}
  echo "$t: rc $rc"
  [ "$rc" -ne 0 ] && status=1
done
exit $status
