#!/usr/bin/env bash
# Where a GPT training step's GPU time goes: builds `tilegrad` on the GPU machine (build/device,
# incremental) and runs `tilegrad train --profile 3` on GPT-2 124M (bf16, T = 1024) and on
# shakespeare-char, printing the per-op table of each. Logs under $OUT.
#   bench/device/gpt_profile.sh [B]            (GPT-2's batch, default 16)
# Needs .devdeps/ carried (bench/device/engine_env.sh).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=${OUT:-out/gpt-profile}
mkdir -p "$OUT"
source bench/device/engine_env.sh || exit 1
build=build/device
B=${1:-16}
tg_build "$OUT/build.log" tilegrad || exit 1
tg=$build/tilegrad
"$tg" prepare --tokenizer gpt2 --in data/tinyshakespeare.txt --out "$OUT/shk-gpt2" >/dev/null
"$tg" prepare --tokenizer char --in data/tinyshakespeare.txt --out "$OUT/shk-char" >/dev/null
common=(--device cuda --eval-interval 1000 --eval-iters 1 --sample-tokens 0 --profile 3)
timeout 300 "$tg" train "${common[@]}" --dtype bf16 --preset gpt2 --dropout 0 --batch "$B" \
  --steps 6 --data "$OUT/shk-gpt2" --out "$OUT/gpt2" ${TG_TRAIN_ARGS:-} >"$OUT/gpt2.log" 2>&1
echo "gpt2 B=$B: rc $?"
sed -n '/^profile of/,$p' "$OUT/gpt2.log" | head -${TG_PROFILE_ROWS:-45}
grep -E "^wall" "$OUT/gpt2.log"
timeout 300 "$tg" train "${common[@]}" --dtype bf16 --preset shakespeare-char --batch 64 \
  --steps 6 --data "$OUT/shk-char" --out "$OUT/char" >"$OUT/char.log" 2>&1
echo "shakespeare-char bf16 B=64: rc $?"
sed -n '/^profile of/,$p' "$OUT/char.log" | head -25
grep -E "^wall" "$OUT/char.log"
