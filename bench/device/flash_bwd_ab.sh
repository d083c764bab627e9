#!/usr/bin/env bash
# One call on the GPU machine for a change to the Hopper backward: build the baseline kernels (a copy
# of src/kernels/cuda in $BASE, default build/ab_base, carried with the call) and the working
# tree's kernels, the latter also once per NAME=FLAG in $VARIANTS (a preprocessor switch the source
# under test may carry, e.g. VARIANTS="s0=-DSTEP=0 s1=-DSTEP=1"); run flash_test (the float64
# reference, windows, dropout, the deterministic mode) on every working-tree build, and with
# SANITIZE=1 compute-sanitizer memcheck (3 cases) and racecheck (2 cases) on the working tree's;
# then time all builds' backward in turn with PyTorch's FlashAttention-2 and cuDNN
# (flash_bwd_ab.py). Logs go to $OUT (default out/ab); the last lines printed are the table.
#   BASE=build/ab_base bench/device/flash_bwd_ab.sh [flash_bwd_ab.py options]
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=${OUT:-out/ab}
mkdir -p "$OUT"
base_src=${BASE:-build/ab_base}
variants=${VARIANTS:-}
status=0

nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw \
  --format=csv
echo "working tree kernels sha256 $(cat src/kernels/cuda/* | sha256sum | cut -c1-16)," \
  "base $(cat "$base_src"/* | sha256sum | cut -c1-16)"

# The baseline tree: this tree with src/kernels/cuda replaced.
rm -rf /tmp/ab_base && mkdir -p /tmp/ab_base
cp -r bench cmake src tests /tmp/ab_base/
rm -rf /tmp/ab_base/src/kernels/cuda && cp -r "$base_src" /tmp/ab_base/src/kernels/cuda

build() {  # dir, source root, extra CUDA flags, targets...
  local dir=$1 root=$2 flags=$3
  shift 3
  cmake -S "$root/bench/device" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_FLAGS="$flags" >"$OUT/$(basename "$dir").log" 2>&1 &&
    ninja -C "$dir" "$@" >>"$OUT/$(basename "$dir").log" 2>&1
}
start=$SECONDS
build build/ab-base /tmp/ab_base "" tilegrad_flash_capi &
build build/ab-new . "" tilegrad_flash_capi tilegrad_flash_test &
for v in $variants; do
  build "build/ab-${v%%=*}" . "${v#*=}" tilegrad_flash_capi tilegrad_flash_test &
done
wait
builds=(base new)
for v in $variants; do builds+=("${v%%=*}"); done
for b in "${builds[@]}"; do
  if [ ! -f "build/ab-$b/libtilegrad_flash_capi.so" ]; then
    echo "build $b failed:"
    tail -30 "$OUT/ab-$b.log"
    exit 1
  fi
done
echo "builds: $((SECONDS - start)) s"
# Registers and spills of the Hopper backward kernels of each build.
for b in "${builds[@]}"; do
  echo "== $b: flash_bwd_sm90 resource usage"
  cuobjdump --dump-resource-usage "build/ab-$b/libtilegrad_flash_capi.so" 2>&1 |
    grep -A1 "flash_bwd_sm90" | grep -oE "REG:[0-9]+ STACK:[0-9]+ SHARED:[0-9]+ LOCAL:[0-9]+" |
    sort | uniq -c
done

for b in "${builds[@]:1}"; do
  start=$SECONDS
  timeout 300 "build/ab-$b/tilegrad_flash_test" >"$OUT/test-$b.log" 2>&1
  rc=$?
  echo "flash_test $b: rc $rc ($((SECONDS - start)) s); comparisons: $(grep -c ' ok$' "$OUT/test-$b.log") ok," \
    "$(grep -c 'FAIL' "$OUT/test-$b.log") FAIL"
  grep -E "passed|differing|mismatch|skipped" "$OUT/test-$b.log" | head -12
  [ $rc -ne 0 ] && { status=1; grep -B4 FAIL "$OUT/test-$b.log" | head -30; }
done

if [ "${SANITIZE:-0}" = 1 ]; then
  start=$SECONDS
  timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 build/ab-new/tilegrad_flash_test 3 \
    >"$OUT/memcheck.log" 2>&1
  rc_mem=$?
  timeout 150 compute-sanitizer --tool racecheck --error-exitcode 9 \
    build/ab-new/tilegrad_flash_test 2 >"$OUT/racecheck.log" 2>&1
  rc_race=$?
  echo "memcheck rc $rc_mem, racecheck rc $rc_race ($((SECONDS - start)) s)"
  grep -hE "ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/memcheck.log" "$OUT/racecheck.log" | sort | uniq -c
  [ $rc_mem -ne 0 ] || [ $rc_race -ne 0 ] && status=1
fi

libs=()
for b in "${builds[@]}"; do libs+=(--lib "$b=build/ab-$b/libtilegrad_flash_capi.so"); done
PYTHONPATH=bench/device PYTHONUNBUFFERED=1 timeout 420 python3 bench/device/flash_bwd_ab.py \
  "${libs[@]}" "$@" 2>&1 | tee "$OUT/ab.log" | grep -v '^{'
[ "${PIPESTATUS[0]}" -ne 0 ] && status=1
exit $status
