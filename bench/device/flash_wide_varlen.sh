#!/usr/bin/env bash
# One call on the GPU machine for D = 256 and packed (varlen) batches: build the baseline kernels
# (a copy of src/kernels/cuda in $BASE, default build/ab_base, carried with the call) and the
# working tree's; run flash_test (float64 reference: D = 256, packed batches, everything before)
# and compute-sanitizer memcheck and racecheck on its first four cases (D = 256, a packed batch,
# then two earlier cases); time the baseline's and the working tree's D = 64 / 128 defaults in
# turn (flash_ab.py: the change must not slow them); then flash_bench.py at D = 256: PyTorch
# checks and TFLOP/s against FlashAttention-2 and cuDNN. Logs go to $OUT (default out/wide).
#   BASE=build/ab_base bench/device/flash_wide_varlen.sh
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=${OUT:-out/wide}
mkdir -p "$OUT"
base_src=${BASE:-build/ab_base}
status=0
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw \
  --format=csv
echo "working tree kernels sha256 $(cat src/kernels/cuda/* | sha256sum | cut -c1-16)," \
  "base $(cat "$base_src"/* | sha256sum | cut -c1-16)"

rm -rf /tmp/ab_base && mkdir -p /tmp/ab_base
cp -r bench cmake src tests /tmp/ab_base/
rm -rf /tmp/ab_base/src/kernels/cuda && cp -r "$base_src" /tmp/ab_base/src/kernels/cuda
build() {  # dir, source root, targets...
  local dir=$1 root=$2
  shift 2
  cmake -S "$root/bench/device" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    >"$OUT/$(basename "$dir").log" 2>&1 && ninja -C "$dir" "$@" >>"$OUT/$(basename "$dir").log" 2>&1
}
start=$SECONDS
build build/ab-base /tmp/ab_base tilegrad_flash_capi &
build build/ab-new . tilegrad_flash_capi tilegrad_flash_test &
wait
for b in base new; do
  if [ ! -f "build/ab-$b/libtilegrad_flash_capi.so" ] || { [ $b = new ] &&
    [ ! -f build/ab-new/tilegrad_flash_test ]; }; then
    echo "build $b failed:"
    grep -E "error|warning" -A3 "$OUT/ab-$b.log" | head -60
    exit 1
  fi
done
echo "builds: $((SECONDS - start)) s"
echo "== resource usage of the D = 256 kernels (registers, stack, shared)"
cuobjdump --dump-resource-usage build/ab-new/libtilegrad_flash_capi.so 2>&1 |
  grep -A1 -E "Li256E|ILi256|wide" | grep -E "Function|REG" | sed -E 's/Function ([^:]*):/\1/' |
  cut -c1-160 | head -20

start=$SECONDS
timeout 300 build/ab-new/tilegrad_flash_test >"$OUT/test.log" 2>&1
rc=$?
echo "flash_test: rc $rc ($((SECONDS - start)) s); comparisons: $(grep -c ' ok$' "$OUT/test.log") ok," \
  "$(grep -c 'FAIL' "$OUT/test.log") FAIL"
grep -E "passed|differing|mismatch|skipped|FAILED|rejected" "$OUT/test.log" | head -12
[ $rc -ne 0 ] && { status=1; grep -B8 FAIL "$OUT/test.log" | head -60; }

start=$SECONDS
timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 build/ab-new/tilegrad_flash_test 4 \
  >"$OUT/memcheck.log" 2>&1
rc_mem=$?
timeout 150 compute-sanitizer --tool racecheck --error-exitcode 9 \
  build/ab-new/tilegrad_flash_test 4 >"$OUT/racecheck.log" 2>&1
rc_race=$?
echo "memcheck rc $rc_mem, racecheck rc $rc_race ($((SECONDS - start)) s)"
grep -hE "ERROR SUMMARY|RACECHECK SUMMARY|^(B=|varlen)" "$OUT/memcheck.log" "$OUT/racecheck.log" |
  sort | uniq -c
[ $rc_mem -ne 0 ] || [ $rc_race -ne 0 ] && status=1

# Instruction counts of the sm_80 kernels of both builds (sm_90 SASS), to see what a change did to
# the D = 64 / 128 code without a disassembler on the development machine.
for b in base new; do
  cuobjdump --dump-sass "build/ab-$b/libtilegrad_flash_capi.so" 2>/dev/null | awk '
    /arch = sm_/ { arch = $3 } /Function :/ { name = $3 }
    arch == "sm_90a" && /^ +\/\*[0-9a-f]+\*\/ / { n[name]++ }
    END { for (f in n) print n[f], f }' | grep -E "flash_(fwd|bwd)_sm80_kernel" |
    sed -E 's/ .*(flash_(fwd|bwd)_sm80_kernel)/ \1/' | sort -k2 >"$OUT/sass-$b.txt"
done
echo "== SASS instruction counts of the sm_80 kernels (sm_90a), base vs new"
join -1 2 -2 2 "$OUT/sass-base.txt" "$OUT/sass-new.txt" | awk '{ printf "%6d %6d %s\n", $2, $3, substr($1, 1, 110) }'

PYTHONPATH=bench/device PYTHONUNBUFFERED=1 timeout 200 python3 bench/device/flash_ab.py \
  --lib base=build/ab-base/libtilegrad_flash_capi.so --lib new=build/ab-new/libtilegrad_flash_capi.so \
  ${AB_ARGS:-} 2>&1 | tee "$OUT/ab.log" | grep -v '^{'
[ "${PIPESTATUS[0]}" -ne 0 ] && status=1
[ "${SKIP_BENCH:-0}" = 1 ] && exit $status

PYTHONUNBUFFERED=1 timeout 300 python3 bench/device/flash_bench.py \
  --lib build/ab-new/libtilegrad_flash_capi.so --out "$OUT" --dims 256 --check-dims 256 2>&1 |
  tee "$OUT/bench.log" | grep -vE '^(check.* ok$|\{)'
[ "${PIPESTATUS[0]}" -ne 0 ] && status=1
exit $status
