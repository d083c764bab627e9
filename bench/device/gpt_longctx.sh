#!/usr/bin/env bash
# Long-context training of GPT-2 124M on the GPU: B = 1, bf16, every block checkpointed (remat
# every:1) and the fused chunked head (never the [T, V] logits), at each context length given.
# Prints the tracker's peak and the driver's (nvidia-smi, sampled every 100 ms: includes the CUDA
# context and the allocator's cached blocks) and the step time; logs under $OUT.
#   [TG_STEPS=3] [TG_CORPUS_REPEAT=1] bench/device/gpt_longctx.sh [T ...]   (default: 65536)
# Builds `tilegrad` first (build/device, incremental); needs .devdeps/ carried.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=${OUT:-out/gpt-longctx}
mkdir -p "$OUT"
source bench/device/engine_env.sh || exit 1
build=build/device
tg_build "$OUT/build.log" tilegrad || exit 1
tg=$build/tilegrad
# Both splits must hold a window of T + 1 tokens: tinyshakespeare has about 338k GPT-2 tokens, so
# T above ~150k needs the text repeated (TG_CORPUS_REPEAT=N, default 1; 8 holds T = 1,048,576).
repeat=${TG_CORPUS_REPEAT:-1}
corpus="$OUT/shk-gpt2-x$repeat"
if [ ! -d "$corpus" ]; then
  for _ in $(seq "$repeat"); do cat data/tinyshakespeare.txt; done >"$OUT/text-x$repeat.txt"
  "$tg" prepare --tokenizer gpt2 --in "$OUT/text-x$repeat.txt" --out "$corpus" \
    --val-fraction 0.45 >/dev/null || exit 1
fi
lengths=("$@")
[ ${#lengths[@]} -eq 0 ] && lengths=(65536)
for T in "${lengths[@]}"; do
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$OUT/smi-$T.log" &
  smi=$!
  start=$SECONDS
  timeout 540 "$tg" train --device cuda --dtype bf16 --preset gpt2 --block "$T" --batch 1 \
    --dropout 0 --remat every:1 --steps "${TG_STEPS:-3}" --eval-interval 1000 --eval-iters 1 \
    --sample-tokens 0 --data "$corpus" --out "$OUT/T$T" >"$OUT/train-$T.log" 2>&1
  rc=$?
  kill $smi 2>/dev/null
  wait $smi 2>/dev/null
  driver=$(sort -n "$OUT/smi-$T.log" | tail -1)
  echo "T=$T: rc $rc, $((SECONDS - start)) s; driver peak ${driver} MiB (nvidia-smi)"
  grep -E "^step|error|Error|out of memory" "$OUT/train-$T.log" | sed -E 's/ +ETA.*//' | tail -2
done
