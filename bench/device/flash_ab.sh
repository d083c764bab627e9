#!/usr/bin/env bash
# One call on the GPU machine for a change to the FlashAttention kernels: build the baseline kernels
# (a copy of src/kernels/cuda carried with the call, --base, default build/ab_base) beside the
# working tree's, the latter also once per NAME=FLAGS of --variants (preprocessor switches the
# source under test may carry; commas stand for spaces: --variants "p0=-DSTEP=0 q1=-DSTEP=1,-DX=0");
# print the registers and stack of the kernels under test and, per kernel, their SASS instruction
# counts in every build (the SASS is saved); run flash_test (the float64 reference, windows,
# dropout, the deterministic mode, D = 256, packed batches) on every working-tree build side by
# side; with --sanitize, compute-sanitizer memcheck and racecheck on the working tree's first
# cases; then time every build with PyTorch's FlashAttention-2 and cuDNN in turn, outputs
# cross-checked against the baseline's (flash_ab.py); with --bench, flash_bench.py on the working
# tree's build last. Logs go to $OUT (default out/ab); the last table printed is flash_ab.py's.
#
#   bench/device/flash_ab.sh [options] [-- flash_ab.py options]
#     --pass fwd|bwd|both   what flash_ab.py times (default both) and which kernels the resource
#                           and SASS summaries show
#     --base DIR            the baseline sources (default build/ab_base)
#     --variants "N=F ..."  more working-tree builds, NAME=FLAGS each
#     --kernels REGEX       the kernels of the resource and SASS summaries (default by --pass:
#                           flash_fwd_sm(80|90), flash_bwd_sm(80|90) or both)
#     --no-sass             no SASS dump and counts
#     --no-test             no flash_test (timing runs of kernels whose arithmetic is unchanged:
#                           the timed outputs are still cross-checked against the baseline's)
#     --sanitize[=N|=I,J..] memcheck and racecheck on flash_test's first N cases (default 4:
#                           D = 256, a packed batch, D = 64 causal GQA, D = 128 with window and
#                           dropout), or on the cases at positions I, J, ... of its run order
#                           (from 0; a single one as "I,")
#     --bench "ARGS"        then flash_bench.py ARGS on the working tree's build, e.g.
#                           --bench "--dims 256 --check-dims 256"
#     -h, --help            this text
# Every GPU step runs under a timeout, so that a hung kernel costs minutes, not the whole call.
set -uo pipefail
self=$(realpath "${BASH_SOURCE[0]}")
cd "$(dirname "$self")/../.." || exit 1
OUT=${OUT:-out/ab}
pass=both
base_src=build/ab_base
variants=""
kernels=""
sass=1
test=1
sanitize=0
bench=""
ab_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --pass) pass=$2; shift ;;
    --base) base_src=$2; shift ;;
    --variants) variants=$2; shift ;;
    --kernels) kernels=$2; shift ;;
    --no-sass) sass=0 ;;
    --no-test) test=0 ;;
    --sanitize) sanitize=4 ;;
    --sanitize=*) sanitize=${1#--sanitize=} ;;
    --bench) bench=$2; shift ;;
    --) shift; ab_args=("$@"); break ;;
    -h | --help) sed -n '2,/^# Every GPU step/p' "$self" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
case "$pass" in
  fwd) kernels=${kernels:-"flash_fwd_sm(80|90)"} ;;
  bwd) kernels=${kernels:-"flash_bwd_sm(80|90)"} ;;
  both) kernels=${kernels:-"flash_(fwd|bwd)_sm(80|90)"} ;;
  *) echo "--pass takes fwd, bwd or both" >&2; exit 2 ;;
esac
mkdir -p "$OUT"
status=0

nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw \
  --format=csv
# The copy of the tree need not carry up-to-date git metadata: identify the kernels by content.
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
  flags=${v#*=}
  build "build/ab-${v%%=*}" . "${flags//,/ }" tilegrad_flash_capi tilegrad_flash_test &
done
wait
builds=(base new)
for v in $variants; do builds+=("${v%%=*}"); done
builds_tested=("${builds[@]:1}")
for b in "${builds[@]}"; do
  if [ ! -f "build/ab-$b/libtilegrad_flash_capi.so" ] ||
    { [ "$b" != base ] && [ ! -f "build/ab-$b/tilegrad_flash_test" ]; }; then
    echo "build $b failed:"
    if grep -q "error" "$OUT/ab-$b.log"; then
      grep -B2 -A12 -m3 "error" "$OUT/ab-$b.log" | head -60
    else
      tail -30 "$OUT/ab-$b.log"
    fi
    exit 1
  fi
done
echo "builds: $((SECONDS - start)) s"

# Registers and stack of the kernels under test, per build and architecture.
for b in "${builds[@]}"; do
  echo "== $b: registers and stack of /$kernels/"
  cuobjdump --dump-resource-usage "build/ab-$b/libtilegrad_flash_capi.so" 2>&1 |
    awk -v re="$kernels" '
    /arch = sm_/ { arch = $3 }
    /Function / { name = $2; sub(/:$/, "", name) }
    /REG:/ && name ~ re { sub(/.*flash_/, "flash_", name)
                          printf "  %-7s %s %s %s\n", arch, $1, $2, substr(name, 1, 110) }' |
    sort -u
done

# SASS of the kernels under test, saved per build, and per kernel: instructions, tensor-core
# instructions (HMMA, HGMMA), barriers, local-memory accesses (LDL, STL), side by side.
if [ $sass -eq 1 ]; then
  counts=()
  for b in "${builds[@]}"; do
    cuobjdump --dump-sass "build/ab-$b/libtilegrad_flash_capi.so" 2>/dev/null |
      awk -v re="$kernels" '/arch = sm_/ { arch = $3 } /Function :/ { keep = ($3 ~ re) }
                            keep { print arch "\t" $0 }' >"$OUT/sass-$b.txt"
    awk -F'\t' '
      /Function :/ { name = $0; sub(/.*Function : /, "", name); sub(/.*flash_/, "flash_", name)
                     key = $1 " " substr(name, 1, 110) }
      /\/\*[0-9a-f]+\*\// { n[key]++ } / HG?MMA/ { m[key]++ } / BAR/ { bar[key]++ }
      / LDL| STL/ { l[key]++ }
      END { for (k in n) printf "%s %d/%d/%d/%d\n", k, n[k], m[k], bar[k], l[k] }' \
      "$OUT/sass-$b.txt" | sort >"$OUT/sass-counts-$b.txt"
    gzip -f "$OUT/sass-$b.txt"
    counts+=("$OUT/sass-counts-$b.txt")
  done
  echo "== SASS per kernel: instructions/tensor-core/barriers/local-memory in ${builds[*]}"
  awk 'BEGIN { for (i = 1; i < ARGC; i++) file[ARGV[i]] = i }
    { key = $1 " " $2; if (!(key in seen)) { seen[key] = 1; order[++nk] = key }
      c[key, file[FILENAME]] = $3 }
    END { for (i = 1; i <= nk; i++) {
            line = ""
            for (f = 1; f < ARGC; f++) {
              line = line sprintf(" %18s", (order[i], f) in c ? c[order[i], f] : "-")
            }
            print line "  " order[i] } }' "${counts[@]}"
fi

start=$SECONDS
[ $test -eq 1 ] || builds_tested=()
for b in "${builds_tested[@]}"; do
  timeout 300 "build/ab-$b/tilegrad_flash_test" >"$OUT/test-$b.log" 2>&1 &
  echo $! >"$OUT/test-$b.pid"
done
for b in "${builds_tested[@]}"; do
  wait "$(cat "$OUT/test-$b.pid")"
  rc=$?
  echo "flash_test $b: rc $rc; comparisons: $(grep -c ' ok$' "$OUT/test-$b.log") ok," \
    "$(grep -c 'FAIL' "$OUT/test-$b.log") FAIL"
  grep -E "passed|differing|mismatch|skipped|rejected" "$OUT/test-$b.log" | head -12
  if [ $rc -ne 0 ]; then
    status=1
    grep -B8 FAIL "$OUT/test-$b.log" | head -60
    tail -5 "$OUT/test-$b.log"
  fi
done
[ $test -eq 1 ] && echo "flash_test (all working-tree builds side by side): $((SECONDS - start)) s"

if [ "$sanitize" != 0 ]; then
  start=$SECONDS
  timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 \
    build/ab-new/tilegrad_flash_test "$sanitize" >"$OUT/memcheck.log" 2>&1
  rc_mem=$?
  timeout 150 compute-sanitizer --tool racecheck --error-exitcode 9 \
    build/ab-new/tilegrad_flash_test "$sanitize" >"$OUT/racecheck.log" 2>&1
  rc_race=$?
  echo "memcheck rc $rc_mem, racecheck rc $rc_race on cases $sanitize ($((SECONDS - start)) s)"
  grep -hE "ERROR SUMMARY|RACECHECK SUMMARY|^(B=|varlen)" "$OUT/memcheck.log" \
    "$OUT/racecheck.log" | sort | uniq -c
  [ $rc_mem -ne 0 ] || [ $rc_race -ne 0 ] && status=1
fi

libs=()
for b in "${builds[@]}"; do libs+=(--lib "$b=build/ab-$b/libtilegrad_flash_capi.so"); done
PYTHONPATH=bench/device PYTHONUNBUFFERED=1 timeout 420 python3 bench/device/flash_ab.py \
  --pass "$pass" "${libs[@]}" "${ab_args[@]}" 2>&1 | tee "$OUT/ab.log" | grep -v '^{'
[ "${PIPESTATUS[0]}" -ne 0 ] && status=1

if [ -n "$bench" ]; then
  # shellcheck disable=SC2086  # the options are words
  PYTHONUNBUFFERED=1 timeout 300 python3 bench/device/flash_bench.py \
    --lib build/ab-new/libtilegrad_flash_capi.so --out "$OUT" $bench 2>&1 |
    tee "$OUT/bench.log" | grep -vE '^(check.* ok$|\{)'
  [ "${PIPESTATUS[0]}" -ne 0 ] && status=1
fi
exit $status
