#!/usr/bin/env bash
# One call on the GPU machine for a change to the Hopper forward: build the baseline kernels (a copy
# of src/kernels/cuda in $BASE, default build/fwd_base, carried with the call) and the working
# tree's, the latter also once per NAME=FLAGS in $VARIANTS (preprocessor switches the source under
# test may carry, e.g. VARIANTS="p0=-DSTEP=0 q1=-DSTEP=1,-DOTHER=0"; commas stand for spaces);
# print the Hopper forward kernels' registers and stack and save their SASS; run flash_test (the
# float64 reference) on every working-tree build, side by side; then time every build's forward
# with PyTorch's FlashAttention-2 and cuDNN forwards in turn (flash_fwd_ab.py). Logs go to $OUT
# (default out/fwd_ab); the last lines printed are the table.
#   BASE=build/fwd_base VARIANTS="..." bench/device/flash_fwd_ab.sh [flash_fwd_ab.py options]
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=${OUT:-out/fwd_ab}
mkdir -p "$OUT"
base_src=${BASE:-build/fwd_base}
variants=${VARIANTS:-}
status=0

nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw \
  --format=csv
echo "working tree kernels sha256 $(cat src/kernels/cuda/* | sha256sum | cut -c1-16)," \
  "base $(cat "$base_src"/* | sha256sum | cut -c1-16)"

# The baseline tree: this tree with src/kernels/cuda replaced.
rm -rf /tmp/fwd_base && mkdir -p /tmp/fwd_base
cp -r bench cmake src tests /tmp/fwd_base/
rm -rf /tmp/fwd_base/src/kernels/cuda && cp -r "$base_src" /tmp/fwd_base/src/kernels/cuda

build() {  # dir, source root, extra CUDA flags, targets...
  local dir=$1 root=$2 flags=$3
  shift 3
  cmake -S "$root/bench/device" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_FLAGS="$flags" >"$OUT/$(basename "$dir").log" 2>&1 &&
    ninja -C "$dir" "$@" >>"$OUT/$(basename "$dir").log" 2>&1
}
start=$SECONDS
build build/fab-base /tmp/fwd_base "" tilegrad_flash_capi &
build build/fab-new . "" tilegrad_flash_capi tilegrad_flash_test &
for v in $variants; do
  flags=${v#*=}
  build "build/fab-${v%%=*}" . "${flags//,/ }" tilegrad_flash_capi tilegrad_flash_test &
done
wait
builds=(base new)
for v in $variants; do builds+=("${v%%=*}"); done
for b in "${builds[@]}"; do
  if [ ! -f "build/fab-$b/libtilegrad_flash_capi.so" ]; then
    echo "build $b failed:"
    grep -B2 -A12 -m3 "error" "$OUT/fab-$b.log" | head -60
    exit 1
  fi
done
echo "builds: $((SECONDS - start)) s"
# Registers, stack and shared memory of the Hopper forward kernels of each build (template
# arguments: T, D, overlap, pingpong, dropout[, persistent, consumers]), and their SASS.
for b in "${builds[@]}"; do
  echo "== $b: flash_fwd_sm90 resource usage"
  cuobjdump --dump-resource-usage "build/fab-$b/libtilegrad_flash_capi.so" 2>&1 |
    grep --no-group-separator -A1 "flash_fwd_sm90" | paste - - |
    sed -E 's/.*flash_fwd_sm90_kernelI(.{0,60}).*(REG:[0-9]+ STACK:[0-9]+).*/\1 \2/' |
    sort | uniq
done
cuobjdump --dump-sass build/fab-new/libtilegrad_flash_capi.so 2>/dev/null |
  awk '/Function :/ { keep = ($0 ~ /flash_fwd_sm90/) } keep' >"$OUT/sass_new_fwd_sm90.txt"
cuobjdump --dump-sass build/fab-base/libtilegrad_flash_capi.so 2>/dev/null |
  awk '/Function :/ { keep = ($0 ~ /flash_fwd_sm90/) } keep' >"$OUT/sass_base_fwd_sm90.txt"
for f in "$OUT"/sass_*_fwd_sm90.txt; do
  echo "$(basename "$f"): per kernel, instructions / HGMMA / BAR / LDL+STL"
  awk '/Function :/ { name = substr($3, 1, 110) }
       /\/\*[0-9a-f]+\*\// { n[name]++ } / HGMMA/ { g[name]++ } / BAR/ { bar[name]++ }
       / LDL| STL/ { l[name]++ }
       END { for (k in n) printf "  %s %d %d %d %d\n", k, n[k], g[k], bar[k], l[k] }' "$f"
  gzip -f "$f"
done

start=$SECONDS
for b in "${builds[@]:1}"; do
  timeout 300 "build/fab-$b/tilegrad_flash_test" >"$OUT/test-$b.log" 2>&1 &
  echo $! >"$OUT/test-$b.pid"
done
for b in "${builds[@]:1}"; do
  wait "$(cat "$OUT/test-$b.pid")"
  rc=$?
  echo "flash_test $b: rc $rc; comparisons: $(grep -c ' ok$' "$OUT/test-$b.log") ok," \
    "$(grep -c 'FAIL' "$OUT/test-$b.log") FAIL"
  grep -E "passed|differing|mismatch|skipped" "$OUT/test-$b.log" | head -6
  if [ $rc -ne 0 ]; then
    status=1
    grep -B4 FAIL "$OUT/test-$b.log" | head -30
    tail -5 "$OUT/test-$b.log"
  fi
done
echo "flash_test (all builds side by side): $((SECONDS - start)) s"

libs=()
for b in "${builds[@]}"; do libs+=(--lib "$b=build/fab-$b/libtilegrad_flash_capi.so"); done
PYTHONPATH=bench/device PYTHONUNBUFFERED=1 timeout 300 python3 bench/device/flash_fwd_ab.py \
  "${libs[@]}" "$@" 2>&1 | tee "$OUT/ab.log" | grep -v '^{'
[ "${PIPESTATUS[0]}" -ne 0 ] && status=1
exit $status
