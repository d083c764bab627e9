#!/usr/bin/env bash
# GPT training on the GPU, tilegrad against PyTorch in one call (build first with
# tests/cuda/run_engine.sh, which leaves build/device):
#   bench/device/gpt_cuda.sh [B ...]      (default: 16)
# For each batch size B: GPT-2 124M, bf16, T = 1024, `tilegrad train --device cuda` for 12 steps
# on GPT-2-tokenized tinyshakespeare (tokens/s and peak memory from its progress lines), then
# bench/device/gpt_torch_cuda.py with torch.compile on the same configuration (TG_NO_PEER=1: not).
# Logs under $OUT; TG_TRAIN_ARGS adds options to tilegrad's runs.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=${OUT:-out/gpt-cuda}
mkdir -p "$OUT"
source bench/device/engine_env.sh || exit 1
build=build/device
batches=("$@")
[ ${#batches[@]} -eq 0 ] && batches=(16)
python=${PYTHON:-python3}

"$build/tilegrad" prepare --tokenizer gpt2 --in data/tinyshakespeare.txt --out "$OUT/shk-gpt2" \
  >"$OUT/prepare.log" 2>&1 || { tail -5 "$OUT/prepare.log"; exit 1; }
# tilegrad runs once per variant and B (TG_VARIANTS, default "graph eager"): `graph` is the default
# (GEMM tuning: each problem's candidates timed at its first call, TILEGRAD_GEMM_TUNE_LOG prints
# what was chosen; the step recorded as a CUDA graph at step 2 and replayed), `eager` the same with
# --no-cuda-graph, `heuristic` with cuBLASLt's heuristic algorithms (--no-gemm-tune), `f32res` the
# default with the residual stream in float32 (--f32-residual).
for B in "${batches[@]}"; do
  for variant in ${TG_VARIANTS:-graph eager}; do
    extra=()
    [ "$variant" = eager ] && extra=(--no-cuda-graph)
    [ "$variant" = heuristic ] && extra=(--no-gemm-tune)
    [ "$variant" = f32res ] && extra=(--f32-residual)
    log="$OUT/tilegrad-$variant-b$B.log"
    TILEGRAD_GEMM_TUNE_LOG=1 timeout 300 "$build/tilegrad" train --device cuda --dtype bf16 \
      --preset gpt2 --block 1024 --dropout 0 --batch "$B" --steps 12 --eval-interval 1000 \
      --eval-iters 1 --sample-tokens 0 --data "$OUT/shk-gpt2" --out "$OUT/tg-$variant-b$B" \
      "${extra[@]}" ${TG_TRAIN_ARGS:-} >"$log" 2>&1
    echo "tilegrad ($variant) B=$B: rc $?"
    grep -E "MFU is|step 12/12|CUDA graph|device memory" "$log" | tail -4
    # Median tokens/s of steps 3..12 (the first steps include cuBLASLt's algorithm choices).
    "$python" - "$OUT/tg-$variant-b$B/metrics.jsonl" "$variant" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
tps = [r["tokens_per_s"] for r in rows if r["step"] > 2]
print(f"tilegrad ({sys.argv[2]}) median tokens/s {statistics.median(tps):.0f}, peak {rows[-1]['peak_bytes'] / 2**30:.2f} GiB (tracker)")
PY
  done
  [ -n "${TG_NO_PEER:-}" ] && continue  # tilegrad's variants only
  timeout 300 "$python" bench/device/gpt_torch_cuda.py --mode throughput --batch "$B" \
    --steps 20 >"$OUT/torch-b$B.log" 2>&1
  echo "pytorch B=$B: rc $?"
  tail -1 "$OUT/torch-b$B.log"
done
