#!/usr/bin/env bash
# Long-context training of GPT-2 124M on the GPU: B = 1, bf16, every block checkpointed (remat
# every:1) and the fused chunked head (never the [T, V] logits), at each context length given.
# Prints the tracker's peak and the driver's (nvidia-smi, sampled every 100 ms: includes the CUDA
# context and the allocator's cached blocks) and the step time; logs under $OUT.
#   bench/device/gpt_longctx.sh [T ...]          (default: 65536)
# Builds `tilegrad` first (build/device, incremental); needs .devdeps/ carried.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=${OUT:-out/gpt-longctx}
mkdir -p "$OUT"
source bench/device/engine_env.sh || exit 1
build=build/device
tg_build "$OUT/build.log" tilegrad || exit 1
tg=$build/tilegrad
# Both splits must hold a window of T + 1 tokens: tinyshakespeare has about 338k GPT-2 tokens.
[ -d "$OUT/shk-gpt2" ] || "$tg" prepare --tokenizer gpt2 --in data/tinyshakespeare.txt \
  --out "$OUT/shk-gpt2" --val-fraction 0.45 >/dev/null || exit 1
lengths=("$@")
[ ${#lengths[@]} -eq 0 ] && lengths=(65536)
for T in "${lengths[@]}"; do
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$OUT/smi-$T.log" &
  smi=$!
  start=$SECONDS
  timeout 400 "$tg" train --device cuda --dtype bf16 --preset gpt2 --block "$T" --batch 1 \
    --dropout 0 --remat every:1 --steps "${TG_STEPS:-3}" --eval-interval 1000 --eval-iters 1 \
    --sample-tokens 0 --data "$OUT/shk-gpt2" --out "$OUT/T$T" >"$OUT/train-$T.log" 2>&1
  rc=$?
  kill $smi 2>/dev/null
  wait $smi 2>/dev/null
  driver=$(sort -n "$OUT/smi-$T.log" | tail -1)
  echo "T=$T: rc $rc, $((SECONDS - start)) s; driver peak ${driver} MiB (nvidia-smi)"
  grep -E "^step|error|Error|out of memory" "$OUT/train-$T.log" | sed -E 's/ +ETA.*//' | tail -2
done
